//! Event streams and WebSockets served without hyper.
//!
//! hyper keeps two buffers for the whole life of an HTTP/1 connection, one
//! to read requests and one for response heads (8 KiB each, of which the
//! first page of each is resident); for an idle SSE client they are most of
//! what it costs. So the first request of each connection is read here,
//! with a buffer freed once it is parsed. An event-stream request, or a
//! WebSocket handshake on [`WEBSOCKET_ROUTE`], is answered by the router
//! like any other request. An event stream's response is written straight
//! to the socket, after which the connection closes; a WebSocket's `101` is
//! written the same way, and the socket handed to what the handler left in
//! its [`DirectUpgrade`]. Anything else, and anything unusual (a body, an
//! upgrade elsewhere, HTTP/1.0 for a WebSocket, a head larger than
//! [`MAX_HEAD`]), goes to hyper with the bytes already read.

use std::future::Future;
use std::io::{self, Write as _};
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::SystemTime;

use axum::Router;
use axum::body::{Body, HttpBody as _};
use axum::http::{HeaderName, HeaderValue, Method, Request, StatusCode, Version, header, response};
use bytes::{Buf, Bytes, BytesMut};
use http_body_util::BodyExt;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tower::ServiceExt;

use crate::upgrade::{DirectUpgrade, Io};

/// The largest request head read here; a larger one goes to hyper.
const MAX_HEAD: usize = 16 * 1024;
/// The most header fields read here; more go to hyper.
const MAX_HEADERS: usize = 64;

/// The route whose responses are written here: SSE event streams. The edge
/// registers its stream handler under this same constant, so renaming the
/// route cannot silently take streams off this path.
pub const EVENT_STREAM_ROUTE: &str = "/v1/restaurants/{rid}/stream";

/// The WebSocket route: a handshake on it is read here. The edge registers
/// its WebSocket handler under this same constant.
pub const WEBSOCKET_ROUTE: &str = "/v1/ws";

/// Whether `path` is an [`EVENT_STREAM_ROUTE`] (a `{…}` is one non-empty
/// segment).
pub fn is_event_stream(path: &str) -> bool {
    let mut route = EVENT_STREAM_ROUTE.split('/');
    let mut path = path.split('/');
    loop {
        match (route.next(), path.next()) {
            (None, None) => return true,
            (Some(r), Some(p)) if r.starts_with('{') => {
                if p.is_empty() {
                    return false;
                }
            }
            (Some(r), Some(p)) if r == p => {}
            _ => return false,
        }
    }
}

/// What the first request of a connection turned out to be.
pub enum First {
    /// An event-stream request or a WebSocket handshake, to serve with
    /// [`respond`].
    Direct(Box<Request<Body>>),
    /// Anything else: the bytes read so far, for hyper.
    Other(Bytes),
}

/// Reads the first request head of a connection; stops reading as soon as
/// it is clearly not one to serve here.
pub async fn read_first<IO: AsyncRead + Unpin>(io: &mut IO) -> io::Result<First> {
    let mut buf = BytesMut::with_capacity(1024);
    loop {
        if io.read_buf(&mut buf).await? == 0 {
            return Ok(First::Other(buf.freeze()));
        }
        match parse(&buf) {
            Parsed::Direct(request) => return Ok(First::Direct(request)),
            Parsed::Partial if buf.len() < MAX_HEAD => {}
            Parsed::Partial | Parsed::Other => return Ok(First::Other(buf.freeze())),
        }
    }
}

enum Parsed {
    Direct(Box<Request<Body>>),
    Partial,
    Other,
}

fn parse(buf: &[u8]) -> Parsed {
    let mut fields = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut head = httparse::Request::new(&mut fields);
    let Ok(status) = head.parse(buf) else {
        return Parsed::Other;
    };
    if let Some(target) = head.path {
        let path = path_of(target);
        if head.method != Some("GET") || !(is_event_stream(path) || path == WEBSOCKET_ROUTE) {
            return Parsed::Other;
        }
    }
    match status {
        httparse::Status::Partial => Parsed::Partial,
        // Bytes after the head (a body, a pipelined request): hyper's job.
        httparse::Status::Complete(len) if len != buf.len() => Parsed::Other,
        httparse::Status::Complete(_) => {
            request(&head).map_or(Parsed::Other, |r| Parsed::Direct(Box::new(r)))
        }
    }
}

/// A request target's path, without its query.
fn path_of(target: &str) -> &str {
    target.split_once('?').map_or(target, |(path, _)| path)
}

/// The parsed head as a request for the router, or `None` when it carries
/// anything this module leaves to hyper. A WebSocket handshake (an upgrade
/// on [`WEBSOCKET_ROUTE`], HTTP/1.1) gets a [`DirectUpgrade`].
fn request(head: &httparse::Request<'_, '_>) -> Option<Request<Body>> {
    let target = head.path?;
    let websocket = path_of(target) == WEBSOCKET_ROUTE;
    let version = match head.version? {
        0 if !websocket => Version::HTTP_10,
        0 => return None,
        _ => Version::HTTP_11,
    };
    let mut request = Request::builder()
        .method(Method::GET)
        .uri(target)
        .version(version)
        .body(Body::empty())
        .ok()?;
    let headers = request.headers_mut();
    let mut upgrade = false;
    for field in head.headers.iter() {
        let name = HeaderName::from_bytes(field.name.as_bytes()).ok()?;
        let body = name == header::CONTENT_LENGTH
            || name == header::TRANSFER_ENCODING
            || name == header::EXPECT;
        upgrade |= name == header::UPGRADE;
        if body || (upgrade && !websocket) {
            return None;
        }
        headers.append(name, HeaderValue::from_bytes(field.value).ok()?);
    }
    if websocket {
        if !upgrade {
            return None;
        }
        request.extensions_mut().insert(DirectUpgrade::default());
    }
    Some(request)
}

/// What follows a response's head on the direct path.
pub enum Answered<IO> {
    /// The body, to write as it comes (see [`Answered::serve`]).
    Body { io: IO, body: Body, chunked: bool },
    /// A WebSocket: its session, running on the socket.
    Upgraded(Pin<Box<dyn Future<Output = ()> + Send>>),
}

/// Answers `request` with `router` and writes the response's head to `io`;
/// the rest is [`Answered::serve`]'s. A body is chunked when its length is
/// unknown (HTTP/1.1), delimited by the close for HTTP/1.0. A WebSocket
/// handshake the handler accepted is answered `101`, and the socket runs
/// what the handler left for it.
pub async fn answer<IO: Io>(
    mut io: IO,
    router: Router,
    request: Box<Request<Body>>,
) -> io::Result<Answered<IO>> {
    let http10 = request.version() == Version::HTTP_10;
    let upgrade = request.extensions().get::<DirectUpgrade>().cloned();
    let response = match router.oneshot(*request).await {
        Ok(response) => response,
        Err(never) => match never {},
    };
    let on_socket = upgrade
        .filter(|_| response.status() == StatusCode::SWITCHING_PROTOCOLS)
        .and_then(|upgrade| upgrade.take());
    let (parts, body) = response.into_parts();
    if let Some(on_socket) = on_socket {
        io.write_all(&head(&parts, None, false, false)).await?;
        io.flush().await?;
        return Ok(Answered::Upgraded(on_socket(Box::new(io))));
    }
    let length = body.size_hint().exact();
    let chunked = length.is_none() && !http10;
    io.write_all(&head(&parts, length, chunked, true)).await?;
    io.flush().await?;
    Ok(Answered::Body { io, body, chunked })
}

impl<IO: Io> Answered<IO> {
    /// Writes the body, then closes the connection (or as soon as the
    /// client closes it); or runs the WebSocket's session.
    pub async fn serve(self) -> io::Result<()> {
        match self {
            Answered::Upgraded(session) => {
                session.await;
                Ok(())
            }
            Answered::Body { io, body, chunked } => write_body(io, body, chunked).await,
        }
    }
}

async fn write_body<IO: Io>(mut io: IO, mut body: Body, chunked: bool) -> io::Result<()> {
    loop {
        let frame = tokio::select! {
            frame = body.frame() => frame,
            // Without this a client gone away would be noticed only at the
            // next write, a heartbeat away.
            () = closed(&mut io) => return Ok(()),
        };
        let frame = match frame {
            Some(Ok(frame)) => frame,
            None => break,
            // A body that fails ends the response without the last chunk,
            // so the client sees it cut short.
            Some(Err(_)) => return Ok(()),
        };
        let Ok(data) = frame.into_data() else {
            continue;
        };
        if data.is_empty() {
            continue;
        }
        if chunked {
            let mut chunk = Vec::with_capacity(data.len() + 12);
            let _ = write!(chunk, "{:x}\r\n", data.len());
            chunk.extend_from_slice(&data);
            chunk.extend_from_slice(b"\r\n");
            io.write_all(&chunk).await?;
        } else {
            io.write_all(&data).await?;
        }
        io.flush().await?;
    }
    if chunked {
        io.write_all(b"0\r\n\r\n").await?;
    }
    io.shutdown().await
}

/// Completes when the client has closed the connection (or it failed);
/// whatever else it sends is not read as requests and is dropped.
async fn closed<IO: AsyncRead + Unpin>(io: &mut IO) {
    let mut sink = [0u8; 64];
    while let Ok(1..) = io.read(&mut sink).await {}
}

/// The status line and header fields of a response, as hyper writes them;
/// with `close`, ending with `connection: close` (in place of the
/// response's own `connection`).
fn head(parts: &response::Parts, length: Option<u64>, chunked: bool, close: bool) -> Vec<u8> {
    let status = parts.status;
    let mut head = Vec::with_capacity(256);
    let _ = write!(
        head,
        "HTTP/1.1 {} {}\r\n",
        status.as_str(),
        status.canonical_reason().unwrap_or("")
    );
    let headers = &parts.headers;
    // A `101` has no body, so no framing fields (hyper leaves them out too).
    let framing =
        |name: &HeaderName| *name == header::CONTENT_LENGTH || *name == header::TRANSFER_ENCODING;
    let kept = |name: &HeaderName| {
        !(close && *name == header::CONNECTION || status.is_informational() && framing(name))
    };
    for (name, value) in headers.iter().filter(|(n, _)| kept(n)) {
        head.extend_from_slice(name.as_str().as_bytes());
        head.extend_from_slice(b": ");
        head.extend_from_slice(value.as_bytes());
        head.extend_from_slice(b"\r\n");
    }
    if !headers.contains_key(header::DATE) {
        let _ = write!(
            head,
            "date: {}\r\n",
            httpdate::fmt_http_date(SystemTime::now())
        );
    }
    match length {
        Some(n) if !headers.contains_key(header::CONTENT_LENGTH) => {
            let _ = write!(head, "content-length: {n}\r\n");
        }
        _ => {}
    }
    if chunked {
        head.extend_from_slice(b"transfer-encoding: chunked\r\n");
    }
    if close {
        head.extend_from_slice(b"connection: close\r\n");
    }
    head.extend_from_slice(b"\r\n");
    head
}

/// `io` with `prefix` (bytes already read from it) in front: how a
/// connection that is not served here is handed to hyper.
pub struct Prefixed<IO> {
    prefix: Bytes,
    io: IO,
}

impl<IO> Prefixed<IO> {
    pub fn new(prefix: Bytes, io: IO) -> Prefixed<IO> {
        Prefixed { prefix, io }
    }
}

impl<IO: AsyncRead + Unpin> AsyncRead for Prefixed<IO> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if self.prefix.is_empty() {
            return Pin::new(&mut self.io).poll_read(cx, buf);
        }
        let n = self.prefix.len().min(buf.remaining());
        buf.put_slice(&self.prefix[..n]);
        self.prefix.advance(n);
        if self.prefix.is_empty() {
            // Let go of the buffer the prefix was read into.
            self.prefix = Bytes::new();
        }
        Poll::Ready(Ok(()))
    }
}

impl<IO: AsyncWrite + Unpin> AsyncWrite for Prefixed<IO> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parsed(raw: &str) -> Parsed {
        parse(raw.as_bytes())
    }

    #[test]
    fn only_the_event_stream_route_is_an_event_stream() {
        assert!(is_event_stream("/v1/restaurants/r1/stream"));
        for other in [
            "/v1/restaurants//stream",
            "/v1/restaurants/r1/events",
            "/v1/restaurants/r1/stream/x",
            "/v1/restaurants/r1",
            "/v1/ws",
            "/r/stream",
        ] {
            assert!(!is_event_stream(other), "{other}");
        }
    }

    #[test]
    fn a_complete_stream_request_is_served_here_with_its_headers() {
        let raw =
            "GET /v1/restaurants/r1/stream?since=4 HTTP/1.1\r\nHost: x\r\nLast-Event-ID: 7\r\n\r\n";
        let Parsed::Direct(request) = parsed(raw) else {
            panic!("not served here");
        };
        assert_eq!(request.uri(), "/v1/restaurants/r1/stream?since=4");
        assert_eq!(request.version(), Version::HTTP_11);
        assert_eq!(request.headers()["last-event-id"], "7");
    }

    #[test]
    fn other_requests_are_left_to_hyper_as_soon_as_the_request_line_tells() {
        assert!(matches!(
            parsed("POST /v1/restaurants/r1/orders HTTP/1.1\r\n"),
            Parsed::Other
        ));
        assert!(matches!(
            parsed("GET /v1/wss HTTP/1.1\r\nHo"),
            Parsed::Other
        ));
        assert!(matches!(
            parsed("POST /v1/restaurants/r1/stream HTTP/1.1\r\n"),
            Parsed::Other
        ));
        assert!(matches!(parsed("not http\r\n\r\n"), Parsed::Other));
    }

    #[test]
    fn a_stream_request_with_a_body_an_upgrade_or_more_bytes_is_left_to_hyper() {
        let base = "GET /v1/restaurants/r1/stream HTTP/1.1\r\nHost: x\r\n";
        for extra in [
            "Content-Length: 3\r\n\r\nabc",
            "Upgrade: websocket\r\n\r\n",
            "\r\nGET / HTTP/1.1\r\n",
        ] {
            assert!(
                matches!(parsed(&format!("{base}{extra}")), Parsed::Other),
                "{extra}"
            );
        }
    }

    #[test]
    fn a_websocket_handshake_is_served_here_with_a_place_for_the_socket() {
        let raw = "GET /v1/ws HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\n\
                   Upgrade: websocket\r\nSec-WebSocket-Version: 13\r\n\
                   Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n";
        let Parsed::Direct(request) = parsed(raw) else {
            panic!("not served here");
        };
        assert_eq!(request.headers()["upgrade"], "websocket");
        assert!(request.extensions().get::<DirectUpgrade>().is_some());
    }

    #[test]
    fn a_websocket_route_request_without_an_upgrade_or_in_http_1_0_is_left_to_hyper() {
        for raw in [
            "GET /v1/ws HTTP/1.1\r\nHost: x\r\n\r\n",
            "GET /v1/ws HTTP/1.0\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n",
            "GET /v1/ws HTTP/1.1\r\nUpgrade: websocket\r\nContent-Length: 1\r\n\r\nx",
        ] {
            assert!(matches!(parsed(raw), Parsed::Other), "{raw}");
        }
    }

    #[test]
    fn a_head_still_arriving_is_partial() {
        assert!(matches!(
            parsed("GET /v1/restaurants/r1/stream HTTP/1.1\r\nHost: x\r\n"),
            Parsed::Partial
        ));
        assert!(matches!(
            parsed("GET /v1/restaurants/r1/str"),
            Parsed::Partial
        ));
    }

    #[tokio::test]
    async fn hyper_reads_the_prefix_then_the_rest() {
        let mut io = Prefixed::new(Bytes::from_static(b"hello "), &b"world"[..]);
        let mut all = String::new();
        io.read_to_string(&mut all).await.unwrap();
        assert_eq!(all, "hello world");
    }
}
