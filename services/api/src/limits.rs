//! Command budgets, token buckets in each api process, charged after
//! authorization so only callers that may write to a restaurant spend its
//! budgets. A limit is charged to the narrowest principal that causes the
//! load (docs/design.md §12):
//!
//! - staff and integrations (owner, kitchen, waiter, service, admin) share
//!   their restaurant's budget: a runaway integration or a looping till
//!   gets `429` for its own restaurant, and other restaurants and the
//!   database do not feel it;
//! - a waiter (a handheld) spends its own budget before the staff's, a
//!   small share of it: one waiter's looping app is refused on its own;
//! - a guest (a customer's table-session token, from a QR code) spends its
//!   table session's budget and then the restaurant's guest budget, and
//!   never the staff's: a guest flooding requests is refused on its own
//!   while the tills keep their orders at `201`.

use std::num::NonZeroU32;
use std::time::Duration;

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota};
use ordercast_core::{RestaurantId, SessionId, WaiterId};

use ordercast_http::HttpError;

/// Keys tracked by one limiter before idle buckets are dropped.
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

/// The budgets of a process; each `None` is off.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WriteBudgets {
    /// Each restaurant's staff and integrations, together.
    pub restaurant: Option<WriteRate>,
    /// Each restaurant's guests (table sessions), together.
    pub guests: Option<WriteRate>,
    /// Each table session.
    pub session: Option<WriteRate>,
    /// Each waiter.
    pub waiter: Option<WriteRate>,
}

impl WriteBudgets {
    /// Default guest budget of a restaurant: 20 commands a second, bursts
    /// of 40 — a full dining room ordering and calling at once.
    pub const DEFAULT_GUESTS_PER_SECOND: u32 = 20;
    /// Default budget of one table session: one command every 2 s, bursts
    /// of 10 — a table orders a few times and calls the waiter.
    pub const DEFAULT_SESSION_EVERY: Duration = Duration::from_secs(2);
    pub const DEFAULT_SESSION_BURST: u32 = 10;
    /// Default budget of one waiter: one command every 250 ms, bursts of
    /// 20 — a waiter taking an order, marking dishes served, answering
    /// calls; a fiftieth of the staff's.
    pub const DEFAULT_WAITER_EVERY: Duration = Duration::from_millis(250);
    pub const DEFAULT_WAITER_BURST: u32 = 20;

    /// A guest budget of `per_second`, bursts of twice that.
    pub fn guests_per_second(per_second: NonZeroU32) -> WriteRate {
        let twice = per_second.saturating_mul(NonZeroU32::new(2).expect("non-zero"));
        WriteRate::per_second(per_second, twice)
    }

    /// The guests' default: [`WriteBudgets::DEFAULT_GUESTS_PER_SECOND`].
    pub fn default_guests() -> WriteRate {
        Self::guests_per_second(NonZeroU32::new(Self::DEFAULT_GUESTS_PER_SECOND).expect("non-zero"))
    }

    /// A table session's default.
    pub fn default_session() -> WriteRate {
        let burst = NonZeroU32::new(Self::DEFAULT_SESSION_BURST).expect("non-zero");
        WriteRate::one_every(Self::DEFAULT_SESSION_EVERY, burst).expect("a non-zero period")
    }

    /// A waiter's default.
    pub fn default_waiter() -> WriteRate {
        let burst = NonZeroU32::new(Self::DEFAULT_WAITER_BURST).expect("non-zero");
        WriteRate::one_every(Self::DEFAULT_WAITER_EVERY, burst).expect("a non-zero period")
    }
}

impl Default for WriteBudgets {
    fn default() -> WriteBudgets {
        WriteBudgets {
            restaurant: Some(WriteRate::default()),
            guests: Some(WriteBudgets::default_guests()),
            session: Some(WriteBudgets::default_session()),
            waiter: Some(WriteBudgets::default_waiter()),
        }
    }
}

/// The buckets.
pub(crate) struct WriteLimits {
    staff: Option<DefaultKeyedRateLimiter<RestaurantId>>,
    guests: Option<DefaultKeyedRateLimiter<RestaurantId>>,
    sessions: Option<DefaultKeyedRateLimiter<(RestaurantId, SessionId)>>,
    waiters: Option<DefaultKeyedRateLimiter<(RestaurantId, WaiterId)>>,
    clock: DefaultClock,
}

/// Whose budget a command spends.
pub(crate) enum Spender<'a> {
    Staff,
    Waiter(&'a WaiterId),
    Guest(&'a SessionId),
}

impl WriteLimits {
    pub(crate) fn new(budgets: WriteBudgets) -> WriteLimits {
        WriteLimits {
            staff: budgets
                .restaurant
                .map(|WriteRate(q)| DefaultKeyedRateLimiter::dashmap(q)),
            guests: budgets
                .guests
                .map(|WriteRate(q)| DefaultKeyedRateLimiter::dashmap(q)),
            sessions: budgets
                .session
                .map(|WriteRate(q)| DefaultKeyedRateLimiter::dashmap(q)),
            waiters: budgets
                .waiter
                .map(|WriteRate(q)| DefaultKeyedRateLimiter::dashmap(q)),
            clock: DefaultClock::default(),
        }
    }

    /// Spends one command of the spender's budgets at `restaurant`, or says
    /// how long until there is one.
    pub(crate) fn take(
        &self,
        restaurant: RestaurantId,
        spender: Spender<'_>,
    ) -> Result<(), HttpError> {
        match spender {
            Spender::Staff => self.check(&self.staff, &restaurant),
            Spender::Waiter(waiter) => {
                self.check(&self.waiters, &(restaurant, waiter.clone()))?;
                self.check(&self.staff, &restaurant)
            }
            Spender::Guest(session) => {
                self.check(&self.sessions, &(restaurant, session.clone()))?;
                self.check(&self.guests, &restaurant)
            }
        }
    }

    fn check<K>(
        &self,
        limiter: &Option<DefaultKeyedRateLimiter<K>>,
        key: &K,
    ) -> Result<(), HttpError>
    where
        K: Clone + Eq + std::hash::Hash,
    {
        let Some(limiter) = limiter else {
            return Ok(());
        };
        if limiter.len() > PRUNE_ABOVE {
            limiter.retain_recent();
        }
        limiter
            .check_key(key)
            .map_err(|not_until| HttpError::RateLimited(not_until.wait_time_from(self.clock.now())))
    }
}
