//! cwms-store's S3Store against real S3 servers: s3s-fs for behaviour, moto for races.

use bytes::Bytes;
use cwms_store::{Error, ObjectStore, PutMode, PutOutcome, S3Store};
use cwms_tests::servers::{MotoServer, S3Server};
use futures::{StreamExt, TryStreamExt};

const MIB: usize = 1024 * 1024;

async fn put(store: &S3Store, key: &str, bytes: impl Into<Bytes>, mode: PutMode) -> PutOutcome {
    store.put(key, bytes.into(), mode).await.unwrap_or_else(|err| panic!("{err:#?}"))
}

fn written_etag(outcome: PutOutcome) -> String {
    match outcome {
        PutOutcome::Written { etag: Some(etag) } => etag,
        other => panic!("expected a write with an etag, got {other:?}"),
    }
}

async fn content(store: &S3Store, key: &str) -> Option<Bytes> {
    let object = store.get(key).await.unwrap_or_else(|err| panic!("{err:#?}"));
    object.map(|object| object.bytes)
}

async fn current_etag(store: &S3Store, key: &str) -> String {
    let object = store.get(key).await.unwrap().expect("the object exists");
    object.etag.expect("the server sends an etag")
}

/// Bytes that differ at every position, so a misplaced or repeated part cannot go unnoticed.
fn pseudo_random(len: usize, seed: u64) -> Bytes {
    let mut state = seed | 1;
    let mut bytes = Vec::with_capacity(len + 8);
    while bytes.len() < len {
        // xorshift64*
        state ^= state >> 12;
        state ^= state << 25;
        state ^= state >> 27;
        bytes.extend_from_slice(&state.wrapping_mul(0x2545_F491_4F6C_DD1D).to_le_bytes());
    }
    bytes.truncate(len);
    bytes.into()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3s_fs_put_get_list_round_trip() {
    let server = S3Server::start().await;
    let store = server.store("lake");
    let keys = [
        "metrics_1m/dt=2026-11-26/namespace=AWS%2FEC2/hour=03.parquet",
        "metrics_1m/dt=2026-11-26/namespace=AWS%2FEC2/hour=04.parquet",
        "metrics_1h/dt=2026-11-26/namespace=My App/day.parquet",
        "_cwms/checkpoint.json",
    ];
    for (i, key) in keys.iter().enumerate() {
        let outcome = put(&store, key, format!("object {i}"), PutMode::Overwrite).await;
        assert!(matches!(outcome, PutOutcome::Written { etag: Some(_) }), "{outcome:?}");
    }

    for (i, key) in keys.iter().enumerate() {
        let object = store.get(key).await.unwrap().expect(key);
        assert_eq!(object.bytes, format!("object {i}").as_bytes(), "{key}");
        assert!(object.etag.is_some(), "{key}");
    }

    let listed = store.list("").await.unwrap();
    let mut expected: Vec<_> = keys.to_vec();
    expected.sort_unstable();
    let listed_keys: Vec<_> = listed.iter().map(|meta| meta.key.as_str()).collect();
    assert_eq!(listed_keys, expected);
    for meta in &listed {
        assert_eq!(meta.size, "object 0".len() as u64, "{}", meta.key);
        assert!(meta.last_modified_ms > 1_700_000_000_000, "{meta:?}");
    }

    let metrics_1m: Vec<_> = store.list("metrics_1m/").await.unwrap();
    assert_eq!(metrics_1m.len(), 2);
    assert!(store.list("metrics_1m/dt=2027").await.unwrap().is_empty());

    // The store's prefix is a real key prefix in the bucket: the objects are files under it,
    // and a store on the whole bucket sees them with the prefix.
    assert_eq!(std::fs::read(server.object_path("lake/_cwms/checkpoint.json")).unwrap(), b"object 3");
    let whole_bucket = server.store("");
    let listed: Vec<_> = whole_bucket.list("lake/_cwms/").await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].key, "lake/_cwms/checkpoint.json");
    assert_eq!(store.describe("x/y"), format!("s3://{}/lake/x/y", server.bucket));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3s_fs_missing_key_is_none() {
    let server = S3Server::start().await;
    let store = server.store("lake");
    assert!(content(&store, "nothing/here.parquet").await.is_none());
    put(&store, "present", "x", PutMode::Overwrite).await;
    assert!(content(&store, "absent").await.is_none());
    assert!(content(&store, "present").await.is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3s_fs_list_follows_pagination_beyond_1000_objects() {
    const COUNT: usize = 1_100;
    let server = S3Server::start().await;
    let store = server.store("raw");
    let keys: Vec<String> = (0..COUNT).map(|i| format!("2026/11/26/{:02}/object-{i:05}", i % 24)).collect();
    futures::stream::iter(&keys)
        .map(|key| {
            let store = &store;
            async move { store.put(key, Bytes::from(key.clone()), PutMode::Overwrite).await }
        })
        .buffer_unordered(16)
        .try_for_each(|outcome| async move {
            assert!(matches!(outcome, PutOutcome::Written { .. }), "{outcome:?}");
            Ok(())
        })
        .await
        .unwrap();

    // One page is not enough, so the store must have followed continuation tokens.
    let first_page = server.client().list_objects_v2().bucket(&server.bucket).prefix("raw/").send().await.unwrap();
    assert_eq!(first_page.is_truncated(), Some(true));
    assert_eq!(first_page.contents().len(), 1_000);

    let listed = store.list("2026/").await.unwrap();
    let mut expected = keys.clone();
    expected.sort_unstable();
    let listed_keys: Vec<_> = listed.iter().map(|meta| meta.key.clone()).collect();
    assert_eq!(listed_keys.len(), COUNT);
    assert_eq!(listed_keys, expected);
    for meta in &listed {
        assert_eq!(meta.size, meta.key.len() as u64, "{}", meta.key);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3s_fs_multipart_upload_round_trips_byte_identical() {
    let server = S3Server::start().await;
    let store = server.store("lake").with_multipart_threshold(6 * MIB as u64, 5 * MIB as u64);
    let bytes = pseudo_random(11 * MIB, 1);

    let etag = written_etag(put(&store, "big.parquet", bytes.clone(), PutMode::Create).await);
    // A multipart ETag ends with the number of parts: 5 + 5 + 1 MiB.
    assert!(etag.trim_matches('"').ends_with("-3"), "{etag}");
    let object = store.get("big.parquet").await.unwrap().expect("written");
    assert!(object.bytes == bytes, "the object read back differs from the one written");
    assert_eq!(object.etag.as_deref(), Some(etag.as_str()));

    // At or below the threshold, one PutObject (its ETag is a plain MD5).
    let small = pseudo_random(6 * MIB, 2);
    let small_etag = written_etag(put(&store, "small.parquet", small.clone(), PutMode::Overwrite).await);
    assert!(!small_etag.contains('-'), "{small_etag}");
    assert!(content(&store, "small.parquet").await.unwrap() == small);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3s_fs_multipart_upload_keeps_preconditions_and_aborts_on_conflict() {
    let server = S3Server::start().await;
    let store = server.store("").with_multipart_threshold(6 * MIB as u64, 5 * MIB as u64);
    let first = pseudo_random(11 * MIB, 3);
    let etag = written_etag(put(&store, "big", first.clone(), PutMode::Create).await);

    let second = pseudo_random(11 * MIB, 4);
    assert_eq!(put(&store, "big", second.clone(), PutMode::Create).await, PutOutcome::Conflict);
    let stale = "\"00000000000000000000000000000000-3\"".to_owned();
    assert_eq!(put(&store, "big", second.clone(), PutMode::Update(stale)).await, PutOutcome::Conflict);
    assert!(content(&store, "big").await.unwrap() == first, "a refused upload changed the object");

    // s3s-fs keeps the parts of an upload in progress as `.upload_id-*` files at its root; the
    // refused uploads must have been aborted, leaving none behind.
    let leftovers: Vec<_> = std::fs::read_dir(&server.root)
        .unwrap()
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| name.starts_with(".upload_id-"))
        .collect();
    assert_eq!(leftovers, Vec::<String>::new());

    written_etag(put(&store, "big", second.clone(), PutMode::Update(etag)).await);
    assert!(content(&store, "big").await.unwrap() == second);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3s_fs_create_on_existing_key_conflicts() {
    let server = S3Server::start().await;
    let store = server.store("lake");
    written_etag(put(&store, "k", "first", PutMode::Create).await);
    assert_eq!(put(&store, "k", "second", PutMode::Create).await, PutOutcome::Conflict);
    assert_eq!(content(&store, "k").await.unwrap(), "first");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3s_fs_update_with_stale_etag_conflicts() {
    let server = S3Server::start().await;
    let store = server.store("lake");
    let stale = written_etag(put(&store, "k", "v1", PutMode::Overwrite).await);
    written_etag(put(&store, "k", "v2", PutMode::Overwrite).await);
    assert_eq!(put(&store, "k", "v3", PutMode::Update(stale.clone())).await, PutOutcome::Conflict);
    assert_eq!(content(&store, "k").await.unwrap(), "v2");
    // If-Match on a missing key is a lost race too (s3s-fs and AWS answer 412).
    assert_eq!(put(&store, "missing", "x", PutMode::Update(stale)).await, PutOutcome::Conflict);
    assert!(content(&store, "missing").await.is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3s_fs_update_with_current_etag_writes() {
    let server = S3Server::start().await;
    let store = server.store("lake");
    let put_etag = written_etag(put(&store, "k", "v1", PutMode::Overwrite).await);
    let read_etag = current_etag(&store, "k").await;
    assert_eq!(put_etag, read_etag, "PutObject and GetObject report the same ETag");
    let next = written_etag(put(&store, "k", "v2", PutMode::Update(read_etag)).await);
    assert_eq!(content(&store, "k").await.unwrap(), "v2");
    assert_eq!(current_etag(&store, "k").await, next);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3s_fs_errors_name_the_operation_and_the_location() {
    let server = S3Server::start().await;
    let store = S3Store::new(server.client(), "no-such-bucket", "lake");
    let err = store.list("raw/").await.unwrap_err();
    assert!(matches!(err, Error::S3 { .. }), "{err:?}");
    let message = err.to_string();
    assert!(message.starts_with("list s3://no-such-bucket/lake/raw/: NoSuchBucket (HTTP 404)"), "{message}");
    assert!(std::error::Error::source(&err).is_some());

    // A wrong secret key fails the signature check: an error, never a `None` or a conflict.
    let mut config = server.sdk_config().to_builder();
    config.set_credentials_provider(Some(aws_sdk_s3::config::SharedCredentialsProvider::new(aws_sdk_s3::config::Credentials::new(
        cwms_tests::servers::ACCESS_KEY,
        "wrong",
        None,
        None,
        "test",
    ))));
    let intruder = S3Store::new(cwms_store::s3_client(&config.build()), &server.bucket, "lake");
    let err = intruder.get("k").await.unwrap_err();
    assert!(err.to_string().starts_with("get s3://cwms-test/lake/k: "), "{err}");
    assert!(err.to_string().contains("(HTTP 403)"), "{err}");
    for mode in [PutMode::Overwrite, PutMode::Create, PutMode::Update("\"etag\"".into())] {
        let err = intruder.put("k", Bytes::from_static(b"x"), mode).await.unwrap_err();
        assert!(err.to_string().starts_with("put s3://cwms-test/lake/k: "), "{err}");
        assert!(err.to_string().contains("(HTTP 403)"), "{err}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn moto_sixteen_concurrent_updates_have_exactly_one_winner() {
    const WRITERS: usize = 16;
    let server = MotoServer::start().await;
    let store = server.s3_store("cwms-race", "lake").await;
    let etag = written_etag(put(&store, "partition.parquet", "v0", PutMode::Overwrite).await);

    // Start all writers at once so their requests overlap at the server.
    let barrier = std::sync::Arc::new(tokio::sync::Barrier::new(WRITERS));
    let writers = (0..WRITERS).map(|i| {
        let (store, etag, barrier) = (store.clone(), etag.clone(), barrier.clone());
        tokio::spawn(async move {
            barrier.wait().await;
            let bytes = Bytes::from(format!("writer {i}"));
            store.put("partition.parquet", bytes, PutMode::Update(etag)).await
        })
    });
    let outcomes: Vec<PutOutcome> = futures::future::try_join_all(writers)
        .await
        .unwrap()
        .into_iter()
        .collect::<Result<_, _>>()
        .unwrap_or_else(|err| panic!("{err:#?}\n{}", server.log()));

    let winners: Vec<usize> = (0..WRITERS).filter(|&i| matches!(outcomes[i], PutOutcome::Written { .. })).collect();
    assert_eq!(winners.len(), 1, "{outcomes:?}");
    let conflicts = outcomes.iter().filter(|o| **o == PutOutcome::Conflict).count();
    assert_eq!(conflicts, WRITERS - 1);
    let stored = content(&store, "partition.parquet").await.unwrap();
    assert_eq!(stored, format!("writer {}", winners[0]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn moto_conditional_puts_and_listing_etags() {
    let server = MotoServer::start().await;
    let store = server.s3_store("cwms-moto", "").await;
    // moto answers 404 to If-Match on a missing key: still a lost race, not an error.
    assert_eq!(put(&store, "k", "x", PutMode::Update("\"d41d8cd98f00b204e9800998ecf8427e\"".into())).await, PutOutcome::Conflict);
    let etag = written_etag(put(&store, "k", "v1", PutMode::Create).await);
    assert_eq!(put(&store, "k", "v2", PutMode::Create).await, PutOutcome::Conflict);
    // moto lists ETags, the same ones PutObject reported.
    let listed = store.list("").await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].etag.as_deref(), Some(etag.as_str()));
    written_etag(put(&store, "k", "v2", PutMode::Update(etag)).await);
    assert_eq!(content(&store, "k").await.unwrap(), "v2");
}

/// Pins the s3s-fs behaviour that `cwms_tests::servers` documents, so an upgrade that changes
/// it fails here rather than confusing some other test.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3s_fs_quirks_are_as_documented() {
    let server = S3Server::start().await;
    // Without retries: the SDK would retry every 500 below with backoff.
    let config = server.sdk_config().to_builder().retry_config(aws_config::retry::RetryConfig::disabled()).build();
    let client = cwms_store::s3_client(&config);
    let store = S3Store::new(client.clone(), &server.bucket, "");
    put(&store, "a/b", "x", PutMode::Overwrite).await;

    // Listings carry no ETag, GetObject does.
    let listed = store.list("").await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].etag, None);
    assert!(store.get("a/b").await.unwrap().unwrap().etag.is_some());

    // `a` is a directory because `a/b` exists: reading or writing it answers 500.
    let head = client.head_object().bucket(&server.bucket).key("a").send().await;
    assert_eq!(head.unwrap_err().raw_response().map(|r| r.status().as_u16()), Some(500));
    let get = client.get_object().bucket(&server.bucket).key("a").send().await;
    assert_eq!(get.unwrap_err().raw_response().map(|r| r.status().as_u16()), Some(500));
    let err = store.put("a", Bytes::from_static(b"y"), PutMode::Overwrite).await.unwrap_err();
    assert!(err.to_string().contains("InternalError (HTTP 500)"), "{err}");
    // ...while `If-None-Match: *` sees the directory as an existing object.
    assert_eq!(put(&store, "a", "y", PutMode::Create).await, PutOutcome::Conflict);
    // Under a file, a key reads as missing but cannot be written.
    assert!(content(&store, "a/b/c").await.is_none());
    let err = store.put("a/b/c", Bytes::from_static(b"y"), PutMode::Overwrite).await.unwrap_err();
    assert!(err.to_string().contains("InternalError (HTTP 500)"), "{err}");

    // PutObject into a bucket that does not exist creates it (AWS answers NoSuchBucket).
    let elsewhere = S3Store::new(client.clone(), "made-by-put", "");
    put(&elsewhere, "k", "x", PutMode::Overwrite).await;
    assert!(server.root.join("made-by-put/k").is_file());

    // Bucket names need 3 or more characters.
    let err = client.create_bucket().bucket("ab").send().await.unwrap_err();
    assert_eq!(err.into_service_error().meta().code(), Some("InvalidBucketName"));
}

/// Set in the child process of `s3s_fs_open_configures_s3_from_the_environment`.
const OPEN_FROM_ENV_CHILD: &str = "CWMS_TEST_OPEN_FROM_ENV_CHILD";

/// `open("s3://bucket/prefix")` configures its client from the environment, as the CLI does:
/// endpoint, credentials, the default region, and path-style addressing (without which the SDK
/// would look up `cwms-test.localhost`). Environment variables belong to the whole process and
/// setting them in a multi-threaded test is unsound, so this test runs itself again as a child
/// process with the variables set, once with the S3-specific and once with the global endpoint
/// variable, and checks what the child wrote.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3s_fs_open_configures_s3_from_the_environment() {
    if let Some(prefix) = std::env::var_os(OPEN_FROM_ENV_CHILD) {
        let prefix = prefix.into_string().unwrap();
        let store = cwms_store::open(&format!("s3://{}/{prefix}", cwms_tests::servers::BUCKET)).await.unwrap();
        let outcome = store.put("k", Bytes::from(prefix.clone()), PutMode::Create).await.unwrap_or_else(|err| panic!("{err:#?}"));
        assert!(matches!(outcome, PutOutcome::Written { .. }), "{outcome:?}");
        assert_eq!(store.get("k").await.unwrap().unwrap().bytes, prefix.as_bytes());
        assert_eq!(store.list("").await.unwrap().len(), 1);
        return;
    }

    let server = S3Server::start().await;
    // By host name: for an IP address the SDK picks path-style addressing by itself.
    let endpoint = server.endpoint.replace("127.0.0.1", "localhost");
    for (variable, prefix) in [("AWS_ENDPOINT_URL_S3", "s3-specific"), ("AWS_ENDPOINT_URL", "global")] {
        let mut child = std::process::Command::new(std::env::current_exe().unwrap());
        child.args(["store::s3s_fs_open_configures_s3_from_the_environment", "--exact", "--nocapture"]);
        // Nothing from the developer's own AWS setup may leak in.
        for (name, _) in std::env::vars_os() {
            if name.to_string_lossy().starts_with("AWS_") {
                child.env_remove(name);
            }
        }
        child
            .env(variable, &endpoint)
            .env("AWS_ACCESS_KEY_ID", cwms_tests::servers::ACCESS_KEY)
            .env("AWS_SECRET_ACCESS_KEY", cwms_tests::servers::SECRET_KEY)
            // No region anywhere, and no instance metadata to ask: `us-east-1` by default.
            .env("AWS_EC2_METADATA_DISABLED", "true")
            .env("AWS_CONFIG_FILE", server.root.join("no-config"))
            .env("AWS_SHARED_CREDENTIALS_FILE", server.root.join("no-credentials"))
            .env(OPEN_FROM_ENV_CHILD, prefix);
        let output = tokio::task::spawn_blocking(move || child.output()).await.unwrap().unwrap();
        assert!(
            output.status.success(),
            "the child with {variable} failed:\n{}\n{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        // The child's write is really there, under the prefix of its URL.
        let written = std::fs::read(server.object_path(&format!("{prefix}/k")));
        assert_eq!(written.unwrap(), prefix.as_bytes(), "{variable}");
    }
}
