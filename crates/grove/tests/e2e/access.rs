//! Users, roles and tokens, end to end: what each role may do on each environment type
//! through the CLI and git, cross-origin form posts refused, tokens that stop working
//! when deleted.

use std::process::{Command, Output};

use crate::support::{GROVE, Server, Work};

/// Who did what to whom, as the test sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    /// The access check passed: the operation ran, or was refused for the state it
    /// found (409, e.g. "already active"), never with 401/403/404.
    Allowed,
    /// 403, with a message naming the role needed.
    Forbidden,
    /// 404: the project does not exist for this user.
    Hidden,
}

/// The environments of the matrix: `main` (production, active), `staging` (staging,
/// child of main, inactive), `dev` (development, child of staging, inactive).
const ENVS: [&str; 3] = ["main", "staging", "dev"];
/// The type `environment:branch` asks for when branching from each of them.
const BRANCH_TYPES: [&str; 3] = ["development", "staging", "development"];
const ACTIONS: [&str; 8] = [
    "info",
    "redeploy",
    "synchronize",
    "merge",
    "branch",
    "activate",
    "deactivate",
    "push",
];

struct Row {
    who: &'static str,
    /// `--role` values of `user:add`; `None`: a user with no role in the project.
    roles: Option<&'static [&'static str]>,
    /// What `environment:list` shows (`None`: 404) and whether `git clone` works.
    sees: Option<&'static str>,
    /// For main, staging, dev: one letter per action of `ACTIONS` — `y` allowed, `f`
    /// forbidden (403), `h` hidden (404). Synchronize also needs sight of the parent;
    /// merge needs admin on the parent's type; branch needs sight of the parent and
    /// contributor on the new environment's type.
    envs: [&'static str; 3],
}

#[rustfmt::skip]
const MATRIX: &[Row] = &[
    //                                                                   main        staging     dev
    Row { who: "project admin", roles: Some(&["admin"]), sees: Some("main staging dev"), envs: ["yyyyyyyy", "yyyyyyyy", "yyyyyyyy"] },
    Row { who: "project viewer", roles: Some(&["viewer"]), sees: Some("main staging dev"), envs: ["yfffffff", "yfffffff", "yfffffff"] },
    Row { who: "production viewer", roles: Some(&["production:viewer"]), sees: Some("main"), envs: ["yfffffff", "ffffffff", "ffffffff"] },
    Row { who: "production contributor", roles: Some(&["production:contributor"]), sees: Some("main"), envs: ["yffffffy", "ffffffff", "ffffffff"] },
    Row { who: "production admin", roles: Some(&["production:admin"]), sees: Some("main"), envs: ["yyyyfyyy", "ffffffff", "ffffffff"] },
    Row { who: "staging viewer", roles: Some(&["staging:viewer"]), sees: Some("staging"), envs: ["ffffffff", "yfffffff", "ffffffff"] },
    Row { who: "staging contributor", roles: Some(&["staging:contributor"]), sees: Some("staging"), envs: ["ffffffff", "yfffyffy", "ffffffff"] },
    Row { who: "staging admin", roles: Some(&["staging:admin"]), sees: Some("staging"), envs: ["ffffffff", "yyffyyyy", "ffffffff"] },
    Row { who: "development viewer", roles: Some(&["development:viewer"]), sees: Some("dev"), envs: ["ffffffff", "ffffffff", "yfffffff"] },
    Row { who: "development contributor", roles: Some(&["development:contributor"]), sees: Some("dev"), envs: ["ffffffff", "ffffffff", "yfffyffy"] },
    Row { who: "development admin", roles: Some(&["development:admin"]), sees: Some("dev"), envs: ["ffffffff", "ffffffff", "yyffyyyy"] },
    Row { who: "staging and development admin", roles: Some(&["staging:admin", "development:admin"]), sees: Some("staging dev"), envs: ["ffffffff", "yyffyyyy", "yyyyyyyy"] },
    Row { who: "no role", roles: None, sees: None, envs: ["hhhhhhhh", "hhhhhhhh", "hhhhhhhh"] },
];

fn expected(letter: char) -> Outcome {
    match letter {
        'y' => Outcome::Allowed,
        'f' => Outcome::Forbidden,
        'h' => Outcome::Hidden,
        other => panic!("unknown matrix letter `{other}`"),
    }
}

/// The CLI with someone else's token.
pub(crate) fn cli_as(server: &Server, token: &str, args: &[&str]) -> Output {
    Command::new(GROVE)
        .args(args)
        .env("GROVE_URL", format!("http://127.0.0.1:{}", server.api_port))
        .env("GROVE_TOKEN", token)
        .env_remove("GROVE_PROJECT")
        .env("GROVE_NO_INTERACTION", "1")
        .current_dir(server.dir.path())
        .output()
        .expect("run grove")
}

pub(crate) fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn api_outcome(out: &Output) -> Outcome {
    let text = text(out);
    assert!(
        !text.contains("(HTTP 401)"),
        "the token was refused: {text}"
    );
    if text.contains("(HTTP 403)") {
        assert!(
            text.contains("needs the `"),
            "a refusal names the role needed: {text}"
        );
        Outcome::Forbidden
    } else if text.contains("(HTTP 404)") {
        assert!(text.contains("no project `shop`"), "{text}");
        Outcome::Hidden
    } else {
        // Done, or refused for the state it found: nothing else counts as allowed.
        assert!(
            out.status.success() || text.contains("(HTTP 409)"),
            "neither done nor refused for the state: {text}"
        );
        Outcome::Allowed
    }
}

fn git_outcome(ok: bool, out: &str) -> Outcome {
    if ok {
        Outcome::Allowed
    } else if out.contains("needs the `") || out.contains("error: 403") {
        Outcome::Forbidden
    } else if out.contains("not found") || out.contains("error: 404") {
        Outcome::Hidden
    } else {
        panic!("git failed for another reason:\n{out}")
    }
}

fn git_url(server: &Server, token: &str, project: &str) -> String {
    format!(
        "http://git:{token}@127.0.0.1:{}/{project}.git",
        server.api_port
    )
}

/// `user:add` as the platform admin; the new user's token.
pub(crate) fn add_user(server: &Server, project: &str, email: &str, roles: &[&str]) -> String {
    let mut args = vec!["user:add", email, "-p", project, "--format", "json"];
    for role in roles {
        args.extend(["--role", role]);
    }
    let added: serde_json::Value =
        serde_json::from_str(&server.cli_ok(&args)).expect("user:add prints JSON");
    added["token"]
        .as_str()
        .unwrap_or_else(|| panic!("a new user's token is printed once: {added}"))
        .to_string()
}

fn api_action(server: &Server, token: &str, action: &str, env: usize) -> Output {
    let e = ENVS[env];
    let args: Vec<&str> = match action {
        "info" => vec!["environment:info", "-p", "shop", "-e", e],
        "redeploy" => vec!["environment:redeploy", "-p", "shop", "-e", e],
        "synchronize" => vec!["environment:synchronize", "code", "-p", "shop", "-e", e],
        "merge" => vec!["environment:merge", "-p", "shop", "-e", e],
        // `dev` exists: an allowed branch is refused for the name (409), cheaply.
        "branch" => vec![
            "environment:branch",
            "dev",
            e,
            "-p",
            "shop",
            "--type",
            BRANCH_TYPES[env],
        ],
        "activate" => vec!["environment:activate", "-p", "shop", "-e", e],
        "deactivate" => vec!["environment:deactivate", "-p", "shop", "-e", e],
        other => panic!("no API action {other}"),
    };
    cli_as(server, token, &args)
}

#[test]
fn roles_decide_what_each_user_may_do_on_each_environment_type() {
    let server = Server::start();
    server.cli_ok(&["project:create", "shop"]);
    server.cli_ok(&["project:create", "other"]);
    let work = Work::example();
    let admin_url = server.git_url("shop");
    let (ok, out) = work.push(&admin_url, &["main"]);
    assert!(ok, "{out}");
    let (ok, out) = work.push(
        &admin_url,
        &["-o", "environment.type=staging", "main:staging"],
    );
    assert!(ok, "{out}");
    let (ok, out) = work.push(
        &admin_url,
        &["-o", "environment.parent=staging", "main:dev"],
    );
    assert!(ok, "{out}");

    let tokens: Vec<String> = MATRIX
        .iter()
        .enumerate()
        .map(|(i, row)| {
            let email = format!("user{i}@example.com");
            match row.roles {
                Some(roles) => add_user(&server, "shop", &email, roles),
                // A user of another project only.
                None => add_user(&server, "other", &email, &["admin"]),
            }
        })
        .collect();

    let mut mismatches = Vec::new();
    // The API first, while every branch is at the same commit (merges and
    // synchronizations find nothing to do), then git.
    for (row, token) in MATRIX.iter().zip(&tokens) {
        let listed = cli_as(
            &server,
            token,
            &["environment:list", "-p", "shop", "--format", "json"],
        );
        match row.sees {
            Some(names) => {
                assert!(
                    listed.status.success(),
                    "{}: list: {}",
                    row.who,
                    text(&listed)
                );
                let envs: Vec<serde_json::Value> =
                    serde_json::from_slice(&listed.stdout).expect("JSON");
                let mut seen: Vec<&str> = envs.iter().filter_map(|e| e["id"].as_str()).collect();
                seen.sort_by_key(|name| ENVS.iter().position(|e| e == name));
                assert_eq!(seen.join(" "), names, "{} lists", row.who);
            }
            None => assert_eq!(api_outcome(&listed), Outcome::Hidden, "{}: list", row.who),
        }
        for (env, letters) in row.envs.iter().enumerate() {
            for (action, letter) in ACTIONS.iter().zip(letters.chars()) {
                if *action == "push" {
                    continue;
                }
                let out = api_action(&server, token, action, env);
                let got = api_outcome(&out);
                if got != expected(letter) {
                    mismatches.push(format!(
                        "{} {action} {}: expected {:?}, got {got:?}: {}",
                        row.who,
                        ENVS[env],
                        expected(letter),
                        text(&out)
                    ));
                }
            }
        }
    }
    for (row, token) in MATRIX.iter().zip(&tokens) {
        let url = git_url(&server, token, "shop");
        let clone_dir = tempfile::tempdir().expect("tempdir");
        let (ok, out) = clone(&url, clone_dir.path());
        let expected_clone = if row.sees.is_some() {
            Outcome::Allowed
        } else {
            Outcome::Hidden
        };
        assert_eq!(
            git_outcome(ok, &out),
            expected_clone,
            "{} clones: {out}",
            row.who
        );
        for (env, letters) in row.envs.iter().enumerate() {
            let letter = letters.chars().nth(7).expect("push column");
            work.commit(&format!("pushed by the {}", row.who));
            let refspec = format!("HEAD:refs/heads/{}", ENVS[env]);
            let (ok, out) = work.push(&url, &[&refspec]);
            let got = git_outcome(ok, &out);
            if got != expected(letter) {
                mismatches.push(format!(
                    "{} push {}: expected {:?}, got {got:?}: {out}",
                    row.who,
                    ENVS[env],
                    expected(letter)
                ));
            }
        }
    }
    assert!(
        mismatches.is_empty(),
        "{} cell(s) of the matrix differ:\n{}",
        mismatches.len(),
        mismatches.join("\n---\n")
    );
}

/// A push that creates an environment needs contributor on the type it will get.
#[test]
fn a_new_branch_is_pushed_with_the_role_of_the_type_it_will_get() {
    let server = Server::start();
    server.cli_ok(&["project:create", "shop"]);
    let work = Work::example();
    assert!(work.push(&server.git_url("shop"), &["main"]).0);
    let token = add_user(
        &server,
        "shop",
        "dev@example.com",
        &["development:contributor"],
    );
    let url = git_url(&server, &token, "shop");

    let (ok, out) = work.push(&url, &["main:feature"]);
    assert!(ok, "a new development environment: {out}");
    let (ok, out) = work.push(&url, &["-o", "environment.type=staging", "main:qa"]);
    assert!(!ok, "a new staging environment needs a staging role");
    assert!(
        out.contains("needs the `contributor` role on the `staging` type"),
        "{out}"
    );
    let (ok, out) = work.push(&url, &[":feature"]);
    assert!(!ok, "deleting the environment by push needs admin");
    assert!(
        out.contains("needs the `admin` role on the `development` type"),
        "{out}"
    );
    // A rewrite of the branch (force push) needs admin too.
    work.commit("one");
    assert!(work.push(&url, &["HEAD:feature"]).0);
    work.git(&[
        "commit",
        "-q",
        "--amend",
        "--allow-empty",
        "-m",
        "rewritten",
    ]);
    let (ok, out) = work.push(&url, &["--force", "HEAD:feature"]);
    assert!(!ok, "a force push needs admin");
    assert!(out.contains("to force-push to"), "{out}");
    let branches = server.cli_ok(&["environment:list", "-p", "shop", "--format", "json"]);
    assert!(!branches.contains("\"qa\""), "{branches}");
}

fn clone(url: &str, dir: &std::path::Path) -> (bool, String) {
    let out = Command::new("git")
        .args(["clone", "-q", url])
        .arg(dir.join("checkout"))
        .env("GIT_TERMINAL_PROMPT", "0")
        .output()
        .expect("git runs");
    (out.status.success(), text(&out))
}

/// `curl` with a method, headers and an optional body; (status, body).
fn request(method: &str, url: &str, headers: &[String], body: Option<&str>) -> (u16, String) {
    let mut cmd = Command::new("curl");
    cmd.args([
        "-sS",
        "--max-time",
        "30",
        "-X",
        method,
        "-w",
        "\n%{http_code}",
    ]);
    for header in headers {
        cmd.args(["-H", header]);
    }
    if let Some(body) = body {
        cmd.args(["--data-raw", body]);
    }
    let out = cmd.arg(url).output().expect("curl runs");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, code) = text.rsplit_once('\n').unwrap_or(("", "0"));
    (code.trim().parse().unwrap_or(0), body.to_string())
}

#[test]
fn cross_origin_form_posts_are_refused_and_tokens_work_until_deleted() {
    let server = Server::start();
    server.cli_ok(&["project:create", "shop"]);
    let api = format!("http://127.0.0.1:{}", server.api_port);
    let bearer = format!("Authorization: Bearer {}", server.token());

    // What a page elsewhere can make a browser send: a form post, with the credentials
    // the browser holds (here even a bearer token), and a bodyless post.
    let form = [
        bearer.clone(),
        "Content-Type: application/x-www-form-urlencoded".to_string(),
        "Origin: http://evil.example".to_string(),
    ];
    let (status, body) = request(
        "POST",
        &format!("{api}/api/projects"),
        &form,
        Some("name=forged"),
    );
    assert_eq!(status, 403, "{body}");
    let error: serde_json::Value = serde_json::from_str(&body).expect("typed error body");
    assert_eq!(error["error"]["kind"], "forbidden", "{body}");
    assert!(
        error["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .contains("application/json"),
        "{body}"
    );
    let (status, body) = request(
        "POST",
        &format!("{api}/api/projects/shop/environments/main/redeploy"),
        std::slice::from_ref(&bearer),
        None,
    );
    assert_eq!(status, 403, "a bodyless post: {body}");
    let basic = format!(
        "Authorization: Basic {}",
        base64_encode(&format!("git:{}", server.token()))
    );
    let (status, _) = request(
        "DELETE",
        &format!("{api}/api/projects/shop/environments/main"),
        &[basic],
        None,
    );
    assert_eq!(status, 403, "with basic auth as a browser caches it");
    let projects = server.cli_ok(&["project:list", "--format", "json"]);
    assert!(!projects.contains("forged"), "{projects}");
    // The same requests from a program pass the check (and meet the next one).
    let (status, body) = request(
        "POST",
        &format!("{api}/api/projects/shop/environments/main/redeploy"),
        &[bearer.clone(), "X-Grove-Client: test".to_string()],
        None,
    );
    assert_eq!(status, 404, "no environment yet: {body}");
    let (status, body) = request(
        "POST",
        &format!("{api}/api/projects"),
        &[bearer.clone(), "Content-Type: application/json".to_string()],
        Some(r#"{"name": "json-made"}"#),
    );
    assert_eq!(status, 201, "{body}");

    // A project admin manages users; a viewer may not, and may not create projects.
    let lead = add_user(&server, "shop", "lead@example.com", &["admin"]);
    let dev = {
        let out = cli_as(
            &server,
            &lead,
            &[
                "user:add",
                "dev@example.com",
                "-p",
                "shop",
                "--role",
                "development:contributor",
                "--format",
                "json",
            ],
        );
        assert!(out.status.success(), "{}", text(&out));
        let added: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
        assert_eq!(added["role"], "viewer");
        assert_eq!(
            added["environment_types"],
            serde_json::json!({"development": "contributor"})
        );
        added["token"].as_str().expect("token").to_string()
    };
    let out = cli_as(&server, &dev, &["user:add", "x@example.com", "-p", "shop"]);
    assert!(
        text(&out).contains("(HTTP 403)")
            && text(&out).contains("needs the `admin` role on project"),
        "{}",
        text(&out)
    );
    let out = cli_as(&server, &dev, &["project:create", "mine"]);
    assert!(text(&out).contains("(HTTP 403)"), "{}", text(&out));
    let out = cli_as(&server, &dev, &["project:list", "--format", "json"]);
    let listed = String::from_utf8_lossy(&out.stdout);
    assert!(
        listed.contains("\"shop\"") && !listed.contains("json-made"),
        "a user lists only their projects: {listed}"
    );
    let users = cli_as(
        &server,
        &lead,
        &["user:list", "-p", "shop", "--format", "json"],
    );
    let users: Vec<serde_json::Value> = serde_json::from_slice(&users.stdout).expect("JSON");
    assert_eq!(users.len(), 2, "{users:?}");
    let updated = cli_as(
        &server,
        &lead,
        &[
            "user:update",
            "dev@example.com",
            "-p",
            "shop",
            "--role",
            "staging:viewer",
            "--role",
            "development:none",
            "--format",
            "json",
        ],
    );
    let updated: serde_json::Value = serde_json::from_slice(&updated.stdout).expect("JSON");
    assert_eq!(
        updated["environment_types"],
        serde_json::json!({"staging": "viewer"})
    );
    let got = cli_as(
        &server,
        &lead,
        &["user:get", "dev@example.com", "-p", "shop"],
    );
    assert!(text(&got).contains("staging"), "{}", text(&got));

    // Tokens: one's own, created, listed, deleted; a deleted one stops working.
    let created = cli_as(
        &server,
        &dev,
        &["auth:token-create", "--name", "ci", "--format", "json"],
    );
    assert!(created.status.success(), "{}", text(&created));
    let created: serde_json::Value = serde_json::from_slice(&created.stdout).expect("JSON");
    let ci = created["token"]
        .as_str()
        .expect("secret shown once")
        .to_string();
    let id = created["id"].to_string();
    let listed = cli_as(&server, &ci, &["auth:token-list", "--format", "json"]);
    let listed_text = String::from_utf8_lossy(&listed.stdout).into_owned();
    let tokens: Vec<serde_json::Value> = serde_json::from_str(&listed_text).expect("JSON");
    assert_eq!(tokens.len(), 2, "the first token and `ci`: {listed_text}");
    assert!(
        !listed_text.contains(&ci),
        "never the secret: {listed_text}"
    );
    let out = cli_as(&server, &lead, &["auth:token-delete", &id]);
    assert!(
        text(&out).contains("(HTTP 404)"),
        "another user's token is not theirs to delete: {}",
        text(&out)
    );
    let out = cli_as(&server, &dev, &["auth:token-delete", &id]);
    assert!(out.status.success(), "{}", text(&out));
    let out = cli_as(&server, &ci, &["project:list"]);
    assert!(text(&out).contains("(HTTP 401)"), "{}", text(&out));
    let (ok, out) = clone(
        &git_url(&server, &ci, "shop"),
        tempfile::tempdir().expect("tmp").path(),
    );
    assert!(!ok && !out.contains("Cloning into"), "{out}");
    let out = cli_as(&server, &dev, &["project:list"]);
    assert!(
        out.status.success(),
        "the other token still works: {}",
        text(&out)
    );

    // Removed from the project, it no longer exists for them.
    server.cli_ok(&["user:delete", "dev@example.com", "-p", "shop"]);
    let out = cli_as(&server, &dev, &["environment:list", "-p", "shop"]);
    assert!(text(&out).contains("(HTTP 404)"), "{}", text(&out));
}

fn base64_encode(input: &str) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let bytes = input.as_bytes();
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}
