//! The admin port's per-restaurant view and counts over time: what an SRE
//! opens when one restaurant's screens say something is wrong.

use std::time::Duration;

use ordercast::app::Role as ServerRole;
use ordercast_core::Role;
use ordercast_testkit::eventually;
use reqwest::StatusCode;
use serde_json::Value;

use crate::clients::{Resume, Sse, Ws};
use crate::common::{Backends, TestApp};

#[tokio::test]
async fn a_restaurant_view_shows_its_head_ring_subscribers_and_undelivered_events() {
    let app = TestApp::spawn().await;
    let rid = app.create_restaurant().await;
    let kitchen = app.token(Role::Kitchen, rid);
    let owner = app.token(Role::Owner, rid);
    let mut sse = Sse::connect(&app.base, rid, &kitchen, Resume::default()).await;
    let mut ws = Ws::connect(&app.base, &owner).await;
    ws.subscribe(rid, None).await;
    app.order(rid).await;
    sse.until_count(1).await;
    ws.until("the order", |w| w.seqs(rid).len() == 1).await;

    let path = format!("/debug/restaurants/{rid}");
    let (status, view) = app.get_admin(&path).await;
    assert_eq!(status, StatusCode::OK, "{view}");
    assert_eq!(view["head_seq"], 1);
    let edge = &view["edge"];
    assert_eq!(edge["watched"], true, "{view}");
    assert_eq!(edge["hub"]["head_seq"], 1);
    assert_eq!(edge["hub"]["ring_frames"], 1);
    assert_eq!(edge["hub"]["degraded"], false);
    assert!(edge["hub"]["last_event_at"].is_string(), "{view}");
    assert_eq!(edge["subscribers"]["sse"]["kitchen"], 1, "{view}");
    assert_eq!(edge["subscribers"]["websocket"]["owner"], 1, "{view}");
    assert!(view["undelivered_kitchen_events"].is_array(), "{view}");

    // Screens gone: the hub is released and nobody is listed.
    drop(sse);
    drop(ws);
    let view = eventually(
        "the screens to be gone",
        Duration::from_secs(10),
        || async {
            let (_, view) = app.get_admin(&path).await;
            (view["edge"]["watched"] == false).then_some(view)
        },
    )
    .await;
    assert_eq!(view["edge"]["subscribers"], serde_json::json!({}));

    // Behind the admin token like the rest of /debug; unknown is 404.
    let (status, _) = app.get_admin_as(&path, None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let unknown = "/debug/restaurants/00000000-0000-4000-8000-000000000099";
    assert_eq!(app.get_admin(unknown).await.0, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn activity_keeps_connections_and_deliveries_per_interval() {
    let app = TestApp::spawn_with(Backends::fresh().await, ServerRole::All, |s| {
        s.edge.activity_every = Duration::from_millis(300);
    })
    .await;
    let rid = app.create_restaurant().await;
    let kitchen = app.token(Role::Kitchen, rid);
    let mut sse = Sse::connect(&app.base, rid, &kitchen, Resume::default()).await;
    app.orders(rid, 2).await;
    sse.until_count(2).await;

    let total = |samples: &Value, what: &str| -> u64 {
        let samples = samples.as_array().unwrap();
        samples
            .iter()
            .map(|s| s[what]["sse"].as_u64().unwrap())
            .sum()
    };
    let activity = eventually(
        "a sample with the deliveries",
        Duration::from_secs(10),
        || async {
            let (_, body) = app.get_admin("/debug/activity").await;
            let edge = body["edge"].clone();
            (total(&edge["samples"], "deliveries") == 2).then_some(edge)
        },
    )
    .await;
    assert_eq!(total(&activity["samples"], "connects"), 1, "{activity}");
    let last = activity["samples"]
        .as_array()
        .unwrap()
        .last()
        .unwrap()
        .clone();
    assert_eq!(last["connections"]["sse"], 1, "the stream is still open");
    assert_eq!(activity["every_secs"], 0.3);
    assert!(activity["current"]["from"].is_string());
    assert_eq!(
        app.get_admin_as("/debug/activity", None).await.0,
        StatusCode::UNAUTHORIZED
    );
}
