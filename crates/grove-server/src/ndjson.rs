//! Newline-delimited JSON, the streaming format of activity logs and of the push hook's
//! answer.

/// Appends `value` as one JSON line.
pub(crate) fn push_json_line<T: serde::Serialize>(out: &mut String, value: &T) {
    if let Ok(json) = serde_json::to_string(value) {
        out.push_str(&json);
        out.push('\n');
    }
}
