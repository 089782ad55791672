//! Running the storage tools: stdin closed, output captured, C locale so
//! that messages can be matched, failures turned into [`VolumeError`]s.

use std::ffi::OsStr;
use std::io;
use std::process::{Command, Stdio};

use crate::VolumeError;

/// The Debian package that ships `program` (see PACKAGES).
fn package_of(program: &str) -> &'static str {
    match program {
        "btrfs" | "mkfs.btrfs" => "btrfs-progs",
        "losetup" | "mount" | "umount" => "mount",
        _ => "coreutils",
    }
}

/// Runs `program args...` and returns its stdout; `action` says what for
/// (`cloning volume a to b`).
pub(crate) fn run<I, S>(action: &str, program: &str, args: I) -> Result<String, VolumeError>
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    let args: Vec<_> = args.into_iter().map(|a| a.as_ref().to_owned()).collect();
    let output = Command::new(program)
        .args(&args)
        .env("LC_ALL", "C")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .output();
    let output = match output {
        Ok(output) => output,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            return Err(VolumeError::ToolMissing {
                action: action.to_owned(),
                program: program.to_owned(),
                package: package_of(program),
            });
        }
        Err(e) => return Err(VolumeError::io(action, program, e)),
    };
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    if output.status.success() {
        return Ok(stdout);
    }
    let stderr = String::from_utf8_lossy(&output.stderr).trim().to_owned();
    let command = std::iter::once(program.to_owned())
        .chain(args.iter().map(|a| a.to_string_lossy().into_owned()))
        .collect::<Vec<_>>()
        .join(" ");
    if stderr.contains("No space left on device") {
        return Err(VolumeError::NoSpace {
            action: action.to_owned(),
            detail: format!("`{command}`: {}", last_line(&stderr)),
        });
    }
    Err(VolumeError::Command {
        action: action.to_owned(),
        command,
        status: output.status.to_string(),
        stderr: if stderr.is_empty() {
            stdout.trim().to_owned()
        } else {
            stderr
        },
    })
}

fn last_line(text: &str) -> &str {
    text.lines().last().unwrap_or(text)
}
