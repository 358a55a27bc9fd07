//! Keeps one process's publishes in commit order.
//!
//! A write reserves its seqs while it still holds the restaurant's row lock
//! (before COMMIT), so every earlier seq this process is writing is already
//! reserved. A committed event is released only once every lower reserved
//! seq of its restaurant is committed or aborted. Seqs written by other
//! processes are not known here; if they interleave, Redis refuses the late
//! one and readers fill the gap from PostgreSQL.

use std::collections::{BTreeMap, HashMap};

use ordercast_core::{Envelope, RestaurantId, Seq};

/// Pure ordering state; see the module docs.
#[derive(Debug, Default)]
pub struct Sequencer {
    pending: HashMap<RestaurantId, BTreeMap<Seq, Option<Envelope>>>,
}

impl Sequencer {
    /// An empty sequencer.
    pub fn new() -> Self {
        Self::default()
    }

    /// Reserves places for seqs about to commit.
    pub fn reserve(&mut self, keys: impl IntoIterator<Item = (RestaurantId, Seq)>) {
        for (restaurant, seq) in keys {
            self.pending
                .entry(restaurant)
                .or_default()
                .insert(seq, None);
        }
    }

    /// Fills reserved places with committed events; appends to `out` every
    /// event now free to publish, in order.
    pub fn commit(&mut self, events: Vec<Envelope>, out: &mut Vec<Envelope>) {
        let mut touched = Vec::new();
        for event in events {
            let restaurant = event.restaurant_id;
            self.pending
                .entry(restaurant)
                .or_default()
                .insert(event.seq, Some(event));
            touched.push(restaurant);
        }
        self.drain(touched, out);
    }

    /// Gives up reserved places (the write rolled back or its outcome is
    /// unknown; the outbox sweeper covers the latter).
    pub fn abort(&mut self, keys: &[(RestaurantId, Seq)], out: &mut Vec<Envelope>) {
        let mut touched = Vec::new();
        for (restaurant, seq) in keys {
            if let Some(slots) = self.pending.get_mut(restaurant)
                && matches!(slots.get(seq), Some(None))
            {
                slots.remove(seq);
                touched.push(*restaurant);
            }
        }
        self.drain(touched, out);
    }

    fn drain(&mut self, mut restaurants: Vec<RestaurantId>, out: &mut Vec<Envelope>) {
        restaurants.dedup();
        for restaurant in restaurants {
            let Some(slots) = self.pending.get_mut(&restaurant) else {
                continue;
            };
            while let Some(entry) = slots.first_entry() {
                if entry.get().is_none() {
                    break;
                }
                out.extend(entry.remove());
            }
            if slots.is_empty() {
                self.pending.remove(&restaurant);
            }
        }
    }

    /// Restaurants with reserved or held events (for tests and stats).
    pub fn len(&self) -> usize {
        self.pending.len()
    }

    /// Nothing reserved or held.
    pub fn is_empty(&self) -> bool {
        self.pending.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ordercast_core::event::EventDraft;
    use ordercast_core::{Audience, EventType};

    fn event(r: RestaurantId, seq: u64) -> Envelope {
        let draft = EventDraft::new(
            EventType::Notification,
            Audience::default(),
            serde_json::Value::Null,
        );
        Envelope::seal(r, Seq(seq), Envelope::now(), None, draft)
    }

    fn seqs(out: &[Envelope]) -> Vec<u64> {
        out.iter().map(|e| e.seq.0).collect()
    }

    #[test]
    fn a_later_commit_waits_for_an_earlier_reservation() {
        let r = RestaurantId::new();
        let mut s = Sequencer::new();
        let mut out = Vec::new();
        s.reserve([(r, Seq(1))]);
        s.reserve([(r, Seq(2))]);
        s.commit(vec![event(r, 2)], &mut out);
        assert!(out.is_empty(), "seq 2 must wait for seq 1");
        s.commit(vec![event(r, 1)], &mut out);
        assert_eq!(seqs(&out), [1, 2]);
        assert!(s.is_empty());
    }

    #[test]
    fn an_aborted_reservation_releases_what_waited_behind_it() {
        let r = RestaurantId::new();
        let mut s = Sequencer::new();
        let mut out = Vec::new();
        s.reserve([(r, Seq(1)), (r, Seq(2))]);
        s.commit(vec![event(r, 2)], &mut out);
        s.abort(&[(r, Seq(1))], &mut out);
        assert_eq!(seqs(&out), [2]);
        assert!(s.is_empty());
    }

    #[test]
    fn restaurants_do_not_wait_for_each_other() {
        let (a, b) = (RestaurantId::new(), RestaurantId::new());
        let mut s = Sequencer::new();
        let mut out = Vec::new();
        s.reserve([(a, Seq(1)), (b, Seq(7))]);
        s.commit(vec![event(b, 7)], &mut out);
        assert_eq!(seqs(&out), [7]);
        assert_eq!(s.len(), 1);
    }

    #[test]
    fn aborting_a_committed_seq_changes_nothing() {
        let r = RestaurantId::new();
        let mut s = Sequencer::new();
        let mut out = Vec::new();
        s.reserve([(r, Seq(1)), (r, Seq(2))]);
        s.commit(vec![event(r, 2)], &mut out);
        s.abort(&[(r, Seq(2))], &mut out);
        assert!(out.is_empty(), "seq 2 is committed: it still waits for 1");
        s.commit(vec![event(r, 1)], &mut out);
        assert_eq!(seqs(&out), [1, 2]);
    }

    #[test]
    fn many_interleaved_writers_come_out_in_order() {
        let r = RestaurantId::new();
        let mut s = Sequencer::new();
        let mut out = Vec::new();
        s.reserve((1..=100).map(|i| (r, Seq(i))));
        // Commit in a scrambled but deterministic order.
        for i in (1..=100).map(|i| (i * 37) % 100 + 1) {
            s.commit(vec![event(r, i)], &mut out);
        }
        assert_eq!(seqs(&out), (1..=100).collect::<Vec<_>>());
    }
}
