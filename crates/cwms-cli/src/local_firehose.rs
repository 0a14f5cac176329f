//! What Firehose does with the transform's answers, on a local store: `Ok` records are buffered
//! by arrival time and written as gzip objects under `raw/`, `ProcessingFailed` records as
//! Firehose's error documents under `errors/processing-failed/`, keeping their original bytes.
//!
//! The layout matches the deployment (`infra/template.yaml`): `raw/dt=YYYY-MM-DD/hour=HH/` and
//! `errors/processing-failed/dt=YYYY-MM-DD/hour=HH/`, both by arrival time.

use std::collections::BTreeMap;
use std::io::Write;

#[cfg(any(feature = "aws", test))]
use base64::Engine as _;
#[cfg(any(feature = "aws", test))]
use base64::engine::general_purpose::STANDARD as BASE64;
use cwms_model::utc_hour;
use cwms_transform::{FirehoseEvent, Outcome, RecordResult};
use serde::{Deserialize, Serialize};

/// How long Firehose buffers before writing an object (its default buffering interval).
pub const BUFFER_INTERVAL_MS: i64 = 300_000;

/// Firehose's document for a record the transform failed, one JSON object per line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ErrorDocument {
    pub attempts_made: u32,
    pub arrival_timestamp: i64,
    #[serde(alias = "ErrorCode")]
    pub error_code: String,
    #[serde(alias = "ErrorMessage")]
    pub error_message: String,
    pub attempt_ending_timestamp: i64,
    /// The record's original bytes, base64.
    pub raw_data: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lambda_arn: Option<String>,
}

/// Objects Firehose would write for a set of transformed events.
#[derive(Debug, Default)]
pub struct Delivery {
    /// Key (under the bucket root) and gzip bytes of each raw object.
    pub raw: BTreeMap<String, Vec<u8>>,
    /// Key and gzip bytes of each error object.
    pub errors: BTreeMap<String, Vec<u8>>,
    pub records_ok: u64,
    pub records_dropped: u64,
    pub records_failed: u64,
    pub datums: u64,
}

/// Collects Firehose's output for events and the transform's outcome for each.
#[derive(Debug, Default)]
pub struct Firehose {
    stream: String,
    lambda_arn: String,
    /// Buffered `Ok` output by buffer window start.
    ok: BTreeMap<i64, Vec<u8>>,
    /// Error document lines by buffer window start.
    failed: BTreeMap<i64, Vec<u8>>,
    delivery: Delivery,
}

impl Firehose {
    pub fn new(stream: &str) -> Firehose {
        Firehose {
            stream: stream.to_owned(),
            lambda_arn: format!("arn:aws:lambda:local:000000000000:function:{stream}-transform"),
            ..Firehose::default()
        }
    }

    /// Takes in one event and the transform's outcome for it.
    pub fn deliver(&mut self, event: &FirehoseEvent, outcome: &Outcome) {
        let stats = &outcome.stats;
        self.delivery.records_ok += stats.records_ok;
        self.delivery.records_dropped += stats.records_dropped;
        self.delivery.records_failed += stats.records_failed;
        self.delivery.datums += stats.datums;
        let failures: BTreeMap<&str, &str> = outcome.failures.iter().map(|f| (f.record_id.as_str(), f.reason.as_str())).collect();
        for (input, output) in event.records.iter().zip(&outcome.response.records) {
            let arrival = input.approximate_arrival_timestamp.unwrap_or(0.0) as i64;
            let window = arrival - arrival.rem_euclid(BUFFER_INTERVAL_MS);
            match output.result {
                RecordResult::Ok => self.ok.entry(window).or_default().extend_from_slice(&output.data),
                RecordResult::ProcessingFailed => {
                    let document = ErrorDocument {
                        attempts_made: 1,
                        arrival_timestamp: arrival,
                        error_code: "Lambda.ProcessingFailedStatus".to_owned(),
                        error_message: failures.get(input.record_id.as_str()).map_or_else(
                            || "ProcessingFailed status set for record".to_owned(),
                            |r| format!("ProcessingFailed status set for record: {r}"),
                        ),
                        attempt_ending_timestamp: arrival + 1_000,
                        raw_data: input.data.as_deref().unwrap_or_default().to_owned(),
                        lambda_arn: Some(self.lambda_arn.clone()),
                    };
                    let line = self.failed.entry(window).or_default();
                    serde_json::to_writer(&mut *line, &document).expect("serializing into a Vec cannot fail");
                    line.push(b'\n');
                }
                RecordResult::Dropped => {}
            }
        }
    }

    /// Flushes every buffer into objects named as Firehose names them
    /// (`<stream>-1-YYYY-MM-DD-HH-MM-SS-<id>.gz`, the id derived from the content so reruns
    /// write the same keys).
    pub fn finish(mut self) -> Delivery {
        for (prefix, buffers, into_errors) in
            [("raw", std::mem::take(&mut self.ok), false), ("errors/processing-failed", std::mem::take(&mut self.failed), true)]
        {
            for (window, bytes) in buffers {
                if bytes.is_empty() {
                    continue;
                }
                let hour = utc_hour(window);
                let minute_second = (window.rem_euclid(3_600_000)) / 1000;
                let id = xxhash_rust::xxh3::xxh3_128(&bytes);
                let key = format!(
                    "{prefix}/dt={}/hour={}/{}-1-{}-{}-{:02}-{:02}-{:08x}-{:04x}-{:04x}-{:04x}-{:012x}.gz",
                    hour.date(),
                    hour.hour_text(),
                    self.stream,
                    hour.date(),
                    hour.hour_text(),
                    minute_second / 60,
                    minute_second % 60,
                    (id >> 96) as u32,
                    (id >> 80) as u16,
                    (id >> 64) as u16,
                    (id >> 48) as u16,
                    (id & 0xffff_ffff_ffff) as u64,
                );
                let gz = gzip(&bytes);
                if into_errors {
                    self.delivery.errors.insert(key, gz);
                } else {
                    self.delivery.raw.insert(key, gz);
                }
            }
        }
        self.delivery
    }
}

/// Decodes an error object (gzip or plain): its documents, or why a line is not one.
#[cfg(any(feature = "aws", test))]
pub fn read_error_documents(bytes: &[u8]) -> Result<Vec<ErrorDocument>, String> {
    let plain = cwms_decode::decompress(bytes, cwms_decode::DEFAULT_MAX_DECOMPRESSED_BYTES).map_err(|e| e.to_string())?;
    let mut documents = Vec::new();
    for (index, line) in cwms_decode::lines(&plain) {
        let document: ErrorDocument =
            serde_json::from_slice(line).map_err(|e| format!("line {}: not a Firehose error document: {e}", index + 1))?;
        BASE64.decode(&document.raw_data).map_err(|e| format!("line {}: `rawData` is not valid base64: {e}", index + 1))?;
        documents.push(document);
    }
    Ok(documents)
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::with_capacity(bytes.len() / 6), flate2::Compression::default());
    encoder.write_all(bytes).expect("writing into a Vec cannot fail");
    encoder.finish().expect("writing into a Vec cannot fail")
}

#[cfg(test)]
mod tests {
    use super::*;
    use cwms_transform::{Config, FirehoseRecord};

    const GOOD: &str = r#"{"account_id":"1","region":"r","namespace":"N","metric_name":"M","timestamp":1764140400000,"value":{"count":1,"sum":1,"max":1,"min":1}}"#;

    #[test]
    fn ok_records_become_raw_objects_and_failures_error_documents() {
        let record = |id: &str, data: &[u8], arrival: f64| FirehoseRecord {
            record_id: id.into(),
            approximate_arrival_timestamp: Some(arrival),
            data: Some(BASE64.encode(data).into()),
        };
        let event = FirehoseEvent {
            records: vec![
                record("a", GOOD.as_bytes(), 1764140400500.0),
                record("b", b"junk", 1764140401000.0),
                record("c", GOOD.as_bytes(), 1764140700000.0),
            ],
            ..FirehoseEvent::default()
        };
        let outcome = cwms_transform::transform(&Config::default(), &event);
        let mut firehose = Firehose::new("demo");
        firehose.deliver(&event, &outcome);
        let delivery = firehose.finish();
        let raw: Vec<&String> = delivery.raw.keys().collect();
        assert_eq!(raw.len(), 2, "two buffer windows: {raw:?}");
        assert!(raw[0].starts_with("raw/dt=2025-11-26/hour=07/demo-1-2025-11-26-07-00-00-"), "{}", raw[0]);
        assert!(raw[1].starts_with("raw/dt=2025-11-26/hour=07/demo-1-2025-11-26-07-05-00-"), "{}", raw[1]);
        let (key, bytes) = delivery.errors.iter().next().unwrap();
        assert!(key.starts_with("errors/processing-failed/dt=2025-11-26/hour=07/"), "{key}");
        let documents = read_error_documents(bytes).unwrap();
        assert_eq!(documents.len(), 1);
        assert_eq!(BASE64.decode(&documents[0].raw_data).unwrap(), b"junk", "the original bytes are kept");
        assert!(documents[0].error_message.contains("invalid OpenTelemetry record"), "{}", documents[0].error_message);
        assert_eq!((delivery.records_ok, delivery.records_failed), (2, 1));
    }

    #[test]
    fn bad_error_documents_are_named() {
        assert_eq!(
            read_error_documents(b"{}\n").unwrap_err(),
            "line 1: not a Firehose error document: missing field `attemptsMade` at line 1 column 2"
        );
        let doc = r#"{"attemptsMade":1,"arrivalTimestamp":0,"errorCode":"x","errorMessage":"y","attemptEndingTimestamp":0,"rawData":"%%"}"#;
        assert!(read_error_documents(format!("\n{doc}").as_bytes()).unwrap_err().starts_with("line 2: `rawData` is not valid base64"));
        // AWS spells the code and message fields both ways; both read.
        let upper = doc.replace("errorCode", "ErrorCode").replace("errorMessage", "ErrorMessage").replace("%%", "eA==");
        assert_eq!(read_error_documents(upper.as_bytes()).unwrap()[0].error_code, "x");
    }
}
