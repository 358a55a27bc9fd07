//! On a Redis Cluster (three primaries of the test's own): publishing goes
//! to the node of each restaurant's slot, every shard is read from the node
//! that holds it, and a node's outage costs latency, never events.

use std::time::Duration;

use ordercast_bus::Shard;
use ordercast_core::{RestaurantId, Role};
use ordercast_testkit::{RedisCluster, eventually};
use reqwest::StatusCode;
use serde_json::json;

use crate::clients::{Resume, Sse, assert_exactly};
use crate::common::{Backends, TestApp};
use crate::delivery::{until_published, until_unwatched};

/// A new restaurant with the id `rid`.
async fn create_restaurant_with_id(app: &TestApp, rid: RestaurantId) {
    let (status, body) = app
        .post(
            "/v1/restaurants",
            &app.platform_admin(),
            json!({"id": rid, "name": "Cluster Bistro"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
}

/// One restaurant whose stream lives on each node, in node order.
async fn one_restaurant_per_node(app: &TestApp, cluster: &RedisCluster) -> Vec<RestaurantId> {
    let mut on_node: Vec<Option<RestaurantId>> = vec![None; cluster.node_urls().len()];
    while on_node.iter().any(Option::is_none) {
        let rid = RestaurantId::new();
        let node = cluster.node_of(&app.keys.stream(rid)).await;
        if on_node[node].is_none() {
            create_restaurant_with_id(app, rid).await;
            on_node[node] = Some(rid);
        }
    }
    on_node.into_iter().flatten().collect()
}

fn from_now() -> Resume {
    Resume::default()
}

async fn screens(app: &TestApp, restaurants: &[RestaurantId], resume: Resume) -> Vec<Sse> {
    let mut screens = Vec::new();
    for &rid in restaurants {
        let token = app.token(Role::Kitchen, rid);
        screens.push(Sse::connect(&app.base, rid, &token, resume.clone()).await);
    }
    screens
}

/// `n` orders on each restaurant, the restaurants concurrently.
async fn orders_everywhere(app: &TestApp, restaurants: &[RestaurantId], n: usize) {
    futures_util::future::join_all(restaurants.iter().map(|&rid| app.orders(rid, n))).await;
}

/// A cluster, an `all` process on it, one restaurant per node and a kitchen
/// screen on each, from now.
struct Fixture {
    cluster: RedisCluster,
    app: TestApp,
    restaurants: Vec<RestaurantId>,
    kds: Vec<Sse>,
}

impl Fixture {
    async fn start() -> Fixture {
        let cluster = RedisCluster::spawn().await;
        let app = TestApp::spawn_on(Backends::with_redis_cluster(&cluster).await).await;
        let restaurants = one_restaurant_per_node(&app, &cluster).await;
        let kds = screens(&app, &restaurants, from_now()).await;
        Fixture {
            cluster,
            app,
            restaurants,
            kds,
        }
    }
}

/// Waits until no shard is degraded (every reader streams from Redis).
async fn until_streaming(app: &TestApp) {
    eventually(
        "every shard streaming again",
        Duration::from_secs(30),
        || async { (app.metric("ordercast_degraded_shards").await == 0.0).then_some(()) },
    )
    .await;
}

#[tokio::test]
async fn on_a_redis_cluster_every_screen_gets_its_restaurants_events_from_the_node_that_holds_them()
{
    let Fixture {
        cluster: _cluster,
        app,
        restaurants,
        mut kds,
    } = Fixture::start().await;

    orders_everywhere(&app, &restaurants, 20).await;
    for (sse, rid) in kds.iter_mut().zip(&restaurants) {
        sse.until_count(20).await;
        assert_exactly(&sse.seqs(), 1..=20, &format!("restaurant {rid}"));
        let stream = app.stream(*rid).await;
        let ids: Vec<&str> = stream.iter().map(|(id, _)| id.as_str()).collect();
        let expected: Vec<String> = (1..=20).map(|s| format!("{s}-0")).collect();
        assert_eq!(ids, expected, "the stream of {rid}");
        let envelopes: Vec<_> = stream.into_iter().map(|(_, e)| e).collect();
        assert_eq!(envelopes, app.stored_events(*rid).await);
    }

    // A restaurant joining a shard whose reader is blocked on a node other
    // than the first seed (restaurants come in node order): the wake-up must
    // reach that node, or the new screen would wait out the reader's 30 s
    // XREAD, longer than the test waits.
    let busy = restaurants[1];
    let twin = loop {
        let rid = RestaurantId::new();
        if Shard::of(rid) == Shard::of(busy) {
            break rid;
        }
    };
    create_restaurant_with_id(&app, twin).await;
    let mut twin_kds =
        Sse::connect(&app.base, twin, &app.token(Role::Kitchen, twin), from_now()).await;
    app.order(twin).await;
    twin_kds.until_count(1).await;
    assert_exactly(&twin_kds.seqs(), [1], "a restaurant joining a busy shard");

    // Catch-up from a cluster node: with every screen gone, the rings are gone.
    drop((kds, twin_kds));
    until_unwatched(&app).await;
    orders_everywhere(&app, &restaurants, 10).await;
    for &rid in &restaurants {
        until_published(&app, rid, 30).await;
    }
    let from_redis = r#"ordercast_catchup_events_total{source="redis"}"#;
    let before = app.metric(from_redis).await;
    let resume = Resume {
        last_event_id: Some(20),
        ..Resume::default()
    };
    for mut sse in screens(&app, &restaurants, resume).await {
        sse.until_count(10).await;
        assert_exactly(&sse.seqs(), 21..=30, "a resume after 20");
    }
    assert_eq!(app.metric(from_redis).await - before, 30.0);

    // All of it streamed: no read failed, no shard fell back to PostgreSQL
    // (which would have delivered too, only later).
    assert_eq!(app.metric("ordercast_edge_redis_errors_total").await, 0.0);
    assert_eq!(app.metric("ordercast_degraded_shards").await, 0.0);
}

#[tokio::test]
async fn a_cluster_node_that_dies_and_returns_costs_no_event() {
    let Fixture {
        mut cluster,
        app,
        restaurants,
        mut kds,
    } = Fixture::start().await;
    orders_everywhere(&app, &restaurants, 5).await;
    for sse in &mut kds {
        sse.until_count(5).await;
    }

    // Node 0, the first seed, dies: its shards' readers fall back to
    // PostgreSQL (and, once the cluster notices the lost slots, every shard's
    // do), and reconnecting readers move on to the next seed. Orders still
    // commit.
    cluster.stop_node(0);
    orders_everywhere(&app, &restaurants, 5).await;
    for (sse, rid) in kds.iter_mut().zip(&restaurants) {
        sse.until_count(10).await;
        assert_exactly(&sse.seqs(), 1..=10, &format!("restaurant {rid}, node down"));
    }

    // Back, empty (it kept no data): streaming again, nothing lost or repeated.
    cluster.start_node(0).await;
    until_streaming(&app).await;
    orders_everywhere(&app, &restaurants, 5).await;
    for (sse, rid) in kds.iter_mut().zip(&restaurants) {
        sse.until_count(15).await;
        assert_exactly(&sse.seqs(), 1..=15, &format!("restaurant {rid}, node back"));
    }
    for &rid in &restaurants {
        until_published(&app, rid, 15).await;
    }
    // A reader that cannot read pauses (100 ms, doubling to 2 s) instead of
    // spinning: while the cluster reported CLUSTERDOWN, a reconnect that
    // succeeded and an XREAD that failed at once made thousands of attempts.
    let failed_reads = app.metric("ordercast_edge_redis_errors_total").await;
    assert!(failed_reads < 100.0, "{failed_reads} failed reads");
}

#[tokio::test]
async fn after_the_whole_cluster_restarts_events_stream_again() {
    let Fixture {
        mut cluster,
        app,
        restaurants,
        mut kds,
    } = Fixture::start().await;
    orders_everywhere(&app, &restaurants, 3).await;

    cluster.stop();
    orders_everywhere(&app, &restaurants, 3).await;
    for sse in &mut kds {
        sse.until_count(6).await;
    }
    cluster.start().await;
    until_streaming(&app).await;

    // Published again, by the fast path and the sweeper: the new orders
    // reach the streams, and through them the screens.
    orders_everywhere(&app, &restaurants, 3).await;
    for &rid in &restaurants {
        until_published(&app, rid, 9).await;
    }
    for (sse, rid) in kds.iter_mut().zip(&restaurants) {
        sse.until_count(9).await;
        assert_exactly(&sse.seqs(), 1..=9, &format!("restaurant {rid}"));
    }
}
