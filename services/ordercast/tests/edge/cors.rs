//! Cross-origin screens: a kitchen display served from its own domain may
//! call the api and open every transport when its origin is listed, and
//! nothing changes for anyone when none is.

use ordercast::app::Role as ServerRole;
use ordercast_core::{RestaurantId, Role};
use ordercast_http::cors::CorsOrigins;
use reqwest::header::HeaderMap;
use reqwest::{Method, StatusCode};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

use crate::common::{Backends, TestApp, simple_order};

const KDS: &str = "http://kds.example.test";
const EVIL: &str = "http://evil.example.test";

async fn app_allowing(origins: &str) -> TestApp {
    let origins = CorsOrigins::parse(origins).unwrap();
    TestApp::spawn_with(Backends::fresh().await, ServerRole::All, |s| {
        s.cors = origins
    })
    .await
}

/// A browser's preflight for a command with a bearer token and a key.
async fn preflight(app: &TestApp, rid: RestaurantId, origin: &str) -> (StatusCode, HeaderMap) {
    let response = reqwest::Client::new()
        .request(
            Method::OPTIONS,
            format!("{}/v1/restaurants/{rid}/orders", app.base),
        )
        .header("origin", origin)
        .header("access-control-request-method", "POST")
        .header(
            "access-control-request-headers",
            "authorization,content-type,idempotency-key,if-match,traceparent",
        )
        .send()
        .await
        .unwrap();
    (response.status(), response.headers().clone())
}

/// A GET as a page of `origin` makes it, with a bearer token.
async fn get_from(app: &TestApp, path: &str, token: &str, origin: &str) -> (StatusCode, HeaderMap) {
    let response = reqwest::Client::new()
        .get(format!("{}{path}", app.base))
        .bearer_auth(token)
        .header("origin", origin)
        .send()
        .await
        .unwrap();
    (response.status(), response.headers().clone())
}

/// The status of a WebSocket handshake sent with `origin`.
async fn ws_handshake(app: &TestApp, token: &str, origin: Option<&str>) -> u16 {
    let url = format!("{}/v1/ws", app.base.replacen("http://", "ws://", 1));
    let mut request = url.into_client_request().unwrap();
    let h = request.headers_mut();
    h.insert("authorization", format!("Bearer {token}").parse().unwrap());
    if let Some(origin) = origin {
        h.insert("origin", origin.parse().unwrap());
    }
    match tokio_tungstenite::connect_async(request).await {
        Ok((_, response)) => response.status().as_u16(),
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => response.status().as_u16(),
        Err(e) => panic!("handshake: {e}"),
    }
}

/// Neither a preflight nor a long-poll from `origin` gets CORS headers
/// (the server answers; the browser withholds it). Returns the preflight's
/// status.
async fn without_cors_headers(
    app: &TestApp,
    rid: RestaurantId,
    token: &str,
    origin: &str,
) -> StatusCode {
    let (status, h) = preflight(app, rid, origin).await;
    assert!(
        header(&h, "access-control-allow-origin").is_empty(),
        "{h:?}"
    );
    let path = format!("/v1/restaurants/{rid}/events?wait=0");
    let (polled, h) = get_from(app, &path, token, origin).await;
    assert_eq!(polled, StatusCode::OK);
    assert!(
        header(&h, "access-control-allow-origin").is_empty(),
        "{h:?}"
    );
    status
}

fn header<'a>(headers: &'a HeaderMap, name: &str) -> &'a str {
    headers.get(name).map_or("", |v| v.to_str().unwrap())
}

#[tokio::test]
async fn a_listed_origin_may_call_the_api_and_open_every_transport() {
    let app = app_allowing(&format!("{KDS}, http://pos.example.test")).await;
    let rid = app.create_restaurant().await;
    let owner = app.token(Role::Owner, rid);

    let (status, h) = preflight(&app, rid, KDS).await;
    assert!(status.is_success(), "{status}");
    assert_eq!(header(&h, "access-control-allow-origin"), KDS);
    assert!(header(&h, "access-control-allow-methods").contains("POST"));
    let allowed = header(&h, "access-control-allow-headers").to_ascii_lowercase();
    for name in [
        "authorization",
        "content-type",
        "idempotency-key",
        "if-match",
        "last-event-id",
        "traceparent",
    ] {
        assert!(allowed.contains(name), "{name} in {allowed}");
    }
    assert_eq!(header(&h, "access-control-max-age"), "600");
    assert!(
        header(&h, "access-control-allow-credentials").is_empty(),
        "tokens are not cookies"
    );

    // A command's answer may be read, with its ETag and Location.
    let response = reqwest::Client::new()
        .post(format!("{}/v1/restaurants/{rid}/orders", app.base))
        .bearer_auth(&owner)
        .header("origin", KDS)
        .json(&simple_order())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::CREATED);
    let h = response.headers();
    assert_eq!(header(h, "access-control-allow-origin"), KDS);
    let exposed = header(h, "access-control-expose-headers").to_ascii_lowercase();
    for name in ["etag", "location", "retry-after", "idempotent-replayed"] {
        assert!(exposed.contains(name), "{name} in {exposed}");
    }

    // SSE and long-poll answers carry the header; a WebSocket opens.
    for path in [
        format!("/v1/restaurants/{rid}/stream?since=0"),
        format!("/v1/restaurants/{rid}/events?since=0&wait=0"),
    ] {
        let (status, h) = get_from(&app, &path, &owner, KDS).await;
        assert_eq!(status, StatusCode::OK, "{path}");
        assert_eq!(header(&h, "access-control-allow-origin"), KDS, "{path}");
    }
    assert_eq!(ws_handshake(&app, &owner, Some(KDS)).await, 101);
}

#[tokio::test]
async fn an_unlisted_origin_gets_no_cors_headers_and_no_websocket() {
    let app = app_allowing(KDS).await;
    let rid = app.create_restaurant().await;
    let owner = app.token(Role::Owner, rid);

    without_cors_headers(&app, rid, &owner, EVIL).await;

    assert_eq!(ws_handshake(&app, &owner, Some(EVIL)).await, 403);
    let own = app.base.clone();
    assert_eq!(
        ws_handshake(&app, &owner, Some(&own)).await,
        101,
        "the edge's own pages"
    );
    assert_eq!(ws_handshake(&app, &owner, None).await, 101, "not a browser");

    // A plain OPTIONS (not a preflight) is still the route's 204 with Allow.
    let response = reqwest::Client::new()
        .request(
            Method::OPTIONS,
            format!("{}/v1/restaurants/{rid}/orders", app.base),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    assert!(header(response.headers(), "allow").contains("POST"));
}

#[tokio::test]
async fn with_no_origin_configured_nothing_is_cross_origin() {
    let app = TestApp::spawn().await;
    let rid = app.create_restaurant().await;
    let owner = app.token(Role::Owner, rid);

    let preflight = without_cors_headers(&app, rid, &owner, KDS).await;
    assert_eq!(preflight, StatusCode::NO_CONTENT, "the route's own answer");
    assert_eq!(ws_handshake(&app, &owner, Some(EVIL)).await, 101);
}
