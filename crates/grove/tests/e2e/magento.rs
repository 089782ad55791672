//! A project shaped like the Magento Cloud default deploys unchanged: `.magento.app.yaml`
//! with its three locations and the `/static/version…` rule, `mysql` and `redis`
//! relationships used through PHP's real extensions, the old string form of mounts,
//! a `bin/magento cron:run` cron, build/deploy/post_deploy hooks, the `composer`
//! flavor (with no dependencies: the PHP package registry is out of reach here).

use crate::primary_url;
use crate::support::{Server, Work, curl_json, get};

#[test]
fn a_magento_shaped_project_deploys_unchanged_on_php_8_2() {
    magento_shaped_project_deploys_unchanged("8.2");
}

/// PHP 8.4 comes from the runtime image of Debian trixie (built by the first test that
/// needs it, shared with the `images` tests).
#[test]
fn a_magento_shaped_project_deploys_unchanged_on_php_8_4() {
    magento_shaped_project_deploys_unchanged("8.4");
}

fn magento_shaped_project_deploys_unchanged(php: &str) {
    let server = Server::start_with(&[("GROVE_IMAGES_DIR", &crate::images::images_dir())]);
    server.cli_ok(&["project:create", "shop"]);
    let work = Work::fixture("magento-app");
    let config = std::fs::read_to_string(work.path().join(".magento.app.yaml"))
        .expect("app config")
        .replace("type: php:8.2", &format!("type: php:{php}"));
    work.write(".magento.app.yaml", &config);
    work.commit(&format!("on PHP {php}"));
    let (ok, out) = work.push(&server.git_url("shop"), &["main"]);
    assert!(ok, "{out}");
    for said in [
        "Running the `composer` build flavor",
        "Compiled",
        "Upgraded",
        "Warmed",
        "Scheduled 1 cron(s)",
        // The versions the project asks for run on the host's newer ones, said.
        "mysql:10.6 runs on the installed mariadb:10.11",
        "redis:6.0 runs on the installed redis:7.0",
    ] {
        assert!(out.contains(said), "`{said}` missing from:\n{out}");
    }
    let url = primary_url(&server, "main");
    let base = url.trim_end_matches('/');

    // The front controller, through PDO (MariaDB) and phpredis, with the services
    // found in MAGENTO_CLOUD_RELATIONSHIPS.
    let first = curl_json(&url);
    assert_eq!(first["rows"], 1, "{first}");
    assert_eq!(first["hits"], 1, "{first}");
    assert_eq!(first["php"], php, "{first}");
    assert_eq!(first["application"], "mymagento", "{first}");
    assert_eq!(first["environment"], "main", "{first}");
    assert_eq!(first["deployed"], true, "{first}");
    assert!(
        first["compiled"]
            .as_str()
            .is_some_and(|c| c.starts_with("compiled for ") && c.len() > 20),
        "{first}"
    );
    let product = curl_json(&format!("{base}/catalog/product/42?color=red"));
    assert_eq!(
        product["path"], "/catalog/product/42?color=red",
        "{product}"
    );
    assert_eq!((&product["rows"], &product["hits"]), (&2.into(), &2.into()));

    // Static content from the `pub/static` mount, through the versioned URL, for a
    // year; what is missing goes to the static front controller, not index.php.
    let (status, head, body) = get(&format!(
        "{base}/static/version1700000000/frontend/styles.css"
    ));
    assert_eq!(status, 200, "{head}{body}");
    assert_eq!(body, "body { color: #f26322; }\n");
    assert!(head.contains("cache-control: max-age=31536000"), "{head}");
    let (status, _, body) = get(&format!("{base}/static/frontend/missing.css"));
    assert_eq!((status, body.as_str()), (404, "no such static file\n"));
    let (status, _, body) = get(&format!("{base}/media/catalog/none.jpg"));
    assert_eq!((status, body.as_str()), (404, "no such media\n"));

    // Only `pub` is served: the code outside it is never shown, and PHP source never.
    for path in [
        "/composer.json",
        "/bin/magento",
        "/index.php.txt",
        "/../src/Relationships.php",
    ] {
        let (_, _, body) = get(&format!("{base}{path}"));
        assert!(
            !body.contains("psr-4") && !body.contains("<?php"),
            "{path}: {body}"
        );
    }
}
