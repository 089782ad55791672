//! Helpers to walk a [`Node`] tree against a schema and report what does not fit.

use crate::diagnostic::{Severity, Sink, Source};
use crate::suggest::did_you_mean;
use crate::yaml::{Kind, Node};

/// How a key of a mapping is treated.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum KeyUse {
    /// Read and acted upon.
    Supported,
    /// Part of the platform's schema, accepted, but Grove does not act on it yet.
    NotSupportedYet,
}

/// A schema for the keys of one mapping: `(name, use)`.
pub(crate) type Keys = &'static [(&'static str, KeyUse)];

/// Reads nodes of one file, reporting into a shared sink.
pub(crate) struct Reader<'a, 's> {
    pub src: Source<'a>,
    pub sink: &'s mut Sink,
}

impl<'a> Reader<'a, '_> {
    pub fn file(&self) -> &'a str {
        self.src.file
    }

    pub fn error(&mut self, node: &Node, message: impl Into<String>, hint: Option<String>) {
        self.report(Severity::Error, node, message.into(), hint);
    }

    pub fn warning(&mut self, node: &Node, message: impl Into<String>, hint: Option<String>) {
        self.report(Severity::Warning, node, message.into(), hint);
    }

    fn report(&mut self, severity: Severity, node: &Node, message: String, hint: Option<String>) {
        let d = match node.origin.as_deref() {
            Some(file) if file != self.src.file => {
                let text = self.sink.included.get(file).map_or("", String::as_str);
                Source::new(file, text).diagnostic(
                    severity,
                    node.pos,
                    span_len(node),
                    message,
                    hint,
                )
            }
            _ => self
                .src
                .diagnostic(severity, node.pos, span_len(node), message, hint),
        };
        self.sink.push(d);
    }

    /// Checks the keys of a mapping: unknown keys are errors (with a suggestion),
    /// keys we do not act on yet are warnings. `context` prefixes key names in messages
    /// (`web.` for keys under `web`).
    pub fn check_keys(&mut self, entries: &[(Node, Node)], keys: Keys, context: &str) {
        for (key, _) in entries {
            let Some(name) = key.scalar_text() else {
                self.error(
                    key,
                    format!("{context}keys must be strings, found {}", key.type_name()),
                    None,
                );
                continue;
            };
            match keys.iter().find(|(k, _)| *k == name) {
                Some((_, KeyUse::Supported)) => {}
                Some((_, KeyUse::NotSupportedYet)) => self.warning(
                    key,
                    format!("accepted, not supported yet: `{context}{name}`"),
                    Some(
                        "Grove reads this key but does not act on it yet; it has no effect".into(),
                    ),
                ),
                None => {
                    let hint = did_you_mean(&name, keys.iter().map(|(k, _)| *k))
                        .map(|s| format!("did you mean `{context}{s}`?"))
                        .or_else(|| {
                            Some(format!(
                                "known keys here: {}",
                                keys.iter().map(|(k, _)| *k).collect::<Vec<_>>().join(", ")
                            ))
                        });
                    self.error(key, format!("unknown key `{context}{name}`"), hint);
                }
            }
        }
    }

    /// The entries of a mapping, or an error naming `what`.
    pub fn map<'n>(&mut self, node: &'n Node, what: &str) -> Option<&'n [(Node, Node)]> {
        match &node.kind {
            Kind::Map(entries) => Some(entries),
            _ => {
                self.error(
                    node,
                    format!("`{what}` must be a mapping, found {}", node.type_name()),
                    None,
                );
                None
            }
        }
    }

    /// Like [`Reader::map`], but `null` (an empty value) is an empty mapping.
    pub fn map_or_null<'n>(&mut self, node: &'n Node, what: &str) -> Option<&'n [(Node, Node)]> {
        if node.is_null() {
            return Some(&[]);
        }
        self.map(node, what)
    }

    /// A string value. Numbers are accepted as their text (`version: 3.11`).
    pub fn string(&mut self, node: &Node, what: &str) -> Option<String> {
        match &node.kind {
            Kind::Str(s) => Some(s.clone()),
            Kind::Number(n) => Some(n.to_string()),
            _ => {
                self.error(
                    node,
                    format!("`{what}` must be a string, found {}", node.type_name()),
                    None,
                );
                None
            }
        }
    }

    /// A string value or null.
    pub fn opt_string(&mut self, node: &Node, what: &str) -> Option<String> {
        if node.is_null() {
            return None;
        }
        self.string(node, what)
    }

    pub fn bool(&mut self, node: &Node, what: &str) -> Option<bool> {
        match &node.kind {
            Kind::Bool(b) => Some(*b),
            _ => {
                self.error(
                    node,
                    format!("`{what}` must be true or false, found {}", node.type_name()),
                    None,
                );
                None
            }
        }
    }

    /// A non-negative integer.
    pub fn u64(&mut self, node: &Node, what: &str) -> Option<u64> {
        match &node.kind {
            Kind::Number(n) if n.as_u64().is_some() => n.as_u64(),
            _ => {
                self.error(
                    node,
                    format!(
                        "`{what}` must be a non-negative integer, found {}",
                        node.type_name()
                    ),
                    None,
                );
                None
            }
        }
    }

    /// A list of strings; a single string is accepted as a one-element list.
    pub fn strings(&mut self, node: &Node, what: &str) -> Vec<String> {
        match &node.kind {
            Kind::Seq(items) => items
                .iter()
                .filter_map(|item| self.string(item, what))
                .collect(),
            Kind::Str(s) => vec![s.clone()],
            Kind::Null => Vec::new(),
            _ => {
                self.error(
                    node,
                    format!(
                        "`{what}` must be a list of strings, found {}",
                        node.type_name()
                    ),
                    None,
                );
                Vec::new()
            }
        }
    }
}

/// How many characters of the line a node covers, for the caret underline: the text of
/// a plain scalar, otherwise a single caret.
fn span_len(node: &Node) -> usize {
    match &node.kind {
        Kind::Str(s) if !s.contains('\n') => s.chars().count(),
        Kind::Number(n) => n.to_string().len(),
        Kind::Bool(b) => b.to_string().len(),
        _ => 1,
    }
}
