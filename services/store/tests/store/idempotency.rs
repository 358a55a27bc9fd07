//! `Idempotency-Key`: a retried create gets the first answer, not a second order.

use ordercast_core::order::Order;
use ordercast_store::{Outcome, Replay, StoreError};

use crate::common::{ORDERS, all_events, count, create_once, key, restaurant, simple_order, store};

#[tokio::test]
async fn a_retried_idempotent_create_returns_the_first_answer_and_writes_nothing() {
    let store = store().await;
    let rid = restaurant(&store).await;
    let first = create_once(&store, key(rid, "pos-7-1", b"hash"))
        .await
        .unwrap();

    let retry = store
        .create_order_once(rid, simple_order(), key(rid, "pos-7-1", b"hash"), None)
        .await
        .unwrap();

    let Outcome::Replayed(replay) = retry else {
        panic!("a retry must be replayed, not written again");
    };
    assert_eq!(replay, first);
    let order: Order = serde_json::from_value(replay.body).unwrap();
    assert_eq!(store.order(rid, order.id).await.unwrap(), order);
    assert_eq!(count(&store, ORDERS, rid).await, 1);
    assert_eq!(all_events(&store, rid).await.len(), 1);
}

#[tokio::test]
async fn a_key_reused_with_another_request_is_refused_but_is_free_in_another_restaurant() {
    let store = store().await;
    let (rid, other) = (restaurant(&store).await, restaurant(&store).await);
    create_once(&store, key(rid, "k-1", b"first body"))
        .await
        .unwrap();

    let reused = create_once(&store, key(rid, "k-1", b"second body")).await;
    let elsewhere = create_once(&store, key(other, "k-1", b"second body")).await;

    assert!(
        matches!(reused, Err(StoreError::IdempotencyMismatch)),
        "{reused:?}"
    );
    assert_eq!(count(&store, ORDERS, rid).await, 1);
    assert_eq!(elsewhere.unwrap().status, 201);
    assert_eq!(count(&store, ORDERS, other).await, 1);
}

#[tokio::test]
async fn concurrent_retries_with_one_key_make_one_order_and_identical_answers() {
    let store = store().await;
    let rid = restaurant(&store).await;

    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..10 {
        let store = store.clone();
        tasks.spawn(async move { create_once(&store, key(rid, "kiosk-3", b"h")).await });
    }
    let answers: Vec<Replay> = tasks
        .join_all()
        .await
        .into_iter()
        .map(Result::unwrap)
        .collect();

    assert!(
        answers.iter().all(|a| *a == answers[0]),
        "every answer is the first"
    );
    assert_eq!(count(&store, ORDERS, rid).await, 1);
    assert_eq!(all_events(&store, rid).await.len(), 1);
}

#[tokio::test]
async fn a_rolled_back_idempotent_create_frees_its_key() {
    let store = store().await;
    let rid = restaurant(&store).await;
    let abandoned = store
        .create_order_once(rid, simple_order(), key(rid, "k-9", b"h"), None)
        .await
        .unwrap();
    assert!(matches!(abandoned, Outcome::Fresh(_)));
    drop(abandoned);

    let again = store
        .create_order_once(rid, simple_order(), key(rid, "k-9", b"h"), None)
        .await
        .unwrap();

    let Outcome::Fresh(pending) = again else {
        panic!("a key whose first use rolled back is new again");
    };
    let created = pending.commit().await.unwrap();
    assert_eq!(created.last_seq().0, 1, "the abandoned create took no seq");
    assert_eq!(count(&store, ORDERS, rid).await, 1);
}
