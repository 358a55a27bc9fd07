use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use ordercast::app::Role as ServerRole;
use ordercast_core::Role;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::Instant;

use crate::clients::{DEADLINE, Resume, Sse, Ws, assert_exactly, poll};
use crate::common::{Backends, TestApp};

#[tokio::test]
async fn websocket_sync_sends_the_snapshot_its_seq_then_live_events() {
    let app = TestApp::spawn().await;
    let rid = app.create_restaurant().await;
    let first = app.order(rid).await;
    app.order(rid).await;
    app.set_status(rid, first["order"]["id"].as_str().unwrap(), "rejected")
        .await;
    let mut ws = Ws::connect(&app.base, &app.token(Role::Kitchen, rid)).await;
    ws.send(json!({"type": "sync", "restaurant_id": rid})).await;
    ws.until("sync_complete", |w| !w.of_type("sync_complete").is_empty())
        .await;
    let snapshot = ws.of_type("snapshot")[0].clone();
    assert_eq!(snapshot["seq"], 3);
    assert_eq!(
        snapshot["orders"].as_array().unwrap().len(),
        1,
        "open orders only"
    );
    assert_eq!(ws.of_type("sync_complete")[0]["seq"], 3);
    assert!(
        ws.seqs(rid).is_empty(),
        "nothing the snapshot already reflects"
    );
    app.order(rid).await;
    ws.until("the live event", |w| !w.seqs(rid).is_empty())
        .await;
    assert_eq!(ws.seqs(rid), vec![4]);
    let kinds: Vec<_> = ws
        .frames
        .iter()
        .map(|f| f["type"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(kinds, ["snapshot", "subscribed", "sync_complete", "event"]);
}

#[tokio::test]
async fn websocket_subscribe_with_a_cursor_resumes_and_tokens_work_in_the_subprotocol() {
    let app = TestApp::spawn().await;
    let rid = app.create_restaurant().await;
    app.orders(rid, 5).await;
    let token = app.token(Role::Owner, rid);
    let mut ws = Ws::connect_with(&app.base, |r| {
        let offered = format!("ordercast.v1, ordercast.bearer.{token}");
        r.headers_mut()
            .insert("sec-websocket-protocol", offered.parse().unwrap());
    })
    .await;
    ws.send(json!({"type": "subscribe", "restaurant_id": rid, "since": 2}))
        .await;
    ws.until("3 events", |w| w.seqs(rid).len() == 3).await;
    assert_exactly(&ws.seqs(rid), 3..=5, "resumed");
    ws.send(json!({"type": "ack", "restaurant_id": rid, "seq": 5}))
        .await;
    ws.send(json!({"type": "ping"})).await;
    ws.until("pong", |w| !w.of_type("pong").is_empty()).await;
    assert!(ws.of_type("error").is_empty(), "{:?}", ws.frames);
}

#[tokio::test]
async fn long_poll_answers_at_once_with_events_and_otherwise_waits_for_the_next() {
    let app = TestApp::spawn().await;
    let rid = app.create_restaurant().await;
    let token = app.token(Role::Kitchen, rid);
    app.orders(rid, 3).await;
    let (_, page) = poll(&app.base, rid, &token, "since=0&limit=2").await;
    assert_eq!(page["events"].as_array().unwrap().len(), 2);
    assert_eq!(page["next"], 2);
    let (_, page) = poll(&app.base, rid, &token, "since=2").await;
    assert_eq!(page["events"][0]["seq"], 3);
    assert_eq!(page["next"], 3);
    let (_, page) = poll(&app.base, rid, &token, "since=3&wait=0").await;
    assert_eq!(page, json!({"events": [], "next": 3}));
    // A waiting poll returns with the next event.
    let waiting = tokio::spawn({
        let base = app.base.clone();
        let token = token.clone();
        async move { poll(&base, rid, &token, "since=3&wait=30").await }
    });
    let mut sse = Sse::connect(&app.base, rid, &token, Resume::default()).await;
    app.order(rid).await;
    sse.until_count(1).await;
    let (_, page) = tokio::time::timeout(Duration::from_secs(20), waiting)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(page["events"][0]["seq"], 4);
    assert_eq!(page["next"], 4);
}

#[tokio::test]
async fn sse_sends_heartbeats_and_takes_the_token_from_the_query() {
    let app = TestApp::spawn_with(Backends::fresh().await, ServerRole::All, |s| {
        s.edge.heartbeat = Duration::from_millis(100);
    })
    .await;
    let rid = app.create_restaurant().await;
    let token = app.token(Role::Kitchen, rid);
    let mut sse = Sse::connect(
        &app.base,
        rid,
        &token,
        Resume {
            token_in_query: true,
            ..Resume::default()
        },
    )
    .await;
    sse.until("three heartbeats", |s| s.comments >= 4).await;
    app.order(rid).await;
    sse.until_count(1).await;
    assert_eq!(
        app.metric(r#"ordercast_connections{transport="sse"}"#)
            .await,
        1.0
    );
    assert!(
        app.metric(r#"ordercast_delivery_latency_seconds_count{kind="live",transport="sse"}"#)
            .await
            >= 1.0
    );
}

/// Sends `request` over a fresh connection, `step` bytes per write, and
/// reads until `done` holds for what came back.
async fn raw_exchange(
    app: &TestApp,
    request: &str,
    step: usize,
    done: impl Fn(&str) -> bool,
) -> String {
    let addr = app.base.trim_start_matches("http://");
    let mut tcp = TcpStream::connect(addr).await.unwrap();
    for part in request.as_bytes().chunks(step) {
        tcp.write_all(part).await.unwrap();
        tcp.flush().await.unwrap();
    }
    let mut seen = Vec::new();
    let deadline = Instant::now() + DEADLINE;
    while !done(&String::from_utf8_lossy(&seen)) {
        let mut buf = [0u8; 4096];
        let n = tokio::time::timeout_at(deadline, tcp.read(&mut buf))
            .await
            .unwrap_or_else(|_| panic!("no answer; got {:?}", String::from_utf8_lossy(&seen)))
            .unwrap();
        if n == 0 {
            break;
        }
        seen.extend_from_slice(&buf[..n]);
    }
    // Lossy: WebSocket frames may follow a handshake's answer.
    String::from_utf8_lossy(&seen).into_owned()
}

#[tokio::test]
async fn sse_on_a_fresh_connection_is_plain_http_whatever_the_client_version_or_packet_size() {
    let app = TestApp::spawn().await;
    let rid = app.create_restaurant().await;
    let token = app.token(Role::Kitchen, rid);
    app.order(rid).await;
    let get = |version: &str, token: &str| {
        format!(
            "GET /v1/restaurants/{rid}/stream?since=0 {version}\r\nHost: x\r\n\
             Authorization: Bearer {token}\r\nAccept: text/event-stream\r\n\r\n"
        )
    };
    let seq1 = |s: &str| s.contains("id: 1\n");

    // HTTP/1.1, the head arriving a few bytes at a time: a chunked stream.
    let answer = raw_exchange(&app, &get("HTTP/1.1", &token), 7, seq1).await;
    let (head, body) = answer.split_once("\r\n\r\n").unwrap();
    let head = head.to_ascii_lowercase();
    assert!(head.starts_with("http/1.1 200 ok\r\n"), "{head}");
    for field in [
        "content-type: text/event-stream",
        "cache-control: no-cache",
        "x-accel-buffering: no",
        "transfer-encoding: chunked",
        "date: ",
    ] {
        assert!(head.contains(field), "{field} missing from {head}");
    }
    assert!(
        body.contains("retry: ") && body.contains("event: order.created\n"),
        "{body}"
    );

    // HTTP/1.0 has no chunks: the stream is the body, delimited by the close.
    let answer = raw_exchange(&app, &get("HTTP/1.0", &token), 1024, seq1).await;
    let (head, body) = answer.split_once("\r\n\r\n").unwrap();
    assert!(
        !head.to_ascii_lowercase().contains("transfer-encoding"),
        "{head}"
    );
    assert!(body.starts_with("retry: "), "{body}");

    // A refused stream is a complete problem response, then the close.
    let answer = raw_exchange(&app, &get("HTTP/1.1", "not-a-token"), 1024, |_| false).await;
    let (head, body) = answer.split_once("\r\n\r\n").unwrap();
    let head = head.to_ascii_lowercase();
    assert!(head.starts_with("http/1.1 401"), "{head}");
    assert!(
        head.contains("content-type: application/problem+json"),
        "{head}"
    );
    assert!(
        head.contains(&format!("content-length: {}", body.len())),
        "{head}"
    );
    let problem: serde_json::Value = serde_json::from_str(body).unwrap();
    assert!(
        problem["type"].as_str().unwrap().ends_with("unauthorized"),
        "{problem}"
    );
}

#[tokio::test]
async fn other_requests_on_a_fresh_connection_keep_http_keep_alive() {
    let app = TestApp::spawn().await;
    let rid = app.create_restaurant().await;
    let token = app.token(Role::Kitchen, rid);
    let get = format!(
        "GET /v1/restaurants/{rid}/events?since=0&wait=0 HTTP/1.1\r\nHost: x\r\n\
         Authorization: Bearer {token}\r\n\r\n"
    );
    // Two requests on one connection, the first split across writes: both
    // answered, so the bytes read while looking for a stream reached hyper.
    let answer = raw_exchange(&app, &format!("{get}{get}"), 5, |s| {
        s.matches("HTTP/1.1 200 OK").count() == 2 && s.ends_with('}')
    })
    .await;
    assert_eq!(answer.matches("\"events\":[]").count(), 2, "{answer}");
}

/// A WebSocket handshake for `token` (in the subprotocol, as browsers send
/// it), with RFC 6455's sample key.
fn ws_handshake(token: &str) -> String {
    format!(
        "GET /v1/ws HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\
         Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
         Sec-WebSocket-Protocol: ordercast.v1, ordercast.bearer.{token}\r\n\r\n"
    )
}

/// The head of the last response in `answer`, without its `date` field.
fn last_head(answer: &str) -> String {
    let head = answer.rsplit_once("HTTP/1.1 ").unwrap().1;
    let head = head.split_once("\r\n\r\n").unwrap().0;
    head.lines()
        .filter(|l| !l.starts_with("date: "))
        .collect::<Vec<_>>()
        .join("\r\n")
}

async fn next_json(ws: &mut tokio_tungstenite::WebSocketStream<TcpStream>) -> serde_json::Value {
    let message = tokio::time::timeout(DEADLINE, ws.next()).await.unwrap();
    let text = message.unwrap().unwrap().into_text().unwrap();
    serde_json::from_str(&text).unwrap()
}

#[tokio::test]
async fn a_websocket_on_a_fresh_connection_is_answered_as_hyper_would_then_delivers() {
    let app = TestApp::spawn().await;
    let rid = app.create_restaurant().await;
    let token = app.token(Role::Kitchen, rid);
    app.order(rid).await;
    let handshake = ws_handshake(&token);
    // The 101's head is complete (frames may follow it).
    let switched = |s: &str| {
        s.split_once("101 Switching Protocols")
            .is_some_and(|(_, rest)| rest.contains("\r\n\r\n"))
    };

    // After a first request, the connection is hyper's: the reference.
    let poll = format!(
        "GET /v1/restaurants/{rid}/events?since=0&wait=0 HTTP/1.1\r\nHost: x\r\n\
         Authorization: Bearer {token}\r\n\r\n"
    );
    let by_hyper = raw_exchange(&app, &format!("{poll}{handshake}"), 1024, switched).await;
    // As the first request of a connection, a head arriving a few bytes at
    // a time: read without hyper.
    let addr = app.base.trim_start_matches("http://");
    let mut tcp = TcpStream::connect(addr).await.unwrap();
    for part in handshake.as_bytes().chunks(7) {
        tcp.write_all(part).await.unwrap();
    }
    let mut head = Vec::new();
    while !switched(&String::from_utf8_lossy(&head)) {
        let mut byte = [0u8; 1];
        let n = tokio::time::timeout(DEADLINE, tcp.read(&mut byte))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(n, 1, "closed after {:?}", String::from_utf8_lossy(&head));
        head.push(byte[0]);
    }
    let direct = String::from_utf8(head).unwrap();

    assert_eq!(last_head(&direct), last_head(&by_hyper));
    let fields = last_head(&direct).to_ascii_lowercase();
    for field in [
        "sec-websocket-accept: s3pplmbitxaq9kygzzhzrbk+xoo=",
        "sec-websocket-protocol: ordercast.v1",
        "upgrade: websocket",
    ] {
        assert!(fields.contains(field), "{field} missing from {fields}");
    }
    let mut ws = tokio_tungstenite::WebSocketStream::from_raw_socket(
        tcp,
        tokio_tungstenite::tungstenite::protocol::Role::Client,
        None,
    )
    .await;
    let hello = next_json(&mut ws).await;
    assert_eq!(
        (hello["type"].as_str(), hello["protocol"].as_str()),
        (Some("hello"), Some("ordercast.v1"))
    );
    let subscribe = json!({"type": "subscribe", "restaurant_id": rid, "since": 0});
    ws.send(subscribe.to_string().into()).await.unwrap();
    let mut kinds = Vec::new();
    while kinds.last() != Some(&"event".to_owned()) {
        let frame = next_json(&mut ws).await;
        kinds.push(frame["type"].as_str().unwrap().to_owned());
        if frame["type"] == "event" {
            assert_eq!(frame["event"]["seq"], 1, "{frame}");
        }
    }
    assert_eq!(kinds, ["subscribed", "event"]);
}

#[tokio::test]
async fn a_websocket_refused_on_a_fresh_connection_gets_the_same_problem_then_the_close() {
    let app = TestApp::spawn().await;
    let problem_of = |answer: &str| {
        let (head, body) = answer.rsplit_once("\r\n\r\n").unwrap();
        let status = head.rsplit_once("HTTP/1.1 ").unwrap().1[..3].to_owned();
        let problem: serde_json::Value = serde_json::from_str(body).unwrap();
        (status, problem["type"].as_str().unwrap().to_owned())
    };
    let complete = |s: &str| s.ends_with('}');
    let handshake = ws_handshake("not-a-token");

    let by_hyper = raw_exchange(
        &app,
        &format!("GET /nowhere HTTP/1.1\r\nHost: x\r\n\r\n{handshake}"),
        1024,
        |s| s.matches("HTTP/1.1 ").count() == 2 && complete(s),
    )
    .await;
    // Read to the close: the direct path closes after its answer.
    let direct = raw_exchange(&app, &handshake, 1024, |_| false).await;

    let (status, kind) = problem_of(&direct);
    assert_eq!((status.clone(), kind.clone()), problem_of(&by_hyper));
    assert_eq!(status, "401");
    assert!(kind.ends_with("unauthorized"), "{kind}");
    assert!(
        direct.to_ascii_lowercase().contains("connection: close"),
        "{direct}"
    );
}
