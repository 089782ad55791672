//! The client commands: Platform.sh / magento-cloud CLI names over Grove's HTTP API.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, bail};
use clap::{Args, Subcommand, ValueEnum};
use futures_util::StreamExt;
use grove_api::{Activity, Environment, LogEvent, Project, Route};

use crate::output::{Format, Refused, Unreachable, confirm, outln, print_rows, print_value};

#[derive(Args, Clone)]
pub struct Target {
    /// The project (default: $GROVE_PROJECT, the project of this checkout's `grove`
    /// remote, or the only project).
    #[arg(short = 'p', long, env = "GROVE_PROJECT")]
    project: Option<String>,
    /// The environment, by branch or machine name (default: this checkout's branch,
    /// or the project's default branch).
    #[arg(short = 'e', long)]
    environment: Option<String>,
}

/// A mount of an environment's app.
#[derive(Args, Clone)]
pub struct MountTarget {
    #[command(flatten)]
    target: Target,
    #[arg(short = 'A', long)]
    app: Option<String>,
    /// The mount, as the app's configuration names it (e.g. `var`).
    #[arg(long)]
    mount: String,
}

#[derive(Args, Clone)]
pub struct Wait {
    /// Return as soon as the activity is created (its id on stdout) instead of
    /// streaming its log.
    #[arg(short = 'W', long)]
    no_wait: bool,
}

#[derive(Subcommand)]
pub enum Client {
    /// Create a project (an empty git repository to push to).
    #[command(name = "project:create")]
    ProjectCreate {
        name: String,
        #[arg(long)]
        title: Option<String>,
        /// `development` (no limits), `starter` (4 active environments, production
        /// included) or `pro` (production, staging and integration environments).
        #[arg(long)]
        plan: Option<String>,
        /// Pro plans: how many integration environments may be active.
        #[arg(long)]
        integration_environments: Option<u32>,
        /// Keep crons off on development environments unless switched on for one
        /// (`environment:info -e X crons true`).
        #[arg(long)]
        no_development_crons: bool,
        #[arg(long, value_enum, default_value_t)]
        format: Format,
    },
    /// List projects.
    #[command(name = "project:list", visible_alias = "projects")]
    ProjectList {
        #[arg(long, value_enum, default_value_t)]
        format: Format,
    },
    /// List the language runtimes apps can ask for: the host's (installed) and those
    /// built from Debian's archive as runtime images (installed once built, else
    /// installable).
    #[command(name = "runtime:list", visible_alias = "runtimes")]
    RuntimeList {
        #[arg(long, value_enum, default_value_t)]
        format: Format,
    },
    /// Build the runtime image of a type such as `nodejs:18` now rather than at the
    /// first push that needs it (platform admins).
    #[command(name = "runtime:install")]
    RuntimeInstall {
        /// `language:version`, as in an app's `type:`.
        #[arg(value_name = "TYPE")]
        kind: String,
    },
    /// List a project's environments.
    #[command(
        name = "environment:list",
        visible_aliases = ["environments", "env"],
        after_help = "Columns: id, machine_name, type, status, parent, url\n\nExamples:\n  \
                      grove environment:list -p shop\n  \
                      grove environment:list --format csv --columns id,status --no-header"
    )]
    EnvironmentList {
        #[command(flatten)]
        target: Target,
        #[arg(long, value_enum, default_value_t)]
        format: Format,
    },
    /// Show an environment, one of its properties, or set one (`type`, `title`, `parent`).
    #[command(name = "environment:info")]
    EnvironmentInfo {
        #[command(flatten)]
        target: Target,
        /// Print only this property (e.g. `status`, `machine_name`).
        property: Option<String>,
        /// Set the property to this value.
        value: Option<String>,
        #[arg(long, value_enum, default_value_t)]
        format: Format,
    },
    /// Branch an environment: a new branch and an active environment with a copy of the
    /// parent's data.
    #[command(
        name = "environment:branch",
        visible_alias = "branch",
        after_help = "Examples:\n  grove environment:branch feature/x main -p shop\n  \
                      grove environment:branch staging main -p shop --type staging --no-wait"
    )]
    EnvironmentBranch {
        /// The new branch's name.
        name: String,
        /// The parent (default: -e, or the project's default branch).
        parent: Option<String>,
        #[arg(short = 'p', long, env = "GROVE_PROJECT")]
        project: Option<String>,
        #[arg(short = 'e', long)]
        environment: Option<String>,
        #[arg(long = "type")]
        kind: Option<String>,
        #[arg(long)]
        title: Option<String>,
        /// Start with empty services and mounts instead of a copy of the parent's.
        #[arg(long)]
        no_clone_parent: bool,
        #[command(flatten)]
        wait: Wait,
    },
    /// Bring the parent's code (fast-forward, or --rebase) and/or data down.
    #[command(name = "environment:synchronize", visible_alias = "sync")]
    EnvironmentSynchronize {
        #[command(flatten)]
        target: Target,
        /// `code`, `data`, or both.
        #[arg(required = true, value_parser = ["code", "data"])]
        what: Vec<String>,
        /// Replay the environment's own commits on the parent's.
        #[arg(long)]
        rebase: bool,
        #[command(flatten)]
        wait: Wait,
    },
    /// Back up an environment: all service data and mounts, and the commit and builds it
    /// runs. Consistent (services quiesced at one instant) unless --live.
    #[command(name = "backup:create", visible_alias = "backup")]
    BackupCreate {
        #[command(flatten)]
        target: Target,
        /// No pause: a crash-consistent copy, as after a power cut.
        #[arg(long)]
        live: bool,
        #[command(flatten)]
        wait: Wait,
    },
    /// List an environment's backups, newest first.
    #[command(name = "backup:list", visible_alias = "backups")]
    BackupList {
        #[command(flatten)]
        target: Target,
        #[arg(long, value_enum, default_value_t)]
        format: Format,
    },
    /// Show one backup.
    #[command(name = "backup:get")]
    BackupGet {
        id: String,
        #[command(flatten)]
        target: Target,
        #[arg(long, value_enum, default_value_t)]
        format: Format,
    },
    /// Restore a backup into a scratch directory and check every file against its
    /// manifest (no environment is touched).
    #[command(name = "backup:verify")]
    BackupVerify {
        id: String,
        #[command(flatten)]
        target: Target,
        #[command(flatten)]
        wait: Wait,
    },
    /// Show or set the project's backup retention policy for an environment type:
    /// how many manual backups are kept, and which automatic ones (`--tier 1h:72` keeps
    /// the first backup of each hour for 72 hours). Automatic backups run for production,
    /// and for another type once its policy has tiers. Setting needs a project admin.
    #[command(
        name = "backup:policy",
        after_help = "Examples:\n  grove backup:policy production -p shop\n  \
                      grove backup:policy production -p shop --manual 4 --tier 1h:24 --tier 1d:7 --tier 1w:4\n  \
                      grove backup:policy staging -p shop --tier 1d:3\n  \
                      grove backup:policy production -p shop --reset"
    )]
    BackupPolicy {
        /// `production`, `staging` or `development`.
        #[arg(value_name = "TYPE")]
        kind: String,
        #[arg(short = 'p', long, env = "GROVE_PROJECT")]
        project: Option<String>,
        /// How many manual backups are kept.
        #[arg(long)]
        manual: Option<u32>,
        /// EVERY:KEEP, e.g. `1h:72` (intervals: m, h, d, w); repeat, shortest first.
        #[arg(long = "tier")]
        tiers: Vec<String>,
        /// Back to Grove's default for the type.
        #[arg(long, conflicts_with_all = ["manual", "tiers"])]
        reset: bool,
        #[arg(long, value_enum, default_value_t)]
        format: Format,
    },
    /// Delete a backup (its snapshot is forgotten in the backup store).
    #[command(name = "backup:delete")]
    BackupDelete {
        id: String,
        #[command(flatten)]
        target: Target,
        #[command(flatten)]
        wait: Wait,
    },
    /// Restore a backup's data into its environment (or -e TARGET, or a new environment
    /// TARGET branched from --branch-from), atomically: the environment is exactly as
    /// before (or does not exist) if anything fails.
    #[command(
        name = "backup:restore",
        after_help = "Examples:\n  grove backup:list -p shop -e main     # the backups and their ids\n  \
                      grove backup:restore ID -p shop\n  \
                      grove backup:restore ID -p shop -e staging --no-code --yes\n  \
                      grove backup:restore ID -p shop --branch-from main --target restored"
    )]
    BackupRestore {
        id: String,
        #[arg(short = 'p', long, env = "GROVE_PROJECT")]
        project: Option<String>,
        /// The environment to restore into (default: the backup's own).
        #[arg(short = 'e', long, visible_alias = "target")]
        environment: Option<String>,
        /// Restore into a new environment TARGET, branched from this one.
        #[arg(long, value_name = "PARENT", requires = "environment")]
        branch_from: Option<String>,
        /// Restore only the data: keep the environment's current code.
        #[arg(long)]
        no_code: bool,
        #[command(flatten)]
        wait: Wait,
    },
    /// Dump one of the environment's databases (SQL, by `mariadb-dump
    /// --single-transaction` or `pg_dump`) into a file, or to stdout.
    #[command(name = "db:dump")]
    DbDump {
        #[command(flatten)]
        target: Target,
        /// The relationship to dump (default: the apps' only database relationship).
        #[arg(short = 'r', long)]
        relationship: Option<String>,
        /// The schema to dump (default: the relationship's own).
        #[arg(long)]
        schema: Option<String>,
        /// Compress with gzip.
        #[arg(short = 'z', long)]
        gzip: bool,
        /// Write the dump to stdout (and nothing else there).
        #[arg(short = 'o', long, conflicts_with = "file")]
        stdout: bool,
        /// The file to write (default: `PROJECT--ENV--RELATIONSHIP--SCHEMA--dump.sql[.gz]`
        /// in the current directory).
        #[arg(short = 'f', long)]
        file: Option<PathBuf>,
    },
    /// Merge the environment's code into its parent and redeploy the parent.
    #[command(name = "environment:merge", visible_alias = "merge")]
    EnvironmentMerge {
        #[command(flatten)]
        target: Target,
        #[command(flatten)]
        wait: Wait,
    },
    /// Activate an environment: deploy its branch.
    #[command(name = "environment:activate")]
    EnvironmentActivate {
        #[command(flatten)]
        target: Target,
        #[command(flatten)]
        wait: Wait,
    },
    /// Deactivate an environment: stop it, keep its branch.
    #[command(name = "environment:deactivate")]
    EnvironmentDeactivate {
        #[command(flatten)]
        target: Target,
        #[command(flatten)]
        wait: Wait,
    },
    /// Show or change an environment's HTTP access control (Basic authentication and
    /// address rules); environments below it without their own settings inherit it.
    #[command(name = "environment:http-access", visible_alias = "httpaccess")]
    EnvironmentHttpAccess {
        #[command(flatten)]
        target: Target,
        /// `user:password` for Basic authentication (repeatable; replaces the users).
        #[arg(long = "auth", value_name = "USER:PASSWORD")]
        auth: Vec<String>,
        /// `allow:CIDR` or `deny:CIDR`, checked in order (repeatable; replaces the rules).
        #[arg(long = "access", value_name = "PERMISSION:ADDRESS")]
        access: Vec<String>,
        /// Turn access control on (1) or off (0).
        #[arg(long, value_name = "1|0")]
        enabled: Option<String>,
    },
    /// Empty an environment's HTTP cache in the router.
    #[command(name = "cache:clear")]
    CacheClear {
        #[command(flatten)]
        target: Target,
    },
    /// Redeploy an environment's current code.
    #[command(name = "environment:redeploy", visible_alias = "redeploy")]
    EnvironmentRedeploy {
        #[command(flatten)]
        target: Target,
        #[command(flatten)]
        wait: Wait,
    },
    /// Delete an environment.
    #[command(name = "environment:delete")]
    EnvironmentDelete {
        #[command(flatten)]
        target: Target,
        /// Delete the git branch too.
        #[arg(long)]
        delete_branch: bool,
        #[command(flatten)]
        wait: Wait,
    },
    /// Show an environment's URLs.
    #[command(name = "environment:url", visible_alias = "url")]
    EnvironmentUrl {
        #[command(flatten)]
        target: Target,
        /// Only the primary route's URL.
        #[arg(long)]
        primary: bool,
        /// Print bare URLs, one a line, for scripts.
        #[arg(long)]
        pipe: bool,
    },
    /// List a project's activities, newest first.
    #[command(
        name = "activity:list",
        visible_aliases = ["activities", "act"],
        after_help = "Columns: id, created, description, state, result, environment\n\nExamples:\n  \
                      grove activity:list -p shop --state in_progress\n  \
                      grove activity:list -p shop --limit 1 --format tsv --columns id --no-header"
    )]
    ActivityList {
        #[command(flatten)]
        target: Target,
        /// Show activities of every environment.
        #[arg(long, short = 'a')]
        all: bool,
        #[arg(long, default_value_t = 10)]
        limit: u32,
        /// Only activities in this state.
        #[arg(long, value_parser = ["pending", "in_progress", "complete"])]
        state: Option<String>,
        #[arg(long, value_enum, default_value_t)]
        format: Format,
    },
    /// Print an activity's log on stdout, following it while it runs; the exit code
    /// is 1 if the activity failed.
    #[command(
        name = "activity:log",
        after_help = "Examples:\n  grove activity:log 42 > build.log\n  grove activity:log 42 --no-follow | tail -5"
    )]
    ActivityLog {
        #[command(flatten)]
        target: Target,
        id: String,
        /// Follow the log until the activity completes (the default).
        #[arg(long, conflicts_with = "no_follow")]
        follow: bool,
        /// Print the log as it is now, without waiting for the activity.
        #[arg(long)]
        no_follow: bool,
    },
    /// List an environment's routes, as expanded from `routes.yaml`.
    #[command(
        name = "route:list",
        visible_alias = "routes",
        after_help = "Columns: route, type, to, original_url, id, primary"
    )]
    RouteList {
        #[command(flatten)]
        target: Target,
        #[arg(long, value_enum, default_value_t)]
        format: Format,
    },
    /// Show one route, by its URL, its original URL (`https://{default}/`) or its `id`.
    #[command(name = "route:get")]
    RouteGet {
        route: String,
        #[command(flatten)]
        target: Target,
        /// Print only this property (e.g. `upstream`).
        #[arg(long = "property", short = 'P')]
        property: Option<String>,
        #[arg(long, value_enum, default_value_t)]
        format: Format,
    },
    /// Print an environment's log of one type: `app` (what the app's instances print,
    /// their web server's errors included), `access` (the router's line per request,
    /// nginx's combined format and the seconds to the response head), `deploy` and
    /// `cron` (the logs of those activities, oldest first), `service-<name>` (a
    /// service's output).
    #[command(
        name = "environment:logs",
        visible_alias = "log",
        after_help = "Examples:\n  grove environment:logs app -p shop -e main --lines 20\n  \
                      grove environment:logs app --tail          # in a checkout: its project and branch\n  \
                      grove environment:logs access --tail\n  \
                      grove environment:logs deploy | less"
    )]
    EnvironmentLogs {
        #[command(flatten)]
        target: Target,
        /// `app`, `deploy`, `cron` or `service-<name>`.
        #[arg(default_value = "app")]
        kind: String,
        /// The app, when the environment has several.
        #[arg(long = "app", short = 'A')]
        app: Option<String>,
        /// How many of the last lines.
        #[arg(long, default_value_t = 100)]
        lines: usize,
        /// Keep printing lines as they are written (`app` and services).
        #[arg(long)]
        tail: bool,
    },
    /// Cancel an activity: a pending one never runs; a running build or hook is stopped
    /// and the environment keeps what it ran before.
    #[command(name = "activity:cancel")]
    ActivityCancel {
        #[command(flatten)]
        target: Target,
        id: String,
    },
    /// Give a user a role in a project, creating the user if new (its first API token is
    /// printed once, as `token` with --format json).
    #[command(name = "user:add")]
    UserAdd {
        email: String,
        #[arg(short = 'p', long, env = "GROVE_PROJECT")]
        project: Option<String>,
        /// The project role (`admin`, or `viewer` by default), or TYPE:ROLE for an
        /// environment type (`production`, `staging`, `development`, or `%` for all)
        /// with ROLE `admin`, `contributor`, `viewer` or `none`. Repeatable.
        #[arg(short = 'r', long = "role")]
        roles: Vec<String>,
        #[arg(long, value_enum, default_value_t)]
        format: Format,
    },
    /// List a project's users and their roles.
    #[command(name = "user:list", visible_alias = "users")]
    UserList {
        #[arg(short = 'p', long, env = "GROVE_PROJECT")]
        project: Option<String>,
        #[arg(long, value_enum, default_value_t)]
        format: Format,
    },
    /// Show a user's roles in a project.
    #[command(name = "user:get")]
    UserGet {
        email: String,
        #[arg(short = 'p', long, env = "GROVE_PROJECT")]
        project: Option<String>,
        #[arg(long, value_enum, default_value_t)]
        format: Format,
    },
    /// Change a user's roles in a project (environment types not named keep theirs).
    #[command(name = "user:update")]
    UserUpdate {
        email: String,
        #[arg(short = 'p', long, env = "GROVE_PROJECT")]
        project: Option<String>,
        /// As for user:add; `TYPE:none` takes a type's role away.
        #[arg(short = 'r', long = "role", required = true)]
        roles: Vec<String>,
        #[arg(long, value_enum, default_value_t)]
        format: Format,
    },
    /// Take a user's access to a project away.
    #[command(name = "user:delete")]
    UserDelete {
        email: String,
        #[arg(short = 'p', long, env = "GROVE_PROJECT")]
        project: Option<String>,
    },
    /// Create an API token for yourself; it is printed once.
    #[command(name = "auth:token-create")]
    TokenCreate {
        /// What the token is for (e.g. `ci`).
        #[arg(long, default_value = "cli")]
        name: String,
        #[arg(long, value_enum, default_value_t)]
        format: Format,
    },
    /// List your API tokens (never their secrets).
    #[command(name = "auth:token-list")]
    TokenList {
        #[arg(long, value_enum, default_value_t)]
        format: Format,
    },
    /// Delete one of your API tokens: it stops working at once.
    #[command(name = "auth:token-delete")]
    TokenDelete { id: String },
    /// Add an SSH public key (a `.pub` file, or stdin) to your account.
    #[command(name = "ssh-key:add")]
    SshKeyAdd {
        /// The public key file (default: ~/.ssh/id_ed25519.pub; `-` reads stdin).
        file: Option<PathBuf>,
        /// The key's name in listings (default: its comment).
        #[arg(long)]
        name: Option<String>,
    },
    /// List your SSH public keys.
    #[command(name = "ssh-key:list", visible_alias = "ssh-keys")]
    SshKeyList {
        #[arg(long, value_enum, default_value_t)]
        format: Format,
    },
    /// Delete one of your SSH keys: it stops working at once.
    #[command(name = "ssh-key:delete")]
    SshKeyDelete { id: String },
    /// Open a shell, or run a command, in an environment's app (through the SSH
    /// gateway, with `ssh` and your keys; `$GROVE_SSH_COMMAND` replaces `ssh`).
    #[command(name = "environment:ssh", visible_alias = "ssh")]
    Ssh {
        #[command(flatten)]
        target: Target,
        /// The app (default: the environment's only app).
        #[arg(short = 'A', long)]
        app: Option<String>,
        /// The command to run (default: an interactive shell).
        #[arg(last = true)]
        command: Vec<String>,
    },
    /// Copy a local directory into a mount of an environment's app (rsync over the
    /// SSH gateway: only what changed travels).
    #[command(name = "mount:upload")]
    MountUpload {
        #[command(flatten)]
        mount: MountTarget,
        #[arg(long)]
        source: PathBuf,
    },
    /// Copy a mount of an environment's app into a local directory (rsync over the SSH
    /// gateway).
    #[command(name = "mount:download")]
    MountDownload {
        #[command(flatten)]
        mount: MountTarget,
        #[arg(long = "target")]
        target_dir: PathBuf,
    },
    /// List an app's mounts (from its `PLATFORM_APPLICATION`, read over SSH).
    #[command(
        name = "mount:list",
        visible_alias = "mounts",
        after_help = "Columns: path, source, source_path"
    )]
    MountList {
        #[command(flatten)]
        target: Target,
        #[arg(short = 'A', long)]
        app: Option<String>,
        #[arg(long, value_enum, default_value_t)]
        format: Format,
    },
    /// Show an app's relationships (its decoded `PLATFORM_RELATIONSHIPS`, read over SSH).
    #[command(name = "environment:relationships", visible_alias = "relationships")]
    EnvironmentRelationships {
        #[command(flatten)]
        target: Target,
        #[arg(short = 'A', long)]
        app: Option<String>,
        #[arg(long, value_enum, default_value = "yaml")]
        format: Format,
    },
    /// Create a variable of the project or of an environment; active environments it
    /// changes are redeployed.
    #[command(name = "variable:create")]
    VariableCreate {
        #[command(flatten)]
        target: Target,
        /// `project`, or `environment` (default when -e is given).
        #[arg(long, value_enum)]
        level: Option<Level>,
        /// `env:NAME` for the environment variable NAME; any other name goes into
        /// `PLATFORM_VARIABLES`.
        #[arg(long)]
        name: String,
        #[arg(long)]
        value: String,
        #[command(flatten)]
        flags: VariableFlags,
        #[command(flatten)]
        wait: Wait,
        #[arg(long, value_enum, default_value_t)]
        format: Format,
    },
    /// List the project's variables and the environment's (own and inherited).
    #[command(name = "variable:list", visible_aliases = ["variables", "var"])]
    VariableList {
        #[command(flatten)]
        target: Target,
        #[arg(long, value_enum)]
        level: Option<Level>,
        #[arg(long, value_enum, default_value_t)]
        format: Format,
    },
    /// Show one variable (a sensitive value is never shown).
    #[command(name = "variable:get")]
    VariableGet {
        name: String,
        #[command(flatten)]
        target: Target,
        #[arg(long, value_enum)]
        level: Option<Level>,
        /// Print only this property (e.g. `value`).
        #[arg(long)]
        property: Option<String>,
        #[arg(long, value_enum, default_value_t)]
        format: Format,
    },
    /// Change a variable's value or flags.
    #[command(name = "variable:update")]
    VariableUpdate {
        name: String,
        #[command(flatten)]
        target: Target,
        #[arg(long, value_enum)]
        level: Option<Level>,
        #[arg(long)]
        value: Option<String>,
        #[command(flatten)]
        flags: VariableFlags,
        #[command(flatten)]
        wait: Wait,
        #[arg(long, value_enum, default_value_t)]
        format: Format,
    },
    /// Delete a variable.
    #[command(name = "variable:delete")]
    VariableDelete {
        name: String,
        #[command(flatten)]
        target: Target,
        #[arg(long, value_enum)]
        level: Option<Level>,
        #[command(flatten)]
        wait: Wait,
    },
}

#[derive(Clone, Copy, ValueEnum, PartialEq, Eq)]
pub enum Level {
    Project,
    Environment,
}

/// A variable's flags, each `--flag` (true) or `--flag true|false`; left out, the
/// server's default (create) or the current value (update).
#[derive(Args, Clone)]
pub struct VariableFlags {
    /// The value is JSON (decoded in `PLATFORM_VARIABLES`).
    #[arg(long, num_args = 0..=1, default_missing_value = "true")]
    json: Option<bool>,
    /// Never show the value again (cannot be undone).
    #[arg(long, num_args = 0..=1, default_missing_value = "true")]
    sensitive: Option<bool>,
    /// Visible to the build hook (default true); a change rebuilds.
    #[arg(long, num_args = 0..=1, default_missing_value = "true")]
    visible_build: Option<bool>,
    /// Visible to the running app (default true).
    #[arg(long, num_args = 0..=1, default_missing_value = "true")]
    visible_runtime: Option<bool>,
    /// Environment level: child environments inherit it (default true).
    #[arg(long, num_args = 0..=1, default_missing_value = "true")]
    inheritable: Option<bool>,
    #[arg(long, num_args = 0..=1, default_missing_value = "true")]
    enabled: Option<bool>,
}

struct Api {
    base: String,
    token: String,
    http: reqwest::Client,
}

impl Api {
    fn from_env() -> anyhow::Result<Api> {
        let base = std::env::var("GROVE_URL").unwrap_or_else(|_| "http://127.0.0.1:8022".into());
        let token = match std::env::var("GROVE_TOKEN") {
            Ok(token) => token,
            Err(_) => {
                let path = PathBuf::from("grove-data").join("admin-token");
                std::fs::read_to_string(&path)
                    .with_context(|| {
                        format!(
                            "no API token: set GROVE_TOKEN, or run from the directory holding {}",
                            path.display()
                        )
                    })?
                    .trim()
                    .to_string()
            }
        };
        Ok(Api {
            base: base.trim_end_matches('/').to_string(),
            token,
            http: reqwest::Client::new(),
        })
    }

    fn url(&self, template: &str, params: &[(&str, &str)]) -> String {
        let mut path = template.to_string();
        for (name, value) in params {
            path = path.replace(&format!("{{{name}}}"), &encode_segment(value));
        }
        format!("{}{path}", self.base)
    }

    async fn send(&self, request: reqwest::RequestBuilder) -> anyhow::Result<reqwest::Response> {
        let response = request
            .bearer_auth(&self.token)
            .header(
                grove_api::CLIENT_HEADER,
                concat!("grove-cli/", env!("CARGO_PKG_VERSION")),
            )
            .send()
            .await
            .map_err(|e| anyhow::Error::new(e).context(Unreachable(self.base.clone())))?;
        if response.status().is_success() {
            return Ok(response);
        }
        let status = response.status();
        let text = response.text().await.unwrap_or_default();
        let message = serde_json::from_str::<grove_api::ErrorBody>(&text)
            .map(|e| e.error.message)
            .unwrap_or(text);
        if status.is_client_error() {
            return Err(Refused {
                message,
                status: status.as_u16(),
            }
            .into());
        }
        bail!("{message} (HTTP {})", status.as_u16())
    }

    async fn get<T: serde::de::DeserializeOwned>(&self, url: String) -> anyhow::Result<T> {
        Ok(self.send(self.http.get(url)).await?.json().await?)
    }

    async fn project(&self, target: &Target) -> anyhow::Result<String> {
        if let Some(p) = &target.project {
            return Ok(p.clone());
        }
        if let Some(p) = crate::checkout::project() {
            return Ok(p);
        }
        let projects: Vec<Project> = self.get(self.url(grove_api::paths::PROJECTS, &[])).await?;
        match projects.as_slice() {
            [only] => Ok(only.id.clone()),
            [] => bail!("no projects yet: create one with `grove project:create NAME`"),
            _ => bail!(
                "several projects exist ({}): choose one with -p",
                projects
                    .iter()
                    .map(|p| p.id.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        }
    }

    /// Deletes one of the caller's own things (an API token, an SSH key) by id.
    async fn delete_mine(
        &self,
        path: &str,
        param: &str,
        id: &str,
        what: &str,
    ) -> anyhow::Result<()> {
        self.send(self.http.delete(self.url(path, &[(param, id)])))
            .await?;
        outln!("Deleted {what} {id}.");
        Ok(())
    }

    /// The project and environment name a command acts on.
    async fn environment(&self, target: &Target) -> anyhow::Result<(String, String)> {
        let project = self.project(target).await?;
        if let Some(env) = &target.environment {
            return Ok((project, env.clone()));
        }
        // Inside a checkout of this project: its branch.
        if crate::checkout::project().as_deref() == Some(project.as_str())
            && let Some(branch) = crate::checkout::branch()
        {
            return Ok((project, branch));
        }
        let p: Project = self
            .get(self.url(grove_api::paths::PROJECT, &[("project", &project)]))
            .await?;
        match p.default_branch {
            Some(branch) => Ok((project, branch)),
            None => bail!("project `{project}` has no environments yet: push a branch first"),
        }
    }

    /// Streams an activity's log to stderr (it is progress) until it completes;
    /// returns its result.
    async fn follow(&self, project: &str, id: &str) -> anyhow::Result<bool> {
        let progress = crate::output::Progress::start(&format!("activity {id}"));
        let seal = self.log(project, id, true, &mut progress.writer()).await;
        progress.finish();
        let seal = seal?;
        Ok(seal.result.as_deref() == Some("success"))
    }

    /// Writes an activity's log to `out`: until it completes (`follow`), or what it
    /// holds now.
    async fn log(
        &self,
        project: &str,
        id: &str,
        follow: bool,
        out: &mut dyn Write,
    ) -> anyhow::Result<grove_api::LogSeal> {
        let url = self.url(
            grove_api::paths::ACTIVITY_LOG,
            &[("project", project), ("activity", id)],
        );
        let response = self
            .send(self.http.get(url).query(&[("follow", follow.to_string())]))
            .await?;
        let mut stream = response.bytes_stream();
        let mut buffer = Vec::new();
        while let Some(chunk) = stream.next().await {
            buffer.extend_from_slice(&chunk?);
            while let Some(end) = buffer.iter().position(|b| *b == b'\n') {
                let line: Vec<u8> = buffer.drain(..=end).collect();
                match serde_json::from_slice::<LogEvent>(&line) {
                    Ok(LogEvent::Line(l)) => {
                        writeln!(out, "{}", l.message)?;
                    }
                    Ok(LogEvent::Seal(seal)) => {
                        out.flush()?;
                        return Ok(seal);
                    }
                    Err(_) => {}
                }
            }
        }
        bail!("the log stream of activity {id} ended early")
    }

    /// Runs an operation that returns an activity, waiting for it unless told not to.
    async fn operate(
        &self,
        project: &str,
        request: reqwest::RequestBuilder,
        wait: &Wait,
    ) -> anyhow::Result<ExitCode> {
        let activity: Activity = self.send(request).await?.json().await?;
        if wait.no_wait {
            outln!("{}", activity.id);
            return Ok(ExitCode::SUCCESS);
        }
        eprintln!("Activity {} ({})", activity.id, activity.description);
        Ok(if self.follow(project, &activity.id).await? {
            ExitCode::SUCCESS
        } else {
            eprintln!(
                "The activity failed: see `grove activity:log {}`",
                activity.id
            );
            ExitCode::FAILURE
        })
    }
}

/// Percent-encodes one path segment (branch names may contain `/`).
fn encode_segment(value: &str) -> String {
    let mut out = String::new();
    for b in value.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// How to reach an environment's app through the SSH gateway: the `ssh` command
/// (`$GROVE_SSH_COMMAND` or `ssh`, with the port) and `<login>@<host>`.
struct SshTarget {
    /// The ssh program and its options, port included.
    ssh: Vec<String>,
    destination: String,
}

impl SshTarget {
    async fn of(api: &Api, target: &Target, app: Option<&str>) -> anyhow::Result<SshTarget> {
        let gateway: grove_api::SshGateway =
            api.get(api.url(grove_api::paths::SSH_GATEWAY, &[])).await?;
        let Some(address) = gateway.address else {
            bail!("this grove server runs no SSH gateway (its --ssh-listen is off or failed)");
        };
        let address: std::net::SocketAddr = address
            .parse()
            .with_context(|| format!("the server's SSH address `{address}`"))?;
        let (project, env) = api.environment(target).await?;
        let info: Environment = api
            .get(api.url(
                grove_api::paths::ENVIRONMENT,
                &[("project", &project), ("environment", &env)],
            ))
            .await?;
        let mut login = format!("{project}-{}", info.machine_name);
        if let Some(app) = app {
            login = format!("{login}--{app}");
        }
        let command = std::env::var("GROVE_SSH_COMMAND").unwrap_or_else(|_| "ssh".into());
        let mut ssh: Vec<String> = command.split_whitespace().map(String::from).collect();
        if ssh.is_empty() {
            ssh.push("ssh".into());
        }
        ssh.extend(["-p".to_string(), address.port().to_string()]);
        Ok(SshTarget {
            ssh,
            destination: format!("{login}@{}", address.ip()),
        })
    }

    /// `ssh … <login>@<host> [-t] [-- COMMAND]`.
    fn command(&self, command: &[String], tty: bool) -> std::process::Command {
        let mut cmd = std::process::Command::new(&self.ssh[0]);
        cmd.args(&self.ssh[1..]);
        if tty {
            cmd.arg("-t");
        }
        cmd.arg(&self.destination);
        if !command.is_empty() {
            // ssh joins its arguments with spaces into one command line, run by bash.
            cmd.arg("--").arg(command.join(" "));
        }
        cmd
    }

    /// `rsync -a -s -e 'ssh …' FROM TO`, `remote` naming a path in the app.
    fn rsync(&self, from: &str, to: &str) -> std::process::Command {
        let mut cmd = std::process::Command::new("rsync");
        cmd.args(["--archive", "--compress", "--protect-args", "-e"])
            .arg(self.ssh.join(" "))
            .arg(from.replace("{remote}", &format!("{}:", self.destination)))
            .arg(to.replace("{remote}", &format!("{}:", self.destination)));
        cmd
    }
}

/// An ssh or rsync child's exit status as ours.
fn exit_code(status: std::process::ExitStatus) -> ExitCode {
    ExitCode::from(
        status
            .code()
            .and_then(|c| u8::try_from(c).ok())
            .unwrap_or(255),
    )
}

/// `/app/<mount>/` for a mount's path as `.platform.app.yaml` names it (`var`,
/// `/web/media`).
fn mount_dir(mount: &str) -> anyhow::Result<String> {
    let path = mount.trim_matches('/');
    let valid = !path.is_empty()
        && path.split('/').all(|part| {
            !part.is_empty()
                && part != "."
                && part != ".."
                && part
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
        });
    if !valid {
        bail!("`{mount}` is not a mount path (e.g. `var` or `web/media`)");
    }
    Ok(format!("/app/{path}/"))
}

pub async fn run(client: Client) -> anyhow::Result<ExitCode> {
    let api = Api::from_env()?;
    match client {
        Client::ProjectCreate {
            name,
            title,
            plan,
            integration_environments,
            no_development_crons,
            format,
        } => {
            let body = grove_api::CreateProject {
                name,
                title,
                plan,
                integration_environments,
                development_crons: Some(!no_development_crons),
            };
            let project: Project = api
                .send(
                    api.http
                        .post(api.url(grove_api::paths::PROJECTS, &[]))
                        .json(&body),
                )
                .await?
                .json()
                .await?;
            if matches!(format, Format::Table) {
                outln!("Created project `{}`.", project.id);
                outln!("Push to it:  git push {} main", project.git_url);
                outln!("(user: anything, password: an API token)");
            } else {
                print_value(&project, format)?;
            }
        }
        Client::ProjectList { format } => {
            let projects: Vec<Project> = api.get(api.url(grove_api::paths::PROJECTS, &[])).await?;
            print_rows(
                &projects,
                format,
                &["ID", "TITLE", "DEFAULT BRANCH", "GIT URL"],
                |p| {
                    vec![
                        p.id.clone(),
                        p.title.clone(),
                        p.default_branch.clone().unwrap_or_default(),
                        p.git_url.clone(),
                    ]
                },
            )?;
        }
        Client::RuntimeList { format } => {
            let runtimes: Vec<grove_api::Runtime> =
                api.get(api.url(grove_api::paths::RUNTIMES, &[])).await?;
            print_rows(
                &runtimes,
                format,
                &["TYPE", "VERSION", "STATUS", "SOURCE"],
                |r| {
                    vec![
                        r.kind.clone(),
                        r.full_version.clone(),
                        r.status.clone(),
                        match &r.release {
                            Some(release) => format!("{} {release}", r.source),
                            None => r.source.clone(),
                        },
                    ]
                },
            )?;
        }
        Client::RuntimeInstall { kind } => {
            let response = api
                .send(
                    api.http
                        .post(api.url(grove_api::paths::RUNTIMES_INSTALL, &[]))
                        .json(&grove_api::InstallRuntime { kind: kind.clone() }),
                )
                .await?;
            let mut stream = response.bytes_stream();
            let mut buffer = Vec::new();
            let progress = crate::output::Progress::start(&format!("runtime {kind}"));
            let mut stderr = progress.writer();
            while let Some(chunk) = stream.next().await {
                buffer.extend_from_slice(&chunk?);
                while let Some(end) = buffer.iter().position(|b| *b == b'\n') {
                    let line: Vec<u8> = buffer.drain(..=end).collect();
                    let Ok(event) = serde_json::from_slice::<grove_api::RuntimeInstallEvent>(&line)
                    else {
                        continue;
                    };
                    if let Some(message) = &event.message {
                        writeln!(stderr, "{message}")?;
                    }
                    if event.done {
                        return match event.error {
                            None => {
                                outln!("Runtime `{kind}` is installed.");
                                Ok(ExitCode::SUCCESS)
                            }
                            Some(error) => bail!("{error}"),
                        };
                    }
                }
            }
            bail!("the server stopped answering before `{kind}` was installed");
        }
        Client::EnvironmentList { target, format } => {
            let project = api.project(&target).await?;
            let envs: Vec<Environment> = api
                .get(api.url(grove_api::paths::ENVIRONMENTS, &[("project", &project)]))
                .await?;
            print_rows(
                &envs,
                format,
                &["ID", "MACHINE NAME", "TYPE", "STATUS", "PARENT", "URL"],
                |e| {
                    vec![
                        e.id.clone(),
                        e.machine_name.clone(),
                        e.kind.clone(),
                        e.status.clone(),
                        e.parent.clone().unwrap_or_default(),
                        e.primary_url.clone().unwrap_or_default(),
                    ]
                },
            )?;
        }
        Client::EnvironmentInfo {
            target,
            property: Some(property),
            value: Some(value),
            format,
        } => {
            let (project, env) = api.environment(&target).await?;
            let url = api.url(
                grove_api::paths::ENVIRONMENT,
                &[("project", &project), ("environment", &env)],
            );
            let body = grove_api::UpdateEnvironment {
                property: property.clone(),
                value,
            };
            let info: Environment = api
                .send(api.http.patch(url).json(&body))
                .await?
                .json()
                .await?;
            match format {
                Format::Table => {
                    let shown = serde_json::to_value(&info)?;
                    outln!(
                        "{property}: {}",
                        match &shown[&property] {
                            serde_json::Value::String(s) => s.clone(),
                            serde_json::Value::Null => String::new(),
                            other => other.to_string(),
                        }
                    );
                }
                _ => print_value(&info, format)?,
            }
        }
        Client::EnvironmentInfo {
            target,
            property,
            value: None,
            format,
        } => {
            let (project, env) = api.environment(&target).await?;
            let info: Environment = api
                .get(api.url(
                    grove_api::paths::ENVIRONMENT,
                    &[("project", &project), ("environment", &env)],
                ))
                .await?;
            let value = serde_json::to_value(&info)?;
            match property {
                Some(name) => match value.get(&name) {
                    Some(serde_json::Value::String(s)) => outln!("{s}"),
                    Some(other) => outln!("{other}"),
                    None => bail!("environments have no property `{name}`"),
                },
                None => match format {
                    Format::Table => {
                        if let serde_json::Value::Object(map) = value {
                            for (key, value) in map {
                                let shown = match value {
                                    serde_json::Value::String(s) => s,
                                    serde_json::Value::Null => String::new(),
                                    other => other.to_string(),
                                };
                                outln!("{key:<28} {shown}");
                            }
                        }
                    }
                    _ => print_value(&info, format)?,
                },
            }
        }
        Client::EnvironmentInfo { value: Some(_), .. } => {
            bail!("give the property to set before its value");
        }
        Client::EnvironmentBranch {
            name,
            parent,
            project,
            environment,
            kind,
            title,
            no_clone_parent,
            wait,
        } => {
            let target = Target {
                project,
                environment: parent.or(environment),
            };
            let (project, parent) = api.environment(&target).await?;
            let url = api.url(
                grove_api::paths::ENVIRONMENT_BRANCH,
                &[("project", &project), ("environment", &parent)],
            );
            let body = grove_api::BranchEnvironment {
                name,
                title,
                kind,
                clone_parent: !no_clone_parent,
            };
            return api
                .operate(&project, api.http.post(url).json(&body), &wait)
                .await;
        }
        Client::EnvironmentSynchronize {
            target,
            what,
            rebase,
            wait,
        } => {
            let (project, env) = api.environment(&target).await?;
            if what.iter().any(|w| w == "data") {
                confirm(&format!(
                    "Replace the data of environment `{env}` of project `{project}` with its parent's?"
                ))?;
            }
            let url = api.url(
                grove_api::paths::ENVIRONMENT_SYNCHRONIZE,
                &[("project", &project), ("environment", &env)],
            );
            let body = grove_api::SynchronizeEnvironment {
                synchronize_code: what.iter().any(|w| w == "code"),
                synchronize_data: what.iter().any(|w| w == "data"),
                rebase,
            };
            return api
                .operate(&project, api.http.post(url).json(&body), &wait)
                .await;
        }
        Client::BackupCreate { target, live, wait } => {
            let (project, env) = api.environment(&target).await?;
            let url = api.url(
                grove_api::paths::ENVIRONMENT_BACKUPS,
                &[("project", &project), ("environment", &env)],
            );
            let body = grove_api::CreateBackup { live };
            return api
                .operate(&project, api.http.post(url).json(&body), &wait)
                .await;
        }
        Client::BackupList { target, format } => {
            let (project, env) = api.environment(&target).await?;
            let backups: Vec<grove_api::Backup> = api
                .get(api.url(
                    grove_api::paths::ENVIRONMENT_BACKUPS,
                    &[("project", &project), ("environment", &env)],
                ))
                .await?;
            print_rows(
                &backups,
                format,
                &[
                    "ID",
                    "CREATED",
                    "STATUS",
                    "CONSISTENCY",
                    "PAUSE MS",
                    "SIZE",
                    "REASON",
                ],
                |b| {
                    vec![
                        b.id.clone(),
                        b.created_at.clone(),
                        b.status.clone(),
                        b.consistency.clone(),
                        b.pause_ms.map(|p| p.to_string()).unwrap_or_default(),
                        b.size.map(|s| s.to_string()).unwrap_or_default(),
                        b.reason.clone().unwrap_or_default(),
                    ]
                },
            )?;
        }
        Client::BackupGet { id, target, format } => {
            let (project, env) = api.environment(&target).await?;
            let backup: grove_api::Backup = api
                .get(api.url(
                    grove_api::paths::ENVIRONMENT_BACKUP,
                    &[
                        ("project", &project),
                        ("environment", &env),
                        ("backup", &id),
                    ],
                ))
                .await?;
            print_value(&backup, format)?;
        }
        Client::BackupVerify { id, target, wait } => {
            let (project, env) = api.environment(&target).await?;
            let url = api.url(
                grove_api::paths::ENVIRONMENT_BACKUP_VERIFY,
                &[
                    ("project", &project),
                    ("environment", &env),
                    ("backup", &id),
                ],
            );
            return api.operate(&project, api.http.post(url), &wait).await;
        }
        Client::BackupPolicy {
            kind,
            project,
            manual,
            tiers,
            reset,
            format,
        } => {
            let project = api
                .project(&Target {
                    project,
                    environment: None,
                })
                .await?;
            let url = api.url(
                grove_api::paths::BACKUP_POLICY,
                &[("project", &project), ("environment_type", &kind)],
            );
            let current: grove_api::BackupPolicy = api.get(url.clone()).await?;
            let shown: grove_api::BackupPolicy = if reset {
                api.send(api.http.delete(url)).await?.json().await?
            } else if manual.is_some() || !tiers.is_empty() {
                let mut policy = current.policy.clone();
                if let Some(manual) = manual {
                    policy["manual"] = manual.into();
                }
                if !tiers.is_empty() {
                    let mut list = Vec::new();
                    for tier in &tiers {
                        let Some((every, keep)) = tier.split_once(':') else {
                            bail!("`--tier {tier}`: write EVERY:KEEP, e.g. 1h:72");
                        };
                        let keep: u32 = keep
                            .parse()
                            .with_context(|| format!("`--tier {tier}`: KEEP is a number"))?;
                        list.push(serde_json::json!({"every": every, "keep": keep}));
                    }
                    policy["tiers"] = list.into();
                }
                api.send(api.http.put(url).json(&policy))
                    .await?
                    .json()
                    .await?
            } else {
                current
            };
            match format {
                Format::Table => {
                    let policy = &shown.policy;
                    outln!(
                        "{} backups of project `{project}`{}:",
                        shown.environment_type,
                        if shown.default {
                            " (Grove's default)"
                        } else {
                            ""
                        }
                    );
                    outln!("  manual: the {} newest kept", policy["manual"]);
                    for tier in policy["tiers"].as_array().into_iter().flatten() {
                        outln!(
                            "  automatic: the first of every {} kept, {} of them",
                            tier["every"].as_str().unwrap_or("?"),
                            tier["keep"]
                        );
                    }
                }
                _ => print_value(&shown, format)?,
            }
        }
        Client::BackupDelete { id, target, wait } => {
            let (project, env) = api.environment(&target).await?;
            confirm(&format!(
                "Delete backup {id} of environment `{env}` of project `{project}`?"
            ))?;
            let url = api.url(
                grove_api::paths::ENVIRONMENT_BACKUP,
                &[
                    ("project", &project),
                    ("environment", &env),
                    ("backup", &id),
                ],
            );
            return api.operate(&project, api.http.delete(url), &wait).await;
        }
        Client::BackupRestore {
            id,
            project,
            environment,
            branch_from,
            no_code,
            wait,
        } => {
            let project = api
                .project(&Target {
                    project,
                    environment: None,
                })
                .await?;
            confirm(&format!(
                "Restore backup {id} of project `{project}` into {} (its data{} replaced)?",
                match &environment {
                    Some(env) => format!("environment `{env}`"),
                    None => "its environment".to_owned(),
                },
                if no_code { " is" } else { " and code are" }
            ))?;
            let url = api.url(
                grove_api::paths::BACKUP_RESTORE,
                &[("project", &project), ("backup", &id)],
            );
            let body = grove_api::RestoreBackup {
                environment,
                branch_from,
                no_code,
            };
            return api
                .operate(&project, api.http.post(url).json(&body), &wait)
                .await;
        }
        Client::DbDump {
            target,
            relationship,
            schema,
            gzip,
            stdout,
            file,
        } => {
            let (project, env) = api.environment(&target).await?;
            let url = api.url(
                grove_api::paths::ENVIRONMENT_DB_DUMP,
                &[("project", &project), ("environment", &env)],
            );
            let query = grove_api::DumpQuery {
                relationship,
                schema,
                gzip,
            };
            let response = api.send(api.http.get(url).query(&query)).await?;
            // The server names the dump after what it dumped.
            let suggested = response
                .headers()
                .get(reqwest::header::CONTENT_DISPOSITION)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.split("filename=\"").nth(1))
                .map(|v| v.trim_end_matches('"').to_string())
                .filter(|v| !v.contains('/') && !v.starts_with('.'));
            let mut out: Box<dyn Write> = if stdout {
                Box::new(std::io::stdout().lock())
            } else {
                let path = file
                    .or_else(|| suggested.map(PathBuf::from))
                    .unwrap_or_else(|| PathBuf::from(format!("{project}--{env}--dump.sql")));
                eprintln!("Writing the dump to {}", path.display());
                Box::new(
                    std::fs::File::create(&path)
                        .with_context(|| format!("cannot create {}", path.display()))?,
                )
            };
            let mut stream = response.bytes_stream();
            let mut bytes = 0u64;
            while let Some(chunk) = stream.next().await {
                let chunk = chunk.context("the dump ended early")?;
                bytes += chunk.len() as u64;
                out.write_all(&chunk)?;
            }
            out.flush()?;
            eprintln!("Dumped {bytes} bytes.");
        }
        Client::EnvironmentMerge { target, wait } => {
            return env_action(&api, &target, "merge", &wait).await;
        }
        Client::EnvironmentActivate { target, wait } => {
            return env_action(&api, &target, "activate", &wait).await;
        }
        Client::EnvironmentDeactivate { target, wait } => {
            return env_action(&api, &target, "deactivate", &wait).await;
        }
        Client::EnvironmentHttpAccess {
            target,
            auth,
            access,
            enabled,
        } => {
            let (project, env) = api.environment(&target).await?;
            let url = api.url(
                grove_api::paths::ENVIRONMENT_HTTP_ACCESS,
                &[("project", &project), ("environment", &env)],
            );
            let settings: grove_api::HttpAccess =
                if auth.is_empty() && access.is_empty() && enabled.is_none() {
                    api.get(url).await?
                } else {
                    let change = http_access_change(&auth, &access, enabled.as_deref())?;
                    api.send(api.http.patch(url).json(&change))
                        .await?
                        .json()
                        .await?
                };
            outln!("{}", serde_json::to_string_pretty(&settings)?);
        }
        Client::CacheClear { target } => {
            let (project, env) = api.environment(&target).await?;
            let url = api.url(
                grove_api::paths::ENVIRONMENT_CACHE_CLEAR,
                &[("project", &project), ("environment", &env)],
            );
            let cleared: grove_api::CacheCleared =
                api.send(api.http.post(url)).await?.json().await?;
            eprintln!(
                "Cleared {} cached responses of {project}/{env}.",
                cleared.cleared
            );
        }
        Client::EnvironmentRedeploy { target, wait } => {
            return env_action(&api, &target, "redeploy", &wait).await;
        }
        Client::EnvironmentDelete {
            target,
            delete_branch,
            wait,
        } => {
            let (project, env) = api.environment(&target).await?;
            confirm(&format!(
                "Delete environment `{env}` of project `{project}`{}?",
                if delete_branch { " and its branch" } else { "" }
            ))?;
            let url = api.url(
                grove_api::paths::ENVIRONMENT,
                &[("project", &project), ("environment", &env)],
            );
            let request = api
                .http
                .delete(url)
                .query(&[("delete_branch", delete_branch.to_string())]);
            return api.operate(&project, request, &wait).await;
        }
        Client::EnvironmentUrl {
            target,
            primary,
            pipe,
        } => {
            let (env, routes) = environment_routes(&api, &target).await?;
            let urls: Vec<&Route> = routes.iter().filter(|r| !primary || r.primary).collect();
            if urls.is_empty() {
                bail!("environment `{env}` serves no URLs (is it active and deployed?)");
            }
            for route in urls {
                if pipe {
                    outln!("{}", route.url);
                } else {
                    let marker = if route.primary { " (primary)" } else { "" };
                    outln!("{}{marker}", route.url);
                }
            }
        }
        Client::ActivityList {
            target,
            all,
            limit,
            state,
            format,
        } => {
            let project = api.project(&target).await?;
            let mut query = vec![("limit", limit.to_string())];
            if let Some(state) = state {
                query.push(("state", state));
            }
            if !all && let Some(env) = &target.environment {
                query.push(("environment", env.clone()));
            }
            let activities: Vec<Activity> = api
                .send(
                    api.http
                        .get(api.url(grove_api::paths::ACTIVITIES, &[("project", &project)]))
                        .query(&query),
                )
                .await?
                .json()
                .await?;
            print_rows(
                &activities,
                format,
                &[
                    "ID",
                    "CREATED",
                    "DESCRIPTION",
                    "STATE",
                    "RESULT",
                    "ENVIRONMENT",
                ],
                |a| {
                    vec![
                        a.id.clone(),
                        a.created_at.clone(),
                        a.description.clone(),
                        a.state.clone(),
                        a.result.clone().unwrap_or_default(),
                        a.environment.clone().unwrap_or_default(),
                    ]
                },
            )?;
        }
        Client::UserAdd {
            email,
            project,
            roles,
            format,
        } => {
            let project = api
                .project(&Target {
                    project,
                    environment: None,
                })
                .await?;
            let (role, environment_types) = parse_roles(&roles)?;
            let body = grove_api::AddProjectUser {
                email,
                role,
                environment_types,
            };
            let user: grove_api::ProjectUser = api
                .send(
                    api.http
                        .post(api.url(grove_api::paths::PROJECT_USERS, &[("project", &project)]))
                        .json(&body),
                )
                .await?
                .json()
                .await?;
            match format {
                Format::Table => {
                    outln!("Added `{}` to project `{project}`.", user.email);
                    print_user(&user)?;
                    if let Some(token) = &user.token {
                        outln!("New user: its API token (shown only now) is\n{token}");
                    }
                }
                _ => print_value(&user, format)?,
            }
        }
        Client::UserList { project, format } => {
            let project = api
                .project(&Target {
                    project,
                    environment: None,
                })
                .await?;
            let users: Vec<grove_api::ProjectUser> = api
                .get(api.url(grove_api::paths::PROJECT_USERS, &[("project", &project)]))
                .await?;
            print_rows(
                &users,
                format,
                &["EMAIL", "ROLE", "ENVIRONMENT TYPES"],
                |u| vec![u.email.clone(), u.role.clone(), type_roles(u)],
            )?;
        }
        Client::UserGet {
            email,
            project,
            format,
        } => {
            let project = api
                .project(&Target {
                    project,
                    environment: None,
                })
                .await?;
            let user: grove_api::ProjectUser = api
                .get(api.url(
                    grove_api::paths::PROJECT_USER,
                    &[("project", &project), ("user", &email)],
                ))
                .await?;
            match format {
                Format::Table => print_user(&user)?,
                _ => print_value(&user, format)?,
            }
        }
        Client::UserUpdate {
            email,
            project,
            roles,
            format,
        } => {
            let project = api
                .project(&Target {
                    project,
                    environment: None,
                })
                .await?;
            let (role, environment_types) = parse_roles(&roles)?;
            let body = grove_api::UpdateProjectUser {
                role,
                environment_types,
            };
            let user: grove_api::ProjectUser = api
                .send(
                    api.http
                        .patch(api.url(
                            grove_api::paths::PROJECT_USER,
                            &[("project", &project), ("user", &email)],
                        ))
                        .json(&body),
                )
                .await?
                .json()
                .await?;
            match format {
                Format::Table => print_user(&user)?,
                _ => print_value(&user, format)?,
            }
        }
        Client::UserDelete { email, project } => {
            let project = api
                .project(&Target {
                    project,
                    environment: None,
                })
                .await?;
            confirm(&format!(
                "Take the access of `{email}` to project `{project}` away?"
            ))?;
            api.send(api.http.delete(api.url(
                grove_api::paths::PROJECT_USER,
                &[("project", &project), ("user", &email)],
            )))
            .await?;
            outln!("Removed `{email}` from project `{project}`.");
        }
        Client::TokenCreate { name, format } => {
            let token: grove_api::Token = api
                .send(
                    api.http
                        .post(api.url(grove_api::paths::TOKENS, &[]))
                        .json(&grove_api::CreateToken { name }),
                )
                .await?
                .json()
                .await?;
            match format {
                Format::Table => {
                    eprintln!(
                        "Created API token {} (`{}`); it is shown only now:",
                        token.id, token.name
                    );
                    outln!("{}", token.token.unwrap_or_default());
                }
                _ => print_value(&token, format)?,
            }
        }
        Client::TokenList { format } => {
            let tokens: Vec<grove_api::Token> =
                api.get(api.url(grove_api::paths::TOKENS, &[])).await?;
            print_rows(&tokens, format, &["ID", "NAME", "CREATED"], |t| {
                vec![t.id.to_string(), t.name.clone(), t.created_at.clone()]
            })?;
        }
        Client::TokenDelete { id } => {
            api.delete_mine(grove_api::paths::TOKEN, "token", &id, "API token")
                .await?;
        }
        Client::SshKeyAdd { file, name } => {
            let path = match file {
                Some(file) => file,
                None => PathBuf::from(std::env::var("HOME").unwrap_or_default())
                    .join(".ssh/id_ed25519.pub"),
            };
            let key = if path.as_os_str() == "-" {
                std::io::read_to_string(std::io::stdin()).context("reading the key from stdin")?
            } else {
                std::fs::read_to_string(&path)
                    .with_context(|| format!("reading {}", path.display()))?
            };
            let key: grove_api::SshKey = api
                .send(
                    api.http
                        .post(api.url(grove_api::paths::SSH_KEYS, &[]))
                        .json(&grove_api::AddSshKey { key, title: name }),
                )
                .await?
                .json()
                .await?;
            outln!(
                "Added SSH key {} ({} {}).",
                key.id,
                key.key_type,
                key.fingerprint
            );
        }
        Client::SshKeyList { format } => {
            let keys: Vec<grove_api::SshKey> =
                api.get(api.url(grove_api::paths::SSH_KEYS, &[])).await?;
            print_rows(
                &keys,
                format,
                &["ID", "TITLE", "TYPE", "FINGERPRINT", "CREATED"],
                |k| {
                    vec![
                        k.id.to_string(),
                        k.title.clone(),
                        k.key_type.clone(),
                        k.fingerprint.clone(),
                        k.created_at.clone(),
                    ]
                },
            )?;
        }
        Client::SshKeyDelete { id } => {
            api.delete_mine(grove_api::paths::SSH_KEY, "key", &id, "SSH key")
                .await?;
        }
        Client::Ssh {
            target,
            app,
            command,
        } => {
            let ssh = SshTarget::of(&api, &target, app.as_deref()).await?;
            let tty = command.is_empty() && std::io::IsTerminal::is_terminal(&std::io::stdin());
            let status = ssh.command(&command, tty).status().context("running ssh")?;
            return Ok(exit_code(status));
        }
        Client::MountUpload { mount, source } => {
            let ssh = SshTarget::of(&api, &mount.target, mount.app.as_deref()).await?;
            let from = format!("{}/", source.display());
            let to = format!("{{remote}}{}", mount_dir(&mount.mount)?);
            let status = ssh.rsync(&from, &to).status().context("running rsync")?;
            return Ok(exit_code(status));
        }
        Client::MountDownload { mount, target_dir } => {
            let ssh = SshTarget::of(&api, &mount.target, mount.app.as_deref()).await?;
            std::fs::create_dir_all(&target_dir)
                .with_context(|| format!("creating {}", target_dir.display()))?;
            let from = format!("{{remote}}{}", mount_dir(&mount.mount)?);
            let to = format!("{}/", target_dir.display());
            let status = ssh.rsync(&from, &to).status().context("running rsync")?;
            return Ok(exit_code(status));
        }
        Client::EnvironmentRelationships {
            target,
            app,
            format,
        } => {
            let ssh = SshTarget::of(&api, &target, app.as_deref()).await?;
            let relationships = match platform_json(&ssh, "PLATFORM_RELATIONSHIPS")? {
                Ok(value) => value,
                Err(code) => return Ok(code),
            };
            print_value(&relationships, format)?;
        }
        Client::MountList {
            target,
            app,
            format,
        } => {
            let ssh = SshTarget::of(&api, &target, app.as_deref()).await?;
            let application = match platform_json(&ssh, "PLATFORM_APPLICATION")? {
                Ok(value) => value,
                Err(code) => return Ok(code),
            };
            let mounts: Vec<(String, serde_json::Value)> = application["mounts"]
                .as_object()
                .map(|m| m.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
                .unwrap_or_default();
            let text = |v: &serde_json::Value, key: &str| {
                v[key].as_str().map(str::to_owned).unwrap_or_default()
            };
            print_rows(
                &mounts,
                format,
                &["PATH", "SOURCE", "SOURCE PATH"],
                |(path, m)| vec![path.clone(), text(m, "source"), text(m, "source_path")],
            )?;
        }
        Client::VariableCreate {
            target,
            level,
            name,
            value,
            flags,
            wait,
            format,
        } => {
            let (project, env) = variable_scope(&api, &target, level).await?;
            let body = grove_api::CreateVariable {
                name,
                value,
                is_json: flags.json,
                is_sensitive: flags.sensitive,
                is_enabled: flags.enabled,
                is_inheritable: flags.inheritable,
                visible_build: flags.visible_build,
                visible_runtime: flags.visible_runtime,
            };
            let url = variables_url(&api, &project, env.as_deref(), None);
            let change: grove_api::VariableChange = api
                .send(api.http.post(url).json(&body))
                .await?
                .json()
                .await?;
            return variable_changed(&api, &project, change, "Created", &wait, format).await;
        }
        Client::VariableList {
            target,
            level,
            format,
        } => {
            let project = api.project(&target).await?;
            let mut rows: Vec<grove_api::Variable> = Vec::new();
            if level != Some(Level::Environment) {
                rows.extend(
                    api.get::<Vec<grove_api::Variable>>(variables_url(&api, &project, None, None))
                        .await?,
                );
            }
            if level != Some(Level::Project) {
                let env = match &target.environment {
                    Some(env) => Some(env.clone()),
                    None if level == Some(Level::Environment) => {
                        Some(api.environment(&target).await?.1)
                    }
                    None => {
                        api.get::<Project>(
                            api.url(grove_api::paths::PROJECT, &[("project", &project)]),
                        )
                        .await?
                        .default_branch
                    }
                };
                if let Some(env) = env {
                    rows.extend(
                        api.get::<Vec<grove_api::Variable>>(variables_url(
                            &api,
                            &project,
                            Some(&env),
                            None,
                        ))
                        .await?,
                    );
                }
            }
            print_rows(
                &rows,
                format,
                &["NAME", "LEVEL", "VALUE", "ENABLED", "BUILD", "RUNTIME"],
                |v| {
                    vec![
                        v.name.clone(),
                        variable_level(v),
                        shown_value(v),
                        v.is_enabled.to_string(),
                        v.visible_build.to_string(),
                        v.visible_runtime.to_string(),
                    ]
                },
            )?;
        }
        Client::VariableGet {
            name,
            target,
            level,
            property,
            format,
        } => {
            let (project, env) = variable_scope(&api, &target, level).await?;
            let variable: grove_api::Variable = api
                .get(variables_url(&api, &project, env.as_deref(), Some(&name)))
                .await?;
            if let Some(property) = property {
                let json = serde_json::to_value(&variable)?;
                match json.get(&property) {
                    Some(serde_json::Value::String(s)) => outln!("{s}"),
                    Some(serde_json::Value::Null) if property == "value" => {
                        bail!("variable `{name}` is sensitive: its value is never shown")
                    }
                    Some(other) => outln!("{other}"),
                    None => bail!("variables have no property `{property}`"),
                }
            } else {
                match format {
                    Format::Table => print_variable(&variable)?,
                    _ => print_value(&variable, format)?,
                }
            }
        }
        Client::VariableUpdate {
            name,
            target,
            level,
            value,
            flags,
            wait,
            format,
        } => {
            let (project, env) = variable_scope(&api, &target, level).await?;
            let body = grove_api::UpdateVariable {
                value,
                is_json: flags.json,
                is_sensitive: flags.sensitive,
                is_enabled: flags.enabled,
                is_inheritable: flags.inheritable,
                visible_build: flags.visible_build,
                visible_runtime: flags.visible_runtime,
            };
            let url = variables_url(&api, &project, env.as_deref(), Some(&name));
            let change: grove_api::VariableChange = api
                .send(api.http.patch(url).json(&body))
                .await?
                .json()
                .await?;
            return variable_changed(&api, &project, change, "Updated", &wait, format).await;
        }
        Client::VariableDelete {
            name,
            target,
            level,
            wait,
        } => {
            let (project, env) = variable_scope(&api, &target, level).await?;
            confirm(&format!(
                "Delete variable `{name}` of {}?",
                match &env {
                    Some(env) => format!("environment `{env}` of project `{project}`"),
                    None => format!("project `{project}`"),
                }
            ))?;
            let url = variables_url(&api, &project, env.as_deref(), Some(&name));
            let change: grove_api::VariableChange =
                api.send(api.http.delete(url)).await?.json().await?;
            outln!("Deleted variable `{name}`.");
            return variable_changed(&api, &project, change, "Deleted", &wait, Format::Table).await;
        }
        Client::RouteList { target, format } => {
            let routes = environment_routes(&api, &target).await?.1;
            print_rows(
                &routes,
                format,
                &["ROUTE", "TYPE", "TO", "ORIGINAL URL", "ID", "PRIMARY"],
                |r| {
                    vec![
                        r.url.clone(),
                        r.kind.clone(),
                        r.upstream
                            .clone()
                            .or_else(|| r.to.clone())
                            .unwrap_or_default(),
                        r.original_url.clone(),
                        r.id.clone().unwrap_or_default(),
                        r.primary.to_string(),
                    ]
                },
            )?;
        }
        Client::RouteGet {
            route,
            target,
            property,
            format,
        } => {
            let (env, routes) = environment_routes(&api, &target).await?;
            let Some(found) = routes.iter().find(|r| {
                r.url == route || r.original_url == route || r.id.as_deref() == Some(route.as_str())
            }) else {
                bail!("environment `{env}` has no route `{route}`; see `grove route:list`");
            };
            let value = serde_json::to_value(found)?;
            match property {
                Some(name) => match value.get(&name) {
                    Some(serde_json::Value::String(s)) => outln!("{s}"),
                    Some(serde_json::Value::Null) => outln!(""),
                    Some(other) => outln!("{other}"),
                    None => bail!("routes have no property `{name}`"),
                },
                None => print_value(found, format)?,
            }
        }
        Client::EnvironmentLogs {
            target,
            kind,
            app,
            lines,
            tail,
        } => {
            let (project, env) = api.environment(&target).await?;
            let url = api.url(
                grove_api::paths::ENVIRONMENT_LOGS,
                &[
                    ("project", &project),
                    ("environment", &env),
                    ("kind", &kind),
                ],
            );
            let mut query = vec![("lines", lines.to_string()), ("tail", tail.to_string())];
            if let Some(app) = app {
                query.push(("app", app));
            }
            let response = api.send(api.http.get(url).query(&query)).await?;
            let mut stream = response.bytes_stream();
            let mut stdout = std::io::stdout();
            while let Some(chunk) = stream.next().await {
                stdout.write_all(&chunk?)?;
                stdout.flush()?;
            }
        }
        Client::ActivityCancel { target, id } => {
            let project = api.project(&target).await?;
            let activity: Activity = api
                .send(api.http.post(api.url(
                    grove_api::paths::ACTIVITY_CANCEL,
                    &[("project", &project), ("activity", &id)],
                )))
                .await?
                .json()
                .await?;
            eprintln!(
                "Cancelling activity {} ({}).",
                activity.id, activity.description
            );
        }
        Client::ActivityLog {
            target,
            id,
            follow: _,
            no_follow,
        } => {
            let project = api.project(&target).await?;
            let mut stdout = std::io::stdout().lock();
            let seal = api.log(&project, &id, !no_follow, &mut stdout).await?;
            return Ok(match seal.result.as_deref() {
                Some("failure") => ExitCode::FAILURE,
                _ => ExitCode::SUCCESS,
            });
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// An environment's name and its routes.
async fn environment_routes(api: &Api, target: &Target) -> anyhow::Result<(String, Vec<Route>)> {
    let (project, env) = api.environment(target).await?;
    let routes: Vec<Route> = api
        .get(api.url(
            grove_api::paths::ENVIRONMENT_ROUTES,
            &[("project", &project), ("environment", &env)],
        ))
        .await?;
    Ok((env, routes))
}

/// A base64-encoded JSON variable of the app's runtime (`PLATFORM_RELATIONSHIPS`),
/// read over SSH; the exit code of a failed `ssh` (its message already shown).
fn platform_json(
    ssh: &SshTarget,
    name: &str,
) -> anyhow::Result<Result<serde_json::Value, ExitCode>> {
    let out = ssh
        .command(&[format!("echo ${name}")], false)
        .stdin(std::process::Stdio::null())
        .output()
        .context("running ssh")?;
    if !out.status.success() {
        std::io::stderr().write_all(&out.stderr)?;
        return Ok(Err(exit_code(out.status)));
    }
    let encoded = String::from_utf8_lossy(&out.stdout);
    let decoded =
        base64::engine::Engine::decode(&base64::engine::general_purpose::STANDARD, encoded.trim())
            .with_context(|| format!("{name} is not base64"))?;
    Ok(Ok(
        serde_json::from_slice(&decoded).with_context(|| format!("{name} is not JSON"))?
    ))
}

async fn env_action(
    api: &Api,
    target: &Target,
    action: &str,
    wait: &Wait,
) -> anyhow::Result<ExitCode> {
    let (project, env) = api.environment(target).await?;
    match action {
        "deactivate" => confirm(&format!(
            "Deactivate environment `{env}` of project `{project}` (its apps and services stop)?"
        ))?,
        "merge" => confirm(&format!(
            "Merge environment `{env}` of project `{project}` into its parent (the parent is redeployed)?"
        ))?,
        _ => {}
    }
    let url = api.url(
        grove_api::paths::ENVIRONMENT_ACTION,
        &[
            ("project", &project),
            ("environment", &env),
            ("action", action),
        ],
    );
    api.operate(&project, api.http.post(url), wait).await
}

/// The change `environment:http-access` asks for: what is given replaces what was.
fn http_access_change(
    auth: &[String],
    access: &[String],
    enabled: Option<&str>,
) -> anyhow::Result<grove_api::HttpAccessUpdate> {
    let is_enabled = match enabled {
        None => None,
        Some("1" | "true") => Some(true),
        Some("0" | "false") => Some(false),
        Some(other) => bail!("--enabled takes 1 or 0, not `{other}`"),
    };
    let mut users = std::collections::BTreeMap::new();
    for pair in auth {
        let Some((user, password)) = pair.split_once(':') else {
            bail!("--auth takes USER:PASSWORD, not `{pair}`");
        };
        users.insert(user.to_string(), password.to_string());
    }
    let addresses = access
        .iter()
        .map(|rule| match rule.split_once(':') {
            Some((permission, address)) => Ok(grove_api::AccessAddress {
                permission: permission.to_string(),
                address: address.to_string(),
            }),
            None => bail!("--access takes allow:ADDRESS or deny:ADDRESS, not `{rule}`"),
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    Ok(grove_api::HttpAccessUpdate {
        is_enabled,
        basic_auth: (!auth.is_empty()).then_some(users),
        addresses: (!access.is_empty()).then_some(addresses),
    })
}

/// The project and, for an environment-level variable, the environment: `--level`
/// decides, or else whether -e was given.
async fn variable_scope(
    api: &Api,
    target: &Target,
    level: Option<Level>,
) -> anyhow::Result<(String, Option<String>)> {
    let level = level.unwrap_or(if target.environment.is_some() {
        Level::Environment
    } else {
        Level::Project
    });
    match level {
        Level::Project => Ok((api.project(target).await?, None)),
        Level::Environment => {
            let Some(env) = &target.environment else {
                bail!("an environment-level variable needs its environment: give -e ENVIRONMENT");
            };
            Ok((api.project(target).await?, Some(env.clone())))
        }
    }
}

fn variables_url(api: &Api, project: &str, env: Option<&str>, name: Option<&str>) -> String {
    match (env, name) {
        (None, None) => api.url(grove_api::paths::PROJECT_VARIABLES, &[("project", project)]),
        (None, Some(name)) => api.url(
            grove_api::paths::PROJECT_VARIABLE,
            &[("project", project), ("name", name)],
        ),
        (Some(env), None) => api.url(
            grove_api::paths::ENVIRONMENT_VARIABLES,
            &[("project", project), ("environment", env)],
        ),
        (Some(env), Some(name)) => api.url(
            grove_api::paths::ENVIRONMENT_VARIABLE,
            &[("project", project), ("environment", env), ("name", name)],
        ),
    }
}

/// Prints what changed and follows the redeploys it started (unless --no-wait).
async fn variable_changed(
    api: &Api,
    project: &str,
    change: grove_api::VariableChange,
    verb: &str,
    wait: &Wait,
    format: Format,
) -> anyhow::Result<ExitCode> {
    if let Some(variable) = &change.variable {
        match format {
            Format::Table => {
                outln!(
                    "{verb} variable `{}` ({}).",
                    variable.name,
                    variable_level(variable)
                );
                print_variable(variable)?;
            }
            _ => print_value(&change, format)?,
        }
    }
    if change.activities.is_empty() {
        eprintln!("No active environment is affected: nothing to redeploy.");
    }
    let mut code = ExitCode::SUCCESS;
    for activity in &change.activities {
        if wait.no_wait {
            outln!("{}", activity.id);
            continue;
        }
        eprintln!("Activity {} ({})", activity.id, activity.description);
        if !api.follow(project, &activity.id).await? {
            eprintln!(
                "The activity failed: see `grove activity:log {}`",
                activity.id
            );
            code = ExitCode::FAILURE;
        }
    }
    Ok(code)
}

fn variable_level(v: &grove_api::Variable) -> String {
    match (&v.environment, v.inherited) {
        (Some(env), true) => format!("environment (inherited from {env})"),
        (Some(env), false) => format!("environment ({env})"),
        (None, _) => "project".to_string(),
    }
}

fn shown_value(v: &grove_api::Variable) -> String {
    v.value
        .clone()
        .unwrap_or_else(|| "[sensitive: not shown]".to_string())
}

fn print_variable(v: &grove_api::Variable) -> anyhow::Result<()> {
    outln!("{:<20} {}", "name", v.name);
    outln!("{:<20} {}", "level", variable_level(v));
    outln!("{:<20} {}", "value", shown_value(v));
    for (flag, value) in [
        ("is_json", v.is_json),
        ("is_sensitive", v.is_sensitive),
        ("is_enabled", v.is_enabled),
        ("is_inheritable", v.is_inheritable),
        ("visible_build", v.visible_build),
        ("visible_runtime", v.visible_runtime),
    ] {
        outln!("{flag:<20} {value}");
    }
    Ok(())
}

/// `--role` values: a project role (`admin`, `viewer`), or TYPE:ROLE for an environment
/// type (`%` for every type). The server validates the names.
fn parse_roles(
    roles: &[String],
) -> anyhow::Result<(Option<String>, std::collections::BTreeMap<String, String>)> {
    const TYPES: [&str; 3] = ["production", "staging", "development"];
    let mut project_role = None;
    let mut types = std::collections::BTreeMap::new();
    for role in roles {
        match role.split_once(':') {
            Some(("%", value)) => {
                for kind in TYPES {
                    types.insert(kind.to_string(), value.to_string());
                }
            }
            Some((kind, value)) => {
                types.insert(kind.to_string(), value.to_string());
            }
            None => {
                if project_role.replace(role.clone()).is_some() {
                    bail!(
                        "give one project role (`admin` or `viewer`), and TYPE:ROLE for the rest"
                    );
                }
            }
        }
    }
    Ok((project_role, types))
}

fn type_roles(user: &grove_api::ProjectUser) -> String {
    user.environment_types
        .iter()
        .map(|(kind, role)| format!("{kind}:{role}"))
        .collect::<Vec<_>>()
        .join(", ")
}

fn print_user(user: &grove_api::ProjectUser) -> anyhow::Result<()> {
    outln!("{:<20} {}", "email", user.email);
    outln!("{:<20} {}", "project role", user.role);
    for (kind, role) in &user.environment_types {
        outln!("{kind:<20} {role}");
    }
    Ok(())
}
