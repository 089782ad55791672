//! The wire format of Grove's HTTP API.
//!
//! Only the API server and its clients (the CLI, the git hook) know these shapes; the
//! store and the orchestration code have their own types and convert at the boundary.

use serde::{Deserialize, Serialize};

/// Paths of the API, kept in one place so that the server and the client cannot drift.
pub mod paths {
    pub const PROJECTS: &str = "/api/projects";
    pub const PROJECT: &str = "/api/projects/{project}";
    pub const ENVIRONMENTS: &str = "/api/projects/{project}/environments";
    pub const ENVIRONMENT: &str = "/api/projects/{project}/environments/{environment}";
    pub const ENVIRONMENT_ROUTES: &str =
        "/api/projects/{project}/environments/{environment}/routes";
    pub const ENVIRONMENT_LOGS: &str =
        "/api/projects/{project}/environments/{environment}/logs/{kind}";
    pub const ENVIRONMENT_BRANCH: &str =
        "/api/projects/{project}/environments/{environment}/branch";
    pub const ENVIRONMENT_SYNCHRONIZE: &str =
        "/api/projects/{project}/environments/{environment}/synchronize";
    /// The environment's HTTP access control (`environment:http-access`).
    pub const ENVIRONMENT_HTTP_ACCESS: &str =
        "/api/projects/{project}/environments/{environment}/http-access";
    /// Empties the environment's HTTP cache in the router (`cache:clear`).
    pub const ENVIRONMENT_CACHE_CLEAR: &str =
        "/api/projects/{project}/environments/{environment}/cache/clear";
    pub const ENVIRONMENT_ACTION: &str =
        "/api/projects/{project}/environments/{environment}/{action}";
    pub const ACTIVITIES: &str = "/api/projects/{project}/activities";
    pub const ACTIVITY: &str = "/api/projects/{project}/activities/{activity}";
    pub const ACTIVITY_LOG: &str = "/api/projects/{project}/activities/{activity}/log";
    pub const ACTIVITY_CANCEL: &str = "/api/projects/{project}/activities/{activity}/cancel";
    /// The project's users and their roles (project admins only).
    pub const PROJECT_USERS: &str = "/api/projects/{project}/users";
    /// One user of the project, by email or id.
    pub const PROJECT_USER: &str = "/api/projects/{project}/users/{user}";
    /// The caller's own API tokens.
    pub const TOKENS: &str = "/api/me/tokens";
    pub const TOKEN: &str = "/api/me/tokens/{token}";
    /// The caller's own SSH public keys.
    pub const SSH_KEYS: &str = "/api/me/ssh-keys";
    pub const SSH_KEY: &str = "/api/me/ssh-keys/{key}";
    /// Where the SSH gateway listens (`grove ssh`).
    pub const SSH_GATEWAY: &str = "/api/ssh";
    /// The project's variables (`variable:* --level project`).
    pub const PROJECT_VARIABLES: &str = "/api/projects/{project}/variables";
    pub const PROJECT_VARIABLE: &str = "/api/projects/{project}/variables/{name}";
    /// One environment's variables, its own and those it inherits.
    pub const ENVIRONMENT_VARIABLES: &str =
        "/api/projects/{project}/environments/{environment}/variables";
    pub const ENVIRONMENT_VARIABLE: &str =
        "/api/projects/{project}/environments/{environment}/variables/{name}";
    /// The language runtimes this server can run (`runtime:list`).
    pub const RUNTIMES: &str = "/api/runtimes";
    /// Builds a runtime's image (platform admins; `runtime:install`), streaming
    /// `RuntimeInstallEvent`s as NDJSON.
    pub const RUNTIMES_INSTALL: &str = "/api/runtimes/install";
    /// An environment's backups (`backup:list`, `backup:create`).
    pub const ENVIRONMENT_BACKUPS: &str =
        "/api/projects/{project}/environments/{environment}/backups";
    /// One backup of an environment (`backup:get`, `backup:delete`).
    pub const ENVIRONMENT_BACKUP: &str =
        "/api/projects/{project}/environments/{environment}/backups/{backup}";
    /// Restores a backup into a scratch directory and checks it (`backup:verify`).
    pub const ENVIRONMENT_BACKUP_VERIFY: &str =
        "/api/projects/{project}/environments/{environment}/backups/{backup}/verify";
    /// Restores a backup into its own environment or another (`backup:restore`).
    pub const BACKUP_RESTORE: &str = "/api/projects/{project}/backups/{backup}/restore";
    pub const BACKUP_POLICY: &str = "/api/projects/{project}/backup-policies/{environment_type}";
    /// A logical dump of one of an environment's databases (`db:dump`): the SQL, or
    /// its gzip, as the body; query: [`DumpQuery`](crate::DumpQuery).
    pub const ENVIRONMENT_DB_DUMP: &str =
        "/api/projects/{project}/environments/{environment}/db-dump";
    /// Called by the git pre-receive hook that the server installs in every repository.
    pub const HOOK_PRE_RECEIVE: &str = "/internal/hooks/pre-receive";
}

/// A header that marks a request as coming from a program rather than from a web form.
/// State-changing requests (POST, PATCH, PUT, DELETE) need it or a JSON content type:
/// a browser sends neither cross-origin without a CORS preflight, which Grove never
/// grants, so a page elsewhere cannot make a logged-in browser change anything.
pub const CLIENT_HEADER: &str = "x-grove-client";

/// A user variable. A sensitive variable's value is never sent (`value` is `None`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Variable {
    /// `env:NAME` (the environment variable `NAME`) or any other name (an entry of
    /// `PLATFORM_VARIABLES`).
    pub name: String,
    /// `project` or `environment`.
    pub level: String,
    /// The environment that defines it (environment level).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub environment: Option<String>,
    #[serde(default)]
    pub value: Option<String>,
    pub is_json: bool,
    pub is_sensitive: bool,
    pub is_enabled: bool,
    pub is_inheritable: bool,
    pub visible_build: bool,
    pub visible_runtime: bool,
    /// Listed on an environment but defined by an ancestor (or the project).
    #[serde(default)]
    pub inherited: bool,
    pub created_at: String,
    pub updated_at: String,
}

/// `variable:create`; flags left out take Platform.sh's defaults (visible at build and
/// at run time, inheritable, enabled, not JSON, not sensitive).
#[derive(Debug, Clone, Serialize, Deserialize, Default)]
pub struct CreateVariable {
    pub name: String,
    pub value: String,
    #[serde(default)]
    pub is_json: Option<bool>,
    #[serde(default)]
    pub is_sensitive: Option<bool>,
    #[serde(default)]
    pub is_enabled: Option<bool>,
    #[serde(default)]
    pub is_inheritable: Option<bool>,
    #[serde(default)]
    pub visible_build: Option<bool>,
    #[serde(default)]
    pub visible_runtime: Option<bool>,
}

/// `variable:update`: what is given changes. A sensitive variable cannot become
/// non-sensitive.
#[derive(Debug, Clone, Serialize, Deserialize, Default)]
pub struct UpdateVariable {
    #[serde(default)]
    pub value: Option<String>,
    #[serde(default)]
    pub is_json: Option<bool>,
    #[serde(default)]
    pub is_sensitive: Option<bool>,
    #[serde(default)]
    pub is_enabled: Option<bool>,
    #[serde(default)]
    pub is_inheritable: Option<bool>,
    #[serde(default)]
    pub visible_build: Option<bool>,
    #[serde(default)]
    pub visible_runtime: Option<bool>,
}

/// The answer to a variable change: the variable (absent after a delete) and the
/// redeploys it started, one per active environment whose variables changed.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct VariableChange {
    #[serde(default)]
    pub variable: Option<Variable>,
    pub activities: Vec<Activity>,
}

/// `user:add`: gives a user (created if new) a role in the project.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AddProjectUser {
    pub email: String,
    /// `admin` or `viewer` (the default).
    #[serde(default)]
    pub role: Option<String>,
    /// Roles by environment type (`production`, `staging`, `development`):
    /// `admin`, `contributor`, `viewer`, or `none`. A project viewer added without any
    /// gets `viewer` on every type.
    #[serde(default)]
    pub environment_types: std::collections::BTreeMap<String, String>,
}

/// `user:update`: changes the project role and/or some environment type roles (`none`
/// takes one away); types not named keep their role.
#[derive(Debug, Clone, Serialize, Deserialize, Default)]
pub struct UpdateProjectUser {
    #[serde(default)]
    pub role: Option<String>,
    #[serde(default)]
    pub environment_types: std::collections::BTreeMap<String, String>,
}

/// A user's access to a project.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ProjectUser {
    pub id: i64,
    pub email: String,
    pub project: String,
    /// `admin` or `viewer`.
    pub role: String,
    /// Roles by environment type; a project admin is admin on every type.
    pub environment_types: std::collections::BTreeMap<String, String>,
    pub created_at: String,
    /// The new user's first API token, shown once, when `user:add` created the user.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CreateToken {
    pub name: String,
}

/// An API token of the caller. The secret is only ever shown in the answer to its
/// creation.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Token {
    pub id: i64,
    pub name: String,
    pub created_at: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
}

/// `ssh-key:add`: a public key as in an `authorized_keys` line (`TYPE BASE64 [COMMENT]`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AddSshKey {
    pub key: String,
    /// What the key is called in listings (default: the key's comment).
    #[serde(default)]
    pub title: Option<String>,
}

/// One of the caller's SSH public keys.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SshKey {
    pub id: i64,
    pub title: String,
    /// `ssh-ed25519`, `ssh-rsa`, `ecdsa-sha2-nistp256`, ...
    pub key_type: String,
    /// `SHA256:...`, as `ssh-keygen -l` prints it.
    pub fingerprint: String,
    pub created_at: String,
}

/// The SSH gateway: `None` when this server runs none.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SshGateway {
    pub address: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CreateProject {
    pub name: String,
    #[serde(default)]
    pub title: Option<String>,
    /// `development` (no limits, the default), `starter` or `pro`.
    #[serde(default)]
    pub plan: Option<String>,
    /// Pro plans: how many integration environments may be active (default 2).
    #[serde(default)]
    pub integration_environments: Option<u32>,
    /// Whether crons run on development environments by default (default true).
    #[serde(default)]
    pub development_crons: Option<bool>,
}

/// `environment:branch`: the parent is the environment in the path.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BranchEnvironment {
    pub name: String,
    #[serde(default)]
    pub title: Option<String>,
    #[serde(default, rename = "type")]
    pub kind: Option<String>,
    /// Copy the parent's data (the default).
    #[serde(default = "yes")]
    pub clone_parent: bool,
}

fn yes() -> bool {
    true
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SynchronizeEnvironment {
    #[serde(default)]
    pub synchronize_code: bool,
    #[serde(default)]
    pub synchronize_data: bool,
    #[serde(default)]
    pub rebase: bool,
}

/// Sets one property of an environment (`type`, `title`, `parent`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct UpdateEnvironment {
    pub property: String,
    pub value: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Project {
    pub id: String,
    pub title: String,
    pub default_branch: Option<String>,
    pub plan: String,
    /// Where to push: `http://<api-listen>/<project>.git`.
    pub git_url: String,
    pub created_at: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Environment {
    /// The branch name.
    pub id: String,
    pub name: String,
    pub machine_name: String,
    pub title: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub status: String,
    pub parent: Option<String>,
    pub project: String,
    /// The commit the environment runs, if it has been deployed.
    pub deployed_commit: Option<String>,
    pub last_deployment_successful: Option<bool>,
    pub last_deployment_at: Option<String>,
    /// Final URLs of its routes; empty when inactive.
    pub urls: Vec<String>,
    pub primary_url: Option<String>,
    /// Whether its crons run.
    pub crons: bool,
    /// `ok`, or `degraded` when a service keeps failing its health checks.
    pub health: String,
    /// The environment's running services, by name.
    pub services: std::collections::BTreeMap<String, ServiceStatus>,
    /// Apps that run another runtime version than the one they ask for, and which.
    #[serde(default)]
    pub runtime_warnings: Vec<String>,
    /// The status of its newest backup (`running`, `completed`, `failed`), if any.
    #[serde(default)]
    pub last_backup_status: Option<String>,
    /// When its newest backup was started.
    #[serde(default)]
    pub last_backup_at: Option<String>,
    pub created_at: String,
    pub updated_at: String,
}

/// A project's backup retention policy for an environment type (`backup:policy`):
/// `policy` is `{manual: N, tiers: [{every: "1h", keep: 72}, ...]}`; `default` is
/// whether it is Grove's default for the type (the project set none).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BackupPolicy {
    pub environment_type: String,
    pub policy: serde_json::Value,
    pub default: bool,
}

/// `backup:create`: consistent (services quiesced at one instant) unless `live`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct CreateBackup {
    #[serde(default)]
    pub live: bool,
}

/// `db:dump`: which relationship (default: the apps' only database relationship),
/// which schema (default: the relationship's own) and whether gzipped.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct DumpQuery {
    #[serde(default)]
    pub relationship: Option<String>,
    #[serde(default)]
    pub schema: Option<String>,
    #[serde(default)]
    pub gzip: bool,
}

/// `backup:restore`: into `environment` (default: the backup's own), or into a new
/// environment of that name branched from `branch_from`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct RestoreBackup {
    #[serde(default)]
    pub environment: Option<String>,
    #[serde(default)]
    pub branch_from: Option<String>,
    /// Restore only the data; the environment keeps its code. By default the backup's
    /// commit (and so its build) is deployed again and the branch moved back to it.
    #[serde(default)]
    pub no_code: bool,
}

/// One backup of an environment.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Backup {
    pub id: String,
    pub project: String,
    pub environment: String,
    /// The activity that made it.
    pub activity: String,
    /// `running`, `completed` or `failed`.
    pub status: String,
    /// Why it failed.
    pub reason: Option<String>,
    /// `consistent` or `live`.
    pub consistency: String,
    /// How long the services were paused, for a consistent backup.
    pub pause_ms: Option<u64>,
    pub commit: Option<String>,
    /// `app=build key`, one per app.
    pub build_keys: Vec<String>,
    /// The snapshot in the backup store.
    pub snapshot: Option<String>,
    /// Bytes of data it holds.
    pub size: Option<u64>,
    pub automatic: bool,
    pub created_at: String,
    pub completed_at: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ServiceStatus {
    /// `mariadb:10.11`, as services.yaml asks.
    #[serde(rename = "type")]
    pub kind: String,
    /// What runs it when that is not the version asked for, e.g. `redis:5.0 runs
    /// on the installed redis:7.0 (the nearest newer version installed)`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub runs_on: Option<String>,
    pub address: String,
    pub healthy: bool,
    /// How often its server process was restarted since the service started.
    pub restarts: u32,
    /// Consecutive failed health checks.
    pub failures: u32,
    pub last_error: Option<String>,
}

/// One address rule of `environment:http-access`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccessAddress {
    /// `allow` or `deny`.
    pub permission: String,
    /// An IP address or CIDR network.
    pub address: String,
}

/// An environment's HTTP access control as it applies (its own, or inherited).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct HttpAccess {
    pub is_enabled: bool,
    /// The users of Basic authentication (their passwords are never sent back).
    pub basic_auth_users: Vec<String>,
    /// Checked in order; the first that matches decides.
    pub addresses: Vec<AccessAddress>,
    /// The ancestor whose settings apply, when the environment has none of its own.
    pub inherited_from: Option<String>,
}

/// A change of an environment's own HTTP access control; what is left out stays.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct HttpAccessUpdate {
    pub is_enabled: Option<bool>,
    /// User name -> password; replaces the users.
    pub basic_auth: Option<std::collections::BTreeMap<String, String>>,
    /// Replaces the rules.
    pub addresses: Option<Vec<AccessAddress>>,
}

/// The answer to `cache:clear`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CacheCleared {
    /// How many stored responses were dropped.
    pub cleared: usize,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Route {
    pub url: String,
    pub original_url: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub primary: bool,
    pub id: Option<String>,
    pub upstream: Option<String>,
    pub to: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Activity {
    pub id: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub project: String,
    pub environment: Option<String>,
    /// `pending`, `in_progress`, `complete`, `cancelled`.
    pub state: String,
    /// `success` or `failure` once complete.
    pub result: Option<String>,
    pub description: String,
    pub created_at: String,
    pub started_at: Option<String>,
    pub completed_at: Option<String>,
}

/// One line of an activity log stream (NDJSON), as Platform.sh's log endpoint sends it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LogLine {
    pub seq: u64,
    pub timestamp: String,
    pub message: String,
}

/// The last line of a log stream: the activity's outcome.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LogSeal {
    pub seal: bool,
    pub state: String,
    pub result: Option<String>,
}

/// A line of the log stream: either a log line or the final seal.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(untagged)]
pub enum LogEvent {
    Line(LogLine),
    Seal(LogSeal),
}

/// What the pre-receive hook sends: the ref updates of one push.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PreReceive {
    pub project: String,
    pub updates: Vec<RefUpdate>,
    pub push_options: Vec<String>,
    /// Git's quarantine environment (`GIT_OBJECT_DIRECTORY`, ...): the pushed objects
    /// are only readable with it until the hook accepts the push.
    pub git_env: Vec<(String, String)>,
    pub user: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RefUpdate {
    pub old: String,
    pub new: String,
    pub name: String,
}

/// An API error body: `{"error": {"kind": "conflict", "message": "..."}}`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ErrorDetail {
    pub kind: ErrorKind,
    pub message: String,
}

/// Whose failure it is: what the client can do about it follows from the class.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorKind {
    /// The request or the pushed configuration is wrong: fix it and try again (400).
    UserInput,
    /// The request needs a valid API token (401).
    Unauthorized,
    /// The token's user lacks the role the request needs, or the request is a
    /// cross-origin form post (403).
    Forbidden,
    /// What the request names does not exist (404).
    NotFound,
    /// The request is valid but the current state does not allow it (409).
    Conflict,
    /// Something Grove depends on (a service, the host's resources) is unavailable:
    /// trying again later may work (503).
    Unavailable,
    /// Grove itself failed (500).
    Platform,
}

impl ErrorKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::UserInput => "user_input",
            ErrorKind::Unauthorized => "unauthorized",
            ErrorKind::Forbidden => "forbidden",
            ErrorKind::NotFound => "not_found",
            ErrorKind::Conflict => "conflict",
            ErrorKind::Unavailable => "unavailable",
            ErrorKind::Platform => "platform",
        }
    }
}

/// One runtime of `runtime:list`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Runtime {
    /// `nodejs:18`, as a config's `type:` asks for it.
    #[serde(rename = "type")]
    pub kind: String,
    pub language: String,
    pub version: String,
    pub full_version: String,
    /// `installed` (runs now) or `installable` (its image is built on first use or
    /// with `runtime:install`).
    pub status: String,
    /// `host` or `image`.
    pub source: String,
    /// The Debian release an image is built from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub release: Option<String>,
}

/// `runtime:install TYPE`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct InstallRuntime {
    #[serde(rename = "type")]
    pub kind: String,
}

/// One line of a `runtime:install` stream: progress, then the end (`done`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RuntimeInstallEvent {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    #[serde(default)]
    pub done: bool,
    /// Why the install failed (with `done`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// What `grove ssh-gate` (run by the SSH gateway's `sshd`) and the server say to each
/// other over the gateway's Unix socket: one JSON line each way. A session's request
/// comes with the session's stdin, stdout and stderr as descriptors (SCM_RIGHTS).
pub mod ssh_gate {
    use serde::{Deserialize, Serialize};

    #[derive(Debug, Clone, Serialize, Deserialize)]
    #[serde(tag = "request", rename_all = "snake_case")]
    pub enum Request {
        /// `AuthorizedKeysCommand`: the `authorized_keys` lines for a key offered for
        /// a login (none when the key is unknown or the login is not Grove's).
        Keys {
            login: String,
            key_type: String,
            key_data: String,
        },
        /// A session of an authenticated key: a command (`SSH_ORIGINAL_COMMAND`) or
        /// an interactive shell.
        Session(Session),
    }

    #[derive(Debug, Clone, Serialize, Deserialize)]
    pub struct Session {
        /// The authenticated key's fingerprint.
        pub key: String,
        pub login: String,
        #[serde(default)]
        pub command: Option<String>,
        /// stdin is a terminal (`ssh -t`, an interactive login).
        #[serde(default)]
        pub tty: bool,
        #[serde(default)]
        pub term: Option<String>,
        /// The client's `GIT_PROTOCOL` (git protocol v2).
        #[serde(default)]
        pub git_protocol: Option<String>,
    }

    #[derive(Debug, Clone, Default, Serialize, Deserialize)]
    pub struct Reply {
        /// The session's exit status.
        #[serde(default)]
        pub exit: i32,
        /// `authorized_keys` lines.
        #[serde(default)]
        pub lines: Vec<String>,
    }
}
