//! Hive-style object keys of the lake (DESIGN 4.2).
//!
//! ```text
//! metrics_1m/dt=2026-11-26/namespace=AWS%2FEC2/07.parquet   one object per UTC hour
//! metrics_1h/dt=2026-11-26/namespace=AWS%2FEC2/day.parquet  one object per UTC day
//! ```
//!
//! Object names are deterministic, so re-publishing a partition replaces its object with one PUT.

use std::borrow::Cow;
use std::fmt;
use std::ops::Range;
use std::str::FromStr;

use cwms_merge::HOUR_MS;

use crate::{Error, Result};

/// The two tables of the lake.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Table {
    /// One row per series per datum timestamp, as streamed.
    Metrics1m,
    /// One row per series per UTC hour, rolled up from `metrics_1m`.
    Metrics1h,
}

impl Table {
    /// The table's folder name under the lake root.
    pub fn name(self) -> &'static str {
        match self {
            Table::Metrics1m => "metrics_1m",
            Table::Metrics1h => "metrics_1h",
        }
    }
}

impl fmt::Display for Table {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Table {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        match s {
            "metrics_1m" => Ok(Table::Metrics1m),
            "metrics_1h" => Ok(Table::Metrics1h),
            _ => Err(Error::ObjectKey { key: s.to_owned(), reason: "unknown table: expected metrics_1m or metrics_1h".into() }),
        }
    }
}

/// Whether Hive escapes a character in a partition value.
///
/// This is the set of Hive's `FileUtils.escapePathName` (and Spark's
/// `ExternalCatalogUtils.escapePathName`, on systems other than Windows): the control
/// characters U+0000 to U+001F, `"` `#` `%` `'` `*` `/` `:` `=` `?` `\` U+007F `{` `[` `]` `^`.
/// Space, `,`, `}` and every non-ASCII character are left as they are.
fn hive_escapes(c: char) -> bool {
    matches!(c, '\u{0}'..='\u{1F}' | '"' | '#' | '%' | '\'' | '*' | '/' | ':' | '=' | '?' | '\\' | '\u{7F}' | '{' | '[' | ']' | '^')
}

/// Escapes a partition value as Hive does (`FileUtils.escapePathName`): each character of the
/// escaped set becomes `%XX`, its code in two uppercase hex digits; `AWS/EC2` becomes `AWS%2FEC2`.
/// DuckDB, pyarrow, Spark and Athena unescape it back when they read the partition column.
///
/// Unlike Hive, an empty value stays empty (Hive substitutes `__HIVE_DEFAULT_PARTITION__`);
/// [`LakeObject`] refuses an empty namespace instead.
pub fn hive_escape(value: &str) -> Cow<'_, str> {
    if !value.chars().any(hive_escapes) {
        return Cow::Borrowed(value);
    }
    let mut out = String::with_capacity(value.len() + 8);
    for c in value.chars() {
        if hive_escapes(c) {
            out.push_str(&format!("%{:02X}", u32::from(c)));
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

/// Unescapes a Hive partition value (`FileUtils.unescapePathName`): every `%` followed by two
/// hex digits (either case) becomes the character with that code; anything else is kept as is.
///
/// As in Hive, `%XX` names a character, not a UTF-8 byte: `%E9` is `é` (U+00E9). Hive's escape
/// never produces such codes (it leaves non-ASCII text alone), so the two functions round-trip.
/// Unlike Java's `Integer.parseInt`, which Hive uses, a sign (`%+F`) is not taken as a digit.
pub fn hive_unescape(value: &str) -> Cow<'_, str> {
    if !value.contains('%') {
        return Cow::Borrowed(value);
    }
    let bytes = value.as_bytes();
    let mut out = String::with_capacity(value.len());
    let mut i = 0;
    while let Some(c) = value[i..].chars().next() {
        if c == '%'
            && let Some(code) = bytes.get(i + 1..i + 3).and_then(|hex| Some(hex_digit(hex[0])? * 16 + hex_digit(hex[1])?))
        {
            out.push(char::from(code));
            i += 3;
        } else {
            out.push(c);
            i += c.len_utf8();
        }
    }
    Cow::Owned(out)
}

fn hex_digit(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// The longest partition folder name (`namespace=...`): file systems allow 255 bytes per name
/// (ext4, XFS, APFS, NTFS), S3 any length.
pub const MAX_SEGMENT_BYTES: usize = 255;

/// How much of a long namespace's escaped form its bounded folder name keeps.
const BOUNDED_PREFIX_BYTES: usize = 200;

/// The folder of a lake partition, relative to the lake root, with a trailing `/`:
/// `metrics_1m/dt=2026-11-26/namespace=AWS%2FEC2/`.
///
/// `dt` is a `YYYY-MM-DD` date, written as is; the namespace is Hive-escaped ([`hive_escape`]),
/// and bounded ([`namespace_folder_value`]) when that would make the folder name longer than a
/// file system allows. [`LakeObject`] builds the same path from checked parts.
pub fn partition_path(table: Table, dt: &str, namespace: &str) -> String {
    format!("{}/dt={}/namespace={}/", table.name(), hive_escape(dt), namespace_folder_value(namespace))
}

/// The `namespace=` folder's value for a namespace: its Hive escape ([`hive_escape`]), or, when
/// `namespace=` and that would pass [`MAX_SEGMENT_BYTES`], a bounded name that stays unique.
///
/// CloudWatch allows namespaces of 255 characters, and escaping `/`, `:` and `#` triples them, so
/// a legal namespace can need 775 bytes, which no local file system takes in one name (and one
/// long namespace would then stop every compaction). Such a namespace's folder is named by the
/// first 200 bytes of its escaped form (never cutting an escape or a character), `~`, and the 32
/// hex digits of the XXH3-128 hash of the whole namespace: 243 bytes at most with `namespace=`,
/// distinct for distinct namespaces, the same on every platform. Engines that take partition
/// values from folder names (DuckDB and pyarrow with Hive partitioning, MSCK REPAIR, Athena's
/// partition projection) read that bounded name as the namespace; the Glue partitions the
/// compactor registers (and `metrics_add_partition.sql`) carry the real namespace as the value
/// and the folder as the location, so Athena, Redshift Spectrum and Spark over Glue read the real
/// one. Every namespace of up to 245 bytes (escaped) keeps its plain Hive folder.
pub fn namespace_folder_value(namespace: &str) -> Cow<'_, str> {
    let escaped = hive_escape(namespace);
    if "namespace=".len() + escaped.len() <= MAX_SEGMENT_BYTES {
        return escaped;
    }
    let mut cut = 0;
    let mut rest = escaped.as_ref();
    while let Some(c) = rest.chars().next() {
        let width = if c == '%' { 3 } else { c.len_utf8() };
        if cut + width > BOUNDED_PREFIX_BYTES {
            break;
        }
        cut += width;
        rest = &rest[width.min(rest.len())..];
    }
    Cow::Owned(format!("{}~{:032x}", &escaped[..cut], xxhash_rust::xxh3::xxh3_128(namespace.as_bytes())))
}

/// The object name of the `metrics_1h` file of a partition.
pub const DAY_OBJECT_NAME: &str = "day.parquet";

/// One lake object: a table, a UTC date, a namespace and, for `metrics_1m`, the UTC hour.
///
/// Built only from checked parts (a real calendar date, a non-empty namespace, an hour below
/// 24 exactly when the table is `metrics_1m`), so its [`key`](LakeObject::key) is always valid
/// and [`LakeObject::parse`] reads it back.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct LakeObject {
    table: Table,
    dt: String,
    namespace: String,
    hour: Option<u8>,
}

impl LakeObject {
    /// The `metrics_1m` object of one UTC hour: `metrics_1m/dt=DT/namespace=NS/HH.parquet`.
    pub fn minutes(dt: &str, namespace: &str, hour: u8) -> Result<Self> {
        Self::new(Table::Metrics1m, dt, namespace, Some(hour))
    }

    /// The `metrics_1h` object of one UTC day: `metrics_1h/dt=DT/namespace=NS/day.parquet`.
    pub fn hourly(dt: &str, namespace: &str) -> Result<Self> {
        Self::new(Table::Metrics1h, dt, namespace, None)
    }

    /// The `metrics_1m` object a datum timestamp (epoch milliseconds) of a namespace belongs to.
    pub fn minutes_at(namespace: &str, timestamp_ms: i64) -> Result<Self> {
        let hour = cwms_model::utc_hour(timestamp_ms);
        let object = Self::minutes(&hour.date(), namespace, hour.hour)?;
        if !object.time_range_ms().contains(&timestamp_ms) {
            // utc_hour clamps timestamps beyond year 9999 to the calendar's ends.
            return Err(Error::ObjectKey { key: object.key(), reason: format!("timestamp {timestamp_ms} ms is outside the calendar") });
        }
        Ok(object)
    }

    /// The `metrics_1h` object of the same day and namespace as this object.
    pub fn day(&self) -> LakeObject {
        LakeObject { table: Table::Metrics1h, dt: self.dt.clone(), namespace: self.namespace.clone(), hour: None }
    }

    fn new(table: Table, dt: &str, namespace: &str, hour: Option<u8>) -> Result<Self> {
        let object = LakeObject { table, dt: dt.to_owned(), namespace: namespace.to_owned(), hour };
        let invalid = |reason: String| Error::ObjectKey { key: object.key(), reason };
        if days_from_date(dt).is_none() {
            return Err(invalid(format!("dt {dt:?} is not a date of the form YYYY-MM-DD")));
        }
        if namespace.is_empty() {
            return Err(invalid("empty namespace".into()));
        }
        match (table, hour) {
            (Table::Metrics1m, Some(h)) if h < 24 => {}
            (Table::Metrics1m, Some(h)) => return Err(invalid(format!("hour {h} is not 00 to 23"))),
            (Table::Metrics1m, None) => return Err(invalid("a metrics_1m object needs an hour, 00 to 23".into())),
            (Table::Metrics1h, None) => {}
            (Table::Metrics1h, Some(_)) => return Err(invalid("a metrics_1h object has no hour".into())),
        }
        Ok(object)
    }

    pub fn table(&self) -> Table {
        self.table
    }

    /// The `dt` partition value, `YYYY-MM-DD`.
    pub fn dt(&self) -> &str {
        &self.dt
    }

    /// The namespace, unescaped.
    pub fn namespace(&self) -> &str {
        &self.namespace
    }

    /// The UTC hour of a `metrics_1m` object; `None` for `metrics_1h`.
    pub fn hour(&self) -> Option<u8> {
        self.hour
    }

    /// The folder of the object's partition ([`partition_path`]).
    pub fn partition_path(&self) -> String {
        partition_path(self.table, &self.dt, &self.namespace)
    }

    /// The object's name in its folder: `HH.parquet` or `day.parquet`.
    pub fn object_name(&self) -> String {
        match self.hour {
            Some(hour) => format!("{hour:02}.parquet"),
            None => DAY_OBJECT_NAME.to_owned(),
        }
    }

    /// The object's key relative to the lake root.
    pub fn key(&self) -> String {
        self.partition_path() + &self.object_name()
    }

    /// Reads a lake object key back: `TABLE/dt=DT/namespace=NS/NAME`, optionally under a prefix
    /// (`lake/metrics_1m/...`), which is ignored. Only the canonical form is accepted: a key that
    /// [`LakeObject::key`] would spell differently (say `%2f` for `%2F`, or an escape Hive would
    /// not write) is refused, since two spellings of one partition would be two objects, and
    /// readers would see its rows twice.
    pub fn parse(key: &str) -> Result<Self> {
        let invalid = |reason: &str| Error::ObjectKey { key: key.to_owned(), reason: reason.to_owned() };
        let mut segments = key.rsplit('/');
        let (Some(name), Some(namespace), Some(dt), Some(table)) = (segments.next(), segments.next(), segments.next(), segments.next())
        else {
            return Err(invalid("expected TABLE/dt=YYYY-MM-DD/namespace=NAMESPACE/OBJECT"));
        };
        let table: Table = table.parse().map_err(|_| invalid("unknown table: expected metrics_1m or metrics_1h"))?;
        let dt = dt.strip_prefix("dt=").ok_or_else(|| invalid("expected a dt=YYYY-MM-DD folder"))?;
        let namespace = namespace.strip_prefix("namespace=").ok_or_else(|| invalid("expected a namespace= folder"))?;
        if is_bounded(namespace) {
            return Err(invalid("the namespace= folder is the bounded name of a long namespace, which the key cannot give back"));
        }
        let hour = match (table, name) {
            (Table::Metrics1h, DAY_OBJECT_NAME) => None,
            (Table::Metrics1h, _) => return Err(invalid("a metrics_1h object is named day.parquet")),
            (Table::Metrics1m, _) => {
                let hh = name.strip_suffix(".parquet").filter(|hh| hh.len() == 2 && hh.bytes().all(|b| b.is_ascii_digit()));
                Some(hh.and_then(|hh| hh.parse().ok()).ok_or_else(|| invalid("a metrics_1m object is named HH.parquet"))?)
            }
        };
        let object = Self::new(table, dt, &hive_unescape(namespace), hour).map_err(|e| match e {
            Error::ObjectKey { reason, .. } => Error::ObjectKey { key: key.to_owned(), reason },
            other => other,
        })?;
        if !key.ends_with(&object.key()) {
            return Err(invalid(&format!("not in canonical form: expected {:?}", object.key())));
        }
        Ok(object)
    }

    /// The timestamps (epoch milliseconds) the object's rows may have: its hour for
    /// `metrics_1m`, its day for `metrics_1h`.
    pub fn time_range_ms(&self) -> Range<i64> {
        // The date was checked when the object was built.
        let day_start = days_from_date(&self.dt).unwrap_or_default() * 24 * HOUR_MS;
        match self.hour {
            Some(hour) => {
                let start = day_start + i64::from(hour) * HOUR_MS;
                start..start + HOUR_MS
            }
            None => day_start..day_start + 24 * HOUR_MS,
        }
    }
}

impl fmt::Display for LakeObject {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.key())
    }
}

/// Whether a `namespace=` folder value has the form [`namespace_folder_value`] gives a long namespace.
fn is_bounded(value: &str) -> bool {
    // The prefix is at least 197 bytes: an escape or a character is at most 4 bytes wide.
    value.len() >= BOUNDED_PREFIX_BYTES - 3 + 33
        && value.as_bytes()[value.len() - 33] == b'~'
        && value[value.len() - 32..].bytes().all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
}

/// Days since 1970-01-01 of a `YYYY-MM-DD` date (proleptic Gregorian, years 0000 to 9999), or
/// `None` if the text is not such a date.
fn days_from_date(dt: &str) -> Option<i64> {
    let b = dt.as_bytes();
    if b.len() != 10 || b[4] != b'-' || b[7] != b'-' {
        return None;
    }
    let number = |range: Range<usize>| -> Option<i64> {
        let digits = &dt[range];
        digits.bytes().all(|c| c.is_ascii_digit()).then(|| digits.parse().ok())?
    };
    let (year, month, day) = (number(0..4)?, number(5..7)?, number(8..10)?);
    let leap = year % 4 == 0 && (year % 100 != 0 || year % 400 == 0);
    let month_days = [31, if leap { 29 } else { 28 }, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31];
    if !(1..=12).contains(&month) || day < 1 || day > month_days[(month - 1) as usize] {
        return None;
    }
    // Howard Hinnant's days_from_civil.
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    Some(era * 146_097 + doe - 719_468)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check_escape(raw: &str, escaped: &str) {
        assert_eq!(hive_escape(raw), escaped);
        assert_eq!(hive_unescape(escaped), raw);
    }

    #[test]
    fn escapes_as_hive() {
        check_escape("AWS/EC2", "AWS%2FEC2");
        check_escape("", "");
        check_escape("plain-name_1.2 with space,}", "plain-name_1.2 with space,}");
        check_escape("a:b=c?d#e%f", "a%3Ab%3Dc%3Fd%23e%25f");
        check_escape("q\"u'o*t\\e", "q%22u%27o%2At%5Ce");
        check_escape("{[]^}", "%7B%5B%5D%5E}");
        check_escape("\u{0}\u{1}\t\n\u{1F}\u{7F}", "%00%01%09%0A%1F%7F");
        check_escape("Café/東京", "Café%2F東京");
    }

    #[test]
    fn every_ascii_character_round_trips() {
        let all: String = (0u8..128).map(char::from).collect();
        assert_eq!(hive_unescape(&hive_escape(&all)), all);
        let escaped: Vec<char> = (0u8..128).map(char::from).filter(|&c| hive_escapes(c)).collect();
        assert_eq!(escaped.len(), 32 + 14 + 1, "{escaped:?}");
    }

    #[test]
    fn unescape_is_lenient_like_hive() {
        assert_eq!(hive_unescape("AWS%2fEC2"), "AWS/EC2");
        assert_eq!(hive_unescape("100%"), "100%");
        assert_eq!(hive_unescape("%4"), "%4");
        assert_eq!(hive_unescape("%zz%+F"), "%zz%+F");
        assert_eq!(hive_unescape("%E9t%C3%A9"), "\u{e9}t\u{c3}\u{a9}");
        assert_eq!(hive_unescape("東%2F京"), "東/京");
    }

    fn check_key(key: &str, expected: Option<(Table, &str, &str, Option<u8>)>) {
        match (LakeObject::parse(key), expected) {
            (Ok(object), Some((table, dt, namespace, hour))) => {
                assert_eq!((object.table(), object.dt(), object.namespace(), object.hour()), (table, dt, namespace, hour));
                assert!(key.ends_with(&object.key()));
            }
            (Err(e), None) => assert!(e.to_string().contains(&format!("{key:?}")), "{e}"),
            (got, expected) => panic!("{key}: got {got:?}, expected {expected:?}"),
        }
    }

    #[test]
    fn object_keys() {
        use Table::*;
        check_key("metrics_1m/dt=2026-11-26/namespace=AWS%2FEC2/07.parquet", Some((Metrics1m, "2026-11-26", "AWS/EC2", Some(7))));
        check_key("lake/metrics_1h/dt=2024-02-29/namespace=Custom/day.parquet", Some((Metrics1h, "2024-02-29", "Custom", None)));
        check_key("metrics_1m/dt=2026-11-26/namespace=a%3Ab%20c/23.parquet", None); // %20 is not Hive's
        check_key("metrics_1m/dt=2026-11-26/namespace=AWS%2fEC2/07.parquet", None); // lowercase hex
        check_key("metrics_1m/dt=2026-11-26/namespace=AWS/EC2/07.parquet", None);
        check_key("metrics_1m/dt=2026-11-26/namespace=AWS%2FEC2/24.parquet", None);
        check_key("metrics_1m/dt=2026-11-26/namespace=AWS%2FEC2/7.parquet", None);
        check_key("metrics_1m/dt=2026-11-26/namespace=AWS%2FEC2/day.parquet", None);
        check_key("metrics_1h/dt=2026-11-26/namespace=AWS%2FEC2/07.parquet", None);
        check_key("metrics_1m/dt=2025-02-29/namespace=AWS%2FEC2/07.parquet", None);
        check_key("metrics_1m/dt=20261126/namespace=AWS%2FEC2/07.parquet", None);
        check_key("metrics_1m/dt=2026-11-26/namespace=/07.parquet", None);
        check_key("metrics_5m/dt=2026-11-26/namespace=AWS%2FEC2/07.parquet", None);
        check_key("07.parquet", None);
    }

    #[test]
    fn long_namespaces_get_bounded_unique_folders() {
        // Up to 245 escaped bytes, the plain Hive folder; beyond, a bounded one.
        let fits = "N".repeat(245);
        assert_eq!(namespace_folder_value(&fits), fits);
        for namespace in ["N".repeat(246), "A/".repeat(127) + "x", "東".repeat(85), "My App/Prod:v1 ".repeat(17)] {
            let value = namespace_folder_value(&namespace);
            let segment = format!("namespace={value}");
            assert!(segment.len() <= MAX_SEGMENT_BYTES, "{} bytes", segment.len());
            assert!(hive_escape(&namespace).starts_with(value.split('~').next().unwrap()), "{value}");
            assert!(is_bounded(&value), "{value}");
            // The bounded name is a valid key segment that Hive unescapes without damage.
            assert!(!value.contains('/') && hive_unescape(&value).len() <= value.len());
            let object = LakeObject::minutes("2026-11-26", &namespace, 7).unwrap();
            assert_eq!(object.key(), format!("metrics_1m/dt=2026-11-26/{segment}/07.parquet"));
            let parsed = LakeObject::parse(&object.key()).unwrap_err().to_string();
            assert!(parsed.contains("bounded name of a long namespace"), "{parsed}");
        }
        // Distinct namespaces sharing the first 200 bytes get distinct folders.
        let (a, b) = ("P".repeat(250) + "a", "P".repeat(250) + "b");
        assert_ne!(namespace_folder_value(&a), namespace_folder_value(&b));
        // Pinned: the folder name is an identity stored in lakes (and Glue locations).
        assert_eq!(namespace_folder_value(&a)[200..], *"~3040982c6faf3424fd73ee5e673bd472");
        assert_eq!(namespace_folder_value(&a)[..200], "P".repeat(200));
        assert!(!is_bounded(&"P".repeat(240)));
    }

    #[test]
    fn objects_build_their_keys() {
        let object = LakeObject::minutes("2026-11-26", "AWS/EC2", 7).unwrap();
        assert_eq!(object.partition_path(), "metrics_1m/dt=2026-11-26/namespace=AWS%2FEC2/");
        assert_eq!(object.key(), "metrics_1m/dt=2026-11-26/namespace=AWS%2FEC2/07.parquet");
        assert_eq!(object.day().key(), "metrics_1h/dt=2026-11-26/namespace=AWS%2FEC2/day.parquet");
        assert_eq!(partition_path(Table::Metrics1h, "2026-11-26", "AWS/EC2"), "metrics_1h/dt=2026-11-26/namespace=AWS%2FEC2/");
        let error = |result: Result<LakeObject>| result.unwrap_err().to_string();
        assert_eq!(
            error(LakeObject::minutes("2026-11-26", "AWS/EC2", 24)),
            r#"lake object key "metrics_1m/dt=2026-11-26/namespace=AWS%2FEC2/24.parquet": hour 24 is not 00 to 23"#
        );
        assert_eq!(
            error(LakeObject::hourly("2026-13-01", "AWS/EC2")),
            r#"lake object key "metrics_1h/dt=2026-13-01/namespace=AWS%2FEC2/day.parquet": dt "2026-13-01" is not a date of the form YYYY-MM-DD"#
        );
        assert_eq!(
            error(LakeObject::hourly("2026-11-26", "")),
            r#"lake object key "metrics_1h/dt=2026-11-26/namespace=/day.parquet": empty namespace"#
        );
        // Every escapable character survives the key and its parsing.
        let namespace: String = (1u8..128).map(char::from).collect();
        let object = LakeObject::minutes("2026-11-26", &namespace, 0).unwrap();
        assert_eq!(LakeObject::parse(&object.key()).unwrap(), object);
    }

    #[test]
    fn time_ranges_match_the_model_calendar() {
        for ms in [0, 1_611_929_698_000, 1_735_689_599_999, 1_735_689_600_000, 1_709_164_800_000, -1, 253_402_300_799_000] {
            let object = LakeObject::minutes_at("AWS/EC2", ms).unwrap();
            let hour = cwms_model::utc_hour(ms);
            assert_eq!(object.time_range_ms(), hour.start_ms()..hour.start_ms() + HOUR_MS, "{ms}");
            assert!(object.day().time_range_ms().contains(&ms));
        }
        // utc_hour clamps the timestamp to the calendar's last day, at midnight.
        assert_eq!(
            LakeObject::minutes_at("AWS/EC2", 253_402_300_800_000).unwrap_err().to_string(),
            r#"lake object key "metrics_1m/dt=9999-12-31/namespace=AWS%2FEC2/00.parquet": timestamp 253402300800000 ms is outside the calendar"#
        );
    }
}
