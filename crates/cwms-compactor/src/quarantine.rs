//! Lines of raw objects that are not datums (and messages of raw OpenTelemetry objects that do
//! not decode): kept out of the lake, and kept.
//!
//! Raw objects our transform wrote are clean, but a stream without the transform (Quick S3
//! setup), a replayed backfill or a hand-made file can hold a bad line among good ones. The good
//! lines go into the lake; each bad line goes, with its line number and reason, into
//! `_cwms/rejected/<raw key>.ndjson` in the lake store, one JSON document per line in the shape
//! of Firehose's own processing-failed documents (`rawData` is the line's bytes, base64), so
//! `cwms redrive --errors <lake>/_cwms/rejected` can send the lines back into a delivery stream
//! once whatever made them bad is fixed. A rejected line is as recoverable as a raw object: its
//! bytes are kept exactly, and the raw object itself is never touched.
//!
//! The document of a raw object is written whole every time the object is read, with the same
//! bytes for the same object, so re-reading an object (a rerun, a rebuild) changes nothing.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use bytes::Bytes;
use cwms_store::{ObjectStore, PutMode};

use crate::Result;
use crate::report::ObjectProblem;

/// Where rejected lines are kept, under the lake root.
pub const REJECTED_PREFIX: &str = "_cwms/rejected/";

/// The `errorCode` of a rejected line's document.
pub const ERROR_CODE: &str = "cwms.RejectedLine";

/// More bad bytes than this in one object, and it is not metric-stream data with a few bad
/// lines: the object fails as a whole (reported, left in place) instead of being copied line
/// by line into the lake's rejected folder.
pub const MAX_REJECTED_BYTES: usize = 16 << 20;

/// One bad line, or one bad message of an OpenTelemetry object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RejectedLine {
    /// 1-based, in the decompressed object: the line's number, or the message's.
    pub line: usize,
    pub kind: RejectedKind,
    /// Why; a message's reason names the message, its byte offset and the field.
    pub reason: String,
    /// The line exactly as it was (without its `\n`), or the message with its length prefix (so
    /// that, redriven, it is an OpenTelemetry record of one message).
    pub bytes: Vec<u8>,
}

/// What was rejected: a line of a JSON object or a message of an OpenTelemetry one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RejectedKind {
    Line,
    Message,
}

impl RejectedLine {
    /// Where and why: `line 7: invalid JSON ...`, `message 3 at byte 1200, resource_metrics[0]...: ...`.
    pub fn describe(&self) -> String {
        match self.kind {
            RejectedKind::Line => format!("line {}: {}", self.line, self.reason),
            RejectedKind::Message => self.reason.clone(),
        }
    }
}

/// The bad lines of one raw object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejected {
    pub key: String,
    /// Where the raw object is, for the documents' messages.
    pub location: String,
    /// The raw object's modification time: the documents' `arrivalTimestamp`, so that the
    /// same object always gives the same document.
    pub last_modified_ms: i64,
    pub lines: Vec<RejectedLine>,
}

impl Rejected {
    /// The key of this object's document in the lake.
    pub fn document_key(&self) -> String {
        format!("{REJECTED_PREFIX}{}.ndjson", self.key)
    }

    /// The document: one Firehose-style error document per bad line.
    pub fn document(&self) -> Vec<u8> {
        let mut out = Vec::new();
        for line in &self.lines {
            let doc = serde_json::json!({
                "attemptsMade": 1,
                "arrivalTimestamp": self.last_modified_ms,
                "errorCode": ERROR_CODE,
                "errorMessage": format!("{} {}", self.location, line.describe()),
                "attemptEndingTimestamp": self.last_modified_ms,
                "rawData": BASE64.encode(&line.bytes),
            });
            serde_json::to_writer(&mut out, &doc).expect("writing JSON into a Vec cannot fail");
            out.push(b'\n');
        }
        out
    }
}

/// Writes the documents of `rejected` into the lake; returns where each went.
pub async fn write_rejected(lake: &dyn ObjectStore, rejected: &[Rejected]) -> Result<Vec<ObjectProblem>> {
    let mut written = Vec::new();
    for object in rejected {
        let key = object.document_key();
        lake.put(&key, Bytes::from(object.document()), PutMode::Overwrite).await?;
        let reason = match object.lines.as_slice() {
            [only] => only.describe(),
            [first, ..] => {
                let what = match first.kind {
                    RejectedKind::Line => "lines",
                    RejectedKind::Message => "messages",
                };
                format!("{} {what} rejected; first: {}", object.lines.len(), first.describe())
            }
            [] => continue,
        };
        written.push(ObjectProblem { location: lake.describe(&key), reason: format!("{}: {reason}", object.location) });
    }
    Ok(written)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn documents_keep_the_line_and_say_where_it_was() {
        let rejected = Rejected {
            key: "raw/h/a.gz".into(),
            location: "s3://b/raw/h/a.gz".into(),
            last_modified_ms: 1_700_000_000_000,
            lines: vec![RejectedLine { line: 7, kind: RejectedKind::Line, reason: "invalid JSON".into(), bytes: b"{\"x\":".to_vec() }],
        };
        assert_eq!(rejected.document_key(), "_cwms/rejected/raw/h/a.gz.ndjson");
        let text = String::from_utf8(rejected.document()).unwrap();
        let doc: serde_json::Value = serde_json::from_str(text.trim_end()).unwrap();
        assert_eq!(doc["errorMessage"], "s3://b/raw/h/a.gz line 7: invalid JSON");
        assert_eq!(BASE64.decode(doc["rawData"].as_str().unwrap()).unwrap(), b"{\"x\":");
        assert_eq!(doc["errorCode"], ERROR_CODE);
        assert_eq!(rejected.document(), rejected.document(), "the same object gives the same bytes");
    }
}
