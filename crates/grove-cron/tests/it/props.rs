//! Properties over arbitrary input: the parser never panics, and `next_after` returns the
//! first firing minute strictly after the given time.

use grove_cron::Schedule;
use proptest::prelude::*;

/// One list item of a field whose values are `min..=max`, with optional names.
fn item(min: u32, max: u32, names: &'static [&'static str]) -> BoxedStrategy<String> {
    let value = move || {
        let number = (min..=max).prop_map(|v| v.to_string());
        if names.is_empty() {
            number.boxed()
        } else {
            prop_oneof![
                number,
                proptest::sample::select(names).prop_map(str::to_owned)
            ]
            .boxed()
        }
    };
    let range = move || {
        (min..=max, min..=max).prop_map(move |(a, b)| {
            let (a, b) = (a.min(b), a.max(b));
            format!("{a}-{b}")
        })
    };
    prop_oneof![
        Just("*".to_owned()),
        (1..=max + 2).prop_map(|n| format!("*/{n}")),
        value(),
        range(),
        (range(), 1..=max + 2).prop_map(|(r, n)| format!("{r}/{n}")),
        Just("H".to_owned()),
        (1..=max + 2).prop_map(|n| format!("H/{n}")),
        range().prop_map(|r| format!("H({r})")),
    ]
    .boxed()
}

fn field(min: u32, max: u32, names: &'static [&'static str]) -> impl Strategy<Value = String> {
    prop::collection::vec(item(min, max, names), 1..=3).prop_map(|items| items.join(","))
}

const MONTHS: &[&str] = &[
    "jan", "Feb", "MAR", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec",
];
const WEEKDAYS: &[&str] = &["sun", "Mon", "TUE", "wed", "thu", "fri", "sat"];

/// Any valid spec.
fn spec() -> impl Strategy<Value = String> {
    prop_oneof![
        9 => (field(0, 59, &[]), field(0, 23, &[]), field(1, 31, &[]), field(1, 12, MONTHS), field(0, 7, WEEKDAYS))
            .prop_map(|(a, b, c, d, e)| format!("{a} {b} {c} {d} {e}")),
        1 => proptest::sample::select(&["@yearly", "@annually", "@monthly", "@weekly", "@daily", "@midnight", "@hourly"][..])
            .prop_map(str::to_owned),
    ]
}

/// A spec that fires at least once every day: every firing is at most a day and a bit
/// away, so every minute in between can be checked.
fn daily_spec() -> impl Strategy<Value = String> {
    (field(0, 59, &[]), field(0, 23, &[]))
        .prop_map(|(minute, hour)| format!("{minute} {hour} * * *"))
}

/// 1906 to 2093: far enough from 2100 that a Feb 29 is always within five years.
fn time() -> impl Strategy<Value = i64> {
    -2_000_000_000i64..3_900_000_000
}

/// Minutes checked one by one after `t` for schedules that fire rarely.
const BRUTE_FORCE_MINUTES: i64 = 2 * 24 * 60;

fn check_next(schedule: &Schedule, t: i64, window_minutes: i64) -> Result<(), TestCaseError> {
    let interval = schedule.min_interval_minutes();
    let Some(next) = schedule.next_after(t) else {
        prop_assert_eq!(interval, u32::MAX, "no next firing, yet the schedule fires");
        return Ok(());
    };
    prop_assert!(next > t);
    prop_assert_eq!(next % 60, 0);
    prop_assert!(schedule.fires_at(next));
    let first_minute = t.div_euclid(60) * 60 + 60;
    let until = next.min(first_minute + window_minutes * 60);
    for minute in (first_minute..until).step_by(60) {
        prop_assert!(
            !schedule.fires_at(minute),
            "fires at {} before {}",
            minute,
            next
        );
    }
    if let Some(after_next) = schedule.next_after(next) {
        prop_assert!(after_next - next >= i64::from(interval) * 60);
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn arbitrary_text_never_panics(spec in any::<String>(), seed in any::<String>()) {
        let _ = Schedule::parse(&spec);
        let _ = Schedule::parse_with_seed(&spec, &seed);
    }

    #[test]
    fn cron_like_text_never_panics(spec in "[0-9*/,HhA-Za-z@()\\- \t]{0,40}") {
        if let Ok(schedule) = Schedule::parse_with_seed(&spec, "seed") {
            let _ = schedule.next_after(0);
        }
    }

    #[test]
    fn next_after_is_the_first_firing_strictly_after(spec in spec(), seed in ".{0,12}", t in time()) {
        let schedule = Schedule::parse_with_seed(&spec, &seed)
            .map_err(|e| TestCaseError::fail(format!("{spec:?}: {e}")))?;
        check_next(&schedule, t, BRUTE_FORCE_MINUTES)?;
    }

    #[test]
    fn next_after_daily_schedules_checked_minute_by_minute(spec in daily_spec(), seed in ".{0,12}", t in time()) {
        let schedule = Schedule::parse_with_seed(&spec, &seed)
            .map_err(|e| TestCaseError::fail(format!("{spec:?}: {e}")))?;
        let next = schedule.next_after(t);
        prop_assert!(next.is_some_and(|next| next - t <= 24 * 3600 + 60));
        check_next(&schedule, t, 2 * 24 * 60)?;
    }

    #[test]
    fn any_time_at_all_is_safe(t in any::<i64>()) {
        for spec in ["* * * * *", "0 0 29 2 *", "@yearly", "0 0 13 * 5"] {
            let schedule = Schedule::parse(spec).map_err(|e| TestCaseError::fail(e.to_string()))?;
            if let Some(next) = schedule.next_after(t) {
                prop_assert!(next > t);
            }
        }
    }
}
