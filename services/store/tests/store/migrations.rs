//! Rows written before a migration keep working after it.

use ordercast_core::request::RequestStatus;
use ordercast_core::{RequestId, RestaurantId};
use ordercast_store::{DbSettings, MIGRATOR, Store};
use sqlx::{AssertSqlSafe, Connection, Executor, PgConnection};
use uuid::Uuid;

use crate::common::{create, simple_order};

/// The migration that added request states and order numbers.
const NUMBERS: i64 = 20261208000001;

/// Applies the migrations `pick` selects, in order.
async fn apply(conn: &mut PgConnection, pick: impl Fn(i64) -> bool) {
    for migration in MIGRATOR.iter().filter(|m| pick(m.version)) {
        conn.execute(AssertSqlSafe(migration.sql.as_str()))
            .await
            .unwrap_or_else(|e| panic!("migration {}: {e}", migration.version));
    }
}

#[tokio::test]
async fn orders_and_requests_from_before_numbers_are_numbered_and_keep_moving() {
    let url = ordercast_testkit::empty_database().await;
    let mut conn = PgConnection::connect(&url).await.unwrap();
    apply(&mut conn, |v| v < NUMBERS).await;
    let rid = Uuid::new_v4();
    conn.execute(AssertSqlSafe(format!(
        "INSERT INTO restaurants (id, name) VALUES ('{rid}', 'Old Place');
         INSERT INTO orders (id, restaurant_id, status, channel, total_cents, created_at, updated_at)
         SELECT gen_random_uuid(), '{rid}', 'new', 'pos', 100, now() - m * interval '1 minute', now()
         FROM unnest(ARRAY[2, 3, 1]) AS m;
         INSERT INTO waiter_requests (id, restaurant_id, kind, table_label, status, created_at, updated_at)
         VALUES (gen_random_uuid(), '{rid}', 'bill', '4', 'acknowledged', now(), now());"
    )))
    .await
    .unwrap();

    apply(&mut conn, |v| v >= NUMBERS).await;

    let numbered: Vec<i32> = sqlx::query_scalar(
        "SELECT number FROM orders WHERE restaurant_id = $1 ORDER BY created_at",
    )
    .bind(rid)
    .fetch_all(&mut conn)
    .await
    .unwrap();
    assert_eq!(numbered, [1, 2, 3], "in the order they were created");
    let request: Uuid =
        sqlx::query_scalar("SELECT id FROM waiter_requests WHERE restaurant_id = $1")
            .bind(rid)
            .fetch_one(&mut conn)
            .await
            .unwrap();
    let store = Store::connect_lazy(&DbSettings::from_url(&url).unwrap());
    let next = create(&store, RestaurantId::from(rid), simple_order()).await;
    // An api replica of the previous version, mid-upgrade, writes no
    // number, in a statement that has already updated the restaurant row.
    let old_style: i32 = sqlx::query_scalar(
        "WITH s AS (UPDATE restaurants SET last_seq = last_seq + 1 WHERE id = $1 RETURNING id)
         INSERT INTO orders (id, restaurant_id, status, channel, total_cents, created_at, updated_at)
         SELECT gen_random_uuid(), s.id, 'new', 'pos', 100, now(), now() FROM s RETURNING number",
    )
    .bind(rid)
    .fetch_one(&mut conn)
    .await
    .unwrap();
    let rid = RestaurantId::from(rid);
    let after = create(&store, rid, simple_order()).await;
    assert_eq!(
        (next.number, old_style, after.number),
        (4, 5, 6),
        "the next ones follow, whichever version writes them"
    );
    let pending = store.set_request_status(
        rid,
        RequestId::from(request),
        RequestStatus::InProgress,
        Some("on my way".into()),
        None,
    );
    let moved = pending.await.unwrap().commit().await.unwrap().value;
    assert_eq!(moved.status, RequestStatus::InProgress);
}
