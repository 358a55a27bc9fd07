//! Snapshots: the orders a viewer may list are exactly those whose events
//! it receives, as of one seq.

use std::collections::BTreeSet;

use ordercast_core::order::OrderStatus;
use ordercast_core::{OrderId, Role, Seq, Viewer};
use ordercast_store::{NewOrder, Page, SNAPSHOT_LIMIT, SNAPSHOT_MAX_BYTES};

use crate::common::{
    advance, create, restaurant, session_id, session_order, simple_order, store, waiter_id,
};

/// The newest orders, as many as a page may hold.
const FIRST: Page = Page {
    after: None,
    limit: SNAPSHOT_LIMIT,
    max_bytes: SNAPSHOT_MAX_BYTES,
};

fn viewer(role: Role, waiter: Option<&str>, session: Option<&str>) -> Viewer {
    Viewer {
        role,
        waiter_id: waiter.map(waiter_id),
        session_id: session.map(session_id),
    }
}

#[tokio::test]
async fn every_viewer_lists_exactly_the_orders_whose_events_it_receives() {
    let store = store().await;
    let rid = restaurant(&store).await;
    let unassigned = NewOrder {
        session_id: Some(session_id("s1")),
        ..simple_order()
    };
    let mut orders = vec![create(&store, rid, unassigned).await];
    for (session, waiter) in [("s1", "w1"), ("s2", "w2"), ("s2", "w1")] {
        orders.push(create(&store, rid, session_order(session, waiter)).await);
    }
    orders.push(create(&store, rid, simple_order()).await);

    let viewers = [
        viewer(Role::Owner, None, None),
        viewer(Role::Kitchen, None, None),
        viewer(Role::Waiter, Some("w1"), None),
        viewer(Role::Waiter, None, None),
        viewer(Role::Customer, None, Some("s2")),
        viewer(Role::Customer, None, None),
    ];
    for v in viewers {
        let listed = store.visible_orders(rid, &v, true, FIRST).await.unwrap();
        let got: BTreeSet<OrderId> = listed.orders.iter().map(|o| o.id).collect();
        let want: BTreeSet<OrderId> = orders
            .iter()
            .filter(|o| v.may_see(&o.audience()))
            .map(|o| o.id)
            .collect();
        assert_eq!(got, want, "{v:?}");
        assert_eq!(listed.seq, Seq(5), "{v:?}");
    }
    assert_eq!(
        store
            .visible_orders(rid, &viewer(Role::Waiter, Some("w1"), None), true, FIRST)
            .await
            .unwrap()
            .orders
            .len(),
        4,
        "w1's two, the unassigned two"
    );
}

#[tokio::test]
async fn an_open_snapshot_leaves_out_finished_orders_and_reflects_their_events() {
    let store = store().await;
    let rid = restaurant(&store).await;
    let open = create(&store, rid, simple_order()).await;
    let rejected = create(&store, rid, simple_order()).await;
    advance(&store, rid, rejected.id, OrderStatus::Rejected).await;
    let owner = viewer(Role::Owner, None, None);

    let listed = store
        .visible_orders(rid, &owner, true, FIRST)
        .await
        .unwrap();
    let all = store
        .visible_orders(rid, &owner, false, FIRST)
        .await
        .unwrap();

    assert_eq!(
        listed.orders.iter().map(|o| o.id).collect::<Vec<_>>(),
        [open.id]
    );
    assert_eq!(all.orders.len(), 2);
    assert_eq!((listed.seq, all.seq), (Seq(3), Seq(3)));
}
