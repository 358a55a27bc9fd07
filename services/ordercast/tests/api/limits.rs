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
        s.api.write_budgets.restaurant = rate;
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

#[tokio::test]
async fn a_guest_flooding_requests_is_refused_on_its_own_while_the_tills_keep_their_orders() {
    let app = TestApp::spawn().await;
    let rid = app.create_restaurant().await;
    let guest = app.token_with(Role::Customer, rid, |c| {
        c.session_id = Some("table-9".parse().unwrap());
    });
    let other_table = app.token_with(Role::Customer, rid, |c| {
        c.session_id = Some("table-4".parse().unwrap());
    });
    let call = || serde_json::json!({"kind": "water", "table": "9"});

    // Far more than a table session's burst and the staff's (200).
    let mut refused = 0;
    for _ in 0..300 {
        let (status, _) = app
            .post(&format!("/v1/restaurants/{rid}/requests"), &guest, call())
            .await;
        if status == StatusCode::TOO_MANY_REQUESTS {
            refused += 1;
        }
    }

    assert!(refused >= 280, "only {refused} of 300 refused");
    for _ in 0..5 {
        app.order(rid).await; // the till's orders: 201, asserted inside
    }
    let (status, body) = app
        .post(
            &format!("/v1/restaurants/{rid}/requests"),
            &other_table,
            call(),
        )
        .await;
    assert_eq!(
        status,
        StatusCode::CREATED,
        "another table is not held up: {body}"
    );
}

#[tokio::test]
async fn a_waiter_flooding_commands_is_refused_on_its_own_while_the_tills_and_other_waiters_go_on()
{
    let app = TestApp::spawn().await;
    let rid = app.create_restaurant().await;
    let waiter = |id: &str| {
        let id = id.parse().unwrap();
        app.token_with(Role::Waiter, rid, move |c| c.waiter_id = Some(id))
    };
    let (looping, other) = (waiter("w-7"), waiter("w-8"));

    // A looping handheld: far more than a waiter's burst, and than the
    // staff's own burst (200).
    let mut refused = 0;
    for _ in 0..250 {
        let (status, _) = app.create_order(rid, &looping, simple_order()).await;
        if status == StatusCode::TOO_MANY_REQUESTS {
            refused += 1;
        }
    }

    assert!(refused >= 200, "only {refused} of 250 refused");
    for _ in 0..5 {
        app.order(rid).await; // the till's orders: 201, asserted inside
    }
    let (status, body) = app.create_order(rid, &other, simple_order()).await;
    assert_eq!(
        status,
        StatusCode::CREATED,
        "another waiter is not held up: {body}"
    );
}
