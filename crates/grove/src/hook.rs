//! `grove hook pre-receive`: run by git inside a push. Hands the ref updates to the
//! server, prints its log (git shows it to the pusher as `remote:` lines) and accepts
//! the push only when the server says the deploy succeeded.

use std::io::{BufRead, Write};
use std::process::ExitCode;

use anyhow::{Context, bail};
use futures_util::StreamExt;

pub async fn run(name: &str) -> anyhow::Result<ExitCode> {
    if name != "pre-receive" {
        bail!("unknown hook `{name}`");
    }
    let url = std::env::var("GROVE_HOOK_URL").context("GROVE_HOOK_URL is not set")?;
    let token = std::env::var("GROVE_HOOK_TOKEN").context("GROVE_HOOK_TOKEN is not set")?;
    let project = std::env::var("GROVE_PROJECT").context("GROVE_PROJECT is not set")?;

    let mut updates = Vec::new();
    for line in std::io::stdin().lock().lines() {
        let line = line?;
        let mut fields = line.split_whitespace();
        if let (Some(old), Some(new), Some(name)) = (fields.next(), fields.next(), fields.next()) {
            updates.push(grove_api::RefUpdate {
                old: old.into(),
                new: new.into(),
                name: name.into(),
            });
        }
    }
    let count: usize = std::env::var("GIT_PUSH_OPTION_COUNT")
        .ok()
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let push_options = (0..count)
        .filter_map(|i| std::env::var(format!("GIT_PUSH_OPTION_{i}")).ok())
        .collect();
    let request = grove_api::PreReceive {
        project,
        updates,
        push_options,
        git_env: quarantine_env()?,
        user: std::env::var("GROVE_USER").ok(),
    };

    let response = reqwest::Client::new()
        .post(&url)
        .bearer_auth(token)
        .json(&request)
        .send()
        .await
        .context("cannot reach the grove server")?;
    if !response.status().is_success() {
        bail!("the grove server refused the push: {}", response.status());
    }
    let mut stream = response.bytes_stream();
    let mut buffer = Vec::new();
    let mut stdout = std::io::stdout();
    while let Some(chunk) = stream.next().await {
        buffer.extend_from_slice(&chunk.context("the grove server closed the stream")?);
        while let Some(end) = buffer.iter().position(|b| *b == b'\n') {
            let line: Vec<u8> = buffer.drain(..=end).collect();
            let event: serde_json::Value = serde_json::from_slice(&line).unwrap_or_default();
            if let Some(message) = event.get("message").and_then(|m| m.as_str()) {
                writeln!(stdout, "{message}")?;
                stdout.flush()?;
            } else if let Some(result) = event.get("result").and_then(|r| r.as_str()) {
                return Ok(if result == "success" {
                    ExitCode::SUCCESS
                } else {
                    ExitCode::FAILURE
                });
            }
        }
    }
    bail!("the grove server ended the push without a result")
}

/// Git's quarantine variables, with relative paths made absolute: the server reads
/// the pushed objects from its own working directory.
fn quarantine_env() -> anyhow::Result<Vec<(String, String)>> {
    let cwd = std::env::current_dir()?;
    let mut env = Vec::new();
    for name in [
        "GIT_OBJECT_DIRECTORY",
        "GIT_ALTERNATE_OBJECT_DIRECTORIES",
        "GIT_QUARANTINE_PATH",
    ] {
        let Ok(value) = std::env::var(name) else {
            continue;
        };
        let absolute: Vec<String> = value
            .split(':')
            .filter(|p| !p.is_empty())
            .map(|p| cwd.join(p).display().to_string())
            .collect();
        env.push((name.to_string(), absolute.join(":")));
    }
    Ok(env)
}
