//! A store on S3 or any S3-compatible endpoint, through aws-sdk-s3.

use aws_config::meta::region::RegionProviderChain;
use aws_config::retry::RetryConfig;
use aws_config::{BehaviorVersion, SdkConfig};
use aws_sdk_s3::Client;
use aws_sdk_s3::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_s3::operation::get_object::GetObjectError;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart};
use aws_types::service_config::ServiceConfigKey;
use bytes::Bytes;
use futures::{FutureExt, StreamExt, TryStreamExt};

use crate::{BoxFuture, Error, Object, ObjectMeta, ObjectStore, PutMode, PutOutcome, Result, validate_key, validate_prefix};

/// Objects larger than this are uploaded in parts unless configured otherwise: a single
/// `PutObject` of a large object fails as a whole on a flaky connection, and parts are retried
/// one by one.
pub const DEFAULT_MULTIPART_THRESHOLD: u64 = 64 * 1024 * 1024;

/// The part size used above [`DEFAULT_MULTIPART_THRESHOLD`] unless configured otherwise.
pub const DEFAULT_MULTIPART_PART_SIZE: u64 = 8 * 1024 * 1024;

/// S3 refuses parts smaller than this, except the last one.
pub const MIN_MULTIPART_PART_SIZE: u64 = 5 * 1024 * 1024;

/// S3 accepts at most this many parts; larger objects get larger parts.
const MAX_PARTS: usize = 10_000;

/// Parts uploaded at once. The parts are slices of the caller's buffer, so concurrency costs no
/// memory; it only bounds the number of connections one upload opens.
const PART_CONCURRENCY: usize = 4;

/// How many times the SDK tries a request in all (its standard mode backs off exponentially with
/// jitter on throttling, 5xx and connection errors).
const MAX_ATTEMPTS: u32 = 5;

/// How many times a GET is made when its body is cut short after the headers arrived.
const BODY_ATTEMPTS: u32 = 3;

/// The region used when neither the environment nor a profile names one: S3-compatible servers
/// generally ignore it, but `SigV4` signing needs one.
const DEFAULT_REGION: &str = "us-east-1";

/// A store on an S3 bucket, under an optional key prefix.
///
/// Conditional puts use S3's `If-None-Match: *` and `If-Match: <etag>` on `PutObject` and on
/// `CompleteMultipartUpload`; S3 evaluates them atomically, so concurrent writers cannot both
/// win (unlike [`crate::LocalStore`], this holds across processes and machines).
#[derive(Debug, Clone)]
pub struct S3Store {
    client: Client,
    bucket: String,
    /// Empty, or the prefix with one trailing `/`, ready to put in front of keys.
    prefix: String,
    multipart_threshold: u64,
    part_size: u64,
}

impl S3Store {
    /// A store on `bucket` under `prefix` (leading and trailing `/` are ignored; empty for the
    /// whole bucket), using `client` as configured. Build the client with [`s3_client`] or
    /// [`s3_client_from_env`] to get path-style addressing for custom endpoints.
    pub fn new(client: Client, bucket: impl Into<String>, prefix: &str) -> Self {
        let prefix = prefix.trim_matches('/');
        Self {
            client,
            bucket: bucket.into(),
            prefix: if prefix.is_empty() { String::new() } else { format!("{prefix}/") },
            multipart_threshold: DEFAULT_MULTIPART_THRESHOLD,
            part_size: DEFAULT_MULTIPART_PART_SIZE,
        }
    }

    /// A store on `bucket` under `prefix` with a client configured from the environment (see
    /// [`s3_client_from_env`]).
    pub async fn from_env(bucket: impl Into<String>, prefix: &str) -> Self {
        Self::new(s3_client_from_env().await, bucket, prefix)
    }

    /// Uploads objects larger than `threshold` bytes in parts of `part_size` bytes (larger when
    /// an object would otherwise need more than 10,000 parts).
    ///
    /// # Panics
    ///
    /// If `part_size` is below [`MIN_MULTIPART_PART_SIZE`], which S3 would refuse at the end of
    /// the upload.
    #[must_use]
    pub fn with_multipart_threshold(mut self, threshold: u64, part_size: u64) -> Self {
        assert!(
            part_size >= MIN_MULTIPART_PART_SIZE,
            "multipart part size {part_size} is below the {MIN_MULTIPART_PART_SIZE} bytes S3 accepts"
        );
        self.multipart_threshold = threshold;
        self.part_size = part_size;
        self
    }

    /// The client requests go through.
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// The bucket.
    pub fn bucket(&self) -> &str {
        &self.bucket
    }

    fn full_key(&self, key: &str) -> String {
        format!("{}{key}", self.prefix)
    }

    async fn list_impl(&self, prefix: &str) -> Result<Vec<ObjectMeta>> {
        validate_prefix(prefix)?;
        let mut pages = self.client.list_objects_v2().bucket(&self.bucket).prefix(self.full_key(prefix)).into_paginator().send();
        let mut objects = Vec::new();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|err| s3_error("list", self.describe(prefix), err))?;
            for object in page.contents() {
                let Some(key) = object.key() else { continue };
                let key = key.strip_prefix(&self.prefix).unwrap_or(key);
                // A zero-byte `folder/` object is the console's folder marker: no data, no object.
                if key.is_empty() || (key.ends_with('/') && object.size() == Some(0)) {
                    continue;
                }
                objects.push(ObjectMeta {
                    key: key.to_owned(),
                    size: object.size().map_or(0, |size| size.try_into().unwrap_or(0)),
                    last_modified_ms: object.last_modified().and_then(|time| time.to_millis().ok()).unwrap_or(0),
                    etag: object.e_tag().map(str::to_owned),
                    // S3 allows keys no local folder can hold (a backslash, `a//b`): listed, named,
                    // and not read, so that the same lake works on either.
                    problem: validate_key(key).err().map(|e| e.to_string()),
                });
            }
        }
        // S3 lists in UTF-8 byte order, which is `str` order; some compatible servers do not
        // promise it, and the trait does.
        objects.sort_unstable_by(|a, b| a.key.cmp(&b.key));
        Ok(objects)
    }

    async fn get_impl(&self, key: &str) -> Result<Option<Object>> {
        validate_key(key)?;
        // The SDK retries a request until its answer's headers arrive; a body cut short after
        // them (a reset, a truncated response) is retried here, a few times, from the start.
        let mut attempt = 0;
        loop {
            attempt += 1;
            let response = self.client.get_object().bucket(&self.bucket).key(self.full_key(key)).send().await;
            let output = match response {
                Ok(output) => output,
                Err(err) if err.as_service_error().is_some_and(GetObjectError::is_no_such_key) => {
                    return Ok(None);
                }
                Err(err) => return Err(s3_error("get", self.describe(key), err)),
            };
            let etag = output.e_tag().map(str::to_owned);
            match output.body.collect().await {
                Ok(body) => return Ok(Some(Object { bytes: body.into_bytes(), etag })),
                Err(err) if attempt < BODY_ATTEMPTS => {
                    tracing::warn!(location = %self.describe(key), %err, attempt, "the body of an object was cut short; reading it again");
                }
                Err(err) => {
                    return Err(Error::S3 {
                        op: "read the body of",
                        location: self.describe(key),
                        detail: format!("the response body was cut short or unreadable ({attempt} attempts)"),
                        source: Box::new(err),
                    });
                }
            }
        }
    }

    async fn get_chunks_impl(&self, key: &str) -> Result<Option<crate::Chunks>> {
        validate_key(key)?;
        let full_key = self.full_key(key);
        let response = self.client.get_object().bucket(&self.bucket).key(&full_key).send().await;
        let output = match response {
            Ok(output) => output,
            Err(err) if err.as_service_error().is_some_and(GetObjectError::is_no_such_key) => return Ok(None),
            Err(err) => return Err(s3_error("get", self.describe(key), err)),
        };
        let reading = Resumable {
            client: self.client.clone(),
            bucket: self.bucket.clone(),
            location: self.describe(key),
            etag: output.e_tag().map(str::to_owned),
            size: output.content_length().and_then(|n| u64::try_from(n).ok()),
            full_key,
            body: output.body,
            offset: 0,
            attempt: 1,
        };
        Ok(Some(Box::pin(futures::stream::try_unfold(reading, Resumable::next))))
    }

    async fn put_impl(&self, key: &str, bytes: Bytes, mode: PutMode) -> Result<PutOutcome> {
        validate_key(key)?;
        let outcome = if bytes.len() as u64 > self.multipart_threshold {
            self.put_multipart(key, bytes, &mode).await?
        } else {
            self.put_single(key, bytes, &mode).await?
        };
        tracing::debug!(location = %self.describe(key), ?mode, ?outcome, "s3 put");
        Ok(outcome)
    }

    async fn put_single(&self, key: &str, bytes: Bytes, mode: &PutMode) -> Result<PutOutcome> {
        let request = self.client.put_object().bucket(&self.bucket).key(self.full_key(key)).body(ByteStream::from(bytes));
        let request = match mode {
            PutMode::Overwrite => request,
            PutMode::Create => request.if_none_match("*"),
            PutMode::Update(etag) => request.if_match(etag),
        };
        match request.send().await {
            Ok(output) => Ok(PutOutcome::Written { etag: output.e_tag().map(str::to_owned) }),
            Err(err) if is_conflict(&err, mode) => Ok(PutOutcome::Conflict),
            Err(err) => Err(s3_error("put", self.describe(key), err)),
        }
    }

    /// Uploads in parts and completes under the same precondition as a single put. Any failure
    /// or conflict aborts the upload; an upload whose future is dropped midway is left for the
    /// bucket's `AbortIncompleteMultipartUpload` lifecycle rule, as S3 recommends for every bucket.
    async fn put_multipart(&self, key: &str, bytes: Bytes, mode: &PutMode) -> Result<PutOutcome> {
        let full_key = self.full_key(key);
        let created = self
            .client
            .create_multipart_upload()
            .bucket(&self.bucket)
            .key(&full_key)
            .send()
            .await
            .map_err(|err| s3_error("start multipart upload of", self.describe(key), err))?;
        let Some(upload_id) = created.upload_id() else {
            return Err(Error::S3 {
                op: "start multipart upload of",
                location: self.describe(key),
                detail: "the response has no upload id".to_owned(),
                source: "CreateMultipartUpload answered without an UploadId".into(),
            });
        };
        let result = self.upload_and_complete(key, &full_key, upload_id, bytes, mode).await;
        if !matches!(result, Ok(PutOutcome::Written { .. })) {
            // Parts of an unfinished upload are stored (and billed) until aborted; a failed
            // abort is only logged, since the upload's own error is the one that matters.
            let aborted = self.client.abort_multipart_upload().bucket(&self.bucket).key(&full_key).upload_id(upload_id).send().await;
            if let Err(err) = aborted {
                tracing::warn!(
                    location = %self.describe(key),
                    upload_id,
                    error = %aws_sdk_s3::error::DisplayErrorContext(&err),
                    "cannot abort a multipart upload; a bucket lifecycle rule must clean it up"
                );
            }
        }
        result
    }

    async fn upload_and_complete(&self, key: &str, full_key: &str, upload_id: &str, bytes: Bytes, mode: &PutMode) -> Result<PutOutcome> {
        let len = bytes.len();
        let part_size = usize::try_from(self.part_size).unwrap_or(usize::MAX).max(len.div_ceil(MAX_PARTS));
        let parts = (0..len.div_ceil(part_size)).map(|index| {
            let start = index * part_size;
            let end = start.saturating_add(part_size).min(len);
            // Part numbers start at 1. The slices share the caller's buffer.
            let number = i32::try_from(index + 1).expect("at most 10,000 parts");
            (number, bytes.slice(start..end))
        });
        let completed: Vec<CompletedPart> = futures::stream::iter(parts)
            .map(|(number, part)| async move {
                let uploaded = self
                    .client
                    .upload_part()
                    .bucket(&self.bucket)
                    .key(full_key)
                    .upload_id(upload_id)
                    .part_number(number)
                    .body(ByteStream::from(part))
                    .send()
                    .await
                    .map_err(|err| s3_error("upload a part of", self.describe(key), err))?;
                Ok::<_, Error>(CompletedPart::builder().part_number(number).set_e_tag(uploaded.e_tag().map(str::to_owned)).build())
            })
            .buffered(PART_CONCURRENCY)
            .try_collect()
            .await?;

        let request = self
            .client
            .complete_multipart_upload()
            .bucket(&self.bucket)
            .key(full_key)
            .upload_id(upload_id)
            .multipart_upload(CompletedMultipartUpload::builder().set_parts(Some(completed)).build());
        let request = match mode {
            PutMode::Overwrite => request,
            PutMode::Create => request.if_none_match("*"),
            PutMode::Update(etag) => request.if_match(etag),
        };
        match request.send().await {
            Ok(output) => Ok(PutOutcome::Written { etag: output.e_tag().map(str::to_owned) }),
            Err(err) if is_conflict(&err, mode) => Ok(PutOutcome::Conflict),
            Err(err) => Err(s3_error("complete multipart upload of", self.describe(key), err)),
        }
    }
}

impl ObjectStore for S3Store {
    fn list<'a>(&'a self, prefix: &'a str) -> BoxFuture<'a, Result<Vec<ObjectMeta>>> {
        self.list_impl(prefix).boxed()
    }

    fn get<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<Option<Object>>> {
        self.get_impl(key).boxed()
    }

    fn put<'a>(&'a self, key: &'a str, bytes: Bytes, mode: PutMode) -> BoxFuture<'a, Result<PutOutcome>> {
        self.put_impl(key, bytes, mode).boxed()
    }

    fn get_chunks<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<Option<crate::Chunks>>> {
        self.get_chunks_impl(key).boxed()
    }

    fn describe(&self, key: &str) -> String {
        format!("s3://{}/{}{key}", self.bucket, self.prefix)
    }

    fn identity(&self) -> String {
        format!("s3://{}/{}", self.bucket, self.prefix).trim_end_matches('/').to_owned()
    }
}

/// Whether a failed conditional write lost a race rather than failed.
///
/// - 412 `PreconditionFailed`: the ETag did not match, or the object exists for `Create`.
/// - 404 on `If-Match` (not for a missing bucket or upload): the object is gone; moto answers
///   this way, AWS with 412, and both mean another writer changed the object.
/// - 409 `ConditionalRequestConflict`: AWS saw a concurrent conditional write to the same key in
///   flight; re-reading and retrying is exactly what AWS asks for.
fn is_conflict<E: ProvideErrorMetadata>(err: &SdkError<E>, mode: &PutMode) -> bool {
    let SdkError::ServiceError(context) = err else {
        return false;
    };
    if *mode == PutMode::Overwrite {
        return false;
    }
    let status = context.raw().status().as_u16();
    let code = context.err().code();
    status == 412
        || code == Some("PreconditionFailed")
        || code == Some("ConditionalRequestConflict")
        || (matches!(mode, PutMode::Update(_)) && status == 404 && !matches!(code, Some("NoSuchBucket" | "NoSuchUpload")))
}

/// One object's body as it streams in. A body cut short after some bytes (a reset, a truncated
/// response) is picked up where it stopped, with a ranged GET of the same version (`If-Match`),
/// up to [`BODY_ATTEMPTS`] times: the reader sees every byte once, so a huge object is not
/// read again from the start and nothing it yielded is yielded twice.
struct Resumable {
    client: Client,
    bucket: String,
    full_key: String,
    location: String,
    etag: Option<String>,
    size: Option<u64>,
    body: ByteStream,
    /// Bytes yielded so far.
    offset: u64,
    attempt: u32,
}

impl Resumable {
    async fn next(mut self) -> Result<Option<(Bytes, Self)>> {
        loop {
            let err = match self.body.try_next().await {
                Ok(Some(chunk)) => {
                    self.offset += chunk.len() as u64;
                    return Ok(Some((chunk, self)));
                }
                Ok(None) => return Ok(None),
                Err(err) => err,
            };
            if self.size.is_some_and(|size| self.offset >= size) {
                // Every byte arrived; only the end of the response was lost.
                return Ok(None);
            }
            if self.attempt >= BODY_ATTEMPTS {
                return Err(Error::S3 {
                    op: "read the body of",
                    location: self.location,
                    detail: format!("the response body was cut short or unreadable ({} attempts)", self.attempt),
                    source: Box::new(err),
                });
            }
            self.attempt += 1;
            tracing::warn!(location = %self.location, %err, offset = self.offset, attempt = self.attempt, "the body of an object was cut short; reading on from where it stopped");
            let mut request = self.client.get_object().bucket(&self.bucket).key(&self.full_key).range(format!("bytes={}-", self.offset));
            if let Some(etag) = &self.etag {
                request = request.if_match(etag);
            }
            let output = match request.send().await {
                Ok(output) => output,
                Err(err) => return Err(s3_error("resume reading", self.location, err)),
            };
            // A server that ignores the range answers with the whole object: reading it on would
            // repeat the bytes already read.
            let from = format!("bytes {}-", self.offset);
            if !output.content_range().is_some_and(|range| range.starts_with(&from)) {
                return Err(Error::S3 {
                    op: "resume reading",
                    location: self.location,
                    detail: format!("asked for {from}, the answer holds {:?}", output.content_range().unwrap_or("the whole object")),
                    source: Box::new(err),
                });
            }
            self.body = output.body;
        }
    }
}

/// Wraps an SDK error with the operation, the location, and a summary of what went wrong.
fn s3_error<E>(op: &'static str, location: String, err: SdkError<E>) -> Error
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    let detail = match &err {
        SdkError::ServiceError(context) => {
            let code = context.err().code().unwrap_or("unknown error");
            let status = context.raw().status().as_u16();
            match context.err().message() {
                Some(message) if !message.is_empty() => {
                    format!("{code} (HTTP {status}): {message}")
                }
                _ => format!("{code} (HTTP {status})"),
            }
        }
        SdkError::TimeoutError(_) => "the request timed out".to_owned(),
        SdkError::DispatchFailure(_) => "the request could not be sent".to_owned(),
        SdkError::ResponseError(_) => "the response could not be understood".to_owned(),
        SdkError::ConstructionFailure(_) => "the request could not be built".to_owned(),
        _ => "the request failed".to_owned(),
    };
    Error::S3 { op, location, detail, source: Box::new(err) }
}

/// An S3 client configured from the environment, the way the AWS CLI would be.
///
/// Credentials and region come from the standard chains (environment, profile, web identity,
/// container and instance metadata); the region defaults to `us-east-1` when none is
/// configured. `AWS_ENDPOINT_URL_S3` or `AWS_ENDPOINT_URL` (or the profile's `endpoint_url`)
/// selects an S3-compatible server. Requests are retried in the SDK's standard mode, up to five
/// attempts in all.
pub async fn s3_client_from_env() -> Client {
    let config = aws_config::defaults(BehaviorVersion::latest())
        .region(RegionProviderChain::default_provider().or_else(DEFAULT_REGION))
        .retry_config(RetryConfig::standard().with_max_attempts(MAX_ATTEMPTS))
        .load()
        .await;
    s3_client(&config)
}

/// An S3 client for `config`, addressing buckets path-style (`http://host/bucket/key`) whenever
/// a custom endpoint is configured.
///
/// S3-compatible servers (s3s-fs, moto, MinIO) rarely resolve virtual-hosted bucket names
/// (`bucket.host`), while AWS itself prefers them, so the style follows the endpoint.
pub fn s3_client(config: &SdkConfig) -> Client {
    let custom_endpoint = s3_endpoint_url(config).is_some();
    let s3_config = aws_sdk_s3::config::Builder::from(config).force_path_style(custom_endpoint).build();
    Client::from_conf(s3_config)
}

/// The endpoint URL the S3 client will use, resolved the way aws-sdk-s3 resolves it: the
/// S3-specific setting (`AWS_ENDPOINT_URL_S3`, or the profile's `services` section) first, then
/// the global one.
fn s3_endpoint_url(config: &SdkConfig) -> Option<String> {
    let service_specific = config.service_config().and_then(|loader| {
        let key = ServiceConfigKey::builder()
            .service_id("S3")
            .env("AWS_ENDPOINT_URL")
            .profile("endpoint_url")
            .build()
            .expect("every field of the key is set");
        loader.load_config(key)
    });
    service_specific.or_else(|| config.endpoint_url().map(str::to_owned))
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_s3::config::{Credentials, Region};

    fn config(endpoint: Option<&str>) -> SdkConfig {
        let mut builder =
            SdkConfig::builder().behavior_version(BehaviorVersion::latest()).region(Region::new("us-east-1")).credentials_provider(
                aws_sdk_s3::config::SharedCredentialsProvider::new(Credentials::new("key", "secret", None, None, "cwms-store tests")),
            );
        builder.set_endpoint_url(endpoint.map(str::to_owned));
        builder.build()
    }

    #[test]
    fn path_style_follows_a_custom_endpoint() {
        assert_eq!(s3_endpoint_url(&config(Some("http://127.0.0.1:9000"))).as_deref(), Some("http://127.0.0.1:9000"));
        assert_eq!(s3_endpoint_url(&config(None)), None);
    }

    #[test]
    fn describe_puts_the_prefix_before_the_key() {
        let client = s3_client(&config(None));
        for (prefix, expected) in
            [("", "s3://b/k/x"), ("/", "s3://b/k/x"), ("lake", "s3://b/lake/k/x"), ("/lake/raw/", "s3://b/lake/raw/k/x")]
        {
            let store = S3Store::new(client.clone(), "b", prefix);
            assert_eq!(store.describe("k/x"), expected, "prefix {prefix:?}");
        }
    }

    #[test]
    #[should_panic(expected = "below the 5242880 bytes S3 accepts")]
    fn parts_below_five_mib_are_refused() {
        let store = S3Store::new(s3_client(&config(None)), "b", "");
        let _ = store.with_multipart_threshold(1024, 1024);
    }
}
