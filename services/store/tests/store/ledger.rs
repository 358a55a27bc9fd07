//! The delivery ledger: how far each role's screens have got, and the
//! kitchen events no kitchen screen has received.

use std::time::Duration;

use chrono::{DateTime, Utc};
use ordercast_core::{Envelope, Receipt, Region, RestaurantId, Role, Seq};
use ordercast_store::Store;

use crate::common::{create, create_request, restaurant, simple_order, store, water};

const NOW: Duration = Duration::ZERO;
const HOUR: Duration = Duration::from_secs(3_600);

fn receipt(rid: RestaurantId, role: Role, seq: u64, at: DateTime<Utc>) -> Receipt {
    Receipt {
        restaurant: rid,
        role,
        seq: Seq(seq),
        at,
    }
}

/// The restaurant's first-delivery records: (role, from, to, when).
async fn ranges(store: &Store, rid: RestaurantId) -> Vec<(String, i64, i64, DateTime<Utc>)> {
    sqlx::query_as(
        "SELECT role, from_seq, to_seq, delivered_at FROM delivery_ranges
         WHERE restaurant_id = $1 ORDER BY role, from_seq",
    )
    .bind(rid.as_uuid())
    .fetch_all(store.pool())
    .await
    .unwrap()
}

#[tokio::test]
async fn the_ledger_records_delivery_marks_that_only_move_forward() {
    let store = store().await;
    let rid = restaurant(&store).await;
    // Microseconds, as stored.
    let start = Envelope::now();
    let t: Vec<DateTime<Utc>> = (0..4)
        .map(|s| start + chrono::Duration::seconds(s))
        .collect();
    let kitchen = |seq, at| receipt(rid, Role::Kitchen, seq, at);

    let moved = [
        store.record_deliveries(&[kitchen(2, t[0])]).await.unwrap(),
        store.record_deliveries(&[kitchen(1, t[1])]).await.unwrap(),
        store.record_deliveries(&[kitchen(2, t[2])]).await.unwrap(),
        store
            .record_deliveries(&[kitchen(3, t[3]), receipt(rid, Role::Owner, 3, t[3])])
            .await
            .unwrap(),
    ];

    assert_eq!(
        moved,
        [1, 0, 0, 2],
        "an older or equal receipt moves nothing"
    );
    assert_eq!(
        ranges(&store, rid).await,
        [
            ("kitchen".into(), 1, 2, t[0]),
            ("kitchen".into(), 3, 3, t[3]),
            ("owner".into(), 1, 3, t[3]),
        ]
    );
}

#[tokio::test]
async fn undelivered_lists_the_kitchen_events_beyond_the_kitchen_mark() {
    let store = store().await;
    let (rid, caught_up) = (restaurant(&store).await, restaurant(&store).await);
    create(&store, rid, simple_order()).await;
    create_request(&store, rid, water()).await;
    let late = create(&store, rid, simple_order()).await;
    create(&store, caught_up, simple_order()).await;
    let now = Utc::now();
    let receipts = [
        receipt(rid, Role::Kitchen, 1, now),
        receipt(rid, Role::Owner, 3, now),
        receipt(caught_up, Role::Kitchen, 1, now),
    ];
    store.record_deliveries(&receipts).await.unwrap();

    let missing = store
        .undelivered(&Region::default(), NOW, HOUR, 100)
        .await
        .unwrap();
    let too_young = store
        .undelivered(&Region::default(), HOUR, HOUR, 100)
        .await
        .unwrap();

    let [event] = missing.as_slice() else {
        panic!("only the second order's event is missing: {missing:?}")
    };
    assert_eq!((event.restaurant_id, event.seq), (rid, Seq(3)));
    assert_eq!(
        (event.kind.as_str(), event.kitchen_seq),
        ("order.created", Seq(1))
    );
    assert_eq!(event.order_id, Some(late.id.to_string()));
    assert!(too_young.is_empty(), "{too_young:?}");
}

#[tokio::test]
async fn undelivered_counts_only_the_restaurants_homed_in_the_region() {
    let store = store().await;
    let (here, elsewhere) = (restaurant(&store).await, restaurant(&store).await);
    create(&store, here, simple_order()).await;
    create(&store, elsewhere, simple_order()).await;
    // As if `elsewhere` had been replicated from its home region: no
    // kitchen here watches it, and its home's ledger answers for it.
    sqlx::query("UPDATE restaurants SET region = 'us-east' WHERE id = $1")
        .bind(elsewhere.as_uuid())
        .execute(store.pool())
        .await
        .unwrap();

    let missing = store
        .undelivered(&Region::default(), NOW, HOUR, 100)
        .await
        .unwrap();

    let restaurants: Vec<RestaurantId> = missing.iter().map(|e| e.restaurant_id).collect();
    assert_eq!(restaurants, [here]);
}
