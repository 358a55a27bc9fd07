//! Time cursors: the seq a subscription starting "at time T" resumes after.

use chrono::{DateTime, Utc};
use ordercast_core::{RestaurantId, Seq};

use crate::{Store, StoreError};

/// One statement, so one snapshot: the restaurant's committed events are
/// always a prefix `1..=last_seq` (the restaurant row's lock is held from
/// taking a seq to the commit), and the answer is read from that same
/// prefix. An event still in flight gets a seq above `last_seq`, so it is
/// after the answer whatever its time. `created_at` is stamped before the
/// lock is taken, so it is not quite monotone in seq: the answer is the
/// smallest seq whose time is at or after `$2`, and every later seq follows
/// it, even one stamped a moment earlier.
const SEQ_BEFORE_TIME: &str = "
    SELECT COALESCE(
        (SELECT min(seq) FROM events WHERE restaurant_id = $1 AND created_at >= $2) - 1,
        r.last_seq)
    FROM restaurants r WHERE r.id = $1";

impl Store {
    /// The cursor to resume after so that delivery starts with the first
    /// event of `restaurant` stamped at or after `at` (see
    /// [`SEQ_BEFORE_TIME`]); the restaurant's head when none is (a time in
    /// the future: from now). Reads the `events_by_time` index.
    pub async fn seq_before_time(
        &self,
        restaurant: RestaurantId,
        at: DateTime<Utc>,
    ) -> Result<Seq, StoreError> {
        let seq: Option<i64> = sqlx::query_scalar(SEQ_BEFORE_TIME)
            .bind(restaurant.as_uuid())
            .bind(at)
            .fetch_optional(&self.pool)
            .await?;
        seq.map(Seq::from_i64)
            .ok_or(StoreError::NotFound("restaurant"))
    }
}
