//! Real servers for integration tests. `make test` starts one shared
//! PostgreSQL and Redis and exports their URLs; each test gets its own
//! database and key prefix. Tests that kill a server spawn their own.
//! [`Link`] puts a delay or a partition between a test and a server.

mod freeze;
mod link;
mod servers;
mod tls;

use std::future::Future;
use std::time::{Duration, Instant};

use sqlx::{Connection, Executor, PgConnection};

pub use link::{Link, LinkState};
pub use servers::{PostgresServer, RedisCluster, RedisServer};
pub use tls::TlsFiles;

/// A variable `make test` exports; a clear message when run otherwise.
pub fn env(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| {
        panic!("{name} is not set: run the tests through `make test`, which starts PostgreSQL and Redis")
    })
}

/// The shared test Redis.
pub fn redis_url() -> String {
    env("ORDERCAST_TEST_REDIS_URL")
}

/// A key prefix no other test uses.
pub fn unique_prefix() -> String {
    format!("t{}", uuid::Uuid::new_v4().simple())
}

/// A new, migrated database on the server behind `admin_url` (a URL of an
/// existing database, usually `postgres`); returns its URL, with the same
/// query (TLS settings, say).
pub async fn fresh_database_on(admin_url: &str) -> String {
    let url = empty_database_on(admin_url).await;
    let mut conn = PgConnection::connect(&url)
        .await
        .expect("connect to the new database");
    ordercast_store::MIGRATOR
        .run(&mut conn)
        .await
        .expect("migrate the test database");
    url
}

/// A new database with no tables on the server behind `admin_url`, for
/// tests that apply migrations themselves; returns its URL.
pub async fn empty_database_on(admin_url: &str) -> String {
    let name = format!("oc_test_{}", uuid::Uuid::new_v4().simple());
    let mut admin = PgConnection::connect(admin_url)
        .await
        .expect("connect to the test PostgreSQL");
    admin
        .execute(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .await
        .expect("create test database");
    let (path, query) = admin_url
        .split_once('?')
        .map_or((admin_url, ""), |(path, query)| (path, query));
    match (path.rsplit_once('/'), query) {
        (Some((base, _)), "") => format!("{base}/{name}"),
        (Some((base, _)), query) => format!("{base}/{name}?{query}"),
        (None, _) => panic!("database URL without a path: {admin_url}"),
    }
}

/// A new, migrated database on the shared test PostgreSQL.
pub async fn fresh_database() -> String {
    fresh_database_on(&env("ORDERCAST_TEST_DATABASE_URL")).await
}

/// A new database with no tables on the shared test PostgreSQL.
pub async fn empty_database() -> String {
    empty_database_on(&env("ORDERCAST_TEST_DATABASE_URL")).await
}

/// Polls `check` until it yields a value or `timeout` passes, then panics
/// naming `what`. This is how tests wait: on a condition, never a sleep.
pub async fn eventually<T, F, Fut>(what: &str, timeout: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Ports for the tests' own servers. They lie below the kernel's ephemeral
/// range (32768 and up by default), so a port cannot become the source port
/// of some outgoing connection between being picked here and being bound by
/// the server. A Redis Cluster node also binds `port + 10000` for its bus,
/// which stays below that range too; `make test`'s shared PostgreSQL and
/// Redis take ports from 30000 up.
const PORTS: std::ops::Range<u16> = 10_000..20_000;

/// A TCP port on 127.0.0.1 nothing is bound to right now.
pub fn free_port() -> u16 {
    free_port_where(|_| true)
}

/// A free port for which `also` holds too.
pub(crate) fn free_port_where(also: impl Fn(u16) -> bool) -> u16 {
    for _ in 0..10_000 {
        let offset = uuid::Uuid::new_v4().as_u128() % u128::from(PORTS.end - PORTS.start);
        let port = PORTS.start + offset as u16;
        if bindable(port) && also(port) {
            return port;
        }
    }
    panic!("no free port in {PORTS:?}")
}

/// Nothing is bound to `port` on 127.0.0.1.
pub(crate) fn bindable(port: u16) -> bool {
    std::net::TcpListener::bind(("127.0.0.1", port)).is_ok()
}
