//! A fast path for the lines CloudWatch writes: one pass over the bytes, no serde.
//!
//! [`decode`] reads the common shape of a metric-stream line (the datum's own fields, strings
//! without escapes, plain decimal numbers) and gives up, returning `None`, at anything else: an
//! escape, an unknown field, a duplicate, an empty string, a number with an exponent, a missing
//! statistic, any syntax error. The caller then decodes the line with serde_json, which either
//! accepts it or says precisely what is wrong. So this path never decides that a line is bad,
//! and it must only ever accept a line exactly as serde_json's path would, with the same datum:
//! the tests check that on the unit tests' lines and on many generated ones.
//!
//! Numbers: serde_json (with `float_roundtrip`, as the workspace builds it) reads a float to the
//! correctly rounded `f64`, which is unique, so `str::parse::<f64>` gives the same bits; a
//! non-negative integer it reads as `u64` and converts with `as f64`, which is what is done here.

use std::borrow::Cow;

use cwms_model::{Datum, UNIT_NONE, plain_json_prefix};

use crate::rules::{MAX_TIMESTAMP_MS, MIN_TIMESTAMP_MS, required_statistic, sort_by_name};

/// Decodes a line of the common shape, or returns `None` for serde_json to decide.
pub(crate) fn decode(line: &str) -> Option<Datum<'_>> {
    let mut datum = empty_datum();
    decode_into(line, &mut datum).map(|()| datum)
}

/// A datum with nothing in it, for [`decode_into`] to fill.
pub(crate) fn empty_datum<'a>() -> Datum<'a> {
    Datum {
        metric_stream_name: None,
        account_id: Cow::Borrowed(""),
        region: Cow::Borrowed(""),
        namespace: Cow::Borrowed(""),
        metric_name: Cow::Borrowed(""),
        dimensions: Vec::new(),
        timestamp_ms: 0,
        unit: Cow::Borrowed(UNIT_NONE),
        count: 0.0,
        sum: 0.0,
        max: 0.0,
        min: 0.0,
        stats: Vec::new(),
    }
}

/// [`decode`] into an existing datum, reusing its vectors: decoding line after line into the
/// same datum allocates nothing. On `None` the datum holds parts of the line and must not be used.
pub(crate) fn decode_into<'a>(line: &'a str, datum: &mut Datum<'a>) -> Option<()> {
    let mut c = Cursor { text: line, bytes: line.as_bytes(), at: 0 };
    c.space();
    c.eat(b'{')?;
    let mut seen = 0u16;
    datum.metric_stream_name = None;
    datum.dimensions.clear();
    datum.unit = Cow::Borrowed(UNIT_NONE);
    loop {
        c.space();
        let key = c.string()?;
        c.space();
        c.eat(b':')?;
        c.space();
        let bit = match key {
            "metric_stream_name" => {
                datum.metric_stream_name = Some(Cow::Borrowed(c.string()?));
                1
            }
            "account_id" => {
                datum.account_id = c.non_empty_string()?;
                2
            }
            "region" => {
                datum.region = c.non_empty_string()?;
                4
            }
            "namespace" => {
                datum.namespace = c.non_empty_string()?;
                8
            }
            "metric_name" => {
                datum.metric_name = c.non_empty_string()?;
                16
            }
            "dimensions" => {
                c.dimensions(&mut datum.dimensions)?;
                32
            }
            "timestamp" => {
                datum.timestamp_ms = c.timestamp()?;
                64
            }
            "value" => {
                (datum.count, datum.sum, datum.max, datum.min) = c.value(&mut datum.stats)?;
                128
            }
            "unit" => {
                datum.unit = c.non_empty_string()?;
                256
            }
            _ => return None,
        };
        if seen & bit != 0 {
            return None;
        }
        seen |= bit;
        c.space();
        match c.next()? {
            b',' => continue,
            b'}' => break,
            _ => return None,
        }
    }
    c.space();
    // Every field but the stream name, the dimensions and the unit is required.
    const REQUIRED: u16 = 2 | 4 | 8 | 16 | 64 | 128;
    (c.at == c.bytes.len() && seen & REQUIRED == REQUIRED).then_some(())
}

struct Cursor<'a> {
    text: &'a str,
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Cursor<'a> {
    /// Skips JSON whitespace.
    fn space(&mut self) {
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.bytes.get(self.at) {
            self.at += 1;
        }
    }

    fn next(&mut self) -> Option<u8> {
        let b = *self.bytes.get(self.at)?;
        self.at += 1;
        Some(b)
    }

    fn eat(&mut self, expected: u8) -> Option<()> {
        (self.next()? == expected).then_some(())
    }

    /// A string without escapes or control characters, borrowed.
    fn string(&mut self) -> Option<&'a str> {
        self.eat(b'"')?;
        let start = self.at;
        // The string ends at its first byte that is not plain; anything but the closing quote
        // (an escape, or a control character, which serde_json refuses) is left to serde_json.
        let len = plain_json_prefix(&self.bytes[start..]);
        self.at = start + len;
        self.eat(b'"')?;
        // Quotes are ASCII, so both ends are character boundaries of the (valid) text.
        Some(&self.text[start..start + len])
    }

    fn non_empty_string(&mut self) -> Option<Cow<'a, str>> {
        let s = self.string()?;
        (!s.is_empty()).then_some(Cow::Borrowed(s))
    }

    /// The text of a JSON number, exactly by the grammar, and whether it is a plain integer.
    /// Exponents are left to serde_json (its range errors are its own).
    fn number_text(&mut self) -> Option<(&'a str, bool)> {
        let start = self.at;
        if self.bytes.get(self.at) == Some(&b'-') {
            self.at += 1;
        }
        match self.next()? {
            b'0' => {}
            b'1'..=b'9' => self.digits(),
            _ => return None,
        }
        let mut integer = true;
        if self.bytes.get(self.at) == Some(&b'.') {
            self.at += 1;
            let before = self.at;
            self.digits();
            if self.at == before {
                return None;
            }
            integer = false;
        }
        if let Some(b'e' | b'E') = self.bytes.get(self.at) {
            return None;
        }
        Some((&self.text[start..self.at], integer))
    }

    fn digits(&mut self) {
        while let Some(b'0'..=b'9') = self.bytes.get(self.at) {
            self.at += 1;
        }
    }

    /// A finite number as serde_json reads it into `f64`.
    fn number(&mut self) -> Option<f64> {
        let (text, integer) = self.number_text()?;
        if integer {
            // serde_json reads a non-negative integer as u64 and converts it; negative integers
            // (where `-0` is a case of its own) are left to it.
            if text.starts_with('-') || text.len() > 19 {
                return None;
            }
            return Some(text.parse::<u64>().ok()? as f64);
        }
        text.parse::<f64>().ok().filter(|v| v.is_finite())
    }

    fn timestamp(&mut self) -> Option<i64> {
        let (text, integer) = self.number_text()?;
        if !integer || text.starts_with('-') || text.len() > 18 {
            return None;
        }
        let v: i64 = text.parse().ok()?;
        (MIN_TIMESTAMP_MS..=MAX_TIMESTAMP_MS).contains(&v).then_some(v)
    }

    /// The dimensions object, into `dimensions` (empty on entry), sorted by name.
    fn dimensions(&mut self, dimensions: &mut Vec<(Cow<'a, str>, Cow<'a, str>)>) -> Option<()> {
        self.eat(b'{')?;
        self.space();
        if self.bytes.get(self.at) == Some(&b'}') {
            self.at += 1;
            return Some(());
        }
        loop {
            self.space();
            let name = self.string()?;
            self.space();
            self.eat(b':')?;
            self.space();
            let value = self.string()?;
            dimensions.push((Cow::Borrowed(name), Cow::Borrowed(value)));
            self.space();
            match self.next()? {
                b',' => continue,
                b'}' => break,
                _ => return None,
            }
        }
        sort_by_name(dimensions).is_none().then_some(())
    }

    /// The value object: `count`, `sum`, `max` and `min`, and the other statistics into `stats`
    /// (cleared first), sorted by name.
    fn value(&mut self, stats: &mut Vec<(Cow<'a, str>, f64)>) -> Option<(f64, f64, f64, f64)> {
        self.eat(b'{')?;
        let mut required: [Option<f64>; 4] = [None; 4];
        stats.clear();
        loop {
            self.space();
            let name = self.string()?;
            self.space();
            self.eat(b':')?;
            self.space();
            let v = self.number()?;
            let slot = required_statistic(name);
            match slot {
                Some(i) if required[i].is_some() => return None,
                Some(i) => required[i] = Some(v),
                None => stats.push((Cow::Borrowed(name), v)),
            }
            self.space();
            match self.next()? {
                b',' => continue,
                b'}' => break,
                _ => return None,
            }
        }
        let [Some(count), Some(sum), Some(max), Some(min)] = required else { return None };
        if count < 0.0 {
            return None;
        }
        sort_by_name(stats).is_none().then_some((count, sum, max, min))
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::decode_line;

    const BASE: &str = r#"{"metric_stream_name":"S","account_id":"1","region":"r","namespace":"N","metric_name":"M","dimensions":{"D":"v"},"timestamp":1764140400000,"value":{"count":1,"sum":2,"max":3,"min":0},"unit":"Count"}"#;

    const FULL: &str = r#"{"metric_stream_name":"MyMetricStream","account_id":"1234567890","region":"us-east-1","namespace":"AWS/EC2","metric_name":"DiskWriteOps","dimensions":{"InstanceId":"i-123456789012","Z":"z"},"timestamp":1611929698000,"value":{"count":3.0,"sum":20.0,"max":18.0,"min":0.0,"p99":17.56,"p99.9":17.8764,"TM(25%:75%)":16.43},"unit":"Seconds"}"#;

    /// Whenever the fast path accepts a line, serde_json's path gives the same datum, bit for bit.
    fn check(line: &str) -> bool {
        match decode(line) {
            Some(fast) => {
                assert_eq!(Ok(&fast), decode_line(line.as_bytes()).as_ref(), "line: {line}");
                // Decoding into a datum that held a fuller line leaves nothing of that line behind.
                let mut reused = decode(FULL).unwrap();
                assert_eq!(decode_into(line, &mut reused), Some(()));
                assert_eq!(reused, fast, "line: {line}");
                true
            }
            None => false,
        }
    }

    #[test]
    fn takes_the_common_shape() {
        assert!(check(BASE));
        assert!(check(
            r#"{"metric_stream_name":"MyMetricStream","account_id":"1234567890","region":"us-east-1","namespace":"AWS/EC2","metric_name":"DiskWriteOps","dimensions":{"InstanceId":"i-123456789012"},"timestamp":1611929698000,"value":{"count":3.0,"sum":20.0,"max":18.0,"min":0.0,"p99":17.56,"p99.9":17.8764,"TM(25%:75%)":16.43},"unit":"Seconds"}"#
        ));
        assert!(check(
            r#" { "account_id" : "1" , "region":"r","namespace":"N","metric_name":"M","timestamp":946684800000,"value":{"min":-0.0,"max":-1.5,"sum":0.1,"count":0} } "#
        ));
        assert!(check(
            r#"{"account_id":"1","region":"r","namespace":"N","metric_name":"M","dimensions":{},"timestamp":4102444799999,"value":{"count":1,"sum":9007199254740993,"max":463.04499999999996,"min":0.00133333333333333},"unit":"é/s"}"#
        ));
    }

    #[test]
    fn leaves_the_rest_to_serde_json() {
        for (from, to) in [
            (r#""D":"v""#, r#""D\u0041":"v""#),
            (r#""timestamp":1764140400000"#, r#""timestamp":1764140400000.0"#),
            (r#""timestamp":1764140400000"#, r#""timestamp":-5"#),
            (r#""timestamp":1764140400000"#, r#""timestamp":4102444800000"#),
            (r#""timestamp":1764140400000"#, r#""timestamp":946684799999"#),
            (r#""sum":2"#, r#""sum":2e0"#),
            (r#""sum":2"#, r#""sum":-0"#),
            (r#""sum":2"#, r#""sum":02"#),
            (r#""sum":2"#, r#""sum":2."#),
            (r#""sum":2"#, r#""sum":18446744073709551616"#),
            (r#""count":1"#, r#""count":-1.0"#),
            (r#""count":1,"#, ""),
            (r#""region":"r""#, r#""region":"""#),
            (r#""region":"r""#, r#""region":"r","region":"r""#),
            (r#""D":"v""#, r#""D":"v","D":"v""#),
            (r#""unit":"Count""#, r#""unit":"Count","future":1"#),
            (r#""unit":"Count"}"#, r#""unit":"Count"} x"#),
        ] {
            let line = BASE.replacen(from, to, 1);
            assert_ne!(line, BASE);
            assert!(decode(&line).is_none(), "{line}");
        }
    }

    fn json_string() -> impl Strategy<Value = String> {
        prop::sample::select(vec!["", "x", "S", "us-east-1", "a\\\"b", "\\u0041", "é", "p99", "p99", "count", "\u{1}", "a b"])
            .prop_map(|s| format!("\"{s}\""))
    }

    fn json_number() -> impl Strategy<Value = String> {
        prop::sample::select(vec![
            "0",
            "1",
            "-1",
            "-0",
            "0.0",
            "-0.0",
            "1.5",
            "-2.25",
            "463.04499999999996",
            "699933.8159999999",
            "1e3",
            "1E-3",
            "01",
            "1.",
            ".5",
            "9007199254740993",
            "18446744073709551615",
            "18446744073709551616",
            "253402300799999",
            "253402300800000",
            "60000.0",
            "2.2250738585072014e-308",
            "1e999",
            "0.1000000000000000055511151231257827",
            "123456789012345678901234567890.5",
            "NaN",
            "null",
            "true",
            "\"1\"",
            "[1]",
        ])
        .prop_map(str::to_owned)
    }

    fn object(fields: Vec<(String, String)>, space: bool) -> String {
        let sep = if space { " , " } else { "," };
        let colon = if space { " : " } else { ":" };
        format!("{{{}}}", fields.iter().map(|(k, v)| format!("{k}{colon}{v}")).collect::<Vec<_>>().join(sep))
    }

    fn line() -> impl Strategy<Value = String> {
        let stats = prop::collection::vec(
            (
                prop::sample::select(vec!["\"count\"", "\"sum\"", "\"max\"", "\"min\"", "\"p99\"", "\"p99.9\"", "\"c\\u006fount\""]),
                json_number(),
            ),
            0..7,
        );
        let dims = prop::collection::vec((json_string(), json_string()), 0..4);
        let field = prop_oneof![
            2 => (prop::sample::select(vec!["metric_stream_name", "account_id", "region", "namespace", "metric_name", "unit"]), json_string())
                .prop_map(|(k, v)| (format!("\"{k}\""), v)),
            1 => json_number().prop_map(|v| ("\"timestamp\"".to_owned(), v)),
            1 => (dims, any::<bool>()).prop_map(|(d, s)| ("\"dimensions\"".to_owned(), object(d.into_iter().collect(), s))),
            2 => (stats, any::<bool>()).prop_map(|(v, s)| ("\"value\"".to_owned(), object(v.into_iter().map(|(k, n)| (k.to_owned(), n)).collect(), s))),
            1 => Just(("\"future\"".to_owned(), "1".to_owned())),
            1 => Just(("\"regi\\u006fn\"".to_owned(), "\"r\"".to_owned())),
        ];
        (prop::collection::vec(field, 0..12), any::<bool>()).prop_map(|(fields, space)| object(fields, space))
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(20_000))]

        #[test]
        fn agrees_with_serde_json(line in line()) {
            check(&line);
        }
    }

    /// A complete datum with each value drawn from mostly valid ones (the timestamp inside the
    /// accepted years), so that most lines are datums.
    fn complete_line() -> impl Strategy<Value = String> {
        let number = || {
            prop_oneof![
                8 => prop::sample::select(vec!["0", "1", "1.5", "-2.25", "463.04499999999996", "699933.8159999999", "60000.0", "9007199254740993"])
                    .prop_map(str::to_owned),
                1 => json_number(),
            ]
        };
        let string = prop_oneof![
            8 => prop::sample::select(vec!["x", "S", "us-east-1", "AWS/EC2", "p99", "a b", "é"]).prop_map(|s| format!("\"{s}\"")),
            1 => json_string(),
        ];
        let timestamp = prop_oneof![
            8 => (MIN_TIMESTAMP_MS..=MAX_TIMESTAMP_MS).prop_map(|t| t.to_string()),
            1 => json_number(),
        ];
        let stats = prop::collection::vec((prop::sample::select(vec!["p50", "p99", "p99.9", "TM(25%:75%)"]), number()), 0..4);
        (prop::collection::vec(number(), 4), prop::collection::vec(string, 4), timestamp, stats).prop_map(
            |(numbers, strings, timestamp, stats)| {
                let extra: String = stats.iter().map(|(k, v)| format!(",\"{k}\":{v}")).collect();
                format!(
                    r#"{{"account_id":{},"region":{},"namespace":{},"metric_name":"M","dimensions":{{{}:"v"}},"timestamp":{timestamp},"value":{{"count":{},"sum":{},"max":{},"min":{}{extra}}}}}"#,
                    strings[0], strings[1], strings[2], strings[3], numbers[0], numbers[1], numbers[2], numbers[3]
                )
            },
        )
    }

    /// The fast path agrees with serde_json on every complete line and takes most of the valid
    /// ones; without the rate, the agreement could be checked on no line at all (the proptest
    /// this replaces reached it in about 6 of 20,000 cases).
    #[test]
    fn agrees_with_serde_json_on_complete_lines_and_takes_most() {
        use proptest::strategy::ValueTree;
        let mut runner = proptest::test_runner::TestRunner::deterministic();
        let lines: Vec<String> = (0..5_000).map(|_| complete_line().new_tree(&mut runner).unwrap().current()).collect();
        let valid = lines.iter().filter(|line| crate::line::decode_str(line).is_ok()).count();
        let taken = lines.iter().filter(|line| check(line)).count();
        // About one valid line in five has an escaped string or a number spelled otherwise than
        // CloudWatch spells numbers (`-0`, `1e3`), which the fast path leaves to serde_json.
        assert!(valid > 2_000 && taken * 100 >= valid * 75, "{taken} taken of {valid} valid of {} lines", lines.len());
    }
}
