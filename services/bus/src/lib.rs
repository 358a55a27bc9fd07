//! Redis Streams, the fast path (DESIGN §4).
//!
//! One stream per restaurant, entry id `<seq>-0`, so publishing is
//! idempotent: Redis itself refuses a duplicate or stale entry. Losing Redis
//! data costs latency, never events; PostgreSQL has them all.

mod keys;
mod metrics;
mod publisher;
mod receipts;
mod sequencer;
mod streams;

pub use keys::{Keys, SHARDS, Shard};
pub use metrics::BusMetrics;
pub use publisher::{InFlight, Publisher, Reservation};
pub use receipts::{LEDGER_GROUP, ReceiptBatch};
pub use sequencer::{Sequencer, Ticket};
pub use streams::{Conn, HeldConn, PublishOutcome, RedisSettings, Streams};
