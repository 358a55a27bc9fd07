//! The HTTP/1.1 server: an accept loop of our own instead of `axum::serve`,
//! for what a streaming edge needs per connection: admission (a bound on
//! connections that are not streaming, see [`crate::admission`]), a write
//! timeout (a client that stops reading is cut instead of pinning buffers),
//! a header-read timeout (slow or idle handshakes), a body deadline (slow
//! bodies, see [`crate::deadline`]), upgrades for WebSocket, and a drain
//! that lets in-flight responses finish. Event streams and WebSockets
//! opened on a fresh connection skip hyper (see [`crate::direct`]).

use std::error::Error as _;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::Request;
use bytes::Bytes;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::net::{TcpListener, TcpStream};
use tokio_io_timeout::TimeoutStream;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tower::ServiceExt;

use crate::HttpError;
use crate::admission::{Admission, Slot};
use crate::deadline::with_body_deadline;
use crate::direct::{self, First, Prefixed};

/// Per-connection deadlines.
#[derive(Clone, Copy, Debug)]
pub struct ServerSettings {
    /// Longest wait for a request's headers, on a new or idle keep-alive
    /// connection (so also how long a keep-alive connection may idle).
    pub handshake_timeout: Duration,
    /// Longest wait for a request's body to arrive in full, from the end of
    /// its headers; then `408 request-timeout` and the connection closes.
    pub body_timeout: Duration,
    /// A write that cannot progress this long closes the connection.
    pub write_timeout: Duration,
}

impl ServerSettings {
    /// The defaults: 10 s for headers and writes, 15 s for a body (64 KiB
    /// from a phone on a poor link).
    pub const DEFAULT: ServerSettings = ServerSettings {
        handshake_timeout: Duration::from_secs(10),
        body_timeout: Duration::from_secs(15),
        write_timeout: Duration::from_secs(10),
    };
}

/// Called when a connection is closed because its writes stalled.
pub type OnStall = Arc<dyn Fn() + Send + Sync>;

/// What one port serves, and how.
#[derive(Clone)]
pub struct Port {
    pub router: Router,
    pub settings: ServerSettings,
    /// Which connections it accepts.
    pub admission: Admission,
    pub on_stall: OnStall,
    /// A connection whose first request is for an
    /// [`EVENT_STREAM_ROUTE`](direct::EVENT_STREAM_ROUTE), or a WebSocket
    /// handshake on [`WEBSOCKET_ROUTE`](direct::WEBSOCKET_ROUTE), is served
    /// by [`direct`].
    pub event_streams: bool,
}

/// Accepts connections until `stop`, then lets each one finish its current
/// response; every connection task is tracked by `tracker`. A connection
/// the port's [`Admission`] refuses is answered `503 too-many-connections`
/// if its socket takes the answer at once, and closed.
pub async fn serve(
    listener: TcpListener,
    port: Port,
    stop: CancellationToken,
    tracker: TaskTracker,
) {
    let refusal = refusal();
    loop {
        let accepted = tokio::select! {
            _ = stop.cancelled() => break,
            accepted = listener.accept() => accepted,
        };
        let (tcp, peer) = match accepted {
            Ok(accepted) => accepted,
            Err(e) => {
                // Out of file descriptors, usually: back off instead of spinning.
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let slot = match port.admission.admit(peer.ip()) {
            Ok(slot) => slot,
            Err(_) => {
                let _ = tcp.try_write(&refusal);
                continue;
            }
        };
        tracker.spawn(connection(tcp, slot, port.clone(), stop.clone()));
    }
}

/// Serves one admitted connection until it closes; `slot` is given back
/// then, or earlier if it becomes a stream.
async fn connection(tcp: TcpStream, slot: Slot, port: Port, stop: CancellationToken) {
    let on_stall = port.on_stall.clone();
    // Boxed: a task is as large as the largest future it may await, and
    // an idle stream's task should keep room only for what the stream
    // awaits, not for reading a request, the router's call or hyper.
    let result = match Box::pin(open(tcp, slot, port, stop)).await {
        Ok(Some(answered)) => answered.serve().await,
        Ok(None) => Ok(()),
        Err(e) => Err(e),
    };
    if let Err(e) = result {
        if e.kind() == std::io::ErrorKind::TimedOut {
            on_stall();
        }
        tracing::debug!(error = %e, "connection ended with an error");
    }
}

/// Reads the first request and answers it directly, or serves the whole
/// connection with hyper; what is left to serve after a direct answer.
async fn open(
    tcp: TcpStream,
    slot: Slot,
    port: Port,
    stop: CancellationToken,
) -> std::io::Result<Option<direct::Answered<Pin<Box<TimeoutStream<TcpStream>>>>>> {
    let _ = tcp.set_nodelay(true);
    let settings = port.settings;
    let mut io = TimeoutStream::new(tcp);
    io.set_write_timeout(Some(settings.write_timeout));
    let mut io = Box::pin(io);
    let first = match port.event_streams {
        true => {
            let read = direct::read_first(&mut io);
            tokio::select! {
                read = tokio::time::timeout(settings.handshake_timeout, read) => match read {
                    Ok(Ok(first)) => first,
                    // Too slow, or gone: as hyper would, just close.
                    Err(_) | Ok(Err(_)) => return Ok(None),
                },
                _ = stop.cancelled() => return Ok(None),
            }
        }
        false => First::Other(Bytes::new()),
    };
    match first {
        First::Direct(mut request) => {
            request.extensions_mut().insert(slot);
            direct::answer(io, port.router, request).await.map(Some)
        }
        First::Other(prefix) => {
            let io = Prefixed::new(prefix, io);
            serve_hyper(io, port.router, slot, settings, stop).await?;
            Ok(None)
        }
    }
}

/// The answer to a refused connection, written before it is closed.
fn refusal() -> Bytes {
    let body =
        serde_json::to_vec(&HttpError::TooManyConnections.problem()).expect("problems serialize");
    let mut response = format!(
        "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/problem+json\r\n\
         retry-after: 1\r\nconnection: close\r\ncontent-length: {}\r\n\r\n",
        body.len()
    )
    .into_bytes();
    response.extend_from_slice(&body);
    Bytes::from(response)
}

/// Serves the connection with hyper until it closes, or until `stop` and
/// its response in flight is done.
///
/// Each request carries the connection's `slot`, and its body has
/// `settings.body_timeout` to arrive.
async fn serve_hyper(
    io: Prefixed<Pin<Box<TimeoutStream<TcpStream>>>>,
    router: Router,
    slot: Slot,
    settings: ServerSettings,
    stop: CancellationToken,
) -> std::io::Result<()> {
    let service = tower::service_fn(move |mut request: Request<Incoming>| {
        request.extensions_mut().insert(slot.clone());
        router
            .clone()
            .oneshot(with_body_deadline(request, settings.body_timeout))
    });
    let conn = http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(settings.handshake_timeout)
        .serve_connection(TokioIo::new(io), TowerToHyperService::new(service))
        .with_upgrades();
    tokio::pin!(conn);
    let result = tokio::select! {
        result = conn.as_mut() => result,
        _ = stop.cancelled() => {
            conn.as_mut().graceful_shutdown();
            conn.await
        }
    };
    result.map_err(|e| {
        let kind = match timed_out(&e) {
            true => std::io::ErrorKind::TimedOut,
            false => std::io::ErrorKind::Other,
        };
        std::io::Error::new(kind, e)
    })
}

fn timed_out(e: &hyper::Error) -> bool {
    let mut source = e.source();
    while let Some(s) = source {
        if let Some(io) = s.downcast_ref::<std::io::Error>() {
            return io.kind() == std::io::ErrorKind::TimedOut;
        }
        source = s.source();
    }
    false
}
