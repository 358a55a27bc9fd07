use std::time::Duration;

use ordercast::app::Role as ServerRole;
use ordercast_api::MAX_CUSTOM_DATA_BYTES;
use ordercast_core::Role;
use reqwest::StatusCode;
use serde_json::json;
use tokio::io::AsyncWriteExt;
use tokio_tungstenite::tungstenite::Message;

use crate::clients::{Resume, Sse, Ws, assert_exactly, poll};
use crate::common::{Backends, TestApp};
use ordercast_testkit::eventually;

/// Events published per round, about 800 KiB together.
const ROUND: usize = 100;

/// A custom event about as large as one may be, to fill socket buffers
/// quickly.
async fn big_event(app: &TestApp, rid: ordercast_core::RestaurantId) {
    let (status, body) = app
        .post(
            &format!("/v1/restaurants/{rid}/events"),
            &app.token(Role::Owner, rid),
            json!({"type": "x.load", "audience": {"roles": ["kitchen"]}, "data": {"pad": "x".repeat(MAX_CUSTOM_DATA_BYTES - 64)}}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
}

#[tokio::test]
async fn a_client_that_never_reads_delays_no_one_and_is_cut() {
    let app = TestApp::spawn_with(Backends::fresh().await, ServerRole::All, |s| {
        s.server.write_timeout = Duration::from_secs(1);
        s.edge.ring_size = 100;
        // The 100 other screens share one kitchen token.
        s.edge.max_connections_per_principal = None;
        s.api.write_budgets.restaurant = None;
    })
    .await;
    let rid = app.create_restaurant().await;
    let kitchen = app.token(Role::Kitchen, rid);
    // The stuck client: a raw socket that sends the request, then never reads.
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let mut stuck = socket
        .connect(app.base.trim_start_matches("http://").parse().unwrap())
        .await
        .unwrap();
    let request = format!(
        "GET /v1/restaurants/{rid}/stream HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {kitchen}\r\n\r\n"
    );
    stuck.write_all(request.as_bytes()).await.unwrap();
    let mut others = Vec::new();
    for _ in 0..100 {
        others.push(Sse::connect(&app.base, rid, &kitchen, Resume::default()).await);
    }
    // Publish until the stuck socket's buffers are full and its writes stall.
    let cut = r#"ordercast_slow_consumer_actions_total{action="disconnected"}"#;
    let mut sent = 0;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while app.metric(cut).await < 1.0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the stuck client was never cut"
        );
        for _ in 0..ROUND {
            big_event(&app, rid).await;
            sent += 1;
        }
        // Everyone else is served meanwhile, in full and in order.
        for other in others.iter_mut() {
            other.until_count(sent).await;
        }
    }
    for (i, other) in others.iter().enumerate() {
        assert_exactly(&other.seqs(), 1..=sent as u64, &format!("reader {i}"));
    }
    // Memory stays bounded: the restaurant's ring holds at most its size.
    let (_, stats) = app.get_admin("/debug/stats").await;
    assert!(
        stats["edge"]["ring_frames"].as_u64().unwrap() <= 100,
        "{stats}"
    );
    drop(stuck);
}

#[tokio::test]
async fn a_websocket_that_never_reads_is_cut_by_the_write_timeout() {
    let app = TestApp::spawn_with(Backends::fresh().await, ServerRole::All, |s| {
        s.server.write_timeout = Duration::from_secs(1);
        s.api.write_budgets.restaurant = None;
    })
    .await;
    let rid = app.create_restaurant().await;
    let kitchen = app.token(Role::Kitchen, rid);
    let mut stuck = Ws::connect_small(&app.base, &kitchen).await;
    stuck.subscribe(rid, None).await;
    let mut bystander = Ws::connect(&app.base, &kitchen).await;
    bystander.subscribe(rid, None).await;

    // The stuck client reads nothing more; publish until its socket stalls.
    let cut = r#"ordercast_disconnects_total{reason="slow_consumer",transport="websocket"}"#;
    let mut sent = 0;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while app.metric(cut).await < 1.0 {
        assert!(tokio::time::Instant::now() < deadline, "never cut");
        for _ in 0..ROUND {
            big_event(&app, rid).await;
            sent += 1;
        }
        bystander
            .until("every event", |w| w.seqs(rid).len() == sent)
            .await;
    }

    assert_exactly(&bystander.seqs(rid), 1..=sent as u64, "the bystander");
    let stalled = r#"ordercast_slow_consumer_actions_total{action="disconnected"}"#;
    assert!(app.metric(stalled).await >= 1.0);
}

#[tokio::test]
async fn abuse_gets_a_clean_error_or_close_and_bystanders_are_unaffected() {
    let app = TestApp::spawn_with(Backends::fresh().await, ServerRole::All, |s| {
        s.edge.ws_max_message = 1024;
        s.edge.ws_rate = 10;
        s.edge.max_subscriptions = 100;
    })
    .await;
    let rid = app.create_restaurant().await;
    let owner = app.token(Role::Owner, rid);
    let mut bystander = Sse::connect(&app.base, rid, &owner, Resume::default()).await;

    // Malformed JSON and unknown messages: an error frame, the socket lives.
    let mut ws = Ws::connect(&app.base, &owner).await;
    ws.send_raw(Message::Text("{not json".into())).await;
    ws.send(json!({"type": "teleport"})).await;
    ws.send(json!({"type": "subscribe", "restaurant_id": rid, "since": -3}))
        .await;
    ws.send(json!({"type": "subscribe", "restaurant_id": rid, "since": 99}))
        .await;
    ws.until("four errors", |w| w.of_type("error").len() >= 4)
        .await;
    let codes = ws.error_codes();
    assert_eq!(
        codes,
        [
            json!("invalid_message"),
            json!("invalid_message"),
            json!("invalid_cursor"),
            json!("invalid_cursor")
        ]
    );
    ws.send(json!({"type": "ping"})).await;
    ws.until("a pong", |w| !w.of_type("pong").is_empty()).await;

    // SSE and long-poll: an invalid cursor is a 400 problem.
    for bad in ["abc", "-1", "99"] {
        let refused = Sse::open(
            &app.base,
            rid,
            &owner,
            Resume {
                since: Some(bad.into()),
                ..Resume::default()
            },
        )
        .await;
        let (status, problem) = refused.err().expect("refused");
        assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}");
        assert_eq!(
            problem["type"],
            "https://ordercast.dev/problems/invalid-cursor"
        );
    }
    let (status, _) = poll(&app.base, rid, &owner, "since=x").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, _) = poll(&app.base, rid, &owner, "limit=100000").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);

    // Subscribing to 10 000 restaurants: refused past the limit, politely.
    let mut greedy = Ws::connect(&app.base, &app.platform_admin()).await;
    let mut refused = 0;
    for i in 0..10_000u32 {
        let id = format!("00000000-0000-4000-8000-{i:012}");
        let frame = json!({"type": "subscribe", "restaurant_id": id}).to_string();
        if !greedy.send_raw(Message::Text(frame.into())).await {
            break;
        }
        refused += 1;
    }
    // The rate limit closes it first (10/s, bursts of 20): 1008.
    let (code, _) = greedy.until_closed().await;
    assert_eq!(code, 1008, "message flood");
    assert!(refused >= 20);
    let mut many = Ws::connect(&app.base, &owner).await;
    for _ in 0..15 {
        many.send(json!({"type": "subscribe", "restaurant_id": rid}))
            .await;
    }
    many.until("subscribed", |w| !w.of_type("subscribed").is_empty())
        .await;

    // Oversized frame: close 1009.
    let mut big = Ws::connect(&app.base, &owner).await;
    big.send_raw(Message::Text("x".repeat(4096).into())).await;
    assert_eq!(big.until_closed().await.0, 1009);

    // The bystander never noticed.
    app.order(rid).await;
    bystander.until_count(1).await;
    assert_exactly(&bystander.seqs(), [1], "bystander");
}

#[tokio::test]
async fn a_socket_may_hold_only_so_many_subscriptions() {
    let app = TestApp::spawn_with(Backends::fresh().await, ServerRole::All, |s| {
        s.edge.max_subscriptions = 3;
    })
    .await;
    let mut restaurants = Vec::new();
    for _ in 0..4 {
        restaurants.push(app.create_restaurant().await);
    }
    let admin = app.platform_admin();
    let mut ws = Ws::connect(&app.base, &admin).await;
    for rid in &restaurants {
        ws.send(json!({"type": "subscribe", "restaurant_id": rid}))
            .await;
    }
    ws.until("3 subscribed and 1 error", |w| {
        w.of_type("subscribed").len() == 3 && w.of_type("error").len() == 1
    })
    .await;
    assert_eq!(ws.of_type("error")[0]["code"], "too_many_subscriptions");
    // Unsubscribing frees a slot.
    ws.send(json!({"type": "unsubscribe", "restaurant_id": restaurants[0]}))
        .await;
    ws.send(json!({"type": "subscribe", "restaurant_id": restaurants[3]}))
        .await;
    ws.until("the fourth subscribed", |w| {
        w.of_type("subscribed").len() == 4
    })
    .await;
    app.order(restaurants[3]).await;
    app.order(restaurants[0]).await;
    app.order(restaurants[1]).await;
    ws.until("two events", |w| w.of_type("event").len() >= 2)
        .await;
    assert_eq!(ws.seqs(restaurants[3]), vec![1]);
    assert_eq!(ws.seqs(restaurants[1]), vec![1]);
    assert!(ws.seqs(restaurants[0]).is_empty(), "unsubscribed");
}

#[tokio::test]
async fn past_the_connection_limit_clients_get_503_with_retry_after() {
    let app = TestApp::spawn_with(Backends::fresh().await, ServerRole::All, |s| {
        s.edge.max_connections = 2;
    })
    .await;
    let rid = app.create_restaurant().await;
    let token = app.token(Role::Kitchen, rid);
    let _a = Sse::connect(&app.base, rid, &token, Resume::default()).await;
    let _b = Sse::connect(&app.base, rid, &token, Resume::default()).await;
    let response = reqwest::Client::new()
        .get(format!("{}/v1/restaurants/{rid}/stream", app.base))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(response.headers()["retry-after"], "1");
    let problem: serde_json::Value = response.json().await.unwrap();
    assert_eq!(
        problem["type"],
        "https://ordercast.dev/problems/too-many-connections"
    );
}

#[tokio::test]
async fn a_client_that_hangs_up_gives_back_its_connection_before_any_write() {
    // One connection allowed and no heartbeat for an hour: only noticing
    // the hang-up itself can free the slot for the screen's reconnect.
    let app = TestApp::spawn_with(Backends::fresh().await, ServerRole::All, |s| {
        s.edge.max_connections = 1;
        s.edge.heartbeat = Duration::from_secs(3600);
    })
    .await;
    let rid = app.create_restaurant().await;
    let token = app.token(Role::Kitchen, rid);
    let sse = r#"ordercast_connections{transport="sse"}"#;
    let first = Sse::connect(&app.base, rid, &token, Resume::default()).await;
    assert_eq!(app.metric(sse).await, 1.0);
    drop(first);
    eventually(
        "the hung-up stream to close",
        Duration::from_secs(20),
        || async { (app.metric(sse).await == 0.0).then_some(()) },
    )
    .await;
    let mut again = Sse::connect(&app.base, rid, &token, Resume::default()).await;
    app.order(rid).await;
    again.until_count(1).await;
}
