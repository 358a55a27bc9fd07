//! Appending events (taking the restaurant's next seqs) and reading them back.

use ordercast_core::event::EventDraft;
use ordercast_core::{Envelope, RestaurantId, Seq};
use sqlx::PgConnection;
use sqlx::types::Json;

use crate::rows::{EVENT_COLUMNS, EventRow};
use crate::{Store, StoreError};

/// Most events returned by one [`Store::events_after`] call.
pub const MAX_EVENTS_PER_READ: i64 = 10_000;

/// Takes the next `drafts.len()` seqs of the restaurant and inserts the
/// events and their outbox rows, in one statement. The `UPDATE` locks the restaurant row until
/// the transaction ends: that lock is what makes seqs dense and ordered.
pub(crate) async fn append(
    conn: &mut PgConnection,
    restaurant: RestaurantId,
    trace: Option<&str>,
    drafts: Vec<EventDraft>,
) -> Result<Vec<Envelope>, StoreError> {
    let ts = Envelope::now();
    let n = drafts.len() as i64;
    let kinds: Vec<String> = drafts.iter().map(|d| d.kind.to_string()).collect();
    let audiences: Vec<Json<&ordercast_core::Audience>> =
        drafts.iter().map(|d| Json(&d.audience)).collect();
    let data: Vec<Json<&serde_json::Value>> = drafts.iter().map(|d| Json(&d.data)).collect();
    let previous: Vec<Option<&str>> = drafts
        .iter()
        .map(|d| d.previous_status.as_deref())
        .collect();
    let items: Vec<Option<uuid::Uuid>> = drafts
        .iter()
        .map(|d| d.item_id.map(|i| i.as_uuid()))
        .collect();
    let last: Option<i64> = sqlx::query_scalar(
        "WITH s AS (
             UPDATE restaurants SET last_seq = last_seq + $2 WHERE id = $1 RETURNING last_seq
         ), e AS (
             INSERT INTO events (restaurant_id, seq, type, audience, data, previous_status, item_id, trace, created_at)
             SELECT $1, s.last_seq - $2 + d.ord, d.type, d.audience, d.data, d.previous_status, d.item_id, $3, $4
             FROM s, unnest($5::text[], $6::jsonb[], $7::jsonb[], $8::text[], $9::uuid[])
                  WITH ORDINALITY AS d(type, audience, data, previous_status, item_id, ord)
             RETURNING restaurant_id, seq, created_at
         ), o AS (
             INSERT INTO outbox (restaurant_id, seq, created_at) SELECT * FROM e
         )
         SELECT last_seq FROM s",
    )
    .bind(restaurant.as_uuid())
    .bind(n)
    .bind(trace)
    .bind(ts)
    .bind(&kinds)
    .bind(&audiences)
    .bind(&data)
    .bind(&previous)
    .bind(&items)
    .fetch_optional(&mut *conn)
    .await?;
    let last = last.ok_or(StoreError::NotFound("restaurant"))?;
    let first = last - n + 1;
    Ok(drafts
        .into_iter()
        .zip(first..)
        .map(|(draft, seq)| {
            Envelope::seal(
                restaurant,
                Seq::from_i64(seq),
                ts,
                trace.map(str::to_owned),
                draft,
            )
        })
        .collect())
}

impl Store {
    /// Events of `restaurant` with seq in `after+1 ..= after+limit`, in order.
    /// `limit` is capped at [`MAX_EVENTS_PER_READ`].
    pub async fn events_after(
        &self,
        restaurant: RestaurantId,
        after: Seq,
        limit: i64,
    ) -> Result<Vec<Envelope>, StoreError> {
        let rows: Vec<EventRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT {EVENT_COLUMNS} FROM events
             WHERE restaurant_id = $1 AND seq > $2 ORDER BY seq LIMIT $3"
        )))
        .bind(restaurant.as_uuid())
        .bind(after.as_i64())
        .bind(limit.clamp(0, MAX_EVENTS_PER_READ))
        .fetch_all(&self.pool)
        .await?;
        rows.into_iter().map(EventRow::into_envelope).collect()
    }

    /// The restaurant's last seq (0 before its first event).
    pub async fn head(&self, restaurant: RestaurantId) -> Result<Seq, StoreError> {
        let last: Option<i64> =
            sqlx::query_scalar("SELECT last_seq FROM restaurants WHERE id = $1")
                .bind(restaurant.as_uuid())
                .fetch_optional(&self.pool)
                .await?;
        last.map(Seq::from_i64)
            .ok_or(StoreError::NotFound("restaurant"))
    }
}
