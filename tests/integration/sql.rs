//! The deployment and the analysts' SQL: cfn-lint on the template, and the Athena cookbook run
//! through DuckDB over a lake the real `cwms` binary made, each answer checked against the one
//! computed from the raw zone alone (tests/compat/reference.py, then pyarrow.compute).

use cwms_tests::lambda_emulator::built_binary;
use cwms_tests::util::{cwms, describe, python};

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
fn cookbook_answers_match_the_raw_reference_on_a_lake_cwms_made() {
    let cwms = built_binary("cwms");
    python_script("tests/sql/check_cookbook.py", &["--cwms", cwms.to_str().unwrap()]);
}

/// The cookbook over `cwms run` with re-sends (the merge law's ties) and awkward names: every
/// query answers what the raw zone says, with the busiest parameters and with the most awkward
/// ones (a namespace of non-ASCII text and `/`, a dimension_key full of escapes).
#[test]
fn cookbook_answers_match_the_raw_reference_with_resends_and_awkward_names() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("run");
    let args = ["run", "--out", out.to_str().unwrap(), "--series", "48", "--minutes", "90", "--start", "2026-01-15T09:30:00Z"];
    let run = cwms(&[&args[..], &["--malformed", "0", "--resends", "0.2", "--awkward-names"]].concat(), &[]);
    assert!(run.status.success(), "{}", describe(&run));
    let stdout = python("tests/sql/check_cookbook.py", &[out.to_str().unwrap(), "--reference", "raw"]);
    let last = stdout.lines().last().unwrap_or_default();
    assert!(last.ends_with(" passed, 0 failed") && !stdout.lines().any(|l| l.starts_with("SKIP")), "{stdout}");
    for query in ["series_day", "top_series_by_average", "percentiles_over_time", "rollup_consistency", "freshest_minutes"] {
        assert!(stdout.lines().any(|l| l.starts_with("PASS") && l.contains(&format!("query:{query}@awkward "))), "{query}: {stdout}");
    }
    assert!(stdout.contains(r#"awkward parameters: {"dt": "2026-01-15", "namespace": "Ünïcode ☃/Café""#), "{stdout}");
}
