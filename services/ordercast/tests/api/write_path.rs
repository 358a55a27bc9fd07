use std::collections::HashSet;
use std::time::Duration;

use ordercast_core::Role;
use ordercast_testkit::eventually;
use reqwest::StatusCode;

use crate::common::{TestApp, seqs, simple_order};

#[tokio::test]
async fn a_created_order_is_recorded_and_streamed_with_the_same_envelope() {
    let app = TestApp::spawn().await;
    let rid = app.create_restaurant().await;

    let body = app.order(rid).await;

    assert_eq!(body["seq"], 1);
    assert_eq!(body["order"]["status"], "new");
    assert_eq!(body["order"]["total_cents"], 2 * 1250 + 300);
    assert_eq!(
        app.count("SELECT count(*) FROM orders WHERE restaurant_id = $1", rid)
            .await,
        1
    );
    let items = "SELECT count(*) FROM order_items i JOIN orders o ON o.id = i.order_id WHERE o.restaurant_id = $1";
    assert_eq!(app.count(items, rid).await, 2);
    let stored = app.stored_events(rid).await;
    assert_eq!(seqs(&stored), [1]);
    assert_eq!(stored[0]["type"], "order.created");
    assert_eq!(stored[0]["data"], body["order"]);
    let stream = eventually(
        "the event in the stream",
        Duration::from_secs(10),
        || async {
            let s = app.stream(rid).await;
            (!s.is_empty()).then_some(s)
        },
    )
    .await;
    assert_eq!(stream.len(), 1);
    assert_eq!(stream[0].0, "1-0");
    assert_eq!(
        stream[0].1, stored[0],
        "the stream carries exactly the stored envelope"
    );
    eventually(
        "the event to leave the outbox",
        Duration::from_secs(10),
        || async {
            let n = app
                .count("SELECT count(*) FROM outbox WHERE restaurant_id = $1", rid)
                .await;
            (n == 0).then_some(())
        },
    )
    .await;
}

#[tokio::test]
async fn two_hundred_concurrent_commands_get_seqs_one_to_two_hundred_everywhere() {
    let app = TestApp::spawn().await;
    let rid = app.create_restaurant().await;
    let token = app.token(Role::Owner, rid);

    let mut tasks = tokio::task::JoinSet::new();
    for task in 0..16 {
        let (client, base, token) = (app.client.clone(), app.base.clone(), token.clone());
        let commands = 200 / 16 + usize::from(task < 200 % 16);
        tasks.spawn(async move {
            let mut seqs = Vec::new();
            for _ in 0..commands {
                let response = client
                    .post(format!("{base}/v1/restaurants/{rid}/orders"))
                    .bearer_auth(&token)
                    .json(&simple_order())
                    .send()
                    .await
                    .unwrap();
                assert_eq!(response.status(), StatusCode::CREATED);
                let body: serde_json::Value = response.json().await.unwrap();
                seqs.push(body["seq"].as_u64().unwrap());
            }
            seqs
        });
    }
    let mut answered: Vec<u64> = tasks.join_all().await.into_iter().flatten().collect();
    answered.sort();
    let n = 200;

    assert_eq!(
        answered,
        (1..=n).collect::<Vec<_>>(),
        "each answer names a distinct, dense seq"
    );
    assert_eq!(
        seqs(&app.stored_events(rid).await),
        (1..=n).collect::<Vec<_>>()
    );
    let stream = eventually(
        "every event in the stream",
        Duration::from_secs(20),
        || async {
            let s = app.stream(rid).await;
            (s.len() as u64 == n).then_some(s)
        },
    )
    .await;
    let ids: Vec<String> = stream.iter().map(|(id, _)| id.clone()).collect();
    let expected: Vec<String> = (1..=n).map(|s| format!("{s}-0")).collect();
    assert_eq!(ids, expected, "the stream holds every seq once, in order");
}

#[tokio::test]
async fn two_restaurants_written_at_once_keep_separate_dense_seqs() {
    let app = TestApp::spawn().await;
    let (a, b) = (app.create_restaurant().await, app.create_restaurant().await);

    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..60 {
        let rid = if i % 2 == 0 { a } else { b };
        let (client, base, token) = (
            app.client.clone(),
            app.base.clone(),
            app.token(Role::Owner, rid),
        );
        tasks.spawn(async move {
            let r = client
                .post(format!("{base}/v1/restaurants/{rid}/orders"))
                .bearer_auth(token)
                .json(&simple_order())
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), StatusCode::CREATED);
        });
    }
    tasks.join_all().await;

    for rid in [a, b] {
        let stored = app.stored_events(rid).await;
        assert_eq!(seqs(&stored), (1..=30).collect::<Vec<_>>());
        assert!(stored.iter().all(|e| e["restaurant_id"] == rid.to_string()));
        let stream = eventually("30 entries", Duration::from_secs(10), || async {
            let s = app.stream(rid).await;
            (s.len() == 30).then_some(s)
        })
        .await;
        let distinct: HashSet<_> = stream.iter().map(|(id, _)| id.clone()).collect();
        assert_eq!(distinct.len(), 30);
    }
}

#[tokio::test]
async fn the_snapshot_seq_is_exactly_the_last_event_it_reflects() {
    let app = TestApp::spawn().await;
    let rid = app.create_restaurant().await;
    let kitchen = app.token(Role::Kitchen, rid);
    let first = app.order(rid).await;
    app.order(rid).await;
    let id = first["order"]["id"].as_str().unwrap();
    app.set_status(rid, id, "accepted").await;

    let (status, page) = app
        .get(&format!("/v1/restaurants/{rid}/orders"), &kitchen)
        .await;

    assert_eq!(status, StatusCode::OK);
    assert_eq!(page["seq"], 3);
    let orders = page["orders"].as_array().unwrap();
    assert_eq!(orders.len(), 2);
    assert_eq!(orders[0]["status"], "accepted");
    app.set_status(rid, id, "cancelled").await;
    let (_, open) = app
        .get(
            &format!("/v1/restaurants/{rid}/orders?state=open"),
            &kitchen,
        )
        .await;
    assert_eq!(
        (
            open["seq"].as_u64(),
            open["orders"].as_array().unwrap().len()
        ),
        (Some(4), 1)
    );
    let (_, all) = app
        .get(&format!("/v1/restaurants/{rid}/orders?state=all"), &kitchen)
        .await;
    assert_eq!(all["orders"].as_array().unwrap().len(), 2);
}
