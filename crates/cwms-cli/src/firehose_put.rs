//! Putting records into a Firehose delivery stream: the one sender `cwms replay` and
//! `cwms redrive` share, so both honour the same limits and the same retry contract.
//!
//! `PutRecordBatch` is not all-or-nothing: a call that succeeds can still refuse some of its
//! entries (`FailedPutCount` > 0), typically with `ServiceUnavailableException` when the stream
//! is over its throughput quota. Resending the whole call would duplicate every entry that did
//! go through, so the sender resends only the entries whose response carries an `ErrorCode`,
//! after an exponential, jittered wait, up to a fixed number of attempts. Whole calls that fail
//! with a throttling or server error are first retried by the SDK itself (its standard retry
//! mode); if they still fail, they count as an attempt here too.
//!
//! Errors that no retry can fix (the stream does not exist, access is denied, the stream is not
//! Direct PUT, its KMS key is unusable) stop the whole run: every later call would fail the same
//! way, and the caller reports the records as not delivered.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use anyhow::bail;
use aws_sdk_firehose::Client;
use aws_sdk_firehose::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_firehose::operation::put_record_batch::PutRecordBatchError;
use aws_sdk_firehose::primitives::Blob;
use aws_sdk_firehose::types::Record;
use backon::{BackoffBuilder, ExponentialBuilder};

/// Firehose's largest record, before base64: 1,000 KiB (the `Data` blob's documented maximum
/// length, 1,024,000 bytes).
pub const MAX_RECORD_BYTES: usize = 1_024_000;
/// Firehose's largest `PutRecordBatch` call, in records.
pub const MAX_CALL_RECORDS: usize = 500;
/// Firehose's largest `PutRecordBatch` call, in bytes of record data (before base64): 4 MiB.
pub const MAX_CALL_BYTES: usize = 4 * 1024 * 1024;
/// Attempts per record when the user does not say: enough to ride out a few seconds of
/// throttling (the waits add up to about 15 to 30 seconds) without hanging on a stream that is
/// persistently over quota.
pub const DEFAULT_MAX_ATTEMPTS: u32 = 8;
/// The most attempts a user may ask for; beyond this the waits reach minutes per record.
pub const MAX_ATTEMPTS_LIMIT: u32 = 20;

/// The first wait before a retry. Firehose's quotas are per second, so waits start well below a
/// second and double.
const FIRST_RETRY_DELAY: Duration = Duration::from_millis(200);
/// The longest single wait (before jitter, which adds up to as much again).
const MAX_RETRY_DELAY: Duration = Duration::from_secs(5);
/// One attempt of one call may take this long: a 4 MiB call over a slow link takes tens of
/// seconds, and without a limit a stalled connection would hang the run forever.
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(120);

/// Error codes that mean "slow down" or "try again" whatever the operation; the SDK retries the
/// same ones (plus any 5xx) before this module sees them.
const RETRYABLE_CODES: &[&str] = &[
    "ServiceUnavailableException",
    "ThrottlingException",
    "Throttling",
    "TooManyRequestsException",
    "RequestLimitExceeded",
    "SlowDown",
    "InternalFailure",
    "InternalError",
    "RequestTimeout",
    "RequestTimeoutException",
];

/// A Firehose client configured the way the AWS CLI is: credentials and region from the
/// standard chains, `AWS_ENDPOINT_URL` (or `AWS_ENDPOINT_URL_FIREHOSE`) for another endpoint,
/// the SDK's standard retry mode (`AWS_MAX_ATTEMPTS`, `AWS_RETRY_MODE` are honoured).
pub async fn client_from_env() -> anyhow::Result<Client> {
    let config = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
    if config.region().is_none() {
        // A delivery stream lives in one region; guessing one would send the data to a stream
        // of the same name elsewhere, or fail with a confusing "not found".
        bail!("no AWS region is configured: set AWS_REGION (or a profile's region) to the delivery stream's region");
    }
    let timeouts = config.timeout_config().map(|t| t.to_builder()).unwrap_or_default().operation_attempt_timeout(ATTEMPT_TIMEOUT).build();
    let firehose = aws_sdk_firehose::config::Builder::from(&config).timeout_config(timeouts).build();
    Ok(Client::from_conf(firehose))
}

/// Checks a delivery stream name as Firehose does (1 to 64 of `a-z A-Z 0-9 _ . -`), so a typo
/// is refused before anything is read or sent.
pub fn parse_stream_name(name: &str) -> Result<String, String> {
    let valid_chars = name.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'));
    if name.is_empty() || name.len() > 64 || !valid_chars {
        return Err("a Firehose delivery stream name has 1 to 64 characters, each a letter, a digit, `_`, `.` or `-`".to_owned());
    }
    Ok(name.to_owned())
}

/// The records of one `PutRecordBatch` call, within Firehose's limits.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Batch {
    pub records: Vec<Blob>,
    /// Sum of the records' sizes.
    pub bytes: usize,
}

/// Groups records into batches of at most [`MAX_CALL_RECORDS`] records and [`MAX_CALL_BYTES`]
/// bytes, in order.
#[derive(Debug, Default)]
pub struct Batcher {
    current: Batch,
}

impl Batcher {
    /// Adds a record of at most [`MAX_RECORD_BYTES`]; returns the batch it closed, if it did not
    /// fit into it.
    pub fn push(&mut self, record: Blob) -> Option<Batch> {
        let size = record.as_ref().len();
        debug_assert!(size <= MAX_RECORD_BYTES, "callers check the record limit first");
        let full = !self.current.records.is_empty()
            && (self.current.records.len() == MAX_CALL_RECORDS || self.current.bytes + size > MAX_CALL_BYTES);
        let closed = full.then(|| std::mem::take(&mut self.current));
        self.current.records.push(record);
        self.current.bytes += size;
        closed
    }

    /// The last, partly filled batch, if any record is left.
    pub fn finish(self) -> Option<Batch> {
        (!self.current.records.is_empty()).then_some(self.current)
    }
}

/// What became of the records handed to [`Sender::send`], added up over any number of batches.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Delivery {
    /// Records Firehose accepted.
    pub records: u64,
    /// Bytes of the records Firehose accepted.
    pub bytes: u64,
    /// Records given up on: refused on every attempt, or never sent because the run stopped.
    pub undelivered: u64,
    /// Bytes of the records given up on.
    pub undelivered_bytes: u64,
    /// `PutRecordBatch` calls made (the SDK's own retries of a call not counted).
    pub calls: u64,
    /// Calls that were retries of failed entries or failed calls.
    pub retry_calls: u64,
    /// Records sent again, summed over retries.
    pub retried_records: u64,
    /// The last reason a record or a call failed, for the report.
    pub last_failure: Option<String>,
}

impl Delivery {
    pub fn add(&mut self, other: Delivery) {
        self.records += other.records;
        self.bytes += other.bytes;
        self.undelivered += other.undelivered;
        self.undelivered_bytes += other.undelivered_bytes;
        self.calls += other.calls;
        self.retry_calls += other.retry_calls;
        self.retried_records += other.retried_records;
        if other.last_failure.is_some() {
            self.last_failure = other.last_failure;
        }
    }

    fn give_up(&mut self, records: &[Blob], reason: String) {
        self.undelivered += records.len() as u64;
        self.undelivered_bytes += records.iter().map(|r| r.as_ref().len() as u64).sum::<u64>();
        self.last_failure = Some(reason);
    }
}

/// Sends batches to one delivery stream. Cheap to clone; clones share the stop signal, so one
/// fatal error stops every clone.
#[derive(Debug, Clone)]
pub struct Sender {
    client: Client,
    stream: Arc<str>,
    backoff: ExponentialBuilder,
    stopped: Arc<OnceLock<String>>,
}

impl Sender {
    /// A sender that tries each record at most `max_attempts` times (at least once).
    pub fn new(client: Client, stream: &str, max_attempts: u32) -> Sender {
        let backoff = ExponentialBuilder::new()
            .with_jitter()
            .with_min_delay(FIRST_RETRY_DELAY)
            .with_max_delay(MAX_RETRY_DELAY)
            .with_max_times(max_attempts.saturating_sub(1) as usize);
        Sender { client, stream: stream.into(), backoff, stopped: Arc::default() }
    }

    /// Why the run stopped, once an error that no retry can fix has happened.
    pub fn stopped(&self) -> Option<&str> {
        self.stopped.get().map(String::as_str)
    }

    /// Puts one batch, resending only the entries Firehose refused, and says what became of it.
    /// Never fails: whatever could not be delivered is counted in [`Delivery::undelivered`].
    pub async fn send(&self, batch: Batch) -> Delivery {
        let mut delivery = Delivery::default();
        if let Some(reason) = self.stopped() {
            delivery.give_up(&batch.records, format!("not sent: {reason}"));
            return delivery;
        }
        let mut pending = batch.records;
        let mut delays = self.backoff.build();
        loop {
            delivery.calls += 1;
            let whole_call_failed = match self.put(&pending).await {
                Ok(output) => {
                    pending = self.keep_refused(pending, &output, &mut delivery);
                    false
                }
                Err(error) => {
                    let reason = format!("PutRecordBatch to {} failed: {}", self.stream, describe(&error));
                    if !is_retryable(&error) {
                        let _ = self.stopped.set(reason.clone());
                        delivery.give_up(&pending, reason);
                        return delivery;
                    }
                    delivery.last_failure = Some(reason);
                    true
                }
            };
            if pending.is_empty() {
                return delivery;
            }
            let Some(delay) = delays.next() else {
                let reason = delivery.last_failure.take().unwrap_or_default();
                if whole_call_failed {
                    // Every attempt of a whole call failed even after the SDK's own retries: the
                    // service is not taking calls, and the remaining batches would only wait out
                    // the same schedule.
                    let _ = self.stopped.set(reason.clone());
                }
                delivery.give_up(&pending, reason);
                return delivery;
            };
            tokio::time::sleep(delay).await;
            delivery.retry_calls += 1;
            delivery.retried_records += pending.len() as u64;
        }
    }

    async fn put(
        &self,
        records: &[Blob],
    ) -> Result<aws_sdk_firehose::operation::put_record_batch::PutRecordBatchOutput, SdkError<PutRecordBatchError>> {
        let records = records
            .iter()
            .map(|data| Record::builder().data(data.clone()).build().expect("the only required field, data, is set"))
            .collect();
        self.client.put_record_batch().delivery_stream_name(&*self.stream).set_records(Some(records)).send().await
    }

    /// Counts the accepted entries of a call and returns the refused ones, in order.
    fn keep_refused(
        &self,
        sent: Vec<Blob>,
        output: &aws_sdk_firehose::operation::put_record_batch::PutRecordBatchOutput,
        delivery: &mut Delivery,
    ) -> Vec<Blob> {
        let responses = output.request_responses();
        if responses.len() != sent.len() {
            // Firehose answers one entry per record, in order; without that it cannot be told
            // which records went through, and resending could duplicate them.
            if output.failed_put_count() == 0 {
                delivery.records += sent.len() as u64;
                delivery.bytes += sent.iter().map(|r| r.as_ref().len() as u64).sum::<u64>();
            } else {
                let reason = format!(
                    "PutRecordBatch to {} answered {} entries for {} records with {} failed; which ones cannot be told",
                    self.stream,
                    responses.len(),
                    sent.len(),
                    output.failed_put_count()
                );
                delivery.give_up(&sent, reason);
            }
            return Vec::new();
        }
        let mut refused = Vec::new();
        for (record, response) in sent.into_iter().zip(responses) {
            match response.error_code() {
                Some(code) => {
                    delivery.last_failure = Some(format!("{code}: {}", response.error_message().unwrap_or("no message")));
                    refused.push(record);
                }
                None => {
                    delivery.records += 1;
                    delivery.bytes += record.as_ref().len() as u64;
                }
            }
        }
        refused
    }
}

/// The service's error code and message (the SDK's display of a service error repeats them
/// and dumps the raw response), or the chain of causes of any other failure (as the SDK's
/// `DisplayErrorContext` gives it, without the debug dump it appends).
fn describe(error: &SdkError<PutRecordBatchError>) -> String {
    match error {
        SdkError::ServiceError(failure) => {
            let status = failure.raw().status().as_u16();
            let error = failure.err();
            format!("{} (HTTP {status}): {}", error.code().unwrap_or("unknown error"), error.message().unwrap_or("no message"))
        }
        other => {
            let mut text = other.to_string();
            let mut cause = std::error::Error::source(other);
            while let Some(error) = cause {
                text.push_str(": ");
                text.push_str(&error.to_string());
                cause = error.source();
            }
            text
        }
    }
}

/// True when trying the same call again later can succeed: throttling, server errors, timeouts
/// and dropped connections. Anything else (a missing stream, denied access, missing
/// credentials, an invalid request) fails every call alike.
fn is_retryable(error: &SdkError<PutRecordBatchError>) -> bool {
    match error {
        SdkError::TimeoutError(_) | SdkError::ResponseError(_) => true,
        SdkError::DispatchFailure(failure) => failure.is_io() || failure.is_timeout(),
        SdkError::ServiceError(failure) => {
            let status = failure.raw().status().as_u16();
            status >= 500 || status == 429 || failure.err().code().is_some_and(|code| RETRYABLE_CODES.contains(&code))
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Feeds records of the given sizes through a batcher and returns the batches' record counts.
    fn check(sizes: &[usize], expected: &[usize]) {
        let mut batcher = Batcher::default();
        let mut batches = Vec::new();
        for (i, &size) in sizes.iter().enumerate() {
            batches.extend(batcher.push(Blob::new(vec![i as u8; size])));
        }
        batches.extend(batcher.finish());
        let counts: Vec<usize> = batches.iter().map(|b| b.records.len()).collect();
        assert_eq!(counts, expected, "{sizes:?}");
        for batch in &batches {
            assert_eq!(batch.bytes, batch.records.iter().map(|r| r.as_ref().len()).sum::<usize>());
            assert!(batch.bytes <= MAX_CALL_BYTES && batch.records.len() <= MAX_CALL_RECORDS);
        }
        let order: Vec<u8> = batches.iter().flat_map(|b| &b.records).map(|r| r.as_ref().first().copied().unwrap_or(0)).collect();
        let expected_order: Vec<u8> = (0..sizes.len()).map(|i| i as u8).collect();
        if sizes.iter().all(|&s| s > 0) && sizes.len() < 256 {
            assert_eq!(order, expected_order, "records keep their order");
        }
    }

    #[test]
    fn batches_respect_the_record_count_limit() {
        check(&[], &[]);
        check(&[10], &[1]);
        check(&[1; 500], &[500]);
        check(&[1; 501], &[500, 1]);
        check(&[0; 1001], &[500, 500, 1]);
    }

    #[test]
    fn batches_respect_the_byte_limit() {
        check(&[MAX_RECORD_BYTES; 4], &[4]);
        check(&[MAX_RECORD_BYTES; 5], &[4, 1]);
        // Exactly 4 MiB fits; one byte more does not.
        let rest = MAX_CALL_BYTES - 4 * MAX_RECORD_BYTES;
        check(&[MAX_RECORD_BYTES, MAX_RECORD_BYTES, MAX_RECORD_BYTES, MAX_RECORD_BYTES, rest], &[5]);
        check(&[MAX_RECORD_BYTES, MAX_RECORD_BYTES, MAX_RECORD_BYTES, MAX_RECORD_BYTES, rest, 1], &[5, 1]);
        check(&[MAX_RECORD_BYTES, MAX_RECORD_BYTES, MAX_RECORD_BYTES, MAX_RECORD_BYTES, rest + 1], &[4, 1]);
    }

    #[test]
    fn stream_names_are_checked_as_firehose_checks_them() {
        assert_eq!(parse_stream_name("metrics-to-lake_1.0"), Ok("metrics-to-lake_1.0".to_owned()));
        assert!(parse_stream_name(&"a".repeat(64)).is_ok());
        let rule = "a Firehose delivery stream name has 1 to 64 characters, each a letter, a digit, `_`, `.` or `-`";
        for bad in ["", "has space", "arn:aws:firehose:us-east-1:1:deliverystream/x", &"a".repeat(65)] {
            assert_eq!(parse_stream_name(bad), Err(rule.to_owned()), "{bad}");
        }
    }

    #[test]
    fn deliveries_add_up() {
        let mut total = Delivery { records: 1, calls: 1, last_failure: Some("a".into()), ..Delivery::default() };
        total.add(Delivery { records: 2, undelivered: 3, calls: 2, retry_calls: 1, retried_records: 4, ..Delivery::default() });
        assert_eq!(
            total,
            Delivery {
                records: 3,
                undelivered: 3,
                calls: 3,
                retry_calls: 1,
                retried_records: 4,
                last_failure: Some("a".into()),
                ..Delivery::default()
            }
        );
    }
}
