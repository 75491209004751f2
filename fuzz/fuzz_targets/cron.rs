//! `castellan_config::Cron::{parse, next_after}` on arbitrary text and instants.
//!
//! Checked, besides never panicking or looping: a parsed expression prints as its fields joined by
//! one space and parses again to the same expression; its next run is strictly after the instant,
//! on a whole minute, within five years, and the next run after the minute before it is itself.
#![no_main]

use arbitrary::Arbitrary;
use castellan_config::Cron;
use chrono::{DateTime, Duration, Timelike};
use libfuzzer_sys::fuzz_target;

#[derive(Arbitrary, Debug)]
struct Input<'a> {
    expression: &'a str,
    /// Seconds since 2000-01-01, up to about 100 years.
    seconds: u32,
}

fuzz_target!(|input: Input| {
    let Ok(cron) = Cron::parse(input.expression) else { return };
    let printed = cron.to_string();
    assert_eq!(printed, input.expression.split_whitespace().collect::<Vec<_>>().join(" "));
    assert_eq!(Cron::parse(&printed).as_ref(), Ok(&cron), "it parses again to the same");
    let after = DateTime::from_timestamp(946_684_800 + i64::from(input.seconds), 0).expect("in range");
    let Some(next) = cron.next_after(after) else { return };
    assert!(next > after && next.second() == 0 && next.nanosecond() == 0, "{next} after {after}");
    assert!(next - after <= Duration::days(366 * 5 + 2), "within the horizon");
    assert_eq!(cron.next_after(next - Duration::minutes(1)), Some(next), "no earlier minute matches");
});
