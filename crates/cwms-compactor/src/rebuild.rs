//! Rebuilding lake partitions from the raw zone, which is kept for exactly this.
//!
//! A lake object that is corrupt, or was deleted, holds datums the checkpoint says are in the
//! lake already, so an ordinary run never reads their raw objects again. A rebuild does: for the
//! partitions it selects (days, optionally hours, optionally namespaces), it reads every raw
//! object that can hold their datums, keeps only those datums, and merges them into the
//! partitions' objects; a readable object keeps everything it had (the merge law makes
//! re-reading safe), a corrupt one is replaced by what the raw zone holds, and the days'
//! `metrics_1h` objects are rolled up again. The checkpoint is not changed.
//!
//! # Which raw objects can hold a partition's datums
//!
//! Raw objects are filed by ARRIVAL time (Firehose's `!{timestamp:...}` prefix is the arrival
//! of the oldest record in the object), and a datum arrives after its own timestamp: CloudWatch
//! streams a minute when it closes, late data and re-sends (up to two hours, two days for daily
//! metrics, a day of Firehose retries, a replay of last month) arrive later still, never
//! earlier. So a datum of an hour starting at S can be in any object that arrived after S, and
//! in no object whose records all arrived before it. A rebuild reads every object whose folder
//! hour (`dt=YYYY-MM-DD/hour=HH/` or `YYYY/MM/DD/HH/` in its key) ends, or, for any other key,
//! whose modification time falls, later than one hour before the earliest selected hour (the
//! hour absorbs Firehose's buffering and clock skew). Objects a lifecycle rule has expired are
//! gone: a rebuild restores what the raw zone still holds.

use std::collections::BTreeSet;

use cwms_parquet::LakeObject;
use cwms_store::ObjectMeta;

/// One hour in milliseconds.
const HOUR_MS: i64 = 3_600_000;

/// The partitions a rebuild restores.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rebuild {
    /// UTC days, `YYYY-MM-DD`.
    pub days: BTreeSet<String>,
    /// UTC hours of those days; empty for every hour.
    pub hours: BTreeSet<u8>,
    /// Namespaces, exactly as CloudWatch spells them; empty for every namespace.
    pub namespaces: BTreeSet<String>,
}

impl std::fmt::Display for Rebuild {
    /// `--dt 2026-11-26 --hour 10 --namespace 'AWS/EC2'`, as the command line spells it.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut parts: Vec<String> = self.days.iter().map(|d| format!("--dt {d}")).collect();
        parts.extend(self.hours.iter().map(|h| format!("--hour {h:02}")));
        parts.extend(self.namespaces.iter().map(|n| format!("--namespace '{}'", n.replace('\'', "'\\''"))));
        f.write_str(&parts.join(" "))
    }
}

/// A selection that names no real day or hour.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("rebuild selection: {0}")]
pub struct SelectionError(String);

impl Rebuild {
    /// Checks the selection: at least one day, real dates, hours 0 to 23.
    pub fn new(
        days: impl IntoIterator<Item = String>,
        hours: impl IntoIterator<Item = u8>,
        namespaces: impl IntoIterator<Item = String>,
    ) -> Result<Rebuild, SelectionError> {
        let rebuild =
            Rebuild { days: days.into_iter().collect(), hours: hours.into_iter().collect(), namespaces: namespaces.into_iter().collect() };
        if rebuild.days.is_empty() {
            return Err(SelectionError("name at least one day (--dt YYYY-MM-DD)".into()));
        }
        for day in &rebuild.days {
            LakeObject::hourly(day, "x").map_err(|_| SelectionError(format!("{day:?} is not a date of the form YYYY-MM-DD")))?;
        }
        if let Some(hour) = rebuild.hours.iter().find(|&&h| h > 23) {
            return Err(SelectionError(format!("hour {hour} is not 0 to 23")));
        }
        if rebuild.namespaces.iter().any(String::is_empty) {
            return Err(SelectionError("an empty namespace".into()));
        }
        Ok(rebuild)
    }

    /// Whether a `metrics_1m` object is one the rebuild restores.
    pub fn selects(&self, object: &LakeObject) -> bool {
        self.days.contains(object.dt())
            && (self.hours.is_empty() || object.hour().is_some_and(|h| self.hours.contains(&h)))
            && (self.namespaces.is_empty() || self.namespaces.contains(object.namespace()))
    }

    /// The start of the earliest selected hour, epoch milliseconds.
    fn earliest_ms(&self) -> i64 {
        let day = self.days.iter().next().expect("a rebuild names a day");
        let hour = self.hours.iter().next().copied().unwrap_or(0);
        LakeObject::minutes(day, "x", hour).map_or(i64::MIN, |o| o.time_range_ms().start)
    }

    /// Whether a raw object can hold datums of the selected partitions (see the module docs).
    pub fn may_hold(&self, object: &ObjectMeta) -> bool {
        let after = self.earliest_ms() - HOUR_MS;
        match arrival_hour_ms(&object.key) {
            Some(hour_start) => hour_start + HOUR_MS > after,
            None => object.last_modified_ms > after,
        }
    }
}

/// The start of the arrival hour a raw key is filed under: `dt=YYYY-MM-DD/hour=HH/` (the
/// template's prefix) or `YYYY/MM/DD/HH/` (Firehose's default), anywhere in the key.
pub fn arrival_hour_ms(key: &str) -> Option<i64> {
    let segments: Vec<&str> = key.split('/').collect();
    let folders = &segments[..segments.len().saturating_sub(1)];
    let hour_ms = |day: &str, hour: &str| -> Option<i64> {
        let hour: u8 = hour.parse().ok().filter(|_| hour.len() == 2)?;
        Some(LakeObject::minutes(day, "x", hour).ok()?.time_range_ms().start)
    };
    for window in folders.windows(2) {
        if let (Some(day), Some(hour)) = (window[0].strip_prefix("dt="), window[1].strip_prefix("hour="))
            && let Some(ms) = hour_ms(day, hour)
        {
            return Some(ms);
        }
    }
    for window in folders.windows(4) {
        if let [y, m, d, h] = window
            && y.len() == 4
            && m.len() == 2
            && d.len() == 2
            && let Some(ms) = hour_ms(&format!("{y}-{m}-{d}"), h)
        {
            return Some(ms);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    const T: i64 = 1_764_140_400_000; // 2025-11-26T07:00:00Z

    #[test]
    fn arrival_hours_are_read_from_both_layouts() {
        assert_eq!(arrival_hour_ms("raw/dt=2025-11-26/hour=07/s-1-2025-11-26-07-05-00-x.gz"), Some(T));
        assert_eq!(arrival_hour_ms("dt=2025-11-26/hour=07/a"), Some(T));
        assert_eq!(arrival_hour_ms("2025/11/26/07/s-1-2025-11-26-07-05-00-x.gz"), Some(T));
        assert_eq!(arrival_hour_ms("prefix/2025/11/26/07/a"), Some(T));
        assert_eq!(arrival_hour_ms("2025/11/26/a"), None);
        assert_eq!(arrival_hour_ms("dt=2025-13-26/hour=07/a"), None);
        assert_eq!(arrival_hour_ms("dt=2025-11-26/hour=24/a"), None);
        assert_eq!(arrival_hour_ms("2025/11/26/07"), None, "the object name is not a folder");
    }

    #[test]
    fn a_rebuild_reads_what_arrived_from_an_hour_before_on() {
        let rebuild = Rebuild::new(["2025-11-26".to_owned()], [7], []).unwrap();
        let object = |key: &str, mtime: i64| ObjectMeta::new(key, 1, mtime, None);
        assert!(!rebuild.may_hold(&object("2025/11/26/05/a", T)), "arrived before 06:00: cannot hold 07:xx datums");
        assert!(rebuild.may_hold(&object("2025/11/26/06/a", 0)), "06:xx arrivals are within the margin");
        assert!(rebuild.may_hold(&object("2025/11/26/07/a", 0)));
        assert!(rebuild.may_hold(&object("2025/12/25/07/a", 0)), "late data and replays arrive any time after");
        assert!(rebuild.may_hold(&object("hand-made.ndjson", T)));
        assert!(!rebuild.may_hold(&object("hand-made.ndjson", T - 2 * HOUR_MS)));
        let selects = |ns: &str, hour: u8| rebuild.selects(&LakeObject::minutes("2025-11-26", ns, hour).unwrap());
        assert!(selects("AWS/EC2", 7) && !selects("AWS/EC2", 8));
        let one = Rebuild::new(["2025-11-26".to_owned()], [], ["My App/Prod:v1".to_owned()]).unwrap();
        assert!(one.selects(&LakeObject::minutes("2025-11-26", "My App/Prod:v1", 3).unwrap()));
        assert!(!one.selects(&LakeObject::minutes("2025-11-26", "AWS/EC2", 3).unwrap()));
    }

    #[test]
    fn selections_are_checked() {
        let check = |days: &[&str], hours: &[u8], expected: &str| {
            let err = Rebuild::new(days.iter().map(|d| d.to_string()), hours.iter().copied(), []).unwrap_err();
            assert_eq!(err.to_string(), expected);
        };
        check(&[], &[], "rebuild selection: name at least one day (--dt YYYY-MM-DD)");
        check(&["2025-02-30"], &[], "rebuild selection: \"2025-02-30\" is not a date of the form YYYY-MM-DD");
        check(&["2025-11-26"], &[24], "rebuild selection: hour 24 is not 0 to 23");
    }
}
