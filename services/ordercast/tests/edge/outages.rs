use std::time::Duration;

use ordercast::app::Role as ServerRole;
use ordercast_core::Role;
use ordercast_testkit::{RedisServer, eventually};

use crate::clients::{Resume, Sse, Ws, assert_exactly};
use crate::common::{Backends, TestApp};
use ordercast_core::RestaurantId;

/// A kitchen's SSE and WebSocket screens of a restaurant on an edge whose
/// Redis the test owns, both holding the restaurant's first order.
struct Screens {
    redis: RedisServer,
    app: TestApp,
    rid: RestaurantId,
    sse: Sse,
    ws: Ws,
}

impl Screens {
    async fn on_own_redis() -> Screens {
        let redis = RedisServer::spawn().await;
        let backends = Backends::with_redis(&redis).await;
        let app = TestApp::spawn_on(backends).await;
        let rid = app.create_restaurant().await;
        let kitchen = app.token(Role::Kitchen, rid);
        let mut sse = Sse::connect(&app.base, rid, &kitchen, Resume::default()).await;
        let mut ws = Ws::connect(&app.base, &kitchen).await;
        ws.subscribe(rid, None).await;
        app.order(rid).await;
        sse.until_count(1).await;
        Screens {
            redis,
            app,
            rid,
            sse,
            ws,
        }
    }
}

#[tokio::test]
async fn with_redis_killed_clients_keep_receiving_from_postgres_and_stream_again_when_it_returns() {
    let Screens {
        mut redis,
        app,
        rid,
        mut sse,
        mut ws,
    } = Screens::on_own_redis().await;

    redis.stop();
    app.orders(rid, 10).await;
    sse.until_count(11).await;
    assert_exactly(&sse.seqs(), 1..=11, "SSE while Redis is down");
    ws.until("11 events", |w| w.seqs(rid).len() >= 11).await;
    assert_eq!(app.metric("ordercast_degraded_shards").await, 1.0);
    let (_, stats) = app.get_admin("/debug/stats").await;
    assert_eq!(stats["edge"]["degraded"], true);
    let (ready, _) = app.get_admin("/readyz").await;
    assert_eq!(ready, 200, "an edge stays ready without Redis");

    redis.start().await;
    streaming_again(&app, rid, &mut sse, &mut ws, 21).await;
}

/// Once the shard streams from Redis again, orders up to seq `last` reach
/// both screens, each once and in order.
async fn streaming_again(app: &TestApp, rid: RestaurantId, sse: &mut Sse, ws: &mut Ws, last: u64) {
    eventually("streaming again", Duration::from_secs(20), || async {
        (app.metric("ordercast_degraded_shards").await == 0.0).then_some(())
    })
    .await;
    app.orders(rid, 10).await;
    sse.until_count(last as usize).await;
    assert_exactly(&sse.seqs(), 1..=last, "SSE once Redis is back");
    ws.until("every event", |w| w.seqs(rid).len() >= last as usize)
        .await;
    assert_exactly(&ws.seqs(rid), 1..=last, "WebSocket");
}

#[tokio::test]
async fn on_shutdown_200_clients_are_told_to_reconnect_and_miss_nothing_on_another_edge() {
    let api = TestApp::spawn_with(Backends::fresh().await, ServerRole::Api, |_| {}).await;
    // The 200 screens share one kitchen token: no per-principal limit.
    let leaving = TestApp::spawn_with(api.backends(), ServerRole::Edge, |s| {
        s.edge.drain_window = Duration::from_millis(400);
        s.edge.max_connections_per_principal = None;
    })
    .await;
    let staying = TestApp::spawn_with(api.backends(), ServerRole::Edge, |s| {
        s.edge.max_connections_per_principal = None;
    })
    .await;
    let rid = api.create_restaurant().await;
    let kitchen = api.token(Role::Kitchen, rid);
    let mut clients = Vec::new();
    for _ in 0..200 {
        clients.push(Sse::connect(&leaving.base, rid, &kitchen, Resume::default()).await);
    }
    api.orders(rid, 5).await;
    for client in &mut clients {
        client.until_count(5).await;
    }
    // SIGTERM takes the same path: the shutdown future completes.
    let writer = tokio::spawn({
        let api_base = api.base.clone();
        let owner = api.token(Role::Owner, rid);
        async move {
            let client = reqwest::Client::new();
            for _ in 0..20 {
                let response = client
                    .post(format!("{api_base}/v1/restaurants/{rid}/orders"))
                    .bearer_auth(&owner)
                    .json(&crate::common::simple_order())
                    .send()
                    .await
                    .unwrap();
                assert_eq!(response.status(), 201);
            }
        }
    });
    leaving.stop().await;
    let mut retries = Vec::new();
    for client in &mut clients {
        client.until_end().await;
        let retry = client.retry.expect("a retry hint");
        assert!(
            retry < 400,
            "the hint lies within the drain window: {retry}"
        );
        retries.push(retry);
    }
    retries.sort_unstable();
    assert!(retries[0] < retries[199], "hints are spread, not identical");
    writer.await.unwrap();
    for client in &mut clients {
        let mut resumed = Sse::connect(
            &staying.base,
            rid,
            &kitchen,
            Resume {
                last_event_id: client.last_id(),
                ..Resume::default()
            },
        )
        .await;
        let have = client.events.len();
        resumed.until_count(25 - have).await;
        let mut seqs = client.seqs();
        seqs.extend(resumed.seqs());
        assert_exactly(&seqs, 1..=25, "across the drain");
    }
}

#[tokio::test]
async fn on_shutdown_websockets_are_closed_with_1012_and_a_jittered_retry() {
    let app = TestApp::spawn().await;
    let rid = app.create_restaurant().await;
    let mut ws = Ws::connect(&app.base, &app.token(Role::Owner, rid)).await;
    ws.subscribe(rid, None).await;
    let stopping = tokio::spawn(app.stop());
    let (code, reason) = ws.until_closed().await;
    assert_eq!(code, 1012);
    let retry: u64 = reason.strip_prefix("retry=").unwrap().parse().unwrap();
    assert!(retry < 500, "within the drain window: {retry}");
    stopping.await.unwrap();
}

#[tokio::test]
async fn with_redis_frozen_the_shard_degrades_and_orders_reach_screens_before_it_thaws() {
    let Screens {
        mut redis,
        app,
        rid,
        mut sse,
        mut ws,
    } = Screens::on_own_redis().await;

    // Hangs instead of refusing: connections stay open, nothing answers.
    redis.freeze();
    eventually(
        "the shard degraded while Redis hangs",
        Duration::from_secs(10),
        || async { (app.metric("ordercast_degraded_shards").await == 1.0).then_some(()) },
    )
    .await;
    app.orders(rid, 5).await;
    sse.until_count(6).await;
    assert_exactly(&sse.seqs(), 1..=6, "SSE while Redis is frozen");
    ws.until("6 events", |w| w.seqs(rid).len() >= 6).await;
    let (ready, body) = app.get_admin("/readyz").await;
    assert_eq!(ready, 200, "an edge stays ready without Redis: {body}");
    assert_eq!(body["redis"], "down");

    redis.thaw();
    streaming_again(&app, rid, &mut sse, &mut ws, 16).await;
}
