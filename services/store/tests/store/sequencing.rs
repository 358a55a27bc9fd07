//! Seqs: each restaurant's events are numbered 1, 2, 3… with no gap, no
//! duplicate, and in commit order, whatever writes them.

use std::time::Duration;

use ordercast_core::event::EventDraft;
use ordercast_core::order::OrderStatus;
use ordercast_core::{Audience, Envelope, EventType, RestaurantId, Role, Seq};
use ordercast_store::{Outcome, Store, StoreError};
use ordercast_testkit::eventually;

use crate::common::{
    ORDERS, advance, all_events, count, create, create_request, key, restaurant, seqs,
    simple_order, store, stores, water,
};

fn notification() -> EventDraft {
    EventDraft::new(
        EventType::Notification,
        Audience::roles(&[Role::Kitchen]),
        serde_json::json!({"text": "86 the tiramisu"}),
    )
}

#[tokio::test]
async fn a_restaurants_seqs_are_dense_start_at_1_and_are_its_own() {
    let store = store().await;
    let (a, b) = (restaurant(&store).await, restaurant(&store).await);

    let order = create(&store, a, simple_order()).await;
    create_request(&store, b, water()).await;
    advance(&store, a, order.id, OrderStatus::Accepted).await;
    let published = store.publish_event(a, notification(), None).await.unwrap();

    assert_eq!(published.last_seq(), Seq(3));
    assert_eq!(seqs(&all_events(&store, a).await), [1, 2, 3]);
    assert_eq!(seqs(&all_events(&store, b).await), [1]);
    assert_eq!(store.head(a).await.unwrap(), Seq(3));
    assert_eq!(store.restaurant(b).await.unwrap().last_seq, Seq(1));
}

/// Write number `n` of a mix: new orders through either replica's group
/// writer, idempotent creates in their own transaction, free events.
async fn mixed_write(stores: &[Store; 2], rid: RestaurantId, n: usize) -> Envelope {
    let store = &stores[n % 2];
    let mut events = match n % 4 {
        0 => {
            store
                .publish_event(rid, notification(), None)
                .await
                .unwrap()
                .events
        }
        1 => {
            let key = key(rid, &format!("k-{n}"), b"");
            let Outcome::Fresh(pending) = store
                .create_order_once(rid, simple_order(), key, None)
                .await
                .unwrap()
            else {
                panic!("every key is new")
            };
            pending.commit().await.unwrap().events
        }
        _ => {
            store
                .create_order(rid, simple_order(), None)
                .await
                .unwrap()
                .events
        }
    };
    events.pop().expect("one event per write")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_writes_for_one_restaurant_never_duplicate_or_skip_a_seq() {
    let stores = std::sync::Arc::new(stores::<2>().await);
    let rid = restaurant(&stores[0]).await;

    let mut tasks = tokio::task::JoinSet::new();
    for n in 0..120 {
        let stores = stores.clone();
        tasks.spawn(async move { mixed_write(&stores, rid, n).await });
    }
    let mut written = tasks.join_all().await;

    written.sort_by_key(|e| e.seq);
    assert_eq!(seqs(&written), (1..=120).collect::<Vec<_>>());
    assert_eq!(all_events(&stores[1], rid).await, written);
    assert_eq!(stores[0].head(rid).await.unwrap(), Seq(120));
}

#[tokio::test]
async fn a_dropped_pending_write_leaves_no_trace_and_its_seq_is_taken_again() {
    let store = store().await;
    let rid = restaurant(&store).await;
    let order = create(&store, rid, simple_order()).await;

    let pending = store
        .set_order_status(rid, order.id, OrderStatus::Accepted, None, None, None)
        .await
        .unwrap();
    assert_eq!(pending.last_seq(), Seq(2));
    drop(pending);

    assert_eq!(store.order(rid, order.id).await.unwrap(), order);
    assert_eq!(store.head(rid).await.unwrap(), Seq(1));
    let next = store
        .publish_event(rid, notification(), None)
        .await
        .unwrap();
    assert_eq!(next.last_seq(), Seq(2));
    assert_eq!(seqs(&all_events(&store, rid).await), [1, 2]);
}

#[tokio::test]
async fn a_pending_write_holds_the_next_seq_so_a_later_write_waits_and_follows_it() {
    let store = store().await;
    let rid = restaurant(&store).await;
    let order = create(&store, rid, simple_order()).await;
    let pending = store
        .set_order_status(rid, order.id, OrderStatus::Accepted, None, None, None)
        .await
        .unwrap();

    let later = tokio::spawn({
        let store = store.clone();
        async move { store.publish_event(rid, notification(), None).await }
    });
    let what = "the later write to wait for the restaurant's row";
    eventually(what, Duration::from_secs(10), || lock_waiters(&store)).await;
    assert!(!later.is_finished());
    let first = pending.commit().await.unwrap();

    assert_eq!(first.last_seq(), Seq(2));
    assert_eq!(later.await.unwrap().unwrap().last_seq(), Seq(3));
}

/// `Some` once a backend of the store's database waits on a lock.
async fn lock_waiters(store: &Store) -> Option<()> {
    let waiting: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM pg_stat_activity
         WHERE datname = current_database() AND wait_event_type = 'Lock'",
    )
    .fetch_one(store.pool())
    .await
    .unwrap();
    (waiting > 0).then_some(())
}

#[tokio::test]
async fn an_order_for_an_unknown_restaurant_is_refused_without_failing_the_orders_beside_it() {
    let store = store().await;
    let rid = restaurant(&store).await;
    let unknown = RestaurantId::new();

    let mut tasks = tokio::task::JoinSet::new();
    for target in [rid, unknown, rid, unknown, rid] {
        let store = store.clone();
        let write = async move { store.create_order(target, simple_order(), None).await };
        tasks.spawn(async move { (target, write.await) });
    }
    let answers = tasks.join_all().await;

    for (target, answer) in &answers {
        match answer {
            Ok(_) => assert_eq!(*target, rid),
            Err(e) => assert!(
                *target == unknown && matches!(e, StoreError::NotFound("restaurant")),
                "{e:?}"
            ),
        }
    }
    assert_eq!(seqs(&all_events(&store, rid).await), [1, 2, 3]);
    assert_eq!(count(&store, ORDERS, unknown).await, 0);
    assert_eq!(store.outbox_backlog().await.unwrap(), 3);
}
