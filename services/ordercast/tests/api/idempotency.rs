use ordercast_core::Role;
use reqwest::{StatusCode, header};
use serde_json::Value;

use crate::common::{TestApp, simple_order};

#[tokio::test]
async fn ten_concurrent_retries_make_one_order_and_ten_identical_answers() {
    let app = TestApp::spawn().await;
    let rid = app.create_restaurant().await;
    let token = app.token(Role::Service, rid);

    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..10 {
        let (client, base, token) = (app.client.clone(), app.base.clone(), token.clone());
        tasks.spawn(async move {
            let r = client
                .post(format!("{base}/v1/restaurants/{rid}/orders"))
                .bearer_auth(token)
                .header("Idempotency-Key", "pos-7-order-1")
                .json(&simple_order())
                .send()
                .await
                .unwrap();
            (r.status(), r.json::<Value>().await.unwrap())
        });
    }
    let answers = tasks.join_all().await;

    assert!(answers.iter().all(|(s, _)| *s == StatusCode::CREATED));
    assert!(
        answers.iter().all(|(_, body)| *body == answers[0].1),
        "every answer is the first one"
    );
    assert_eq!(
        app.count("SELECT count(*) FROM orders WHERE restaurant_id = $1", rid)
            .await,
        1
    );
    assert_eq!(
        app.count("SELECT count(*) FROM events WHERE restaurant_id = $1", rid)
            .await,
        1
    );
}

#[tokio::test]
async fn a_retry_is_marked_as_a_replay_and_another_body_with_the_key_is_refused() {
    let app = TestApp::spawn().await;
    let rid = app.create_restaurant().await;
    let token = app.token(Role::Service, rid);
    let send = |body: Value| {
        app.client
            .post(format!("{}/v1/restaurants/{rid}/orders", app.base))
            .bearer_auth(&token)
            .header("Idempotency-Key", "k-1")
            .json(&body)
            .send()
    };

    let first = send(simple_order()).await.unwrap();
    assert_eq!(first.status(), StatusCode::CREATED);
    let first: Value = first.json().await.unwrap();
    let retry = send(simple_order()).await.unwrap();
    assert_eq!(retry.status(), StatusCode::CREATED);
    assert_eq!(retry.headers()["idempotent-replayed"], "true");
    assert_eq!(retry.json::<Value>().await.unwrap(), first);

    let mut other = simple_order();
    other["table"] = "8".into();
    let refused = send(other).await.unwrap();
    assert_eq!(refused.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let problem: Value = refused.json().await.unwrap();
    assert_eq!(
        problem["type"],
        "https://ordercast.dev/problems/idempotency-key-reused"
    );
    assert_eq!(
        app.count("SELECT count(*) FROM orders WHERE restaurant_id = $1", rid)
            .await,
        1
    );
}

#[tokio::test]
async fn a_replay_carries_the_location_and_etag_of_the_first_answer() {
    let app = TestApp::spawn().await;
    let rid = app.create_restaurant().await;
    let token = app.token(Role::Service, rid);
    let send = || {
        app.client
            .post(format!("{}/v1/restaurants/{rid}/orders", app.base))
            .bearer_auth(&token)
            .header("Idempotency-Key", "k-headers")
            .json(&simple_order())
            .send()
    };

    let first = send().await.unwrap();
    assert_eq!(first.status(), StatusCode::CREATED);
    let retry = send().await.unwrap();
    assert_eq!(retry.headers()["idempotent-replayed"], "true");
    for name in [header::LOCATION, header::ETAG] {
        assert_eq!(
            retry.headers().get(&name),
            Some(&first.headers()[&name]),
            "{name}"
        );
    }
}

#[tokio::test]
async fn concurrent_retries_of_a_status_change_apply_it_once_and_answer_it_alike() {
    let app = TestApp::spawn().await;
    let rid = app.create_restaurant().await;
    let order = app.order(rid).await;
    let oid = order["order"]["id"].as_str().unwrap().to_owned();
    let token = app.token(Role::Kitchen, rid);

    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..5 {
        let (client, base, token) = (app.client.clone(), app.base.clone(), token.clone());
        let url = format!("{base}/v1/restaurants/{rid}/orders/{oid}/status");
        tasks.spawn(async move {
            let r = client
                .post(url)
                .bearer_auth(token)
                .header("Idempotency-Key", "kds-2-accept")
                .header(header::IF_MATCH, "\"1\"")
                .json(&serde_json::json!({"status": "accepted"}))
                .send()
                .await
                .unwrap();
            let replayed = r.headers().contains_key("idempotent-replayed");
            let etag = r.headers()[header::ETAG].to_str().unwrap().to_owned();
            (r.status(), etag, replayed, r.json::<Value>().await.unwrap())
        });
    }
    let answers = tasks.join_all().await;

    assert!(
        answers.iter().all(|(s, ..)| *s == StatusCode::OK),
        "{answers:?}"
    );
    assert!(answers.iter().all(|(_, etag, ..)| etag == "\"2\""));
    assert!(answers.iter().all(|(.., body)| *body == answers[0].3));
    assert_eq!(
        answers
            .iter()
            .filter(|(_, _, replayed, _)| !replayed)
            .count(),
        1
    );
    assert_eq!(
        app.count("SELECT count(*) FROM events WHERE restaurant_id = $1", rid)
            .await,
        2,
        "created, accepted: once"
    );
}
