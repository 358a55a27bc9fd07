//! Keeps one process's publishes in commit order.
//!
//! Writes come in two shapes:
//!
//! - A transaction reserves its seqs while it still holds the restaurant's
//!   row lock (before COMMIT), so every earlier seq this process is writing
//!   is already reserved when it commits.
//! - A single autocommit statement learns its seqs only once it has
//!   committed. It takes a *ticket* before it is sent. When it returns, any
//!   lower seq this process wrote belongs to a write that was already in
//!   flight, so its events also wait for every ticket older than that moment
//!   (its *barrier*).
//!
//! A committed event is released once every lower reserved seq of its
//! restaurant is committed or aborted and every ticket below its barrier is
//! closed. Seqs written by other processes are not known here; if they
//! interleave, Redis refuses the late one and readers fill the gap from
//! PostgreSQL.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use ordercast_core::{Envelope, RestaurantId, Seq};

/// Pure ordering state; see the module docs.
#[derive(Debug, Default)]
pub struct Sequencer {
    lanes: HashMap<RestaurantId, Lane>,
}

/// One restaurant's writes in flight.
#[derive(Debug, Default)]
struct Lane {
    /// Reserved (`None`) and committed-but-held events, by seq.
    slots: BTreeMap<Seq, Option<Held>>,
    /// Tickets of autocommit writes still in flight.
    tickets: BTreeSet<u64>,
    next_ticket: u64,
}

#[derive(Debug)]
struct Held {
    event: Envelope,
    /// Waits for every ticket below this.
    barrier: u64,
}

/// A place taken by an autocommit write before it is sent.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ticket {
    restaurant: RestaurantId,
    id: u64,
}

impl Lane {
    fn hold(&mut self, event: Envelope) {
        let barrier = self.next_ticket;
        self.slots.insert(event.seq, Some(Held { event, barrier }));
    }

    fn drain(&mut self, out: &mut Vec<Envelope>) {
        let oldest_ticket = self.tickets.first().copied().unwrap_or(u64::MAX);
        while let Some(entry) = self.slots.first_entry() {
            match entry.get() {
                Some(held) if held.barrier <= oldest_ticket => {
                    out.extend(entry.remove().map(|h| h.event));
                }
                _ => break,
            }
        }
    }

    fn is_idle(&self) -> bool {
        self.slots.is_empty() && self.tickets.is_empty()
    }
}

impl Sequencer {
    /// An empty sequencer.
    pub fn new() -> Self {
        Self::default()
    }

    /// Reserves places for seqs about to commit.
    pub fn reserve(&mut self, keys: impl IntoIterator<Item = (RestaurantId, Seq)>) {
        for (restaurant, seq) in keys {
            self.lanes
                .entry(restaurant)
                .or_default()
                .slots
                .insert(seq, None);
        }
    }

    /// Fills reserved places with committed events; appends to `out` every
    /// event now free to publish, in order.
    pub fn commit(&mut self, events: Vec<Envelope>, out: &mut Vec<Envelope>) {
        let mut touched = Vec::new();
        for event in events {
            let restaurant = event.restaurant_id;
            self.lanes.entry(restaurant).or_default().hold(event);
            touched.push(restaurant);
        }
        self.drain(touched, out);
    }

    /// Gives up reserved places (the write rolled back or its outcome is
    /// unknown; the outbox sweeper covers the latter).
    pub fn abort(&mut self, keys: &[(RestaurantId, Seq)], out: &mut Vec<Envelope>) {
        let mut touched = Vec::new();
        for (restaurant, seq) in keys {
            if let Some(lane) = self.lanes.get_mut(restaurant)
                && matches!(lane.slots.get(seq), Some(None))
            {
                lane.slots.remove(seq);
                touched.push(*restaurant);
            }
        }
        self.drain(touched, out);
    }

    /// A ticket for an autocommit write to `restaurant`, taken before the
    /// statement is sent.
    pub fn open_ticket(&mut self, restaurant: RestaurantId) -> Ticket {
        let lane = self.lanes.entry(restaurant).or_default();
        let id = lane.next_ticket;
        lane.next_ticket += 1;
        lane.tickets.insert(id);
        Ticket { restaurant, id }
    }

    /// The ticket's write returned: `events` committed (none if it failed or
    /// its outcome is unknown; the outbox sweeper covers the latter).
    pub fn close_ticket(&mut self, ticket: Ticket, events: Vec<Envelope>, out: &mut Vec<Envelope>) {
        let lane = self.lanes.entry(ticket.restaurant).or_default();
        lane.tickets.remove(&ticket.id);
        for event in events {
            debug_assert_eq!(event.restaurant_id, ticket.restaurant);
            lane.hold(event);
        }
        self.drain(vec![ticket.restaurant], out);
    }

    fn drain(&mut self, mut restaurants: Vec<RestaurantId>, out: &mut Vec<Envelope>) {
        restaurants.dedup();
        for restaurant in restaurants {
            let Some(lane) = self.lanes.get_mut(&restaurant) else {
                continue;
            };
            lane.drain(out);
            if lane.is_idle() {
                self.lanes.remove(&restaurant);
            }
        }
    }

    /// Restaurants with writes in flight or held events (for tests and stats).
    pub fn len(&self) -> usize {
        self.lanes.len()
    }

    /// Nothing reserved, in flight or held.
    pub fn is_empty(&self) -> bool {
        self.lanes.is_empty()
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

    #[test]
    fn an_autocommit_write_waits_for_tickets_that_were_in_flight_when_it_returned() {
        let r = RestaurantId::new();
        let mut s = Sequencer::new();
        let mut out = Vec::new();
        let slow = s.open_ticket(r);
        let fast = s.open_ticket(r);
        // `fast` returns first with seq 2: `slow` may hold seq 1.
        s.close_ticket(fast, vec![event(r, 2)], &mut out);
        assert!(out.is_empty(), "seq 2 must wait for the ticket in flight");
        s.close_ticket(slow, vec![event(r, 1)], &mut out);
        assert_eq!(seqs(&out), [1, 2]);
        assert!(s.is_empty());
    }

    #[test]
    fn a_ticket_taken_after_a_write_returned_does_not_hold_it_back() {
        let r = RestaurantId::new();
        let mut s = Sequencer::new();
        let mut out = Vec::new();
        let first = s.open_ticket(r);
        s.close_ticket(first, vec![event(r, 1)], &mut out);
        let later = s.open_ticket(r);
        let second = s.open_ticket(r);
        s.close_ticket(second, vec![event(r, 3)], &mut out);
        assert_eq!(
            seqs(&out),
            [1],
            "seq 3 waits for the ticket still in flight"
        );
        s.close_ticket(later, vec![event(r, 2)], &mut out);
        assert_eq!(seqs(&out), [1, 2, 3]);
    }

    #[test]
    fn a_failed_ticket_releases_what_waited_for_it() {
        let r = RestaurantId::new();
        let mut s = Sequencer::new();
        let mut out = Vec::new();
        let failed = s.open_ticket(r);
        let ok = s.open_ticket(r);
        s.close_ticket(ok, vec![event(r, 4)], &mut out);
        assert!(out.is_empty());
        s.close_ticket(failed, Vec::new(), &mut out);
        assert_eq!(seqs(&out), [4]);
        assert!(s.is_empty());
    }

    #[test]
    fn a_transaction_committing_after_an_autocommit_write_waits_for_its_ticket() {
        let r = RestaurantId::new();
        let mut s = Sequencer::new();
        let mut out = Vec::new();
        // The autocommit write took seq 1 and committed, but has not returned;
        // the transaction then locked the row, took seq 2 and committed.
        let ticket = s.open_ticket(r);
        s.reserve([(r, Seq(2))]);
        s.commit(vec![event(r, 2)], &mut out);
        assert!(out.is_empty(), "seq 2 must wait for the ticket in flight");
        s.close_ticket(ticket, vec![event(r, 1)], &mut out);
        assert_eq!(seqs(&out), [1, 2]);
    }

    #[test]
    fn an_autocommit_write_after_a_reservation_waits_for_it() {
        let r = RestaurantId::new();
        let mut s = Sequencer::new();
        let mut out = Vec::new();
        s.reserve([(r, Seq(1))]);
        let ticket = s.open_ticket(r);
        s.close_ticket(ticket, vec![event(r, 2)], &mut out);
        assert!(out.is_empty(), "seq 2 must wait for reserved seq 1");
        s.commit(vec![event(r, 1)], &mut out);
        assert_eq!(seqs(&out), [1, 2]);
        assert!(s.is_empty());
    }

    #[test]
    fn many_overlapping_autocommit_writes_come_out_in_order() {
        let r = RestaurantId::new();
        let mut s = Sequencer::new();
        let mut out = Vec::new();
        // Ten writes in flight at a time; each returns in a scrambled order
        // within its window of ten, with the seqs the database gave them.
        let mut next_seq = 1;
        for window in 0..10 {
            let tickets: Vec<Ticket> = (0..10).map(|_| s.open_ticket(r)).collect();
            let seqs_given: Vec<u64> = (0..10).map(|i| next_seq + (i * 7) % 10).collect();
            next_seq += 10;
            for (i, ticket) in tickets.into_iter().enumerate().rev() {
                s.close_ticket(ticket, vec![event(r, seqs_given[i])], &mut out);
            }
            assert_eq!(out.len(), (window + 1) * 10);
        }
        assert_eq!(seqs(&out), (1..=100).collect::<Vec<_>>());
        assert!(s.is_empty());
    }
}
