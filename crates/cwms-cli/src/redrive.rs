//! `cwms redrive`: records the transform failed, put back into the delivery stream.
//!
//! When the transform answers `ProcessingFailed`, Firehose writes the record's ORIGINAL bytes
//! (base64, in `rawData`) into an error document under the error prefix, so nothing is lost
//! (DESIGN 3, 6). Once the cause is fixed (a transform bug, a producer sending bad data), this
//! command sends each document's original record back, one Firehose record per document: they
//! are records already, so they are not re-packed, and the transform sees exactly what it saw.
//!
//! Each error object is read and decoded whole before any of its records is sent, so an object
//! that cannot be read sends nothing; it is reported, the others are sent, and the run fails.
//! Error objects are never changed or deleted: after a successful redrive, move or expire them
//! (a later redrive of the same prefix would send them again, which the lake's merge absorbs
//! but which costs a second pass through the pipeline).

use crate::output::{err, out, plural};
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context, bail};
use aws_sdk_firehose::primitives::Blob;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use cwms_store::ObjectStore;
use futures::StreamExt;

use crate::firehose_put::{self, Batcher, Delivery, MAX_RECORD_BYTES, Sender};
use crate::local_firehose::read_error_documents;

#[derive(Debug, clap::Args)]
#[command(after_long_help = EXAMPLES)]
pub struct Args {
    /// Where Firehose wrote its processing-failed error objects: a folder or
    /// `s3://bucket/prefix`. Every object below it is read; gzip or plain is told by the bytes.
    /// The objects are never changed or deleted.
    #[arg(long, value_name = "DIR|s3://BUCKET/PREFIX")]
    pub errors: String,
    /// The Firehose delivery stream (Direct PUT) to put the records back into, in the region of
    /// the standard AWS configuration (AWS_REGION, a profile); AWS_ENDPOINT_URL selects another
    /// endpoint.
    #[arg(long, value_name = "NAME", value_parser = firehose_put::parse_stream_name)]
    pub stream: String,
    /// Error objects read and sent at once.
    #[arg(long, value_name = "N", default_value_t = 4, value_parser = clap::value_parser!(u16).range(1..=64))]
    pub concurrency: u16,
    /// Attempts per record before it counts as not delivered; entries Firehose refuses are sent
    /// again after an exponential, jittered wait (throttled calls are also retried by the SDK).
    #[arg(long, value_name = "N", default_value_t = firehose_put::DEFAULT_MAX_ATTEMPTS,
          value_parser = clap::value_parser!(u32).range(1..=i64::from(firehose_put::MAX_ATTEMPTS_LIMIT)))]
    pub max_attempts: u32,
    /// Read and decode every error object and print what would be sent, without sending.
    #[arg(long)]
    pub dry_run: bool,
}

const EXAMPLES: &str = "\
Examples:
  cwms redrive --errors s3://lake-bucket/errors/processing-failed/ --stream metrics-to-lake --dry-run
  cwms redrive --errors s3://lake-bucket/errors/processing-failed/dt=2026-11-26/ --stream metrics-to-lake
  cwms redrive --errors ./cwms-demo/errors --stream metrics-to-lake";

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let runtime = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    runtime.block_on(redrive(args))
}

/// What became of one error object.
#[derive(Debug)]
struct ObjectOutcome {
    /// Where the object is, as the store names it (`s3://bucket/key` or a path).
    location: String,
    documents: u64,
    /// Bytes of the records decoded from the documents.
    bytes: u64,
    delivery: Delivery,
    /// Why nothing of the object was sent, when it could not be read.
    problem: Option<String>,
}

async fn redrive(args: Args) -> anyhow::Result<ExitCode> {
    if !args.errors.contains("://") {
        // The store would create a missing folder; for a source, a missing folder is a typo.
        // (URLs are left to the store, which names the schemes it supports.)
        let metadata = std::fs::metadata(&args.errors).with_context(|| format!("cannot read --errors {}", args.errors))?;
        if !metadata.is_dir() {
            bail!("--errors {} is not a folder", args.errors);
        }
    }
    let store = cwms_store::open(&args.errors).await.with_context(|| format!("opening --errors {}", args.errors))?;
    let objects = store.list("").await.with_context(|| format!("listing the error objects below {}", args.errors))?;
    if objects.is_empty() {
        out!("no error objects below {}: nothing to redrive", args.errors)?;
        return Ok(ExitCode::SUCCESS);
    }
    let sender =
        if args.dry_run { None } else { Some(Sender::new(firehose_put::client_from_env().await?, &args.stream, args.max_attempts)) };

    let object_count = objects.len() as u64;
    let mut total = Delivery::default();
    let (mut documents, mut bytes, mut unreadable) = (0u64, 0u64, 0u64);
    // `buffered` keeps the listing's order, so the report reads in key order while several
    // objects are in flight.
    let mut outcomes = futures::stream::iter(objects)
        .map(|object| redrive_object(store.clone(), object.key, sender.clone()))
        .buffered(usize::from(args.concurrency));
    while let Some(outcome) = outcomes.next().await {
        let ObjectOutcome { location, documents: docs, bytes: object_bytes, delivery, problem } = outcome;
        if let Some(problem) = problem {
            err!("{location}: not sent: {problem}");
            unreadable += 1;
            continue;
        }
        documents += docs;
        bytes += object_bytes;
        if args.dry_run {
            out!(
                "{location}: {}, {} ({object_bytes} bytes) would be sent",
                plural(docs, "document", "documents"),
                plural(docs, "record", "records")
            )?;
        } else if delivery.undelivered == 0 {
            out!("{location}: {docs} documents, {} records sent", delivery.records)?;
        } else {
            err!(
                "{location}: {docs} documents, {} records sent, {} not delivered ({})",
                delivery.records,
                delivery.undelivered,
                delivery.last_failure.as_deref().unwrap_or("unknown")
            );
        }
        total.add(delivery);
    }

    out!("read {documents} documents from {} of {object_count} error objects", object_count - unreadable)?;
    if args.dry_run {
        out!(
            "dry run: would send {} ({bytes} bytes) to Firehose stream {}; nothing was sent",
            plural(documents, "record", "records"),
            args.stream
        )?;
    } else {
        out!(
            "sent {} records ({} bytes) to Firehose stream {} in {} PutRecordBatch calls; {} records resent in {} retry calls; the error objects were left in place",
            total.records,
            total.bytes,
            args.stream,
            total.calls,
            total.retried_records,
            total.retry_calls
        )?;
    }
    let mut failures = Vec::new();
    if total.undelivered > 0 {
        failures.push(format!(
            "{} records ({} bytes) were not delivered to Firehose stream {} (last error: {})",
            total.undelivered,
            total.undelivered_bytes,
            args.stream,
            total.last_failure.as_deref().unwrap_or("unknown")
        ));
    }
    if unreadable > 0 {
        failures.push(format!("{unreadable} error objects could not be read and sent nothing (named above)"));
    }
    if !failures.is_empty() {
        bail!("{}", failures.join("; "));
    }
    Ok(ExitCode::SUCCESS)
}

/// Reads one error object and sends its records (or, without a sender, only decodes them).
async fn redrive_object(store: Arc<dyn ObjectStore>, key: String, sender: Option<Sender>) -> ObjectOutcome {
    let mut outcome =
        ObjectOutcome { location: store.describe(&key), documents: 0, bytes: 0, delivery: Delivery::default(), problem: None };
    if let Some(reason) = sender.as_ref().and_then(Sender::stopped) {
        outcome.problem = Some(format!("not read: {reason}"));
        return outcome;
    }
    let records = match store.get(&key).await {
        Ok(Some(object)) => tokio::task::spawn_blocking(move || decode_records(&object.bytes))
            .await
            .unwrap_or_else(|e| Err(format!("decoding stopped: {e}"))),
        Ok(None) => Err("the object is gone (deleted since it was listed)".to_owned()),
        Err(error) => Err(format!("cannot read: {error}")),
    };
    let records = match records {
        Ok(records) => records,
        Err(reason) => {
            outcome.problem = Some(reason);
            return outcome;
        }
    };
    outcome.documents = records.len() as u64;
    outcome.bytes = records.iter().map(|r| r.as_ref().len() as u64).sum();
    let Some(sender) = sender else { return outcome };
    let mut batcher = Batcher::default();
    for record in records {
        if let Some(batch) = batcher.push(record) {
            outcome.delivery.add(sender.send(batch).await);
        }
    }
    if let Some(batch) = batcher.finish() {
        outcome.delivery.add(sender.send(batch).await);
    }
    outcome
}

/// The original record of every document in an error object, in order.
fn decode_records(bytes: &[u8]) -> Result<Vec<Blob>, String> {
    let documents = read_error_documents(bytes)?;
    documents
        .iter()
        .enumerate()
        .map(|(index, document)| {
            let record =
                BASE64.decode(&document.raw_data).map_err(|e| format!("document {}: `rawData` is not valid base64: {e}", index + 1))?;
            if record.len() > MAX_RECORD_BYTES {
                return Err(format!(
                    "document {}: its record is {} bytes, more than a Firehose record can hold ({MAX_RECORD_BYTES} bytes)",
                    index + 1,
                    record.len()
                ));
            }
            Ok(Blob::new(record))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;

    /// One error document line for a record, as Firehose writes it.
    fn document(record: &[u8]) -> String {
        serde_json::json!({
            "attemptsMade": 1,
            "arrivalTimestamp": 1764140400000_i64,
            "errorCode": "Lambda.ProcessingFailedStatus",
            "errorMessage": "ProcessingFailed status set for record",
            "attemptEndingTimestamp": 1764140401000_i64,
            "rawData": BASE64.encode(record),
            "lambdaArn": "arn:aws:lambda:us-east-1:123456789012:function:cwms-transform:$LATEST"
        })
        .to_string()
    }

    fn check(object: &[u8], expected: Result<Vec<&[u8]>, &str>) {
        let actual = decode_records(object).map(|records| records.into_iter().map(Blob::into_inner).collect::<Vec<_>>());
        let expected = expected.map(|records| records.into_iter().map(<[u8]>::to_vec).collect::<Vec<_>>()).map_err(str::to_owned);
        assert_eq!(actual, expected);
    }

    #[test]
    fn every_document_gives_back_its_original_record() {
        let gzip_record: &[u8] = &[0x1f, 0x8b, 0x08, 0x00, 0xff];
        let plain = format!("{}\n\n{}\n{}", document(b"not json"), document(gzip_record), document(b""));
        check(plain.as_bytes(), Ok(vec![b"not json", gzip_record, b""]));
        let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        encoder.write_all(plain.as_bytes()).unwrap();
        check(&encoder.finish().unwrap(), Ok(vec![b"not json", gzip_record, b""]));
        check(b"", Ok(vec![]));
    }

    #[test]
    fn unreadable_objects_say_why() {
        check(b"{}", Err("line 1: not a Firehose error document: missing field `attemptsMade` at line 1 column 2"));
        check(&[0x1f, 0x8b, 0x08], Err("invalid gzip data: unexpected end of file"));
        let oversized = format!("{}\n{}\n", document(b"ok"), document(&vec![b'x'; MAX_RECORD_BYTES + 1]));
        check(oversized.as_bytes(), Err("document 2: its record is 1024001 bytes, more than a Firehose record can hold (1024000 bytes)"));
        check(document(&vec![b'x'; MAX_RECORD_BYTES]).as_bytes(), Ok(vec![&vec![b'x'; MAX_RECORD_BYTES]]));
    }
}
