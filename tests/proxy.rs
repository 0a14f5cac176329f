//! A fault-injecting HTTP/1.1 proxy on a real socket, to put between a client under test (the
//! `cwms` binary, an SDK client) and a real server (moto, s3s-fs).
//!
//! [`FaultProxy::start`] takes the upstream server's endpoint and a plan: a function that sees
//! every request (method, target, headers and the whole body) and says what to do with it
//! ([`Reply`]): pass it on, answer it without passing it on, pass it on and then lose or cut the
//! answer, or pass it on slowly. The plan can also talk to the upstream itself
//! ([`Upstream::send`]) and answer with a rewritten response, which is how the Firehose tests
//! refuse some entries of a call. The plan runs on the proxy's connection threads, one request
//! at a time per connection but several connections at once, so it keeps its own state behind
//! a lock.
//!
//! The proxy forwards a request as it came (headers, `Host` included, in their order), so SigV4
//! signatures still verify at the upstream (s3s-fs checks them); only `Connection` is replaced,
//! `Expect` is answered by the proxy itself, and a chunked body is forwarded with a
//! `Content-Length`. Every request and what was done with it is logged ([`FaultProxy::exchanges`]),
//! so a test can assert that the fault it planned did happen.
//!
//! What the faults look like to the client:
//! - [`Reply::Reset`]: the connection is reset (TCP RST) after the request was read, before any
//!   answer; the upstream never saw the request.
//! - [`Reply::ForwardThenReset`]: the same, but the upstream did handle the request (a write
//!   that landed and whose answer was lost).
//! - [`Reply::ResetMidBody`]: the answer's head and half its body arrive, then a reset.
//! - [`Reply::TruncateBody`]: the answer's head announces the whole body (`Content-Length`), half
//!   of it arrives, then the connection closes normally (FIN).
//!
//! For both, the head of an answer without a body announces one byte, so that the answer is
//! always incomplete.
//! - [`Reply::Delay`] and [`Reply::SlowBody`]: the whole answer, late, or its body with a pause
//!   in the middle.
//!
//! Paths of S3 requests are path-style (`/bucket/key?query`); [`Request::s3_call`] names the S3
//! operation of a request, so plans can pick their victims by operation and key.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// How long the proxy lets a client take in the middle of a request, and the upstream in the
/// middle of an answer, before it gives up on the connection.
const IO_TIMEOUT: Duration = Duration::from_secs(120);

/// How long the proxy waits, after sending part of a body, before it resets the connection: long
/// enough for the client to have read what was sent, so that the reset comes mid-body.
const BEFORE_RESET: Duration = Duration::from_millis(100);

/// A request as read off the client's socket.
#[derive(Debug, Clone)]
pub struct Request {
    pub method: String,
    /// The request target as sent: path and query, percent-encoded.
    pub target: String,
    /// Every header in order, as sent.
    pub headers: Vec<(String, String)>,
    /// The whole body (de-chunked if it came chunked).
    pub body: Vec<u8>,
}

impl Request {
    /// The first header of this name (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        header(&self.headers, name)
    }

    /// The path, percent-decoded, without the query.
    pub fn path(&self) -> String {
        percent_decode(self.target.split_once('?').map_or(self.target.as_str(), |(path, _)| path))
    }

    /// The value of a query parameter, percent-decoded; `Some("")` for a parameter without a
    /// value (`?uploads`).
    pub fn query(&self, name: &str) -> Option<String> {
        query(&self.target, name)
    }

    /// The same request with another body.
    pub fn with_body(&self, body: Vec<u8>) -> Request {
        Request { body, ..self.clone() }
    }

    /// The S3 operation of a path-style S3 request, with its bucket and key (for
    /// `ListObjectsV2`, the key is the listing's prefix).
    pub fn s3_call(&self) -> S3Call {
        let path = self.path();
        let (bucket, key) = path.trim_start_matches('/').split_once('/').unwrap_or((path.trim_start_matches('/'), ""));
        let has = |name: &str| self.query(name).is_some();
        let operation = match (self.method.as_str(), key.is_empty()) {
            ("GET", _) if has("list-type") => S3Operation::ListObjectsV2,
            ("GET", false) => S3Operation::GetObject,
            ("HEAD", false) => S3Operation::HeadObject,
            ("PUT", false) if has("partNumber") && has("uploadId") => S3Operation::UploadPart,
            ("PUT", false) => S3Operation::PutObject,
            ("POST", false) if has("uploads") => S3Operation::CreateMultipartUpload,
            ("POST", false) if has("uploadId") => S3Operation::CompleteMultipartUpload,
            ("DELETE", false) if has("uploadId") => S3Operation::AbortMultipartUpload,
            ("DELETE", false) => S3Operation::DeleteObject,
            _ => S3Operation::Other,
        };
        let key = if operation == S3Operation::ListObjectsV2 { self.query("prefix").unwrap_or_default() } else { key.to_owned() };
        S3Call { operation, bucket: bucket.to_owned(), key }
    }
}

/// The S3 operations the proxy tells apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum S3Operation {
    ListObjectsV2,
    GetObject,
    HeadObject,
    PutObject,
    CreateMultipartUpload,
    UploadPart,
    CompleteMultipartUpload,
    AbortMultipartUpload,
    DeleteObject,
    /// Anything else (bucket operations, other APIs).
    Other,
}

/// What [`Request::s3_call`] makes of a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct S3Call {
    pub operation: S3Operation,
    pub bucket: String,
    /// The object key, or the prefix of a listing; empty when there is none.
    pub key: String,
}

/// A response, from the upstream or made up by a plan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    pub status: u16,
    /// Every header but the framing ones (`Content-Length`, `Transfer-Encoding`, `Connection`),
    /// which the proxy writes itself.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    /// A response with a body of this content type.
    pub fn new(status: u16, content_type: &str, body: impl Into<Vec<u8>>) -> Response {
        Response { status, headers: vec![("content-type".to_owned(), content_type.to_owned())], body: body.into() }
    }

    /// An S3 error answer, as S3 writes it: `<Error><Code>..</Code><Message>..</Message></Error>`.
    pub fn s3_error(status: u16, code: &str) -> Response {
        let body = format!(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>{code}</Code><Message>injected by the fault proxy</Message>\
             <RequestId>fault-proxy</RequestId></Error>"
        );
        let mut response = Response::new(status, "application/xml", body);
        response.headers.push(("x-amz-request-id".to_owned(), "fault-proxy".to_owned()));
        response
    }

    /// The first header of this name (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        header(&self.headers, name)
    }
}

/// What the proxy does with one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    /// Pass it to the upstream and its answer back.
    Forward,
    /// Answer this; the upstream never sees the request.
    Respond(Response),
    /// Pass it to the upstream, then answer this instead of the upstream's answer (a write
    /// that landed, reported as failed).
    ForwardThenRespond(Response),
    /// Wait this long, then forward.
    Delay(Duration),
    /// Forward, then send the answer's head and half its body, pause this long, send the rest.
    SlowBody(Duration),
    /// Reset the connection without answering; the upstream never sees the request.
    Reset,
    /// Forward, then reset the connection without answering.
    ForwardThenReset,
    /// Forward, send the answer's head and half its body, then reset the connection.
    ResetMidBody,
    /// Forward, send the answer's head (with the whole body's `Content-Length`) and half the
    /// body, then close the connection.
    TruncateBody,
}

impl Reply {
    /// A short name for logs and assertion messages.
    pub fn name(&self) -> String {
        match self {
            Reply::Forward => "forward".to_owned(),
            Reply::Respond(r) => format!("respond {}", r.status),
            Reply::ForwardThenRespond(r) => format!("forward then respond {}", r.status),
            Reply::Delay(d) => format!("delay {d:?}"),
            Reply::SlowBody(d) => format!("slow body {d:?}"),
            Reply::Reset => "reset".to_owned(),
            Reply::ForwardThenReset => "forward then reset".to_owned(),
            Reply::ResetMidBody => "reset mid-body".to_owned(),
            Reply::TruncateBody => "truncate body".to_owned(),
        }
    }
}

/// One request the proxy handled, and what it did.
#[derive(Debug, Clone)]
pub struct Exchange {
    pub method: String,
    pub target: String,
    /// [`Reply::name`] of what the plan said.
    pub reply: String,
    /// The status the upstream answered, when the request was forwarded.
    pub upstream_status: Option<u16>,
}

impl Exchange {
    /// The value of a query parameter of the request, as [`Request::query`].
    pub fn query(&self, name: &str) -> Option<String> {
        query(&self.target, name)
    }
}

/// The server behind the proxy.
#[derive(Debug, Clone)]
pub struct Upstream {
    /// `host:port`.
    address: String,
}

impl Upstream {
    /// Sends `request` to the upstream on a connection of its own and reads the whole answer.
    ///
    /// # Panics
    ///
    /// If the upstream cannot be reached or answers something that is not HTTP/1.1: the
    /// upstream is a test server, and a test cannot go on without it.
    pub fn send(&self, request: &Request) -> Response {
        let connection = TcpStream::connect(&self.address).unwrap_or_else(|e| panic!("the upstream {} is unreachable: {e}", self.address));
        connection.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
        let mut head = format!("{} {} HTTP/1.1\r\n", request.method, request.target);
        for (name, value) in &request.headers {
            if !["content-length", "transfer-encoding", "connection", "expect"].iter().any(|h| name.eq_ignore_ascii_case(h)) {
                head.push_str(&format!("{name}: {value}\r\n"));
            }
        }
        head.push_str(&format!("content-length: {}\r\nconnection: close\r\n\r\n", request.body.len()));
        let mut writer = connection.try_clone().unwrap();
        writer.write_all(head.as_bytes()).and_then(|()| writer.write_all(&request.body)).expect("the upstream takes the request");
        let mut reader = BufReader::new(connection);
        loop {
            let (status, headers) = read_head(&mut reader).expect("the upstream answers with an HTTP/1.1 head");
            // An interim answer (100 Continue) is followed by the real one.
            if (100..200).contains(&status) {
                continue;
            }
            let no_body = request.method == "HEAD" || status == 204 || status == 304;
            let body =
                if no_body { Vec::new() } else { read_body(&mut reader, &headers, true).expect("the upstream sends its whole body") };
            let mut headers: Vec<(String, String)> = headers
                .into_iter()
                .filter(|(n, _)| !["transfer-encoding", "connection"].iter().any(|h| n.eq_ignore_ascii_case(h)))
                .collect();
            if !no_body {
                headers.retain(|(n, _)| !n.eq_ignore_ascii_case("content-length"));
            }
            return Response { status, headers, body };
        }
    }
}

type Plan = dyn Fn(&Request, &Upstream) -> Reply + Send + Sync;

/// A proxy on a free 127.0.0.1 port in front of one upstream; stops accepting when dropped.
pub struct FaultProxy {
    /// `http://127.0.0.1:PORT`.
    pub endpoint: String,
    log: Arc<Mutex<Vec<Exchange>>>,
    stop: Arc<AtomicBool>,
}

impl FaultProxy {
    /// Starts a proxy in front of `upstream` (`http://host:port`) that does what `plan` says
    /// with each request.
    pub fn start(upstream: &str, plan: impl Fn(&Request, &Upstream) -> Reply + Send + Sync + 'static) -> FaultProxy {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let endpoint = format!("http://{}", listener.local_addr().unwrap());
        let upstream = Upstream { address: upstream.trim_start_matches("http://").trim_end_matches('/').to_owned() };
        let plan: Arc<Plan> = Arc::new(plan);
        let log = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (thread_log, thread_stop) = (log.clone(), stop.clone());
        std::thread::spawn(move || {
            for connection in listener.incoming() {
                if thread_stop.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(connection) = connection else { continue };
                let (plan, upstream, log) = (plan.clone(), upstream.clone(), thread_log.clone());
                std::thread::spawn(move || serve(connection, &upstream, &*plan, &log));
            }
        });
        FaultProxy { endpoint, log, stop }
    }

    /// Every request handled so far, in the order their answers were ready.
    pub fn exchanges(&self) -> Vec<Exchange> {
        self.log.lock().unwrap().clone()
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wakes the accept loop so it sees the flag.
        let _ = TcpStream::connect(self.endpoint.trim_start_matches("http://"));
    }
}

/// Serves one keep-alive connection until the client closes it or a fault ends it.
fn serve(connection: TcpStream, upstream: &Upstream, plan: &Plan, log: &Mutex<Vec<Exchange>>) {
    connection.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
    let mut writer = connection.try_clone().unwrap();
    let mut reader = BufReader::new(connection);
    // A reset connection must not be shut down: that would send a FIN before the RST.
    let mut graceful = true;
    while let Some(request) = read_request(&mut reader, &mut writer) {
        let reply = plan(&request, upstream);
        let forwarded = match &reply {
            Reply::Respond(_) | Reply::Reset => None,
            Reply::Delay(pause) => {
                std::thread::sleep(*pause);
                Some(upstream.send(&request))
            }
            _ => Some(upstream.send(&request)),
        };
        log.lock().unwrap().push(Exchange {
            method: request.method.clone(),
            target: request.target.clone(),
            reply: reply.name(),
            upstream_status: forwarded.as_ref().map(|r| r.status),
        });
        let head_only = request.method == "HEAD";
        let answered = match (reply, forwarded) {
            (Reply::Respond(response) | Reply::ForwardThenRespond(response), _) => write_response(&mut writer, &response, head_only),
            (Reply::Forward | Reply::Delay(_), Some(response)) => write_response(&mut writer, &response, head_only),
            (Reply::SlowBody(pause), Some(response)) => {
                let half = response.body.len() / 2;
                write_head(&mut writer, &response, response.body.len(), head_only)
                    .and_then(|()| writer.write_all(&response.body[..half]))
                    .and_then(|()| writer.flush())
                    .and_then(|()| {
                        std::thread::sleep(pause);
                        writer.write_all(&response.body[half..])
                    })
            }
            (Reply::Reset | Reply::ForwardThenReset, _) => {
                reset(&writer);
                graceful = false;
                break;
            }
            (Reply::ResetMidBody, Some(response)) => {
                let _ = write_part(&mut writer, &response, head_only);
                std::thread::sleep(BEFORE_RESET);
                reset(&writer);
                graceful = false;
                break;
            }
            (Reply::TruncateBody, Some(response)) => {
                let _ = write_part(&mut writer, &response, head_only);
                break;
            }
            (reply, None) => unreachable!("{} forwards", reply.name()),
        };
        if answered.is_err() {
            break;
        }
    }
    if graceful {
        let _ = writer.shutdown(Shutdown::Both);
    }
}

/// Makes the connection's close a reset (RST) rather than an orderly FIN, and shuts it.
fn reset(connection: &TcpStream) {
    // SO_LINGER with a zero timeout: closing the socket discards what is unsent and sends RST.
    let _ = socket2::SockRef::from(connection).set_linger(Some(Duration::ZERO));
    // The reader half holds a duplicate descriptor: the socket closes (and resets) when the
    // last descriptor does, which is when `serve` returns.
}

fn write_head(writer: &mut TcpStream, response: &Response, content_length: usize, head_only: bool) -> std::io::Result<()> {
    let mut head = format!("HTTP/1.1 {} {}\r\n", response.status, reason(response.status));
    for (name, value) in &response.headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    // The answer to a HEAD keeps the upstream's Content-Length (it has no body to count).
    if !(head_only && response.header("content-length").is_some()) {
        head.push_str(&format!("content-length: {content_length}\r\n"));
    }
    head.push_str("\r\n");
    writer.write_all(head.as_bytes())
}

/// Writes a head announcing the whole body (at least one byte) and the first half of the body.
fn write_part(writer: &mut TcpStream, response: &Response, head_only: bool) -> std::io::Result<()> {
    write_head(writer, response, response.body.len().max(1), head_only)?;
    writer.write_all(&response.body[..response.body.len() / 2])?;
    writer.flush()
}

fn write_response(writer: &mut TcpStream, response: &Response, head_only: bool) -> std::io::Result<()> {
    write_head(writer, response, response.body.len(), head_only)?;
    if !head_only {
        writer.write_all(&response.body)?;
    }
    writer.flush()
}

/// Reads one request; `None` when the client closed the connection (or sent something that is
/// not HTTP/1.1).
fn read_request(reader: &mut BufReader<TcpStream>, writer: &mut TcpStream) -> Option<Request> {
    let mut line = String::new();
    if reader.read_line(&mut line).ok()? == 0 {
        return None;
    }
    let mut parts = line.split_whitespace();
    let (method, target) = (parts.next()?.to_owned(), parts.next()?.to_owned());
    let headers = read_headers(reader).ok()?;
    if header(&headers, "expect").is_some_and(|v| v.eq_ignore_ascii_case("100-continue")) {
        writer.write_all(b"HTTP/1.1 100 Continue\r\n\r\n").ok()?;
    }
    let body = read_body(reader, &headers, false).ok()?;
    Some(Request { method, target, headers, body })
}

/// Reads a response's status line and headers.
fn read_head(reader: &mut BufReader<TcpStream>) -> std::io::Result<(u16, Vec<(String, String)>)> {
    let mut line = String::new();
    reader.read_line(&mut line)?;
    let status = line.split_whitespace().nth(1).and_then(|s| s.parse().ok()).ok_or_else(|| invalid(&format!("status line {line:?}")))?;
    Ok((status, read_headers(reader)?))
}

fn read_headers(reader: &mut BufReader<TcpStream>) -> std::io::Result<Vec<(String, String)>> {
    let mut headers = Vec::new();
    let mut line = String::new();
    loop {
        line.clear();
        if reader.read_line(&mut line)? == 0 {
            return Err(invalid("the connection closed in the headers"));
        }
        let text = line.trim_end();
        if text.is_empty() {
            return Ok(headers);
        }
        let (name, value) = text.split_once(':').ok_or_else(|| invalid(&format!("header line {text:?}")))?;
        headers.push((name.trim().to_owned(), value.trim().to_owned()));
    }
}

/// Reads a body framed by `Content-Length` or chunked encoding; without either, a response's
/// body runs to the end of the connection and a request has none.
fn read_body(reader: &mut BufReader<TcpStream>, headers: &[(String, String)], to_end: bool) -> std::io::Result<Vec<u8>> {
    if header(headers, "transfer-encoding").is_some_and(|v| v.eq_ignore_ascii_case("chunked")) {
        let mut body = Vec::new();
        let mut line = String::new();
        loop {
            line.clear();
            reader.read_line(&mut line)?;
            let size = usize::from_str_radix(line.trim().split(';').next().unwrap_or(""), 16)
                .map_err(|_| invalid(&format!("chunk size {line:?}")))?;
            if size == 0 {
                // Trailers, up to the empty line.
                read_headers(reader)?;
                return Ok(body);
            }
            let start = body.len();
            body.resize(start + size, 0);
            reader.read_exact(&mut body[start..])?;
            line.clear();
            reader.read_line(&mut line)?;
        }
    }
    match header(headers, "content-length") {
        Some(length) => {
            let length: usize = length.parse().map_err(|_| invalid(&format!("content-length {length:?}")))?;
            let mut body = vec![0; length];
            reader.read_exact(&mut body)?;
            Ok(body)
        }
        None if to_end => {
            let mut body = Vec::new();
            reader.read_to_end(&mut body)?;
            Ok(body)
        }
        None => Ok(Vec::new()),
    }
}

fn query(target: &str, name: &str) -> Option<String> {
    let (_, query) = target.split_once('?')?;
    query.split('&').find_map(|pair| {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        (percent_decode(key) == name).then(|| percent_decode(value))
    })
}

fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
}

fn invalid(what: &str) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::InvalidData, format!("not HTTP/1.1: {what}"))
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        204 => "No Content",
        206 => "Partial Content",
        304 => "Not Modified",
        400 => "Bad Request",
        403 => "Forbidden",
        404 => "Not Found",
        409 => "Conflict",
        412 => "Precondition Failed",
        500 => "Internal Server Error",
        503 => "Service Unavailable",
        _ => "Proxied",
    }
}

/// Decodes `%XX` escapes (and nothing else: a `+` stays a `+`, as in S3 paths).
fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes.get(i + 1..i + 3).and_then(|h| std::str::from_utf8(h).ok()).and_then(|h| u8::from_str_radix(h, 16).ok());
        match (bytes[i], hex) {
            (b'%', Some(byte)) => {
                out.push(byte);
                i += 3;
            }
            (byte, _) => {
                out.push(byte);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}
