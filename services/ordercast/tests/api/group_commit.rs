//! Group commit: new orders that arrive while a statement is in flight are
//! written together by the next one, and still get their own dense seqs,
//! their own answers and their own stream entries.

use std::time::Duration;

use ordercast_core::event::EventDraft;
use ordercast_core::order::Channel;
use ordercast_core::{Audience, EventType, RestaurantId, Role};
use ordercast_store::{NewItem, NewOrder, Store, StoreError};
use ordercast_testkit::eventually;
use reqwest::StatusCode;
use serde_json::{Value, json};
use sqlx::{Postgres, Transaction};

use crate::common::{TestApp, seqs, simple_order};

/// Holds `rid`'s row lock, so a statement writing to it waits (and every
/// order behind it queues) until the returned transaction ends.
async fn hold_restaurant(app: &TestApp, rid: RestaurantId) -> Transaction<'static, Postgres> {
    let mut tx = app.db.begin().await.unwrap();
    sqlx::query("SELECT 1 FROM restaurants WHERE id = $1 FOR UPDATE")
        .bind(rid.as_uuid())
        .execute(&mut *tx)
        .await
        .unwrap();
    tx
}

/// The value of a metric in `registry` (0 when absent).
fn gathered(registry: &prometheus::Registry, name: &str) -> f64 {
    let encoder = prometheus::TextEncoder::new();
    let text = encoder.encode_to_string(&registry.gather()).unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix(name).and_then(|v| v.trim().parse().ok()))
        .unwrap_or(0.0)
}

/// One kind of group-committed write, as a client makes it over HTTP.
struct Kind {
    /// Under `/v1/restaurants/{rid}/`.
    path: &'static str,
    /// The kind's metrics: batch size histogram, queued gauge.
    batch_size: &'static str,
    queued: &'static str,
    /// The `n`th request's body.
    body: fn(usize) -> Value,
    /// Whether a stored event is the one written by a request with this
    /// body and answer.
    is_own_event: fn(&Value, &Value, &Value) -> bool,
}

const ORDERS: Kind = Kind {
    path: "orders",
    batch_size: "ordercast_order_batch_size",
    queued: "ordercast_orders_queued",
    body: |_| simple_order(),
    is_own_event: |event, _, answer| event["data"] == answer["order"],
};

const EVENTS: Kind = Kind {
    path: "events",
    batch_size: "ordercast_event_batch_size",
    queued: "ordercast_events_queued",
    body: |n| json!({"type": "x.loyalty.points", "audience": {"roles": ["kitchen"]}, "data": {"n": n}}),
    is_own_event: |event, body, _| event["data"] == body["data"],
};

/// Holds the first of four restaurants locked while its write is in
/// flight, queues 40 more writes over the four, then lets go: the 40 are
/// written by one more statement, and each restaurant still gets dense
/// seqs, each request the seq of its own event, and each stream exactly
/// what PostgreSQL holds.
async fn writes_queued_behind_a_statement_are_written_by_one(kind: &Kind) {
    let app = TestApp::spawn().await;
    let mut rids = Vec::new();
    for _ in 0..4 {
        rids.push(app.create_restaurant().await);
    }
    let metric = |suffix: &str| format!("{}{suffix}", kind.batch_size);
    let post = |rid: RestaurantId, n: usize| {
        let (client, base, token) = (
            app.client.clone(),
            app.base.clone(),
            app.token(Role::Owner, rid),
        );
        let (path, body) = (kind.path, (kind.body)(n));
        async move {
            let r = client
                .post(format!("{base}/v1/restaurants/{rid}/{path}"))
                .bearer_auth(token)
                .json(&body)
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), StatusCode::CREATED);
            let answer: Value = r.json().await.unwrap();
            (rid, body, answer)
        }
    };

    let lock = hold_restaurant(&app, rids[0]).await;
    let first = tokio::spawn(post(rids[0], 0));
    eventually(
        "the writer took the first write",
        Duration::from_secs(10),
        || async { (app.metric(&metric("_count")).await == 1.0).then_some(()) },
    )
    .await;
    let mut rest = tokio::task::JoinSet::new();
    for n in 1..=40 {
        rest.spawn(post(rids[n % 4], n));
    }
    eventually("40 writes queued", Duration::from_secs(10), || async {
        (app.metric(kind.queued).await == 40.0).then_some(())
    })
    .await;
    lock.commit().await.unwrap();

    let mut answers = vec![first.await.unwrap()];
    answers.extend(rest.join_all().await);
    assert_eq!(app.metric(&metric("_count")).await, 2.0);
    assert_eq!(app.metric(&metric("_sum")).await, 41.0);
    for (n, rid) in rids.iter().enumerate() {
        let expected = if n == 0 { 11 } else { 10 };
        let stored = app.stored_events(*rid).await;
        assert_eq!(seqs(&stored), (1..=expected).collect::<Vec<_>>());
        for (_, body, answer) in answers.iter().filter(|(r, ..)| r == rid) {
            let seq = answer["seq"].as_u64().unwrap();
            let event = &stored[seq as usize - 1];
            assert!(
                (kind.is_own_event)(event, body, answer),
                "the answer's seq {seq} is its own event: {event} for {body}"
            );
        }
        let stream = eventually("every event streamed", Duration::from_secs(10), || async {
            let s = app.stream(*rid).await;
            (s.len() as u64 == expected).then_some(s)
        })
        .await;
        let envelopes: Vec<Value> = stream.into_iter().map(|(_, e)| e).collect();
        assert_eq!(
            envelopes, stored,
            "the stream holds exactly what PostgreSQL holds"
        );
    }
}

#[tokio::test]
async fn orders_queued_behind_a_statement_are_written_by_one_and_keep_dense_seqs_per_restaurant() {
    writes_queued_behind_a_statement_are_written_by_one(&ORDERS).await;
}

#[tokio::test]
async fn events_queued_behind_a_statement_are_written_by_one_and_keep_dense_seqs_per_restaurant() {
    writes_queued_behind_a_statement_are_written_by_one(&EVENTS).await;
}

fn new_order(quantity: i32) -> NewOrder {
    NewOrder {
        table: Some("4".into()),
        session_id: None,
        waiter_id: None,
        channel: Channel::Pos,
        notes: None,
        items: vec![NewItem {
            sku: "soup".into(),
            name: "Soup".into(),
            quantity,
            unit_price_cents: 700,
            station: None,
            notes: None,
        }],
    }
}

#[tokio::test]
async fn a_bad_order_or_an_unknown_restaurant_in_a_batch_fails_alone() {
    let app = TestApp::spawn().await;
    let (a, b) = (app.create_restaurant().await, app.create_restaurant().await);
    let store = Store::from_pool(app.db.clone());
    let registry = prometheus::Registry::new();
    store.register_metrics(&registry).unwrap();

    let lock = hold_restaurant(&app, a).await;
    let first = tokio::spawn({
        let store = store.clone();
        async move { store.create_order(a, new_order(1), None).await }
    });
    eventually(
        "the writer took the first order",
        Duration::from_secs(10),
        || async { (gathered(&registry, "ordercast_order_batch_size_count") == 1.0).then_some(()) },
    )
    .await;
    // Three good orders, one the database refuses (quantity 0 breaks a
    // CHECK), one for a restaurant that does not exist, in one batch.
    let mut batch = tokio::task::JoinSet::new();
    for (rid, quantity) in [(b, 1), (b, 0), (b, 2), (RestaurantId::new(), 1), (b, 3)] {
        let store = store.clone();
        batch.spawn(async move {
            let result = store.create_order(rid, new_order(quantity), None).await;
            (quantity, result)
        });
    }
    eventually("5 orders queued", Duration::from_secs(10), || async {
        (gathered(&registry, "ordercast_orders_queued") == 5.0).then_some(())
    })
    .await;
    lock.commit().await.unwrap();

    assert_eq!(first.await.unwrap().unwrap().last_seq().as_i64(), 1);
    let mut good = Vec::new();
    for (quantity, result) in batch.join_all().await {
        match result {
            Ok(created) => {
                good.push((created.last_seq().as_i64(), created.value.items[0].quantity))
            }
            Err(StoreError::Database(_)) => assert_eq!(quantity, 0, "only the bad order fails"),
            Err(StoreError::NotFound("restaurant")) => assert_eq!(quantity, 1),
            Err(other) => panic!("unexpected error {other:?}"),
        }
    }
    good.sort();
    assert_eq!(good.len(), 3, "every good order committed: {good:?}");
    assert_eq!(
        good.iter().map(|g| g.0).collect::<Vec<_>>(),
        [1, 2, 3],
        "the refused order took no seq"
    );
    let stored = app.stored_events(b).await;
    assert_eq!(seqs(&stored), [1, 2, 3]);
    let orders = app
        .count("SELECT count(*) FROM orders WHERE restaurant_id = $1", b)
        .await;
    assert_eq!(orders, 3, "nothing of the refused order was written");
}

#[tokio::test]
async fn an_order_left_waiting_for_the_writer_past_the_pool_timeout_fails_unwritten() {
    let app = TestApp::spawn().await;
    let (a, b) = (app.create_restaurant().await, app.create_restaurant().await);
    let lock = hold_restaurant(&app, a).await;
    let (client, base) = (app.client.clone(), app.base.clone());
    let (token_a, token_b) = (app.token(Role::Owner, a), app.token(Role::Owner, b));
    let stuck = tokio::spawn({
        let (client, base) = (client.clone(), base.clone());
        async move {
            let path = format!("{base}/v1/restaurants/{a}/orders");
            let r = client.post(path).bearer_auth(token_a).json(&simple_order());
            r.send().await.unwrap().status()
        }
    });
    eventually(
        "the writer took the first order",
        Duration::from_secs(10),
        || async { (app.metric("ordercast_order_batch_size_count").await == 1.0).then_some(()) },
    )
    .await;
    let waiting = tokio::spawn(async move {
        let path = format!("{base}/v1/restaurants/{b}/orders");
        let r = client.post(path).bearer_auth(token_b).json(&simple_order());
        let response = r.send().await.unwrap();
        (response.status(), response.json::<Value>().await.unwrap())
    });
    eventually(
        "the second order queued",
        Duration::from_secs(10),
        || async { (app.metric("ordercast_orders_queued").await == 1.0).then_some(()) },
    )
    .await;
    // The test app's pool gives up on a connection after 1 s; the queued
    // order must give up the same way.
    tokio::time::sleep(Duration::from_millis(1_200)).await;
    lock.commit().await.unwrap();

    assert_eq!(stuck.await.unwrap(), StatusCode::CREATED);
    let (status, problem) = waiting.await.unwrap();
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{problem}");
    assert!(
        problem["type"].as_str().unwrap().ends_with("/unavailable"),
        "{problem}"
    );
    let written = app
        .count("SELECT count(*) FROM orders WHERE restaurant_id = $1", b)
        .await;
    assert_eq!(written, 0, "the late order was not written");
    assert!(app.stored_events(b).await.is_empty());
}

#[tokio::test]
async fn an_event_the_database_refuses_or_for_an_unknown_restaurant_in_a_batch_fails_alone() {
    let app = TestApp::spawn().await;
    let (a, b) = (app.create_restaurant().await, app.create_restaurant().await);
    let store = Store::from_pool(app.db.clone());
    let registry = prometheus::Registry::new();
    store.register_metrics(&registry).unwrap();
    let event = |text: &str| {
        let audience = Audience::roles(&[Role::Kitchen]);
        EventDraft::new(
            EventType::custom("x.note").unwrap(),
            audience,
            json!({"text": text}),
        )
    };

    let lock = hold_restaurant(&app, a).await;
    let first = tokio::spawn({
        let (store, draft) = (store.clone(), event("first"));
        async move { store.publish_event(a, draft, None).await }
    });
    eventually(
        "the writer took the first event",
        Duration::from_secs(10),
        || async { (gathered(&registry, "ordercast_event_batch_size_count") == 1.0).then_some(()) },
    )
    .await;
    // Three good events, one PostgreSQL refuses (jsonb holds no NUL
    // character), one for a restaurant that does not exist, in one batch.
    let mut batch = tokio::task::JoinSet::new();
    for (rid, text) in [
        (b, "1"),
        (b, "\u{0}"),
        (b, "2"),
        (RestaurantId::new(), "lost"),
        (b, "3"),
    ] {
        let (store, draft) = (store.clone(), event(text));
        batch.spawn(async move { (text, store.publish_event(rid, draft, None).await) });
    }
    eventually("5 events queued", Duration::from_secs(10), || async {
        (gathered(&registry, "ordercast_events_queued") == 5.0).then_some(())
    })
    .await;
    lock.commit().await.unwrap();

    assert_eq!(first.await.unwrap().unwrap().last_seq().as_i64(), 1);
    let mut good = Vec::new();
    for (text, result) in batch.join_all().await {
        match result {
            Ok(created) => good.push((created.last_seq().as_i64(), text)),
            Err(StoreError::Database(_)) => assert_eq!(text, "\u{0}", "only the bad event fails"),
            Err(StoreError::NotFound("restaurant")) => assert_eq!(text, "lost"),
            Err(other) => panic!("unexpected error {other:?}"),
        }
    }
    good.sort();
    let (seqs_answered, texts): (Vec<i64>, Vec<&str>) = good.into_iter().unzip();
    assert_eq!(seqs_answered, [1, 2, 3], "the refused event took no seq");
    let stored = app.stored_events(b).await;
    assert_eq!(seqs(&stored), [1, 2, 3]);
    let stored_texts: Vec<_> = stored.iter().map(|e| e["data"]["text"].clone()).collect();
    assert_eq!(stored_texts, texts, "each answer's seq is its own event");
}
