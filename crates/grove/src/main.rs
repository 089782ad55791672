//! The `grove` binary: `grove server` runs the platform, `grove hook` is what git runs
//! inside a push, and every other subcommand is a client of the HTTP API.

mod cli;
mod hook;
mod server;
mod ssh_gate;
mod validate;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "grove",
    version,
    about = "Self-hosted branch environments: every git branch can be an environment.",
    propagate_version = true
)]
struct Grove {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the platform: API, git, router and app instances.
    Server(server::ServerArgs),
    /// Run by git inside a push (installed as the repositories' pre-receive hook).
    #[command(hide = true)]
    Hook {
        /// The hook's name; only `pre-receive` exists.
        name: String,
    },
    /// Run by the SSH gateway's sshd: key lookups and sessions.
    #[command(name = "ssh-gate", hide = true, subcommand)]
    SshGate(ssh_gate::Gate),
    /// Validate a checkout's configuration files without a server (exit 1 on errors).
    #[command(name = "app:config-validate", visible_alias = "validate")]
    Validate {
        /// The checkout (default: the current directory).
        dir: Option<std::path::PathBuf>,
    },
    #[command(flatten)]
    Client(cli::Client),
}

fn main() -> ExitCode {
    let grove = Grove::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("grove: cannot start the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async move {
        match grove.command {
            Command::Server(args) => server::run(args).await,
            Command::Hook { name } => hook::run(&name).await,
            Command::SshGate(gate) => ssh_gate::run(gate),
            Command::Validate { dir } => validate::run(dir),
            Command::Client(client) => cli::run(client).await,
        }
    });
    match result {
        Ok(code) => code,
        Err(error) => {
            eprintln!("grove: {error:#}");
            ExitCode::FAILURE
        }
    }
}
