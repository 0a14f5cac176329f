//! The committed sample data is exactly what the current code generates: the examples in the
//! docs and the golden transform response stay true.

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
            "sample-data/{name} is not what the code generates now: run scripts/make-sample-data and review the diff"
        );
    }
    // The golden response really exercises every result.
    let response = String::from_utf8(made["firehose-response.json"].clone()).unwrap();
    for result in ["\"Ok\"", "\"ProcessingFailed\""] {
        assert!(response.contains(result), "the sample event yields no {result} record");
    }
}
