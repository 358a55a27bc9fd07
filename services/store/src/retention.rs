//! Retention: events, their outbox rows, their first-delivery records and
//! idempotency keys are kept for a bounded time.

use chrono::{DateTime, Utc};

use crate::{Store, StoreError};

/// Rows that expire.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Expiring {
    /// Events (after `ORDERCAST_RETENTION_DAYS`).
    Events,
    /// Outbox rows whose events have expired: nothing is left to publish.
    Outbox,
    /// Idempotency keys (after 24 h).
    IdempotencyKeys,
    /// First-delivery records of the delivery ledger, with their events.
    DeliveryRanges,
}

impl Expiring {
    /// Every kind, in the order a retention pass deletes them.
    pub const ALL: [Expiring; 4] = [
        Expiring::Events,
        Expiring::Outbox,
        Expiring::IdempotencyKeys,
        Expiring::DeliveryRanges,
    ];

    /// The table, also the metric label.
    pub fn table(self) -> &'static str {
        match self {
            Expiring::Events => "events",
            Expiring::Outbox => "outbox",
            Expiring::IdempotencyKeys => "idempotency_keys",
            Expiring::DeliveryRanges => "delivery_ranges",
        }
    }

    fn delete_sql(self) -> &'static str {
        match self {
            Expiring::Events => {
                "DELETE FROM events WHERE ctid = ANY(ARRAY(
                     SELECT ctid FROM events WHERE created_at < $1 LIMIT $2))"
            }
            Expiring::Outbox => {
                "DELETE FROM outbox WHERE ctid = ANY(ARRAY(
                     SELECT ctid FROM outbox WHERE created_at < $1 LIMIT $2))"
            }
            Expiring::IdempotencyKeys => {
                "DELETE FROM idempotency_keys WHERE ctid = ANY(ARRAY(
                     SELECT ctid FROM idempotency_keys WHERE created_at < $1 LIMIT $2))"
            }
            Expiring::DeliveryRanges => {
                "DELETE FROM delivery_ranges WHERE ctid = ANY(ARRAY(
                     SELECT ctid FROM delivery_ranges WHERE delivered_at < $1 LIMIT $2))"
            }
        }
    }
}

impl Store {
    /// Deletes at most `batch` rows of `what` created before `cutoff` and
    /// returns how many went; call until it returns less than `batch`.
    /// Bounded, so no statement holds locks for long.
    pub async fn delete_expired(
        &self,
        what: Expiring,
        cutoff: DateTime<Utc>,
        batch: i64,
    ) -> Result<u64, StoreError> {
        Ok(sqlx::query(what.delete_sql())
            .bind(cutoff)
            .bind(batch)
            .execute(&self.pool)
            .await?
            .rows_affected())
    }
}
