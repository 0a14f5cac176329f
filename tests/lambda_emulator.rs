//! The transform Lambda under the real Lambda Runtime API emulator, one per test.
//!
//! [`LambdaEmulator`] is cargo-lambda's emulator (`cargo lambda watch --only-lambda-apis`): it
//! serves the Runtime API a bootstrap polls (`/.rt/2018-06-01/runtime/...`) and the Invoke API a
//! client calls (`POST /2015-03-31/functions/_/invocations`). [`Bootstrap`] is a built Lambda
//! bootstrap started against it, exactly as the Lambda service starts one: environment variables
//! only, output on stdout and stderr. [`TransformLambda`] is the two together for the transform.
//! Everything is killed when its handle is dropped; nextest runs every test in its own process,
//! so each test has its own emulator on its own free port.
//!
//! The emulator is installed by `./scripts/test` into `target/tools/venv/bin/cargo-lambda`
//! (`pip install cargo-lambda`; `TEST_TOOLS_DIR` overrides `target/tools`), and the bootstrap is
//! built by the same script (`cargo build --bins`) before the tests run.
//!
//! # What the emulator (cargo-lambda 1.9.2) does that matters here
//!
//! - It runs `cargo metadata` in its working directory before serving anything, so it is started
//!   in a scratch directory holding a one-line package ([`LambdaEmulator::start`]); in a
//!   directory without `Cargo.toml` it exits at once.
//! - It listens on `::` unless given `-A 127.0.0.1`.
//! - The Runtime API lives under `/.rt`, and `lambda_runtime` parses `AWS_LAMBDA_RUNTIME_API` as
//!   a URI: `http://127.0.0.1:PORT/.rt` works; `127.0.0.1:PORT/.rt` (no scheme) makes the
//!   bootstrap panic at start with `InvalidUri(InvalidFormat)`, and `127.0.0.1:PORT` (no `/.rt`)
//!   leaves it polling a path nobody answers.
//! - The real Lambda service sets `AWS_LAMBDA_FUNCTION_MEMORY_SIZE` and
//!   `AWS_LAMBDA_FUNCTION_VERSION`; the emulator does not, and `lambda_runtime` panics without
//!   them, so [`Bootstrap::start`] sets them.
//! - An invocation is queued until a bootstrap asks for it, with no timeout of its own: when the
//!   bootstrap dies (a failed cold start) the caller waits forever, so [`TransformLambda::invoke`]
//!   watches the bootstrap while it waits.
//! - A failed cold start is not reported by the emulator; `lambda_runtime` 1.5 offers no way to
//!   post `/runtime/init/error` for an error raised before `run`, so the process exit and its
//!   output are the whole report (as on AWS, where the log shows `Runtime exited with error`).

use std::fs::File;
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use tempfile::TempDir;

/// How long the emulator may take to listen: it runs `cargo metadata` first, and on a busy
/// two-core machine several tests start at once.
const STARTUP_TIMEOUT: Duration = Duration::from_secs(60);

/// How long one invocation may take end to end (a debug build on a busy machine).
pub const INVOKE_TIMEOUT: Duration = Duration::from_secs(120);

/// How many ports to try: a port found free can be taken before the emulator binds it.
const PORT_ATTEMPTS: usize = 3;

/// The function name the emulator serves and the bootstrap announces (DESIGN 7).
pub const FUNCTION_NAME: &str = "_";

/// Where `./scripts/test` installs the tools: `TEST_TOOLS_DIR`, or `target/tools`.
pub fn tools_dir() -> PathBuf {
    std::env::var_os("TEST_TOOLS_DIR").map_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/tools"), PathBuf::from)
}

/// The directory of the debug binaries built by `cargo build --bins`: beside this test binary
/// (`target/debug/deps/..`), which follows `CARGO_TARGET_DIR` wherever it points.
pub fn debug_dir() -> PathBuf {
    let beside_test = std::env::current_exe()
        .ok()
        .and_then(|exe| exe.parent()?.parent().map(Path::to_path_buf))
        .filter(|dir| dir.file_name().is_some_and(|name| name == "debug"));
    beside_test
        .or_else(|| std::env::var_os("CARGO_TARGET_DIR").map(|dir| PathBuf::from(dir).join("debug")))
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/debug"))
}

/// A binary of the workspace built by `cargo build --bins` (`cwms`, `cwms-transform`).
///
/// # Panics
///
/// If it is not built; the message says how to fix it.
pub fn built_binary(name: &str) -> PathBuf {
    let path = debug_dir().join(name);
    if !path.is_file() {
        panic!(
            "{} is not built: run ./scripts/test, which runs `cargo build --bins` before the \
             integration tests (or run `cargo build --bins` yourself)",
            path.display()
        );
    }
    path
}

/// The answer to one invocation.
#[derive(Debug, Clone)]
pub struct Invocation {
    /// The HTTP status of the Invoke API.
    pub status: u16,
    /// The response body: the function's result, or the emulator's error document.
    pub body: String,
}

/// cargo-lambda's Runtime API emulator on a free 127.0.0.1 port.
#[derive(Debug)]
pub struct LambdaEmulator {
    /// The port of both APIs.
    pub port: u16,
    child: Child,
    log: PathBuf,
    _dir: TempDir,
}

impl LambdaEmulator {
    /// Starts the emulator and waits until it accepts connections.
    ///
    /// # Panics
    ///
    /// If cargo-lambda is not installed or does not start in time; the message says how to fix it.
    pub fn start() -> Self {
        let program = tools_dir().join("venv/bin/cargo-lambda");
        if !program.is_file() {
            panic!(
                "the Lambda Runtime API emulator is not installed at {}: run ./scripts/test, which \
                 installs cargo-lambda into target/tools/venv (or set TEST_TOOLS_DIR to where it is)",
                program.display()
            );
        }
        let dir = tempfile::Builder::new().prefix("cwms-lambda-emulator-").tempdir().expect("cannot create a temporary directory");
        // The emulator reads cargo metadata before serving; a package of its own keeps it
        // independent of the workspace (which others may be editing) and of the build lock.
        let package = dir.path().join("package");
        std::fs::create_dir_all(package.join("src")).expect("cannot create the emulator's package");
        std::fs::write(
            package.join("Cargo.toml"),
            "[package]\nname = \"cwms-lambda-emulator\"\nversion = \"0.0.0\"\nedition = \"2021\"\npublish = false\n\n[workspace]\n",
        )
        .expect("cannot write the emulator's Cargo.toml");
        std::fs::write(package.join("src/main.rs"), "fn main() {}\n").expect("cannot write the emulator's main.rs");
        let log = dir.path().join("emulator.log");
        for attempt in 1..=PORT_ATTEMPTS {
            let port = free_port();
            let log_file = File::create(&log).expect("cannot create the emulator log");
            let child = Command::new(&program)
                .args(["lambda", "watch", "--only-lambda-apis", "-A", "127.0.0.1", "-P", &port.to_string()])
                .current_dir(&package)
                .env_remove("RUST_LOG")
                .stdin(Stdio::null())
                .stdout(log_file.try_clone().expect("cannot share the emulator log"))
                .stderr(log_file)
                .spawn()
                .unwrap_or_else(|err| panic!("cannot run {}: {err}", program.display()));
            let mut child = KillOnDrop(Some(child));
            match wait_until_listening(child.child(), port) {
                Ok(()) => {
                    return Self { port, child: child.into_inner(), log, _dir: dir };
                }
                Err(Some(status)) if attempt < PORT_ATTEMPTS => {
                    eprintln!("the emulator exited with {status} on port {port}, trying another port:\n{}", tail(&log));
                }
                Err(Some(status)) => {
                    panic!("the emulator exited with {status} before listening on 127.0.0.1:{port}:\n{}", tail(&log))
                }
                Err(None) => panic!("the emulator did not listen on 127.0.0.1:{port} within {STARTUP_TIMEOUT:?}:\n{}", tail(&log)),
            }
        }
        unreachable!("the last attempt returns or panics")
    }

    /// What a bootstrap needs in `AWS_LAMBDA_RUNTIME_API`.
    pub fn runtime_api(&self) -> String {
        format!("http://127.0.0.1:{}/.rt", self.port)
    }

    /// The Invoke API URL of the function.
    pub fn invoke_url(&self) -> String {
        format!("http://127.0.0.1:{}/2015-03-31/functions/{FUNCTION_NAME}/invocations", self.port)
    }

    /// Invokes the function synchronously with `payload` and returns whatever the Invoke API
    /// answers, or an error if the HTTP call itself fails or takes longer than `timeout`.
    pub fn invoke(&self, payload: &[u8], timeout: Duration) -> Result<Invocation, String> {
        invoke(&self.invoke_url(), payload, timeout)
    }

    /// The last few kilobytes of the emulator's output, for assertion messages.
    pub fn log(&self) -> String {
        format!("--- emulator log ({}) ---\n{}", self.log.display(), tail(&self.log))
    }
}

/// Polls a TCP connection to `port` until it succeeds, the process exits (`Err(Some)`), or time
/// runs out (`Err(None)`).
fn wait_until_listening(child: &mut Child, port: u16) -> Result<(), Option<ExitStatus>> {
    let address = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let deadline = Instant::now() + STARTUP_TIMEOUT;
    loop {
        if let Some(status) = child.try_wait().expect("cannot poll the emulator") {
            return Err(Some(status));
        }
        if TcpStream::connect_timeout(&address, Duration::from_millis(200)).is_ok() {
            return Ok(());
        }
        if Instant::now() >= deadline {
            return Err(None);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A child process killed when dropped unless taken, so a panic while starting leaves nothing
/// running.
struct KillOnDrop(Option<Child>);

impl KillOnDrop {
    fn child(&mut self) -> &mut Child {
        self.0.as_mut().expect("the child was taken")
    }

    fn into_inner(mut self) -> Child {
        self.0.take().expect("the child was taken")
    }
}

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        if let Some(child) = &mut self.0 {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for LambdaEmulator {
    fn drop(&mut self) {
        // It may have exited already; a drop cannot report anything anyway.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A Lambda bootstrap process polling an emulator, with its stdout and stderr in files.
#[derive(Debug)]
pub struct Bootstrap {
    child: Child,
    stdout: PathBuf,
    stderr: PathBuf,
    _dir: TempDir,
}

impl Bootstrap {
    /// Starts `program` as the Lambda service would: an environment holding only the Lambda
    /// variables (`AWS_LAMBDA_RUNTIME_API`, `AWS_LAMBDA_FUNCTION_NAME`,
    /// `AWS_LAMBDA_FUNCTION_MEMORY_SIZE`, `AWS_LAMBDA_FUNCTION_VERSION`,
    /// `AWS_LAMBDA_LOG_FORMAT=JSON`) plus the function's own `env`, so nothing from the test's
    /// environment (a stray `CWMS_` or `RUST_LOG`) leaks in.
    pub fn start(emulator: &LambdaEmulator, program: &Path, env: &[(&str, &str)]) -> Self {
        let dir = tempfile::Builder::new().prefix("cwms-bootstrap-").tempdir().expect("cannot create a temporary directory");
        let (stdout, stderr) = (dir.path().join("stdout"), dir.path().join("stderr"));
        let child = Command::new(program)
            .env_clear()
            .env("AWS_LAMBDA_RUNTIME_API", emulator.runtime_api())
            .env("AWS_LAMBDA_FUNCTION_NAME", FUNCTION_NAME)
            .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "1024")
            .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
            .env("AWS_LAMBDA_LOG_FORMAT", "JSON")
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(File::create(&stdout).expect("cannot create the bootstrap's stdout file"))
            .stderr(File::create(&stderr).expect("cannot create the bootstrap's stderr file"))
            .spawn()
            .unwrap_or_else(|err| panic!("cannot run {}: {err}", program.display()));
        Self { child, stdout, stderr, _dir: dir }
    }

    /// Everything the bootstrap wrote to stdout so far (its logs and EMF documents).
    pub fn stdout(&self) -> String {
        std::fs::read_to_string(&self.stdout).unwrap_or_default()
    }

    /// Everything the bootstrap wrote to stderr so far.
    pub fn stderr(&self) -> String {
        std::fs::read_to_string(&self.stderr).unwrap_or_default()
    }

    /// The exit status, if the bootstrap has exited.
    pub fn try_wait(&mut self) -> Option<ExitStatus> {
        self.child.try_wait().expect("cannot poll the bootstrap")
    }

    /// Waits up to `timeout` for the bootstrap to exit.
    pub fn wait_for_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.try_wait() {
                return Some(status);
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Both outputs, for assertion messages.
    pub fn output(&self) -> String {
        format!("--- bootstrap stdout ---\n{}\n--- bootstrap stderr ---\n{}", self.stdout(), self.stderr())
    }
}

impl Drop for Bootstrap {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The transform Lambda (`target/debug/cwms-transform`) under its own emulator.
#[derive(Debug)]
pub struct TransformLambda {
    // Declared first so the bootstrap is killed before the emulator it polls.
    pub bootstrap: Bootstrap,
    pub emulator: LambdaEmulator,
}

impl TransformLambda {
    /// Starts an emulator and the transform bootstrap with the function settings `env`
    /// (`CWMS_...`).
    pub fn start(env: &[(&str, &str)]) -> Self {
        let program = built_binary("cwms-transform");
        let emulator = LambdaEmulator::start();
        let bootstrap = Bootstrap::start(&emulator, &program, env);
        Self { bootstrap, emulator }
    }

    /// Invokes the function with `payload` and returns the response body.
    ///
    /// # Panics
    ///
    /// If the bootstrap exits while the invocation waits, the Invoke API does not answer 200,
    /// or the invocation takes longer than [`INVOKE_TIMEOUT`]; the message carries both logs.
    pub fn invoke(&mut self, payload: &[u8]) -> String {
        let (sender, receiver) = mpsc::channel();
        let (url, payload) = (self.emulator.invoke_url(), payload.to_vec());
        std::thread::spawn(move || sender.send(invoke(&url, &payload, INVOKE_TIMEOUT)));
        // The emulator queues an invocation until a bootstrap takes it, so a bootstrap that died
        // would leave this call waiting: watch it while waiting.
        let answer = loop {
            match receiver.recv_timeout(Duration::from_millis(100)) {
                Ok(answer) => break answer,
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    if let Some(status) = self.bootstrap.try_wait() {
                        panic!(
                            "the bootstrap exited with {status} during an invocation\n{}\n{}",
                            self.bootstrap.output(),
                            self.emulator.log()
                        );
                    }
                }
                Err(mpsc::RecvTimeoutError::Disconnected) => panic!("the invoking thread panicked"),
            }
        };
        match answer {
            Ok(Invocation { status: 200, body }) => body,
            Ok(Invocation { status, body }) => {
                panic!("the Invoke API answered {status}: {body}\n{}\n{}", self.bootstrap.output(), self.emulator.log())
            }
            Err(err) => panic!("the invocation failed: {err}\n{}\n{}", self.bootstrap.output(), self.emulator.log()),
        }
    }

    /// Invokes the function with a JSON event and parses the response.
    pub fn invoke_json(&mut self, event: &serde_json::Value) -> serde_json::Value {
        let body = self.invoke(event.to_string().as_bytes());
        serde_json::from_str(&body).unwrap_or_else(|err| panic!("the response is not JSON ({err}): {body}"))
    }
}

fn invoke(url: &str, payload: &[u8], timeout: Duration) -> Result<Invocation, String> {
    let agent: ureq::Agent = ureq::Agent::config_builder().timeout_global(Some(timeout)).http_status_as_error(false).build().into();
    let mut response =
        agent.post(url).header("content-type", "application/json").send(payload).map_err(|err| format!("POST {url}: {err}"))?;
    let status = response.status().as_u16();
    let body = response
        .body_mut()
        .with_config()
        .limit(64 << 20)
        .read_to_string()
        .map_err(|err| format!("reading the answer of POST {url}: {err}"))?;
    Ok(Invocation { status, body })
}

/// The last few kilobytes of a log file.
fn tail(path: &Path) -> String {
    const TAIL: usize = 8 * 1024;
    let log = std::fs::read(path).unwrap_or_default();
    String::from_utf8_lossy(&log[log.len().saturating_sub(TAIL)..]).into_owned()
}

/// A port that was free a moment ago (the OS picks it for a listener on port 0).
fn free_port() -> u16 {
    TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .and_then(|listener| listener.local_addr())
        .map(|address| address.port())
        .expect("cannot find a free TCP port on 127.0.0.1")
}
