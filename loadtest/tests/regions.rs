//! The load tester's regions mode against two real regions on one machine:
//! each its own PostgreSQL (logical replication), Redis and `ordercast
//! all`, every link between them (replication both ways, forwarded writes
//! both ways) through a delaying proxy that the run's chaos cuts and heals.
//! Remote screens, the chain admins and the writes forwarded (and retried
//! through the partition) must all come out exactly right.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use clap::Parser;
use ordercast::app::Role as ServerRole;
use ordercast::config::{Cli, Command, serve_settings};
use ordercast_loadtest::report::summary;
use ordercast_loadtest::run::run;
use ordercast_loadtest::scenario::Scenario;
use ordercast_store::Store;
use ordercast_testkit::{Link, PostgresServer, RedisServer, free_port};
use tokio::sync::oneshot;

const SECRET: &str = "loadtest-regions-secret-0123456789-abcdefgh";
const DELAY: Duration = Duration::from_millis(20);

fn addr(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

fn port_of(url: &str) -> u16 {
    url.rsplit_once(':')
        .and_then(|(_, rest)| rest.split('/').next())
        .and_then(|p| p.parse().ok())
        .expect("a port in the URL")
}

/// A region: its servers and its `ordercast all`.
struct Cell {
    base: String,
    _stop: oneshot::Sender<()>,
    _pg: PostgresServer,
    _redis: RedisServer,
}

/// Applies migrations and connects `region` to its peer (twice round,
/// the caller's job: a subscription waits for its peer's publication).
async fn migrate(db: &str, region: &str, peers: &str) {
    let cli = Cli::try_parse_from([
        "ordercast",
        "migrate",
        &format!("--database-url={db}"),
        &format!("--region={region}"),
        &format!("--peers={peers}"),
    ])
    .expect("valid flags");
    let Command::Migrate(args) = cli.command else {
        unreachable!("parsed `migrate`")
    };
    let store = Store::connect_lazy(&args.db.settings().expect("settings"));
    ordercast::migrate(
        &store,
        &args.regions.region,
        &args.regions.databases().expect("peers"),
    )
    .await
    .expect("migrate");
}

async fn serve(
    db: &str,
    redis: &RedisServer,
    port: u16,
    region: &str,
    peers: &str,
) -> (String, oneshot::Sender<()>) {
    let cli = Cli::try_parse_from([
        "ordercast",
        "all",
        &format!("--listen=127.0.0.1:{port}"),
        "--admin-listen=127.0.0.1:0",
        &format!("--database-url={db}"),
        &format!("--redis-url={}", redis.url()),
        &format!("--redis-prefix={}", ordercast_testkit::unique_prefix()),
        &format!("--jwt-secret={SECRET}"),
        &format!("--region={region}"),
        &format!("--peers={peers}"),
        "--forward-timeout=2s",
        "--region-stale-after=1500ms",
    ])
    .expect("valid flags");
    let Command::All(args) = cli.command else {
        unreachable!("parsed `all`")
    };
    let settings = serve_settings(&args, ServerRole::All).expect("settings");
    let app = ordercast::App::build(settings)
        .await
        .expect("build the app");
    let (stop, stopped) = oneshot::channel::<()>();
    tokio::spawn(app.run(async move {
        let _ = stopped.await;
    }));
    (format!("http://127.0.0.1:{port}"), stop)
}

/// Regions `eu` and `us`, replicating both ways, and the four links
/// between them.
async fn two_regions() -> (Cell, Cell, Vec<Link>) {
    let (pg_eu, pg_us) = (
        PostgresServer::spawn_logical().await,
        PostgresServer::spawn_logical().await,
    );
    let (redis_eu, redis_us) = (RedisServer::spawn().await, RedisServer::spawn().await);
    let db_eu = ordercast_testkit::fresh_database_on(&pg_eu.admin_url()).await;
    let db_us = ordercast_testkit::fresh_database_on(&pg_us.admin_url()).await;
    let (port_eu, port_us) = (free_port(), free_port());
    let link = |port: u16| async move {
        Link::start(addr(0), addr(port), DELAY)
            .await
            .expect("start a link")
    };
    let pg_eu_to_us = link(port_of(&db_eu)).await;
    let pg_us_to_eu = link(port_of(&db_us)).await;
    let api_eu_to_us = link(port_us).await;
    let api_us_to_eu = link(port_eu).await;
    let peer = |name: &str, api: &Link, pg: &Link, db: &str| {
        let db_name = db.rsplit('/').next().unwrap();
        format!(
            r#"[{{"region":"{name}","api":"http://{}","database":"postgres://postgres@127.0.0.1:{}/{db_name}"}}]"#,
            api.addr(),
            pg.addr().port()
        )
    };
    let peers_of_eu = peer("us", &api_eu_to_us, &pg_us_to_eu, &db_us);
    let peers_of_us = peer("eu", &api_us_to_eu, &pg_eu_to_us, &db_eu);
    for _ in 0..2 {
        migrate(&db_eu, "eu", &peers_of_eu).await;
        migrate(&db_us, "us", &peers_of_us).await;
    }
    let (base_eu, stop_eu) = serve(&db_eu, &redis_eu, port_eu, "eu", &peers_of_eu).await;
    let (base_us, stop_us) = serve(&db_us, &redis_us, port_us, "us", &peers_of_us).await;
    (
        Cell {
            base: base_eu,
            _stop: stop_eu,
            _pg: pg_eu,
            _redis: redis_eu,
        },
        Cell {
            base: base_us,
            _stop: stop_us,
            _pg: pg_us,
            _redis: redis_us,
        },
        vec![pg_eu_to_us, pg_us_to_eu, api_eu_to_us, api_us_to_eu],
    )
}

/// A control endpoint for the run's chaos commands: `POST /cut` cuts every
/// link between the regions, `POST /heal` heals them.
async fn link_control(links: Vec<Link>) -> String {
    let links = Arc::new(links);
    let app = axum::Router::new()
        .route(
            "/cut",
            axum::routing::post({
                let links = links.clone();
                move || async move { links.iter().for_each(Link::cut) }
            }),
        )
        .route(
            "/heal",
            axum::routing::post(move || async move { links.iter().for_each(Link::heal) }),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    url
}

#[derive(Parser)]
struct Flags {
    #[command(flatten)]
    scenario: Scenario,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_two_region_run_through_a_partition_passes_with_zero_violations() {
    let (eu, us, links) = two_regions().await;
    let control = link_control(links).await;
    let s = Flags::parse_from([
        "loadtest".to_owned(),
        format!("--region=eu={}@{}", eu.base, eu.base),
        format!("--region=us={}@{}", us.base, us.base),
        format!("--jwt-secret={SECRET}"),
        "--quiet".into(),
        "--restaurants=4".into(),
        "--kitchens=1".into(),
        "--owners=1".into(),
        "--waiters=1".into(),
        "--customers=2".into(),
        "--sessions=3".into(),
        "--waiter-ids=2".into(),
        "--transports=sse=1,ws=1,poll=1".into(),
        "--remote-share=0.5".into(),
        "--forward-share=0.5".into(),
        "--rate=6".into(),
        "--step-delay=20ms..80ms".into(),
        "--notification-rate=2".into(),
        "--warmup=1s".into(),
        "--duration=8s".into(),
        "--settle=30s".into(),
        format!("--exec=2s=curl -fsS -X POST {control}/cut"),
        format!("--exec=5s=curl -fsS -X POST {control}/heal"),
    ])
    .scenario;
    let report = run(s).await.expect("the run happens");
    let text = summary(&report);
    assert!(report.passed, "{text}");
    assert_eq!(report.verification.violations.total(), 0, "{text}");
    assert!(
        report.verification.expected > 300,
        "too little was checked: {text}"
    );
    assert!(
        report.chaos.iter().all(|c| c.exit == Some(0)),
        "the partition happened: {:?}",
        report.chaos
    );
    assert_eq!(report.writes_lost + report.writes_refused, 0, "{text}");
    let g = report.regions.as_ref().expect("a regions section");
    assert_eq!(g.regions.len(), 2);
    assert!(
        g.writes_forwarded > 0,
        "writes went through the other region: {text}"
    );
    assert!(
        g.forwarded_retries > 0,
        "forwarded writes were retried through the partition: {text}"
    );
    for region in &g.regions {
        assert_eq!(region.restaurants_homed, 2, "{text}");
        assert_eq!(region.chain_admins, 1, "{text}");
        assert!(
            region.screens_remote > 0 && region.screens_local > 0,
            "{text}"
        );
        assert!(
            region.commit_to_read.local.count > 0 && region.commit_to_read.remote.count > 0,
            "{text}"
        );
    }
    // Screens: 4 restaurants × 5, and one chain admin per region.
    assert_eq!(report.connections.screens, 22, "{text}");
    // The partition outlasted `--region-stale-after`: screens of the other
    // region's restaurants were told (and every remote subscription starts
    // with `stale` or `live`); local ones never.
    assert!(g.stale_signals > 0 && g.live_signals > 0, "{text}");
    assert_eq!(g.signals_for_local, 0, "{text}");
}
