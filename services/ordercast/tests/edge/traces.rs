//! Traces as a collector receives them: the real binaries exporting over
//! OTLP/HTTP to a receiver of the test's own, decoded as the collector
//! would.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::routing::post;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
use opentelemetry_proto::tonic::trace::v1::span::SpanKind;
use ordercast_core::{RestaurantId, Role};
use ordercast_testkit::eventually;
use prost::Message;
use reqwest::StatusCode;

use crate::clients::{Resume, Sse};
use crate::common::process::Process;
use crate::common::{Backends, mint, simple_order};

/// Every OTLP export request received.
type Received = Arc<Mutex<Vec<ExportTraceServiceRequest>>>;

/// An OTLP/HTTP trace receiver on port 0; answers every export with an
/// empty (default) response.
async fn receiver() -> (String, Received) {
    let received = Received::default();
    let record = |State(received): State<Received>, body: Bytes| async move {
        let request = ExportTraceServiceRequest::decode(body).expect("an OTLP trace export");
        received.lock().unwrap().push(request);
    };
    let app = Router::new()
        .route("/v1/traces", post(record))
        .with_state(received.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    (format!("http://{address}"), received)
}

/// A span as the receiver got it, with its process's resource.
#[derive(Clone, Debug)]
struct Exported {
    service: String,
    instance: Option<String>,
    name: String,
    kind: i32,
    trace_id: Vec<u8>,
    span_id: Vec<u8>,
    parent_span_id: Vec<u8>,
    attributes: HashMap<String, String>,
    /// (trace id, span id) of each link.
    links: Vec<(Vec<u8>, Vec<u8>)>,
}

fn text(value: Option<&AnyValue>) -> String {
    match value.and_then(|v| v.value.as_ref()) {
        Some(any_value::Value::StringValue(s)) => s.clone(),
        Some(any_value::Value::IntValue(i)) => i.to_string(),
        Some(any_value::Value::BoolValue(b)) => b.to_string(),
        other => format!("{other:?}"),
    }
}

fn attributes(pairs: &[KeyValue]) -> HashMap<String, String> {
    pairs
        .iter()
        .map(|kv| (kv.key.clone(), text(kv.value.as_ref())))
        .collect()
}

fn spans(received: &Received) -> Vec<Exported> {
    let received = received.lock().unwrap();
    let mut all = Vec::new();
    for resource_spans in received.iter().flat_map(|r| &r.resource_spans) {
        let resource = attributes(
            resource_spans
                .resource
                .as_ref()
                .map_or(&[][..], |r| &r.attributes),
        );
        for span in resource_spans.scope_spans.iter().flat_map(|s| &s.spans) {
            all.push(Exported {
                service: resource.get("service.name").cloned().unwrap_or_default(),
                instance: resource.get("service.instance.id").cloned(),
                name: span.name.clone(),
                kind: span.kind,
                trace_id: span.trace_id.clone(),
                span_id: span.span_id.clone(),
                parent_span_id: span.parent_span_id.clone(),
                attributes: attributes(&span.attributes),
                links: span
                    .links
                    .iter()
                    .map(|l| (l.trace_id.clone(), l.span_id.clone()))
                    .collect(),
            });
        }
    }
    all
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// What every process of the test sets to export its spans at once.
fn exporting_to(endpoint: &str) -> [(&'static str, &str); 2] {
    [
        ("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint),
        ("OTEL_BSP_SCHEDULE_DELAY", "100"),
    ]
}

/// An edge names itself `ordercast-edge`, and its request span carries
/// OpenTelemetry's HTTP attribute names, named by method and route.
#[tokio::test]
async fn an_edge_exports_its_request_spans_as_ordercast_edge_with_http_attributes() {
    let (endpoint, received) = receiver().await;
    let backends = Backends::fresh().await;
    let edge = Process::start("edge", &backends, &exporting_to(&endpoint)).await;
    let events = format!(
        "{}/v1/restaurants/{}/events?wait=0",
        edge.base,
        RestaurantId::new()
    );
    let response = reqwest::get(&events).await.unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);

    let span = eventually("the request's span", Duration::from_secs(30), || async {
        spans(&received)
            .into_iter()
            .find(|s| s.name == "GET /v1/restaurants/{rid}/events")
    })
    .await;
    assert_eq!(span.service, "ordercast-edge");
    assert_eq!(span.kind, SpanKind::Server as i32);
    assert_eq!(span.attributes["http.request.method"], "GET");
    assert_eq!(
        span.attributes["http.route"],
        "/v1/restaurants/{rid}/events"
    );
    assert!(span.attributes["url.path"].starts_with("/v1/restaurants/"));
    assert_eq!(span.attributes["http.response.status_code"], "401");
    assert!(
        spans(&received)
            .iter()
            .all(|s| s.service != "ordercast-api")
    );
}

/// One order, one trace: the api's request span, its PostgreSQL and Redis
/// spans as children, and on each edge (other processes) a delivery span
/// linked to the request through the event's `traceparent`.
#[tokio::test]
async fn an_orders_trace_reaches_from_the_api_request_through_postgres_and_redis_to_each_edge() {
    let (endpoint, received) = receiver().await;
    let backends = Backends::fresh().await;
    let api = Process::start("api", &backends, &exporting_to(&endpoint)).await;
    let mut edges = Vec::new();
    for instance in ["edge-a", "edge-b"] {
        let resource = format!("service.instance.id={instance}");
        let mut env = exporting_to(&endpoint).to_vec();
        env.push(("OTEL_RESOURCE_ATTRIBUTES", &resource));
        edges.push(Process::start("edge", &backends, &env).await);
    }

    let http = reqwest::Client::new();
    let rid = api.create_restaurant("Traced").await;
    let kitchen = mint(Role::Kitchen, vec![rid.to_string()], |_| {});
    let owner = mint(Role::Owner, vec![rid.to_string()], |_| {});
    let mut screens = Vec::new();
    for edge in &edges {
        screens.push(Sse::connect(&edge.base, rid, &kitchen, Resume::default()).await);
    }

    // The caller's own trace: the api's span continues it.
    let (trace_id, caller_span) = ("4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7");
    let status = http
        .post(format!("{}/v1/restaurants/{rid}/orders", api.base))
        .bearer_auth(&owner)
        .header("traceparent", format!("00-{trace_id}-{caller_span}-01"))
        .json(&simple_order())
        .send()
        .await
        .unwrap()
        .status();
    assert_eq!(status, StatusCode::CREATED);
    for screen in &mut screens {
        screen
            .until("the order", |s| {
                s.events.iter().any(|e| e.kind == "order.created")
            })
            .await;
    }

    let request = eventually(
        "the api's request span",
        Duration::from_secs(30),
        || async {
            spans(&received).into_iter().find(|s| {
                hex(&s.trace_id) == trace_id && s.name == "POST /v1/restaurants/{rid}/orders"
            })
        },
    )
    .await;
    assert_eq!(request.service, "ordercast-api");
    assert_eq!(request.kind, SpanKind::Server as i32);
    assert_eq!(hex(&request.parent_span_id), caller_span);
    let child_on = |system: &'static str| {
        let (received, request) = (&received, &request);
        move || async move {
            spans(received).into_iter().find(|s| {
                s.parent_span_id == request.span_id
                    && s.attributes.get("db.system.name").map(String::as_str) == Some(system)
            })
        }
    };
    let insert = eventually(
        "the PostgreSQL span",
        Duration::from_secs(30),
        child_on("postgresql"),
    )
    .await;
    assert_eq!(insert.name, "INSERT orders");
    assert_eq!(insert.kind, SpanKind::Client as i32);
    assert_eq!(insert.trace_id, request.trace_id);
    let xadd = eventually("the Redis span", Duration::from_secs(30), child_on("redis")).await;
    assert_eq!(xadd.name, "XADD");
    assert_eq!(xadd.service, "ordercast-api");
    assert_eq!(xadd.attributes["ordercast.restaurant_id"], rid.to_string());

    let link = (request.trace_id.clone(), request.span_id.clone());
    for instance in ["edge-a", "edge-b"] {
        let delivery = eventually(
            &format!("{instance}'s delivery span"),
            Duration::from_secs(30),
            || async {
                spans(&received)
                    .into_iter()
                    .find(|s| s.instance.as_deref() == Some(instance) && s.links.contains(&link))
            },
        )
        .await;
        assert_eq!(delivery.service, "ordercast-edge");
        assert_eq!(delivery.name, "deliver");
        assert_eq!(delivery.kind, SpanKind::Consumer as i32);
        assert_eq!(
            delivery.attributes["ordercast.restaurant_id"],
            rid.to_string()
        );
    }
}
