//! The `cwms` command as a user meets it: what each subcommand does with a standard output that
//! is a closed pipe (`| head -1`) or a full disk (`> /dev/full`), the spellings of one raw folder
//! against one checkpoint, mistyped or missing locations (which must create nothing), and a
//! compaction killed with SIGKILL halfway through publishing (which must leave no partial file
//! where readers look, and whose rerun must converge to the bytes of a clean run), a lost lake
//! object, whose error suggests a rebuild command that works when pasted into a shell, raw
//! objects that failed in an earlier run, a read-only lake, an `--out` file that exists, and
//! the temporary folder a compaction must not leave behind.

use std::fs::File;
use std::io::{BufRead as _, BufReader};
use std::os::unix::process::ExitStatusExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use cwms_tests::lambda_emulator::built_binary;
use cwms_tests::util::{cwms, describe, files, lake_files};

/// 2026-01-15T10:00:00Z, in epoch milliseconds: the first minute of the hand-made raw zones.
const T0_MS: u64 = 1_768_471_200_000;

/// The start of the generated data, so that every run makes the same bytes.
const START: &str = "2026-01-15T10:00:00Z";

/// Environment of every run: a panic would print a backtrace (which the assertions look for),
/// and the Firehose commands point at a closed port, so that nothing can reach AWS even if a
/// dry run stopped being dry.
const ENV: &[(&str, &str)] = &[
    ("RUST_BACKTRACE", "1"),
    ("AWS_ENDPOINT_URL", "http://127.0.0.1:9"),
    ("AWS_REGION", "us-east-1"),
    ("AWS_ACCESS_KEY_ID", "test"),
    ("AWS_SECRET_ACCESS_KEY", "test"),
];

/// Longest any single run here may take before the test calls it stuck.
const RUN_TIMEOUT: Duration = Duration::from_secs(120);

/// `cwms` with `args`, run in `dir` (relative paths are relative to it), stdin closed.
fn command_in(dir: &Path, args: &[&str]) -> Command {
    let mut command = Command::new(built_binary("cwms"));
    command.args(args).current_dir(dir).envs(ENV.iter().copied()).stdin(Stdio::null());
    command
}

/// Runs `cwms` in `dir` and captures its output.
fn cwms_in(dir: &Path, args: &[&str]) -> Output {
    command_in(dir, args).output().unwrap()
}

/// Waits for `child` (whose stdout is not captured), reading its stderr, with a deadline.
fn finish(mut child: Child) -> Output {
    let mut stderr = child.stderr.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut bytes = Vec::new();
        std::io::Read::read_to_end(&mut stderr, &mut bytes).unwrap();
        bytes
    });
    let deadline = Instant::now() + RUN_TIMEOUT;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("cwms is stuck: no end after {RUN_TIMEOUT:?}");
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    Output { status, stdout: Vec::new(), stderr: reader.join().unwrap() }
}

/// Runs `cwms` with a standard output whose reader is gone before it starts: every write to it
/// fails with EPIPE, as after `cwms ... | head -1` has read its line.
fn with_closed_stdout(dir: &Path, args: &[&str]) -> Output {
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    let child = command_in(dir, args).stdout(Stdio::from(writer)).stderr(Stdio::piped()).spawn().unwrap();
    finish(child)
}

/// Runs `cwms` as `cwms ... | head -1`: reads the first line of its standard output, then closes
/// the pipe. Returns the line and the output.
fn with_head_one(dir: &Path, args: &[&str]) -> (String, Output) {
    let mut child = command_in(dir, args).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
    (line, finish(child))
}

/// Runs `cwms` with standard output on `/dev/full`: every write fails with ENOSPC.
fn with_full_stdout(dir: &Path, args: &[&str]) -> Output {
    let full = File::options().write(true).open("/dev/full").unwrap();
    let child = command_in(dir, args).stdout(Stdio::from(full)).stderr(Stdio::piped()).spawn().unwrap();
    finish(child)
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// What must never reach a user: a panic (exit 101), its message or its backtrace.
fn assert_no_panic(output: &Output, what: &str) {
    let text = stderr(output);
    assert_ne!(output.status.code(), Some(101), "{what}: exit 101 is a panic: {}", describe(output));
    for needle in ["panicked", "stack backtrace", "RUST_BACKTRACE"] {
        assert!(!text.contains(needle), "{what}: stderr shows {needle:?}: {}", describe(output));
    }
}

/// A closed standard output is a quiet end: the same exit status as with a reader (the status of
/// the work), no panic, and no complaint about the pipe.
fn assert_quiet_on_closed_pipe(output: &Output, baseline: &Output, what: &str) {
    assert_no_panic(output, what);
    assert_eq!(
        output.status.code(),
        baseline.status.code(),
        "{what}: exit status differs from the run with a reader: {}",
        describe(output)
    );
    let text = stderr(output).to_lowercase();
    for needle in ["broken pipe", "os error 32", "writing to standard output"] {
        assert!(!text.contains(needle), "{what}: a closed pipe is not an error, yet stderr says {needle:?}: {}", describe(output));
    }
}

/// A full standard output is an error: exit 1 (never 0, never a panic), with a message that says
/// it was standard output that could not be written, and why.
fn assert_fails_naming_stdout(output: &Output, what: &str) {
    assert_no_panic(output, what);
    assert_eq!(output.status.code(), Some(1), "{what}: a full standard output must fail with exit 1: {}", describe(output));
    let text = stderr(output);
    assert!(text.contains("standard output"), "{what}: the message must name standard output: {}", describe(output));
    assert!(text.contains("No space left on device"), "{what}: the message must give the cause: {}", describe(output));
}

/// The arguments as `&str`s.
fn refs(args: &[String]) -> Vec<&str> {
    args.iter().map(String::as_str).collect()
}

/// The three ways of running one command that prints on stdout: with a reader (the baseline),
/// a closed pipe (from the start, and after one line) and /dev/full. `args` gets a fresh folder
/// of its own for each run, for the commands that write files.
/// Returns the folder holding the runs' folders: `baseline`, `closed`, `head` and `full`.
fn check_stdout_handling(what: &str, args: impl Fn(&Path) -> Vec<String>) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    // A fresh folder per run, and the arguments for it.
    let prepare = |name: &str| {
        let d = dir.path().join(name);
        std::fs::create_dir(&d).unwrap();
        let a = args(&d);
        (d, a)
    };

    let (d, a) = prepare("baseline");
    let baseline = cwms_in(&d, &refs(&a));
    assert_no_panic(&baseline, what);
    assert!(baseline.status.success(), "{what}: {}", describe(&baseline));
    assert!(!baseline.stdout.is_empty(), "{what}: the command prints nothing on stdout: {}", describe(&baseline));

    let (d, a) = prepare("closed");
    let closed = with_closed_stdout(&d, &refs(&a));
    assert_quiet_on_closed_pipe(&closed, &baseline, &format!("{what} with stdout closed"));

    let (d, a) = prepare("head");
    let (line, head) = with_head_one(&d, &refs(&a));
    assert!(!line.is_empty(), "{what} | head -1 read no line: {}", describe(&head));
    assert_quiet_on_closed_pipe(&head, &baseline, &format!("{what} | head -1"));

    let (d, a) = prepare("full");
    let full = with_full_stdout(&d, &refs(&a));
    assert_fails_naming_stdout(&full, &format!("{what} > /dev/full"));
    dir
}

/// One metric-stream JSON line.
fn datum(namespace: &str, host: &str, minute: u64, value: f64) -> String {
    let timestamp = T0_MS + minute * 60_000;
    format!(
        r#"{{"metric_stream_name":"s","account_id":"123456789012","region":"us-east-1","namespace":"{namespace}","metric_name":"Latency","dimensions":{{"Host":"{host}"}},"timestamp":{timestamp},"value":{{"max":{max},"min":{value},"sum":{sum},"count":3.0}},"unit":"Milliseconds"}}"#,
        max = value + 1.5,
        sum = value * 3.0 + 0.25,
    )
}

/// A raw zone as Firehose lays it out, `dt=2026-01-15/hour=HH/<object>`: one plain NDJSON
/// object per hour holding `namespaces` x `hosts` series, one datum a minute.
fn write_raw(raw: &Path, namespaces: usize, hours: u64, hosts: usize) {
    for hour in 0..hours {
        let folder = raw.join(format!("dt=2026-01-15/hour={:02}", 10 + hour));
        std::fs::create_dir_all(&folder).unwrap();
        let mut text = String::new();
        for n in 0..namespaces {
            for h in 0..hosts {
                for m in 0..60 {
                    let minute = hour * 60 + m;
                    text.push_str(&datum(&format!("App/N{n:02}"), &format!("h-{h}"), minute, (minute * 7 + n as u64) as f64 / 4.0));
                    text.push('\n');
                }
            }
        }
        std::fs::write(folder.join(format!("s-1-2026-01-15-{:02}-00-00-0000.ndjson", 10 + hour)), text).unwrap();
    }
}

/// The `--json` summary of a successful compaction.
fn summary(output: &Output) -> serde_json::Value {
    assert!(output.status.success(), "{}", describe(output));
    serde_json::from_slice(&output.stdout).unwrap_or_else(|e| panic!("not a JSON summary ({e}): {}", describe(output)))
}

/// Every path below `dir` (folders included), relative to it, sorted.
fn tree(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(folder) = stack.pop() {
        for entry in std::fs::read_dir(&folder).unwrap() {
            let path = entry.unwrap().path();
            out.push(path.strip_prefix(dir).unwrap().to_string_lossy().into_owned());
            if path.is_dir() && !path.is_symlink() {
                stack.push(path);
            }
        }
    }
    out.sort();
    out
}

// --- (a) standard output: a closed pipe ends quietly, a full disk is an error naming it ---

#[test]
fn run_on_a_closed_or_full_stdout() {
    let runs = check_stdout_handling("cwms run", |dir| {
        let out = dir.join("demo").to_string_lossy().into_owned();
        ["run", "--out", &out, "--series", "10", "--minutes", "5", "--start", START].map(String::from).to_vec()
    });
    // Without a reader, `cwms run` still does all of its work: the same lake, byte for byte.
    let lake = lake_files(&runs.path().join("baseline/demo/lake"));
    assert!(lake.keys().any(|k| k.ends_with(".parquet")), "{:?}", lake.keys());
    for run in ["closed", "head"] {
        assert_eq!(lake_files(&runs.path().join(run).join("demo/lake")), lake, "{run}: a closed stdout changed the lake");
    }
}

#[test]
fn generate_ndjson_on_a_closed_or_full_stdout() {
    // About 1.3 MB of lines: far more than a pipe buffers, so `| head -1` closes it mid-stream.
    check_stdout_handling("cwms generate", |_| {
        ["generate", "--series", "200", "--minutes", "20", "--start", START].map(String::from).to_vec()
    });
}

#[test]
fn generate_events_on_a_closed_or_full_stdout() {
    check_stdout_handling("cwms generate --format firehose-event", |_| {
        ["generate", "--format", "firehose-event", "--one-event", "--series", "200", "--minutes", "20", "--start", START]
            .map(String::from)
            .to_vec()
    });
}

#[test]
fn transform_on_a_closed_or_full_stdout() {
    let events = tempfile::tempdir().unwrap();
    let event = events.path().join("event.json");
    let made = cwms(
        &[
            "generate",
            "--format",
            "firehose-event",
            "--series",
            "200",
            "--minutes",
            "10",
            "--start",
            START,
            "--out",
            event.to_str().unwrap(),
        ],
        ENV,
    );
    assert!(made.status.success(), "{}", describe(&made));
    let event = event.to_string_lossy().into_owned();
    check_stdout_handling("cwms transform", |_| ["transform", "--event", &event].map(String::from).to_vec());
    check_stdout_handling("cwms transform --stats", |_| ["transform", "--event", &event, "--stats"].map(String::from).to_vec());
}

#[test]
fn compact_on_a_closed_or_full_stdout() {
    let zone = tempfile::tempdir().unwrap();
    let raw = zone.path().join("raw");
    write_raw(&raw, 2, 1, 2);
    let raw = raw.to_string_lossy().into_owned();
    for extra in [None, Some("--json")] {
        let runs = check_stdout_handling(&format!("cwms compact {}", extra.unwrap_or("")), |dir| {
            let mut args = ["compact", "--raw", &raw, "--lake", &dir.join("lake").to_string_lossy()].map(String::from).to_vec();
            args.extend(extra.map(String::from));
            args
        });
        // The work is the same without a reader: the same lake, byte for byte.
        let lake = lake_files(&runs.path().join("baseline/lake"));
        assert!(lake.len() >= 4, "{:?}", lake.keys());
        for run in ["closed", "head"] {
            assert_eq!(lake_files(&runs.path().join(run).join("lake")), lake, "{run}: a closed stdout changed the lake");
        }
    }

    // The exit status is that of the work: an undecodable raw object still fails the run, and
    // is still named, when nobody reads standard output.
    let bad = tempfile::tempdir().unwrap();
    write_raw(&bad.path().join("raw"), 1, 1, 1);
    std::fs::write(bad.path().join("raw/dt=2026-01-15/hour=10/cut.gz"), b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\x03garbage").unwrap();
    let closed = with_closed_stdout(bad.path(), &["compact", "--raw", "raw", "--lake", "lake"]);
    assert_no_panic(&closed, "compact of a bad object, stdout closed");
    assert_eq!(closed.status.code(), Some(1), "{}", describe(&closed));
    assert!(stderr(&closed).contains("cut.gz"), "the undecodable object is named: {}", describe(&closed));
}

#[test]
fn replay_dry_run_on_a_closed_or_full_stdout() {
    let zone = tempfile::tempdir().unwrap();
    let raw = zone.path().join("raw");
    // 12 files: one line each on stdout, then the total.
    write_raw(&raw, 2, 12, 1);
    let raw = raw.to_string_lossy().into_owned();
    check_stdout_handling("cwms replay --dry-run", |_| ["replay", "--stream", "s", "--dry-run", &raw].map(String::from).to_vec());
}

#[test]
fn redrive_dry_run_on_a_closed_or_full_stdout() {
    // Firehose processing-failed documents, as Firehose writes them (one per line), in 8 objects.
    let zone = tempfile::tempdir().unwrap();
    let errors = zone.path().join("errors/processing-failed/dt=2026-01-15/hour=10");
    std::fs::create_dir_all(&errors).unwrap();
    for object in 0..8 {
        let mut text = String::new();
        for record in 0..5 {
            let data = datum("AWS/EC2", &format!("h-{object}-{record}"), 0, 1.0);
            let raw_data = base64::Engine::encode(&base64::engine::general_purpose::STANDARD, data);
            text.push_str(&format!(
                r#"{{"attemptsMade":1,"arrivalTimestamp":{T0_MS},"errorCode":"Lambda.ProcessingFailedStatus","errorMessage":"failed","attemptEndingTimestamp":{T0_MS},"rawData":"{raw_data}","lambdaArn":"arn:aws:lambda:us-east-1:123456789012:function:t:$LATEST"}}"#
            ));
            text.push('\n');
        }
        std::fs::write(errors.join(format!("s-1-2026-01-15-10-0{object}-00-e.gz")), gzip(text.as_bytes())).unwrap();
    }
    let errors = zone.path().join("errors").to_string_lossy().into_owned();
    let dry = cwms(&["redrive", "--errors", &errors, "--stream", "s", "--dry-run"], ENV);
    assert!(dry.status.success(), "{}", describe(&dry));
    assert!(String::from_utf8_lossy(&dry.stdout).contains("would send 40 records"), "{}", describe(&dry));
    check_stdout_handling("cwms redrive --dry-run", |_| {
        ["redrive", "--errors", &errors, "--stream", "s", "--dry-run"].map(String::from).to_vec()
    });
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    use std::io::Write as _;
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    encoder.write_all(bytes).unwrap();
    encoder.finish().unwrap()
}

// --- (b) one raw folder, however it is spelled, is one checkpoint's raw zone ---

#[test]
fn compact_accepts_every_spelling_of_one_raw_folder() {
    let dir = tempfile::tempdir().unwrap();
    // Spell the absolute path through its canonical form, so that /tmp being a link does not
    // make the "absolute" spelling a fourth one.
    let root = dir.path().canonicalize().unwrap();
    write_raw(&root.join("demo/raw"), 2, 2, 2);
    std::os::unix::fs::symlink("demo", root.join("link")).unwrap();
    let abs = |p: &str| root.join(p).to_string_lossy().into_owned();

    let first = summary(&cwms_in(&root, &["compact", "--json", "--raw", "demo/raw", "--lake", "lake"]));
    assert_eq!(first["objects_read"], 2, "{first}");
    let lake = lake_files(&root.join("lake"));
    let checkpoint = std::fs::read(root.join("lake/_cwms/checkpoint.json")).unwrap();
    assert!(lake.len() >= 4, "{:?}", lake.keys());

    let spellings = [
        ("./demo/raw/".to_owned(), "./lake/".to_owned()),
        (abs("demo/raw"), abs("lake")),
        (format!("{}/", abs("demo/raw")), format!("{}/", abs("lake"))),
        ("demo//raw".to_owned(), "lake".to_owned()),
        ("demo/../demo/raw".to_owned(), "lake".to_owned()),
        ("link/raw".to_owned(), "lake".to_owned()),
    ];
    for (raw, lake_arg) in &spellings {
        let output = cwms_in(&root, &["compact", "--json", "--raw", raw, "--lake", lake_arg]);
        let again = summary(&output);
        assert_eq!(again["objects_listed"], 2, "--raw {raw}: {again}");
        assert_eq!(again["objects_read"], 0, "--raw {raw} re-read what the checkpoint holds: {again}");
        assert_eq!(again["objects_pending"], 0, "--raw {raw}: {again}");
        assert_eq!(lake_files(&root.join("lake")), lake, "--raw {raw} changed the lake");
        assert_eq!(std::fs::read(root.join("lake/_cwms/checkpoint.json")).unwrap(), checkpoint, "--raw {raw} changed the checkpoint");
    }

    // The checkpoint still follows the folder under any spelling: a new object is read, once.
    let hour = root.join("demo/raw/dt=2026-01-15/hour=12");
    std::fs::create_dir_all(&hour).unwrap();
    std::fs::write(hour.join("late.ndjson"), format!("{}\n", datum("App/N00", "h-new", 125, 2.0))).unwrap();
    let late = summary(&cwms_in(&root, &["compact", "--json", "--raw", "./demo/raw/", "--lake", &abs("lake")]));
    assert_eq!(late["objects_read"], 1, "{late}");
    assert_eq!(late["datums"], 1, "{late}");
    let once_more = summary(&cwms_in(&root, &["compact", "--json", "--raw", &abs("demo/raw"), "--lake", "lake"]));
    assert_eq!(once_more["objects_read"], 0, "{once_more}");

    // A different folder with the same objects is not the same raw zone: refused, lake untouched.
    copy_tree(&root.join("demo/raw"), &root.join("copy/raw"));
    let lake = lake_files(&root.join("lake"));
    let other = cwms_in(&root, &["compact", "--raw", "copy/raw", "--lake", "lake"]);
    assert_no_panic(&other, "another raw folder");
    assert_eq!(other.status.code(), Some(1), "{}", describe(&other));
    assert!(stderr(&other).contains(&abs("copy/raw")) && stderr(&other).contains(&abs("demo/raw")), "{}", describe(&other));
    assert_eq!(lake_files(&root.join("lake")), lake);
}

fn copy_tree(from: &Path, to: &Path) {
    for (relative, bytes) in files(from) {
        let target = to.join(relative);
        std::fs::create_dir_all(target.parent().unwrap()).unwrap();
        std::fs::write(target, bytes).unwrap();
    }
}

// --- (c) a missing or wrong --raw is an error naming it, and creates nothing ---

#[test]
fn missing_raw_folder_is_named_and_creates_nothing() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("afile"), b"not a folder").unwrap();
    let before = tree(dir.path());
    let missing_abs = dir.path().join("nowhere/raw").to_string_lossy().into_owned();
    for (raw, lake, needle) in [
        ("nosuch", "lake", "nosuch"),
        ("nosuch/raw", "a/b/lake", "nosuch/raw"),
        (missing_abs.as_str(), "lake", missing_abs.as_str()),
        ("afile", "lake", "afile"),
    ] {
        for json in [false, true] {
            let mut args = vec!["compact", "--raw", raw, "--lake", lake];
            if json {
                args.push("--json");
            }
            let output = cwms_in(dir.path(), &args);
            assert_no_panic(&output, raw);
            assert_eq!(output.status.code(), Some(1), "--raw {raw}: {}", describe(&output));
            let text = stderr(&output);
            assert!(text.contains(needle) && text.contains("raw"), "--raw {raw}: the message must name it: {}", describe(&output));
            assert!(output.stdout.is_empty(), "--raw {raw}: nothing on stdout for a run that did not start: {}", describe(&output));
            assert_eq!(tree(dir.path()), before, "--raw {raw} --lake {lake} created something");
        }
    }
    // Leaving --raw out altogether is a usage error (exit 2) naming it.
    let output = cwms_in(dir.path(), &["compact", "--lake", "lake"]);
    assert_eq!(output.status.code(), Some(2), "{}", describe(&output));
    assert!(stderr(&output).contains("--raw"), "{}", describe(&output));
    assert_eq!(tree(dir.path()), before);
}

// --- (d) a mistyped S3 URL is refused and creates no `s3:` folder ---

#[test]
fn mistyped_s3_urls_are_refused_and_create_nothing() {
    let dir = tempfile::tempdir().unwrap();
    write_raw(&dir.path().join("raw"), 1, 1, 1);
    let before = tree(dir.path());
    for (raw, lake, bad) in [
        ("raw", "s3:/x", "s3:/x"),
        ("raw", "s3:/bucket/lake", "s3:/bucket/lake"),
        ("raw", "s3:x", "s3:x"),
        ("s3:/x", "lake", "s3:/x"),
        ("raw", "s3://", "s3://"),
    ] {
        let output = cwms_in(dir.path(), &["compact", "--raw", raw, "--lake", lake]);
        assert_no_panic(&output, bad);
        assert_eq!(output.status.code(), Some(1), "--raw {raw} --lake {lake}: {}", describe(&output));
        let text = stderr(&output);
        assert!(text.contains(&format!("\"{bad}\"")), "the message must quote {bad}: {}", describe(&output));
        assert!(text.contains("s3://"), "the message must show the right spelling: {}", describe(&output));
        assert_eq!(tree(dir.path()), before, "--raw {raw} --lake {lake} created something");
        assert!(!dir.path().join("s3:").exists());
    }
}

// --- (e) SIGKILL halfway through publishing: nothing partial where readers look, and the
// rerun converges to the bytes of a clean run ---

/// Every `.parquet` below the two tables, and every file anywhere in the lake that is a write in
/// progress outside the lake's own temporary folder.
fn published_and_strays(lake: &Path) -> (Vec<PathBuf>, Vec<String>) {
    let mut parquet = Vec::new();
    let mut strays = Vec::new();
    for relative in tree(lake) {
        let path = lake.join(&relative);
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if name.starts_with(".cwms-tmp-") && !relative.starts_with(".cwms-tmp/") {
            strays.push(relative.clone());
        }
        if (relative.starts_with("metrics_1m/") || relative.starts_with("metrics_1h/")) && path.is_file() {
            if name.starts_with('.') || !name.ends_with(".parquet") {
                strays.push(relative);
            } else {
                parquet.push(path);
            }
        }
    }
    (parquet, strays)
}

fn count_published(lake: &Path) -> usize {
    ["metrics_1m", "metrics_1h"]
        .iter()
        .map(|t| {
            let dir = lake.join(t);
            if dir.is_dir() { tree(&dir).iter().filter(|p| p.ends_with(".parquet")).count() } else { 0 }
        })
        .sum()
}

/// Starts `cwms compact` and kills it (SIGKILL) once `after` lake objects are published.
fn compact_killed_after(dir: &Path, raw: &str, lake: &str, after: usize) -> usize {
    let mut child =
        command_in(dir, &["compact", "--raw", raw, "--lake", lake]).stdout(Stdio::null()).stderr(Stdio::null()).spawn().unwrap();
    let deadline = Instant::now() + RUN_TIMEOUT;
    let lake_dir = dir.join(lake);
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            panic!("compact ended ({status}) before {after} objects were published: make the raw zone larger");
        }
        let published = count_published(&lake_dir);
        if published >= after {
            child.kill().unwrap();
            let status = child.wait().unwrap();
            assert_eq!(status.signal(), Some(9), "compact was not killed mid-run: {status}");
            return published;
        }
        assert!(Instant::now() < deadline, "compact published {published} objects in {RUN_TIMEOUT:?}");
        std::thread::sleep(Duration::from_millis(2));
    }
}

#[test]
fn killed_compaction_leaves_no_partial_file_and_the_rerun_converges() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    // 12 namespaces x 2 hours: 24 metrics_1m and 12 metrics_1h objects.
    write_raw(&root.join("raw"), 12, 2, 2);
    let total = 24 + 12;

    let clean = cwms_in(root, &["compact", "--raw", "raw", "--lake", "clean"]);
    assert!(clean.status.success(), "{}", describe(&clean));
    let clean_lake = lake_files(&root.join("clean"));
    assert_eq!(clean_lake.keys().filter(|k| k.ends_with(".parquet")).count(), total, "{:?}", clean_lake.keys());
    let clean_checkpoint = std::fs::read(root.join("clean/_cwms/checkpoint.json")).unwrap();

    // Killed once a third of the lake is out, then killed again partway through the rerun.
    let published = compact_killed_after(root, "raw", "killed", total / 3);
    assert!(published < total, "the kill came after the last object");
    check_after_kill(&root.join("killed"), &clean_lake);
    let published = compact_killed_after(root, "raw", "killed", published + 4);
    assert!(published <= total);
    check_after_kill(&root.join("killed"), &clean_lake);

    let rerun = cwms_in(root, &["compact", "--raw", "raw", "--lake", "killed"]);
    assert!(rerun.status.success(), "{}", describe(&rerun));
    let (_, strays) = published_and_strays(&root.join("killed"));
    assert!(strays.is_empty(), "after the rerun: {strays:?}");
    let killed_lake = lake_files(&root.join("killed"));
    assert_eq!(killed_lake.keys().collect::<Vec<_>>(), clean_lake.keys().collect::<Vec<_>>());
    for (key, bytes) in &clean_lake {
        assert!(killed_lake[key] == *bytes, "{key} differs from the clean run's");
    }
    assert_eq!(
        std::fs::read(root.join("killed/_cwms/checkpoint.json")).unwrap(),
        clean_checkpoint,
        "checkpoint differs from the clean run's"
    );

    // And converged means done: one more run reads nothing and changes nothing.
    let settled = summary(&cwms_in(root, &["compact", "--json", "--raw", "raw", "--lake", "killed"]));
    assert_eq!(settled["objects_read"], 0, "{settled}");
    assert_eq!(lake_files(&root.join("killed")), clean_lake);
}

/// After a kill: no write in progress inside a partition folder, and every file a reader would
/// pick up (`metrics_*/**/*.parquet`) is a whole Parquet file that the clean run also has.
fn check_after_kill(lake: &Path, clean: &std::collections::BTreeMap<String, Vec<u8>>) {
    let (parquet, strays) = published_and_strays(lake);
    assert!(strays.is_empty(), "a killed run left files where readers look: {strays:?}");
    for path in parquet {
        let bytes = std::fs::read(&path).unwrap();
        let key = path.strip_prefix(lake).unwrap().to_string_lossy().into_owned();
        assert!(bytes.len() > 8 && bytes.starts_with(b"PAR1") && bytes.ends_with(b"PAR1"), "{key} is not a whole Parquet file");
        assert!(clean.contains_key(&key), "{key}, published before the kill, is not an object of the clean run");
    }
}

// --- a deleted lake object: the error says how to rebuild it, and that command, pasted into a
// shell, rebuilds the lake of a clean run ---

#[test]
fn the_suggested_rebuild_command_works_when_pasted_into_a_shell() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    // A namespace that needs shell quoting (quotes, `$`, a backtick) and Hive escaping.
    let odd = r#"it's "odd" $HOME `x`/v1"#;
    let json_odd = odd.replace('"', "\\\"");
    let hour = root.join("raw/dt=2026-01-15/hour=10");
    std::fs::create_dir_all(&hour).unwrap();
    let lines: String = (0..30).map(|m| datum(&json_odd, "h-0", m, m as f64) + "\n").collect();
    std::fs::write(hour.join("a.ndjson"), lines).unwrap();
    write_raw(&root.join("raw"), 2, 1, 1);
    let first = cwms_in(root, &["compact", "--raw", "raw", "--lake", "lake"]);
    assert!(first.status.success(), "{}", describe(&first));

    // Lose the odd namespace's hour object, then let a new raw object arrive for that hour.
    let victim = tree(&root.join("lake/metrics_1m")).into_iter().find(|p| p.ends_with("10.parquet") && p.contains("it%27s")).unwrap();
    std::fs::remove_file(root.join("lake/metrics_1m").join(&victim)).unwrap();
    let late: String = (30..40).map(|m| datum(&json_odd, "h-0", m, m as f64) + "\n").collect();
    std::fs::write(hour.join("b.ndjson"), late).unwrap();

    let refused = cwms_in(root, &["compact", "--raw", "raw", "--lake", "lake"]);
    assert_no_panic(&refused, "compact over a lost lake object");
    assert_eq!(refused.status.code(), Some(1), "a lost lake object must fail the run: {}", describe(&refused));
    let text = stderr(&refused);
    let marker = "Rebuild it from the raw zone with `";
    let line = text.lines().find(|l| l.contains(marker)).unwrap_or_else(|| panic!("no rebuild command in: {text}"));
    assert!(line.contains("--dt 2026-01-15 --hour 10"), "{line}");
    let suggested = &line[line.find(marker).unwrap() + marker.len()..line.rfind('`').unwrap()];
    assert!(suggested.starts_with("cwms compact ") && suggested.contains("--rebuild"), "{suggested}");

    // Paste it, with the user's folders in place of RAW and LAKE and the built binary for `cwms`.
    let command = suggested.replacen("cwms ", "\"$CWMS\" ", 1).replace("--raw RAW", "--raw raw").replace("--lake LAKE", "--lake lake");
    let pasted = Command::new("sh").arg("-c").arg(&command).current_dir(root).env("CWMS", built_binary("cwms")).output().unwrap();
    assert!(pasted.status.success(), "the suggested `{command}` failed: {}", describe(&pasted));
    let after = cwms_in(root, &["compact", "--raw", "raw", "--lake", "lake"]);
    assert!(after.status.success(), "{}", describe(&after));

    // The lake is now what one clean compaction of the whole raw zone makes.
    let clean = cwms_in(root, &["compact", "--raw", "raw", "--lake", "clean"]);
    assert!(clean.status.success(), "{}", describe(&clean));
    let (lake, clean) = (lake_files(&root.join("lake")), lake_files(&root.join("clean")));
    assert!(lake.contains_key(&format!("metrics_1m/{victim}")), "{victim} was not rebuilt: {:?}", lake.keys());
    assert_eq!(lake.keys().collect::<Vec<_>>(), clean.keys().collect::<Vec<_>>());
    for (key, bytes) in &clean {
        assert!(lake[key] == *bytes, "{key} differs from a clean compaction's");
    }
}

// --- (g) what the first hour of use found besides: objects that failed earlier, a read-only
// lake, an --out file that exists, an empty temporary folder ---

/// A raw object that failed in an earlier run does not fail the later ones (a schedule is not
/// stuck on it), but every run names it, because its datums are still not in the lake.
#[test]
fn objects_that_failed_earlier_are_named_on_every_run() {
    let dir = tempfile::tempdir().unwrap();
    let raw = dir.path().join("raw");
    write_raw(&raw, 1, 1, 2);
    let hour = raw.join("dt=2026-01-15/hour=10");
    std::fs::write(hour.join("broken.gz"), b"\x1f\x8b\x08\x00 not really gzip").unwrap();

    let first = cwms_in(dir.path(), &["compact", "--raw", "raw", "--lake", "lake"]);
    assert_eq!(first.status.code(), Some(1), "{}", describe(&first));
    assert!(stderr(&first).contains("broken.gz"), "{}", describe(&first));

    for _ in 0..2 {
        let again = cwms_in(dir.path(), &["compact", "--raw", "raw", "--lake", "lake"]);
        assert_eq!(again.status.code(), Some(0), "a failure already reported must not fail every later run: {}", describe(&again));
        let text = stderr(&again);
        assert!(
            text.contains("broken.gz") && text.contains("earlier run recorded") && text.contains("gzip"),
            "the object and its recorded reason are named again: {}",
            describe(&again)
        );
        let stdout = String::from_utf8_lossy(&again.stdout);
        assert!(stdout.contains("1 raw object recorded as undecodable by earlier runs skipped"), "{}", describe(&again));
    }
    let json = summary(&cwms_in(dir.path(), &["compact", "--json", "--raw", "raw", "--lake", "lake"]));
    assert_eq!(json["objects_failed_earlier"], 1, "{json}");
    let listed = json["failed_earlier"].as_array().unwrap();
    assert_eq!(listed.len(), 1, "{json}");
    assert!(listed[0]["location"].as_str().unwrap().ends_with("dt=2026-01-15/hour=10/broken.gz"), "{json}");
    assert!(listed[0]["reason"].as_str().unwrap().contains("gzip"), "{json}");

    // --retry-failed reads it again, and it fails again (exit 1), reported as this run's.
    let retried = cwms_in(dir.path(), &["compact", "--json", "--retry-failed", "--raw", "raw", "--lake", "lake"]);
    assert_eq!(retried.status.code(), Some(1), "{}", describe(&retried));
    let retried: serde_json::Value = serde_json::from_slice(&retried.stdout).unwrap();
    assert_eq!(
        (retried["objects_failed"].as_array().unwrap().len(), &retried["objects_failed_earlier"]),
        (1, &serde_json::json!(0)),
        "{retried}"
    );

    // Once the object is gone (removed, or expired with raw/), nothing is outstanding.
    std::fs::remove_file(hour.join("broken.gz")).unwrap();
    let json = summary(&cwms_in(dir.path(), &["compact", "--json", "--raw", "raw", "--lake", "lake"]));
    assert_eq!((&json["objects_failed_earlier"], json["failed_earlier"].as_array().unwrap().len()), (&serde_json::json!(0), 0), "{json}");
}

/// `cwms` without the capabilities that let root write any folder whatever its mode (`setpriv`
/// drops them from the bounding set), so that a permission case runs as root too.
fn cwms_bound_by_modes(dir: &Path, args: &[&str]) -> Output {
    let mut command = Command::new("setpriv");
    command
        .args(["--bounding-set=-dac_override,-dac_read_search", "--"])
        .arg(built_binary("cwms"))
        .args(args)
        .current_dir(dir)
        .envs(ENV.iter().copied())
        .stdin(Stdio::null());
    command.output().unwrap()
}

/// A lake folder that cannot be written is found before the raw zone is read, named, and
/// nothing is read or recorded; a writable lake folder again, the same command works.
#[test]
fn a_read_only_lake_is_refused_before_any_raw_object_is_read() {
    use std::os::unix::fs::PermissionsExt as _;
    let dir = tempfile::tempdir().unwrap();
    write_raw(&dir.path().join("raw"), 2, 3, 2);
    let lake = dir.path().join("lake");
    std::fs::create_dir(&lake).unwrap();
    std::fs::set_permissions(&lake, std::fs::Permissions::from_mode(0o555)).unwrap();

    let output = cwms_bound_by_modes(dir.path(), &["compact", "--raw", "raw", "--lake", "lake"]);
    std::fs::set_permissions(&lake, std::fs::Permissions::from_mode(0o755)).unwrap();
    assert_no_panic(&output, "a read-only lake");
    assert_eq!(output.status.code(), Some(1), "{}", describe(&output));
    let text = stderr(&output);
    assert!(text.contains("write in folder") && text.contains("lake") && text.contains("ermission denied"), "{}", describe(&output));
    assert!(output.stdout.is_empty(), "a run that could not start prints no summary: {}", describe(&output));
    assert!(tree(&lake).is_empty(), "{:?}", tree(&lake));

    let json = summary(&cwms_bound_by_modes(dir.path(), &["compact", "--json", "--raw", "raw", "--lake", "lake"]));
    assert_eq!(json["objects_read"], 3, "{json}");
}

/// `generate --out FILE` never replaces a file by accident: a second run is refused naming the
/// file and `--force`, which replaces it; a device such as /dev/null is written to.
#[test]
fn generate_replaces_an_existing_out_file_only_with_force() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("keep.ndjson"), b"precious\n").unwrap();
    std::fs::write(dir.path().join("keep.json"), b"precious\n").unwrap();
    for (format, file) in [("ndjson", "keep.ndjson"), ("firehose-event", "keep.json")] {
        let base = ["generate", "--format", format, "--series", "2", "--minutes", "1", "--start", START, "--one-event", "--out", file];
        let base: Vec<&str> = base.into_iter().filter(|a| format == "firehose-event" || *a != "--one-event").collect();
        let output = cwms_in(dir.path(), &base);
        assert_eq!(output.status.code(), Some(1), "{format}: {}", describe(&output));
        assert!(stderr(&output).contains(file) && stderr(&output).contains("--force"), "{format}: {}", describe(&output));
        assert_eq!(std::fs::read(dir.path().join(file)).unwrap(), b"precious\n", "{format}: the file was changed");

        let mut forced = base.clone();
        forced.push("--force");
        let output = cwms_in(dir.path(), &forced);
        assert!(output.status.success(), "{format}: {}", describe(&output));
        assert!(std::fs::read(dir.path().join(file)).unwrap().len() > 100, "{format}: --force did not replace the file");

        if format == "ndjson" {
            let to_null: Vec<&str> = base.iter().map(|a| if *a == file { "/dev/null" } else { a }).collect();
            let output = cwms_in(dir.path(), &to_null);
            assert!(output.status.success(), "--out /dev/null: {}", describe(&output));
        }
    }
}

/// A finished compaction leaves no temporary folder in the lake (nor does a second one).
#[test]
fn compaction_leaves_no_temporary_folder_behind() {
    let dir = tempfile::tempdir().unwrap();
    write_raw(&dir.path().join("raw"), 2, 2, 2);
    for _ in 0..2 {
        summary(&cwms_in(dir.path(), &["compact", "--json", "--raw", "raw", "--lake", "lake"]));
        let strays: Vec<String> = tree(&dir.path().join("lake")).into_iter().filter(|p| p.contains(".cwms-tmp")).collect();
        assert!(strays.is_empty(), "{strays:?}");
    }
}
