//! Screens of a restaurant homed in a peer region are told when the peer
//! goes stale and when it is back, on every transport, over the test
//! PostgreSQL and Redis. The tests play replication: they write the peer's
//! heartbeat row themselves.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use chrono::{DateTime, Utc};
use ordercast_core::Region;
use ordercast_http::Subscriber;
use ordercast_http::extract::{Path, Query};
use ordercast_store::{NewRestaurant, Store};
use serde_json::{Value, json};

use crate::EdgeSettings;
use crate::poll::{self, PollQuery};
use crate::sse::SseStream;
use crate::subscription::Subscription;
use crate::testing::{
    OnServers, WsPeer, kitchen, kitchen_restaurant, on_servers, publish, ws_session,
};

const HOUR: Duration = Duration::from_secs(3_600);
/// How long a test waits for what it expects.
const WAIT: Duration = Duration::from_secs(10);

fn peer() -> Region {
    "peer".parse().unwrap()
}

/// An edge whose one peer is `peer`, once the monitor has seen the peer
/// stale (never heard) and then fresh; the kitchen's restaurant is homed
/// in `peer`.
async fn edge() -> OnServers {
    let settings = EdgeSettings {
        peers: vec![peer()],
        // "Fresh" stays fresh however slowly the test runs.
        region_stale_after: HOUR,
        ..EdgeSettings::default()
    };
    let edge = on_servers(settings).await;
    peer_is(&edge, true).await;
    heard(&edge.store, Duration::ZERO).await;
    peer_is(&edge, false).await;
    let restaurant = NewRestaurant {
        id: kitchen_restaurant(),
        name: "Remote".into(),
        chain_id: None,
        region: peer(),
        reach: Default::default(),
    };
    edge.store.create_restaurant(restaurant).await.unwrap();
    edge
}

/// The peer's last heartbeat arrived `ago` ago, as replication records it.
async fn heard(store: &Store, ago: Duration) {
    sqlx::query(
        "INSERT INTO region_beats (region, beat_at, received_at)
         VALUES ($1, now(), now() - make_interval(secs => $2))
         ON CONFLICT (region) DO UPDATE
         SET beat_at = excluded.beat_at, received_at = excluded.received_at",
    )
    .bind(peer().as_str())
    .bind(ago.as_secs_f64())
    .execute(store.pool())
    .await
    .unwrap();
}

/// Waits until `ordercast_region_stale{region="peer"}` says `stale`.
async fn peer_is(edge: &OnServers, stale: bool) {
    let gauge = edge
        .shared
        .metrics
        .region_stale
        .with_label_values(&["peer"]);
    let what = format!(
        "the monitor to see the peer {}",
        ["fresh", "stale"][usize::from(stale)]
    );
    ordercast_testkit::eventually(&what, WAIT, || {
        let shown = gauge.get();
        async move { (shown == i64::from(stale)).then_some(()) }
    })
    .await;
}

/// The next frame a WebSocket screen gets.
async fn frame(screen: &mut WsPeer) -> Value {
    tokio::time::timeout(WAIT, screen.next_json())
        .await
        .expect("a frame in time")
}

/// A WebSocket screen subscribed to the kitchen's restaurant from now.
async fn subscribed(edge: &OnServers) -> WsPeer {
    let mut screen = ws_session(&edge.shared, kitchen(HOUR));
    screen.send_json(json!({"type": "subscribe", "restaurant_id": kitchen_restaurant()}));
    assert_eq!(frame(&mut screen).await["type"], "subscribed");
    screen
}

fn live() -> Value {
    json!({"type": "live", "restaurant_id": kitchen_restaurant(), "region": "peer"})
}

/// `since` of a stale signal, checked to be an RFC 3339 time.
fn since(stale: &Value) -> Value {
    let since = &stale["since"];
    let parsed = since.as_str().map(str::parse::<DateTime<Utc>>);
    assert!(matches!(parsed, Some(Ok(_))), "since: {since}");
    since.clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_websocket_screen_is_told_when_the_home_region_goes_stale_and_when_it_is_back() {
    let edge = edge().await;
    let rid = kitchen_restaurant();
    let mut screen = subscribed(&edge).await;
    assert_eq!(
        frame(&mut screen).await,
        live(),
        "starts with the home's state"
    );
    let first = publish(&edge.streams, rid, 1).await;
    assert_eq!(frame(&mut screen).await["event"]["seq"], 1);

    heard(&edge.store, 2 * HOUR).await;
    let stale = frame(&mut screen).await;
    let since = since(&stale);
    assert_eq!(
        stale,
        json!({"type": "stale", "restaurant_id": rid, "region": "peer", "last_seq": 1,
               "last_event_at": first.ts, "since": since})
    );

    // Events keep flowing whenever they arrive; a screen joining now is
    // told at once, with the edge's newest event.
    let second = publish(&edge.streams, rid, 2).await;
    assert_eq!(frame(&mut screen).await["event"]["seq"], 2);
    let mut late = subscribed(&edge).await;
    assert_eq!(
        frame(&mut late).await,
        json!({"type": "stale", "restaurant_id": rid, "region": "peer", "last_seq": 2,
               "last_event_at": second.ts, "since": since})
    );

    heard(&edge.store, Duration::ZERO).await;
    assert_eq!(frame(&mut screen).await, live());
    assert_eq!(frame(&mut late).await, live());
    publish(&edge.streams, rid, 3).await;
    assert_eq!(frame(&mut screen).await["event"]["seq"], 3);
    assert_eq!(frame(&mut late).await["event"]["seq"], 3);
}

/// The next SSE chunk as text.
async fn chunk<E: crate::sse::Events>(stream: &mut SseStream<E>) -> String {
    let chunk = tokio::time::timeout(WAIT, stream.next_chunk())
        .await
        .expect("a chunk in time")
        .expect("the stream goes on");
    String::from_utf8(chunk.to_vec()).unwrap()
}

/// The JSON of an SSE `event: <name>` without an `id:`.
fn signal(chunk: &str, name: &str) -> Value {
    let data = chunk
        .strip_prefix(&format!("event: {name}\ndata: "))
        .and_then(|rest| rest.strip_suffix("\n\n"))
        .unwrap_or_else(|| panic!("not an `event: {name}` without id: {chunk:?}"));
    serde_json::from_str(data).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_sse_screen_gets_named_events_that_leave_its_cursor_alone() {
    let edge = edge().await;
    let rid = kitchen_restaurant();
    let viewer = kitchen(HOUR).viewer();
    let sub = Subscription::open(&edge.shared, rid, viewer, None)
        .await
        .unwrap();
    let permit = edge.shared.admit(&kitchen(HOUR)).unwrap();
    let peer = crate::metrics::Peer::new(&kitchen(HOUR), Some(rid));
    let mut stream = SseStream::new(edge.shared.clone(), sub, HOUR, permit, peer);
    assert!(chunk(&mut stream).await.ends_with(": subscribed at 0\n\n"));
    assert_eq!(signal(&chunk(&mut stream).await, "live"), live());

    heard(&edge.store, 2 * HOUR).await;
    let stale = signal(&chunk(&mut stream).await, "stale");
    let since = since(&stale);
    assert_eq!(
        stale,
        json!({"type": "stale", "restaurant_id": rid, "region": "peer", "last_seq": 0,
               "last_event_at": null, "since": since})
    );

    heard(&edge.store, Duration::ZERO).await;
    assert_eq!(signal(&chunk(&mut stream).await, "live"), live());
    publish(&edge.streams, rid, 1).await;
    assert!(chunk(&mut stream).await.starts_with("id: 1\n"));
}

/// A long-poll of the kitchen's restaurant from now, waiting up to `wait`
/// seconds.
async fn long_poll(edge: &OnServers, wait: &str) -> Value {
    let query = PollQuery {
        wait: Some(wait.into()),
        ..PollQuery::default()
    };
    let answer = poll::events(
        State(edge.shared.clone()),
        Subscriber(kitchen(HOUR)),
        Path(kitchen_restaurant()),
        Query(query),
    );
    let response = tokio::time::timeout(WAIT, answer)
        .await
        .expect("an answer in time")
        .unwrap();
    let body = axum::body::to_bytes(response.into_body(), usize::MAX)
        .await
        .unwrap();
    serde_json::from_slice(&body).unwrap()
}

/// Waits until `n` long-polls are waiting.
async fn polls_waiting(edge: &OnServers, n: i64) {
    let gauge = edge
        .shared
        .metrics
        .connections
        .with_label_values(&["long_poll"]);
    ordercast_testkit::eventually("the long-poll to wait", WAIT, || {
        let waiting = gauge.get();
        async move { (waiting == n).then_some(()) }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_long_poll_says_stale_in_its_answer_and_a_change_ends_its_wait() {
    let edge = Arc::new(edge().await);
    assert_eq!(
        long_poll(&edge, "0").await,
        json!({"events": [], "next": 0})
    );
    let waiting = |edge: &Arc<OnServers>| {
        let edge = edge.clone();
        tokio::spawn(async move { long_poll(&edge, "30").await })
    };

    // The peer goes stale while a long-poll waits: it answers early.
    let answer = waiting(&edge);
    polls_waiting(&edge, 1).await;
    heard(&edge.store, 2 * HOUR).await;
    let answer = answer.await.unwrap();
    let since = since(&answer["stale"]);
    let stale = json!({"region": "peer", "last_seq": 0, "last_event_at": null, "since": since});
    assert_eq!(answer, json!({"events": [], "next": 0, "stale": stale}));
    assert_eq!(
        long_poll(&edge, "0").await,
        json!({"events": [], "next": 0, "stale": stale}),
        "every answer while stale says so"
    );

    // And when it is back.
    let answer = waiting(&edge);
    polls_waiting(&edge, 1).await;
    heard(&edge.store, Duration::ZERO).await;
    assert_eq!(answer.await.unwrap(), json!({"events": [], "next": 0}));
}
