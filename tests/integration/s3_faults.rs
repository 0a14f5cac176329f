//! The compactor against S3 with faults in between: the fault proxy of `cwms_tests::proxy` sits
//! between the compactor and a real S3 server (s3s-fs, which checks signatures; moto, whose
//! conditional writes are atomic and whose listings carry ETags) and, one case at a time, makes
//! one kind of request fail: `ListObjectsV2`, `GetObject`, conditional `PutObject` (`If-None-Match`
//! and `If-Match`) and the three calls of a multipart upload answer 500 `InternalError` or 503
//! `SlowDown`, reset the connection (before the answer, after the upstream handled the request,
//! or in the middle of the body), cut the body short (a `Content-Length` larger than what is
//! sent, then a close), or answer slowly (well under the SDK's timeouts).
//!
//! The raw zone fills in two stages, as Firehose fills it: the objects of 09:xx, then those of
//! 10:xx, which carry late datums of 09:xx, so the second run re-reads the first run's lake
//! objects, merges into them and replaces them conditionally. Each case has its own prefix in
//! the bucket and its own proxy, and its fault hits the run of one stage. Then:
//! - the run either finished (exit 0) or stopped with an error that names the object (or the
//!   listed prefix) the fault hit;
//! - the fault did happen (the proxy counts it);
//! - every raw object is still there, byte for byte, and every lake object decodes (none is torn);
//! - a rerun without faults succeeds and leaves exactly the bytes of a clean run over the same
//!   raw zone, every lake file but the checkpoint.
//!
//! The real `cwms compact` runs wherever it can. Multipart uploads and faults that outlast the
//! SDK's retries use the library (`cwms_compactor::compact` over `S3Store`s whose client goes
//! through the proxy): the CLI has no multipart threshold, and the SDK's backoff (seconds per
//! attempt) would make a fault that every attempt meets cost most of a minute.
//!
//! Each case prints what the run did. `S3_FAULTS_ONLY=TEXT` runs only the cases whose name
//! contains TEXT, to look at one.

use std::collections::{BTreeMap, BTreeSet};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use aws_config::retry::RetryConfig;
use cwms_parquet::LakeObject;
use cwms_store::{MIN_MULTIPART_PART_SIZE, S3Store};
use cwms_tests::lambda_emulator::built_binary;
use cwms_tests::proxy::{FaultProxy, Reply, Response, S3Operation};
use cwms_tests::servers::{ACCESS_KEY, BUCKET, MotoServer, REGION, S3Server, SECRET_KEY, sdk_config};
use cwms_tests::util::{files, python};
use futures::StreamExt;
use tempfile::TempDir;

use S3Operation::{CompleteMultipartUpload, CreateMultipartUpload, GetObject, ListObjectsV2, PutObject, UploadPart};

/// The first minute of the generated data: 4 minutes of 09:xx, then 4 of 10:xx, in four raw
/// objects (one arrives at 09:xx, three at 10:xx, with late datums of 09:xx).
const START: &str = "2026-01-15T09:56:00Z";
/// The key prefix, below the raw zone, of the objects of the first stage.
const FIRST_STAGE_FOLDER: &str = "2026/01/15/09/";

/// Keys of the lake objects the faults hit, relative to a case's prefix.
const MINUTE_OBJECT: &str = "lake/metrics_1m/dt=2026-01-15/namespace=AWS%2FEC2/09.parquet";
const DAY_OBJECT: &str = "lake/metrics_1h/dt=2026-01-15/namespace=AWS%2FEC2/day.parquet";
const CHECKPOINT: &str = "lake/_cwms/checkpoint.json";
/// The listing of one day's `metrics_1m` objects, which the rollup of the day makes.
const MINUTE_LISTING: &str = "lake/metrics_1m/dt=2026-01-15/namespace=AWS%2FEC2";
/// The listing of the raw zone.
const RAW_LISTING: &str = "raw/";
/// Stands for the first raw object of the second stage, which every raw-object case hits.
const RAW_OBJECT: &str = "raw object";

/// A fault that hits every matching request.
const ALWAYS: usize = usize::MAX;

/// How long a run may take before the test calls it a hang.
const RUN_TIMEOUT: Duration = Duration::from_secs(180);

/// Cases run at once within a test (each has its own prefix and proxy).
const CASES_AT_ONCE: usize = 4;

// ---------------------------------------------------------------------------------------------
// The cases
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_survive_s3_faults_or_stop_naming_the_object() {
    let slow_body = || Reply::SlowBody(Duration::from_millis(1500));
    let cases = vec![
        // The raw zone: its listing, and an object streamed by the decoder.
        case("raw LIST 500 once", Second, ListObjectsV2, RAW_LISTING, 1, internal_error(), Finishes),
        case("raw LIST 503 SlowDown once", Second, ListObjectsV2, RAW_LISTING, 1, slow_down(), Finishes),
        case("raw LIST reset mid-body once", Second, ListObjectsV2, RAW_LISTING, 1, Reply::ResetMidBody, Finishes),
        case("raw LIST body cut short once", Second, ListObjectsV2, RAW_LISTING, 1, Reply::TruncateBody, Finishes),
        case("raw LIST slow body", Second, ListObjectsV2, RAW_LISTING, ALWAYS, slow_body(), Finishes),
        case("raw GET 500 once", Second, GetObject, RAW_OBJECT, 1, internal_error(), Finishes),
        case("raw GET 503 SlowDown twice", Second, GetObject, RAW_OBJECT, 2, slow_down(), Finishes),
        case("raw GET reset mid-body once", Second, GetObject, RAW_OBJECT, 1, Reply::ResetMidBody, Finishes),
        case("raw GET body cut short once", Second, GetObject, RAW_OBJECT, 1, Reply::TruncateBody, Finishes),
        case("raw GET slow answer and body", Second, GetObject, RAW_OBJECT, ALWAYS, slow_body(), Finishes),
        case("raw GET body cut short every time", Second, GetObject, RAW_OBJECT, ALWAYS, Reply::TruncateBody, Stops),
        // The lake: the objects merged into, the day's listing, the checkpoint.
        case("lake GET 500 once", Second, GetObject, MINUTE_OBJECT, 1, internal_error(), Finishes),
        case("lake GET 503 SlowDown once", Second, GetObject, MINUTE_OBJECT, 1, slow_down(), Finishes),
        case("lake GET reset mid-body once", Second, GetObject, MINUTE_OBJECT, 1, Reply::ResetMidBody, Finishes),
        case("lake GET body cut short once", Second, GetObject, MINUTE_OBJECT, 1, Reply::TruncateBody, Finishes),
        case("lake GET slow body", Second, GetObject, MINUTE_OBJECT, ALWAYS, slow_body(), Finishes),
        case("day GET body cut short once", Second, GetObject, DAY_OBJECT, 1, Reply::TruncateBody, Finishes),
        case("checkpoint GET body cut short once", Second, GetObject, CHECKPOINT, 1, Reply::TruncateBody, Finishes),
        // A lake object's body cut short on every attempt stops the run, naming the object.
        case("lake GET body cut short every time", Second, GetObject, MINUTE_OBJECT, ALWAYS, Reply::TruncateBody, Stops),
        case("lake LIST 500 once", Second, ListObjectsV2, MINUTE_LISTING, 1, internal_error(), Finishes),
        case("lake LIST body cut short once", Second, ListObjectsV2, MINUTE_LISTING, 1, Reply::TruncateBody, Finishes),
    ];
    let setup = Setup::s3s_fs().await;
    // The clean lake every case is compared with is the one the documentation describes, by
    // independent readers.
    let lake = setup.s3s_fs.as_ref().unwrap().object_path(&format!("{CLEAN}/lake"));
    python(
        "tests/python/check_lake.py",
        &[setup.zone.dir.path().join("raw").to_str().unwrap(), lake.to_str().unwrap(), "--expect-failed", "0"],
    );
    setup.run_all(cases, Runner::Binary).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conditional_puts_survive_s3_faults_or_stop_naming_the_object() {
    let mut cases = Vec::new();
    // If-None-Match on the first run, If-Match on the second.
    for (stage, mode) in [(First, "create"), (Second, "update")] {
        let put = |name: &str, times, reply| case(&format!("{mode}: {name}"), stage, PutObject, MINUTE_OBJECT, times, reply, Finishes);
        cases.extend([
            put("500 once", 1, internal_error()),
            put("503 SlowDown once", 1, slow_down()),
            put("reset before the answer", 1, Reply::Reset),
            put("landed, then reset", 1, Reply::ForwardThenReset),
            put("landed, then 500", 1, landed_then_500()),
            put("slow answer", ALWAYS, Reply::Delay(Duration::from_millis(800))),
        ]);
    }
    cases.extend([
        case("day update: landed, then reset", Second, PutObject, DAY_OBJECT, 1, Reply::ForwardThenReset, Finishes),
        case("checkpoint create: landed, then reset", First, PutObject, CHECKPOINT, 1, Reply::ForwardThenReset, Finishes),
        case("checkpoint update: landed, then 500", Second, PutObject, CHECKPOINT, 1, landed_then_500(), Finishes),
    ]);
    Setup::s3s_fs().await.run_all(cases, Runner::Binary).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn multipart_uploads_survive_s3_faults_or_stop_naming_the_object() {
    let slow_body = || Reply::SlowBody(Duration::from_secs(1));
    let cases = vec![
        case("create: 500 once", First, CreateMultipartUpload, MINUTE_OBJECT, 1, internal_error(), Finishes),
        case("create: 503 SlowDown once", First, CreateMultipartUpload, MINUTE_OBJECT, 1, slow_down(), Finishes),
        case("create: reset before the answer", First, CreateMultipartUpload, MINUTE_OBJECT, 1, Reply::Reset, Finishes),
        case("create: answer cut short", First, CreateMultipartUpload, MINUTE_OBJECT, 1, Reply::TruncateBody, Finishes),
        case("part: 500 once", First, UploadPart, MINUTE_OBJECT, 1, internal_error(), Finishes),
        case("part: reset before the answer", First, UploadPart, MINUTE_OBJECT, 1, Reply::Reset, Finishes),
        case("part: landed, then reset", First, UploadPart, MINUTE_OBJECT, 1, Reply::ForwardThenReset, Finishes),
        case("part: slow answer", First, UploadPart, MINUTE_OBJECT, ALWAYS, Reply::Delay(Duration::from_millis(800)), Finishes),
        case("complete: 500 once", First, CompleteMultipartUpload, MINUTE_OBJECT, 1, internal_error(), Finishes),
        case("complete: 503 SlowDown once", First, CompleteMultipartUpload, MINUTE_OBJECT, 1, slow_down(), Finishes),
        case("complete: 200 with an error", First, CompleteMultipartUpload, MINUTE_OBJECT, 1, complete_failed_in_200(), Finishes),
        case("complete: slow body", First, CompleteMultipartUpload, MINUTE_OBJECT, ALWAYS, slow_body(), Finishes),
        // The upload completed but its answer was lost: s3s-fs answers the SDK's retry with 403
        // AccessDenied (AWS and moto answer with the completed upload's result).
        case("complete: landed, then reset", First, CompleteMultipartUpload, MINUTE_OBJECT, 1, Reply::ForwardThenReset, Stops),
        case("complete: answer cut short", First, CompleteMultipartUpload, MINUTE_OBJECT, 1, Reply::TruncateBody, Stops),
    ];
    let setup = Setup::s3s_fs().await;
    setup.run_all(cases, Runner::Library { multipart: true }).await;
    // A run that finished completed or aborted every upload it sent parts for: s3s-fs keeps the
    // parts of an unfinished upload as `.upload_id-ID.part-N` files at its root. A run that
    // stopped may leave the uploads of other objects that were in flight (their futures are
    // dropped; S3 leaves them to the bucket's AbortIncompleteMultipartUpload rule), and an upload
    // whose CreateMultipartUpload answer was lost is never known to the client at all.
    let root = &setup.s3s_fs.as_ref().unwrap().root;
    let left: BTreeSet<String> = std::fs::read_dir(root)
        .unwrap()
        .filter_map(|entry| {
            Some(entry.unwrap().file_name().to_string_lossy().strip_prefix(".upload_id-")?.split(".part-").next()?.to_owned())
        })
        .collect();
    for (name, finished, uploads) in setup.uploads.lock().unwrap().iter() {
        let unfinished: Vec<&String> = uploads.intersection(&left).collect();
        assert!(!finished || unfinished.is_empty(), "{name}: the run finished but left the uploads {unfinished:?} unfinished");
        if !unfinished.is_empty() {
            eprintln!("{name}: the stopped run left {} multipart uploads unfinished", unfinished.len());
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn faults_past_the_sdk_retries_stop_the_run_naming_the_object() {
    let cases = vec![
        case("raw LIST 503 SlowDown", Second, ListObjectsV2, RAW_LISTING, ALWAYS, slow_down(), Stops),
        case("raw GET 500", Second, GetObject, RAW_OBJECT, ALWAYS, internal_error(), Stops),
        case("raw GET reset", Second, GetObject, RAW_OBJECT, ALWAYS, Reply::Reset, Stops),
        case("lake GET 500", Second, GetObject, MINUTE_OBJECT, ALWAYS, internal_error(), Stops),
        case("lake LIST 500", Second, ListObjectsV2, MINUTE_LISTING, ALWAYS, internal_error(), Stops),
        case("create 503 SlowDown", First, PutObject, MINUTE_OBJECT, ALWAYS, slow_down(), Stops),
        case("update 500", Second, PutObject, MINUTE_OBJECT, ALWAYS, internal_error(), Stops),
        case("checkpoint update 503 SlowDown", Second, PutObject, CHECKPOINT, ALWAYS, slow_down(), Stops),
    ];
    Setup::s3s_fs().await.run_all(cases, Runner::Library { multipart: false }).await;
}

/// moto applies conditional writes atomically and lists ETags, so the second run's rollups
/// compare the listed versions of the hour objects with the ones it wrote: a write whose answer
/// was lost must still leave the right version behind. It also completes a multipart upload
/// over an existing object correctly (s3s-fs keeps the old object's checksum, see
/// `cwms_tests::servers`), so the multipart replacements run here.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lost_answers_to_conditional_writes_on_moto() {
    let puts = vec![
        case("create: landed, then reset", First, PutObject, MINUTE_OBJECT, 1, Reply::ForwardThenReset, Finishes),
        case("update: landed, then reset", Second, PutObject, MINUTE_OBJECT, 1, Reply::ForwardThenReset, Finishes),
        case("update: landed, then 500", Second, PutObject, MINUTE_OBJECT, 1, landed_then_500(), Finishes),
        case("day update: landed, then reset", Second, PutObject, DAY_OBJECT, 1, Reply::ForwardThenReset, Finishes),
        case("checkpoint update: landed, then 500", Second, PutObject, CHECKPOINT, 1, landed_then_500(), Finishes),
    ];
    let multipart = vec![
        case("update complete: 200 with an error", Second, CompleteMultipartUpload, MINUTE_OBJECT, 1, complete_failed_in_200(), Finishes),
        // moto, like AWS, answers the SDK's retry of a completed upload with its result.
        case("update complete: landed, then reset", Second, CompleteMultipartUpload, MINUTE_OBJECT, 1, Reply::ForwardThenReset, Finishes),
    ];
    let setup = Setup::moto().await;
    setup.run_all(puts, Runner::Binary).await;
    setup.run_all(multipart, Runner::Library { multipart: true }).await;
}

// ---------------------------------------------------------------------------------------------
// Cases and what they expect
// ---------------------------------------------------------------------------------------------

/// The run a fault hits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stage {
    /// The first run, on an empty lake: lake objects are created (`If-None-Match: *`).
    First,
    /// The second run, over the first run's lake: lake objects are replaced (`If-Match`).
    Second,
}
use Stage::{First, Second};

/// What the faulted run must do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Expect {
    /// Exit 0, every partition published.
    Finishes,
    /// Stop with an error naming the object (or listed prefix) the fault hit.
    Stops,
}
use Expect::{Finishes, Stops};

#[derive(Debug, Clone)]
struct Case {
    name: String,
    stage: Stage,
    operation: S3Operation,
    /// The key the fault hits, relative to the case's prefix: a request whose key (or listing
    /// prefix) starts with it. [`RAW_OBJECT`] stands for the first raw object of the second stage.
    target: &'static str,
    /// How many matching requests get the fault; the others pass.
    times: usize,
    reply: Reply,
    expect: Expect,
}

fn case(name: &str, stage: Stage, operation: S3Operation, target: &'static str, times: usize, reply: Reply, expect: Expect) -> Case {
    Case { name: name.to_owned(), stage, operation, target, times, reply, expect }
}

fn internal_error() -> Reply {
    Reply::Respond(Response::s3_error(500, "InternalError"))
}

fn slow_down() -> Reply {
    Reply::Respond(Response::s3_error(503, "SlowDown"))
}

/// The upstream handled the request (a write landed), and the client is told it failed.
fn landed_then_500() -> Reply {
    Reply::ForwardThenRespond(Response::s3_error(500, "InternalError"))
}

/// S3 answers some failures of `CompleteMultipartUpload` with 200 and an error document.
fn complete_failed_in_200() -> Reply {
    let mut answer = Response::s3_error(500, "InternalError");
    answer.status = 200;
    Reply::Respond(answer)
}

/// How a run is made.
#[derive(Debug, Clone, Copy)]
enum Runner {
    /// `cwms compact` with `AWS_ENDPOINT_URL` at the endpoint.
    Binary,
    /// `cwms_compactor::compact` over `S3Store`s whose client retries fast (same attempts as the
    /// CLI's, milliseconds of backoff), uploading every lake object in parts when `multipart`.
    Library { multipart: bool },
}

/// What a run did.
struct Run {
    success: bool,
    /// The standard error of the binary, or the error chain of the library's run.
    message: String,
    /// The run's summary, when it got that far.
    report: String,
}

// ---------------------------------------------------------------------------------------------
// The raw zone, the clean lakes, and one case's run
// ---------------------------------------------------------------------------------------------

/// The prefix of the clean runs that every case is compared with.
const CLEAN: &str = "clean";

/// A generated raw zone (as `cwms generate` writes it), split into its two stages.
struct RawZone {
    dir: TempDir,
    first: BTreeMap<String, Vec<u8>>,
    second: BTreeMap<String, Vec<u8>>,
}

impl RawZone {
    fn generate() -> RawZone {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().to_str().unwrap().to_owned();
        let args = [
            "generate",
            "--format",
            "raw-folder",
            "--out",
            &out,
            "--start",
            START,
            "--series",
            "12",
            "--minutes",
            "8",
            "--duplicates",
            "0.05",
            "--late",
            "0.1",
            "--namespaces",
            "AWS/EC2,AWS/Lambda",
        ];
        let output = Command::new(built_binary("cwms")).args(args).output().unwrap();
        assert!(output.status.success(), "generate failed: {}", String::from_utf8_lossy(&output.stderr));
        let (first, second): (BTreeMap<_, _>, BTreeMap<_, _>) =
            files(&dir.path().join("raw")).into_iter().partition(|(key, _)| key.starts_with(FIRST_STAGE_FOLDER));
        assert!(!first.is_empty() && second.len() >= 2, "{:?} {:?}", first.keys(), second.keys());
        RawZone { dir, first, second }
    }

    /// The raw object the raw-object cases hit.
    fn victim(&self) -> &str {
        self.second.keys().next().unwrap()
    }
}

/// A server, the raw zone, and the clean lakes after each stage.
struct Setup {
    endpoint: String,
    bucket: String,
    s3s_fs: Option<S3Server>,
    _moto: Option<MotoServer>,
    zone: RawZone,
    clean: [BTreeMap<String, Vec<u8>>; 2],
    /// What the clean runs of each stage counted: datums and duplicates merged.
    clean_counts: [(u64, u64); 2],
    /// Numbers the cases' prefixes.
    cases: AtomicUsize,
    /// For each case: its name, whether its faulted run finished, and the multipart uploads
    /// that run sent parts for.
    uploads: std::sync::Mutex<Vec<(String, bool, BTreeSet<String>)>>,
}

impl Setup {
    async fn s3s_fs() -> Setup {
        let server = S3Server::start().await;
        Setup::new(server.endpoint.clone(), server.bucket.clone(), Some(server), None).await
    }

    async fn moto() -> Setup {
        let moto = MotoServer::start().await;
        moto.s3_store(BUCKET, "").await;
        Setup::new(moto.endpoint.clone(), BUCKET.to_owned(), None, Some(moto)).await
    }

    async fn new(endpoint: String, bucket: String, s3s_fs: Option<S3Server>, moto: Option<MotoServer>) -> Setup {
        let zone = RawZone::generate();
        let mut setup = Setup {
            endpoint,
            bucket,
            s3s_fs,
            _moto: moto,
            zone,
            clean: [BTreeMap::new(), BTreeMap::new()],
            clean_counts: [(0, 0); 2],
            cases: AtomicUsize::new(0),
            uploads: Default::default(),
        };
        setup.upload(CLEAN, First).await;
        setup.clean_counts[0] = counts(&setup.clean_run(CLEAN, "clean run, first stage").await);
        setup.clean[0] = setup.lake(CLEAN).await;
        setup.upload(CLEAN, Second).await;
        setup.clean_counts[1] = counts(&setup.clean_run(CLEAN, "clean run, second stage").await);
        setup.clean[1] = setup.lake(CLEAN).await;
        assert!(setup.clean_counts[1].1 > 0, "the second stage re-sends datums: {:?}", setup.clean_counts);
        assert!(!setup.clean[0].is_empty() && setup.clean[0] != setup.clean[1], "the second stage changes the lake");
        assert!(setup.clean[1].contains_key(&MINUTE_OBJECT["lake/".len()..]) && setup.clean[1].contains_key(&DAY_OBJECT["lake/".len()..]));
        setup
    }

    async fn run_all(&self, cases: Vec<Case>, runner: Runner) {
        let started = Instant::now();
        let only = std::env::var("S3_FAULTS_ONLY").unwrap_or_default();
        let cases: Vec<Case> = cases.into_iter().filter(|c| c.name.contains(&only)).collect();
        let count = cases.len();
        futures::stream::iter(cases).for_each_concurrent(CASES_AT_ONCE, |case| self.run_case(case, runner)).await;
        eprintln!("{count} cases in {:.1} s", started.elapsed().as_secs_f64());
    }

    async fn run_case(&self, case: Case, runner: Runner) {
        let started = Instant::now();
        let prefix = format!("case-{:02}", self.cases.fetch_add(1, Ordering::SeqCst));
        let target = match case.target {
            RAW_OBJECT => format!("raw/{}", self.zone.victim()),
            target => target.to_owned(),
        };
        let victim = format!("{}/{prefix}/{target}", self.bucket);
        let hits = Arc::new(AtomicUsize::new(0));
        let proxy = {
            let (victim, case, hits) = (victim.clone(), case.clone(), hits.clone());
            FaultProxy::start(&self.endpoint, move |request, _| {
                let call = request.s3_call();
                let conditional = request.header("if-match").is_some() || request.header("if-none-match").is_some();
                let matches = call.operation == case.operation
                    && format!("{}/{}", call.bucket, call.key).starts_with(&victim)
                    // The lake objects are only ever written conditionally; a PUT fault is for them.
                    && (case.operation != PutObject || conditional);
                if matches && hits.fetch_add(1, Ordering::SeqCst) < case.times { case.reply.clone() } else { Reply::Forward }
            })
        };
        let name = &case.name;

        self.upload(&prefix, First).await;
        if case.stage == Second {
            self.clean_run(&prefix, &format!("{name}: first stage")).await;
            self.upload(&prefix, Second).await;
        }
        let run = self.compact(runner, &proxy.endpoint, &prefix).await;
        let faults = hits.load(Ordering::SeqCst).min(case.times);
        assert!(
            faults > 0,
            "{name}: the fault never happened (no {:?} of {victim}); the proxy saw {:#?}",
            case.operation,
            proxy.exchanges()
        );
        let uploads = proxy.exchanges().iter().filter_map(|e| e.query("uploadId")).collect();
        self.uploads.lock().unwrap().push((name.clone(), run.success, uploads));
        let location = format!("s3://{victim}");
        match case.expect {
            Finishes => assert!(run.success, "{name}: the run should finish despite {faults} faults:\n{}\n{}", run.message, run.report),
            Stops => {
                assert!(!run.success, "{name}: the run should stop after {faults} faults:\n{}", run.report);
                assert!(run.message.contains(&location), "{name}: the error should name {location}:\n{}\n{}", run.message, run.report);
            }
        }
        let stage = case.stage as usize;
        if case.operation == GetObject && case.target == RAW_OBJECT && run.success {
            // A raw object read again after a fault counts its datums once, as a clean run does.
            assert_eq!(counts(&run), self.clean_counts[stage], "{name}: (datums, duplicates merged) differ from a clean run's");
        }
        self.check_raw_and_lake(&prefix, case.stage, name).await;

        self.clean_run(&prefix, &format!("{name}: rerun")).await;
        self.check_raw_and_lake(&prefix, case.stage, name).await;
        let lake = self.lake(&prefix).await;
        let clean = &self.clean[stage];
        if lake != *clean {
            let differ: Vec<&String> = lake.keys().chain(clean.keys()).filter(|k| lake.get(*k) != clean.get(*k)).collect();
            panic!("{name}: after the rerun the lake differs from a clean run's in {differ:?}");
        }
        drop(proxy);
        eprintln!(
            "{name}: {} after {faults} faults, {:.1} s{}",
            if run.success { "finished" } else { "stopped" },
            started.elapsed().as_secs_f64(),
            if run.success { String::new() } else { format!(": {}", run.message.trim().lines().last().unwrap_or_default()) }
        );
    }

    /// Puts a stage's raw objects under `prefix/raw/`, straight to the server.
    async fn upload(&self, prefix: &str, stage: Stage) {
        let client = cwms_tests::servers::s3_client(&self.endpoint);
        let objects = if stage == First { &self.zone.first } else { &self.zone.second };
        for (key, bytes) in objects {
            let key = format!("{prefix}/raw/{key}");
            let put = client.put_object().bucket(&self.bucket).key(&key).body(bytes.clone().into()).send().await;
            put.unwrap_or_else(|e| panic!("cannot upload {key}: {}", aws_sdk_s3::error::DisplayErrorContext(&e)));
        }
    }

    /// A run of the binary straight to the server, which must succeed.
    async fn clean_run(&self, prefix: &str, what: &str) -> Run {
        let run = self.compact(Runner::Binary, &self.endpoint, prefix).await;
        assert!(run.success, "{what}: a run without faults fails:\n{}\n{}", run.message, run.report);
        run
    }

    async fn compact(&self, runner: Runner, endpoint: &str, prefix: &str) -> Run {
        let (raw, lake) = (format!("{prefix}/raw"), format!("{prefix}/lake"));
        match runner {
            Runner::Binary => {
                let mut command = Command::new(built_binary("cwms"));
                command.args([
                    "compact",
                    "--json",
                    "--raw",
                    &format!("s3://{}/{raw}", self.bucket),
                    "--lake",
                    &format!("s3://{}/{lake}", self.bucket),
                ]);
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
                    .env("AWS_EC2_METADATA_DISABLED", "true");
                tokio::task::spawn_blocking(move || run_with_timeout(command)).await.unwrap()
            }
            Runner::Library { multipart } => {
                let retry = RetryConfig::standard().with_max_attempts(5).with_initial_backoff(Duration::from_millis(10));
                let config = sdk_config(endpoint).to_builder().retry_config(retry).build();
                let client = cwms_store::s3_client(&config);
                let raw = S3Store::new(client.clone(), &self.bucket, &raw);
                let mut lake = S3Store::new(client, &self.bucket, &lake);
                if multipart {
                    // Every lake object (a few kilobytes) goes up as a one-part upload.
                    lake = lake.with_multipart_threshold(1024, MIN_MULTIPART_PART_SIZE);
                }
                let options = cwms_compactor::Options::default();
                let outcome = tokio::time::timeout(RUN_TIMEOUT, cwms_compactor::compact(&raw, &lake, &options))
                    .await
                    .unwrap_or_else(|_| panic!("the compactor hangs: no end after {RUN_TIMEOUT:?}"));
                match outcome {
                    Ok(report) => {
                        let summary = serde_json::to_string_pretty(&report.summary_json()).unwrap();
                        let problems: Vec<String> = report
                            .partition_errors
                            .iter()
                            .chain(&report.objects_failed)
                            .map(|p| format!("{}: {}", p.location, p.reason))
                            .collect();
                        Run { success: report.is_success(), message: problems.join("\n"), report: summary }
                    }
                    Err(error) => Run { success: false, message: error_chain(&error), report: String::new() },
                }
            }
        }
    }

    /// Every raw object of the stages so far is there, unchanged (and nothing else is), and
    /// every lake object decodes.
    async fn check_raw_and_lake(&self, prefix: &str, stage: Stage, name: &str) {
        let mut expected = self.zone.first.clone();
        if stage == Second {
            expected.extend(self.zone.second.clone());
        }
        let raw = self.snapshot(&format!("{prefix}/raw/")).await;
        assert!(raw == expected, "{name}: the raw zone changed: {:?} instead of {:?}", raw.keys(), expected.keys());
        for (key, bytes) in self.snapshot(&format!("{prefix}/lake/")).await {
            if key.ends_with(".parquet") {
                let object =
                    LakeObject::parse(&key).unwrap_or_else(|e| panic!("{name}: a lake object with a key no table has, {key}: {e}"));
                let location = format!("s3://{}/{prefix}/lake/{key}", self.bucket);
                if let Err(e) = cwms_parquet::decode(bytes.into(), &object, &location) {
                    panic!("{name}: a torn lake object: {e}");
                }
            }
        }
    }

    /// The lake under `prefix` without the compactor's own files (the checkpoint).
    async fn lake(&self, prefix: &str) -> BTreeMap<String, Vec<u8>> {
        self.snapshot(&format!("{prefix}/lake/")).await.into_iter().filter(|(key, _)| !key.starts_with("_cwms/")).collect()
    }

    /// Every object below `prefix`, by key relative to it, read straight from the server.
    async fn snapshot(&self, prefix: &str) -> BTreeMap<String, Vec<u8>> {
        let client = cwms_tests::servers::s3_client(&self.endpoint);
        let mut objects = BTreeMap::new();
        let mut pages = client.list_objects_v2().bucket(&self.bucket).prefix(prefix).into_paginator().send();
        while let Some(page) = pages.next().await {
            for object in page.unwrap().contents() {
                let key = object.key().unwrap();
                let body = client.get_object().bucket(&self.bucket).key(key).send().await.unwrap().body.collect().await.unwrap();
                objects.insert(key[prefix.len()..].to_owned(), body.to_vec());
            }
        }
        objects
    }
}

/// The datums and duplicates merged of a run's summary.
fn counts(run: &Run) -> (u64, u64) {
    let summary: serde_json::Value =
        serde_json::from_str(&run.report).unwrap_or_else(|e| panic!("not a JSON summary ({e}): {}", run.report));
    (summary["datums"].as_u64().unwrap(), summary["duplicates_merged"].as_u64().unwrap())
}

/// Runs the binary, killing it (and failing the test) if it does not end in time.
fn run_with_timeout(mut command: Command) -> Run {
    let mut child = command.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().expect("cannot run cwms");
    let (mut stdout, mut stderr) = (child.stdout.take().unwrap(), child.stderr.take().unwrap());
    let out = std::thread::spawn(move || {
        let mut text = String::new();
        std::io::Read::read_to_string(&mut stdout, &mut text).map(|_| text).unwrap_or_default()
    });
    let err = std::thread::spawn(move || {
        let mut text = String::new();
        std::io::Read::read_to_string(&mut stderr, &mut text).map(|_| text).unwrap_or_default()
    });
    let deadline = Instant::now() + RUN_TIMEOUT;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("cwms compact hangs: no end after {RUN_TIMEOUT:?}; its output:\n{}", err.join().unwrap());
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    Run { success: status.success(), message: err.join().unwrap(), report: out.join().unwrap() }
}

/// An error and its causes, one line.
fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
