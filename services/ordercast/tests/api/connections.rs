//! Deadlines and connection limits of the two ports: slow bodies and idle
//! admin connections are cut, and while they are open other clients are
//! still answered.

use std::net::SocketAddr;
use std::time::Duration;

use ordercast::app::Role as ServerRole;
use ordercast_core::Role;
use ordercast_http::AdmissionLimits;
use reqwest::StatusCode;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

use crate::common::{ADMIN_TOKEN, Backends, TestApp};

/// Long enough for any connection here to be cut or answered.
const ENDS_WITHIN: Duration = Duration::from_secs(30);

/// A connection to `url`'s port from `from` (another address in
/// 127.0.0.0/8 is another client).
async fn connect(url: &str, from: &str) -> TcpStream {
    let to: SocketAddr = url.trim_start_matches("http://").parse().unwrap();
    let socket = TcpSocket::new_v4().unwrap();
    socket.bind(format!("{from}:0").parse().unwrap()).unwrap();
    socket.connect(to).await.unwrap()
}

/// What the server sent on `tcp` until it closed it (or reset it).
async fn until_closed(mut tcp: TcpStream) -> String {
    let mut got = Vec::new();
    let read = tcp.read_to_end(&mut got);
    tokio::time::timeout(ENDS_WITHIN, read)
        .await
        .expect("the server never closed the connection")
        .ok();
    String::from_utf8_lossy(&got).into_owned()
}

/// Sends an order's head and then its body a byte every 200 ms, never
/// finishing it; returns what the server answered before it closed.
async fn slow_body(app: &TestApp, path: &str, token: &str) -> tokio::task::JoinHandle<String> {
    let tcp = connect(&app.base, "127.0.0.2").await;
    let path = path.to_owned();
    let token = token.to_owned();
    tokio::spawn(async move {
        let (mut read, mut write) = tcp.into_split();
        let head = format!(
            "POST {path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\n\
             Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n{{"
        );
        let trickle = tokio::spawn(async move {
            let _ = write.write_all(head.as_bytes()).await;
            loop {
                tokio::time::sleep(Duration::from_millis(200)).await;
                if write.write_all(b" ").await.is_err() {
                    break;
                }
            }
        });
        let mut got = Vec::new();
        let answered = tokio::time::timeout(ENDS_WITHIN, read.read_to_end(&mut got)).await;
        trickle.abort();
        assert!(answered.is_ok(), "a slow body was never cut");
        String::from_utf8_lossy(&got).into_owned()
    })
}

#[tokio::test]
async fn slow_bodies_are_cut_at_their_deadline_and_never_lock_other_clients_out() {
    let app = TestApp::spawn_with(Backends::fresh().await, ServerRole::All, |s| {
        s.server.body_timeout = Duration::from_secs(3);
        s.connections.public = AdmissionLimits {
            pending: 12,
            per_address: Some(8),
        };
    })
    .await;
    let rid = app.create_restaurant().await;
    let owner = app.token(Role::Owner, rid);
    let orders = format!("/v1/restaurants/{rid}/orders");

    // One client (127.0.0.2) opens more slow bodies than the port holds.
    let mut slow = Vec::new();
    for _ in 0..20 {
        slow.push(slow_body(&app, &orders, &owner).await);
    }
    // Another (127.0.0.1) is answered while they are open.
    let (status, body) = app.get(&orders, &owner).await;
    assert_eq!(status, StatusCode::OK, "{body}");

    // Each slow body is refused at the door or cut by its deadline.
    let mut timed_out = 0;
    for connection in slow {
        let answer = connection.await.unwrap();
        if answer.starts_with("HTTP/1.1 408") {
            assert!(answer.contains("request-timeout"), "{answer}");
            timed_out += 1;
        } else {
            assert!(
                answer.is_empty() || answer.starts_with("HTTP/1.1 503"),
                "{answer}"
            );
        }
    }
    assert!(timed_out >= 1, "no slow body was answered 408");
    let refused = r#"ordercast_connections_refused_total{port="public",reason="address"}"#;
    assert!(app.metric(refused).await >= 1.0);
    // Nothing of theirs was written; the port serves as before.
    assert_eq!(
        app.count("SELECT count(*) FROM orders WHERE restaurant_id = $1", rid)
            .await,
        0
    );
    let (status, _) = app.get(&orders, &owner).await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn idle_admin_connections_are_capped_and_cut_and_the_public_port_keeps_answering() {
    let app = TestApp::spawn_with(Backends::fresh().await, ServerRole::All, |s| {
        s.server.handshake_timeout = Duration::from_secs(2);
        s.connections.admin = AdmissionLimits {
            pending: 4,
            per_address: None,
        };
    })
    .await;
    let rid = app.create_restaurant().await;
    let owner = app.token(Role::Owner, rid);

    // Connections that never send a byte, ten times what the admin port holds.
    let mut idle = Vec::new();
    for _ in 0..40 {
        idle.push(connect(&app.admin, "127.0.0.1").await);
    }
    let (status, body) = app
        .get(&format!("/v1/restaurants/{rid}/orders"), &owner)
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");

    // Those beyond the cap are closed at once, the others at the deadline.
    for tcp in idle {
        let answer = until_closed(tcp).await;
        assert!(
            answer.is_empty() || answer.starts_with("HTTP/1.1 503"),
            "{answer}"
        );
    }
    let refused = r#"ordercast_connections_refused_total{port="admin",reason="pending"}"#;
    assert!(app.metric(refused).await >= 1.0);
    let (status, _) = app.get_admin_as("/healthz", None).await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn debug_pages_need_the_admin_token_and_probes_do_not() {
    let app = TestApp::spawn().await;
    for open in ["/healthz", "/readyz", "/metrics"] {
        let response = app
            .client
            .get(format!("{}{open}", app.admin))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK, "{open}");
    }
    for debug in ["/debug/stats", "/debug/undelivered"] {
        let (status, problem) = app.get_admin_as(debug, None).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{debug}");
        assert_eq!(
            problem["type"],
            "https://ordercast.dev/problems/unauthorized"
        );
        let wrong = format!("{ADMIN_TOKEN}x");
        let (status, _) = app.get_admin_as(debug, Some(&wrong)).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{debug}");
        let (status, body) = app.get_admin(debug).await;
        assert_eq!(status, StatusCode::OK, "{debug}: {body}");
    }

    // Without a configured token, /debug/* does not exist.
    let off = TestApp::spawn_with(Backends::fresh().await, ServerRole::All, |s| {
        s.admin_token = None;
    })
    .await;
    let (status, _) = off.get_admin("/debug/undelivered").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}
