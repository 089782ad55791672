//! Cron spec text → one bit set per field.

use crate::error::{CronError, Field, Problem};

/// The bit sets of a parsed spec: bit `v` is set when value `v` matches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Fields {
    pub minutes: u64,
    pub hours: u64,
    pub days_of_month: u64,
    pub months: u64,
    /// 0 = Sunday … 6 = Saturday; a 7 in the spec is folded into 0.
    pub days_of_week: u64,
    /// Vixie cron's DOM_STAR / DOW_STAR: the field's text starts with `*` (so `*/2` counts
    /// as unrestricted too). Only when neither is set does a day match on EITHER field.
    pub day_of_month_star: bool,
    pub day_of_week_star: bool,
}

const MONTH_NAMES: [&str; 12] = [
    "jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec",
];
const WEEKDAY_NAMES: [&str; 7] = ["sun", "mon", "tue", "wed", "thu", "fri", "sat"];

/// What values a field takes and how `*` and `H` expand in it.
struct Domain {
    min: u32,
    max: u32,
    /// The range `*` stands for; day-of-week's excludes 7 (which is Sunday again).
    star: (u32, u32),
    /// The range a bare `H` picks from; day-of-month's stops at 28 so it fires every month.
    hash: (u32, u32),
    /// Names for `min`, `min + 1`, …
    names: &'static [&'static str],
}

fn domain(field: Field) -> Domain {
    let plain = |min, max| Domain {
        min,
        max,
        star: (min, max),
        hash: (min, max),
        names: &[],
    };
    match field {
        Field::Minute => plain(0, 59),
        Field::Hour => plain(0, 23),
        Field::DayOfMonth => Domain {
            hash: (1, 28),
            ..plain(1, 31)
        },
        Field::Month => Domain {
            names: &MONTH_NAMES,
            ..plain(1, 12)
        },
        Field::DayOfWeek => Domain {
            min: 0,
            max: 7,
            star: (0, 6),
            hash: (0, 6),
            names: &WEEKDAY_NAMES,
        },
    }
}

pub(crate) fn parse(spec: &str, seed: Option<&str>) -> Result<Fields, CronError> {
    let spec = spec.trim();
    if spec.is_empty() {
        return Err(CronError::Empty);
    }
    if spec.starts_with('@') {
        return parse(expand_macro(spec)?, None);
    }
    let texts: Vec<&str> = spec.split_whitespace().collect();
    let [minute, hour, day_of_month, month, day_of_week] = texts[..] else {
        return Err(CronError::FieldCount {
            spec: spec.to_owned(),
            found: texts.len(),
        });
    };
    let mut days_of_week = parse_field(Field::DayOfWeek, day_of_week, seed)?;
    if days_of_week & (1 << 7) != 0 {
        days_of_week = (days_of_week & !(1 << 7)) | 1;
    }
    Ok(Fields {
        minutes: parse_field(Field::Minute, minute, seed)?,
        hours: parse_field(Field::Hour, hour, seed)?,
        days_of_month: parse_field(Field::DayOfMonth, day_of_month, seed)?,
        months: parse_field(Field::Month, month, seed)?,
        days_of_week,
        day_of_month_star: day_of_month.starts_with('*'),
        day_of_week_star: day_of_week.starts_with('*'),
    })
}

fn expand_macro(spec: &str) -> Result<&'static str, CronError> {
    let name = spec.to_ascii_lowercase();
    Ok(match name.as_str() {
        "@yearly" | "@annually" => "0 0 1 1 *",
        "@monthly" => "0 0 1 * *",
        "@weekly" => "0 0 * * 0",
        "@daily" | "@midnight" => "0 0 * * *",
        "@hourly" => "0 * * * *",
        _ => {
            return Err(CronError::UnknownMacro {
                found: spec.to_owned(),
            });
        }
    })
}

fn parse_field(field: Field, text: &str, seed: Option<&str>) -> Result<u64, CronError> {
    let error = |problem| CronError::Field {
        field,
        text: text.to_owned(),
        problem,
    };
    let domain = domain(field);
    let mut mask = 0u64;
    for item in text.split(',') {
        let (first, last, step) = parse_item(field, &domain, item, seed).map_err(error)?;
        for value in (first..=last).step_by(step) {
            mask |= 1 << value;
        }
    }
    Ok(mask)
}

/// One list item as `(first, last, step)`.
fn parse_item(
    field: Field,
    domain: &Domain,
    item: &str,
    seed: Option<&str>,
) -> Result<(u32, u32, usize), Problem> {
    if item.is_empty() {
        return Err(Problem::EmptyItem);
    }
    let (base, step) = match item.split_once('/') {
        Some((base, step)) => (base, Some(parse_step(step)?)),
        None => (item, None),
    };
    if base == "*" {
        return Ok((domain.star.0, domain.star.1, step.unwrap_or(1)));
    }
    if base.starts_with(['H', 'h']) {
        let seed = seed.ok_or(Problem::HashWithoutSeed)?;
        let (low, high) = if base.len() == 1 {
            domain.hash
        } else {
            let bad = || Problem::BadHash {
                found: item.to_owned(),
            };
            let range = base[1..]
                .strip_prefix('(')
                .and_then(|rest| rest.strip_suffix(')'))
                .ok_or_else(bad)?;
            let (low, high) = range.split_once('-').ok_or_else(bad)?;
            parse_range(domain, range, low, high)?
        };
        let hash = seed_hash(seed, field);
        let span = u64::from(high - low + 1);
        return Ok(match step {
            None => {
                let value = low + (hash % span) as u32;
                (value, value, 1)
            }
            // The offset stays below the span so `H/90` in minutes still fires once an hour.
            Some(step) => {
                let offset = hash % span.min(step as u64);
                (low + offset as u32, high, step)
            }
        });
    }
    if let Some((low, high)) = base.split_once('-') {
        let (low, high) = parse_range(domain, base, low, high)?;
        return Ok((low, high, step.unwrap_or(1)));
    }
    let value = parse_value(domain, base)?;
    if step.is_some() {
        return Err(Problem::StepWithoutRange {
            found: item.to_owned(),
        });
    }
    Ok((value, value, 1))
}

fn parse_range(domain: &Domain, range: &str, low: &str, high: &str) -> Result<(u32, u32), Problem> {
    if low.is_empty() || high.is_empty() {
        return Err(not_a_value(domain, range));
    }
    let (start, end) = (parse_value(domain, low)?, parse_value(domain, high)?);
    if start > end {
        return Err(Problem::Backwards { start, end });
    }
    Ok((start, end))
}

fn parse_step(text: &str) -> Result<usize, Problem> {
    let bad = || Problem::BadStep {
        found: text.to_owned(),
    };
    let step = parse_number(text).ok_or_else(bad)?;
    if step == 0 {
        return Err(bad());
    }
    Ok(step as usize)
}

fn parse_value(domain: &Domain, text: &str) -> Result<u32, Problem> {
    if !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) {
        return match parse_number(text) {
            Some(value) if (domain.min..=domain.max).contains(&value) => Ok(value),
            _ => Err(Problem::OutOfRange {
                found: text.to_owned(),
            }),
        };
    }
    domain
        .names
        .iter()
        .position(|name| name.eq_ignore_ascii_case(text))
        .map(|index| domain.min + index as u32)
        .ok_or_else(|| not_a_value(domain, text))
}

fn not_a_value(domain: &Domain, text: &str) -> Problem {
    let found = text.to_owned();
    if domain.names.is_empty() {
        Problem::NotANumber { found }
    } else {
        Problem::NotANumberOrName { found }
    }
}

/// ASCII digits only (no sign, no `+`), and small enough that no field value or step
/// comes near overflowing.
fn parse_number(text: &str) -> Option<u32> {
    if text.is_empty() || text.len() > 6 || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse().ok()
}

/// A stable 64-bit hash of the seed and the field, so `H H * * *` does not put the
/// minute and the hour on the same number. FNV-1a, then SplitMix64's finaliser because
/// FNV's low bits are weak for short seeds. Changing this moves every `H` cron of every
/// project: it is pinned by tests.
fn seed_hash(seed: &str, field: Field) -> u64 {
    let field_index = Field::ALL.iter().position(|f| *f == field).unwrap_or(0) as u8;
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in seed.bytes().chain([0xff, field_index]) {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    hash ^= hash >> 30;
    hash = hash.wrapping_mul(0xbf58_476d_1ce4_e5b9);
    hash ^= hash >> 27;
    hash = hash.wrapping_mul(0x94d0_49bb_1331_11eb);
    hash ^ (hash >> 31)
}
