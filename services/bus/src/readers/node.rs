//! A shard reader's task: connect to the node that holds the shard, loop on
//! `XREAD BLOCK`, follow `MOVED`, pause (degraded) when Redis fails.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use ordercast_core::Seq;
use ordercast_core::backoff::Backoff;
use redis::aio::MultiplexedConnection;
use redis::streams::{StreamReadOptions, StreamReadReply};
use redis::{AsyncConnectionConfig, ConnectionAddr, ConnectionInfo};
use tracing::Instrument;

use super::{Follower, Reader};
use crate::{Entry, entry_id};

/// Longest a reader blocks in one `XREAD` (it is woken earlier whenever its
/// set of streams changes). Short, because an `XREAD` that has not answered
/// within this plus the Redis deadline counts as failed: a Redis that hangs
/// instead of refusing (a stopped process, a black-holed network) degrades
/// the shard to PostgreSQL polling within that time, as a refused
/// connection does at once. An idle reader costs one `XREAD` a second.
const BLOCK: Duration = Duration::from_secs(1);
/// Most entries one `XREAD` returns.
const COUNT: usize = 1_000;
/// Most `MOVED` redirects followed in a row without a pause (two nodes may
/// disagree for a moment while a slot migrates).
const MAX_REDIRECTS: u32 = 3;

/// Why a reader stopped reading from a node.
enum Interrupted {
    /// The reader was stopped.
    Stopped,
    /// The node could not be reached.
    Unreachable,
    /// The node does not hold the shard; this one does.
    Moved(Box<ConnectionInfo>),
    /// A command failed (connection lost, cluster down, …).
    Failed,
}

/// The reader task: reads from a node until interrupted, then moves on to
/// the node a `MOVED` names, or pauses (degraded) and tries again, the next
/// seed if the node was unreachable.
pub(super) async fn read<F: Follower>(
    reader: Arc<Reader<F>>,
    seeds: Arc<[ConnectionInfo]>,
    timeout: Duration,
) {
    let span = tracing::info_span!("shard_reader", shard = %reader.shard);
    read_until_stopped(&reader, &seeds, timeout)
        .instrument(span)
        .await;
    if reader.degraded.swap(false, Ordering::AcqRel) {
        reader.metrics.degraded_shards.dec();
    }
}

async fn read_until_stopped<F: Follower>(
    reader: &Reader<F>,
    seeds: &[ConnectionInfo],
    timeout: Duration,
) {
    let mut backoff = Backoff::default();
    let mut redirects = 0;
    let mut next_seed = 0;
    let mut node = seeds[0].clone();
    loop {
        match read_from(reader, &node, timeout, &mut backoff).await {
            Interrupted::Stopped => return,
            Interrupted::Moved(to) => {
                tracing::debug!(node = ?to.addr(), "shard is served by another node");
                node = *to;
                redirects += 1;
                if redirects <= MAX_REDIRECTS {
                    continue;
                }
            }
            Interrupted::Unreachable => {
                next_seed = (next_seed + 1) % seeds.len();
                node = seeds[next_seed].clone();
            }
            Interrupted::Failed => {}
        }
        redirects = 0;
        reader.set_degraded(true);
        tokio::select! {
            _ = reader.stop.cancelled() => return,
            _ = tokio::time::sleep(backoff.next_pause()) => {}
        }
    }
}

/// Connects to `node` and loops on `XREAD BLOCK` there. The shard counts as
/// served (not degraded, `backoff` reset) once a command on one of its keys
/// succeeds.
async fn read_from<F: Follower>(
    reader: &Reader<F>,
    node: &ConnectionInfo,
    timeout: Duration,
    backoff: &mut Backoff,
) -> Interrupted {
    let connected = tokio::select! {
        _ = reader.stop.cancelled() => return Interrupted::Stopped,
        c = connect(node, timeout) => c,
    };
    let (mut conn, id, control) = match connected {
        Ok(connected) => connected,
        Err(e) => {
            reader.metrics.errors.inc();
            tracing::debug!(error = %e, "cannot connect to Redis");
            return Interrupted::Unreachable;
        }
    };
    *reader.control.lock().unwrap_or_else(|p| p.into_inner()) = Some(control);
    reader.client_id.store(id, Ordering::Release);
    let interrupted = stream(reader, &mut conn, node, backoff).await;
    reader.client_id.store(-1, Ordering::Release);
    interrupted
}

async fn stream<F: Follower>(
    reader: &Reader<F>,
    conn: &mut MultiplexedConnection,
    node: &ConnectionInfo,
    backoff: &mut Backoff,
) -> Interrupted {
    // A keyed command answers at once whether this node holds the shard
    // (else MOVED) and whether the cluster serves it (else CLUSTERDOWN).
    let probe = reader.members().values().next().map(|m| m.key.clone());
    if let Some(key) = probe {
        let mut exists = redis::cmd("EXISTS");
        exists.arg(&key);
        let served: redis::RedisResult<i64> = tokio::select! {
            _ = reader.stop.cancelled() => return Interrupted::Stopped,
            r = exists.query_async(conn) => r,
        };
        if let Err(e) = served {
            return failed(reader, node, &e, "probe");
        }
    }
    reader.set_degraded(false);
    backoff.reset();
    loop {
        let generation = reader.generation.load(Ordering::Acquire);
        let (keys, ids) = positions(reader);
        reader.seen.store(generation, Ordering::Release);
        if keys.is_empty() {
            tokio::select! {
                _ = reader.stop.cancelled() => return Interrupted::Stopped,
                _ = reader.wake.notified() => continue,
            }
        }
        let options = StreamReadOptions::default()
            .block(BLOCK.as_millis() as usize)
            .count(COUNT);
        let reply: redis::RedisResult<Option<StreamReadReply>> = tokio::select! {
            _ = reader.stop.cancelled() => return Interrupted::Stopped,
            r = redis::AsyncCommands::xread_options(conn, &keys, &ids, &options) => r,
        };
        match reply {
            Ok(Some(reply)) => route(reader, reply),
            Ok(None) => {}
            Err(e) => return failed(reader, node, &e, "XREAD"),
        }
    }
}

/// Each followed stream once, read after the earliest position any of its
/// followers needs (two hubs of one restaurant overlap while one stops).
fn positions<F: Follower>(reader: &Reader<F>) -> (Vec<String>, Vec<String>) {
    let mut after: HashMap<String, Seq> = HashMap::new();
    for m in reader.members().values() {
        let from = m.last.max(m.follower.head());
        after
            .entry(m.key.clone())
            .and_modify(|s| *s = (*s).min(from))
            .or_insert(from);
    }
    after.into_iter().map(|(k, s)| (k, entry_id(s))).unzip()
}

/// A failed command: a redirect to the node that holds the shard, or a
/// failure (counted and logged).
fn failed<F>(
    reader: &Reader<F>,
    node: &ConnectionInfo,
    e: &redis::RedisError,
    what: &str,
) -> Interrupted {
    if e.kind() == redis::ErrorKind::Server(redis::ServerErrorKind::Moved)
        && let Some(to) = e.redirect_node().and_then(|(to, _)| moved_to(node, to))
    {
        return Interrupted::Moved(Box::new(to));
    }
    reader.metrics.errors.inc();
    tracing::warn!(error = %e, "{what} failed; reading again after a pause");
    Interrupted::Failed
}

/// Hands each stream's new entries to its followers: one pass over the
/// reply and one over the members, whatever the shard's size.
fn route<F: Follower>(reader: &Reader<F>, reply: StreamReadReply) {
    let by_key: HashMap<String, Vec<Entry>> = reply
        .keys
        .into_iter()
        .map(|stream| {
            let key = stream.key;
            let entries = stream
                .ids
                .into_iter()
                .filter_map(|id| Entry::from_stream(&key, id))
                .collect();
            (key, entries)
        })
        .collect();
    for member in reader.members().values_mut() {
        let Some(entries) = by_key.get(&member.key) else {
            continue;
        };
        let Some(last) = entries.last().map(|e| e.seq) else {
            continue;
        };
        let new: Vec<Entry> = entries
            .iter()
            .filter(|e| e.seq > member.last)
            .cloned()
            .collect();
        member.last = member.last.max(last);
        if !new.is_empty() {
            member.follower.offer(new);
        }
    }
}

/// Wakes the reader with `CLIENT UNBLOCK` until it has picked up the latest
/// membership (an unblock sent before its `XREAD` arrives is retried).
pub(super) async fn unblock<F>(reader: Arc<Reader<F>>) {
    loop {
        tokio::select! {
            _ = reader.stop.cancelled() => return,
            _ = reader.wake.notified() => {}
        }
        for _ in 0..400 {
            if reader.seen.load(Ordering::Acquire) >= reader.generation.load(Ordering::Acquire) {
                break;
            }
            let id = reader.client_id.load(Ordering::Acquire);
            let control = reader
                .control
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .clone();
            if id >= 0
                && let Some(mut conn) = control
            {
                let _: redis::RedisResult<i64> = redis::cmd("CLIENT")
                    .arg("UNBLOCK")
                    .arg(id)
                    .query_async(&mut conn)
                    .await;
            }
            tokio::select! {
                _ = reader.stop.cancelled() => return,
                _ = tokio::time::sleep(Duration::from_millis(5)) => {}
            }
        }
    }
}

/// The reader's connection to `node` and its `CLIENT ID`, and a control
/// connection to the same node. Every command on them answers within
/// `timeout`, an `XREAD` within [`BLOCK`] more.
async fn connect(
    node: &ConnectionInfo,
    timeout: Duration,
) -> redis::RedisResult<(MultiplexedConnection, i64, MultiplexedConnection)> {
    let client = redis::Client::open(node.clone())?;
    let timeout = Some(timeout);
    let reading = AsyncConnectionConfig::new()
        .set_connection_timeout(timeout)
        .set_response_timeout(timeout.map(|t| BLOCK + t));
    let mut conn = client
        .get_multiplexed_async_connection_with_config(&reading)
        .await?;
    let id: i64 = redis::cmd("CLIENT")
        .arg("ID")
        .query_async(&mut conn)
        .await?;
    let controlling = AsyncConnectionConfig::new()
        .set_connection_timeout(timeout)
        .set_response_timeout(timeout);
    let control = client
        .get_multiplexed_async_connection_with_config(&controlling)
        .await?;
    Ok((conn, id, control))
}

/// `node` with its address replaced by `host:port` (a `MOVED` target), TLS
/// and credentials kept.
fn moved_to(node: &ConnectionInfo, target: &str) -> Option<ConnectionInfo> {
    let (host, port) = target.rsplit_once(':')?;
    let (host, port) = (host.trim_matches(['[', ']']).to_owned(), port.parse().ok()?);
    let addr = match node.addr() {
        ConnectionAddr::Tcp(..) => ConnectionAddr::Tcp(host, port),
        ConnectionAddr::TcpTls {
            insecure,
            tls_params,
            ..
        } => ConnectionAddr::TcpTls {
            host,
            port,
            insecure: *insecure,
            tls_params: tls_params.clone(),
        },
        _ => return None,
    };
    Some(node.clone().set_addr(addr))
}
