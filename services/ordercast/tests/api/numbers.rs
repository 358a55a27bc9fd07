//! Order numbers: per restaurant, said out loud, never shared by two
//! orders created at the same time on different api processes.

use ordercast::app::Role as ServerRole;
use ordercast_core::{RestaurantId, Role};
use reqwest::StatusCode;
use serde_json::Value;

use crate::common::{TestApp, simple_order};

async fn post_order(app: &TestApp, rid: RestaurantId, idempotency_key: Option<String>) -> Value {
    let mut request = app
        .client
        .post(format!("{}/v1/restaurants/{rid}/orders", app.base))
        .bearer_auth(app.token(Role::Owner, rid))
        .json(&simple_order());
    if let Some(key) = idempotency_key {
        request = request.header("Idempotency-Key", key);
    }
    let response = request.send().await.unwrap();
    assert_eq!(response.status(), StatusCode::CREATED);
    response.json().await.unwrap()
}

#[tokio::test]
async fn concurrent_orders_through_two_api_processes_get_distinct_consecutive_numbers() {
    let first = TestApp::spawn().await;
    let second = TestApp::spawn_with(first.backends(), ServerRole::Api, |_| {}).await;
    let rid = first.create_restaurant().await;
    let other = first.create_restaurant().await;
    post_order(&first, other, None).await;

    // Half of them through each process, a quarter of those under an
    // idempotency key (a transaction of its own, not the group writer).
    let created: Vec<Value> = futures_util::future::join_all((0..120).map(|i| {
        let app = if i % 2 == 0 { &first } else { &second };
        let key = (i % 4 == 1).then(|| format!("number-test-{i}"));
        post_order(app, rid, key)
    }))
    .await;

    let mut numbers: Vec<i64> = created
        .iter()
        .map(|c| c["order"]["number"].as_i64().unwrap())
        .collect();
    numbers.sort();
    assert_eq!(numbers, (1..=120).collect::<Vec<_>>());
    let events = first.stored_events(rid).await;
    assert_eq!(events.len(), 120);
    for event in &events {
        let order = created
            .iter()
            .find(|c| c["order"]["id"] == event["data"]["id"])
            .expect("the event of a created order");
        assert_eq!(event["data"]["number"], order["order"]["number"]);
    }
    let (_, snapshot) = first
        .get(
            &format!("/v1/restaurants/{rid}/orders?state=open&limit=1000"),
            &first.token(Role::Kitchen, rid),
        )
        .await;
    let mut listed: Vec<i64> = snapshot["orders"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["number"].as_i64().unwrap())
        .collect();
    listed.sort();
    assert_eq!(listed, numbers, "the snapshot shows the same numbers");
    second.stop().await;
}

#[tokio::test]
async fn order_numbers_roll_over_from_9999_to_1_and_stay_in_later_events() {
    let app = TestApp::spawn().await;
    let rid = app.create_restaurant().await;
    // As if the restaurant had had 9,998 orders.
    sqlx::query("UPDATE restaurants SET orders_created = 9998 WHERE id = $1")
        .bind(rid.as_uuid())
        .execute(&app.db)
        .await
        .unwrap();

    let last = app.order(rid).await;
    let wrapped = app.order(rid).await;
    let next = app.order(rid).await;
    let id = wrapped["order"]["id"].as_str().unwrap();
    let (_, accepted) = app.set_status(rid, id, "accepted").await;

    assert_eq!(last["order"]["number"], 9999);
    assert_eq!(wrapped["order"]["number"], 1);
    assert_eq!(next["order"]["number"], 2);
    assert_eq!(accepted["order"]["number"], 1);
    let events = app.stored_events(rid).await;
    let numbers: Vec<_> = events.iter().map(|e| e["data"]["number"].clone()).collect();
    assert_eq!(numbers, [9999, 1, 2, 1]);
}
