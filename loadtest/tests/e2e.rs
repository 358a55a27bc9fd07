//! The load tester against a real stack (`ordercast all` in-process, real
//! PostgreSQL and Redis, real HTTP, SSE, WebSocket and long-poll): a clean
//! run passes, and a run through a proxy that tampers with what the screens
//! read fails with each violation reported.

use std::time::SystemTime;

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use clap::Parser;
use futures_util::StreamExt;
use ordercast::app::Role as ServerRole;
use ordercast::config::{Cli, Command, serve_settings};
use ordercast_core::Role;
use ordercast_core::auth::{Claims, TokenIssuer};
use ordercast_loadtest::report::Report;
use ordercast_loadtest::run::run;
use ordercast_loadtest::scenario::Scenario;
use tokio::sync::oneshot;

const SECRET: &str = "loadtest-e2e-secret-0123456789-abcdefgh";

/// A running `ordercast all` on a fresh database and Redis prefix.
struct Stack {
    base: String,
    _stop: oneshot::Sender<()>,
}

async fn stack() -> Stack {
    let db = ordercast_testkit::fresh_database().await;
    let cli = Cli::try_parse_from([
        "ordercast",
        "all",
        "--listen=127.0.0.1:0",
        "--admin-listen=127.0.0.1:0",
        &format!("--database-url={db}"),
        &format!("--redis-url={}", ordercast_testkit::redis_url()),
        &format!("--redis-prefix={}", ordercast_testkit::unique_prefix()),
        &format!("--jwt-secret={SECRET}"),
    ])
    .expect("valid flags");
    let Command::All(args) = cli.command else {
        unreachable!("parsed `all`")
    };
    let settings = serve_settings(&args, ServerRole::All).expect("settings");
    let app = ordercast::App::build(settings)
        .await
        .expect("build the app");
    let base = format!("http://127.0.0.1:{}", app.port());
    let (stop, stopped) = oneshot::channel::<()>();
    tokio::spawn(app.run(async move {
        let _ = stopped.await;
    }));
    Stack { base, _stop: stop }
}

#[derive(Parser)]
struct Flags {
    #[command(flatten)]
    scenario: Scenario,
}

fn scenario(api: &str, edge: &str, extra: &[&str]) -> Scenario {
    let mut argv = vec![
        "loadtest".to_owned(),
        format!("--api={api}"),
        format!("--edge={edge}"),
        format!("--jwt-secret={SECRET}"),
        "--quiet".into(),
    ];
    argv.extend(extra.iter().map(|s| s.to_string()));
    Flags::parse_from(argv).scenario
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_small_scenario_with_cut_connections_passes_with_zero_violations() {
    let stack = stack().await;
    let s = scenario(
        &stack.base,
        &stack.base,
        &[
            "--restaurants=3",
            "--kitchens=1",
            "--owners=1",
            "--waiters=2",
            "--customers=2",
            "--sessions=4",
            "--waiter-ids=3",
            "--transports=sse=1,ws=1,poll=1",
            "--rate=8",
            "--step-delay=20ms..80ms",
            "--notification-rate=4",
            "--warmup=1s",
            "--duration=4s",
            "--drop-share=0.3",
            "--drop-every=700ms",
        ],
    );
    let report = passed(s).await;
    let v = &report.verification;
    assert!(v.expected > 200, "too little was checked: {}", v.expected);
    assert_eq!(
        report.writes_lost + report.writes_refused,
        0,
        "{:?}",
        report.first_errors
    );
    assert!(
        report.connections.cut_by_chaos > 0,
        "connections were cut and resumed"
    );
    assert!(report.connections.reconnect.count > 0);
    for t in ["sse", "ws", "poll"] {
        assert!(report.deliveries_by_transport[t] > 0, "{t} delivered");
    }
}

/// The fan-out benchmark's traffic: custom events through the publish
/// endpoint, every one read once by every kitchen screen, with the CPU of
/// the server (this process) per event read.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_publish_lifecycle_delivers_every_custom_event_once_to_every_kitchen() {
    let stack = stack().await;
    let pid = std::process::id().to_string();
    let s = scenario(
        &stack.base,
        &stack.base,
        &[
            "--restaurants=2",
            "--kitchens=3",
            "--owners=0",
            "--waiters=0",
            "--customers=0",
            "--transports=sse=1",
            "--lifecycle=publish",
            "--payload-bytes=256",
            "--rate=40",
            "--notification-rate=0",
            "--warmup=1s",
            "--duration=3s",
            &format!("--pid-tree={pid}"),
        ],
    );
    let report = passed(s).await;
    let v = &report.verification;
    // 40 events/s for 4 s, each read by 3 kitchens.
    assert!(v.expected >= 400, "too little was checked: {}", v.expected);
    assert_eq!(report.writes_lost + report.writes_refused, 0);
    let process = &report.processes[0];
    assert!(process.cpu_measured_s.is_some_and(|cpu| cpu > 0.0));
    assert!(process.cpu_us_per_delivery.is_some_and(|us| us > 0.0));
}

/// Owner token for `rid`: what a leaking edge would serve anyone.
fn owner_token(rid: &str) -> String {
    let now = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    TokenIssuer::hs256(SECRET.as_bytes())
        .unwrap()
        .mint(&Claims {
            sub: "proxy".into(),
            role: Role::Owner,
            restaurants: vec![rid.into()],
            chain_id: None,
            waiter_id: None,
            session_id: None,
            exp: now + 3600,
            iat: Some(now),
            iss: None,
            aud: Some("ordercast".into()),
        })
}

/// An SSE proxy that upgrades every token to the owner's (so customers see
/// other tables' events) and, of every ten events per connection, drops
/// the 3rd, repeats the 5th and swaps the 7th and 8th.
async fn tampering_stream(
    State(upstream): State<String>,
    Path(rid): Path<String>,
    headers: HeaderMap,
) -> Response {
    let mut request = reqwest::Client::new()
        .get(format!("{upstream}/v1/restaurants/{rid}/stream"))
        .bearer_auth(owner_token(&rid));
    if let Some(cursor) = headers.get("last-event-id") {
        request = request.header("last-event-id", cursor);
    }
    let Ok(response) = request.send().await else {
        return Response::builder()
            .status(StatusCode::BAD_GATEWAY)
            .body(Body::empty())
            .unwrap();
    };
    let mut upstream = response.bytes_stream();
    let events = async_stream(move |tx| async move {
        let (mut buf, mut n, mut held) = (Vec::new(), 0, None::<Vec<u8>>);
        while let Some(Ok(chunk)) = upstream.next().await {
            buf.extend_from_slice(&chunk);
            while let Some(end) = buf.windows(2).position(|w| w == b"\n\n") {
                let block: Vec<u8> = buf.drain(..end + 2).collect();
                if !block.windows(5).any(|w| w == b"data:") {
                    continue;
                }
                n += 1;
                let out = match n % 10 {
                    3 => vec![],
                    5 => vec![block.clone(), block],
                    7 => {
                        held = Some(block);
                        vec![]
                    }
                    8 => vec![block, held.take().unwrap_or_default()],
                    _ => vec![block],
                };
                for b in out {
                    if tx.send(Ok::<_, std::io::Error>(b)).await.is_err() {
                        return;
                    }
                }
            }
        }
    });
    Response::builder()
        .header("content-type", "text/event-stream")
        .body(Body::from_stream(events))
        .unwrap()
}

/// A stream fed by a task through a channel.
fn async_stream<T, F, Fut>(f: F) -> impl futures_util::Stream<Item = T>
where
    T: Send + 'static,
    F: FnOnce(tokio::sync::mpsc::Sender<T>) -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let (tx, rx) = tokio::sync::mpsc::channel(64);
    tokio::spawn(f(tx));
    tokio_stream(rx)
}

fn tokio_stream<T>(mut rx: tokio::sync::mpsc::Receiver<T>) -> impl futures_util::Stream<Item = T> {
    futures_util::stream::poll_fn(move |cx| rx.poll_recv(cx))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_verifier_catches_a_tampered_stream_and_fails_the_run() {
    let stack = stack().await;
    let proxy = axum::Router::new()
        .route(
            "/v1/restaurants/{rid}/stream",
            axum::routing::get(tampering_stream),
        )
        .with_state(stack.base.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let proxy_url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, proxy).await });

    let s = scenario(
        &stack.base,
        &proxy_url,
        &[
            "--restaurants=1",
            "--kitchens=1",
            "--owners=0",
            "--waiters=0",
            "--customers=1",
            "--sessions=2",
            "--transports=sse=1",
            "--rate=6",
            "--step-delay=20ms..60ms",
            "--warmup=0s",
            "--duration=3s",
            "--settle=5s",
        ],
    );
    let report = run(s).await.expect("the run happens");
    let v = &report.verification.violations;
    let summary = ordercast_loadtest::report::summary(&report);
    assert!(!report.passed, "{summary}");
    assert!(v.missing >= 1, "the dropped event: {summary}");
    assert!(v.duplicate >= 1, "the repeated event: {summary}");
    assert!(v.reordered >= 1, "the swapped events: {summary}");
    assert!(
        v.foreign_audience >= 1,
        "another table's events at the customer: {summary}"
    );
    for class in ["missing", "duplicate", "reordered", "foreign audience"] {
        assert!(
            v.examples.iter().any(|e| e.starts_with(class)),
            "an example of {class}: {summary}"
        );
    }
    assert!(summary.contains("FAILED"));
}

/// Runs `s` and checks it passed with no delivery violation.
async fn passed(s: Scenario) -> Report {
    let report = run(s).await.expect("the run happens");
    assert!(
        report.passed,
        "{}",
        ordercast_loadtest::report::summary(&report)
    );
    assert_eq!(report.verification.violations.total(), 0);
    report
}
