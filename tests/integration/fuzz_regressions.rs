//! The fuzz targets' inputs worth keeping, replayed on stable: every file under
//! `fuzz/regressions/<target>/` (a crash a fuzz run found, minimized) goes through the same check
//! its target runs (`fuzz/src/lib.rs`, included here as a module), so a fixed crash stays fixed
//! without nightly or libFuzzer. `scripts/fuzz` runs the targets themselves.

use std::path::{Path, PathBuf};

use cwms_tests::util::{cwms, describe, files};

#[path = "../../fuzz/src/lib.rs"]
mod fuzz_checks;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Runs `check` on `input`; the panic's message if it panicked.
fn replay(check: fn(&[u8]), input: &[u8]) -> Option<String> {
    let outcome = std::panic::catch_unwind(|| check(input));
    let payload = outcome.err()?;
    let message = payload.downcast_ref::<String>().cloned().or_else(|| payload.downcast_ref::<&str>().map(|s| s.to_string()));
    Some(message.unwrap_or_else(|| "a panic without a message".to_owned()))
}

#[test]
fn every_kept_fuzz_input_passes_its_target() {
    let root = repo().join("fuzz/regressions");
    let mut failures = Vec::new();
    let mut replayed = 0;
    for (target, check) in fuzz_checks::TARGETS {
        let dir = root.join(target);
        if !dir.is_dir() {
            continue;
        }
        for (name, input) in files(&dir) {
            replayed += 1;
            if let Some(message) = replay(check, &input) {
                failures.push(format!("fuzz/regressions/{target}/{name}: {message}"));
            }
        }
    }
    assert!(failures.is_empty(), "{} of {replayed} kept fuzz inputs fail:\n{}", failures.len(), failures.join("\n"));
}

#[test]
fn every_regressions_folder_is_a_fuzz_target() {
    // A folder named after no target would never be replayed.
    let Ok(entries) = std::fs::read_dir(repo().join("fuzz/regressions")) else { return };
    let known: Vec<&str> = fuzz_checks::TARGETS.iter().map(|(name, _)| *name).collect();
    for entry in entries {
        let path = entry.expect("a folder entry").path();
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or_default().to_owned();
        assert!(path.is_file() || known.contains(&name.as_str()), "fuzz/regressions/{name} is not one of the targets {known:?}");
    }
}

#[test]
fn the_fuzz_checks_accept_the_sample_data() {
    // The checks themselves must pass on inputs the code handles well, or a fuzz run reports
    // crashes that are the harness's own.
    let sample = repo().join("sample-data");
    let read = |name: &str| std::fs::read(sample.join(name)).expect("sample data");
    let metrics = read("metrics.ndjson");
    let event = read("firehose-event.json");
    for (target, input) in [("decode", &metrics), ("transform", &event)] {
        let check = fuzz_checks::TARGETS.iter().find(|(name, _)| *name == target).expect("a target").1;
        assert_eq!(replay(check, input), None, "{target} on sample data");
    }
    let raw = std::fs::read_dir(sample.join("raw/2026/01/15/10")).expect("sample raw objects");
    for object in raw {
        let bytes = std::fs::read(object.expect("an entry").path()).expect("a raw object");
        assert_eq!(replay(fuzz_checks::decode, &bytes), None, "decode on a sample raw object");
    }
    let checkpoint = br#"{"version":2,"raw":"raw","folders":{"2026/01/15/10":{"processed":["a.gz","b.gz"]},"2026/01/15/09":{"objects":2,"newest_ms":1768467600000,"names":""}},"failed":{"2026/01/15/10/c.gz":"bad gzip"}}"#;
    assert_eq!(replay(fuzz_checks::checkpoint, checkpoint), None, "checkpoint");
    assert_eq!(replay(fuzz_checks::lake_object, b"metrics_1m/dt=2026-01-15/namespace=AWS%2FEC2/10.parquet\nPAR1"), None, "lake_object");
}

#[test]
fn the_fuzz_checks_accept_a_real_lake_and_its_checkpoint() {
    // What scripts/fuzz seeds the lake_object and checkpoint targets with, made the same way.
    let out = tempfile::tempdir().unwrap();
    let dir = out.path().to_str().unwrap();
    let run = cwms(&["run", "--out", dir, "--series", "20", "--minutes", "10", "--start", "2026-01-15T10:00:00Z"], &[]);
    assert!(run.status.success(), "{}", describe(&run));
    let lake = files(&out.path().join("lake"));
    let mut objects = 0;
    for (key, bytes) in &lake {
        if key.ends_with(".parquet") {
            objects += 1;
            let input = [key.as_bytes(), b"\n", bytes].concat();
            assert_eq!(replay(fuzz_checks::lake_object, &input), None, "lake_object on {key}");
        }
    }
    assert!(objects > 0, "no lake objects in {:?}", lake.keys().collect::<Vec<_>>());
    let checkpoint = &lake["_cwms/checkpoint.json"];
    assert_eq!(replay(fuzz_checks::checkpoint, checkpoint), None, "checkpoint on the run's checkpoint");
}
