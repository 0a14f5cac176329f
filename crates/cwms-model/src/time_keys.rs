//! UTC calendar keys for partitions: the date (`dt`) and hour of a timestamp.

use time::OffsetDateTime;

/// A UTC hour: the partition a `metrics_1m` datum belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct UtcHour {
    pub year: i32,
    pub month: u8,
    pub day: u8,
    pub hour: u8,
}

impl UtcHour {
    /// `YYYY-MM-DD`, the value of the `dt` partition key.
    pub fn date(&self) -> String {
        format!("{:04}-{:02}-{:02}", self.year, self.month, self.day)
    }

    /// `HH`, two digits.
    pub fn hour_text(&self) -> String {
        format!("{:02}", self.hour)
    }

    /// Epoch milliseconds of the start of this hour.
    pub fn start_ms(&self) -> i64 {
        let date = time::Date::from_calendar_date(self.year, time::Month::try_from(self.month).expect("valid month"), self.day)
            .expect("valid date");
        let start = date.with_hms(self.hour, 0, 0).expect("valid hour").assume_utc();
        (start.unix_timestamp_nanos() / 1_000_000) as i64
    }
}

/// The UTC hour a timestamp (epoch milliseconds) falls in.
///
/// Timestamps outside the range `time` represents (years -9999 to 9999) are clamped to its ends;
/// the decoder rejects such timestamps long before they get here.
pub fn utc_hour(timestamp_ms: i64) -> UtcHour {
    let seconds = timestamp_ms.div_euclid(1000);
    let at = OffsetDateTime::from_unix_timestamp(seconds).unwrap_or(if seconds < 0 {
        OffsetDateTime::new_utc(time::Date::MIN, time::Time::MIDNIGHT)
    } else {
        OffsetDateTime::new_utc(time::Date::MAX, time::Time::MIDNIGHT)
    });
    UtcHour { year: at.year(), month: at.month() as u8, day: at.day(), hour: at.hour() }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(ms: i64, date: &str, hour: &str) {
        let h = utc_hour(ms);
        assert_eq!((h.date().as_str(), h.hour_text().as_str()), (date, hour), "{ms}");
        assert!(h.start_ms() <= ms && ms < h.start_ms() + 3_600_000);
    }

    #[test]
    fn hours() {
        check(1611929698000, "2021-01-29", "14");
        check(0, "1970-01-01", "00");
        check(1735689599999, "2024-12-31", "23");
        check(1735689600000, "2025-01-01", "00");
        check(-1, "1969-12-31", "23");
    }
}
