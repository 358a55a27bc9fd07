//! Delivery receipt streams (docs/architecture.md, "Delivery ledger"): edges append what they sent to
//! screens; every api replica reads them in consumer group `ledger`.
//!
//! One stream per shard (`oc:{s2f}:receipts`, in the slot of the shard's
//! restaurant streams, so a Redis Cluster spreads them too). An entry holds
//! one edge's receipts of one shard for about a second: field `at` (Unix
//! milliseconds) and field `r`, one [`Receipt::line`] per line.

use chrono::{DateTime, TimeZone, Utc};
use ordercast_core::Receipt;
use redis::streams::{
    StreamAutoClaimOptions, StreamAutoClaimReply, StreamId, StreamInfoConsumersReply,
    StreamReadOptions, StreamReadReply,
};
use redis::{AsyncCommands, RedisResult, Value};

use crate::{BusError, Shard, Streams};

/// The consumer group of the api replicas.
pub const LEDGER_GROUP: &str = "ledger";
/// Approximate length each receipts stream is trimmed to.
const RECEIPTS_MAXLEN: usize = 10_000;

/// Receipts read from one shard's stream, to acknowledge once recorded.
pub struct ReceiptBatch {
    pub shard: Shard,
    pub receipts: Vec<Receipt>,
    /// Entry ids to `XACK`.
    pub ids: Vec<String>,
}

impl Streams {
    /// Appends `receipts` (all of `shard`) as one entry.
    pub async fn append_receipts(
        &self,
        shard: Shard,
        receipts: &[Receipt],
    ) -> Result<(), BusError> {
        let at = receipts.iter().map(|r| r.at).max().unwrap_or_else(Utc::now);
        let lines: Vec<String> = receipts.iter().map(Receipt::line).collect();
        let mut conn = self.conn().await?;
        redis::cmd("XADD")
            .arg(self.keys().receipts(shard))
            .arg("MAXLEN")
            .arg("~")
            .arg(RECEIPTS_MAXLEN)
            .arg("*")
            .arg("at")
            .arg(at.timestamp_millis())
            .arg("r")
            .arg(lines.join("\n"))
            .query_async::<()>(&mut conn)
            .await?;
        Ok(())
    }

    /// Reads up to `count` new entries of `shard` for `consumer` of the
    /// ledger group, creating the group (and the stream) when missing:
    /// after a Redis restart without persistence, both are gone.
    pub async fn read_receipts(
        &self,
        shard: Shard,
        consumer: &str,
        count: usize,
    ) -> Result<ReceiptBatch, BusError> {
        let key = self.keys().receipts(shard);
        let mut conn = self.conn().await?;
        let options = StreamReadOptions::default()
            .group(LEDGER_GROUP, consumer)
            .count(count);
        let reply: Option<StreamReadReply> =
            match conn.xread_options(&[&key], &[">"], &options).await {
                Err(e) if e.code() == Some("NOGROUP") => {
                    self.create_group(&mut conn, &key).await?;
                    conn.xread_options(&[&key], &[">"], &options).await?
                }
                other => other?,
            };
        let entries = reply
            .into_iter()
            .flat_map(|r| r.keys)
            .flat_map(|k| k.ids)
            .collect();
        Ok(batch(shard, entries))
    }

    /// Takes over entries of `shard` that another consumer read but did
    /// not acknowledge within `min_idle` (a replica that died meanwhile).
    pub async fn claim_receipts(
        &self,
        shard: Shard,
        consumer: &str,
        min_idle: std::time::Duration,
        count: usize,
    ) -> Result<ReceiptBatch, BusError> {
        let mut conn = self.conn().await?;
        let reply: RedisResult<StreamAutoClaimReply> = redis::cmd("XAUTOCLAIM")
            .arg(self.keys().receipts(shard))
            .arg(LEDGER_GROUP)
            .arg(consumer)
            .arg(min_idle.as_millis() as u64)
            .arg("0-0")
            .arg(StreamAutoClaimOptions::default().count(count))
            .query_async(&mut conn)
            .await;
        match reply {
            Ok(reply) => Ok(batch(shard, reply.claimed)),
            // No group (or stream) yet: nothing is pending.
            Err(e) if e.code() == Some("NOGROUP") => Ok(batch(shard, Vec::new())),
            Err(e) => Err(e.into()),
        }
    }

    /// Removes from the group the consumers of `shard` other than `keep`
    /// that have nothing pending and have not read for `idle`: replicas
    /// that are gone (each process reads under a new name, so every restart
    /// would leave one behind per shard). A live consumer removed by
    /// mistake loses nothing (it has nothing pending) and is back on its
    /// next read. Returns how many were removed.
    pub async fn forget_idle_consumers(
        &self,
        shard: Shard,
        keep: &str,
        idle: std::time::Duration,
    ) -> Result<usize, BusError> {
        let key = self.keys().receipts(shard);
        let mut conn = self.conn().await?;
        let info: StreamInfoConsumersReply = match conn.xinfo_consumers(&key, LEDGER_GROUP).await {
            Err(e) if e.code() == Some("NOGROUP") => return Ok(0),
            other => other?,
        };
        let mut forgotten = 0;
        for consumer in info.consumers {
            let gone = consumer.pending == 0 && consumer.idle as u128 > idle.as_millis();
            if gone && consumer.name != keep {
                let _: i64 = redis::cmd("XGROUP")
                    .arg("DELCONSUMER")
                    .arg(&key)
                    .arg(LEDGER_GROUP)
                    .arg(&consumer.name)
                    .query_async(&mut conn)
                    .await?;
                forgotten += 1;
            }
        }
        Ok(forgotten)
    }

    /// Acknowledges entries once their receipts are recorded.
    pub async fn ack_receipts(&self, shard: Shard, ids: &[String]) -> Result<(), BusError> {
        if ids.is_empty() {
            return Ok(());
        }
        let mut conn = self.conn().await?;
        redis::cmd("XACK")
            .arg(self.keys().receipts(shard))
            .arg(LEDGER_GROUP)
            .arg(ids)
            .query_async::<()>(&mut conn)
            .await?;
        Ok(())
    }

    async fn create_group(&self, conn: &mut crate::Conn, key: &str) -> RedisResult<()> {
        let created: RedisResult<Value> = redis::cmd("XGROUP")
            .arg("CREATE")
            .arg(key)
            .arg(LEDGER_GROUP)
            .arg("0")
            .arg("MKSTREAM")
            .query_async(conn)
            .await;
        match created {
            Err(e) if e.code() != Some("BUSYGROUP") => Err(e),
            _ => Ok(()),
        }
    }
}

/// The receipts of `entries`; an entry that does not parse is skipped (and
/// still acknowledged: it never will parse).
fn batch(shard: Shard, entries: Vec<StreamId>) -> ReceiptBatch {
    let mut receipts = Vec::new();
    let mut ids = Vec::with_capacity(entries.len());
    for entry in entries {
        let at: Option<DateTime<Utc>> = entry
            .get::<i64>("at")
            .and_then(|ms| Utc.timestamp_millis_opt(ms).single());
        if let (Some(at), Some(lines)) = (at, entry.get::<String>("r")) {
            receipts.extend(lines.lines().filter_map(|l| Receipt::parse_line(l, at)));
        }
        ids.push(entry.id);
    }
    ReceiptBatch {
        shard,
        receipts,
        ids,
    }
}
