//! One line of metric-stream JSON into one validated, normalized datum.
//!
//! The line is deserialized in one pass with hand-written visitors, so strings borrow from the
//! input and every problem names the field it is about. The visitors record which field they are
//! reading in a side channel ([`State`]) because serde's errors are opaque inside a visitor.

use std::borrow::Cow;
use std::fmt;

use cwms_model::{Datum, UNIT_NONE};
use serde::de::{self, DeserializeSeed, IgnoredAny, MapAccess, Visitor};
use serde_json::error::Category;

use crate::rules::{MAX_TIMESTAMP_MS, MIN_TIMESTAMP_MS, required_statistic, sort_by_name};

/// Why a line is not a valid metric-stream datum.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum LineProblem {
    /// The line is not well-formed JSON (or not UTF-8).
    #[error("invalid JSON: {0}")]
    Json(String),
    /// The line is JSON, but not an object.
    #[error("expected a JSON object, found {0}")]
    NotAnObject(String),
    /// The line is a JSON object without any field of a metric-stream datum.
    #[error("not a CloudWatch metric-stream datum (it has none of the datum's fields)")]
    NotADatum,
    /// A required field is absent (`value.count` for a statistic missing from `value`).
    #[error("missing field `{0}`")]
    MissingField(&'static str),
    /// A field is present with the wrong type or an unusable value.
    #[error("field `{field}`: {detail}")]
    InvalidField { field: String, detail: String },
    /// The same key appears twice in one object, so which value is meant is ambiguous.
    #[error("field `{0}` appears more than once")]
    DuplicateField(String),
}

/// Decodes one line (no newline inside) into a datum, or says precisely why it cannot.
///
/// The datum is normalized: dimensions and additional statistics sorted by name, an absent
/// `unit` read as CloudWatch's `None`, numbers given as integers read as floats.
pub fn decode_line(line: &[u8]) -> Result<Datum<'_>, LineProblem> {
    decode(serde_json::Deserializer::from_slice(line))
}

/// [`decode_line`] for a line already known to be UTF-8, with the same result: serde_json,
/// which then skips checking every string again as UTF-8. (The crate's `decode_line_str` tries
/// the fast path first; this is the path for the lines it leaves.)
pub(crate) fn decode_str(line: &str) -> Result<Datum<'_>, LineProblem> {
    decode(serde_json::Deserializer::from_str(line))
}

fn decode<'de, R: serde_json::de::Read<'de>>(mut deserializer: serde_json::Deserializer<R>) -> Result<Datum<'de>, LineProblem> {
    let mut state = State::default();
    let result = DatumSeed { state: &mut state }.deserialize(&mut deserializer).and_then(|datum| deserializer.end().map(|()| datum));
    result.map_err(|error| {
        let field = state.in_field.then(|| std::mem::take(&mut state.field));
        state.problem.take().unwrap_or_else(|| classify(&error, field))
    })
}

/// Turns a serde_json error into a problem, naming the field being read when there was one.
fn classify(error: &serde_json::Error, field: Option<String>) -> LineProblem {
    let message = error.to_string();
    // serde_json appends " at line L column C"; lines are decoded one by one, so keep the column only.
    let detail = match message.rfind(" at line ") {
        Some(at) => format!("{} at column {}", &message[..at], error.column()),
        None => message,
    };
    match (error.classify(), field) {
        (Category::Data, Some(field)) => LineProblem::InvalidField { field, detail },
        (Category::Data, None) => LineProblem::NotAnObject(
            detail.strip_prefix("invalid type: ").and_then(|d| d.split(", expected").next()).unwrap_or(&detail).to_owned(),
        ),
        (_, Some(field)) => LineProblem::InvalidField { field, detail: format!("invalid JSON: {detail}") },
        (_, None) => LineProblem::Json(detail),
    }
}

#[derive(Default)]
struct State {
    /// The field whose value is being read, for error messages (reused: no allocation per field).
    field: String,
    /// Whether `field` is being read; false between fields.
    in_field: bool,
    /// A problem found by validation (as opposed to one serde_json reports).
    problem: Option<LineProblem>,
}

impl State {
    fn enter(&mut self, prefix: &str, name: &str) {
        self.field.clear();
        self.field.push_str(prefix);
        self.field.push_str(name);
        self.in_field = true;
    }

    fn leave(&mut self) {
        self.in_field = false;
    }

    fn fail<E: de::Error>(&mut self, problem: LineProblem) -> E {
        let error = E::custom(&problem);
        self.problem = Some(problem);
        error
    }
}

struct DatumSeed<'s> {
    state: &'s mut State,
}

impl<'de> DeserializeSeed<'de> for DatumSeed<'_> {
    type Value = Datum<'de>;

    fn deserialize<D: de::Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_map(self)
    }
}

/// Top-level keys of a metric-stream datum.
const FIELDS: [&str; 9] =
    ["metric_stream_name", "account_id", "region", "namespace", "metric_name", "dimensions", "timestamp", "value", "unit"];

impl<'de> Visitor<'de> for DatumSeed<'_> {
    type Value = Datum<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a metric-stream datum object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let state = self.state;
        let mut seen = [false; FIELDS.len()];
        let mut stream_name = None;
        let (mut account_id, mut region, mut namespace, mut metric_name, mut unit) = (None, None, None, None, None);
        let mut dimensions = None;
        let mut timestamp = None;
        let mut value = None;

        while let Some(Str(key)) = map.next_key::<Str<'de>>()? {
            let Some(index) = FIELDS.iter().position(|f| *f == key) else {
                // Fields CloudWatch may add in the future are tolerated (and not kept).
                map.next_value::<IgnoredAny>()?;
                continue;
            };
            if std::mem::replace(&mut seen[index], true) {
                return Err(state.fail(LineProblem::DuplicateField(FIELDS[index].to_owned())));
            }
            state.enter("", FIELDS[index]);
            match index {
                0 => stream_name = Some(map.next_value::<Str<'de>>()?.0),
                1 => account_id = Some(map.next_value::<Str<'de>>()?.0),
                2 => region = Some(map.next_value::<Str<'de>>()?.0),
                3 => namespace = Some(map.next_value::<Str<'de>>()?.0),
                4 => metric_name = Some(map.next_value::<Str<'de>>()?.0),
                5 => dimensions = Some(map.next_value_seed(DimensionsSeed { state: &mut *state })?),
                6 => timestamp = Some(map.next_value::<Timestamp>()?.0),
                7 => value = Some(map.next_value_seed(ValueSeed { state: &mut *state })?),
                _ => unit = Some(map.next_value::<Str<'de>>()?.0),
            }
            state.leave();
        }

        if !seen.iter().any(|s| *s) {
            return Err(state.fail(LineProblem::NotADatum));
        }
        let mut required = |name: &'static str, v: Option<Cow<'de, str>>| -> Result<Cow<'de, str>, A::Error> {
            match v {
                None => Err(state.fail(LineProblem::MissingField(name))),
                Some(s) if s.is_empty() => {
                    Err(state.fail(LineProblem::InvalidField { field: name.to_owned(), detail: "must not be empty".to_owned() }))
                }
                Some(s) => Ok(s),
            }
        };
        let account_id = required("account_id", account_id)?;
        let region = required("region", region)?;
        let namespace = required("namespace", namespace)?;
        let metric_name = required("metric_name", metric_name)?;
        let unit = match unit {
            None => Cow::Borrowed(UNIT_NONE),
            Some(u) => required("unit", Some(u))?,
        };
        let Some(timestamp_ms) = timestamp else {
            return Err(state.fail(LineProblem::MissingField("timestamp")));
        };
        let Some(value) = value else {
            return Err(state.fail(LineProblem::MissingField("value")));
        };
        Ok(Datum {
            metric_stream_name: stream_name,
            account_id,
            region,
            namespace,
            metric_name,
            // A datum without `dimensions` has none, exactly like one with `{}`.
            dimensions: dimensions.unwrap_or_default(),
            timestamp_ms,
            unit,
            count: value.count,
            sum: value.sum,
            max: value.max,
            min: value.min,
            stats: value.stats,
        })
    }
}

/// A JSON string, borrowed from the input unless it contains escapes.
struct Str<'de>(Cow<'de, str>);

impl<'de> de::Deserialize<'de> for Str<'de> {
    fn deserialize<D: de::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct StrVisitor;
        impl<'de> Visitor<'de> for StrVisitor {
            type Value = Str<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(Str(Cow::Borrowed(v)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(Str(Cow::Owned(v.to_owned())))
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<Self::Value, E> {
                Ok(Str(Cow::Owned(v)))
            }
        }
        deserializer.deserialize_str(StrVisitor)
    }
}

/// Epoch milliseconds: an integer, or a float with no fractional part, within range.
struct Timestamp(i64);

impl<'de> de::Deserialize<'de> for Timestamp {
    fn deserialize<D: de::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct TimestampVisitor;
        impl TimestampVisitor {
            fn check<E: de::Error>(v: i64) -> Result<Timestamp, E> {
                if (MIN_TIMESTAMP_MS..=MAX_TIMESTAMP_MS).contains(&v) {
                    Ok(Timestamp(v))
                } else {
                    Err(E::custom(format_args!("{v} is not epoch milliseconds of a time from 2000 to 2099 (seconds or microseconds?)")))
                }
            }
        }
        impl Visitor<'_> for TimestampVisitor {
            type Value = Timestamp;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("integer epoch milliseconds")
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Timestamp, E> {
                Self::check(v)
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Timestamp, E> {
                Self::check(i64::try_from(v).unwrap_or(i64::MAX))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Timestamp, E> {
                if v.fract() == 0.0 && v.abs() < 1e18 {
                    Self::check(v as i64)
                } else {
                    Err(E::invalid_value(de::Unexpected::Float(v), &self))
                }
            }
        }
        deserializer.deserialize_any(TimestampVisitor)
    }
}

/// A finite JSON number (integers accepted).
struct Number(f64);

impl<'de> de::Deserialize<'de> for Number {
    fn deserialize<D: de::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct NumberVisitor;
        impl Visitor<'_> for NumberVisitor {
            type Value = Number;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a number")
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Number, E> {
                if v.is_finite() { Ok(Number(v)) } else { Err(E::custom("not a finite number")) }
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Number, E> {
                Ok(Number(v as f64))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Number, E> {
                Ok(Number(v as f64))
            }
        }
        deserializer.deserialize_any(NumberVisitor)
    }
}

struct DimensionsSeed<'s> {
    state: &'s mut State,
}

impl<'de> DeserializeSeed<'de> for DimensionsSeed<'_> {
    type Value = Vec<(Cow<'de, str>, Cow<'de, str>)>;

    fn deserialize<D: de::Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for DimensionsSeed<'_> {
    type Value = Vec<(Cow<'de, str>, Cow<'de, str>)>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an object of dimension names to string values")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut dimensions = Vec::with_capacity(map.size_hint().unwrap_or(4));
        while let Some(Str(name)) = map.next_key::<Str<'de>>()? {
            self.state.enter("dimensions.", &name);
            let Str(value) = map.next_value::<Str<'de>>()?;
            dimensions.push((name, value));
        }
        if let Some(name) = sort_by_name(&mut dimensions) {
            return Err(self.state.fail(LineProblem::DuplicateField(format!("dimensions.{name}"))));
        }
        Ok(dimensions)
    }
}

struct Values<'de> {
    count: f64,
    sum: f64,
    max: f64,
    min: f64,
    stats: Vec<(Cow<'de, str>, f64)>,
}

struct ValueSeed<'s> {
    state: &'s mut State,
}

impl<'de> DeserializeSeed<'de> for ValueSeed<'_> {
    type Value = Values<'de>;

    fn deserialize<D: de::Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for ValueSeed<'_> {
    type Value = Values<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an object of statistic names to numbers")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        const REQUIRED: [&str; 4] = ["value.count", "value.sum", "value.max", "value.min"];
        let mut required: [Option<f64>; 4] = [None; 4];
        let mut stats = Vec::new();
        while let Some(Str(name)) = map.next_key::<Str<'de>>()? {
            self.state.enter("value.", &name);
            let Number(v) = map.next_value::<Number>()?;
            let slot = required_statistic(&name);
            match slot {
                Some(i) if required[i].is_some() => {
                    return Err(self.state.fail(LineProblem::DuplicateField(REQUIRED[i].to_owned())));
                }
                Some(i) => required[i] = Some(v),
                None => stats.push((name, v)),
            }
        }
        for (i, v) in required.iter().enumerate() {
            if v.is_none() {
                return Err(self.state.fail(LineProblem::MissingField(REQUIRED[i])));
            }
        }
        let [Some(count), Some(sum), Some(max), Some(min)] = required else { unreachable!("checked above") };
        if count < 0.0 {
            return Err(self.state.fail(LineProblem::InvalidField {
                field: "value.count".to_owned(),
                detail: format!("a sample count cannot be negative, found {count}"),
            }));
        }
        if let Some(name) = sort_by_name(&mut stats) {
            return Err(self.state.fail(LineProblem::DuplicateField(format!("value.{name}"))));
        }
        Ok(Values { count, sum, max, min, stats })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decode_line_str;

    const BASE: &str = r#"{"metric_stream_name":"S","account_id":"1","region":"r","namespace":"N","metric_name":"M","dimensions":{"D":"v"},"timestamp":1764140400000,"value":{"count":1,"sum":2,"max":3,"min":0},"unit":"Count"}"#;

    /// `BASE` with `from` replaced by `to`, decoded: `Ok(normalized line)` or `Err(message)`.
    fn check(from: &str, to: &str, expected: Result<&str, &str>) {
        assert!(from.is_empty() || BASE.contains(from), "{from} not in BASE");
        let line = if from.is_empty() { to.to_owned() } else { BASE.replacen(from, to, 1) };
        assert_eq!(decode_line(line.as_bytes()), decode_line_str(&line), "both paths, line: {line}");
        let got = decode_line(line.as_bytes()).map(|d| {
            let mut out = Vec::new();
            d.write_json_line(&mut out);
            String::from_utf8(out).unwrap().trim_end().to_owned()
        });
        let got = got.as_ref().map(String::as_str).map_err(|e| e.to_string());
        assert_eq!(got, expected.map_err(str::to_owned), "line: {line}");
    }

    fn ok(from: &str, to: &str, expected: &str) {
        check(from, to, Ok(expected));
    }

    fn bad(from: &str, to: &str, expected: &str) {
        check(from, to, Err(expected));
    }

    #[test]
    fn normalizes() {
        ok(
            "",
            BASE,
            r#"{"metric_stream_name":"S","account_id":"1","region":"r","namespace":"N","metric_name":"M","dimensions":{"D":"v"},"timestamp":1764140400000,"value":{"count":1.0,"sum":2.0,"max":3.0,"min":0.0},"unit":"Count"}"#,
        );
        // Dimensions and statistics sorted by name; extra statistics kept under their exact names.
        ok(
            r#"{"D":"v"}"#,
            r#"{"Z":"1","A":"2"}"#,
            r#"{"metric_stream_name":"S","account_id":"1","region":"r","namespace":"N","metric_name":"M","dimensions":{"A":"2","Z":"1"},"timestamp":1764140400000,"value":{"count":1.0,"sum":2.0,"max":3.0,"min":0.0},"unit":"Count"}"#,
        );
        ok(
            r#""min":0}"#,
            r#""min":0,"p99.9":1.5,"TM(25%:75%)":2,"IQM":0.25}"#,
            r#"{"metric_stream_name":"S","account_id":"1","region":"r","namespace":"N","metric_name":"M","dimensions":{"D":"v"},"timestamp":1764140400000,"value":{"count":1.0,"sum":2.0,"max":3.0,"min":0.0,"IQM":0.25,"TM(25%:75%)":2.0,"p99.9":1.5},"unit":"Count"}"#,
        );
    }

    #[test]
    fn optional_fields() {
        // No unit means CloudWatch's `None`; no stream name stays absent; no dimensions is `{}`.
        ok(
            r#","unit":"Count""#,
            "",
            r#"{"metric_stream_name":"S","account_id":"1","region":"r","namespace":"N","metric_name":"M","dimensions":{"D":"v"},"timestamp":1764140400000,"value":{"count":1.0,"sum":2.0,"max":3.0,"min":0.0},"unit":"None"}"#,
        );
        ok(
            r#""metric_stream_name":"S","#,
            "",
            r#"{"account_id":"1","region":"r","namespace":"N","metric_name":"M","dimensions":{"D":"v"},"timestamp":1764140400000,"value":{"count":1.0,"sum":2.0,"max":3.0,"min":0.0},"unit":"Count"}"#,
        );
        ok(
            r#""dimensions":{"D":"v"},"#,
            r#""future_field":[1,{"x":2}],"#,
            r#"{"metric_stream_name":"S","account_id":"1","region":"r","namespace":"N","metric_name":"M","dimensions":{},"timestamp":1764140400000,"value":{"count":1.0,"sum":2.0,"max":3.0,"min":0.0},"unit":"Count"}"#,
        );
        ok(
            r#""timestamp":1764140400000"#,
            r#""timestamp":1764140400000.0"#,
            &BASE.replace(r#""count":1,"sum":2,"max":3,"min":0"#, r#""count":1.0,"sum":2.0,"max":3.0,"min":0.0"#),
        );
    }

    /// Numbers read back to exactly the float their text denotes (serde_json's default parser
    /// is off by one ulp on some inputs; the lake must hold what CloudWatch sent).
    #[test]
    fn numbers_are_read_exactly() {
        for text in [
            "463.04499999999996",
            "699933.8159999999",
            "0.00133333333333333",
            "2.2250738585072014e-308",
            "1e-300",
            "17.8764",
            "9007199254740993",
        ] {
            let line = BASE.replace(r#""sum":2"#, &format!(r#""sum":{text}"#));
            let datum = decode_line(line.as_bytes()).unwrap();
            assert_eq!(datum.sum.to_bits(), text.parse::<f64>().unwrap().to_bits(), "{text}");
            assert_eq!(decode_line_str(&line).unwrap().sum.to_bits(), datum.sum.to_bits(), "{text}");
        }
    }

    #[test]
    fn escaped_strings_are_decoded() {
        let line = BASE.replace(r#""D":"v""#, r#""D\u0041":"a\"b\\c""#);
        let datum = decode_line(line.as_bytes()).unwrap();
        assert_eq!(datum.dimensions, vec![(Cow::Borrowed("DA"), Cow::Borrowed("a\"b\\c"))]);
    }

    #[test]
    fn missing_fields() {
        bad(r#""account_id":"1","#, "", "missing field `account_id`");
        bad(r#""region":"r","#, "", "missing field `region`");
        bad(r#""namespace":"N","#, "", "missing field `namespace`");
        bad(r#""metric_name":"M","#, "", "missing field `metric_name`");
        bad(r#""timestamp":1764140400000,"#, "", "missing field `timestamp`");
        bad(r#","value":{"count":1,"sum":2,"max":3,"min":0}"#, "", "missing field `value`");
        bad(r#""count":1,"#, "", "missing field `value.count`");
        bad(r#""sum":2,"#, "", "missing field `value.sum`");
        bad(r#","max":3"#, "", "missing field `value.max`");
        bad(r#","min":0"#, "", "missing field `value.min`");
    }

    #[test]
    fn wrong_types() {
        bad(r#""count":1"#, r#""count":"1""#, r#"field `value.count`: invalid type: string "1", expected a number at column 159"#);
        bad(r#""sum":2"#, r#""sum":null"#, "field `value.sum`: invalid type: null, expected a number at column 168");
        bad(r#""min":0"#, r#""min":0,"p99":[1]"#, "field `value.p99`: invalid type: sequence, expected a number at column 189");
        bad(r#""account_id":"1""#, r#""account_id":1"#, "field `account_id`: invalid type: integer `1`, expected a string at column 40");
        bad(r#""D":"v""#, r#""D":7"#, "field `dimensions.D`: invalid type: integer `7`, expected a string at column 109");
        bad(
            r#"{"D":"v"}"#,
            r#"["D","v"]"#,
            "field `dimensions`: invalid type: sequence, expected an object of dimension names to string values at column 103",
        );
        bad(
            r#"{"count":1,"sum":2,"max":3,"min":0}"#,
            "3",
            "field `value`: invalid type: integer `3`, expected an object of statistic names to numbers at column 148",
        );
        bad(r#""unit":"Count""#, r#""unit":true"#, "field `unit`: invalid type: boolean `true`, expected a string at column 194");
    }

    #[test]
    fn bad_numbers_and_timestamps() {
        bad(r#""sum":2"#, r#""sum":1e999"#, "field `value.sum`: invalid JSON: number out of range at column 169");
        bad(r#""count":1"#, r#""count":-1"#, "field `value.count`: a sample count cannot be negative, found -1");
        bad(
            "1764140400000",
            "1764140400000.5",
            "field `timestamp`: invalid value: floating point `1764140400000.5`, expected integer epoch milliseconds at column 140",
        );
        bad(
            "1764140400000",
            "\"1764140400000\"",
            "field `timestamp`: invalid type: string \"1764140400000\", expected integer epoch milliseconds at column 140",
        );
        bad(
            "1764140400000",
            "-5",
            "field `timestamp`: -5 is not epoch milliseconds of a time from 2000 to 2099 (seconds or microseconds?) at column 127",
        );
        // Epoch seconds (the data would land in January 1970) and microseconds (in 57,000 AD).
        bad(
            "1764140400000",
            "1764140400",
            "field `timestamp`: 1764140400 is not epoch milliseconds of a time from 2000 to 2099 (seconds or microseconds?) at column 135",
        );
        bad(
            "1764140400000",
            "1764140400000000",
            "field `timestamp`: 1764140400000000 is not epoch milliseconds of a time from 2000 to 2099 (seconds or microseconds?) at column 141",
        );
        bad(
            "1764140400000",
            "4102444800000",
            "field `timestamp`: 4102444800000 is not epoch milliseconds of a time from 2000 to 2099 (seconds or microseconds?) at column 138",
        );
        bad(r#""sum":2"#, r#""sum":NaN"#, "field `value.sum`: invalid JSON: expected value at column 165");
    }

    #[test]
    fn empty_and_duplicate_fields() {
        bad(r#""namespace":"N""#, r#""namespace":"""#, "field `namespace`: must not be empty");
        bad(r#""unit":"Count""#, r#""unit":"""#, "field `unit`: must not be empty");
        bad(r#""region":"r","#, r#""region":"r","region":"s","#, "field `region` appears more than once");
        bad(r#""D":"v""#, r#""D":"v","D":"w""#, "field `dimensions.D` appears more than once");
        bad(r#""count":1,"#, r#""count":1,"count":2,"#, "field `value.count` appears more than once");
        bad(r#""min":0"#, r#""min":0,"p99":1,"p99":2"#, "field `value.p99` appears more than once");
    }

    #[test]
    fn not_a_datum() {
        bad(
            "",
            r#"{"CHANGE":-0.09,"PRICE":4.96,"TICKER_SYMBOL":"KIN","SECTOR":"ENERGY"}"#,
            "not a CloudWatch metric-stream datum (it has none of the datum's fields)",
        );
        bad("", "{}", "not a CloudWatch metric-stream datum (it has none of the datum's fields)");
        bad("", "[1,2]", "expected a JSON object, found sequence");
        bad("", "\"text\"", "expected a JSON object, found string \"text\"");
        bad("", "42", "expected a JSON object, found integer `42`");
        bad("", "{\"account_id\":", "field `account_id`: invalid JSON: EOF while parsing a value at column 14");
        bad("", "not json", "invalid JSON: expected ident at column 2");
        bad("", &format!("{BASE} {{}}"), "invalid JSON: trailing characters at column 200");
        bad("", &format!("{BASE},"), "invalid JSON: trailing characters at column 199");
        assert!(matches!(decode_line(b"{\"namespace\":\"\xff\"}"), Err(LineProblem::InvalidField { .. })));
        assert!(matches!(decode_line(b"\xff\xfe"), Err(LineProblem::Json(_))));
    }
}
