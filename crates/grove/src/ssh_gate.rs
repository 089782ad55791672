//! `grove ssh-gate`: what the SSH gateway's `sshd` runs. `keys` is its
//! `AuthorizedKeysCommand`; `session` is the forced command of every key it allows,
//! which hands the session's stdin, stdout and stderr to the server and waits for the
//! exit status. Both talk to the server over its gate socket (see `grove-server`'s
//! `ssh` module); neither decides anything itself.

use std::io::{BufRead, BufReader, IoSlice, Write};
use std::mem::MaybeUninit;
use std::os::fd::AsFd;
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::Subcommand;
use grove_api::ssh_gate::{Reply, Request, Session};
use rustix::event::{PollFd, PollFlags, poll};
use rustix::net::{SendAncillaryBuffer, SendAncillaryMessage, SendFlags, sendmsg};

#[derive(Subcommand)]
pub enum Gate {
    /// `AuthorizedKeysCommand … %u %t %k`: prints the `authorized_keys` line of a key.
    Keys {
        socket: PathBuf,
        login: String,
        key_type: String,
        key_data: String,
    },
    /// The forced command of an authenticated key (its fingerprint).
    Session { socket: PathBuf, key: String },
}

pub fn run(gate: Gate) -> anyhow::Result<ExitCode> {
    match gate {
        Gate::Keys {
            socket,
            login,
            key_type,
            key_data,
        } => {
            let request = Request::Keys {
                login,
                key_type,
                key_data,
            };
            let stream = connect(&socket)?;
            send(&stream, &request, false)?;
            let reply = read_reply(&stream)?;
            let mut out = std::io::stdout().lock();
            for line in reply.lines {
                writeln!(out, "{line}")?;
            }
            Ok(ExitCode::SUCCESS)
        }
        Gate::Session { socket, key } => {
            // What sshd says about the session (`USER` is the login it authenticated).
            let var = |name: &str| std::env::var(name).ok();
            let request = Request::Session(Session {
                key,
                login: var("USER").unwrap_or_default(),
                command: var("SSH_ORIGINAL_COMMAND"),
                tty: var("SSH_TTY").is_some(),
                term: var("TERM"),
                git_protocol: var("GIT_PROTOCOL"),
            });
            let stream = connect(&socket)?;
            send(&stream, &request, true)?;
            let code = wait(&stream)?;
            Ok(ExitCode::from(u8::try_from(code).unwrap_or(255)))
        }
    }
}

fn connect(socket: &PathBuf) -> anyhow::Result<UnixStream> {
    UnixStream::connect(socket)
        .with_context(|| format!("the grove server's SSH gate at {}", socket.display()))
}

/// One JSON line, with our stdin, stdout and stderr when `stdio`.
fn send(stream: &UnixStream, request: &Request, stdio: bool) -> anyhow::Result<()> {
    let mut line = serde_json::to_vec(request)?;
    line.push(b'\n');
    let (stdin, stdout, stderr) = (std::io::stdin(), std::io::stdout(), std::io::stderr());
    let fds = [stdin.as_fd(), stdout.as_fd(), stderr.as_fd()];
    let mut space = [MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(3))];
    let mut control = SendAncillaryBuffer::new(&mut space);
    if stdio {
        control.push(SendAncillaryMessage::ScmRights(&fds));
    }
    let sent = sendmsg(
        stream,
        &[IoSlice::new(&line)],
        &mut control,
        SendFlags::empty(),
    )
    .context("sending to the grove server's SSH gate")?;
    (&*stream).write_all(&line[sent..])?;
    Ok(())
}

fn read_reply(stream: &UnixStream) -> anyhow::Result<Reply> {
    let mut line = String::new();
    BufReader::new(stream).read_line(&mut line)?;
    serde_json::from_str(&line).context("the grove server ended the session without a status")
}

/// The server's reply, or 255 as soon as the client is gone: sshd closed the session's
/// pipes or terminal. Exiting closes the socket, which makes the server kill the
/// session's sandbox.
fn wait(stream: &UnixStream) -> anyhow::Result<i32> {
    let (stdout, stderr) = (std::io::stdout(), std::io::stderr());
    loop {
        let mut fds = [
            PollFd::new(stream, PollFlags::IN),
            PollFd::new(&stdout, PollFlags::empty()),
            PollFd::new(&stderr, PollFlags::empty()),
        ];
        match poll(&mut fds, None) {
            Ok(_) => {}
            Err(rustix::io::Errno::INTR) => continue,
            Err(e) => return Err(e.into()),
        }
        if !fds[0].revents().is_empty() {
            return Ok(read_reply(stream)?.exit);
        }
        let gone = PollFlags::ERR | PollFlags::HUP;
        if fds[1].revents().intersects(gone) || fds[2].revents().intersects(gone) {
            return Ok(255);
        }
    }
}
