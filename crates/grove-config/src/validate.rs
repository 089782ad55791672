//! Value checks shared by the schema readers: durations and cron specs.

/// Parses an `expires` value to seconds: `-1` (no caching), plain seconds, or a number
/// with a unit `ms s m h d w M y`. Returns `None` when malformed.
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
        // Milliseconds round down to whole seconds, as Cache-Control needs.
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

/// Outcome of checking a regex the router will evaluate.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum RegexCheck {
    Valid,
    /// Valid PCRE that Grove's engine cannot run (look-around, backreferences).
    Unsupported(String),
    Invalid(String),
}

/// Checks a regex from `rules` or `redirects`. The platform's router uses PCRE; Grove's
/// uses the `regex` crate, which lacks look-around and backreferences, so those are
/// reported separately rather than as invalid.
pub(crate) fn check_regex(pattern: &str) -> RegexCheck {
    match regex::RegexBuilder::new(pattern)
        .size_limit(1 << 20)
        .build()
    {
        Ok(_) => RegexCheck::Valid,
        Err(regex::Error::Syntax(msg)) => {
            let detail = msg
                .lines()
                .last()
                .unwrap_or_default()
                .trim_start_matches("error: ")
                .to_owned();
            if msg.contains("look-around") || msg.contains("backreferences") {
                RegexCheck::Unsupported(detail)
            } else {
                RegexCheck::Invalid(detail)
            }
        }
        Err(other) => RegexCheck::Invalid(other.to_string()),
    }
}

/// Checks a five-field cron spec (minute hour day-of-month month day-of-week) with
/// `*`, lists, ranges and steps, and the `@hourly`-style shorthands.
pub(crate) fn check_cron_spec(spec: &str) -> Result<(), String> {
    let spec = spec.trim();
    if spec.starts_with('@') {
        return match spec {
            "@yearly" | "@annually" | "@monthly" | "@weekly" | "@daily" | "@midnight"
            | "@hourly" => Ok(()),
            other => Err(format!("unknown shorthand `{other}`")),
        };
    }
    let fields: Vec<&str> = spec.split_whitespace().collect();
    if fields.len() != 5 {
        return Err(format!("expected 5 fields, found {}", fields.len()));
    }
    const FIELDS: [(&str, u32, u32); 5] = [
        ("minute", 0, 59),
        ("hour", 0, 23),
        ("day of month", 1, 31),
        ("month", 1, 12),
        ("day of week", 0, 7),
    ];
    for (field, (name, min, max)) in fields.iter().zip(FIELDS) {
        check_cron_field(field, min, max, name == "month" || name == "day of week")
            .map_err(|why| format!("{name} field `{field}`: {why}"))?;
    }
    Ok(())
}

fn check_cron_field(field: &str, min: u32, max: u32, names_allowed: bool) -> Result<(), String> {
    for part in field.split(',') {
        let (range, step) = match part.split_once('/') {
            Some((range, step)) => (range, Some(step)),
            None => (part, None),
        };
        if let Some(step) = step {
            match step.parse::<u32>() {
                Ok(s) if s > 0 => {}
                _ => return Err(format!("invalid step `{step}`")),
            }
        }
        // `H` (hashed value) is Platform.sh Grid syntax; accept it like `*`.
        if range == "*" || range == "H" {
            continue;
        }
        let bounds: Vec<&str> = range.split('-').collect();
        if bounds.is_empty() || bounds.len() > 2 {
            return Err(format!("invalid range `{range}`"));
        }
        let mut values = Vec::new();
        for b in &bounds {
            let v = match b.parse::<u32>() {
                Ok(v) => v,
                Err(_) if names_allowed && is_cron_name(b) => continue,
                Err(_) => return Err(format!("`{b}` is not a number")),
            };
            if v < min || v > max {
                return Err(format!("{v} is outside {min}-{max}"));
            }
            values.push(v);
        }
        if let [a, b] = values[..]
            && a > b
        {
            return Err(format!("range `{range}` is backwards"));
        }
    }
    Ok(())
}

fn is_cron_name(s: &str) -> bool {
    const NAMES: [&str; 19] = [
        "jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec", "sun",
        "mon", "tue", "wed", "thu", "fri", "sat",
    ];
    NAMES.contains(&s.to_ascii_lowercase().as_str())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expires() {
        for (input, expected) in [
            ("-1", Some(-1)),
            ("300", Some(300)),
            ("5m", Some(300)),
            ("1y", Some(31_536_000)),
            ("2w", Some(1_209_600)),
            ("1500ms", Some(1)),
            ("1x", None),
            ("", None),
            ("d", None),
            ("-5", None),
        ] {
            assert_eq!(parse_expires(input), expected, "{input}");
        }
    }

    #[test]
    fn regexes() {
        assert_eq!(
            check_regex(r"^/static/version\d+/(?<resource>.*)$"),
            RegexCheck::Valid
        );
        assert_eq!(check_regex(r"\.(css|js)$"), RegexCheck::Valid);
        assert!(matches!(
            check_regex(r"^/(?!admin)"),
            RegexCheck::Unsupported(_)
        ));
        assert!(matches!(check_regex(r"^/a(b"), RegexCheck::Invalid(_)));
    }

    #[test]
    fn cron_specs() {
        for (input, ok) in [
            ("* * * * *", true),
            ("*/5 * * * *", true),
            ("0 3 * * 1-5", true),
            ("0,30 8-18/2 1 jan mon", true),
            ("H * * * *", true),
            ("@daily", true),
            ("* * * *", false),
            ("60 * * * *", false),
            ("*/0 * * * *", false),
            ("5-1 * * * *", false),
            ("a * * * *", false),
            ("@sometimes", false),
        ] {
            assert_eq!(
                check_cron_spec(input).is_ok(),
                ok,
                "{input}: {:?}",
                check_cron_spec(input)
            );
        }
    }
}
