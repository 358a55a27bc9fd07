//! Requests that would cost the server far more than they cost the client
//! are refused or paginated: one order cannot be 40 KB of text, one custom
//! event cannot be 64 KB, and one `GET …/orders` cannot return them all.

use std::collections::BTreeSet;

use ordercast::app::Role as ServerRole;
use ordercast_api::{MAX_CUSTOM_DATA_BYTES, MAX_ITEMS, MAX_ORDER_TEXT_BYTES};
use ordercast_core::Role;
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::common::{Backends, TestApp, simple_order};

/// An order of `items` items, each with its name and notes at their own
/// bounds (120 and 200 characters).
fn wordy_order(items: usize) -> Value {
    let item = json!({
        "sku": "s", "name": "n".repeat(120), "quantity": 1, "unit_price_cents": 100,
        "notes": "x".repeat(200),
    });
    json!({"channel": "pos", "items": vec![item; items]})
}

fn field_errors(problem: &Value) -> Vec<&str> {
    problem["errors"]
        .as_array()
        .map(|e| e.iter().filter_map(|e| e["field"].as_str()).collect())
        .unwrap_or_default()
}

#[tokio::test]
async fn an_order_or_custom_event_too_large_in_total_is_refused_with_its_field_and_nothing_is_written()
 {
    let app = TestApp::spawn().await;
    let rid = app.create_restaurant().await;
    let owner = app.token(Role::Owner, rid);
    let fits = MAX_ORDER_TEXT_BYTES / 321;

    let (status, problem) = app.create_order(rid, &owner, wordy_order(MAX_ITEMS)).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{problem}");
    assert_eq!(
        problem["type"],
        "https://ordercast.dev/problems/validation-failed"
    );
    assert_eq!(field_errors(&problem), ["items"], "{problem}");
    let (status, body) = app.create_order(rid, &owner, wordy_order(fits)).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");

    let events = format!("/v1/restaurants/{rid}/events");
    let custom = |bytes: usize| {
        json!({"type": "x.menu", "audience": {"roles": ["kitchen"]},
               "data": {"text": "d".repeat(bytes)}})
    };
    let (status, problem) = app
        .post(&events, &owner, custom(MAX_CUSTOM_DATA_BYTES))
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{problem}");
    assert_eq!(field_errors(&problem), ["data"], "{problem}");
    let (status, body) = app
        .post(&events, &owner, custom(MAX_CUSTOM_DATA_BYTES - 100))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");

    let stored = "SELECT count(*) FROM events WHERE restaurant_id = $1";
    assert_eq!(app.count(stored, rid).await, 2, "only the two that fit");
}

/// Every page of `GET …/orders` from `query`, following `next`.
async fn walk(app: &TestApp, path: &str, token: &str, query: &str) -> Vec<Value> {
    let mut pages = Vec::new();
    let mut url = format!("{path}?{query}");
    loop {
        let (status, page) = app.get(&url, token).await;
        assert_eq!(status, StatusCode::OK, "{page}");
        let next = page["next"].as_str().map(str::to_owned);
        assert_eq!(page["truncated"], next.is_some(), "{page}");
        pages.push(page);
        match next {
            Some(next) => url = format!("{path}?{query}&after={next}"),
            None => return pages,
        }
    }
}

fn ids(page: &Value) -> Vec<String> {
    page["orders"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["id"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn orders_are_listed_a_page_at_a_time_and_the_cursor_walks_every_order_once() {
    let app = TestApp::spawn().await;
    let rid = app.create_restaurant().await;
    let owner = app.token(Role::Owner, rid);
    let path = format!("/v1/restaurants/{rid}/orders");
    app.orders(rid, 25).await;

    let (status, first) = app.get(&format!("{path}?limit=10"), &owner).await;
    assert_eq!(status, StatusCode::OK, "{first}");
    assert_eq!(ids(&first).len(), 10);
    assert_eq!(first["seq"], 25);
    // An order created during the walk is newer than every page: it comes
    // by the stream (after the first page's seq), not in a later page.
    app.orders(rid, 1).await;
    let pages = walk(&app, &path, &owner, "limit=10").await;
    let listed: Vec<String> = pages.iter().flat_map(ids).collect();
    let unique: BTreeSet<&String> = listed.iter().collect();
    assert_eq!(listed.len(), 26);
    assert_eq!(unique.len(), 26, "each order once");
    assert_eq!(pages.len(), 3);

    let (status, all) = app.get(&path, &owner).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(ids(&all).len(), 26, "a page holds 100 by default");
    assert!(all.get("next").is_none(), "{all}");
    for bad in ["limit=0", "limit=1001", "after=yesterday"] {
        let (status, problem) = app.get(&format!("{path}?{bad}"), &owner).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}: {problem}");
    }
}

#[tokio::test]
async fn a_page_of_large_orders_stops_at_its_byte_bound() {
    let app = TestApp::spawn_with(Backends::fresh().await, ServerRole::All, |s| {
        s.api.write_budgets.restaurant = None;
    })
    .await;
    let rid = app.create_restaurant().await;
    let owner = app.token(Role::Owner, rid);
    let large = wordy_order(MAX_ORDER_TEXT_BYTES / 321);
    for _ in 0..300 {
        let (status, body) = app.create_order(rid, &owner, large.clone()).await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
    }
    let path = format!("/v1/restaurants/{rid}/orders");

    let pages = walk(&app, &path, &owner, "limit=1000").await;

    assert!(pages.len() >= 2, "300 orders of 8 KB do not fit one page");
    for page in &pages {
        let bytes = serde_json::to_vec(&page["orders"]).unwrap().len();
        assert!(bytes <= 2 * 1024 * 1024, "a page of {bytes} bytes");
    }
    let listed: BTreeSet<String> = pages.iter().flat_map(ids).collect();
    assert_eq!(listed.len(), 300);
}

#[tokio::test]
async fn a_customer_pages_only_through_its_own_session() {
    let app = TestApp::spawn().await;
    let rid = app.create_restaurant().await;
    let owner = app.token(Role::Owner, rid);
    let mine = app.token_with(Role::Customer, rid, |c| {
        c.session_id = Some("s1".parse().unwrap())
    });
    for session in ["s1", "s2", "s1", "s2", "s1"] {
        let mut order = simple_order();
        order["session_id"] = json!(session);
        let (status, body) = app.create_order(rid, &owner, order).await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
    }

    let path = format!("/v1/restaurants/{rid}/orders");
    let pages = walk(&app, &path, &mine, "limit=1").await;

    assert_eq!(pages.len(), 3);
    for page in &pages {
        for order in page["orders"].as_array().unwrap() {
            assert_eq!(order["session_id"], "s1");
        }
    }
}
