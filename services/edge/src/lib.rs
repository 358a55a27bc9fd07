//! The edge role (DESIGN §5–6): hubs follow the Redis streams of the
//! restaurants local clients watch (through the bus's shard readers), order
//! and buffer their events, and SSE, WebSocket and long-poll deliver them
//! with gap-free resume.

mod assets;
mod auth;
mod frame;
mod hub;
pub mod metrics;
mod poll;
mod receipts;
mod sse;
mod subscription;
mod ws;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::routing::get;
use ordercast_bus::{ReaderMetrics, RedisSettings, ShardReaders, Streams};
use ordercast_core::Seq;
use ordercast_core::auth::TokenVerifier;
use ordercast_http::EVENT_STREAM_ROUTE;
use ordercast_http::HttpError;
use ordercast_store::{ChainDirectory, Store, StoreError};
use serde_json::json;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

pub use frame::Frame;
pub use metrics::{EdgeMetrics, Transport};

use crate::hub::Hubs;
use crate::receipts::Receipts;

/// Tuning and limits of the edge role. All but `batch_size`, `ws_queue`
/// and `max_poll_wait` have a flag and an `ORDERCAST_*` variable (see
/// docs/operations.md).
#[derive(Clone, Debug)]
pub struct EdgeSettings {
    /// Recent events each hub keeps in memory. Default 1 000.
    pub ring_size: usize,
    /// Most events read per catch-up step. Default 500.
    pub batch_size: usize,
    /// SSE heartbeat comment interval. Default 15 s.
    pub heartbeat: Duration,
    /// The SSE `retry:` hint sent on connect. Default 2 s.
    pub sse_retry: Duration,
    /// Streaming connections (SSE, WebSocket, waiting long-polls) per
    /// process; beyond it, 503 + Retry-After. Default 20 000.
    pub max_connections: usize,
    /// Restaurants one WebSocket may subscribe to. Default 100.
    pub max_subscriptions: usize,
    /// Largest inbound WebSocket message, bytes (close 1009). Default 16 KiB.
    pub ws_max_message: usize,
    /// Sustained inbound WebSocket messages per second (close 1008 beyond
    /// twice this burst). Default 20.
    pub ws_rate: u32,
    /// Server ping interval; a peer silent for two intervals is cut.
    /// Default 30 s.
    pub ws_ping_interval: Duration,
    /// Outbound frames queued per WebSocket before its subscriptions wait.
    /// Default 256.
    pub ws_queue: usize,
    /// A write blocked this long disconnects the client. Default 10 s.
    pub write_timeout: Duration,
    /// Hubs poll PostgreSQL this often while Redis is unreachable.
    /// Default 500 ms.
    pub degraded_poll_interval: Duration,
    /// Reconnect hints on drain are spread over this window. Default 5 s.
    pub drain_window: Duration,
    /// Longest long-poll `wait`. Default 30 s.
    pub max_poll_wait: Duration,
}

impl Default for EdgeSettings {
    fn default() -> Self {
        EdgeSettings {
            ring_size: 1_000,
            batch_size: 500,
            heartbeat: Duration::from_secs(15),
            sse_retry: Duration::from_secs(2),
            max_connections: 20_000,
            max_subscriptions: 100,
            ws_max_message: 16 * 1024,
            ws_rate: 20,
            ws_ping_interval: Duration::from_secs(30),
            ws_queue: 256,
            write_timeout: Duration::from_secs(10),
            degraded_poll_interval: Duration::from_millis(500),
            drain_window: Duration::from_secs(5),
            max_poll_wait: Duration::from_secs(30),
        }
    }
}

/// What a subscription can fail with.
#[derive(Debug, thiserror::Error)]
pub enum EdgeError {
    #[error("restaurant not found")]
    NotFound,
    #[error("cursor {0} is beyond the restaurant's last event")]
    CursorAhead(Seq),
    #[error(transparent)]
    Store(StoreError),
    #[error("the edge is shutting down")]
    Unavailable,
}

impl From<StoreError> for EdgeError {
    fn from(e: StoreError) -> EdgeError {
        match e {
            StoreError::NotFound(_) => EdgeError::NotFound,
            other => EdgeError::Store(other),
        }
    }
}

impl From<EdgeError> for HttpError {
    fn from(e: EdgeError) -> HttpError {
        match e {
            EdgeError::NotFound => HttpError::NotFound("restaurant"),
            EdgeError::CursorAhead(_) => HttpError::InvalidCursor(e.to_string()),
            EdgeError::Store(e) => HttpError::Store(e),
            EdgeError::Unavailable => HttpError::Unavailable,
        }
    }
}

/// What every edge handler and task shares.
pub(crate) struct Shared {
    pub store: Store,
    pub streams: Streams,
    pub settings: EdgeSettings,
    pub metrics: EdgeMetrics,
    pub readers: ShardReaders<hub::Hub>,
    pub hubs: Hubs,
    pub verifier: Arc<TokenVerifier>,
    pub chains: Arc<ChainDirectory>,
    /// Cancelled when the process starts draining.
    pub drain: CancellationToken,
    /// Upgraded WebSocket sessions, which outlive their HTTP connection.
    pub sessions: TaskTracker,
    /// What screens were sent, for the delivery ledger.
    pub receipts: Receipts,
    connections: Arc<Semaphore>,
}

impl Shared {
    /// A slot for one streaming connection, unless full or draining.
    pub(crate) fn admit(&self) -> Result<OwnedSemaphorePermit, HttpError> {
        if self.drain.is_cancelled() {
            return Err(HttpError::Unavailable);
        }
        self.connections
            .clone()
            .try_acquire_owned()
            .map_err(|_| HttpError::TooManyConnections)
    }

    /// A random delay within the drain window, so clients told to
    /// reconnect do not all come back at once.
    pub(crate) fn drain_jitter(&self) -> Duration {
        let window = self.settings.drain_window.as_millis().max(1) as u64;
        Duration::from_millis(rand::random_range(0..window))
    }
}

pub(crate) type EdgeState = Arc<Shared>;

/// A running edge role.
#[derive(Clone)]
pub struct EdgeService {
    shared: Arc<Shared>,
}

impl EdgeService {
    /// Builds the edge; shard readers start with the first subscriber.
    pub fn start(
        store: Store,
        streams: Streams,
        redis: &RedisSettings,
        verifier: TokenVerifier,
        registry: &prometheus::Registry,
        settings: EdgeSettings,
    ) -> anyhow::Result<EdgeService> {
        let metrics = EdgeMetrics::new(registry)?;
        let readers = ShardReaders::new(
            redis,
            streams.keys().clone(),
            ReaderMetrics {
                shard_readers: metrics.shard_readers.clone(),
                degraded_shards: metrics.degraded_shards.clone(),
                errors: metrics.redis_errors.clone(),
            },
        )?;
        let shared = Arc::new(Shared {
            store,
            streams,
            connections: Arc::new(Semaphore::new(settings.max_connections)),
            settings,
            metrics,
            readers,
            hubs: Hubs::default(),
            verifier: Arc::new(verifier),
            chains: Arc::default(),
            drain: CancellationToken::new(),
            sessions: TaskTracker::new(),
            receipts: Receipts::default(),
        });
        tokio::spawn(receipts::flush(Arc::downgrade(&shared)));
        Ok(EdgeService { shared })
    }

    /// The public routes: SSE, WebSocket and long-poll, plus the browser
    /// client (`/client/`) and the demo screens (`/demo/`).
    pub fn router(&self) -> Router {
        Router::new()
            .route(EVENT_STREAM_ROUTE, get(sse::stream))
            .route("/v1/restaurants/{rid}/events", get(poll::events))
            .route("/v1/ws", get(ws::upgrade))
            .with_state(self.shared.clone())
            .merge(assets::router())
    }

    /// Tells every client to reconnect (spread over the drain window) and
    /// refuses new ones.
    pub fn drain(&self) {
        self.shared.drain.cancel();
    }

    /// Waits until every WebSocket session has said goodbye (after
    /// [`EdgeService::drain`]).
    pub async fn sessions_closed(&self) {
        self.shared.sessions.close();
        self.shared.sessions.wait().await;
    }

    /// Counts a client cut because its socket stopped taking writes.
    pub fn write_stalled(&self) {
        self.shared
            .metrics
            .slow_consumer_actions
            .with_label_values(&["disconnected"])
            .inc();
    }

    /// For `/debug/stats`.
    pub fn stats(&self) -> serde_json::Value {
        let (watched, ring_frames) = self.shared.hubs.stats();
        let (readers, degraded) = self.shared.readers.stats();
        let by = |t: Transport| {
            self.shared
                .metrics
                .connections
                .with_label_values(&[t.as_str()])
                .get()
        };
        json!({
            "watched_restaurants": watched,
            "ring_frames": ring_frames,
            "shard_readers": readers,
            "degraded_shards": degraded,
            "degraded": degraded > 0,
            "draining": self.shared.drain.is_cancelled(),
            "connections": {
                "sse": by(Transport::Sse),
                "websocket": by(Transport::WebSocket),
                "long_poll": by(Transport::LongPoll),
            },
        })
    }
}

/// A cursor (`since`, `Last-Event-ID`): a non-negative integer seq.
pub(crate) fn parse_cursor(raw: &str) -> Result<Seq, HttpError> {
    raw.trim().parse::<Seq>().map_err(|_| {
        HttpError::InvalidCursor(format!(
            "cursor {raw:?} is not a sequence number (a non-negative integer)"
        ))
    })
}

#[cfg(test)]
mod churn_tests;
#[cfg(test)]
mod testing;
