//! Small helpers the integration tests share: running the built `cwms`, the Python checkers,
//! and snapshotting folders.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Output};

use crate::lambda_emulator::{built_binary, tools_dir};

/// Runs the built `cwms` with extra environment variables.
pub fn cwms(args: &[&str], env: &[(&str, &str)]) -> Output {
    Command::new(built_binary("cwms")).args(args).envs(env.iter().copied()).output().unwrap()
}

/// A process's exit code and output, for assertion messages.
pub fn describe(output: &Output) -> String {
    format!(
        "exit {:?}\n--- stdout\n{}\n--- stderr\n{}",
        output.status.code(),
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// Runs a Python script of the repository (path relative to its root) with the tools' venv,
/// asserts it succeeded, and returns its standard output.
pub fn python(script: &str, args: &[&str]) -> String {
    let output = python_in("venv", script, args);
    assert!(output.status.success(), "{script} failed: {}", describe(&output));
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// Runs a Python script of the repository with the Python of one venv of the tools folder
/// (`venv`, `readers-venv`, `readers-old-venv`, ...) and returns its output, whatever its exit status.
pub fn python_in(venv: &str, script: &str, args: &[&str]) -> Output {
    let python = tools_dir().join(venv).join("bin/python");
    assert!(python.is_file(), "{} missing: run ./scripts/test, which installs the Python tools", python.display());
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    Command::new(python).arg(repo.join(script)).args(args).current_dir(&repo).output().unwrap()
}

/// Every file below `dir` by relative path, with its bytes.
pub fn files(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(folder) = stack.pop() {
        for entry in std::fs::read_dir(&folder).unwrap_or_else(|e| panic!("{}: {e}", folder.display())) {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else {
                let relative = path.strip_prefix(dir).unwrap().to_string_lossy().into_owned();
                out.insert(relative, std::fs::read(&path).unwrap());
            }
        }
    }
    out
}

/// The lake's files: [`files`] without the compactor's checkpoint and temporary files.
pub fn lake_files(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    files(dir).into_iter().filter(|(k, _)| !k.starts_with("_cwms") && !k.contains(".cwms-tmp")).collect()
}
