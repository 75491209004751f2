//! Timestamp normalisation shared by every write.

use chrono::{DateTime, SecondsFormat, SubsecRound, Utc};

/// `timestamp` truncated to whole microseconds, the precision PostgreSQL stores. Every
/// timestamp this crate writes goes through here, so a value reads back exactly as written on
/// both backends.
pub fn truncate_to_micros(timestamp: DateTime<Utc>) -> DateTime<Utc> {
    timestamp.trunc_subsecs(6)
}

/// RFC 3339 in UTC with exactly six fractional digits, e.g. `2026-01-02T03:04:05.000006Z`.
pub(crate) fn rfc3339_micros(timestamp: DateTime<Utc>) -> String {
    truncate_to_micros(timestamp).to_rfc3339_opts(SecondsFormat::Micros, true)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn truncates_and_formats_with_six_digits() {
        let timestamp = Utc.with_ymd_and_hms(2026, 1, 2, 3, 4, 5).single().expect("valid date")
            + chrono::TimeDelta::nanoseconds(6_999);
        assert_eq!(rfc3339_micros(timestamp), "2026-01-02T03:04:05.000006Z");
        assert_eq!(
            truncate_to_micros(timestamp).timestamp_subsec_nanos(),
            6_000,
            "nanoseconds are dropped, not rounded"
        );
        let whole_second = Utc.with_ymd_and_hms(2026, 1, 2, 3, 4, 5).single().expect("valid date");
        assert_eq!(rfc3339_micros(whole_second), "2026-01-02T03:04:05.000000Z");
    }
}
