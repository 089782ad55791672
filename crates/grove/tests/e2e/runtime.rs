//! The runtime as on Platform.sh: what an app's processes see.

use crate::support::curl_json;
use crate::{primary_url, started_project};

#[test]
fn an_environment_file_is_sourced_for_start_commands_and_hooks_but_not_builds() {
    let (server, work, url) = started_project();
    let config = std::fs::read_to_string(work.path().join(".platform.app.yaml"))
        .expect("app config")
        .replace(
            "hooks:\n  build: |\n    set -e\n",
            "hooks:\n  deploy: |\n    echo \"deploy sees greeting: $GREETING, derived: $DERIVED\"\n  \
             build: |\n    set -e\n    echo \"build sees greeting: $GREETING\"\n",
        );
    work.write(".platform.app.yaml", &config);
    // Bash syntax, as Platform.sh sources it with bash; it sees the runtime variables.
    work.write(
        ".environment",
        "if [[ -n \"$PLATFORM_BRANCH\" ]]; then\n  export GREETING=\"sourced on $PLATFORM_BRANCH\"\nfi\nexport DERIVED=\"${GREETING} (derived)\"\n",
    );
    work.commit("an .environment file");
    let (ok, out) = work.push(&url, &["main"]);
    assert!(ok, "{out}");
    assert!(
        out.contains("build sees greeting: hello from grove"),
        "the build does not source it: {out}"
    );
    assert!(
        out.contains("deploy sees greeting: sourced on main, derived: sourced on main (derived)"),
        "the deploy hook does: {out}"
    );
    let served = curl_json(&primary_url(&server, "main"));
    assert_eq!(
        served["variables"]["GREETING"], "sourced on main",
        "the start command does: {served}"
    );
}
