//! The domain of cwms: one CloudWatch metric-stream datum, the keys that identify its series,
//! and the one normalized JSON line every stage writes.
//!
//! Nothing here does IO, reads the environment or needs an async runtime.

use std::borrow::Cow;
use std::cmp::Ordering;
use std::hash::{Hash, Hasher};

pub mod firehose;
mod keys;
pub mod otel;
mod time_keys;

pub use keys::{DimensionKeyError, dimension_key, parse_dimension_key, series_id};
pub use otel::OutputFormat;
pub use time_keys::{UtcHour, utc_hour};

/// The CloudWatch unit used when a datum carries none.
///
/// CloudWatch itself reports `None` for a metric published without a unit, so a datum whose
/// `unit` field is absent means exactly that.
pub const UNIT_NONE: &str = "None";

/// The four statistics every metric-stream datum carries, in the order CloudWatch writes them.
pub const REQUIRED_STATISTICS: [&str; 4] = ["count", "sum", "max", "min"];

/// One metric-stream datum: one metric of one series for one minute (or one day for daily streams).
///
/// Strings borrow from the input where they can, so decoding a Firehose record allocates little;
/// [`Datum::into_owned`] detaches a datum from its input.
///
/// A datum built by the decoder is normalized: `dimensions` and `stats` are sorted by name and
/// hold no duplicate names, and every number is finite.
#[derive(Debug, Clone)]
pub struct Datum<'a> {
    pub metric_stream_name: Option<Cow<'a, str>>,
    pub account_id: Cow<'a, str>,
    pub region: Cow<'a, str>,
    pub namespace: Cow<'a, str>,
    pub metric_name: Cow<'a, str>,
    /// Dimension name and value pairs, sorted by name.
    pub dimensions: Vec<(Cow<'a, str>, Cow<'a, str>)>,
    /// Epoch milliseconds, as streamed (not necessarily on a minute boundary).
    pub timestamp_ms: i64,
    pub unit: Cow<'a, str>,
    pub count: f64,
    pub sum: f64,
    pub max: f64,
    pub min: f64,
    /// Additional statistics (`p99`, `TM(25%:75%)`, ...) under their exact CloudWatch names, sorted by name.
    pub stats: Vec<(Cow<'a, str>, f64)>,
}

/// An owned datum, detached from the bytes it was decoded from.
pub type OwnedDatum = Datum<'static>;

fn own(s: Cow<'_, str>) -> Cow<'static, str> {
    Cow::Owned(s.into_owned())
}

impl<'a> Datum<'a> {
    /// Detaches the datum from the input it borrows from.
    pub fn into_owned(self) -> OwnedDatum {
        Datum {
            metric_stream_name: self.metric_stream_name.map(own),
            account_id: own(self.account_id),
            region: own(self.region),
            namespace: own(self.namespace),
            metric_name: own(self.metric_name),
            dimensions: self.dimensions.into_iter().map(|(k, v)| (own(k), own(v))).collect(),
            timestamp_ms: self.timestamp_ms,
            unit: own(self.unit),
            count: self.count,
            sum: self.sum,
            max: self.max,
            min: self.min,
            stats: self.stats.into_iter().map(|(k, v)| (own(k), v)).collect(),
        }
    }

    /// The canonical `Name=Value,...` form of the dimensions (see [`dimension_key`]).
    pub fn dimension_key(&self) -> String {
        dimension_key(self.dimensions.iter().map(|(k, v)| (k.as_ref(), v.as_ref())))
    }

    /// The UTC hour the datum's timestamp falls in.
    pub fn utc_hour(&self) -> UtcHour {
        utc_hour(self.timestamp_ms)
    }

    /// Appends the datum as one line of CloudWatch metric-stream JSON, terminated by `\n`.
    ///
    /// Fields come in the order CloudWatch documents; `value` holds `count`, `sum`, `max`, `min`
    /// and then the additional statistics by name. Every tool that reads metric-stream JSON reads this.
    pub fn write_json_line(&self, out: &mut Vec<u8>) {
        out.push(b'{');
        if let Some(name) = &self.metric_stream_name {
            out.extend_from_slice(b"\"metric_stream_name\":");
            write_str(out, name);
            out.push(b',');
        }
        out.extend_from_slice(b"\"account_id\":");
        write_str(out, &self.account_id);
        out.extend_from_slice(b",\"region\":");
        write_str(out, &self.region);
        out.extend_from_slice(b",\"namespace\":");
        write_str(out, &self.namespace);
        out.extend_from_slice(b",\"metric_name\":");
        write_str(out, &self.metric_name);
        out.extend_from_slice(b",\"dimensions\":{");
        for (i, (name, value)) in self.dimensions.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            write_str(out, name);
            out.push(b':');
            write_str(out, value);
        }
        out.extend_from_slice(b"},\"timestamp\":");
        serde_json::to_writer(&mut *out, &self.timestamp_ms).expect("writing JSON into a Vec cannot fail");
        out.extend_from_slice(b",\"value\":{\"count\":");
        write_f64(out, self.count);
        out.extend_from_slice(b",\"sum\":");
        write_f64(out, self.sum);
        out.extend_from_slice(b",\"max\":");
        write_f64(out, self.max);
        out.extend_from_slice(b",\"min\":");
        write_f64(out, self.min);
        for (name, value) in &self.stats {
            out.push(b',');
            write_str(out, name);
            out.push(b':');
            write_f64(out, *value);
        }
        out.extend_from_slice(b"},\"unit\":");
        write_str(out, &self.unit);
        out.extend_from_slice(b"}\n");
    }

    /// The merge law's total order over a datum's values (DESIGN 4.3): `count` first, then
    /// `sum`, `max`, `min`, the additional statistics, and finally the unit and stream name, so
    /// that two datums compare equal only when every value they carry is equal.
    pub fn value_order(&self, other: &Datum<'_>) -> Ordering {
        self.count
            .total_cmp(&other.count)
            .then_with(|| self.sum.total_cmp(&other.sum))
            .then_with(|| self.max.total_cmp(&other.max))
            .then_with(|| self.min.total_cmp(&other.min))
            .then_with(|| cmp_stats(&self.stats, &other.stats))
            .then_with(|| self.unit.cmp(&other.unit))
            .then_with(|| self.metric_stream_name.cmp(&other.metric_stream_name))
    }
}

/// Compares two sorted lists of additional statistics: by name and value, pair by pair, then by length.
pub fn cmp_stats<A: AsRef<str>, B: AsRef<str>>(a: &[(A, f64)], b: &[(B, f64)]) -> Ordering {
    for ((an, av), (bn, bv)) in a.iter().zip(b) {
        let ord = an.as_ref().cmp(bn.as_ref()).then_with(|| av.total_cmp(bv));
        if ord != Ordering::Equal {
            return ord;
        }
    }
    a.len().cmp(&b.len())
}

/// Exact equality: every field, numbers compared bit for bit (so `-0.0` and `0.0` differ, as their text does).
impl PartialEq for Datum<'_> {
    fn eq(&self, other: &Self) -> bool {
        self.timestamp_ms == other.timestamp_ms
            && self.count.to_bits() == other.count.to_bits()
            && self.sum.to_bits() == other.sum.to_bits()
            && self.max.to_bits() == other.max.to_bits()
            && self.min.to_bits() == other.min.to_bits()
            && self.metric_name == other.metric_name
            && self.namespace == other.namespace
            && self.dimensions == other.dimensions
            && self.account_id == other.account_id
            && self.region == other.region
            && self.unit == other.unit
            && self.metric_stream_name == other.metric_stream_name
            && self.stats.len() == other.stats.len()
            && self.stats.iter().zip(&other.stats).all(|((an, av), (bn, bv))| an == bn && av.to_bits() == bv.to_bits())
    }
}

impl Eq for Datum<'_> {}

impl Hash for Datum<'_> {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.timestamp_ms.hash(state);
        self.count.to_bits().hash(state);
        self.sum.to_bits().hash(state);
        self.metric_name.hash(state);
        self.dimensions.hash(state);
    }
}

fn write_str(out: &mut Vec<u8>, s: &str) {
    // serde_json escapes exactly `"`, `\` and control characters; names and values almost never
    // hold any, and then the string is copied as it is.
    if plain_json_prefix(s.as_bytes()) == s.len() {
        out.reserve(s.len() + 2);
        out.push(b'"');
        out.extend_from_slice(s.as_bytes());
        out.push(b'"');
        return;
    }
    // serde_json's escaping is the reference for JSON strings; writing into a Vec cannot fail.
    serde_json::to_writer(&mut *out, s).expect("writing JSON into a Vec cannot fail");
}

/// The length of the longest prefix of `bytes` that can sit inside a JSON string as it is: no
/// `"`, no `\` and no control character (below 0x20).
///
/// Metric-stream strings are short (names, ids, units: mostly under 32 bytes), too short for a
/// `memchr`-style search to pay for its set-up, so this looks at eight bytes at a time in a
/// `u64` (the SWAR byte tests from "Bit Twiddling Hacks": a zero byte, a byte below a bound),
/// which needs no SIMD instructions and works the same on x86_64 and Graviton.
#[inline]
pub fn plain_json_prefix(bytes: &[u8]) -> usize {
    const ONES: u64 = u64::from_ne_bytes([0x01; 8]);
    const HIGHS: u64 = u64::from_ne_bytes([0x80; 8]);
    let mut at = 0;
    let mut chunks = bytes.chunks_exact(8);
    for chunk in &mut chunks {
        let word = u64::from_le_bytes(chunk.try_into().expect("chunks of eight"));
        let quote = word ^ (ONES * u64::from(b'"'));
        let backslash = word ^ (ONES * u64::from(b'\\'));
        // A byte is flagged when it is zero after the XOR (`"` or `\`), or below 0x20. Flags
        // above the lowest true one may be false (a borrow carries upwards), so only the lowest
        // counts: the first byte that needs an escape.
        let flags =
            (quote.wrapping_sub(ONES) & !quote | backslash.wrapping_sub(ONES) & !backslash | word.wrapping_sub(ONES * 0x20) & !word)
                & HIGHS;
        if flags != 0 {
            return at + (flags.trailing_zeros() / 8) as usize;
        }
        at += 8;
    }
    at + chunks.remainder().iter().position(|&b| b < 0x20 || b == b'"' || b == b'\\').unwrap_or(chunks.remainder().len())
}

/// Appends a finite `f64` as the normalized line writes it: the shortest text that reads back to
/// the same bits, always with a fraction or an exponent (`3.0`, `0.1`, `1e300`).
pub fn write_json_f64(out: &mut Vec<u8>, v: f64) {
    write_f64(out, v);
}

fn write_f64(out: &mut Vec<u8>, v: f64) {
    // Datums are validated finite, and serde_json writes finite floats in the shortest form that
    // reads back to the same bits (ryu), always with a fraction or exponent: 3 is written `3.0`.
    serde_json::to_writer(&mut *out, &v).expect("writing JSON into a Vec cannot fail");
}

#[cfg(test)]
mod tests {
    use super::*;

    fn datum() -> OwnedDatum {
        Datum {
            metric_stream_name: Some("MyMetricStream".into()),
            account_id: "1234567890".into(),
            region: "us-east-1".into(),
            namespace: "AWS/EC2".into(),
            metric_name: "DiskWriteOps".into(),
            dimensions: vec![("InstanceId".into(), "i-123456789012".into())],
            timestamp_ms: 1611929698000,
            unit: "Seconds".into(),
            count: 3.0,
            sum: 20.0,
            max: 18.0,
            min: 0.0,
            stats: vec![("TM(25%:75%)".into(), 16.43), ("p99".into(), 17.56), ("p99.9".into(), 17.8764)],
        }
    }

    #[test]
    fn json_line_is_cloudwatch_format() {
        let mut out = Vec::new();
        datum().write_json_line(&mut out);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            concat!(
                r#"{"metric_stream_name":"MyMetricStream","account_id":"1234567890","region":"us-east-1","#,
                r#""namespace":"AWS/EC2","metric_name":"DiskWriteOps","dimensions":{"InstanceId":"i-123456789012"},"#,
                r#""timestamp":1611929698000,"value":{"count":3.0,"sum":20.0,"max":18.0,"min":0.0,"#,
                r#""TM(25%:75%)":16.43,"p99":17.56,"p99.9":17.8764},"unit":"Seconds"}"#,
                "\n"
            )
        );
    }

    #[test]
    fn json_line_escapes_strings() {
        let mut d = datum();
        d.metric_stream_name = None;
        d.dimensions = vec![("Quote\"d".into(), "line\nbreak\\".into())];
        d.stats.clear();
        let mut out = Vec::new();
        d.write_json_line(&mut out);
        let parsed: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(parsed["dimensions"]["Quote\"d"], "line\nbreak\\");
        assert!(parsed.get("metric_stream_name").is_none());
    }

    #[test]
    fn strings_are_written_as_serde_json_writes_them() {
        let mut texts: Vec<String> = (0u32..=0x80).filter_map(char::from_u32).map(|c| format!("a{c}b")).collect();
        texts.extend(["", "plain", "é🦀", "\u{2028}", "q\"\\", "\u{7f}"].map(str::to_owned));
        for text in texts {
            let mut out = Vec::new();
            write_str(&mut out, &text);
            assert_eq!(String::from_utf8(out).unwrap(), serde_json::to_string(&text).unwrap(), "{text:?}");
        }
    }

    #[test]
    fn plain_prefix_stops_at_the_first_byte_that_needs_an_escape() {
        let mut texts: Vec<Vec<u8>> = vec![b"".to_vec(), b"plain".to_vec(), "é🦀 and more than eight bytes".into(), vec![0x7f; 20]];
        // Every position in and around a word, every byte that needs an escape, after every byte
        // value (so that borrows from a neighbour cannot hide or invent a match).
        for len in 0..20 {
            for at in 0..=len {
                for special in [b'"', b'\\', 0x00, 0x1f, b'\n'] {
                    for filler in [0x00u8, 0x01, 0x20, 0x21, 0x22, 0x5b, 0x5c, 0x5d, 0x7f, 0x80, 0xa2, 0xdc, 0xff] {
                        let mut text = vec![b'a'; len];
                        text.iter_mut().skip(at + 1).for_each(|b| *b = filler);
                        if at < len {
                            text[at] = special;
                        }
                        texts.push(text);
                    }
                }
            }
        }
        for text in texts {
            let expected = text.iter().position(|&b| b < 0x20 || b == b'"' || b == b'\\').unwrap_or(text.len());
            assert_eq!(plain_json_prefix(&text), expected, "{text:?}");
        }
    }

    #[test]
    fn value_order_is_count_first_then_total() {
        let a = datum();
        let mut b = datum();
        assert_eq!(a.value_order(&b), Ordering::Equal);
        b.count = 4.0;
        b.sum = 0.0;
        assert_eq!(a.value_order(&b), Ordering::Less);
        let mut c = datum();
        c.stats.push(("tm99".into(), 1.0));
        assert_eq!(a.value_order(&c), Ordering::Less);
        let mut d = datum();
        d.unit = "Count".into();
        assert_eq!(a.value_order(&d), Ordering::Greater);
    }

    #[test]
    fn exact_equality_compares_bits() {
        let a = datum();
        let mut b = datum();
        assert_eq!(a, b);
        b.min = -0.0;
        assert_ne!(a, b);
    }
}
