//! Retention: events and idempotency keys are kept for a bounded time.

use chrono::{DateTime, Utc};

use crate::{Store, StoreError};

impl Store {
    /// Deletes at most `batch` events created before `cutoff`; returns how
    /// many went. Call until it returns less than `batch`.
    pub async fn delete_events_before(
        &self,
        cutoff: DateTime<Utc>,
        batch: i64,
    ) -> Result<u64, StoreError> {
        self.delete_batch(
            "DELETE FROM events WHERE ctid = ANY(ARRAY(
                 SELECT ctid FROM events WHERE created_at < $1 LIMIT $2))",
            cutoff,
            batch,
        )
        .await
    }

    /// Deletes at most `batch` outbox rows created before `cutoff`: their
    /// events are gone, so there is nothing left to publish.
    pub async fn delete_outbox_before(
        &self,
        cutoff: DateTime<Utc>,
        batch: i64,
    ) -> Result<u64, StoreError> {
        self.delete_batch(
            "DELETE FROM outbox WHERE ctid = ANY(ARRAY(
                 SELECT ctid FROM outbox WHERE created_at < $1 LIMIT $2))",
            cutoff,
            batch,
        )
        .await
    }

    /// Deletes at most `batch` idempotency keys created before `cutoff`.
    pub async fn delete_idempotency_keys_before(
        &self,
        cutoff: DateTime<Utc>,
        batch: i64,
    ) -> Result<u64, StoreError> {
        self.delete_batch(
            "DELETE FROM idempotency_keys WHERE ctid = ANY(ARRAY(
                 SELECT ctid FROM idempotency_keys WHERE created_at < $1 LIMIT $2))",
            cutoff,
            batch,
        )
        .await
    }

    /// One bounded delete, so no statement holds locks for long.
    async fn delete_batch(
        &self,
        sql: &'static str,
        cutoff: DateTime<Utc>,
        batch: i64,
    ) -> Result<u64, StoreError> {
        Ok(sqlx::query(sql)
            .bind(cutoff)
            .bind(batch)
            .execute(&self.pool)
            .await?
            .rows_affected())
    }
}
