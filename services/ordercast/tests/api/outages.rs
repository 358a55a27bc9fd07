use std::time::Duration;

use ordercast_core::Role;
use ordercast_testkit::{PostgresServer, RedisServer, eventually, fresh_database_on};
use reqwest::StatusCode;

use crate::common::{Backends, TestApp, seqs, simple_order};

#[tokio::test]
async fn with_redis_down_orders_are_accepted_and_the_sweeper_publishes_them_once_in_order() {
    let mut redis = RedisServer::spawn().await;
    let backends = Backends::with_redis(&redis).await;
    let app = TestApp::spawn_on(backends).await;
    let rid = app.create_restaurant().await;

    redis.stop();
    for _ in 0..20 {
        let (status, body) = app
            .create_order(rid, &app.token(Role::Owner, rid), simple_order())
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
    }
    let unpublished = "SELECT count(*) FROM outbox WHERE restaurant_id = $1";
    assert_eq!(app.count(unpublished, rid).await, 20);
    redis.start().await;

    let stream = eventually(
        "the sweeper to publish all 20",
        Duration::from_secs(20),
        || async {
            let s = app.stream(rid).await;
            (s.len() == 20).then_some(s)
        },
    )
    .await;
    let ids: Vec<String> = stream.iter().map(|(id, _)| id.clone()).collect();
    assert_eq!(ids, (1..=20).map(|s| format!("{s}-0")).collect::<Vec<_>>());
    let stored = app.stored_events(rid).await;
    assert_eq!(
        stream.iter().map(|(_, e)| e.clone()).collect::<Vec<_>>(),
        stored
    );
    eventually(
        "every event marked published",
        Duration::from_secs(10),
        || async { (app.count(unpublished, rid).await == 0).then_some(()) },
    )
    .await;
    assert_eq!(
        app.metric("ordercast_outbox_republished_total").await,
        20.0,
        "each added exactly once"
    );
    assert_eq!(seqs(&stored), (1..=20).collect::<Vec<_>>());
}

#[tokio::test]
async fn after_a_redis_restart_the_next_order_is_published_at_once_not_left_to_the_sweeper() {
    let mut redis = RedisServer::spawn().await;
    let backends = Backends::with_redis(&redis).await;
    let app = TestApp::spawn_on(backends).await;
    let rid = app.create_restaurant().await;
    let owner = app.token(Role::Owner, rid);
    // Events XADDed on the fast path so far.
    let fast_path = "ordercast_publish_latency_seconds_count";
    let order_published = async |n: f64| {
        let (status, body) = app.create_order(rid, &owner, simple_order()).await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        eventually("the order published", Duration::from_secs(10), || async {
            (app.metric(fast_path).await == n).then_some(())
        })
        .await;
    };

    order_published(1.0).await;

    // The publisher's connection now points at a server that is gone.
    redis.stop();
    redis.start().await;
    order_published(2.0).await;
    assert_eq!(
        app.metric("ordercast_outbox_republished_total").await,
        0.0,
        "published on the fast path, on a fresh connection"
    );
    let stream = app.stream(rid).await;
    let ids: Vec<&str> = stream.iter().map(|(id, _)| id.as_str()).collect();
    assert_eq!(ids, ["2-0"], "the restarted Redis holds only the new event");
}

#[tokio::test]
async fn with_postgres_down_commands_get_503_problems_and_nothing_is_half_written() {
    let mut postgres = PostgresServer::spawn().await;
    let app = on_own_postgres(&postgres).await;
    let rid = app.create_restaurant().await;
    let token = app.token(Role::Owner, rid);
    app.order(rid).await;

    postgres.stop();
    for _ in 0..3 {
        let response = app
            .client
            .post(format!("{}/v1/restaurants/{rid}/orders", app.base))
            .bearer_auth(&token)
            .json(&simple_order())
            .send()
            .await
            .unwrap();
        assert_unavailable(response).await;
    }
    let ready = app
        .client
        .get(format!("{}/readyz", app.admin))
        .send()
        .await
        .unwrap();
    assert_eq!(ready.status(), StatusCode::SERVICE_UNAVAILABLE);
    postgres.start();

    let (status, body) = eventually(
        "commands to work again",
        Duration::from_secs(20),
        || async {
            let (status, body) = app.create_order(rid, &token, simple_order()).await;
            (status == StatusCode::CREATED).then_some((status, body))
        },
    )
    .await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(body["seq"], 2, "no seq was taken by the failed commands");
    let orders = app
        .count("SELECT count(*) FROM orders WHERE restaurant_id = $1", rid)
        .await;
    let events = app
        .count("SELECT count(*) FROM events WHERE restaurant_id = $1", rid)
        .await;
    assert_eq!(
        (orders, events),
        (2, 2),
        "every order has exactly its event"
    );
}

#[tokio::test]
async fn with_postgres_frozen_commands_get_503_before_it_thaws_and_a_retry_writes_once() {
    let mut postgres = PostgresServer::spawn().await;
    let app = on_own_postgres(&postgres).await;
    let rid = app.create_restaurant().await;
    let token = app.token(Role::Owner, rid);
    app.order(rid).await;
    let create = |key: Option<&str>| {
        let mut request = app
            .client
            .post(format!("{}/v1/restaurants/{rid}/orders", app.base))
            .bearer_auth(&token)
            .json(&simple_order())
            // Far longer than any deadline: an answer at all is the point.
            .timeout(Duration::from_secs(30));
        if let Some(key) = key {
            request = request.header("Idempotency-Key", key);
        }
        request.send()
    };

    // Hangs instead of refusing: connections stay open, nothing answers.
    postgres.freeze();
    // With a key (one transaction), and without (the order writer's batch).
    for key in [Some("frozen-1"), None] {
        let response = create(key).await.expect("an answer while PostgreSQL hangs");
        assert_unavailable(response).await;
    }
    let ready = app
        .client
        .get(format!("{}/readyz", app.admin))
        .timeout(Duration::from_secs(30))
        .send()
        .await
        .expect("readiness answers while PostgreSQL hangs");
    assert_eq!(ready.status(), StatusCode::SERVICE_UNAVAILABLE);
    postgres.thaw();

    let retried = eventually(
        "the retry with the same key to succeed",
        Duration::from_secs(20),
        || async {
            let response = create(Some("frozen-1")).await.ok()?;
            (response.status() == StatusCode::CREATED).then_some(response)
        },
    )
    .await;
    let order: serde_json::Value = retried.json().await.unwrap();
    let again = create(Some("frozen-1")).await.unwrap();
    assert_eq!(again.status(), StatusCode::CREATED);
    let replayed: serde_json::Value = again.json().await.unwrap();
    assert_eq!(replayed["id"], order["id"], "the same order, not a second");
    let (status, body) = app.create_order(rid, &token, simple_order()).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");

    let orders = app
        .count("SELECT count(*) FROM orders WHERE restaurant_id = $1", rid)
        .await;
    let events = app
        .count("SELECT count(*) FROM events WHERE restaurant_id = $1", rid)
        .await;
    assert_eq!(orders, events, "every order has exactly its event");
    // The first order, the keyed one, the last one, and the unkeyed one
    // cut short by the deadline if its statement reached the server.
    assert!((3..=4).contains(&orders), "{orders} orders");
    let stored = seqs(&app.stored_events(rid).await);
    assert_eq!(stored, (1..=events as u64).collect::<Vec<_>>());
    // Whatever committed is published (or superseded in Redis by a later
    // seq; readers fill that gap from PostgreSQL), however its command ended.
    let unpublished = "SELECT count(*) FROM outbox WHERE restaurant_id = $1";
    eventually("the outbox drained", Duration::from_secs(20), || async {
        (app.count(unpublished, rid).await == 0).then_some(())
    })
    .await;
}

/// An app whose database lives on `postgres`, the test's own.
async fn on_own_postgres(postgres: &PostgresServer) -> TestApp {
    let database_url = fresh_database_on(&postgres.admin_url()).await;
    let backends = Backends {
        database_url,
        ..Backends::fresh().await
    };
    TestApp::spawn_on(backends).await
}

/// The documented answer when PostgreSQL cannot serve a command: `503`,
/// `Retry-After`, problem `unavailable`.
async fn assert_unavailable(response: reqwest::Response) {
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(
        response.headers()["content-type"],
        "application/problem+json"
    );
    assert!(response.headers().contains_key("retry-after"));
    let problem: serde_json::Value = response.json().await.unwrap();
    assert_eq!(
        problem["type"],
        "https://ordercast.dev/problems/unavailable"
    );
}
