//! The two wire protocols CloudWatch's SDKs speak, over one axum router.
//!
//! - AWS JSON 1.0: `POST /`, `X-Amz-Target: GraniteServiceVersion20100801.<Operation>`, JSON
//!   bodies (`application/x-amz-json-1.0`); boto3 and the AWS CLI use it.
//! - Smithy RPC v2 CBOR: `POST /service/GraniteServiceVersion20100801/operation/<Operation>`,
//!   CBOR bodies (`application/cbor`), `smithy-protocol: rpc-v2-cbor` on the response too; the
//!   current Rust and Go SDKs use it.
//!
//! Errors take each protocol's shape: a body `{"__type": ..., "message": ...}` in JSON or CBOR,
//! with `x-amzn-query-error: Code;Sender` for CloudWatch's modeled errors (it is a
//! query-compatible service, so SDKs report the query protocol's codes, `InvalidParameterValue`).

use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use futures::FutureExt;
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::sync::Semaphore;

use crate::error::{ApiError, ErrorKind};
use crate::lake::Lake;

/// The service name in CloudWatch's targets and paths.
pub const SERVICE: &str = "GraniteServiceVersion20100801";

/// The largest request body accepted: 500 queries of 30 dimensions at their longest would be
/// more, but real requests are a small fraction of this.
pub const MAX_BODY_BYTES: usize = 4 * 1024 * 1024;

/// Requests answered at once; more wait their turn. Answering is decoding Parquet, on a machine
/// of a few cores.
const CONCURRENT_REQUESTS: usize = 4;

const SHAPE_NAMESPACE: &str = "com.amazonaws.cloudwatch#";

/// The wire protocol of a request, which its response and errors follow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    Json,
    Cbor,
}

impl Protocol {
    fn content_type(self) -> &'static str {
        match self {
            Protocol::Json => "application/x-amz-json-1.0",
            Protocol::Cbor => "application/cbor",
        }
    }

    fn decode<T: DeserializeOwned + Default>(self, body: &[u8]) -> Result<T, ApiError> {
        // An operation whose input members are all optional may come with no body at all.
        if body.iter().all(u8::is_ascii_whitespace) && self == Protocol::Json || body.is_empty() {
            return Ok(T::default());
        }
        // The path of the member that failed (`MetricDataQueries[2].MetricStat.Period`) leads the message.
        let failed = |format: &str, path: String, error: String| {
            let at = if path == "." { String::new() } else { format!(" at {path}") };
            ApiError::new(ErrorKind::Serialization, format!("the body is not {format} of the operation's input{at}: {error}"))
        };
        match self {
            Protocol::Json => {
                let mut deserializer = serde_json::Deserializer::from_slice(body);
                let value = serde_path_to_error::deserialize(&mut deserializer)
                    .map_err(|e| failed("JSON", e.path().to_string(), e.into_inner().to_string()))?;
                deserializer.end().map_err(|e| failed("JSON", ".".into(), e.to_string()))?;
                Ok(value)
            }
            Protocol::Cbor => ciborium::from_reader::<Tracked<T>, _>(body)
                .map_err(|e| match e {
                    ciborium::de::Error::Semantic(_, message) if message.starts_with(PATH_MARK) => {
                        let (path, error) = message[PATH_MARK.len()..].split_once('\n').unwrap_or((".", &message));
                        failed("CBOR", path.to_owned(), error.to_owned())
                    }
                    other => failed("CBOR", ".".into(), other.to_string()),
                })
                .map(|tracked| tracked.0),
        }
    }

    fn encode<T: Serialize>(self, value: &T) -> Result<Vec<u8>, ApiError> {
        match self {
            Protocol::Json => serde_json::to_vec(value).map_err(ApiError::internal),
            Protocol::Cbor => {
                let mut out = Vec::new();
                ciborium::into_writer(value, &mut out).map_err(ApiError::internal)?;
                Ok(out)
            }
        }
    }
}

/// A value deserialized with the path of the member that failed in its error (ciborium keeps
/// its deserializer private, so the path tracking goes inside): `PATH_MARK`, the path, a newline,
/// the error.
struct Tracked<T>(T);

const PATH_MARK: &str = "\u{1}path:";

impl<'de, T: serde::Deserialize<'de>> serde::Deserialize<'de> for Tracked<T> {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let mut track = serde_path_to_error::Track::new();
        match T::deserialize(serde_path_to_error::Deserializer::new(deserializer, &mut track)) {
            Ok(value) => Ok(Tracked(value)),
            Err(error) => Err(serde::de::Error::custom(format!("{PATH_MARK}{}\n{error}", track.path()))),
        }
    }
}

/// What every request shares.
struct Shared {
    lake: Lake,
    permits: Semaphore,
    requests: AtomicU64,
}

/// The router: every request goes to [`handle`], which tells the protocol by method and path.
pub fn router(lake: Lake) -> axum::Router {
    let shared = Arc::new(Shared { lake, permits: Semaphore::new(CONCURRENT_REQUESTS), requests: AtomicU64::new(0) });
    axum::Router::new().fallback(handle).with_state(shared)
}

async fn handle(State(shared): State<Arc<Shared>>, request: Request) -> Response {
    let number = shared.requests.fetch_add(1, Ordering::Relaxed);
    let request_id = format!("00000000-0000-4000-8000-{:012x}", number & 0xffff_ffff_ffff);
    let (parts, body) = request.into_parts();
    let (protocol, operation) = match route(&parts.method, parts.uri.path(), &parts.headers) {
        Ok(found) => found,
        Err((protocol, status, error)) => return error_response(protocol, status, &error, &request_id),
    };
    let body = match read_body(body, &parts.headers).await {
        Ok(body) => body,
        Err(error) => return error_response(protocol, status_of(&error), &error, &request_id),
    };
    let Ok(_permit) = shared.permits.acquire().await else {
        let error = ApiError::internal("the server is shutting down");
        return error_response(protocol, status_of(&error), &error, &request_id);
    };
    // A panic anywhere in answering is a 500 for this request, never a dropped connection.
    let answer = AssertUnwindSafe(dispatch(&shared.lake, protocol, &operation, &body)).catch_unwind().await;
    let answer = answer.unwrap_or_else(|_| Err(ApiError::internal(format!("answering {operation} failed unexpectedly"))));
    match answer {
        Ok(bytes) => {
            let mut response = (StatusCode::OK, bytes).into_response();
            protocol_headers(response.headers_mut(), protocol, &request_id);
            response
        }
        Err(error) => {
            if error.kind == ErrorKind::InternalServiceError {
                tracing::error!("{operation}: {}", error.message);
            }
            error_response(protocol, status_of(&error), &error, &request_id)
        }
    }
}

/// The protocol and operation of a request, or the error to answer (in the protocol it seems
/// to speak) with its status.
fn route(method: &Method, path: &str, headers: &HeaderMap) -> Result<(Protocol, String), (Protocol, StatusCode, ApiError)> {
    let usage = "cwms serve answers CloudWatch's read API: POST / with X-Amz-Target: GraniteServiceVersion20100801.<Operation> \
                 (AWS JSON 1.0), or POST /service/GraniteServiceVersion20100801/operation/<Operation> (Smithy RPC v2 CBOR)";
    if let Some(rest) = path.strip_prefix("/service/") {
        let operation = rest.strip_prefix(SERVICE).and_then(|rest| rest.strip_prefix("/operation/"));
        return match operation {
            Some(operation) if method == Method::POST && !operation.is_empty() && !operation.contains('/') => {
                Ok((Protocol::Cbor, operation.to_owned()))
            }
            Some(_) if method != Method::POST => Err((
                Protocol::Cbor,
                StatusCode::METHOD_NOT_ALLOWED,
                ApiError::new(ErrorKind::UnknownOperation, format!("{method} {path}: {usage}")),
            )),
            _ => Err((Protocol::Cbor, StatusCode::NOT_FOUND, ApiError::new(ErrorKind::UnknownOperation, format!("{path}: {usage}")))),
        };
    }
    if path != "/" {
        return Err((Protocol::Json, StatusCode::NOT_FOUND, ApiError::new(ErrorKind::UnknownOperation, format!("{path}: {usage}"))));
    }
    if method != Method::POST {
        return Err((
            Protocol::Json,
            StatusCode::METHOD_NOT_ALLOWED,
            ApiError::new(ErrorKind::UnknownOperation, format!("{method} /: {usage}")),
        ));
    }
    let target = headers.get("x-amz-target").and_then(|v| v.to_str().ok());
    let Some(target) = target else {
        return Err((
            Protocol::Json,
            StatusCode::BAD_REQUEST,
            ApiError::new(ErrorKind::UnknownOperation, format!("no X-Amz-Target header: {usage}")),
        ));
    };
    match target.split_once('.') {
        Some((SERVICE, operation)) if !operation.is_empty() => Ok((Protocol::Json, operation.to_owned())),
        _ => Err((
            Protocol::Json,
            StatusCode::BAD_REQUEST,
            ApiError::new(ErrorKind::UnknownOperation, format!("X-Amz-Target {target:?} is not {SERVICE}.<Operation>")),
        )),
    }
}

/// The body, up to [`MAX_BODY_BYTES`].
async fn read_body(body: Body, headers: &HeaderMap) -> Result<Bytes, ApiError> {
    let too_large = || {
        ApiError::new(ErrorKind::RequestTooLarge, format!("the request body is larger than the {MAX_BODY_BYTES} bytes cwms serve accepts"))
    };
    let declared = headers.get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|length| length > MAX_BODY_BYTES as u64) {
        return Err(too_large());
    }
    axum::body::to_bytes(body, MAX_BODY_BYTES).await.map_err(|e| {
        let limit = std::error::Error::source(&e).is_some_and(|s| s.is::<http_body_util::LengthLimitError>());
        if limit { too_large() } else { ApiError::new(ErrorKind::Serialization, format!("reading the request body: {e}")) }
    })
}

async fn dispatch(lake: &Lake, protocol: Protocol, operation: &str, body: &[u8]) -> Result<Vec<u8>, ApiError> {
    match operation {
        "ListMetrics" => protocol.encode(&crate::list::list_metrics(lake, protocol.decode(body)?).await?),
        "GetMetricStatistics" => protocol.encode(&crate::statistics::get_metric_statistics(lake, protocol.decode(body)?).await?),
        "GetMetricData" => protocol.encode(&crate::data::get_metric_data(lake, protocol.decode(body)?).await?),
        other => Err(ApiError::new(
            ErrorKind::UnknownOperation,
            format!(
                "operation {other:?} is not one cwms serve answers: it serves the lake read-only, with ListMetrics, \
                 GetMetricStatistics and GetMetricData"
            ),
        )),
    }
}

fn status_of(error: &ApiError) -> StatusCode {
    StatusCode::from_u16(error.kind.status()).unwrap_or(StatusCode::BAD_REQUEST)
}

fn protocol_headers(headers: &mut HeaderMap, protocol: Protocol, request_id: &str) {
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(protocol.content_type()));
    if protocol == Protocol::Cbor {
        headers.insert("smithy-protocol", HeaderValue::from_static("rpc-v2-cbor"));
    }
    if let Ok(id) = HeaderValue::from_str(request_id) {
        headers.insert("x-amzn-requestid", id);
    }
}

#[derive(Serialize)]
struct ErrorBody<'a> {
    #[serde(rename = "__type")]
    kind: String,
    message: &'a str,
}

fn error_response(protocol: Protocol, status: StatusCode, error: &ApiError, request_id: &str) -> Response {
    let body = ErrorBody { kind: format!("{SHAPE_NAMESPACE}{}", error.kind.shape()), message: &error.message };
    let bytes = protocol.encode(&body).unwrap_or_default();
    let mut response = (status, bytes).into_response();
    protocol_headers(response.headers_mut(), protocol, request_id);
    if let Some(code) = error.kind.query_error() {
        response.headers_mut().insert("x-amzn-query-error", HeaderValue::from_static(code));
    }
    response
}
