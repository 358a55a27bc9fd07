//! `since` as a time: a screen that stored "last seen at 10:42:07" resumes
//! from there on every transport.

use chrono::{DateTime, Duration, SecondsFormat, Utc};
use ordercast_core::{RestaurantId, Role};
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::clients::{Resume, Sse, Ws, assert_exactly, poll};
use crate::common::{TestApp, seqs};

/// Three orders (seqs 1–3); returns the time stamped on event 2.
async fn three_orders(app: &TestApp, rid: RestaurantId) -> DateTime<Utc> {
    app.orders(rid, 3).await;
    let stored = app.stored_events(rid).await;
    stored[1]["ts"].as_str().unwrap().parse().unwrap()
}

fn rfc3339(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Micros, true)
}

#[tokio::test]
async fn a_screen_resumes_from_a_time_on_sse_websocket_and_long_poll() {
    let app = TestApp::spawn().await;
    let rid = app.create_restaurant().await;
    let owner = app.token(Role::Owner, rid);
    let at = three_orders(&app, rid).await;
    let since = rfc3339(at);

    // The event stamped exactly at the time is the first delivered.
    let mut sse = Sse::connect(&app.base, rid, &owner, Resume::since(&since)).await;
    let mut ws = Ws::connect(&app.base, &owner).await;
    ws.send(json!({"type": "subscribe", "restaurant_id": rid, "since": since}))
        .await;
    let (status, page) = poll(&app.base, rid, &owner, &format!("since={since}&wait=0")).await;
    assert_eq!(status, StatusCode::OK, "{page}");
    assert_eq!(seqs(page["events"].as_array().unwrap()), [2, 3]);
    assert_eq!(page["next"], 3);

    // Then live events, on the seq cursor, with no gap and no duplicate.
    app.order(rid).await;
    sse.until_count(3).await;
    assert_exactly(&sse.seqs(), 2..=4, "SSE from a time");
    ws.until("3 events", |w| w.seqs(rid).len() == 3).await;
    assert_exactly(&ws.seqs(rid), 2..=4, "WebSocket from a time");
    assert_eq!(ws.of_type("subscribed")[0]["seq"], 1);

    // A time between two events starts with the later one; any offset.
    let just_after = (at + Duration::microseconds(1))
        .with_timezone(&chrono::FixedOffset::east_opt(2 * 3600).unwrap());
    let query = format!(
        "since={}&wait=0",
        urlencoding(&just_after.to_rfc3339_opts(SecondsFormat::Micros, false))
    );
    let (_, page) = poll(&app.base, rid, &owner, &query).await;
    assert_eq!(seqs(page["events"].as_array().unwrap()), [3, 4]);
}

#[tokio::test]
async fn a_time_in_the_future_starts_from_now_and_one_before_retention_is_refused() {
    let app = TestApp::spawn().await;
    let rid = app.create_restaurant().await;
    let owner = app.token(Role::Owner, rid);
    three_orders(&app, rid).await;

    let future = rfc3339(Utc::now() + Duration::hours(1));
    let (status, page) = poll_since(&app, rid, &owner, &future).await;
    assert_eq!(status, StatusCode::OK, "{page}");
    assert_eq!(
        (page["events"].clone(), page["next"].clone()),
        (json!([]), json!(3))
    );

    // Retention is 7 days by default: eight days ago may have been deleted.
    let expired = rfc3339(Utc::now() - Duration::days(8));
    let refused = Sse::open(&app.base, rid, &owner, Resume::since(&expired)).await;
    let (status, problem) = refused.err().expect("refused");
    assert_eq!(status, StatusCode::GONE);
    assert_eq!(
        problem["type"],
        "https://ordercast.dev/problems/cursor-expired"
    );
    let (status, problem) = poll_since(&app, rid, &owner, &expired).await;
    assert_eq!(
        (status, problem["type"].clone()),
        (StatusCode::GONE, problem_type("cursor-expired"))
    );

    let mut ws = Ws::connect(&app.base, &owner).await;
    ws.send(json!({"type": "subscribe", "restaurant_id": rid, "since": expired}))
        .await;
    ws.send(json!({"type": "subscribe", "restaurant_id": rid, "since": "yesterday"}))
        .await;
    ws.until("two errors", |w| w.of_type("error").len() >= 2)
        .await;
    assert_eq!(
        ws.error_codes(),
        [json!("cursor_expired"), json!("invalid_cursor")]
    );

    // Not a time, not a seq: the cursor error names both forms.
    let (status, problem) = poll(&app.base, rid, &owner, "since=10:42:07").await;
    assert_eq!(
        (status, problem["type"].clone()),
        (StatusCode::BAD_REQUEST, problem_type("invalid-cursor"))
    );
    assert!(
        problem["detail"].as_str().unwrap().contains("RFC 3339"),
        "{problem}"
    );
}

/// A long-poll from `since` that does not wait.
async fn poll_since(
    app: &TestApp,
    rid: RestaurantId,
    token: &str,
    since: &str,
) -> (StatusCode, Value) {
    poll(
        &app.base,
        rid,
        token,
        &format!("since={}&wait=0", urlencoding(since)),
    )
    .await
}

fn problem_type(slug: &str) -> Value {
    json!(format!("https://ordercast.dev/problems/{slug}"))
}

/// `+` in an offset must not reach the server as a space.
fn urlencoding(text: &str) -> String {
    text.replace('+', "%2B").replace(':', "%3A")
}
