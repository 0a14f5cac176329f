//! Large inputs a block of lines at a time, so that memory does not grow with the input.
//!
//! A raw object can be far larger than anything worth holding at once (a backfill's 200 MB gzip
//! object inflates to gigabytes of NDJSON). [`for_each_block`] inflates it as it reads and hands
//! the caller whole lines a block at a time; what the caller keeps of each block is its business.

use std::io::{BufRead, BufReader, Read};

use crate::otel::{Format, Framing, PrefixProblem};
use crate::{GZIP_MAGIC, is_gzip};

/// Why a stream stopped before its end.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StreamError {
    /// The input starts with the gzip magic bytes but does not decompress.
    #[error("invalid gzip data: {reason}")]
    Gzip { reason: String },
    /// The input decompresses to more bytes than allowed.
    #[error("the object decompresses to more than {cap} bytes (the decompression cap)")]
    TooLarge { cap: u64 },
    /// A line longer than any datum can be (no newline in [`MAX_LINE_BYTES`]): not metric-stream NDJSON.
    #[error("line {line} is longer than {MAX_LINE_BYTES} bytes: not metric-stream JSON lines")]
    LineTooLong { line: usize },
    /// A length prefix of an OpenTelemetry stream cannot be read, or the stream ends inside the
    /// message it announces.
    #[error("OpenTelemetry message {message} at byte {offset}: {}", stream_framing(framing))]
    Framing { message: usize, offset: u64, framing: Framing },
    /// An OpenTelemetry message longer than any metric stream's (see [`MAX_MESSAGE_BYTES`]).
    #[error(
        "OpenTelemetry message {message} at byte {offset} is {length} bytes long, more than {MAX_MESSAGE_BYTES}: \
         not a metric stream's (a Firehose record, which holds whole messages, is at most 1,000 KiB)"
    )]
    MessageTooLong { message: usize, offset: u64, length: u64 },
    /// The reader itself failed (a connection cut, a disk error): not a property of the data.
    #[error("reading failed: {0}")]
    Read(#[source] std::io::Error),
}

/// A framing problem, said of a stream rather than of a record.
fn stream_framing(framing: &Framing) -> String {
    match framing {
        Framing::PastEnd { length, available } => {
            format!("the length prefix says {length} bytes but the stream ends {available} bytes after it")
        }
        Framing::Truncated => "the stream ends inside the length prefix".to_owned(),
        other => other.to_string(),
    }
}

/// The longest line a stream may hold. A datum's line is at most about 45 KB (30 dimensions of a
/// 255-byte name and a 1,024-byte value, plus the other fields and statistics); anything far
/// longer is not a datum, and holding it would let one object take unbounded memory.
pub const MAX_LINE_BYTES: usize = 4 << 20;

/// A reader that remembers whether an error came from it, so that an error out of the gzip
/// decoder above it can be told apart: the data's fault, or the source's.
struct Tracked<R> {
    inner: R,
    failed: bool,
}

impl<R: Read> Read for Tracked<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let result = self.inner.read(buf);
        if let Err(e) = &result
            && e.kind() != std::io::ErrorKind::Interrupted
        {
            self.failed = true;
        }
        result
    }
}

/// Reads `reader` to its end, inflating it when it starts with the gzip magic bytes
/// (concatenated members included), and hands `visit` the plain bytes in blocks of whole lines,
/// each of about `block_bytes` (a block ends at a `\n`, or at the end of the input; a line longer
/// than `block_bytes` makes its block longer), with the 1-based number of the block's first line.
///
/// Memory is about two blocks, whatever the input's size. Reading stops with
/// [`StreamError::TooLarge`] once more than `max_decompressed_bytes` plain bytes have come out
/// of a gzip input (a bomb costs that much time, never that much memory); blocks handed out
/// before then have been visited. Returns the number of plain bytes read.
pub fn for_each_block<R: Read>(
    reader: R,
    max_decompressed_bytes: u64,
    block_bytes: usize,
    mut visit: impl FnMut(&[u8], usize),
) -> Result<u64, StreamError> {
    for_each_part(reader, max_decompressed_bytes, block_bytes, Some(Format::Json), |part| {
        if let Part::Lines { block, first_line } = part {
            visit(block, first_line);
        }
    })
}

/// A block of a stream, whole lines or whole messages, as [`for_each_part`] hands them out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Part<'a> {
    /// Whole JSON lines, and the 1-based number of the first.
    Lines { block: &'a [u8], first_line: usize },
    /// Whole length-prefixed OpenTelemetry messages (each with its prefix: the block reads as an
    /// OpenTelemetry record), the 1-based number of the first, and the block's byte offset in the
    /// plain stream.
    Messages { block: &'a [u8], first_message: usize, offset: u64 },
}

/// The longest OpenTelemetry message a stream may hold: a Firehose record is at most 1,000 KiB,
/// and a message lies within a record, so anything far longer is not a metric stream's.
pub const MAX_MESSAGE_BYTES: usize = 4 << 20;

/// [`for_each_block`] for a stream in either format: metric-stream JSON lines, or OpenTelemetry
/// `ExportMetricsServiceRequest` messages each preceded by its length (what Firehose writes to S3
/// from an OpenTelemetry metric stream without a transform: the records concatenated, and so
/// their messages). The format is `format`, or, when `None`, told by the first plain bytes as
/// [`crate::otel::detect`] tells it. Returns the number of plain bytes read.
///
/// Messages are handed out a block of whole ones at a time, so memory stays about two blocks
/// (or one message, when a message is longer than a block). A message longer than
/// [`MAX_MESSAGE_BYTES`], or a length prefix that is not a varint32, stops the stream
/// ([`StreamError::MessageTooLong`], [`StreamError::Framing`]), as does an end inside a message:
/// once the framing is lost nothing says where the next message starts.
pub fn for_each_part<R: Read>(
    reader: R,
    max_decompressed_bytes: u64,
    block_bytes: usize,
    format: Option<Format>,
    mut visit: impl FnMut(Part<'_>),
) -> Result<u64, StreamError> {
    let mut source = BufReader::with_capacity(64 * 1024, Tracked { inner: reader, failed: false });
    let head = source.fill_buf().map_err(StreamError::Read)?;
    let gzip = is_gzip(head) || (head.len() == 1 && head[0] == GZIP_MAGIC[0]);
    let plain: Box<dyn Read + '_> = if gzip {
        Box::new(flate2::bufread::MultiGzDecoder::new(&mut source).take(max_decompressed_bytes.saturating_add(1)))
    } else {
        Box::new(&mut source)
    };
    let block_bytes = block_bytes.max(1);
    let mut filler = Filler { plain, scratch: vec![0u8; 256 * 1024], total: 0, gzip, cap: max_decompressed_bytes };
    let streamed = (|| {
        let mut block: Vec<u8> = Vec::with_capacity(block_bytes + block_bytes / 4);
        let ended = filler.fill(&mut block, block_bytes)?;
        match format.unwrap_or_else(|| crate::otel::detect(&block)) {
            Format::Json => lines(&mut filler, block, ended, block_bytes, &mut visit),
            Format::OpenTelemetry => messages(&mut filler, block, ended, block_bytes, &mut visit),
        }
    })();
    match streamed {
        Ok(()) => Ok(filler.total),
        Err(Stop::Stream(e)) => Err(e),
        Err(Stop::Io(e)) => {
            // An error out of the gzip decoder is the data's fault unless the source failed.
            drop(filler);
            let failed = source.get_ref().failed;
            Err(if failed { StreamError::Read(e) } else { StreamError::Gzip { reason: e.to_string() } })
        }
    }
}

/// The lines of a stream, a block at a time; `block` holds its first bytes.
fn lines(
    filler: &mut Filler<'_>,
    mut block: Vec<u8>,
    mut ended: bool,
    block_bytes: usize,
    visit: &mut impl FnMut(Part<'_>),
) -> Result<(), Stop> {
    let mut line = 1usize;
    // How full the block must get before its whole lines are handed out: a block's size, or
    // more while one line is longer than that.
    let mut target = block_bytes;
    loop {
        let cut = if ended { Some(block.len()) } else { memchr::memrchr(b'\n', &block).map(|i| i + 1) };
        match cut {
            Some(0) => {}
            Some(cut) => {
                visit(Part::Lines { block: &block[..cut], first_line: line });
                line += memchr::memchr_iter(b'\n', &block[..cut]).count();
                block.drain(..cut);
                target = block_bytes.max(block.len() + 1);
            }
            // No line ends in the block yet: read on, up to the longest line allowed.
            None if block.len() > MAX_LINE_BYTES => return Err(StreamError::LineTooLong { line }.into()),
            None => target = block.len() + block_bytes,
        }
        if ended {
            return Ok(());
        }
        ended = filler.fill(&mut block, target)?;
    }
}

/// The length-prefixed messages of a stream, a block of whole ones at a time; `block` holds its
/// first bytes.
fn messages(
    filler: &mut Filler<'_>,
    mut block: Vec<u8>,
    mut ended: bool,
    block_bytes: usize,
    visit: &mut impl FnMut(Part<'_>),
) -> Result<(), Stop> {
    let mut message = 1usize;
    let mut offset = 0u64;
    loop {
        // The whole messages at the start of the block, and what the next one needs.
        let (mut end, mut count) = (0usize, 0usize);
        let needed = loop {
            let mut at = end;
            match crate::otel::read_prefix(&block, &mut at) {
                Ok(length) if length > MAX_MESSAGE_BYTES as u64 => {
                    let (message, offset) = (message + count, offset + end as u64);
                    return Err(StreamError::MessageTooLong { message, offset, length }.into());
                }
                Ok(length) if at + length as usize <= block.len() => {
                    end = at + length as usize;
                    count += 1;
                }
                Ok(length) => break Some(at + length as usize - end),
                Err(PrefixProblem::Truncated) => break None,
                Err(PrefixProblem::NotVarint32) => {
                    let (message, offset) = (message + count, offset + end as u64);
                    return Err(StreamError::Framing { message, offset, framing: Framing::NotVarint32 }.into());
                }
            }
        };
        if count > 0 {
            visit(Part::Messages { block: &block[..end], first_message: message, offset });
            message += count;
            offset += end as u64;
            block.drain(..end);
        }
        if ended {
            if block.is_empty() {
                return Ok(());
            }
            let framing = match needed {
                None => Framing::Truncated,
                Some(_) => {
                    let mut at = 0;
                    let length = crate::otel::read_prefix(&block, &mut at).unwrap_or_default();
                    Framing::PastEnd { length, available: block.len() - at }
                }
            };
            return Err(StreamError::Framing { message, offset, framing }.into());
        }
        // Room for the next message whole (at most MAX_MESSAGE_BYTES and its prefix), or for
        // the rest of its prefix.
        let target = block_bytes.max(needed.unwrap_or(block.len() + 1));
        ended = filler.fill(&mut block, target)?;
    }
}

/// Plain bytes into a block, counted against the cap.
struct Filler<'r> {
    plain: Box<dyn Read + 'r>,
    scratch: Vec<u8>,
    total: u64,
    gzip: bool,
    cap: u64,
}

/// Why filling stopped: the stream's own error, or a read error to be told apart (see
/// [`Filler::finish`]).
enum Stop {
    Stream(StreamError),
    Io(std::io::Error),
}

impl From<StreamError> for Stop {
    fn from(e: StreamError) -> Stop {
        Stop::Stream(e)
    }
}

impl<'r> Filler<'r> {
    /// Reads until `block` holds `target` bytes or the stream ends (`Ok(true)`).
    fn fill(&mut self, block: &mut Vec<u8>, target: usize) -> Result<bool, Stop> {
        while block.len() < target {
            // Read into a small scratch buffer and append, rather than zero-filling the rest of
            // the block before every read (which cost more than the inflating when the source
            // hands out small chunks).
            let want = (target - block.len()).min(self.scratch.len());
            let read = match self.plain.read(&mut self.scratch[..want]) {
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(Stop::Io(e)),
            };
            block.extend_from_slice(&self.scratch[..read]);
            self.total += read as u64;
            if self.gzip && self.total > self.cap {
                return Err(Stop::Stream(StreamError::TooLarge { cap: self.cap }));
            }
            if read == 0 {
                return Ok(true);
            }
        }
        Ok(false)
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;

    fn gzip(bytes: &[u8]) -> Vec<u8> {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        e.write_all(bytes).unwrap();
        e.finish().unwrap()
    }

    /// The blocks a stream of `input` is cut into, with their first line numbers.
    fn blocks(input: &[u8], block_bytes: usize) -> Result<Vec<(String, usize)>, String> {
        let mut out = Vec::new();
        for_each_block(input, 1 << 30, block_bytes, |block, line| out.push((String::from_utf8_lossy(block).into_owned(), line)))
            .map_err(|e| e.to_string())?;
        Ok(out)
    }

    #[test]
    fn blocks_end_at_line_ends_and_count_lines() {
        let input = b"aa\nbb\ncc\ndd";
        assert_eq!(blocks(input, 4).unwrap(), [("aa\n".into(), 1), ("bb\n".into(), 2), ("cc\n".into(), 3), ("dd".into(), 4)]);
        assert_eq!(blocks(input, 100).unwrap(), [(String::from_utf8(input.to_vec()).unwrap(), 1)]);
        assert_eq!(blocks(b"", 4).unwrap(), Vec::<(String, usize)>::new());
        // A line longer than a block makes its block longer.
        assert_eq!(blocks(b"a\nbbbbbbbbbbbb\nc\n", 3).unwrap(), [("a\n".into(), 1), ("bbbbbbbbbbbb\nc\n".into(), 2)]);
        // Gzip gives the same blocks as the plain bytes.
        let long: Vec<u8> = (0..5000).flat_map(|i| format!("line {i}\n").into_bytes()).collect();
        assert_eq!(blocks(&gzip(&long), 1000).unwrap(), blocks(&long, 1000).unwrap());
        let joined: String = blocks(&long, 777).unwrap().into_iter().map(|(b, _)| b).collect();
        assert_eq!(joined.as_bytes(), &long[..]);
    }

    #[test]
    fn an_endless_line_is_refused() {
        let err = for_each_block(&vec![b'x'; MAX_LINE_BYTES + (2 << 20)][..], 1 << 30, 1 << 20, |_, _| {}).unwrap_err();
        assert_eq!(err.to_string(), format!("line 1 is longer than {MAX_LINE_BYTES} bytes: not metric-stream JSON lines"));
    }

    #[test]
    fn the_cap_stops_a_bomb_and_exactly_the_cap_passes() {
        let bomb = gzip(&vec![b'\n'; 10 << 20]);
        let mut seen = 0;
        let err = for_each_block(&bomb[..], 1 << 20, 4096, |block, _| seen += block.len()).unwrap_err();
        assert_eq!(err.to_string(), "the object decompresses to more than 1048576 bytes (the decompression cap)");
        assert!(seen <= 1 << 20);
        assert_eq!(for_each_block(&gzip(&vec![b'x'; 1000])[..], 1000, 64, |_, _| {}).unwrap(), 1000);
        // Plain input is not capped: its size is what was stored.
        assert_eq!(for_each_block(&vec![b'x'; 5000][..], 1000, 64, |_, _| {}).unwrap(), 5000);
    }

    /// A reader that gives `good` bytes and then fails, as a cut connection does.
    struct Cut<'a> {
        good: &'a [u8],
    }

    impl Read for Cut<'_> {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            if self.good.is_empty() {
                return Err(std::io::Error::new(std::io::ErrorKind::ConnectionReset, "connection reset"));
            }
            let n = buf.len().min(self.good.len());
            buf[..n].copy_from_slice(&self.good[..n]);
            self.good = &self.good[n..];
            Ok(n)
        }
    }

    #[test]
    fn a_failing_source_is_told_apart_from_bad_gzip() {
        let whole = gzip(&vec![b'a'; 100_000]);
        let err = for_each_block(Cut { good: &whole[..whole.len() / 2] }, 1 << 30, 4096, |_, _| {}).unwrap_err();
        assert!(matches!(err, StreamError::Read(_)), "{err}");
        let err = for_each_block(Cut { good: b"plain\nlines" }, 1 << 30, 4096, |_, _| {}).unwrap_err();
        assert!(matches!(err, StreamError::Read(_)), "{err}");
        let err = for_each_block(&whole[..whole.len() / 2], 1 << 30, 4096, |_, _| {}).unwrap_err();
        assert!(matches!(err, StreamError::Gzip { .. }), "{err}");
        let mut corrupt = whole.clone();
        corrupt[15] ^= 0xff;
        assert!(matches!(for_each_block(&corrupt[..], 1 << 30, 4096, |_, _| {}).unwrap_err(), StreamError::Gzip { .. }));
    }

    /// `count` datums (differing by timestamp) as an OpenTelemetry stream of messages of 1 to 3
    /// data points each, so the messages differ in length.
    fn otel_stream(count: usize) -> (Vec<u8>, Vec<cwms_model::OwnedDatum>) {
        let line = br#"{"metric_stream_name":"s","account_id":"1","region":"r","namespace":"N","metric_name":"M","dimensions":{"D":"v"},"timestamp":1764140400000,"value":{"count":1,"sum":2,"max":3,"min":0,"p99":2.5},"unit":"Seconds"}"#;
        let one = crate::decode_lines(line).datums.remove(0).into_owned();
        let datums: Vec<_> =
            (0..count).map(|i| cwms_model::Datum { timestamp_ms: one.timestamp_ms + 60_000 * i as i64, ..one.clone() }).collect();
        let mut out = Vec::new();
        let mut rest = &datums[..];
        let mut size = 1;
        while !rest.is_empty() {
            let (now, later) = rest.split_at(size.min(rest.len()));
            cwms_model::otel::write_otel_message(now, cwms_model::otel::OtelVersion::V1_0, &mut out).unwrap();
            rest = later;
            size = size % 3 + 1;
        }
        (out, datums)
    }

    /// One part of an OpenTelemetry stream: its first message, offset, length, number of
    /// messages and datums.
    type Messages = (usize, u64, usize, usize, Vec<cwms_model::OwnedDatum>);

    fn parts(input: &[u8], block_bytes: usize) -> Result<Vec<Messages>, String> {
        let mut out = Vec::new();
        for_each_part(input, 1 << 30, block_bytes, None, |part| match part {
            Part::Messages { block, first_message, offset } => {
                let datums = crate::otel::decode_otel(block).unwrap().into_iter().map(cwms_model::Datum::into_owned).collect();
                let count = crate::otel::for_each_message(block, |_, _, _| {}).unwrap();
                out.push((first_message, offset, block.len(), count, datums));
            }
            Part::Lines { .. } => panic!("an OpenTelemetry stream read as lines"),
        })
        .map_err(|e| e.to_string())?;
        Ok(out)
    }

    #[test]
    fn messages_come_whole_in_blocks_of_any_size() {
        let (stream, datums) = otel_stream(40);
        for block_bytes in [1, 7, 100, 1000, 1 << 20] {
            for input in [stream.clone(), gzip(&stream)] {
                let got = parts(&input, block_bytes).unwrap();
                // Blocks follow each other: numbers and offsets add up to the whole stream, and
                // every datum comes once, in order.
                let (mut message, mut offset) = (1, 0u64);
                for (first, at, len, count, _) in &got {
                    assert_eq!((*first, *at), (message, offset), "block {block_bytes}");
                    message += count;
                    offset += *len as u64;
                }
                assert_eq!((message, offset), (22, stream.len() as u64));
                let all: Vec<_> = got.iter().flat_map(|part| part.4.clone()).collect();
                assert_eq!(all, datums, "block {block_bytes}");
            }
        }
        // With blocks of a message or less, every message is its own part.
        let got = parts(&stream, 1).unwrap();
        let mut expected = Vec::new();
        crate::otel::for_each_message(&stream, |n, at, _| expected.push((n, at as u64))).unwrap();
        assert_eq!(got.iter().map(|part| (part.0, part.1)).collect::<Vec<_>>(), expected);
        assert_eq!(expected.len(), 21);
        // One block holds them all when it can.
        assert_eq!(parts(&stream, 1 << 20).unwrap().len(), 1);
    }

    #[test]
    fn a_stream_that_loses_its_framing_stops_naming_the_message() {
        let (stream, _) = otel_stream(4);
        let mut sizes = Vec::new();
        crate::otel::for_each_message(&stream, |_, at, bytes| sizes.push((at, bytes.len()))).unwrap();
        let (last_at, last_len) = *sizes.last().unwrap();
        // Cut inside the last message: the messages before it still come, then the error.
        let cut = &stream[..stream.len() - 1];
        let mut seen = 0;
        let err = for_each_part(cut, 1 << 30, 16, None, |part| {
            if let Part::Messages { block, .. } = part {
                seen += crate::otel::decode_otel(block).unwrap().len();
            }
        })
        .unwrap_err();
        assert_eq!(seen, 3);
        assert_eq!(
            err.to_string(),
            format!(
                "OpenTelemetry message 3 at byte {last_at}: the length prefix says {} bytes but the stream ends {} bytes after it",
                last_len - 2,
                last_len - 3
            )
        );
        let mut cut = stream.clone();
        cut.push(0x80);
        assert_eq!(
            for_each_part(&cut[..], 1 << 30, 16, None, |_| {}).unwrap_err().to_string(),
            format!("OpenTelemetry message 4 at byte {}: the stream ends inside the length prefix", stream.len())
        );
        let mut bad = stream.clone();
        bad.extend_from_slice(&[0xff, 0xff, 0xff, 0xff, 0x7f]);
        assert_eq!(
            for_each_part(&bad[..], 1 << 30, 16, None, |_| {}).unwrap_err().to_string(),
            format!(
                "OpenTelemetry message 4 at byte {}: the length prefix is not a varint32 (more than 5 bytes or above 4294967295)",
                stream.len()
            )
        );
        // A message longer than any record is refused when its prefix is read, not after buffering it.
        let mut long = stream.clone();
        long.extend_from_slice(&[0x81, 0x80, 0x80, 0x02]);
        let err = for_each_part(&long[..], 1 << 30, 16, None, |_| {}).unwrap_err();
        assert_eq!(
            err.to_string(),
            format!(
                "OpenTelemetry message 4 at byte {} is 4194305 bytes long, more than 4194304: not a metric stream's \
                 (a Firehose record, which holds whole messages, is at most 1,000 KiB)",
                stream.len()
            )
        );
    }

    #[test]
    fn the_format_is_told_by_the_first_bytes_or_set() {
        let (stream, _) = otel_stream(2);
        let kinds = |input: &[u8], format| {
            let mut kinds = Vec::new();
            let result = for_each_part(input, 1 << 30, 4096, format, |part| {
                kinds.push(matches!(part, Part::Lines { .. }));
            });
            (result.is_ok(), kinds)
        };
        assert_eq!(kinds(&stream, None), (true, vec![false]));
        assert_eq!(kinds(&gzip(&stream), None), (true, vec![false]));
        assert_eq!(kinds(b"  \n{\"a\":1}\n", None), (true, vec![true]));
        assert_eq!(kinds(b"", None), (true, vec![]));
        // Set, the format is not told: OpenTelemetry read as lines is one bad line, and JSON as
        // messages has no framing.
        assert_eq!(kinds(&stream, Some(Format::Json)), (true, vec![true]));
        assert!(!kinds(b"{\"a\":1}\n", Some(Format::OpenTelemetry)).0);
    }
}
