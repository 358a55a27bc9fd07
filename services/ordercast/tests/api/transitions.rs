use std::time::Duration;

use ordercast_core::Role;
use ordercast_core::order::OrderStatus;
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::common::{TestApp, seqs};

const ALL: [&str; 8] = [
    "new",
    "accepted",
    "in_progress",
    "ready",
    "served",
    "paid",
    "cancelled",
    "rejected",
];

/// The legal path from `new` to `target`.
fn path_to(target: &str) -> Vec<&'static str> {
    match target {
        "new" => vec![],
        "cancelled" => vec!["cancelled"],
        "rejected" => vec!["rejected"],
        _ => {
            let happy = ["accepted", "in_progress", "ready", "served", "paid"];
            let end = happy.iter().position(|s| *s == target).unwrap();
            happy[..=end].to_vec()
        }
    }
}

#[tokio::test]
async fn every_illegal_transition_is_409_with_the_current_order_and_no_event() {
    let app = TestApp::spawn().await;
    let rid = app.create_restaurant().await;
    for from in ALL {
        let order = app.order(rid).await;
        let id = order["order"]["id"].as_str().unwrap().to_owned();
        for step in path_to(from) {
            let (status, body) = app.set_status(rid, &id, step).await;
            assert_eq!(status, StatusCode::OK, "{from}: {step}: {body}");
        }
        for to in ALL {
            let legal = from
                .parse::<OrderStatus>()
                .unwrap()
                .can_become(to.parse().unwrap());
            if legal {
                continue;
            }
            let events_before = app
                .count("SELECT count(*) FROM events WHERE restaurant_id = $1", rid)
                .await;
            let (status, problem) = app.set_status(rid, &id, to).await;
            assert_eq!(status, StatusCode::CONFLICT, "{from} → {to}");
            assert_eq!(
                problem["type"],
                "https://ordercast.dev/problems/illegal-transition"
            );
            assert_eq!(
                problem["current"]["status"], from,
                "the 409 carries the order as it is"
            );
            let events_after = app
                .count("SELECT count(*) FROM events WHERE restaurant_id = $1", rid)
                .await;
            assert_eq!(events_before, events_after, "{from} → {to} wrote an event");
        }
    }
}

#[tokio::test]
async fn a_stale_if_match_is_409_and_a_current_one_succeeds() {
    let app = TestApp::spawn().await;
    let rid = app.create_restaurant().await;
    let order = app.order(rid).await;
    let id = order["order"]["id"].as_str().unwrap();
    let path = format!("{}/v1/restaurants/{rid}/orders/{id}/status", app.base);
    let send = |version: &str, status: &str| {
        app.client
            .post(&path)
            .bearer_auth(app.token(Role::Kitchen, rid))
            .header("If-Match", version)
            .json(&json!({"status": status}))
            .send()
    };

    let ok = send("\"1\"", "accepted").await.unwrap();
    assert_eq!(ok.status(), StatusCode::OK);
    assert_eq!(ok.headers()["etag"], "\"2\"");
    let stale = send("\"1\"", "in_progress").await.unwrap();
    assert_eq!(stale.status(), StatusCode::CONFLICT);
    let problem: Value = stale.json().await.unwrap();
    assert_eq!(
        problem["type"],
        "https://ordercast.dev/problems/version-mismatch"
    );
    assert_eq!(problem["current"]["version"], 2);
    assert_eq!(problem["current"]["status"], "accepted");
}

#[tokio::test]
async fn racing_updates_with_the_same_version_let_exactly_one_win() {
    let app = TestApp::spawn().await;
    let rid = app.create_restaurant().await;
    let order = app.order(rid).await;
    let id = order["order"]["id"].as_str().unwrap().to_owned();

    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..10 {
        let (client, base, token, id) = (
            app.client.clone(),
            app.base.clone(),
            app.token(Role::Owner, rid),
            id.clone(),
        );
        tasks.spawn(async move {
            client
                .post(format!("{base}/v1/restaurants/{rid}/orders/{id}/status"))
                .bearer_auth(token)
                .header("If-Match", "\"1\"")
                .json(&json!({"status": "accepted"}))
                .send()
                .await
                .unwrap()
                .status()
        });
    }
    let statuses = tasks.join_all().await;

    assert_eq!(statuses.iter().filter(|s| **s == StatusCode::OK).count(), 1);
    assert_eq!(
        statuses
            .iter()
            .filter(|s| **s == StatusCode::CONFLICT)
            .count(),
        9
    );
    assert_eq!(seqs(&app.stored_events(rid).await), [1, 2]);
}

#[tokio::test]
async fn concurrent_item_updates_never_lose_a_write_and_the_last_ready_item_readies_the_order() {
    let app = TestApp::spawn().await;
    let rid = app.create_restaurant().await;
    let items: Vec<Value> = (0..20)
        .map(|i| json!({"sku": format!("s{i}"), "name": format!("Dish {i}"), "quantity": 1, "unit_price_cents": 100}))
        .collect();
    let (_, created) = app
        .create_order(
            rid,
            &app.token(Role::Owner, rid),
            json!({"channel": "pos", "items": items}),
        )
        .await;
    let id = created["order"]["id"].as_str().unwrap().to_owned();
    app.set_status(rid, &id, "accepted").await;
    let item_ids: Vec<String> = created["order"]["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["id"].as_str().unwrap().to_owned())
        .collect();

    for target in ["cooking", "ready"] {
        let mut tasks = tokio::task::JoinSet::new();
        for item in &item_ids {
            let (client, base, token) = (
                app.client.clone(),
                app.base.clone(),
                app.token(Role::Kitchen, rid),
            );
            let url = format!("{base}/v1/restaurants/{rid}/orders/{id}/items/{item}/status");
            tasks.spawn(async move {
                let r = client
                    .post(url)
                    .bearer_auth(token)
                    .json(&json!({"status": target}))
                    .send()
                    .await
                    .unwrap();
                r.status()
            });
        }
        assert!(tasks.join_all().await.iter().all(|s| *s == StatusCode::OK));
    }

    let (_, order) = app
        .get(
            &format!("/v1/restaurants/{rid}/orders/{id}"),
            &app.token(Role::Owner, rid),
        )
        .await;
    assert!(
        order["items"]
            .as_array()
            .unwrap()
            .iter()
            .all(|i| i["status"] == "ready")
    );
    assert_eq!(
        order["status"], "ready",
        "the last ready item readied the order"
    );
    // created + accepted + 40 item changes + the automatic ready.
    assert_eq!(order["version"], 1 + 1 + 40 + 1);
    let events = app.stored_events(rid).await;
    assert_eq!(seqs(&events), (1..=43).collect::<Vec<_>>());
    let last_two: Vec<&str> = events[41..]
        .iter()
        .map(|e| e["type"].as_str().unwrap())
        .collect();
    assert_eq!(
        last_two,
        ["order.item_status_changed", "order.status_changed"]
    );
    assert_eq!(events[42]["previous_status"], "accepted");
    assert_eq!(events[42]["data"]["status"], "ready");
    tokio::time::timeout(Duration::from_secs(5), app.stop())
        .await
        .expect("stops");
}
