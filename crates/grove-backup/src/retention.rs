//! Which backups a retention policy keeps. Pure: the time is an input, nothing is read
//! from a clock, a disk or a store.
//!
//! # The rule
//!
//! A [`Policy`] is a number of manual backups to keep plus a list of [`Tier`]s, youngest
//! first, each "one backup per `every`, for `keep` periods". Periods are fixed buckets of
//! `every` counted from Monday 1970-01-05 00:00 UTC, so hours, days, weeks (Monday to
//! Sunday), fortnights and four-week months always start at the same instants, whatever
//! `now` is. The tiers are laid end to end backwards from `now`:
//!
//! 1. the first tier covers the `keep` buckets ending with the one that holds `now`;
//! 2. each next tier covers the `keep` buckets of its own size that start before the
//!    oldest bucket of the tier before it (the youngest of them may be partly covered by
//!    the tier before: it then only holds the backups older than that tier).
//!
//! In each bucket the **oldest** automatic backup is kept (the first backup of each
//! period is the one promoted to the next tier, as on Platform.sh); everything else is
//! pruned. An empty bucket still counts as one of the `keep`: tiers are spans of time,
//! as in the retention table, not counts of backups.
//!
//! Because every tier's `every` is a multiple of the previous tier's (checked when a
//! policy is built or deserialised), the first backup of a bucket is also the first of
//! the larger bucket that holds it. So pruning as you go — applying the policy after
//! every backup, as the scheduler does — never deletes a backup that a later run would
//! have wanted: the kept set at any instant is exactly what the policy says.
//!
//! Besides the tiers:
//! - the newest backup (of either kind) is always kept, so a run never prunes the backup
//!   it was started for;
//! - backups dated after `now` (a clock that went back, a backup from a host whose clock
//!   is ahead) are always kept, and take no bucket;
//! - manual backups are not subject to the tiers: the newest `manual` of them are kept,
//!   whatever their age ("manual backups stay until replaced").

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// Seconds in an hour, a day and a week.
pub const HOUR: i64 = 3600;
pub const DAY: i64 = 24 * HOUR;
pub const WEEK: i64 = 7 * DAY;

/// Buckets are counted from this instant: Monday 1970-01-05 00:00 UTC.
const ORIGIN: i64 = 4 * DAY;

/// The longest span a policy may cover (sum of `every × keep` over its tiers): 100 years.
/// Keeps the arithmetic far from overflow, and no retention table is longer.
const MAX_SPAN: i64 = 36_525 * DAY;

/// A length of time in whole seconds, written `30m`, `1h`, `1d`, `2w` (also `s`).
/// Positive.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Interval(i64);

impl Interval {
    pub const HOUR: Interval = Interval(HOUR);
    pub const DAY: Interval = Interval(DAY);
    pub const WEEK: Interval = Interval(WEEK);

    /// An interval of `seconds`, if positive.
    pub fn from_seconds(seconds: i64) -> Option<Interval> {
        (seconds > 0).then_some(Interval(seconds))
    }

    pub fn seconds(self) -> i64 {
        self.0
    }
}

impl fmt::Display for Interval {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (unit, size) in [("w", WEEK), ("d", DAY), ("h", HOUR), ("m", 60)] {
            if self.0 % size == 0 {
                return write!(f, "{}{unit}", self.0 / size);
            }
        }
        write!(f, "{}s", self.0)
    }
}

impl FromStr for Interval {
    type Err = PolicyError;

    fn from_str(text: &str) -> Result<Interval, PolicyError> {
        let bad = || PolicyError::Interval(text.to_owned());
        let unit_at = text.find(|c: char| !c.is_ascii_digit()).ok_or_else(bad)?;
        let (number, unit) = text.split_at(unit_at);
        let number: i64 = number.parse().map_err(|_| bad())?;
        let size = match unit {
            "s" => 1,
            "m" => 60,
            "h" => HOUR,
            "d" => DAY,
            "w" => WEEK,
            _ => return Err(bad()),
        };
        number
            .checked_mul(size)
            .filter(|seconds| *seconds > 0 && *seconds <= MAX_SPAN)
            .map(Interval)
            .ok_or_else(bad)
    }
}

impl Serialize for Interval {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Interval {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Interval, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

/// One backup per `every`, for `keep` consecutive periods.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Tier {
    pub every: Interval,
    pub keep: u32,
}

impl Tier {
    pub const fn new(every: Interval, keep: u32) -> Tier {
        Tier { every, keep }
    }
}

/// A retention policy: how many manual backups to keep, and the tiers automatic
/// backups are kept by, youngest first. Always valid (see [`Policy::new`]).
///
/// In YAML (a project's configuration):
///
/// ```yaml
/// manual: 4
/// tiers:
///   - { every: 1h, keep: 72 }
///   - { every: 1d, keep: 4 }
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "PolicyFields", into = "PolicyFields")]
pub struct Policy {
    manual: u32,
    tiers: Vec<Tier>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct PolicyFields {
    #[serde(default)]
    manual: u32,
    #[serde(default)]
    tiers: Vec<Tier>,
}

impl TryFrom<PolicyFields> for Policy {
    type Error = PolicyError;
    fn try_from(fields: PolicyFields) -> Result<Policy, PolicyError> {
        Policy::new(fields.manual, fields.tiers)
    }
}

impl From<Policy> for PolicyFields {
    fn from(policy: Policy) -> PolicyFields {
        PolicyFields {
            manual: policy.manual,
            tiers: policy.tiers,
        }
    }
}

/// Why a policy is refused. Always the user's input (a project's configuration).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PolicyError {
    #[error(
        "invalid interval `{0}`: expected a positive whole number and a unit, as in 30m, 1h, 1d, 2w"
    )]
    Interval(String),
    #[error("retention tier {tier} (every {every}) keeps nothing: `keep` must be at least 1")]
    KeepsNothing { tier: usize, every: Interval },
    #[error(
        "retention tier {tier} (every {every}) must be a multiple of the tier before it (every {previous}), so that the first backup of each period is also the first of the longer one"
    )]
    NotAMultiple {
        tier: usize,
        every: Interval,
        previous: Interval,
    },
    #[error("the retention tiers cover more than 100 years")]
    TooLong,
}

impl Policy {
    /// A policy, checked: every tier keeps at least one backup, each tier's `every` is a
    /// multiple of the previous tier's, and all tiers together cover at most 100 years.
    /// Tiers are numbered from 1 in errors.
    pub fn new(manual: u32, tiers: Vec<Tier>) -> Result<Policy, PolicyError> {
        let mut span: i64 = 0;
        for (index, tier) in tiers.iter().enumerate() {
            let number = index + 1;
            if tier.keep == 0 {
                return Err(PolicyError::KeepsNothing {
                    tier: number,
                    every: tier.every,
                });
            }
            if let Some(previous) = index.checked_sub(1).and_then(|i| tiers.get(i))
                && tier.every.0 % previous.every.0 != 0
            {
                return Err(PolicyError::NotAMultiple {
                    tier: number,
                    every: tier.every,
                    previous: previous.every,
                });
            }
            span = tier
                .every
                .0
                .checked_mul(i64::from(tier.keep))
                .and_then(|length| span.checked_add(length))
                .filter(|span| *span <= MAX_SPAN)
                .ok_or(PolicyError::TooLong)?;
        }
        Ok(Policy { manual, tiers })
    }

    /// Production's default, the retention table of Platform.sh's dedicated and Adobe
    /// Commerce Pro production environments, plus 4 manual backups (the Advanced
    /// schedule's):
    ///
    /// | Tier | Kept                | Here                                   |
    /// |------|---------------------|----------------------------------------|
    /// | 1    | days 1–3: hourly    | `1h × 72`                              |
    /// | 2    | days 4–7: daily     | `1d × 4`                               |
    /// | 3    | weeks 2–6: weekly   | `1w × 5`                               |
    /// | 4    | weeks 8–12: fortnightly | `2w × 3` (weeks 7–8, 9–10, 11–12)  |
    /// | 5    | months 3–5: monthly | `4w × 3` (four-week months, weeks 13–24) |
    ///
    /// The table leaves week 7 out; read literally, everything would be pruned there
    /// and nothing could reach the fortnightly tier, so the fortnights are weeks 7–8,
    /// 9–10 and 11–12 (the backups of weeks 8, 10 and 12). A month is four weeks, so
    /// that months nest in fortnights (see the module's rule); the oldest backup kept
    /// is then at most 24 weeks (5½ months) old. 87 automatic backups in all.
    pub fn production() -> Policy {
        Policy {
            manual: 4,
            tiers: vec![
                Tier::new(Interval::HOUR, 72),
                Tier::new(Interval::DAY, 4),
                Tier::new(Interval::WEEK, 5),
                Tier::new(Interval(2 * WEEK), 3),
                Tier::new(Interval(4 * WEEK), 3),
            ],
        }
    }

    /// The default of every other environment type (staging, development): 2 manual
    /// backups (what Platform.sh gives preview environments) and, if automatic backups
    /// are turned on for them, one a day for 2 days (the Basic schedule).
    pub fn preview() -> Policy {
        Policy {
            manual: 2,
            tiers: vec![Tier::new(Interval::DAY, 2)],
        }
    }

    pub fn manual(&self) -> u32 {
        self.manual
    }

    pub fn tiers(&self) -> &[Tier] {
        &self.tiers
    }
}

/// What started a backup.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Trigger {
    /// `backup:create`: kept until replaced by newer manual backups.
    Manual,
    /// The scheduler: kept by the tiers.
    Automatic,
}

/// A backup as retention sees it. `created_at` is in seconds since the epoch (UTC).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Candidate<I> {
    pub id: I,
    pub created_at: i64,
    pub trigger: Trigger,
}

/// Why a backup is kept.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reason {
    /// Dated after `now`.
    Future,
    /// One of the newest `manual` manual backups; `rank` 1 is the newest.
    Manual { rank: u32 },
    /// The oldest backup of its bucket in tier `tier` (numbered from 1); the bucket
    /// starts at `bucket_start`.
    Tier { tier: usize, bucket_start: i64 },
    /// The newest backup, kept whatever the policy says.
    Newest,
}

/// The outcome of applying a policy: what is kept and why, and what is pruned.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Retention<I> {
    pub kept: BTreeMap<I, Reason>,
    /// Oldest first.
    pub pruned: Vec<I>,
}

/// Applies `policy` at `now` (seconds since the epoch): the ids to keep; every other
/// backup is to be pruned. See [`retain`] for the reasons.
pub fn keep<I: Ord + Clone>(policy: &Policy, backups: &[Candidate<I>], now: i64) -> BTreeSet<I> {
    retain(policy, backups, now).kept.into_keys().collect()
}

/// Applies `policy` at `now`: what is kept, each with its reason, and what is pruned.
/// Deterministic: ties in `created_at` are broken by id. A backup listed twice (same
/// id) is decided once, by its first listing.
pub fn retain<I: Ord + Clone>(policy: &Policy, backups: &[Candidate<I>], now: i64) -> Retention<I> {
    let mut seen = BTreeSet::new();
    let mut sorted: Vec<&Candidate<I>> = backups.iter().filter(|b| seen.insert(&b.id)).collect();
    sorted.sort_by(|a, b| (a.created_at, &a.id).cmp(&(b.created_at, &b.id)));

    let mut kept: BTreeMap<I, Reason> = BTreeMap::new();
    let mut mark = |id: &I, reason: Reason| {
        kept.entry(id.clone()).or_insert(reason);
    };

    let (future, past): (Vec<&Candidate<I>>, Vec<&Candidate<I>>) =
        sorted.iter().copied().partition(|b| b.created_at > now);
    for backup in &future {
        mark(&backup.id, Reason::Future);
    }

    let manual = past.iter().rev().filter(|b| b.trigger == Trigger::Manual);
    for (rank, backup) in (1..=policy.manual).zip(manual) {
        mark(&backup.id, Reason::Manual { rank });
    }

    let automatic: Vec<&Candidate<I>> = past
        .iter()
        .copied()
        .filter(|b| b.trigger == Trigger::Automatic)
        .collect();
    // Bucket arithmetic in i128: `now` and `created_at` are whatever the caller passes.
    let mut cut = i128::from(now) + 1; // this tier covers backups before `cut`
    for (index, tier) in policy.tiers.iter().enumerate() {
        let every = i128::from(tier.every.0);
        let origin = i128::from(ORIGIN);
        let youngest = (cut - 1 - origin).div_euclid(every);
        let start = origin + (youngest - i128::from(tier.keep) + 1) * every;
        let mut last_bucket = None;
        for backup in &automatic {
            let at = i128::from(backup.created_at);
            if at < start || at >= cut {
                continue;
            }
            let bucket = (at - origin).div_euclid(every);
            if last_bucket != Some(bucket) {
                last_bucket = Some(bucket);
                let bucket_start = i64::try_from(origin + bucket * every).unwrap_or(i64::MIN);
                mark(
                    &backup.id,
                    Reason::Tier {
                        tier: index + 1,
                        bucket_start,
                    },
                );
            }
        }
        cut = start;
    }

    if let Some(newest) = past.last() {
        mark(&newest.id, Reason::Newest);
    }

    let pruned = sorted
        .iter()
        .filter(|b| !kept.contains_key(&b.id))
        .map(|b| b.id.clone())
        .collect();
    Retention { kept, pruned }
}
