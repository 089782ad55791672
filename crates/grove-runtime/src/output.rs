//! The merged stdout+stderr of a sandboxed command, read line by line.
//!
//! Both streams of the child get the write end of one pipe, so lines arrive in
//! the order the command wrote them (as far as its own buffering allows).

use std::process::Stdio;

use tokio::io::AsyncReadExt;
use tokio::net::unix::pipe;

/// Lines longer than this are cut into pieces: a command that never prints a
/// newline must not make us buffer without bound.
const MAX_LINE: usize = 64 * 1024;

/// Sets the command's stdout and stderr to one pipe and returns its read end.
/// The write ends live only in `cmd` (dropped after spawn) and the child, so the
/// reader sees EOF once every process in the sandbox is gone.
pub(crate) fn merged_output(cmd: &mut tokio::process::Command) -> std::io::Result<LineReader> {
    let (tx, rx) = pipe::pipe()?;
    let write = tx.into_blocking_fd()?;
    let write2 = write.try_clone()?;
    cmd.stdout(Stdio::from(write)).stderr(Stdio::from(write2));
    Ok(LineReader {
        rx,
        buf: Vec::new(),
        eof: false,
    })
}

pub(crate) struct LineReader {
    rx: pipe::Receiver,
    buf: Vec<u8>,
    eof: bool,
}

impl LineReader {
    /// The next line without its newline (lossily decoded), or `None` at EOF.
    /// Cancel-safe: bytes read stay in the buffer.
    pub(crate) async fn next_line(&mut self) -> std::io::Result<Option<String>> {
        loop {
            if let Some(pos) = self.buf.iter().position(|&b| b == b'\n') {
                let mut line: Vec<u8> = self.buf.drain(..=pos).collect();
                line.pop();
                if line.last() == Some(&b'\r') {
                    line.pop();
                }
                return Ok(Some(String::from_utf8_lossy(&line).into_owned()));
            }
            if self.buf.len() >= MAX_LINE {
                let line: Vec<u8> = self.buf.drain(..MAX_LINE).collect();
                return Ok(Some(String::from_utf8_lossy(&line).into_owned()));
            }
            if self.eof {
                if self.buf.is_empty() {
                    return Ok(None);
                }
                let line = std::mem::take(&mut self.buf);
                return Ok(Some(String::from_utf8_lossy(&line).into_owned()));
            }
            let mut chunk = [0u8; 8192];
            let n = self.rx.read(&mut chunk).await?;
            if n == 0 {
                self.eof = true;
            } else {
                self.buf.extend_from_slice(&chunk[..n]);
            }
        }
    }
}
