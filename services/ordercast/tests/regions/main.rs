//! Two regions on one machine, each with its own PostgreSQL, Redis and
//! `ordercast all`, every link between them (replication both ways,
//! forwarded writes both ways) through a proxy that delays and can cut it
//! (docs/multi-region.md).

#[path = "../edge/clients.rs"]
mod clients;
#[path = "../common/mod.rs"]
mod common;

use std::net::SocketAddr;
use std::time::Duration;

use ordercast::app::Role as ServerRole;
use ordercast_api::RegionSettings;
use ordercast_core::{Region, RestaurantId, Role};
use ordercast_store::{PeerDatabase, Store};
use ordercast_testkit::{Link, PostgresServer, RedisServer, eventually, free_port};
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::clients::{DEADLINE, Resume, Sse, Ws, assert_exactly};
use crate::common::{Backends, TestApp, mint, simple_order};

/// One-way delay on every link between the regions.
const DELAY: Duration = Duration::from_millis(20);

/// A region: its servers and its `ordercast all`.
struct Cell {
    name: Region,
    app: TestApp,
    redis: RedisServer,
    _pg: PostgresServer,
}

/// The links between two regions, `a` and `b`.
struct Links {
    /// `b`'s subscription reading `a`'s database, and the other way round.
    pg_a_to_b: Link,
    pg_b_to_a: Link,
    /// Writes forwarded from `a` to `b`'s api, and from `b` to `a`'s.
    api_a_to_b: Link,
    api_b_to_a: Link,
}

impl Links {
    fn all(&self) -> [&Link; 4] {
        [
            &self.pg_a_to_b,
            &self.pg_b_to_a,
            &self.api_a_to_b,
            &self.api_b_to_a,
        ]
    }

    fn cut(&self) {
        self.all().into_iter().for_each(Link::cut);
    }

    fn heal(&self) {
        self.all().into_iter().for_each(Link::heal);
    }
}

fn addr(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

async fn link(upstream: SocketAddr) -> Link {
    Link::start(addr(0), upstream, DELAY)
        .await
        .expect("start a link")
}

fn pg_port(url: &str) -> u16 {
    url.rsplit_once(':')
        .and_then(|(_, rest)| rest.split('/').next())
        .and_then(|p| p.parse().ok())
        .expect("a port in the URL")
}

/// Two regions, `a` and `b`, migrated and replicating both ways.
async fn two_regions() -> (Cell, Cell, Links) {
    let (a, b): (Region, Region) = ("eu".parse().unwrap(), "us".parse().unwrap());
    let (pg_a, pg_b) = (
        PostgresServer::spawn_logical().await,
        PostgresServer::spawn_logical().await,
    );
    let (redis_a, redis_b) = (RedisServer::spawn().await, RedisServer::spawn().await);
    let db_a = ordercast_testkit::fresh_database_on(&pg_a.admin_url()).await;
    let db_b = ordercast_testkit::fresh_database_on(&pg_b.admin_url()).await;
    let (port_a, port_b) = (free_port(), free_port());
    let links = Links {
        pg_a_to_b: link(addr(pg_port(&db_a))).await,
        pg_b_to_a: link(addr(pg_port(&db_b))).await,
        api_a_to_b: link(addr(port_b)).await,
        api_b_to_a: link(addr(port_a)).await,
    };
    // Each region's database, as the other region's PostgreSQL reaches it.
    let through = |db: &str, link: &Link| {
        let name = db.rsplit('/').next().unwrap();
        format!(
            "postgres://postgres@127.0.0.1:{}/{name}",
            link.addr().port()
        )
    };
    let peer_of_a = PeerDatabase {
        region: b.clone(),
        url: through(&db_b, &links.pg_b_to_a),
    };
    let peer_of_b = PeerDatabase {
        region: a.clone(),
        url: through(&db_a, &links.pg_a_to_b),
    };
    let store_a = Store::connect_lazy(&ordercast_store::DbSettings::from_url(&db_a).unwrap());
    let store_b = Store::connect_lazy(&ordercast_store::DbSettings::from_url(&db_b).unwrap());
    // Twice round: a subscription waits for its peer's publication.
    for _ in 0..2 {
        ordercast::migrate(&store_a, &a, std::slice::from_ref(&peer_of_a))
            .await
            .unwrap();
        ordercast::migrate(&store_b, &b, std::slice::from_ref(&peer_of_b))
            .await
            .unwrap();
    }
    let spawn =
        |me: Region, peer: Region, port: u16, db: String, redis: &RedisServer, api: &Link| {
            let backends = Backends {
                database_url: db,
                redis_url: redis.url(),
                redis_cluster: false,
                redis_ca: None,
                prefix: ordercast_testkit::unique_prefix(),
            };
            let peer_api = format!("http://{}", api.addr());
            async move {
                TestApp::spawn_with(backends, ServerRole::All, move |s| {
                    s.listen = addr(port);
                    // Replicated events must reach Redis through the relay,
                    // not the sweeper (which would take them after a minute).
                    s.api.outbox.min_age = Duration::from_secs(60);
                    s.api.regions = RegionSettings {
                        me,
                        peers: vec![(peer.clone(), peer_api)],
                        timeout: Duration::from_secs(2),
                    };
                    s.edge.peers = vec![peer];
                    s.edge.region_stale_after = Duration::from_millis(1_500);
                })
                .await
            }
        };
    let app_a = spawn(
        a.clone(),
        b.clone(),
        port_a,
        db_a,
        &redis_a,
        &links.api_a_to_b,
    )
    .await;
    let app_b = spawn(
        b.clone(),
        a.clone(),
        port_b,
        db_b,
        &redis_b,
        &links.api_b_to_a,
    )
    .await;
    (
        Cell {
            name: a,
            app: app_a,
            redis: redis_a,
            _pg: pg_a,
        },
        Cell {
            name: b,
            app: app_b,
            redis: redis_b,
            _pg: pg_b,
        },
        links,
    )
}

/// Creates a restaurant through `via`'s api, homed in `home`.
async fn restaurant(via: &Cell, home: &Region, reach: Option<Vec<&str>>) -> RestaurantId {
    let mut body = json!({"name": "Trattoria", "region": home});
    if let Some(reach) = reach {
        body["reach"] = json!(reach);
    }
    let (status, body) = via
        .app
        .post("/v1/restaurants", &via.app.platform_admin(), body)
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(body["region"], home.as_str(), "{body}");
    body["id"].as_str().unwrap().parse().unwrap()
}

/// Waits until `cell`'s database has the restaurant (replicated).
async fn arrived(cell: &Cell, rid: RestaurantId) {
    eventually("the restaurant to be replicated", DEADLINE, || async {
        let n = cell
            .app
            .count("SELECT count(*) FROM restaurants WHERE id = $1", rid)
            .await;
        (n == 1).then_some(())
    })
    .await;
}

/// The entry ids of a restaurant's stream in `cell`'s Redis.
async fn entry_ids(cell: &Cell, rid: RestaurantId) -> Vec<String> {
    cell.app
        .stream(rid)
        .await
        .into_iter()
        .map(|(id, _)| id)
        .collect()
}

/// A write with an Idempotency-Key through `cell`'s api.
async fn create_order_keyed(cell: &Cell, rid: RestaurantId, key: &str) -> (StatusCode, Value) {
    let response = cell
        .app
        .client
        .post(format!("{}/v1/restaurants/{rid}/orders", cell.app.base))
        .bearer_auth(cell.app.token(Role::Owner, rid))
        .header("idempotency-key", key)
        .json(&simple_order())
        .send()
        .await
        .unwrap();
    let status = response.status();
    (status, response.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn a_write_through_another_region_commits_once_at_home_and_reaches_both() {
    let (eu, us, _links) = two_regions().await;
    let rid = restaurant(&eu, &eu.name, None).await;
    arrived(&us, rid).await;

    let (first, order) = create_order_keyed(&us, rid, "till-7-0001").await;
    let (again, replay) = create_order_keyed(&us, rid, "till-7-0001").await;

    assert_eq!(first, StatusCode::CREATED, "{order}");
    assert_eq!(again, first, "{replay}");
    assert_eq!(
        replay["id"], order["id"],
        "a retry must not create a second order"
    );
    assert_eq!(order["seq"], 1);
    let at_home = eu
        .app
        .count("SELECT count(*) FROM orders WHERE restaurant_id = $1", rid)
        .await;
    assert_eq!(at_home, 1);
    // The restaurant's seq was taken at home and nowhere else.
    assert_eq!(
        eu.app
            .count("SELECT last_seq FROM restaurants WHERE id = $1", rid)
            .await,
        1
    );
    eventually("the order replicated to us", DEADLINE, || async {
        let n = us
            .app
            .count("SELECT count(*) FROM orders WHERE restaurant_id = $1", rid)
            .await;
        (n == 1).then_some(())
    })
    .await;

    // Long-poll in us, from the start: the event with its home's seq.
    let (status, page) = eventually("the event on a long-poll in us", DEADLINE, || async {
        let answer = clients::poll(
            &us.app.base,
            rid,
            &us.app.token(Role::Kitchen, rid),
            "since=0&wait=1",
        )
        .await;
        (answer.1["events"].as_array().is_some_and(|e| !e.is_empty())).then_some(answer)
    })
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(common::seqs(page["events"].as_array().unwrap()), [1]);
    assert_eq!(page["events"][0]["data"]["id"], order["order"]["id"]);

    // A restaurant homed in us, created through eu.
    let remote = restaurant(&eu, &us.name, None).await;
    let homed: Option<String> = sqlx::query_scalar("SELECT region FROM restaurants WHERE id = $1")
        .bind(remote.as_uuid())
        .fetch_one(&us.app.db)
        .await
        .unwrap();
    assert_eq!(homed.as_deref(), Some("us"));
}

#[tokio::test]
async fn screens_in_another_region_get_a_remote_restaurant_live_in_order_and_after_a_partition() {
    let (eu, us, links) = two_regions().await;
    let rid = restaurant(&eu, &eu.name, None).await;
    arrived(&us, rid).await;
    let kitchen = us.app.token(Role::Kitchen, rid);
    let mut sse = Sse::connect(&us.app.base, rid, &kitchen, Resume::default()).await;
    let mut ws = Ws::connect(&us.app.base, &kitchen).await;
    ws.subscribe(rid, Some(0)).await;
    let mut home_screen = Sse::connect(
        &eu.app.base,
        rid,
        &eu.app.token(Role::Kitchen, rid),
        Resume::default(),
    )
    .await;

    eu.app.orders(rid, 3).await;
    sse.until_count(3).await;
    ws.until("three events", |w| w.seqs(rid).len() >= 3).await;
    assert_exactly(&sse.seqs(), 1..=3, "us SSE before the partition");

    links.cut();
    // Stale: told, not silent. (A subscription to a remote restaurant also
    // opens with `live` or `stale`: the one to wait for names seq 3.)
    let stale_at_3 = |f: &Value| f["last_seq"] == 3;
    ws.until("stale", |w| w.of_type("stale").into_iter().any(stale_at_3))
        .await;
    let stale = ws
        .of_type("stale")
        .into_iter()
        .find(|f| stale_at_3(f))
        .unwrap()
        .clone();
    assert_eq!(stale["restaurant_id"], rid.to_string());
    assert_eq!(stale["region"], "eu");
    assert!(stale["last_event_at"].is_string(), "{stale}");
    sse.until("stale", |s| {
        s.signals
            .iter()
            .any(|(kind, data)| kind == "stale" && stale_at_3(data))
    })
    .await;
    // The home region carries on as if nothing happened.
    eu.app.orders(rid, 4).await;
    home_screen.until_count(7).await;
    assert_exactly(&home_screen.seqs(), 1..=7, "eu SSE during the partition");
    // A write for eu's restaurant through us has nowhere to go.
    let (status, problem) = create_order_keyed(&us, rid, "during-partition").await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{problem}");
    assert_eq!(
        problem["type"],
        "https://ordercast.dev/problems/region-unavailable"
    );

    links.heal();
    let lives = |w: &Ws| w.of_type("live").len();
    let before = lives(&ws);
    ws.until("live", |w| lives(w) > before).await;
    ws.until("the backlog", |w| w.seqs(rid).len() >= 7).await;
    sse.until("the backlog", |s| s.seqs().len() >= 7).await;
    assert_exactly(&ws.seqs(rid), 1..=7, "us WebSocket after heal");
    assert_exactly(&sse.seqs(), 1..=7, "us SSE after heal");
    // The retried write now lands, once.
    let (status, _) = create_order_keyed(&us, rid, "during-partition").await;
    assert_eq!(status, StatusCode::CREATED);
    let (status, _) = create_order_keyed(&us, rid, "during-partition").await;
    assert_eq!(status, StatusCode::CREATED);
    ws.until("the retried write", |w| w.seqs(rid).len() >= 8)
        .await;
    assert_exactly(&ws.seqs(rid), 1..=8, "us WebSocket after the retried write");
}

#[tokio::test]
async fn a_remote_snapshot_matches_its_stream() {
    let (eu, us, _links) = two_regions().await;
    let rid = restaurant(&eu, &eu.name, None).await;
    eu.app.orders(rid, 5).await;
    arrived(&us, rid).await;
    eventually("five orders in us", DEADLINE, || async {
        let n = us
            .app
            .count("SELECT last_seq FROM restaurants WHERE id = $1", rid)
            .await;
        (n == 5).then_some(())
    })
    .await;
    let admin = mint(Role::Admin, vec!["*".into()], |_| {});
    let mut ws = Ws::connect(&us.app.base, &admin).await;
    ws.send(json!({"type": "sync", "restaurant_id": rid})).await;
    ws.until("sync_complete", |w| !w.of_type("sync_complete").is_empty())
        .await;
    let snapshot = ws.of_type("snapshot")[0].clone();
    assert_eq!(snapshot["seq"], 5);
    assert_eq!(snapshot["orders"].as_array().unwrap().len(), 5);
    eu.app.orders(rid, 1).await;
    ws.until("the next event", |w| w.seqs(rid).contains(&6))
        .await;
}

#[tokio::test]
async fn a_restaurant_kept_at_home_leaves_nothing_in_the_other_region() {
    let (eu, us, _links) = two_regions().await;
    let resident = restaurant(&eu, &eu.name, Some(vec![])).await;
    let shared = restaurant(&eu, &eu.name, None).await;
    eu.app.orders(resident, 3).await;
    let (status, _) = eu
        .app
        .post(
            &format!("/v1/restaurants/{resident}/requests"),
            &eu.app.token(Role::Owner, resident),
            json!({"kind": "water", "table": "4"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    // A later write of a replicated restaurant has arrived: replication is
    // in order, so everything committed before it has been considered.
    eu.app.orders(shared, 1).await;
    eventually("the shared restaurant's order in us", DEADLINE, || async {
        let n = us
            .app
            .count(
                "SELECT count(*) FROM events WHERE restaurant_id = $1",
                shared,
            )
            .await;
        (n == 1).then_some(())
    })
    .await;

    for (table, column) in [
        ("restaurants", "id"),
        ("orders", "restaurant_id"),
        ("waiter_requests", "restaurant_id"),
        ("events", "restaurant_id"),
        ("outbox", "restaurant_id"),
    ] {
        let sql = format!("SELECT count(*) FROM {table} WHERE {column} = $1");
        let n: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
            .bind(resident.as_uuid())
            .fetch_one(&us.app.db)
            .await
            .unwrap();
        assert_eq!(n, 0, "{table} of us holds rows of a restaurant kept in eu");
    }
    let items: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM order_items i JOIN orders o ON o.id = i.order_id WHERE o.restaurant_id = $1",
    )
    .bind(resident.as_uuid())
    .fetch_one(&eu.app.db)
    .await
    .unwrap();
    assert_eq!(items, 6, "the resident restaurant's items are at home");
    let ids: Vec<uuid::Uuid> =
        sqlx::query_scalar("SELECT o.id FROM orders o WHERE o.restaurant_id = $1")
            .bind(resident.as_uuid())
            .fetch_all(&eu.app.db)
            .await
            .unwrap();
    let items_in_us: i64 =
        sqlx::query_scalar("SELECT count(*) FROM order_items WHERE order_id = ANY($1)")
            .bind(&ids)
            .fetch_one(&us.app.db)
            .await
            .unwrap();
    assert_eq!(
        items_in_us, 0,
        "order_items of us hold a resident restaurant's items"
    );

    let mut redis = redis::Client::open(us.redis.url())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg("*")
        .query_async(&mut redis)
        .await
        .unwrap();
    assert!(
        keys.iter().any(|k| k.contains(&shared.to_string())),
        "the shared restaurant's stream is in us's Redis: {keys:?}"
    );
    assert!(
        !keys.iter().any(|k| k.contains(&resident.to_string())),
        "us's Redis holds a key of a restaurant kept in eu: {keys:?}"
    );
}

#[tokio::test]
async fn a_restaurant_id_taken_in_both_regions_during_a_partition_does_not_stop_replication() {
    let (eu, us, links) = two_regions().await;
    links.cut();
    let id = RestaurantId::new();
    for (cell, n) in [(&eu, 2), (&us, 3)] {
        let (status, body) = cell
            .app
            .post(
                "/v1/restaurants",
                &cell.app.platform_admin(),
                json!({"id": id, "name": "Twin", "region": cell.name}),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        cell.app.orders(id, n).await;
    }
    links.heal();
    let _guard = LogsOnPanic(&eu._pg, &us._pg);

    // Replication carries on both ways past the conflicting rows.
    for (from, to) in [(&eu, &us), (&us, &eu)] {
        let later = restaurant(from, &from.name, None).await;
        from.app.orders(later, 1).await;
        eventually(
            "a later write to cross the healed link",
            DEADLINE,
            || async {
                let n = to
                    .app
                    .count(
                        "SELECT count(*) FROM events WHERE restaurant_id = $1",
                        later,
                    )
                    .await;
                (n == 1).then_some(())
            },
        )
        .await;
    }
    // Each region kept its own restaurant of that id, untouched.
    for (cell, n) in [(&eu, 2), (&us, 3)] {
        let home: Option<String> =
            sqlx::query_scalar("SELECT region FROM restaurants WHERE id = $1")
                .bind(id.as_uuid())
                .fetch_one(&cell.app.db)
                .await
                .unwrap();
        assert_eq!(home.as_deref(), Some(cell.name.as_str()));
        assert_eq!(
            cell.app
                .count("SELECT last_seq FROM restaurants WHERE id = $1", id)
                .await,
            n
        );
        assert_eq!(
            cell.app
                .count("SELECT count(*) FROM events WHERE restaurant_id = $1", id)
                .await,
            n
        );
    }
}

struct LogsOnPanic<'a>(&'a PostgresServer, &'a PostgresServer);
impl Drop for LogsOnPanic<'_> {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("eu:\n{}\nus:\n{}", self.0.log_tail(40), self.1.log_tail(40));
        }
    }
}

#[tokio::test]
async fn replicated_events_reach_redis_again_after_it_restarts() {
    let (eu, mut us, _links) = two_regions().await;
    let rid = restaurant(&eu, &eu.name, None).await;
    arrived(&us, rid).await;
    eu.app.orders(rid, 1).await;
    eventually("seq 1 in us's Redis", DEADLINE, || async {
        (entry_ids(&us, rid).await == ["1-0"]).then_some(())
    })
    .await;

    us.redis.stop();
    eu.app.orders(rid, 2).await;
    us.redis.start().await;

    // The sweeper's grace is a minute here: only the relay can bring them.
    eventually("seqs 2 and 3 in us's restarted Redis", DEADLINE, || async {
        (entry_ids(&us, rid).await == ["2-0", "3-0"]).then_some(())
    })
    .await;
}
