/// `expires` in seconds: `-1` (no caching headers), a number of seconds, or a number
/// with a unit (`ms s m h d w M y`), as `grove-config` validated it.
pub fn parse_expires(text: &str) -> Option<i64> {
    let text = text.trim();
    if text == "-1" {
        return Some(-1);
    }
    let digits_end = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    if digits_end == 0 {
        return None;
    }
    let value: i64 = text[..digits_end].parse().ok()?;
    let unit_seconds: i64 = match &text[digits_end..] {
        "" | "s" => 1,
        "ms" => return Some(value / 1000),
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        "w" => 7 * 86_400,
        "M" => 30 * 86_400,
        "y" => 365 * 86_400,
        _ => return None,
    };
    value.checked_mul(unit_seconds)
}

#[cfg(test)]
mod tests {
    use super::parse_expires;

    #[test]
    fn units() {
        for (text, expected) in [
            ("-1", Some(-1)),
            ("300", Some(300)),
            ("1y", Some(31_536_000)),
            ("2h", Some(7200)),
            ("1500ms", Some(1)),
            ("1x", None),
            ("", None),
        ] {
            assert_eq!(parse_expires(text), expected, "{text}");
        }
    }
}
