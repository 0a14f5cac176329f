//! Real servers for integration tests, one per test.
//!
//! nextest runs every test in its own process, so each test starts the servers it needs on free
//! 127.0.0.1 ports and they die with it: a server is killed when its handle is dropped (and its
//! data directory removed). Tests never share state and need no cleanup.
//!
//! The servers are installed by `./scripts/test` into `target/tools/` (or the directory named by
//! `TEST_TOOLS_DIR`): `bin/s3s-fs` (`cargo install s3s-fs@0.14.1 --locked --features binary`) and
//! `venv/bin/moto_server` (`pip install 'moto[server]'`).
//!
//! # What the servers do differently from AWS S3
//!
//! s3s-fs 0.14.1 stores each bucket as a directory and each object as a file, which shows
//! (`s3s_fs_quirks_are_as_documented` in the integration tests pins this list):
//! - it checks SigV4 signatures against one access key pair ([`ACCESS_KEY`], [`SECRET_KEY`]);
//! - aws-sdk-s3 must use path-style addressing and the endpoint (see [`sdk_config`]);
//! - bucket names need 3 or more characters (`InvalidBucketName`), and `PutObject` into a bucket
//!   that does not exist creates it (AWS answers `NoSuchBucket`; `ListObjectsV2` does too);
//! - keys `a` and `a/b` cannot both exist (`a` would be a file and a directory): once `a/b`
//!   exists, `HEAD`, `GET` and `PUT` of `a` answer 500 `InternalError` (which the SDK retries
//!   with backoff, so such a test is slow), while `If-None-Match: *` on `a` answers 412; once
//!   `a` exists, `GET a/b` answers `NoSuchKey` and `PUT a/b` 500;
//! - listings carry no ETags ([`cwms_store::ObjectMeta::etag`] is `None`), but `GetObject` and
//!   `PutObject` do, and they agree; a multipart ETag is AWS's `md5-of-part-md5s-N`;
//! - the parts of an upload in progress are `.upload_id-*` files at the root, removed by
//!   `AbortMultipartUpload`;
//! - `CompleteMultipartUpload` over an existing object keeps that object's stored checksum
//!   (the CRC32 of its `PutObject`), so a `GetObject` of the new content, which aws-sdk-s3
//!   validates by default, fails with `ChecksumMismatch`: multipart replacements are tested on
//!   moto;
//! - `If-Match` and `If-None-Match` answer 412 correctly one writer at a time (`If-Match` on a
//!   missing key too, as AWS does), but the check and the write are not atomic, so several
//!   racing conditional writers can all win: concurrency tests use moto.
//!
//! moto 5.2 accepts any credentials, applies conditional writes atomically (exactly one of 16
//! racing `If-Match` writers wins), reports ETags in listings (the same as `PutObject`'s), and
//! answers 404 (not 412) to `If-Match` on a missing key. Every test starts its own moto, so
//! nothing needs `POST /moto-api/reset`. It takes a second or two to start.

use std::ffi::OsString;
use std::fs::File;
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use aws_config::retry::RetryConfig;
use aws_config::{BehaviorVersion, SdkConfig};
use aws_sdk_s3::config::{Credentials, Region, SharedCredentialsProvider};
use cwms_store::S3Store;
use tempfile::TempDir;

/// The access key s3s-fs accepts (moto accepts any).
pub const ACCESS_KEY: &str = "cwms-test-access-key";
/// The secret key s3s-fs checks signatures with.
pub const SECRET_KEY: &str = "cwms-test-secret-key";
/// The region requests are signed for; the servers ignore it but SigV4 needs one.
pub const REGION: &str = "us-east-1";
/// The bucket [`S3Server::start`] creates.
pub const BUCKET: &str = "cwms-test";

/// How long a server may take to accept connections. moto imports a lot of Python, and on a
/// busy two-core machine several tests start servers at once.
const STARTUP_TIMEOUT: Duration = Duration::from_secs(60);

/// How many ports to try: a free port found by binding port 0 can be taken by another process
/// before the server binds it, and then the server exits at once.
const PORT_ATTEMPTS: usize = 3;

/// Where `./scripts/test` installs the servers: `TEST_TOOLS_DIR`, or `target/tools` in the
/// workspace.
pub fn tools_dir() -> PathBuf {
    std::env::var_os("TEST_TOOLS_DIR").map_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/tools"), PathBuf::from)
}

/// The SDK configuration for a server at `endpoint`: static credentials, [`REGION`], the
/// endpoint, and the same standard retry mode as production (five attempts). Use it for any
/// AWS client (S3, Firehose, Glue) pointed at a test server.
pub fn sdk_config(endpoint: &str) -> SdkConfig {
    SdkConfig::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new(REGION))
        .endpoint_url(endpoint)
        .credentials_provider(SharedCredentialsProvider::new(Credentials::new(ACCESS_KEY, SECRET_KEY, None, None, "cwms-tests")))
        .retry_config(RetryConfig::standard().with_max_attempts(5))
        .build()
}

/// An S3 client for a server at `endpoint`, path-style as S3-compatible servers need.
pub fn s3_client(endpoint: &str) -> aws_sdk_s3::Client {
    cwms_store::s3_client(&sdk_config(endpoint))
}

/// An s3s-fs server over a fresh temporary directory, with the bucket [`BUCKET`].
#[derive(Debug)]
pub struct S3Server {
    /// `http://127.0.0.1:PORT`.
    pub endpoint: String,
    /// The directory served: each bucket is a subdirectory, each object a file under it.
    pub root: PathBuf,
    /// The bucket created at start, [`BUCKET`].
    pub bucket: String,
    // Declared before `_dir` so the server is killed before its directory is removed.
    process: ServerProcess,
    _dir: TempDir,
}

impl S3Server {
    /// Starts s3s-fs on a free port and waits until it accepts connections.
    ///
    /// # Panics
    ///
    /// If s3s-fs is not installed or does not start in time; the message says how to fix it.
    pub async fn start() -> Self {
        let program = tools_dir().join("bin/s3s-fs");
        let dir = tempfile::Builder::new().prefix("cwms-s3s-fs-").tempdir().expect("cannot create a temporary directory for s3s-fs");
        let root = dir.path().join("data");
        // s3s-fs serves each top-level directory as a bucket, so creating one is a mkdir.
        std::fs::create_dir_all(root.join(BUCKET)).expect("cannot create the s3s-fs bucket");
        let log = dir.path().join("s3s-fs.log");
        let root_arg = root.clone();
        let (process, port) = ServerProcess::start("s3s-fs", &program, &log, move |port| {
            let mut args: Vec<OsString> =
                ["--host", "127.0.0.1", "--port", &port.to_string(), "--access-key", ACCESS_KEY, "--secret-key", SECRET_KEY]
                    .map(OsString::from)
                    .into();
            args.push(root_arg.clone().into_os_string());
            args
        })
        .await;
        Self { endpoint: format!("http://127.0.0.1:{port}"), root, bucket: BUCKET.to_owned(), process, _dir: dir }
    }

    /// The SDK configuration for this server (see [`sdk_config`]).
    pub fn sdk_config(&self) -> SdkConfig {
        sdk_config(&self.endpoint)
    }

    /// An S3 client for this server.
    pub fn client(&self) -> aws_sdk_s3::Client {
        s3_client(&self.endpoint)
    }

    /// A cwms store on [`Self::bucket`] under `prefix`.
    pub fn store(&self, prefix: &str) -> S3Store {
        S3Store::new(self.client(), &self.bucket, prefix)
    }

    /// The file where s3s-fs keeps the object `key` of [`Self::bucket`].
    pub fn object_path(&self, key: &str) -> PathBuf {
        self.root.join(&self.bucket).join(key)
    }

    /// What the server logged so far, for assertion messages.
    pub fn log(&self) -> String {
        self.process.log_tail()
    }
}

/// A moto server (S3, Firehose, Glue and more in one process), with no buckets.
#[derive(Debug)]
pub struct MotoServer {
    /// `http://127.0.0.1:PORT`.
    pub endpoint: String,
    process: ServerProcess,
    _dir: TempDir,
}

impl MotoServer {
    /// Starts `moto_server` on a free port and waits until it accepts connections.
    ///
    /// # Panics
    ///
    /// If moto is not installed or does not start in time; the message says how to fix it.
    pub async fn start() -> Self {
        let program = tools_dir().join("venv/bin/moto_server");
        let dir = tempfile::Builder::new().prefix("cwms-moto-").tempdir().expect("cannot create a temporary directory for moto");
        let log = dir.path().join("moto.log");
        let (process, port) = ServerProcess::start("moto_server", &program, &log, |port| {
            ["-H", "127.0.0.1", "-p", &port.to_string()].map(OsString::from).into()
        })
        .await;
        Self { endpoint: format!("http://127.0.0.1:{port}"), process, _dir: dir }
    }

    /// The SDK configuration for this server (see [`sdk_config`]).
    pub fn sdk_config(&self) -> SdkConfig {
        sdk_config(&self.endpoint)
    }

    /// An S3 client for this server.
    pub fn client(&self) -> aws_sdk_s3::Client {
        s3_client(&self.endpoint)
    }

    /// Creates `bucket` and returns a cwms store on it under `prefix`.
    ///
    /// # Panics
    ///
    /// If moto refuses to create the bucket.
    pub async fn s3_store(&self, bucket: &str, prefix: &str) -> S3Store {
        let client = self.client();
        if let Err(err) = client.create_bucket().bucket(bucket).send().await {
            panic!("moto cannot create bucket {bucket}: {}\n{}", aws_sdk_s3::error::DisplayErrorContext(&err), self.log());
        }
        S3Store::new(client, bucket, prefix)
    }

    /// What the server logged so far, for assertion messages.
    pub fn log(&self) -> String {
        self.process.log_tail()
    }
}

/// A server child process, killed on drop, with its output in a log file.
#[derive(Debug)]
struct ServerProcess {
    name: &'static str,
    child: Child,
    log: PathBuf,
}

impl ServerProcess {
    /// Starts `program` with the arguments `args(port)` for a free port and waits until the port
    /// accepts connections, trying another port if the server exits first.
    async fn start(name: &'static str, program: &Path, log: &Path, args: impl Fn(u16) -> Vec<OsString>) -> (Self, u16) {
        if !program.is_file() {
            panic!(
                "{name} is not installed at {}: run ./scripts/test, which installs the test \
                 servers into target/tools (or set TEST_TOOLS_DIR to where they are)",
                program.display()
            );
        }
        for attempt in 1..=PORT_ATTEMPTS {
            let port = free_port();
            let log_file = File::create(log).expect("cannot create a server log file");
            let child = Command::new(program)
                .args(args(port))
                .stdin(Stdio::null())
                .stdout(log_file.try_clone().expect("cannot share the server log file"))
                .stderr(log_file)
                .spawn()
                .unwrap_or_else(|err| panic!("cannot run {}: {err}", program.display()));
            let mut process = Self { name, child, log: log.to_owned() };
            // Polling sleeps between attempts, so it runs on a blocking thread.
            let (ready, returned) = tokio::task::spawn_blocking(move || {
                let ready = process.wait_until_listening(port);
                (ready, process)
            })
            .await
            .expect("the readiness check panicked");
            process = returned;
            match ready {
                Ok(()) => return (process, port),
                Err(Exited(status)) if attempt < PORT_ATTEMPTS => {
                    eprintln!("{name} exited with {status} on port {port}, trying another port:\n{}", process.log_tail());
                }
                Err(Exited(status)) => panic!(
                    "{name} exited with {status} before listening on 127.0.0.1:{port}; run \
                     ./scripts/test, which installs the test servers. Its output:\n{}",
                    process.log_tail()
                ),
                Err(TimedOut) => panic!(
                    "{name} did not accept connections on 127.0.0.1:{port} within {:?}; run \
                     ./scripts/test, which installs the test servers. Its output:\n{}",
                    STARTUP_TIMEOUT,
                    process.log_tail()
                ),
            }
        }
        unreachable!("the last attempt returns or panics")
    }

    /// Polls a TCP connection to `port` until it succeeds, the server exits, or time runs out.
    fn wait_until_listening(&mut self, port: u16) -> Result<(), NotReady> {
        let address = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
        let deadline = Instant::now() + STARTUP_TIMEOUT;
        loop {
            if let Some(status) = self.child.try_wait().expect("cannot poll a server process") {
                return Err(Exited(status));
            }
            if TcpStream::connect_timeout(&address, Duration::from_millis(200)).is_ok() {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(TimedOut);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The last few kilobytes of the server's output.
    fn log_tail(&self) -> String {
        const TAIL: usize = 8 * 1024;
        let log = std::fs::read(&self.log).unwrap_or_default();
        let tail = &log[log.len().saturating_sub(TAIL)..];
        format!("--- {} log ({}) ---\n{}", self.name, self.log.display(), String::from_utf8_lossy(tail))
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        // Already exited (or failed to start): nothing to kill. Errors are ignored because the
        // process may exit between the check and the kill, and a drop cannot report anything.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Why a server is not ready.
enum NotReady {
    Exited(std::process::ExitStatus),
    TimedOut,
}
use NotReady::{Exited, TimedOut};

/// A port that was free a moment ago (the OS picks it for a listener on port 0).
fn free_port() -> u16 {
    TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .and_then(|listener| listener.local_addr())
        .map(|address| address.port())
        .expect("cannot find a free TCP port on 127.0.0.1")
}
