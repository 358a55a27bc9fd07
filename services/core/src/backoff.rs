//! Jittered exponential backoff: the one pause policy of every retry loop
//! (shard readers, hub gap fills, WebSocket subscriptions).

use std::time::Duration;

/// Pauses that double from `min` up to `max`, each drawn at random from the
/// upper half of its range ("equal jitter"): many tasks retrying the same
/// failure spread out instead of retrying in step, and none retries sooner
/// than half the nominal pause.
#[derive(Clone, Debug)]
pub struct Backoff {
    min: Duration,
    max: Duration,
    ceiling: Duration,
}

impl Backoff {
    /// First pause 100 ms, doubling to at most 2 s.
    pub const RETRY: (Duration, Duration) = (Duration::from_millis(100), Duration::from_secs(2));

    /// Pauses from `min`, doubling to at most `max`.
    pub fn new(min: Duration, max: Duration) -> Backoff {
        let min = min.min(max);
        Backoff {
            min,
            max,
            ceiling: min,
        }
    }

    /// The pause before the next attempt; the one after may be twice as long.
    pub fn next_pause(&mut self) -> Duration {
        let ceiling = self.ceiling;
        self.ceiling = (ceiling * 2).min(self.max);
        let half = ceiling / 2;
        half + half.mul_f64(rand::random::<f64>())
    }

    /// Back to the shortest pause (after a success).
    pub fn reset(&mut self) {
        self.ceiling = self.min;
    }
}

impl Default for Backoff {
    /// [`Backoff::RETRY`].
    fn default() -> Backoff {
        Backoff::new(Backoff::RETRY.0, Backoff::RETRY.1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn pauses_double_up_to_the_cap_each_within_its_upper_half() {
        let mut backoff = Backoff::new(100 * MS, 800 * MS);
        for ceiling in [100, 200, 400, 800, 800, 800] {
            let pause = backoff.next_pause();
            assert!(
                (ceiling / 2 * MS..=ceiling * MS).contains(&pause),
                "{pause:?} outside {}..={ceiling} ms",
                ceiling / 2
            );
        }
    }

    #[test]
    fn a_reset_starts_over_and_pauses_differ() {
        let mut backoff = Backoff::new(100 * MS, 10_000 * MS);
        let pauses: Vec<_> = (0..6).map(|_| backoff.next_pause()).collect();
        backoff.reset();
        assert!(backoff.next_pause() <= 100 * MS);
        let mut jittered = Backoff::new(1_000 * MS, 1_000 * MS);
        let spread: std::collections::HashSet<_> = (0..20).map(|_| jittered.next_pause()).collect();
        assert!(spread.len() > 1, "every pause was the same: no jitter");
        assert!(pauses[5] > pauses[0]);
    }
}
