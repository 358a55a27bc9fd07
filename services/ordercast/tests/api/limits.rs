//! The per-restaurant command rate, from the side of a restaurant that
//! overdoes it and of one that does not.

use std::num::NonZeroU32;
use std::time::Duration;

use ordercast::app::Role as ServerRole;
use ordercast_api::WriteRate;
use ordercast_core::Role;
use reqwest::StatusCode;
use reqwest::header::RETRY_AFTER;
use serde_json::Value;

use crate::common::{Backends, TestApp, simple_order};

#[tokio::test]
async fn past_its_command_rate_a_restaurant_gets_429_and_no_one_else_notices() {
    // A burst of 3, then one command an hour: the test never waits for it.
    let rate = WriteRate::one_every(Duration::from_secs(3_600), NonZeroU32::new(3).unwrap());
    let app = TestApp::spawn_with(Backends::fresh().await, ServerRole::All, |s| {
        s.api.write_rate = rate;
    })
    .await;
    let busy = app.create_restaurant().await;
    let quiet = app.create_restaurant().await;
    app.orders(busy, 3).await;

    let refused = app
        .client
        .post(format!("{}/v1/restaurants/{busy}/orders", app.base))
        .bearer_auth(app.token(Role::Owner, busy))
        .json(&simple_order())
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), StatusCode::TOO_MANY_REQUESTS);
    let retry_after: u64 = refused.headers()[RETRY_AFTER]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(
        (3_000..=3_600).contains(&retry_after),
        "Retry-After: {retry_after}"
    );
    let problem: Value = refused.json().await.unwrap();
    assert_eq!(
        problem["type"],
        "https://ordercast.dev/problems/rate-limited"
    );
    assert_eq!(problem["status"], 429);

    // Nothing of the refused command was written; reading is not limited;
    // another restaurant, even with a kitchen's status change, is not held up.
    let written = "SELECT count(*) FROM orders WHERE restaurant_id = $1";
    assert_eq!(app.count(written, busy).await, 3);
    let (status, orders) = app
        .get(
            &format!("/v1/restaurants/{busy}/orders"),
            &app.token(Role::Kitchen, busy),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{orders}");
    let order = app.order(quiet).await;
    let (status, body) = app
        .set_status(quiet, order["order"]["id"].as_str().unwrap(), "accepted")
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(app.metric("ordercast_rate_limited_total").await, 1.0);
}
