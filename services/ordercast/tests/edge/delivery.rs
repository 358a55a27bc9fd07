use ordercast_core::Role;

use crate::clients::{Resume, Sse, assert_exactly, poll};
use crate::common::TestApp;

#[tokio::test]
async fn cold_start_a_client_with_since_zero_gets_every_earlier_order_in_order() {
    let app = TestApp::spawn().await;
    let rid = app.create_restaurant().await;
    for _ in 0..30 {
        app.order(rid).await;
    }
    let token = app.token(Role::Kitchen, rid);
    let mut sse = Sse::connect(
        &app.base,
        rid,
        &token,
        Resume {
            since: Some("0".into()),
            ..Resume::default()
        },
    )
    .await;
    sse.until_count(30).await;
    assert_exactly(&sse.seqs(), 1..=30, "SSE");
    assert!(sse.events.iter().all(|e| e.kind == "order.created"));
    assert_eq!(sse.events[0].data["seq"], 1);
    assert_eq!(sse.headers["content-type"], "text/event-stream");
    assert_eq!(sse.headers["cache-control"], "no-cache");
    assert_eq!(sse.headers["x-accel-buffering"], "no");
    assert_eq!(sse.retry, Some(2000));

    let (status, body) = poll(&app.base, rid, &token, "since=0&limit=1000").await;
    assert_eq!(status, 200, "{body}");
    let seqs: Vec<u64> = body["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["seq"].as_u64().unwrap())
        .collect();
    assert_exactly(&seqs, 1..=30, "long-poll");
    assert_eq!(body["next"], 30);

    // And live from there.
    app.order(rid).await;
    sse.until_count(31).await;
    assert_exactly(&sse.seqs(), 1..=31, "SSE live");
}
