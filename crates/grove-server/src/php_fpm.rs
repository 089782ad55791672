//! How a PHP app without `web.commands.start` runs (Platform.sh's default,
//! `start-php-app`): PHP-FPM of the app's version from the host or its runtime image,
//! one pool per instance,
//! and nginx in front serving `web.locations` (`grove-web`), both in the app's sandbox
//! as one start command.

use std::path::Path;

use grove_config::App;
use grove_web::{AppUpstream, FpmSpec, Listen, ServerSpec};

/// The instance's run directory as the sandbox sees it (bound writable).
use crate::deploy::SOCKET_DIR as RUN_DIR;

/// Whether the app is started as PHP-FPM behind nginx rather than by its own command.
pub(crate) fn runs_php_fpm(app: &App) -> bool {
    app.runtime.language == "php" && app.web.commands.start.is_none()
}

/// The host has PHP-FPM of the app's version, with every extension of
/// `runtime.extensions`; a missing one is named with the Debian package that adds it.
pub(crate) async fn check_host(app: &App, version: &str) -> Result<(), String> {
    let fpm = fpm_binary(version);
    let modules = tokio::process::Command::new(&fpm)
        .arg("-m")
        .output()
        .await
        .map_err(|e| {
            format!(
                "app `{}`: PHP {version} is not installed on this host ({fpm}: {e}); install the Debian package php{version}-fpm",
                app.name
            )
        })?;
    let requested = grove_web::requested_extensions(app);
    let missing = grove_web::missing_extensions(
        &requested,
        &String::from_utf8_lossy(&modules.stdout),
        version,
    );
    if !missing.is_empty() {
        let list: Vec<String> = missing
            .iter()
            .map(|m| format!("`{}` (Debian package {})", m.name, m.package))
            .collect();
        return Err(format!(
            "app `{}`: runtime.extensions not available in this host's PHP {version}: {}",
            app.name,
            list.join(", ")
        ));
    }
    Ok(())
}

/// PHP-FPM of the version that runs (the host's or the app's runtime image's).
fn fpm_binary(version: &str) -> String {
    format!("/usr/sbin/php-fpm{version}")
}

/// Writes the instance's `php-fpm.conf` and `nginx.conf` into `host_run_dir` (seen as
/// [`RUN_DIR`] in the sandbox) and returns the start command. `listen` is where the
/// router reaches the instance, inside the sandbox.
pub(crate) async fn prepare(
    app: &App,
    version: &str,
    host_run_dir: &Path,
    listen: Listen,
) -> Result<String, String> {
    let fpm = fpm_binary(version);
    let socket = format!("{RUN_DIR}/php-fpm.sock");
    let fpm_conf = grove_web::fpm_config(
        app,
        &FpmSpec {
            socket: socket.clone(),
            runtime_dir: RUN_DIR.into(),
            max_children: 4,
        },
    )
    .map_err(|e| format!("app `{}`: {e}", app.name))?;
    let nginx_conf = grove_web::nginx_config(
        &app.web,
        &ServerSpec {
            listen,
            app_root: grove_deployment::APP_DIR.into(),
            runtime_dir: RUN_DIR.into(),
            upstream: AppUpstream::FastCgi {
                socket: socket.clone(),
            },
            // Set by the start command when the sandbox runs as root.
            user: None,
        },
    )
    .map_err(|e| format!("app `{}`: {e}", app.name))?;
    for (name, text) in [("php-fpm.conf", &fpm_conf), ("nginx.conf", &nginx_conf)] {
        tokio::fs::write(host_run_dir.join(name), text)
            .await
            .map_err(|e| format!("app `{}`: cannot write its {name}: {e}", app.name))?;
    }
    // PHP-FPM in the background; nginx, once the pool's socket is there, is the
    // instance's process. As root, nginx's workers would switch to `nobody` and
    // php-fpm refuses to start without being told.
    let nginx = format!("/usr/sbin/nginx -e stderr -p {RUN_DIR} -c {RUN_DIR}/nginx.conf");
    Ok(format!(
        "root=; [ \"$(id -u)\" = 0 ] && root=1\n\
         {fpm} --nodaemonize --fpm-config {RUN_DIR}/php-fpm.conf ${{root:+--allow-to-run-as-root}} &\n\
         i=0; while [ ! -S {socket} ] && [ $i -lt 200 ]; do sleep 0.05; i=$((i+1)); done\n\
         if [ -n \"$root\" ]; then exec {nginx} -g 'user root;'; else exec {nginx}; fi"
    ))
}
