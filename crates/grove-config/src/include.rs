//! Resolving the `!include` and `!archive` tags (spec §1 "YAML tags").
//!
//! ```yaml
//! vcl: !include {type: string, path: config.vcl}   # the file's text
//! key: !include {type: binary, path: key.bin}      # base64 of the file
//! sub: !include {type: yaml, path: sub.yaml}       # the parsed document
//! sub: !include sub.yaml                           # same, short form
//! conf_dir: !include {type: archive, path: solr}   # a directory
//! conf_dir: !archive "solr"                        # same, short form
//! ```
//!
//! Paths are relative to the directory of the file holding the tag (`/` starts from the
//! repository root) and may not leave the repository. An archive becomes the mapping
//! `{"archive": "<directory relative to the repository root>"}`: this crate never reads
//! directories into memory; whoever builds the service packs the directory from the tree.

use std::sync::Arc;

use base64::Engine as _;

use crate::diagnostic::Source;
use crate::read::{KeyUse, Keys, Reader};
use crate::tree::SourceTree;
use crate::yaml::{self, Kind, Node};

/// How deep `!include {type: yaml}` may nest (a.yaml includes b.yaml includes ...).
const MAX_INCLUDE_DEPTH: usize = 8;

/// Included bytes per loaded project, so that includes cannot multiply past the file limit.
const MAX_INCLUDED_BYTES: usize = 4 * yaml::MAX_FILE_BYTES;

pub(crate) struct Includes<'t> {
    pub tree: &'t dyn SourceTree,
    pub paths: &'t [String],
    pub included_bytes: usize,
}

/// Replaces every `!include`/`!archive` node under `node` with what it refers to.
/// `file` is the path of the file holding `node`.
pub(crate) fn resolve(
    r: &mut Reader<'_, '_>,
    inc: &mut Includes<'_>,
    node: &mut Node,
    file: &str,
    stack: &mut Vec<String>,
) {
    match node.tag.as_deref() {
        Some("!include") => {
            if let Some(replacement) = include(r, inc, node, file, stack) {
                *node = replacement;
            } else {
                // Leave a null so that the schema does not report the tag's own mapping.
                node.kind = Kind::Null;
                node.tag = None;
            }
            return;
        }
        Some("!archive") => {
            let replacement = match node.kind.clone() {
                Kind::Str(path) => archive(r, inc, node, file, &path),
                _ => {
                    r.error(
                        node,
                        "`!archive` takes a directory path",
                        Some("e.g. `conf_dir: !archive \"solr-conf\"`".into()),
                    );
                    None
                }
            };
            node.tag = None;
            node.kind = replacement.map_or(Kind::Null, |n| n.kind);
            return;
        }
        _ => {}
    }
    match &mut node.kind {
        Kind::Seq(items) => {
            for item in items {
                resolve(r, inc, item, file, stack);
            }
        }
        Kind::Map(entries) => {
            for (_, value) in entries {
                resolve(r, inc, value, file, stack);
            }
        }
        _ => {}
    }
}

fn include(
    r: &mut Reader<'_, '_>,
    inc: &mut Includes<'_>,
    node: &Node,
    file: &str,
    stack: &mut Vec<String>,
) -> Option<Node> {
    const INCLUDE_KEYS: Keys = &[("type", KeyUse::Supported), ("path", KeyUse::Supported)];
    let (kind, path_node) = match &node.kind {
        Kind::Str(_) => ("yaml".to_owned(), node),
        Kind::Map(entries) => {
            r.check_keys(entries, INCLUDE_KEYS, "!include.");
            let kind = match node.get("type") {
                Some(t) => r.string(t, "!include.type")?,
                None => "yaml".to_owned(),
            };
            let Some(path_node) = node.get("path") else {
                r.error(
                    node,
                    "`!include` needs a `path`",
                    Some("e.g. `!include {type: string, path: config.vcl}`".into()),
                );
                return None;
            };
            (kind, path_node)
        }
        _ => {
            r.error(
                node,
                "`!include` takes a path or `{type, path}`",
                Some("e.g. `!include {type: string, path: config.vcl}`".into()),
            );
            return None;
        }
    };
    let path = r.string(path_node, "!include.path")?;
    if kind == "archive" {
        return archive(r, inc, path_node, file, &path);
    }
    let Some(target) = join(file, &path) else {
        r.error(path_node, format!("`{path}` leaves the repository"), None);
        return None;
    };
    let Some(bytes) = inc.tree.read(&target) else {
        r.error(
            path_node,
            format!("included file `{target}` does not exist"),
            Some("paths are relative to the directory of this file".into()),
        );
        return None;
    };
    inc.included_bytes += bytes.len();
    if inc.included_bytes > MAX_INCLUDED_BYTES || bytes.len() > yaml::MAX_FILE_BYTES {
        r.error(
            path_node,
            format!("included file `{target}` is too large"),
            Some(format!(
                "includes may add up to {MAX_INCLUDED_BYTES} bytes per project"
            )),
        );
        return None;
    }
    let mut out = Node::new(node.pos, Kind::Null);
    out.origin = node.origin.clone();
    match kind.as_str() {
        "string" => match String::from_utf8(bytes) {
            Ok(text) => out.kind = Kind::Str(text),
            Err(_) => {
                r.error(
                    path_node,
                    format!("`{target}` is not UTF-8 text"),
                    Some("use `type: binary` for binary files".into()),
                );
                return None;
            }
        },
        "binary" => out.kind = Kind::Str(base64::engine::general_purpose::STANDARD.encode(&bytes)),
        "yaml" => {
            if stack.contains(&target) || stack.len() >= MAX_INCLUDE_DEPTH {
                r.error(
                    path_node,
                    format!("`{target}` is included recursively"),
                    Some(format!("include chain: {} -> {target}", stack.join(" -> "))),
                );
                return None;
            }
            let text = String::from_utf8_lossy(&bytes).into_owned();
            let mut included = match yaml::parse(&bytes) {
                Ok(n) => n,
                Err(err) => {
                    let d = Source::new(&target, &text).diagnostic(
                        crate::diagnostic::Severity::Error,
                        err.pos,
                        1,
                        err.message,
                        err.hint,
                    );
                    r.sink.push(d);
                    return None;
                }
            };
            let origin: Arc<str> = Arc::from(target.as_str());
            included.set_origin(&origin);
            r.sink.included.insert(target.clone(), text);
            stack.push(target.clone());
            resolve(r, inc, &mut included, &target, stack);
            stack.pop();
            return Some(included);
        }
        other => {
            r.error(
                node.get("type").unwrap_or(node),
                format!("unknown `!include` type `{other}`"),
                Some("use string, binary, yaml or archive".into()),
            );
            return None;
        }
    }
    Some(out)
}

fn archive(
    r: &mut Reader<'_, '_>,
    inc: &Includes<'_>,
    at: &Node,
    file: &str,
    path: &str,
) -> Option<Node> {
    let Some(dir) = join(file, path) else {
        r.error(at, format!("`{path}` leaves the repository"), None);
        return None;
    };
    let prefix = format!("{dir}/");
    if !inc.paths.iter().any(|p| p.starts_with(&prefix)) {
        r.error(
            at,
            format!("archived directory `{dir}` does not exist or is empty"),
            Some("paths are relative to the directory of this file".into()),
        );
        return None;
    }
    let mut key = Node::new(at.pos, Kind::Str("archive".into()));
    key.origin = at.origin.clone();
    let mut value = Node::new(at.pos, Kind::Str(dir));
    value.origin = at.origin.clone();
    let mut out = Node::new(at.pos, Kind::Map(vec![(key, value)]));
    out.origin = at.origin.clone();
    Some(out)
}

/// `path` relative to the directory of `file` (or to the root with a leading `/`),
/// normalised; `None` if it climbs out of the repository.
fn join(file: &str, path: &str) -> Option<String> {
    let mut parts: Vec<&str> = if path.starts_with('/') {
        Vec::new()
    } else {
        let dir = file.rsplit_once('/').map_or("", |(d, _)| d);
        dir.split('/').filter(|p| !p.is_empty()).collect()
    };
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                parts.pop()?;
            }
            other => parts.push(other),
        }
    }
    Some(parts.join("/"))
}

#[cfg(test)]
mod tests {
    use super::join;

    #[test]
    fn joins() {
        for (file, path, expected) in [
            (
                ".platform/services.yaml",
                "config.vcl",
                Some(".platform/config.vcl"),
            ),
            (
                ".platform/services.yaml",
                "../varnish/config.vcl",
                Some("varnish/config.vcl"),
            ),
            (
                ".platform/services.yaml",
                "/varnish/x.vcl",
                Some("varnish/x.vcl"),
            ),
            (".platform.app.yaml", "./a/b", Some("a/b")),
            (".platform.app.yaml", "../x", None),
        ] {
            assert_eq!(join(file, path).as_deref(), expected, "{file} {path}");
        }
    }
}
