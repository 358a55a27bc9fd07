//! The outbox sweeper and the published-marker.
//!
//! The fast path XADDs right after commit; the marker records those
//! receipts in PostgreSQL in batches. Whatever is still unpublished a second
//! after its commit (a crash between commit and XADD, Redis down, a full
//! queue) is republished by the sweeper of any api replica.

use std::time::Duration;

use ordercast_bus::{BusError, BusMetrics, HeldConn, PublishOutcome, Streams};
use ordercast_core::{Chain, RestaurantId, Seq};
use ordercast_store::{Store, StoreError};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::metrics::ApiMetrics;

/// Sweeper tuning.
#[derive(Clone, Debug)]
pub struct OutboxSettings {
    /// How often to look for unpublished events. Default 500 ms.
    pub interval: Duration,
    /// How old an unpublished event must be before the sweeper takes it
    /// (the fast path's grace period). Default 1 s.
    pub min_age: Duration,
    /// Events claimed per transaction. Default 500.
    pub batch: i64,
}

impl Default for OutboxSettings {
    fn default() -> Self {
        OutboxSettings {
            interval: Duration::from_millis(500),
            min_age: Duration::from_secs(1),
            batch: 500,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub(crate) enum SweepError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Bus(#[from] BusError),
}

/// Runs the sweeper until `shutdown`.
#[tracing::instrument(name = "outbox_sweeper", skip_all)]
pub async fn sweep(
    store: Store,
    streams: Streams,
    metrics: ApiMetrics,
    bus_metrics: BusMetrics,
    settings: OutboxSettings,
    shutdown: CancellationToken,
) {
    let mut tick = tokio::time::interval(settings.interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut failing = false;
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = shutdown.cancelled() => return,
        }
        let claim = Claim::Stale(settings.min_age);
        match sweep_once(
            &store,
            &streams,
            &metrics,
            &bus_metrics,
            claim,
            settings.batch,
        )
        .await
        {
            Ok(n) => {
                if n > 0 {
                    tracing::info!(republished = n, "outbox sweeper settled unpublished events");
                }
                failing = false;
            }
            Err(e) => {
                if let SweepError::Store(e) = &e {
                    metrics.count_store_error(e);
                } else {
                    bus_metrics.redis_errors.with_label_values(&["xadd"]).inc();
                }
                if !failing {
                    tracing::warn!(error = %Chain(&e), "outbox sweep failed; retrying every tick");
                }
                failing = true;
            }
        }
        match store.within(store.outbox_backlog()).await {
            Ok(n) => metrics.outbox_backlog.set(n),
            Err(e) => metrics.count_store_error(&e),
        }
    }
}

/// Which unpublished events a sweep takes.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Claim {
    /// Any, once this old (the sweeper).
    Stale(Duration),
    /// Those replicated from their home regions, at once (the relay).
    FromPeers,
}

/// Publishes the unpublished events `claim` selects, `batch` per
/// transaction; returns how many events were settled.
#[tracing::instrument(name = "sweep", level = "debug", skip_all)]
pub(crate) async fn sweep_once(
    store: &Store,
    streams: &Streams,
    metrics: &ApiMetrics,
    bus_metrics: &BusMetrics,
    claim: Claim,
    batch: i64,
) -> Result<usize, SweepError> {
    let mut total = 0;
    loop {
        let batch_size = batch;
        // Every wait has a deadline (Redis's is in `streams`), so a hung
        // dependency fails this sweep instead of stopping the sweeper.
        let batch = match claim {
            Claim::Stale(min_age) => {
                store
                    .within(store.claim_unpublished(min_age, batch_size))
                    .await?
            }
            Claim::FromPeers => store.within(store.claim_from_peers(batch_size)).await?,
        };
        let claimed = batch.events().len();
        if claimed == 0 {
            return Ok(total);
        }
        let outcomes = streams
            .publish(&mut HeldConn::default(), batch.events())
            .await?;
        let mut settled = Vec::with_capacity(claimed);
        for (event, outcome) in batch.events().iter().zip(outcomes) {
            match outcome {
                PublishOutcome::Added => {
                    if let Claim::Stale(_) = claim {
                        metrics.outbox_republished.inc();
                    }
                    bus_metrics
                        .published
                        .with_label_values(&[BusMetrics::type_label(&event.kind)])
                        .inc();
                }
                PublishOutcome::AlreadyThere => {}
                PublishOutcome::Failed(_) => continue,
            }
            settled.push((event.restaurant_id, event.seq));
        }
        let done = settled.len();
        store.within(batch.finish(&settled)).await?;
        total += done;
        if (claimed as i64) < batch_size || done < claimed {
            return Ok(total);
        }
    }
}

/// The marker records receipts at most this often: one DELETE (and one
/// commit) per interval instead of one per XADD pipeline, which at a high
/// rate would be one per order. Well below the sweeper's grace period.
const MARK_EVERY: Duration = Duration::from_millis(100);

/// Records the fast path's receipts (events known to be in Redis) until the
/// publisher stops.
#[tracing::instrument(name = "published_marker", skip_all)]
pub async fn mark_published(
    store: Store,
    metrics: ApiMetrics,
    mut receipts: mpsc::Receiver<Vec<(RestaurantId, Seq)>>,
) {
    let mut buffer = Vec::new();
    let mut next = tokio::time::Instant::now();
    loop {
        // Receipts gather in the channel while this waits.
        tokio::time::sleep_until(next).await;
        if receipts.recv_many(&mut buffer, 1_024).await == 0 {
            return;
        }
        next = tokio::time::Instant::now() + MARK_EVERY;
        let keys: Vec<_> = buffer.drain(..).flatten().collect();
        for chunk in keys.chunks(5_000) {
            // On failure the sweeper will find these and settle them itself.
            if let Err(e) = store.within(store.mark_published(chunk)).await {
                metrics.count_store_error(&e);
                tracing::debug!(error = %Chain(&e), "could not record published events");
            }
        }
    }
}
