//! The retention policy: six months of hourly backups pruned as the scheduler would,
//! checked against the table; edge cases through one `check` helper.

use std::collections::BTreeMap;

use grove_backup::retention::{
    Candidate, DAY, HOUR, Interval, Policy, PolicyError, Reason, Tier, Trigger, WEEK, keep, retain,
};

/// 2026-06-01 00:17 UTC, a Monday: backups run at 17 past each hour.
const START: i64 = 1_780_272_000 + 17 * 60;

fn auto(id: u32, created_at: i64) -> Candidate<u32> {
    Candidate {
        id,
        created_at,
        trigger: Trigger::Automatic,
    }
}

fn manual(id: u32, created_at: i64) -> Candidate<u32> {
    Candidate {
        id,
        created_at,
        trigger: Trigger::Manual,
    }
}

/// The ids `policy` keeps at `now`, in order.
fn check(policy: &Policy, backups: &[Candidate<u32>], now: i64, expected: &[u32]) {
    let kept: Vec<u32> = keep(policy, backups, now).into_iter().collect();
    assert_eq!(kept, expected, "kept at {now}");
}

/// Per tier (1-based), the creation times it keeps, oldest first.
fn by_tier(policy: &Policy, backups: &[Candidate<u32>], now: i64) -> BTreeMap<usize, Vec<i64>> {
    let retention = retain(policy, backups, now);
    let mut tiers: BTreeMap<usize, Vec<i64>> = BTreeMap::new();
    for backup in backups {
        match retention.kept.get(&backup.id) {
            Some(Reason::Tier { tier, .. }) => {
                tiers.entry(*tier).or_default().push(backup.created_at)
            }
            Some(other) => panic!("backup {} kept for {other:?}", backup.id),
            None => {}
        }
    }
    for times in tiers.values_mut() {
        times.sort();
    }
    tiers
}

#[test]
fn production_policy_over_six_months_of_hourly_backups_matches_the_table() {
    let policy = Policy::production();
    let mut stored: Vec<Candidate<u32>> = Vec::new();
    let hours = 183 * 24;
    for hour in 0..hours {
        let now = START + i64::from(hour) * HOUR;
        stored.push(auto(hour, now));
        // The scheduler prunes right after each backup, and again a few minutes later
        // (a retry, a restart): pruning twice at one instant changes nothing.
        let kept = keep(&policy, &stored, now);
        stored.retain(|b| kept.contains(&b.id));
        assert_eq!(keep(&policy, &stored, now + 600).len(), kept.len());

        // Once the tiers are full (24 weeks and a few days in), every hour's kept set
        // is exactly the table: 72 hourly, 4 daily, 5 weekly, 3 fortnightly, 3 monthly.
        if now - START >= 24 * WEEK + 7 * DAY {
            let tiers = by_tier(&policy, &stored, now);
            let counts: Vec<usize> = tiers.values().map(Vec::len).collect();
            assert_eq!(counts, [72, 4, 5, 3, 3], "at hour {hour}");
            assert_eq!(stored.len(), 87);
        }
    }

    let now = START + i64::from(hours - 1) * HOUR;
    let tiers = by_tier(&policy, &stored, now);
    // Spacing: consecutive backups of a tier are exactly one period apart, and the
    // first of each period (17 past the hour, the day's first hour, Monday's first) is
    // the one kept.
    for (tier, every) in [(1, HOUR), (2, DAY), (3, WEEK), (4, 2 * WEEK), (5, 4 * WEEK)] {
        let times = &tiers[&tier];
        for pair in times.windows(2) {
            assert_eq!(pair[1] - pair[0], every, "tier {tier}: {times:?}");
        }
        if every >= DAY {
            for at in times {
                assert_eq!(
                    at.rem_euclid(DAY),
                    17 * 60,
                    "tier {tier} keeps the day's first"
                );
            }
        }
        if every >= WEEK {
            for at in times {
                // 1970-01-05 was a Monday.
                assert_eq!(
                    (at - 4 * DAY).rem_euclid(WEEK),
                    17 * 60,
                    "tier {tier} keeps Mondays"
                );
            }
        }
    }
    // Ages against the table's bounds (age in days of the youngest and oldest kept).
    let age = |at: i64| (now - at) as f64 / DAY as f64;
    let bounds = [
        (1, 0.0, 3.0),
        (2, 3.0, 7.0),
        (3, 7.0, 42.0),
        (4, 42.0, 84.0),
        (5, 84.0, 168.0),
    ];
    for (tier, youngest, oldest) in bounds {
        let times = &tiers[&tier];
        let (first, last) = (times[0], times[times.len() - 1]);
        assert!(
            age(last) >= youngest && age(first) < oldest,
            "tier {tier}: ages {} to {}",
            age(last),
            age(first)
        );
    }
}

#[test]
fn pruning_as_you_go_keeps_what_applying_once_keeps() {
    // Pruning every hour must never delete a backup a later run would want: the set
    // kept by pruning as you go equals the set the policy picks from the full history.
    let policy = Policy::production();
    let all: Vec<Candidate<u32>> = (0..200 * 24)
        .map(|h| auto(h, START + i64::from(h) * HOUR))
        .collect();
    let mut stored = Vec::new();
    for backup in &all {
        stored.push(backup.clone());
        let kept = keep(&policy, &stored, backup.created_at);
        stored.retain(|b| kept.contains(&b.id));
        if backup.id.is_multiple_of(97) {
            let from_history = keep(&policy, &all[..=backup.id as usize], backup.created_at);
            assert_eq!(kept, from_history, "at backup {}", backup.id);
        }
    }
}

#[test]
fn no_backups_keeps_nothing() {
    check(&Policy::production(), &[], START, &[]);
}

#[test]
fn backups_in_one_bucket_keep_the_first_and_the_newest() {
    let backups: Vec<_> = (0..5).map(|i| auto(i, START + i64::from(i) * 60)).collect();
    check(&Policy::production(), &backups, START + 10 * 60, &[0, 4]);
    let retention = retain(&Policy::production(), &backups, START + 10 * 60);
    assert_eq!(retention.kept[&4], Reason::Newest);
    assert_eq!(retention.pruned, [1, 2, 3]);
}

#[test]
fn backups_in_the_future_are_kept() {
    // The clock went back an hour: the backups made "later" are kept and take no
    // bucket; the policy still applies to the rest.
    let backups = [
        auto(1, START - 2 * HOUR),
        auto(2, START + 30 * 60),
        auto(3, START + 3 * DAY),
    ];
    let retention = retain(&Policy::production(), &backups, START);
    assert_eq!(retention.kept[&2], Reason::Future);
    assert_eq!(retention.kept[&3], Reason::Future);
    assert!(matches!(retention.kept[&1], Reason::Tier { tier: 1, .. }));
    assert!(retention.pruned.is_empty());
}

#[test]
fn the_newest_backup_is_kept_even_by_an_empty_policy() {
    let policy = Policy::new(0, vec![]).expect("valid");
    check(
        &policy,
        &[
            auto(1, START),
            auto(2, START + HOUR),
            manual(3, START - DAY),
        ],
        START + 2 * HOUR,
        &[2],
    );
}

#[test]
fn manual_backups_stay_until_replaced_whatever_their_age() {
    let policy = Policy::preview();
    let backups = [
        manual(1, START - 300 * DAY),
        manual(2, START - 200 * DAY),
        manual(3, START - 100 * DAY),
        auto(4, START - 10 * DAY),
    ];
    // The two newest manual backups, and the newest backup (an automatic one, too old
    // for the daily tier).
    check(&policy, &backups, START, &[2, 3, 4]);
    let retention = retain(&policy, &backups, START);
    assert_eq!(retention.kept[&3], Reason::Manual { rank: 1 });
    assert_eq!(retention.kept[&2], Reason::Manual { rank: 2 });
    assert_eq!(retention.pruned, [1]);
}

#[test]
fn manual_backups_take_no_tier_slot() {
    // An hourly tier of one: a manual backup in the same hour does not displace the
    // automatic one.
    let policy = Policy::new(1, vec![Tier::new(Interval::HOUR, 1)]).expect("valid");
    check(
        &policy,
        &[manual(1, START), auto(2, START + 60), auto(3, START + 120)],
        START + 180,
        &[1, 2, 3],
    );
}

#[test]
fn sparse_daily_backups_under_the_production_policy() {
    // Daily backups at 04:17: 3 in the hourly tier's 72 h, then one per day, week,
    // fortnight and month; empty buckets still count as periods.
    let policy = Policy::production();
    let four = START + 4 * HOUR;
    let mut stored = Vec::new();
    for day in 0..200 {
        let now = four + i64::from(day) * DAY;
        stored.push(auto(day, now));
        let kept = keep(&policy, &stored, now);
        stored.retain(|b| kept.contains(&b.id));
    }
    let now = four + 199 * DAY;
    let tiers = by_tier(&policy, &stored, now);
    assert_eq!(tiers[&1].len(), 3);
    assert_eq!(tiers[&2].len(), 4);
    assert_eq!(tiers[&3].len(), 5);
}

#[test]
fn ties_are_broken_by_id() {
    let policy = Policy::new(0, vec![Tier::new(Interval::DAY, 1)]).expect("valid");
    check(
        &policy,
        &[auto(7, START), auto(3, START), auto(9, START + HOUR)],
        START + HOUR,
        &[3, 9],
    );
}

#[test]
fn policies_round_trip_through_yaml_and_json() {
    let yaml = "manual: 3\ntiers:\n  - { every: 6h, keep: 4 }\n  - { every: 1d, keep: 30 }\n  - { every: 4w, keep: 11 }\n";
    let policy: Policy = serde_saphyr::from_str(yaml).expect("valid policy");
    assert_eq!(policy.manual(), 3);
    assert_eq!(
        policy.tiers()[0],
        Tier::new(Interval::from_seconds(6 * HOUR).expect("positive"), 4)
    );
    let json = serde_json::to_string(&Policy::production()).expect("serialises");
    assert_eq!(
        json,
        r#"{"manual":4,"tiers":[{"every":"1h","keep":72},{"every":"1d","keep":4},{"every":"1w","keep":5},{"every":"2w","keep":3},{"every":"4w","keep":3}]}"#
    );
    let back: Policy = serde_json::from_str(&json).expect("parses");
    assert_eq!(back, Policy::production());
}

#[test]
fn invalid_policies_are_refused_with_the_reason() {
    let cases = [
        (
            r#"{"tiers":[{"every":"1d","keep":0}]}"#,
            "retention tier 1 (every 1d) keeps nothing: `keep` must be at least 1",
        ),
        (
            r#"{"tiers":[{"every":"1d","keep":7},{"every":"36h","keep":2}]}"#,
            "retention tier 2 (every 36h) must be a multiple of the tier before it (every 1d), so that the first backup of each period is also the first of the longer one",
        ),
        (
            r#"{"tiers":[{"every":"1y","keep":1}]}"#,
            "invalid interval `1y`: expected a positive whole number and a unit, as in 30m, 1h, 1d, 2w",
        ),
        (
            r#"{"tiers":[{"every":"0h","keep":1}]}"#,
            "invalid interval `0h`",
        ),
        (
            r#"{"tiers":[{"every":"52w","keep":200}]}"#,
            "the retention tiers cover more than 100 years",
        ),
        (r#"{"manual":2,"daily":3}"#, "unknown field `daily`"),
    ];
    for (json, expected) in cases {
        let error = serde_json::from_str::<Policy>(json)
            .expect_err(json)
            .to_string();
        assert!(error.contains(expected), "{json}: {error}");
    }
    assert!(matches!(
        Policy::new(
            0,
            vec![Tier::new(Interval::WEEK, 1), Tier::new(Interval::DAY, 1)]
        ),
        Err(PolicyError::NotAMultiple { tier: 2, .. })
    ));
}

#[test]
fn extreme_times_do_not_overflow() {
    let policy = Policy::production();
    let backups = [auto(1, i64::MIN), auto(2, i64::MAX), auto(3, 0)];
    let retention = retain(&policy, &backups, i64::MAX);
    assert!(retention.kept.contains_key(&2));
    let retention = retain(&policy, &backups, i64::MIN);
    assert_eq!(retention.kept.len(), 3);
}

#[test]
fn pruning_as_you_go_is_exact_for_irregular_schedules_too() {
    // Backups at irregular times (a minute to three days apart: retries, outages,
    // manual runs mixed in), pruned after each one: the kept set is always what the
    // policy picks from the whole history.
    let policy = Policy::production();
    for seed in [1u64, 0x5eed, 0xdead_beef] {
        let mut state = seed;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        let mut all = Vec::new();
        let mut stored = Vec::new();
        let mut now = START;
        let mut id = 0u32;
        while now < START + 200 * DAY {
            now += 60 + (next() % (3 * DAY as u64)) as i64 / if next() % 4 == 0 { 1 } else { 40 };
            let trigger = if next() % 10 == 0 {
                Trigger::Manual
            } else {
                Trigger::Automatic
            };
            let backup = Candidate {
                id,
                created_at: now,
                trigger,
            };
            id += 1;
            all.push(backup.clone());
            stored.push(backup);
            let kept = keep(&policy, &stored, now);
            stored.retain(|b| kept.contains(&b.id));
            if id.is_multiple_of(25) {
                assert_eq!(kept, keep(&policy, &all, now), "seed {seed}, backup {id}");
            }
        }
        assert_eq!(
            keep(&policy, &stored, now),
            keep(&policy, &all, now),
            "seed {seed}"
        );
    }
}
