//! Retention: events, outbox rows, idempotency keys and first-delivery
//! records go once older than their horizon; orders stay.

use chrono::{Duration, Utc};
use ordercast_core::{Receipt, Role, Seq};
use ordercast_store::Expiring;

use crate::common::{
    ORDERS, all_events, count, create_many, create_once, key, restaurant, seqs, store,
};

#[tokio::test]
async fn retention_deletes_only_events_older_than_the_horizon_in_bounded_batches() {
    let store = store().await;
    let rid = restaurant(&store).await;
    let orders = create_many(&store, rid, 3).await;
    let events = all_events(&store, rid).await;
    let horizon = events[2].ts;
    assert!(events[1].ts < horizon, "written one after the other");

    let mut rounds = Vec::new();
    for _ in 0..3 {
        let round = store.delete_expired(Expiring::Events, horizon, 1).await;
        rounds.push(round.unwrap());
    }
    let outbox = store
        .delete_expired(Expiring::Outbox, horizon, 100)
        .await
        .unwrap();

    assert_eq!(rounds, [1, 1, 0], "one row per round, until none is left");
    assert_eq!(seqs(&all_events(&store, rid).await), [3]);
    assert_eq!(outbox, 2);
    assert_eq!(store.outbox_backlog().await.unwrap(), 1);
    for order in &orders {
        assert_eq!(&store.order(rid, order.id).await.unwrap(), order, "kept");
    }
}

#[tokio::test]
async fn an_expired_idempotency_key_no_longer_replays() {
    let store = store().await;
    let rid = restaurant(&store).await;
    let expire = |cutoff| store.delete_expired(Expiring::IdempotencyKeys, cutoff, 100);
    create_once(&store, key(rid, "pos-1", b"h")).await.unwrap();
    create_once(&store, key(rid, "pos-1", b"h")).await.unwrap();
    assert_eq!(
        count(&store, ORDERS, rid).await,
        1,
        "a retry in time replays"
    );

    let kept = expire(Utc::now() - Duration::hours(1)).await.unwrap();
    let gone = expire(Utc::now() + Duration::seconds(1)).await.unwrap();
    create_once(&store, key(rid, "pos-1", b"h")).await.unwrap();

    assert_eq!((kept, gone), (0, 1));
    assert_eq!(
        count(&store, ORDERS, rid).await,
        2,
        "a late retry is a new order"
    );
}

#[tokio::test]
async fn first_delivery_records_expire_by_their_delivery_time() {
    let store = store().await;
    let rid = restaurant(&store).await;
    let now = Utc::now();
    let receipt = |seq, hours_ago| Receipt {
        restaurant: rid,
        role: Role::Kitchen,
        seq: Seq(seq),
        at: now - Duration::hours(hours_ago),
    };
    store.record_deliveries(&[receipt(1, 3)]).await.unwrap();
    store.record_deliveries(&[receipt(2, 0)]).await.unwrap();
    let ranges = "SELECT count(*) FROM delivery_ranges WHERE restaurant_id = $1";
    assert_eq!(count(&store, ranges, rid).await, 2);

    let deleted = store.delete_expired(Expiring::DeliveryRanges, now - Duration::hours(1), 100);

    assert_eq!(deleted.await.unwrap(), 1);
    let left = "SELECT count(*) FROM delivery_ranges WHERE restaurant_id = $1 AND from_seq = 2";
    assert_eq!(count(&store, left, rid).await, 1);
}
