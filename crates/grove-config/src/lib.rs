//! Grove's project configuration: reads the YAML files of a git tree
//! (`.platform.app.yaml`, `.magento.app.yaml`, `.platform/applications.yaml`,
//! `.platform/{routes,services}.yaml`, `.magento/{routes,services}.yaml`, `.upsun/*.yaml`),
//! validates them with positioned diagnostics, expands routes for an environment and
//! computes the variables an app sees.
//!
//! Pure by design: no filesystem, network, processes or async. Files come in through
//! [`SourceTree`], which the git layer implements.
//!
//! - [`load`] -> [`Project`] (apps, services, route specs, warnings) or [`ConfigErrors`]
//!   (every error and warning with file, line, column, snippet and hint).
//! - [`expand_routes`] -> [`RouteTable`] for one environment; [`RouteTable::to_json`] is
//!   the decoded `PLATFORM_ROUTES`.
//! - [`build_environment`] / [`runtime_environment`]: the `PLATFORM_*`/`MAGENTO_CLOUD_*`
//!   variables; [`App::build_fingerprint`] is the config part of the build key.
//! - [`relationships_json`] / [`relationship_variables`]: `PLATFORM_RELATIONSHIPS` and
//!   Upsun's `<REL>_<FIELD>` variables, given where each service endpoint runs.

mod app;
mod diagnostic;
mod env;
mod expand;
mod include;
mod load;
mod model;
mod read;
mod relationships;
mod routes;
mod services;
mod suggest;
mod tree;
mod validate;
mod yaml;

pub use diagnostic::{ConfigErrors, Diagnostic, Severity};
pub use env::{
    BuildContext, RuntimeContext, UserVariable, base64_json, build_app_json, build_environment,
    canonical_json, runtime_environment,
};
pub use expand::{Route, RouteContext, RouteTable, expand_routes};
pub use load::{NO_APP_CONFIG, load};
pub use model::{
    App, Cron, Hooks, Mount, MountSource, Passthru, Project, Relationship, RequestBuffering,
    RouteKind, RouteSpec, RuntimeType, Service, ServiceType, Size, SocketFamily, Upstream,
    UpstreamProtocol, Web, WebCommands, WebLocation, Worker,
};
pub use relationships::{
    EndpointAccess, RelationshipContext, endpoint_scheme_and_port, relationship_endpoint,
    relationship_variables, relationships_json,
};
pub use routes::{PartialRedirect, RouteCache, partial_redirects, route_cache};
pub use services::default_endpoint;
pub use tree::{MemoryTree, SourceTree};
pub use validate::parse_expires;
