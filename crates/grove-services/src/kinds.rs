//! Per kind of server: where things are inside its sandbox, the config files
//! and start script it gets, how it is provisioned and checked. Pure: the
//! caller writes the files and runs the commands.

use std::fmt::Write as _;
use std::net::Ipv4Addr;
use std::path::Path;
use std::time::Duration;

use crate::config::{Privilege, ServiceConfig};
use crate::running::MemoryProfile;
use crate::userns::{MappedUser, WAIT_FOR_MAP};
use crate::{Secrets, ServiceKind};

/// Where a kind's data and run directories appear inside its sandbox: the
/// paths the Debian packages use, so the servers' defaults and habits apply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Layout {
    pub data: &'static str,
    pub run: &'static str,
}

pub fn layout(kind: ServiceKind) -> Layout {
    match kind {
        ServiceKind::MariaDb => Layout {
            data: "/var/lib/mysql",
            run: "/run/mysqld",
        },
        ServiceKind::PostgreSql => Layout {
            data: "/var/lib/postgresql",
            run: "/run/postgresql",
        },
        ServiceKind::Redis { .. } => Layout {
            data: "/var/lib/redis",
            run: "/run/redis",
        },
        ServiceKind::RabbitMq => Layout {
            data: "/var/lib/rabbitmq",
            run: "/run/rabbitmq",
        },
        ServiceKind::Memcached => Layout {
            data: "/var/lib/memcached",
            run: "/run/memcached",
        },
    }
}

/// What a plan is made from.
pub struct Context<'a> {
    pub kind: ServiceKind,
    pub address: Ipv4Addr,
    pub profile: MemoryProfile,
    pub config: &'a ServiceConfig,
    pub secrets: &'a Secrets,
    /// The resolved server binary on the host (and in the sandbox).
    pub binary: &'a Path,
    /// Random salt for password hashes written to files.
    pub salt: [u8; 4],
}

/// How to start one instance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    /// Files to write into the run directory: (name, content).
    pub files: Vec<(&'static str, String)>,
    /// The sandbox command (`dash -c`).
    pub command: String,
    /// Set when the server must run as this user in a user namespace.
    pub user: Option<MappedUser>,
    /// How long the first start (with data directory initialisation) may take.
    pub ready_timeout: Duration,
    /// A one-shot command (inside a sandbox of the same layout) that applies
    /// `provision.sql` from the run directory, when the kind needs one.
    pub provision: Option<String>,
}

pub fn plan(ctx: &Context<'_>) -> Plan {
    match ctx.kind {
        ServiceKind::MariaDb => mariadb(ctx),
        ServiceKind::PostgreSql => postgresql(ctx),
        ServiceKind::Redis { persistent } => redis(ctx, persistent),
        ServiceKind::RabbitMq => rabbitmq(ctx),
        ServiceKind::Memcached => memcached(ctx),
    }
}

/// A one-shot command that succeeds when the server answers a query through
/// its local socket (`None`: checked over the network instead).
pub fn health_command(kind: ServiceKind, binary: &Path) -> Option<String> {
    match kind {
        ServiceKind::MariaDb => Some(
            "mariadb --no-defaults -S /run/mysqld/mysqld.sock -u root -N -B -e 'SELECT 1'"
                .to_owned(),
        ),
        ServiceKind::PostgreSql => Some(format!(
            "{}/psql -X -h /run/postgresql -U postgres -d postgres -tA -c 'SELECT 1'",
            bin_dir(binary)
        )),
        _ => None,
    }
}

fn bin_dir(binary: &Path) -> String {
    binary
        .parent()
        .map(|p| p.display().to_string())
        .unwrap_or_else(|| "/usr/bin".to_owned())
}

fn small(profile: MemoryProfile) -> bool {
    profile == MemoryProfile::Small
}

fn mariadb(ctx: &Context<'_>) -> Plan {
    let mut cnf = String::from(
        "# Written by Grove on every start; edit services.yaml instead.\n[mariadbd]\n",
    );
    let lines: Vec<(String, String)> = [
        ("datadir", "/var/lib/mysql/data"),
        ("socket", "/run/mysqld/mysqld.sock"),
        ("pid-file", "/run/mysqld/mysqld.pid"),
        ("tmpdir", "/tmp"),
        ("port", "3306"),
        // Sandboxes run as uid 0 without capabilities: nothing to switch to.
        ("user", "root"),
        // Users are '<endpoint>'@'%' and host names mean nothing here; also
        // keeps TCP clients from matching the socket-only 'x'@'localhost'.
        ("skip-name-resolve", "ON"),
        ("character-set-server", "utf8mb4"),
        ("collation-server", "utf8mb4_unicode_ci"),
        ("skip-log-bin", ""),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .chain([("bind-address".to_owned(), ctx.address.to_string())])
    .chain(
        if small(ctx.profile) {
            vec![
                ("innodb_buffer_pool_size", "16M"),
                ("innodb_log_file_size", "16M"),
                ("innodb_log_buffer_size", "2M"),
                ("performance_schema", "OFF"),
                ("key_buffer_size", "1M"),
                ("aria_pagecache_buffer_size", "8M"),
                ("max_connections", "50"),
                ("table_open_cache", "400"),
                ("table_definition_cache", "400"),
                ("thread_cache_size", "4"),
                ("query_cache_size", "0"),
                ("tmp_table_size", "16M"),
                ("max_heap_table_size", "16M"),
            ]
        } else {
            vec![
                ("innodb_buffer_pool_size", "512M"),
                ("innodb_log_file_size", "128M"),
                ("performance_schema", "OFF"),
                ("max_connections", "200"),
                ("query_cache_size", "0"),
            ]
        }
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned())),
    )
    .chain(ctx.config.properties.iter().cloned())
    .collect();
    for (key, value) in lines {
        if value.is_empty() {
            let _ = writeln!(cnf, "{key}");
        } else {
            let _ = writeln!(cnf, "{key}={value}");
        }
    }
    let start = "set -e\n\
        if [ ! -d /var/lib/mysql/data/mysql ]; then\n\
        \x20 rm -rf /var/lib/mysql/data.init\n\
        \x20 mariadb-install-db --defaults-file=/run/mysqld/my.cnf --datadir=/var/lib/mysql/data.init \\\n\
        \x20   --auth-root-authentication-method=socket --skip-test-db --skip-name-resolve >/dev/null\n\
        \x20 rm -rf /var/lib/mysql/data\n\
        \x20 mv /var/lib/mysql/data.init /var/lib/mysql/data\n\
        fi\n\
        exec mariadbd --defaults-file=/run/mysqld/my.cnf\n"
        .to_owned();
    Plan {
        files: vec![
            ("my.cnf", cnf),
            ("start.sh", start),
            ("provision.sql", mariadb_provision(ctx)),
        ],
        command: "exec /bin/sh /run/mysqld/start.sh".to_owned(),
        user: None,
        ready_timeout: Duration::from_secs(120),
        provision: Some(
            "mariadb --no-defaults -S /run/mysqld/mysqld.sock -u root -B < /run/mysqld/provision.sql"
                .to_owned(),
        ),
    }
}

fn mariadb_grants(privilege: Privilege) -> &'static str {
    match privilege {
        Privilege::Ro => "SELECT, SHOW VIEW, EXECUTE, LOCK TABLES",
        Privilege::Rw => {
            "SELECT, INSERT, UPDATE, DELETE, SHOW VIEW, EXECUTE, LOCK TABLES, CREATE TEMPORARY TABLES"
        }
        Privilege::Admin => "ALL PRIVILEGES",
    }
}

fn mariadb_provision(ctx: &Context<'_>) -> String {
    let mut sql = String::new();
    for schema in &ctx.config.schemas {
        let _ = writeln!(sql, "CREATE DATABASE IF NOT EXISTS `{schema}`;");
    }
    for endpoint in &ctx.config.endpoints {
        let user = format!("'{}'@'%'", endpoint.name);
        let password = ctx.secrets.password(&endpoint.name).unwrap_or_default();
        let _ = writeln!(
            sql,
            "CREATE USER IF NOT EXISTS {user} IDENTIFIED BY '{password}';"
        );
        // Secrets may have been rotated, privileges changed: converge.
        let _ = writeln!(sql, "ALTER USER {user} IDENTIFIED BY '{password}';");
        let _ = writeln!(sql, "REVOKE ALL PRIVILEGES, GRANT OPTION FROM {user};");
        for (schema, privilege) in &endpoint.privileges {
            let _ = writeln!(
                sql,
                "GRANT {} ON `{schema}`.* TO {user};",
                mariadb_grants(*privilege)
            );
        }
    }
    sql
}

fn postgresql(ctx: &Context<'_>) -> Plan {
    let bin = bin_dir(ctx.binary);
    let (shared_buffers, max_connections, work_mem, extra) = if small(ctx.profile) {
        (
            "16MB",
            "30",
            "2MB",
            "maintenance_work_mem = 16MB\nwal_buffers = 1MB\nmax_wal_size = 256MB\nmin_wal_size = 32MB\nautovacuum_max_workers = 1\nmax_worker_processes = 2\nmax_parallel_workers = 0\nmax_parallel_workers_per_gather = 0\n",
        )
    } else {
        ("256MB", "100", "8MB", "maintenance_work_mem = 128MB\n")
    };
    let conf = format!(
        "# Written by Grove on every start; edit services.yaml instead.\n\
         listen_addresses = '{address}'\n\
         port = 5432\n\
         unix_socket_directories = '/run/postgresql'\n\
         hba_file = '/run/postgresql/pg_hba.conf'\n\
         ident_file = '/run/postgresql/pg_ident.conf'\n\
         external_pid_file = '/run/postgresql/postgres.pid'\n\
         password_encryption = scram-sha-256\n\
         dynamic_shared_memory_type = mmap\n\
         logging_collector = off\n\
         log_line_prefix = '%m [%p] %q%u@%d '\n\
         shared_buffers = {shared_buffers}\n\
         max_connections = {max_connections}\n\
         work_mem = {work_mem}\n\
         {extra}",
        address = ctx.address
    );
    // Only the superuser over the local socket, which only this instance's
    // sandboxes see; everyone else with a password over TCP.
    let hba = "local all postgres trust\n\
               host all postgres 0.0.0.0/0 reject\n\
               host all all 0.0.0.0/0 scram-sha-256\n"
        .to_owned();
    let start = format!(
        "set -e\n\
         {WAIT_FOR_MAP}\
         if [ ! -f /var/lib/postgresql/pgdata/PG_VERSION ]; then\n\
         \x20 rm -rf /var/lib/postgresql/pgdata.init\n\
         \x20 {bin}/initdb -D /var/lib/postgresql/pgdata.init -U postgres -E UTF8 --locale=C.UTF-8 \\\n\
         \x20   --auth-local=trust --auth-host=scram-sha-256 >/dev/null\n\
         \x20 rm -rf /var/lib/postgresql/pgdata\n\
         \x20 mv /var/lib/postgresql/pgdata.init /var/lib/postgresql/pgdata\n\
         fi\n\
         exec {bin}/postgres -D /var/lib/postgresql/pgdata -c config_file=/run/postgresql/postgresql.conf\n"
    );
    Plan {
        files: vec![
            ("postgresql.conf", conf),
            ("pg_hba.conf", hba),
            ("pg_ident.conf", String::new()),
            ("start.sh", start),
            ("provision.sql", postgresql_provision(ctx)),
        ],
        command: "exec unshare --user -- /bin/sh /run/postgresql/start.sh".to_owned(),
        user: Some(MappedUser::lookup("postgres", 999)),
        ready_timeout: Duration::from_secs(120),
        provision: Some(format!(
            "{bin}/psql -X -q -v ON_ERROR_STOP=1 -h /run/postgresql -U postgres -d postgres -f /run/postgresql/provision.sql"
        )),
    }
}

fn postgresql_provision(ctx: &Context<'_>) -> String {
    let mut sql = String::new();
    for endpoint in &ctx.config.endpoints {
        let name = &endpoint.name;
        let password = ctx.secrets.password(name).unwrap_or_default();
        let _ = writeln!(
            sql,
            "SELECT 'CREATE ROLE \"{name}\" LOGIN' WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '{name}')\\gexec"
        );
        let _ = writeln!(
            sql,
            "ALTER ROLE \"{name}\" WITH LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE PASSWORD '{password}';"
        );
    }
    for db in &ctx.config.schemas {
        // The first admin endpoint owns the database (and, through
        // pg_database_owner, its public schema); other admins are its members.
        let owner = ctx
            .config
            .endpoints
            .iter()
            .find(|e| e.privileges.get(db) == Some(&Privilege::Admin))
            .map_or("postgres", |e| e.name.as_str());
        let _ = writeln!(
            sql,
            "SELECT 'CREATE DATABASE \"{db}\"' WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = '{db}')\\gexec"
        );
        let _ = writeln!(sql, "ALTER DATABASE \"{db}\" OWNER TO \"{owner}\";");
        let _ = writeln!(sql, "REVOKE ALL ON DATABASE \"{db}\" FROM PUBLIC;");
        for endpoint in &ctx.config.endpoints {
            if endpoint.name != owner {
                let _ = writeln!(
                    sql,
                    "REVOKE ALL ON DATABASE \"{db}\" FROM \"{}\";",
                    endpoint.name
                );
            }
        }
        let _ = writeln!(sql, "\\connect \"{db}\"");
        for ext in &ctx.config.extensions {
            let _ = writeln!(sql, "CREATE EXTENSION IF NOT EXISTS \"{ext}\";");
        }
        for endpoint in &ctx.config.endpoints {
            let ep = &endpoint.name;
            if ep == owner {
                continue;
            }
            let _ = writeln!(
                sql,
                "REVOKE ALL ON ALL TABLES IN SCHEMA public FROM \"{ep}\";"
            );
            let _ = writeln!(
                sql,
                "REVOKE ALL ON ALL SEQUENCES IN SCHEMA public FROM \"{ep}\";"
            );
            let Some(privilege) = endpoint.privileges.get(db) else {
                continue;
            };
            let (tables, sequences) = match privilege {
                Privilege::Admin => {
                    let _ = writeln!(sql, "GRANT ALL ON DATABASE \"{db}\" TO \"{ep}\";");
                    let _ = writeln!(sql, "GRANT \"{owner}\" TO \"{ep}\";");
                    continue;
                }
                Privilege::Rw => ("SELECT, INSERT, UPDATE, DELETE", "USAGE, SELECT, UPDATE"),
                Privilege::Ro => ("SELECT", "SELECT"),
            };
            let _ = writeln!(
                sql,
                "GRANT CONNECT, TEMPORARY ON DATABASE \"{db}\" TO \"{ep}\";"
            );
            let _ = writeln!(sql, "GRANT USAGE ON SCHEMA public TO \"{ep}\";");
            let _ = writeln!(
                sql,
                "GRANT {tables} ON ALL TABLES IN SCHEMA public TO \"{ep}\";"
            );
            let _ = writeln!(
                sql,
                "GRANT {sequences} ON ALL SEQUENCES IN SCHEMA public TO \"{ep}\";"
            );
            let _ = writeln!(
                sql,
                "ALTER DEFAULT PRIVILEGES FOR ROLE \"{owner}\" IN SCHEMA public GRANT {tables} ON TABLES TO \"{ep}\";"
            );
            let _ = writeln!(
                sql,
                "ALTER DEFAULT PRIVILEGES FOR ROLE \"{owner}\" IN SCHEMA public GRANT {sequences} ON SEQUENCES TO \"{ep}\";"
            );
        }
        let _ = writeln!(sql, "\\connect postgres");
    }
    sql
}

fn redis(ctx: &Context<'_>, persistent: bool) -> Plan {
    let maxmemory = match (ctx.profile, persistent) {
        (MemoryProfile::Small, _) => "64mb",
        (MemoryProfile::Production, _) => "512mb",
    };
    let policy = ctx
        .config
        .maxmemory_policy
        .as_deref()
        .unwrap_or("allkeys-lru");
    let persistence = if persistent {
        // Every write reaches the kernel before its reply, so a killed server
        // loses nothing; fsync once a second bounds what a host crash loses.
        "appendonly yes\nappendfsync everysec\naof-use-rdb-preamble yes\nsave \"\"\n"
    } else {
        "appendonly no\nsave \"\"\n"
    };
    let conf = format!(
        "# Written by Grove on every start; edit services.yaml instead.\n\
         bind {address}\n\
         port 6379\n\
         protected-mode no\n\
         daemonize no\n\
         supervised no\n\
         pidfile /run/redis/redis.pid\n\
         unixsocket /run/redis/redis.sock\n\
         unixsocketperm 700\n\
         dir /var/lib/redis\n\
         logfile \"\"\n\
         maxmemory {maxmemory}\n\
         maxmemory-policy {policy}\n\
         {persistence}",
        address = ctx.address
    );
    Plan {
        files: vec![("redis.conf", conf)],
        command: format!("exec {} /run/redis/redis.conf", ctx.binary.display()),
        user: None,
        ready_timeout: Duration::from_secs(60),
        provision: None,
    }
}

fn memcached(ctx: &Context<'_>) -> Plan {
    let (megabytes, connections, threads) = if small(ctx.profile) {
        (32, 256, 1)
    } else {
        (256, 1024, 4)
    };
    Plan {
        files: Vec::new(),
        // `-u root`: memcached refuses uid 0 otherwise; there is nothing to
        // drop to without capabilities anyway.
        command: format!(
            "exec {} -l {} -p 11211 -U 0 -m {megabytes} -c {connections} -t {threads} -u root",
            ctx.binary.display(),
            ctx.address
        ),
        user: None,
        ready_timeout: Duration::from_secs(30),
        provision: None,
    }
}

fn rabbitmq(ctx: &Context<'_>) -> Plan {
    let user = crate::default_endpoint(ctx.kind);
    let password = ctx.secrets.password(user).unwrap_or_default();
    let (watermark, schedulers) = if small(ctx.profile) {
        ("vm_memory_high_watermark.absolute = 128MB", "+S 1:1 ")
    } else {
        ("vm_memory_high_watermark.relative = 0.4", "")
    };
    let conf = format!(
        "# Written by Grove on every start; edit services.yaml instead.\n\
         listeners.tcp.1 = {address}:5672\n\
         loopback_users = none\n\
         # Only used on the very first boot; the definitions below are what counts.\n\
         default_user = {user}\n\
         default_pass = {password}\n\
         load_definitions = /run/rabbitmq/definitions.json\n\
         {watermark}\n\
         disk_free_limit.absolute = 50MB\n",
        address = ctx.address
    );
    let octets = ctx.address.octets();
    // The Erlang distribution (what rabbitmqctl would use) listens on the
    // instance's own address without epmd, so instances never share a node
    // registry. Its port differs per address too: RabbitMQ's pre-launch check
    // binds the port on every address, which fails where another instance
    // listens on it.
    // The same for epmd, which RabbitMQ's pre-launch starts and which always listens
    // on 127.0.0.1 as well. Both stay below the kernel's ephemeral port range.
    let slot = u32::from(ctx.address) & 0x1fff;
    let dist_port = 10_000 + slot;
    let epmd_port = 18_200 + slot;
    let start = format!(
        "export RABBITMQ_NODENAME=rabbit@{host}\n\
         export RABBITMQ_MNESIA_BASE=/var/lib/rabbitmq/mnesia\n\
         export RABBITMQ_LOG_BASE=/var/lib/rabbitmq/log\n\
         export RABBITMQ_LOGS=-\n\
         export RABBITMQ_CONFIG_FILE=/run/rabbitmq/rabbitmq\n\
         export RABBITMQ_ENABLED_PLUGINS_FILE=/run/rabbitmq/enabled_plugins\n\
         export RABBITMQ_PID_FILE=/run/rabbitmq/rabbitmq.pid\n\
         export RABBITMQ_DIST_PORT={dist_port}\n\
         export ERL_CRASH_DUMP=/run/rabbitmq/erl_crash.dump\n\
         export ERL_EPMD_ADDRESS={address}\n\
         export ERL_EPMD_PORT={epmd_port}\n\
         export RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS='{schedulers}-start_epmd false -erl_epmd_port {dist_port} -kernel inet_dist_use_interface {{{a},{b},{c},{d}}}'\n\
         exec {server}\n",
        address = ctx.address,
        a = octets[0],
        b = octets[1],
        c = octets[2],
        d = octets[3],
        server = ctx.binary.display(),
        host = crate::running::SERVICE_HOST,
    );
    Plan {
        files: vec![
            ("rabbitmq.conf", conf),
            ("enabled_plugins", "[].\n".to_owned()),
            (
                "definitions.json",
                rabbitmq_definitions(ctx, user, password),
            ),
            ("start.sh", start),
        ],
        command: "exec /bin/sh /run/rabbitmq/start.sh".to_owned(),
        user: None,
        ready_timeout: Duration::from_secs(120),
        provision: None,
    }
}

/// Users, vhosts and permissions, imported at every boot (idempotent). The
/// file holds a salted hash, not the password.
fn rabbitmq_definitions(ctx: &Context<'_>, user: &str, password: &str) -> String {
    let definitions = serde_json::json!({
        "users": [{
            "name": user,
            "password_hash": rabbitmq_password_hash(password, ctx.salt),
            "hashing_algorithm": "rabbit_password_hashing_sha256",
            "tags": ["administrator"],
        }],
        "vhosts": ctx.config.vhosts.iter().map(|v| serde_json::json!({"name": v})).collect::<Vec<_>>(),
        "permissions": ctx.config.vhosts.iter().map(|v| serde_json::json!({
            "user": user, "vhost": v, "configure": ".*", "write": ".*", "read": ".*",
        })).collect::<Vec<_>>(),
    });
    serde_json::to_string_pretty(&definitions).unwrap_or_default()
}

/// RabbitMQ's `rabbit_password_hashing_sha256`: base64(salt ++ sha256(salt ++
/// password)) with a 4-byte salt.
pub fn rabbitmq_password_hash(password: &str, salt: [u8; 4]) -> String {
    use base64::Engine;
    use sha2::Digest;
    let mut hasher = sha2::Sha256::new();
    hasher.update(salt);
    hasher.update(password.as_bytes());
    let mut out = salt.to_vec();
    out.extend_from_slice(&hasher.finalize());
    base64::engine::general_purpose::STANDARD.encode(out)
}
