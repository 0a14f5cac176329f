//! Never write a lake an engine cannot read: every Parquet reader we name reads a lake the real
//! `cwms` made, and every number it reads equals the reference computed from the raw zone
//! (tests/compat/). Each test names the venv and the readers; the Python scripts name the reader
//! and its version on every line, so a failure says which engine cannot read what.
//!
//! The lake is `cwms run` with re-sends (larger, smaller and equal counts: the merge law's
//! tie-break) and awkward names (`=`, `,`, `\`, `/`, spaces, `:` and non-ASCII in namespaces,
//! dimensions, metric names and units), plus one raw object of hand-written awkward data
//! (tests/compat/awkward.ndjson: namespaces that Hive escapes, dimension values with `\`, `,` and
//! `=`, -0.0, 1e300, 5e-324, a datum on the next UTC day, and duplicates that exercise the merge
//! law), compacted by `cwms compact`.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;

use cwms_tests::lambda_emulator::built_binary;
use cwms_tests::util::{describe, python_in};

const START: &str = "2026-01-15T10:30:00Z";

/// Makes the lake in `dir` and returns the bucket folder (holding `raw/` and `lake/`).
fn lake(dir: &Path) -> PathBuf {
    let bucket = dir.join("bucket");
    let run = Command::new(built_binary("cwms"))
        .args(["run", "--out", bucket.to_str().unwrap(), "--series", "60", "--minutes", "45", "--start", START, "--malformed", "0"])
        .args(["--resends", "0.1", "--awkward-names"])
        .output()
        .unwrap();
    assert!(run.status.success(), "cwms run: {}", describe(&run));

    let awkward = Path::new(env!("CARGO_MANIFEST_DIR")).join("compat/awkward.ndjson");
    let folder = bucket.join("raw/dt=2026-01-16/hour=00");
    std::fs::create_dir_all(&folder).unwrap();
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(&std::fs::read(&awkward).unwrap()).unwrap();
    std::fs::write(folder.join("cwms-compat-awkward.gz"), gz.finish().unwrap()).unwrap();
    // From the bucket folder, with the relative paths `cwms run` recorded in the checkpoint.
    let compact =
        Command::new(built_binary("cwms")).args(["compact", "--raw", "raw", "--lake", "lake"]).current_dir(&bucket).output().unwrap();
    assert!(compact.status.success(), "cwms compact: {}", describe(&compact));
    let stdout = String::from_utf8_lossy(&compact.stdout);
    assert!(stdout.contains("1 pending"), "the awkward object was not compacted: {stdout}");
    bucket
}

/// Runs one compatibility script in one venv over a fresh lake; every check must pass.
fn check(venv: &str, script: &str, extra: &[&str]) {
    let dir = tempfile::tempdir().unwrap();
    let bucket = lake(dir.path());
    let mut args = vec![bucket.to_str().unwrap()];
    args.extend_from_slice(extra);
    let output = python_in(venv, script, &args);
    let stdout = String::from_utf8_lossy(&output.stdout);
    let last = stdout.lines().rev().find(|l| l.contains(" passed, ")).unwrap_or("");
    assert!(
        output.status.success() && last.contains(" 0 failed") && !last.starts_with("0 passed"),
        "{script} in target/tools/{venv}: {}",
        describe(&output)
    );
}

#[test]
fn pyarrow_and_the_pinned_duckdb_read_every_number() {
    // target/tools/venv: pyarrow 26 and duckdb 1.4.4 (scripts/requirements-test.txt).
    check("venv", "tests/compat/check_readers.py", &["--readers", "pyarrow,duckdb"]);
}

#[test]
fn old_readers_read_every_number() {
    // pyarrow 14 and polars 1.30 (scripts/requirements-readers-old.txt): readers from before the
    // IEEE_754_TOTAL_ORDER column order, as the engines we do not control may be.
    check("readers-old-venv", "tests/compat/check_readers.py", &["--readers", "pyarrow,polars"]);
}

#[test]
fn current_readers_read_every_number() {
    // duckdb 2.x, polars 2.x and DataFusion (scripts/requirements-readers.txt).
    check("readers-venv", "tests/compat/check_readers.py", &["--readers", "duckdb,polars,datafusion"]);
}

#[test]
fn spark_reads_the_lake_through_the_athena_ddl_and_answers_the_cookbook() {
    // pyspark 4.x in local mode: the shipped DDL, partitions by MSCK and by ADD PARTITION, the
    // default and the Hive SerDe reader, and every cookbook query against check_cookbook's reference.
    check("readers-venv", "tests/compat/check_spark.py", &[]);
}
