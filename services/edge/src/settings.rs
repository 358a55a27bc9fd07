//! The edge's tuning and limits.

use std::time::Duration;

use ordercast_http::cors::CorsOrigins;

/// Tuning and limits of the edge role. All but `batch_size`, `ws_queue`
/// and `max_poll_wait` have a flag and an `ORDERCAST_*` variable (see
/// docs/operations.md).
#[derive(Clone, Debug)]
pub struct EdgeSettings {
    /// Recent events each hub keeps in memory. Default 1 000.
    pub ring_size: usize,
    /// Most bytes of recent events each hub keeps in memory (the newest
    /// event is kept whatever its size). Default 8 MiB.
    pub ring_bytes: usize,
    /// Most events read per catch-up step. Default 500.
    pub batch_size: usize,
    /// SSE heartbeat comment interval. Default 15 s.
    pub heartbeat: Duration,
    /// The SSE `retry:` hint sent on connect. Default 2 s.
    pub sse_retry: Duration,
    /// Streaming connections (SSE, WebSocket, waiting long-polls) per
    /// process; beyond it, 503 + Retry-After. Default 20 000.
    pub max_connections: usize,
    /// Streaming connections of one principal (a guest's table session, a
    /// waiter, a token's subject) per process; beyond it, 429 +
    /// Retry-After. `None`: no limit. Default 100.
    pub max_connections_per_principal: Option<usize>,
    /// Restaurants one WebSocket may subscribe to. Default 100.
    pub max_subscriptions: usize,
    /// Largest inbound WebSocket message, bytes (close 1009). Default 16 KiB.
    pub ws_max_message: usize,
    /// Sustained inbound WebSocket messages per second (close 1008 beyond
    /// twice this burst). Default 20.
    pub ws_rate: u32,
    /// Bytes of `sync` snapshots one WebSocket may receive, refilled at this
    /// much a minute; beyond it a `sync` gets a `sync_limited` error.
    /// Default 16 MiB.
    pub ws_sync_budget: usize,
    /// Server ping interval; a peer silent for two intervals is cut.
    /// Default 30 s.
    pub ws_ping_interval: Duration,
    /// Outbound frames queued per WebSocket before its subscriptions wait.
    /// Default 256.
    pub ws_queue: usize,
    /// Hubs poll PostgreSQL this often while Redis is unreachable.
    /// Default 500 ms.
    pub degraded_poll_interval: Duration,
    /// Reconnect hints on drain are spread over this window. Default 5 s.
    pub drain_window: Duration,
    /// Longest long-poll `wait`. Default 30 s.
    pub max_poll_wait: Duration,
    /// The other regions of the deployment (none: one region). Screens
    /// watching a restaurant homed in one of them are told when it goes
    /// stale.
    pub peers: Vec<ordercast_core::Region>,
    /// A peer whose heartbeat has not arrived for this long is stale.
    /// Default 3 s (peers beat every second).
    pub region_stale_after: Duration,
    /// The api a split edge runs WebSocket commands on (its base URL);
    /// `None`: commands answer `unavailable` unless the api runs in the
    /// same process. Default none.
    pub api_url: Option<String>,
    /// How long PostgreSQL keeps events (`ORDERCAST_RETENTION_DAYS`): a
    /// `since` time older than this is refused. Default 7 days.
    pub retention: Duration,
    /// Origins whose pages may open a WebSocket besides the edge's own
    /// (`ORDERCAST_CORS_ORIGINS`; none: any origin may). Default none.
    pub cors: CorsOrigins,
    /// How often the edge logs and keeps its counts (connections,
    /// deliveries). Default 1 minute.
    pub activity_every: Duration,
    /// gzip SSE streams for clients that send `Accept-Encoding: gzip`.
    /// Default off: a compressor per connection costs far more memory than
    /// the connection itself (docs/performance.md).
    pub sse_gzip: bool,
}

impl EdgeSettings {
    /// The defaults, the one place they are written (the command line's
    /// defaults are these).
    pub const DEFAULT: EdgeSettings = EdgeSettings {
        ring_size: 1_000,
        ring_bytes: 8 * 1024 * 1024,
        batch_size: 500,
        heartbeat: Duration::from_secs(15),
        sse_retry: Duration::from_secs(2),
        max_connections: 20_000,
        max_connections_per_principal: Some(100),
        max_subscriptions: 100,
        ws_max_message: 16 * 1024,
        ws_rate: 20,
        ws_sync_budget: 16 * 1024 * 1024,
        ws_ping_interval: Duration::from_secs(30),
        ws_queue: 256,
        degraded_poll_interval: Duration::from_millis(500),
        drain_window: Duration::from_secs(5),
        max_poll_wait: Duration::from_secs(30),
        peers: Vec::new(),
        region_stale_after: Duration::from_secs(3),
        api_url: None,
        retention: Duration::from_secs(7 * 24 * 3600),
        cors: CorsOrigins::NONE,
        activity_every: Duration::from_secs(60),
        sse_gzip: false,
    };
}

impl Default for EdgeSettings {
    fn default() -> EdgeSettings {
        EdgeSettings::DEFAULT
    }
}
