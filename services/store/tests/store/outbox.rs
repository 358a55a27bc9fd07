//! The outbox: committed events not yet known to be in Redis.

use std::time::Duration;

use ordercast_core::order::OrderStatus;
use ordercast_core::{RestaurantId, Seq};

use crate::common::{create, create_many, restaurant, seqs, simple_order, store};

const NOW: Duration = Duration::ZERO;

#[tokio::test]
async fn the_outbox_lists_committed_but_unpublished_events_and_forgets_them_once_marked_published()
{
    let store = store().await;
    let rid = restaurant(&store).await;
    let orders = create_many(&store, rid, 3).await;
    let uncommitted = store
        .set_order_status(rid, orders[0].id, OrderStatus::Accepted, None, None, None)
        .await
        .unwrap();
    assert_eq!(store.outbox_backlog().await.unwrap(), 3);

    let fast_path = store.mark_published(&[(rid, Seq(1))]).await.unwrap();
    let batch = store.claim_unpublished(NOW, 10).await.unwrap();
    let claimed = seqs(batch.events());
    batch.finish(&[(rid, Seq(2))]).await.unwrap();
    let left = store.claim_unpublished(NOW, 10).await.unwrap();

    assert_eq!(fast_path, 1);
    assert_eq!(claimed, [2, 3], "seq 4 is not committed");
    assert_eq!(seqs(left.events()), [3]);
    drop(left);
    uncommitted.commit().await.unwrap();
    assert_eq!(store.outbox_backlog().await.unwrap(), 2);
}

#[tokio::test]
async fn events_younger_than_the_minimum_age_are_left_to_the_fast_path() {
    let store = store().await;
    let rid = restaurant(&store).await;
    create(&store, rid, simple_order()).await;

    let young = store
        .claim_unpublished(Duration::from_secs(3_600), 10)
        .await
        .unwrap();

    assert!(young.events().is_empty());
    drop(young);
    let old_enough = store.claim_unpublished(NOW, 10).await.unwrap();
    assert_eq!(seqs(old_enough.events()), [1]);
}

#[tokio::test]
async fn a_claimed_batch_is_skipped_by_another_sweeper_and_released_unpublished_when_dropped() {
    let store = store().await;
    let (a, b) = (restaurant(&store).await, restaurant(&store).await);
    for rid in [a, b, a, b] {
        create(&store, rid, simple_order()).await;
    }

    let first = store.claim_unpublished(NOW, 2).await.unwrap();
    let second = store.claim_unpublished(NOW, 10).await.unwrap();

    let key = |batch: &ordercast_store::OutboxBatch| -> Vec<(RestaurantId, u64)> {
        batch
            .events()
            .iter()
            .map(|e| (e.restaurant_id, e.seq.0))
            .collect()
    };
    let (first_rid, other_rid) = if a < b { (a, b) } else { (b, a) };
    assert_eq!(
        key(&first),
        [(first_rid, 1), (first_rid, 2)],
        "by restaurant, then seq"
    );
    assert_eq!(key(&second), [(other_rid, 1), (other_rid, 2)]);
    drop(first);
    second.finish(&[]).await.unwrap();
    let again = store.claim_unpublished(NOW, 10).await.unwrap();
    assert_eq!(again.events().len(), 4, "nothing was marked published");
}
