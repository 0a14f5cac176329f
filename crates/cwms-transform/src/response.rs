//! The response Firehose expects, as a type and as JSON written by hand, and the records' base64.
//!
//! # What each entry carries (the contract, from the Firehose documentation)
//!
//! - "Required parameters for data transformation"
//!   (<https://docs.aws.amazon.com/firehose/latest/dev/data-transformation-status-model.html>):
//!   every transformed record must contain `recordId` (the id Firehose sent), `result` (`Ok`,
//!   `Dropped` or `ProcessingFailed`) and `data` (the transformed payload, base64), "or Amazon
//!   Data Firehose rejects them and treats that as a data transformation failure". So `data` is
//!   present on every entry, and may be empty (`""`, the base64 of nothing).
//! - "Handle failure in data transformation"
//!   (<https://docs.aws.amazon.com/firehose/latest/dev/data-transformation-failure-handling.html>):
//!   a `ProcessingFailed` record is "treated as unsuccessfully processed" and delivered to the
//!   `processing-failed` error prefix as a document whose `rawData` is "the base64-encoded record
//!   data": Firehose keeps the record it sent, so the response need not (and does not) return it.
//!   A `Dropped` record is "considered successfully processed" and delivered nowhere.
//! - `metadata.partitionKeys` is read only for dynamic partitioning ("Understand partitioning
//!   keys", <https://docs.aws.amazon.com/firehose/latest/dev/dynamic-partitioning-partitioning-keys.html>),
//!   and only for records that are delivered: a `Dropped` record is not delivered, and a
//!   `ProcessingFailed` one goes to the error prefix, which has no partition keys. The
//!   documentation does not say so in one sentence (unconfirmed), so `Ok` entries, the only ones
//!   that reach the data prefix, always carry them, and no other entry does.
//!
//! So a non-`Ok` entry is `{"recordId":"…","result":"Dropped","data":""}` (or `ProcessingFailed`):
//! nothing more, as small as the contract allows. Why every response then fits is proved at
//! [`crate::MAX_RESPONSE_BYTES`].
//!
//! # The JSON
//!
//! The response has a fixed shape and its bulk is base64, which never needs escaping, so writing
//! it directly into one buffer saves building a `String` of base64 per record and having
//! serde_json scan every byte of it for characters to escape. What [`write_record`] writes is
//! exactly what serde_json makes of [`FirehoseResponse`] (fields in the same order, the same
//! escaping of record ids); `tests.rs` checks that, and that it reads back as the same response.

use base64::Engine as _;
use cwms_model::firehose::RecordResult;
use cwms_model::utc_hour;
use serde::{Deserialize, Serialize};

/// What comes before the first record.
pub(crate) const START: &[u8] = b"{\"records\":[";
/// What comes after the last record.
pub(crate) const END: &[u8] = b"]}";

/// A Firehose data-transformation response.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct FirehoseResponse {
    pub records: Vec<ResponseRecord>,
}

/// One record of a response.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ResponseRecord {
    pub record_id: String,
    #[serde(with = "result_name")]
    pub result: RecordResult,
    /// The transformed bytes (base64 on the wire); empty unless `Ok`.
    #[serde(with = "base64_text")]
    pub data: Vec<u8>,
    /// Present exactly on `Ok` records.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<Metadata>,
}

/// A response record's metadata: its partition keys, for dynamic partitioning.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Metadata {
    pub partition_keys: PartitionKeys,
}

/// The partition keys cwms returns: the UTC date and hour of the record's earliest datum.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PartitionKeys {
    pub dt: String,
    pub hour: String,
}

impl PartitionKeys {
    /// The keys of the hour `hour_ms` falls in.
    pub fn of(hour_ms: i64) -> PartitionKeys {
        let hour = utc_hour(hour_ms);
        PartitionKeys { dt: hour.date(), hour: hour.hour_text() }
    }
}

impl ResponseRecord {
    pub(crate) fn new(record_id: &str, result: RecordResult, data: Vec<u8>, hour_ms: i64) -> ResponseRecord {
        let metadata = (result == RecordResult::Ok).then(|| Metadata { partition_keys: PartitionKeys::of(hour_ms) });
        ResponseRecord { record_id: record_id.to_owned(), result, data, metadata }
    }
}

mod result_name {
    use cwms_model::firehose::RecordResult;

    pub fn serialize<S: serde::Serializer>(result: &RecordResult, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(result.as_str())
    }

    pub fn deserialize<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<RecordResult, D::Error> {
        let name: std::borrow::Cow<'de, str> = serde::Deserialize::deserialize(deserializer)?;
        RecordResult::parse(&name).ok_or_else(|| serde::de::Error::custom(format!("unknown result {name:?}")))
    }
}

mod base64_text {
    use base64::Engine as _;
    use base64::engine::general_purpose::STANDARD;

    pub fn serialize<S: serde::Serializer>(data: &[u8], serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&STANDARD.encode(data))
    }

    pub fn deserialize<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<Vec<u8>, D::Error> {
        let text: std::borrow::Cow<'de, str> = serde::Deserialize::deserialize(deserializer)?;
        STANDARD.decode(text.as_bytes()).map_err(serde::de::Error::custom)
    }
}

/// Appends one response record: `{"recordId":..,"result":..,"data":..}`, with
/// `,"metadata":{"partitionKeys":{"dt":..,"hour":..}}` before the closing brace when `Ok`.
pub(crate) fn write_record(out: &mut Vec<u8>, record_id: &str, result: RecordResult, data: &[u8], hour_ms: i64) {
    // Grow geometrically here: the base64 encoder reserves exactly, which would copy the whole
    // buffer for every record once the first estimate is exceeded.
    out.reserve(data.len().div_ceil(3) * 4 + record_id.len() + 128);
    out.extend_from_slice(b"{\"recordId\":");
    write_str(out, record_id);
    out.extend_from_slice(b",\"result\":\"");
    out.extend_from_slice(result.as_str().as_bytes());
    out.extend_from_slice(b"\",\"data\":\"");
    base64_simd::STANDARD.encode_append(data, out);
    if result == RecordResult::Ok {
        out.extend_from_slice(b"\",\"metadata\":{\"partitionKeys\":{\"dt\":");
        let hour = utc_hour(hour_ms);
        write_str(out, &hour.date());
        out.extend_from_slice(b",\"hour\":");
        write_str(out, &hour.hour_text());
        out.extend_from_slice(b"}}}");
    } else {
        out.extend_from_slice(b"\"}");
    }
}

/// The serialized size of the record's entry with `result` and no data.
pub(crate) fn entry_len(scratch: &mut Vec<u8>, record_id: &str, result: RecordResult, hour_ms: i64) -> usize {
    scratch.clear();
    write_record(scratch, record_id, result, b"", hour_ms);
    scratch.len()
}

fn write_str(out: &mut Vec<u8>, s: &str) {
    // serde_json's escaping, so that the bytes are exactly what serializing the response type gives.
    serde_json::to_writer(&mut *out, s).expect("writing JSON into a Vec cannot fail");
}

/// Decodes standard, padded base64 into `out` (cleared first).
///
/// The SIMD decoder does the work; it accepts exactly what the `base64` crate's `STANDARD` engine
/// accepts (canonical padding, no stray trailing bits; a property test checks this), and when it
/// refuses the input the `base64` crate decodes it instead, so that the reason given is that
/// crate's precise one (which symbol, at which offset).
pub(crate) fn decode_base64(text: &str, out: &mut Vec<u8>) -> Result<(), String> {
    out.clear();
    if base64_simd::STANDARD.decode_append(text, out).is_ok() {
        return Ok(());
    }
    out.clear();
    base64::engine::general_purpose::STANDARD.decode_vec(text, out).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::engine::general_purpose::STANDARD as BASE64;
    use proptest::prelude::*;

    /// Text that is mostly base64, with padding and the odd stray character, in any length.
    fn base64ish() -> impl Strategy<Value = String> {
        prop::collection::vec(
            prop_oneof![
                8 => prop::sample::select(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/".to_vec()),
                2 => Just(b'='),
                1 => prop::sample::select(b"-_ \n*.\\".to_vec()),
            ],
            0..40,
        )
        .prop_map(|bytes| String::from_utf8(bytes).unwrap())
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(5000))]

        /// The SIMD decoder accepts exactly what the `base64` crate accepts, with the same bytes.
        #[test]
        fn decodes_exactly_like_the_base64_crate(text in base64ish()) {
            let mut out = vec![7u8; 3];
            let got = decode_base64(&text, &mut out).map(|()| out);
            prop_assert_eq!(got, BASE64.decode(&text).map_err(|e| e.to_string()));
        }

        /// Encoding valid base64 text round-trips through both decoders.
        #[test]
        fn encodes_exactly_like_the_base64_crate(bytes in prop::collection::vec(any::<u8>(), 0..200)) {
            let mut out = b"prefix".to_vec();
            base64_simd::STANDARD.encode_append(&bytes, &mut out);
            let expected = BASE64.encode(&bytes);
            prop_assert_eq!(&out[6..], expected.as_bytes());
        }
    }

    #[test]
    fn non_canonical_base64_is_refused_with_the_base64_crate_reason() {
        for text in ["QQ", "QR==", "QUI", "QUJ=", "QQ==QQ==", "Q===", "=", "QUJD\n", " QUJD"] {
            let mut out = Vec::new();
            assert_eq!(decode_base64(text, &mut out), BASE64.decode(text).map(|_| ()).map_err(|e| e.to_string()), "{text}");
        }
    }

    #[test]
    fn entries_are_as_small_as_the_contract_allows() {
        let check = |result, data: &[u8], expected: &str| {
            let mut out = Vec::new();
            write_record(&mut out, "id-1", result, data, 1_764_140_400_000);
            assert_eq!(String::from_utf8(out).unwrap(), expected);
        };
        check(RecordResult::Dropped, b"", r#"{"recordId":"id-1","result":"Dropped","data":""}"#);
        check(RecordResult::ProcessingFailed, b"", r#"{"recordId":"id-1","result":"ProcessingFailed","data":""}"#);
        check(
            RecordResult::Ok,
            b"x\n",
            r#"{"recordId":"id-1","result":"Ok","data":"eAo=","metadata":{"partitionKeys":{"dt":"2025-11-26","hour":"07"}}}"#,
        );
    }
}
