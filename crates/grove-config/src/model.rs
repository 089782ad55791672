//! The typed configuration model: what a project's YAML files mean.

use std::collections::BTreeMap;
use std::fmt;

use crate::diagnostic::Diagnostic;

/// A whole project's configuration, from one git tree.
#[derive(Clone, Debug, PartialEq)]
pub struct Project {
    /// Sorted by name.
    pub apps: Vec<App>,
    /// Sorted by name.
    pub services: Vec<Service>,
    /// `None` when the project has no routes file; in file order otherwise.
    pub routes: Option<Vec<RouteSpec>>,
    pub warnings: Vec<Diagnostic>,
}

impl Project {
    pub fn app(&self, name: &str) -> Option<&App> {
        self.apps.iter().find(|a| a.name == name)
    }

    pub fn service(&self, name: &str) -> Option<&Service> {
        self.services.iter().find(|s| s.name == name)
    }
}

/// `type: python:3.11`.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RuntimeType {
    pub language: String,
    pub version: String,
}

impl fmt::Display for RuntimeType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.language, self.version)
    }
}

/// One application.
#[derive(Clone, Debug, PartialEq)]
pub struct App {
    pub name: String,
    pub runtime: RuntimeType,
    /// App directory relative to the repository root, "" for the root.
    pub source_root: String,
    /// The file the app was defined in, e.g. `app/.platform.app.yaml`.
    pub config_file: String,
    pub hooks: Hooks,
    pub web: Web,
    /// prefix -> name -> value, from `variables:` (`env:` entries become environment
    /// variables, the others go into `PLATFORM_VARIABLES` as `prefix:name`).
    pub variables: BTreeMap<String, BTreeMap<String, serde_json::Value>>,
    /// Keyed by the mount path relative to the app root, without leading or trailing `/`.
    ///
    /// Mounts may be nested, also when of different kinds. The map's order is the order
    /// to mount them in: an outer mount sorts before every mount nested in it (`var` <
    /// `var/log`, since a string sorts before its extensions), so mounting in order
    /// creates each inner mount point inside the outer mount, never under it. The deploy
    /// (`grove-server`, `mount_binds`) binds the mounts in this order.
    pub mounts: BTreeMap<String, Mount>,
    pub relationships: BTreeMap<String, Relationship>,
    /// `build.flavor` (`composer`, `none`, ...), as written.
    pub build_flavor: Option<String>,
    /// Persistent disk in MB.
    pub disk: Option<u64>,
    /// `size`: how much CPU and memory the app gets.
    pub size: Size,
    pub crons: BTreeMap<String, Cron>,
    pub workers: BTreeMap<String, Worker>,
    /// `dependencies`: package manager -> package -> version constraint.
    pub dependencies: BTreeMap<String, BTreeMap<String, String>>,
    /// `access.ssh`: minimum role for SSH (`admin`, `contributor`, `viewer`).
    pub ssh_access: Option<String>,
    /// `timezone`, for crons.
    pub timezone: Option<String>,
    /// The app's config as JSON (for `PLATFORM_APPLICATION`).
    pub json: serde_json::Value,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Hooks {
    pub build: Option<String>,
    pub deploy: Option<String>,
    pub post_deploy: Option<String>,
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct Web {
    pub commands: WebCommands,
    /// Static root relative to the app root: `locations."/".root`, or the deprecated
    /// `web.document_root`.
    pub document_root: Option<String>,
    pub upstream: Upstream,
    /// Keyed by path prefix.
    pub locations: BTreeMap<String, WebLocation>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct WebCommands {
    pub start: Option<String>,
    pub pre_start: Option<String>,
    pub post_start: Option<String>,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum SocketFamily {
    #[default]
    Tcp,
    Unix,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum UpstreamProtocol {
    #[default]
    Http,
    Fastcgi,
}

/// How the router talks to the app. Defaults depend on the runtime (PHP: unix socket).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Upstream {
    pub socket_family: SocketFamily,
    pub protocol: UpstreamProtocol,
}

/// What happens to requests for files that are missing or not allowed.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum Passthru {
    /// `passthru: false` (the default): answer 404/403.
    #[default]
    Off,
    /// `passthru: true`: hand the request to the app as it is.
    App,
    /// `passthru: /index.php`: hand it to the app at that path (front controller).
    Path(String),
}

/// One entry of `web.locations`.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct WebLocation {
    pub root: Option<String>,
    pub passthru: Passthru,
    pub index: Vec<String>,
    /// As written (`1y`, `-1`, `300`); validated.
    pub expires: Option<String>,
    /// Serve files that match no rule (default true).
    pub allow: bool,
    /// Run PHP files (default true; meaningful only for PHP apps).
    pub scripts: Option<bool>,
    pub headers: BTreeMap<String, String>,
    /// `rules`: regex -> settings, in file order.
    pub rules: Vec<(String, serde_json::Value)>,
    pub request_buffering: RequestBuffering,
}

/// `request_buffering` of a location: chunked request bodies are buffered before the
/// app sees them (most app servers cannot read chunked bodies), up to a size.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RequestBuffering {
    pub enabled: bool,
    /// `max_request_size` in bytes: larger requests are refused (413).
    pub max_request_size: u64,
}

impl RequestBuffering {
    /// Platform.sh's default `max_request_size`, `250m`.
    pub const DEFAULT_MAX_REQUEST_SIZE: u64 = 250 * 1024 * 1024;
}

impl Default for RequestBuffering {
    fn default() -> RequestBuffering {
        RequestBuffering {
            enabled: true,
            max_request_size: RequestBuffering::DEFAULT_MAX_REQUEST_SIZE,
        }
    }
}

/// Where a mount's data lives.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum MountSource {
    /// A volume of this app (`local`; old syntax `shared:files/...`).
    Local,
    /// Ephemeral scratch space.
    Tmp,
    /// A network-storage service (`service: <name>`).
    Service,
    /// Upsun Flex: shared by all instances.
    Storage,
    /// Upsun Flex: per instance.
    Instance,
}

impl MountSource {
    pub fn as_str(self) -> &'static str {
        match self {
            MountSource::Local => "local",
            MountSource::Tmp => "tmp",
            MountSource::Service => "service",
            MountSource::Storage => "storage",
            MountSource::Instance => "instance",
        }
    }
}

impl fmt::Display for MountSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Mount {
    pub source: MountSource,
    /// Sub-path inside the volume; "" is the whole volume.
    pub source_path: String,
    /// For `service` mounts (and Flex `storage` shared across apps).
    pub service: Option<String>,
}

/// A named connection to a service (or another app's `http` endpoint).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Relationship {
    pub service: String,
    /// `None`: the service's default endpoint.
    pub endpoint: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Cron {
    /// Five-field cron spec, as written.
    pub spec: String,
    /// `commands.start` or the deprecated `cmd`.
    pub command: String,
    /// `commands.stop`, run when the cron is cancelled.
    pub stop: Option<String>,
    /// Seconds between stop/SIGTERM and SIGKILL (default 10).
    pub shutdown_timeout: u64,
    /// Seconds a run may take (default 86400).
    pub timeout: u64,
}

/// A worker: same build as its app, no public traffic.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Worker {
    pub start: Option<String>,
    /// As [`App::mounts`]: an outer mount sorts before the mounts nested in it.
    pub mounts: BTreeMap<String, Mount>,
    pub relationships: BTreeMap<String, Relationship>,
    pub variables: BTreeMap<String, BTreeMap<String, serde_json::Value>>,
    pub disk: Option<u64>,
}

/// `size` of an app or a service (Platform.sh Fixed): `AUTO` lets the platform
/// choose from the environment's type and plan.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Size {
    #[default]
    Auto,
    S,
    M,
    L,
    XL,
    XXL,
    XXXXL,
}

impl Size {
    /// The spellings of the YAML, in order.
    pub const NAMES: [(&'static str, Size); 7] = [
        ("AUTO", Size::Auto),
        ("S", Size::S),
        ("M", Size::M),
        ("L", Size::L),
        ("XL", Size::XL),
        ("2XL", Size::XXL),
        ("4XL", Size::XXXXL),
    ];
}

impl fmt::Display for Size {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = Size::NAMES
            .iter()
            .find(|(_, s)| s == self)
            .map_or("AUTO", |(n, _)| n);
        f.write_str(name)
    }
}

/// `mariadb:11.8`.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ServiceType {
    pub name: String,
    pub version: String,
}

impl fmt::Display for ServiceType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.name, self.version)
    }
}

/// One data service from services.yaml.
#[derive(Clone, Debug, PartialEq)]
pub struct Service {
    pub name: String,
    pub service_type: ServiceType,
    /// MB.
    pub disk: Option<u64>,
    /// `size`: how much CPU and memory the service gets.
    pub size: Size,
    pub configuration: serde_json::Value,
    /// Services such as varnish have relationships to apps.
    pub relationships: BTreeMap<String, Relationship>,
    pub config_file: String,
}

/// What a route does.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RouteKind {
    /// Serve from an app (`upstream: "app:http"`), or from a service that fronts apps
    /// such as varnish (`upstream: "varnish:http"`).
    Upstream { app: String },
    /// Redirect (301) to `to`.
    Redirect { to: String },
    /// Proxy to an outside URL.
    Proxy { to: String },
}

impl RouteKind {
    pub fn type_name(&self) -> &'static str {
        match self {
            RouteKind::Upstream { .. } => "upstream",
            RouteKind::Redirect { .. } => "redirect",
            RouteKind::Proxy { .. } => "proxy",
        }
    }
}

/// One entry of routes.yaml, before expansion for an environment.
#[derive(Clone, Debug, PartialEq)]
pub struct RouteSpec {
    /// The key as written, e.g. `https://{default}/`.
    pub template: String,
    pub kind: RouteKind,
    pub id: Option<String>,
    pub primary: Option<bool>,
    /// With the platform's defaults filled in.
    pub cache: serde_json::Value,
    pub ssi: serde_json::Value,
    pub attributes: serde_json::Value,
    /// `redirects` as written (partial redirects), `{}` when absent.
    pub redirects: serde_json::Value,
    /// `tls` as written, `{}` when absent.
    pub tls: serde_json::Value,
    pub sticky: bool,
}
