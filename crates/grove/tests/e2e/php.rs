//! PHP apps as on Platform.sh: PHP-FPM of the app's version behind nginx, which serves
//! `web.locations` exactly (static files, front controllers, `scripts`).

use std::process::Command;

use crate::primary_url;
use crate::support::{Server, Work, curl, curl_json, get};

const APP_YAML: &str = r#"name: shop
type: php:8.2
build:
  flavor: none
runtime:
  disabled_extensions: [calendar]
variables:
  php:
    memory_limit: 96M
web:
  locations:
    "/":
      root: public
      passthru: /index.php
      index: [index.php]
      scripts: true
      allow: false
      rules:
        \.(css|js)$:
          allow: true
    "/static":
      root: public/static
      allow: true
      scripts: false
      expires: 1y
      passthru: /index.php
      rules:
        ^/static/version\d+/(?<resource>.*)$:
          passthru: /static/$resource
    "/private":
      root: public/private
      allow: true
      scripts: false
      passthru: false
"#;

#[test]
fn a_php_app_is_served_by_php_fpm_with_its_locations() {
    let server = Server::start();
    server.cli_ok(&["project:create", "shop"]);
    let work = Work::example();
    work.write(".platform.app.yaml", APP_YAML);
    work.write(
        "public/index.php",
        "<?php\nheader('Content-Type: application/json');\necho json_encode([\n  'uri' => $_SERVER['REQUEST_URI'],\n  'branch' => getenv('PLATFORM_BRANCH'),\n  'memory_limit' => ini_get('memory_limit'),\n  'php' => PHP_MAJOR_VERSION . '.' . PHP_MINOR_VERSION,\n  'max_input_vars' => ini_get('max_input_vars'),\n  'calendar' => extension_loaded('calendar'),\n  'ctype' => extension_loaded('ctype'),\n]);\n",
    );
    // A php.ini at the app root is read by PHP-FPM.
    work.write("php.ini", "max_input_vars = 4321\n");
    work.write("public/static/style.css", "body { color: green }\n");
    work.write(
        "public/private/secret.php",
        "<?php echo 'EXECUTED'; // THE SECRET SOURCE\n",
    );
    work.commit("a PHP app");
    let (ok, out) = work.push(&server.git_url("shop"), &["main"]);
    assert!(ok, "{out}");
    let url = primary_url(&server, "main");
    let base = url.trim_end_matches('/');

    // The front controller, for a path no file serves.
    let served = curl_json(&format!("{base}/products/42?color=red"));
    assert_eq!(served["uri"], "/products/42?color=red", "{served}");
    assert_eq!(served["branch"], "main", "{served}");
    assert_eq!(served["memory_limit"], "96M", "{served}");
    assert_eq!(served["php"], "8.2", "{served}");
    assert_eq!(served["max_input_vars"], "4321", "{served}");
    // `runtime.disabled_extensions`: off, and only that one.
    assert_eq!(served["calendar"], false, "{served}");
    assert_eq!(served["ctype"], true, "{served}");

    // A static file with its expiry; the versioned URL is the same file.
    for path in ["/static/style.css", "/static/version17/style.css"] {
        let (status, head, body) = get(&format!("{base}{path}"));
        assert_eq!(status, 200, "{path}: {head}");
        assert_eq!(body, "body { color: green }\n", "{path}");
        assert!(
            head.contains("cache-control: max-age=31536000"),
            "{path}: {head}"
        );
    }

    // `scripts: false`: secret.php is neither run nor shown.
    for path in [
        "/private/secret.php",
        "/private/SECRET.PHP",
        "/private/secret.php/x",
    ] {
        let (status, body) = curl(&format!("{base}{path}"));
        assert!(
            !body.contains("SECRET SOURCE") && !body.contains("EXECUTED"),
            "{path}: {status} {body}"
        );
        assert!(status == 403 || status == 404, "{path}: {status} {body}");
    }

    // PHP-FPM dying takes nginx with it.
    dying_restarts_the_instance_whole(&server, "php-fpm8.2", &url);
}

#[test]
fn a_missing_php_extension_fails_the_deploy_naming_its_package() {
    let server = Server::start();
    server.cli_ok(&["project:create", "shop"]);
    let work = Work::example();
    work.write(
        ".platform.app.yaml",
        "name: shop\ntype: php:8.2\nbuild:\n  flavor: none\nruntime:\n  extensions:\n    - a_missing_extension\nweb:\n  locations:\n    /:\n      root: public\n      passthru: /index.php\n",
    );
    work.write("public/index.php", "<?php echo 'hi';\n");
    work.commit("an extension the host lacks");
    let (ok, out) = work.push(&server.git_url("shop"), &["main"]);
    assert!(!ok, "{out}");
    assert!(out.contains("php8.2-a_missing_extension"), "{out}");
}

#[test]
fn an_apps_static_locations_are_served_by_nginx_in_front_of_its_own_server() {
    let server = Server::start();
    server.cli_ok(&["project:create", "shop"]);
    let work = Work::example();
    // A Django-style app: `collectstatic` output under `/static`, the rest to the app.
    work.write("static/site.css", "body { color: green; }\n");
    let config = std::fs::read_to_string(work.path().join(".platform.app.yaml"))
        .expect("app config")
        + "  locations:\n    \"/\":\n      passthru: true\n    \"/static\":\n      \
           root: static\n      expires: 1h\n      allow: true\n";
    work.write(".platform.app.yaml", &config);
    work.commit("static files");
    let (ok, out) = work.push(&server.git_url("shop"), &["main"]);
    assert!(ok, "{out}");
    let url = primary_url(&server, "main");
    let (status, head, body) = get(&format!("{url}static/site.css"));
    assert_eq!(status, 200, "{head}{body}");
    assert_eq!(body, "body { color: green; }\n");
    assert!(head.contains("cache-control: max-age=3600"), "{head}");
    // `/static` does not pass through: a missing file is nginx's 404, not the app's.
    let (status, _, _) = get(&format!("{url}static/missing.css"));
    assert_eq!(status, 404);
    // Everything else reaches the app's own server, with the request as it came.
    let served = curl_json(&format!("{url}write/through-nginx"));
    assert!(
        served["mount_files"]
            .as_array()
            .is_some_and(|files| files.iter().any(|f| f == "through-nginx")),
        "{served}"
    );

    // The app's server dying takes nginx with it.
    dying_restarts_the_instance_whole(&server, "python3", &url);
}

/// Kills the instance's `comm` process (its server behind nginx): the instance is
/// restarted whole, nginx included, instead of nginx answering 502 in front of
/// nothing.
fn dying_restarts_the_instance_whole(server: &Server, comm: &str, url: &str) {
    let servers = crate::server_processes(server, comm);
    let nginxes = crate::server_processes(server, "nginx");
    assert_eq!(
        (servers.len(), nginxes.len()),
        (1, 1),
        "{servers:?} {nginxes:?}"
    );
    Command::new("kill")
        .args(["-9", &servers[0].to_string()])
        .status()
        .expect("kill");
    let mut restarted = false;
    for _ in 0..300 {
        let now = crate::server_processes(server, "nginx");
        if !now.is_empty() && now != nginxes && get(url).0 == 200 {
            restarted = true;
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let log = std::fs::read_to_string(server.data_dir().join("logs/shop/main/app.log"))
        .unwrap_or_default();
    assert!(restarted, "nginx was not restarted with {comm}:\n{log}");
    assert!(!crate::support::alive(nginxes[0]), "the old nginx is gone");
}

#[test]
fn a_php_app_with_its_own_start_command_runs_it() {
    let server = Server::start();
    server.cli_ok(&["project:create", "shop"]);
    let work = Work::example();
    // Platform.sh runs `web.commands.start` instead of PHP-FPM when there is one
    // (Swoole, RoadRunner, Octane, or PHP's own server as here). PHP's upstream is a
    // unix socket unless the app says `tcp`, as Platform.sh's docs do for this case.
    work.write(
        ".platform.app.yaml",
        "name: app\ntype: php:8.2\nbuild:\n  flavor: none\nweb:\n  upstream:\n    \
         socket_family: tcp\n    protocol: http\n  commands:\n    \
         start: php -S 127.0.0.1:$PORT -t public\n",
    );
    work.write(
        "public/index.php",
        "<?php\nheader('Content-Type: application/json');\necho json_encode(['sapi' => PHP_SAPI, 'port' => getenv('PORT')]);\n",
    );
    work.commit("php with a start command");
    let (ok, out) = work.push(&server.git_url("shop"), &["main"]);
    assert!(ok, "{out}");
    let served = curl_json(&primary_url(&server, "main"));
    assert_eq!(served["sapi"], "cli-server", "{served}");
    assert!(crate::server_processes(&server, "php-fpm8.2").is_empty());
}
