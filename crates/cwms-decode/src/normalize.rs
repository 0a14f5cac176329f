//! Metric-stream lines straight to their normalized lines, for the transform.
//!
//! The transform's output for a datum is [`Datum::write_json_line`]'s line. For a line as
//! CloudWatch writes it (its fields in its own order, strings without escapes, plain decimal
//! numbers), most of that line is the input's own bytes: the fields up to `dimensions` come in
//! the same order and are written exactly as they are read, and so are sorted dimensions and the
//! unit. [`normalize`] copies those spans, rewrites only the `value` object (the statistics in
//! normalized order, each number in shortest round-trip form) and gives up, returning `None`, at
//! anything else: another field order, whitespace, an escape, a missing or unknown field, a number
//! it cannot vouch for. The datum path ([`crate::for_each_datum`] and `write_json_line`) then
//! decides the line. So, like the fast path, this never rejects a line itself, and what it writes
//! must be exactly what the datum path writes: the tests check that on many generated lines.
//!
//! Numbers are where the datum path spends most: each is read into an `f64` and written back in
//! shortest form. A decimal with at most 15 significant digits needs neither step when it has no
//! trailing zeros: no two such decimals round to the same `f64` (they differ by at least one part
//! in 10^15, an `f64`'s spacing is at most one part in 2^52, about 2.2 x 10^16), so it is the
//! shortest text of its own value, and it is copied (an integer gets `.0`, as `3` becomes `3.0`).
//! Longer ones (a computed sum, `1827.5609493152228`) are read and written as before.
//!

use std::ops::Range;

use cwms_model::{Datum, plain_json_prefix, write_json_f64};

use crate::rules::{MAX_TIMESTAMP_MS, MIN_TIMESTAMP_MS, required_statistic, sort_by_name};

/// What the transform needs of a datum besides its normalized line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LineSummary<'a> {
    pub namespace: &'a str,
    pub metric_name: &'a str,
    /// Epoch milliseconds.
    pub timestamp_ms: i64,
}

impl<'a> LineSummary<'a> {
    /// The summary of a decoded datum.
    pub fn of(datum: &'a Datum<'_>) -> Self {
        LineSummary { namespace: &datum.namespace, metric_name: &datum.metric_name, timestamp_ms: datum.timestamp_ms }
    }
}

/// Buffers reused from line to line.
#[derive(Default)]
pub(crate) struct Scratch<'a> {
    dimensions: Vec<(&'a str, &'a str)>,
    /// The additional statistics: name and the range of its number's text in `numbers`.
    stats: Vec<(&'a str, Range<usize>)>,
    /// The statistics' numbers, normalized.
    numbers: Vec<u8>,
}

/// Appends the normalized line of a line of CloudWatch's own shape to `out`, or returns `None`
/// (with `out` unchanged) for the datum path to decide.
pub(crate) fn normalize<'a>(line: &'a str, out: &mut Vec<u8>, scratch: &mut Scratch<'a>) -> Option<LineSummary<'a>> {
    let mut c = Cursor { text: line, bytes: line.as_bytes(), at: 0 };
    c.literal(b"{\"metric_stream_name\":\"")?;
    c.string_rest()?;
    c.literal(b",\"account_id\":\"")?;
    c.non_empty_string_rest()?;
    c.literal(b",\"region\":\"")?;
    c.non_empty_string_rest()?;
    c.literal(b",\"namespace\":\"")?;
    let namespace = c.non_empty_string_rest()?;
    c.literal(b",\"metric_name\":\"")?;
    let metric_name = c.non_empty_string_rest()?;
    c.literal(b",\"dimensions\":{")?;
    // Everything so far is written exactly as it was read.
    let prefix = ..c.at;

    scratch.dimensions.clear();
    let dimensions_start = c.at;
    let mut sorted = true;
    if c.peek() != Some(b'}') {
        loop {
            c.literal(b"\"")?;
            let name = c.string_rest()?;
            c.literal(b":\"")?;
            let value = c.string_rest()?;
            sorted &= scratch.dimensions.last().is_none_or(|(last, _)| *last < name);
            scratch.dimensions.push((name, value));
            if c.literal(b",").is_none() {
                break;
            }
        }
    }
    let dimensions = dimensions_start..c.at;
    if !sorted && sort_by_name(&mut scratch.dimensions).is_some() {
        return None;
    }

    c.literal(b"},\"timestamp\":")?;
    let (timestamp, timestamp_ms) = c.timestamp()?;

    c.literal(b",\"value\":{")?;
    scratch.numbers.clear();
    scratch.stats.clear();
    let mut required: [Option<Range<usize>>; 4] = [None, None, None, None];
    loop {
        c.literal(b"\"")?;
        let name = c.string_rest()?;
        c.literal(b":")?;
        let start = scratch.numbers.len();
        c.number(&mut scratch.numbers)?;
        let number = start..scratch.numbers.len();
        match required_statistic(name) {
            Some(i) if required[i].is_some() => return None,
            Some(i) => required[i] = Some(number),
            None => scratch.stats.push((name, number)),
        }
        if c.literal(b",").is_none() {
            break;
        }
    }
    let [Some(count), Some(sum), Some(max), Some(min)] = required else { return None };
    // A negative count is an error the datum path words; `-0.0` it accepts, and so does it there.
    if scratch.numbers[count.start] == b'-' && scratch.numbers[count.clone()] != *b"-0.0" {
        return None;
    }
    if sort_by_name(&mut scratch.stats).is_some() {
        return None;
    }

    c.literal(b"},\"unit\":\"")?;
    let unit = c.non_empty_string_rest()?;
    c.literal(b"}")?;
    if c.at != c.bytes.len() {
        return None;
    }

    // The line is of the usual shape: write it.
    let numbers = &scratch.numbers;
    out.reserve(line.len() + 64);
    out.extend_from_slice(&c.bytes[prefix]);
    if sorted {
        out.extend_from_slice(&c.bytes[dimensions]);
    } else {
        for (i, (name, value)) in scratch.dimensions.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            out.push(b'"');
            out.extend_from_slice(name.as_bytes());
            out.extend_from_slice(b"\":\"");
            out.extend_from_slice(value.as_bytes());
            out.push(b'"');
        }
    }
    out.extend_from_slice(b"},\"timestamp\":");
    out.extend_from_slice(&c.bytes[timestamp]);
    out.extend_from_slice(b",\"value\":{\"count\":");
    out.extend_from_slice(&numbers[count]);
    out.extend_from_slice(b",\"sum\":");
    out.extend_from_slice(&numbers[sum]);
    out.extend_from_slice(b",\"max\":");
    out.extend_from_slice(&numbers[max]);
    out.extend_from_slice(b",\"min\":");
    out.extend_from_slice(&numbers[min]);
    for (name, number) in &scratch.stats {
        out.extend_from_slice(b",\"");
        out.extend_from_slice(name.as_bytes());
        out.extend_from_slice(b"\":");
        out.extend_from_slice(&numbers[number.clone()]);
    }
    out.extend_from_slice(b"},\"unit\":\"");
    out.extend_from_slice(unit.as_bytes());
    out.extend_from_slice(b"\"}\n");
    Some(LineSummary { namespace, metric_name, timestamp_ms })
}

struct Cursor<'a> {
    text: &'a str,
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Cursor<'a> {
    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.at).copied()
    }

    /// Steps over `expected` if the text continues with it. (An array, not a slice: comparing a
    /// known number of bytes compiles to a few loads instead of a call to `memcmp`.)
    #[inline(always)]
    fn literal<const N: usize>(&mut self, expected: &[u8; N]) -> Option<()> {
        let found: &[u8; N] = self.bytes.get(self.at..self.at + N)?.try_into().ok()?;
        (found == expected).then(|| self.at += N)
    }

    /// The rest of a string whose opening quote was read, up to its closing quote (stepped over):
    /// only a string that needs no escape.
    fn string_rest(&mut self) -> Option<&'a str> {
        let start = self.at;
        let len = plain_json_prefix(&self.bytes[start..]);
        self.at = start + len;
        self.literal(b"\"")?;
        // Quotes are ASCII, so both ends are character boundaries of the (valid) text.
        Some(&self.text[start..start + len])
    }

    fn non_empty_string_rest(&mut self) -> Option<&'a str> {
        self.string_rest().filter(|s| !s.is_empty())
    }

    fn digits(&mut self) -> usize {
        let start = self.at;
        while let Some(b'0'..=b'9') = self.peek() {
            self.at += 1;
        }
        self.at - start
    }

    /// Epoch milliseconds: a non-negative integer in range, whose text is its normalized text
    /// (JSON has no leading zeros).
    fn timestamp(&mut self) -> Option<(Range<usize>, i64)> {
        let start = self.at;
        let len = self.digits();
        if len == 0 || len > 18 || (len > 1 && self.bytes[start] == b'0') || matches!(self.peek(), Some(b'.' | b'e' | b'E')) {
            return None;
        }
        let value = self.bytes[start..self.at].iter().fold(0i64, |v, &d| v * 10 + i64::from(d - b'0'));
        (MIN_TIMESTAMP_MS..=MAX_TIMESTAMP_MS).contains(&value).then_some((start..self.at, value))
    }

    /// A JSON number without exponent, appended to `out` in normalized form; `None` for anything
    /// the datum path should decide (an exponent, a negative integer, an out-of-range value).
    fn number(&mut self, out: &mut Vec<u8>) -> Option<()> {
        let start = self.at;
        let negative = self.peek() == Some(b'-');
        self.at += usize::from(negative);
        let integer_start = self.at;
        let integer = self.digits();
        if integer == 0 || (integer > 1 && self.bytes[integer_start] == b'0') {
            return None;
        }
        let mut fraction = 0..0;
        if self.peek() == Some(b'.') {
            self.at += 1;
            let fraction_start = self.at;
            if self.digits() == 0 {
                return None;
            }
            fraction = fraction_start..self.at;
        }
        if matches!(self.peek(), Some(b'e' | b'E')) {
            return None;
        }
        let text = &self.text[start..self.at];
        if fraction.is_empty() {
            // serde_json reads a non-negative integer as `u64` and converts it; a negative one
            // (or one past `u64`, which it reads as a float) is left to the datum path.
            if negative || integer > 20 {
                return None;
            }
            if integer <= 15 {
                out.extend_from_slice(text.as_bytes());
                out.extend_from_slice(b".0");
            } else {
                write_json_f64(out, text.parse::<u64>().ok()? as f64);
            }
            return Some(());
        }
        if self.is_shortest(integer_start..integer_start + integer, fraction) {
            out.extend_from_slice(text.as_bytes());
        } else {
            let value = text.parse::<f64>().ok().filter(|v| v.is_finite())?;
            write_json_f64(out, value);
        }
        Some(())
    }

    /// True when a decimal `integer.fraction` is already the shortest round-trip text of its
    /// value in the fixed notation the writer uses: at most 15 significant digits, no trailing
    /// zero (but `N.0`), and a value from 0.001 to below 10^15 (or zero).
    fn is_shortest(&self, integer: Range<usize>, fraction: Range<usize>) -> bool {
        let (int, frac) = (&self.bytes[integer], &self.bytes[fraction]);
        if frac == b"0" {
            return int.len() <= 15;
        }
        if frac.ends_with(b"0") {
            return false;
        }
        if int != b"0" {
            return int.len() + frac.len() <= 15;
        }
        let leading_zeros = frac.iter().take_while(|&&d| d == b'0').count();
        leading_zeros <= 2 && frac.len() - leading_zeros <= 15
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use proptest::strategy::ValueTree;

    use super::*;
    use crate::decode_line_str;

    /// Whenever `normalize` takes a line, it writes exactly what the datum path writes for it, and
    /// summarizes the same datum; a line it leaves alone leaves `out` untouched.
    fn check(line: &str) -> bool {
        let mut out = b"before".to_vec();
        let mut scratch = Scratch::default();
        let Some(summary) = normalize(line, &mut out, &mut scratch) else {
            assert_eq!(out, b"before", "line: {line}");
            return false;
        };
        let datum = decode_line_str(line).unwrap_or_else(|e| panic!("normalize took a line the datum path refuses ({e}): {line}"));
        let mut expected = b"before".to_vec();
        datum.write_json_line(&mut expected);
        assert_eq!(String::from_utf8(out).unwrap(), String::from_utf8(expected).unwrap(), "line: {line}");
        assert_eq!(summary, LineSummary::of(&datum));
        true
    }

    const AWS: &str = r#"{"metric_stream_name":"MyMetricStream","account_id":"1234567890","region":"us-east-1","namespace":"AWS/EC2","metric_name":"DiskWriteOps","dimensions":{"InstanceId":"i-123456789012"},"timestamp":1611929698000,"value":{"count":3.0,"sum":20.0,"max":18.0,"min":0.0,"p99":17.56,"p99.9":17.8764,"TM(25%:75%)":16.43},"unit":"Seconds"}"#;

    #[test]
    fn takes_cloudwatch_lines() {
        assert!(check(AWS));
        assert!(check(
            r#"{"metric_stream_name":"MyMetricStream","account_id":"1234567890","region":"us-east-1","namespace":"AWS/NATGateway","metric_name":"PacketsInFromDestination","dimensions":{"NatGatewayId":"nat-01a4160dfb995b990"},"timestamp":1643916720000,"value":{"max":0.0,"min":0.0,"sum":0.0,"count":2.0},"unit":"Count"}"#
        ));
        assert!(check(
            r#"{"metric_stream_name":"","account_id":"1","region":"r","namespace":"N","metric_name":"M","dimensions":{"Z":"1","A":"2","M":""},"timestamp":946684800000,"value":{"max":1827.5609493152228,"min":-0.0,"sum":9007199254740993,"count":33,"p50":0.001,"IQM":123456789012345.0},"unit":"é/s"}"#
        ));
    }

    #[test]
    fn leaves_other_shapes_to_the_datum_path() {
        for (from, to) in [
            (r#"{"metric_stream_name":"MyMetricStream","#, "{"),
            (r#""account_id":"1234567890","region":"us-east-1""#, r#""region":"us-east-1","account_id":"1234567890""#),
            (r#""region":"us-east-1""#, r#""region": "us-east-1""#),
            (r#""region":"us-east-1""#, r#""region":"""#),
            (r#""InstanceId":"i-123456789012""#, r#""InstanceId":"i-\u0031""#),
            (r#""InstanceId":"i-123456789012""#, r#""B":"b","B":"c""#),
            (r#""timestamp":1611929698000"#, r#""timestamp":1611929698000.0"#),
            (r#""timestamp":1611929698000"#, r#""timestamp":01"#),
            (r#""timestamp":1611929698000"#, r#""timestamp":253402300800000"#),
            (r#""sum":20.0"#, r#""sum":2e1"#),
            (r#""sum":20.0"#, r#""sum":-20"#),
            (r#""sum":20.0"#, r#""sum":020.0"#),
            (r#""sum":20.0"#, r#""sum":20."#),
            (r#""sum":20.0"#, r#""sum":18446744073709551616"#),
            (r#""count":3.0"#, r#""count":-3.0"#),
            (r#""count":3.0,"#, ""),
            (r#""p99":17.56"#, r#""p99":17.56,"p99":1"#),
            (r#""p99":17.56"#, r#""count":17.56"#),
            (r#","unit":"Seconds""#, ""),
            (r#""unit":"Seconds"}"#, r#""unit":"Seconds"} "#),
            (r#""unit":"Seconds"}"#, r#""unit":"Seconds","future":1}"#),
        ] {
            let line = AWS.replacen(from, to, 1);
            assert_ne!(line, AWS);
            assert!(!check(&line), "{line}");
        }
    }

    /// A JSON number as CloudWatch might write it (or nearly: a few are for the datum path).
    fn decimal() -> impl Strategy<Value = String> {
        prop_oneof![
            // Short decimals, at every position of the point, with and without trailing zeros.
            (1u64..1_000_000_000_000_000, 0usize..19, any::<bool>()).prop_map(|(digits, point, negative)| {
                let digits = digits.to_string();
                let point = point.min(digits.len());
                let (int, frac) = digits.split_at(digits.len() - point);
                let int = if int.is_empty() { "0" } else { int };
                let frac = if frac.is_empty() { "0".to_owned() } else { frac.to_owned() };
                format!("{}{int}.{frac}", if negative { "-" } else { "" })
            }),
            // Small decimals, with zeros after the point.
            (1u64..1_000_000_000_000_000, 0usize..9).prop_map(|(digits, zeros)| format!("0.{}{digits}", "0".repeat(zeros))),
            // Any finite f64 as Rust writes it: shortest digits, often 16 or 17 of them.
            any::<f64>().prop_filter("finite, no exponent", |v| v.is_finite()).prop_map(|v| {
                let text = v.to_string();
                if text.contains('.') { text } else { format!("{text}.0") }
            }),
            (0u64..u64::MAX).prop_map(|v| v.to_string()),
            prop::sample::select(vec![
                "0.0",
                "-0.0",
                "0.001",
                "0.0001",
                "0.00012",
                "1.10",
                "100",
                "0.5",
                "999999999999999.0",
                "9999999999999999.0"
            ])
            .prop_map(str::to_owned),
        ]
    }

    fn line() -> impl Strategy<Value = String> {
        let dimensions = prop::collection::vec(
            (prop::sample::select(vec!["A", "B", "InstanceId", "a", "Z", "é"]), prop::sample::select(vec!["", "v", "i-1", "x y"])),
            0..4,
        );
        let stats =
            prop::collection::vec((prop::sample::select(vec!["p99", "p99.9", "TM(25%:75%)", "IQM", "count", "p50"]), decimal()), 0..4);
        let order = prop::sample::select(vec![[0, 1, 2, 3], [2, 3, 1, 0], [3, 1, 2, 0]]);
        (dimensions, stats, order, prop::collection::vec(decimal(), 4), MIN_TIMESTAMP_MS..=MAX_TIMESTAMP_MS).prop_map(|(dimensions, stats, order, numbers, timestamp)| {
            let dimensions: Vec<String> = dimensions.iter().map(|(k, v)| format!("\"{k}\":\"{v}\"")).collect();
            let names = ["count", "sum", "max", "min"];
            let mut value: Vec<String> = order.iter().map(|&i| format!("\"{}\":{}", names[i], numbers[i])).collect();
            value.extend(stats.iter().map(|(k, v)| format!("\"{k}\":{v}")));
            format!(
                r#"{{"metric_stream_name":"S","account_id":"1","region":"r","namespace":"N","metric_name":"M","dimensions":{{{}}},"timestamp":{timestamp},"value":{{{}}},"unit":"Count"}}"#,
                dimensions.join(","),
                value.join(",")
            )
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(20_000))]

        #[test]
        fn agrees_with_the_datum_path(line in line()) {
            check(&line);
        }
    }

    /// Of the generated lines that are valid datums, `normalize` takes nearly all: the property
    /// above tests it writing, not only giving up.
    #[test]
    fn takes_nearly_every_valid_generated_line() {
        let mut runner = proptest::test_runner::TestRunner::deterministic();
        let lines: Vec<String> = (0..2_000).map(|_| line().new_tree(&mut runner).unwrap().current()).collect();
        let valid = lines.iter().filter(|line| decode_line_str(line).is_ok()).count();
        let taken = lines.iter().filter(|line| check(line)).count();
        assert!(valid > 200 && taken * 100 >= valid * 95, "{taken} taken of {valid} valid");
    }
}
