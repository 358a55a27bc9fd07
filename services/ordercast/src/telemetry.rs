//! Logs (JSON lines or pretty) and, when `OTEL_EXPORTER_OTLP_ENDPOINT` is
//! set, OpenTelemetry trace export over OTLP/HTTP.

use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing_subscriber::filter::{LevelFilter, Targets};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer};

use crate::app::Role;
use crate::config::LogFormat;

/// Flushes exported spans when dropped.
pub struct Telemetry {
    provider: Option<SdkTracerProvider>,
}

impl Drop for Telemetry {
    fn drop(&mut self) {
        if let Some(provider) = self.provider.take() {
            let _ = provider.shutdown();
        }
    }
}

/// Caps what no `RUST_LOG` may open: the WebSocket library logs every frame
/// at trace, and a `refresh` frame carries a token.
fn never_secrets() -> Targets {
    Targets::new()
        .with_default(LevelFilter::TRACE)
        .with_target("tungstenite", LevelFilter::DEBUG)
        .with_target("tokio_tungstenite", LevelFilter::DEBUG)
}

/// The OpenTelemetry `service.name` of a process serving `role` (or
/// running `migrate`, `None`), unless `OTEL_SERVICE_NAME` names one: the
/// api and edge roles are told apart in a trace.
pub fn service_name(role: Option<Role>) -> &'static str {
    match role {
        Some(Role::Api) => "ordercast-api",
        Some(Role::Edge) => "ordercast-edge",
        Some(Role::All) | None => "ordercast",
    }
}

/// Installs the global subscriber. `RUST_LOG` overrides the default filter;
/// spans are exported as `service` (see [`service_name`]).
pub fn init(format: LogFormat, service: &'static str) -> anyhow::Result<Telemetry> {
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new("info,sqlx=warn,tower_http=warn"));
    let fmt = match format {
        LogFormat::Json => tracing_subscriber::fmt::layer()
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .boxed(),
        LogFormat::Pretty => tracing_subscriber::fmt::layer().compact().boxed(),
    };
    let provider = std::env::var_os("OTEL_EXPORTER_OTLP_ENDPOINT").map(|_| -> anyhow::Result<_> {
        let exporter = opentelemetry_otlp::SpanExporter::builder()
            .with_http()
            .build()?;
        // The builder reads OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES;
        // ours is only the default.
        let resource = match std::env::var_os("OTEL_SERVICE_NAME") {
            Some(_) => opentelemetry_sdk::Resource::builder().build(),
            None => opentelemetry_sdk::Resource::builder()
                .with_service_name(service)
                .build(),
        };
        Ok(SdkTracerProvider::builder()
            .with_resource(resource)
            .with_batch_exporter(exporter)
            .build())
    });
    let provider = provider.transpose()?;
    let otel = provider.as_ref().map(|p| {
        opentelemetry::global::set_text_map_propagator(TraceContextPropagator::new());
        ordercast_bus::trace::start_exporting();
        tracing_opentelemetry::layer().with_tracer(p.tracer("ordercast"))
    });
    tracing_subscriber::registry()
        .with(filter)
        .with(never_secrets())
        .with(fmt)
        .with(otel)
        .try_init()?;
    Ok(Telemetry { provider })
}
