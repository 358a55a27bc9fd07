use ordercast_core::{RestaurantId, Role};
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::common::{TestApp, mint, simple_order};

struct Case {
    name: &'static str,
    token: Option<String>,
    path: String,
    content_type: &'static str,
    body: Vec<u8>,
    status: StatusCode,
    problem: &'static str,
}

#[tokio::test]
async fn bad_input_gets_a_problem_with_a_stable_type_and_writes_nothing() {
    let app = TestApp::spawn().await;
    let rid = app.create_restaurant().await;
    let other = app.create_restaurant().await;
    let ghost = RestaurantId::new();
    let owner = app.token(Role::Owner, rid);
    let orders = format!("/v1/restaurants/{rid}/orders");
    let with = |edit: fn(&mut Value)| {
        let mut v = simple_order();
        edit(&mut v);
        serde_json::to_vec(&v).unwrap()
    };
    let valid = serde_json::to_vec(&simple_order()).unwrap();
    let signed = app.token(Role::Owner, rid);
    let payload = signed.split('.').nth(1).unwrap();
    let cases = vec![
        Case {
            name: "malformed JSON",
            token: Some(owner.clone()),
            path: orders.clone(),
            content_type: "application/json",
            body: b"{\"channel\": ".to_vec(),
            status: StatusCode::BAD_REQUEST,
            problem: "invalid-json",
        },
        Case {
            name: "wrong type",
            token: Some(owner.clone()),
            path: orders.clone(),
            content_type: "application/json",
            body: with(|v| v["items"][0]["quantity"] = json!("two")),
            status: StatusCode::UNPROCESSABLE_ENTITY,
            problem: "invalid-body",
        },
        Case {
            name: "unknown field",
            token: Some(owner.clone()),
            path: orders.clone(),
            content_type: "application/json",
            body: with(|v| v["discount"] = json!(10)),
            status: StatusCode::UNPROCESSABLE_ENTITY,
            problem: "invalid-body",
        },
        Case {
            name: "unknown channel",
            token: Some(owner.clone()),
            path: orders.clone(),
            content_type: "application/json",
            body: with(|v| v["channel"] = json!("fax")),
            status: StatusCode::UNPROCESSABLE_ENTITY,
            problem: "invalid-body",
        },
        Case {
            name: "oversized body",
            token: Some(owner.clone()),
            path: orders.clone(),
            content_type: "application/json",
            body: with(|v| v["notes"] = json!("x".repeat(70 * 1024))),
            status: StatusCode::PAYLOAD_TOO_LARGE,
            problem: "payload-too-large",
        },
        Case {
            name: "too many items",
            token: Some(owner.clone()),
            path: orders.clone(),
            content_type: "application/json",
            body: with(|v| v["items"] = json!(vec![v["items"][0].clone(); 101])),
            status: StatusCode::UNPROCESSABLE_ENTITY,
            problem: "validation-failed",
        },
        Case {
            name: "no items",
            token: Some(owner.clone()),
            path: orders.clone(),
            content_type: "application/json",
            body: with(|v| v["items"] = json!([])),
            status: StatusCode::UNPROCESSABLE_ENTITY,
            problem: "validation-failed",
        },
        Case {
            name: "negative price",
            token: Some(owner.clone()),
            path: orders.clone(),
            content_type: "application/json",
            body: with(|v| v["items"][0]["unit_price_cents"] = json!(-5)),
            status: StatusCode::UNPROCESSABLE_ENTITY,
            problem: "validation-failed",
        },
        Case {
            name: "zero quantity",
            token: Some(owner.clone()),
            path: orders.clone(),
            content_type: "application/json",
            body: with(|v| v["items"][0]["quantity"] = json!(0)),
            status: StatusCode::UNPROCESSABLE_ENTITY,
            problem: "validation-failed",
        },
        Case {
            name: "huge quantity",
            token: Some(owner.clone()),
            path: orders.clone(),
            content_type: "application/json",
            body: with(|v| v["items"][0]["quantity"] = json!(1u64 << 40)),
            status: StatusCode::UNPROCESSABLE_ENTITY,
            problem: "validation-failed",
        },
        Case {
            name: "overlong name",
            token: Some(owner.clone()),
            path: orders.clone(),
            content_type: "application/json",
            body: with(|v| v["items"][0]["name"] = json!("n".repeat(121))),
            status: StatusCode::UNPROCESSABLE_ENTITY,
            problem: "validation-failed",
        },
        Case {
            name: "bad session id",
            token: Some(owner.clone()),
            path: orders.clone(),
            content_type: "application/json",
            body: with(|v| v["session_id"] = json!("has spaces")),
            status: StatusCode::UNPROCESSABLE_ENTITY,
            problem: "invalid-body",
        },
        Case {
            name: "no content type",
            token: Some(owner.clone()),
            path: orders.clone(),
            content_type: "text/plain",
            body: valid.clone(),
            status: StatusCode::UNSUPPORTED_MEDIA_TYPE,
            problem: "unsupported-media-type",
        },
        Case {
            name: "unknown restaurant",
            token: Some(app.token(Role::Owner, ghost)),
            path: format!("/v1/restaurants/{ghost}/orders"),
            content_type: "application/json",
            body: valid.clone(),
            status: StatusCode::NOT_FOUND,
            problem: "not-found",
        },
        Case {
            name: "unknown order",
            token: Some(owner.clone()),
            path: format!("{orders}/{}/status", RestaurantId::new()),
            content_type: "application/json",
            body: br#"{"status":"accepted"}"#.to_vec(),
            status: StatusCode::NOT_FOUND,
            problem: "not-found",
        },
        Case {
            name: "malformed id",
            token: Some(owner.clone()),
            path: "/v1/restaurants/not-a-uuid/orders".into(),
            content_type: "application/json",
            body: valid.clone(),
            status: StatusCode::BAD_REQUEST,
            problem: "invalid-parameter",
        },
        Case {
            name: "no token",
            token: None,
            path: orders.clone(),
            content_type: "application/json",
            body: valid.clone(),
            status: StatusCode::UNAUTHORIZED,
            problem: "unauthorized",
        },
        Case {
            name: "expired token",
            token: Some(mint(Role::Owner, vec![rid.to_string()], |c| c.exp -= 3600)),
            path: orders.clone(),
            content_type: "application/json",
            body: valid.clone(),
            status: StatusCode::UNAUTHORIZED,
            problem: "unauthorized",
        },
        Case {
            name: "badly signed token",
            token: Some(format!("{}x", &signed[..signed.len() - 1])),
            path: orders.clone(),
            content_type: "application/json",
            body: valid.clone(),
            status: StatusCode::UNAUTHORIZED,
            problem: "unauthorized",
        },
        Case {
            name: "alg none",
            token: Some(format!("eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0.{payload}.")),
            path: orders.clone(),
            content_type: "application/json",
            body: valid.clone(),
            status: StatusCode::UNAUTHORIZED,
            problem: "unauthorized",
        },
        Case {
            name: "garbage token",
            token: Some("not.a.jwt".into()),
            path: orders.clone(),
            content_type: "application/json",
            body: valid.clone(),
            status: StatusCode::UNAUTHORIZED,
            problem: "unauthorized",
        },
        Case {
            name: "other restaurant",
            token: Some(app.token(Role::Owner, other)),
            path: orders.clone(),
            content_type: "application/json",
            body: valid.clone(),
            status: StatusCode::FORBIDDEN,
            problem: "forbidden",
        },
        Case {
            name: "kitchen creating an order",
            token: Some(app.token(Role::Kitchen, rid)),
            path: orders.clone(),
            content_type: "application/json",
            body: valid.clone(),
            status: StatusCode::FORBIDDEN,
            problem: "forbidden",
        },
        Case {
            name: "unknown route",
            token: Some(owner.clone()),
            path: "/v1/nothing".into(),
            content_type: "application/json",
            body: valid.clone(),
            status: StatusCode::NOT_FOUND,
            problem: "no-route",
        },
    ];

    for case in cases {
        let mut request = app
            .client
            .post(format!("{}{}", app.base, case.path))
            .header("content-type", case.content_type)
            .body(case.body);
        if let Some(token) = &case.token {
            request = request.bearer_auth(token);
        }
        let response = request.send().await.unwrap();
        assert_eq!(response.status(), case.status, "{}", case.name);
        assert_eq!(
            response.headers()["content-type"],
            "application/problem+json",
            "{}",
            case.name
        );
        let problem: Value = response.json().await.unwrap();
        assert_eq!(
            problem["type"],
            format!("https://ordercast.dev/problems/{}", case.problem),
            "{}: {problem}",
            case.name
        );
        assert_eq!(problem["status"], case.status.as_u16(), "{}", case.name);
    }
    let (_, page) = app.get(&orders, &owner).await;
    assert_eq!(page["orders"], json!([]), "no bad request wrote anything");
    assert_eq!(page["seq"], 0);
}

#[tokio::test]
async fn validation_problems_name_every_bad_field() {
    let app = TestApp::spawn().await;
    let rid = app.create_restaurant().await;
    let mut body = simple_order();
    body["items"][0]["quantity"] = json!(0);
    body["items"][1]["unit_price_cents"] = json!(-1);

    let (status, problem) = app
        .create_order(rid, &app.token(Role::Owner, rid), body)
        .await;

    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    let fields: Vec<&str> = problem["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["field"].as_str().unwrap())
        .collect();
    assert_eq!(fields, ["items[0].quantity", "items[1].unit_price_cents"]);
}

#[tokio::test]
async fn a_method_a_route_does_not_take_is_named_with_what_it_takes() {
    let app = TestApp::spawn().await;
    let rid = app.create_restaurant().await;
    let http = reqwest::Client::new();
    let events = format!("{}/v1/restaurants/{rid}/events", app.base);

    let put = http.put(&events).send().await.unwrap();
    assert_eq!(put.status(), StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(put.headers()["allow"], "POST,GET,HEAD");
    assert_eq!(put.headers()["content-type"], "application/problem+json");
    let problem: Value = put.json().await.unwrap();
    assert_eq!(
        problem["type"],
        "https://ordercast.dev/problems/method-not-allowed"
    );

    let options = http
        .request(reqwest::Method::OPTIONS, &events)
        .send()
        .await
        .unwrap();
    assert_eq!(options.status(), StatusCode::NO_CONTENT);
    assert_eq!(options.headers()["allow"], "POST,GET,HEAD");
}
