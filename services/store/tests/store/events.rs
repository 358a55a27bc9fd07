//! Reading events back: the cursor every transport resumes from.

use ordercast_core::event::EventDraft;
use ordercast_core::order::{ItemStatus, OrderStatus};
use ordercast_core::{Audience, EventType, Role, Seq};

use crate::common::{advance, create, create_many, restaurant, seqs, simple_order, store};

const TRACE: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

#[tokio::test]
async fn events_after_returns_events_in_seq_order_after_the_cursor_bounded_by_the_limit() {
    let store = store().await;
    let rid = restaurant(&store).await;
    let other = restaurant(&store).await;
    create_many(&store, rid, 6).await;
    create_many(&store, other, 2).await;
    let read = |after: u64, limit: i64| store.events_after(rid, Seq(after), limit);

    let middle = read(2, 3).await.unwrap();
    let tail = read(4, 100).await.unwrap();
    let at_head = read(6, 100).await.unwrap();
    let no_limit = read(0, 0).await.unwrap();
    let negative = read(0, -5).await.unwrap();

    assert_eq!(seqs(&middle), [3, 4, 5]);
    assert_eq!(seqs(&tail), [5, 6]);
    assert!(at_head.is_empty());
    assert!(no_limit.is_empty() && negative.is_empty());
    assert!(middle.iter().all(|e| e.restaurant_id == rid));
}

#[tokio::test]
async fn an_event_read_back_equals_the_envelope_its_write_returned() {
    let store = store().await;
    let rid = restaurant(&store).await;
    let order = create(&store, rid, simple_order()).await;
    advance(&store, rid, order.id, OrderStatus::Accepted).await;
    let item = order.items[0].id;
    let pending = store
        .set_item_status(rid, order.id, item, ItemStatus::Cooking, Some(TRACE))
        .await
        .unwrap();
    let cooking = pending.commit().await.unwrap().events;
    let mut draft = EventDraft::new(
        EventType::custom("x.loyalty.points_added").unwrap(),
        Audience::roles(&[Role::Customer]),
        serde_json::json!({"points": 12}),
    );
    draft.previous_status = Some("whatever the integration says".into());
    let custom = store
        .publish_event(rid, draft, Some(TRACE))
        .await
        .unwrap()
        .events;

    let stored = store.events_after(rid, Seq(2), 10).await.unwrap();

    assert_eq!(stored, [cooking, custom].concat());
    assert_eq!(stored[0].item_id, Some(item));
    assert_eq!(stored[0].previous_status.as_deref(), Some("queued"));
    assert_eq!(stored[1].trace.as_deref(), Some(TRACE));
}
