//! A small YAML node tree with positions and tags.
//!
//! The config formats need more than serde's "first error wins" model: we want every
//! problem in a file at once, warnings next to errors, "did you mean" hints for unknown
//! keys, and the YAML tags (`!include`, `!archive`) that serde would drop. So we let
//! serde-saphyr do the parsing (it is panic-free, enforces budgets against alias bombs
//! and deep nesting, and gives positions), deserialize into this generic tree, and walk
//! the tree by hand in the schema modules.

use std::fmt;

use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_saphyr::{Spanned, Tagged};

/// Files larger than this are refused before parsing; real configs are a few KiB.
pub const MAX_FILE_BYTES: usize = 1024 * 1024;

/// Nesting deeper than this is refused. Real configs stay under ten levels; the limit
/// protects the stack, because building the tree recurses through serde once per level
/// (about 40 KiB of stack per level in unoptimised builds, where 2 MiB threads overflow
/// at around 50 levels).
pub const MAX_DEPTH: usize = 32;

/// A 1-based line/column position; `0:0` means unknown (e.g. a synthesized node).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord)]
pub struct Pos {
    pub line: usize,
    pub column: usize,
}

impl Pos {
    pub const UNKNOWN: Pos = Pos { line: 0, column: 0 };
}

/// One YAML node.
#[derive(Clone, Debug, PartialEq)]
pub struct Node {
    pub pos: Pos,
    /// The tag as written, e.g. `!include`; `None` when untagged.
    pub tag: Option<String>,
    pub kind: Kind,
    /// The file this node was read from when it differs from the file being read
    /// (content pulled in by `!include`), so that diagnostics point at the right file.
    pub origin: Option<std::sync::Arc<str>>,
}

#[derive(Clone, Debug, PartialEq)]
pub enum Kind {
    Null,
    Bool(bool),
    Number(serde_json::Number),
    Str(String),
    Seq(Vec<Node>),
    /// Entries in document order. Keys are nodes so that errors can point at them.
    Map(Vec<(Node, Node)>),
}

impl Node {
    pub fn new(pos: Pos, kind: Kind) -> Node {
        Node {
            pos,
            tag: None,
            kind,
            origin: None,
        }
    }

    /// A short name of the node's type, for "expected X, found Y" messages.
    pub fn type_name(&self) -> &'static str {
        match &self.kind {
            Kind::Null => "null",
            Kind::Bool(_) => "a boolean",
            Kind::Number(_) => "a number",
            Kind::Str(_) => "a string",
            Kind::Seq(_) => "a list",
            Kind::Map(_) => "a mapping",
        }
    }

    pub fn is_null(&self) -> bool {
        matches!(self.kind, Kind::Null)
    }

    #[cfg(test)]
    pub fn as_str(&self) -> Option<&str> {
        match &self.kind {
            Kind::Str(s) => Some(s),
            _ => None,
        }
    }

    pub fn as_map(&self) -> Option<&[(Node, Node)]> {
        match &self.kind {
            Kind::Map(entries) => Some(entries),
            _ => None,
        }
    }

    /// The text of a scalar, as a map key or a string-ish value would be read
    /// (`80` and `true` are valid mapping keys in YAML).
    pub fn scalar_text(&self) -> Option<String> {
        match &self.kind {
            Kind::Str(s) => Some(s.clone()),
            Kind::Number(n) => Some(n.to_string()),
            Kind::Bool(b) => Some(b.to_string()),
            Kind::Null => None,
            Kind::Seq(_) | Kind::Map(_) => None,
        }
    }

    /// Marks this node and everything under it as coming from `file`.
    pub fn set_origin(&mut self, file: &std::sync::Arc<str>) {
        self.origin = Some(file.clone());
        match &mut self.kind {
            Kind::Seq(items) => items.iter_mut().for_each(|n| n.set_origin(file)),
            Kind::Map(entries) => {
                for (k, v) in entries {
                    k.set_origin(file);
                    v.set_origin(file);
                }
            }
            _ => {}
        }
    }

    /// Look up a key in a mapping node.
    pub fn get(&self, key: &str) -> Option<&Node> {
        self.as_map()?
            .iter()
            .find(|(k, _)| k.scalar_text().as_deref() == Some(key))
            .map(|(_, v)| v)
    }

    /// The node as plain JSON (tags are dropped; non-string keys become their text).
    pub fn to_json(&self) -> serde_json::Value {
        use serde_json::Value;
        match &self.kind {
            Kind::Null => Value::Null,
            Kind::Bool(b) => Value::Bool(*b),
            Kind::Number(n) => Value::Number(n.clone()),
            Kind::Str(s) => Value::String(s.clone()),
            Kind::Seq(items) => Value::Array(items.iter().map(Node::to_json).collect()),
            Kind::Map(entries) => {
                let mut map = serde_json::Map::new();
                for (k, v) in entries {
                    let key = k.scalar_text().unwrap_or_else(|| "null".to_owned());
                    map.insert(key, v.to_json());
                }
                Value::Object(map)
            }
        }
    }
}

/// Why a document could not be turned into a tree.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParseError {
    pub pos: Pos,
    pub message: String,
    pub hint: Option<String>,
}

/// Parses one YAML document. Empty documents (only whitespace/comments) are `Null`.
pub fn parse(bytes: &[u8]) -> Result<Node, ParseError> {
    if bytes.len() > MAX_FILE_BYTES {
        return Err(ParseError {
            pos: Pos::UNKNOWN,
            message: format!(
                "file is too large ({} bytes; the limit is {} bytes)",
                bytes.len(),
                MAX_FILE_BYTES
            ),
            hint: Some("configuration files should be a few kilobytes; move data elsewhere".into()),
        });
    }
    let text = match std::str::from_utf8(bytes) {
        Ok(text) => text,
        Err(err) => {
            let valid = &bytes[..err.valid_up_to()];
            let line = valid.iter().filter(|b| **b == b'\n').count() + 1;
            let line_start = valid.iter().rposition(|b| *b == b'\n').map_or(0, |i| i + 1);
            let column = String::from_utf8_lossy(&valid[line_start..])
                .chars()
                .count()
                + 1;
            return Err(ParseError {
                pos: Pos { line, column },
                message: "file is not valid UTF-8".into(),
                hint: Some("save the file as UTF-8".into()),
            });
        }
    };
    if is_blank_document(text) {
        return Ok(Node::new(Pos { line: 1, column: 1 }, Kind::Null));
    }
    let options = serde_saphyr::options! {
        budget: serde_saphyr::budget! {
            max_depth: MAX_DEPTH,
            max_documents: 1,
            max_events: 200_000,
            max_nodes: 100_000,
            max_aliases: 1_000,
            max_anchors: 1_000,
            max_total_scalar_bytes: MAX_FILE_BYTES * 4,
        },
        alias_limits: serde_saphyr::alias_limits! {
            max_total_replayed_events: 100_000,
            max_replay_stack_depth: 16,
        },
        with_snippet: false,
    };
    let text = disguise_include_tags(text);
    check_depth(&text)?;
    serde_saphyr::from_str_with_options::<RawNode>(&text, options)
        .map(|raw| {
            let mut node = raw.0;
            reveal_include_tags(&mut node);
            node
        })
        .map_err(|err| convert_error(&err))
}

/// serde-saphyr reserves `!include` for its own scalar-only include mechanism and rejects
/// the mapping form (`!include {type: string, path: x}`) that Platform.sh configs use.
/// We rename the tag to a placeholder of the same length (so columns stay right), then
/// rename it back in the tree. Only tag positions are rewritten: after a space, a flow
/// indicator or at the start of a line, and followed by a space or the end of the line.
const INCLUDE_TAG: &str = "!include";
const INCLUDE_PLACEHOLDER: &str = "!grvincl";

fn disguise_include_tags(text: &str) -> std::borrow::Cow<'_, str> {
    if !text.contains(INCLUDE_TAG) {
        return std::borrow::Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    let mut prev: Option<char> = None;
    while let Some(idx) = rest.find(INCLUDE_TAG) {
        let before = rest[..idx].chars().next_back().or(prev);
        let after = rest[idx + INCLUDE_TAG.len()..].chars().next();
        let at_tag_start =
            before.is_none_or(|c| c.is_whitespace() || matches!(c, '[' | '{' | ',' | ':' | '-'));
        let at_tag_end = after.is_none_or(char::is_whitespace);
        out.push_str(&rest[..idx]);
        if at_tag_start && at_tag_end {
            out.push_str(INCLUDE_PLACEHOLDER);
        } else {
            out.push_str(INCLUDE_TAG);
        }
        prev = Some('e');
        rest = &rest[idx + INCLUDE_TAG.len()..];
    }
    out.push_str(rest);
    std::borrow::Cow::Owned(out)
}

fn reveal_include_tags(node: &mut Node) {
    if node.tag.as_deref() == Some(INCLUDE_PLACEHOLDER) {
        node.tag = Some(INCLUDE_TAG.to_owned());
    }
    match &mut node.kind {
        Kind::Str(s) if s.contains(INCLUDE_PLACEHOLDER) => {
            *s = s.replace(INCLUDE_PLACEHOLDER, INCLUDE_TAG);
        }
        Kind::Seq(items) => items.iter_mut().for_each(reveal_include_tags),
        Kind::Map(entries) => {
            for (k, v) in entries {
                reveal_include_tags(k);
                reveal_include_tags(v);
            }
        }
        _ => {}
    }
}

/// Measures nesting with the streaming parser (no recursion) before the recursive
/// deserialization runs, counting what aliases would expand to. Syntax errors are left
/// for the real parse to report.
fn check_depth(text: &str) -> Result<(), ParseError> {
    use serde_saphyr::granit_parser::{Event, Parser};
    // Open collections: (anchor id, height of the deepest child seen so far).
    let mut open: Vec<(usize, usize)> = Vec::new();
    // Anchor id -> height of the anchored node (0 for scalars).
    let mut heights: std::collections::HashMap<usize, usize> = std::collections::HashMap::new();
    let too_deep = |span: &serde_saphyr::granit_parser::Span| ParseError {
        pos: Pos {
            line: span.start.line(),
            column: span.start.col() + 1,
        },
        message: format!("nesting is deeper than {MAX_DEPTH} levels"),
        hint: Some(
            "configuration files never need this much nesting; flatten the structure".into(),
        ),
    };
    for item in Parser::new_from_str(text) {
        let Ok((event, span)) = item else { break };
        match event {
            Event::SequenceStart(_, anchor, _) | Event::MappingStart(_, anchor, _) => {
                open.push((anchor, 1));
                if open.len() > MAX_DEPTH {
                    return Err(too_deep(&span));
                }
            }
            Event::SequenceEnd | Event::MappingEnd => {
                let Some((anchor, height)) = open.pop() else {
                    break;
                };
                if anchor != 0 {
                    heights.insert(anchor, height);
                }
                if let Some(parent) = open.last_mut() {
                    parent.1 = parent.1.max(height + 1);
                }
            }
            Event::Scalar(_, _, anchor, _) if anchor != 0 => {
                heights.insert(anchor, 0);
            }
            Event::Alias(anchor) => {
                let height = heights.get(&anchor).copied().unwrap_or(0);
                if open.len() + height > MAX_DEPTH {
                    return Err(too_deep(&span));
                }
                if let Some(parent) = open.last_mut() {
                    parent.1 = parent.1.max(height + 1);
                }
            }
            _ => {}
        }
    }
    Ok(())
}

fn is_blank_document(text: &str) -> bool {
    text.lines().all(|line| {
        let trimmed = line.trim();
        trimmed.is_empty() || trimmed.starts_with('#')
    })
}

fn convert_error(err: &serde_saphyr::Error) -> ParseError {
    let inner = err.without_snippet();
    let pos = inner
        .location()
        .map(|loc| Pos {
            line: usize::try_from(loc.line()).unwrap_or(0),
            column: usize::try_from(loc.column()).unwrap_or(0),
        })
        .unwrap_or(Pos::UNKNOWN);
    let rendered = inner.render_with_options(serde_saphyr::render_options! {
        snippets: serde_saphyr::SnippetMode::Off,
    });
    let mut message = strip_location_suffix(rendered.lines().next().unwrap_or("invalid YAML"));
    // Keep the library's advice about its own options out of user-facing messages.
    if let Some(rest) = message.strip_prefix("duplicate mapping key: ") {
        let key = rest
            .split(", set DuplicateKeyPolicy")
            .next()
            .unwrap_or(rest);
        message = format!("duplicate key `{key}`");
    }
    let lower = message.to_ascii_lowercase();
    let hint = if lower.contains("budget") || lower.contains("depth") || lower.contains("alias") {
        Some(format!(
            "configuration documents are limited to {MAX_DEPTH} levels of nesting and a modest number of aliases"
        ))
    } else if lower.contains("duplicate") {
        Some("remove one of the duplicate keys".into())
    } else if lower.contains("tab") {
        Some("YAML indentation must use spaces, not tabs".into())
    } else {
        Some("check the indentation and quoting around this position".into())
    };
    ParseError {
        pos,
        message: format!("invalid YAML: {message}"),
        hint,
    }
}

/// serde-saphyr appends " at line X column Y" to plain messages; we print the position
/// ourselves in the `file:line:column:` prefix.
fn strip_location_suffix(message: &str) -> String {
    match message.rfind(" at line ") {
        Some(idx) => message[..idx].to_owned(),
        None => message.to_owned(),
    }
}

/// Deserialization target: a node with its position and tag.
struct RawNode(Node);

impl<'de> Deserialize<'de> for RawNode {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let spanned = Spanned::<Tagged<RawKind>>::deserialize(deserializer)?;
        let pos = Pos {
            line: usize::try_from(spanned.referenced.line()).unwrap_or(0),
            column: usize::try_from(spanned.referenced.column()).unwrap_or(0),
        };
        let Tagged(RawKind(kind), tag) = spanned.value;
        Ok(RawNode(Node {
            pos,
            tag: tag.filter(|t| !is_core_tag(t)),
            kind,
            origin: None,
        }))
    }
}

/// Core-schema tags (`!!str`, `!!int`, ...) only steer scalar resolution; keep only
/// application tags like `!include`.
fn is_core_tag(tag: &str) -> bool {
    tag.starts_with("tag:yaml.org,2002:") || tag.starts_with("!!") || tag == "!"
}

struct RawKind(Kind);

impl<'de> Deserialize<'de> for RawKind {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(KindVisitor).map(RawKind)
    }
}

struct KindVisitor;

impl<'de> Visitor<'de> for KindVisitor {
    type Value = Kind;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any YAML value")
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Kind, E> {
        Ok(Kind::Bool(v))
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Kind, E> {
        Ok(Kind::Number(v.into()))
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Kind, E> {
        Ok(Kind::Number(v.into()))
    }

    fn visit_i128<E: de::Error>(self, v: i128) -> Result<Kind, E> {
        // Out of JSON's integer range: keep the digits rather than lose precision.
        Ok(Kind::Str(v.to_string()))
    }

    fn visit_u128<E: de::Error>(self, v: u128) -> Result<Kind, E> {
        Ok(Kind::Str(v.to_string()))
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Kind, E> {
        Ok(serde_json::Number::from_f64(v).map_or_else(|| Kind::Str(v.to_string()), Kind::Number))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Kind, E> {
        Ok(Kind::Str(v.to_owned()))
    }

    fn visit_string<E: de::Error>(self, v: String) -> Result<Kind, E> {
        Ok(Kind::Str(v))
    }

    fn visit_bytes<E: de::Error>(self, v: &[u8]) -> Result<Kind, E> {
        Ok(Kind::Str(String::from_utf8_lossy(v).into_owned()))
    }

    fn visit_unit<E: de::Error>(self) -> Result<Kind, E> {
        Ok(Kind::Null)
    }

    fn visit_none<E: de::Error>(self) -> Result<Kind, E> {
        Ok(Kind::Null)
    }

    fn visit_some<D: Deserializer<'de>>(self, deserializer: D) -> Result<Kind, D::Error> {
        deserializer.deserialize_any(KindVisitor)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Kind, A::Error> {
        let mut items = Vec::new();
        while let Some(RawNode(node)) = seq.next_element()? {
            items.push(node);
        }
        Ok(Kind::Seq(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Kind, A::Error> {
        let mut entries = Vec::new();
        while let Some((RawNode(key), RawNode(value))) = map.next_entry()? {
            entries.push((key, value));
        }
        Ok(Kind::Map(entries))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_and_tags_are_kept() {
        let node = parse(
            b"name: app\ntype: 'python:3.11'\nvcl: !include {type: string, path: x.vcl}\nx: '!include a'\ny: !include a.yaml\n",
        )
            .unwrap_or_else(|e| panic!("{e:?}"));
        let Kind::Map(entries) = &node.kind else {
            panic!("not a map: {node:?}")
        };
        assert_eq!(entries[0].0.pos, Pos { line: 1, column: 1 });
        assert_eq!(entries[0].1.pos, Pos { line: 1, column: 7 });
        assert_eq!(entries[1].1.as_str(), Some("python:3.11"));
        assert_eq!(entries[2].1.tag.as_deref(), Some("!include"));
        assert_eq!(
            entries[2].1.get("path").and_then(Node::as_str),
            Some("x.vcl")
        );
        assert_eq!(entries[3].1.as_str(), Some("!include a"));
        assert_eq!(entries[4].1.tag.as_deref(), Some("!include"));
        assert_eq!(entries[4].1.as_str(), Some("a.yaml"));
    }

    #[test]
    fn syntax_errors_have_positions() {
        let err = parse(b"a: 1\nb: [1, 2\n").expect_err("must fail");
        assert!(err.pos.line >= 2, "{err:?}");
    }

    #[test]
    fn depth_is_limited_before_the_stack_is() {
        let ok = format!(
            "x: {}{}\n",
            "[".repeat(MAX_DEPTH - 1),
            "]".repeat(MAX_DEPTH - 1)
        );
        assert!(parse(ok.as_bytes()).is_ok());
        let deep = format!("x: {}{}\n", "[".repeat(MAX_DEPTH), "]".repeat(MAX_DEPTH));
        let err = parse(deep.as_bytes()).expect_err("too deep");
        assert_eq!(
            err.pos,
            Pos {
                line: 1,
                column: 4 + MAX_DEPTH - 1
            }
        );
        // Aliases count with what they expand to.
        let half = MAX_DEPTH / 2 + 1;
        let aliased = format!(
            "a: &a {}{}\nb: {}*a{}\n",
            "[".repeat(half),
            "]".repeat(half),
            "[".repeat(half),
            "]".repeat(half)
        );
        assert!(parse(aliased.as_bytes()).is_err());
    }

    #[test]
    fn empty_is_null() {
        assert!(
            parse(b"# only a comment\n\n")
                .map(|n| n.is_null())
                .unwrap_or(false)
        );
    }
}
