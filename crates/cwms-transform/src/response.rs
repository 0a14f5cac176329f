//! The response's JSON, written by hand, and the records' base64.
//!
//! The response has a fixed shape and its bulk is base64, which never needs escaping, so writing
//! it directly into one buffer saves building a `String` of base64 per record and having
//! serde_json scan every byte of it for characters to escape. What is written here is exactly
//! what serde_json makes of `aws_lambda_events`' `KinesisFirehoseResponse` (fields in the same
//! order, the same escaping of record ids); `tests.rs` checks that, and that it reads back into
//! that type as the same response.

use base64::Engine as _;
use cwms_model::utc_hour;

use crate::RecordResult;

/// What comes before the first record.
pub(crate) const START: &[u8] = b"{\"records\":[";
/// What comes after the last record.
pub(crate) const END: &[u8] = b"]}";

/// Appends one response record: `{"recordId":..,"result":..,"data":..,"metadata":{"partitionKeys":{"dt":..,"hour":..}}}`.
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
    out.extend_from_slice(b"\",\"metadata\":{\"partitionKeys\":{\"dt\":");
    let hour = utc_hour(hour_ms);
    write_str(out, &hour.date());
    out.extend_from_slice(b",\"hour\":");
    write_str(out, &hour.hour_text());
    out.extend_from_slice(b"}}}");
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
}
