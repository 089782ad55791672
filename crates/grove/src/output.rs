//! How the client commands talk to the user, as the Platform.sh CLI does: data asked for
//! on stdout (listings in the `--format` chosen), progress and hints on stderr,
//! confirmations before destructive operations, and documented exit codes.

use std::io::{IsTerminal, Write};
use std::sync::OnceLock;

use anyhow::bail;
use clap::{Args, ValueEnum};
use serde::Serialize;

/// The exit codes of the client commands (also in `grove --help`).
pub const EXIT_CODES: &str = "\
Exit codes:
  0  success
  1  the activity failed, or another error
  2  usage: the command line is wrong
  3  refused by the platform (not found, not allowed, invalid input)
  4  not confirmed: the question was answered no, or could not be asked
  5  the Grove server cannot be reached";

/// A refusal of the platform (an HTTP 4xx answer of the API): exit code 3.
#[derive(Debug, thiserror::Error)]
#[error("{message} (HTTP {status})")]
pub struct Refused {
    pub message: String,
    pub status: u16,
}

/// A confirmation that was not given: exit code 4.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct NotConfirmed(pub String);

/// The server could not be reached: exit code 5.
#[derive(Debug, thiserror::Error)]
#[error("cannot reach the grove server at {0}")]
pub struct Unreachable(pub String);

/// The exit code for an error that ended a command.
pub fn exit_code(error: &anyhow::Error) -> u8 {
    if error.downcast_ref::<Refused>().is_some() {
        3
    } else if error.downcast_ref::<NotConfirmed>().is_some() {
        4
    } else if error.downcast_ref::<Unreachable>().is_some() {
        5
    } else {
        1
    }
}

/// Whether the command ended because stdout was closed (`grove … | head -1`): that is
/// not an error, the reader had what it wanted.
pub fn is_closed_pipe(error: &anyhow::Error) -> bool {
    error.chain().any(|cause| {
        cause
            .downcast_ref::<std::io::Error>()
            .is_some_and(|e| e.kind() == std::io::ErrorKind::BrokenPipe)
    })
}

/// Writes a line to stdout; an error (a closed pipe) ends the command.
macro_rules! outln {
    ($($arg:tt)*) => {
        writeln!(std::io::stdout(), $($arg)*)?
    };
}
pub(crate) use outln;

/// Options every command accepts (global flags).
#[derive(Args, Clone, Debug, Default)]
pub struct Global {
    /// Answer yes to confirmation questions (destructive operations go ahead).
    #[arg(short = 'y', long, global = true)]
    pub yes: bool,
    /// Ask no questions: confirmations are taken as given.
    #[arg(
        long,
        global = true,
        env = "GROVE_NO_INTERACTION",
        value_parser = clap::builder::FalseyValueParser::new()
    )]
    pub no_interaction: bool,
    /// Listings: only these columns, by header name (`--columns id,status`).
    #[arg(long, global = true, value_delimiter = ',')]
    pub columns: Vec<String>,
    /// Listings: no header line (table, plain, csv and tsv).
    #[arg(long, global = true)]
    pub no_header: bool,
    /// Listings: dates in this PHP `date()` format, in UTC (`c` is ISO 8601, `U` Unix
    /// seconds, `Y-m-d H:i` a short form); by default as stored, ISO 8601 with
    /// milliseconds.
    #[arg(long, global = true, value_name = "FORMAT")]
    pub date_fmt: Option<String>,
}

static GLOBAL: OnceLock<Global> = OnceLock::new();

/// Sets the global options once, at start.
pub fn set_global(global: Global) {
    let _ = GLOBAL.set(global);
}

fn global() -> &'static Global {
    GLOBAL.get_or_init(Global::default)
}

/// Asks `question` on the terminal before a destructive or disruptive operation.
/// `--yes` and `--no-interaction` answer it; without a terminal and without them the
/// operation is refused, so that a script never destroys something by accident.
pub fn confirm(question: &str) -> anyhow::Result<()> {
    let global = global();
    if global.yes || global.no_interaction {
        return Ok(());
    }
    if !std::io::stdin().is_terminal() || !std::io::stderr().is_terminal() {
        return Err(NotConfirmed(format!(
            "{question} Not confirmed: no terminal to ask on; give --yes to go ahead"
        ))
        .into());
    }
    let mut stderr = std::io::stderr();
    write!(stderr, "{question} [y/N] ")?;
    stderr.flush()?;
    let mut answer = String::new();
    std::io::stdin().read_line(&mut answer)?;
    if matches!(answer.trim().to_ascii_lowercase().as_str(), "y" | "yes") {
        Ok(())
    } else {
        Err(NotConfirmed("Not confirmed: nothing was done".into()).into())
    }
}

/// A long operation's progress on stderr: its lines as they come and, on a terminal, a
/// spinner with the elapsed time under them; elsewhere the lines alone.
pub struct Progress {
    bar: Option<indicatif::ProgressBar>,
}

impl Progress {
    pub fn start(what: &str) -> Progress {
        let bar = std::io::stderr().is_terminal().then(|| {
            let bar = indicatif::ProgressBar::new_spinner();
            bar.set_style(
                indicatif::ProgressStyle::with_template("{spinner} {elapsed:>4} {msg}")
                    .unwrap_or_else(|_| indicatif::ProgressStyle::default_spinner()),
            );
            bar.set_message(what.to_owned());
            bar.enable_steady_tick(std::time::Duration::from_millis(120));
            bar
        });
        Progress { bar }
    }

    /// Where the operation's lines go.
    pub fn writer(&self) -> ProgressWriter<'_> {
        ProgressWriter {
            progress: self,
            partial: Vec::new(),
        }
    }

    pub fn finish(self) {}
}

impl Drop for Progress {
    fn drop(&mut self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}

/// Writes whole lines above the spinner (or to stderr).
pub struct ProgressWriter<'a> {
    progress: &'a Progress,
    partial: Vec<u8>,
}

impl Write for ProgressWriter<'_> {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.partial.extend_from_slice(bytes);
        while let Some(end) = self.partial.iter().position(|b| *b == b'\n') {
            let line: Vec<u8> = self.partial.drain(..=end).collect();
            let text = String::from_utf8_lossy(&line[..line.len() - 1]);
            match &self.progress.bar {
                Some(bar) => bar.println(text),
                None => writeln!(std::io::stderr(), "{text}")?,
            }
        }
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        std::io::stderr().flush()
    }
}

/// How a command prints what it was asked for.
#[derive(Clone, Copy, ValueEnum, Default, PartialEq, Eq, Debug)]
pub enum Format {
    /// Aligned columns for people.
    #[default]
    Table,
    /// Columns separated by tabs, no alignment: for `cut` and `awk`.
    Plain,
    /// Comma-separated values (RFC 4180 quoting).
    Csv,
    /// Tab-separated values.
    Tsv,
    Json,
    Yaml,
}

pub fn print_value<T: Serialize>(value: &T, format: Format) -> anyhow::Result<()> {
    match format {
        Format::Yaml => write!(std::io::stdout(), "{}", serde_saphyr::to_string(value)?)?,
        _ => outln!("{}", serde_json::to_string_pretty(value)?),
    }
    Ok(())
}

/// A listing: `headers` name the columns (their lower-case, `_`-joined form is what
/// `--columns` takes, e.g. `machine_name`), `cells` gives one row's. JSON and YAML
/// print the rows' full objects.
pub fn print_rows<T: Serialize>(
    rows: &[T],
    format: Format,
    headers: &[&str],
    cells: impl Fn(&T) -> Vec<String>,
) -> anyhow::Result<()> {
    if matches!(format, Format::Json | Format::Yaml) {
        return print_value(&rows, format);
    }
    let global = global();
    let chosen = chosen_columns(headers, &global.columns)?;
    let pick = |row: Vec<String>| -> Vec<String> {
        chosen
            .iter()
            .map(|&i| match &global.date_fmt {
                Some(fmt) => crate::dates::reformat(&row[i], fmt),
                None => row[i].clone(),
            })
            .collect()
    };
    let headers: Vec<String> = pick(headers.iter().map(|h| h.to_string()).collect());
    let table: Vec<Vec<String>> = rows.iter().map(|row| pick(cells(row))).collect();
    let mut out = std::io::stdout().lock();
    let mut lines: Vec<Vec<String>> = Vec::new();
    if !global.no_header {
        lines.push(headers);
    }
    lines.extend(table);
    match format {
        Format::Table => {
            let mut widths = vec![0; chosen.len()];
            for line in &lines {
                for (i, cell) in line.iter().enumerate() {
                    widths[i] = widths[i].max(cell.chars().count());
                }
            }
            for line in lines {
                let text: Vec<String> = line
                    .iter()
                    .enumerate()
                    .map(|(i, c)| format!("{c:<width$}", width = widths[i]))
                    .collect();
                writeln!(out, "{}", text.join("  ").trim_end())?;
            }
        }
        Format::Plain | Format::Tsv => {
            for line in lines {
                let cells: Vec<String> = line.iter().map(|c| tsv_cell(c)).collect();
                writeln!(out, "{}", cells.join("\t"))?;
            }
        }
        Format::Csv => {
            for line in lines {
                let cells: Vec<String> = line.iter().map(|c| csv_cell(c)).collect();
                write!(out, "{}\r\n", cells.join(","))?;
            }
        }
        Format::Json | Format::Yaml => unreachable!("printed as values above"),
    }
    Ok(())
}

/// The indexes of the columns `--columns` names (all when it names none).
fn chosen_columns(headers: &[&str], wanted: &[String]) -> anyhow::Result<Vec<usize>> {
    if wanted.is_empty() {
        return Ok((0..headers.len()).collect());
    }
    let key = |header: &str| header.trim().to_ascii_lowercase().replace([' ', '-'], "_");
    let keys: Vec<String> = headers.iter().map(|h| key(h)).collect();
    let mut chosen = Vec::new();
    for name in wanted {
        match keys.iter().position(|k| *k == key(name)) {
            Some(i) => chosen.push(i),
            None => bail!(
                "no column `{name}` here; the columns are: {}",
                keys.join(", ")
            ),
        }
    }
    Ok(chosen)
}

/// Tabs and line breaks inside a cell would break the columns: written as spaces.
fn tsv_cell(cell: &str) -> String {
    cell.replace(['\t', '\n', '\r'], " ")
}

fn csv_cell(cell: &str) -> String {
    if cell.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", cell.replace('"', "\"\""))
    } else {
        cell.to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_are_named_by_their_header() {
        let headers = ["ID", "MACHINE NAME", "STATUS"];
        assert_eq!(
            chosen_columns(&headers, &["status".into(), "machine_name".into()]).ok(),
            Some(vec![2, 1])
        );
        assert_eq!(chosen_columns(&headers, &[]).ok(), Some(vec![0, 1, 2]));
        let error = chosen_columns(&headers, &["size".into()]).err();
        assert!(
            error.is_some_and(|e| e.to_string().contains("id, machine_name, status")),
            "the error lists the columns"
        );
    }

    #[test]
    fn csv_and_tsv_cells_are_quoted_or_flattened() {
        assert_eq!(csv_cell("plain"), "plain");
        assert_eq!(csv_cell("a,b"), "\"a,b\"");
        assert_eq!(csv_cell("say \"hi\""), "\"say \"\"hi\"\"\"");
        assert_eq!(tsv_cell("a\tb\nc"), "a b c");
    }

    #[test]
    fn errors_have_their_exit_codes() {
        let refused: anyhow::Error = Refused {
            message: "no".into(),
            status: 403,
        }
        .into();
        assert_eq!(exit_code(&refused), 3);
        assert_eq!(exit_code(&NotConfirmed("x".into()).into()), 4);
        assert_eq!(exit_code(&Unreachable("x".into()).into()), 5);
        assert_eq!(exit_code(&anyhow::anyhow!("other")), 1);
        let closed: anyhow::Error = std::io::Error::from(std::io::ErrorKind::BrokenPipe).into();
        assert!(is_closed_pipe(&closed.context("writing the listing")));
    }
}
