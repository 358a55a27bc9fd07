//! The delivery ledger worker (docs/architecture.md, "Delivery ledger"): reads the edges' delivery
//! receipts as a consumer of group `ledger`, records them in PostgreSQL,
//! and keeps `ordercast_undelivered_events` up to date.
//!
//! Every api replica runs one, as its own consumer: the group hands each
//! receipt entry to one of them. An entry is acknowledged once recorded; one
//! that a replica read but never acknowledged (it died, or PostgreSQL
//! failed) is claimed by any replica after `claim_after`; a consumer that
//! has stopped reading, with nothing left pending, is removed from the
//! group after `forget_after`.

use std::time::Duration;

use futures_util::future::join_all;
use ordercast_bus::{ReceiptBatch, Shard, Streams};
use ordercast_core::{Chain, Region};
use ordercast_store::{Store, StoreError};
use tokio_util::sync::CancellationToken;

use crate::metrics::ApiMetrics;

/// Delivery ledger tuning.
#[derive(Clone, Debug)]
pub struct LedgerSettings {
    /// How often the receipt streams are read. Default 500 ms.
    pub interval: Duration,
    /// A receipt entry read but not acknowledged this long is claimed by
    /// another consumer. Default 30 s.
    pub claim_after: Duration,
    /// A kitchen event no kitchen screen has received this long after its
    /// commit counts as undelivered (`ORDERCAST_UNDELIVERED_AFTER`).
    /// Default 30 s.
    pub undelivered_after: Duration,
    /// Events older than this are no longer looked at. Default 1 h.
    pub undelivered_within: Duration,
    /// How often `ordercast_undelivered_events` is recomputed. Default 10 s.
    pub check_every: Duration,
    /// A consumer of the group with nothing pending that has not read for
    /// this long is a replica that is gone, and is removed from the group.
    /// Default 10 min.
    pub forget_after: Duration,
}

impl LedgerSettings {
    /// The defaults, the one place they are written.
    pub const DEFAULT: LedgerSettings = LedgerSettings {
        interval: Duration::from_millis(500),
        claim_after: Duration::from_secs(30),
        undelivered_after: Duration::from_secs(30),
        undelivered_within: Duration::from_secs(3600),
        check_every: Duration::from_secs(10),
        forget_after: Duration::from_secs(600),
    };
}

impl Default for LedgerSettings {
    fn default() -> Self {
        LedgerSettings::DEFAULT
    }
}

/// Most undelivered events counted (and listed by `/debug/undelivered`).
pub const UNDELIVERED_LIMIT: i64 = 10_000;
/// Entries read from one shard's stream per round.
const READ_COUNT: usize = 1_000;

/// Runs the worker until `shutdown`.
#[tracing::instrument(name = "delivery_ledger", skip_all)]
pub async fn run(
    store: Store,
    streams: Streams,
    metrics: ApiMetrics,
    settings: LedgerSettings,
    home: Region,
    shutdown: CancellationToken,
) {
    let consumer = format!("api-{}", uuid::Uuid::now_v7());
    let mut read = tokio::time::interval(settings.interval);
    read.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut claim = tokio::time::interval(settings.claim_after / 2);
    claim.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut check = tokio::time::interval(settings.check_every);
    check.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut failing = false;
    loop {
        let claiming = tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = read.tick() => false,
            _ = claim.tick() => true,
            _ = check.tick() => {
                match store
                    .undelivered(&home, settings.undelivered_after, settings.undelivered_within, UNDELIVERED_LIMIT)
                    .await
                {
                    Ok(events) => metrics.undelivered.set(events.len() as i64),
                    Err(e) => metrics.count_store_error(&e),
                }
                continue;
            }
        };
        let batches = join_all(Shard::all().map(|shard| {
            let (streams, consumer) = (&streams, consumer.as_str());
            async move {
                if claiming {
                    let claimed = streams
                        .claim_receipts(shard, consumer, settings.claim_after, READ_COUNT)
                        .await;
                    // Best effort: a failure here shows in the next read.
                    let _ = streams
                        .forget_idle_consumers(shard, consumer, settings.forget_after)
                        .await;
                    claimed
                } else {
                    streams.read_receipts(shard, consumer, READ_COUNT).await
                }
            }
        }))
        .await;
        let (mut read_ok, mut first_error) = (Vec::new(), None);
        for batch in batches {
            match batch {
                Ok(batch) if !batch.ids.is_empty() => read_ok.push(batch),
                Ok(_) => {}
                Err(e) => first_error = first_error.or(Some(e)),
            }
        }
        if let Err(e) = record(&store, &streams, &metrics, read_ok).await {
            metrics.count_store_error(&e);
            tracing::warn!(error = %Chain(&e), "cannot record delivery receipts; they are claimed again later");
        }
        match first_error {
            Some(e) if !failing => {
                tracing::warn!(error = %e, "cannot read delivery receipts; retrying");
                failing = true;
            }
            Some(_) => {}
            None => failing = false,
        }
    }
}

/// Records every batch's receipts in one statement, then acknowledges the
/// entries.
async fn record(
    store: &Store,
    streams: &Streams,
    metrics: &ApiMetrics,
    batches: Vec<ReceiptBatch>,
) -> Result<(), StoreError> {
    if batches.is_empty() {
        return Ok(());
    }
    let receipts: Vec<_> = batches
        .iter()
        .flat_map(|b| b.receipts.iter().cloned())
        .collect();
    store.within(store.record_deliveries(&receipts)).await?;
    metrics.receipts_recorded.inc_by(receipts.len() as u64);
    // An entry left unacknowledged is claimed and recorded again later,
    // which changes nothing: marks only move forward.
    join_all(
        batches
            .iter()
            .map(|b| streams.ack_receipts(b.shard, &b.ids)),
    )
    .await;
    Ok(())
}
