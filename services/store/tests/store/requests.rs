//! Waiter requests and shift changes.

use ordercast_core::order::Order;
use ordercast_core::request::{RequestKind, RequestStatus};
use ordercast_core::{EventType, RequestId, RestaurantId, Role};
use ordercast_store::{NewRequest, Store, StoreError};
use serde_json::json;

use crate::common::{
    create, create_request, pay, restaurant, session_id, session_order, store, waiter_id,
};

fn bill(session: Option<&str>) -> NewRequest {
    NewRequest {
        kind: RequestKind::Bill,
        table: "12".into(),
        session_id: session.map(session_id),
        message: Some("card, please".into()),
    }
}

#[tokio::test]
async fn a_request_goes_to_the_waiter_of_its_sessions_latest_order() {
    let store = store().await;
    let rid = restaurant(&store).await;
    create(&store, rid, session_order("s1", "anna")).await;
    create(&store, rid, session_order("s1", "bruno")).await;
    create(&store, rid, session_order("s2", "carla")).await;

    let of_s1 = create_request(&store, rid, bill(Some("s1"))).await;
    let of_s3 = create_request(&store, rid, bill(Some("s3"))).await;
    let anonymous = create_request(&store, rid, bill(None)).await;

    assert_eq!(of_s1.waiter_id, Some(waiter_id("bruno")));
    assert_eq!(of_s3.waiter_id, None, "s3 has no order");
    assert_eq!(anonymous.waiter_id, None);
    assert_eq!(store.request(rid, of_s1.id).await.unwrap(), of_s1);
}

#[tokio::test]
async fn a_request_is_acknowledged_then_resolved_and_goes_no_further() {
    let store = store().await;
    let rid = restaurant(&store).await;
    let id = create_request(&store, rid, bill(None)).await.id;

    for to in [RequestStatus::Acknowledged, RequestStatus::Resolved] {
        let pending = store.set_request_status(rid, id, to, None, None);
        let pending = pending.await.unwrap();
        assert_eq!(pending.events()[0].kind, EventType::RequestStatusChanged);
        pending.commit().await.unwrap();
    }
    let reopened = store
        .set_request_status(rid, id, RequestStatus::Cancelled, None, None)
        .await;
    let unknown =
        store.set_request_status(rid, RequestId::new(), RequestStatus::Resolved, None, None);

    let Err(StoreError::IllegalTransition { current, .. }) = reopened else {
        panic!("a resolved request cannot be cancelled");
    };
    assert_eq!(
        (current["status"].clone(), current["version"].clone()),
        ("resolved".into(), 3.into())
    );
    assert!(matches!(
        unknown.await,
        Err(StoreError::NotFound("request"))
    ));
    let stored = store.request(rid, id).await.unwrap();
    assert_eq!(
        (stored.status, stored.version),
        (RequestStatus::Resolved, 3)
    );
    assert_eq!(store.head(rid).await.unwrap().0, 3);
}

/// Anna's orders: s1's open one and paid one, and s2's; Bruno's of s1;
/// and a bill asked for by s2. Returns all but s1's open order.
async fn anna_and_bruno(store: &Store, rid: RestaurantId) -> (Vec<Order>, RequestId) {
    let paid = create(store, rid, session_order("s1", "anna")).await;
    pay(store, rid, paid.id).await;
    let mut others = vec![store.order(rid, paid.id).await.unwrap()];
    others.push(create(store, rid, session_order("s2", "anna")).await);
    others.push(create(store, rid, session_order("s1", "bruno")).await);
    (
        others,
        create_request(store, rid, bill(Some("s2"))).await.id,
    )
}

#[tokio::test]
async fn a_shift_change_hands_over_only_the_waiters_open_orders_and_requests_of_the_sessions() {
    let store = store().await;
    let rid = restaurant(&store).await;
    let open = create(&store, rid, session_order("s1", "anna")).await;
    let s1_bill = create_request(&store, rid, bill(Some("s1"))).await;
    let (others, s2_bill) = anna_and_bruno(&store, rid).await;
    let (anna, carla) = (waiter_id("anna"), waiter_id("carla"));

    let s1 = Some(vec![session_id("s1")]);
    let pending = store.transfer_sessions(rid, anna.clone(), carla.clone(), s1, None);
    let transfer = pending.await.unwrap().commit().await.unwrap();

    assert_eq!(transfer.value.order_ids, [open.id]);
    assert_eq!(transfer.value.session_ids, [session_id("s1")]);
    let [staff, guests] = transfer.events.as_slice() else {
        panic!("one event for the staff, one for s1's guests")
    };
    assert_eq!(staff.kind, EventType::SessionTransferred);
    assert_eq!(staff.data, serde_json::to_value(&transfer.value).unwrap());
    assert_eq!(guests.kind, EventType::SessionTransferred);
    assert_eq!(
        (
            guests.audience.roles.as_slice(),
            &guests.audience.session_id
        ),
        ([Role::Customer].as_slice(), &Some(session_id("s1")))
    );
    assert_eq!(
        guests.data,
        json!({"session_id": "s1", "to_waiter_id": "carla", "order_ids": [open.id]})
    );
    let moved = store.order(rid, open.id).await.unwrap();
    assert_eq!((moved.waiter_id, moved.version), (Some(carla.clone()), 2));
    for kept in others {
        assert_eq!(store.order(rid, kept.id).await.unwrap(), kept, "untouched");
    }
    let handed_over = store.request(rid, s1_bill.id).await.unwrap();
    assert_eq!(
        (handed_over.waiter_id, handed_over.version),
        (Some(carla), 2)
    );
    assert_eq!(
        store.request(rid, s2_bill).await.unwrap().waiter_id,
        Some(anna)
    );
}
