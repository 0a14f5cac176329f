//! Several `cwms compact` at once on one lake, on moto (whose conditional PUTs are atomic: see
//! `cwms_tests::servers`), so that the compactor's conflict branches really run: a lake object or
//! the checkpoint (`lake/_cwms/checkpoint.json`) changed by another run between its GET and its
//! conditional PUT answers 412 (or 404), and the loser re-reads, re-merges and tries again.
//!
//! Each round has a fresh prefix in the bucket. The raw zone is uploaded in stages, in order of
//! arrival (later objects carry late datums of earlier hours). After each of the first
//! [`STAGED_RUNS`] stages a run over the same raw zone and lake starts, once the run before has
//! listed the raw zone and is writing the lake, so the runs list different raw zones and write
//! different contents to the same objects; the last stage arrives after the last of them listed.
//! The checkpoint must then record exactly the raw objects of the longest listing (a run that
//! lost the checkpoint race merges what the winner recorded, and drops none of it). Then
//! [`RUNS_AT_ONCE`] runs start together, all with the last stage to compact, and a last run must
//! find nothing left to do. Every run must succeed, and the round's lake must be, byte for byte,
//! the lake of one run over the whole raw zone on a quiet lake (every lake file but the
//! checkpoint).
//!
//! A run that took a lost race on a lake object for a win would mostly go unseen here: the other
//! runs write the same datums too. The compactor's unit tests interleave two runs at exact points
//! for that (`a_lost_put_race_merges_again_and_keeps_both_runs_datums`).
//!
//! The race must be real: the runs log their conditional PUTs (`RUST_LOG=cwms_store=debug`), and
//! rounds go on until at least one run lost a race on a lake object and one lost the race on the
//! checkpoint and then wrote it; a test that never saw a conflict fails rather than passes.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};

use cwms_compactor::{CHECKPOINT_KEY, Checkpoint};
use cwms_store::ObjectMeta;
use cwms_tests::lambda_emulator::built_binary;
use cwms_tests::servers::{ACCESS_KEY, BUCKET, MotoServer, REGION, SECRET_KEY};
use cwms_tests::util::{describe, files};

/// The first minute of the generated data: 20 minutes of 09:xx, then 30 of 10:xx.
const START: &str = "2026-01-15T09:40:00Z";
/// Runs started one after the other in the first half of a round, each after a stage of the raw
/// zone is uploaded.
const STAGED_RUNS: usize = 2;
/// Runs started together in the second half of a round.
const RUNS_AT_ONCE: usize = 3;
/// Rounds tried, at most, for the races to happen (in practice the first has them all).
const MAX_ROUNDS: usize = 4;
/// The flags of every run, the clean one included. A small point budget makes each run publish
/// each hour several times as it reads (see `cwms_compactor::Options::max_points`), so the runs'
/// writes to the same objects overlap in time; two raw objects at a time keeps the runs at a
/// similar pace.
const FLAGS: [&str; 4] = ["--max-points", "100", "--concurrency", "2"];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_compactors_lose_races_retry_and_leave_the_lake_of_one_run() {
    let moto = MotoServer::start().await;
    let client = moto.client();
    client.create_bucket().bucket(BUCKET).send().await.unwrap_or_else(|e| panic!("moto cannot create the bucket: {e:?}"));
    let generated = tempfile::tempdir().unwrap();
    let raw = generate(generated.path());

    // The lake one quiet run makes of the whole raw zone.
    upload(&client, "clean", &raw).await;
    let clean_run = finish(vec![compact(&moto.endpoint, "clean")]).await.pop().unwrap();
    assert_eq!(summary(&clean_run)["objects_read"], raw.len(), "{}", describe(&clean_run));
    let clean = lake(&client, "clean").await;
    assert!(clean.keys().filter(|k| k.starts_with("metrics_1m/")).count() >= 4, "{:?}", clean.keys());

    let mut races = Races::default();
    for round in 1..=MAX_ROUNDS {
        let prefix = format!("round-{round}");
        // Each stage is uploaded, and a run started, once the run before has listed the raw zone
        // and is writing the lake: a later run holds datums the earlier ones never saw, so a write
        // lost in a race would lose datums that no other run writes.
        // The rest of the raw zone arrives after the last of them has listed, for the runs after.
        let stage = raw.len().div_ceil(STAGED_RUNS + 1);
        let mut running: Vec<Run> = Vec::new();
        for stage in raw.chunks(stage).take(STAGED_RUNS).chain([&raw[STAGED_RUNS * stage..]]) {
            if let Some(last) = running.pop() {
                running.push(last.writing().await);
            }
            upload(&client, &prefix, stage).await;
            if running.len() < STAGED_RUNS {
                running.push(compact(&moto.endpoint, &prefix));
            }
        }
        let runs = finish(running).await;
        for run in &runs {
            races.count(&String::from_utf8_lossy(&run.stderr));
        }
        // Each run listed the objects uploaded so far, a prefix of the upload order, and put
        // what it read into the checkpoint: the checkpoint must hold the longest such prefix,
        // and nothing more, whatever order the runs wrote it in.
        let listings: Vec<usize> = runs.iter().map(|run| summary(run)["objects_listed"].as_u64().unwrap() as usize).collect();
        let listed = *listings.iter().max().unwrap();
        let recorded = recorded(&client, &prefix, &raw).await;
        let expected: Vec<bool> = (0..recorded.len()).map(|i| i < listed).collect();
        assert_eq!(
            recorded, expected,
            "round {round}: after runs that listed up to {listed} raw objects, the checkpoint records these (upload order); {races:?}"
        );
        for run in finish((0..RUNS_AT_ONCE).map(|_| compact(&moto.endpoint, &prefix)).collect()).await {
            races.count(&String::from_utf8_lossy(&run.stderr));
        }

        // Every raw object is in the checkpoint (no run's additions were lost in a checkpoint
        // race), and the lake is already what a run over all of them makes.
        let last = summary(&finish(vec![compact(&moto.endpoint, &prefix)]).await[0]);
        for name in ["objects_pending", "objects_read", "minute_objects_written", "hour_objects_written"] {
            assert_eq!(last[name], 0, "round {round}: the last run found work left ({name}): {last:#}");
        }
        let raced = lake(&client, &prefix).await;
        if raced != clean {
            let differ: BTreeSet<&String> = raced.keys().chain(clean.keys()).filter(|k| raced.get(*k) != clean.get(*k)).collect();
            panic!("round {round}: the lake of concurrent runs differs from one quiet run's in {differ:?}; {races:?}");
        }
        eprintln!(
            "round {round}: {STAGED_RUNS} runs listing {listings:?} of {} raw objects, then {RUNS_AT_ONCE} at once: the lake of one run; so far {races:?}",
            raw.len()
        );
        if races.seen_all() {
            break;
        }
    }
    assert!(races.seen_all(), "after {MAX_ROUNDS} rounds the runs never lost both races: {races:?}");
}

/// Conditional PUTs that lost a race, as the runs logged them.
#[derive(Debug, Default)]
struct Races {
    /// PUTs of `metrics_1m` and `metrics_1h` objects answered "another writer got there first".
    lake_conflicts: usize,
    /// PUTs of the checkpoint answered so.
    checkpoint_conflicts: usize,
    /// Checkpoint conflicts after which the same run wrote the checkpoint (re-read and merged).
    checkpoint_retries_written: usize,
}

impl Races {
    /// Reads one run's log: `s3 put` lines (`cwms_store::s3`, at debug) with their location and
    /// outcome.
    fn count(&mut self, log: &str) {
        let mut checkpoint_lost = false;
        for line in log.lines().map(without_ansi).filter(|l| l.contains("s3 put")) {
            let conflict = line.contains("outcome=Conflict");
            if line.contains("/lake/_cwms/checkpoint.json") {
                if conflict {
                    self.checkpoint_conflicts += 1;
                    checkpoint_lost = true;
                } else if checkpoint_lost && line.contains("outcome=Written") {
                    self.checkpoint_retries_written += 1;
                    checkpoint_lost = false;
                }
            } else if conflict && (line.contains("/lake/metrics_1m/") || line.contains("/lake/metrics_1h/")) {
                self.lake_conflicts += 1;
            }
        }
    }

    fn seen_all(&self) -> bool {
        self.lake_conflicts > 0 && self.checkpoint_retries_written > 0
    }
}

/// A log line without terminal colours.
fn without_ansi(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            // An escape sequence: `ESC [` parameters, ended by a letter.
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// Generates the raw zone: its objects by key, which is their order of arrival.
fn generate(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let out = dir.to_str().unwrap();
    let args = [
        "generate",
        "--format",
        "raw-folder",
        "--out",
        out,
        "--start",
        START,
        "--series",
        "24",
        "--minutes",
        "50",
        "--duplicates",
        "0.05",
        "--late",
        "0.1",
        "--namespaces",
        "AWS/EC2,AWS/Lambda",
    ];
    let output = Command::new(built_binary("cwms")).args(args).output().unwrap();
    assert!(output.status.success(), "generate: {}", describe(&output));
    let objects: Vec<(String, Vec<u8>)> = files(&dir.join("raw")).into_iter().collect();
    assert!(objects.len() >= 3 * (STAGED_RUNS + 1), "{:?}", objects.iter().map(|(key, _)| key).collect::<Vec<_>>());
    objects
}

/// Puts raw objects under `prefix/raw/`.
async fn upload(client: &aws_sdk_s3::Client, prefix: &str, objects: &[(String, Vec<u8>)]) {
    for (key, bytes) in objects {
        let key = format!("{prefix}/raw/{key}");
        let put = client.put_object().bucket(BUCKET).key(&key).body(bytes.clone().into()).send().await;
        put.unwrap_or_else(|e| panic!("cannot upload {key}: {}", aws_sdk_s3::error::DisplayErrorContext(&e)));
    }
}

/// A `cwms compact` under way, its output read as it comes (so that no run stalls on a full pipe
/// while another is waited for).
struct Run {
    child: Child,
    stdout: std::thread::JoinHandle<Vec<u8>>,
    stderr: std::thread::JoinHandle<Vec<u8>>,
    /// Says when the run logs its first PUT: it has listed the raw zone and is writing the lake.
    writing: std::sync::mpsc::Receiver<()>,
}

impl Run {
    /// Waits until the run writes to the lake (or ends).
    async fn writing(self) -> Run {
        tokio::task::spawn_blocking(move || {
            let _ = self.writing.recv();
            self
        })
        .await
        .unwrap()
    }
}

/// Starts `cwms compact --json` of `prefix/raw` into `prefix/lake`, logging its S3 PUTs.
fn compact(endpoint: &str, prefix: &str) -> Run {
    let mut command = Command::new(built_binary("cwms"));
    command.args(["compact", "--json", "--raw", &format!("s3://{BUCKET}/{prefix}/raw"), "--lake", &format!("s3://{BUCKET}/{prefix}/lake")]);
    command.args(FLAGS);
    // Nothing of the machine's own AWS setup.
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with("AWS_") {
            command.env_remove(name);
        }
    }
    command
        .env("AWS_ENDPOINT_URL", endpoint)
        .env("AWS_ACCESS_KEY_ID", ACCESS_KEY)
        .env("AWS_SECRET_ACCESS_KEY", SECRET_KEY)
        .env("AWS_REGION", REGION)
        .env("AWS_CONFIG_FILE", "/nonexistent/aws/config")
        .env("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent/aws/credentials")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env("RUST_LOG", "warn,cwms_store=debug")
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = command.spawn().expect("cannot run cwms");
    let mut stdout = child.stdout.take().unwrap();
    let stdout = std::thread::spawn(move || {
        let mut bytes = Vec::new();
        std::io::Read::read_to_end(&mut stdout, &mut bytes).unwrap();
        bytes
    });
    let (tell, writing) = std::sync::mpsc::channel();
    let stderr = std::io::BufReader::new(child.stderr.take().unwrap());
    let stderr = std::thread::spawn(move || {
        let mut bytes = Vec::new();
        for line in std::io::BufRead::split(stderr, b'\n') {
            let line = line.unwrap();
            if String::from_utf8_lossy(&line).contains("s3 put") {
                let _ = tell.send(());
            }
            bytes.extend(line);
            bytes.push(b'\n');
        }
        bytes
    });
    Run { child, stdout, stderr, writing }
}

/// Waits for runs, each of which must succeed.
async fn finish(runs: Vec<Run>) -> Vec<Output> {
    let outputs: Vec<Output> = tokio::task::spawn_blocking(move || {
        runs.into_iter()
            .map(|mut run| {
                let status = run.child.wait().unwrap();
                Output { status, stdout: run.stdout.join().unwrap(), stderr: run.stderr.join().unwrap() }
            })
            .collect()
    })
    .await
    .unwrap();
    for output in &outputs {
        assert!(output.status.success(), "a run failed: {}", describe(output));
    }
    outputs
}

/// A run's `--json` summary.
fn summary(output: &Output) -> serde_json::Value {
    serde_json::from_slice(&output.stdout).unwrap_or_else(|e| panic!("no JSON summary ({e}): {}", describe(output)))
}

/// For each raw object, in upload order, whether the checkpoint of `prefix/lake` records it as
/// processed.
async fn recorded(client: &aws_sdk_s3::Client, prefix: &str, raw: &[(String, Vec<u8>)]) -> Vec<bool> {
    let key = format!("{prefix}/lake/{CHECKPOINT_KEY}");
    let object = client.get_object().bucket(BUCKET).key(&key).send().await.unwrap_or_else(|e| panic!("no checkpoint {key}: {e:?}"));
    let bytes = object.body.collect().await.unwrap().to_vec();
    let checkpoint = Checkpoint::from_json(&bytes, &format!("s3://{BUCKET}/{prefix}/raw"), |_| false).unwrap();
    raw.iter().map(|(key, bytes)| checkpoint.is_processed(&ObjectMeta::new(key.as_str(), bytes.len() as u64, 0, None), false)).collect()
}

/// The lake under `prefix` without the compactor's own files (the checkpoint), read straight
/// from the server.
async fn lake(client: &aws_sdk_s3::Client, prefix: &str) -> BTreeMap<String, Vec<u8>> {
    let prefix = format!("{prefix}/lake/");
    let mut objects = BTreeMap::new();
    let mut pages = client.list_objects_v2().bucket(BUCKET).prefix(&prefix).into_paginator().send();
    while let Some(page) = pages.next().await {
        for object in page.unwrap().contents() {
            let key = object.key().unwrap();
            if key[prefix.len()..].starts_with("_cwms/") {
                continue;
            }
            let body = client.get_object().bucket(BUCKET).key(key).send().await.unwrap().body.collect().await.unwrap();
            objects.insert(key[prefix.len()..].to_owned(), body.to_vec());
        }
    }
    objects
}
