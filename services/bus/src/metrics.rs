//! Metrics of the publish path.

use prometheus::{Histogram, HistogramOpts, IntCounter, IntCounterVec, Opts, Registry};

/// Publish-path metrics, registered once per process.
#[derive(Clone)]
pub struct BusMetrics {
    /// `ordercast_events_published_total{type}`: events newly added to a stream.
    pub published: IntCounterVec,
    /// `ordercast_publish_latency_seconds`: commit → XADD acknowledged.
    pub publish_latency: Histogram,
    /// `ordercast_redis_errors_total{op}`.
    pub redis_errors: IntCounterVec,
    /// `ordercast_publish_dropped_total`: events left to the outbox sweeper
    /// because the in-process queue was full or Redis failed.
    pub dropped: IntCounter,
}

impl BusMetrics {
    /// Creates and registers the metrics.
    pub fn new(registry: &Registry) -> prometheus::Result<BusMetrics> {
        let m = BusMetrics {
            published: IntCounterVec::new(
                Opts::new(
                    "ordercast_events_published_total",
                    "Events added to Redis streams, by type (custom types as x.*).",
                ),
                &["type"],
            )?,
            publish_latency: Histogram::with_opts(
                HistogramOpts::new(
                    "ordercast_publish_latency_seconds",
                    "From commit to XADD acknowledged.",
                )
                .buckets(vec![
                    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25,
                    1.0, 5.0,
                ]),
            )?,
            redis_errors: IntCounterVec::new(
                Opts::new(
                    "ordercast_redis_errors_total",
                    "Failed Redis operations, by operation.",
                ),
                &["op"],
            )?,
            dropped: IntCounter::new(
                "ordercast_publish_dropped_total",
                "Events not published on the fast path (left to the outbox sweeper).",
            )?,
        };
        // Every series at 0 from the start: a panel shows 0, not "no data".
        let types = ordercast_core::EventType::built_in_names().chain(["x.*"]);
        for kind in types {
            m.published.with_label_values(&[kind]);
        }
        m.redis_errors.with_label_values(&["xadd"]);
        registry.register(Box::new(m.published.clone()))?;
        registry.register(Box::new(m.publish_latency.clone()))?;
        registry.register(Box::new(m.redis_errors.clone()))?;
        registry.register(Box::new(m.dropped.clone()))?;
        Ok(m)
    }

    /// The `type` label of an event: built-in names, or `x.*` for every
    /// custom type (bounded cardinality).
    pub fn type_label(kind: &ordercast_core::EventType) -> &str {
        match kind {
            ordercast_core::EventType::Custom(_) => "x.*",
            other => other.as_str(),
        }
    }
}
