//! What each fuzz target checks, as plain functions of the input bytes.
//!
//! The targets in `fuzz_targets/` are one line each, calling these; the stable test
//! `tests/integration/fuzz_regressions.rs` includes this file and replays every input kept under
//! `fuzz/regressions/<target>/` through the same function, so a crash found once stays a test
//! without nightly or libFuzzer. Each function panics (with a message saying which property broke)
//! on a bug and returns quietly on any input the code under test handles as it should.
//!
//! This file must build both as the `cwms-fuzz` library and as a module of `cwms-tests`: it uses
//! only cwms crates, `serde_json`, `base64` and `bytes`.

use std::borrow::Cow;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use cwms_decode::{Decoded, LineError, LineSummary};

/// A target's check: runs on any bytes, panics on a finding.
pub type Check = fn(&[u8]);

/// The targets, by the name of their binary and of their folder under `fuzz/regressions/`.
pub const TARGETS: [(&str, Check); 4] =
    [("decode", decode), ("transform", transform), ("lake_object", lake_object), ("checkpoint", checkpoint)];

/// The decompression cap the targets use: small, so that a gzip bomb found by the fuzzer costs
/// milliseconds, and far above any input the fuzzer makes otherwise.
const MAX_DECOMPRESSED_BYTES: usize = 1 << 20;

// ---------------------------------------------------------------------------------------------
// decode: the record decoder

/// The record decoder on arbitrary bytes: [`cwms_decode::decompress`], [`cwms_decode::decode_lines`],
/// [`cwms_decode::for_each_normalized`] and the streaming [`cwms_decode::for_each_block`].
///
/// - `for_each_normalized` sees the lines `decode_lines` sees: the same errors, and for each good
///   line a normalized line that is exactly [`cwms_model::Datum::write_json_line`]'s bytes and re-decodes to
///   the same datum;
/// - `for_each_block` hands out exactly the bytes `decompress` gives (or fails where it fails),
///   in whole lines with the right line numbers, and decoding its blocks one at a time (as the
///   compactor does) gives the datums and errors of decoding the whole input at once.
pub fn decode(data: &[u8]) {
    let plain = cwms_decode::decompress(data, MAX_DECOMPRESSED_BYTES);
    let whole = plain.as_deref().ok().map(|plain| (plain, cwms_decode::decode_lines(plain)));
    // Blocks of a few lines, of a size that varies with the input, so that block boundaries
    // fall everywhere (the compactor's blocks are megabytes, which the fuzzer's inputs never fill).
    stream(data, whole.as_ref().map(|(plain, decoded)| (*plain, decoded)), 16 + data.len() % 241);
    if let Some((plain, decoded)) = &whole {
        lines(plain, decoded);
    }
    if !matches!(plain, Ok(Cow::Borrowed(_))) {
        // Compressed or corrupt gzip: its bytes as lines are garbage, which must not panic either.
        lines(data, &cwms_decode::decode_lines(data));
    }
}

/// `decode_lines` (which gave `decoded`) and `for_each_normalized` agree on `bytes`.
fn lines(bytes: &[u8], decoded: &Decoded<'_>) {
    let mut out = Vec::new();
    let mut good: Vec<(std::ops::Range<usize>, String, String, i64)> = Vec::new();
    let mut errors: Vec<LineError> = Vec::new();
    cwms_decode::for_each_normalized(bytes, &mut out, |out, start, item| match item {
        Ok(LineSummary { namespace, metric_name, timestamp_ms }) => {
            good.push((start..out.len(), namespace.to_owned(), metric_name.to_owned(), timestamp_ms));
        }
        Err(error) => {
            assert_eq!(out.len(), start, "for_each_normalized wrote bytes for a bad line ({error})");
            errors.push(error);
        }
    });
    assert_eq!(errors, decoded.errors, "for_each_normalized and decode_lines see different bad lines");
    assert_eq!(good.len(), decoded.datums.len(), "for_each_normalized and decode_lines see different numbers of good lines");
    let mut end = 0;
    for ((range, namespace, metric_name, timestamp_ms), datum) in good.iter().zip(&decoded.datums) {
        assert_eq!(range.start, end, "normalized lines are not written one after another");
        end = range.end;
        let line = &out[range.clone()];
        let mut expected = Vec::new();
        datum.write_json_line(&mut expected);
        assert_eq!(
            String::from_utf8_lossy(line),
            String::from_utf8_lossy(&expected),
            "for_each_normalized's line is not write_json_line's for the datum decode_lines gives"
        );
        assert_eq!((namespace.as_str(), metric_name.as_str(), *timestamp_ms), (&*datum.namespace, &*datum.metric_name, datum.timestamp_ms));
        let again = cwms_decode::decode_lines(line);
        assert!(again.is_clean(), "a normalized line does not decode: {:?} ({:?})", String::from_utf8_lossy(line), again.errors);
        assert_eq!(again.datums.as_slice(), std::slice::from_ref(datum), "a normalized line decodes to another datum");
    }
    assert_eq!(end, out.len(), "for_each_normalized left bytes that belong to no line");
}

/// `for_each_block` over `data`, against what `decompress` made of it and what `decode_lines`
/// made of that (`None`: `decompress` failed).
fn stream(data: &[u8], whole: Option<(&[u8], &Decoded<'_>)>, block_bytes: usize) {
    let mut blocks: Vec<(Vec<u8>, usize)> = Vec::new();
    let streamed = cwms_decode::for_each_block(data, MAX_DECOMPRESSED_BYTES as u64, block_bytes, |block, first_line| {
        blocks.push((block.to_vec(), first_line));
    });
    // A one-byte input that is the first byte of the gzip magic is taken for gzip by the stream
    // (a reader may hand out one byte first) and for plain bytes by `decompress`.
    if data == [0x1f] {
        return;
    }
    let mut line = 1;
    for (i, (block, first_line)) in blocks.iter().enumerate() {
        assert!(!block.is_empty(), "for_each_block handed out an empty block");
        assert_eq!(*first_line, line, "block {i} starts at the wrong line number");
        assert!(i + 1 == blocks.len() || block.ends_with(b"\n"), "block {i} does not end with a whole line");
        line += block.iter().filter(|&&b| b == b'\n').count();
    }
    let (Ok(total), Some((plain, whole))) = (&streamed, whole) else {
        // Where one fails, the other must: the same bytes are either readable or not.
        assert!(
            streamed.is_err() && whole.is_none(),
            "for_each_block gave {:?} where decompress gave {}",
            streamed.as_ref().map_err(ToString::to_string),
            if whole.is_some() { "bytes" } else { "an error" }
        );
        return;
    };
    let joined: Vec<u8> = blocks.iter().flat_map(|(block, _)| block.iter().copied()).collect();
    assert_eq!(*total, joined.len() as u64, "for_each_block's count is not the bytes it handed out");
    assert!(joined == plain, "for_each_block's blocks are not the bytes decompress gives");
    // Decoding block by block, as the compactor does, sees what decoding the whole input sees.
    // A byte-order mark is skipped at the start of the input only, so a later block that starts
    // with one is decoded after a blank line, which keeps the mark in its first line (the
    // compactor rejects that line itself, the same way).
    let mut by_block = Decoded::default();
    let prefixed: Vec<Vec<u8>> = blocks.iter().map(|(block, _)| [b"\n".as_slice(), block].concat()).collect();
    for (i, (block, first_line)) in blocks.iter().enumerate() {
        let (decoded, offset) = if i > 0 && block.starts_with(b"\xEF\xBB\xBF") {
            (cwms_decode::decode_lines(&prefixed[i]), first_line - 2)
        } else {
            (cwms_decode::decode_lines(block), first_line - 1)
        };
        by_block.datums.extend(decoded.datums);
        by_block.errors.extend(decoded.errors.into_iter().map(|e| LineError { line: e.line + offset, ..e }));
    }
    assert_eq!(by_block.errors, whole.errors, "decoding block by block sees other bad lines than decoding the whole");
    assert_eq!(by_block.datums, whole.datums, "decoding block by block gives other datums than decoding the whole");
}

// ---------------------------------------------------------------------------------------------
// transform: the Firehose event reader and the transform

/// [`cwms_model::firehose::FirehoseEvent::from_json`] on arbitrary bytes and, when it reads an
/// event, [`cwms_transform::transform_to_json`] under the default response cap and under caps
/// the event's records can exceed. The response is valid JSON, answers every record id once in
/// input order, fits the cap unless `stats.over_budget`, carries only what the contract allows
/// (non-`Ok` entries: id, result and empty data; `Ok` entries: normalized lines without
/// duplicates and the partition keys), counts what it says, and is byte for byte what serde_json
/// makes of [`cwms_transform::transform`]'s response.
pub fn transform(data: &[u8]) {
    let Ok(event) = cwms_model::firehose::FirehoseEvent::from_json(data) else { return };
    let floor: usize = event.records.iter().map(|r| r.record_id.len() + 64).sum();
    for cap in [cwms_transform::MAX_RESPONSE_BYTES, floor + data.len() / 4, floor / 2] {
        let config =
            cwms_transform::Config { max_decompressed_bytes: MAX_DECOMPRESSED_BYTES, max_response_bytes: cap, ..Default::default() };
        respond(&config, &event);
    }
}

fn respond(config: &cwms_transform::Config, event: &cwms_model::firehose::FirehoseEvent<'_>) {
    let outcome = cwms_transform::transform_to_json(config, event);
    let body = &outcome.response;
    let stats = &outcome.stats;
    let cap = config.max_response_bytes;
    assert!(stats.over_budget || body.len() <= cap, "a response of {} bytes over the cap of {cap} without over_budget", body.len());
    let value: serde_json::Value = match serde_json::from_slice(body) {
        Ok(value) => value,
        Err(e) => panic!("the response is not JSON ({e}): {}", String::from_utf8_lossy(body)),
    };
    let object = value.as_object().expect("the response is an object");
    assert_eq!(object.len(), 1, "the response has fields besides records: {value}");
    let records = object["records"].as_array().expect("records is an array");
    assert_eq!(records.len(), event.records.len(), "not one entry per record");
    let (mut ok, mut dropped, mut failed, mut datums) = (0, 0, 0, 0);
    for (entry, record) in records.iter().zip(&event.records) {
        let entry = entry.as_object().expect("an entry is an object");
        assert_eq!(entry["recordId"].as_str(), Some(record.record_id.as_str()), "entries out of order or ids changed");
        let data = entry["data"].as_str().expect("every entry has data");
        let data = BASE64.decode(data).expect("data is base64");
        match entry["result"].as_str() {
            Some("Ok") => {
                ok += 1;
                assert_eq!(entry.len(), 4, "an Ok entry has other fields than recordId, result, data and metadata");
                let keys = &entry["metadata"]["partitionKeys"];
                assert!(keys["dt"].is_string() && keys["hour"].is_string(), "an Ok entry without partition keys");
                assert!(data.is_empty() || data.ends_with(b"\n"), "an Ok entry's last line does not end with a newline");
                let decoded = cwms_decode::decode_lines(&data);
                assert!(decoded.is_clean(), "an Ok entry's lines do not decode: {:?}", decoded.errors);
                let mut lines: Vec<&[u8]> = data.split_inclusive(|&b| b == b'\n').collect();
                assert_eq!(lines.len(), decoded.datums.len(), "an Ok entry holds blank lines");
                datums += lines.len() as u64;
                lines.sort_unstable();
                assert!(lines.windows(2).all(|w| w[0] != w[1]), "an Ok entry holds exact duplicates");
            }
            Some(result @ ("Dropped" | "ProcessingFailed")) => {
                if result == "Dropped" {
                    dropped += 1;
                } else {
                    failed += 1;
                }
                assert_eq!(entry.len(), 3, "a {result} entry carries more than recordId, result and data");
                assert!(data.is_empty(), "a {result} entry carries data");
            }
            other => panic!("result {other:?} is not one Firehose knows"),
        }
    }
    let n = event.records.len() as u64;
    assert_eq!(
        (stats.records_in, stats.records_ok, stats.records_dropped, stats.records_failed),
        (n, ok, dropped, failed),
        "stats miscount"
    );
    assert_eq!(stats.datums, datums, "stats.datums is not the lines of the Ok entries");
    assert_eq!(outcome.failures.len() as u64, failed, "not one failure reason per ProcessingFailed record");
    let typed = cwms_transform::transform(config, event);
    let expected = serde_json::to_vec(&typed.response).expect("a response serializes");
    assert!(*body == expected, "transform_to_json's bytes are not serde_json's of transform's response");
}

// ---------------------------------------------------------------------------------------------
// lake_object: the lake-object reader

/// [`cwms_parquet::decode`] and [`cwms_parquet::row_count`] on arbitrary bytes, which must never
/// panic; a file that decodes has as many rows as its footer says, and writing its partition
/// again gives a file that decodes to the same bytes once more.
///
/// The input is a lake object's key (`metrics_1m/dt=2026-01-15/namespace=AWS%2FEC2/10.parquet`),
/// a newline and the file's bytes, so that seeds of every namespace and table decode deep into
/// their rows (the `series_id` checked depends on the namespace); an input without a key that
/// [`cwms_parquet::LakeObject::parse`] reads is all file, for `metrics_1m/dt=2026-01-15/namespace=AWS%2FEC2/10.parquet`.
pub fn lake_object(data: &[u8]) {
    let keyed = data.iter().position(|&b| b == b'\n').and_then(|at| {
        let key = std::str::from_utf8(&data[..at]).ok()?;
        Some((cwms_parquet::LakeObject::parse(key).ok()?, &data[at + 1..]))
    });
    let (object, file) = match keyed {
        Some(keyed) => keyed,
        None => (cwms_parquet::LakeObject::minutes("2026-01-15", "AWS/EC2", 10).expect("a valid object"), data),
    };
    // cwms_parquet catches a panic of the Parquet reader (arrow-rs asserts on some damaged
    // pages rather than returning an error) and returns Error::Corrupt naming the object; so a
    // panic raised inside the parquet crate is handled, not a finding. libFuzzer's own hook
    // would abort on it before the catch, so it is passed over here; every other panic aborts.
    static HOOK: std::sync::Once = std::sync::Once::new();
    HOOK.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if !info.location().is_some_and(|at| at.file().contains("/parquet-")) {
                previous(info)
            }
        }));
    });
    let file = bytes::Bytes::copy_from_slice(file);
    let rows = cwms_parquet::row_count(file.clone(), "fuzz");
    let Ok(partition) = cwms_parquet::decode(file, &object, "fuzz") else { return };
    assert_eq!(rows.ok(), Some(partition.len() as u64), "row_count is not the rows decode reads");
    let options = cwms_parquet::WriteOptions::default();
    let written = cwms_parquet::encode(&partition, &object, &options).expect("a decoded partition encodes");
    let again = match cwms_parquet::decode(written.clone(), &object, "fuzz") {
        Ok(again) => again,
        Err(e) => panic!("a file cwms wrote does not read back: {e}"),
    };
    let rewritten = cwms_parquet::encode(&again, &object, &options).expect("a decoded partition encodes");
    assert!(written == rewritten, "writing, reading and writing a partition again gives other bytes");
}

// ---------------------------------------------------------------------------------------------
// checkpoint: the checkpoint reader

/// [`cwms_compactor::Checkpoint::from_json`] on arbitrary bytes and, when it reads a checkpoint,
/// [`cwms_compactor::Checkpoint::reconcile`] with a listing made from the keys the checkpoint
/// names (some folders left out, as if expired), [`cwms_compactor::Checkpoint::is_processed`] on
/// every listed key, and [`cwms_compactor::Checkpoint::to_json`], whose JSON reads back equal.
pub fn checkpoint(data: &[u8]) {
    use cwms_compactor::Checkpoint;
    let Ok(mut checkpoint) = Checkpoint::from_json(data, "raw", |_| false) else { return };
    // What the checkpoint holds, from its own JSON (its fields are private).
    let json: serde_json::Value = serde_json::from_slice(&checkpoint.to_json()).expect("to_json writes JSON");
    let empty = serde_json::Map::new();
    let folders = json["folders"].as_object().unwrap_or(&empty);
    let failed = json.get("failed").and_then(|f| f.as_object()).unwrap_or(&empty);
    let key = |folder: &str, name: &str| if folder.is_empty() { name.to_owned() } else { format!("{folder}/{name}") };
    let mut listing = Vec::new();
    let mut processed = Vec::new();
    for (i, (folder, entry)) in folders.iter().enumerate() {
        // Every third folder is gone from the listing, as if a lifecycle rule expired it.
        if i % 3 == 2 {
            continue;
        }
        let newest_ms = entry["newest_ms"].as_i64().unwrap_or(0);
        if let Some(names) = entry["processed"].as_array() {
            for name in names.iter().filter_map(|n| n.as_str()) {
                let key = key(folder, name);
                // A name with a `/` lives in another folder: only the others are known processed.
                if !name.contains('/') {
                    processed.push(key.clone());
                }
                listing.push(cwms_store::ObjectMeta::new(&key, 1, newest_ms, None));
            }
        } else {
            // A done folder (version 1 or 2): as many objects as it counts, up to a few.
            let objects = entry["objects"].as_u64().unwrap_or(0).min(8);
            for n in 0..objects {
                listing.push(cwms_store::ObjectMeta::new(key(folder, &format!("{n}.gz")), 1, newest_ms, None));
            }
        }
    }
    for key in failed.keys() {
        listing.push(cwms_store::ObjectMeta::new(key, 1, 0, None));
    }
    checkpoint.reconcile(&listing);
    for object in &listing {
        let once = checkpoint.is_processed(object, false);
        let retried = checkpoint.is_processed(object, true);
        if failed.contains_key(&object.key) {
            assert!(once && !retried, "a failed key {:?} is not skipped, or not retried when asked", object.key);
        } else {
            assert_eq!(once, retried, "retry_failed changed the answer for {:?}, which has not failed", object.key);
        }
        if processed.contains(&object.key) {
            assert!(once, "{:?} is recorded as processed but is_processed says no", object.key);
        }
    }
    let written = checkpoint.to_json();
    let back = match Checkpoint::from_json(&written, "raw", |_| false) {
        Ok(back) => back,
        Err(e) => panic!("the checkpoint cwms wrote does not read back ({e}): {}", String::from_utf8_lossy(&written)),
    };
    assert_eq!(back, checkpoint, "the checkpoint read back is not the one written");
    assert!(back.to_json() == written, "writing the checkpoint read back gives other bytes");
}
