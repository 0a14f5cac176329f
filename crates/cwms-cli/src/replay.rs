//! `cwms replay`: metric-stream NDJSON files (or a raw folder Firehose wrote) back into a real
//! Firehose delivery stream, packed into records the way CloudWatch packs them.
//!
//! Replaying is how a pipeline is tested end to end with known data, how a backfill re-enters
//! the lake, and how already-bad data is pushed through the transform on purpose, so lines are
//! sent exactly as they are: only blank lines are left out, and nothing is validated.
//!
//! Each file is read and packed whole before any of its records is sent, so a file that cannot
//! be read, or holds a line too long for one Firehose record, sends nothing at all: it is
//! reported, the other files are sent, and the run fails. Re-running after a fix then
//! duplicates nothing of that file (duplicates elsewhere are harmless: the lake's merge keeps
//! one datum per series and minute).

use crate::output::{err, out, plural};
use std::collections::HashSet;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, bail};
use aws_sdk_firehose::primitives::Blob;
use futures::StreamExt;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::firehose_put::{self, Batch, Batcher, Delivery, MAX_RECORD_BYTES, Sender};

#[derive(Debug, clap::Args)]
#[command(after_long_help = EXAMPLES)]
pub struct Args {
    /// The Firehose delivery stream (Direct PUT) to put the records into, in the region of the
    /// standard AWS configuration (AWS_REGION, a profile); AWS_ENDPOINT_URL selects another
    /// endpoint.
    #[arg(long, value_name = "NAME", value_parser = firehose_put::parse_stream_name)]
    pub stream: String,
    /// Files of metric-stream JSON lines, or folders: every file below a folder is sent (a raw
    /// prefix Firehose wrote, for example). Gzip or plain is told by the bytes, not the name.
    /// A file named twice, or reached twice through links, is sent once.
    #[arg(required = true, value_name = "FILE|DIR")]
    pub inputs: Vec<PathBuf>,
    /// Largest Firehose record to build: whole datum lines are packed into one record up to
    /// this many bytes, as CloudWatch packs them. A longer line travels alone in its own record;
    /// a line longer than Firehose's record limit (1,000 KiB with its newline) is an error.
    /// The default, that limit, makes the fewest records: Firehose bills ingestion per record,
    /// rounded up to 5 KB. Smaller records exercise the transform the way a busier stream would.
    #[arg(long, value_name = "BYTES", default_value_t = MAX_RECORD_BYTES, value_parser = parse_record_bytes)]
    pub record_bytes: usize,
    /// PutRecordBatch calls in flight at once.
    #[arg(long, value_name = "N", default_value_t = 4, value_parser = clap::value_parser!(u16).range(1..=64))]
    pub concurrency: u16,
    /// Attempts per record before it counts as not delivered; entries Firehose refuses are sent
    /// again after an exponential, jittered wait (throttled calls are also retried by the SDK).
    #[arg(long, value_name = "N", default_value_t = firehose_put::DEFAULT_MAX_ATTEMPTS,
          value_parser = clap::value_parser!(u32).range(1..=i64::from(firehose_put::MAX_ATTEMPTS_LIMIT)))]
    pub max_attempts: u32,
    /// Print what would be sent (per file: lines, records, bytes; then the calls) and send
    /// nothing. Needs no AWS credentials.
    #[arg(long)]
    pub dry_run: bool,
}

const EXAMPLES: &str = "\
Examples:
  cwms replay --stream metrics-to-lake sample.ndjson
  cwms generate --format raw-folder --minutes 60 --out ./data && cwms replay --stream metrics-to-lake ./data/raw
  cwms replay --stream metrics-to-lake --dry-run --record-bytes 65536 ./backfill/";

fn parse_record_bytes(text: &str) -> Result<usize, String> {
    let bytes: usize = text.parse().map_err(|e| format!("{e}"))?;
    if !(1..=MAX_RECORD_BYTES).contains(&bytes) {
        return Err(format!("must be 1 to {MAX_RECORD_BYTES} (Firehose's 1,000 KiB record limit)"));
    }
    Ok(bytes)
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    // Every argument is checked before anything is sent: a typo must not leave half a replay.
    let files = files_to_send(&args.inputs)?;
    let runtime = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    if args.dry_run {
        return runtime.block_on(dry_run(args, files));
    }
    runtime.block_on(replay(args, files))
}

/// What reading the files found, whether or not it was sent.
#[derive(Debug, Default)]
struct Scan {
    files: u64,
    lines: u64,
    records: u64,
    bytes: u64,
    batches: u64,
    /// `path: reason` for every file that sent nothing.
    problems: Vec<String>,
    /// Files left unread because the run stopped.
    files_not_read: u64,
}

/// One file's lines (or OpenTelemetry messages) packed into records.
#[derive(Debug, Default, PartialEq, Eq)]
struct Packed {
    records: Vec<Blob>,
    /// Lines, or messages when `messages`.
    lines: u64,
    bytes: u64,
    /// The file held OpenTelemetry messages rather than JSON lines.
    messages: bool,
}

async fn dry_run(args: Args, files: Vec<PathBuf>) -> anyhow::Result<ExitCode> {
    let record_bytes = args.record_bytes;
    let scan = tokio::task::spawn_blocking(move || {
        scan(
            &files,
            record_bytes,
            |_| true,
            || false,
            |path, packed| {
                // A write that fails here fails again in the summary below, which reports it.
                let _ = out!(
                    "{}: {} in {} ({} bytes)",
                    path.display(),
                    if packed.messages {
                        plural(packed.lines, "OpenTelemetry message", "OpenTelemetry messages")
                    } else {
                        plural(packed.lines, "line", "lines")
                    },
                    plural(packed.records.len() as u64, "record", "records"),
                    packed.bytes
                );
            },
        )
    })
    .await
    .context("reading the files")?;
    out!(
        "dry run: would send {} files, {} lines as {} records ({} bytes) in {} PutRecordBatch calls to Firehose stream {}; nothing was sent",
        scan.files,
        scan.lines,
        scan.records,
        scan.bytes,
        scan.batches,
        args.stream
    )?;
    for problem in &scan.problems {
        err!("{problem}");
    }
    if !scan.problems.is_empty() {
        bail!("{} of the files could not be sent (named above)", scan.problems.len());
    }
    Ok(ExitCode::SUCCESS)
}

async fn replay(args: Args, files: Vec<PathBuf>) -> anyhow::Result<ExitCode> {
    let client = firehose_put::client_from_env().await?;
    let sender = Sender::new(client, &args.stream, args.max_attempts);
    let concurrency = usize::from(args.concurrency);
    // The reader runs on a blocking thread and hands over batches through a small channel, so
    // at most a few batches (4 MiB each) wait in memory however much is replayed.
    let (batches, mut received) = tokio::sync::mpsc::channel::<Batch>(concurrency);
    let reader = {
        let sender = sender.clone();
        let record_bytes = args.record_bytes;
        tokio::task::spawn_blocking(move || {
            scan(&files, record_bytes, |batch| batches.blocking_send(batch).is_ok(), || sender.stopped().is_some(), |_, _| {})
        })
    };
    let bar = progress_bar();
    let incoming = futures::stream::poll_fn(move |cx| received.poll_recv(cx));
    let delivery = incoming
        .map(|batch| {
            let sender = sender.clone();
            async move { sender.send(batch).await }
        })
        .buffer_unordered(concurrency)
        .fold(Delivery::default(), |mut total, delivery| {
            total.add(delivery);
            bar.set_message(format!("{} records sent in {} calls", total.records, total.calls));
            futures::future::ready(total)
        })
        .await;
    bar.finish_and_clear();
    let scan = reader.await.context("reading the files")?;
    debug_assert_eq!(scan.records, delivery.records + delivery.undelivered, "every record read is accounted for");

    out!(
        "read {} files: {} lines packed into {} records ({} bytes)",
        scan.files - scan.problems.len() as u64 - scan.files_not_read,
        scan.lines,
        scan.records,
        scan.bytes
    )?;
    out!(
        "sent {} records ({} bytes) to Firehose stream {} in {} PutRecordBatch calls; {} records resent in {} retry calls",
        delivery.records,
        delivery.bytes,
        args.stream,
        delivery.calls,
        delivery.retried_records,
        delivery.retry_calls
    )?;
    for problem in &scan.problems {
        err!("{problem}");
    }
    let mut failures = Vec::new();
    if delivery.undelivered > 0 {
        failures.push(format!(
            "{} records ({} bytes) were not delivered to Firehose stream {} (last error: {})",
            delivery.undelivered,
            delivery.undelivered_bytes,
            args.stream,
            delivery.last_failure.as_deref().unwrap_or("unknown")
        ));
    }
    if scan.files_not_read > 0 {
        failures.push(format!("{} files were not read after the run stopped", scan.files_not_read));
    }
    if !scan.problems.is_empty() {
        failures.push(format!("{} files could not be sent (named above)", scan.problems.len()));
    }
    if !failures.is_empty() {
        bail!("{}", failures.join("; "));
    }
    Ok(ExitCode::SUCCESS)
}

/// Reads, packs and batches every file in order, handing each batch to `sink` (which answers
/// false when nobody takes batches any more) and each file's records to `on_file`. Stops
/// reading once `stop` says so.
fn scan(
    files: &[PathBuf],
    record_bytes: usize,
    mut sink: impl FnMut(Batch) -> bool,
    stop: impl Fn() -> bool,
    mut on_file: impl FnMut(&Path, &Packed),
) -> Scan {
    let mut scan = Scan { files: files.len() as u64, ..Scan::default() };
    let mut batcher = Batcher::default();
    for (index, path) in files.iter().enumerate() {
        if stop() {
            scan.files_not_read = (files.len() - index) as u64;
            break;
        }
        let packed = match read_and_pack(path, record_bytes) {
            Ok(packed) => packed,
            Err(reason) => {
                scan.problems.push(format!("{}: {reason}", path.display()));
                continue;
            }
        };
        on_file(path, &packed);
        scan.lines += packed.lines;
        scan.records += packed.records.len() as u64;
        scan.bytes += packed.bytes;
        for record in packed.records {
            if let Some(batch) = batcher.push(record) {
                scan.batches += 1;
                if !sink(batch) {
                    return scan;
                }
            }
        }
    }
    if let Some(batch) = batcher.finish() {
        scan.batches += 1;
        sink(batch);
    }
    scan
}

fn read_and_pack(path: &Path, record_bytes: usize) -> Result<Packed, String> {
    let bytes = fs::read(path).map_err(|e| format!("cannot read: {e}"))?;
    let plain = cwms_decode::decompress(&bytes, cwms_decode::DEFAULT_MAX_DECOMPRESSED_BYTES).map_err(|e| e.to_string())?;
    pack(&plain, record_bytes)
}

/// Packs the non-blank lines of `plain` into records of at most `record_bytes` (a longer line
/// alone), each line whole and ending in `\n`; or, when `plain` is OpenTelemetry (it does not
/// start with `{`, and it is length-prefixed messages to its last byte), its messages, each
/// whole. Anything else is lines, sent as they are, bad or not.
fn pack(plain: &[u8], record_bytes: usize) -> Result<Packed, String> {
    if cwms_decode::otel::detect(plain) == cwms_decode::otel::Format::OpenTelemetry
        && cwms_decode::otel::for_each_message(plain, |_, _, _| {}).is_ok()
    {
        return pack_messages(plain, record_bytes);
    }
    let mut packed = Packed::default();
    let mut current: Vec<u8> = Vec::new();
    // `lines` skips blank lines and drops a `\r` before the `\n`, as the transform reads them.
    for (index, line) in cwms_decode::lines(plain) {
        let size = line.len() + 1;
        if size > MAX_RECORD_BYTES {
            return Err(format!(
                "line {} is {size} bytes with its newline, more than a Firehose record can hold ({MAX_RECORD_BYTES} bytes)",
                index + 1
            ));
        }
        if !current.is_empty() && current.len() + size > record_bytes {
            packed.records.push(Blob::new(std::mem::take(&mut current)));
        }
        current.extend_from_slice(line);
        current.push(b'\n');
        packed.lines += 1;
        packed.bytes += size as u64;
    }
    if !current.is_empty() {
        packed.records.push(Blob::new(current));
    }
    Ok(packed)
}

/// Packs the messages of an OpenTelemetry stream (a raw object of an OpenTelemetry metric stream
/// is its records concatenated) into records of at most `record_bytes` (a longer message alone),
/// each message whole with its length prefix, as a record holds them.
fn pack_messages(plain: &[u8], record_bytes: usize) -> Result<Packed, String> {
    let mut packed = Packed { messages: true, ..Packed::default() };
    let mut current: Vec<u8> = Vec::new();
    let mut too_long = None;
    cwms_decode::otel::for_each_message(plain, |number, offset, message| {
        if too_long.is_some() {
            return;
        }
        if message.len() > MAX_RECORD_BYTES {
            too_long = Some(format!(
                "OpenTelemetry message {number} at byte {offset} is {} bytes, more than a Firehose record can hold ({MAX_RECORD_BYTES} bytes)",
                message.len()
            ));
            return;
        }
        if !current.is_empty() && current.len() + message.len() > record_bytes {
            packed.records.push(Blob::new(std::mem::take(&mut current)));
        }
        current.extend_from_slice(message);
        packed.lines += 1;
        packed.bytes += message.len() as u64;
    })
    .map_err(|e| format!("not whole OpenTelemetry messages: {e}"))?;
    if let Some(reason) = too_long {
        return Err(reason);
    }
    if !current.is_empty() {
        packed.records.push(Blob::new(current));
    }
    Ok(packed)
}

/// The files the arguments name, in order (a folder's files sorted by path), each once.
fn files_to_send(inputs: &[PathBuf]) -> anyhow::Result<Vec<PathBuf>> {
    let mut walk = Walk::default();
    for input in inputs {
        let metadata = fs::metadata(input).with_context(|| format!("cannot read {}", input.display()))?;
        if metadata.is_dir() {
            let before = walk.files.len();
            walk.folder(input)?;
            if walk.files.len() == before {
                bail!("{} holds no files to send", input.display());
            }
        } else if metadata.is_file() {
            walk.file(input)?;
        } else {
            bail!("{} is neither a file nor a folder", input.display());
        }
    }
    Ok(walk.files)
}

#[derive(Debug, Default)]
struct Walk {
    files: Vec<PathBuf>,
    /// Canonical paths already taken, so no file is sent twice.
    seen_files: HashSet<PathBuf>,
    /// Canonical folders already walked, so a link back up the tree does not loop.
    seen_folders: HashSet<PathBuf>,
}

impl Walk {
    fn file(&mut self, path: &Path) -> anyhow::Result<()> {
        let canonical = path.canonicalize().with_context(|| format!("cannot read {}", path.display()))?;
        if self.seen_files.insert(canonical) {
            self.files.push(path.to_owned());
        }
        Ok(())
    }

    fn folder(&mut self, dir: &Path) -> anyhow::Result<()> {
        let canonical = dir.canonicalize().with_context(|| format!("cannot read folder {}", dir.display()))?;
        if !self.seen_folders.insert(canonical) {
            return Ok(());
        }
        let listing = || format!("cannot list folder {}", dir.display());
        let mut entries = fs::read_dir(dir)
            .with_context(listing)?
            .map(|entry| entry.map(|e| e.path()))
            .collect::<Result<Vec<_>, _>>()
            .with_context(listing)?;
        entries.sort_unstable();
        for path in entries {
            // `metadata` follows links, so a dangling link is reported here, not skipped.
            let metadata = fs::metadata(&path).with_context(|| format!("cannot read {}", path.display()))?;
            if metadata.is_dir() {
                self.folder(&path)?;
            } else if metadata.is_file() {
                self.file(&path)?;
            } else {
                bail!("{} is neither a file nor a folder", path.display());
            }
        }
        Ok(())
    }
}

fn progress_bar() -> ProgressBar {
    let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
    bar.set_style(ProgressStyle::with_template("{spinner} {msg} ({elapsed})").expect("a valid template"));
    bar.enable_steady_tick(Duration::from_millis(120));
    bar
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Packs `input` into records of at most `record_bytes` and compares them as text.
    fn check(input: &str, record_bytes: usize, expected: &[&str]) {
        let packed = pack(input.as_bytes(), record_bytes).unwrap();
        let records: Vec<&str> = packed.records.iter().map(|r| std::str::from_utf8(r.as_ref()).unwrap()).collect();
        assert_eq!(records, expected, "{input:?} into records of {record_bytes} bytes");
        assert_eq!(packed.bytes, expected.iter().map(|r| r.len() as u64).sum::<u64>());
        assert_eq!(packed.lines, expected.iter().map(|r| r.matches('\n').count() as u64).sum::<u64>());
    }

    #[test]
    fn lines_are_packed_whole_up_to_the_record_size() {
        check("", 10, &[]);
        check("\n \n\r\n", 10, &[]);
        check("a\nb\nc", 10, &["a\nb\nc\n"]);
        check("a\nb\nc\n", 4, &["a\nb\n", "c\n"]);
        check("aaa\nbb\n", 4, &["aaa\n", "bb\n"]);
        // A line longer than the record size travels alone, never split.
        check("a\nbbbbbbbb\nc\n", 4, &["a\n", "bbbbbbbb\n", "c\n"]);
        // Blank lines are skipped and a CRLF ending becomes a LF; the line itself is untouched.
        check("{\"x\": 1} \r\n\n  \nnot json\n", 100, &["{\"x\": 1} \nnot json\n"]);
    }

    #[test]
    fn opentelemetry_messages_are_packed_whole() {
        // Three messages of 3, 2 and 5 bytes with their prefixes.
        let plain = b"\x02ab\x01c\x04defg";
        let packed = pack(plain, 5).unwrap();
        let records: Vec<&[u8]> = packed.records.iter().map(|r| r.as_ref()).collect();
        assert_eq!(records, [&b"\x02ab\x01c"[..], b"\x04defg"]);
        assert_eq!((packed.lines, packed.bytes, packed.messages), (3, 10, true));
        // Bytes that are not whole messages are lines, sent as they are.
        let packed = pack(b"\x02ab\x05c", 100).unwrap();
        assert_eq!((packed.lines, packed.messages), (1, false));
        // A message of 1,024,016 bytes (the varint 90 c0 3e).
        let mut long = vec![0x90, 0xc0, 0x3e];
        long.resize(3 + MAX_RECORD_BYTES + 16, b'x');
        assert_eq!(
            pack(&long, 10).unwrap_err(),
            "OpenTelemetry message 1 at byte 0 is 1024019 bytes, more than a Firehose record can hold (1024000 bytes)"
        );
    }

    #[test]
    fn a_line_over_the_firehose_record_limit_is_refused_with_its_number() {
        let fits = format!("a\n{}\n", "x".repeat(MAX_RECORD_BYTES - 1));
        assert_eq!(pack(fits.as_bytes(), 10).unwrap().records.len(), 2);
        let too_long = format!("a\n\n{}\n", "x".repeat(MAX_RECORD_BYTES));
        assert_eq!(
            pack(too_long.as_bytes(), 10).unwrap_err(),
            "line 3 is 1024001 bytes with its newline, more than a Firehose record can hold (1024000 bytes)"
        );
    }

    #[test]
    fn folders_are_walked_in_order_and_files_taken_once() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        for name in ["b/2.gz", "b/1", "a.ndjson", "c/d/e"] {
            let path = root.join(name);
            fs::create_dir_all(path.parent().unwrap()).unwrap();
            fs::write(path, "x\n").unwrap();
        }
        std::os::unix::fs::symlink(root, root.join("c/loop")).unwrap();
        let files = files_to_send(&[root.join("b/1"), root.to_owned()]).unwrap();
        let names: Vec<String> = files.iter().map(|p| p.strip_prefix(root).unwrap().display().to_string()).collect();
        assert_eq!(names, ["b/1", "a.ndjson", "b/2.gz", "c/d/e"]);

        fs::create_dir(root.join("empty")).unwrap();
        let error = files_to_send(&[root.join("empty")]).unwrap_err().to_string();
        assert!(error.ends_with("empty holds no files to send"), "{error}");
        std::os::unix::fs::symlink(root.join("gone"), root.join("c/dangling")).unwrap();
        let error = format!("{:#}", files_to_send(&[root.to_owned()]).unwrap_err());
        assert!(error.contains("c/dangling: No such file or directory"), "{error}");
    }

    #[test]
    fn scan_batches_records_across_files_and_reports_bad_files() {
        let dir = tempfile::tempdir().unwrap();
        let good = dir.path().join("good");
        let bad = dir.path().join("bad.gz");
        fs::write(&good, "a\nb\nc\n").unwrap();
        fs::write(&bad, [0x1f, 0x8b, 0x08, 0x00]).unwrap();
        let mut batches = Vec::new();
        let scan = scan(
            &[good.clone(), bad.clone(), good],
            2,
            |b| {
                batches.push(b);
                true
            },
            || false,
            |_, _| {},
        );
        assert_eq!((scan.files, scan.lines, scan.records, scan.bytes, scan.batches), (3, 6, 6, 12, 1));
        assert_eq!(batches[0].records.len(), 6);
        assert_eq!(scan.problems.len(), 1);
        assert!(scan.problems[0].starts_with(&format!("{}: ", bad.display())), "{:?}", scan.problems);
    }
}
