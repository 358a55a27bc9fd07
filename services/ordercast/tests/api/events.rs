use std::time::Duration;

use ordercast_core::Role;
use ordercast_testkit::eventually;
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::common::{TestApp, simple_order};

#[tokio::test]
async fn requests_go_to_the_sessions_waiter_and_transfers_move_them() {
    let app = TestApp::spawn().await;
    let rid = app.create_restaurant().await;
    let w1 = app.token_with(Role::Waiter, rid, |c| {
        c.waiter_id = Some("w1".parse().unwrap())
    });
    let guest = app.token_with(Role::Customer, rid, |c| {
        c.session_id = Some("s-7".parse().unwrap())
    });
    let mut order = simple_order();
    order["session_id"] = json!("s-7");
    app.create_order(rid, &w1, order).await;

    let (status, created) = app
        .post(
            &format!("/v1/restaurants/{rid}/requests"),
            &guest,
            json!({"kind": "bill", "table": "7"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    assert_eq!(created["request"]["waiter_id"], "w1");
    assert_eq!(created["request"]["session_id"], "s-7");
    let (status, moved) = app
        .post(
            &format!("/v1/restaurants/{rid}/sessions/transfer"),
            &w1,
            json!({"from_waiter_id": "w1", "to_waiter_id": "w2"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{moved}");
    assert_eq!(moved["transfer"]["session_ids"], json!(["s-7"]));
    assert_eq!(moved["transfer"]["order_ids"].as_array().unwrap().len(), 1);
    let path = format!(
        "/v1/restaurants/{rid}/requests/{}/status",
        created["request"]["id"].as_str().unwrap()
    );
    let w2 = app.token_with(Role::Waiter, rid, |c| {
        c.waiter_id = Some("w2".parse().unwrap())
    });
    let (status, done) = app.post(&path, &w2, json!({"status": "resolved"})).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(done["request"]["waiter_id"], "w2");
    let types: Vec<String> = app
        .stored_events(rid)
        .await
        .iter()
        .map(|e| e["type"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        types,
        [
            "order.created",
            "request.created",
            "session.transferred",
            "session.transferred",
            "request.status_changed"
        ]
    );
}

#[tokio::test]
async fn notifications_and_custom_events_carry_their_audience() {
    let app = TestApp::spawn().await;
    let rid = app.create_restaurant().await;
    let kitchen = app.token(Role::Kitchen, rid);
    let service = app.token(Role::Service, rid);

    let (status, sent) = app
        .post(
            &format!("/v1/restaurants/{rid}/notifications"),
            &kitchen,
            json!({"audience": {"roles": ["waiter"], "waiter_id": "w1"}, "urgency": "urgent",
                   "title": "Pickup", "message": "Table 7 is ready", "group_key": "pickup-7"}),
        )
        .await;
    assert_eq!(
        (status, sent["seq"].as_u64()),
        (StatusCode::CREATED, Some(1))
    );
    let (status, _) = app
        .post(
            &format!("/v1/restaurants/{rid}/events"),
            &service,
            json!({"type": "x.loyalty.points", "audience": {"roles": ["customer"], "session_id": "s-1"}, "data": {"points": 40}}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let (status, problem) = app
        .post(
            &format!("/v1/restaurants/{rid}/events"),
            &service,
            json!({"type": "order.created", "audience": {"roles": ["owner"]}, "data": {}}),
        )
        .await;
    assert_eq!(
        status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "integrations cannot forge built-in events"
    );
    assert_eq!(problem["errors"][0]["field"], "type");

    let events = app.stored_events(rid).await;
    assert_eq!(
        events[0]["audience"],
        json!({"roles": ["waiter"], "waiter_id": "w1"})
    );
    assert_eq!(events[0]["data"]["urgency"], "urgent");
    assert_eq!(events[1]["type"], "x.loyalty.points");
    assert_eq!(events[1]["data"], json!({"points": 40}));
}

#[tokio::test]
async fn invalidation_hints_within_a_window_become_one_event() {
    let app = TestApp::spawn().await;
    let rid = app.create_restaurant().await;
    let owner = app.token(Role::Owner, rid);
    let path = format!("/v1/restaurants/{rid}/invalidations");

    for (resource, priority) in [("menu", "low"), ("menu", "medium"), ("tables/4", "high")] {
        let (status, body) = app
            .post(
                &path,
                &owner,
                json!({"resources": [resource], "priority": priority}),
            )
            .await;
        assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    }

    let events = eventually("the coalesced event", Duration::from_secs(10), || async {
        let e = app.stored_events(rid).await;
        (!e.is_empty()).then_some(e)
    })
    .await;
    assert_eq!(events.len(), 1);
    assert_eq!(events[0]["type"], "cache.invalidate");
    assert_eq!(
        events[0]["data"],
        json!({"resources": ["menu", "tables/4"], "priority": "high"})
    );
}

#[tokio::test]
async fn the_trace_context_of_the_request_travels_in_the_event() {
    let app = TestApp::spawn().await;
    let rid = app.create_restaurant().await;
    let traceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    let response = app
        .client
        .post(format!("{}/v1/restaurants/{rid}/orders", app.base))
        .bearer_auth(app.token(Role::Owner, rid))
        .header("traceparent", traceparent)
        .json(&simple_order())
        .send()
        .await
        .unwrap();

    assert_eq!(response.status(), StatusCode::CREATED);
    assert_eq!(app.stored_events(rid).await[0]["trace"], traceparent);
}

#[tokio::test]
async fn the_openapi_document_describes_every_route() {
    let app = TestApp::spawn().await;
    let (status, doc) = app.get("/openapi.json", "").await;
    assert_eq!(status, StatusCode::OK);
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."));
    let paths = doc["paths"].as_object().unwrap();
    for path in [
        "/v1/restaurants",
        "/v1/restaurants/{rid}",
        "/v1/restaurants/{rid}/orders",
        "/v1/restaurants/{rid}/orders/{oid}",
        "/v1/restaurants/{rid}/orders/{oid}/status",
        "/v1/restaurants/{rid}/orders/{oid}/items/{iid}/status",
        "/v1/restaurants/{rid}/requests",
        "/v1/restaurants/{rid}/requests/{id}/status",
        "/v1/restaurants/{rid}/sessions/transfer",
        "/v1/restaurants/{rid}/notifications",
        "/v1/restaurants/{rid}/invalidations",
        "/v1/restaurants/{rid}/events",
    ] {
        assert!(paths.contains_key(path), "missing {path}");
    }
}

#[tokio::test]
async fn every_reference_in_the_openapi_document_resolves() {
    let app = TestApp::spawn().await;
    let (_, doc) = app.get("/openapi.json", "").await;
    let mut refs = Vec::new();
    collect_refs(&doc, &mut refs);
    assert!(!refs.is_empty());
    for reference in refs {
        let path = reference.strip_prefix('#').expect("a local reference");
        assert!(
            doc.pointer(path).is_some(),
            "{reference} resolves to nothing"
        );
    }
}

fn collect_refs(value: &Value, refs: &mut Vec<String>) {
    match value {
        Value::Object(fields) => {
            if let Some(Value::String(r)) = fields.get("$ref") {
                refs.push(r.clone());
            }
            fields.values().for_each(|v| collect_refs(v, refs));
        }
        Value::Array(items) => items.iter().for_each(|v| collect_refs(v, refs)),
        _ => {}
    }
}

#[tokio::test]
async fn the_openapi_document_declares_the_bounds_requests_are_checked_against() {
    use ordercast_api::{
        MAX_INVALIDATION_RESOURCES, MAX_ITEMS, MAX_QUANTITY, MAX_TRANSFER_SESSIONS,
        MAX_UNIT_PRICE_CENTS,
    };
    use ordercast_core::order::MAX_ORDER_NUMBER;
    use ordercast_core::request::MAX_REQUEST_MESSAGE_CHARS;
    let app = TestApp::spawn().await;
    let (_, doc) = app.get("/openapi.json", "").await;
    let bound = |schema: &str, field: &str, keyword: &str| {
        let at = format!("/components/schemas/{schema}/properties/{field}/{keyword}");
        doc.pointer(&at).and_then(Value::as_i64)
    };
    let max = |n: usize| Some(n as i64);
    let cases = [
        ("CreateOrder", "items", "minItems", Some(1)),
        ("CreateOrder", "items", "maxItems", max(MAX_ITEMS)),
        ("CreateOrder", "table", "minLength", Some(1)),
        ("CreateItem", "name", "minLength", Some(1)),
        ("CreateItem", "name", "maxLength", Some(120)),
        ("CreateItem", "quantity", "minimum", Some(1)),
        ("CreateItem", "quantity", "maximum", Some(MAX_QUANTITY)),
        (
            "CreateItem",
            "unit_price_cents",
            "maximum",
            Some(MAX_UNIT_PRICE_CENTS),
        ),
        ("CreateRequest", "table", "minLength", Some(1)),
        (
            "CreateRequest",
            "message",
            "maxLength",
            max(MAX_REQUEST_MESSAGE_CHARS),
        ),
        (
            "SetRequestStatus",
            "message",
            "maxLength",
            max(MAX_REQUEST_MESSAGE_CHARS),
        ),
        ("Order", "number", "minimum", Some(1)),
        (
            "Order",
            "number",
            "maximum",
            Some(i64::from(MAX_ORDER_NUMBER)),
        ),
        (
            "TransferBody",
            "session_ids",
            "maxItems",
            max(MAX_TRANSFER_SESSIONS),
        ),
        ("Invalidate", "resources", "minItems", Some(1)),
        (
            "Invalidate",
            "resources",
            "maxItems",
            max(MAX_INVALIDATION_RESOURCES),
        ),
        ("Notify", "title", "minLength", Some(1)),
        ("Audience", "roles", "minItems", Some(1)),
        ("CreateRestaurant", "name", "minLength", Some(1)),
    ];
    for (schema, field, keyword, expected) in cases {
        assert_eq!(
            bound(schema, field, keyword),
            expected,
            "{schema}.{field} {keyword}"
        );
    }
}
