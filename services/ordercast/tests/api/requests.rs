//! The request workflow (`open → acknowledged → in_progress ↔ on_hold →
//! resolved | cancelled`) and a request's human message.

use ordercast_core::request::RequestStatus;
use ordercast_core::{RestaurantId, Role};
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::common::TestApp;

const ALL: [&str; 6] = [
    "open",
    "acknowledged",
    "in_progress",
    "on_hold",
    "resolved",
    "cancelled",
];

/// A legal path from `open` to `target`.
fn path_to(target: &str) -> &'static [&'static str] {
    match target {
        "open" => &[],
        "acknowledged" => &["acknowledged"],
        "in_progress" => &["acknowledged", "in_progress"],
        "on_hold" => &["acknowledged", "in_progress", "on_hold"],
        "resolved" => &["acknowledged", "in_progress", "resolved"],
        "cancelled" => &["acknowledged", "in_progress", "on_hold", "cancelled"],
        other => panic!("no state {other}"),
    }
}

fn legal(from: &str, to: &str) -> bool {
    let from: RequestStatus = from.parse().unwrap();
    from.can_become(to.parse().unwrap())
}

/// A waiter call from table 12, as its guest.
async fn call(app: &TestApp, rid: RestaurantId, body: Value) -> (StatusCode, Value) {
    let guest = app.token_with(Role::Customer, rid, |c| {
        c.session_id = Some("s-12".parse().unwrap())
    });
    let path = format!("/v1/restaurants/{rid}/requests");
    app.post(&path, &guest, body).await
}

/// A waiter call from table 12, taken by the till (staff commands have a
/// larger budget than one table's guests).
async fn open_request(app: &TestApp, rid: RestaurantId) -> String {
    let path = format!("/v1/restaurants/{rid}/requests");
    let body = json!({"kind": "call_waiter", "table": "12", "session_id": "s-12"});
    let (status, body) = app.post(&path, &app.token(Role::Owner, rid), body).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    body["request"]["id"].as_str().unwrap().to_owned()
}

async fn move_request(
    app: &TestApp,
    rid: RestaurantId,
    id: &str,
    body: Value,
) -> (StatusCode, Value) {
    let path = format!("/v1/restaurants/{rid}/requests/{id}/status");
    app.post(&path, &app.token(Role::Owner, rid), body).await
}

#[tokio::test]
async fn every_request_transition_is_taken_or_refused_as_the_workflow_says() {
    let app = TestApp::spawn().await;
    let rid = app.create_restaurant().await;
    for from in ALL {
        for to in ALL {
            let id = open_request(&app, rid).await;
            for step in path_to(from) {
                let (status, body) = move_request(&app, rid, &id, json!({"status": step})).await;
                assert_eq!(status, StatusCode::OK, "{from}: {step}: {body}");
            }
            let events_before = app
                .count("SELECT count(*) FROM events WHERE restaurant_id = $1", rid)
                .await;

            let (status, body) = move_request(&app, rid, &id, json!({"status": to})).await;

            let events_after = app
                .count("SELECT count(*) FROM events WHERE restaurant_id = $1", rid)
                .await;
            if legal(from, to) {
                assert_eq!(status, StatusCode::OK, "{from} → {to}: {body}");
                assert_eq!(body["request"]["status"], to);
                assert_eq!(events_after, events_before + 1, "{from} → {to}");
            } else {
                assert_eq!(status, StatusCode::CONFLICT, "{from} → {to}: {body}");
                assert_eq!(
                    body["type"],
                    "https://ordercast.dev/problems/illegal-transition"
                );
                assert_eq!(body["current"]["status"], from, "the request as it is");
                assert_eq!(events_before, events_after, "{from} → {to} wrote an event");
            }
        }
    }
}

#[tokio::test]
async fn a_waiters_message_replaces_the_guests_and_travels_in_the_events() {
    let app = TestApp::spawn().await;
    let rid = app.create_restaurant().await;
    let (status, created) = call(
        &app,
        rid,
        json!({"kind": "water", "table": "12", "message": "no ice, please"}),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let id = created["request"]["id"].as_str().unwrap();

    let (_, acknowledged) = move_request(&app, rid, id, json!({"status": "acknowledged"})).await;
    let (_, started) = move_request(
        &app,
        rid,
        id,
        json!({"status": "in_progress", "message": "coming in 5 minutes"}),
    )
    .await;
    let (_, held) = move_request(&app, rid, id, json!({"status": "on_hold"})).await;

    assert_eq!(acknowledged["request"]["message"], "no ice, please", "kept");
    assert_eq!(started["request"]["message"], "coming in 5 minutes");
    assert_eq!(held["request"]["message"], "coming in 5 minutes", "kept");
    let events = app.stored_events(rid).await;
    let carried: Vec<_> = events
        .iter()
        .map(|e| {
            (
                e["type"].as_str().unwrap(),
                e["data"]["status"].as_str().unwrap(),
                e["data"]["message"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        carried,
        [
            ("request.created", "open", "no ice, please"),
            ("request.status_changed", "acknowledged", "no ice, please"),
            (
                "request.status_changed",
                "in_progress",
                "coming in 5 minutes"
            ),
            ("request.status_changed", "on_hold", "coming in 5 minutes"),
        ]
    );
    assert_eq!(events[3]["previous_status"], "in_progress");
}

#[tokio::test]
async fn a_message_longer_than_200_characters_is_422_and_changes_nothing() {
    let app = TestApp::spawn().await;
    let rid = app.create_restaurant().await;
    let longest = "é".repeat(200);
    let too_long = "é".repeat(201);

    let (status, refused) = call(
        &app,
        rid,
        json!({"kind": "bill", "table": "12", "message": too_long}),
    )
    .await;
    let (created, body) = call(
        &app,
        rid,
        json!({"kind": "bill", "table": "12", "message": longest}),
    )
    .await;
    let id = body["request"]["id"].as_str().unwrap();
    let (moved, problem) = move_request(
        &app,
        rid,
        id,
        json!({"status": "acknowledged", "message": too_long}),
    )
    .await;
    let (empty, _) = move_request(
        &app,
        rid,
        id,
        json!({"status": "acknowledged", "message": ""}),
    )
    .await;

    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{refused}");
    assert_eq!(
        refused["type"],
        "https://ordercast.dev/problems/validation-failed"
    );
    assert_eq!(refused["errors"][0]["field"], "message");
    assert_eq!(created, StatusCode::CREATED, "200 characters are fine");
    assert_eq!(moved, StatusCode::UNPROCESSABLE_ENTITY, "{problem}");
    assert_eq!(problem["errors"][0]["field"], "message");
    assert_eq!(empty, StatusCode::UNPROCESSABLE_ENTITY, "an empty message");
    let stored = app
        .count("SELECT count(*) FROM events WHERE restaurant_id = $1", rid)
        .await;
    assert_eq!(stored, 1, "only the valid request's event");
}
