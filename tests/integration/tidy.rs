//! The architecture invariants of ARCHITECTURE.md, checked on the dependency graph cargo
//! resolves (`cargo metadata`), so that a new `use` of the wrong crate fails a test instead of
//! waiting for a review:
//!
//! - each crate uses only the cwms crates below it (the table in ARCHITECTURE.md);
//! - model, decode, merge and parquet need no async runtime, no AWS SDK and no Lambda runtime,
//!   not even through another crate;
//! - the AWS SDK is a dependency only of the crates that talk to AWS, and `lambda_runtime` only
//!   of the two Lambda entry points, behind a feature in the libraries (so a build without them,
//!   the README's quickstart, compiles neither).

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::Command;

use serde_json::Value;

/// The cwms crates each crate may use in its normal (not dev) dependencies.
const LAYERS: &[(&str, &[&str])] = &[
    ("cwms-model", &[]),
    ("cwms-decode", &["cwms-model"]),
    ("cwms-merge", &["cwms-model"]),
    ("cwms-parquet", &["cwms-model", "cwms-merge"]),
    ("cwms-store", &[]),
    ("cwms-sample", &["cwms-model"]),
    ("cwms-transform", &["cwms-model", "cwms-decode", "cwms-merge"]),
    ("cwms-compactor", &["cwms-model", "cwms-decode", "cwms-merge", "cwms-parquet", "cwms-store"]),
    ("cwms-serve", &["cwms-model", "cwms-merge", "cwms-parquet", "cwms-store"]),
];

/// The crates that do no IO: nothing of an async runtime, AWS or Lambda reaches them.
const PURE: &[&str] = &["cwms-model", "cwms-decode", "cwms-merge", "cwms-parquet"];

/// Whether a crate name is one the pure crates must not depend on, even indirectly.
fn impure(name: &str) -> bool {
    name.starts_with("aws-") || name.starts_with("aws_") || matches!(name, "tokio" | "hyper" | "lambda_runtime" | "reqwest" | "ureq")
}

/// The workspace crates allowed a direct dependency on an AWS SDK crate, and whether there it
/// must be optional (a feature).
const AWS_USERS: &[(&str, bool)] =
    &[("cwms-store", true), ("cwms-compactor", true), ("cwms-cli", true), ("cwms-tests", false), ("cwms-benches", false)];
/// The same for `lambda_runtime`.
const LAMBDA_USERS: &[(&str, bool)] = &[("cwms-transform", true), ("cwms-compactor", true)];

struct Graph {
    /// Package id -> name.
    names: BTreeMap<String, String>,
    /// Package id -> the ids of its normal (not dev, not build) dependencies, as resolved.
    normal: BTreeMap<String, Vec<String>>,
    /// Workspace crate name -> its declared dependencies (name, optional, kind).
    declared: BTreeMap<String, Vec<(String, bool, Option<String>)>>,
}

fn graph() -> Graph {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let output = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
        .args(["metadata", "--format-version", "1", "--offline"])
        .current_dir(&root)
        .output()
        .expect("cargo metadata runs");
    assert!(output.status.success(), "cargo metadata failed: {}", String::from_utf8_lossy(&output.stderr));
    let metadata: Value = serde_json::from_slice(&output.stdout).expect("cargo metadata writes JSON");
    let members: BTreeSet<&str> = metadata["workspace_members"].as_array().unwrap().iter().map(|m| m.as_str().unwrap()).collect();
    let mut graph = Graph { names: BTreeMap::new(), normal: BTreeMap::new(), declared: BTreeMap::new() };
    for package in metadata["packages"].as_array().unwrap() {
        let (id, name) = (package["id"].as_str().unwrap(), package["name"].as_str().unwrap());
        graph.names.insert(id.to_owned(), name.to_owned());
        if members.contains(id) {
            let deps = package["dependencies"].as_array().unwrap().iter().map(|d| {
                (d["name"].as_str().unwrap().to_owned(), d["optional"].as_bool().unwrap_or(false), d["kind"].as_str().map(str::to_owned))
            });
            graph.declared.insert(name.to_owned(), deps.collect());
        }
    }
    for node in metadata["resolve"]["nodes"].as_array().unwrap() {
        let normal =
            node["deps"].as_array().unwrap().iter().filter(|d| d["dep_kinds"].as_array().unwrap().iter().any(|k| k["kind"].is_null()));
        graph.normal.insert(node["id"].as_str().unwrap().to_owned(), normal.map(|d| d["pkg"].as_str().unwrap().to_owned()).collect());
    }
    graph
}

impl Graph {
    fn id(&self, name: &str) -> &str {
        let ids: Vec<&String> = self.names.iter().filter(|(_, n)| *n == name).map(|(id, _)| id).collect();
        assert_eq!(ids.len(), 1, "one package named {name}");
        ids[0]
    }

    /// Every crate `name` reaches through normal dependencies, each with the path it takes.
    fn reach(&self, name: &str) -> BTreeMap<String, String> {
        let mut seen = BTreeMap::new();
        let mut todo = vec![(self.id(name).to_owned(), name.to_owned())];
        while let Some((id, path)) = todo.pop() {
            for dep in &self.normal[&id] {
                let dep_name = &self.names[dep];
                if !seen.contains_key(dep_name) {
                    let via = format!("{path} -> {dep_name}");
                    seen.insert(dep_name.clone(), via.clone());
                    todo.push((dep.clone(), via));
                }
            }
        }
        seen
    }
}

#[test]
fn each_crate_uses_only_the_crates_below_it() {
    let graph = graph();
    let mut wrong = Vec::new();
    for (name, allowed) in LAYERS {
        for (dep, _, kind) in &graph.declared[*name] {
            if dep.starts_with("cwms-") && kind.is_none() && !allowed.contains(&dep.as_str()) {
                wrong.push(format!("{name} uses {dep}; it may use {allowed:?}"));
            }
        }
    }
    // Every workspace library crate is in the table, so a new one gets its layer.
    for name in graph.declared.keys() {
        if !LAYERS.iter().any(|(n, _)| n == name) && !matches!(name.as_str(), "cwms-cli" | "cwms-tests" | "cwms-benches") {
            wrong.push(format!("{name} has no layer in tests/integration/tidy.rs (and ARCHITECTURE.md)"));
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

#[test]
fn the_pure_crates_reach_no_runtime_no_aws_and_no_lambda() {
    let graph = graph();
    let mut wrong = Vec::new();
    for name in PURE {
        for (dep, path) in graph.reach(name) {
            if impure(&dep) {
                wrong.push(path);
            }
        }
    }
    assert!(wrong.is_empty(), "the pure crates must do no IO:\n{}", wrong.join("\n"));
}

#[test]
fn the_aws_sdk_and_lambda_runtime_stay_in_their_crates_behind_features() {
    let graph = graph();
    let mut wrong = Vec::new();
    for (name, deps) in &graph.declared {
        for (dep, optional, kind) in deps {
            let users = if dep.starts_with("aws-sdk-") || dep == "aws-config" {
                AWS_USERS
            } else if dep == "lambda_runtime" {
                LAMBDA_USERS
            } else {
                continue;
            };
            match users.iter().find(|(user, _)| user == name) {
                None => wrong.push(format!("{name} depends on {dep}; only {:?} may", users.iter().map(|u| u.0).collect::<Vec<_>>())),
                Some((_, true)) if !optional && kind.is_none() => {
                    wrong.push(format!("{name} depends on {dep} unconditionally; it must be behind a feature"))
                }
                Some(_) => {}
            }
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}
