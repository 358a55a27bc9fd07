//! The command rate of each restaurant: a token bucket per restaurant in
//! each api process, charged after authorization, so only callers that may
//! write to a restaurant spend its budget. A runaway integration or a
//! looping till gets `429` for its own restaurant; other restaurants and
//! the database do not feel it.

use std::num::NonZeroU32;
use std::time::Duration;

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota};
use ordercast_core::RestaurantId;

use ordercast_http::HttpError;

/// Restaurants tracked before idle buckets are dropped.
const PRUNE_ABOVE: usize = 10_000;

/// How many commands each restaurant may send to one process: a steady
/// rate and a burst.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WriteRate(Quota);

impl WriteRate {
    /// Default steady rate: 100 commands a second, far above what a
    /// restaurant does at its busiest, low enough that one cannot starve
    /// the others.
    pub const DEFAULT_PER_SECOND: u32 = 100;
    /// Default burst above the rate: 200 commands.
    pub const DEFAULT_BURST: u32 = 200;

    /// `per_second` commands a second, after a burst of `burst`.
    pub fn per_second(per_second: NonZeroU32, burst: NonZeroU32) -> WriteRate {
        WriteRate(Quota::per_second(per_second).allow_burst(burst))
    }

    /// One command every `period`, after a burst of `burst`; `None` for a
    /// zero period.
    pub fn one_every(period: Duration, burst: NonZeroU32) -> Option<WriteRate> {
        Quota::with_period(period).map(|q| WriteRate(q.allow_burst(burst)))
    }
}

impl Default for WriteRate {
    /// [`WriteRate::DEFAULT_PER_SECOND`], bursts of [`WriteRate::DEFAULT_BURST`].
    fn default() -> WriteRate {
        WriteRate::per_second(
            NonZeroU32::new(WriteRate::DEFAULT_PER_SECOND).expect("non-zero"),
            NonZeroU32::new(WriteRate::DEFAULT_BURST).expect("non-zero"),
        )
    }
}

/// The buckets; `None` when the limit is off.
pub(crate) struct WriteLimits {
    limiter: Option<DefaultKeyedRateLimiter<RestaurantId>>,
    clock: DefaultClock,
}

impl WriteLimits {
    pub(crate) fn new(rate: Option<WriteRate>) -> WriteLimits {
        WriteLimits {
            limiter: rate.map(|WriteRate(quota)| DefaultKeyedRateLimiter::dashmap(quota)),
            clock: DefaultClock::default(),
        }
    }

    /// Spends one command of `restaurant`'s budget, or says how long until
    /// there is one.
    pub(crate) fn take(&self, restaurant: RestaurantId) -> Result<(), HttpError> {
        let Some(limiter) = &self.limiter else {
            return Ok(());
        };
        if limiter.len() > PRUNE_ABOVE {
            limiter.retain_recent();
        }
        limiter
            .check_key(&restaurant)
            .map_err(|not_until| HttpError::RateLimited(not_until.wait_time_from(self.clock.now())))
    }
}
