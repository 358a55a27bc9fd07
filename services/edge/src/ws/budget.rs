//! What a socket's `sync`s may cost: bytes of snapshots, refilled over
//! time. A `sync` reads orders from PostgreSQL and sends them whole, so one
//! small message can make the server send megabytes; the message rate limit
//! counts messages, this counts what they cost.

use std::time::Duration;

use tokio::time::Instant;

/// Every `sync` is charged at least this, when it is asked for: it costs a
/// query and a message even when the snapshot is small, or is replaced by
/// a later `sync` before it is sent.
pub(crate) const SYNC_MIN_COST: usize = 64 * 1024;

/// The budget refills completely in this time.
const REFILL: Duration = Duration::from_secs(60);

/// A token bucket of snapshot bytes for one socket: `capacity` bytes, refilled
/// at `capacity` a minute. A snapshot is charged what it weighed once read,
/// so the balance may go below zero; a `sync` is refused until it is above
/// zero again.
pub(crate) struct SyncBudget {
    capacity: f64,
    balance: f64,
    at: Instant,
}

impl SyncBudget {
    /// A full budget of `capacity` bytes.
    pub(crate) fn new(capacity: usize) -> SyncBudget {
        SyncBudget {
            capacity: capacity as f64,
            balance: capacity as f64,
            at: Instant::now(),
        }
    }

    /// Charges [`SYNC_MIN_COST`] for a `sync` if the budget is not spent;
    /// otherwise how long until it will have refilled enough for one.
    pub(crate) fn start_sync(&mut self) -> Result<(), Duration> {
        self.refill();
        if self.balance <= 0.0 {
            let per_second = self.capacity / REFILL.as_secs_f64();
            let wait = (1.0 - self.balance) / per_second;
            return Err(Duration::from_secs_f64(wait.min(REFILL.as_secs_f64())));
        }
        self.balance -= SYNC_MIN_COST as f64;
        Ok(())
    }

    /// Charges what a snapshot of `bytes` cost beyond what its `sync` paid.
    pub(crate) fn snapshot_sent(&mut self, bytes: usize) {
        self.refill();
        self.balance -= bytes.saturating_sub(SYNC_MIN_COST) as f64;
    }

    fn refill(&mut self) {
        let now = Instant::now();
        let per_second = self.capacity / REFILL.as_secs_f64();
        let earned = now.duration_since(self.at).as_secs_f64() * per_second;
        self.balance = (self.balance + earned).min(self.capacity);
        self.at = now;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: usize = 1024 * 1024;

    #[tokio::test(start_paused = true)]
    async fn syncs_are_refused_once_their_snapshots_spent_the_budget_until_it_refills() {
        let mut budget = SyncBudget::new(4 * MIB);
        budget.start_sync().unwrap();
        budget.snapshot_sent(3 * MIB);
        budget.start_sync().unwrap();
        budget.snapshot_sent(2 * MIB);

        let wait = budget.start_sync().expect_err("spent");
        assert!(wait > Duration::from_secs(14), "{wait:?}");

        tokio::time::advance(wait).await;
        budget.start_sync().unwrap();
    }

    #[tokio::test(start_paused = true)]
    async fn every_sync_costs_its_minimum_even_when_never_sent() {
        let mut budget = SyncBudget::new(4 * SYNC_MIN_COST);
        for _ in 0..4 {
            budget.start_sync().unwrap();
        }
        assert!(budget.start_sync().is_err());
    }
}
