//! Platform.sh's (Jenkins') `H`: a value hashed from the seed, stable and in range.

use crate::{at, check_schedule, show};
use grove_cron::Schedule;

fn seeded(spec: &str, seed: &str) -> Schedule {
    Schedule::parse_with_seed(spec, seed).unwrap_or_else(|e| panic!("{spec:?} {seed:?}: {e}"))
}

/// Every firing from `from` (exclusive) to `until` (inclusive).
fn firings(schedule: &Schedule, from: &str, until: &str) -> Vec<i64> {
    let (mut t, until) = (at(from), at(until));
    let mut out = Vec::new();
    while let Some(next) = schedule.next_after(t).filter(|next| *next <= until) {
        out.push(next);
        t = next;
    }
    out
}

fn minute_of(t: i64) -> i64 {
    t / 60 % 60
}

#[test]
fn pinned_values_so_a_hash_change_is_noticed() {
    // Changing the hash moves every H cron of every project: these must not change.
    let table = [
        ("H * * * *", "cronrun", "2026-11-22 05:55"),
        ("H * * * *", "magento", "2026-11-22 05:52"),
        ("H H * * *", "cronrun", "2026-11-22 09:55"),
        ("H/15 * * * *", "cronrun", "2026-11-22 05:10"),
        ("0 0 H * *", "backup", "2026-12-14 00:00"),
        ("0 0 * * H", "backup", "2026-11-24 00:00"),
    ];
    for (spec, seed, expected) in table {
        check_schedule(&seeded(spec, seed), spec, "2026-11-22 04:59", expected);
    }
}

#[test]
fn the_same_seed_gives_the_same_schedule() {
    for seed in ["cronrun", "", "a", "Ünïcødé", "x".repeat(1000).as_str()] {
        for spec in ["H * * * *", "H H H H H", "H/7 H(2-5) * * *"] {
            assert_eq!(seeded(spec, seed), seeded(spec, seed), "{spec:?} {seed:?}");
        }
    }
}

#[test]
fn bare_h_fires_once_per_period_at_a_value_in_range() {
    let mut minutes = std::collections::BTreeSet::new();
    for i in 0..200 {
        let seed = format!("cron-{i}");
        let hourly = firings(
            &seeded("H * * * *", &seed),
            "2026-11-22 00:00",
            "2026-11-23 00:00",
        );
        assert_eq!(hourly.len(), 24, "{seed}");
        assert!(hourly.windows(2).all(|w| w[1] - w[0] == 3600), "{seed}");
        minutes.insert(minute_of(hourly[0]));

        let daily = firings(
            &seeded("H H * * *", &seed),
            "2026-11-22 00:00",
            "2026-12-22 00:00",
        );
        assert_eq!(daily.len(), 30, "{seed}");

        // Day-of-month H stays in 1-28, so it fires in February too.
        let monthly = firings(
            &seeded("0 0 H * *", &seed),
            "2027-01-01 00:00",
            "2028-01-01 00:00",
        );
        assert_eq!(
            monthly.len(),
            12,
            "{seed}: {:?}",
            monthly.iter().map(|t| show(*t)).collect::<Vec<_>>()
        );

        let weekly = firings(
            &seeded("0 0 * * H", &seed),
            "2026-11-22 00:00",
            "2026-12-20 00:00",
        );
        assert_eq!(weekly.len(), 4, "{seed}");

        let yearly = firings(
            &seeded("0 0 1 H *", &seed),
            "2027-01-01 00:00",
            "2028-01-01 00:00",
        );
        assert_eq!(yearly.len(), 1, "{seed}");
    }
    assert!(
        minutes.len() > 40,
        "H spreads crons over the hour: {minutes:?}"
    );
}

#[test]
fn h_with_a_step_has_a_stable_offset_below_the_step() {
    let mut offsets = std::collections::BTreeSet::new();
    for i in 0..100 {
        let seed = format!("cron-{i}");
        let quarter = firings(
            &seeded("H/15 * * * *", &seed),
            "2026-11-21 23:59",
            "2026-11-22 00:59",
        );
        assert_eq!(quarter.len(), 4, "{seed}");
        assert!(quarter.windows(2).all(|w| w[1] - w[0] == 15 * 60), "{seed}");
        assert!(minute_of(quarter[0]) < 15, "{seed}");
        offsets.insert(minute_of(quarter[0]));

        // A step longer than the field still fires, once an hour.
        let long = firings(
            &seeded("H/90 * * * *", &seed),
            "2026-11-22 00:00",
            "2026-11-22 03:00",
        );
        assert_eq!(long.len(), 3, "{seed}");
    }
    assert!(offsets.len() > 8, "{offsets:?}");
}

#[test]
fn h_with_a_range_stays_in_the_range() {
    for i in 0..100 {
        let seed = format!("cron-{i}");
        let night = seeded("H H(0-5) * * *", &seed);
        let t = night
            .next_after(at("2026-11-22 06:00"))
            .expect("fires daily");
        assert!(
            show(t) >= "2026-11-23 00:00".into() && show(t) < "2026-11-23 06:00".into(),
            "{}",
            show(t)
        );

        let stepped = firings(
            &seeded("H(10-39)/10 * * * *", &seed),
            "2026-11-22 00:00",
            "2026-11-22 01:00",
        );
        assert_eq!(stepped.len(), 3, "{seed}");
        assert!(
            stepped.iter().all(|t| (10..40).contains(&minute_of(*t))),
            "{seed}"
        );
    }
}

#[test]
fn h_in_lists_and_lowercase() {
    let schedule = seeded("h,30 * * * *", "cron-1");
    let hourly = firings(&schedule, "2026-11-22 00:00", "2026-11-22 01:00");
    assert!(hourly.iter().any(|t| minute_of(*t) == 30));
    assert_eq!(seeded("h * * * *", "x"), seeded("H * * * *", "x"));
}

#[test]
fn different_fields_hash_differently() {
    // With one hash for every field, `H H` would put the minute on the hour's number.
    let same = (0..50)
        .filter(|i| {
            let t = seeded("H H * * *", &format!("cron-{i}"))
                .next_after(at("2026-11-22 00:00"))
                .expect("daily");
            t / 60 % 60 == t / 3600 % 24
        })
        .count();
    assert!(same < 10);
}

#[test]
fn a_seed_changes_nothing_without_h() {
    for spec in ["*/5 * * * *", "@daily", "0 0 13 * 5"] {
        assert_eq!(Schedule::parse_with_seed(spec, "x"), Schedule::parse(spec));
    }
}
