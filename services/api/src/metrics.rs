//! Metrics of the api role.

use prometheus::{GaugeVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry};

/// Api-side metrics, registered once per process.
#[derive(Clone)]
pub struct ApiMetrics {
    /// `ordercast_outbox_backlog`: events not yet known to be in Redis.
    pub outbox_backlog: IntGauge,
    /// `ordercast_outbox_republished_total`: events the sweeper had to add.
    pub outbox_republished: IntCounter,
    /// `ordercast_postgres_errors_total{kind}`: `unavailable` or `other`.
    pub postgres_errors: IntCounterVec,
    /// `ordercast_retention_deleted_total{table}`.
    pub retention_deleted: IntCounterVec,
    /// `ordercast_invalidations_total{stage}`: `accepted` hints and
    /// `published` coalesced events.
    pub invalidations: IntCounterVec,
    /// `ordercast_undelivered_events`: kitchen events no kitchen screen has
    /// received within `ORDERCAST_UNDELIVERED_AFTER` (delivery ledger).
    pub undelivered: IntGauge,
    /// `ordercast_delivery_receipts_recorded_total`: receipts the delivery
    /// ledger recorded.
    pub receipts_recorded: IntCounter,
    /// `ordercast_rate_limited_total`: commands refused with `429` because
    /// their restaurant exceeded its command rate.
    pub rate_limited: IntCounter,
    /// `ordercast_forwarded_writes_total{region, outcome}`: writes sent to
    /// their home region, `answered` or `unavailable`.
    pub forwarded: IntCounterVec,
    /// `ordercast_region_silence_seconds{region}`: since a peer's last
    /// heartbeat arrived (+Inf: never).
    pub region_silence: GaugeVec,
    /// `ordercast_replication_backlog_bytes{region}`: WAL a peer's
    /// replication slot still holds back here.
    pub replication_backlog: IntGaugeVec,
    /// `ordercast_replication_streaming{region}`: 1 while a peer streams
    /// from this region.
    pub replication_streaming: IntGaugeVec,
}

impl ApiMetrics {
    /// Creates and registers the metrics.
    pub fn new(registry: &Registry) -> prometheus::Result<ApiMetrics> {
        let m = ApiMetrics {
            outbox_backlog: IntGauge::new(
                "ordercast_outbox_backlog",
                "Committed events not yet known to be in Redis.",
            )?,
            outbox_republished: IntCounter::new(
                "ordercast_outbox_republished_total",
                "Events the outbox sweeper added to Redis.",
            )?,
            postgres_errors: IntCounterVec::new(
                Opts::new(
                    "ordercast_postgres_errors_total",
                    "PostgreSQL failures, by kind.",
                ),
                &["kind"],
            )?,
            retention_deleted: IntCounterVec::new(
                Opts::new(
                    "ordercast_retention_deleted_total",
                    "Rows deleted by retention, by table.",
                ),
                &["table"],
            )?,
            invalidations: IntCounterVec::new(
                Opts::new(
                    "ordercast_invalidations_total",
                    "Cache invalidation hints accepted and coalesced events published.",
                ),
                &["stage"],
            )?,
            undelivered: IntGauge::new(
                "ordercast_undelivered_events",
                "Events for the kitchen that no kitchen screen of their restaurant has received, ORDERCAST_UNDELIVERED_AFTER after their commit (at most 10 000; events up to an hour old).",
            )?,
            receipts_recorded: IntCounter::new(
                "ordercast_delivery_receipts_recorded_total",
                "Delivery receipts recorded by the delivery ledger.",
            )?,
            rate_limited: IntCounter::new(
                "ordercast_rate_limited_total",
                "Commands refused (429) because their restaurant exceeded its command rate.",
            )?,
            forwarded: IntCounterVec::new(
                Opts::new(
                    "ordercast_forwarded_writes_total",
                    "Writes forwarded to their restaurant's home region, by region and outcome (answered, unavailable).",
                ),
                &["region", "outcome"],
            )?,
            region_silence: GaugeVec::new(
                Opts::new(
                    "ordercast_region_silence_seconds",
                    "Seconds since a peer region's last heartbeat arrived here (+Inf: never).",
                ),
                &["region"],
            )?,
            replication_backlog: IntGaugeVec::new(
                Opts::new(
                    "ordercast_replication_backlog_bytes",
                    "WAL bytes a peer region's replication slot has not yet confirmed.",
                ),
                &["region"],
            )?,
            replication_streaming: IntGaugeVec::new(
                Opts::new(
                    "ordercast_replication_streaming",
                    "1 while a peer region is connected and streaming from this region.",
                ),
                &["region"],
            )?,
        };
        // Every series at 0 from the start (a peer's when the api starts):
        // a panel shows 0, not "no data".
        for kind in ["unavailable", "other"] {
            m.postgres_errors.with_label_values(&[kind]);
        }
        for expiring in ordercast_store::Expiring::ALL {
            m.retention_deleted.with_label_values(&[expiring.table()]);
        }
        for stage in ["accepted", "published"] {
            m.invalidations.with_label_values(&[stage]);
        }
        registry.register(Box::new(m.outbox_backlog.clone()))?;
        registry.register(Box::new(m.forwarded.clone()))?;
        registry.register(Box::new(m.region_silence.clone()))?;
        registry.register(Box::new(m.replication_backlog.clone()))?;
        registry.register(Box::new(m.replication_streaming.clone()))?;
        registry.register(Box::new(m.outbox_republished.clone()))?;
        registry.register(Box::new(m.postgres_errors.clone()))?;
        registry.register(Box::new(m.retention_deleted.clone()))?;
        registry.register(Box::new(m.invalidations.clone()))?;
        registry.register(Box::new(m.undelivered.clone()))?;
        registry.register(Box::new(m.receipts_recorded.clone()))?;
        registry.register(Box::new(m.rate_limited.clone()))?;
        Ok(m)
    }

    /// Counts a store failure.
    pub fn count_store_error(&self, error: &ordercast_store::StoreError) {
        use ordercast_store::StoreError::*;
        match error {
            Unavailable(_) => self
                .postgres_errors
                .with_label_values(&["unavailable"])
                .inc(),
            Database(_) => self.postgres_errors.with_label_values(&["other"]).inc(),
            _ => {}
        }
    }
}
