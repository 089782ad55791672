//! The CLI's conventions, as Platform.sh CLI users have them in their fingers: data on
//! stdout and progress on stderr, listings in several formats, confirmations before
//! destructive operations, exit codes, completion, and the project and environment
//! taken from the git checkout.

use std::process::{Command, Output, Stdio};

use crate::support::{GROVE, Server, Work};

/// A server with project `shop` whose `main` ran a build printing `lines` lines.
fn shop_with_a_long_build(lines: u32) -> (Server, Work) {
    let server = Server::start();
    server.cli_ok(&["project:create", "shop"]);
    let work = Work::example();
    let yaml = std::fs::read_to_string(work.path().join(".platform.app.yaml")).expect("yaml");
    work.write(
        ".platform.app.yaml",
        &yaml.replace(
            "    set -e\n",
            &format!("    set -e\n    seq -f 'build line %g' 1 {lines}\n"),
        ),
    );
    work.commit("a long build log");
    let (ok, out) = work.push(&server.git_url("shop"), &["main"]);
    assert!(ok, "{out}");
    (server, work)
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// `script` run by bash with the CLI's environment (server URL, token), in `dir`.
fn bash(server: &Server, script: &str, dir: &std::path::Path) -> Output {
    let mut bash = Command::new("bash");
    bash.args(["-c", script]).current_dir(dir);
    for (name, value) in server.cli_command(&[]).get_envs() {
        match value {
            Some(value) => bash.env(name, value),
            None => bash.env_remove(name),
        };
    }
    bash.output().expect("bash")
}

/// The id of the newest activity of `shop`.
fn newest_activity(server: &Server) -> String {
    let listed = server.cli_ok(&[
        "activity:list",
        "-p",
        "shop",
        "--limit",
        "1",
        "--format",
        "tsv",
        "--columns",
        "id",
        "--no-header",
    ]);
    let id = listed.trim().to_owned();
    assert!(!id.is_empty() && !id.contains(['\t', '\n']), "{listed:?}");
    id
}

#[test]
fn an_activity_log_goes_to_stdout_whole_and_a_closed_pipe_ends_quietly() {
    let (server, _work) = shop_with_a_long_build(30_000);
    let id = newest_activity(&server);

    // `activity:log ID > file`: the whole log on stdout, nothing of it on stderr.
    let out = server.cli(&["activity:log", "-p", "shop", &id]);
    assert!(out.status.success(), "{}", stderr(&out));
    let log = stdout(&out);
    for line in ["build line 1\n", "build line 15000\n", "build line 30000\n"] {
        assert!(log.contains(line), "missing {line:?} in the log");
    }
    assert!(
        !stderr(&out).contains("build line"),
        "the log went to stderr"
    );
    let script = format!("{GROVE} activity:log -p shop {id} > log.txt && wc -l < log.txt");
    let out = bash(&server, &script, server.dir.path());
    assert_eq!(
        stdout(&out).trim(),
        log.lines().count().to_string(),
        "{}",
        stderr(&out)
    );

    // `| head -1` with pipefail: grove sees the pipe close and exits 0, quietly.
    let script = format!(
        "set -o pipefail; {GROVE} activity:log -p shop {id} | head -1 && \
         {GROVE} activity:list -p shop --limit 50 | head -1"
    );
    let out = bash(&server, &script, server.dir.path());
    assert!(
        out.status.success(),
        "exit {:?}: {}",
        out.status.code(),
        stderr(&out)
    );
    assert_eq!(stdout(&out).lines().count(), 2, "{}", stdout(&out));
    assert_eq!(stderr(&out), "", "nothing on stderr");

    // --no-follow prints the log as it is (complete here) and ends.
    let out = server.cli(&["activity:log", "-p", "shop", &id, "--no-follow"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out), log);

    // --state filters on the server.
    let running = server.cli_ok(&[
        "activity:list",
        "-p",
        "shop",
        "--state",
        "in_progress",
        "--format",
        "csv",
        "--no-header",
    ]);
    assert_eq!(running, "", "nothing runs now");
    let complete = server.cli_ok(&[
        "activity:list",
        "-p",
        "shop",
        "--state",
        "complete",
        "--format",
        "csv",
        "--columns",
        "id,state",
    ]);
    assert!(
        complete.starts_with("ID,STATE\r\n") && complete.contains(&format!("{id},complete\r\n")),
        "{complete:?}"
    );
}

#[test]
fn destructive_commands_ask_and_scripts_must_say_yes() {
    let (server, _work) = shop_with_a_long_build(1);
    server.cli_ok(&["environment:branch", "-p", "shop", "feature", "main"]);

    // No terminal, no --yes: refused (exit 4), saying so; nothing happens.
    let mut refused = server.cli_command(&["environment:delete", "-p", "shop", "-e", "feature"]);
    refused
        .env_remove("GROVE_NO_INTERACTION")
        .stdin(Stdio::null());
    let out = refused.output().expect("grove");
    assert_eq!(out.status.code(), Some(4), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("Delete environment `feature` of project `shop`?")
            && stderr(&out).contains("--yes"),
        "{}",
        stderr(&out)
    );
    let status = server.cli_ok(&["environment:info", "-p", "shop", "-e", "feature", "status"]);
    assert_eq!(status.trim(), "active");
    for command in [
        vec!["environment:deactivate", "-p", "shop", "-e", "feature"],
        vec![
            "environment:synchronize",
            "-p",
            "shop",
            "-e",
            "feature",
            "data",
        ],
        vec!["environment:merge", "-p", "shop", "-e", "feature"],
        vec!["variable:delete", "-p", "shop", "env:X"],
        vec!["user:delete", "-p", "shop", "someone@example.com"],
        vec!["backup:restore", "-p", "shop", "some-backup"],
    ] {
        let mut refused = server.cli_command(&command);
        refused
            .env_remove("GROVE_NO_INTERACTION")
            .stdin(Stdio::null());
        let out = refused.output().expect("grove");
        assert_eq!(out.status.code(), Some(4), "{command:?}: {}", stderr(&out));
        assert!(stderr(&out).contains("Not confirmed"), "{}", stderr(&out));
    }

    // -y goes ahead.
    let mut yes = server.cli_command(&["environment:delete", "-p", "shop", "-e", "feature", "-y"]);
    yes.env_remove("GROVE_NO_INTERACTION").stdin(Stdio::null());
    let out = yes.output().expect("grove");
    assert!(out.status.success(), "{}", stderr(&out));
}

#[test]
fn listings_formats_exit_codes_and_discoverability() {
    let (server, work) = shop_with_a_long_build(1);
    server.cli_ok(&["project:create", "other"]);
    server.cli_ok(&["environment:branch", "-p", "shop", "feature", "main"]);

    // Formats and columns.
    let csv = server.cli_ok(&[
        "environment:list",
        "-p",
        "shop",
        "--format",
        "csv",
        "--columns",
        "id,status",
    ]);
    let mut rows: Vec<&str> = csv.split("\r\n").collect();
    rows.sort();
    assert_eq!(
        rows,
        ["", "ID,STATUS", "feature,active", "main,active"],
        "{csv:?}"
    );
    let tsv = server.cli_ok(&[
        "environment:list",
        "-p",
        "shop",
        "--format",
        "tsv",
        "--columns",
        "machine_name,type",
        "--no-header",
    ]);
    assert!(tsv.lines().all(|l| l.split('\t').count() == 2), "{tsv:?}");
    let out = server.cli(&["environment:list", "-p", "shop", "--columns", "size"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("machine_name"), "{}", stderr(&out));

    // Exit codes: refused by the platform 3, usage 2 with a suggestion.
    let out = server.cli(&["environment:info", "-p", "shop", "-e", "nope"]);
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    let out = server.cli(&["environment:lst"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("environment:list"),
        "{}",
        stderr(&out)
    );

    // `grove` alone: the commands by topic; `grove help COMMAND`; completions.
    let out = server.cli(&[]);
    assert!(out.status.success(), "{}", stderr(&out));
    let listing = stdout(&out);
    for line in [
        "environment\n",
        "  environment:list (",
        "backup\n",
        "Exit codes:",
    ] {
        assert!(listing.contains(line), "missing {line:?} in\n{listing}");
    }
    let help = server.cli_ok(&["help", "activity:log"]);
    assert!(
        help.contains("Examples:") && help.contains("--no-follow"),
        "{help}"
    );
    for (shell, marker) in [
        ("bash", "complete -F"),
        ("zsh", "#compdef grove"),
        ("fish", "complete -c grove"),
    ] {
        let script = server.cli_ok(&["completion", shell]);
        assert!(
            script.contains(marker) && script.contains("environment:list"),
            "{shell}"
        );
    }

    // Inside a checkout with a `grove` remote: its project and branch, although two
    // projects exist and `main` is the default branch.
    work.git(&["remote", "add", "grove", &server.git_url("shop")]);
    work.git(&["checkout", "-q", "-b", "feature"]);
    let out = bash(
        &server,
        &format!("{GROVE} environment:info id && {GROVE} environment:info -e main id"),
        work.path(),
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out), "feature\nmain\n");
}
