//! The map phase: raw objects, streamed and decoded a block of lines (or of OpenTelemetry
//! messages) at a time, merged into the `metrics_1m` partitions they touch.
//!
//! A raw object is metric-stream JSON lines (what the transform writes) or, from an OpenTelemetry
//! stream without a transform (Quick S3 setup), its records concatenated: length-prefixed
//! messages. Its first plain bytes tell which (`cwms_decode::for_each_part`).
//!
//! An object is read as chunks from its store and inflated as it arrives, so memory does not
//! grow with its size (a backfill's 200 MB gzip object of 2.8 GB of NDJSON takes a few blocks'
//! worth). Its good lines are merged; its bad lines are collected with their numbers and
//! reasons ([`crate::quarantine`]). An object that cannot be read as lines at all (bad gzip, past
//! the decompression cap, a key or file no store can read) is reported and left in place. A
//! failure of the store itself while reading (a connection reset, a body cut short) is first
//! picked up where it stopped by the store (S3: a ranged GET of the same version), then retried
//! from the start of the object a few times, and then stops the run with the object named:
//! reading the same datums again is harmless (the merge law is idempotent), and the datums an
//! attempt cut short had merged are not counted as duplicates by the next.

use std::collections::HashSet;
use std::io::Read;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Buf, Bytes};
use cwms_decode::otel::{decode_otel, for_each_message};
use cwms_decode::{Part, StreamError};
use cwms_model::Datum;
use cwms_parquet::LakeObject;
use cwms_store::{ObjectMeta, ObjectStore};
use futures::{StreamExt, TryStreamExt};

use crate::merged::{Added, Merged};
use crate::quarantine::{MAX_REJECTED_BYTES, Rejected, RejectedKind, RejectedLine};
use crate::{Error, Options, Partitions, Progress, Result};

/// Plain bytes decoded at a time from one object, at most: 4 MiB, or less under a small point
/// budget, so that a block (about a datum per 250 bytes) is a small share of the budget and a
/// decoding thread that waits for room overshoots it by little (see [`block_bytes`]).
const BLOCK_BYTES: usize = 4 << 20;

/// A block of at most `max_points` / 4 datums' worth of lines (64 bytes a point), between 64 KiB
/// and [`BLOCK_BYTES`].
fn block_bytes(max_points: usize) -> usize {
    max_points.saturating_mul(64).clamp(64 << 10, BLOCK_BYTES)
}

/// How many times an object is read when the store fails in the middle of it.
const READ_ATTEMPTS: u32 = 3;

/// The result of reading a set of raw objects.
#[derive(Debug, Default)]
pub struct Mapped {
    pub partitions: Partitions,
    /// Keys of the objects that were read to their end (good lines merged, bad ones in `rejected`).
    pub decoded: Vec<String>,
    /// Keys and reasons of the objects that could not be read as lines.
    pub failed: Vec<(String, String)>,
    /// The bad lines of the objects that had some.
    pub rejected: Vec<Rejected>,
    pub datums: u64,
    pub duplicates: u64,
    pub lines_rejected: u64,
    pub bytes: u64,
    /// The most merged points held at once while reading.
    pub peak_points: usize,
}

/// What came of reading one object.
enum Read1 {
    /// Listed but gone (expired by a lifecycle rule meanwhile): nothing to read.
    Missing,
    Decoded {
        added: Added,
        rejected: Vec<RejectedLine>,
    },
    Failed(String),
}

/// Fetches and decodes raw objects in parallel, grouping their datums by `metrics_1m` object.
pub async fn map_objects(raw: &dyn ObjectStore, objects: &[&ObjectMeta], options: &Options) -> Result<Mapped> {
    map_with(raw, objects, options, None, async |_: &Arc<Merged>| Ok(())).await
}

/// [`map_objects`], calling `after_each` (which may take partitions out) after each object,
/// and, with a `limit`, also every 100 ms while decoding threads wait for points to be taken out
/// (so that one huge object is published as it is read, not after).
pub(crate) async fn map_with(
    raw: &dyn ObjectStore,
    objects: &[&ObjectMeta],
    options: &Options,
    limit: Option<usize>,
    mut after_each: impl AsyncFnMut(&Arc<Merged>) -> Result<()>,
) -> Result<Mapped> {
    let merged = Arc::new(Merged::default());
    let mut results = futures::stream::iter(objects.iter().map(|&meta| {
        let merged = Arc::clone(&merged);
        async move {
            let outcome = read_object(raw, meta, options, &merged, limit).await?;
            Ok::<_, Error>((meta, outcome))
        }
    }))
    .buffer_unordered(options.concurrency.max(1));

    let mut mapped = Mapped::default();
    let mut tick = tokio::time::interval(Duration::from_millis(100));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let next = tokio::select! {
            next = results.try_next() => next?,
            _ = tick.tick(), if limit.is_some() => {
                if limit.is_some_and(|l| merged.points() > l) {
                    after_each(&merged).await?;
                }
                continue;
            }
        };
        let Some((meta, outcome)) = next else { break };
        options.report(Progress::ObjectRead { bytes: meta.size });
        match outcome {
            Read1::Missing => {}
            Read1::Decoded { added, rejected } => {
                mapped.bytes += meta.size;
                mapped.datums += added.datums;
                mapped.duplicates += added.duplicates;
                mapped.decoded.push(meta.key.clone());
                if !rejected.is_empty() {
                    mapped.lines_rejected += rejected.len() as u64;
                    mapped.rejected.push(Rejected {
                        key: meta.key.clone(),
                        location: raw.describe(&meta.key),
                        last_modified_ms: meta.last_modified_ms,
                        lines: rejected,
                    });
                }
            }
            Read1::Failed(reason) => {
                mapped.bytes += meta.size;
                mapped.failed.push((meta.key.clone(), reason));
            }
        }
        after_each(&merged).await?;
    }
    drop(results);
    mapped.peak_points = merged.peak();
    let all = Arc::clone(&merged);
    mapped.partitions = tokio::task::spawn_blocking(move || all.take_all()).await.map_err(|e| Error::Task(e.to_string()))?;
    mapped.decoded.sort();
    mapped.failed.sort();
    mapped.rejected.sort_by(|a, b| a.key.cmp(&b.key));
    Ok(mapped)
}

/// Whether a store error is the object's own (a key or a file no store can read) rather than the
/// store's (S3 unreachable, throttled past the retries): the first is reported with the object,
/// the second stops the run.
fn is_object_problem(error: &cwms_store::Error) -> bool {
    matches!(error, cwms_store::Error::InvalidKey { .. } | cwms_store::Error::Io { .. })
}

/// A store failure in the middle of a body, carried through the decoder's `Read`.
#[derive(Debug)]
struct StoreFault(cwms_store::Error);

impl std::fmt::Display for StoreFault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

impl std::error::Error for StoreFault {}

async fn read_object(
    raw: &dyn ObjectStore,
    meta: &ObjectMeta,
    options: &Options,
    merged: &Arc<Merged>,
    limit: Option<usize>,
) -> Result<Read1> {
    if let Some(problem) = &meta.problem {
        return Ok(Read1::Failed(problem.clone()));
    }
    let mut attempt = 0;
    // Datums that attempts cut short by a fault merged for the first time: the next attempt
    // meets them again as duplicates, which they are not.
    let mut merged_before = 0;
    loop {
        attempt += 1;
        let chunks = match raw.get_chunks(&meta.key).await {
            Ok(Some(chunks)) => chunks,
            Ok(None) => return Ok(Read1::Missing),
            Err(e) if is_object_problem(&e) => return Ok(Read1::Failed(error_chain(&e))),
            Err(e) if attempt < READ_ATTEMPTS => {
                tracing::warn!(object = %raw.describe(&meta.key), error = %error_chain(&e), attempt, "reading a raw object failed; trying again");
                tokio::time::sleep(Duration::from_millis(250 * u64::from(attempt))).await;
                continue;
            }
            Err(e) => return Err(e.into()),
        };
        // The chunks come in on this task and are decoded on a blocking thread, two chunks of
        // slack between them.
        let (sender, receiver) = tokio::sync::mpsc::channel::<cwms_store::Result<Bytes>>(2);
        let forward = async move {
            let mut chunks = chunks;
            while let Some(chunk) = chunks.next().await {
                let failed = chunk.is_err();
                if sender.send(chunk).await.is_err() || failed {
                    break;
                }
            }
        };
        let (merged_c, keep) = (Arc::clone(merged), options.keep());
        let (cap, block) = (options.max_decompressed_bytes, block_bytes(options.max_points));
        let decode = tokio::task::spawn_blocking(move || {
            decode_object(ChannelReader { receiver, current: Bytes::new() }, cap, block, &merged_c, &*keep, limit)
        });
        let ((), decoded) = tokio::join!(forward, decode);
        match decoded.map_err(|e| Error::Task(e.to_string()))? {
            Ok(Read1::Decoded { mut added, rejected }) => {
                added.duplicates = added.duplicates.saturating_sub(merged_before);
                return Ok(Read1::Decoded { added, rejected });
            }
            Ok(read) => return Ok(read),
            Err((fault, partial)) if attempt < READ_ATTEMPTS => {
                merged_before += partial.datums - partial.duplicates;
                tracing::warn!(object = %raw.describe(&meta.key), error = %error_chain(&fault), attempt, "reading a raw object failed midway; reading it again");
                tokio::time::sleep(Duration::from_millis(250 * u64::from(attempt))).await;
            }
            Err((fault, _)) => return Err(fault.into()),
        }
    }
}

/// Decodes one object's bytes; `Err` only for a failure of the store underneath, with what was
/// merged before it.
fn decode_object(
    reader: ChannelReader,
    cap: u64,
    block_bytes: usize,
    merged: &Merged,
    keep: &(dyn Fn(&LakeObject) -> bool + Sync),
    limit: Option<usize>,
) -> std::result::Result<Read1, (cwms_store::Error, Added)> {
    let mut added = Added::default();
    let mut rejected: Vec<RejectedLine> = Vec::new();
    let mut rejected_bytes = 0usize;
    let mut problem: Option<String> = None;
    let streamed = cwms_decode::for_each_part(reader, cap, block_bytes, None, |part| {
        if problem.is_some() {
            return;
        }
        let datums = match part {
            Part::Lines { block, first_line } => lines_part(block, first_line, &mut rejected, &mut rejected_bytes),
            Part::Messages { block, first_message, offset } => {
                messages_part(block, first_message, offset, &mut rejected, &mut rejected_bytes)
            }
        };
        if rejected_bytes > MAX_REJECTED_BYTES {
            let (first, what) = (&rejected[0], kind_name(rejected[0].kind));
            problem = Some(format!(
                "more than {} MiB of its {what}s are not metric-stream datums (first: {}); not a metric stream's {what}s \
                 (the datums before were merged)",
                MAX_REJECTED_BYTES >> 20,
                first.describe(),
            ));
            return;
        }
        match merged.add_datums(&datums, keep) {
            Ok(more) => added.absorb(more),
            Err(reason) => problem = Some(reason),
        }
        if let Some(limit) = limit {
            merged.wait_for_room(limit);
        }
    });
    match streamed {
        Ok(_) => {}
        Err(StreamError::Read(e)) => {
            let fault = match e.into_inner().map(|inner| inner.downcast::<StoreFault>()) {
                Some(Ok(fault)) => fault.0,
                Some(Err(other)) => cwms_store::Error::Io { op: "read", location: String::new(), source: std::io::Error::other(other) },
                None => cwms_store::Error::Io { op: "read", location: String::new(), source: std::io::Error::other("unknown") },
            };
            return Err((fault, added));
        }
        Err(other) => return Ok(Read1::Failed(other.to_string())),
    }
    // An object none of whose lines is a datum (a Parquet file, a checkpoint, random bytes) is
    // not metric-stream data with bad lines, but not metric-stream data: it fails as a whole.
    if problem.is_none() && !rejected.is_empty() && added.datums + added.skipped == 0 {
        problem = Some(match rejected[0].kind {
            RejectedKind::Line => format!(
                "none of its {} lines is a metric-stream datum (first: {}): not metric-stream JSON lines",
                rejected.len(),
                rejected[0].describe()
            ),
            RejectedKind::Message => format!(
                "none of its {} OpenTelemetry messages holds a metric-stream datum (first: {}): not a metric stream's",
                rejected.len(),
                rejected[0].describe()
            ),
        });
    }
    Ok(match problem {
        Some(reason) => Read1::Failed(reason),
        None => Read1::Decoded { added, rejected },
    })
}

/// The datums of a block of JSON lines; bad lines go to `rejected`.
fn lines_part<'a>(block: &'a [u8], first_line: usize, rejected: &mut Vec<RejectedLine>, rejected_bytes: &mut usize) -> Vec<Datum<'a>> {
    // The decoder skips a byte-order mark at the start of its input, as it should at the
    // start of an object; a later block that starts with one starts with a line that holds
    // it, which is rejected here exactly as reading the object whole would reject it.
    let (block, first_line) = match block.strip_prefix(BYTE_ORDER_MARK) {
        Some(_) if first_line > 1 => {
            let end = block.iter().position(|&b| b == b'\n').unwrap_or(block.len());
            let line = block[..end].strip_suffix(b"\r").unwrap_or(&block[..end]);
            if let Err(reason) = cwms_decode::decode_line(line) {
                *rejected_bytes += line.len();
                rejected.push(RejectedLine {
                    line: first_line,
                    kind: RejectedKind::Line,
                    reason: reason.to_string(),
                    bytes: line.to_vec(),
                });
            }
            (&block[(end + 1).min(block.len())..], first_line + 1)
        }
        _ => (block, first_line),
    };
    let decoded = cwms_decode::decode_lines(block);
    if !decoded.errors.is_empty() {
        let bad: HashSet<usize> = decoded.errors.iter().map(|e| e.line - 1).collect();
        let mut reasons = decoded.errors.iter();
        for (index, line) in cwms_decode::lines(block) {
            if bad.contains(&index)
                && let Some(error) = reasons.next()
            {
                *rejected_bytes += line.len();
                rejected.push(RejectedLine {
                    line: first_line + index,
                    kind: RejectedKind::Line,
                    reason: error.problem.to_string(),
                    bytes: line.to_vec(),
                });
            }
        }
    }
    decoded.datums
}

/// The datums of a block of whole OpenTelemetry messages; a message that does not decode goes to
/// `rejected` whole (with its length prefix), named by its number and byte offset in the object.
///
/// A raw OpenTelemetry object is records concatenated, so messages concatenated: a bad message
/// is one record's problem, and the messages after it, whose framing is intact, still count.
fn messages_part<'a>(
    block: &'a [u8],
    first_message: usize,
    offset: u64,
    rejected: &mut Vec<RejectedLine>,
    rejected_bytes: &mut usize,
) -> Vec<Datum<'a>> {
    // The usual block decodes whole; only a block with a bad message is read message by message.
    if let Ok(datums) = decode_otel(block) {
        return datums;
    }
    let mut datums = Vec::new();
    let walked = for_each_message(block, |number, at, message| match decode_otel(message) {
        Ok(good) => datums.extend(good),
        Err(mut error) => {
            error.message = first_message + number - 1;
            error.offset = error.offset.saturating_add(at).saturating_add(usize::try_from(offset).unwrap_or(usize::MAX));
            *rejected_bytes += message.len();
            rejected.push(RejectedLine {
                line: error.message,
                kind: RejectedKind::Message,
                reason: error.to_string(),
                bytes: message.to_vec(),
            });
        }
    });
    // The stream hands out whole messages only, so the walk cannot stop early; if it ever did,
    // what it did not reach is rejected rather than lost.
    if let Err(error) = walked {
        let at = error.offset;
        *rejected_bytes += block.len() - at;
        rejected.push(RejectedLine {
            line: first_message + error.message - 1,
            kind: RejectedKind::Message,
            reason: error.to_string(),
            bytes: block[at..].to_vec(),
        });
    }
    datums
}

fn kind_name(kind: RejectedKind) -> &'static str {
    match kind {
        RejectedKind::Line => "line",
        RejectedKind::Message => "message",
    }
}

/// U+FEFF as UTF-8, which Windows tools put at the start of a text file.
const BYTE_ORDER_MARK: &[u8] = b"\xEF\xBB\xBF";

/// A store error with its causes, one line: the store's own message is short on purpose.
pub(crate) fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

/// The chunks of an object as a blocking `Read`, on the decoding thread.
struct ChannelReader {
    receiver: tokio::sync::mpsc::Receiver<cwms_store::Result<Bytes>>,
    current: Bytes,
}

impl Read for ChannelReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        while self.current.is_empty() {
            match self.receiver.blocking_recv() {
                Some(Ok(chunk)) => self.current = chunk,
                Some(Err(e)) => return Err(std::io::Error::other(StoreFault(e))),
                None => return Ok(0),
            }
        }
        let n = buf.len().min(self.current.len());
        buf[..n].copy_from_slice(&self.current[..n]);
        self.current.advance(n);
        Ok(n)
    }
}
