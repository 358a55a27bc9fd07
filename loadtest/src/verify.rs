//! The exactly-once check: every screen must have received exactly the
//! events its identity entitles it to, after its starting cursor, in seq
//! order, once each, and nothing else.

use std::collections::HashSet;

use serde::Serialize;

use crate::ledger::{Book, Kind, Viewer};
use crate::scenario::Transport;

/// One event as a screen read it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Receipt {
    pub seq: u64,
    /// When it was read, µs since the run began.
    pub read_us: u64,
    /// Index of the connection it arrived on in [`ClientLog::connections`].
    pub conn: u32,
    /// Its `type`, if the tester knows it.
    pub kind: Option<Kind>,
    /// It named another restaurant than the one subscribed to.
    pub foreign: bool,
}

/// What one screen saw.
#[derive(Debug)]
pub struct ClientLog {
    pub id: usize,
    pub restaurant: usize,
    pub viewer: Viewer,
    pub transport: Transport,
    /// The region of the edges it connects to (0 in a single-region run).
    pub region: usize,
    /// Its restaurant is homed in another region than `region`.
    pub remote: bool,
    /// The cursor it first subscribed after.
    pub start: u64,
    pub receipts: Vec<Receipt>,
    /// When each of its connections was established, µs since the run
    /// began.
    pub connections: Vec<u64>,
}

/// Violations by class, with the first examples of each.
#[derive(Debug, Default, Clone, Serialize)]
pub struct Violations {
    /// Entitled events never received.
    pub missing: u64,
    /// Events received more than once.
    pub duplicate: u64,
    /// Events received after a later one.
    pub reordered: u64,
    /// Events of another restaurant.
    pub foreign_restaurant: u64,
    /// Events of this restaurant the screen may not see (another table
    /// session, another waiter, another role's audience).
    pub foreign_audience: u64,
    /// Events whose type is not what the api said it committed.
    pub altered: u64,
    /// Events at or before the cursor the screen asked to start after.
    pub before_cursor: u64,
    /// Events no write of the tester caused (only a violation when every
    /// write's answer arrived; otherwise counted in `unverified`).
    pub unexpected: u64,
    /// The first few of each class.
    pub examples: Vec<String>,
}

impl Violations {
    pub fn total(&self) -> u64 {
        self.missing
            + self.duplicate
            + self.reordered
            + self.foreign_restaurant
            + self.foreign_audience
            + self.altered
            + self.before_cursor
            + self.unexpected
    }

    fn note(&mut self, class: &str, client: &ClientLog, seq: u64, detail: &str) {
        const PER_CLASS: usize = 5;
        let prefix = format!("{class}:");
        if self
            .examples
            .iter()
            .filter(|e| e.starts_with(&prefix))
            .count()
            < PER_CLASS
        {
            self.examples.push(format!(
                "{class}: screen {} ({} {}, restaurant #{}{}) seq {seq}{detail}",
                client.id,
                client.transport.as_str(),
                client.viewer,
                client.restaurant,
                if client.remote {
                    format!(", remote, region #{}", client.region)
                } else {
                    String::new()
                },
            ));
        }
    }
}

/// The outcome of checking every screen.
#[derive(Debug, Default, Clone, Serialize)]
pub struct Verification {
    pub violations: Violations,
    /// Entitled events the screens were due, summed over screens.
    pub expected: u64,
    /// Events the screens read.
    pub received: u64,
    /// Events received whose seq the tester cannot check because the
    /// answer to the write was lost.
    pub unverified: u64,
}

/// Checks every log against the books. `writes_lost` is how many writes
/// got no answer (their events exist or not; they cannot be checked).
pub fn verify(books: &[&Book], logs: &[ClientLog], writes_lost: u64) -> Verification {
    let mut v = Verification::default();
    for log in logs {
        check(books[log.restaurant], log, writes_lost, &mut v);
    }
    v
}

fn check(book: &Book, log: &ClientLog, writes_lost: u64, v: &mut Verification) {
    let bad = &mut v.violations;
    let mut seen = HashSet::with_capacity(log.receipts.len());
    let mut highest = log.start;
    for r in &log.receipts {
        v.received += 1;
        if r.foreign {
            bad.foreign_restaurant += 1;
            bad.note("foreign restaurant", log, r.seq, "");
            continue;
        }
        if r.seq <= log.start {
            bad.before_cursor += 1;
            bad.note(
                "before cursor",
                log,
                r.seq,
                &format!(" (cursor {})", log.start),
            );
            continue;
        }
        if !seen.insert(r.seq) {
            bad.duplicate += 1;
            bad.note("duplicate", log, r.seq, "");
            continue;
        }
        if r.seq < highest {
            bad.reordered += 1;
            bad.note("reordered", log, r.seq, &format!(" after {highest}"));
        }
        highest = highest.max(r.seq);
        let Some(known) = book.get(r.seq) else {
            if writes_lost == 0 {
                bad.unexpected += 1;
                bad.note("unexpected", log, r.seq, "");
            } else {
                v.unverified += 1;
            }
            continue;
        };
        if r.kind != Some(known.kind) {
            bad.altered += 1;
            bad.note(
                "altered",
                log,
                r.seq,
                &format!(" expected {}", known.kind.as_str()),
            );
        }
        if !log.viewer.entitled(&known.audience) {
            bad.foreign_audience += 1;
            bad.note(
                "foreign audience",
                log,
                r.seq,
                &format!(" ({})", known.audience),
            );
        }
    }
    for seq in log.start + 1..=book.head() {
        let Some(known) = book.get(seq) else { continue };
        if !log.viewer.entitled(&known.audience) {
            continue;
        }
        v.expected += 1;
        if !seen.contains(&seq) {
            bad.missing += 1;
            bad.note("missing", log, seq, &format!(" {}", known.kind.as_str()));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ledger::{Audience, Known, Role};

    /// Restaurant 0: seq 1..=6, session s0 has 1, 2, 4, 5, 6; session s1 has 3.
    fn book() -> Book {
        let mut b = Book::default();
        for seq in 1..=6 {
            let session = if seq == 3 { 1 } else { 0 };
            b.record(
                seq,
                Known {
                    kind: Kind::OrderCreated,
                    audience: Audience::of(&[Role::Customer, Role::Kitchen], Some(session), None),
                    sent_us: 0,
                },
            );
        }
        b
    }

    fn log(viewer: Viewer, seqs: &[u64]) -> ClientLog {
        ClientLog {
            id: 7,
            restaurant: 0,
            viewer,
            transport: Transport::Sse,
            region: 0,
            remote: false,
            start: 0,
            receipts: seqs
                .iter()
                .map(|&seq| Receipt {
                    seq,
                    read_us: 0,
                    conn: 0,
                    kind: Some(Kind::OrderCreated),
                    foreign: false,
                })
                .collect(),
            connections: vec![0],
        }
    }

    fn run(l: ClientLog) -> Verification {
        let b = book();
        verify(&[&b], &[l], 0)
    }

    #[test]
    fn a_faithful_stream_passes() {
        let v = run(log(Viewer::Customer(0), &[1, 2, 4, 5, 6]));
        assert_eq!(v.violations.total(), 0, "{:?}", v.violations);
        assert_eq!((v.expected, v.received), (5, 5));
        let v = run(log(Viewer::Kitchen, &[1, 2, 3, 4, 5, 6]));
        assert_eq!(v.violations.total(), 0);
    }

    #[test]
    fn each_kind_of_violation_is_caught() {
        let v = run(log(Viewer::Customer(0), &[1, 2, 5, 6])).violations;
        assert_eq!((v.missing, v.total()), (1, 1), "missing 4");
        assert!(
            v.examples[0].starts_with("missing: screen 7"),
            "{:?}",
            v.examples
        );

        let v = run(log(Viewer::Customer(0), &[1, 2, 2, 4, 5, 6])).violations;
        assert_eq!((v.duplicate, v.total()), (1, 1));

        let v = run(log(Viewer::Customer(0), &[1, 2, 5, 4, 6])).violations;
        assert_eq!((v.reordered, v.total()), (1, 1));

        let v = run(log(Viewer::Customer(0), &[1, 2, 3, 4, 5, 6])).violations;
        assert_eq!((v.foreign_audience, v.total()), (1, 1), "s1's event at s0");
        assert!(
            v.examples[0].contains("(sse customer s0, restaurant #0) seq 3 (for ")
                && v.examples[0].ends_with(", session s1)"),
            "{:?}",
            v.examples
        );

        let mut l = log(Viewer::Customer(0), &[1, 2, 4, 5, 6]);
        l.receipts[1].foreign = true;
        let v = run(l).violations;
        assert_eq!((v.foreign_restaurant, v.missing), (1, 1));

        let mut l = log(Viewer::Customer(0), &[1, 2, 4, 5, 6]);
        l.receipts[0].kind = Some(Kind::Notification);
        assert_eq!(run(l).violations.altered, 1);

        let mut l = log(Viewer::Customer(0), &[2, 4, 5, 6]);
        l.start = 2;
        let v = run(l).violations;
        assert_eq!((v.before_cursor, v.total()), (1, 1));

        let v = run(log(Viewer::Customer(0), &[1, 2, 4, 5, 6, 7])).violations;
        assert_eq!((v.unexpected, v.total()), (1, 1), "seq 7 was never written");
    }

    #[test]
    fn events_of_lost_writes_are_unverified_not_violations() {
        let b = book();
        let v = verify(&[&b], &[log(Viewer::Kitchen, &[1, 2, 3, 4, 5, 6, 7])], 1);
        assert_eq!((v.violations.total(), v.unverified), (0, 1));
    }
}
