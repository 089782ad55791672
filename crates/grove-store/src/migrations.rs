//! Versioned schema migrations, tracked in SQLite's `user_version`.
//!
//! Append new migrations at the end; never edit one that has shipped.

pub(crate) const MIGRATIONS: &[&str] = &[
    // 1: the foundation.
    r#"
    CREATE TABLE projects (
        id             TEXT PRIMARY KEY,
        title          TEXT NOT NULL,
        default_branch TEXT,
        entropy        TEXT NOT NULL,
        created_at     TEXT NOT NULL
    );
    CREATE TABLE environments (
        project         TEXT NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
        name            TEXT NOT NULL,
        machine_name    TEXT NOT NULL,
        title           TEXT NOT NULL,
        type            TEXT NOT NULL,
        status          TEXT NOT NULL,
        parent          TEXT,
        created_at      TEXT NOT NULL,
        updated_at      TEXT NOT NULL,
        PRIMARY KEY (project, name),
        UNIQUE (project, machine_name)
    );
    CREATE TABLE activities (
        id           TEXT PRIMARY KEY,
        project      TEXT NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
        environment  TEXT,
        type         TEXT NOT NULL,
        state        TEXT NOT NULL,
        result       TEXT,
        description  TEXT NOT NULL,
        created_at   TEXT NOT NULL,
        started_at   TEXT,
        completed_at TEXT
    );
    CREATE INDEX activities_by_project ON activities(project, created_at);
    CREATE TABLE activity_log (
        activity  TEXT NOT NULL REFERENCES activities(id) ON DELETE CASCADE,
        seq       INTEGER NOT NULL,
        timestamp TEXT NOT NULL,
        message   TEXT NOT NULL,
        PRIMARY KEY (activity, seq)
    );
    CREATE TABLE builds (
        key        TEXT PRIMARY KEY,
        project    TEXT NOT NULL,
        app        TEXT NOT NULL,
        tree_id    TEXT NOT NULL,
        activity   TEXT NOT NULL,
        created_at TEXT NOT NULL
    );
    CREATE TABLE deployments (
        id          INTEGER PRIMARY KEY AUTOINCREMENT,
        project     TEXT NOT NULL,
        environment TEXT NOT NULL,
        activity    TEXT NOT NULL,
        commit_id   TEXT NOT NULL,
        tree_id     TEXT NOT NULL,
        successful  INTEGER NOT NULL,
        created_at  TEXT NOT NULL
    );
    CREATE INDEX deployments_by_environment ON deployments(project, environment, id);
    CREATE TABLE users (
        id         INTEGER PRIMARY KEY AUTOINCREMENT,
        name       TEXT NOT NULL UNIQUE,
        role       TEXT NOT NULL,
        created_at TEXT NOT NULL
    );
    CREATE TABLE api_tokens (
        hash       TEXT PRIMARY KEY,
        user_id    INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
        name       TEXT NOT NULL,
        created_at TEXT NOT NULL
    );
    "#,
    // 2: plans limit how many environments may be active at once.
    r#"
    ALTER TABLE projects ADD COLUMN plan TEXT NOT NULL DEFAULT 'development';
    ALTER TABLE projects ADD COLUMN integration_limit INTEGER NOT NULL DEFAULT 2;
    "#,
    // 3: crons can be switched off per environment, and by default on development
    // environments.
    r#"
    ALTER TABLE environments ADD COLUMN crons INTEGER;
    ALTER TABLE projects ADD COLUMN development_crons INTEGER NOT NULL DEFAULT 1;
    "#,
    // 4: a deployment is written, as data, before it is applied; it counts once it
    // applied completely (`successful`).
    r#"
    ALTER TABLE deployments ADD COLUMN desired TEXT;
    "#,
    // 5: users have a role per project (`admin`, `viewer`) and, below it, per
    // environment type (`admin`, `contributor`, `viewer`); tokens get an id by which
    // their owner lists and deletes them.
    r#"
    CREATE TABLE project_access (
        project    TEXT NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
        user_id    INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
        role       TEXT NOT NULL,
        created_at TEXT NOT NULL,
        PRIMARY KEY (project, user_id)
    );
    CREATE INDEX project_access_by_user ON project_access(user_id);
    CREATE TABLE environment_type_access (
        project  TEXT NOT NULL,
        user_id  INTEGER NOT NULL,
        type     TEXT NOT NULL,
        role     TEXT NOT NULL,
        PRIMARY KEY (project, user_id, type),
        FOREIGN KEY (project, user_id) REFERENCES project_access(project, user_id)
            ON DELETE CASCADE
    );
    CREATE TABLE api_tokens_with_id (
        id         INTEGER PRIMARY KEY AUTOINCREMENT,
        hash       TEXT NOT NULL UNIQUE,
        user_id    INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
        name       TEXT NOT NULL,
        created_at TEXT NOT NULL
    );
    INSERT INTO api_tokens_with_id (hash, user_id, name, created_at)
        SELECT hash, user_id, name, created_at FROM api_tokens ORDER BY created_at, rowid;
    DROP TABLE api_tokens;
    ALTER TABLE api_tokens_with_id RENAME TO api_tokens;
    CREATE INDEX api_tokens_by_user ON api_tokens(user_id);
    "#,
    // 6: user variables (`variable:create`), of the project (`environment` empty) or of
    // one environment.
    r#"
    CREATE TABLE variables (
        project         TEXT NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
        environment     TEXT NOT NULL,
        name            TEXT NOT NULL,
        value           TEXT NOT NULL,
        is_json         INTEGER NOT NULL,
        is_sensitive    INTEGER NOT NULL,
        visible_build   INTEGER NOT NULL,
        visible_runtime INTEGER NOT NULL,
        is_inheritable  INTEGER NOT NULL,
        is_enabled      INTEGER NOT NULL,
        created_at      TEXT NOT NULL,
        updated_at      TEXT NOT NULL,
        PRIMARY KEY (project, environment, name)
    );
    "#,
    // 7: backups of environments (`backup:create`): the restic snapshot is the link to
    // the data; the record holds what the backup was taken of and how it went.
    r#"
    CREATE TABLE backups (
        id          TEXT PRIMARY KEY,
        project     TEXT NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
        environment TEXT NOT NULL,
        activity    TEXT NOT NULL,
        snapshot    TEXT,
        commit_id   TEXT,
        build_keys  TEXT NOT NULL DEFAULT '',
        consistent  INTEGER NOT NULL,
        automatic   INTEGER NOT NULL DEFAULT 0,
        pause_ms    INTEGER,
        status      TEXT NOT NULL,
        reason      TEXT,
        size        INTEGER,
        created_at  TEXT NOT NULL,
        completed_at TEXT
    );
    CREATE INDEX backups_by_environment ON backups(project, environment, created_at);
    "#,
    // 8: users' SSH public keys (`ssh-key:add`), looked up by fingerprint when the SSH
    // gateway authenticates a connection.
    r#"
    CREATE TABLE ssh_keys (
        id          INTEGER PRIMARY KEY AUTOINCREMENT,
        user_id     INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
        fingerprint TEXT NOT NULL UNIQUE,
        key_type    TEXT NOT NULL,
        key_data    TEXT NOT NULL,
        title       TEXT NOT NULL,
        created_at  TEXT NOT NULL
    );
    "#,
    // 9: HTTP access control of an environment (`environment:http-access`): Basic
    // credentials (`user:password` lines) and address rules (`allow|deny CIDR` lines,
    // in order); environments without a row inherit their parent's.
    r#"
    CREATE TABLE http_access (
        project     TEXT NOT NULL,
        environment TEXT NOT NULL,
        enabled     INTEGER NOT NULL,
        basic_auth  TEXT NOT NULL DEFAULT '',
        addresses   TEXT NOT NULL DEFAULT '',
        updated_at  TEXT NOT NULL,
        PRIMARY KEY (project, environment),
        FOREIGN KEY (project, environment) REFERENCES environments(project, name)
            ON DELETE CASCADE
    );
    "#,
    // 10: a project's own backup retention policy for an environment type
    // (`backup:policy`), as the policy's JSON; types without a row use the default.
    r#"
    CREATE TABLE backup_policies (
        project          TEXT NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
        environment_type TEXT NOT NULL,
        policy           TEXT NOT NULL,
        updated_at       TEXT NOT NULL,
        PRIMARY KEY (project, environment_type)
    );
    "#,
];
