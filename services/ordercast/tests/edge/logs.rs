//! What a process writes to its log, read as someone who got hold of it.

use ordercast_core::Role;
use reqwest::StatusCode;
use serde_json::json;

use std::time::Duration;

use ordercast_testkit::eventually;

use crate::clients::{Resume, Sse, Ws};
use crate::common::process::Process;
use crate::common::{Backends, mint};

#[tokio::test]
async fn no_token_reaches_the_log_even_at_trace_level() {
    let backends = Backends::fresh().await;
    let process = Process::start("all", &backends, &[("RUST_LOG", "trace")]).await;
    let http = reqwest::Client::new();
    let rid = process.create_restaurant("Logged").await;
    let kitchen = mint(Role::Kitchen, vec![rid.to_string()], |_| {});
    let refreshed = mint(Role::Kitchen, vec![rid.to_string()], |c| {
        c.exp += 60;
    });
    let owner = mint(Role::Owner, vec![rid.to_string()], |_| {});

    // A token in each place one travels: a WebSocket handshake, a frame,
    // an Authorization header, a query string.
    let mut ws = Ws::connect(&process.base, &kitchen).await;
    ws.subscribe(rid, None).await;
    ws.send(json!({"type": "refresh", "token": refreshed}))
        .await;
    ws.until("refreshed", |w| !w.of_type("refreshed").is_empty())
        .await;
    process.create_order(rid, &owner).await;
    ws.until("the order", |w| !w.of_type("event").is_empty())
        .await;
    let status = http
        .get(format!(
            "{}/v1/restaurants/{rid}/events?access_token={owner}&wait=0",
            process.base
        ))
        .send()
        .await
        .unwrap()
        .status();
    assert_eq!(status, StatusCode::OK);

    let log = process.log();
    // The default is info; these lines show RUST_LOG was taken.
    assert!(log.contains(r#""level":"DEBUG""#), "RUST_LOG=trace taken");
    for (name, token) in [
        ("handshake", &kitchen),
        ("refresh", &refreshed),
        ("owner", &owner),
    ] {
        let signature = token.rsplit('.').next().unwrap();
        assert!(!log.contains(signature), "the {name} token is in the log");
    }
}

/// The log's JSON lines (fields flattened) whose message is `message`.
fn lines(log: &str, message: &str) -> Vec<serde_json::Value> {
    log.lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|l| l["message"] == message)
        .collect()
}

#[tokio::test]
async fn every_stream_logs_who_connected_and_how_it_ended_and_counts_come_per_interval() {
    let backends = Backends::fresh().await;
    let process = Process::start(
        "all",
        &backends,
        &[("RUST_LOG", "info"), ("ORDERCAST_ACTIVITY_EVERY", "500ms")],
    )
    .await;
    let rid = process.create_restaurant("Logged").await;
    let kitchen = mint(Role::Kitchen, vec![rid.to_string()], |c| {
        c.sub = "kds-7".into()
    });
    let owner = mint(Role::Owner, vec![rid.to_string()], |_| {});

    let mut sse = Sse::connect(&process.base, rid, &kitchen, Resume::default()).await;
    let mut ws = Ws::connect(&process.base, &kitchen).await;
    ws.subscribe(rid, None).await;
    process.create_order(rid, &owner).await;
    sse.until_count(1).await;
    ws.until("the order", |w| w.seqs(rid).len() == 1).await;
    drop(sse);
    drop(ws);

    let closed = eventually("both close lines", Duration::from_secs(10), || async {
        let closed = lines(&process.log(), "stream closed");
        (closed.len() == 2).then_some(closed)
    })
    .await;
    // The WebSocket was dropped without a close frame.
    for (transport, reason) in [("sse", "client_closed"), ("websocket", "protocol_error")] {
        let line = closed
            .iter()
            .find(|l| l["transport"] == transport)
            .unwrap_or_else(|| panic!("no {transport} close line: {closed:?}"));
        let f = line;
        assert_eq!(line["level"], "INFO");
        assert_eq!(
            (f["sub"].as_str(), f["role"].as_str()),
            (Some("kds-7"), Some("kitchen"))
        );
        assert_eq!(f["restaurants"], rid.to_string(), "{line}");
        assert_eq!(f["delivered"], 1, "{line}");
        assert_eq!(f["reason"], reason, "{line}");
        assert!(f["duration_ms"].is_u64(), "{line}");
    }
    let log = process.log();
    assert_eq!(lines(&log, "stream opened").len(), 2, "one per stream");
    eventually("an activity line", Duration::from_secs(10), || async {
        let activity = lines(&process.log(), "edge activity");
        activity.iter().any(|l| l["deliveries"] == 2).then_some(())
    })
    .await;
    let signature = kitchen.rsplit('.').next().unwrap();
    assert!(
        !process.log().contains(signature),
        "the token is in the log"
    );
}
