//! Metric-stream bytes in, datums and per-line problems out.
//!
//! The input is what CloudWatch puts in one Firehose record, or what Firehose writes into one
//! raw S3 object: JSON objects separated by `\n` (`\r\n` tolerated, blank lines skipped, trailing
//! newline optional), possibly gzip-wrapped. A bad line is data, not an error: it comes back as a
//! [`LineError`] naming the line and the reason, beside the datums of the good lines, and the
//! caller decides (the transform fails the whole record, the compactor reports the object).
//!
//! Nothing here does IO, reads the environment or needs an async runtime.

use std::borrow::Cow;
use std::io::Read;

use cwms_model::Datum;

mod fast;
mod line;
mod normalize;
pub mod otel;
mod rules;
mod stream;

pub use line::{LineProblem, decode_line};
pub use normalize::LineSummary;
pub use stream::{MAX_LINE_BYTES, MAX_MESSAGE_BYTES, Part, StreamError, for_each_block, for_each_part};

/// The default cap on decompressed bytes for one input: far above what one Firehose record
/// (at most 1,000 KiB before compression) or one raw object from a 128 MiB Firehose buffer can
/// legitimately hold, and far below what would exhaust a Lambda's memory.
pub const DEFAULT_MAX_DECOMPRESSED_BYTES: usize = 256 * 1024 * 1024;

/// What can go wrong with an input as a whole (as opposed to one of its lines).
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum Error {
    /// The input starts with the gzip magic bytes but does not decompress.
    #[error("invalid gzip data: {reason}")]
    Gzip { reason: String },
    /// The input decompresses to more bytes than allowed (a gzip bomb, or a misconfigured cap).
    #[error("gzip data decompresses to more than {cap} bytes (the decompression cap)")]
    TooLarge { cap: usize },
}

/// Crate result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// A line that could not be decoded into a datum.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("line {line}: {problem}")]
pub struct LineError {
    /// 1-based line number within the (decompressed) input.
    pub line: usize,
    pub problem: LineProblem,
}

/// The outcome of decoding one input.
#[derive(Debug, Default)]
pub struct Decoded<'a> {
    /// The datums of the good lines, in input order.
    pub datums: Vec<Datum<'a>>,
    /// The bad lines, in input order.
    pub errors: Vec<LineError>,
}

impl Decoded<'_> {
    /// True when every non-blank line decoded.
    pub fn is_clean(&self) -> bool {
        self.errors.is_empty()
    }
}

const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];

/// The UTF-8 byte-order mark.
const UTF8_BOM: &[u8] = b"\xEF\xBB\xBF";

/// True when the bytes start with the gzip magic number.
pub fn is_gzip(bytes: &[u8]) -> bool {
    bytes.starts_with(&GZIP_MAGIC)
}

/// Returns the plain bytes of an input: decompressed when it is gzip (detected by its magic
/// bytes, concatenated members included), borrowed unchanged otherwise.
///
/// Decompression stops as soon as the output would exceed `max_decompressed_bytes`, so a gzip
/// bomb costs at most that much memory and the time to inflate it.
pub fn decompress(bytes: &[u8], max_decompressed_bytes: usize) -> Result<Cow<'_, [u8]>> {
    if !is_gzip(bytes) {
        return Ok(Cow::Borrowed(bytes));
    }
    let mut out = Vec::with_capacity(bytes.len().saturating_mul(4).min(max_decompressed_bytes));
    let limit = max_decompressed_bytes as u64 + 1;
    let mut reader = flate2::read::MultiGzDecoder::new(bytes).take(limit);
    reader.read_to_end(&mut out).map_err(|e| Error::Gzip { reason: e.to_string() })?;
    if out.len() > max_decompressed_bytes {
        return Err(Error::TooLarge { cap: max_decompressed_bytes });
    }
    Ok(Cow::Owned(out))
}

/// [`decode_line`] for a line already known to be UTF-8, with the same result.
///
/// Lines of the common shape go through a fast path written for them (`fast.rs`); the rest, and
/// every bad line, through serde_json, which then skips checking every string again as UTF-8.
pub fn decode_line_str(line: &str) -> std::result::Result<Datum<'_>, LineProblem> {
    fast::decode(line).map_or_else(|| line::decode_str(line), Ok)
}

/// Decodes newline-separated metric-stream JSON (already decompressed).
pub fn decode_lines(bytes: &[u8]) -> Decoded<'_> {
    let mut decoded = Decoded { datums: Vec::with_capacity(bytes.len() / 256 + 1), errors: Vec::new() };
    for_each_datum(bytes, |item| match item {
        Ok(datum) => decoded.datums.push(datum.clone()),
        Err(error) => decoded.errors.push(error),
    });
    decoded
}

/// Decodes newline-separated metric-stream JSON (already decompressed) a line at a time, handing
/// each non-blank line's datum, or its error, to `visit` in input order.
///
/// This is [`decode_lines`] without the vector of datums: lines of the common shape are decoded
/// into one datum that is reused from line to line, so the usual line allocates nothing. The
/// datum lent to `visit` lives only for the call.
pub fn for_each_datum<'a>(bytes: &'a [u8], mut visit: impl FnMut(std::result::Result<&Datum<'a>, LineError>)) {
    // Checking the whole input as UTF-8 once is much cheaper than serde_json checking every string
    // of every line; an input that is not UTF-8 takes the byte path, whose errors name the line.
    if let Ok(text) = simdutf8::basic::from_utf8(bytes) {
        let mut reused = fast::empty_datum();
        for (index, line) in text_lines(text) {
            decode_text_line(index, line, &mut reused, &mut visit);
        }
        return;
    }
    for (index, line) in lines(bytes) {
        match decode_line(line) {
            Ok(datum) => visit(Ok(&datum)),
            Err(problem) => visit(Err(LineError { line: index + 1, problem })),
        }
    }
}

/// One line of UTF-8 input: the fast path into `reused`, or else serde_json.
fn decode_text_line<'a>(
    index: usize,
    line: &'a str,
    reused: &mut Datum<'a>,
    visit: impl FnOnce(std::result::Result<&Datum<'a>, LineError>),
) {
    if fast::decode_into(line, reused).is_some() {
        return visit(Ok(reused));
    }
    match line::decode_str(line) {
        Ok(datum) => visit(Ok(&datum)),
        Err(problem) => visit(Err(LineError { line: index + 1, problem })),
    }
}

/// Decodes newline-separated metric-stream JSON (already decompressed) straight to normalized
/// lines: each non-blank line that is a valid datum gets its normalized line
/// ([`Datum::write_json_line`]'s bytes) appended to `out`, and then `visit` is called with `out`,
/// where that line starts, and the datum's summary; a bad line appends nothing and `visit` gets
/// its error. `visit` may truncate `out` back to the line's start to leave the line out.
///
/// This is the transform's loop. Lines as CloudWatch writes them go from input bytes to output
/// bytes without becoming a [`Datum`], which skips most of the work on numbers and strings; any
/// other line goes through [`for_each_datum`]'s path, so both give the same lines and errors.
pub fn for_each_normalized(
    bytes: &[u8],
    out: &mut Vec<u8>,
    mut visit: impl FnMut(&mut Vec<u8>, usize, std::result::Result<LineSummary<'_>, LineError>),
) {
    /// A line that took the datum path: its datum written out, or its error.
    fn write<V: FnMut(&mut Vec<u8>, usize, std::result::Result<LineSummary<'_>, LineError>)>(
        out: &mut Vec<u8>,
        visit: &mut V,
        item: std::result::Result<&Datum<'_>, LineError>,
    ) {
        let start = out.len();
        match item {
            Ok(datum) => {
                datum.write_json_line(out);
                visit(out, start, Ok(LineSummary::of(datum)));
            }
            Err(error) => visit(out, start, Err(error)),
        }
    }
    let Ok(text) = simdutf8::basic::from_utf8(bytes) else {
        return for_each_datum(bytes, |item| write(out, &mut visit, item));
    };
    let mut scratch = normalize::Scratch::default();
    let mut reused = fast::empty_datum();
    for (index, line) in text_lines(text) {
        let start = out.len();
        match normalize::normalize(line, out, &mut scratch) {
            Some(summary) => visit(out, start, Ok(summary)),
            None => decode_text_line(index, line, &mut reused, |item| write(out, &mut visit, item)),
        }
    }
}

/// The non-blank lines of an input with their 0-based line index; `\r` before `\n` is dropped.
pub fn lines(bytes: &[u8]) -> impl Iterator<Item = (usize, &[u8])> {
    line_ranges(bytes).map(|(i, range)| (i, &bytes[range]))
}

/// [`lines`] of an input known to be UTF-8 (the same lines, as `str`).
fn text_lines(text: &str) -> impl Iterator<Item = (usize, &str)> {
    // The ends are at `\n` or `\r` (ASCII), so slicing the text there cannot fail.
    line_ranges(text.as_bytes()).map(|(i, range)| (i, &text[range]))
}

/// Where [`lines`] are: the input split at each `\n` (found with `memchr`'s vectorized search,
/// as lines are hundreds of bytes long), without a `\r` before it, blank pieces left out.
///
/// A UTF-8 byte-order mark at the very start of the input is not part of the first line: an
/// editor or a Windows tool that wrote the file put it there, and it is not JSON.
fn line_ranges(bytes: &[u8]) -> impl Iterator<Item = (usize, std::ops::Range<usize>)> {
    let mut start = if bytes.starts_with(UTF8_BOM) { UTF8_BOM.len() } else { 0 };
    let ends = memchr::memchr_iter(b'\n', bytes).chain([bytes.len()]);
    ends.enumerate().filter_map(move |(i, end)| {
        let line = start..end - usize::from(end > start && bytes[end - 1] == b'\r');
        start = end + 1;
        (!bytes[line.clone()].iter().all(u8::is_ascii_whitespace)).then_some((i, line))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    const GOOD: &str = r#"{"metric_stream_name":"S","account_id":"1","region":"us-east-1","namespace":"AWS/EC2","metric_name":"CPUUtilization","dimensions":{"InstanceId":"i-1"},"timestamp":1611929640000,"value":{"count":1.0,"sum":2.0,"max":2.0,"min":2.0},"unit":"Percent"}"#;

    fn gzip(bytes: &[u8]) -> Vec<u8> {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        e.write_all(bytes).unwrap();
        e.finish().unwrap()
    }

    /// Decodes `input` and renders the outcome as one line per datum (`ok metric@ts`) or error.
    fn check(input: &str, expected: &[&str]) {
        let decoded = decode_lines(input.as_bytes());
        let mut got: Vec<String> = decoded.datums.iter().map(|d| format!("ok {}@{}", d.metric_name, d.timestamp_ms)).collect();
        got.extend(decoded.errors.iter().map(|e| e.to_string()));
        assert_eq!(got, expected, "input: {input}");
    }

    #[test]
    fn line_splitting() {
        check("", &[]);
        check("\n\n  \n", &[]);
        check(GOOD, &["ok CPUUtilization@1611929640000"]);
        check(&format!("{GOOD}\n"), &["ok CPUUtilization@1611929640000"]);
        check(&format!("{GOOD}\r\n\r\n{GOOD}"), &["ok CPUUtilization@1611929640000", "ok CPUUtilization@1611929640000"]);
        check(&format!("\n{GOOD}\nnot json\n"), &["ok CPUUtilization@1611929640000", "line 3: invalid JSON: expected ident at column 2"]);
    }

    /// [`for_each_datum`] (fast path, reused datum) sees, line by line, what serde_json's byte
    /// path makes of each line on its own, and [`for_each_normalized`] writes those datums' lines.
    fn check_line_by_line(input: &[u8]) {
        let mut seen = Vec::new();
        for_each_datum(input, |item| seen.push(item.cloned()));
        let expected: Vec<_> =
            lines(input).map(|(i, line)| decode_line(line).map_err(|problem| LineError { line: i + 1, problem })).collect();
        assert_eq!(seen, expected);
        // for_each_normalized: each good line's normalized line where `visit` is told it starts,
        // with the datum's summary; nothing written for a bad line, whose error comes the same.
        let mut out = b"before".to_vec();
        let mut visited = Vec::new();
        for_each_normalized(input, &mut out, |out, start, item| {
            visited.push(item.map(|summary| {
                (summary.namespace.to_owned(), summary.metric_name.to_owned(), summary.timestamp_ms, out[start..].to_vec())
            }));
        });
        let mut written = b"before".to_vec();
        let expected: Vec<_> = expected
            .into_iter()
            .map(|item| {
                item.map(|datum| {
                    let mut line = Vec::new();
                    datum.write_json_line(&mut line);
                    written.extend_from_slice(&line);
                    (datum.namespace.to_string(), datum.metric_name.to_string(), datum.timestamp_ms, line)
                })
            })
            .collect();
        assert_eq!(visited, expected);
        assert_eq!(out, written);
    }

    #[test]
    fn line_by_line_decoding_sees_what_each_line_decodes_to() {
        let other = GOOD.replace(r#""dimensions":{"InstanceId":"i-1"}"#, r#""dimensions":{}"#).replace(r#""unit":"Percent""#, r#""x":1"#);
        let escaped = GOOD.replace("i-1", "i-\\u0031");
        for input in [
            String::new(),
            format!("{GOOD}\n{other}\nnot json\n\n{escaped}\n{GOOD}"),
            format!("{escaped}\r\n{GOOD}\n{}", GOOD.replace(r#","unit":"Percent""#, "")),
        ] {
            check_line_by_line(input.as_bytes());
        }
        let mut not_utf8 = format!("{GOOD}\n").into_bytes();
        not_utf8.extend_from_slice(b"{\"namespace\":\"\xff\"}\n");
        not_utf8.extend_from_slice(GOOD.as_bytes());
        check_line_by_line(&not_utf8);
    }

    #[test]
    fn input_that_is_not_utf8_still_decodes_its_good_lines() {
        let mut input = format!("{GOOD}\n").into_bytes();
        input.extend_from_slice(b"{\"namespace\":\"\xff\"}\n");
        input.extend_from_slice(GOOD.as_bytes());
        let decoded = decode_lines(&input);
        assert_eq!(decoded.datums.len(), 2);
        assert_eq!(decoded.errors.len(), 1);
        assert_eq!(decoded.errors[0].line, 2);
        // Both paths read a UTF-8 line the same way.
        assert_eq!(decode_line(GOOD.as_bytes()), decode_line_str(GOOD));
        assert_eq!(decode_line(b"{\"x\":"), decode_line_str("{\"x\":"));
    }

    #[test]
    fn a_byte_order_mark_at_the_start_is_not_part_of_the_first_line() {
        check(&format!("\u{feff}{GOOD}\n{GOOD}"), &["ok CPUUtilization@1611929640000", "ok CPUUtilization@1611929640000"]);
        check(&format!("{GOOD}\n\u{feff}{GOOD}"), &["ok CPUUtilization@1611929640000", "line 2: invalid JSON: expected value at column 1"]);
        check_line_by_line(format!("\u{feff}{GOOD}").as_bytes());
    }

    #[test]
    fn plain_input_is_borrowed() {
        assert!(matches!(decompress(GOOD.as_bytes(), 10).unwrap(), Cow::Borrowed(_)));
    }

    #[test]
    fn gzip_round_trip_and_multiple_members() {
        let mut two = gzip(GOOD.as_bytes());
        two.extend(gzip(format!("\n{GOOD}\n").as_bytes()));
        let plain = decompress(&two, 1 << 20).unwrap();
        assert_eq!(decode_lines(&plain).datums.len(), 2);
    }

    #[test]
    fn gzip_bomb_is_stopped_at_the_cap() {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        e.write_all(&vec![b' '; 50 << 20]).unwrap();
        let bomb = e.finish().unwrap();
        assert!(bomb.len() < 100 << 10, "a bomb is small: {}", bomb.len());
        assert_eq!(decompress(&bomb, 1 << 20).unwrap_err(), Error::TooLarge { cap: 1 << 20 });
        // Exactly at the cap is allowed.
        let exact = gzip(&vec![b'\n'; 1000]);
        assert_eq!(decompress(&exact, 1000).unwrap().len(), 1000);
    }

    #[test]
    fn truncated_and_corrupt_gzip_are_errors() {
        let whole = gzip(GOOD.as_bytes());
        let truncated = &whole[..whole.len() / 2];
        let err = decompress(truncated, 1 << 20).unwrap_err();
        assert!(matches!(err, Error::Gzip { .. }), "{err}");
        let mut corrupt = whole.clone();
        corrupt[12] ^= 0xff;
        corrupt[20] ^= 0xff;
        assert!(matches!(decompress(&corrupt, 1 << 20).unwrap_err(), Error::Gzip { .. }));
        assert!(matches!(decompress(&[0x1f, 0x8b], 1 << 20).unwrap_err(), Error::Gzip { .. }));
    }
}
