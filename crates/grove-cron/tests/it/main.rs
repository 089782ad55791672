//! One test binary for grove-cron: `check(spec, after, expected)` tables per feature,
//! snapshots of the error messages, and property tests.

mod errors;
mod hash;
mod interval;
mod next;
mod props;

use grove_cron::Schedule;

/// Seconds since the epoch of "YYYY-MM-DD HH:MM" or "YYYY-MM-DD HH:MM:SS" (UTC).
///
/// Counts days year by year and month by month, independently of the crate's
/// Hinnant-style arithmetic, so the two check each other.
pub fn at(text: &str) -> i64 {
    let numbers: Vec<i64> = text
        .split(['-', ' ', ':'])
        .map(|part| part.parse().unwrap_or_else(|_| bad_time(text)))
        .collect();
    let (year, month, day, hour, minute, second) = match numbers[..] {
        [y, mo, d, h, mi] => (y, mo, d, h, mi, 0),
        [y, mo, d, h, mi, s] => (y, mo, d, h, mi, s),
        _ => bad_time(text),
    };
    assert!((1..=12).contains(&month) && day >= 1 && day <= days_in_month(year, month));
    assert!((0..24).contains(&hour) && (0..60).contains(&minute) && (0..60).contains(&second));
    let mut days = 0;
    for y in year.min(1970)..year.max(1970) {
        let length = if is_leap(y) { 366 } else { 365 };
        days += if year < 1970 { -length } else { length };
    }
    days += (1..month).map(|m| days_in_month(year, m)).sum::<i64>() + day - 1;
    ((days * 24 + hour) * 60 + minute) * 60 + second
}

/// The inverse of [`at`] for whole minutes: "YYYY-MM-DD HH:MM" (with ":SS" otherwise).
pub fn show(seconds: i64) -> String {
    let mut days = seconds.div_euclid(86_400);
    let in_day = seconds.rem_euclid(86_400);
    let mut year = 1970;
    while days < 0 {
        year -= 1;
        days += if is_leap(year) { 366 } else { 365 };
    }
    while days >= if is_leap(year) { 366 } else { 365 } {
        days -= if is_leap(year) { 366 } else { 365 };
        year += 1;
    }
    let mut month = 1;
    while days >= days_in_month(year, month) {
        days -= days_in_month(year, month);
        month += 1;
    }
    let (hour, minute, second) = (in_day / 3600, in_day / 60 % 60, in_day % 60);
    let mut text = format!("{year:04}-{month:02}-{:02} {hour:02}:{minute:02}", days + 1);
    if second != 0 {
        text += &format!(":{second:02}");
    }
    text
}

fn bad_time(text: &str) -> ! {
    panic!("bad time {text:?}, expected YYYY-MM-DD HH:MM[:SS]")
}

fn is_leap(year: i64) -> bool {
    year % 4 == 0 && (year % 100 != 0 || year % 400 == 0)
}

fn days_in_month(year: i64, month: i64) -> i64 {
    match month {
        2 if is_leap(year) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// `spec` (parsed without a seed) fires first, strictly after `after`, at `expected`
/// ("never" for `None`).
#[track_caller]
pub fn check(spec: &str, after: &str, expected: &str) {
    let schedule = Schedule::parse(spec).unwrap_or_else(|e| panic!("{spec:?}: {e}"));
    check_schedule(&schedule, spec, after, expected);
}

#[track_caller]
pub fn check_schedule(schedule: &Schedule, spec: &str, after: &str, expected: &str) {
    let got = schedule.next_after(at(after)).map(show);
    assert_eq!(
        got.as_deref().unwrap_or("never"),
        expected,
        "{spec:?} after {after}"
    );
}

#[test]
fn the_time_helpers_agree_with_known_epochs() {
    assert_eq!(at("1970-01-01 00:00"), 0);
    assert_eq!(at("2026-11-22 04:59"), 1_795_323_540);
    assert_eq!(at("2000-03-01 00:00:01"), 951_868_801);
    assert_eq!(at("1969-12-31 23:59"), -60);
    for text in [
        "1969-12-31 23:59",
        "2024-02-29 12:34",
        "2100-03-01 00:00",
        "1900-02-28 23:59:59",
    ] {
        assert_eq!(show(at(text)), text);
    }
}
