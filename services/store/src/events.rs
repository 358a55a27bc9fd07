//! Appending events (taking the restaurant's next seqs) and reading them back.

use chrono::{DateTime, Utc};
use ordercast_core::event::EventDraft;
use ordercast_core::{Envelope, RestaurantId, Seq, SessionId};
use sqlx::PgConnection;
use sqlx::types::Json;

use crate::group::GroupWrite;
use crate::rows::{EVENT_COLUMNS, EventRow};
use crate::{Created, Store, StoreError};

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

/// Free-standing events (see [`crate::Store::publish_event`]) of many
/// restaurants in one statement: as [`APPEND`], with each restaurant's row
/// locked in id order (so two such statements cannot deadlock) and its
/// events numbered in the order given. Returns each event's position in
/// the input (from 1) and seq; an event of an unknown restaurant gets no
/// row and is not written.
const INSERT_EVENTS: &str = "
    WITH b AS (
        SELECT * FROM unnest($1::uuid[], $2::text[], $3::jsonb[], $4::jsonb[], $5::text[], $6::uuid[],
                             $7::text[], $8::timestamptz[])
            WITH ORDINALITY AS b(restaurant_id, type, audience, data, previous_status, item_id, trace,
                                 created_at, ord)
    ), n AS (
        SELECT restaurant_id, count(*) AS n FROM b GROUP BY restaurant_id
    ), locked AS MATERIALIZED (
        SELECT r.id FROM restaurants r JOIN n ON n.restaurant_id = r.id ORDER BY r.id FOR UPDATE OF r
    ), s AS (
        UPDATE restaurants r SET last_seq = r.last_seq + n.n
        FROM n, locked WHERE r.id = n.restaurant_id AND locked.id = r.id
        RETURNING r.id, r.last_seq - n.n AS base, r.region, r.reach
    ), q AS (
        SELECT b.*, s.base + row_number() OVER (PARTITION BY b.restaurant_id ORDER BY b.ord) AS seq,
               s.region, s.reach
        FROM b JOIN s ON s.id = b.restaurant_id
    ), e AS (
        INSERT INTO events (restaurant_id, seq, type, audience, data, previous_status, item_id, trace,
                            created_at, region, reach)
        SELECT restaurant_id, seq, type, audience, data, previous_status, item_id, trace, created_at,
               region, reach FROM q
        RETURNING restaurant_id, seq, created_at
    ), o AS (
        INSERT INTO outbox (restaurant_id, seq, created_at) SELECT * FROM e
    )
    SELECT ord, seq FROM q";

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

/// A free-standing event for the event writer (see the `group` module).
#[derive(Debug)]
pub(crate) struct EventWrite {
    restaurant: RestaurantId,
    draft: EventDraft,
    trace: Option<String>,
    /// When it happened (taken as it was queued).
    ts: DateTime<Utc>,
}

impl GroupWrite for EventWrite {
    /// Its seq.
    type Row = i64;
    type Written = Created<()>;

    async fn write_all(
        conn: &mut PgConnection,
        writes: &[Self],
    ) -> Result<Vec<Option<i64>>, StoreError> {
        let col = |f: fn(&EventWrite) -> Option<&str>| writes.iter().map(f).collect::<Vec<_>>();
        let rows: Vec<(i64, i64)> = sqlx::query_as(INSERT_EVENTS)
            .bind(
                writes
                    .iter()
                    .map(|w| w.restaurant.as_uuid())
                    .collect::<Vec<_>>(),
            )
            .bind(
                writes
                    .iter()
                    .map(|w| w.draft.kind.to_string())
                    .collect::<Vec<_>>(),
            )
            .bind(
                writes
                    .iter()
                    .map(|w| Json(&w.draft.audience))
                    .collect::<Vec<_>>(),
            )
            .bind(
                writes
                    .iter()
                    .map(|w| Json(&w.draft.data))
                    .collect::<Vec<_>>(),
            )
            .bind(col(|w| w.draft.previous_status.as_deref()))
            .bind(
                writes
                    .iter()
                    .map(|w| w.draft.item_id.map(|i| i.as_uuid()))
                    .collect::<Vec<_>>(),
            )
            .bind(col(|w| w.trace.as_deref()))
            .bind(writes.iter().map(|w| w.ts).collect::<Vec<_>>())
            .fetch_all(conn)
            .await?;
        let mut seqs = vec![None; writes.len()];
        for (ord, seq) in rows {
            seqs[ord as usize - 1] = Some(seq);
        }
        Ok(seqs)
    }

    fn written(self, seq: i64) -> Created<()> {
        let event = Envelope::seal(
            self.restaurant,
            Seq::from_i64(seq),
            self.ts,
            self.trace,
            self.draft,
        );
        Created {
            value: (),
            events: vec![event],
        }
    }
}

impl Store {
    /// Appends a free-standing event (notification, cache invalidation,
    /// integration `x.*` event) that changes no domain row, in one
    /// autocommit statement shared with the events published at the same
    /// moment (see the `group` module): when this returns, it is committed.
    /// Take the publisher's ticket before calling it.
    #[tracing::instrument(name = "INSERT events", skip_all, fields(otel.kind = "client", db.system.name = "postgresql"))]
    pub async fn publish_event(
        &self,
        restaurant: RestaurantId,
        draft: EventDraft,
        trace: Option<&str>,
    ) -> Result<Created<()>, StoreError> {
        let write = EventWrite {
            restaurant,
            draft,
            trace: trace.map(str::to_owned),
            ts: Envelope::now(),
        };
        self.writers
            .events(&self.pool, self.timeout)
            .write(write)
            .await
    }

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
