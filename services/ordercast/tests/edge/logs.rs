//! What a process writes to its log, read as someone who got hold of it.

use std::process::{Child, Command};
use std::time::Duration;

use ordercast_core::{RestaurantId, Role};
use ordercast_testkit::{eventually, free_port};
use reqwest::StatusCode;
use serde_json::json;

use crate::clients::Ws;
use crate::common::{Backends, SECRET, mint, simple_order};

/// `ordercast all` in a process of its own, its log in a file; killed on
/// drop.
struct Logged {
    child: Child,
    log: std::path::PathBuf,
    base: String,
}

impl Logged {
    async fn start(backends: &Backends, rust_log: &str) -> Logged {
        let (port, admin) = (free_port(), free_port());
        let log = std::env::temp_dir().join(format!("ordercast-{}.log", backends.prefix));
        let file = std::fs::File::create(&log).unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_ordercast"))
            .arg("all")
            .env_clear()
            .env("RUST_LOG", rust_log)
            .env("ORDERCAST_LISTEN", format!("127.0.0.1:{port}"))
            .env("ORDERCAST_ADMIN_LISTEN", format!("127.0.0.1:{admin}"))
            .env("ORDERCAST_DATABASE_URL", &backends.database_url)
            .env("ORDERCAST_REDIS_URL", &backends.redis_url)
            .env("ORDERCAST_REDIS_PREFIX", &backends.prefix)
            .env("ORDERCAST_JWT_SECRET", SECRET)
            .stdout(file.try_clone().unwrap())
            .stderr(file)
            .spawn()
            .unwrap();
        let ready = format!("http://127.0.0.1:{admin}/readyz");
        eventually(
            "the process to be ready",
            Duration::from_secs(30),
            || async {
                let response = reqwest::get(&ready).await.ok()?;
                (response.status() == StatusCode::OK).then_some(())
            },
        )
        .await;
        Logged {
            child,
            log,
            base: format!("http://127.0.0.1:{port}"),
        }
    }

    /// Everything logged so far.
    fn log(&self) -> String {
        String::from_utf8_lossy(&std::fs::read(&self.log).unwrap()).into_owned()
    }
}

impl Drop for Logged {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_file(&self.log);
    }
}

#[tokio::test]
async fn no_token_reaches_the_log_even_at_trace_level() {
    let backends = Backends::fresh().await;
    let process = Logged::start(&backends, "trace").await;
    let http = reqwest::Client::new();
    let admin = mint(Role::Admin, vec!["*".into()], |_| {});
    let created: serde_json::Value = http
        .post(format!("{}/v1/restaurants", process.base))
        .bearer_auth(&admin)
        .json(&json!({"name": "Logged"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let rid: RestaurantId = created["id"].as_str().unwrap().parse().unwrap();
    let kitchen = mint(Role::Kitchen, vec![rid.to_string()], |_| {});
    let refreshed = mint(Role::Kitchen, vec![rid.to_string()], |c| {
        c.exp += 60;
    });
    let owner = mint(Role::Owner, vec![rid.to_string()], |_| {});

    // A token in each place one travels: a WebSocket handshake, a frame,
    // an Authorization header, a query string.
    let mut ws = Ws::connect(&process.base, &kitchen).await;
    ws.subscribe(rid, None).await;
    ws.send(json!({"type": "refresh", "token": refreshed}))
        .await;
    ws.until("refreshed", |w| !w.of_type("refreshed").is_empty())
        .await;
    let status = http
        .post(format!("{}/v1/restaurants/{rid}/orders", process.base))
        .bearer_auth(&owner)
        .json(&simple_order())
        .send()
        .await
        .unwrap()
        .status();
    assert_eq!(status, StatusCode::CREATED);
    ws.until("the order", |w| !w.of_type("event").is_empty())
        .await;
    let status = http
        .get(format!(
            "{}/v1/restaurants/{rid}/events?access_token={owner}&wait=0",
            process.base
        ))
        .send()
        .await
        .unwrap()
        .status();
    assert_eq!(status, StatusCode::OK);

    let log = process.log();
    // The default is info; these lines show RUST_LOG was taken.
    assert!(log.contains(r#""level":"DEBUG""#), "RUST_LOG=trace taken");
    for (name, token) in [
        ("handshake", &kitchen),
        ("refresh", &refreshed),
        ("owner", &owner),
    ] {
        let signature = token.rsplit('.').next().unwrap();
        assert!(!log.contains(signature), "the {name} token is in the log");
    }
}
