//! The web server of an instance, as on Platform.sh where nginx sits in front of
//! every app: for a PHP app without `web.commands.start` (Platform.sh's default,
//! `start-php-app`) nginx serves `web.locations` in front of PHP-FPM of the version
//! that runs (the host's or the app's runtime image's), one pool per instance; for an app with its own start command whose
//! locations serve files (a `root`), nginx serves those files and passes the rest
//! to the app's server. Both processes run in the app's sandbox under one start
//! script that ends (so the instance is restarted whole) when either ends.

use std::path::{Path, PathBuf};

use grove_config::App;
use grove_web::{AppUpstream, FpmSpec, Listen, ServerSpec};

/// The instance's run directory as the sandbox sees it (bound writable).
use crate::deploy::SOCKET_DIR as RUN_DIR;

/// What answers an instance's requests.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Front {
    /// The app's own server, reached directly by the router.
    Direct,
    /// nginx in front of PHP-FPM.
    PhpFpm,
    /// nginx in front of the app's own server: its locations serve files.
    Nginx,
}

impl Front {
    pub(crate) fn of(app: &App) -> Front {
        if app.runtime.language == "php" && app.web.commands.start.is_none() {
            Front::PhpFpm
        } else if app.web.commands.start.is_some()
            && app.web.locations.values().any(|l| l.root.is_some())
        {
            Front::Nginx
        } else {
            Front::Direct
        }
    }
}

/// Whether the app is started as PHP-FPM behind nginx rather than by its own command.
pub(crate) fn runs_php_fpm(app: &App) -> bool {
    Front::of(app) == Front::PhpFpm
}

/// The PHP-FPM that will run the app (the host's, or that of the runtime image at
/// `image`) has every extension of `runtime.extensions`; a missing one is named with
/// the Debian package that adds it.
pub(crate) async fn check_php(
    app: &App,
    version: &str,
    image: Option<&Path>,
) -> Result<(), String> {
    let fpm = fpm_binary(version);
    // The image is one Grove built; its PHP is asked through chroot, with no app code.
    let (mut command, whose) = match image {
        Some(root) => {
            let mut command = tokio::process::Command::new("chroot");
            command.arg(root).arg(&fpm);
            (command, "the runtime image's")
        }
        None => (tokio::process::Command::new(&fpm), "this host's"),
    };
    let modules = command.arg("-m").output().await.map_err(|e| {
        format!(
            "app `{}`: PHP {version} is not installed on this host ({fpm}: {e}); install the Debian package php{version}-fpm",
            app.name
        )
    })?;
    if !modules.status.success() {
        return Err(format!(
            "app `{}`: {whose} PHP {version} cannot list its extensions: {}",
            app.name,
            String::from_utf8_lossy(&modules.stderr).trim()
        ));
    }
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
            "app `{}`: runtime.extensions not available in {whose} PHP {version}: {}",
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

/// Where nginx listens for the router when it is in front of the app's own server
/// (the app keeps `$PORT` or `$SOCKET`); inside the sandbox, in [`RUN_DIR`].
pub(crate) const FRONT_SOCKET: &str = "web.sock";

/// The directory of [`RUN_DIR`] that PHP scans for the app's `php.ini`.
const PHP_INI_DIR: &str = "php.d";

/// Writes the instance's configuration into `host_run_dir` (seen as [`RUN_DIR`] in
/// the sandbox) and returns the start command. `listen` is where the router reaches
/// the instance; `app_listen` where the app's own server listens (for
/// [`Front::Nginx`]), `app_command` its start command.
pub(crate) async fn prepare(
    app: &App,
    front: Front,
    (php_version, image): (&str, Option<&Path>),
    host_run_dir: &Path,
    listen: Listen,
    app_listen: Listen,
) -> Result<String, String> {
    let (upstream, first, ready) = match front {
        Front::Direct => return Ok(app.web.commands.start.clone().unwrap_or_default()),
        Front::PhpFpm => {
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
            write(app, host_run_dir, "php-fpm.conf", &fpm_conf).await?;
            let scan_dir = php_scan_dir(app, php_version, image, host_run_dir).await?;
            // As root, php-fpm refuses to start without being told.
            let first = format!(
                "{scan_dir}\n\
                 {} --nodaemonize --fpm-config {RUN_DIR}/php-fpm.conf ${{root:+--allow-to-run-as-root}}",
                fpm_binary(php_version),
            );
            (
                AppUpstream::FastCgi {
                    socket: socket.clone(),
                },
                first,
                Listen::Unix(socket),
            )
        }
        Front::Nginx => {
            let command = app.web.commands.start.clone().unwrap_or_default();
            (
                AppUpstream::Http(app_listen.clone()),
                format!("dash -c {}", crate::deploy::shell_quote(&command)),
                app_listen,
            )
        }
    };
    let listen_for_router = listen.clone();
    let nginx_conf = grove_web::nginx_config(
        &app.web,
        &ServerSpec {
            listen,
            app_root: grove_deployment::APP_DIR.into(),
            runtime_dir: RUN_DIR.into(),
            upstream,
            // Set by the start command when the sandbox runs as root.
            user: None,
        },
    )
    .map_err(|e| format!("app `{}`: {e}", app.name))?;
    write(app, host_run_dir, "nginx.conf", &nginx_conf).await?;
    Ok(supervised_pair(&first, &ready, &listen_for_router))
}

/// PHP's scan directory for the app, as a line of the start script that sets
/// `PHP_INI_SCAN_DIR`. A `php.ini` at the app root is read after PHP's own
/// configuration, as on Platform.sh: a directory of ours holds a link to it, added to
/// PHP's own (the leading `:`) when the file exists. With `runtime.disabled_extensions`
/// our directory replaces PHP's: it links every `.ini` of PHP's own but theirs.
async fn php_scan_dir(
    app: &App,
    version: &str,
    image: Option<&Path>,
    host_run_dir: &Path,
) -> Result<String, String> {
    let error = |what: &str, e: std::io::Error| format!("app `{}`: cannot {what}: {e}", app.name);
    let ini_dir = host_run_dir.join(PHP_INI_DIR);
    let _ = tokio::fs::remove_dir_all(&ini_dir).await;
    tokio::fs::create_dir_all(&ini_dir)
        .await
        .map_err(|e| error("create its PHP scan directory", e))?;
    let app_ini = format!("{}/php.ini", grove_deployment::APP_DIR);
    tokio::fs::symlink(&app_ini, ini_dir.join("zz-app.ini"))
        .await
        .map_err(|e| error("link its php.ini", e))?;
    let scan_dir = format!("{RUN_DIR}/{PHP_INI_DIR}");
    let disabled = grove_web::disabled_extensions(app);
    if disabled.is_empty() {
        return Ok(format!(
            "[ -f {app_ini} ] && export PHP_INI_SCAN_DIR=:{scan_dir}"
        ));
    }
    // PHP's own scan directory, as the sandbox sees it and as this host reaches it.
    let own = format!("/etc/php/{version}/fpm/conf.d");
    let on_host = match image {
        Some(root) => root.join(own.trim_start_matches('/')),
        None => PathBuf::from(&own),
    };
    let mut entries = tokio::fs::read_dir(&on_host)
        .await
        .map_err(|e| error(&format!("read {}", on_host.display()), e))?;
    while let Some(entry) = entries
        .next_entry()
        .await
        .map_err(|e| error(&format!("read {}", on_host.display()), e))?
    {
        let name = entry.file_name().to_string_lossy().into_owned();
        if !name.ends_with(".ini") || grove_web::ini_enables(&name, &disabled) {
            continue;
        }
        tokio::fs::symlink(format!("{own}/{name}"), ini_dir.join(&name))
            .await
            .map_err(|e| error(&format!("link {name}"), e))?;
    }
    Ok(format!("export PHP_INI_SCAN_DIR={scan_dir}"))
}

async fn write(app: &App, dir: &Path, name: &str, text: &str) -> Result<(), String> {
    tokio::fs::write(dir.join(name), text)
        .await
        .map_err(|e| format!("app `{}`: cannot write its {name}: {e}", app.name))
}

/// The start script of a fronted instance: `first` (PHP-FPM or the app's server) in
/// the background; nginx once `first` accepts connections on `ready`, so the router
/// never reaches an nginx whose upstream is not there yet; then the script ends as
/// soon as either process ends, so that the supervisor restarts the instance whole
/// rather than leaving nginx answering 502 in front of nothing. Unix sockets left
/// by a killed incarnation are removed first (a stale one would pass the probe, or
/// keep nginx from binding). bash for `wait -n` and `/dev/tcp`; the app's own
/// command still runs under dash.
fn supervised_pair(first: &str, ready: &Listen, listen: &Listen) -> String {
    let probe = match ready {
        Listen::Unix(path) => format!("[ -S {path} ]"),
        Listen::Tcp { host, port } => format!("(exec 3<>/dev/tcp/{host}/{port}) 2>/dev/null"),
    };
    let stale: Vec<&str> = [ready, listen]
        .into_iter()
        .filter_map(|l| match l {
            Listen::Unix(path) => Some(path.as_str()),
            Listen::Tcp { .. } => None,
        })
        .collect();
    let cleanup = if stale.is_empty() {
        String::new()
    } else {
        format!("rm -f {}\n", stale.join(" "))
    };
    // As root, nginx's workers would switch to `nobody`, who may not read the app.
    let nginx = format!("/usr/sbin/nginx -e stderr -p {RUN_DIR} -c {RUN_DIR}/nginx.conf");
    let script = format!(
        "root=; [ \"$(id -u)\" = 0 ] && root=1\n\
         {cleanup}{first} &\n\
         first=$!\n\
         until {probe}; do kill -0 $first 2>/dev/null || exit 1; sleep 0.05; done\n\
         if [ -n \"$root\" ]; then {nginx} -g 'user root;' & else {nginx} & fi\n\
         wait -n\n\
         status=$?\n\
         kill $(jobs -p) 2>/dev/null\n\
         exit $(( status == 0 ? 1 : status ))"
    );
    format!("exec bash -c {}", crate::deploy::shell_quote(&script))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_pair_waits_for_its_upstream_and_ends_with_either_process() {
        let script = supervised_pair(
            "python3 app.py",
            &Listen::Tcp {
                host: "127.0.0.1".into(),
                port: 20001,
            },
            &Listen::Unix("/run/app/web.sock".into()),
        );
        assert!(script.contains("rm -f /run/app/web.sock\n"), "{script}");
        assert!(script.starts_with("exec bash -c '"), "{script}");
        assert!(script.contains("/dev/tcp/127.0.0.1/20001"), "{script}");
        assert!(script.contains("wait -n"), "{script}");
        let unix = supervised_pair(
            "php-fpm",
            &Listen::Unix("/run/app/php-fpm.sock".into()),
            &Listen::Tcp {
                host: "127.0.0.1".into(),
                port: 20001,
            },
        );
        assert!(unix.contains("[ -S /run/app/php-fpm.sock ]"), "{unix}");
        assert!(unix.contains("rm -f /run/app/php-fpm.sock\n"), "{unix}");
    }

    #[tokio::test]
    async fn the_pair_ends_when_either_process_ends() {
        // The real script with stand-ins: the "server" is ready at once (a listener
        // of this test) and would run for ever; nginx fails (no configuration here).
        // The pair must end and take the server with it, so that the supervisor
        // restarts the instance whole.
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("listener");
        let port = listener.local_addr().expect("port").port();
        let script = supervised_pair(
            "sleep 1000",
            &Listen::Tcp {
                host: "127.0.0.1".into(),
                port,
            },
            &Listen::Tcp {
                host: "127.0.0.1".into(),
                port,
            },
        );
        let run = tokio::process::Command::new("sh")
            .arg("-c")
            .arg(&script)
            .status();
        // A hang guard, not a timing assertion: without `wait -n` this runs 1000 s.
        let status = tokio::time::timeout(std::time::Duration::from_secs(120), run)
            .await
            .expect("the pair ended")
            .expect("bash runs");
        assert!(!status.success());
    }
}
