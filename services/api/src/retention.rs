//! Deletes events and idempotency keys past their retention, in batches.

use std::time::Duration;

use chrono::Utc;
use ordercast_core::Chain;
use ordercast_store::{Expiring, Store};
use tokio_util::sync::CancellationToken;

use crate::metrics::ApiMetrics;

/// How long idempotency keys are honoured.
pub const IDEMPOTENCY_KEY_TTL: Duration = Duration::from_secs(24 * 3600);
/// Rows deleted per statement, so no delete holds locks for long.
const BATCH: i64 = 5_000;

/// Retention tuning.
#[derive(Clone, Debug)]
pub struct RetentionSettings {
    /// Events older than this many days are deleted
    /// (`ORDERCAST_RETENTION_DAYS`, default 7).
    pub days: u32,
    /// How often the job runs. Default 1 h (first run a minute after start).
    pub interval: Duration,
}

impl RetentionSettings {
    /// The defaults: 7 days, checked hourly.
    pub const DEFAULT: RetentionSettings = RetentionSettings {
        days: 7,
        interval: Duration::from_secs(3600),
    };
}

impl Default for RetentionSettings {
    fn default() -> Self {
        RetentionSettings::DEFAULT
    }
}

/// Runs the job every `interval` until `shutdown`.
#[tracing::instrument(name = "retention", skip_all)]
pub async fn run(
    store: Store,
    metrics: ApiMetrics,
    settings: RetentionSettings,
    shutdown: CancellationToken,
) {
    let start = tokio::time::Instant::now() + Duration::from_secs(60).min(settings.interval);
    let mut tick = tokio::time::interval_at(start, settings.interval);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = shutdown.cancelled() => return,
        }
        if let Err(e) = run_once(&store, &metrics, &settings, &shutdown).await {
            metrics.count_store_error(&e);
            tracing::warn!(error = %Chain(&e), "retention run failed; will retry");
        }
    }
}

/// One pass: deletes in batches until nothing old is left.
pub async fn run_once(
    store: &Store,
    metrics: &ApiMetrics,
    settings: &RetentionSettings,
    shutdown: &CancellationToken,
) -> Result<(), ordercast_store::StoreError> {
    let events_cutoff = Utc::now() - chrono::Duration::days(i64::from(settings.days));
    let keys_cutoff =
        Utc::now() - chrono::Duration::from_std(IDEMPOTENCY_KEY_TTL).expect("a day fits");
    for what in Expiring::ALL {
        let cutoff = match what {
            Expiring::IdempotencyKeys => keys_cutoff,
            Expiring::Events | Expiring::Outbox | Expiring::DeliveryRanges => events_cutoff,
        };
        loop {
            let n = store
                .within(store.delete_expired(what, cutoff, BATCH))
                .await?;
            metrics
                .retention_deleted
                .with_label_values(&[what.table()])
                .inc_by(n);
            if n < BATCH as u64 || shutdown.is_cancelled() {
                break;
            }
        }
    }
    Ok(())
}
