use std::time::Duration;

use ordercast::app::Role as ServerRole;
use ordercast_bus::Shard;
use ordercast_core::Role;
use ordercast_testkit::{RedisServer, eventually};
use reqwest::StatusCode;

use crate::clients::{Resume, Sse, Ws, assert_exactly, poll};
use crate::common::{Backends, TestApp, simple_order};

#[tokio::test]
async fn cold_start_a_client_with_since_zero_gets_every_earlier_order_in_order() {
    let app = TestApp::spawn().await;
    let rid = app.create_restaurant().await;
    app.orders(rid, 30).await;
    let token = app.token(Role::Kitchen, rid);
    let mut sse = Sse::connect(&app.base, rid, &token, Resume::since("0")).await;
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

/// `ordercast_delivery_latency_seconds_count` of a transport and kind.
fn latency_count(transport: &str, kind: &str) -> String {
    format!(r#"ordercast_delivery_latency_seconds_count{{kind="{kind}",transport="{transport}"}}"#)
}

/// A resume replays what the client missed, as late as the client was
/// away: those deliveries are `catchup`, so the `live` latency that alerts
/// read is not inflated by a reconnect storm.
#[tokio::test]
async fn a_resume_from_zero_counts_as_catchup_and_what_follows_as_live_on_every_transport() {
    let app = TestApp::spawn().await;
    let rid = app.create_restaurant().await;
    app.orders(rid, 5).await;
    let token = app.token(Role::Kitchen, rid);

    let mut sse = Sse::connect(&app.base, rid, &token, Resume::since("0")).await;
    sse.until_count(5).await;
    let mut ws = Ws::connect(&app.base, &token).await;
    ws.subscribe(rid, Some(0)).await;
    ws.until("the backlog", |w| w.seqs(rid).len() == 5).await;
    let (status, body) = poll(&app.base, rid, &token, "since=0&wait=0").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["events"].as_array().unwrap().len(), 5);
    for transport in ["sse", "websocket", "long_poll"] {
        let catchup = app.metric(&latency_count(transport, "catchup")).await;
        let live = app.metric(&latency_count(transport, "live")).await;
        assert_eq!((catchup, live), (5.0, 0.0), "{transport}: (catchup, live)");
    }

    // A long-poll waiting at the head, then one new event for everyone.
    let waiting = tokio::spawn({
        let (base, token) = (app.base.clone(), token.clone());
        async move { poll(&base, rid, &token, "since=5&wait=25").await }
    });
    eventually("the long-poll to wait", Duration::from_secs(20), || async {
        let open = app.metric(r#"ordercast_connections{transport="long_poll"}"#);
        (open.await == 1.0).then_some(())
    })
    .await;
    app.order(rid).await;
    sse.until_count(6).await;
    ws.until("the live event", |w| w.seqs(rid).len() == 6).await;
    let (status, body) = waiting.await.unwrap();
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["events"][0]["seq"], 6);
    for transport in ["sse", "websocket", "long_poll"] {
        let catchup = app.metric(&latency_count(transport, "catchup")).await;
        let live = app.metric(&latency_count(transport, "live")).await;
        assert_eq!((catchup, live), (5.0, 1.0), "{transport}: (catchup, live)");
    }
}

async fn watched(app: &TestApp) -> u64 {
    let (_, stats) = app.get_admin("/debug/stats").await;
    stats["edge"]["watched_restaurants"].as_u64().unwrap()
}

/// Waits until the restaurant's stream holds seq `last` (publishing follows
/// the commit asynchronously), so a resume that follows reads what it
/// should from where it should.
pub(crate) async fn until_published(app: &TestApp, rid: ordercast_core::RestaurantId, last: u64) {
    let top = format!("{last}-0");
    eventually(
        "the writes to be published",
        Duration::from_secs(20),
        || async {
            app.stream(rid)
                .await
                .last()
                .is_some_and(|(id, _)| *id == top)
                .then_some(())
        },
    )
    .await;
}

/// Waits until no client of `app` watches any restaurant (its hubs and
/// rings are gone).
pub(crate) async fn until_unwatched(app: &TestApp) {
    eventually("every hub to close", Duration::from_secs(20), || async {
        (watched(app).await == 0).then_some(())
    })
    .await;
}

#[tokio::test]
async fn a_kitchen_offline_for_50_events_resumes_with_exactly_those_from_ring_redis_and_postgres() {
    let redis = RedisServer::spawn().await;
    let backends = Backends::with_redis(&redis).await;
    let app = TestApp::spawn_with(backends, ServerRole::All, |s| {
        s.edge.ring_size = 50;
        // Disconnected clients are noticed at the next heartbeat write.
        s.edge.heartbeat = Duration::from_millis(100);
    })
    .await;
    let rid = app.create_restaurant().await;
    let kitchen = app.token(Role::Kitchen, rid);
    let ring = r#"ordercast_catchup_events_total{source="ring"}"#;
    let redis_source = r#"ordercast_catchup_events_total{source="redis"}"#;
    let postgres = r#"ordercast_catchup_events_total{source="postgres"}"#;

    // From the ring: a second screen keeps the restaurant's hub alive.
    let mut keeper = Sse::connect(&app.base, rid, &kitchen, Resume::default()).await;
    app.order(rid).await;
    let mut kds = Sse::connect(&app.base, rid, &kitchen, since(0)).await;
    kds.until_count(1).await;
    drop(kds);
    app.orders(rid, 50).await;
    // The hub has all 50 (not some of them arriving live after the resume).
    keeper.until_count(51).await;
    let before = app.metric(ring).await;
    let mut kds = Sse::connect(&app.base, rid, &kitchen, last_event_id(1)).await;
    kds.until_count(50).await;
    assert_exactly(&kds.seqs(), 2..=51, "from the ring");
    assert_eq!(app.metric(ring).await - before, 50.0);

    // From Redis: with every screen gone the ring is gone too.
    drop((kds, keeper));
    until_unwatched(&app).await;
    app.orders(rid, 50).await;
    until_published(&app, rid, 101).await;
    let before = app.metric(redis_source).await;
    let mut kds = Sse::connect(&app.base, rid, &kitchen, last_event_id(51)).await;
    kds.until_count(50).await;
    assert_exactly(&kds.seqs(), 52..=101, "from Redis");
    assert_eq!(app.metric(redis_source).await - before, 50.0);

    // From PostgreSQL: after the stream was trimmed…
    drop(kds);
    until_unwatched(&app).await;
    app.orders(rid, 50).await;
    // Trimmed after the last XADD, so none of the 50 is left in Redis.
    until_published(&app, rid, 151).await;
    let mut conn = redis_conn(&app).await;
    let _: i64 = redis::cmd("XTRIM")
        .arg(app.keys.stream(rid))
        .arg("MAXLEN")
        .arg(0)
        .query_async(&mut conn)
        .await
        .unwrap();
    let before = app.metric(postgres).await;
    let mut kds = Sse::connect(&app.base, rid, &kitchen, last_event_id(101)).await;
    kds.until_count(50).await;
    assert_exactly(&kds.seqs(), 102..=151, "from PostgreSQL after XTRIM");
    assert_eq!(app.metric(postgres).await - before, 50.0);

    // …and after Redis lost everything.
    drop(kds);
    until_unwatched(&app).await;
    app.orders(rid, 50).await;
    until_published(&app, rid, 201).await;
    let _: () = redis::cmd("FLUSHALL").query_async(&mut conn).await.unwrap();
    let mut kds = Sse::connect(&app.base, rid, &kitchen, last_event_id(151)).await;
    kds.until_count(50).await;
    assert_exactly(&kds.seqs(), 152..=201, "from PostgreSQL after FLUSHALL");
    // And live again afterwards.
    app.order(rid).await;
    kds.until_count(51).await;
    assert_exactly(&kds.seqs(), 152..=202, "live after FLUSHALL");
}

#[tokio::test]
async fn events_through_either_of_two_apis_reach_clients_on_both_edges_once_in_order() {
    let api1 = TestApp::spawn_with(Backends::fresh().await, ServerRole::Api, |_| {}).await;
    let api2 = TestApp::spawn_with(api1.backends(), ServerRole::Api, |_| {}).await;
    let edge1 = TestApp::spawn_with(api1.backends(), ServerRole::Edge, |_| {}).await;
    let edge2 = TestApp::spawn_with(api1.backends(), ServerRole::Edge, |_| {}).await;
    let rid = api1.create_restaurant().await;
    let kitchen = api1.token(Role::Kitchen, rid);
    let owner = api1.token(Role::Owner, rid);
    let mut clients = Vec::new();
    for edge in [&edge1, &edge2] {
        for token in [&kitchen, &owner, &kitchen] {
            clients.push(Sse::connect(&edge.base, rid, token, Resume::default()).await);
        }
    }
    let writers = [&api1, &api2, &api1, &api2].map(|api| async move {
        api.orders(rid, 25).await;
    });
    futures_util::future::join_all(writers).await;
    for (i, client) in clients.iter_mut().enumerate() {
        client.until_count(100).await;
        assert_exactly(&client.seqs(), 1..=100, &format!("client {i}"));
    }
    // The api role serves no streams, the edge role no commands.
    let refused = Sse::open(&api1.base, rid, &kitchen, Resume::default()).await;
    assert_eq!(
        refused.err().map(|(status, _)| status),
        Some(StatusCode::NOT_FOUND)
    );
    let (status, _) = edge1.create_order(rid, &owner, simple_order()).await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn a_missing_stream_entry_is_filled_from_postgres_and_a_republished_one_delivered_once() {
    // The api publishes under one prefix; the edge reads another, which the
    // test fills by hand, leaving a hole.
    let api = TestApp::spawn_with(Backends::fresh().await, ServerRole::Api, |_| {}).await;
    let edge_backends = Backends {
        prefix: ordercast_testkit::unique_prefix(),
        ..api.backends()
    };
    let edge = TestApp::spawn_with(edge_backends, ServerRole::Edge, |_| {}).await;
    let rid = api.create_restaurant().await;
    let token = api.token(Role::Owner, rid);
    let mut live = Sse::connect(&edge.base, rid, &token, Resume::default()).await;
    api.orders(rid, 3).await;
    let published = eventually("3 entries", Duration::from_secs(10), || async {
        let s = api.stream(rid).await;
        (s.len() == 3).then_some(s)
    })
    .await;
    let mut conn = redis_conn(&api).await;
    let key = edge.keys.stream(rid);
    let copy = |seq: usize| {
        let mut cmd = redis::cmd("XADD");
        cmd.arg(&key)
            .arg(&published[seq - 1].0)
            .arg("event")
            .arg(published[seq - 1].1.to_string());
        cmd
    };
    let _: String = copy(1).query_async(&mut conn).await.unwrap();
    let _: String = copy(3).query_async(&mut conn).await.unwrap();
    live.until_count(3).await;
    assert_exactly(&live.seqs(), 1..=3, "live with entry 2 missing");
    assert!(edge.metric("ordercast_gap_fills_total").await >= 1.0);
    // The filled event is late by however long the hole lasted: catch-up,
    // even for a live subscriber.
    let late = edge.metric(&latency_count("sse", "catchup")).await;
    let on_time = edge.metric(&latency_count("sse", "live")).await;
    assert_eq!((late, on_time), (1.0, 2.0), "(catchup, live)");

    // Published twice: Redis refuses the second copy, nobody sees it twice.
    let again: redis::RedisResult<String> = copy(3).query_async(&mut conn).await;
    assert!(again.is_err(), "Redis refuses a duplicate id");
    api.order(rid).await;
    let fourth = eventually("entry 4", Duration::from_secs(10), || async {
        let s = api.stream(rid).await;
        (s.len() == 4).then(|| s[3].clone())
    })
    .await;
    let _: String = redis::cmd("XADD")
        .arg(&key)
        .arg(&fourth.0)
        .arg("event")
        .arg(fourth.1.to_string())
        .query_async(&mut conn)
        .await
        .unwrap();
    live.until_count(4).await;
    assert_exactly(&live.seqs(), 1..=4, "after a republish");

    // Catching up over a deleted entry: a new client on the api's own
    // prefix reads Redis up to the hole, then PostgreSQL.
    let all = TestApp::spawn_with(api.backends(), ServerRole::Edge, |_| {}).await;
    let _: i64 = redis::cmd("XDEL")
        .arg(api.keys.stream(rid))
        .arg("2-0")
        .query_async(&mut conn)
        .await
        .unwrap();
    let mut late = Sse::connect(&all.base, rid, &token, since(0)).await;
    late.until_count(4).await;
    assert_exactly(&late.seqs(), 1..=4, "catch-up over an XDEL hole");
}

#[tokio::test]
async fn a_new_restaurant_on_a_blocked_shard_reader_is_read_at_once() {
    let app = TestApp::spawn().await;
    let first = app.create_restaurant().await;
    // A second restaurant of the same shard: the reader blocked in XREAD for
    // the first must be woken to read the second's stream too.
    let second = loop {
        let rid = app.create_restaurant().await;
        if Shard::of(rid) == Shard::of(first) {
            break rid;
        }
    };
    let _a = Sse::connect(
        &app.base,
        first,
        &app.token(Role::Owner, first),
        Resume::default(),
    )
    .await;
    app.order(first).await;
    let mut b = Sse::connect(
        &app.base,
        second,
        &app.token(Role::Owner, second),
        Resume::default(),
    )
    .await;
    let started = std::time::Instant::now();
    app.order(second).await;
    b.until_count(1).await;
    // The reader blocks for 30 s; a wake-up by CLIENT UNBLOCK is far sooner.
    assert!(started.elapsed() < Duration::from_secs(20));
    assert_exactly(&b.seqs(), [1], "second restaurant");
}

fn since(n: u64) -> Resume {
    Resume {
        since: Some(n.to_string()),
        ..Resume::default()
    }
}

fn last_event_id(n: u64) -> Resume {
    Resume {
        last_event_id: Some(n),
        ..Resume::default()
    }
}

pub(crate) async fn redis_conn(app: &TestApp) -> redis::aio::MultiplexedConnection {
    redis::Client::open(app.redis_url.clone())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap()
}
