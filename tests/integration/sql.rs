//! The deployment and the analysts' SQL: cfn-lint on the template, and the Athena cookbook run
//! through DuckDB over a lake the real `cwms` binary made, each answer checked against pyarrow.

use std::path::Path;
use std::process::Command;

use cwms_tests::lambda_emulator::{built_binary, tools_dir};

fn python_script(script: &str, args: &[&str]) {
    let python = tools_dir().join("venv/bin/python");
    assert!(python.is_file(), "{} missing: run ./scripts/test, which installs the Python tools", python.display());
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let output = Command::new(&python).arg(repo.join(script)).args(args).current_dir(&repo).output().unwrap();
    let (stdout, stderr) = (String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    assert!(output.status.success(), "{script} failed\n--- stdout\n{stdout}\n--- stderr\n{stderr}");
    // The scripts end with "N passed, N failed": make sure they really ran checks.
    let last = stdout.lines().rev().find(|l| l.contains(" passed, ")).unwrap_or_else(|| panic!("{script} printed no summary:\n{stdout}"));
    assert!(last.contains(" 0 failed") && !last.starts_with("0 passed"), "{script}: {last}");
}

#[test]
fn template_lints_clean_and_keeps_its_contract() {
    python_script("tests/sql/check_infra.py", &[]);
}

#[test]
fn cookbook_answers_match_pyarrow_on_a_lake_cwms_made() {
    let cwms = built_binary("cwms");
    python_script("tests/sql/check_cookbook.py", &["--cwms", cwms.to_str().unwrap()]);
}
