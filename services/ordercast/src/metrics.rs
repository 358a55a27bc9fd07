//! Metrics of the process rather than of a role: the standard process
//! collector (`process_*`), `ordercast_build_info`, the PostgreSQL pool and
//! whether PostgreSQL and Redis answer. See docs/operations.md.

use ordercast_core::Region;
use ordercast_store::Store;
use prometheus::process_collector::ProcessCollector;
use prometheus::{IntGauge, IntGaugeVec, Opts, Registry};

/// The gauges refreshed when Prometheus scrapes (`/metrics`).
#[derive(Clone)]
pub struct ProcessMetrics {
    idle: IntGauge,
    in_use: IntGauge,
    postgres_up: IntGauge,
    redis_up: IntGauge,
}

impl ProcessMetrics {
    /// Registers the process collector, `ordercast_build_info` (set to 1
    /// at once), the pool's size and the dependency gauges on `registry`.
    pub fn new(
        registry: &Registry,
        role: &str,
        region: &Region,
        store: &Store,
    ) -> prometheus::Result<ProcessMetrics> {
        registry.register(Box::new(ProcessCollector::for_self()))?;
        let build = IntGaugeVec::new(
            Opts::new(
                "ordercast_build_info",
                "1, labelled with the binary's version, the process's role and its region.",
            ),
            &["version", "role", "region"],
        )?;
        build
            .with_label_values(&[env!("CARGO_PKG_VERSION"), role, region.as_str()])
            .set(1);
        let pool = IntGaugeVec::new(
            Opts::new(
                "ordercast_db_pool_connections",
                "PostgreSQL connections of the pool, idle or in use.",
            ),
            &["state"],
        )?;
        let max = IntGauge::new(
            "ordercast_db_pool_max_connections",
            "Most PostgreSQL connections the pool opens (ORDERCAST_DATABASE_POOL).",
        )?;
        max.set(i64::from(store.pool().options().get_max_connections()));
        let up = IntGaugeVec::new(
            Opts::new(
                "ordercast_dependency_up",
                "1 when the dependency answered the scrape's probe within 1 s, else 0.",
            ),
            &["dependency"],
        )?;
        let metrics = ProcessMetrics {
            idle: pool.with_label_values(&["idle"]),
            in_use: pool.with_label_values(&["in_use"]),
            postgres_up: up.with_label_values(&["postgres"]),
            redis_up: up.with_label_values(&["redis"]),
        };
        registry.register(Box::new(build))?;
        registry.register(Box::new(pool))?;
        registry.register(Box::new(max))?;
        registry.register(Box::new(up))?;
        Ok(metrics)
    }

    /// Reads the pool's connections and takes what the probes found.
    pub fn refresh(&self, store: &Store, postgres: bool, redis: bool) {
        let pool = store.pool();
        let (size, idle) = (i64::from(pool.size()), pool.num_idle() as i64);
        self.idle.set(idle);
        self.in_use.set((size - idle).max(0));
        self.postgres_up.set(i64::from(postgres));
        self.redis_up.set(i64::from(redis));
    }
}
