//! The committed sample data is exactly what the current code generates: the examples in the
//! docs and the golden transform response stay true. Each opaque golden (base64, gzip, Parquet
//! bytes) has a readable one beside it (scripts/describe-sample-data), checked the same way and
//! against the opaque one, so that a change shows in the diff of something a reviewer can read.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

use cwms_tests::lambda_emulator::built_binary;
use cwms_tests::util::files;

#[test]
fn sample_data_is_what_cwms_generates() {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let dir = tempfile::tempdir().unwrap();
    let output = Command::new(repo.join("scripts/make-sample-data")).arg(built_binary("cwms")).arg(dir.path()).output().unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let (made, committed) = (files(dir.path()), files(&repo.join("sample-data")));
    let committed: BTreeMap<String, Vec<u8>> = committed.into_iter().filter(|(k, _)| k != "README.md").collect();
    assert_eq!(made.keys().collect::<Vec<_>>(), committed.keys().collect::<Vec<_>>(), "sample-data/ files differ");
    for (name, bytes) in &made {
        assert!(
            bytes == &committed[name],
            "sample-data/{name} is not what the code generates now: run scripts/make-sample-data and review the diff{}",
            if name.ends_with(".txt") { String::new() } else { " (of the readable goldens, *.txt, first)".to_owned() }
        );
    }
    let text = |name: &str| String::from_utf8(made[name].clone()).unwrap();

    // The golden response really exercises every result, and the readable one shows each record
    // with the result the response gives it.
    let event: serde_json::Value = serde_json::from_slice(&made["firehose-event.json"]).unwrap();
    let response: serde_json::Value = serde_json::from_slice(&made["firehose-response.json"]).unwrap();
    let records = text("firehose-records.txt");
    let ids: Vec<&str> = event["records"].as_array().unwrap().iter().map(|r| r["recordId"].as_str().unwrap()).collect();
    let answers = response["records"].as_array().unwrap();
    assert_eq!(answers.iter().map(|r| r["recordId"].as_str().unwrap()).collect::<Vec<_>>(), ids);
    for result in ["Ok", "ProcessingFailed", "Dropped"] {
        assert!(answers.iter().any(|r| r["result"] == result), "the sample event yields no {result} record");
    }
    for (i, (id, answer)) in ids.iter().zip(answers).enumerate() {
        let at = records.find(&format!("record {} {id} ", i + 1)).unwrap_or_else(|| panic!("firehose-records.txt lacks record {id}"));
        let out = records[at..].lines().nth(2).unwrap();
        assert!(out.starts_with(&format!("  out: {}", answer["result"].as_str().unwrap())), "record {id}: {out}");
    }

    // The readable raw listing names every raw object; the readable lake every lake object, each
    // with its row count.
    let raw = text("raw-objects.txt");
    for name in made.keys().filter(|k| k.starts_with("raw/")) {
        assert!(raw.contains(&format!("{name}: ")) && raw.contains("of metrics.ndjson"), "raw-objects.txt lacks {name}");
    }
    assert!(!raw.contains("not lines") && !raw.contains("in no raw object"), "raw objects and metrics.ndjson disagree:\n{raw}");
    let rows = text("lake-rows.txt");
    let listing = text("lake-listing.txt");
    assert_eq!(
        rows.lines().filter(|l| l.starts_with("== ")).map(|l| l[3..].split(':').next().unwrap()).collect::<Vec<_>>(),
        listing.lines().collect::<Vec<_>>()
    );
    assert!(rows.lines().filter(|l| l.starts_with("    ")).count() > 2000, "lake-rows.txt lists the rows");
}
