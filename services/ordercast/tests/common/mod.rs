//! `TestApp`: the real service on port 0 with its own database and key
//! prefix, and a client with one method per thing a test needs.
#![allow(dead_code, unreachable_pub)]

pub mod process;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use ordercast::admin::AdminToken;
use ordercast::app::{ConnectionSettings, Role as ServerRole};
use ordercast::{App, Settings};
use ordercast_api::ApiSettings;
use ordercast_bus::{Keys, RedisSettings, Streams};
use ordercast_core::auth::{Claims, TokenIssuer, TokenVerifier};
use ordercast_core::{RestaurantId, Role};
use ordercast_edge::EdgeSettings;
use ordercast_http::cors::CorsOrigins;
use ordercast_http::{AdmissionLimits, ServerSettings};
use ordercast_store::DbSettings;
use reqwest::StatusCode;
use serde_json::{Value, json};
use sqlx::PgPool;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

pub const SECRET: &str = "integration-test-secret-at-least-32-bytes";
/// The admin token of every test process (`/debug/*`).
pub const ADMIN_TOKEN: &str = "integration-test-admin-token";

/// Where the service under test keeps its data.
pub struct Backends {
    pub database_url: String,
    pub redis_url: String,
    /// `redis_url` names the nodes of a Redis Cluster.
    pub redis_cluster: bool,
    /// The CA to trust for a `rediss://` URL.
    pub redis_ca: Option<Vec<u8>>,
    pub prefix: String,
}

impl Backends {
    /// A fresh database and key prefix on the shared test servers.
    pub async fn fresh() -> Backends {
        Backends {
            database_url: ordercast_testkit::fresh_database().await,
            redis_url: ordercast_testkit::redis_url(),
            redis_cluster: false,
            redis_ca: None,
            prefix: ordercast_testkit::unique_prefix(),
        }
    }

    /// A fresh database and key prefix, on a Redis Cluster of the test's own.
    pub async fn with_redis_cluster(cluster: &ordercast_testkit::RedisCluster) -> Backends {
        Backends {
            redis_url: cluster.url(),
            redis_cluster: true,
            ..Backends::fresh().await
        }
    }

    /// A fresh database and key prefix, on a Redis of the test's own (one
    /// it can stop, restart or flush).
    pub async fn with_redis(redis: &ordercast_testkit::RedisServer) -> Backends {
        Backends {
            redis_url: redis.url(),
            redis_ca: redis.ca_pem(),
            ..Backends::fresh().await
        }
    }
}

pub struct TestApp {
    pub base: String,
    pub admin: String,
    pub client: reqwest::Client,
    pub db: PgPool,
    pub redis_url: String,
    pub redis_cluster: bool,
    pub redis_ca: Option<Vec<u8>>,
    pub keys: Keys,
    pub database_url: String,
    backends_prefix: String,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<anyhow::Result<()>>>,
}

/// Fast sweeper settings so outage tests finish quickly.
pub fn quick_api_settings() -> ApiSettings {
    let mut api = ApiSettings::default();
    api.outbox.interval = Duration::from_millis(100);
    api.outbox.min_age = Duration::from_millis(500);
    api
}

impl TestApp {
    pub async fn spawn() -> TestApp {
        Self::spawn_on(Backends::fresh().await).await
    }

    pub async fn spawn_on(backends: Backends) -> TestApp {
        Self::spawn_with(backends, ServerRole::All, |_| {}).await
    }

    /// A process of the given role on `backends`, with `edit` applied to
    /// its settings.
    pub async fn spawn_with(
        backends: Backends,
        role: ServerRole,
        edit: impl FnOnce(&mut Settings),
    ) -> TestApp {
        let mut db = DbSettings::from_url(&backends.database_url).unwrap();
        db.acquire_timeout = Duration::from_secs(1);
        let mut settings = Settings {
            role,
            listen: "127.0.0.1:0".parse().unwrap(),
            admin_listen: "127.0.0.1:0".parse().unwrap(),
            db,
            redis: RedisSettings {
                url: backends.redis_url.clone(),
                cluster: backends.redis_cluster,
                prefix: backends.prefix.clone(),
                stream_maxlen: RedisSettings::DEFAULT_STREAM_MAXLEN,
                pool_size: 8,
                ca_pem: backends.redis_ca.clone(),
                timeout: RedisSettings::DEFAULT_TIMEOUT,
            },
            verifier: TokenVerifier::hs256(SECRET.as_bytes(), None, "ordercast").unwrap(),
            api: quick_api_settings(),
            edge: EdgeSettings {
                degraded_poll_interval: Duration::from_millis(100),
                drain_window: Duration::from_millis(500),
                ..EdgeSettings::default()
            },
            server: ServerSettings::DEFAULT,
            connections: ConnectionSettings {
                listen_backlog: ConnectionSettings::DEFAULT_BACKLOG,
                public: AdmissionLimits {
                    pending: 1_000,
                    per_address: None,
                },
                admin: AdmissionLimits {
                    pending: ConnectionSettings::DEFAULT_ADMIN_CONNECTIONS,
                    per_address: None,
                },
            },
            admin_token: Some(AdminToken::new(ADMIN_TOKEN)),
            shutdown_grace: Duration::from_secs(5),
            cors: CorsOrigins::NONE,
        };
        edit(&mut settings);
        let app = App::build(settings).await.expect("build the app");
        let base = format!("http://127.0.0.1:{}", app.port());
        let admin = format!("http://127.0.0.1:{}", app.admin_port());
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(app.run(async move {
            let _ = stopped.await;
        }));
        let db = sqlx::postgres::PgPoolOptions::new()
            .max_connections(4)
            .acquire_timeout(Duration::from_secs(2))
            .connect(&backends.database_url)
            .await
            .unwrap();
        TestApp {
            backends_prefix: backends.prefix.clone(),
            base,
            admin,
            client: reqwest::Client::new(),
            db,
            redis_url: backends.redis_url,
            redis_cluster: backends.redis_cluster,
            redis_ca: backends.redis_ca,
            keys: Keys::new(backends.prefix),
            database_url: backends.database_url.clone(),
            stop: Some(stop),
            task: Some(task),
        }
    }

    /// The backends this process uses, for starting more processes on them.
    pub fn backends(&self) -> Backends {
        Backends {
            database_url: self.database_url.clone(),
            redis_url: self.redis_url.clone(),
            redis_cluster: self.redis_cluster,
            redis_ca: self.redis_ca.clone(),
            prefix: self.backends_prefix.clone(),
        }
    }

    /// The metric's value (first series whose line starts with `name`).
    pub async fn metric(&self, name: &str) -> f64 {
        self.series(name).await.unwrap_or(0.0)
    }

    /// The value of series `name` (with its labels, in name order), or
    /// `None` when the process does not export it.
    pub async fn series(&self, name: &str) -> Option<f64> {
        let text = self
            .client
            .get(format!("{}/metrics", self.admin))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        text.lines()
            .find_map(|l| l.strip_prefix(name).and_then(|v| v.trim().parse().ok()))
    }

    /// Graceful stop; returns once background tasks have flushed.
    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            task.await.unwrap().unwrap();
        }
    }

    pub fn token(&self, role: Role, restaurant: RestaurantId) -> String {
        mint(role, vec![restaurant.to_string()], |_| {})
    }

    pub fn token_with(
        &self,
        role: Role,
        restaurant: RestaurantId,
        edit: impl FnOnce(&mut Claims),
    ) -> String {
        mint(role, vec![restaurant.to_string()], edit)
    }

    pub fn platform_admin(&self) -> String {
        mint(Role::Admin, vec!["*".into()], |_| {})
    }

    pub async fn create_restaurant(&self) -> RestaurantId {
        let (status, body) = self
            .post(
                "/v1/restaurants",
                &self.platform_admin(),
                json!({"name": "Test Bistro"}),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        body["id"].as_str().unwrap().parse().unwrap()
    }

    pub async fn post(&self, path: &str, token: &str, body: Value) -> (StatusCode, Value) {
        let response = self
            .client
            .post(format!("{}{path}", self.base))
            .bearer_auth(token)
            .json(&body)
            .send()
            .await
            .unwrap();
        read(response).await
    }

    pub async fn get(&self, path: &str, token: &str) -> (StatusCode, Value) {
        let response = self
            .client
            .get(format!("{}{path}", self.base))
            .bearer_auth(token)
            .send()
            .await
            .unwrap();
        read(response).await
    }

    /// A GET on the admin port, with the admin token.
    pub async fn get_admin(&self, path: &str) -> (StatusCode, Value) {
        self.get_admin_as(path, Some(ADMIN_TOKEN)).await
    }

    /// A GET on the admin port with `token`, or none.
    pub async fn get_admin_as(&self, path: &str, token: Option<&str>) -> (StatusCode, Value) {
        let mut request = self.client.get(format!("{}{path}", self.admin));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        read(request.send().await.unwrap()).await
    }

    pub async fn create_order(
        &self,
        rid: RestaurantId,
        token: &str,
        body: Value,
    ) -> (StatusCode, Value) {
        self.post(&format!("/v1/restaurants/{rid}/orders"), token, body)
            .await
    }

    /// Creates a one-item order as the owner; returns the response body.
    pub async fn order(&self, rid: RestaurantId) -> Value {
        let (status, body) = self
            .create_order(rid, &self.token(Role::Owner, rid), simple_order())
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        body
    }

    /// Creates `n` one-item orders, one after the other.
    pub async fn orders(&self, rid: RestaurantId, n: usize) {
        for _ in 0..n {
            self.order(rid).await;
        }
    }

    pub async fn set_status(
        &self,
        rid: RestaurantId,
        order: &str,
        status: &str,
    ) -> (StatusCode, Value) {
        let path = format!("/v1/restaurants/{rid}/orders/{order}/status");
        self.post(
            &path,
            &self.token(Role::Owner, rid),
            json!({"status": status}),
        )
        .await
    }

    /// The restaurant's stream: (entry id, envelope) in stream order.
    pub async fn stream(&self, rid: RestaurantId) -> Vec<(String, Value)> {
        let streams = Streams::new(&RedisSettings {
            url: self.redis_url.clone(),
            cluster: self.redis_cluster,
            prefix: self.keys.prefix().to_owned(),
            stream_maxlen: RedisSettings::DEFAULT_STREAM_MAXLEN,
            pool_size: 1,
            ca_pem: self.redis_ca.clone(),
            timeout: RedisSettings::DEFAULT_TIMEOUT,
        })
        .unwrap();
        let mut conn = streams.conn().await.unwrap();
        let entries: Vec<(String, Vec<(String, String)>)> = redis::cmd("XRANGE")
            .arg(self.keys.stream(rid))
            .arg("-")
            .arg("+")
            .query_async(&mut conn)
            .await
            .unwrap();
        entries
            .into_iter()
            .map(|(id, fields)| {
                let (_, json) = fields
                    .into_iter()
                    .find(|(k, _)| k == "event")
                    .expect("event field");
                (id, serde_json::from_str(&json).unwrap())
            })
            .collect()
    }

    /// The restaurant's events as stored, in seq order, as envelopes.
    pub async fn stored_events(&self, rid: RestaurantId) -> Vec<Value> {
        let store = ordercast_store::Store::from_pool(self.db.clone());
        store
            .events_after(rid, ordercast_core::Seq::ZERO, 100_000)
            .await
            .unwrap()
            .into_iter()
            .map(|e| serde_json::to_value(e).unwrap())
            .collect()
    }

    pub async fn count(&self, sql: &'static str, rid: RestaurantId) -> i64 {
        sqlx::query_scalar(sql)
            .bind(rid.as_uuid())
            .fetch_one(&self.db)
            .await
            .unwrap()
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

async fn read(response: reqwest::Response) -> (StatusCode, Value) {
    let status = response.status();
    let bytes = response.bytes().await.unwrap();
    let body = if bytes.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&bytes).unwrap_or(Value::Null)
    };
    (status, body)
}

pub fn mint(role: Role, restaurants: Vec<String>, edit: impl FnOnce(&mut Claims)) -> String {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let mut claims = Claims {
        sub: format!("test-{}", role.as_str()),
        role,
        restaurants,
        chain_id: None,
        waiter_id: None,
        session_id: None,
        exp: now + 600,
        iat: Some(now),
        iss: None,
        aud: Some("ordercast".into()),
    };
    edit(&mut claims);
    TokenIssuer::hs256(SECRET.as_bytes()).unwrap().mint(&claims)
}

pub fn simple_order() -> Value {
    json!({
        "channel": "pos",
        "table": "7",
        "items": [
            {"sku": "burger", "name": "Burger", "quantity": 2, "unit_price_cents": 1250, "station": "grill"},
            {"sku": "cola", "name": "Cola", "quantity": 1, "unit_price_cents": 300, "station": "bar"}
        ]
    })
}

/// Seqs of a list of envelopes.
pub fn seqs(events: &[Value]) -> Vec<u64> {
    events.iter().map(|e| e["seq"].as_u64().unwrap()).collect()
}
