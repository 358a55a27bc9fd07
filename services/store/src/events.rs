//! Appending events (taking the restaurant's next seqs) and reading them back.

use std::sync::LazyLock;

use chrono::{DateTime, Utc};
use ordercast_core::event::EventDraft;
use ordercast_core::{Envelope, RestaurantId, Seq};
use sqlx::PgConnection;
use sqlx::types::Json;

use crate::rows::{EVENT_COLUMNS, EventRow};
use crate::{Store, StoreError};

/// Most events returned by one [`Store::events_after`] call.
pub const MAX_EVENTS_PER_READ: i64 = 10_000;

/// The statement that takes the restaurant's next `n` seqs and inserts the
/// events and their outbox rows, with `domain` written in the same
/// statement: more `name AS (...)` CTEs that may read `s.last_seq` (the new
/// head) and use parameters from `$10`. The `UPDATE` locks the restaurant
/// row until the transaction ends: that lock is what makes seqs dense and
/// ordered. The statement returns the new head, or no row for an unknown
/// restaurant (and then writes nothing, as long as `domain` reads `FROM s`).
pub(crate) fn append_sql(domain: &str) -> String {
    let domain = if domain.is_empty() {
        String::new()
    } else {
        format!(", {domain}")
    };
    format!(
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
         ){domain}
         SELECT last_seq FROM s"
    )
}

type HeadQuery<'q> = sqlx::query::QueryScalar<'q, sqlx::Postgres, i64, sqlx::postgres::PgArguments>;

/// What every event of one write shares; the same stamp is bound into the
/// statement and sealed into the envelopes, so the two cannot disagree.
#[derive(Clone, Copy)]
pub(crate) struct Stamp<'a> {
    restaurant: RestaurantId,
    trace: Option<&'a str>,
    ts: DateTime<Utc>,
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

/// One write's events as the columns of [`append_sql`]'s parameters `$1..=$9`.
pub(crate) struct EventColumns<'a> {
    stamp: Stamp<'a>,
    kinds: Vec<String>,
    audiences: Vec<Json<&'a ordercast_core::Audience>>,
    data: Vec<Json<&'a serde_json::Value>>,
    previous: Vec<Option<&'a str>>,
    items: Vec<Option<uuid::Uuid>>,
}

impl<'a> EventColumns<'a> {
    pub(crate) fn new(stamp: Stamp<'a>, drafts: &'a [EventDraft]) -> Self {
        EventColumns {
            stamp,
            kinds: drafts.iter().map(|d| d.kind.to_string()).collect(),
            audiences: drafts.iter().map(|d| Json(&d.audience)).collect(),
            data: drafts.iter().map(|d| Json(&d.data)).collect(),
            previous: drafts
                .iter()
                .map(|d| d.previous_status.as_deref())
                .collect(),
            items: drafts
                .iter()
                .map(|d| d.item_id.map(|i| i.as_uuid()))
                .collect(),
        }
    }

    /// `sql` (made by [`append_sql`]) with `$1..=$9` bound.
    pub(crate) fn bind(&'a self, sql: &'static str) -> HeadQuery<'a> {
        sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
            .bind(self.stamp.restaurant.as_uuid())
            .bind(self.kinds.len() as i64)
            .bind(self.stamp.trace)
            .bind(self.stamp.ts)
            .bind(&self.kinds)
            .bind(&self.audiences)
            .bind(&self.data)
            .bind(&self.previous)
            .bind(&self.items)
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

/// Appends `drafts` as the restaurant's next events (see [`append_sql`]).
pub(crate) async fn append(
    conn: &mut PgConnection,
    restaurant: RestaurantId,
    trace: Option<&str>,
    drafts: Vec<EventDraft>,
) -> Result<Vec<Envelope>, StoreError> {
    static SQL: LazyLock<String> = LazyLock::new(|| append_sql(""));
    let stamp = Stamp::now(restaurant, trace);
    let last = EventColumns::new(stamp, &drafts)
        .bind(&SQL)
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
