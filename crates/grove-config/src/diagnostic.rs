//! Errors and warnings about configuration, with positions and rendered snippets.

use std::fmt;

use crate::yaml::Pos;

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Error,
    Warning,
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Severity::Error => "error",
            Severity::Warning => "warning",
        })
    }
}

/// One problem found in the configuration.
///
/// Rendered as
///
/// ```text
/// .platform.app.yaml:3:1: error: unknown key `relationship`
///   |
/// 3 | relationship:
///   | ^^^^^^^^^^^^
/// hint: did you mean `relationships`?
/// ```
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Diagnostic {
    pub severity: Severity,
    /// Path of the file relative to the repository root; "" when no file is involved.
    pub file: String,
    /// 1-based; 0 when unknown.
    pub line: usize,
    /// 1-based; 0 when unknown.
    pub column: usize,
    pub message: String,
    pub hint: Option<String>,
    /// The text of the offending line, when known (for the snippet).
    pub source_line: Option<String>,
    /// How many characters the caret underline covers (at least 1).
    pub span_len: usize,
}

impl Diagnostic {
    pub fn is_error(&self) -> bool {
        self.severity == Severity::Error
    }
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}:{}: {}: {}",
            self.file, self.line, self.column, self.severity, self.message
        )?;
        if let Some(text) = &self.source_line
            && self.line > 0
        {
            let number = self.line.to_string();
            let gutter = " ".repeat(number.len());
            // Tabs would misalign the caret; show them as single spaces.
            let shown: String = text
                .chars()
                .map(|c| if c == '\t' { ' ' } else { c })
                .collect();
            write!(f, "\n{gutter} |\n{number} | {}", shown.trim_end())?;
            if self.column > 0 {
                let pad = " ".repeat(self.column - 1);
                let carets = "^".repeat(self.span_len.max(1));
                write!(f, "\n{gutter} | {pad}{carets}")?;
            }
        }
        if let Some(hint) = &self.hint {
            write!(f, "\nhint: {hint}")?;
        }
        Ok(())
    }
}

/// Everything wrong with a project's configuration. Returned by [`crate::load`] when
/// there is at least one error; warnings found along the way are kept too.
#[derive(Clone, Debug, Default, PartialEq, Eq, thiserror::Error, serde::Serialize)]
pub struct ConfigErrors {
    pub errors: Vec<Diagnostic>,
    pub warnings: Vec<Diagnostic>,
}

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut first = true;
        for diagnostic in self.errors.iter().chain(&self.warnings) {
            if !first {
                f.write_str("\n")?;
            }
            first = false;
            writeln!(f, "{diagnostic}")?;
        }
        if first {
            f.write_str("invalid configuration\n")?;
        }
        Ok(())
    }
}

/// Collects diagnostics while the loader walks the files.
#[derive(Default)]
pub(crate) struct Sink {
    pub errors: Vec<Diagnostic>,
    pub warnings: Vec<Diagnostic>,
    /// Texts of files pulled in by `!include`, for snippets of nodes that came from them.
    pub included: std::collections::BTreeMap<String, String>,
}

impl Sink {
    pub fn push(&mut self, diagnostic: Diagnostic) {
        match diagnostic.severity {
            Severity::Error => self.errors.push(diagnostic),
            Severity::Warning => self.warnings.push(diagnostic),
        }
    }

    pub fn has_errors(&self) -> bool {
        !self.errors.is_empty()
    }
}

/// The text of one file plus its name; creates diagnostics that point into it.
#[derive(Clone, Copy)]
pub(crate) struct Source<'a> {
    pub file: &'a str,
    pub text: &'a str,
}

impl<'a> Source<'a> {
    pub fn new(file: &'a str, text: &'a str) -> Self {
        Source { file, text }
    }

    pub fn diagnostic(
        &self,
        severity: Severity,
        pos: Pos,
        span_len: usize,
        message: impl Into<String>,
        hint: Option<String>,
    ) -> Diagnostic {
        let source_line = if pos.line > 0 {
            self.text.lines().nth(pos.line - 1).map(str::to_owned)
        } else {
            None
        };
        Diagnostic {
            severity,
            file: self.file.to_owned(),
            line: pos.line,
            column: pos.column,
            message: message.into(),
            hint,
            source_line,
            span_len: span_len.max(1),
        }
    }
}

/// A diagnostic that is not about a position in a file.
pub(crate) fn global(
    severity: Severity,
    file: &str,
    message: impl Into<String>,
    hint: Option<String>,
) -> Diagnostic {
    Diagnostic {
        severity,
        file: file.to_owned(),
        line: 0,
        column: 0,
        message: message.into(),
        hint,
        source_line: None,
        span_len: 1,
    }
}
