//! Orders: their life cycle, `If-Match`, and items that make an order ready.

use ordercast_core::order::{ItemStatus, Order, OrderStatus};
use ordercast_core::{EventType, ItemId, OrderId, RestaurantId, Seq};
use ordercast_store::{Store, StoreError};

use crate::common::{advance, all_events, create, item, order_of, restaurant, simple_order, store};

/// Moves item `i` of `order` to `to` and commits.
async fn set_item(store: &Store, order: &Order, i: usize, to: ItemStatus) -> Order {
    let (rid, item) = (order.restaurant_id, order.items[i].id);
    let pending = store.set_item_status(rid, order.id, item, to, None).await;
    pending
        .expect("legal item change")
        .commit()
        .await
        .expect("commit")
        .value
}

/// An accepted order of a steak (2 × 25.00), ready, and a salad, queued.
async fn steak_ready_salad_queued(store: &Store, rid: RestaurantId) -> Order {
    let new = order_of(vec![item("steak", 2, 2_500), item("salad", 1, 900)]);
    let order = create(store, rid, new).await;
    advance(store, rid, order.id, OrderStatus::Accepted).await;
    set_item(store, &order, 0, ItemStatus::Cooking).await;
    set_item(store, &order, 0, ItemStatus::Ready).await
}

#[tokio::test]
async fn an_order_walks_its_life_cycle_one_event_per_step_naming_the_previous_status() {
    use OrderStatus::*;
    let store = store().await;
    let rid = restaurant(&store).await;
    let order = create(&store, rid, simple_order()).await;

    for (version, pair) in (1..).zip([New, Accepted, InProgress, Ready, Served, Paid].windows(2)) {
        let pending = store.set_order_status(rid, order.id, pair[1], None, Some(version), None);
        let pending = pending.await.unwrap();
        let [event] = pending.events() else {
            panic!("one event per step: {:?}", pending.events())
        };
        assert_eq!(event.kind, EventType::OrderStatusChanged);
        assert_eq!(event.previous_status.as_deref(), Some(pair[0].as_str()));
        assert_eq!(event.data["status"], pair[1].as_str());
        pending.commit().await.unwrap();
    }

    let paid = store.order(rid, order.id).await.unwrap();
    assert_eq!((paid.status, paid.version), (Paid, 6));
    assert_eq!(store.head(rid).await.unwrap(), Seq(6));
}

#[tokio::test]
async fn an_illegal_status_transition_is_refused_with_the_current_order() {
    let store = store().await;
    let rid = restaurant(&store).await;
    let order = create(&store, rid, simple_order()).await;
    advance(&store, rid, order.id, OrderStatus::Accepted).await;
    let accepted = store.order(rid, order.id).await.unwrap();

    let refused = store
        .set_order_status(rid, order.id, OrderStatus::Rejected, None, None, None)
        .await;

    let Err(StoreError::IllegalTransition { message, current }) = refused else {
        panic!("accepted → rejected must be refused");
    };
    assert_eq!(message, "an order that is accepted cannot become rejected");
    assert_eq!(current, serde_json::to_value(&accepted).unwrap());
    assert_eq!(store.order(rid, order.id).await.unwrap(), accepted);
    assert_eq!(store.head(rid).await.unwrap(), Seq(2));
}

#[tokio::test]
async fn a_stale_if_match_version_is_refused_and_nothing_is_written() {
    let store = store().await;
    let rid = restaurant(&store).await;
    let order = create(&store, rid, simple_order()).await;
    advance(&store, rid, order.id, OrderStatus::Accepted).await;

    let stale = store
        .set_order_status(rid, order.id, OrderStatus::Cancelled, None, Some(1), None)
        .await;

    let Err(StoreError::VersionMismatch { version, current }) = stale else {
        panic!("If-Match 1 on version 2 must be refused");
    };
    assert_eq!(version, 2);
    assert_eq!(current["status"], "accepted");
    let stored = store.order(rid, order.id).await.unwrap();
    assert_eq!((stored.status, stored.version), (OrderStatus::Accepted, 2));
    assert_eq!(store.head(rid).await.unwrap(), Seq(2));
}

#[tokio::test]
async fn a_cancelled_order_keeps_its_reason() {
    let store = store().await;
    let rid = restaurant(&store).await;
    let order = create(&store, rid, simple_order()).await;
    let reason = Some("guest left".to_owned());

    let pending = store
        .set_order_status(rid, order.id, OrderStatus::Cancelled, reason, Some(1), None)
        .await
        .unwrap();
    let cancelled = pending.commit().await.unwrap();

    let stored = store.order(rid, order.id).await.unwrap();
    assert_eq!(stored, cancelled.value);
    assert_eq!(stored.reason.as_deref(), Some("guest left"));
    assert_eq!(cancelled.events[0].data["reason"], "guest left");
}

#[tokio::test]
async fn an_order_becomes_ready_when_every_live_item_is_ready_in_the_same_transaction() {
    let store = store().await;
    let rid = restaurant(&store).await;
    let order = steak_ready_salad_queued(&store, rid).await;
    assert_eq!(order.status, OrderStatus::Accepted, "the salad is queued");

    let salad = order.items[1].id;
    let pending = store.set_item_status(rid, order.id, salad, ItemStatus::Cancelled, None);
    let pending = pending.await.unwrap();

    let [item_event, ready_event] = pending.events() else {
        panic!("an item event, then an order event: {:?}", pending.events())
    };
    assert_eq!(item_event.kind, EventType::OrderItemStatusChanged);
    assert_eq!(
        (item_event.item_id, item_event.data["version"].clone()),
        (Some(salad), 5.into())
    );
    assert_eq!(ready_event.kind, EventType::OrderStatusChanged);
    assert_eq!(ready_event.previous_status.as_deref(), Some("accepted"));
    assert_eq!(
        (ready_event.seq, ready_event.data["version"].clone()),
        (Seq(6), 6.into())
    );
    let ready = pending.commit().await.unwrap().value;
    assert_eq!(
        (ready.status, ready.version, ready.total_cents),
        (OrderStatus::Ready, 6, 5_000)
    );
    assert_eq!(store.order(rid, order.id).await.unwrap(), ready);
    assert_eq!(all_events(&store, rid).await.len(), 6);
}

#[tokio::test]
async fn item_changes_are_refused_outside_the_kitchen_and_for_unknown_items() {
    let store = store().await;
    let rid = restaurant(&store).await;
    let order = create(&store, rid, simple_order()).await;
    let cook = |order: OrderId, item: ItemId| {
        store.set_item_status(rid, order, item, ItemStatus::Cooking, None)
    };

    let not_accepted = cook(order.id, order.items[0].id).await;
    let unknown_item = cook(order.id, ItemId::new()).await;
    let unknown_order = cook(OrderId::new(), order.items[0].id).await;

    let Err(StoreError::IllegalTransition { message, .. }) = not_accepted else {
        panic!("an item of a new order must not start cooking");
    };
    let expected = "an item that is queued cannot become cooking while its order is new";
    assert_eq!(message, expected);
    assert!(matches!(unknown_item, Err(StoreError::NotFound("item"))));
    assert!(matches!(unknown_order, Err(StoreError::NotFound("order"))));
    assert_eq!(store.order(rid, order.id).await.unwrap(), order);
    assert_eq!(store.head(rid).await.unwrap(), Seq(1));
}
