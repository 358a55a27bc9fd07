//! PostgreSQL and Redis that accept only TLS, with certificates of a private
//! CA: the whole path works over them, and a server whose certificate
//! that CA did not sign is refused.

use std::time::Duration;

use ordercast_bus::{RedisSettings, Streams};
use ordercast_core::Role;
use ordercast_store::{DbSettings, Store};
use ordercast_testkit::{PostgresServer, RedisServer, TlsFiles, eventually, fresh_database_on};
use sqlx::{Connection, PgConnection};

use crate::clients::{Resume, Sse};
use crate::common::{Backends, TestApp};

#[tokio::test]
async fn over_tls_only_orders_are_written_published_delivered_and_receipted() {
    let tls = TlsFiles::generate();
    let postgres = PostgresServer::spawn_tls(&tls).await;
    let redis = RedisServer::spawn_tls(&tls).await;
    let backends = Backends {
        database_url: fresh_database_on(&postgres.admin_url()).await,
        ..Backends::with_redis(&redis).await
    };
    let app = TestApp::spawn_on(backends).await;
    let rid = app.create_restaurant().await;
    let token = app.token(Role::Kitchen, rid);
    let mut kitchen = Sse::connect(&app.base, rid, &token, Resume::default()).await;

    app.orders(rid, 2).await;
    kitchen.until_count(2).await;
    assert_eq!(kitchen.seqs(), [1, 2]);
    // Through Redis, not around it: the stream holds both, and the edge
    // reads it without falling back to polling PostgreSQL.
    assert_eq!(app.stream(rid).await.len(), 2);
    assert!(app.metric("ordercast_shard_readers").await >= 1.0);
    assert_eq!(app.metric("ordercast_degraded_shards").await, 0.0);
    // The receipts went edge → Redis → api → PostgreSQL.
    eventually(
        "the kitchen's delivery mark",
        Duration::from_secs(10),
        || async {
            let mark: Option<i64> = sqlx::query_scalar(
                "SELECT seq FROM delivery_marks WHERE restaurant_id = $1 AND role = 'kitchen'",
            )
            .bind(rid.as_uuid())
            .fetch_optional(&app.db)
            .await
            .unwrap();
            (mark == Some(2)).then_some(())
        },
    )
    .await;

    // Every connection to the database is encrypted, as the server insists.
    let plain: Vec<bool> = sqlx::query_scalar(
        "SELECT s.ssl FROM pg_stat_ssl s JOIN pg_stat_activity a USING (pid)
         WHERE a.datname = current_database() AND NOT s.ssl",
    )
    .fetch_all(&app.db)
    .await
    .unwrap();
    assert!(plain.is_empty(), "{} plaintext connections", plain.len());
    let without_tls = postgres
        .admin_url()
        .replace("sslmode=verify-full", "sslmode=disable");
    assert!(PgConnection::connect(&without_tls).await.is_err());
    app.stop().await;
}

#[tokio::test]
async fn a_server_whose_certificate_another_ca_signed_is_refused() {
    let trusted = TlsFiles::generate();
    let impostor = TlsFiles::generate();
    let postgres = PostgresServer::spawn_tls(&impostor).await;
    let redis = RedisServer::spawn_tls(&impostor).await;

    let streams = |ca: &TlsFiles| {
        Streams::new(&RedisSettings {
            url: redis.url(),
            cluster: false,
            prefix: ordercast_testkit::unique_prefix(),
            stream_maxlen: 10_000,
            pool_size: 1,
            ca_pem: Some(ca.ca_pem().to_vec()),
            timeout: RedisSettings::DEFAULT_TIMEOUT,
        })
        .unwrap()
    };
    assert!(
        streams(&trusted).conn().await.is_err(),
        "Redis with an untrusted certificate"
    );
    assert!(
        streams(&impostor).conn().await.is_ok(),
        "Redis with its own CA trusted"
    );

    let database = |ca: &TlsFiles| {
        let url = postgres.admin_url().replace(
            &impostor.ca_file().display().to_string(),
            &ca.ca_file().display().to_string(),
        );
        let mut settings = DbSettings::from_url(&url).unwrap();
        settings.acquire_timeout = Duration::from_secs(2);
        Store::connect_lazy(&settings)
    };
    assert!(
        database(&trusted).ping().await.is_err(),
        "PostgreSQL with an untrusted certificate"
    );
    assert!(
        database(&impostor).ping().await.is_ok(),
        "PostgreSQL with its own CA trusted"
    );
}
