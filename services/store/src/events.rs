//! Appending events (taking the restaurant's next seqs) and reading them back.

use chrono::{DateTime, Utc};
use ordercast_core::event::EventDraft;
use ordercast_core::{Envelope, RestaurantId, Seq, SessionId};
use sqlx::PgConnection;
use sqlx::types::Json;

use crate::rows::{EVENT_COLUMNS, EventRow};
use crate::{Store, StoreError};

/// Most events returned by one [`Store::events_after`] call.
pub const MAX_EVENTS_PER_READ: i64 = 10_000;

/// Takes the restaurant's next `$2` seqs and inserts the events and their
/// outbox rows, stamped with the restaurant's region and reach (what
/// replication filters on). The `UPDATE` locks the restaurant row until the transaction
/// ends: that lock is what makes seqs dense and ordered. Returns the new
/// head, or no row for an unknown restaurant (and then writes nothing).
const APPEND: &str = "
    WITH s AS (
        UPDATE restaurants SET last_seq = last_seq + $2 WHERE id = $1 RETURNING last_seq, region, reach
    ), e AS (
        INSERT INTO events (restaurant_id, seq, type, audience, data, previous_status, item_id, trace,
                            created_at, region, reach)
        SELECT $1, s.last_seq - $2 + d.ord, d.type, d.audience, d.data, d.previous_status, d.item_id, $3, $4,
               s.region, s.reach
        FROM s, unnest($5::text[], $6::jsonb[], $7::jsonb[], $8::text[], $9::uuid[])
             WITH ORDINALITY AS d(type, audience, data, previous_status, item_id, ord)
        RETURNING restaurant_id, seq, created_at
    ), o AS (
        INSERT INTO outbox (restaurant_id, seq, created_at) SELECT * FROM e
    )
    SELECT last_seq FROM s";

/// What every event of one write shares; the same stamp is bound into the
/// statement and sealed into the envelopes, so the two cannot disagree.
#[derive(Clone, Copy)]
pub(crate) struct Stamp<'a> {
    pub(crate) restaurant: RestaurantId,
    pub(crate) trace: Option<&'a str>,
    pub(crate) ts: DateTime<Utc>,
}

impl<'a> Stamp<'a> {
    /// Events of `restaurant` written now.
    pub(crate) fn now(restaurant: RestaurantId, trace: Option<&'a str>) -> Self {
        Stamp::at(restaurant, trace, Envelope::now())
    }

    /// Events of `restaurant` written at `ts`.
    pub(crate) fn at(restaurant: RestaurantId, trace: Option<&'a str>, ts: DateTime<Utc>) -> Self {
        Stamp {
            restaurant,
            trace,
            ts,
        }
    }
}

/// The envelopes of events appended with head `last` (`None`: the
/// restaurant does not exist).
pub(crate) fn seal(
    stamp: Stamp<'_>,
    drafts: Vec<EventDraft>,
    last: Option<i64>,
) -> Result<Vec<Envelope>, StoreError> {
    let last = last.ok_or(StoreError::NotFound("restaurant"))?;
    let first = last - drafts.len() as i64 + 1;
    Ok(drafts
        .into_iter()
        .zip(first..)
        .map(|(draft, seq)| {
            Envelope::seal(
                stamp.restaurant,
                Seq::from_i64(seq),
                stamp.ts,
                stamp.trace.map(str::to_owned),
                draft,
            )
        })
        .collect())
}

/// Appends `drafts` as the restaurant's next events (see [`APPEND`]).
pub(crate) async fn append(
    conn: &mut PgConnection,
    restaurant: RestaurantId,
    trace: Option<&str>,
    drafts: Vec<EventDraft>,
) -> Result<Vec<Envelope>, StoreError> {
    let stamp = Stamp::now(restaurant, trace);
    let kinds: Vec<String> = drafts.iter().map(|d| d.kind.to_string()).collect();
    let last: Option<i64> = sqlx::query_scalar(APPEND)
        .bind(restaurant.as_uuid())
        .bind(drafts.len() as i64)
        .bind(trace)
        .bind(stamp.ts)
        .bind(&kinds)
        .bind(drafts.iter().map(|d| Json(&d.audience)).collect::<Vec<_>>())
        .bind(drafts.iter().map(|d| Json(&d.data)).collect::<Vec<_>>())
        .bind(
            drafts
                .iter()
                .map(|d| d.previous_status.as_deref())
                .collect::<Vec<_>>(),
        )
        .bind(
            drafts
                .iter()
                .map(|d| d.item_id.map(|i| i.as_uuid()))
                .collect::<Vec<_>>(),
        )
        .fetch_optional(conn)
        .await?;
    seal(stamp, drafts, last)
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

    /// The events of table session `session` (those a customer of it may
    /// see) with seq in `after+1 ..= upto`, at most `limit` (capped at
    /// [`MAX_EVENTS_PER_READ`]), in order. A guest resuming from far behind
    /// reads its few events through the `events_by_session` index instead
    /// of the restaurant's whole history.
    pub async fn session_events_after(
        &self,
        restaurant: RestaurantId,
        session: &SessionId,
        after: Seq,
        upto: Seq,
        limit: i64,
    ) -> Result<Vec<Envelope>, StoreError> {
        let rows: Vec<EventRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT {EVENT_COLUMNS} FROM events
             WHERE restaurant_id = $1 AND audience->>'session_id' = $2
               AND seq > $3 AND seq <= $4 AND audience->'roles' ? 'customer'
             ORDER BY seq LIMIT $5"
        )))
        .bind(restaurant.as_uuid())
        .bind(session.as_str())
        .bind(after.as_i64())
        .bind(upto.as_i64())
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
