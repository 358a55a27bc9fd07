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
use ordercast_store::{DbSettings, Store};
use prometheus::Registry;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::admin::{self, Health};
use crate::http::{HttpMetrics, instrument};

/// Everything a serving process needs, already validated.
pub struct Settings {
    pub listen: SocketAddr,
    pub admin_listen: SocketAddr,
    pub db: DbSettings,
    pub redis: RedisSettings,
    pub verifier: TokenVerifier,
    pub api: ApiSettings,
    /// Longest a graceful shutdown may take.
    pub shutdown_grace: Duration,
}

/// A built service, listening but not yet serving.
pub struct App {
    public: TcpListener,
    admin: TcpListener,
    api: ApiService,
    router: Router,
    health: Health,
    grace: Duration,
}

impl App {
    /// Binds both ports and starts the background tasks.
    pub async fn build(settings: Settings) -> anyhow::Result<App> {
        let registry = Registry::new();
        let store = Store::connect_lazy(&settings.db);
        let streams = Streams::new(&settings.redis).context("invalid Redis settings")?;
        let bus_metrics = BusMetrics::new(&registry)?;
        let http_metrics = HttpMetrics::new(&registry)?;
        let api = ApiService::start(
            store.clone(),
            streams.clone(),
            settings.verifier,
            &registry,
            bus_metrics,
            settings.api,
        )?;
        let router = instrument(
            api.router().fallback(ordercast_api::error::no_route),
            http_metrics,
        );
        let public = TcpListener::bind(settings.listen)
            .await
            .with_context(|| format!("cannot listen on {}", settings.listen))?;
        let admin = TcpListener::bind(settings.admin_listen)
            .await
            .with_context(|| format!("cannot listen on {}", settings.admin_listen))?;
        let health = Health {
            store,
            streams,
            registry,
            draining: Arc::new(AtomicBool::new(false)),
            started: Instant::now(),
            role: "api",
        };
        Ok(App {
            public,
            admin,
            api,
            router,
            health,
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
    /// connections are refused, in-flight requests finish (within the grace
    /// period), background tasks flush.
    pub async fn run(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let stop = CancellationToken::new();
        let admin_stop = CancellationToken::new();
        let health = self.health.clone();
        tokio::spawn({
            let stop = stop.clone();
            async move {
                shutdown.await;
                health.start_draining();
                stop.cancel();
            }
        });
        let admin = tokio::spawn(
            axum::serve(self.admin, admin::router(self.health))
                .with_graceful_shutdown(admin_stop.clone().cancelled_owned())
                .into_future(),
        );
        let public = axum::serve(self.public, self.router)
            .with_graceful_shutdown(stop.clone().cancelled_owned());
        let served = tokio::spawn(public.into_future());
        stop.cancelled().await;
        tracing::info!(grace = ?self.grace, "shutting down");
        match tokio::time::timeout(self.grace, served).await {
            Ok(result) => result
                .context("public server task")?
                .context("public server")?,
            Err(_) => tracing::warn!("grace period over with requests still in flight"),
        }
        self.api.stop().await;
        admin_stop.cancel();
        admin
            .await
            .context("admin server task")?
            .context("admin server")?;
        tracing::info!("stopped");
        Ok(())
    }
}
