//! The delivery ledger (docs/architecture.md, "Delivery ledger"): how far each restaurant's screens of
//! each role have received their events, when events were first
//! delivered, and which kitchen events no kitchen screen has received.

use std::time::Duration;

use chrono::{DateTime, Utc};
use ordercast_core::{Highest, Receipt, Region, RestaurantId, Seq};
use uuid::Uuid;

use crate::{Store, StoreError};

/// An event for the kitchen that no kitchen screen has received.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Undelivered {
    pub restaurant_id: RestaurantId,
    pub seq: Seq,
    #[serde(rename = "type")]
    pub kind: String,
    /// The order the event is about, if any.
    pub order_id: Option<String>,
    pub created_at: DateTime<Utc>,
    /// The highest seq any kitchen screen of the restaurant has received.
    pub kitchen_seq: Seq,
}

/// Events beyond a restaurant's kitchen mark looked at, at most: the newest
/// ones. A restaurant that never had a kitchen screen open has all its
/// events beyond the mark; only recent ones matter.
const LOOK_BACK_EVENTS: i64 = 200;
/// Undelivered events listed per restaurant, at most (the oldest).
pub const UNDELIVERED_PER_RESTAURANT: i64 = 20;

impl Store {
    /// Advances the delivery marks by `receipts` and records, for every
    /// advance, when the newly covered events were first delivered. Marks
    /// never move back: an older receipt changes nothing. Returns how many
    /// marks moved.
    pub async fn record_deliveries(&self, receipts: &[Receipt]) -> Result<u64, StoreError> {
        // One row per mark (a statement may update a row only once): the
        // highest seq, with its time.
        let mut highest = Highest::default();
        for r in receipts {
            highest.add(r.clone());
        }
        let (mut restaurants, mut roles, mut seqs, mut times) = (
            Vec::<Uuid>::new(),
            Vec::<&str>::new(),
            Vec::<i64>::new(),
            Vec::new(),
        );
        for r in highest.into_receipts() {
            restaurants.push(r.restaurant.as_uuid());
            roles.push(r.role.as_str());
            seqs.push(r.seq.as_i64());
            times.push(r.at);
        }
        // `old` is read from the statement's snapshot. A concurrent worker
        // that advanced the same mark meanwhile makes this statement's
        // range overlap its own; the earliest time of a seq counts.
        let moved = sqlx::query(
            "WITH r AS (
                 SELECT * FROM unnest($1::uuid[], $2::text[], $3::bigint[], $4::timestamptz[])
                     AS r(restaurant_id, role, seq, at)),
             old AS (
                 SELECT m.restaurant_id, m.role, m.seq FROM delivery_marks m
                 JOIN r USING (restaurant_id, role)),
             up AS (
                 INSERT INTO delivery_marks AS m (restaurant_id, role, seq, updated_at)
                 SELECT restaurant_id, role, seq, at FROM r
                 ON CONFLICT (restaurant_id, role) DO UPDATE
                     SET seq = excluded.seq, updated_at = excluded.updated_at
                     WHERE m.seq < excluded.seq
                 RETURNING m.restaurant_id, m.role, m.seq, m.updated_at)
             INSERT INTO delivery_ranges (restaurant_id, role, from_seq, to_seq, delivered_at)
             SELECT up.restaurant_id, up.role, coalesce(old.seq, 0) + 1, up.seq, up.updated_at
             FROM up LEFT JOIN old USING (restaurant_id, role)",
        )
        .bind(&restaurants)
        .bind(&roles)
        .bind(&seqs)
        .bind(&times)
        .execute(&self.pool)
        .await?
        .rows_affected();
        Ok(moved)
    }

    /// Events for the kitchen of restaurants homed in `home`, created
    /// between `within` and `older_than` ago, that no kitchen screen of
    /// their restaurant has received (in this region: receipts are
    /// recorded where the screen is connected); the
    /// oldest first, at most `limit`, and at most
    /// [`UNDELIVERED_PER_RESTAURANT`] per restaurant.
    ///
    /// Cheap whatever the event rate: it starts from the restaurants whose
    /// last seq is beyond their kitchen mark, skips those whose newest
    /// event is older than `within` (one primary-key probe each), and reads
    /// the others' events by primary key. (A join on `events` as a whole
    /// made PostgreSQL scan the table in parallel on both cores, and the
    /// order writes of a latency benchmark queued behind it: p99 from
    /// 9 to 80–105 ms.)
    pub async fn undelivered(
        &self,
        home: &Region,
        older_than: Duration,
        within: Duration,
        limit: i64,
    ) -> Result<Vec<Undelivered>, StoreError> {
        let rows: Vec<UndeliveredRow> = sqlx::query_as(
            "SELECT e.restaurant_id, e.seq, e.type AS kind,
                    CASE WHEN e.type LIKE 'order.%' THEN e.data->>'id' END AS order_id,
                    e.created_at, k.seq AS kitchen_seq
             FROM (SELECT r.id, r.last_seq, coalesce(m.seq, 0) AS seq
                   FROM restaurants r
                   LEFT JOIN delivery_marks m ON m.restaurant_id = r.id AND m.role = 'kitchen'
                   WHERE r.last_seq > coalesce(m.seq, 0) AND (r.region IS NULL OR r.region = $6)) k
             CROSS JOIN LATERAL (
                 SELECT created_at FROM events
                 WHERE restaurant_id = k.id AND seq = k.last_seq) newest
             CROSS JOIN LATERAL (
                 SELECT * FROM events e
                 WHERE e.restaurant_id = k.id
                   AND e.seq > greatest(k.seq, k.last_seq - $4) AND e.seq <= k.last_seq
                   AND e.created_at < now() - make_interval(secs => $1)
                   AND e.created_at > now() - make_interval(secs => $2)
                   AND e.audience->'roles' ? 'kitchen'
                 ORDER BY e.seq
                 LIMIT $5) e
             WHERE newest.created_at > now() - make_interval(secs => $2)
             ORDER BY e.created_at, e.restaurant_id, e.seq
             LIMIT $3",
        )
        .bind(older_than.as_secs_f64())
        .bind(within.as_secs_f64())
        .bind(limit)
        .bind(LOOK_BACK_EVENTS)
        .bind(UNDELIVERED_PER_RESTAURANT)
        .bind(home.as_str())
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .into_iter()
            .map(|row| Undelivered {
                restaurant_id: RestaurantId::from(row.restaurant_id),
                seq: Seq(row.seq as u64),
                kind: row.kind,
                order_id: row.order_id,
                created_at: row.created_at,
                kitchen_seq: Seq(row.kitchen_seq as u64),
            })
            .collect())
    }
}

#[derive(sqlx::FromRow)]
struct UndeliveredRow {
    restaurant_id: Uuid,
    seq: i64,
    kind: String,
    order_id: Option<String>,
    created_at: DateTime<Utc>,
    kitchen_seq: i64,
}
