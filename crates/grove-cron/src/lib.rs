//! Cron schedules as Platform.sh / Magento Cloud apps declare them (`crons.<name>.spec`):
//! parsing, the next time a schedule fires, and its smallest interval.
//!
//! Pure: no IO and no clock. Times are seconds since the Unix epoch; the caller reads the
//! clock and passes it in.
//!
//! **UTC only.** Every time is computed in UTC; an app's `timezone:` setting is not
//! applied yet.

mod civil;
mod error;
mod parse;

pub use error::{CronError, Field, Problem};

use civil::{DAYS_PER_ERA, civil_from_days, days_from_civil, days_in_month, weekday};

const MINUTES_PER_DAY: i64 = 24 * 60;

/// A parsed cron spec: the set of minutes at which it fires.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Schedule {
    fields: parse::Fields,
}

impl Schedule {
    /// Five-field Vixie cron (minute hour day-of-month month day-of-week):
    ///
    /// - `*`, values, ranges `a-b`, lists `a,b-c`, steps `*/n` and `a-b/n`;
    /// - month names `jan`..`dec` and weekday names `sun`..`sat` (case-insensitive, also
    ///   in ranges); 0 and 7 are both Sunday;
    /// - the macros `@yearly`/`@annually`, `@monthly`, `@weekly`, `@daily`/`@midnight`
    ///   and `@hourly`.
    ///
    /// `a/n` is rejected: Vixie cron reads it as just `a`, others as `a-max/n`.
    /// `H` is rejected too, as it needs a seed: see [`Schedule::parse_with_seed`].
    pub fn parse(spec: &str) -> Result<Schedule, CronError> {
        parse::parse(spec, None).map(|fields| Schedule { fields })
    }

    /// Like [`Schedule::parse`], and also accepts Platform.sh's (Jenkins') `H` in any field:
    /// a value picked by hashing `seed` (the cron's name), stable for a given seed and
    /// field. `H` picks one value of the field (days of the month 1-28, so it fires every
    /// month), `H(a-b)` one value in `a-b`, `H/n` and `H(a-b)/n` every `n` from a hashed
    /// offset below `n`.
    pub fn parse_with_seed(spec: &str, seed: &str) -> Result<Schedule, CronError> {
        parse::parse(spec, Some(seed)).map(|fields| Schedule { fields })
    }

    /// The first minute strictly after `after` (seconds since the Unix epoch, UTC) at which
    /// the schedule fires, in seconds since the epoch (a multiple of 60). `None` when it
    /// never fires (`0 0 30 2 *`).
    ///
    /// The search covers one 400-year Gregorian cycle, after which the calendar repeats, so
    /// `None` means never: a rare schedule is found however far away it is (Feb 29 after
    /// 2096 is in 2104; `0 0 13 4 */5`, April 13 on a Sunday or Friday, can be 7 years off).
    ///
    /// Vixie semantics for the day: when day-of-month and day-of-week are both restricted
    /// (neither field starts with `*`), a day matches if EITHER matches; otherwise both
    /// must.
    ///
    /// Skips whole months, days and hours that cannot match (and, when the day of the month
    /// must match, straight to the next such day), so a yearly schedule costs a few dozen
    /// steps, and one that never fires about three per year of the cycle.
    pub fn next_after(&self, after: i64) -> Option<i64> {
        let first_minute = after.div_euclid(60).checked_add(1)?;
        let mut day = first_minute.div_euclid(MINUTES_PER_DAY);
        // Minute of the day; 0 whenever `day` moves forward.
        let mut minute_of_day = first_minute.rem_euclid(MINUTES_PER_DAY) as u32;
        // A schedule that fires at all fires within any DAYS_PER_ERA consecutive days.
        let last_day = day + DAYS_PER_ERA;
        let f = &self.fields;
        while day <= last_day {
            let (year, month, day_of_month) = civil_from_days(day);
            if !has(f.months, month) {
                day = match next_in(f.months, month + 1, 12) {
                    Some(next) => days_from_civil(year, next, 1),
                    None => days_from_civil(year + 1, next_in(f.months, 1, 12)?, 1),
                };
                minute_of_day = 0;
                continue;
            }
            if !self.day_matches(day, day_of_month) {
                day += if f.day_of_month_star || f.day_of_week_star {
                    // Both must match: go to the next day of the month that can.
                    let length = days_in_month(year, month);
                    let next =
                        next_in(f.days_of_month, day_of_month + 1, length).unwrap_or(length + 1);
                    i64::from(next - day_of_month)
                } else {
                    1
                };
                minute_of_day = 0;
                continue;
            }
            let (hour, minute) = (minute_of_day / 60, minute_of_day % 60);
            let Some(next_hour) = next_in(f.hours, hour, 23) else {
                day += 1;
                minute_of_day = 0;
                continue;
            };
            let from_minute = if next_hour == hour { minute } else { 0 };
            let Some(next_minute) = next_in(f.minutes, from_minute, 59) else {
                minute_of_day = (next_hour + 1) * 60;
                if minute_of_day >= MINUTES_PER_DAY as u32 {
                    day += 1;
                    minute_of_day = 0;
                }
                continue;
            };
            let minute_of_day = i64::from(next_hour * 60 + next_minute);
            return day
                .checked_mul(MINUTES_PER_DAY)?
                .checked_add(minute_of_day)?
                .checked_mul(60);
        }
        None
    }

    /// Whether the schedule fires in the minute containing `at` (seconds since the epoch,
    /// UTC).
    pub fn fires_at(&self, at: i64) -> bool {
        let minute = at.div_euclid(60);
        let day = minute.div_euclid(MINUTES_PER_DAY);
        let minute_of_day = minute.rem_euclid(MINUTES_PER_DAY) as u32;
        let (_, month, day_of_month) = civil_from_days(day);
        let f = &self.fields;
        has(f.months, month)
            && self.day_matches(day, day_of_month)
            && has(f.hours, minute_of_day / 60)
            && has(f.minutes, minute_of_day % 60)
    }

    /// The smallest interval between two consecutive firings, in minutes: what a
    /// "minimum interval" rule (5 minutes on Platform.sh's Professional plans) is checked
    /// against. `u32::MAX` when the schedule never fires (`0 0 30 2 *`).
    ///
    /// Computed over a window of one full 400-year Gregorian cycle, after which the
    /// calendar (weekdays and leap days included) repeats exactly, so the answer is exact.
    pub fn min_interval_minutes(&self) -> u32 {
        let f = &self.fields;
        let times_of_day: Vec<u32> = (0..24)
            .filter(|hour| has(f.hours, *hour))
            .flat_map(|hour| {
                (0..60)
                    .filter(|minute| has(f.minutes, *minute))
                    .map(move |minute| hour * 60 + minute)
            })
            .collect();
        let (Some(&first), Some(&last)) = (times_of_day.first(), times_of_day.last()) else {
            return u32::MAX;
        };
        let within_a_day = times_of_day
            .windows(2)
            .map(|pair| pair[1] - pair[0])
            .min()
            .unwrap_or(u32::MAX);
        let Some(day_gap) = self.min_gap_between_firing_days() else {
            return u32::MAX;
        };
        // From the last firing of one day to the first of the next firing day.
        let across_days = day_gap * MINUTES_PER_DAY as u32 - last + first;
        within_a_day.min(across_days)
    }

    /// The fewest days between two consecutive days on which the schedule fires, over a
    /// 400-year cycle (wrapping around its end); `None` if no day ever matches.
    fn min_gap_between_firing_days(&self) -> Option<u32> {
        let f = &self.fields;
        let cycle_start = days_from_civil(2000, 1, 1);
        let mut first_match: Option<i64> = None;
        let mut previous_match: Option<i64> = None;
        let mut min_gap = i64::MAX;
        let mut day = cycle_start;
        for year in 2000..2400 {
            for month in 1..=12 {
                let length = days_in_month(year, month);
                if !has(f.months, month) {
                    day += i64::from(length);
                    continue;
                }
                for day_of_month in 1..=length {
                    if self.day_matches(day, day_of_month) {
                        if let Some(previous) = previous_match {
                            min_gap = min_gap.min(day - previous);
                        }
                        first_match.get_or_insert(day);
                        previous_match = Some(day);
                    }
                    day += 1;
                }
            }
        }
        let wrapped = first_match? + DAYS_PER_ERA - previous_match?;
        u32::try_from(min_gap.min(wrapped)).ok()
    }

    fn day_matches(&self, day: i64, day_of_month: u32) -> bool {
        let f = &self.fields;
        let by_month_day = has(f.days_of_month, day_of_month);
        let by_weekday = has(f.days_of_week, weekday(day));
        if f.day_of_month_star || f.day_of_week_star {
            by_month_day && by_weekday
        } else {
            by_month_day || by_weekday
        }
    }
}

fn has(mask: u64, value: u32) -> bool {
    value < 64 && mask & (1 << value) != 0
}

/// The smallest value in `from..=max` whose bit is set.
fn next_in(mask: u64, from: u32, max: u32) -> Option<u32> {
    if from > max {
        return None;
    }
    let candidates = (mask >> from) << from;
    let next = candidates.trailing_zeros();
    (next <= max).then_some(next)
}
