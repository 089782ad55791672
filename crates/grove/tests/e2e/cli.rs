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

    // --date-fmt: date columns in a PHP date() format (UTC), the rest as it was.
    let row = |fmt: Option<&str>| {
        let mut args = vec![
            "activity:list",
            "-p",
            "shop",
            "--limit",
            "1",
            "--format",
            "tsv",
            "--no-header",
            "--columns",
            "created,id",
        ];
        args.extend(fmt.map(|f| ["--date-fmt", f]).into_iter().flatten());
        let out = server.cli_ok(&args);
        let (created, id) = out.trim_end().split_once('\t').expect("two columns");
        (created.to_owned(), id.to_owned())
    };
    let (stored, id_then) = row(None);
    assert!(stored.ends_with('Z') && stored.contains('T'), "{stored}");
    let (unix, id_unix) = row(Some("U"));
    let (short, _) = row(Some("Y-m-d H:i"));
    let (iso, _) = row(Some("c"));
    assert_eq!(id_unix, id_then, "only dates change");
    let seconds: i64 = unix.parse().unwrap_or_else(|e| panic!("{unix}: {e}"));
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs() as i64;
    assert!((0..86_400).contains(&(now - seconds)), "{unix} vs {now}");
    assert_eq!(short, format!("{} {}", &stored[..10], &stored[11..16]));
    assert_eq!(iso, format!("{}+00:00", &stored[..19]));
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

/// The activities of `shop` as JSON.
fn activities(server: &Server) -> Vec<serde_json::Value> {
    let listed = server.cli_ok(&["activity:list", "-p", "shop", "--format", "json"]);
    serde_json::from_str(&listed).expect("activity list json")
}

fn activity(server: &Server, id: &str) -> serde_json::Value {
    activities(server)
        .into_iter()
        .find(|a| a["id"] == id)
        .unwrap_or_else(|| panic!("no activity {id}"))
}

#[test]
fn cancelling_a_running_build_leaves_the_previous_deployment_serving() {
    let (server, work) = shop_with_a_long_build(1);
    let url = crate::primary_url(&server, "main");
    let before = crate::support::curl_json(&url);
    let deployed = work.git(&["rev-parse", "HEAD"]);

    // A build that would take two minutes.
    let yaml = std::fs::read_to_string(work.path().join(".platform.app.yaml")).expect("yaml");
    work.write(
        ".platform.app.yaml",
        &yaml.replace(
            "    set -e\n",
            "    set -e\n    echo slow build starts\n    sleep 120\n",
        ),
    );
    work.commit("a slow build");
    std::thread::scope(|scope| {
        let push = scope.spawn(|| work.push(&server.git_url("shop"), &["main"]));
        // Wait until the build hook runs.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
        let running = loop {
            assert!(
                std::time::Instant::now() < deadline,
                "the build never started"
            );
            let found = activities(&server).into_iter().find(|a| {
                a["state"] == "in_progress"
                    && a["description"].as_str().is_some_and(|d| !d.is_empty())
            });
            if let Some(a) = found {
                let id = a["id"].as_str().unwrap_or_default().to_owned();
                let log = server.cli_ok(&["activity:log", "-p", "shop", &id, "--no-follow"]);
                if log.contains("slow build starts") {
                    break id;
                }
            }
            std::thread::sleep(std::time::Duration::from_millis(200));
        };

        // A redeploy queued behind it is cancelled before it starts.
        let queued = server.cli_ok(&["environment:redeploy", "-p", "shop", "-e", "main", "-W"]);
        let queued = queued.trim();
        assert_eq!(activity(&server, queued)["state"], "pending");
        server.cli_ok(&["activity:cancel", "-p", "shop", queued]);

        // The running build is stopped; the push fails and says why.
        server.cli_ok(&["activity:cancel", "-p", "shop", &running]);
        let (ok, out) = push.join().expect("push thread");
        assert!(!ok, "{out}");
        assert!(out.contains("the activity was cancelled"), "{out}");
        assert_eq!(activity(&server, &running)["result"], "cancelled");
    });
    let queued_done = activities(&server)
        .into_iter()
        .find(|a| {
            a["description"]
                .as_str()
                .is_some_and(|d| d.contains("edeploy"))
        })
        .expect("the redeploy activity");
    assert_eq!(queued_done["state"], "complete", "{queued_done}");
    assert_eq!(queued_done["result"], "cancelled", "{queued_done}");

    // The previous deployment serves, the branch did not move.
    assert_eq!(crate::support::curl_json(&url), before);
    let remote = work.git(&["ls-remote", &server.git_url("shop"), "main"]);
    assert!(
        String::from_utf8_lossy(&remote.stdout)
            .starts_with(String::from_utf8_lossy(&deployed.stdout).trim()),
        "main moved"
    );

    // A complete activity cannot be cancelled: refused by the platform (exit 3).
    let out = server.cli(&[
        "activity:cancel",
        "-p",
        "shop",
        queued_done["id"].as_str().unwrap_or(""),
    ]);
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("already complete"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn environment_logs_by_type_and_routes() {
    let (server, _work) = shop_with_a_long_build(3);
    let url = crate::primary_url(&server, "main");

    // `deploy`: the push's log, build output included.
    let deploy = server.cli_ok(&["environment:logs", "deploy", "-p", "shop", "-e", "main"]);
    assert!(deploy.contains("build line 3\n"), "{deploy}");
    assert!(deploy.starts_with("--- "), "{deploy}");
    let last = server.cli_ok(&["log", "deploy", "-p", "shop", "-e", "main", "--lines", "1"]);
    assert_eq!(last.lines().count(), 1, "{last:?}");

    // `app`, followed: a request shows up in the app's log while `--tail` runs.
    let mut tail = server
        .cli_command(&[
            "environment:logs",
            "app",
            "-p",
            "shop",
            "-e",
            "main",
            "--tail",
        ])
        .stdout(Stdio::piped())
        .spawn()
        .expect("grove --tail");
    let pid = tail.id();
    let reader = std::thread::spawn({
        let stdout = tail.stdout.take().expect("stdout");
        move || {
            use std::io::BufRead;
            std::io::BufReader::new(stdout)
                .lines()
                .map_while(Result::ok)
                .find(|line| line.contains("/followed-request"))
        }
    });
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while !reader.is_finished() && std::time::Instant::now() < deadline {
        crate::support::curl(&format!("{url}followed-request"));
        std::thread::sleep(std::time::Duration::from_millis(500));
    }
    let _ = Command::new("kill").arg(pid.to_string()).status();
    let _ = tail.wait();
    let seen = reader.join().expect("reader");
    assert!(seen.is_some(), "the request never reached the followed log");
    let app = server.cli_ok(&["environment:logs", "-p", "shop", "-e", "main"]);
    assert!(app.contains("/followed-request"), "{app}");

    // `access`: the router's line per request, in nginx's combined format (its writer
    // runs behind the requests: looked at until it is there).
    crate::support::curl(&format!("{url}access-probe?q=1"));
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    let access = loop {
        let access = server.cli_ok(&["environment:logs", "access", "-p", "shop", "-e", "main"]);
        if access.contains("/access-probe") || std::time::Instant::now() > deadline {
            break access;
        }
        std::thread::sleep(std::time::Duration::from_millis(200));
    };
    let line = access
        .lines()
        .find(|l| l.contains("/access-probe"))
        .unwrap_or_else(|| panic!("no line of the request in the access log:\n{access}"));
    assert!(
        line.starts_with("127.")
            && line.contains("\"GET /access-probe?q=1 HTTP/1.1\" ")
            && line.contains("\"curl/"),
        "{line}"
    );
    assert!(
        access
            .lines()
            .any(|l| l.contains("\"GET /followed-request HTTP/1.1\" ")),
        "{access}"
    );

    // An unknown type is refused with the types there are.
    let out = server.cli(&["environment:logs", "nginx", "-p", "shop", "-e", "main"]);
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("types: app, access, deploy, cron"),
        "{}",
        stderr(&out)
    );

    // Routes.
    let routes = server.cli_ok(&[
        "route:list",
        "-p",
        "shop",
        "-e",
        "main",
        "--format",
        "tsv",
        "--columns",
        "route,type,to",
        "--no-header",
    ]);
    assert!(
        routes.contains(&format!("{url}\tupstream\tapp\n")),
        "{routes}"
    );
    let upstream = server.cli_ok(&[
        "route:get",
        &url,
        "-p",
        "shop",
        "-e",
        "main",
        "-P",
        "upstream",
    ]);
    assert_eq!(upstream, "app\n");
}

#[test]
fn long_operations_show_a_spinner_on_a_terminal_and_plain_lines_elsewhere() {
    let (server, work) = shop_with_a_long_build(1);
    let yaml = std::fs::read_to_string(work.path().join(".platform.app.yaml")).expect("yaml");
    work.write(
        ".platform.app.yaml",
        &yaml.replace("hooks:\n", "hooks:\n  deploy: sleep 1\n"),
    );
    work.commit("a deploy hook that takes a second");
    let (ok, out) = work.push(&server.git_url("shop"), &["main"]);
    assert!(ok, "{out}");
    // Under a pseudo-terminal (`script`): the log lines, and the spinner's message
    // drawn under them while the redeploy runs.
    let redeploy = format!("{GROVE} environment:redeploy -p shop -e main");
    let out = bash(
        &server,
        &format!("script -qec '{redeploy}' /dev/null"),
        server.dir.path(),
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let terminal = stdout(&out);
    assert!(terminal.contains("Activity "), "{terminal}");
    assert!(
        terminal.contains(" activity ") && terminal.contains('\u{1b}'),
        "no spinner drawn:\n{terminal}"
    );
    // Without a terminal: the same lines, no spinner, no escape sequences.
    let out = server.cli(&["environment:redeploy", "-p", "shop", "-e", "main"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stderr(&out).contains("Activity "), "{}", stderr(&out));
    assert!(!stderr(&out).contains('\u{1b}'), "{}", stderr(&out));
}
