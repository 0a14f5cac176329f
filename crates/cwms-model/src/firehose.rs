//! Firehose's data-transformation wire types: the event a transform Lambda receives, and the
//! result names of its response (DESIGN 3).
//!
//! They live here, low in the crate graph, because three layers use them: the transform reads
//! events, the sample generator writes them, and the CLI does both; none of those should compile
//! a Lambda runtime to share a struct.

use std::borrow::Cow;

use serde::{Deserialize, Serialize};

/// A Firehose transformation event.
///
/// The type is cwms's own rather than `aws_lambda_events::firehose::KinesisFirehoseEvent` on
/// purpose: that type decodes every record's base64 while parsing the event, so one record with
/// bad base64 would fail the whole invocation, and Firehose would retry the whole batch. Here
/// `data` stays text and each record is decoded (and failed) on its own.
///
/// Each record's `data` borrows from the event's JSON when it can (base64 needs no escapes), so
/// reading a 6 MB event does not copy 6 MB of base64 into a `String` per record.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct FirehoseEvent<'a> {
    #[serde(default)]
    pub invocation_id: Option<String>,
    #[serde(default)]
    pub delivery_stream_arn: Option<String>,
    #[serde(default)]
    pub region: Option<String>,
    #[serde(borrow)]
    pub records: Vec<FirehoseRecord<'a>>,
}

impl<'a> FirehoseEvent<'a> {
    /// Reads an event from its JSON bytes, borrowing each record's base64 from them.
    ///
    /// An event that is UTF-8 as a whole (any real one) is checked once, with SIMD, and parsed as
    /// text, so serde_json does not check each record's base64 again; anything else is parsed
    /// as bytes, whose errors say where the problem is.
    pub fn from_json(bytes: &'a [u8]) -> serde_json::Result<Self> {
        match simdutf8::basic::from_utf8(bytes) {
            Ok(text) => serde_json::from_str(text),
            Err(_) => serde_json::from_slice(bytes),
        }
    }
}

/// One record of a Firehose event.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct FirehoseRecord<'a> {
    pub record_id: String,
    /// Milliseconds since the epoch when Firehose received the record.
    #[serde(default)]
    pub approximate_arrival_timestamp: Option<f64>,
    /// The record's bytes, base64-encoded.
    #[serde(default, borrow, deserialize_with = "borrowed_text")]
    pub data: Option<Cow<'a, str>>,
}

/// The result of one record, as Firehose spells it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RecordResult {
    Ok,
    Dropped,
    ProcessingFailed,
}

impl RecordResult {
    pub fn as_str(self) -> &'static str {
        match self {
            RecordResult::Ok => "Ok",
            RecordResult::Dropped => "Dropped",
            RecordResult::ProcessingFailed => "ProcessingFailed",
        }
    }

    /// The result named `name` exactly (Firehose's spelling is case-sensitive).
    pub fn parse(name: &str) -> Option<RecordResult> {
        match name {
            "Ok" => Some(RecordResult::Ok),
            "Dropped" => Some(RecordResult::Dropped),
            "ProcessingFailed" => Some(RecordResult::ProcessingFailed),
            _ => None,
        }
    }
}

/// `Option<Cow<str>>` that borrows from the input when the string has no escapes (serde's
/// derived `Option<Cow<str>>` always copies).
fn borrowed_text<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<Option<Cow<'de, str>>, D::Error> {
    struct Text;
    impl<'de> serde::de::Visitor<'de> for Text {
        type Value = Option<Cow<'de, str>>;
        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("a string")
        }
        fn visit_borrowed_str<E: serde::de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
            Ok(Some(Cow::Borrowed(v)))
        }
        fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Self::Value, E> {
            Ok(Some(Cow::Owned(v.to_owned())))
        }
        fn visit_string<E: serde::de::Error>(self, v: String) -> Result<Self::Value, E> {
            Ok(Some(Cow::Owned(v)))
        }
        fn visit_none<E: serde::de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_unit<E: serde::de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_some<D: serde::Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
            deserializer.deserialize_str(self)
        }
    }
    deserializer.deserialize_option(Text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn data_borrows_when_it_can_and_null_or_absent_is_none() {
        let event =
            FirehoseEvent::from_json(br#"{"records":[{"recordId":"a","data":"QUJD"},{"recordId":"b","data":"\u0051UJD"}]}"#).unwrap();
        assert!(matches!(event.records[0].data, Some(Cow::Borrowed("QUJD"))));
        assert!(matches!(&event.records[1].data, Some(Cow::Owned(s)) if s == "QUJD"));
        let none = FirehoseEvent::from_json(br#"{"records":[{"recordId":"a","data":null},{"recordId":"b"}]}"#).unwrap();
        assert!(none.records.iter().all(|r| r.data.is_none()));
    }

    #[test]
    fn results_spell_as_firehose_spells_them() {
        for result in [RecordResult::Ok, RecordResult::Dropped, RecordResult::ProcessingFailed] {
            assert_eq!(RecordResult::parse(result.as_str()), Some(result));
        }
        assert_eq!(RecordResult::parse("ok"), None);
    }
}
