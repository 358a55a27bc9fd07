//! Redis and PostgreSQL servers a test owns, to stop and start at will.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::{bindable, eventually, free_port, free_port_where};

fn scratch_dir(kind: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "ordercast-{kind}-{}",
        uuid::Uuid::new_v4().simple()
    ));
    std::fs::create_dir_all(&dir).expect("create scratch dir");
    dir
}

/// A Redis server on its own loopback port, killed on drop.
pub struct RedisServer {
    port: u16,
    dir: PathBuf,
    options: Vec<&'static str>,
    child: Option<Child>,
}

impl RedisServer {
    /// Starts `redis-server` (no persistence) and waits until it answers.
    pub async fn spawn() -> RedisServer {
        Self::spawn_with(free_port(), &[]).await
    }

    /// Starts `redis-server` on `port` with extra command-line `options`.
    async fn spawn_with(port: u16, options: &[&'static str]) -> RedisServer {
        let mut server = RedisServer {
            port,
            dir: scratch_dir("redis"),
            options: options.to_vec(),
            child: None,
        };
        server.start().await;
        server
    }

    /// `redis://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Starts it again on the same port (after [`RedisServer::stop`]).
    pub async fn start(&mut self) {
        assert!(self.child.is_none(), "already running");
        let child = Command::new("redis-server")
            .args([
                "--bind",
                "127.0.0.1",
                "--port",
                &self.port.to_string(),
                "--save",
                "",
                "--appendonly",
                "no",
            ])
            .args(&self.options)
            .arg("--dir")
            .arg(&self.dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start redis-server (installed by `make test`)");
        self.child = Some(child);
        let url = self.url();
        eventually("redis-server to answer", Duration::from_secs(10), || {
            let url = url.clone();
            async move {
                let mut conn = connect(&url).await?;
                redis::cmd("PING")
                    .query_async::<String>(&mut conn)
                    .await
                    .ok()
            }
        })
        .await;
    }

    /// Kills it (SIGKILL: an outage, not a goodbye) and waits for the exit.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.stop();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A Redis Cluster of three primaries (no replicas) on loopback ports, made
/// with `redis-cli --cluster create`; killed on drop.
pub struct RedisCluster {
    nodes: Vec<RedisServer>,
}

impl RedisCluster {
    /// Starts the nodes, spreads the 16 384 slots over them and waits until
    /// every node reports the cluster healthy.
    pub async fn spawn() -> RedisCluster {
        let mut nodes = Vec::new();
        for _ in 0..3 {
            let options = [
                "--cluster-enabled",
                "yes",
                "--cluster-config-file",
                "nodes.conf",
                "--cluster-node-timeout",
                "2000",
            ];
            // The node's cluster bus listens on port + 10000.
            let port = free_port_where(|p| bindable(p + 10_000));
            nodes.push(RedisServer::spawn_with(port, &options).await);
        }
        let cluster = RedisCluster { nodes };
        let addrs: Vec<String> = cluster
            .nodes
            .iter()
            .map(|n| format!("127.0.0.1:{}", n.port))
            .collect();
        let created = tokio::task::spawn_blocking(move || {
            Command::new("redis-cli")
                .args(["--cluster", "create"])
                .args(&addrs)
                .args(["--cluster-replicas", "0", "--cluster-yes"])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
        })
        .await
        .expect("join redis-cli");
        assert!(
            matches!(created, Ok(s) if s.success()),
            "redis-cli --cluster create failed"
        );
        cluster.until_healthy().await;
        cluster
    }

    /// Waits until every node reports the cluster healthy.
    async fn until_healthy(&self) {
        for url in self.node_urls() {
            eventually("the cluster to be healthy", Duration::from_secs(20), || {
                let url = url.clone();
                async move {
                    let mut conn = connect(&url).await?;
                    let info: String = redis::cmd("CLUSTER")
                        .arg("INFO")
                        .query_async(&mut conn)
                        .await
                        .ok()?;
                    info.contains("cluster_state:ok").then_some(())
                }
            })
            .await;
        }
    }

    /// Kills node `i` (SIGKILL; it loses its data, keeps its slots).
    pub fn stop_node(&mut self, i: usize) {
        self.nodes[i].stop();
    }

    /// Starts node `i` again and waits until the cluster is healthy.
    pub async fn start_node(&mut self, i: usize) {
        self.nodes[i].start().await;
        self.until_healthy().await;
    }

    /// Kills every node.
    pub fn stop(&mut self) {
        self.nodes.iter_mut().for_each(RedisServer::stop);
    }

    /// Starts every node again and waits until the cluster is healthy.
    pub async fn start(&mut self) {
        for node in &mut self.nodes {
            node.start().await;
        }
        self.until_healthy().await;
    }

    /// Every node's `redis://` URL.
    pub fn node_urls(&self) -> Vec<String> {
        self.nodes.iter().map(RedisServer::url).collect()
    }

    /// The node URLs, comma-separated (as `ORDERCAST_REDIS_URL` takes them).
    pub fn url(&self) -> String {
        self.node_urls().join(",")
    }

    /// The node that holds `key`'s slot (the one that answers a command on
    /// it rather than redirecting).
    pub async fn node_of(&self, key: &str) -> usize {
        for (i, url) in self.node_urls().iter().enumerate() {
            let mut conn = connect(url).await.expect("connect to a cluster node");
            let here: redis::RedisResult<i64> =
                redis::cmd("EXISTS").arg(key).query_async(&mut conn).await;
            if here.is_ok() {
                return i;
            }
        }
        panic!("no node holds the slot of {key}")
    }
}

async fn connect(url: &str) -> Option<redis::aio::MultiplexedConnection> {
    let client = redis::Client::open(url).ok()?;
    client.get_multiplexed_async_connection().await.ok()
}

/// A PostgreSQL cluster of its own, stopped on drop. fsync is off (the OS
/// keeps what a killed server wrote) but commits are synchronous, so a
/// committed transaction survives [`PostgresServer::stop`].
pub struct PostgresServer {
    port: u16,
    dir: PathBuf,
    bin: PathBuf,
    running: bool,
}

fn as_postgres(program: &Path) -> Command {
    // PostgreSQL refuses to run as root; `make test` may well be root in CI.
    if is_root() {
        let mut cmd = Command::new("runuser");
        cmd.args(["-u", "postgres", "--"]).arg(program);
        cmd
    } else {
        Command::new(program)
    }
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

impl PostgresServer {
    /// Initialises and starts a cluster; the superuser is `postgres`, trusted.
    pub async fn spawn() -> PostgresServer {
        let bin = PathBuf::from(crate::env("ORDERCAST_TEST_PG_BIN"));
        let dir = scratch_dir("pg");
        if is_root() {
            let ok = Command::new("chown")
                .arg("postgres:")
                .arg(&dir)
                .status()
                .map(|s| s.success());
            assert!(matches!(ok, Ok(true)), "chown the scratch dir to postgres");
        }
        let data = dir.join("data");
        let status = as_postgres(&bin.join("initdb"))
            .arg("-D")
            .arg(&data)
            .args([
                "-U",
                "postgres",
                "--auth=trust",
                "--no-locale",
                "-E",
                "UTF8",
            ])
            .stdout(Stdio::null())
            .status()
            .expect("run initdb");
        assert!(status.success(), "initdb failed");
        let mut server = PostgresServer {
            port: free_port(),
            dir,
            bin,
            running: false,
        };
        server.start();
        server
    }

    /// `postgres://postgres@127.0.0.1:<port>/postgres`.
    pub fn admin_url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    /// Starts (or restarts) the server and waits until it accepts connections.
    pub fn start(&mut self) {
        let options = format!(
            "-c listen_addresses=127.0.0.1 -c port={} -c unix_socket_directories={} -c fsync=off",
            self.port,
            self.dir.display()
        );
        let status = as_postgres(&self.bin.join("pg_ctl"))
            .arg("-D")
            .arg(self.dir.join("data"))
            .arg("-l")
            .arg(self.dir.join("server.log"))
            .args(["-o", &options, "-w", "-t", "60", "start"])
            .stdout(Stdio::null())
            .status()
            .expect("run pg_ctl start");
        assert!(status.success(), "pg_ctl start failed");
        self.running = true;
    }

    /// Stops it at once (`-m immediate`: like a crash) and waits.
    pub fn stop(&mut self) {
        if !self.running {
            return;
        }
        let _ = as_postgres(&self.bin.join("pg_ctl"))
            .arg("-D")
            .arg(self.dir.join("data"))
            .args(["-m", "immediate", "-w", "stop"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        self.running = false;
    }
}

impl Drop for PostgresServer {
    fn drop(&mut self) {
        self.stop();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
