//! Command line and environment: every flag is also an `ORDERCAST_*`
//! variable. Read once here; the rest of the program gets typed settings.

use std::fmt;
use std::net::SocketAddr;
use std::num::{NonZeroU32, NonZeroUsize};
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use anyhow::Context;
use clap::{Args, Parser, Subcommand, ValueEnum};
use humantime::Duration as HumanDuration;
use ordercast_api::RegionSettings;
use ordercast_api::ledger::LedgerSettings;
use ordercast_api::retention::RetentionSettings;
use ordercast_api::{WriteBudgets, WriteRate};
use ordercast_bus::RedisSettings;
use ordercast_core::Region;
use ordercast_core::auth::{DEFAULT_AUDIENCE, TokenVerifier};
use ordercast_edge::EdgeSettings;
use ordercast_http::cors::CorsOrigins;
use ordercast_http::{AdmissionLimits, ServerSettings};
use ordercast_store::{DbSettings, PeerDatabase, PgSslMode};

use crate::admin::AdminToken;
use crate::app::ConnectionSettings;
use crate::files::{self, ConnectionBudget, Headroom, Requested};

/// The edge's defaults, which its flags show.
const EDGE: EdgeSettings = EdgeSettings::DEFAULT;

/// Ordercast: real-time order delivery for restaurant chains.
#[derive(Debug, Parser)]
#[command(name = "ordercast", version, about)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
    /// Log format: one JSON object per line, or human-readable.
    #[arg(long, env = "ORDERCAST_LOG_FORMAT", value_enum, default_value_t = LogFormat::Json, global = true)]
    pub log_format: LogFormat,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Json,
    Pretty,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Apply the database migrations, connect this region to its peers
    /// (publications, subscriptions) and exit. Idempotent: run it again
    /// after a peer has migrated, or after changing ORDERCAST_PEERS.
    Migrate(MigrateArgs),
    /// Serve the api role (commands and queries).
    Api(ServeArgs),
    /// Serve the edge role (SSE, WebSocket and long-poll fan-out).
    Edge(ServeArgs),
    /// Serve both roles on one port (the local default).
    All(ServeArgs),
    /// Print a signed JWT (for development and tests).
    Token(TokenArgs),
}

/// A value that must never be printed (passwords, secrets).
#[derive(Clone)]
pub struct Secret(String);

impl Secret {
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

impl FromStr for Secret {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(Secret(s.to_owned()))
    }
}

#[derive(Debug, Args)]
pub struct MigrateArgs {
    #[command(flatten)]
    pub db: DbArgs,
    #[command(flatten)]
    pub regions: RegionArgs,
}

/// This process's region and the deployment's other regions.
#[derive(Debug, Args)]
pub struct RegionArgs {
    /// The region this process and its database belong to (a-z, 0-9, '-').
    #[arg(long, env = "ORDERCAST_REGION", default_value = ordercast_core::region::DEFAULT_REGION)]
    pub region: Region,
    /// The other regions, as JSON: `[{"region":"us-east","api":"http://…",
    /// "database":"postgres://…"}]`. `api`: its api's base URL (writes for
    /// its restaurants are forwarded there); `database`: its PostgreSQL as
    /// this region's PostgreSQL reaches it (used by `migrate`).
    #[arg(long, env = "ORDERCAST_PEERS", hide_env_values = true)]
    pub peers: Option<Secret>,
    /// How long a write forwarded to its home region may take before the
    /// caller gets 503 region-unavailable.
    #[arg(long, env = "ORDERCAST_FORWARD_TIMEOUT", default_value_t = RegionSettings::DEFAULT_TIMEOUT.into())]
    pub forward_timeout: HumanDuration,
    /// A peer whose heartbeat has not arrived for this long is stale: its
    /// restaurants' screens are told so.
    #[arg(long, env = "ORDERCAST_REGION_STALE_AFTER", default_value_t = EDGE.region_stale_after.into())]
    pub region_stale_after: HumanDuration,
}

/// One entry of `ORDERCAST_PEERS`.
#[derive(Clone, Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Peer {
    pub region: Region,
    pub api: Option<String>,
    pub database: Option<String>,
}

impl RegionArgs {
    /// The peers, checked: valid JSON, distinct names, none this region.
    pub fn peers(&self) -> anyhow::Result<Vec<Peer>> {
        let Some(json) = &self.peers else {
            return Ok(vec![]);
        };
        let peers: Vec<Peer> = serde_json::from_str(json.expose())
            .map_err(|e| anyhow::anyhow!("ORDERCAST_PEERS is not a JSON list of peers: {e}"))?;
        let mut seen = std::collections::HashSet::new();
        for peer in &peers {
            anyhow::ensure!(
                peer.region != self.region,
                "ORDERCAST_PEERS lists {}, this process's own region (ORDERCAST_REGION)",
                peer.region
            );
            anyhow::ensure!(
                seen.insert(&peer.region),
                "ORDERCAST_PEERS lists {} twice",
                peer.region
            );
        }
        Ok(peers)
    }

    /// What the api needs: each peer's api URL (required, http://).
    pub fn api_settings(&self) -> anyhow::Result<RegionSettings> {
        let mut peers = vec![];
        for peer in self.peers()? {
            let api = peer.api.with_context(|| {
                format!("ORDERCAST_PEERS: region {} has no \"api\" URL", peer.region)
            })?;
            anyhow::ensure!(
                api.starts_with("http://"),
                "ORDERCAST_PEERS: region {}'s api URL must be http:// (forwarding \
                 runs inside the deployment's private network; TLS between regions \
                 belongs to the network or service mesh for now)",
                peer.region
            );
            peers.push((peer.region, api));
        }
        anyhow::ensure!(
            !self.forward_timeout.is_zero() && !self.region_stale_after.is_zero(),
            "ORDERCAST_FORWARD_TIMEOUT and ORDERCAST_REGION_STALE_AFTER must be more than zero"
        );
        Ok(RegionSettings {
            me: self.region.clone(),
            peers,
            timeout: *self.forward_timeout,
        })
    }

    /// What `migrate` needs: each peer's database URL (required).
    pub fn databases(&self) -> anyhow::Result<Vec<PeerDatabase>> {
        self.peers()?
            .into_iter()
            .map(|peer| {
                let url = peer.database.with_context(|| {
                    format!(
                        "ORDERCAST_PEERS: region {} has no \"database\" URL",
                        peer.region
                    )
                })?;
                Ok(PeerDatabase {
                    region: peer.region,
                    url,
                })
            })
            .collect()
    }
}

#[derive(Debug, Args)]
pub struct DbArgs {
    /// PostgreSQL URL, e.g. postgres://user:pass@127.0.0.1:5432/ordercast.
    #[arg(long, env = "ORDERCAST_DATABASE_URL", hide_env_values = true)]
    pub database_url: Secret,
    /// Connections in the pool.
    #[arg(long, env = "ORDERCAST_DATABASE_POOL", default_value_t = DbSettings::DEFAULT_MAX_CONNECTIONS)]
    pub database_pool: u32,
    /// PEM certificates to trust for PostgreSQL's TLS instead of the
    /// system's (a private CA); unless the URL names an sslmode, the mode
    /// becomes verify-full.
    #[arg(long, env = "ORDERCAST_DATABASE_CA_FILE")]
    pub database_ca_file: Option<PathBuf>,
    /// Longest wait for PostgreSQL: for a pooled connection, then for a
    /// command's statements (also PostgreSQL's statement_timeout); beyond
    /// it, 503 unavailable.
    #[arg(long, env = "ORDERCAST_DATABASE_TIMEOUT", default_value_t = DbSettings::DEFAULT_TIMEOUT.into())]
    pub database_timeout: HumanDuration,
}

impl DbArgs {
    pub fn settings(&self) -> anyhow::Result<DbSettings> {
        let url = self.database_url.expose();
        let mut settings = DbSettings::from_url(url)
            .context("ORDERCAST_DATABASE_URL is not a valid PostgreSQL URL")?;
        settings.max_connections = self.database_pool.max(1);
        let timeout = *self.database_timeout;
        anyhow::ensure!(
            !timeout.is_zero(),
            "ORDERCAST_DATABASE_TIMEOUT must be more than zero"
        );
        settings.acquire_timeout = timeout;
        settings.timeout = timeout;
        settings.statement_timeout = Some(timeout);
        if let Some(path) = &self.database_ca_file {
            let pem = read_ca_file("ORDERCAST_DATABASE_CA_FILE", path)?;
            let mut connect = settings.connect.ssl_root_cert_from_pem(pem);
            if !names_sslmode(url) && std::env::var_os("PGSSLMODE").is_none() {
                connect = connect.ssl_mode(PgSslMode::VerifyFull);
            }
            settings.connect = connect;
        }
        Ok(settings)
    }
}

/// The PEM file a `*_CA_FILE` variable names, read at start so that a
/// missing file stops the process with the variable's name.
fn read_ca_file(variable: &str, path: &std::path::Path) -> anyhow::Result<Vec<u8>> {
    std::fs::read(path).with_context(|| format!("{variable}: cannot read {}", path.display()))
}

/// The URL's query sets `sslmode` (libpq's name, or sqlx's `ssl-mode`).
fn names_sslmode(url: &str) -> bool {
    url.split_once('?').is_some_and(|(_, query)| {
        query
            .split('&')
            .any(|pair| pair.starts_with("sslmode=") || pair.starts_with("ssl-mode="))
    })
}

#[derive(Debug, Args)]
pub struct RedisArgs {
    /// Redis URL, e.g. redis://127.0.0.1:6379/0; with --redis-cluster, the
    /// comma-separated URLs of one or more cluster nodes.
    #[arg(long, env = "ORDERCAST_REDIS_URL", hide_env_values = true)]
    pub redis_url: Secret,
    /// Redis is a Redis Cluster: commands follow its slots, each shard is
    /// read from the node that holds it.
    #[arg(long, env = "ORDERCAST_REDIS_CLUSTER")]
    pub redis_cluster: bool,
    /// Prefix of every Redis key.
    #[arg(long, env = "ORDERCAST_REDIS_PREFIX", default_value = RedisSettings::DEFAULT_PREFIX)]
    pub redis_prefix: String,
    /// Approximate length each restaurant stream is trimmed to.
    #[arg(long, env = "ORDERCAST_STREAM_MAXLEN", default_value_t = RedisSettings::DEFAULT_STREAM_MAXLEN)]
    pub stream_maxlen: u64,
    /// Command connections in the pool.
    #[arg(long, env = "ORDERCAST_REDIS_POOL", default_value_t = RedisSettings::DEFAULT_POOL_SIZE)]
    pub redis_pool: usize,
    /// PEM certificates to trust for rediss:// instead of the system's
    /// (a private CA).
    #[arg(long, env = "ORDERCAST_REDIS_CA_FILE")]
    pub redis_ca_file: Option<PathBuf>,
    /// Longest wait for Redis to connect or answer a command; a Redis that
    /// hangs longer counts as down (events wait for the outbox sweeper,
    /// edges poll PostgreSQL).
    #[arg(long, env = "ORDERCAST_REDIS_TIMEOUT", default_value_t = RedisSettings::DEFAULT_TIMEOUT.into())]
    pub redis_timeout: HumanDuration,
}

impl RedisArgs {
    pub fn settings(&self) -> anyhow::Result<RedisSettings> {
        let ca_pem = match &self.redis_ca_file {
            Some(path) => Some(read_ca_file("ORDERCAST_REDIS_CA_FILE", path)?),
            None => None,
        };
        let settings = RedisSettings {
            url: self.redis_url.expose().to_owned(),
            cluster: self.redis_cluster,
            prefix: self.redis_prefix.clone(),
            stream_maxlen: self.stream_maxlen,
            pool_size: self.redis_pool.max(1),
            ca_pem,
            timeout: *self.redis_timeout,
        };
        let urls = settings.urls();
        let tls = |u: &&str| u.starts_with("rediss://");
        anyhow::ensure!(
            urls.iter().all(tls) || !urls.iter().any(tls),
            "ORDERCAST_REDIS_URL mixes redis:// and rediss:// nodes"
        );
        anyhow::ensure!(
            settings.ca_pem.is_none() || urls.iter().all(tls),
            "ORDERCAST_REDIS_CA_FILE is set, but ORDERCAST_REDIS_URL is not rediss:// (TLS)"
        );
        if settings.cluster {
            anyhow::ensure!(
                urls.iter()
                    .all(|u| u.starts_with("redis://") || u.starts_with("rediss://")),
                "with ORDERCAST_REDIS_CLUSTER, ORDERCAST_REDIS_URL must be one or more comma-separated redis:// or rediss:// URLs"
            );
        } else {
            anyhow::ensure!(
                urls.len() == 1,
                "ORDERCAST_REDIS_URL names several nodes; set ORDERCAST_REDIS_CLUSTER=true for a Redis Cluster"
            );
            anyhow::ensure!(
                ["redis://", "rediss://", "unix://"]
                    .iter()
                    .any(|scheme| settings.url.starts_with(scheme)),
                "ORDERCAST_REDIS_URL must start with redis://, rediss:// or unix://"
            );
        }
        // A malformed certificate file fails here, not at the first connect.
        settings
            .connection_infos()
            .context("ORDERCAST_REDIS_URL / ORDERCAST_REDIS_CA_FILE")?;
        anyhow::ensure!(
            !self.redis_prefix.is_empty() && !self.redis_prefix.contains(['{', '}', ' ']),
            "ORDERCAST_REDIS_PREFIX must be non-empty, without braces or spaces"
        );
        anyhow::ensure!(
            self.stream_maxlen >= 100,
            "ORDERCAST_STREAM_MAXLEN must be at least 100"
        );
        anyhow::ensure!(
            !settings.timeout.is_zero(),
            "ORDERCAST_REDIS_TIMEOUT must be more than zero"
        );
        Ok(settings)
    }
}

#[derive(Debug, Args)]
pub struct JwtArgs {
    /// HS256 shared secret (at least 32 bytes).
    #[arg(long, env = "ORDERCAST_JWT_SECRET", hide_env_values = true)]
    pub jwt_secret: Option<Secret>,
    /// PEM public key for RS256 / ES256 tokens (instead of a secret).
    #[arg(long, env = "ORDERCAST_JWT_PUBLIC_KEY_FILE")]
    pub jwt_public_key_file: Option<PathBuf>,
    /// Required `iss` claim, if set.
    #[arg(long, env = "ORDERCAST_JWT_ISSUER")]
    pub jwt_issuer: Option<String>,
    /// Required `aud` claim.
    #[arg(long, env = "ORDERCAST_JWT_AUDIENCE", default_value = DEFAULT_AUDIENCE)]
    pub jwt_audience: String,
}

impl JwtArgs {
    pub fn verifier(&self) -> anyhow::Result<TokenVerifier> {
        match (&self.jwt_secret, &self.jwt_public_key_file) {
            (Some(_), Some(_)) => anyhow::bail!(
                "set either ORDERCAST_JWT_SECRET or ORDERCAST_JWT_PUBLIC_KEY_FILE, not both"
            ),
            (None, None) => anyhow::bail!(
                "ORDERCAST_JWT_SECRET (HS256) or ORDERCAST_JWT_PUBLIC_KEY_FILE (RS256/ES256) is required"
            ),
            (Some(secret), None) => TokenVerifier::hs256(
                secret.expose().as_bytes(),
                self.jwt_issuer.as_deref(),
                &self.jwt_audience,
            )
            .context("ORDERCAST_JWT_SECRET is invalid"),
            (None, Some(path)) => {
                let pem = std::fs::read(path).with_context(|| {
                    format!(
                        "cannot read ORDERCAST_JWT_PUBLIC_KEY_FILE {}",
                        path.display()
                    )
                })?;
                TokenVerifier::public_pem(&pem, self.jwt_issuer.as_deref(), &self.jwt_audience)
                    .context("ORDERCAST_JWT_PUBLIC_KEY_FILE is invalid")
            }
        }
    }
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Public HTTP address.
    #[arg(long, env = "ORDERCAST_LISTEN", default_value = "0.0.0.0:8080")]
    pub listen: SocketAddr,
    /// Admin HTTP address (/metrics, /healthz, /readyz, /debug/*); loopback
    /// unless set (a deployment sets the address its probes and Prometheus
    /// reach, e.g. 0.0.0.0:9090).
    #[arg(long, env = "ORDERCAST_ADMIN_LISTEN", default_value = "127.0.0.1:9090")]
    pub admin_listen: SocketAddr,
    /// Bearer token /debug/* requires (at least 16 characters); unset,
    /// /debug/* is off (404).
    #[arg(long, env = "ORDERCAST_ADMIN_TOKEN", hide_env_values = true)]
    pub admin_token: Option<Secret>,
    /// Origins whose pages may call the public port across origins
    /// (comma-separated, exact scheme://host[:port]); unset, none may.
    #[arg(long, env = "ORDERCAST_CORS_ORIGINS", default_value = "", value_parser = CorsOrigins::parse)]
    pub cors_origins: CorsOrigins,
    /// Connections the admin port holds at once; more are refused.
    #[arg(long, env = "ORDERCAST_ADMIN_MAX_CONNECTIONS", default_value_t = ConnectionSettings::DEFAULT_ADMIN_CONNECTIONS)]
    pub admin_max_connections: usize,
    /// Connections the kernel queues on the public port before they are
    /// accepted (capped by net.core.somaxconn).
    #[arg(long, env = "ORDERCAST_LISTEN_BACKLOG", default_value_t = ConnectionSettings::DEFAULT_BACKLOG)]
    pub listen_backlog: u32,
    /// Public connections that are not streams (handshakes, requests, idle
    /// keep-alives) held at once; more are refused. Default: from the
    /// open-files limit.
    #[arg(long, env = "ORDERCAST_MAX_PENDING_CONNECTIONS")]
    pub max_pending_connections: Option<usize>,
    /// Of those, from one client address; 0 turns the limit off (behind a
    /// proxy every connection comes from the proxy).
    #[arg(long, env = "ORDERCAST_MAX_CONNECTIONS_PER_ADDRESS", default_value_t = ConnectionSettings::DEFAULT_PER_ADDRESS)]
    pub max_connections_per_address: usize,
    #[command(flatten)]
    pub db: DbArgs,
    #[command(flatten)]
    pub redis: RedisArgs,
    #[command(flatten)]
    pub jwt: JwtArgs,
    #[command(flatten)]
    pub regions: RegionArgs,
    /// Days events are kept in PostgreSQL.
    #[arg(long, env = "ORDERCAST_RETENTION_DAYS", default_value_t = RetentionSettings::DEFAULT.days)]
    pub retention_days: u32,
    /// A kitchen event no kitchen screen has received this long after its commit counts as undelivered (metric, /debug/undelivered)
    #[arg(long, env = "ORDERCAST_UNDELIVERED_AFTER", default_value_t = LedgerSettings::DEFAULT.undelivered_after.into())]
    pub undelivered_after: HumanDuration,
    /// Commands per second each restaurant may send to one api process
    /// (429 + Retry-After beyond); 0 turns the limit off.
    #[arg(long, env = "ORDERCAST_RESTAURANT_WRITE_RATE", default_value_t = WriteRate::DEFAULT_PER_SECOND)]
    pub restaurant_write_rate: u32,
    /// Commands a restaurant may send at once above that rate.
    #[arg(long, env = "ORDERCAST_RESTAURANT_WRITE_BURST", default_value_t = WriteRate::DEFAULT_BURST)]
    pub restaurant_write_burst: u32,
    /// Commands per second all table sessions (guests' QR tokens) of a
    /// restaurant may send to one api process together, bursts of twice
    /// that; never the staff's budget. 0 turns it off.
    #[arg(long, env = "ORDERCAST_GUEST_WRITE_RATE", default_value_t = WriteBudgets::DEFAULT_GUESTS_PER_SECOND)]
    pub guest_write_rate: u32,
    /// One table session may send one command this often…
    #[arg(long, env = "ORDERCAST_SESSION_WRITE_EVERY", default_value_t = WriteBudgets::DEFAULT_SESSION_EVERY.into())]
    pub session_write_every: HumanDuration,
    /// …after a burst of this many; 0 turns the per-session limit off.
    #[arg(long, env = "ORDERCAST_SESSION_WRITE_BURST", default_value_t = WriteBudgets::DEFAULT_SESSION_BURST)]
    pub session_write_burst: u32,
    /// One waiter's budget: one command this often, after a burst of
    /// ORDERCAST_WAITER_WRITE_BURST (0 turns it off); a waiter also spends
    /// the staff's.
    #[arg(long, env = "ORDERCAST_WAITER_WRITE_EVERY", default_value_t = WriteBudgets::DEFAULT_WAITER_EVERY.into())]
    pub waiter_write_every: HumanDuration,
    #[arg(long, env = "ORDERCAST_WAITER_WRITE_BURST", default_value_t = WriteBudgets::DEFAULT_WAITER_BURST)]
    pub waiter_write_burst: u32,
    /// How long a graceful shutdown may take (e.g. 30s).
    #[arg(long, env = "ORDERCAST_SHUTDOWN_GRACE", default_value = "30s")]
    pub shutdown_grace: HumanDuration,
    /// Longest wait for a request's headers (new or idle connections).
    #[arg(long, env = "ORDERCAST_HANDSHAKE_TIMEOUT", default_value_t = ServerSettings::DEFAULT.handshake_timeout.into())]
    pub handshake_timeout: HumanDuration,
    /// Longest wait for a request's body, from the end of its headers
    /// (then 408 and the connection closes).
    #[arg(long, env = "ORDERCAST_BODY_TIMEOUT", default_value_t = ServerSettings::DEFAULT.body_timeout.into())]
    pub body_timeout: HumanDuration,
    /// A write to a client blocked this long closes the connection.
    #[arg(long, env = "ORDERCAST_WRITE_TIMEOUT", default_value_t = ServerSettings::DEFAULT.write_timeout.into())]
    pub write_timeout: HumanDuration,
    #[command(flatten)]
    pub edge: EdgeArgs,
}

/// Edge tuning and limits (ignored by `ordercast api`).
#[derive(Debug, Args)]
pub struct EdgeArgs {
    /// Recent events each watched restaurant keeps in memory.
    #[arg(long, env = "ORDERCAST_RING_SIZE", default_value_t = EDGE.ring_size)]
    pub ring_size: usize,
    /// Most bytes of recent events each watched restaurant keeps in memory.
    #[arg(long, env = "ORDERCAST_RING_BYTES", default_value_t = EDGE.ring_bytes)]
    pub ring_bytes: usize,
    /// SSE heartbeat comment interval.
    #[arg(long, env = "ORDERCAST_HEARTBEAT", default_value_t = EDGE.heartbeat.into())]
    pub heartbeat: HumanDuration,
    /// The SSE `retry:` reconnect hint.
    #[arg(long, env = "ORDERCAST_SSE_RETRY", default_value_t = EDGE.sse_retry.into())]
    pub sse_retry: HumanDuration,
    /// Streaming connections per process; beyond it, 503 + Retry-After.
    /// Default: from the open-files limit, at most 20000; a larger value is
    /// capped to what the files allow.
    #[arg(long, env = "ORDERCAST_MAX_CONNECTIONS")]
    pub max_connections: Option<usize>,
    /// Streaming connections of one principal (a token's identity: a
    /// guest's table session, a waiter, a subject); beyond it, 429 +
    /// Retry-After. 0 turns the limit off.
    #[arg(long, env = "ORDERCAST_MAX_CONNECTIONS_PER_PRINCIPAL", default_value_t = EDGE.max_connections_per_principal.unwrap_or(0))]
    pub max_connections_per_principal: usize,
    /// Restaurants one WebSocket may subscribe to.
    #[arg(long, env = "ORDERCAST_MAX_SUBSCRIPTIONS", default_value_t = EDGE.max_subscriptions)]
    pub max_subscriptions: usize,
    /// Largest inbound WebSocket message in bytes (close 1009).
    #[arg(long, env = "ORDERCAST_WS_MAX_MESSAGE", default_value_t = EDGE.ws_max_message)]
    pub ws_max_message: usize,
    /// Sustained inbound WebSocket messages per second; bursts may be twice
    /// that (close 1008 beyond).
    #[arg(long, env = "ORDERCAST_WS_RATE", default_value_t = EDGE.ws_rate)]
    pub ws_rate: u32,
    /// Bytes of `sync` snapshots one WebSocket may receive, refilled at this
    /// much a minute (a `sync` beyond it gets a `sync_limited` error).
    #[arg(long, env = "ORDERCAST_WS_SYNC_BUDGET", default_value_t = EDGE.ws_sync_budget)]
    pub ws_sync_budget: usize,
    /// Server ping interval; peers silent for two intervals are cut.
    #[arg(long, env = "ORDERCAST_WS_PING_INTERVAL", default_value_t = EDGE.ws_ping_interval.into())]
    pub ws_ping_interval: HumanDuration,
    /// How often hubs poll PostgreSQL while Redis is unreachable.
    #[arg(long, env = "ORDERCAST_DEGRADED_POLL_INTERVAL", default_value_t = EDGE.degraded_poll_interval.into())]
    pub degraded_poll_interval: HumanDuration,
    /// Reconnect hints on shutdown are spread over this window.
    #[arg(long, env = "ORDERCAST_DRAIN_WINDOW", default_value_t = EDGE.drain_window.into())]
    pub drain_window: HumanDuration,
    /// The api's base URL (http://) a split `ordercast edge` runs WebSocket
    /// commands on, e.g. the api Service; unset, commands answer
    /// `unavailable`. `ordercast all` runs them in process.
    #[arg(long, env = "ORDERCAST_API_URL")]
    pub api_url: Option<String>,
    /// How often the edge logs its counts (connections, deliveries) and
    /// keeps them for /debug/activity.
    #[arg(long, env = "ORDERCAST_ACTIVITY_EVERY", default_value_t = EDGE.activity_every.into())]
    pub activity_every: HumanDuration,
    /// gzip SSE streams for clients that ask (Accept-Encoding: gzip); off
    /// by default, see docs/performance.md.
    #[arg(long, env = "ORDERCAST_SSE_GZIP", default_value_t = EDGE.sse_gzip, action = clap::ArgAction::Set)]
    pub sse_gzip: bool,
}

impl EdgeArgs {
    fn settings(&self) -> anyhow::Result<EdgeSettings> {
        anyhow::ensure!(
            self.ring_size >= 1,
            "ORDERCAST_RING_SIZE must be at least 1"
        );
        anyhow::ensure!(
            self.max_connections != Some(0),
            "ORDERCAST_MAX_CONNECTIONS must be at least 1"
        );
        anyhow::ensure!(
            self.max_subscriptions >= 1,
            "ORDERCAST_MAX_SUBSCRIPTIONS must be at least 1"
        );
        anyhow::ensure!(
            self.ws_max_message >= 256,
            "ORDERCAST_WS_MAX_MESSAGE must be at least 256"
        );
        anyhow::ensure!(self.ws_rate >= 1, "ORDERCAST_WS_RATE must be at least 1");
        anyhow::ensure!(
            self.ring_bytes >= 64 * 1024,
            "ORDERCAST_RING_BYTES must be at least 65536"
        );
        anyhow::ensure!(
            self.ws_sync_budget >= 64 * 1024,
            "ORDERCAST_WS_SYNC_BUDGET must be at least 65536 (one sync's minimum cost)"
        );
        if let Some(url) = &self.api_url {
            anyhow::ensure!(
                url.starts_with("http://") && url.len() > "http://".len(),
                "ORDERCAST_API_URL must be an http:// base URL, e.g. http://ordercast-api:8080"
            );
        }
        for (name, value) in [
            ("ORDERCAST_HEARTBEAT", *self.heartbeat),
            ("ORDERCAST_WS_PING_INTERVAL", *self.ws_ping_interval),
            (
                "ORDERCAST_DEGRADED_POLL_INTERVAL",
                *self.degraded_poll_interval,
            ),
            ("ORDERCAST_ACTIVITY_EVERY", *self.activity_every),
        ] {
            anyhow::ensure!(!value.is_zero(), "{name} must be more than zero");
        }
        Ok(EdgeSettings {
            ring_size: self.ring_size,
            ring_bytes: self.ring_bytes,
            heartbeat: *self.heartbeat,
            sse_retry: *self.sse_retry,
            max_connections_per_principal: NonZeroUsize::new(self.max_connections_per_principal)
                .map(NonZeroUsize::get),
            max_subscriptions: self.max_subscriptions,
            ws_max_message: self.ws_max_message,
            ws_rate: self.ws_rate,
            ws_sync_budget: self.ws_sync_budget,
            ws_ping_interval: *self.ws_ping_interval,
            degraded_poll_interval: *self.degraded_poll_interval,
            drain_window: *self.drain_window,
            api_url: self.api_url.clone(),
            activity_every: *self.activity_every,
            sse_gzip: self.sse_gzip,
            ..EdgeSettings::DEFAULT
        })
    }
}

#[derive(Debug, Args)]
pub struct TokenArgs {
    /// admin, owner, kitchen, waiter, customer or service.
    #[arg(long)]
    pub role: ordercast_core::Role,
    /// Restaurant id (repeatable); `*` for a platform admin.
    #[arg(long = "restaurant")]
    pub restaurants: Vec<String>,
    /// An admin's chain id.
    #[arg(long)]
    pub chain: Option<uuid::Uuid>,
    /// A customer's table session.
    #[arg(long)]
    pub session: Option<String>,
    /// A waiter's id.
    #[arg(long)]
    pub waiter: Option<String>,
    /// Subject (who the token is for).
    #[arg(long, default_value = "dev")]
    pub sub: String,
    /// Lifetime, e.g. 12h, 30m.
    #[arg(long, default_value = "12h")]
    pub ttl: HumanDuration,
    /// HS256 secret to sign with.
    #[arg(long, env = "ORDERCAST_JWT_SECRET", hide_env_values = true)]
    pub jwt_secret: Option<Secret>,
    /// Or an RS256/ES256 PEM private key.
    #[arg(long, env = "ORDERCAST_JWT_PRIVATE_KEY_FILE")]
    pub jwt_private_key_file: Option<PathBuf>,
    /// `iss` claim to set.
    #[arg(long, env = "ORDERCAST_JWT_ISSUER")]
    pub jwt_issuer: Option<String>,
    /// `aud` claim to set.
    #[arg(long, env = "ORDERCAST_JWT_AUDIENCE", default_value = DEFAULT_AUDIENCE)]
    pub jwt_audience: String,
}

/// A budget of one command every `every` after a burst of `burst`; off
/// when `burst` is 0.
fn one_every(burst: u32, every: Duration, variable: &str) -> anyhow::Result<Option<WriteRate>> {
    match NonZeroU32::new(burst) {
        None => Ok(None),
        Some(burst) => WriteRate::one_every(every, burst)
            .map(Some)
            .with_context(|| format!("{variable} must be more than zero")),
    }
}

/// Validated settings of a serving subcommand. Raises the process's
/// open-files limit as far as it goes and sizes the connection limits to
/// it (see [`crate::files`]).
pub fn serve_settings(args: &ServeArgs, role: crate::app::Role) -> anyhow::Result<crate::Settings> {
    anyhow::ensure!(
        args.retention_days >= 1,
        "ORDERCAST_RETENTION_DAYS must be at least 1"
    );
    let mut api = ordercast_api::ApiSettings::default();
    api.retention.days = args.retention_days;
    anyhow::ensure!(
        !args.undelivered_after.is_zero(),
        "ORDERCAST_UNDELIVERED_AFTER must be more than zero"
    );
    api.ledger.undelivered_after = *args.undelivered_after;
    api.write_budgets.restaurant = match NonZeroU32::new(args.restaurant_write_rate) {
        None => None,
        Some(rate) => {
            let burst = NonZeroU32::new(args.restaurant_write_burst)
                .context("ORDERCAST_RESTAURANT_WRITE_BURST must be at least 1")?;
            Some(WriteRate::per_second(rate, burst))
        }
    };
    api.write_budgets.guests =
        NonZeroU32::new(args.guest_write_rate).map(WriteBudgets::guests_per_second);
    api.write_budgets.session = one_every(
        args.session_write_burst,
        *args.session_write_every,
        "ORDERCAST_SESSION_WRITE_EVERY",
    )?;
    api.write_budgets.waiter = one_every(
        args.waiter_write_burst,
        *args.waiter_write_every,
        "ORDERCAST_WAITER_WRITE_EVERY",
    )?;
    api.regions = args.regions.api_settings()?;
    let mut edge = args.edge.settings()?;
    edge.peers = api.regions.peers.iter().map(|(r, _)| r.clone()).collect();
    edge.region_stale_after = *args.regions.region_stale_after;
    edge.retention = Duration::from_secs(u64::from(args.retention_days) * 24 * 3600);
    anyhow::ensure!(
        !args.handshake_timeout.is_zero()
            && !args.body_timeout.is_zero()
            && !args.write_timeout.is_zero(),
        "ORDERCAST_HANDSHAKE_TIMEOUT, ORDERCAST_BODY_TIMEOUT and ORDERCAST_WRITE_TIMEOUT must be more than zero"
    );
    let db = args.db.settings()?;
    let redis = args.redis.settings()?;
    let files = files::raise_open_files_limit(1_024);
    let headroom = Headroom {
        database_pool: u64::from(db.max_connections),
        redis_pool: redis.pool_size as u64,
        admin_connections: args.admin_max_connections as u64,
        shard_readers: match role.serves_edge() {
            true => files::SHARD_READER_FILES,
            false => 0,
        },
    };
    let connections = connection_settings(args, files, &headroom, role.serves_edge())?;
    edge.max_connections = connections.1;
    Ok(crate::Settings {
        role,
        listen: args.listen,
        admin_listen: args.admin_listen,
        db,
        redis,
        verifier: args.jwt.verifier()?,
        api,
        edge,
        server: ServerSettings {
            handshake_timeout: *args.handshake_timeout,
            body_timeout: *args.body_timeout,
            write_timeout: *args.write_timeout,
        },
        connections: connections.0,
        admin_token: admin_token(args.admin_token.as_ref())?,
        cors: args.cors_origins.clone(),
        shutdown_grace: *args.shutdown_grace,
    })
}

/// The ports' connection limits for `files` open files, and the streams
/// the edge may hold (logged, with any setting capped to the files).
fn connection_settings(
    args: &ServeArgs,
    files: u64,
    headroom: &Headroom,
    streams: bool,
) -> anyhow::Result<(ConnectionSettings, usize)> {
    anyhow::ensure!(
        args.admin_max_connections >= 1 && args.listen_backlog >= 1,
        "ORDERCAST_ADMIN_MAX_CONNECTIONS and ORDERCAST_LISTEN_BACKLOG must be at least 1"
    );
    anyhow::ensure!(
        args.max_pending_connections != Some(0),
        "ORDERCAST_MAX_PENDING_CONNECTIONS must be at least 1"
    );
    let requested = Requested {
        pending: args.max_pending_connections,
        streams: args.edge.max_connections,
    };
    let (budget, capped) = ConnectionBudget::from_files(files, headroom, requested, streams)?;
    for line in capped {
        tracing::warn!("{line}");
    }
    tracing::info!(
        open_files = files,
        set_aside = headroom.files(),
        pending = budget.pending,
        streams = budget.streams,
        "connection limits"
    );
    let settings = ConnectionSettings {
        listen_backlog: args.listen_backlog,
        public: AdmissionLimits {
            pending: budget.pending,
            per_address: NonZeroUsize::new(args.max_connections_per_address).map(NonZeroUsize::get),
        },
        admin: AdmissionLimits {
            pending: args.admin_max_connections,
            per_address: None,
        },
    };
    Ok((settings, budget.streams))
}

/// `ORDERCAST_ADMIN_TOKEN`, checked.
fn admin_token(token: Option<&Secret>) -> anyhow::Result<Option<AdminToken>> {
    let Some(token) = token else {
        return Ok(None);
    };
    let token = token.expose();
    anyhow::ensure!(
        token.chars().count() >= AdminToken::MIN_LEN && !token.contains(char::is_whitespace),
        "ORDERCAST_ADMIN_TOKEN must be at least {} characters, without spaces",
        AdminToken::MIN_LEN
    );
    Ok(Some(AdminToken::new(token)))
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::*;

    #[test]
    fn the_command_line_is_well_formed() {
        Cli::command().debug_assert();
    }

    /// Every variable of every subcommand, as `(subcommand, variable)`.
    fn variables(command: &clap::Command, into: &mut Vec<(String, String)>) {
        for arg in command.get_arguments() {
            if let Some(env) = arg.get_env() {
                let name = env.to_string_lossy().into_owned();
                into.push((command.get_name().to_owned(), name));
            }
        }
        command.get_subcommands().for_each(|c| variables(c, into));
    }

    #[test]
    fn every_setting_a_server_reads_is_documented_for_operators() {
        let operations = include_str!("../../../docs/operations.md");
        let readme = include_str!("../../../README.md");
        let mut all = Vec::new();
        variables(&Cli::command(), &mut all);
        let undocumented: Vec<_> = all
            .iter()
            .filter(|(command, _)| command != "token")
            .filter(|(_, v)| !operations.contains(v.as_str()) && !readme.contains(v.as_str()))
            .map(|(_, v)| v.as_str())
            .collect();
        assert!(all.len() > 40, "{all:?}");
        assert_eq!(undocumented, Vec::<&str>::new());
    }

    fn redis_args(url: &str, cluster: bool) -> RedisArgs {
        RedisArgs {
            redis_url: url.parse().unwrap(),
            redis_cluster: cluster,
            redis_prefix: "oc".into(),
            stream_maxlen: RedisSettings::DEFAULT_STREAM_MAXLEN,
            redis_pool: RedisSettings::DEFAULT_POOL_SIZE,
            redis_ca_file: None,
            redis_timeout: RedisSettings::DEFAULT_TIMEOUT.into(),
        }
    }

    fn redis(url: &str, cluster: bool) -> anyhow::Result<RedisSettings> {
        redis_args(url, cluster).settings()
    }

    #[test]
    fn the_dependency_deadlines_are_set_and_must_be_above_zero() {
        let db = |timeout: &str| {
            DbArgs {
                database_url: "postgres://db.internal/oc".parse().unwrap(),
                database_pool: 16,
                database_ca_file: None,
                database_timeout: timeout.parse().unwrap(),
            }
            .settings()
        };
        let settings = db("3s").unwrap();
        let three = std::time::Duration::from_secs(3);
        assert_eq!((settings.acquire_timeout, settings.timeout), (three, three));
        assert_eq!(settings.statement_timeout, Some(three));
        let zero = db("0s").unwrap_err().to_string();
        assert!(zero.contains("ORDERCAST_DATABASE_TIMEOUT"), "{zero}");

        let mut redis = redis_args("redis://127.0.0.1:6379", false);
        redis.redis_timeout = "250ms".parse().unwrap();
        let settings = redis.settings().unwrap();
        assert_eq!(settings.timeout, std::time::Duration::from_millis(250));
        redis.redis_timeout = "0s".parse().unwrap();
        let zero = redis.settings().unwrap_err().to_string();
        assert!(zero.contains("ORDERCAST_REDIS_TIMEOUT"), "{zero}");
    }

    #[test]
    fn a_database_ca_file_turns_on_full_verification_unless_the_url_names_a_mode() {
        let db = |url: &str, file: &str| {
            DbArgs {
                database_url: url.parse().unwrap(),
                database_pool: 16,
                database_ca_file: Some(file.into()),
                database_timeout: DbSettings::DEFAULT_TIMEOUT.into(),
            }
            .settings()
        };
        let readable = concat!(env!("CARGO_MANIFEST_DIR"), "/Cargo.toml");
        let mode = |url| db(url, readable).unwrap().connect.get_ssl_mode();
        assert!(matches!(
            mode("postgres://db.internal/oc"),
            PgSslMode::VerifyFull
        ));
        assert!(matches!(
            mode("postgres://db.internal/oc?sslmode=verify-ca"),
            PgSslMode::VerifyCa
        ));
        let missing = format!(
            "{:#}",
            db("postgres://db.internal/oc", "/nonexistent/ca.pem").unwrap_err()
        );
        assert!(
            missing.contains("cannot read /nonexistent/ca.pem"),
            "{missing}"
        );
    }

    #[test]
    fn a_redis_ca_file_must_be_readable_and_is_only_for_rediss() {
        let with_ca = |url: &str, file: &str| {
            let args = RedisArgs {
                redis_ca_file: Some(file.into()),
                ..redis_args(url, false)
            };
            format!("{:#}", args.settings().unwrap_err())
        };
        let missing = with_ca("rediss://10.0.0.1:6380", "/nonexistent/ca.pem");
        assert!(
            missing.contains("cannot read /nonexistent/ca.pem"),
            "{missing}"
        );
        let readable = concat!(env!("CARGO_MANIFEST_DIR"), "/Cargo.toml");
        let plain = with_ca("redis://10.0.0.1:6379", readable);
        assert!(plain.contains("not rediss://"), "{plain}");
    }

    #[test]
    fn a_redis_cluster_is_named_by_its_nodes_and_only_with_the_cluster_switch() {
        let nodes = "redis://10.0.0.1:6379, redis://10.0.0.2:6379";
        let cluster = redis(nodes, true).unwrap();
        assert!(cluster.cluster);
        assert_eq!(
            cluster.urls(),
            ["redis://10.0.0.1:6379", "redis://10.0.0.2:6379"]
        );
        let several = redis(nodes, false).unwrap_err().to_string();
        assert!(several.contains("ORDERCAST_REDIS_CLUSTER"), "{several}");
        assert!(redis("unix:///run/redis.sock", true).is_err());
        assert_eq!(
            redis("rediss://10.0.0.1:6380, rediss://10.0.0.2:6380", true)
                .unwrap()
                .urls(),
            ["rediss://10.0.0.1:6380", "rediss://10.0.0.2:6380"]
        );
        let mixed = redis("redis://10.0.0.1:6379, rediss://10.0.0.2:6380", true)
            .unwrap_err()
            .to_string();
        assert!(mixed.contains("mixes"), "{mixed}");
        assert_eq!(
            redis("unix:///run/redis.sock", false).unwrap().urls(),
            ["unix:///run/redis.sock"]
        );
    }

    fn regions(me: &str, peers: Option<&str>) -> RegionArgs {
        RegionArgs {
            region: me.parse().unwrap(),
            peers: peers.map(|p| p.parse().unwrap()),
            forward_timeout: RegionSettings::DEFAULT_TIMEOUT.into(),
            region_stale_after: EDGE.region_stale_after.into(),
        }
    }

    #[test]
    fn peers_are_distinct_other_regions_with_what_each_role_needs() {
        let good = r#"[{"region":"us","api":"http://10.1.0.5:8080","database":"postgres://r@10.1.0.6/oc"}]"#;
        let api = regions("eu", Some(good)).api_settings().unwrap();
        assert_eq!(
            api.peers,
            [("us".parse().unwrap(), "http://10.1.0.5:8080".to_owned())]
        );
        assert_eq!(
            regions("eu", Some(good)).databases().unwrap()[0].url,
            "postgres://r@10.1.0.6/oc"
        );
        assert!(regions("eu", None).api_settings().unwrap().peers.is_empty());

        let error = |me: &str, peers: &str| {
            format!("{:#}", regions(me, Some(peers)).api_settings().unwrap_err())
        };
        assert!(error("us", good).contains("own region"));
        let twice = r#"[{"region":"us","api":"http://a"},{"region":"us","api":"http://b"}]"#;
        assert!(error("eu", twice).contains("twice"));
        assert!(error("eu", r#"[{"region":"us"}]"#).contains("no \"api\""));
        assert!(error("eu", r#"[{"region":"us","api":"https://a"}]"#).contains("http://"));
        assert!(error("eu", r#"[{"region":"US","api":"http://a"}]"#).contains("invalid region"));
        assert!(error("eu", "us=http://a").contains("JSON"));
        let no_db = r#"[{"region":"us","api":"http://a"}]"#;
        assert!(
            format!("{:#}", regions("eu", Some(no_db)).databases().unwrap_err())
                .contains("database")
        );
    }

    fn serve(flags: &[&str]) -> anyhow::Result<crate::Settings> {
        let required = [
            "ordercast",
            "all",
            "--database-url=postgres://db.internal/oc",
            "--redis-url=redis://10.0.0.1:6379",
            "--jwt-secret=a-test-secret-of-at-least-32-bytes!!",
        ];
        let cli = Cli::try_parse_from(required.iter().chain(flags)).unwrap();
        let Command::All(args) = cli.command else {
            unreachable!("parsed `all`")
        };
        serve_settings(&args, crate::app::Role::All)
    }

    fn refusal(flags: &[&str]) -> String {
        format!("{:#}", serve(flags).err().expect("refused"))
    }

    #[test]
    fn connection_limits_and_deadlines_are_checked_and_sized_to_the_open_files() {
        let settings = serve(&[]).unwrap();
        assert_eq!(settings.admin_listen, "127.0.0.1:9090".parse().unwrap());
        assert!(settings.admin_token.is_none());
        assert_eq!(settings.connections.listen_backlog, 8_192);
        assert_eq!(settings.connections.public.per_address, Some(256));
        assert_eq!(settings.connections.admin.pending, 16);
        assert_eq!(
            settings.server.body_timeout,
            ServerSettings::DEFAULT.body_timeout
        );
        let files = rlimit::Resource::NOFILE.get().unwrap().0;
        let (pending, streams) = (
            settings.connections.public.pending,
            settings.edge.max_connections,
        );
        assert!((pending + streams + 16 + 16 + 16 + 256) as u64 <= files);

        let asked = serve(&["--max-connections=50", "--max-connections-per-address=0"]).unwrap();
        assert_eq!(asked.edge.max_connections, 50);
        assert_eq!(asked.connections.public.per_address, None);
        let huge = serve(&["--max-connections=100000000"]).unwrap();
        assert!((huge.edge.max_connections as u64) < files);

        assert!(refusal(&["--admin-token=short"]).contains("ORDERCAST_ADMIN_TOKEN"));
        assert!(refusal(&["--body-timeout=0s"]).contains("ORDERCAST_BODY_TIMEOUT"));
        assert!(refusal(&["--max-pending-connections=0"]).contains("PENDING"));
        assert!(refusal(&["--max-connections=0"]).contains("ORDERCAST_MAX_CONNECTIONS"));
        assert!(refusal(&["--admin-max-connections=0"]).contains("ADMIN_MAX_CONNECTIONS"));
        let token = serve(&["--admin-token=a-token-of-the-operators"]).unwrap();
        assert_eq!(format!("{:?}", token.admin_token), "Some([redacted])");
    }

    #[test]
    fn secrets_never_print() {
        let secret: Secret = "hunter2".parse().unwrap();
        assert_eq!(format!("{secret:?}"), "[redacted]");
    }
}
