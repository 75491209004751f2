//! Five-field cron expressions (`minute hour day-of-month month day-of-week`), evaluated in UTC.
//!
//! Each field is `*`, a number, a range `a-b`, any of those with a step `/n`, or a comma list of
//! them; months and weekdays also take three-letter English names, and weekday 7 is Sunday like 0.
//! When both day fields are restricted a day matches either (the classic cron rule).

use std::fmt;

use chrono::{DateTime, Datelike, Duration, TimeZone, Timelike, Utc};

/// The longest expression accepted: real ones are a few dozen characters.
const MAX_LEN: usize = 256;

/// How far ahead [`Cron::next_after`] looks before it gives up (`30 2 31 2 *` never fires).
const HORIZON_DAYS: i64 = 366 * 5;

const MONTHS: [&str; 12] = ["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"];
const WEEKDAYS: [&str; 7] = ["sun", "mon", "tue", "wed", "thu", "fri", "sat"];

/// A parsed expression: one bit per allowed value of each field.
#[derive(Clone, PartialEq, Eq)]
pub struct Cron {
    text: String,
    minutes: u64,
    hours: u32,
    days: u32,
    months: u16,
    weekdays: u8,
    days_restricted: bool,
    weekdays_restricted: bool,
}

impl fmt::Debug for Cron {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(formatter, "Cron({:?})", self.text)
    }
}

impl fmt::Display for Cron {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(&self.text)
    }
}

struct Field {
    name: &'static str,
    min: u32,
    max: u32,
    names: &'static [&'static str],
    /// The value names count from: 1 for months, 0 for weekdays.
    names_from: u32,
}

const FIELDS: [Field; 5] = [
    Field { name: "minute", min: 0, max: 59, names: &[], names_from: 0 },
    Field { name: "hour", min: 0, max: 23, names: &[], names_from: 0 },
    Field { name: "day of month", min: 1, max: 31, names: &[], names_from: 0 },
    Field { name: "month", min: 1, max: 12, names: &MONTHS, names_from: 1 },
    Field { name: "day of week", min: 0, max: 7, names: &WEEKDAYS, names_from: 0 },
];

impl Cron {
    /// Parses an expression; the error says which field is wrong and why.
    pub fn parse(text: &str) -> Result<Cron, String> {
        if text.len() > MAX_LEN {
            return Err(format!("is longer than {MAX_LEN} characters"));
        }
        let parts: Vec<&str> = text.split_whitespace().collect();
        if parts.len() != 5 {
            return Err(format!(
                "has {} fields; a cron schedule has five: minute hour day-of-month month day-of-week (e.g. `0 3 * * *`)",
                parts.len()
            ));
        }
        let mut bits = [0u64; 5];
        for ((part, field), slot) in parts.iter().zip(FIELDS.iter()).zip(bits.iter_mut()) {
            *slot = parse_field(part, field).map_err(|reason| format!("{} field `{part}`: {reason}", field.name))?;
        }
        // Weekday 7 is Sunday.
        let weekdays = (bits[4] | (bits[4] >> 7)) & 0x7f;
        Ok(Cron {
            text: parts.join(" "),
            minutes: bits[0],
            hours: bits[1] as u32,
            days: bits[2] as u32,
            months: bits[3] as u16,
            weekdays: weekdays as u8,
            days_restricted: parts[2] != "*",
            weekdays_restricted: parts[4] != "*",
        })
    }

    /// The first minute strictly after `after` that the expression names, or `None` when it names
    /// none in the next five years (a date that does not exist, like 31 February).
    pub fn next_after(&self, after: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let start = after.with_second(0)?.with_nanosecond(0)? + Duration::minutes(1);
        let mut day = Utc.with_ymd_and_hms(start.year(), start.month(), start.day(), 0, 0, 0).single()?;
        let last_day = day + Duration::days(HORIZON_DAYS);
        let mut first = true;
        while day <= last_day {
            if self.day_matches(day) {
                let (from_hour, from_minute) = if first { (start.hour(), start.minute()) } else { (0, 0) };
                for hour in from_hour..24 {
                    if self.hours & (1 << hour) == 0 {
                        continue;
                    }
                    let minute_floor = if hour == from_hour { from_minute } else { 0 };
                    if let Some(minute) = (minute_floor..60).find(|minute| self.minutes & (1 << minute) != 0) {
                        return Some(day + Duration::hours(i64::from(hour)) + Duration::minutes(i64::from(minute)));
                    }
                }
            }
            first = false;
            day += Duration::days(1);
        }
        None
    }

    fn day_matches(&self, day: DateTime<Utc>) -> bool {
        if self.months & (1 << day.month()) == 0 {
            return false;
        }
        let by_date = self.days & (1 << day.day()) != 0;
        let by_weekday = self.weekdays & (1 << day.weekday().num_days_from_sunday()) != 0;
        match (self.days_restricted, self.weekdays_restricted) {
            (true, true) => by_date || by_weekday,
            (true, false) => by_date,
            (false, true) => by_weekday,
            (false, false) => true,
        }
    }
}

fn parse_field(text: &str, field: &Field) -> Result<u64, String> {
    let mut bits = 0u64;
    for item in text.split(',') {
        let (range, step) = match item.split_once('/') {
            Some((range, step)) => {
                let step: u32 = step.parse().map_err(|_| format!("step `{step}` is not a whole number"))?;
                if step == 0 || step > field.max {
                    return Err(format!("step must be 1 to {}", field.max));
                }
                (range, step)
            }
            None => (item, 1),
        };
        let (low, high) = if range == "*" {
            (field.min, field.max)
        } else if let Some((low, high)) = range.split_once('-') {
            (value(low, field)?, value(high, field)?)
        } else {
            let single = value(range, field)?;
            // `5/15` means from 5 to the end in steps of 15.
            (single, if step > 1 { field.max } else { single })
        };
        if low > high {
            return Err(format!("range {low}-{high} runs backwards"));
        }
        let mut current = low;
        while current <= high {
            bits |= 1 << current;
            current += step;
        }
    }
    Ok(bits)
}

fn value(text: &str, field: &Field) -> Result<u32, String> {
    let lower = text.to_ascii_lowercase();
    if let Some(index) = field.names.iter().position(|name| *name == lower) {
        return Ok(index as u32 + field.names_from);
    }
    match text.parse::<u32>() {
        Ok(number) if (field.min..=field.max).contains(&number) => Ok(number),
        Ok(number) => Err(format!("{number} is outside {}-{}", field.min, field.max)),
        Err(_) if text.is_empty() => Err("an empty value".to_string()),
        Err(_) => Err(format!("`{text}` is not a number{}", if field.names.is_empty() { "" } else { " or a name" })),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn at(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text).unwrap().with_timezone(&Utc)
    }

    fn next(expression: &str, after: &str) -> String {
        Cron::parse(expression).unwrap().next_after(at(after)).unwrap().to_rfc3339()
    }

    #[test]
    fn the_next_minute_is_strictly_after_and_on_the_named_fields() {
        assert_eq!(next("* * * * *", "2026-12-07T10:15:30Z"), "2026-12-07T10:16:00+00:00");
        assert_eq!(next("0 3 * * *", "2026-12-07T03:00:00Z"), "2026-12-08T03:00:00+00:00");
        assert_eq!(next("0 3 * * *", "2026-12-07T02:59:59Z"), "2026-12-07T03:00:00+00:00");
        assert_eq!(next("*/15 * * * *", "2026-12-07T10:16:00Z"), "2026-12-07T10:30:00+00:00");
        assert_eq!(next("5/20 * * * *", "2026-12-07T10:46:00Z"), "2026-12-07T11:05:00+00:00");
        assert_eq!(next("30 8-10 * * *", "2026-12-07T10:31:00Z"), "2026-12-08T08:30:00+00:00");
        assert_eq!(next("0 0 1 jan *", "2026-12-07T00:00:00Z"), "2027-01-01T00:00:00+00:00");
        assert_eq!(next("0 0 29 2 *", "2026-03-01T00:00:00Z"), "2028-02-29T00:00:00+00:00");
    }

    #[test]
    fn weekdays_count_sunday_as_0_or_7_and_either_day_field_matches_when_both_are_set() {
        // 2026-12-07 is a Monday.
        assert_eq!(next("0 12 * * 0", "2026-12-07T00:00:00Z"), "2026-12-13T12:00:00+00:00");
        assert_eq!(next("0 12 * * 7", "2026-12-07T00:00:00Z"), "2026-12-13T12:00:00+00:00");
        assert_eq!(next("0 12 * * fri", "2026-12-07T00:00:00Z"), "2026-12-11T12:00:00+00:00");
        assert_eq!(next("0 12 10 * fri", "2026-12-07T00:00:00Z"), "2026-12-10T12:00:00+00:00");
        assert_eq!(next("0 12 * * mon-fri", "2026-12-12T00:00:00Z"), "2026-12-14T12:00:00+00:00");
    }

    #[test]
    fn a_date_that_never_comes_has_no_next_run() {
        assert_eq!(Cron::parse("0 0 31 2 *").unwrap().next_after(at("2026-01-01T00:00:00Z")), None);
    }

    #[test]
    fn malformed_expressions_are_refused_naming_the_field() {
        for (expression, expected) in [
            ("* * * *", "has 4 fields"),
            ("60 * * * *", "minute field `60`: 60 is outside 0-59"),
            ("* 24 * * *", "hour field"),
            ("* * 0 * *", "day of month field"),
            ("* * * 13 *", "month field"),
            ("* * * * 8", "day of week field"),
            ("*/0 * * * *", "step must be"),
            ("10-5 * * * *", "runs backwards"),
            ("a * * * *", "`a` is not a number"),
            ("* * * foo *", "not a number or a name"),
            ("1,,2 * * * *", "an empty value"),
        ] {
            let error = Cron::parse(expression).unwrap_err();
            assert!(error.contains(expected), "{expression}: {error}");
        }
    }
}
