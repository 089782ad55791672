//! `!include` and `!archive`.

use serde_json::json;

use crate::{load_files, project};

#[test]
fn include_kinds() {
    let p = project(&[
        (
            ".platform.app.yaml",
            "name: app\ntype: php:8.3\nvariables: !include {type: yaml, path: .platform/vars.yaml}\nhooks:\n  build: !include {type: string, path: scripts/build.sh}\n",
        ),
        (
            ".platform/vars.yaml",
            "env:\n  A: b\nmy:\n  nested: !include {type: binary, path: key.bin}\n",
        ),
        (".platform/key.bin", "\u{1}\u{2}"),
        ("scripts/build.sh", "set -e\nmake\n"),
        (
            ".platform/services.yaml",
            "search:\n  type: solr:9.6\n  configuration:\n    cores:\n      main:\n        conf_dir: !archive \"conf\"\n      other:\n        conf_dir: !include {type: archive, path: /solr/other}\n",
        ),
        (".platform/conf/schema.xml", "<schema/>"),
        ("solr/other/schema.xml", "<schema/>"),
    ]);
    let app = &p.apps[0];
    assert_eq!(app.hooks.build.as_deref(), Some("set -e\nmake\n"));
    assert_eq!(app.variables["env"]["A"], json!("b"));
    assert_eq!(app.variables["my"]["nested"], json!("AQI="));
    let cores = &p.services[0].configuration["cores"];
    assert_eq!(
        cores["main"]["conf_dir"],
        json!({"archive": ".platform/conf"})
    );
    assert_eq!(cores["other"]["conf_dir"], json!({"archive": "solr/other"}));
}

#[test]
fn include_errors() {
    let err = load_files(&[
        (".platform.app.yaml", "name: app\ntype: php:8.3\nvariables: !include a.yaml\nhooks:\n  build: !include {type: string, path: ../outside}\n  deploy: !include {type: text, path: a.yaml}\n  post_deploy: !include {type: string, path: missing.sh}\n"),
        ("a.yaml", "env: !include b.yaml\nmy: !include c.yaml\n"),
        ("b.yaml", "x: !include a.yaml\n"),
        ("c.yaml", "bad key: [\n"),
    ])
    .expect_err("include errors");
    insta::assert_snapshot!("include_errors", err.to_string());
}

#[test]
fn errors_inside_included_files_point_there() {
    let err = load_files(&[
        (
            ".platform.app.yaml",
            "name: app\ntype: php:8.3\nweb: !include {type: yaml, path: web.yaml}\n",
        ),
        ("web.yaml", "commands:\n  start: x\nlocatoins: {}\n"),
    ])
    .expect_err("unknown key in included file");
    assert_eq!(err.errors[0].file, "web.yaml");
    assert_eq!((err.errors[0].line, err.errors[0].column), (3, 1));
    assert_eq!(err.errors[0].source_line.as_deref(), Some("locatoins: {}"));
}
