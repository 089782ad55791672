//! Every rejection says which field, what was found and what is allowed.

use grove_cron::{CronError, Field, Problem, Schedule};

fn render(specs: &[&str], parse: impl Fn(&str) -> Result<Schedule, CronError>) -> String {
    specs
        .iter()
        .map(|spec| match parse(spec) {
            Ok(schedule) => panic!("{spec:?} parsed as {schedule:?}"),
            Err(error) => format!("{spec:?}\n    {error}\n"),
        })
        .collect()
}

#[test]
fn error_messages() {
    let specs = [
        "",
        "   ",
        "* * * *",
        "* * * * * *",
        "@reboot",
        "@every 5m",
        "@daily 5",
        "60 * * * *",
        "* 24 * * *",
        "* * 0 * *",
        "* * 32 * *",
        "* * * 13 *",
        "* * * 0 *",
        "* * * * 8",
        "99999999999 * * * *",
        "abc * * * *",
        "* mon * * *",
        "* * * foo *",
        "* * * * funday",
        "* * * january *",
        "5-1 * * * *",
        "* * * * sat-sun",
        "* * * jan-feb-mar *",
        "-5 * * * *",
        "1- * * * *",
        "*/0 * * * *",
        "*/x * * * *",
        "*/ * * * *",
        "5/15 * * * *",
        "1,,2 * * * *",
        "1, * * * *",
        "* * * * 1-5,",
        "H * * * *",
        "0 H(0-6) * * *",
    ];
    insta::assert_snapshot!(render(&specs, Schedule::parse));
}

#[test]
fn error_messages_with_a_seed() {
    let specs = [
        "H(30-20) * * * *",
        "H(5) * * * *",
        "H(0-99) * * * *",
        "H(0-5 * * * *",
        "H/0 * * * *",
        "Hx * * * *",
        "* * H(1-32) * *",
    ];
    insta::assert_snapshot!(render(&specs, |spec| Schedule::parse_with_seed(
        spec, "seed"
    )));
}

#[test]
fn errors_are_structured_too() {
    assert_eq!(
        Schedule::parse("* * * * 8"),
        Err(CronError::Field {
            field: Field::DayOfWeek,
            text: "8".into(),
            problem: Problem::OutOfRange { found: "8".into() },
        })
    );
    assert_eq!(
        Schedule::parse("H * * * *"),
        Err(CronError::Field {
            field: Field::Minute,
            text: "H".into(),
            problem: Problem::HashWithoutSeed,
        })
    );
}
