//! The deployment and the analysts' SQL: cfn-lint on the template, and the Athena cookbook run
//! through DuckDB over a lake the real `cwms` binary made, each answer checked against pyarrow.

use cwms_tests::lambda_emulator::built_binary;
use cwms_tests::util::python;

fn python_script(script: &str, args: &[&str]) {
    let stdout = python(script, args);
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
