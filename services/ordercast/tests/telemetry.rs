//! Traces as a collector receives them: the real binary exporting over
//! OTLP/HTTP to a receiver of the test's own.

use std::process::{Child, Command};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::routing::post;
use ordercast_testkit::{eventually, free_port};

/// Every OTLP export request body received (protobuf).
type Received = Arc<Mutex<Vec<Bytes>>>;

/// An OTLP/HTTP trace receiver on port 0; answers every export with an
/// empty (default) response.
async fn receiver() -> (String, Received) {
    let received = Received::default();
    let record = |State(received): State<Received>, body: Bytes| async move {
        received.lock().unwrap().push(body);
    };
    let app = Router::new()
        .route("/v1/traces", post(record))
        .with_state(received.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    (format!("http://{address}"), received)
}

/// Kills the process when the test ends, however it ends.
struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// An edge names itself `ordercast-edge`, and its request span carries
/// OpenTelemetry's HTTP attribute names, named by method and route.
#[tokio::test]
async fn an_edge_exports_its_request_spans_as_ordercast_edge_with_http_attributes() {
    let (endpoint, received) = receiver().await;
    let (public, admin) = (free_port(), free_port());
    let process = Command::new(env!("CARGO_BIN_EXE_ordercast"))
        .arg("edge")
        .env_clear()
        .env(
            "ORDERCAST_DATABASE_URL",
            ordercast_testkit::fresh_database().await,
        )
        .env("ORDERCAST_REDIS_URL", ordercast_testkit::redis_url())
        .env(
            "ORDERCAST_JWT_SECRET",
            "telemetry-test-secret-at-least-32-bytes",
        )
        .env("ORDERCAST_LISTEN", format!("127.0.0.1:{public}"))
        .env("ORDERCAST_ADMIN_LISTEN", format!("127.0.0.1:{admin}"))
        .env("OTEL_EXPORTER_OTLP_ENDPOINT", &endpoint)
        .env("OTEL_BSP_SCHEDULE_DELAY", "100")
        .spawn()
        .expect("start the binary");
    let _process = Killed(process);
    let client = reqwest::Client::new();
    let events = format!(
        "http://127.0.0.1:{public}/v1/restaurants/{}/events?wait=0",
        uuid::Uuid::new_v4()
    );
    eventually("the edge to answer", Duration::from_secs(30), || async {
        let response = client.get(&events).send().await.ok()?;
        (response.status() == reqwest::StatusCode::UNAUTHORIZED).then_some(())
    })
    .await;

    let has = |body: &[u8], text: &str| body.windows(text.len()).any(|w| w == text.as_bytes());
    let wanted = [
        "ordercast-edge",
        "GET /v1/restaurants/{rid}/events",
        "http.request.method",
        "http.route",
        "url.path",
        "http.response.status_code",
    ];
    eventually("the request's span", Duration::from_secs(30), || async {
        let received = received.lock().unwrap();
        received
            .iter()
            .any(|body| wanted.iter().all(|text| has(body, text)))
            .then_some(())
    })
    .await;
    let received = received.lock().unwrap();
    assert!(!received.iter().any(|body| has(body, "ordercast-api")));
}
