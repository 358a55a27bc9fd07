//! The outbox: events committed but not yet known to be in Redis.

use std::time::Duration;

use ordercast_core::{Envelope, RestaurantId, Seq};
use sqlx::{Postgres, Transaction};
use uuid::Uuid;

use crate::rows::{EVENT_COLUMNS, EventRow};
use crate::{Store, StoreError};

/// Unpublished events claimed by one sweeper, locked until
/// [`OutboxBatch::finish`] (or drop) so other replicas skip them.
pub struct OutboxBatch {
    tx: Transaction<'static, Postgres>,
    events: Vec<Envelope>,
}

impl OutboxBatch {
    /// The claimed events, ordered by restaurant then seq.
    pub fn events(&self) -> &[Envelope] {
        &self.events
    }

    /// Marks `published` as being in Redis and releases the batch.
    pub async fn finish(mut self, published: &[(RestaurantId, Seq)]) -> Result<(), StoreError> {
        mark(&mut self.tx, published).await?;
        self.tx.commit().await?;
        Ok(())
    }
}

async fn mark(
    conn: &mut sqlx::PgConnection,
    published: &[(RestaurantId, Seq)],
) -> Result<u64, StoreError> {
    if published.is_empty() {
        return Ok(0);
    }
    let restaurants: Vec<Uuid> = published.iter().map(|(r, _)| r.as_uuid()).collect();
    let seqs: Vec<i64> = published.iter().map(|(_, s)| s.as_i64()).collect();
    let done = sqlx::query(
        "DELETE FROM outbox o USING unnest($1::uuid[], $2::bigint[]) AS p(restaurant_id, seq)
         WHERE o.restaurant_id = p.restaurant_id AND o.seq = p.seq",
    )
    .bind(&restaurants)
    .bind(&seqs)
    .execute(conn)
    .await?
    .rows_affected();
    Ok(done)
}

impl Store {
    /// Claims up to `limit` events still unpublished `min_age` after their
    /// commit. Rows another replica holds are skipped, not waited for.
    pub async fn claim_unpublished(
        &self,
        min_age: Duration,
        limit: i64,
    ) -> Result<OutboxBatch, StoreError> {
        self.claim(
            "created_at < now() - make_interval(secs => $1)",
            min_age,
            limit,
        )
        .await
    }

    /// Claims up to `limit` events replicated from their home regions and
    /// not yet in this region's Redis, however new (the relay's work).
    pub async fn claim_from_peers(&self, limit: i64) -> Result<OutboxBatch, StoreError> {
        self.claim("from_peer AND $1 >= 0", Duration::ZERO, limit)
            .await
    }

    async fn claim(
        &self,
        filter: &str,
        min_age: Duration,
        limit: i64,
    ) -> Result<OutboxBatch, StoreError> {
        let mut tx = self.begin().await?;
        let rows: Vec<EventRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT {EVENT_COLUMNS} FROM events WHERE (restaurant_id, seq) IN (
                 SELECT restaurant_id, seq FROM outbox WHERE {filter}
                 ORDER BY restaurant_id, seq LIMIT $2
                 FOR UPDATE SKIP LOCKED)
             ORDER BY restaurant_id, seq"
        )))
        .bind(min_age.as_secs_f64())
        .bind(limit)
        .fetch_all(&mut *tx)
        .await?;
        let events = rows
            .into_iter()
            .map(EventRow::into_envelope)
            .collect::<Result<_, _>>()?;
        Ok(OutboxBatch { tx, events })
    }

    /// Records that these events are in Redis (the fast path's receipts).
    pub async fn mark_published(
        &self,
        published: &[(RestaurantId, Seq)],
    ) -> Result<u64, StoreError> {
        let mut conn = self.pool.acquire().await?;
        mark(&mut conn, published).await
    }

    /// How many events are not yet known to be in Redis.
    pub async fn outbox_backlog(&self) -> Result<i64, StoreError> {
        Ok(sqlx::query_scalar("SELECT count(*) FROM outbox")
            .fetch_one(&self.pool)
            .await?)
    }
}
