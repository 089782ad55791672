//! The `grove` binary: `grove server` runs the platform, `grove hook` is what git runs
//! inside a push, and every other subcommand is a client of the HTTP API.

mod checkout;
mod cli;
mod dates;
mod hook;
mod output;
mod server;
mod ssh_gate;
mod validate;

use std::process::ExitCode;

use clap::{CommandFactory, Parser, Subcommand};

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "grove",
    version,
    about = "Self-hosted branch environments: every git branch can be an environment.",
    propagate_version = true,
    after_help = output::EXIT_CODES,
)]
struct Grove {
    #[command(flatten)]
    global: output::Global,
    #[command(subcommand)]
    command: Option<Command>,
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
    /// Print a shell completion script: `grove completion bash > /etc/bash_completion.d/grove`.
    Completion {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    #[command(flatten)]
    Client(cli::Client),
}

fn main() -> ExitCode {
    let grove = Grove::parse();
    output::set_global(grove.global);
    let Some(command) = grove.command else {
        return print_commands();
    };
    if let Command::Completion { shell } = command {
        clap_complete::generate(
            shell,
            &mut Grove::command(),
            "grove",
            &mut std::io::stdout(),
        );
        return ExitCode::SUCCESS;
    }
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
        match command {
            Command::Server(args) => server::run(args).await,
            Command::Hook { name } => hook::run(&name).await,
            Command::SshGate(gate) => ssh_gate::run(gate),
            Command::Validate { dir } => validate::run(dir),
            Command::Client(client) => cli::run(client).await,
            Command::Completion { .. } => Ok(ExitCode::SUCCESS),
        }
    });
    match result {
        Ok(code) => code,
        // The reader of our output went away (`| head -1`): it had what it wanted.
        Err(error) if output::is_closed_pipe(&error) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("grove: {error:#}");
            ExitCode::from(output::exit_code(&error))
        }
    }
}

/// `grove` alone: the commands grouped by topic (the part before `:`), as the
/// Platform.sh CLI lists them.
fn print_commands() -> ExitCode {
    let command = Grove::command();
    let mut topics: std::collections::BTreeMap<String, Vec<(String, String)>> =
        std::collections::BTreeMap::new();
    for sub in command.get_subcommands().filter(|s| !s.is_hide_set()) {
        let name = sub.get_name().to_owned();
        let topic = match name.split_once(':') {
            Some((topic, _)) => topic.to_owned(),
            None => "grove".to_owned(),
        };
        let about = sub.get_about().map(|a| a.to_string()).unwrap_or_default();
        let about = about.split(". ").next().unwrap_or_default().to_owned();
        let aliases: Vec<&str> = sub.get_visible_aliases().collect();
        let name = if aliases.is_empty() {
            name
        } else {
            format!("{name} ({})", aliases.join(", "))
        };
        topics.entry(topic).or_default().push((name, about));
    }
    let width = topics
        .values()
        .flatten()
        .map(|(name, _)| name.chars().count())
        .max()
        .unwrap_or(0);
    let mut text = String::from(
        "Grove: self-hosted branch environments.\n\nUsage: grove <COMMAND> [OPTIONS]\n\
         `grove help <COMMAND>` shows a command's options.\n",
    );
    for (topic, commands) in topics {
        text.push_str(&format!("\n{topic}\n"));
        for (name, about) in commands {
            text.push_str(&format!("  {name:<width$}  {about}\n"));
        }
    }
    text.push('\n');
    text.push_str(output::EXIT_CODES);
    text.push('\n');
    use std::io::Write;
    match std::io::stdout().write_all(text.as_bytes()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => ExitCode::SUCCESS,
        Err(_) => ExitCode::FAILURE,
    }
}
