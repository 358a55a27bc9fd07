//! What a table's guests see beyond their orders: their waiter changing
//! (`session.transferred`) and the order number they will be called by.

use ordercast_core::{RestaurantId, Role};
use serde_json::{Value, json};

use crate::clients::{Resume, Sse, Ws, poll};
use crate::common::{TestApp, simple_order};

fn guest(app: &TestApp, rid: RestaurantId, session: &str) -> String {
    app.token_with(Role::Customer, rid, |c| {
        c.session_id = Some(session.parse().unwrap())
    })
}

fn waiter(app: &TestApp, rid: RestaurantId, id: &str) -> String {
    app.token_with(Role::Waiter, rid, |c| {
        c.waiter_id = Some(id.parse().unwrap())
    })
}

/// An order of table session `session`, taken by the token's waiter.
async fn order_of(app: &TestApp, rid: RestaurantId, token: &str, session: &str) -> Value {
    let mut body = simple_order();
    body["session_id"] = json!(session);
    let (_, created) = app.create_order(rid, token, body).await;
    created["order"].clone()
}

fn transfers(sse: &Sse) -> Vec<&Value> {
    sse.events
        .iter()
        .filter(|e| e.kind == "session.transferred")
        .map(|e| &e.data["data"])
        .collect()
}

#[tokio::test]
async fn a_guest_learns_its_waiter_changed_and_no_other_table_hears_of_it() {
    let app = TestApp::spawn().await;
    let rid = app.create_restaurant().await;
    let (anna, bruno) = (waiter(&app, rid, "anna"), waiter(&app, rid, "bruno"));
    let s1_order = order_of(&app, rid, &anna, "s1").await;
    order_of(&app, rid, &anna, "s2").await;
    order_of(&app, rid, &bruno, "s3").await;
    let mut s1 = Sse::connect(&app.base, rid, &guest(&app, rid, "s1"), Resume::default()).await;
    let mut s1_ws = Ws::connect(&app.base, &guest(&app, rid, "s1")).await;
    s1_ws.subscribe(rid, None).await;
    let mut s2 = Sse::connect(&app.base, rid, &guest(&app, rid, "s2"), Resume::default()).await;
    let mut s3 = Sse::connect(&app.base, rid, &guest(&app, rid, "s3"), Resume::default()).await;
    let mut kitchen = Sse::connect(
        &app.base,
        rid,
        &app.token(Role::Kitchen, rid),
        Resume::default(),
    )
    .await;

    // Anna hands table s1 (only) over to Carla.
    let path = format!("/v1/restaurants/{rid}/sessions/transfer");
    let body = json!({"from_waiter_id": "anna", "to_waiter_id": "carla", "session_ids": ["s1"]});
    let (status, moved) = app.post(&path, &anna, body).await;
    assert_eq!(status, 200, "{moved}");
    // Then one more order for each table: once it arrives, everything
    // before it has too.
    for (token, session) in [(&anna, "s2"), (&bruno, "s3"), (&anna, "s1")] {
        order_of(&app, rid, token, session).await;
    }

    // Streams opened without a cursor start live: only what follows.
    s1.until("the new order", |s| s.events.len() == 2).await;
    s2.until("the new order", |s| s.events.len() == 1).await;
    s3.until("the new order", |s| s.events.len() == 1).await;
    kitchen.until("three orders", |s| s.events.len() == 3).await;
    let expected =
        json!({"session_id": "s1", "to_waiter_id": "carla", "order_ids": [s1_order["id"]]});
    assert_eq!(
        transfers(&s1),
        [&expected],
        "s1's guests, with only their own"
    );
    let event = s1
        .events
        .iter()
        .find(|e| e.kind == "session.transferred")
        .unwrap();
    assert_eq!(
        event.data["audience"],
        json!({"roles": ["customer"], "session_id": "s1"})
    );
    assert!(transfers(&s2).is_empty(), "s2 is still anna's: not told");
    assert!(
        transfers(&s3).is_empty(),
        "another waiter's table: not told"
    );
    assert!(transfers(&kitchen).is_empty(), "the kitchen has no waiters");
    s1_ws
        .until("the transfer on the WebSocket", |w| {
            w.of_type("event")
                .iter()
                .any(|f| f["event"]["type"] == "session.transferred")
        })
        .await;
    let (_, polled) = poll(&app.base, rid, &guest(&app, rid, "s1"), "since=0&wait=0").await;
    let polled: Vec<_> = polled["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["type"] == "session.transferred")
        .map(|e| e["data"].clone())
        .collect();
    assert_eq!(polled, [expected]);
}

#[tokio::test]
async fn every_transport_carries_the_order_number_in_every_order_event() {
    let app = TestApp::spawn().await;
    let rid = app.create_restaurant().await;
    let kitchen = app.token(Role::Kitchen, rid);
    let mut sse = Sse::connect(&app.base, rid, &kitchen, Resume::default()).await;
    let mut ws = Ws::connect(&app.base, &kitchen).await;
    ws.subscribe(rid, None).await;

    app.order(rid).await;
    let second = app.order(rid).await;
    let id = second["order"]["id"].as_str().unwrap();
    app.set_status(rid, id, "accepted").await;
    let item = second["order"]["items"][0]["id"].as_str().unwrap();
    let (status, body) = app
        .post(
            &format!("/v1/restaurants/{rid}/orders/{id}/items/{item}/status"),
            &kitchen,
            json!({"status": "cooking"}),
        )
        .await;
    assert_eq!(status, 200, "{body}");

    let expected = [
        (1, "order.created"),
        (2, "order.created"),
        (2, "order.status_changed"),
        (2, "order.item_status_changed"),
    ];
    let numbered = |events: Vec<(i64, String)>| {
        let events: Vec<(i64, &str)> = events.iter().map(|(n, t)| (*n, t.as_str())).collect();
        assert_eq!(events, expected);
    };
    sse.until_count(4).await;
    numbered(
        sse.events
            .iter()
            .map(|e| (e.data["data"]["number"].as_i64().unwrap(), e.kind.clone()))
            .collect(),
    );
    ws.until("four events", |w| w.seqs(rid).len() == 4).await;
    numbered(
        ws.of_type("event")
            .iter()
            .map(|f| {
                (
                    f["event"]["data"]["number"].as_i64().unwrap(),
                    f["event"]["type"].as_str().unwrap().to_owned(),
                )
            })
            .collect(),
    );
    let (_, polled) = poll(&app.base, rid, &kitchen, "since=0&wait=0").await;
    numbered(
        polled["events"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| {
                (
                    e["data"]["number"].as_i64().unwrap(),
                    e["type"].as_str().unwrap().to_owned(),
                )
            })
            .collect(),
    );
}
