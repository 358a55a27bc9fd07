//! Building and running the service: listeners, roles, graceful shutdown.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};

use anyhow::Context;
use axum::Router;
use ordercast_api::{ApiService, ApiSettings};
use ordercast_bus::{BusMetrics, RedisSettings, Streams};
use ordercast_core::auth::TokenVerifier;
use ordercast_edge::{ApiLink, EdgeService, EdgeSettings};
use ordercast_store::{DbSettings, Store};
use prometheus::Registry;
use tokio::net::{TcpListener, TcpSocket};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::admin::{self, AdminToken, Health};
use crate::metrics::ProcessMetrics;
use ordercast_http::cors::CorsOrigins;
use ordercast_http::layers::{HttpMetrics, instrument};
use ordercast_http::server::{self, OnStall, Port, ServerSettings};
use ordercast_http::{Admission, AdmissionLimits, RefusedConnections};

/// Which parts of Ordercast a process serves.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// Commands and queries.
    Api,
    /// SSE, WebSocket and long-poll fan-out.
    Edge,
    /// Both on one port (the local default).
    All,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Api => "api",
            Role::Edge => "edge",
            Role::All => "all",
        }
    }

    pub(crate) fn serves_api(self) -> bool {
        matches!(self, Role::Api | Role::All)
    }

    pub(crate) fn serves_edge(self) -> bool {
        matches!(self, Role::Edge | Role::All)
    }
}

/// Everything a serving process needs, already validated.
pub struct Settings {
    pub role: Role,
    pub listen: SocketAddr,
    pub admin_listen: SocketAddr,
    pub db: DbSettings,
    pub redis: RedisSettings,
    pub verifier: TokenVerifier,
    pub api: ApiSettings,
    pub edge: EdgeSettings,
    pub server: ServerSettings,
    /// Which connections each port accepts, and its listen backlog.
    pub connections: ConnectionSettings,
    /// The bearer token `/debug/*` requires; without one it is off.
    pub admin_token: Option<AdminToken>,
    /// Longest a graceful shutdown may take.
    pub shutdown_grace: Duration,
    /// Origins allowed to call the public port across origins (none: no
    /// CORS headers).
    pub cors: CorsOrigins,
}

/// Connection limits of the two ports.
#[derive(Clone, Copy, Debug)]
pub struct ConnectionSettings {
    /// Connections the kernel queues on the public port before `accept`
    /// (capped by `net.core.somaxconn`).
    pub listen_backlog: u32,
    /// The public port's pending connections (streams are the edge's
    /// `max_connections`).
    pub public: AdmissionLimits,
    /// The admin port's connections.
    pub admin: AdmissionLimits,
}

impl ConnectionSettings {
    /// Default listen backlog, as nginx's: a reconnect storm is queued
    /// instead of waiting out SYN retransmits.
    pub const DEFAULT_BACKLOG: u32 = 8_192;
    /// Default connections of the admin port: probes and scrapers need few.
    pub const DEFAULT_ADMIN_CONNECTIONS: usize = 16;
    /// Default pending connections of one client address.
    pub const DEFAULT_PER_ADDRESS: usize = 256;
}

/// Listens on `address` with a backlog of `backlog`.
fn listen(address: SocketAddr, backlog: u32) -> anyhow::Result<TcpListener> {
    let socket = match address {
        SocketAddr::V4(_) => TcpSocket::new_v4(),
        SocketAddr::V6(_) => TcpSocket::new_v6(),
    };
    let listener = socket.and_then(|socket| {
        // As std's and tokio's bind: a restarted process can take the port
        // while the old one's connections linger in TIME_WAIT.
        socket.set_reuseaddr(true)?;
        socket.bind(address)?;
        socket.listen(backlog)
    });
    listener.with_context(|| format!("cannot listen on {address}"))
}

/// Refuses to serve a database that belongs to another region. A database
/// that cannot be reached yet is checked by `migrate` instead: the process
/// starts not-ready and serves once PostgreSQL is up.
async fn check_region(store: &Store, region: &ordercast_core::Region) -> anyhow::Result<()> {
    match tokio::time::timeout(Duration::from_secs(2), store.check_cell(region)).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e @ ordercast_store::StoreError::WrongRegion { .. })) => {
            Err(anyhow::Error::new(e).context("ORDERCAST_REGION does not match the database"))
        }
        Ok(Err(e)) => {
            tracing::warn!(error = %ordercast_core::Chain(&e), "could not check the database's region at start");
            Ok(())
        }
        Err(_) => {
            tracing::warn!(
                "could not check the database's region at start: PostgreSQL did not answer"
            );
            Ok(())
        }
    }
}

/// Where the edge's WebSocket commands run: the api in this process, else
/// the one at `ORDERCAST_API_URL`, else nowhere.
fn api_link(api: Option<&ApiService>, url: Option<&str>) -> anyhow::Result<ApiLink> {
    Ok(match (api, url) {
        (Some(api), _) => ApiLink::in_process(api.router()),
        (None, Some(url)) => ApiLink::http(url).context("cannot build the api client")?,
        (None, None) => ApiLink::Unset,
    })
}

/// A built service, listening but not yet serving.
pub struct App {
    public: TcpListener,
    admin: TcpListener,
    api: Option<ApiService>,
    edge: Option<EdgeService>,
    router: Router,
    health: Health,
    server: ServerSettings,
    public_admission: Admission,
    admin_admission: Admission,
    admin_token: Option<AdminToken>,
    grace: Duration,
}

impl App {
    /// Binds both ports and starts the background tasks.
    pub async fn build(mut settings: Settings) -> anyhow::Result<App> {
        // One list for both: the edge checks WebSocket origins against it.
        settings.edge.cors = settings.cors.clone();
        let registry = Registry::new();
        let store = Store::connect_lazy(&settings.db);
        let streams = Streams::new(&settings.redis).context("invalid Redis settings")?;
        let bus_metrics = BusMetrics::new(&registry)?;
        let http_metrics = HttpMetrics::new(&registry)?;
        let refused = RefusedConnections::new(&registry)?;
        let connections = settings.connections;
        let role = settings.role;
        let process =
            ProcessMetrics::new(&registry, role.as_str(), &settings.api.regions.me, &store)?;
        check_region(&store, &settings.api.regions.me).await?;
        let ledger = settings.api.ledger.clone();
        let regions = admin::Regions {
            me: settings.api.regions.me.clone(),
            peers: settings.edge.peers.clone(),
            stale_after: settings.edge.region_stale_after,
        };
        let api = match role.serves_api() {
            true => Some(ApiService::start(
                store.clone(),
                streams.clone(),
                settings.verifier.clone(),
                &registry,
                bus_metrics,
                settings.api,
            )?),
            false => None,
        };
        let commands = api_link(api.as_ref(), settings.edge.api_url.as_deref())?;
        let edge = match role.serves_edge() {
            true => Some(EdgeService::start(
                store.clone(),
                streams.clone(),
                &settings.redis,
                settings.verifier,
                &registry,
                settings.edge,
                commands,
            )?),
            false => None,
        };
        let mut routes = Router::new();
        if let Some(api) = &api {
            routes = routes.merge(api.router());
        }
        if let Some(edge) = &edge {
            routes = routes.merge(edge.router());
        }
        let router = instrument(routes.fallback(ordercast_http::no_route), http_metrics);
        // Outermost, so a preflight is answered before the 405/204 of a
        // route that does not take OPTIONS.
        let router = router.layer(axum::middleware::from_fn(ordercast_http::gzip::json));
        let router = settings.cors.apply(router);
        let public = listen(settings.listen, connections.listen_backlog)?;
        let admin = TcpListener::bind(settings.admin_listen)
            .await
            .with_context(|| format!("cannot listen on {}", settings.admin_listen))?;
        let health = Health {
            store,
            streams,
            registry,
            process,
            draining: Arc::new(AtomicBool::new(false)),
            started: Instant::now(),
            role: role.as_str(),
            edge: edge.clone(),
            ledger,
            regions,
        };
        Ok(App {
            public,
            admin,
            api,
            edge,
            router,
            health,
            server: settings.server,
            public_admission: Admission::new(connections.public, "public", refused.clone()),
            admin_admission: Admission::new(connections.admin, "admin", refused),
            admin_token: settings.admin_token,
            grace: settings.shutdown_grace,
        })
    }

    /// The public port (tests bind port 0).
    pub fn port(&self) -> u16 {
        self.public
            .local_addr()
            .map(|a| a.port())
            .unwrap_or_default()
    }

    /// The admin port.
    pub fn admin_port(&self) -> u16 {
        self.admin
            .local_addr()
            .map(|a| a.port())
            .unwrap_or_default()
    }

    /// Serves until `shutdown` completes, then drains: readiness fails, new
    /// connections are refused, streaming clients are told to reconnect
    /// (spread over the drain window), in-flight requests finish (within
    /// the grace period), background tasks flush.
    pub async fn run(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let stop = CancellationToken::new();
        let admin_stop = CancellationToken::new();
        let health = self.health.clone();
        let edge = self.edge.clone();
        tokio::spawn({
            let stop = stop.clone();
            async move {
                shutdown.await;
                health.start_draining();
                if let Some(edge) = edge {
                    edge.drain();
                }
                stop.cancel();
            }
        });
        let admin_connections = TaskTracker::new();
        let admin = tokio::spawn(server::serve(
            self.admin,
            Port {
                router: admin::router(self.health, self.admin_token),
                settings: self.server,
                admission: self.admin_admission,
                on_stall: Arc::new(|| {}),
                event_streams: false,
            },
            admin_stop.clone(),
            admin_connections.clone(),
        ));
        let connections = TaskTracker::new();
        let on_stall: OnStall = match &self.edge {
            Some(edge) => {
                let edge = edge.clone();
                Arc::new(move || edge.write_stalled())
            }
            None => Arc::new(|| {}),
        };
        let public = Port {
            router: self.router,
            settings: self.server,
            admission: self.public_admission,
            on_stall,
            event_streams: self.edge.is_some(),
        };
        server::serve(self.public, public, stop.clone(), connections.clone()).await;
        tracing::info!(grace = ?self.grace, "shutting down");
        connections.close();
        if tokio::time::timeout(self.grace, connections.wait())
            .await
            .is_err()
        {
            tracing::warn!("grace period over with requests still in flight");
        }
        if let Some(edge) = &self.edge
            && tokio::time::timeout(self.grace, edge.sessions_closed())
                .await
                .is_err()
        {
            tracing::warn!("grace period over with WebSocket sessions still open");
        }
        if let Some(edge) = &self.edge {
            edge.release_api();
        }
        if let Some(api) = self.api {
            api.stop().await;
        }
        admin_stop.cancel();
        admin.await.context("admin server task")?;
        admin_connections.close();
        if tokio::time::timeout(self.grace, admin_connections.wait())
            .await
            .is_err()
        {
            tracing::warn!("grace period over with admin requests still in flight");
        }
        tracing::info!("stopped");
        Ok(())
    }
}
