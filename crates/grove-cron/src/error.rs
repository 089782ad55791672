use std::fmt;

/// Why a cron spec was rejected. Every message names the field, quotes what was found
/// and says what is allowed; all of them are the user's input, never ours.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CronError {
    #[error(
        "empty cron spec; expected five fields (minute hour day-of-month month day-of-week) \
         or one of {MACROS}"
    )]
    Empty,
    #[error(
        "cron spec {spec:?} has {found} field(s); expected five (minute hour day-of-month \
         month day-of-week) or one of {MACROS}"
    )]
    FieldCount { spec: String, found: usize },
    #[error("unknown cron macro {found:?}; allowed: {MACROS}")]
    UnknownMacro { found: String },
    #[error("{field} field {text:?}: {problem}; allowed: {allowed}", allowed = field.allowed())]
    Field {
        field: Field,
        /// The whole field as written.
        text: String,
        problem: Problem,
    },
}

pub(crate) const MACROS: &str = "@yearly, @annually, @monthly, @weekly, @daily, @midnight, @hourly";

/// The five fields of a cron spec, in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Field {
    Minute,
    Hour,
    DayOfMonth,
    Month,
    DayOfWeek,
}

impl Field {
    pub(crate) const ALL: [Field; 5] = [
        Field::Minute,
        Field::Hour,
        Field::DayOfMonth,
        Field::Month,
        Field::DayOfWeek,
    ];

    fn allowed(self) -> &'static str {
        match self {
            Field::Minute => "0-59, `*`, a-b, lists a,b, steps */n and a-b/n, H",
            Field::Hour => "0-23, `*`, a-b, lists a,b, steps */n and a-b/n, H",
            Field::DayOfMonth => "1-31, `*`, a-b, lists a,b, steps */n and a-b/n, H",
            Field::Month => "1-12 or jan-dec, `*`, a-b, lists a,b, steps */n and a-b/n, H",
            Field::DayOfWeek => {
                "0-7 or sun-sat (0 and 7 are Sunday), `*`, a-b, lists a,b, steps */n and a-b/n, H"
            }
        }
    }
}

impl fmt::Display for Field {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Field::Minute => "minute",
            Field::Hour => "hour",
            Field::DayOfMonth => "day-of-month",
            Field::Month => "month",
            Field::DayOfWeek => "day-of-week",
        })
    }
}

/// What is wrong inside one field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Problem {
    #[error("empty list item")]
    EmptyItem,
    #[error("{found:?} is not a number")]
    NotANumber { found: String },
    #[error("{found:?} is not a number or a name")]
    NotANumberOrName { found: String },
    #[error("{found} is out of range")]
    OutOfRange { found: String },
    #[error("range {start}-{end} goes backwards")]
    Backwards { start: u32, end: u32 },
    #[error("step {found:?} must be a number of at least 1")]
    BadStep { found: String },
    #[error(
        "{found:?} has a step but no range (cron implementations disagree on what it means); \
         write */n or a-b/n"
    )]
    StepWithoutRange { found: String },
    #[error("{found:?} is not a valid H: write H, H/n, H(a-b) or H(a-b)/n")]
    BadHash { found: String },
    #[error("H needs a seed (the cron's name) and none was given")]
    HashWithoutSeed,
}
