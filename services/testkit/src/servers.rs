//! Redis and PostgreSQL servers a test owns, to stop and start at will.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::freeze::Frozen;
use crate::{TlsFiles, bindable, eventually, free_port, free_port_where};

pub(crate) fn scratch_dir(kind: &str) -> PathBuf {
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
    tls: Option<RedisTls>,
    child: Option<Child>,
    /// Set while [`RedisServer::freeze`] has it stopped.
    frozen: Option<Frozen>,
}

/// A Redis that speaks only TLS on its port.
struct RedisTls {
    cert: PathBuf,
    key: PathBuf,
    ca_pem: Vec<u8>,
}

impl RedisServer {
    /// Starts `redis-server` (no persistence) and waits until it answers.
    pub async fn spawn() -> RedisServer {
        Self::spawn_with(free_port(), &[]).await
    }

    /// Starts `redis-server` that accepts only TLS connections, with the
    /// server certificate of `files`.
    pub async fn spawn_tls(files: &TlsFiles) -> RedisServer {
        let tls = RedisTls {
            cert: files.cert_file(),
            key: files.key_file(),
            ca_pem: files.ca_pem().to_vec(),
        };
        Self::start_new(free_port(), &[], Some(tls)).await
    }

    /// Starts `redis-server` on `port` with extra command-line `options`.
    async fn spawn_with(port: u16, options: &[&'static str]) -> RedisServer {
        Self::start_new(port, options, None).await
    }

    async fn start_new(port: u16, options: &[&'static str], tls: Option<RedisTls>) -> RedisServer {
        let mut server = RedisServer {
            port,
            dir: scratch_dir("redis"),
            options: options.to_vec(),
            tls,
            child: None,
            frozen: None,
        };
        server.start().await;
        server
    }

    /// `redis://127.0.0.1:<port>`, or `rediss://` when it speaks TLS.
    pub fn url(&self) -> String {
        let scheme = if self.tls.is_some() {
            "rediss"
        } else {
            "redis"
        };
        format!("{scheme}://127.0.0.1:{}", self.port)
    }

    /// The CA that signed its certificate (TLS only).
    pub fn ca_pem(&self) -> Option<Vec<u8>> {
        self.tls.as_ref().map(|tls| tls.ca_pem.clone())
    }

    /// Starts it again on the same port (after [`RedisServer::stop`]).
    pub async fn start(&mut self) {
        assert!(self.child.is_none(), "already running");
        let port = self.port.to_string();
        let mut cmd = Command::new("redis-server");
        cmd.args(["--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]);
        match &self.tls {
            None => cmd.args(["--port", &port]),
            Some(tls) => cmd
                .args([
                    "--port",
                    "0",
                    "--tls-port",
                    &port,
                    "--tls-auth-clients",
                    "no",
                ])
                .arg("--tls-cert-file")
                .arg(&tls.cert)
                .arg("--tls-key-file")
                .arg(&tls.key),
        };
        let child = cmd
            .args(&self.options)
            .arg("--dir")
            .arg(&self.dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start redis-server (installed by `make test`)");
        self.child = Some(child);
        let (url, ca) = (self.url(), self.ca_pem());
        eventually("redis-server to answer", Duration::from_secs(10), || {
            let (url, ca) = (url.clone(), ca.clone());
            async move {
                let mut conn = connect_with(&url, ca).await?;
                redis::cmd("PING")
                    .query_async::<String>(&mut conn)
                    .await
                    .ok()
            }
        })
        .await;
    }

    /// Freezes it (SIGSTOP): connections stay open and new ones are
    /// accepted by the kernel, but nothing answers, until
    /// [`RedisServer::thaw`] (or drop).
    pub fn freeze(&mut self) {
        let child = self.child.as_ref().expect("running");
        assert!(self.frozen.is_none(), "already frozen");
        self.frozen = Some(Frozen::process_tree(child.id()));
    }

    /// Lets a frozen server run again (SIGCONT).
    pub fn thaw(&mut self) {
        self.frozen = None;
    }

    /// Kills it (SIGKILL: an outage, not a goodbye) and waits for the exit.
    pub fn stop(&mut self) {
        self.thaw();
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
    connect_with(url, None).await
}

/// A connection to `url`, trusting `ca` (PEM) for `rediss://`.
async fn connect_with(url: &str, ca: Option<Vec<u8>>) -> Option<redis::aio::MultiplexedConnection> {
    let client = match ca {
        Some(root_cert) => {
            let certificates = redis::TlsCertificates {
                client_tls: None,
                root_cert: Some(root_cert),
            };
            redis::Client::build_with_tls(url, certificates).ok()?
        }
        None => redis::Client::open(url).ok()?,
    };
    client.get_multiplexed_async_connection().await.ok()
}

/// A PostgreSQL cluster of its own, stopped on drop. fsync is off (the OS
/// keeps what a killed server wrote) but commits are synchronous, so a
/// committed transaction survives [`PostgresServer::stop`].
pub struct PostgresServer {
    port: u16,
    dir: PathBuf,
    bin: PathBuf,
    /// Accepts only TLS connections, with this server certificate.
    tls: Option<PostgresTls>,
    /// Runs with `wal_level = logical` (a region's database).
    logical: bool,
    running: bool,
    /// Set while [`PostgresServer::freeze`] has it stopped.
    frozen: Option<Frozen>,
}

struct PostgresTls {
    cert: PathBuf,
    key: PathBuf,
    ca: PathBuf,
}

/// Hands `dir` and what it holds to the `postgres` user when we are root
/// (the server runs as that user then).
pub(crate) fn chown_to_postgres(dir: &Path) {
    if is_root() {
        let ok = Command::new("chown")
            .arg("-R")
            .arg("postgres:")
            .arg(dir)
            .status()
            .map(|s| s.success());
        assert!(
            matches!(ok, Ok(true)),
            "chown {} to postgres",
            dir.display()
        );
    }
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
        Self::spawn_inner(None, false)
    }

    /// Like [`PostgresServer::spawn`], ready to publish and subscribe by
    /// logical replication (a region's database): `wal_level = logical`,
    /// and a subscription that lost its link retries every 500 ms.
    pub async fn spawn_logical() -> PostgresServer {
        Self::spawn_inner(None, true)
    }

    /// Like [`PostgresServer::spawn`], but it accepts only TLS connections
    /// (`hostssl`), with the server certificate of `files`.
    pub async fn spawn_tls(files: &TlsFiles) -> PostgresServer {
        Self::spawn_inner(
            Some(PostgresTls {
                cert: files.cert_file(),
                key: files.key_file(),
                ca: files.ca_file(),
            }),
            false,
        )
    }

    fn spawn_inner(tls: Option<PostgresTls>, logical: bool) -> PostgresServer {
        let bin = PathBuf::from(crate::env("ORDERCAST_TEST_PG_BIN"));
        let dir = scratch_dir("pg");
        chown_to_postgres(&dir);
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
        if tls.is_some() {
            // Rewriting keeps the file's owner.
            std::fs::write(
                data.join("pg_hba.conf"),
                "local all all trust\nhostssl all all 127.0.0.1/32 trust\n",
            )
            .expect("write pg_hba.conf");
        }
        let mut server = PostgresServer {
            port: free_port(),
            dir,
            bin,
            tls,
            logical,
            running: false,
            frozen: None,
        };
        server.start();
        server
    }

    /// `postgres://postgres@127.0.0.1:<port>/postgres`; for a TLS server
    /// with `sslmode=verify-full` and the CA that signed its certificate.
    pub fn admin_url(&self) -> String {
        let url = format!("postgres://postgres@127.0.0.1:{}/postgres", self.port);
        match &self.tls {
            Some(tls) => format!("{url}?sslmode=verify-full&sslrootcert={}", tls.ca.display()),
            None => url,
        }
    }

    /// Starts (or restarts) the server and waits until it accepts connections.
    pub fn start(&mut self) {
        let mut options = format!(
            "-c listen_addresses=127.0.0.1 -c port={} -c unix_socket_directories={} -c fsync=off",
            self.port,
            self.dir.display()
        );
        if self.logical {
            options += " -c wal_level=logical -c wal_retrieve_retry_interval=500ms";
        }
        if let Some(tls) = &self.tls {
            options += &format!(
                " -c ssl=on -c ssl_cert_file={} -c ssl_key_file={}",
                tls.cert.display(),
                tls.key.display()
            );
        }
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

    /// The last `lines` lines of its server log (to explain a failure).
    pub fn log_tail(&self, lines: usize) -> String {
        let log = std::fs::read_to_string(self.dir.join("server.log")).unwrap_or_default();
        let all: Vec<&str> = log.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }

    /// Freezes it (SIGSTOP to the postmaster and every process it
    /// started: backends, WAL writer, checkpointer…): connections stay open
    /// and the kernel accepts new ones, but nothing answers, until
    /// [`PostgresServer::thaw`] (or drop).
    pub fn freeze(&mut self) {
        assert!(self.running, "not running");
        assert!(self.frozen.is_none(), "already frozen");
        self.frozen = Some(Frozen::process_tree(self.postmaster()));
    }

    /// Lets a frozen server run again (SIGCONT).
    pub fn thaw(&mut self) {
        self.frozen = None;
    }

    /// The postmaster's PID: the first line of `postmaster.pid`.
    fn postmaster(&self) -> u32 {
        let pid_file = self.dir.join("data").join("postmaster.pid");
        let text = std::fs::read_to_string(&pid_file).expect("read postmaster.pid");
        text.lines()
            .next()
            .and_then(|line| line.trim().parse().ok())
            .expect("postmaster.pid starts with the postmaster's PID")
    }

    /// Stops it at once (`-m immediate`: like a crash) and waits.
    pub fn stop(&mut self) {
        self.thaw();
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
