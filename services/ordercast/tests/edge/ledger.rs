//! The delivery ledger: edges' receipts, recorded by the api's
//! ledger workers, answer "which orders has no kitchen screen received?".

use std::time::Duration;

use ordercast::app::Role as ServerRole;
use ordercast_bus::{LEDGER_GROUP, Shard};
use ordercast_core::{RestaurantId, Role};
use ordercast_testkit::eventually;
use serde_json::{Value, json};

use crate::clients::{Resume, Sse, Ws, assert_exactly};
use crate::common::{Backends, TestApp};

/// Ledger timings short enough for a test.
fn quick_ledger(settings: &mut ordercast::Settings) {
    let ledger = &mut settings.api.ledger;
    ledger.interval = Duration::from_millis(100);
    ledger.check_every = Duration::from_millis(100);
    ledger.claim_after = Duration::from_millis(300);
    ledger.undelivered_after = Duration::from_millis(300);
    ledger.forget_after = Duration::from_secs(1);
}

async fn kitchen_mark(app: &TestApp, rid: RestaurantId) -> i64 {
    app.count(
        "SELECT coalesce(max(seq), 0) FROM delivery_marks WHERE restaurant_id = $1 AND role = 'kitchen'",
        rid,
    )
    .await
}

/// `/debug/undelivered`: (restaurant, seq) of each event listed.
async fn undelivered(app: &TestApp) -> Vec<(String, u64)> {
    let (status, body) = app.get_admin("/debug/undelivered").await;
    assert_eq!(status, 200, "{body}");
    let events = body["events"].as_array().unwrap();
    assert_eq!(body["count"], events.len());
    events
        .iter()
        .map(|e: &Value| {
            (
                e["restaurant_id"].as_str().unwrap().to_owned(),
                e["seq"].as_u64().unwrap(),
            )
        })
        .collect()
}

async fn sse_from_start(app: &TestApp, rid: RestaurantId, role: Role) -> Sse {
    Sse::connect(&app.base, rid, &app.token(role, rid), Resume::since("0")).await
}

#[tokio::test]
async fn orders_no_kitchen_screen_received_are_reported_until_one_does() {
    let app = TestApp::spawn_with(Backends::fresh().await, ServerRole::All, quick_ledger).await;
    let watched = app.create_restaurant().await;
    let unwatched = app.create_restaurant().await;
    let mut kitchen = sse_from_start(&app, watched, Role::Kitchen).await;
    // An owner screen is not a kitchen screen.
    let mut owner = sse_from_start(&app, unwatched, Role::Owner).await;
    app.orders(watched, 5).await;
    app.orders(unwatched, 3).await;
    kitchen.until_count(5).await;
    owner.until_count(3).await;

    eventually(
        "the kitchen's receipts recorded",
        Duration::from_secs(10),
        || async { (kitchen_mark(&app, watched).await == 5).then_some(()) },
    )
    .await;
    let missing: Vec<(String, u64)> = (1..=3).map(|s| (unwatched.to_string(), s)).collect();
    eventually(
        "the unwatched orders reported",
        Duration::from_secs(10),
        || async { (undelivered(&app).await == missing).then_some(()) },
    )
    .await;
    eventually(
        "the metric counts them",
        Duration::from_secs(10),
        || async { (app.metric("ordercast_undelivered_events").await == 3.0).then_some(()) },
    )
    .await;
    let first = "SELECT count(*) FROM delivery_ranges d JOIN events e
                 ON e.restaurant_id = d.restaurant_id AND e.seq BETWEEN d.from_seq AND d.to_seq
                 WHERE d.restaurant_id = $1 AND d.role = 'kitchen' AND d.delivered_at >= e.created_at";
    assert_eq!(
        app.count(first, watched).await,
        5,
        "each delivered event has one first-delivery time, after its commit"
    );

    // A kitchen screen opens and catches up: nothing is missing any more.
    let mut late = sse_from_start(&app, unwatched, Role::Kitchen).await;
    late.until_count(3).await;
    assert_exactly(&late.seqs(), 1..=3, "the late kitchen screen");
    eventually("nothing undelivered", Duration::from_secs(10), || async {
        (undelivered(&app).await.is_empty()
            && app.metric("ordercast_undelivered_events").await == 0.0)
            .then_some(())
    })
    .await;
    assert_eq!(kitchen_mark(&app, unwatched).await, 3);
}

#[tokio::test]
async fn receipts_a_dead_replica_read_but_never_recorded_are_claimed_by_another() {
    let first = TestApp::spawn_with(Backends::fresh().await, ServerRole::Api, quick_ledger).await;
    let rid = first.create_restaurant().await;
    first.orders(rid, 2).await;
    let backends = first.backends();
    let (redis_url, keys) = (first.redis_url.clone(), first.keys.clone());
    first.stop().await;

    // An edge reported seq 2 for the kitchen; a replica read the entry
    // and died before recording it.
    let key = keys.receipts(Shard::of(rid));
    let mut redis = redis::Client::open(redis_url)
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    // The first replica's worker made the group already (BUSYGROUP).
    let _: redis::RedisResult<redis::Value> = redis::cmd("XGROUP")
        .arg("CREATE")
        .arg(&key)
        .arg(LEDGER_GROUP)
        .arg("0")
        .arg("MKSTREAM")
        .query_async(&mut redis)
        .await;
    let at = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    let _: String = redis::cmd("XADD")
        .arg(&key)
        .arg("*")
        .arg("at")
        .arg(at)
        .arg("r")
        .arg(format!("{rid} kitchen 2"))
        .query_async(&mut redis)
        .await
        .unwrap();
    let _: redis::Value = redis::cmd("XREADGROUP")
        .arg("GROUP")
        .arg(LEDGER_GROUP)
        .arg("dead-replica")
        .arg("STREAMS")
        .arg(&key)
        .arg(">")
        .query_async(&mut redis)
        .await
        .unwrap();

    let second = TestApp::spawn_with(backends, ServerRole::Api, quick_ledger).await;
    eventually(
        "the claimed receipt recorded",
        Duration::from_secs(10),
        || async { (kitchen_mark(&second, rid).await == 2).then_some(()) },
    )
    .await;
    eventually(
        "the entry acknowledged",
        Duration::from_secs(10),
        || async {
            let pending: (i64, redis::Value, redis::Value, redis::Value) = redis::cmd("XPENDING")
                .arg(&key)
                .arg(LEDGER_GROUP)
                .query_async(&mut redis.clone())
                .await
                .unwrap();
            (pending.0 == 0).then_some(())
        },
    )
    .await;
    // The dead replica, and the first one, which stopped, leave the group;
    // the live one stays.
    eventually(
        "only the live consumer left in the group",
        Duration::from_secs(10),
        || async {
            let info: redis::streams::StreamInfoConsumersReply = redis::cmd("XINFO")
                .arg("CONSUMERS")
                .arg(&key)
                .arg(LEDGER_GROUP)
                .query_async(&mut redis.clone())
                .await
                .unwrap();
            let names: Vec<_> = info.consumers.into_iter().map(|c| c.name).collect();
            (names.len() == 1 && names[0] != "dead-replica").then_some(())
        },
    )
    .await;
}

#[tokio::test]
async fn the_ledger_keeps_recording_after_redis_restarts_empty() {
    let mut redis = ordercast_testkit::RedisServer::spawn().await;
    let backends = Backends::with_redis(&redis).await;
    let app = TestApp::spawn_with(backends, ServerRole::All, quick_ledger).await;
    let rid = app.create_restaurant().await;
    let mut kitchen = sse_from_start(&app, rid, Role::Kitchen).await;
    app.orders(rid, 2).await;
    kitchen.until_count(2).await;
    eventually(
        "the first receipts recorded",
        Duration::from_secs(10),
        || async { (kitchen_mark(&app, rid).await == 2).then_some(()) },
    )
    .await;

    // The receipt streams and the consumer group are gone with the data.
    redis.stop();
    redis.start().await;
    app.orders(rid, 3).await;
    kitchen.until_count(5).await;
    assert_exactly(&kitchen.seqs(), 1..=5, "the kitchen screen");
    eventually(
        "receipts recorded again",
        Duration::from_secs(20),
        || async { (kitchen_mark(&app, rid).await == 5).then_some(()) },
    )
    .await;
}

#[tokio::test]
async fn a_kitchen_screen_that_acknowledges_is_counted_by_its_acks_not_by_what_was_written() {
    let app = TestApp::spawn_with(Backends::fresh().await, ServerRole::All, quick_ledger).await;
    let acking = app.create_restaurant().await;
    let writing = app.create_restaurant().await;
    let mut screen = Ws::connect(&app.base, &app.token(Role::Kitchen, acking)).await;
    let mut other = Ws::connect(&app.base, &app.token(Role::Kitchen, writing)).await;
    for (ws, rid) in [(&mut screen, acking), (&mut other, writing)] {
        ws.subscribe(rid, Some(0)).await;
    }
    screen
        .send(json!({"type": "ack", "restaurant_id": acking, "seq": 0}))
        .await;
    app.orders(acking, 3).await;
    app.orders(writing, 3).await;
    screen
        .until("3 events", |w| w.seqs(acking).len() == 3)
        .await;
    other
        .until("3 events", |w| w.seqs(writing).len() == 3)
        .await;

    // Written 3, acknowledged 2: the mark is the ack's (marks only move
    // forward, so a receipt for the writes would have made it 3).
    screen
        .send(json!({"type": "ack", "restaurant_id": acking, "seq": 2}))
        .await;
    let marks = || async {
        (
            kitchen_mark(&app, acking).await,
            kitchen_mark(&app, writing).await,
        )
    };
    eventually("the ack recorded", Duration::from_secs(10), || async {
        (marks().await == (2, 3)).then_some(())
    })
    .await;

    // An ack beyond what was written counts as what was written.
    screen
        .send(json!({"type": "ack", "restaurant_id": acking, "seq": 99}))
        .await;
    let mark = eventually(
        "the second ack recorded",
        Duration::from_secs(10),
        || async {
            let mark = kitchen_mark(&app, acking).await;
            (mark > 2).then_some(mark)
        },
    )
    .await;
    assert_eq!(mark, 3);
}
