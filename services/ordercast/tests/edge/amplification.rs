//! What a screen can make the edge do is bounded by what it costs: a flood
//! of `sync`s is refused once its snapshots spent the socket's budget, a
//! guest resuming from the start reads only its own events, and a ring of
//! large events stays within its bytes while resumes outside it lose
//! nothing.

use ordercast::app::Role as ServerRole;
use ordercast_core::{RestaurantId, Role};
use reqwest::StatusCode;
use serde_json::json;

use crate::clients::{Resume, Sse, Ws, assert_exactly, poll};
use crate::common::{Backends, TestApp, simple_order};

#[tokio::test]
async fn a_flood_of_syncs_is_refused_with_an_error_frame_while_events_keep_flowing() {
    let app = TestApp::spawn_with(Backends::fresh().await, ServerRole::All, |s| {
        s.edge.ws_sync_budget = 4 * 64 * 1024; // four syncs at their least
    })
    .await;
    let rid = app.create_restaurant().await;
    app.orders(rid, 2).await;
    let mut ws = Ws::connect(&app.base, &app.token(Role::Owner, rid)).await;

    for _ in 0..30 {
        ws.send(json!({"type": "sync", "restaurant_id": rid})).await;
    }
    let refused = |w: &Ws| {
        w.of_type("error")
            .iter()
            .filter(|e| e["code"] == "sync_limited" && e["restaurant_id"] == rid.to_string())
            .count()
    };
    ws.until("the refused syncs", |w| refused(w) >= 20).await;
    ws.until("a sync completed", |w| {
        !w.of_type("sync_complete").is_empty()
    })
    .await;
    app.order(rid).await;
    ws.until("the live event", |w| w.seqs(rid).contains(&3))
        .await;

    assert!(ws.closed.is_none());
    let snapshots = ws.of_type("snapshot").len();
    assert!(snapshots <= 10, "{snapshots} snapshots sent");
}

/// Orders of table session `session`, created by the owner.
async fn session_orders(app: &TestApp, rid: RestaurantId, session: &str, n: usize) {
    let owner = app.token(Role::Owner, rid);
    for _ in 0..n {
        let mut order = simple_order();
        order["session_id"] = json!(session);
        let (status, body) = app.create_order(rid, &owner, order).await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
    }
}

async fn catchup_events(app: &TestApp) -> f64 {
    let mut read = 0.0;
    for source in ["ring", "redis", "postgres"] {
        let series = format!("ordercast_catchup_events_total{{source=\"{source}\"}}");
        read += app.metric(&series).await;
    }
    read
}

#[tokio::test]
async fn a_guest_resuming_from_the_start_reads_only_its_own_events() {
    let app = TestApp::spawn_with(Backends::fresh().await, ServerRole::All, |s| {
        s.edge.ring_size = 5;
        s.api.write_budgets.restaurant = None;
    })
    .await;
    let rid = app.create_restaurant().await;
    session_orders(&app, rid, "s1", 1).await;
    session_orders(&app, rid, "s2", 60).await;
    session_orders(&app, rid, "s1", 1).await;
    let s1 = app.token_with(Role::Customer, rid, |c| {
        c.session_id = Some("s1".parse().unwrap())
    });
    let from_start = Resume {
        last_event_id: Some(0),
        ..Resume::default()
    };

    let mut guest = Sse::connect(&app.base, rid, &s1, from_start).await;
    guest.until_count(2).await;
    let (_, polled) = poll(&app.base, rid, &s1, "since=0&wait=0").await;

    assert_exactly(&guest.seqs(), [1, 62], "s1 over SSE");
    assert_eq!(polled["events"].as_array().unwrap().len(), 2, "{polled}");
    assert_eq!(polled["next"], 62);
    let read = catchup_events(&app).await;
    assert!(read <= 4.0, "{read} events read to deliver 2 twice");
}

#[tokio::test]
async fn a_ring_of_large_events_stays_small_and_a_resume_outside_it_misses_nothing() {
    let app = TestApp::spawn_with(Backends::fresh().await, ServerRole::All, |s| {
        s.edge.ring_bytes = 64 * 1024;
    })
    .await;
    let rid = app.create_restaurant().await;
    let owner = app.token(Role::Owner, rid);
    let mut live = Sse::connect(&app.base, rid, &owner, Resume::default()).await;
    let events = format!("/v1/restaurants/{rid}/events");
    for n in 0..20 {
        let large = json!({"type": "x.menu", "audience": {"roles": ["kitchen"]},
                           "data": {"n": n, "text": "m".repeat(7_000)}});
        let (status, body) = app.post(&events, &owner, large).await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
    }
    live.until_count(20).await;

    let from = |seq| Resume {
        last_event_id: Some(seq),
        ..Resume::default()
    };
    let mut early = Sse::connect(&app.base, rid, &owner, from(0)).await;
    let mut late = Sse::connect(&app.base, rid, &owner, from(15)).await;
    early.until_count(20).await;
    late.until_count(5).await;

    assert_exactly(&early.seqs(), 1..=20, "from 0");
    assert_exactly(&late.seqs(), 16..=20, "from 15");
}
