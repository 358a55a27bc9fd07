use std::time::{Duration, SystemTime, UNIX_EPOCH};

use ordercast_core::Role;
use reqwest::StatusCode;
use serde_json::json;
use tokio::time::Instant;

use crate::clients::{Resume, Sse, Ws, poll};
use crate::common::{TestApp, mint, simple_order};
use ordercast_testkit::eventually;

#[tokio::test]
async fn a_token_for_one_restaurant_cannot_watch_another() {
    let app = TestApp::spawn().await;
    let a = app.create_restaurant().await;
    let b = app.create_restaurant().await;
    let token_a = app.token(Role::Owner, a);

    let refused = Sse::open(&app.base, b, &token_a, Resume::default()).await;
    let (status, problem) = refused.err().expect("refused");
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(problem["type"], "https://ordercast.dev/problems/forbidden");
    let (status, _) = poll(&app.base, b, &token_a, "wait=0").await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, _) = poll(&app.base, b, "not-a-token", "wait=0").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);

    let mut ws = Ws::connect(&app.base, &token_a).await;
    ws.send(json!({"type": "subscribe", "restaurant_id": b}))
        .await;
    ws.until("an error frame", |w| !w.of_type("error").is_empty())
        .await;
    let error = ws.of_type("error")[0].clone();
    assert_eq!(error["code"], "forbidden");
    assert_eq!(error["restaurant_id"], b.to_string());
    // B's events never reach the socket, A's do.
    app.order(b).await;
    ws.send(json!({"type": "subscribe", "restaurant_id": a}))
        .await;
    ws.until("subscribed to A", |w| !w.of_type("subscribed").is_empty())
        .await;
    app.order(a).await;
    ws.until("A's event", |w| !w.of_type("event").is_empty())
        .await;
    assert!(ws.seqs(b).is_empty());
    assert_eq!(ws.seqs(a), vec![1]);
}

#[tokio::test]
async fn a_customer_sees_only_its_own_table_session() {
    let app = TestApp::spawn().await;
    let rid = app.create_restaurant().await;
    let owner = app.token(Role::Owner, rid);
    let s1 = app.token_with(Role::Customer, rid, |c| {
        c.session_id = Some("s1".parse().unwrap())
    });
    let mut customer = Sse::connect(&app.base, rid, &s1, Resume::default()).await;
    let mut ws = Ws::connect(&app.base, &s1).await;
    ws.subscribe(rid, None).await;

    let order = |session: &str| {
        let mut body = simple_order();
        body["session_id"] = json!(session);
        body
    };
    let (_, theirs) = app.create_order(rid, &owner, order("s2")).await;
    let (_, mine) = app.create_order(rid, &owner, order("s1")).await;
    app.set_status(rid, theirs["order"]["id"].as_str().unwrap(), "accepted")
        .await;
    app.set_status(rid, mine["order"]["id"].as_str().unwrap(), "accepted")
        .await;

    customer.until_count(2).await;
    assert_eq!(
        customer.seqs(),
        vec![2, 4],
        "only session s1's events (seq 2 and 4)"
    );
    assert!(
        customer
            .events
            .iter()
            .all(|e| e.data["audience"]["session_id"] == "s1")
    );
    ws.until("two events", |w| w.seqs(rid).len() == 2).await;
    assert_eq!(ws.seqs(rid), vec![2, 4]);
    let (_, polled) = poll(&app.base, rid, &s1, "since=0&wait=0").await;
    let seqs: Vec<_> = polled["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["seq"].clone())
        .collect();
    assert_eq!(seqs, vec![json!(2), json!(4)]);
    assert_eq!(polled["next"], 4);
}

#[tokio::test]
async fn a_waiter_never_sees_another_waiters_notification_nor_a_kitchen_staff_only_one() {
    let app = TestApp::spawn().await;
    let rid = app.create_restaurant().await;
    let owner = app.token(Role::Owner, rid);
    let w1 = app.token_with(Role::Waiter, rid, |c| {
        c.waiter_id = Some("w1".parse().unwrap())
    });
    let w2 = app.token_with(Role::Waiter, rid, |c| {
        c.waiter_id = Some("w2".parse().unwrap())
    });
    let kitchen = app.token(Role::Kitchen, rid);
    let mut waiter1 = Sse::connect(&app.base, rid, &w1, Resume::default()).await;
    let mut waiter2 = Sse::connect(&app.base, rid, &w2, Resume::default()).await;
    let mut kds = Sse::connect(&app.base, rid, &kitchen, Resume::default()).await;
    let notify = |audience: serde_json::Value| json!({"audience": audience, "urgency": "urgent", "title": "Table 4", "message": "needs you"});
    let path = format!("/v1/restaurants/{rid}/notifications");
    for audience in [
        json!({"roles": ["waiter"], "waiter_id": "w2"}),
        json!({"roles": ["kitchen"]}),
        json!({"roles": ["waiter", "kitchen"]}),
    ] {
        let (status, body) = app.post(&path, &owner, notify(audience)).await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
    }
    waiter1.until_count(1).await;
    waiter2.until_count(2).await;
    kds.until_count(2).await;
    assert_eq!(
        waiter1.seqs(),
        vec![3],
        "w1: only the untargeted waiter notification"
    );
    assert_eq!(waiter2.seqs(), vec![1, 3]);
    assert_eq!(kds.seqs(), vec![2, 3]);
}

/// A kitchen token that expired 25 s ago: still inside the verifier's 30 s
/// clock-skew allowance, so accepted, with ~5 s of validity left.
fn expiring_kitchen(restaurants: Vec<String>) -> String {
    mint(Role::Kitchen, restaurants, |c| {
        c.exp = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs()
            - 25;
    })
}

#[tokio::test]
async fn an_open_stream_ends_when_its_token_expires() {
    let app = TestApp::spawn().await;
    let rid = app.create_restaurant().await;
    let quiet = app.create_restaurant().await;
    let expiring = expiring_kitchen(vec![rid.to_string(), quiet.to_string()]);
    let long_poll = tokio::spawn({
        let (base, token) = (app.base.clone(), expiring.clone());
        async move {
            let asked = Instant::now();
            let (status, page) = poll(&base, quiet, &token, "wait=25").await;
            (status, page, asked.elapsed())
        }
    });
    let mut sse = Sse::connect(&app.base, rid, &expiring, Resume::default()).await;
    let mut ws = Ws::connect(&app.base, &expiring).await;
    ws.subscribe(rid, None).await;

    // Events before the expiry arrive; then each stream is ended.
    app.order(rid).await;
    sse.until_count(1).await;
    sse.until_end().await;
    assert_eq!(ws.until_closed().await, (4001, "token expired".to_string()));
    assert_eq!(ws.seqs(rid), vec![1]);
    let (status, page, waited) = long_poll.await.unwrap();
    assert_eq!(status, StatusCode::OK);
    assert_eq!(page["events"], json!([]));
    assert!(
        waited < Duration::from_secs(20),
        "the wait outlived the token"
    );
    eventually(
        "the SSE disconnect to be counted",
        Duration::from_secs(10),
        || async {
            let metric = r#"ordercast_disconnects_total{reason="token_expired",transport="sse"}"#;
            (app.metric(metric).await == 1.0).then_some(())
        },
    )
    .await;

    // Coming back with the same token is refused; a fresh one resumes.
    let (status, _) = Sse::open(&app.base, rid, &expiring, Resume::default())
        .await
        .err()
        .expect("refused");
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let resume = Resume {
        last_event_id: sse.last_id(),
        ..Resume::default()
    };
    let mut sse = Sse::connect(&app.base, rid, &app.token(Role::Kitchen, rid), resume).await;
    app.order(rid).await;
    sse.until_count(1).await;
    assert_eq!(sse.seqs(), vec![2]);
}

#[tokio::test]
async fn a_websocket_takes_a_fresh_token_in_band_but_never_another_identity() {
    let app = TestApp::spawn().await;
    let rid = app.create_restaurant().await;
    let other = app.create_restaurant().await;
    let expiring = expiring_kitchen(vec![rid.to_string()]);
    let mut ws = Ws::connect(&app.base, &expiring).await;
    ws.subscribe(rid, None).await;

    // Another restaurant, another role, a bad token: each refused, and the
    // connection carries on as it was.
    let refusals = [
        mint(Role::Kitchen, vec![other.to_string()], |_| {}),
        mint(Role::Owner, vec![rid.to_string()], |_| {}),
        "not-a-token".to_owned(),
    ];
    for token in &refusals {
        ws.send(json!({"type": "refresh", "token": token})).await;
    }
    ws.until("three refusals", |w| w.of_type("error").len() == 3)
        .await;
    let codes = ws.error_codes();
    assert_eq!(codes, ["token_mismatch", "token_mismatch", "invalid_token"]);

    let fresh = mint(Role::Kitchen, vec![rid.to_string()], |_| {});
    ws.send(json!({"type": "refresh", "token": fresh})).await;
    ws.until("refreshed", |w| !w.of_type("refreshed").is_empty())
        .await;

    // Once the first token is refused everywhere, the refreshed socket
    // still delivers.
    eventually(
        "the first token to expire",
        Duration::from_secs(15),
        || async {
            let refused = Sse::open(&app.base, rid, &expiring, Resume::default()).await;
            matches!(refused, Err((StatusCode::UNAUTHORIZED, _))).then_some(())
        },
    )
    .await;
    app.order(rid).await;
    ws.until("the order", |w| !w.seqs(rid).is_empty()).await;
    assert_eq!(ws.seqs(rid), vec![1]);
    assert_eq!(ws.closed, None);
}
