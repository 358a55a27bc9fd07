//! Redis Streams, the fast path: keys, ordered publishing,
//! ranges, the shard readers that follow restaurant streams, and the
//! delivery-receipt streams. Everything that speaks Redis lives here.
//!
//! One stream per restaurant, entry id `<seq>-0`, so publishing is
//! idempotent: Redis itself refuses a duplicate or stale entry. Losing Redis
//! data costs latency, never events; PostgreSQL has them all.

mod entries;
mod error;
mod keys;
mod metrics;
mod publisher;
mod readers;
mod receipts;
mod sequencer;
mod streams;
pub mod trace;

pub use entries::{Entry, entry_id, parse_entry_id};
pub use error::BusError;
pub use keys::{Keys, SHARDS, Shard};
pub use metrics::BusMetrics;
pub use publisher::{InFlight, Publisher, Reservation};
pub use readers::{Degraded, Follower, Following, ReaderMetrics, ShardReaders};
pub use receipts::{LEDGER_GROUP, ReceiptBatch};
pub use sequencer::{Sequencer, Ticket};
pub use streams::{Conn, HeldConn, PublishOutcome, RedisSettings, Streams};
