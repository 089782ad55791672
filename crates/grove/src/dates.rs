//! `--date-fmt`: the date columns of listings in a PHP `date()` format, as the
//! Platform.sh CLI takes it (`c` is ISO 8601, `Y-m-d H:i` a short form). Grove's
//! timestamps are UTC (`2026-12-01T21:32:57.964Z`) and are printed in UTC.

/// One of Grove's timestamps, taken apart.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Stamp {
    year: i64,
    month: u32,
    day: u32,
    hour: u32,
    minute: u32,
    second: u32,
    millis: u32,
}

const MONTHS: [&str; 12] = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
];
/// Monday first, as PHP's `N` counts.
const WEEKDAYS: [&str; 7] = [
    "Monday",
    "Tuesday",
    "Wednesday",
    "Thursday",
    "Friday",
    "Saturday",
    "Sunday",
];

impl Stamp {
    /// `YYYY-MM-DDTHH:MM:SS[.mmm]Z`; anything else is not a timestamp.
    fn parse(text: &str) -> Option<Stamp> {
        let text = text.strip_suffix('Z')?;
        let (date, time) = text.split_once('T')?;
        let (time, millis) = match time.split_once('.') {
            Some((time, fraction)) if fraction.len() == 3 => (time, fraction.parse().ok()?),
            Some(_) => return None,
            None => (time, 0),
        };
        let numbers = |part: &str, sep: char, widths: [usize; 3]| -> Option<[i64; 3]> {
            let fields: Vec<&str> = part.split(sep).collect();
            if fields.len() != 3 {
                return None;
            }
            let mut out = [0; 3];
            for (i, field) in fields.iter().enumerate() {
                if field.len() != widths[i] || !field.bytes().all(|b| b.is_ascii_digit()) {
                    return None;
                }
                out[i] = field.parse().ok()?;
            }
            Some(out)
        };
        let [year, month, day] = numbers(date, '-', [4, 2, 2])?;
        let [hour, minute, second] = numbers(time, ':', [2, 2, 2])?;
        let valid = (1..=12).contains(&month)
            && (1..=days_in_month(year, month as u32) as i64).contains(&day)
            && hour < 24
            && minute < 60
            && second < 61;
        valid.then_some(Stamp {
            year,
            month: month as u32,
            day: day as u32,
            hour: hour as u32,
            minute: minute as u32,
            second: second as u32,
            millis,
        })
    }

    fn days_since_epoch(&self) -> i64 {
        days_from_civil(self.year, self.month, self.day)
    }

    fn unix(&self) -> i64 {
        self.days_since_epoch() * 86_400
            + i64::from(self.hour) * 3600
            + i64::from(self.minute) * 60
            + i64::from(self.second)
    }

    /// 0 for Monday … 6 for Sunday (1970-01-01 was a Thursday).
    fn weekday(&self) -> usize {
        (self.days_since_epoch() + 3).rem_euclid(7) as usize
    }

    /// Formats as PHP's `date()` does, in UTC. Letters PHP does not know, and any
    /// character after `\`, are written as they are.
    fn format(&self, fmt: &str) -> String {
        let mut out = String::new();
        let mut chars = fmt.chars();
        let hour12 = match self.hour % 12 {
            0 => 12,
            h => h,
        };
        while let Some(c) = chars.next() {
            match c {
                '\\' => out.extend(chars.next()),
                'd' => out.push_str(&format!("{:02}", self.day)),
                'j' => out.push_str(&self.day.to_string()),
                'D' => out.push_str(&WEEKDAYS[self.weekday()][..3]),
                'l' => out.push_str(WEEKDAYS[self.weekday()]),
                'N' => out.push_str(&(self.weekday() + 1).to_string()),
                'w' => out.push_str(&((self.weekday() + 1) % 7).to_string()),
                'F' => out.push_str(MONTHS[self.month as usize - 1]),
                'M' => out.push_str(&MONTHS[self.month as usize - 1][..3]),
                'm' => out.push_str(&format!("{:02}", self.month)),
                'n' => out.push_str(&self.month.to_string()),
                't' => out.push_str(&days_in_month(self.year, self.month).to_string()),
                'Y' => out.push_str(&format!("{:04}", self.year)),
                'y' => out.push_str(&format!("{:02}", self.year.rem_euclid(100))),
                'a' => out.push_str(if self.hour < 12 { "am" } else { "pm" }),
                'A' => out.push_str(if self.hour < 12 { "AM" } else { "PM" }),
                'g' => out.push_str(&hour12.to_string()),
                'h' => out.push_str(&format!("{hour12:02}")),
                'G' => out.push_str(&self.hour.to_string()),
                'H' => out.push_str(&format!("{:02}", self.hour)),
                'i' => out.push_str(&format!("{:02}", self.minute)),
                's' => out.push_str(&format!("{:02}", self.second)),
                'v' => out.push_str(&format!("{:03}", self.millis)),
                'u' => out.push_str(&format!("{:06}", self.millis * 1000)),
                'e' | 'T' => out.push_str("UTC"),
                'P' => out.push_str("+00:00"),
                'O' => out.push_str("+0000"),
                'p' => out.push('Z'),
                'Z' => out.push('0'),
                'U' => out.push_str(&self.unix().to_string()),
                'c' => out.push_str(&self.format("Y-m-d\\TH:i:sP")),
                'r' => out.push_str(&self.format("D, d M Y H:i:s O")),
                other => out.push(other),
            }
        }
        out
    }
}

/// `cell` in the format `fmt` if it is one of Grove's timestamps, else as it is.
pub fn reformat(cell: &str, fmt: &str) -> String {
    match Stamp::parse(cell) {
        Some(stamp) => stamp.format(fmt),
        None => cell.to_owned(),
    }
}

fn is_leap(year: i64) -> bool {
    (year % 4 == 0 && year % 100 != 0) || year % 400 == 0
}

fn days_in_month(year: i64, month: u32) -> u32 {
    match month {
        2 if is_leap(year) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Howard Hinnant's civil-to-days algorithm (proleptic Gregorian calendar).
fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let m = i64::from(month);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(day) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::reformat;

    #[test]
    fn php_date_formats() {
        let stamp = "2026-12-01T21:05:07.964Z";
        for (fmt, expected) in [
            ("c", "2026-12-01T21:05:07+00:00"),
            ("Y-m-d H:i", "2026-12-01 21:05"),
            ("r", "Tue, 01 Dec 2026 21:05:07 +0000"),
            ("U", "1796159107"),
            ("D j M y, g:i a", "Tue 1 Dec 26, 9:05 pm"),
            ("l N w", "Tuesday 2 2"),
            ("F n t", "December 12 31"),
            ("h:i:s.v A e", "09:05:07.964 PM UTC"),
            ("\\Y\\m Y", "Ym 2026"),
        ] {
            assert_eq!(reformat(stamp, fmt), expected, "{fmt}");
        }
        assert_eq!(reformat("2000-02-29T00:00:00Z", "D t"), "Tue 29");
        assert_eq!(reformat("1970-01-01T00:00:00.000Z", "U l"), "0 Thursday");
    }

    #[test]
    fn what_is_not_a_timestamp_is_left_alone() {
        for cell in [
            "main",
            "2026-12-01",
            "2026-13-01T00:00:00Z",
            "2026-02-30T00:00:00Z",
            "2026-12-01T21:05:07.9Z",
            "2026-12-01T21:05:07+01:00",
            "x2026-12-01T21:05:07Z",
            "",
        ] {
            assert_eq!(reformat(cell, "U"), cell);
        }
    }
}
