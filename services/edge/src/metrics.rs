//! Edge metrics (docs/operations.md). No per-restaurant labels.

pub(crate) use crate::streamlog::{Peer, StreamLog};

use prometheus::{
    Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts,
    Registry,
};

/// A transport, as a metric label.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Transport {
    // Explicit: the index into `EdgeMetrics::delivered_by`.
    Sse = 0,
    WebSocket = 1,
    LongPoll = 2,
}

impl Transport {
    const ALL: [Transport; 3] = [Transport::Sse, Transport::WebSocket, Transport::LongPoll];

    pub fn as_str(self) -> &'static str {
        match self {
            Transport::Sse => "sse",
            Transport::WebSocket => "websocket",
            Transport::LongPoll => "long_poll",
        }
    }

    /// Every `reason` of `ordercast_disconnects_total` this transport ends
    /// with (docs/operations.md).
    fn end_reasons(self) -> &'static [&'static str] {
        match self {
            Transport::Sse => &["client_closed", "draining", "error", "token_expired"],
            Transport::WebSocket => &[
                "client_closed",
                "protocol_error",
                "rate_limited",
                "message_too_large",
                "ping_timeout",
                "slow_consumer",
                "draining",
                "token_expired",
            ],
            Transport::LongPoll => &["answered"],
        }
    }
}

/// How an event reached its subscriber, as the `kind` label of the
/// delivery latency: `live` as it arrived at the hub, `catchup` from a
/// resume, a replay or a gap fill (its latency is how far behind the
/// subscriber was, not how fast the edge is).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    // Explicit: the index into the latencies of `EdgeMetrics::delivered_by`.
    Live = 0,
    Catchup = 1,
}

impl Kind {
    const ALL: [Kind; 2] = [Kind::Live, Kind::Catchup];

    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Live => "live",
            Kind::Catchup => "catchup",
        }
    }

    /// The kind of `frame` within a batch of this kind: a gap-filled frame
    /// is catch-up whoever reads it.
    fn of(self, frame: &crate::frame::Frame) -> Kind {
        match frame.filled {
            true => Kind::Catchup,
            false => self,
        }
    }
}

/// Where a catching-up subscriber's events came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Source {
    Ring,
    Redis,
    Postgres,
}

impl Source {
    pub fn as_str(self) -> &'static str {
        match self {
            Source::Ring => "ring",
            Source::Redis => "redis",
            Source::Postgres => "postgres",
        }
    }
}

#[derive(Clone)]
pub struct EdgeMetrics {
    pub delivery_latency: HistogramVec,
    pub deliveries: IntCounterVec,
    pub connections: IntGaugeVec,
    pub connects: IntCounterVec,
    pub disconnects: IntCounterVec,
    pub catchup_events: IntCounterVec,
    pub gap_fills: IntCounter,
    pub gap_filled_events: IntCounter,
    pub duplicates_dropped: IntCounter,
    pub slow_consumer_actions: IntCounterVec,
    pub degraded_shards: IntGauge,
    pub shard_readers: IntGauge,
    pub watched_restaurants: IntGauge,
    /// `ordercast_max_connections`: the process's streaming-connection cap
    /// (`ORDERCAST_MAX_CONNECTIONS`), set at start.
    pub max_connections: IntGauge,
    pub redis_errors: IntCounter,
    /// `ordercast_streams_refused_total{reason}`: streaming connections
    /// refused because the `process` or the `principal` held as many as it
    /// may.
    pub streams_refused: IntCounterVec,
    /// `ordercast_delivery_receipts_total{outcome}`: receipt entries
    /// `appended` to Redis, or `failed` (kept for the next try).
    pub receipts: IntCounterVec,
    /// `ordercast_region_stale{region}`: 1 while a peer region is stale
    /// (its heartbeat is late), 0 when fresh; every peer from the start.
    pub region_stale: IntGaugeVec,
    /// `delivery_latency` of each kind and `deliveries` of each transport,
    /// resolved once (they are touched for every frame written).
    delivered_by: [([Histogram; 2], IntCounter); 3],
}

impl EdgeMetrics {
    pub fn new(registry: &Registry) -> prometheus::Result<EdgeMetrics> {
        let delivery_latency = HistogramVec::new(
            HistogramOpts::new(
                "ordercast_delivery_latency_seconds",
                "From the event's commit to the write on the client's socket, by transport and kind (live, catchup).",
            )
            .buckets(vec![
                0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
                10.0, 30.0, 60.0,
            ]),
            &["transport", "kind"],
        )?;
        let deliveries = IntCounterVec::new(
            Opts::new("ordercast_deliveries_total", "Events written to clients."),
            &["transport"],
        )?;
        let delivered_by = Transport::ALL.map(|t| {
            (
                Kind::ALL.map(|k| delivery_latency.with_label_values(&[t.as_str(), k.as_str()])),
                deliveries.with_label_values(&[t.as_str()]),
            )
        });
        let m = EdgeMetrics {
            delivery_latency,
            deliveries,
            delivered_by,
            connections: IntGaugeVec::new(
                Opts::new("ordercast_connections", "Open client connections."),
                &["transport"],
            )?,
            connects: IntCounterVec::new(
                Opts::new("ordercast_connects_total", "Client connections accepted."),
                &["transport"],
            )?,
            disconnects: IntCounterVec::new(
                Opts::new(
                    "ordercast_disconnects_total",
                    "Client connections ended, by reason.",
                ),
                &["transport", "reason"],
            )?,
            catchup_events: IntCounterVec::new(
                Opts::new(
                    "ordercast_catchup_events_total",
                    "Events sent to catching-up subscribers, by where they were read.",
                ),
                &["source"],
            )?,
            gap_fills: IntCounter::new(
                "ordercast_gap_fills_total",
                "Jumps in a restaurant's stream filled from PostgreSQL.",
            )?,
            gap_filled_events: IntCounter::new(
                "ordercast_gap_filled_events_total",
                "Events read from PostgreSQL to fill stream gaps.",
            )?,
            duplicates_dropped: IntCounter::new(
                "ordercast_duplicate_events_dropped_total",
                "Stream entries at or below a hub's head, dropped.",
            )?,
            slow_consumer_actions: IntCounterVec::new(
                Opts::new(
                    "ordercast_slow_consumer_actions_total",
                    "Subscribers that fell out of the ring (caught_up) or were cut (disconnected).",
                ),
                &["action"],
            )?,
            degraded_shards: IntGauge::new(
                "ordercast_degraded_shards",
                "Shards whose restaurants are polled from PostgreSQL because Redis is unreachable.",
            )?,
            shard_readers: IntGauge::new("ordercast_shard_readers", "Running shard readers.")?,
            watched_restaurants: IntGauge::new(
                "ordercast_watched_restaurants",
                "Restaurants with at least one local subscriber.",
            )?,
            max_connections: IntGauge::new(
                "ordercast_max_connections",
                "Streaming connections this process accepts at most (ORDERCAST_MAX_CONNECTIONS).",
            )?,
            receipts: IntCounterVec::new(
                Opts::new(
                    "ordercast_delivery_receipts_total",
                    "Delivery receipt entries appended to Redis for the delivery ledger, by outcome.",
                ),
                &["outcome"],
            )?,
            redis_errors: IntCounter::new(
                "ordercast_edge_redis_errors_total",
                "Failed Redis reads on the edge.",
            )?,
            streams_refused: IntCounterVec::new(
                Opts::new(
                    "ordercast_streams_refused_total",
                    "Streaming connections refused: the process (503) or the principal (429) held as many as it may.",
                ),
                &["reason"],
            )?,
            region_stale: IntGaugeVec::new(
                Opts::new(
                    "ordercast_region_stale",
                    "1 while a peer region's heartbeat is late (its restaurants' screens are told they are stale), 0 when fresh.",
                ),
                &["region"],
            )?,
        };
        m.zero_every_series();
        registry.register(Box::new(m.delivery_latency.clone()))?;
        registry.register(Box::new(m.deliveries.clone()))?;
        registry.register(Box::new(m.connections.clone()))?;
        registry.register(Box::new(m.connects.clone()))?;
        registry.register(Box::new(m.disconnects.clone()))?;
        registry.register(Box::new(m.catchup_events.clone()))?;
        registry.register(Box::new(m.gap_fills.clone()))?;
        registry.register(Box::new(m.gap_filled_events.clone()))?;
        registry.register(Box::new(m.duplicates_dropped.clone()))?;
        registry.register(Box::new(m.slow_consumer_actions.clone()))?;
        registry.register(Box::new(m.degraded_shards.clone()))?;
        registry.register(Box::new(m.shard_readers.clone()))?;
        registry.register(Box::new(m.watched_restaurants.clone()))?;
        registry.register(Box::new(m.max_connections.clone()))?;
        registry.register(Box::new(m.redis_errors.clone()))?;
        registry.register(Box::new(m.receipts.clone()))?;
        registry.register(Box::new(m.region_stale.clone()))?;
        registry.register(Box::new(m.streams_refused.clone()))?;
        Ok(m)
    }

    /// Creates every series of a known label value at 0, so a panel shows
    /// 0 rather than "no data" before the first event (`region_stale` has
    /// its peers from the start).
    fn zero_every_series(&self) {
        for transport in Transport::ALL {
            let t = transport.as_str();
            self.connections.with_label_values(&[t]);
            self.connects.with_label_values(&[t]);
            for reason in transport.end_reasons() {
                self.disconnects.with_label_values(&[t, reason]);
            }
        }
        for source in [Source::Ring, Source::Redis, Source::Postgres] {
            self.catchup_events.with_label_values(&[source.as_str()]);
        }
        for action in ["caught_up", "disconnected"] {
            self.slow_consumer_actions.with_label_values(&[action]);
        }
        for outcome in ["appended", "failed"] {
            self.receipts.with_label_values(&[outcome]);
        }
        for reason in ["process", "principal"] {
            self.streams_refused.with_label_values(&[reason]);
        }
    }

    /// Records frames written to a client, each with the kind of the batch
    /// it was read in.
    pub fn delivered<'a>(
        &self,
        transport: Transport,
        frames: impl IntoIterator<Item = (Kind, &'a crate::frame::Frame)>,
    ) {
        let (latency, count) = &self.delivered_by[transport as usize];
        let mut n = 0;
        for (kind, frame) in frames {
            latency[kind.of(frame) as usize].observe(frame.age_secs());
            n += 1;
        }
        count.inc_by(n);
    }
}

/// Counts a connection while it lives and its end by reason.
pub struct ConnectionGuard {
    metrics: EdgeMetrics,
    transport: Transport,
    reason: &'static str,
    log: StreamLog,
}

impl ConnectionGuard {
    /// Counts a connection of `peer` and logs its opening (see
    /// [`StreamLog`]).
    pub(crate) fn new(metrics: &EdgeMetrics, transport: Transport, peer: Peer) -> ConnectionGuard {
        metrics
            .connects
            .with_label_values(&[transport.as_str()])
            .inc();
        metrics
            .connections
            .with_label_values(&[transport.as_str()])
            .inc();
        ConnectionGuard {
            metrics: metrics.clone(),
            transport,
            reason: "client_closed",
            log: StreamLog::open(transport, peer),
        }
    }

    /// Why the connection ends (default `client_closed`).
    pub fn set_reason(&mut self, reason: &'static str) {
        self.reason = reason;
    }

    /// `n` more events written, for the close line.
    pub(crate) fn delivered(&mut self, n: usize) {
        self.log.delivered += n as u64;
    }

    /// The restaurants a WebSocket watched, for the close line.
    pub(crate) fn set_restaurants(&mut self, restaurants: String) {
        self.log.peer.restaurants = restaurants;
    }
}

impl Drop for ConnectionGuard {
    fn drop(&mut self) {
        let t = self.transport.as_str();
        self.metrics.connections.with_label_values(&[t]).dec();
        self.metrics
            .disconnects
            .with_label_values(&[t, self.reason])
            .inc();
        self.log.close(self.transport, self.reason);
    }
}
