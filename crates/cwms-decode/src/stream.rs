//! Large inputs a block of lines at a time, so that memory does not grow with the input.
//!
//! A raw object can be far larger than anything worth holding at once (a backfill's 200 MB gzip
//! object inflates to gigabytes of NDJSON). [`for_each_block`] inflates it as it reads and hands
//! the caller whole lines a block at a time; what the caller keeps of each block is its business.

use std::io::{BufRead, BufReader, Read};

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
    /// The reader itself failed (a connection cut, a disk error): not a property of the data.
    #[error("reading failed: {0}")]
    Read(#[source] std::io::Error),
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
    let mut source = BufReader::with_capacity(64 * 1024, Tracked { inner: reader, failed: false });
    let head = source.fill_buf().map_err(StreamError::Read)?;
    let gzip = is_gzip(head) || (head.len() == 1 && head[0] == GZIP_MAGIC[0]);
    let mut plain: Box<dyn Read + '_> = if gzip {
        Box::new(flate2::bufread::MultiGzDecoder::new(&mut source).take(max_decompressed_bytes.saturating_add(1)))
    } else {
        Box::new(&mut source)
    };
    let block_bytes = block_bytes.max(1);
    let mut block: Vec<u8> = Vec::with_capacity(block_bytes + block_bytes / 4);
    let mut total = 0u64;
    let mut line = 1usize;
    // How full the block must get before its whole lines are handed out: a block's size, or
    // more while one line is longer than that.
    let mut target = block_bytes;
    let mut scratch = vec![0u8; 256 * 1024];
    loop {
        let mut ended = false;
        while block.len() < target {
            // Read into a small scratch buffer and append, rather than zero-filling the rest of
            // the block before every read (which cost more than the inflating when the source
            // hands out small chunks).
            let want = (target - block.len()).min(scratch.len());
            let read = match plain.read(&mut scratch[..want]) {
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    drop(plain);
                    let failed = source.get_ref().failed;
                    return Err(if failed { StreamError::Read(e) } else { StreamError::Gzip { reason: e.to_string() } });
                }
            };
            block.extend_from_slice(&scratch[..read]);
            total += read as u64;
            if gzip && total > max_decompressed_bytes {
                return Err(StreamError::TooLarge { cap: max_decompressed_bytes });
            }
            if read == 0 {
                ended = true;
                break;
            }
        }
        let cut = if ended { Some(block.len()) } else { memchr::memrchr(b'\n', &block).map(|i| i + 1) };
        match cut {
            Some(0) => {}
            Some(cut) => {
                visit(&block[..cut], line);
                line += memchr::memchr_iter(b'\n', &block[..cut]).count();
                block.drain(..cut);
                target = block_bytes.max(block.len() + 1);
            }
            // No line ends in the block yet: read on, up to the longest line allowed.
            None if block.len() > MAX_LINE_BYTES => return Err(StreamError::LineTooLong { line }),
            None => target = block.len() + block_bytes,
        }
        if ended {
            return Ok(total);
        }
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
}
