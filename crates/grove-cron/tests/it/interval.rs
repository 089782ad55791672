//! `min_interval_minutes`: the tightest gap between two consecutive firings.

use grove_cron::Schedule;

#[track_caller]
fn check(spec: &str, expected: u32) {
    let schedule = Schedule::parse(spec).unwrap_or_else(|e| panic!("{spec:?}: {e}"));
    assert_eq!(schedule.min_interval_minutes(), expected, "{spec:?}");
}

const DAY: u32 = 24 * 60;

#[test]
fn within_an_hour() {
    check("* * * * *", 1);
    check("*/5 * * * *", 5);
    check("*/7 * * * *", 4); // :56 then :00
    check("0,30 * * * *", 30);
    check("5,10 * * * *", 5);
    check("0-4 * * * *", 1);
    check("*/20 9-17 * * *", 20);
}

#[test]
fn across_hours_and_days() {
    check("0 * * * *", 60);
    check("0 9-17 * * *", 60);
    check("0 0 * * *", DAY);
    check("59 23 * * *", DAY);
    check("0 0,23 * * *", 60); // 23:00 then 00:00
    check("0,59 23 * * *", 59);
    check("0 0 * * 1", 7 * DAY);
    check("0 0 * * 1,2", DAY);
    check("@hourly", 60);
    check("@weekly", 7 * DAY);
}

#[test]
fn across_months_and_years() {
    check("0 0 1 * *", 28 * DAY); // Feb 1 to Mar 1
    check("0 0 31 * *", 31 * DAY); // Jul 31 to Aug 31
    check("@yearly", 365 * DAY);
    check("0 0 29 2 *", 1461 * DAY); // four years, leap day included
    check("0 0 13 * 5", DAY); // a Friday the 12th, then Saturday the 13th
}

#[test]
fn never_firing_has_no_interval() {
    check("0 0 30 2 *", u32::MAX);
    check("0 0 31 4,6,9,11 *", u32::MAX);
}
