//! What an SRE's dashboard reads from the admin port's `/metrics`.

use std::time::Duration;

use ordercast_edge::EdgeSettings;
use ordercast_store::DbSettings;
use ordercast_testkit::{RedisServer, eventually};

use crate::common::{Backends, TestApp};

#[tokio::test]
async fn a_fresh_process_reports_its_build_memory_files_pool_and_cap() {
    let app = TestApp::spawn().await;
    app.create_restaurant().await;

    let build = concat!(
        r#"ordercast_build_info{region="local",role="all",version=""#,
        env!("CARGO_PKG_VERSION"),
        r#""}"#
    );
    assert_eq!(app.series(build).await, Some(1.0), "{build}");
    let rss = app.metric("process_resident_memory_bytes").await;
    assert!(rss > 1e6, "resident memory {rss}");
    let open = app.metric("process_open_fds").await;
    let max = app.metric("process_max_fds").await;
    assert!(open > 0.0 && max > open, "open files {open} of {max}");
    assert!(app.series("process_cpu_seconds_total").await.is_some());

    let pool_max = app.metric("ordercast_db_pool_max_connections").await;
    assert_eq!(pool_max, f64::from(DbSettings::DEFAULT_MAX_CONNECTIONS));
    let idle = app
        .series(r#"ordercast_db_pool_connections{state="idle"}"#)
        .await;
    let in_use = app
        .series(r#"ordercast_db_pool_connections{state="in_use"}"#)
        .await;
    let (Some(idle), Some(in_use)) = (idle, in_use) else {
        panic!("pool series missing: idle {idle:?}, in use {in_use:?}");
    };
    // The scrape's own probe has just used (and returned) a connection.
    assert!(
        idle + in_use >= 1.0 && idle + in_use <= pool_max,
        "{idle} idle, {in_use} in use"
    );

    let cap = EdgeSettings::default().max_connections as f64;
    assert_eq!(app.series("ordercast_max_connections ").await, Some(cap));
}

/// Whether PostgreSQL and Redis answer is one series each, as `/readyz`
/// sees it at the scrape: Redis stopped is 0 while PostgreSQL stays 1, and
/// 1 again once Redis is back.
#[tokio::test]
async fn dependency_up_follows_redis_going_down_and_coming_back() {
    let mut redis = RedisServer::spawn().await;
    let app = TestApp::spawn_on(Backends::with_redis(&redis).await).await;
    let up = |dependency: &str| format!(r#"ordercast_dependency_up{{dependency="{dependency}"}}"#);
    assert_eq!(app.series(&up("postgres")).await, Some(1.0));
    assert_eq!(app.series(&up("redis")).await, Some(1.0));

    redis.stop();
    assert_eq!(app.series(&up("redis")).await, Some(0.0));
    assert_eq!(app.series(&up("postgres")).await, Some(1.0));

    redis.start().await;
    eventually("Redis to answer again", Duration::from_secs(20), || async {
        (app.series(&up("redis")).await == Some(1.0)).then_some(())
    })
    .await;
}

/// Before any traffic, every labelled series a dashboard or alert reads is
/// there at 0: a panel shows 0, not "no data", and `rate()` of a counter's
/// first event is not lost.
#[tokio::test]
async fn a_fresh_process_exports_every_labelled_series_at_zero() {
    let app = TestApp::spawn().await;
    let series = [
        r#"ordercast_slow_consumer_actions_total{action="caught_up"}"#,
        r#"ordercast_slow_consumer_actions_total{action="disconnected"}"#,
        r#"ordercast_streams_refused_total{reason="process"}"#,
        r#"ordercast_streams_refused_total{reason="principal"}"#,
        r#"ordercast_connections_refused_total{port="public",reason="pending"}"#,
        r#"ordercast_connections_refused_total{port="public",reason="address"}"#,
        r#"ordercast_connections_refused_total{port="admin",reason="pending"}"#,
        "ordercast_rate_limited_total",
        r#"ordercast_connections{transport="sse"}"#,
        r#"ordercast_connections{transport="websocket"}"#,
        r#"ordercast_connections{transport="long_poll"}"#,
        r#"ordercast_connects_total{transport="websocket"}"#,
        r#"ordercast_deliveries_total{transport="long_poll"}"#,
        r#"ordercast_delivery_latency_seconds_count{kind="live",transport="websocket"}"#,
        r#"ordercast_delivery_latency_seconds_count{kind="catchup",transport="sse"}"#,
        r#"ordercast_disconnects_total{reason="draining",transport="sse"}"#,
        r#"ordercast_disconnects_total{reason="slow_consumer",transport="websocket"}"#,
        r#"ordercast_disconnects_total{reason="answered",transport="long_poll"}"#,
        r#"ordercast_catchup_events_total{source="postgres"}"#,
        r#"ordercast_delivery_receipts_total{outcome="failed"}"#,
        r#"ordercast_postgres_errors_total{kind="unavailable"}"#,
        r#"ordercast_postgres_errors_total{kind="other"}"#,
        r#"ordercast_redis_errors_total{op="xadd"}"#,
        r#"ordercast_events_published_total{type="order.created"}"#,
        r#"ordercast_events_published_total{type="x.*"}"#,
        r#"ordercast_invalidations_total{stage="accepted"}"#,
        r#"ordercast_retention_deleted_total{table="events"}"#,
    ];
    let mut wrong = Vec::new();
    for name in series {
        let value = app.series(name).await;
        if value != Some(0.0) {
            wrong.push(format!("{name} = {value:?}"));
        }
    }
    assert!(wrong.is_empty(), "not at 0 from the start: {wrong:#?}");
}
