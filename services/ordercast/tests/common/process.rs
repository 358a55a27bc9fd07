//! The real binary in a process of its own, for what only a process shows:
//! its log, its exported spans. Killed when the test ends, however it ends.

use std::path::PathBuf;
use std::process::{Child, Command};
use std::time::Duration;

use ordercast_core::{RestaurantId, Role};
use ordercast_testkit::{eventually, free_port};
use reqwest::StatusCode;

use super::{ADMIN_TOKEN, Backends, SECRET, mint};

pub struct Process {
    child: Child,
    log: PathBuf,
    /// The public port's base URL.
    pub base: String,
}

impl Process {
    /// `ordercast <role>` on `backends`, with `env` on top of what it needs
    /// to run; returns once it is ready.
    pub async fn start(role: &str, backends: &Backends, env: &[(&str, &str)]) -> Process {
        let (port, admin) = (free_port(), free_port());
        let log = std::env::temp_dir().join(format!("ordercast-{}-{port}.log", backends.prefix));
        let file = std::fs::File::create(&log).unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_ordercast"))
            .arg(role)
            .env_clear()
            .env("ORDERCAST_LISTEN", format!("127.0.0.1:{port}"))
            .env("ORDERCAST_ADMIN_LISTEN", format!("127.0.0.1:{admin}"))
            .env("ORDERCAST_DATABASE_URL", &backends.database_url)
            .env("ORDERCAST_REDIS_URL", &backends.redis_url)
            .env("ORDERCAST_REDIS_PREFIX", &backends.prefix)
            .env("ORDERCAST_JWT_SECRET", SECRET)
            .env("ORDERCAST_ADMIN_TOKEN", ADMIN_TOKEN)
            .envs(env.iter().copied())
            .stdout(file.try_clone().unwrap())
            .stderr(file)
            .spawn()
            .unwrap();
        let process = Process {
            child,
            log,
            base: format!("http://127.0.0.1:{port}"),
        };
        let ready = format!("http://127.0.0.1:{admin}/readyz");
        eventually(
            &format!("`ordercast {role}` to be ready"),
            Duration::from_secs(30),
            || async {
                let response = reqwest::get(&ready).await.ok()?;
                (response.status() == StatusCode::OK).then_some(())
            },
        )
        .await;
        process
    }

    /// A restaurant created through this process (an api role).
    pub async fn create_restaurant(&self, name: &str) -> RestaurantId {
        let admin = mint(Role::Admin, vec!["*".into()], |_| {});
        let created: serde_json::Value = reqwest::Client::new()
            .post(format!("{}/v1/restaurants", self.base))
            .bearer_auth(&admin)
            .json(&serde_json::json!({ "name": name }))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        created["id"].as_str().unwrap().parse().unwrap()
    }

    /// An order created through this process with `token`.
    pub async fn create_order(&self, rid: RestaurantId, token: &str) {
        let status = reqwest::Client::new()
            .post(format!("{}/v1/restaurants/{rid}/orders", self.base))
            .bearer_auth(token)
            .json(&super::simple_order())
            .send()
            .await
            .unwrap()
            .status();
        assert_eq!(status, StatusCode::CREATED);
    }

    /// Everything it logged so far.
    pub fn log(&self) -> String {
        String::from_utf8_lossy(&std::fs::read(&self.log).unwrap()).into_owned()
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_file(&self.log);
    }
}
