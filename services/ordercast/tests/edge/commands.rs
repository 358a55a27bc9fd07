//! Screens that change orders over their WebSocket: each command runs as
//! the HTTP call it stands for and gets one reply with the call's answer;
//! plus the socket's `hello` and its clean close.

use std::num::NonZeroU32;
use std::time::Duration;

use ordercast::app::Role as ServerRole;
use ordercast_api::WriteRate;
use ordercast_core::{RestaurantId, Role};
use reqwest::StatusCode;
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

use crate::clients::{Resume, Sse, Ws, assert_exactly};
use crate::common::{Backends, TestApp};

const PROBLEMS: &str = "https://ordercast.dev/problems/";

fn order_status(rid: RestaurantId, order: &Value, status: &str) -> Value {
    json!({"command": "order.status", "restaurant_id": rid,
           "order_id": order["order"]["id"], "status": status})
}

/// `reply` refuses its command with `status` and the problem `slug`.
fn assert_refused(reply: &Value, status: u64, slug: &str) {
    assert_eq!(reply["ok"], false, "{reply}");
    assert_eq!(reply["status"], status, "{reply}");
    assert_eq!(
        reply["problem"]["type"],
        format!("{PROBLEMS}{slug}"),
        "{reply}"
    );
    assert_eq!(reply["problem"]["status"], status, "{reply}");
}

/// The restaurant's events in PostgreSQL.
async fn events(app: &TestApp, rid: RestaurantId) -> i64 {
    app.count("SELECT count(*) FROM events WHERE restaurant_id = $1", rid)
        .await
}

/// A kitchen display moves an order over its socket: the reply is the HTTP
/// call's answer, and every screen sees the change once.
async fn moves_an_order_over_the_socket(api: &TestApp, edge: &TestApp) {
    let rid = api.create_restaurant().await;
    let order = api.order(rid).await;
    let kitchen = api.token(Role::Kitchen, rid);
    let mut owner = Sse::connect(
        &edge.base,
        rid,
        &api.token(Role::Owner, rid),
        Resume::since("0"),
    )
    .await;
    let mut ws = Ws::connect(&edge.base, &kitchen).await;
    ws.subscribe(rid, Some(0)).await;

    let reply = ws
        .command("c-1", order_status(rid, &order, "accepted"))
        .await;

    assert_eq!(
        (reply["ok"].as_bool(), reply["status"].as_u64()),
        (Some(true), Some(200)),
        "{reply}"
    );
    let oid = order["order"]["id"].as_str().unwrap();
    let (status, now) = api
        .get(&format!("/v1/restaurants/{rid}/orders/{oid}"), &kitchen)
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        reply["result"]["order"], now,
        "the reply holds the order as written"
    );
    assert_eq!(reply["result"]["seq"], 2);
    assert_eq!(reply["version"], now["version"]);
    ws.until("the status event", |w| w.seqs(rid).len() == 2)
        .await;
    owner.until_count(2).await;
    assert_exactly(&ws.seqs(rid), 1..=2, "the commanding screen");
    assert_exactly(&owner.seqs(), 1..=2, "the owner's screen");
    assert_eq!(ws.replies("c-1").len(), 1, "one reply per command");
}

#[tokio::test]
async fn a_kitchen_display_moves_an_order_with_a_websocket_command() {
    let app = TestApp::spawn().await;
    moves_an_order_over_the_socket(&app, &app).await;
}

#[tokio::test]
async fn a_split_edge_runs_commands_on_the_api_at_its_api_url() {
    let api = TestApp::spawn_with(Backends::fresh().await, ServerRole::Api, |_| {}).await;
    let base = api.base.clone();
    let edge = TestApp::spawn_with(api.backends(), ServerRole::Edge, |s| {
        s.edge.api_url = Some(base);
    })
    .await;
    moves_an_order_over_the_socket(&api, &edge).await;
}

#[tokio::test]
async fn an_edge_without_an_api_answers_commands_unavailable_and_says_why() {
    let api = TestApp::spawn_with(Backends::fresh().await, ServerRole::Api, |_| {}).await;
    let edge = TestApp::spawn_with(api.backends(), ServerRole::Edge, |_| {}).await;
    let rid = api.create_restaurant().await;
    let order = api.order(rid).await;
    let mut ws = Ws::connect(&edge.base, &api.token(Role::Kitchen, rid)).await;

    let reply = ws
        .command("c-1", order_status(rid, &order, "accepted"))
        .await;

    assert_refused(&reply, 503, "unavailable");
    let detail = reply["problem"]["detail"].as_str().unwrap();
    assert!(detail.contains("ORDERCAST_API_URL"), "{detail}");
    assert_eq!(events(&api, rid).await, 1, "nothing written");
}

#[tokio::test]
async fn an_illegal_move_or_a_stale_version_is_refused_with_the_order_as_it_is() {
    let app = TestApp::spawn().await;
    let rid = app.create_restaurant().await;
    let order = app.order(rid).await;
    let mut ws = Ws::connect(&app.base, &app.token(Role::Kitchen, rid)).await;

    let illegal = ws.command("c-1", order_status(rid, &order, "paid")).await;
    let mut stale = order_status(rid, &order, "accepted");
    stale["version"] = json!(order["order"]["version"].as_i64().unwrap() + 5);
    let stale = ws.command("c-2", stale).await;

    assert_eq!(illegal["status"], 409, "{illegal}");
    assert_eq!(illegal["ok"], false);
    assert_eq!(
        illegal["problem"]["type"],
        format!("{PROBLEMS}illegal-transition")
    );
    assert_eq!(illegal["problem"]["current"]["status"], "new");
    // The same answer as the HTTP call's to a stale If-Match.
    assert_refused(&stale, 409, "version-mismatch");
    assert_eq!(
        stale["problem"]["current"]["version"],
        order["order"]["version"]
    );
    assert_eq!(events(&app, rid).await, 1, "nothing written");
}

#[tokio::test]
async fn a_guest_or_another_restaurants_screen_cannot_command_and_nothing_is_written() {
    let app = TestApp::spawn().await;
    let rid = app.create_restaurant().await;
    let other = app.create_restaurant().await;
    let order = app.order(rid).await;
    let guest = app.token_with(Role::Customer, rid, |c| {
        c.session_id = Some("table-9".parse().unwrap());
    });
    let mut guest_ws = Ws::connect(&app.base, &guest).await;
    let mut elsewhere = Ws::connect(&app.base, &app.token(Role::Kitchen, other)).await;

    let hidden = guest_ws
        .command("c-1", order_status(rid, &order, "cancelled"))
        .await;
    let foreign = elsewhere
        .command("c-1", order_status(rid, &order, "accepted"))
        .await;

    assert_refused(&hidden, 404, "not-found");
    assert_refused(&foreign, 403, "forbidden");
    assert_eq!(events(&app, rid).await, 1, "nothing written");
}

#[tokio::test]
async fn a_command_resent_with_its_id_after_a_reconnect_is_applied_once() {
    let app = TestApp::spawn().await;
    let rid = app.create_restaurant().await;
    let order = app.order(rid).await;
    app.set_status(rid, order["order"]["id"].as_str().unwrap(), "accepted")
        .await;
    let item = order["order"]["items"][0]["id"].clone();
    let kitchen = app.token(Role::Kitchen, rid);
    let cooking = json!({"command": "order.item_status", "restaurant_id": rid,
                         "order_id": order["order"]["id"], "item_id": item, "status": "cooking"});
    let mut before = Ws::connect(&app.base, &kitchen).await;
    let first = before.command("c-7", cooking.clone()).await;
    drop(before);

    let mut after = Ws::connect(&app.base, &kitchen).await;
    let again = after.command("c-7", cooking).await;
    let reused = after
        .command("c-7", order_status(rid, &order, "cancelled"))
        .await;

    assert_eq!(first["status"], 200, "{first}");
    assert_eq!(
        first["replayed"],
        Value::Null,
        "a first answer is not marked"
    );
    assert_eq!(again["replayed"], true, "{again}");
    assert_eq!(again["result"], first["result"]);
    assert_eq!(again["version"], first["version"]);
    assert_eq!(events(&app, rid).await, 3, "applied once");
    assert_refused(&reused, 422, "idempotency-key-reused");
}

#[tokio::test]
async fn a_waiter_acknowledges_a_tables_request_over_the_socket() {
    let app = TestApp::spawn().await;
    let rid = app.create_restaurant().await;
    let (status, created) = app
        .post(
            &format!("/v1/restaurants/{rid}/requests"),
            &app.token(Role::Owner, rid),
            json!({"kind": "water", "table": "4"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let waiter = app.token_with(Role::Waiter, rid, |c| {
        c.waiter_id = Some("ana".parse().unwrap());
    });
    let mut ws = Ws::connect(&app.base, &waiter).await;

    let reply = ws
        .command(
            "w-1",
            json!({"command": "request.status", "restaurant_id": rid,
                   "request_id": created["request"]["id"], "status": "acknowledged"}),
        )
        .await;

    assert_eq!(reply["status"], 200, "{reply}");
    assert_eq!(reply["result"]["request"]["status"], "acknowledged");
    assert_eq!(reply["result"]["seq"], 2);
}

#[tokio::test]
async fn past_the_restaurants_command_rate_a_command_gets_429_with_retry_after() {
    let rate = WriteRate::one_every(Duration::from_secs(3_600), NonZeroU32::new(2).unwrap());
    let app = TestApp::spawn_with(Backends::fresh().await, ServerRole::All, |s| {
        s.api.write_budgets.restaurant = rate;
    })
    .await;
    let rid = app.create_restaurant().await;
    let order = app.order(rid).await;
    let mut ws = Ws::connect(&app.base, &app.token(Role::Kitchen, rid)).await;

    let first = ws
        .command("c-1", order_status(rid, &order, "accepted"))
        .await;
    let refused = ws
        .command("c-2", order_status(rid, &order, "in_progress"))
        .await;

    assert_eq!(first["status"], 200, "{first}");
    assert_refused(&refused, 429, "rate-limited");
    let retry_after = refused["retry_after"].as_u64().unwrap();
    assert!((3_000..=3_600).contains(&retry_after), "{refused}");
    assert_eq!(
        events(&app, rid).await,
        2,
        "the refused command wrote nothing"
    );
}

#[tokio::test]
async fn an_acknowledgement_with_an_id_is_answered() {
    let app = TestApp::spawn().await;
    let rid = app.create_restaurant().await;
    app.order(rid).await;
    let mut ws = Ws::connect(&app.base, &app.token(Role::Kitchen, rid)).await;
    ws.subscribe(rid, Some(0)).await;
    ws.until("the event", |w| w.seqs(rid).len() == 1).await;

    ws.send(json!({"type": "ack", "id": "a-1", "restaurant_id": rid, "seq": 1}))
        .await;
    let acked = ws.reply("a-1").await;
    ws.send(json!({"type": "ack", "id": "a-2", "restaurant_id": RestaurantId::new(), "seq": 1}))
        .await;
    let unknown = ws.reply("a-2").await;

    assert_eq!(acked["status"], 200, "{acked}");
    assert_eq!(acked["result"], json!({"restaurant_id": rid, "seq": 1}));
    assert_eq!(unknown["status"], 404, "{unknown}");
}

#[tokio::test]
async fn the_first_frame_says_hello_with_the_limits_a_client_keeps_to() {
    let app = TestApp::spawn().await;
    let rid = app.create_restaurant().await;
    let mut ws = Ws::connect(&app.base, &app.token(Role::Kitchen, rid)).await;

    ws.send(json!({"type": "ping"})).await;
    ws.until("pong", |w| !w.of_type("pong").is_empty()).await;

    let hello = ws.hello.clone().expect("a hello");
    assert_eq!(hello["server"], "ordercast");
    assert_eq!(hello["version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(hello["protocol"], "ordercast.v1");
    assert_eq!(hello["ping_interval_ms"], 30_000);
    assert!(hello["expires_at"].as_u64().unwrap() > 0);
    assert_eq!(
        hello["limits"],
        json!({"max_message_bytes": 16_384, "max_subscriptions": 100,
               "messages_per_second": 20, "commands_in_flight": 8})
    );
}

#[tokio::test]
async fn a_clients_close_is_echoed_with_its_code() {
    let app = TestApp::spawn().await;
    let rid = app.create_restaurant().await;
    let mut ws = Ws::connect(&app.base, &app.token(Role::Kitchen, rid)).await;
    ws.subscribe(rid, None).await;

    let close = CloseFrame {
        code: CloseCode::from(4000),
        reason: "screen off".into(),
    };
    assert!(ws.send_raw(Message::Close(Some(close))).await);

    assert_eq!(ws.until_closed().await, (4000, "screen off".to_owned()));
}
