//! Delivery receipts (docs/architecture.md, "Delivery ledger"): the highest seq written to a screen of
//! each role, per restaurant, appended to the shard's receipts stream about
//! once a second, for the api's delivery ledger.

use std::collections::HashMap;
use std::sync::{Mutex, Weak};
use std::time::Duration;

use chrono::Utc;
use ordercast_bus::{Shard, Streams};
use ordercast_core::{Highest, Receipt, RestaurantId, Role, Seq};

use crate::metrics::EdgeMetrics;

/// How often receipts are appended.
pub(crate) const FLUSH_EVERY: Duration = Duration::from_secs(1);

/// Receipts gathered since the last flush.
#[derive(Default)]
pub(crate) struct Receipts {
    // std Mutex: held for a map update, never across .await.
    marks: Mutex<Highest>,
}

impl Receipts {
    /// A screen of `role` at `restaurant` was just written every event it
    /// may see up to `seq`.
    pub(crate) fn delivered(&self, restaurant: RestaurantId, role: Role, seq: Seq) {
        self.add(Receipt {
            restaurant,
            role,
            seq,
            at: Utc::now(),
        });
    }

    fn add(&self, receipt: Receipt) {
        self.marks
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .add(receipt);
    }

    /// Everything gathered so far, by shard.
    fn take(&self) -> HashMap<Shard, Vec<Receipt>> {
        let marks = std::mem::take(&mut *self.marks.lock().unwrap_or_else(|p| p.into_inner()));
        let mut by_shard: HashMap<Shard, Vec<Receipt>> = HashMap::new();
        for receipt in marks.into_receipts() {
            by_shard
                .entry(Shard::of(receipt.restaurant))
                .or_default()
                .push(receipt);
        }
        by_shard
    }
}

/// Appends the gathered receipts every [`FLUSH_EVERY`] until the edge is
/// gone. Receipts a failed append could not deliver are kept for the next
/// try (a mark only moves forward, so nothing is lost by merging).
pub(crate) async fn flush(gathered: Weak<Receipts>, streams: Streams, metrics: EdgeMetrics) {
    let mut tick = tokio::time::interval(FLUSH_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let Some(gathered) = gathered.upgrade() else {
            return;
        };
        let appends = gathered.take().into_iter().map(|(shard, receipts)| {
            let (gathered, streams, metrics) = (&gathered, &streams, &metrics);
            async move {
                match streams.append_receipts(shard, &receipts).await {
                    Ok(()) => metrics.receipts.with_label_values(&["appended"]).inc(),
                    Err(e) => {
                        tracing::debug!(%shard, error = %e, "cannot append delivery receipts; retrying");
                        metrics.receipts.with_label_values(&["failed"]).inc();
                        for receipt in receipts {
                            gathered.add(receipt);
                        }
                    }
                }
            }
        });
        futures_util::future::join_all(appends).await;
    }
}
