//! gzip where a client asks for it: JSON answers of the api and long-poll,
//! and SSE streams when the deployment turns it on.

use std::io::Read as _;
use std::time::Duration;

use futures_util::StreamExt;
use ordercast::app::Role as ServerRole;
use ordercast_core::{RestaurantId, Role};
use reqwest::StatusCode;
use serde_json::Value;

use crate::clients::DEADLINE;
use crate::common::{Backends, TestApp, seqs};

/// What `bytes` decode to, as far as they go (a live stream has no end).
fn gunzip(bytes: &[u8]) -> String {
    let mut text = String::new();
    let _ = flate2::read::GzDecoder::new(bytes).read_to_string(&mut text);
    text
}

async fn get(app: &TestApp, path: &str, token: &str, gzip: bool) -> reqwest::Response {
    let mut request = reqwest::Client::new()
        .get(format!("{}{path}", app.base))
        .bearer_auth(token);
    if gzip {
        request = request.header("accept-encoding", "gzip, br");
    }
    request.send().await.unwrap()
}

#[tokio::test]
async fn json_answers_are_gzipped_when_asked_and_large_enough() {
    let app = TestApp::spawn().await;
    let rid = app.create_restaurant().await;
    let owner = app.token(Role::Owner, rid);
    app.orders(rid, 10).await;

    for path in [
        format!("/v1/restaurants/{rid}/events?since=0&wait=0"),
        format!("/v1/restaurants/{rid}/orders"),
    ] {
        let plain = get(&app, &path, &owner, false).await;
        assert!(plain.headers().get("content-encoding").is_none(), "{path}");
        let plain: Value = plain.json().await.unwrap();
        let zipped = get(&app, &path, &owner, true).await;
        assert_eq!(zipped.status(), StatusCode::OK);
        assert_eq!(zipped.headers()["content-encoding"], "gzip", "{path}");
        assert_eq!(zipped.headers()["vary"], "accept-encoding");
        let bytes = zipped.bytes().await.unwrap();
        let decoded: Value = serde_json::from_str(&gunzip(&bytes)).unwrap();
        assert_eq!(decoded, plain, "{path}");
        assert!(
            bytes.len() * 3 < plain.to_string().len(),
            "{path}: {} bytes",
            bytes.len()
        );
    }
    let page: Value = serde_json::from_str(&gunzip(
        &get(
            &app,
            &format!("/v1/restaurants/{rid}/events?since=0&wait=0"),
            &owner,
            true,
        )
        .await
        .bytes()
        .await
        .unwrap(),
    ))
    .unwrap();
    assert_eq!(
        seqs(page["events"].as_array().unwrap()),
        (1..=10).collect::<Vec<_>>()
    );

    // A small answer is not worth it.
    let small = get(
        &app,
        &format!("/v1/restaurants/{rid}/events?wait=0"),
        &owner,
        true,
    )
    .await;
    assert!(small.headers().get("content-encoding").is_none());
}

/// Reads the SSE body until its decoded text holds `needle`.
async fn until_decoded(
    body: &mut (impl futures_util::Stream<Item = reqwest::Result<bytes::Bytes>> + Unpin),
    wire: &mut Vec<u8>,
    needle: &str,
) -> String {
    let deadline = tokio::time::Instant::now() + DEADLINE;
    loop {
        let text = gunzip(wire);
        if text.contains(needle) {
            return text;
        }
        let chunk = tokio::time::timeout_at(deadline, body.next())
            .await
            .unwrap_or_else(|_| panic!("no {needle:?} in {text:?}"))
            .expect("the stream ended")
            .unwrap();
        wire.extend_from_slice(&chunk);
    }
}

async fn sse(app: &TestApp, rid: RestaurantId, token: &str) -> reqwest::Response {
    get(
        app,
        &format!("/v1/restaurants/{rid}/stream?since=0"),
        token,
        true,
    )
    .await
}

#[tokio::test]
async fn an_sse_stream_is_gzipped_only_when_turned_on_and_each_event_decodes_on_arrival() {
    let app = TestApp::spawn_with(Backends::fresh().await, ServerRole::All, |s| {
        s.edge.sse_gzip = true;
        s.edge.heartbeat = Duration::from_secs(3600);
    })
    .await;
    let rid = app.create_restaurant().await;
    let kitchen = app.token(Role::Kitchen, rid);
    app.order(rid).await;

    let response = sse(&app, rid, &kitchen).await;
    assert_eq!(response.headers()["content-encoding"], "gzip");
    let mut body = response.bytes_stream();
    let mut wire = Vec::new();
    until_decoded(&mut body, &mut wire, "id: 1\n").await;
    // A live event is flushed with its batch: no heartbeat pushes it out.
    app.order(rid).await;
    let text = until_decoded(&mut body, &mut wire, "id: 2\n").await;
    assert!(text.starts_with("retry: "), "{text}");

    // Off (the default): asked or not, a plain stream.
    let plain = TestApp::spawn().await;
    let rid = plain.create_restaurant().await;
    let response = sse(&plain, rid, &plain.token(Role::Kitchen, rid)).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert!(response.headers().get("content-encoding").is_none());
}
