//! The HTTP/1.1 server: an accept loop of our own instead of `axum::serve`,
//! for what a streaming edge needs per connection: a write timeout (a client
//! that stops reading is cut instead of pinning buffers), a header-read
//! timeout (slow or idle handshakes), upgrades for WebSocket, and a drain
//! that lets in-flight responses finish. Event streams opened on a fresh
//! connection skip hyper (see [`crate::direct`]).

use std::error::Error as _;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use bytes::Bytes;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::net::{TcpListener, TcpStream};
use tokio_io_timeout::TimeoutStream;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::direct::{self, First, Prefixed};

/// Per-connection limits.
#[derive(Clone, Copy, Debug)]
pub struct ServerSettings {
    /// Longest wait for a request's headers, on a new or idle keep-alive
    /// connection.
    pub handshake_timeout: Duration,
    /// A write that cannot progress this long closes the connection.
    pub write_timeout: Duration,
}

impl ServerSettings {
    /// The defaults: 10 s for both.
    pub const DEFAULT: ServerSettings = ServerSettings {
        handshake_timeout: Duration::from_secs(10),
        write_timeout: Duration::from_secs(10),
    };
}

/// Called when a connection is closed because its writes stalled.
pub type OnStall = Arc<dyn Fn() + Send + Sync>;

/// Accepts connections until `stop`, then lets each one finish its current
/// response; every connection task is tracked by `tracker`. With
/// `event_streams`, a connection whose first request is for an
/// [`EVENT_STREAM_ROUTE`](direct::EVENT_STREAM_ROUTE) is served by
/// [`direct`].
pub async fn serve(
    listener: TcpListener,
    router: Router,
    settings: ServerSettings,
    stop: CancellationToken,
    tracker: TaskTracker,
    on_stall: OnStall,
    event_streams: bool,
) {
    loop {
        let accepted = tokio::select! {
            _ = stop.cancelled() => break,
            accepted = listener.accept() => accepted,
        };
        let tcp = match accepted {
            Ok((tcp, _)) => tcp,
            Err(e) => {
                // Out of file descriptors, usually: back off instead of spinning.
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let _ = tcp.set_nodelay(true);
        let mut io = TimeoutStream::new(tcp);
        io.set_write_timeout(Some(settings.write_timeout));
        let mut io = Box::pin(io);
        let router = router.clone();
        let stop = stop.clone();
        let on_stall = on_stall.clone();
        tracker.spawn(async move {
            let first = match event_streams {
                true => {
                    let read = direct::read_first(&mut io);
                    tokio::select! {
                        read = tokio::time::timeout(settings.handshake_timeout, read) => match read {
                            Ok(Ok(first)) => first,
                            // Too slow, or gone: as hyper would, just close.
                            Err(_) | Ok(Err(_)) => return,
                        },
                        _ = stop.cancelled() => return,
                    }
                }
                false => First::Other(Bytes::new()),
            };
            let result = match first {
                First::Stream(request) => direct::respond(&mut io, router, request).await,
                First::Other(prefix) => serve_hyper(Prefixed::new(prefix, io), router, settings, stop).await,
            };
            if let Err(e) = result {
                if e.kind() == std::io::ErrorKind::TimedOut {
                    on_stall();
                }
                tracing::debug!(error = %e, "connection ended with an error");
            }
        });
    }
}

/// Serves the connection with hyper until it closes, or until `stop` and
/// its response in flight is done.
async fn serve_hyper(
    io: Prefixed<Pin<Box<TimeoutStream<TcpStream>>>>,
    router: Router,
    settings: ServerSettings,
    stop: CancellationToken,
) -> std::io::Result<()> {
    let conn = http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(settings.handshake_timeout)
        .serve_connection(TokioIo::new(io), TowerToHyperService::new(router))
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
