//! The deployment as one: `infra/template.yaml` deployed with CloudFormation (and its SAM
//! transform) into the `ministack` emulator; metric-stream records put into the stack's own
//! delivery stream; the stack's own transform Lambda answering each; the stack's own Firehose
//! writing `raw/`; the stack's own compactor Lambda invoked with the payload of the stack's own
//! schedule; and the stack's lake, Glue tables, logs and alarms read back and compared with what
//! was sent.
//!
//! What the emulator (ministack 1.5.33) does, and what real Firehose and Lambda do beyond it:
//! - Firehose calls the transform once per record, as each record arrives, and writes one plain
//!   object per `Ok` record. Real Firehose buffers (`ProcessorBufferSizeMB`, `...IntervalSeconds`),
//!   calls the transform with many records at once, and writes one gzip object per delivery
//!   buffer. So here the transform sees batches of one record (batches of many are tested under
//!   the Lambda Runtime API emulator, `lambda.rs`), and the compactor reads plain objects (it
//!   tells gzip by the bytes, so both work).
//! - `Dropped` and `ProcessingFailed` records are left out of `raw/`. Real Firehose also leaves
//!   `Dropped` out, but writes each `ProcessingFailed` record's original bytes under the error
//!   prefix (`errors/processing-failed/dt=.../`), where `cwms redrive` finds them; the emulator
//!   writes nothing there. The test pins that, so an emulator that starts writing them shows up.
//! - A transform invocation that errors passes its records through to `raw/` unchanged; real
//!   Firehose retries it `NumberOfRetries` times and then writes the batch under the error
//!   prefix. Nothing the test sends fails an invocation (bad data is never an error, DESIGN 3).
//! - There is no `AWS::CloudWatch::MetricStream`, so the test puts records into the delivery
//!   stream as the stream would: `cwms replay` for metric-stream NDJSON (it packs lines into
//!   records as CloudWatch does, and sends the lines of a gzip file, not its bytes), and
//!   `PutRecordBatch` for gzip-wrapped records, which producers other than CloudWatch send.
//! - A `provided.al2023` bootstrap runs as a process on this host and `Architectures` is ignored,
//!   so the stack gets the x86_64 debug builds of `cargo build --bins`, packaged as `sam build`
//!   packages them (`bootstrap` in a zip; stripped, as the release profile strips).
//! - Lambda sets `AWS_LAMBDA_LOG_FORMAT=JSON` for a function whose `LoggingConfig.LogFormat` is
//!   JSON; the emulator does not, and its bootstraps inherit its environment, so the test sets it
//!   there (and checks that the template asks for JSON).
//! - EMF lines are not turned into CloudWatch metrics, so the alarms are checked against the EMF
//!   documents in the functions' log groups, not against metrics.
//!
//!
//! The phases, each timed in the test's last line:
//! 1. deploy: the bootstraps zipped and uploaded, the template (through `TemplateURL`) created
//!    with CloudFormation; the stack is CREATE_COMPLETE, with no failed event, and the edits are
//!    exactly the listed ones;
//! 2. send: metric-stream NDJSON of several accounts (one Ok, one of the excluded namespace only,
//!    one with malformed lines, one of plain and gzip-wrapped and cut-off gzip records);
//! 3. check raw: every object under `raw/dt=.../hour=.../`, named by the stream and its arrival
//!    time, holds exactly the normalized datums of one Ok record; nothing Dropped or failed, and
//!    nothing else in the bucket;
//! 4. compact: the compactor invoked with the schedule's target `Input`, its report agreeing with
//!    raw/; the lake read back by DuckDB and pyarrow (tests/python/check_lake.py) and compared row
//!    by row with a reference computed from what was sent, and again from raw/; then the next
//!    tick, which finds nothing to do;
//! 5. observe: the lake's partitions registered in the stack's Glue tables (the emulator has
//!    Glue); the functions' runtime, log format and environment as the template sets them; one
//!    EMF document and one log line per transform invocation, adding up to the records sent and
//!    their outcomes; one EMF document per compactor run, with the run's numbers; every alarm's
//!    namespace, metric and dimensions those that the functions' EMF documents or the services
//!    emit for the stack's own resources;
//! 6. stop: the emulator and every bootstrap it spawned are gone.
//!
//! Not checked, because the emulator cannot show it:
//! - Firehose's buffering, gzip objects, `errors/processing-failed/` and retries of a failed
//!   invocation (see above); the compactor's gzip input and `cwms redrive` are tested elsewhere
//!   (`lake.rs`, `firehose.rs`).
//! - The metric stream itself (no `AWS::CloudWatch::MetricStream`): its filters and statistics
//!   configuration are read by tests/sql/check_infra.py, not exercised; the test puts records into
//!   the delivery stream as the stream would.
//! - Alarms changing state: the emulator turns neither EMF lines nor the services' own metrics
//!   into CloudWatch metrics, so alarms are checked by what they read, not by firing.
//!   The metric-math alarm `FirehoseFreshnessAlarm` is not deployed (no metric math); the metric
//!   its query reads is checked from the real template, its dimension resolved to the stack's
//!   delivery stream.
//! - The schedule firing on its own: its shortest rate is a minute, longer than this test may
//!   wait, so the test invokes the function with the schedule's target `Input` and checks that the
//!   target is the compactor, the schedule is enabled, and a tick that cannot be delivered is
//!   retried and then sent to the stack's dead-letter queue (wiring only: a failed delivery
//!   cannot be provoked here).
//! - IAM: the emulator enforces no policy, so a permission missing from a role passes here and
//!   fails in an account; the roles are read by cfn-lint and checkov (tests/sql/check_infra.py).
//!
//! The edits the template needs to deploy here are made mechanically by tests/deployed/stack.py
//! from the real file, each with the emulator limit it works around; the test checks the list.
//! A test that fails or panics still stops the emulator and its bootstraps (`Drop`); one that
//! nextest ends on its timeout is signalled as a process group, which holds them too.

use std::collections::{BTreeMap, BTreeSet};
use std::fs::File;
use std::io::Read as _;
use std::net::{Ipv4Addr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use aws_sdk_firehose::primitives::Blob;
use aws_sdk_firehose::types::Record;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use cwms_tests::lambda_emulator::{debug_dir, tools_dir};
use cwms_tests::servers::sdk_config;
use cwms_tests::util::{cwms, describe, files, python};
use serde_json::Value;
use tempfile::TempDir;

/// The stack's name; its resources' names derive from it.
const STACK: &str = "cwms-e2e";
/// The first minute of every generated file: three minutes before an hour boundary, so the lake
/// gets two hours of one day.
const START: &str = "2026-03-01T10:57:00Z";
/// The transform's exclude filter (template parameter `TransformExcludeNamespaces`): a record
/// of only these namespaces is `Dropped`, and their datums leave a mixed record.
const EXCLUDED_PREFIX: &str = "AWS/Dynamo";
/// How long the emulator may take to answer `/_ministack/ready`.
const STARTUP_TIMEOUT: Duration = Duration::from_secs(60);
/// How many ports to try (a free port can be taken before the emulator binds it).
const PORT_ATTEMPTS: usize = 3;

// ---------------------------------------------------------------------------------------------
// The emulator
// ---------------------------------------------------------------------------------------------

/// ministack on a free 127.0.0.1 port, with a temporary directory for everything it writes (its
/// pid file, the unpacked Lambda code) and its log in the test's folder. Stopping it also ends the bootstraps it spawned: they are
/// its child processes, and a signal to the emulator alone leaves them running.
struct Ministack {
    endpoint: String,
    child: Child,
    log: PathBuf,
    stopped: bool,
    _dir: TempDir,
}

impl Ministack {
    fn start(log_dir: &Path) -> Self {
        let program = tools_dir().join("ministack-venv/bin/ministack");
        assert!(
            program.is_file(),
            "ministack is not installed at {}: run ./scripts/test or scripts/install-tools, which install it into \
             target/tools/ministack-venv",
            program.display()
        );
        for attempt in 1..=PORT_ATTEMPTS {
            let dir = tempfile::Builder::new().prefix("cwms-ministack-").tempdir().expect("cannot create a temporary directory");
            let log = log_dir.join(format!("ministack-{attempt}.log"));
            let port = free_port();
            let endpoint = format!("http://127.0.0.1:{port}");
            let log_file = File::create(&log).expect("cannot create the emulator's log");
            // A clean environment: the bootstraps inherit the emulator's, and both Lambdas refuse
            // unknown CWMS_ settings, so nothing of the test's environment may reach them.
            let child = Command::new(&program)
                .env_clear()
                .env("PATH", std::env::var_os("PATH").unwrap_or_default())
                .env("HOME", dir.path())
                .env("TMPDIR", dir.path())
                .env("BIND_HOST", "127.0.0.1")
                .env("GATEWAY_PORT", port.to_string())
                // Where the functions' AWS SDKs send their calls: this emulator.
                .env("AWS_ENDPOINT_URL", &endpoint)
                // What Lambda sets for LoggingConfig.LogFormat JSON, and the emulator does not.
                .env("AWS_LAMBDA_LOG_FORMAT", "JSON")
                .current_dir(dir.path())
                .stdin(Stdio::null())
                .stdout(log_file.try_clone().expect("cannot share the emulator's log"))
                .stderr(log_file)
                .spawn()
                .unwrap_or_else(|err| panic!("cannot run {}: {err}", program.display()));
            let mut server = Self { endpoint, child, log, stopped: false, _dir: dir };
            match server.wait_until_ready() {
                Ok(()) => return server,
                Err(true) if attempt < PORT_ATTEMPTS => {
                    eprintln!("ministack exited on port {port}, trying another port:\n{}", server.log_tail());
                }
                Err(_) => panic!("ministack did not become ready on port {port} within {STARTUP_TIMEOUT:?}:\n{}", server.log_tail()),
            }
        }
        unreachable!("the last attempt returns or panics")
    }

    /// Polls `GET /_ministack/ready` until it answers 200; `Err(true)` when the process exited.
    fn wait_until_ready(&mut self) -> Result<(), bool> {
        let agent: ureq::Agent =
            ureq::Agent::config_builder().timeout_global(Some(Duration::from_secs(2))).http_status_as_error(false).build().into();
        let url = format!("{}/_ministack/ready", self.endpoint);
        let deadline = Instant::now() + STARTUP_TIMEOUT;
        loop {
            if self.child.try_wait().expect("cannot poll ministack").is_some() {
                return Err(true);
            }
            if agent.get(&url).call().is_ok_and(|r| r.status() == 200) {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(false);
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Ends the emulator and every process below it (the Lambda bootstraps). The emulator is
    /// frozen first, so that it cannot start another bootstrap meanwhile; then all are killed.
    /// Returns the processes still alive afterwards: none, unless something went wrong.
    fn stop(&mut self) -> Vec<String> {
        if std::mem::replace(&mut self.stopped, true) {
            return Vec::new();
        }
        let pid = self.child.id();
        signal("STOP", &[pid]);
        let mut pids = descendants(pid);
        pids.push(pid);
        signal("KILL", &pids);
        let _ = self.child.wait();
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let alive: Vec<u32> = pids.iter().copied().filter(|&p| is_alive(p)).collect();
            if alive.is_empty() || Instant::now() >= deadline {
                return alive.iter().map(|&p| format!("{p} {}", command_line(p))).collect();
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The processes the emulator runs now (its bootstraps), as `pid command`.
    fn children(&self) -> Vec<String> {
        descendants(self.child.id()).into_iter().map(|p| format!("{p} {}", command_line(p))).collect()
    }

    /// The last few kilobytes of the emulator's log, for assertion messages.
    fn log_tail(&self) -> String {
        const TAIL: usize = 16 * 1024;
        let log = std::fs::read(&self.log).unwrap_or_default();
        format!("--- ministack log ({}) ---\n{}", self.log.display(), String::from_utf8_lossy(&log[log.len().saturating_sub(TAIL)..]))
    }
}

impl Drop for Ministack {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Sends `signal` to each of `pids` (by id, with kill(1)); a process already gone is no error.
fn signal(signal: &str, pids: &[u32]) {
    if pids.is_empty() {
        return;
    }
    let _ = Command::new("kill")
        .arg(format!("-{signal}"))
        .args(pids.iter().map(u32::to_string))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
}

/// `(state, parent pid)` of a process, from `/proc/PID/stat` (the command name in parentheses
/// may itself hold spaces and parentheses, so the fields are read after the last `)`).
fn proc_stat(pid: u32) -> Option<(char, u32)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let mut fields = stat[stat.rfind(')')? + 1..].split_whitespace();
    let state = fields.next()?.chars().next()?;
    Some((state, fields.next()?.parse().ok()?))
}

/// Every process below `root`, children first.
fn descendants(root: u32) -> Vec<u32> {
    let parents: Vec<(u32, u32)> = std::fs::read_dir("/proc")
        .map(|entries| {
            entries
                .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
                .filter_map(|pid| Some((pid, proc_stat(pid)?.1)))
                .collect()
        })
        .unwrap_or_default();
    let mut found = Vec::new();
    let mut frontier = vec![root];
    while let Some(parent) = frontier.pop() {
        for &(pid, _) in parents.iter().filter(|(_, ppid)| *ppid == parent) {
            found.push(pid);
            frontier.push(pid);
        }
    }
    found
}

/// True while `pid` runs (a zombie waiting for its reaper does not).
fn is_alive(pid: u32) -> bool {
    proc_stat(pid).is_some_and(|(state, _)| state != 'Z' && state != 'X')
}

fn command_line(pid: u32) -> String {
    std::fs::read(format!("/proc/{pid}/cmdline")).map(|c| String::from_utf8_lossy(&c).replace('\0', " ")).unwrap_or_default()
}

fn free_port() -> u16 {
    TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .and_then(|listener| listener.local_addr())
        .map(|address| address.port())
        .expect("cannot find a free TCP port on 127.0.0.1")
}

// ---------------------------------------------------------------------------------------------
// The stack, through tests/deployed/stack.py
// ---------------------------------------------------------------------------------------------

/// Runs a command of tests/deployed/stack.py and parses the JSON it prints, which it also keeps
/// as `<work>/<name>.json` (for a look afterwards, with `scripts/deployed-stack --keep`).
fn stack_py(work: &Path, name: &str, args: &[&str]) -> Value {
    let stdout = python("tests/deployed/stack.py", args);
    std::fs::write(work.join(format!("{name}.json")), &stdout).expect("cannot keep the output of stack.py");
    serde_json::from_str(&stdout).unwrap_or_else(|err| panic!("stack.py {args:?} printed no JSON ({err}):\n{stdout}"))
}

fn text(value: &Value, pointer: &str) -> String {
    value.pointer(pointer).and_then(Value::as_str).unwrap_or_else(|| panic!("no string at {pointer} in {value:#}")).to_owned()
}

// ---------------------------------------------------------------------------------------------
// What is sent
// ---------------------------------------------------------------------------------------------

/// `cwms generate` with the common arguments, into `out`.
fn generate(out: &Path, args: &[&str]) {
    let out = out.to_str().unwrap();
    let mut all = vec!["generate", "--start", START, "--out", out];
    all.extend_from_slice(args);
    let output = cwms(&all, &[]);
    assert!(output.status.success(), "cwms generate {args:?}: {}", describe(&output));
}

/// The environment that points the `cwms` CLI (and any AWS SDK) at the emulator.
fn aws_env(endpoint: &str) -> [(&'static str, &str); 5] {
    [
        ("AWS_ENDPOINT_URL", endpoint),
        ("AWS_ACCESS_KEY_ID", "test"),
        ("AWS_SECRET_ACCESS_KEY", "test"),
        ("AWS_REGION", "us-east-1"),
        ("AWS_SESSION_TOKEN", ""),
    ]
}

/// `cwms replay` of `file` into `stream`, in records of at most `record_bytes`; returns how
/// many records it sent.
fn replay(endpoint: &str, stream: &str, file: &Path, record_bytes: usize) -> usize {
    let record_bytes = record_bytes.to_string();
    let output = cwms(&["replay", "--stream", stream, "--record-bytes", &record_bytes, file.to_str().unwrap()], &aws_env(endpoint));
    assert!(output.status.success(), "cwms replay {}: {}", file.display(), describe(&output));
    // Exit 0: every record delivered. The summary says how many: `sent N record(s) (...)`.
    let stdout = String::from_utf8_lossy(&output.stdout);
    let sent = stdout.lines().find_map(|line| line.strip_prefix("sent ")?.split_whitespace().next()?.parse().ok());
    sent.unwrap_or_else(|| panic!("cwms replay printed no `sent N records`: {}", describe(&output)))
}

/// How a line of metric-stream JSON is damaged, if it is: the kinds `cwms generate --malformed`
/// makes, told apart here without the code under test.
fn damage(line: &str) -> Option<&'static str> {
    let Ok(Value::Object(datum)) = serde_json::from_str::<Value>(line) else { return Some("truncated-line") };
    let Some(Value::Object(value)) = datum.get("value") else { return Some("missing-value") };
    if !["count", "sum", "max", "min"].iter().all(|k| value.contains_key(*k)) || !value.values().all(Value::is_number) {
        return Some("non-number-statistic");
    }
    let names = ["account_id", "region", "namespace", "metric_name"];
    if !names.iter().all(|k| datum.get(*k).and_then(Value::as_str).is_some_and(|s| !s.is_empty())) || !datum["timestamp"].is_i64() {
        return Some("other");
    }
    None
}

/// The non-blank lines of a text.
fn lines(text: &str) -> Vec<String> {
    text.lines().filter(|l| !l.trim().is_empty()).map(str::to_owned).collect()
}

/// A datum in one canonical text (object keys sorted at every level), to compare datums as the
/// transform normalizes them: the same fields and numbers, perhaps in another key order.
fn canonical(line: &str) -> String {
    fn write(value: &Value) -> String {
        match value {
            Value::Object(map) => {
                let mut entries: Vec<(&String, &Value)> = map.iter().collect();
                entries.sort_by(|a, b| a.0.cmp(b.0));
                let fields: Vec<String> = entries.iter().map(|(k, v)| format!("{}:{}", Value::String((*k).clone()), write(v))).collect();
                format!("{{{}}}", fields.join(","))
            }
            Value::Array(items) => format!("[{}]", items.iter().map(write).collect::<Vec<_>>().join(",")),
            other => other.to_string(),
        }
    }
    write(&serde_json::from_str(line).unwrap_or_else(|err| panic!("not JSON ({err}): {line}")))
}

fn account(line: &str) -> String {
    serde_json::from_str::<Value>(line).ok().and_then(|d| d["account_id"].as_str().map(str::to_owned)).unwrap_or_default()
}

fn excluded(line: &str) -> bool {
    serde_json::from_str::<Value>(line).is_ok_and(|d| d["namespace"].as_str().is_some_and(|n| n.starts_with(EXCLUDED_PREFIX)))
}

fn gunzip(bytes: &[u8]) -> Result<Vec<u8>, std::io::Error> {
    let mut out = Vec::new();
    flate2::read::MultiGzDecoder::new(bytes).read_to_end(&mut out)?;
    Ok(out)
}

/// What the test sends and what each part must become, worked out from the inputs alone.
#[derive(Default)]
struct Expected {
    records_sent: usize,
    ok: usize,
    dropped: usize,
    failed: usize,
    /// The datums (canonical lines) each account's `Ok` records carry, and how many `Ok` records
    /// (so raw objects) each account has.
    datums_by_account: BTreeMap<String, BTreeSet<String>>,
    objects_by_account: BTreeMap<String, usize>,
    /// Every line that must reach the lake, as sent (for tests/python/check_lake.py).
    lake_lines: Vec<String>,
    /// The records the test put with PutRecordBatch, as it classified them: (plain or gzip,
    /// good or not).
    put_kinds: BTreeMap<&'static str, usize>,
    damaged_kinds: BTreeMap<&'static str, usize>,
}

// ---------------------------------------------------------------------------------------------
// The test
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_template_deployed_in_ministack_turns_records_into_the_lake() {
    let began = Instant::now();
    let mut timings: Vec<(&str, Duration)> = Vec::new();
    let mut lap = {
        let mut last = Instant::now();
        move |what: &'static str, timings: &mut Vec<(&'static str, Duration)>| {
            timings.push((what, last.elapsed()));
            last = Instant::now();
        }
    };
    let sent_at_ms = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_millis() as i64;
    // scripts/deployed-stack --keep keeps the test's folder for a look afterwards.
    let keep = std::env::var_os("DEPLOYED_STACK_KEEP").is_some();
    let work = tempfile::Builder::new().prefix("cwms-deployed-").disable_cleanup(keep).tempdir().unwrap();
    if keep {
        eprintln!("keeping {}", work.path().display());
    }
    let mut ministack = Ministack::start(work.path());
    let endpoint = ministack.endpoint.clone();
    lap("start ministack", &mut timings);

    // 1. Deploy the template with CloudFormation, as `sam deploy` would (through TemplateURL).
    let bin_dir = debug_dir();
    let deployed = stack_py(
        work.path(),
        "deployed",
        &[
            "deploy",
            "--endpoint",
            &endpoint,
            "--bin-dir",
            bin_dir.to_str().unwrap(),
            "--work",
            work.path().to_str().unwrap(),
            "--stack",
            STACK,
            "--parameter",
            &format!("TransformExcludeNamespaces={EXCLUDED_PREFIX}*"),
            // The emulator's scheduler fires rate() schedules, counted from creation: at an hour no
            // tick can start a second compaction while the test runs (the default is 15 minutes).
            "--parameter",
            "CompactorScheduleExpression=rate(1 hour)",
        ],
    );
    assert_eq!(text(&deployed, "/status"), "CREATE_COMPLETE", "{deployed:#}\n{}", ministack.log_tail());
    check_edits(&deployed);
    let outputs = &deployed["outputs"];
    let (stream, bucket) = (text(outputs, "/DeliveryStreamName"), text(outputs, "/BucketName"));
    eprintln!(
        "deployed {} resources from a {}-byte template (edited: {} bytes) in {}",
        deployed["resources"].as_object().map_or(0, |r| r.len()),
        deployed["template_bytes"]["real"],
        deployed["template_bytes"]["deployed"],
        deployed["seconds"]
    );
    lap("deploy", &mut timings);

    // 2. Send records into the stack's delivery stream.
    let mut expected = Expected::default();
    let sent = work.path().join("sent");
    std::fs::create_dir_all(&sent).unwrap();

    // a. CloudWatch-sized records of every namespace, with duplicates and late datums: every
    //    record Ok, its AWS/DynamoDB datums filtered out by the transform.
    let mixed = work.path().join("mixed.ndjson");
    generate(
        &mixed,
        &["--series", "50", "--minutes", "6", "--seed", "5", "--account-id", "111111111111", "--duplicates", "5%", "--late", "5%"],
    );
    let mixed_lines = lines(&std::fs::read_to_string(&mixed).unwrap());
    let records = replay(&endpoint, &stream, &mixed, 65_536);
    expected.records_sent += records;
    expected.ok += records;
    expected.objects_by_account.insert("111111111111".into(), records);
    let kept: Vec<String> = mixed_lines.iter().filter(|l| !excluded(l)).cloned().collect();
    assert!(kept.len() < mixed_lines.len(), "the mixed file has no {EXCLUDED_PREFIX} datum to filter");
    expected.datums_by_account.insert("111111111111".into(), kept.iter().map(|l| canonical(l)).collect());
    expected.lake_lines.extend(kept);

    // b. Records of the excluded namespace only: every one Dropped.
    let dropped = work.path().join("dropped.ndjson");
    generate(&dropped, &["--series", "8", "--minutes", "3", "--seed", "6", "--account-id", "222222222222", "--namespaces", "AWS/DynamoDB"]);
    let records = replay(&endpoint, &stream, &dropped, 1024);
    assert!(records >= 2, "{records} records of the excluded namespace");
    expected.records_sent += records;
    expected.dropped += records;

    // c. Malformed lines among good ones, one line per record (a record shorter than a line
    //    holds only that line): each damaged line ProcessingFailed, each good one Ok.
    let malformed = work.path().join("malformed.ndjson");
    generate(
        &malformed,
        &[
            "--series",
            "6",
            "--minutes",
            "4",
            "--seed",
            "11",
            "--account-id",
            "333333333333",
            "--namespaces",
            "AWS/EC2,AWS/Lambda",
            "--malformed",
            "60%",
            "--malformations",
            "truncated-line,missing-value,non-number-statistic",
        ],
    );
    let malformed_lines = lines(&std::fs::read_to_string(&malformed).unwrap());
    let records = replay(&endpoint, &stream, &malformed, 1);
    assert_eq!(records, malformed_lines.len(), "one record per line");
    expected.records_sent += records;
    let (bad, good): (Vec<&String>, Vec<&String>) = malformed_lines.iter().partition(|l| damage(l).is_some());
    for line in &bad {
        *expected.damaged_kinds.entry(damage(line).unwrap()).or_default() += 1;
    }
    expected.failed += bad.len();
    expected.ok += good.len();
    expected.objects_by_account.insert("333333333333".into(), good.len());
    expected.datums_by_account.insert("333333333333".into(), good.iter().map(|l| canonical(l)).collect());
    expected.lake_lines.extend(good.iter().map(|l| l.to_string()));
    for kind in ["truncated-line", "missing-value", "non-number-statistic"] {
        assert!(expected.damaged_kinds.contains_key(kind), "no {kind} line among {:?}", expected.damaged_kinds);
    }

    // d. Records as `cwms generate` builds Firehose events: plain and gzip-wrapped, some gzip cut
    //    off halfway, put with PutRecordBatch (`cwms replay` sends lines, never gzip bytes).
    let event_file = work.path().join("event.json");
    generate(
        &event_file,
        &[
            "--format",
            "firehose-event",
            "--one-event",
            "--series",
            "12",
            "--minutes",
            "4",
            "--seed",
            "8",
            "--account-id",
            "444444444444",
            "--namespaces",
            "AWS/ApiGateway",
            "--gzip",
            "60%",
            "--malformed",
            "40%",
            "--malformations",
            "bad-gzip,truncated-line",
        ],
    );
    let event: Value = serde_json::from_slice(&std::fs::read(&event_file).unwrap()).unwrap();
    let mut put = Vec::new();
    let mut gzip_lines = BTreeSet::new();
    let mut gzip_ok = 0;
    for record in event["records"].as_array().unwrap() {
        let bytes = BASE64.decode(record["data"].as_str().unwrap()).unwrap();
        let gzipped = bytes.starts_with(&[0x1f, 0x8b]);
        let plain = if gzipped { gunzip(&bytes).ok() } else { Some(bytes.clone()) };
        let good = plain.as_ref().and_then(|p| {
            let text = String::from_utf8(p.clone()).ok()?;
            let lines = lines(&text);
            (!lines.is_empty() && lines.iter().all(|l| damage(l).is_none())).then_some(lines)
        });
        let kind = match (gzipped, good.is_some()) {
            (true, true) => "gzip",
            (true, false) => "gzip-damaged",
            (false, true) => "plain",
            (false, false) => "plain-damaged",
        };
        *expected.put_kinds.entry(kind).or_default() += 1;
        if let Some(good) = good {
            gzip_ok += 1;
            gzip_lines.extend(good.iter().map(|l| canonical(l)));
            expected.lake_lines.extend(good);
        }
        put.push(Record::builder().data(Blob::new(bytes)).build().unwrap());
    }
    for kind in ["gzip", "gzip-damaged", "plain"] {
        assert!(expected.put_kinds.contains_key(kind), "no {kind} record among {:?}", expected.put_kinds);
    }
    let records = put.len();
    let firehose = aws_sdk_firehose::Client::new(&sdk_config(&endpoint));
    let answer = firehose.put_record_batch().delivery_stream_name(&stream).set_records(Some(put)).send().await.unwrap();
    assert_eq!(answer.failed_put_count(), 0, "{answer:?}");
    expected.records_sent += records;
    expected.ok += gzip_ok;
    expected.failed += records - gzip_ok;
    expected.objects_by_account.insert("444444444444".into(), gzip_ok);
    expected.datums_by_account.insert("444444444444".into(), gzip_lines);
    std::fs::write(sent.join("sent.ndjson"), expected.lake_lines.join("\n") + "\n").unwrap();
    eprintln!(
        "sent {} records: {} ok, {} dropped, {} failed (damaged lines {:?}; put records {:?})",
        expected.records_sent, expected.ok, expected.dropped, expected.failed, expected.damaged_kinds, expected.put_kinds
    );
    lap("send", &mut timings);

    // 3. What the stack's Firehose wrote to raw/ (and did not write to errors/).
    let bucket_dir = work.path().join("bucket");
    let listing = stack_py(
        work.path(),
        "bucket",
        &["download", "--endpoint", &endpoint, "--bucket", &bucket, "--prefix", "", "--out", bucket_dir.to_str().unwrap()],
    );
    let keys: Vec<String> = listing["keys"].as_array().unwrap().iter().map(|k| k.as_str().unwrap().to_owned()).collect();
    // Nothing under errors/: real Firehose would write each ProcessingFailed record's original
    // bytes there (errors/processing-failed/dt=.../); the emulator drops them.
    assert!(keys.iter().all(|k| k.starts_with("raw/")), "before the compactor runs, the bucket holds raw/ only: {keys:?}");
    let raw = files(&bucket_dir.join("raw"));
    check_raw(&raw, &expected, &stream, sent_at_ms);
    lap("check raw", &mut timings);

    // 4. The compactor, invoked with the schedule's own payload, and the lake it wrote.
    let run = stack_py(work.path(), "compactor-run", &["invoke-compactor", "--endpoint", &endpoint, "--stack", STACK]);
    assert_eq!(run["status"], 200, "{run:#}\n{}", ministack.log_tail());
    assert!(run["function_error"].is_null(), "the compactor failed: {run:#}\n{}", ministack.log_tail());
    assert_eq!(text(&run, "/schedule/target_arn"), text(&run, "/function_arn"), "the schedule targets the compactor: {run:#}");
    assert_eq!(text(&run, "/schedule/state"), "ENABLED", "{run:#}");
    // A tick the scheduler cannot deliver is retried, then lands in the stack's dead-letter queue.
    assert_eq!(text(&run, "/schedule/dead_letter_arn"), text(&run, "/dead_letter_queue_arn"), "{run:#}");
    assert!(run["schedule"]["retry_policy"]["MaximumRetryAttempts"].as_u64().is_some_and(|n| n > 0), "{run:#}");
    let summary: Value = serde_json::from_str(&text(&run, "/payload")).unwrap();
    let raw_lines: usize = raw.values().map(|bytes| lines(&String::from_utf8_lossy(bytes)).len()).sum();
    assert_eq!(summary["objects_read"], raw.len(), "{summary:#}");
    assert_eq!(summary["datums"], raw_lines, "{summary:#}");
    for empty in ["objects_failed", "partition_errors", "rejected"] {
        assert_eq!(summary[empty], Value::Array(vec![]), "{empty}: {summary:#}");
    }
    assert_eq!(summary["lines_rejected"], 0, "{summary:#}");
    lap("compact", &mut timings);

    let lake_dir = work.path().join("after");
    let listing = stack_py(
        work.path(),
        "lake",
        &["download", "--endpoint", &endpoint, "--bucket", &bucket, "--prefix", "lake/", "--out", lake_dir.to_str().unwrap()],
    );
    let lake_keys: Vec<String> = listing["keys"].as_array().unwrap().iter().map(|k| k.as_str().unwrap().to_owned()).collect();
    assert!(lake_keys.iter().any(|k| k == "lake/_cwms/checkpoint.json"), "{lake_keys:?}");
    for (table, field) in [("metrics_1m", "minute_objects_written"), ("metrics_1h", "hour_objects_written")] {
        let objects = lake_keys.iter().filter(|k| k.starts_with(&format!("lake/{table}/")) && k.ends_with(".parquet")).count();
        assert_eq!(summary[field], objects, "{table} objects: {summary:#}\n{lake_keys:#?}");
    }
    let lake = lake_dir.join("lake");
    // Row by row, by DuckDB and pyarrow, against a reference computed from what was sent.
    let checked = python(
        "tests/python/check_lake.py",
        &[sent.to_str().unwrap(), lake.to_str().unwrap(), "--expect-failed", "0", "--expect-rejected", "0"],
    );
    eprintln!("{}", checked.trim());
    // And from what the stack's Firehose wrote, which must be the same thing.
    python("tests/python/check_lake.py", &[bucket_dir.join("raw").to_str().unwrap(), lake.to_str().unwrap(), "--expect-failed", "0"]);
    lap("check lake", &mut timings);

    // The schedule's next tick, with nothing new in raw/: the checkpoint the first run wrote to
    // the stack's bucket says every object is done, so the run reads and writes nothing.
    let rerun = stack_py(work.path(), "compactor-rerun", &["invoke-compactor", "--endpoint", &endpoint, "--stack", STACK]);
    assert!(rerun["status"] == 200 && rerun["function_error"].is_null(), "the second run failed: {rerun:#}\n{}", ministack.log_tail());
    let resummary: Value = serde_json::from_str(&text(&rerun, "/payload")).unwrap();
    for (field, value) in [("objects_listed", raw.len()), ("objects_pending", 0), ("objects_read", 0), ("datums", 0)] {
        assert_eq!(resummary[field], value, "{field}: {resummary:#}");
    }
    for field in ["minute_objects_written", "hour_objects_written", "glue_partitions_created", "lake_bytes_written"] {
        assert_eq!(resummary[field], 0, "{field}: {resummary:#}");
    }
    lap("compact again", &mut timings);

    // 5, 6. The Glue partitions, the functions' configuration and EMF, and the alarms.
    let observed = stack_py(work.path(), "observed", &["observe", "--endpoint", &endpoint, "--stack", STACK]);
    let partitions = check_glue(&observed, &lake_keys, &bucket);
    assert_eq!(summary["glue_partitions_created"], partitions, "{summary:#}");
    check_functions(&observed, outputs, &expected, [&summary, &resummary]);
    check_alarms(&observed);
    lap("observe", &mut timings);

    // Nothing is left running: the emulator and every bootstrap it started.
    let bootstraps = ministack.children();
    assert!(bootstraps.iter().any(|p| p.contains("/bootstrap")), "no bootstrap is running: {bootstraps:?}");
    let left = ministack.stop();
    assert!(left.is_empty(), "still running after the stop: {left:?}");
    lap("stop", &mut timings);
    eprintln!(
        "the deployed stack, end to end, in {:.1} s: {}",
        began.elapsed().as_secs_f64(),
        timings.iter().map(|(what, d)| format!("{what} {:.1} s", d.as_secs_f64())).collect::<Vec<_>>().join(", ")
    );
}

/// The template edits are exactly the listed ones (a template change that makes one
/// unnecessary, or needs another, shows up here).
fn check_edits(deployed: &Value) {
    let edits: Vec<String> = deployed["edits"].as_array().unwrap().iter().map(|e| text(e, "/edit")).collect();
    for edit in &edits {
        eprintln!("template edit: {edit}");
    }
    let starts = [
        "TransformFunction.CodeUri",
        "CompactorFunction.CodeUri",
        "TransformFunction.Architectures",
        "CompactorFunction.Architectures",
        "removed IncludingMetricStream, MetricStream",
        "removed the 30 slot conditions",
        "removed FirehoseFreshnessAlarm",
    ];
    assert_eq!(edits.len(), starts.len(), "{edits:#?}");
    for (edit, start) in edits.iter().zip(starts) {
        assert!(edit.starts_with(start), "{edit:?} is not {start:?}...");
    }
    assert!(deployed["failed_events"].as_array().unwrap().is_empty(), "{deployed:#}");
}

/// raw/ holds one object per `Ok` record, under the stack's prefix with the arrival hour, each
/// exactly the record's datums normalized (one per line, each line ending in `\n`).
fn check_raw(raw: &BTreeMap<String, Vec<u8>>, expected: &Expected, stream: &str, sent_at_ms: i64) {
    let now_ms = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_millis() as i64;
    let mut objects_by_account: BTreeMap<String, usize> = BTreeMap::new();
    let mut datums_by_account: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (key, bytes) in raw {
        // dt=YYYY-MM-DD/hour=HH/<stream>-1-YYYY-MM-DD-HH-mm-ss-<uuid>: Firehose's name, by arrival time.
        let parts: Vec<&str> = key.split('/').collect();
        assert_eq!(parts.len(), 3, "{key}");
        let (dt, hour) = (parts[0].strip_prefix("dt=").expect(key), parts[1].strip_prefix("hour=").expect(key));
        let stamp = parts[2].strip_prefix(&format!("{stream}-1-")).unwrap_or_else(|| panic!("{key} is not named after {stream}"));
        assert_eq!(&stamp[..10], dt, "{key}: the prefix's date is the object's arrival date");
        assert_eq!(&stamp[11..13], hour, "{key}: the prefix's hour is the object's arrival hour");
        let arrival = arrival_ms(&stamp[..19]);
        assert!((sent_at_ms / 1000 * 1000 - 1000..=now_ms).contains(&arrival), "{key}: arrived {arrival}, not during the test");
        // The emulator does not gzip (real Firehose would: CompressionFormat GZIP).
        assert!(!bytes.starts_with(&[0x1f, 0x8b]), "{key} is gzip: the emulator compresses now, update the notes above");
        let text = String::from_utf8(bytes.clone()).unwrap_or_else(|_| panic!("{key} is not text"));
        assert!(text.ends_with('\n'), "{key}: the last line has no newline");
        let datums = lines(&text);
        assert!(!datums.is_empty(), "{key} is empty");
        let owner = account(&datums[0]);
        let mut seen = BTreeSet::new();
        for line in &datums {
            assert_eq!(damage(line), None, "{key}: a damaged line reached raw/: {line}");
            assert!(!excluded(line), "{key}: a filtered datum reached raw/: {line}");
            assert_eq!(account(line), owner, "{key}: one record, one file sent");
            assert!(seen.insert(canonical(line)), "{key}: an exact duplicate inside one record was not removed: {line}");
        }
        *objects_by_account.entry(owner.clone()).or_default() += 1;
        datums_by_account.entry(owner).or_default().extend(seen);
    }
    assert_eq!(objects_by_account.get("222222222222"), None, "a record of the excluded namespace was not Dropped");
    let wanted_objects: BTreeMap<String, usize> =
        expected.objects_by_account.iter().filter(|(_, n)| **n > 0).map(|(a, n)| (a.clone(), *n)).collect();
    assert_eq!(objects_by_account, wanted_objects, "raw objects per account: one per Ok record");
    assert_eq!(objects_by_account.values().sum::<usize>(), expected.ok, "raw objects");
    for (owner, wanted) in &expected.datums_by_account {
        let got = datums_by_account.get(owner).cloned().unwrap_or_default();
        assert_eq!(got.len(), wanted.len(), "account {owner}: distinct datums in raw/");
        assert!(
            got == *wanted,
            "account {owner}: raw/ holds other datums than were sent: {:?}",
            got.symmetric_difference(wanted).take(3).collect::<Vec<_>>()
        );
    }
}

/// Epoch milliseconds of `YYYY-MM-DD-HH-mm-ss` (UTC).
fn arrival_ms(stamp: &str) -> i64 {
    let n = |range: std::ops::Range<usize>| stamp[range].parse::<i64>().unwrap_or_else(|_| panic!("bad time {stamp}"));
    let (y, m, d) = (n(0..4), n(5..7), n(8..10));
    // Days from the civil date (Howard Hinnant's algorithm).
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    ((days * 24 + n(11..13)) * 60 + n(14..16)) * 60_000 + n(17..19) * 1000
}

/// The lake's partitions are registered in the stack's Glue tables, with their real namespace
/// and their folder as location; returns how many there are in both tables.
fn check_glue(observed: &Value, lake_keys: &[String], bucket: &str) -> usize {
    let mut total = 0;
    for table in ["metrics_1m", "metrics_1h"] {
        let wanted: BTreeSet<(String, String, String)> = lake_keys
            .iter()
            .filter_map(|k| {
                let rest = k.strip_prefix(&format!("lake/{table}/"))?;
                let (folder, _file) = rest.rsplit_once('/')?;
                let (dt, namespace) = folder.split_once('/')?;
                let (dt, folder_ns) = (dt.strip_prefix("dt=")?, namespace.strip_prefix("namespace=")?);
                Some((dt.to_owned(), folder_ns.replace("%2F", "/"), format!("s3://{bucket}/lake/{table}/dt={dt}/namespace={folder_ns}/")))
            })
            .collect();
        assert!(!wanted.is_empty(), "no {table} objects in {lake_keys:?}");
        let got: BTreeSet<(String, String, String)> = observed["glue"]["tables"][table]["partitions"]
            .as_array()
            .unwrap_or_else(|| panic!("no Glue table {table}: {:#}", observed["glue"]))
            .iter()
            .map(|p| (text(p, "/values/0"), text(p, "/values/1"), text(p, "/location")))
            .collect();
        assert_eq!(got, wanted, "the Glue partitions of {table}");
        assert_eq!(text(observed, &format!("/glue/tables/{table}/location")), format!("s3://{bucket}/lake/{table}/"));
        total += got.len();
    }
    assert_eq!(observed["glue"]["tables"]["raw"]["partitions"], Value::Array(vec![]), "raw/ uses projection, nothing registers it");
    total
}

/// The EMF documents of one function's log: (the whole document, the names it declares).
fn emf_documents(function: &Value) -> Vec<(Value, BTreeSet<String>)> {
    function["log"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|m| serde_json::from_str::<Value>(m.as_str()?).ok())
        .filter(|doc| doc.get("_aws").is_some())
        .map(|doc| {
            let directive = &doc["_aws"]["CloudWatchMetrics"][0];
            assert_eq!(directive["Namespace"], "cwms", "{doc}");
            assert_eq!(directive["Dimensions"], serde_json::json!([["FunctionName"]]), "{doc}");
            let names = directive["Metrics"].as_array().unwrap().iter().map(|m| text(m, "/Name")).collect::<BTreeSet<_>>();
            for name in &names {
                assert!(doc[name].is_number(), "{name} declared without a value: {doc}");
            }
            (doc, names)
        })
        .collect()
}

/// The functions got what the template gives them, answered every record, and emitted EMF
/// documents whose numbers add up to what was sent.
fn check_functions(observed: &Value, outputs: &Value, expected: &Expected, runs: [&Value; 2]) {
    let summary = runs[0];
    let transform = &observed["functions"]["TransformFunction"];
    let compactor = &observed["functions"]["CompactorFunction"];
    for function in [transform, compactor] {
        assert_eq!(function["runtime"], "provided.al2023", "{function:#}");
        assert_eq!(function["log_format"], "JSON", "the template asks for JSON logs: {function:#}");
    }
    assert_eq!(transform["environment"]["CWMS_EXCLUDE_NAMESPACES"], format!("{EXCLUDED_PREFIX}*"));
    assert_eq!(compactor["environment"]["CWMS_RAW"], outputs["RawUri"]);
    assert_eq!(compactor["environment"]["CWMS_LAKE"], outputs["LakeUri"]);
    assert_eq!(compactor["environment"]["CWMS_GLUE_DATABASE"], outputs["GlueDatabaseName"]);
    let processor = &observed["delivery_stream"]["processors"]["Processors"][0]["Parameters"];
    assert!(
        processor.as_array().unwrap().iter().any(|p| p["ParameterName"] == "LambdaArn"
            && p["ParameterValue"].as_str().is_some_and(|arn| arn.ends_with(&format!(":function:{}", text(transform, "/name"))))),
        "the stream's processor is the stack's transform: {processor:#}"
    );

    // The transform: one EMF document per invocation (the emulator invokes once per record),
    // adding up to the records sent and their outcomes. The emulator files a function's output
    // per invocation, once the response is in (waiting briefly for lines still in the pipe); both
    // functions write their lines before they answer, so none is left for a later invocation.
    let docs = emf_documents(transform);
    let sum = |name: &str| docs.iter().map(|(doc, _)| doc[name].as_f64().unwrap_or(0.0)).sum::<f64>() as usize;
    assert_eq!(docs.len(), expected.records_sent, "one transform invocation per record");
    assert_eq!(
        (sum("RecordsIn"), sum("RecordsOk"), sum("RecordsDropped"), sum("RecordsFailed")),
        (expected.records_sent, expected.ok, expected.dropped, expected.failed),
        "records in, ok, dropped, failed"
    );
    assert_eq!(sum("Datums"), summary["datums"].as_u64().unwrap() as usize, "the datums the transform passed on are the compactor's");
    for (doc, _) in &docs {
        assert_eq!(doc["FunctionName"], transform["name"], "{doc}");
    }
    let log: Vec<Value> = transform["log"].as_array().unwrap().iter().filter_map(|m| serde_json::from_str(m.as_str()?).ok()).collect();
    let message = |line: &Value| line["fields"]["message"].as_str().unwrap_or_default().to_owned();
    assert_eq!(log.iter().filter(|l| message(l) == "batch transformed").count(), expected.records_sent, "one log line per batch");
    let failed: Vec<&Value> = log.iter().filter(|l| message(l) == "record failed").collect();
    assert_eq!(failed.len(), expected.failed, "one log line per failed record");
    assert!(failed.iter().all(|l| l["fields"]["record_id"].is_string() && l["fields"]["reason"].is_string()), "{failed:#?}");

    // The compactor: one document per run, in order, its numbers those of the run.
    let docs = emf_documents(compactor);
    assert_eq!(docs.len(), runs.len(), "one EMF document per compactor run: {compactor:#}");
    for ((doc, _), run) in docs.iter().zip(runs) {
        assert_eq!(doc["FunctionName"], compactor["name"], "{doc}");
        assert_eq!(doc["CompactionErrors"], 0.0, "{doc}");
        assert_eq!(doc["ObjectsRead"].as_f64(), run["objects_read"].as_f64(), "{doc}");
        assert_eq!(doc["Datums"].as_f64(), run["datums"].as_f64(), "{doc}");
        assert_eq!(doc["LakeBytesWritten"].as_f64(), run["lake_bytes_written"].as_f64(), "{doc}");
        assert_eq!(doc["LagSeconds"], 0.0, "caught up: {doc}");
    }
}

/// Every alarm reads a metric somebody emits, under the dimensions it is emitted with: the
/// functions' own EMF metrics (namespace cwms) and the services' metrics of the stack's resources.
/// The metric-math alarm the emulator cannot create is checked from the real template, its
/// dimensions resolved to the deployed resources.
fn check_alarms(observed: &Value) {
    let physical = &observed["physical"];
    let function_names: BTreeMap<String, String> =
        ["TransformFunction", "CompactorFunction"].into_iter().map(|rid| (text(physical, &format!("/{rid}")), rid.to_owned())).collect();
    let emitted: BTreeMap<String, BTreeSet<String>> = function_names
        .values()
        .map(|rid| {
            let names = emf_documents(&observed["functions"][rid]).into_iter().flat_map(|(_, names)| names).collect();
            (rid.clone(), names)
        })
        .collect();
    let queue_name = text(physical, "/CompactorDeadLetterQueue").rsplit('/').next().unwrap().to_owned();
    let alarms = observed["alarms"].as_array().unwrap();
    // Every alarm of the stack was read back (DescribeAlarms leaves out a name it does not know).
    let logical: Vec<String> = alarms.iter().map(|a| text(a, "/logical")).collect();
    let resources: Vec<String> = observed["alarm_resources"].as_array().unwrap().iter().map(|a| a.as_str().unwrap().to_owned()).collect();
    assert_eq!(logical, resources, "the stack's alarms");
    let math = observed["math_alarm_metrics"].as_array().unwrap();
    assert!(!math.is_empty(), "no metric of a metric-math alarm: {observed:#}");
    assert!(alarms.len() >= 10, "{alarms:#?}");
    let mut namespaces = BTreeSet::new();
    for alarm in alarms.iter().chain(math) {
        let (logical, namespace, metric) = (text(alarm, "/logical"), text(alarm, "/namespace"), text(alarm, "/metric"));
        let dimensions = alarm["dimensions"].as_object().unwrap();
        let names: Vec<&str> = dimensions.keys().map(String::as_str).collect();
        let value = |name: &str| dimensions[name].as_str().unwrap().to_owned();
        namespaces.insert(namespace.clone());
        match namespace.as_str() {
            "cwms" => {
                assert_eq!(names, ["FunctionName"], "{logical}: EMF dimension set [[FunctionName]]");
                let function = function_names
                    .get(&value("FunctionName"))
                    .unwrap_or_else(|| panic!("{logical}: FunctionName {} is no function of the stack", value("FunctionName")));
                assert!(
                    emitted[function].contains(&metric),
                    "{logical}: {function} emits no {metric} (it emits {:?}); the alarm would never fire",
                    emitted[function]
                );
            }
            "AWS/Lambda" => {
                assert_eq!(names, ["FunctionName"], "{logical}");
                known(&logical, &metric, &["Invocations", "Errors", "Throttles", "Duration", "ConcurrentExecutions"]);
                assert!(function_names.contains_key(&value("FunctionName")), "{logical}: {alarm}");
            }
            "AWS/Firehose" => {
                assert_eq!(names, ["DeliveryStreamName"], "{logical}");
                known(
                    &logical,
                    &metric,
                    &[
                        "IncomingRecords",
                        "IncomingBytes",
                        "ThrottledRecords",
                        "ExecuteProcessing.Success",
                        "ExecuteProcessing.Duration",
                        "SucceedProcessing.Records",
                        "DeliveryToS3.Success",
                        "DeliveryToS3.DataFreshness",
                        "DeliveryToS3.Records",
                    ],
                );
                assert_eq!(value("DeliveryStreamName"), text(physical, "/DeliveryStream"), "{logical}");
            }
            "AWS/SQS" => {
                assert_eq!(names, ["QueueName"], "{logical}");
                known(&logical, &metric, &["ApproximateNumberOfMessagesVisible", "ApproximateAgeOfOldestMessage", "NumberOfMessagesSent"]);
                assert_eq!(value("QueueName"), queue_name, "{logical}");
            }
            // The metric stream is not deployed here (the emulator has none): its alarms carry
            // the stand-in name the test gave the stream, which says only that they are wired.
            "AWS/CloudWatch/MetricStreams" => {
                assert_eq!(names, ["MetricStreamName"], "{logical}");
                known(&logical, &metric, &["MetricUpdate", "TotalMetricUpdate", "PublishErrorRate"]);
                assert_eq!(value("MetricStreamName"), format!("{STACK}-metric-stream"), "{logical}");
            }
            other => panic!("{logical}: an alarm in namespace {other}, which this test does not know"),
        }
    }
    eprintln!("{} alarms and {} metric-math queries read metrics of {namespaces:?}", alarms.len(), math.len());
}

/// A service metric of an alarm is one the service documents (AWS's "Monitoring ... with
/// CloudWatch" pages list each service's metric names; a misspelt one is a metric nobody emits).
fn known(logical: &str, metric: &str, documented: &[&str]) {
    assert!(documented.contains(&metric), "{logical}: {metric} is not among the service's documented metrics {documented:?}");
}
