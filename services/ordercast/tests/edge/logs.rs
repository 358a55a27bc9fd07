//! What a process writes to its log, read as someone who got hold of it.

use ordercast_core::Role;
use reqwest::StatusCode;
use serde_json::json;

use crate::clients::Ws;
use crate::common::process::Process;
use crate::common::{Backends, mint, simple_order};

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
    let status = http
        .post(format!("{}/v1/restaurants/{rid}/orders", process.base))
        .bearer_auth(&owner)
        .json(&simple_order())
        .send()
        .await
        .unwrap()
        .status();
    assert_eq!(status, StatusCode::CREATED);
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
