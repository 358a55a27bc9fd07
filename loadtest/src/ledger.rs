//! What the tester knows of every event, learnt from the api's answers to
//! its own writes, and who is entitled to see it.
//!
//! The entitlement rule is restated here from docs/protocol.md ("Delivery
//! rule") on purpose rather than borrowed from the server's code: the
//! tester checks the server, so it must not share its mistakes.

use std::sync::Mutex;

/// Event types the tester causes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    OrderCreated = 1,
    OrderStatusChanged,
    ItemStatusChanged,
    RequestCreated,
    RequestStatusChanged,
    Notification,
    /// `x.bench`, published by `--lifecycle publish`.
    Bench,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::OrderCreated => "order.created",
            Kind::OrderStatusChanged => "order.status_changed",
            Kind::ItemStatusChanged => "order.item_status_changed",
            Kind::RequestCreated => "request.created",
            Kind::RequestStatusChanged => "request.status_changed",
            Kind::Notification => "notification",
            Kind::Bench => "x.bench",
        }
    }

    /// The kind of a wire type; `None` for types the tester never causes.
    pub fn parse(s: &str) -> Option<Kind> {
        [
            Kind::OrderCreated,
            Kind::OrderStatusChanged,
            Kind::ItemStatusChanged,
            Kind::RequestCreated,
            Kind::RequestStatusChanged,
            Kind::Notification,
            Kind::Bench,
        ]
        .into_iter()
        .find(|k| k.as_str() == s)
    }
}

/// A role, as a bit of [`Audience::roles`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    Owner = 1,
    Kitchen = 2,
    Waiter = 4,
    Customer = 8,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Owner => "owner",
            Role::Kitchen => "kitchen",
            Role::Waiter => "waiter",
            Role::Customer => "customer",
        }
    }
}

/// Who an event is for: role bits, and the table session and waiter it
/// names (indexes: session `s3` is 3; `u16::MAX` names someone the tester
/// does not know).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Audience {
    pub roles: u8,
    pub session: Option<u16>,
    pub waiter: Option<u16>,
}

impl Audience {
    pub fn of(roles: &[Role], session: Option<u16>, waiter: Option<u16>) -> Audience {
        Audience {
            roles: roles.iter().fold(0, |acc, r| acc | *r as u8),
            session,
            waiter,
        }
    }

    fn includes(&self, role: Role) -> bool {
        self.roles & role as u8 != 0
    }
}

/// A session or waiter index as the tester names it (`s3`, `w1`), `?` for
/// someone it does not know.
fn who(prefix: char, i: u16) -> String {
    if i == u16::MAX {
        format!("{prefix}?")
    } else {
        format!("{prefix}{i}")
    }
}

/// E.g. `for kitchen+customer, session s3`.
impl std::fmt::Display for Audience {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let roles = [Role::Owner, Role::Kitchen, Role::Waiter, Role::Customer]
            .into_iter()
            .filter(|r| self.includes(*r))
            .map(Role::as_str)
            .collect::<Vec<_>>();
        write!(f, "for {}", roles.join("+"))?;
        if let Some(s) = self.session {
            write!(f, ", session {}", who('s', s))?;
        }
        if let Some(w) = self.waiter {
            write!(f, ", waiter {}", who('w', w))?;
        }
        Ok(())
    }
}

/// A screen's identity.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Viewer {
    /// A chain's admin (regions mode): every restaurant of the chain on one
    /// WebSocket, every event of each.
    Admin,
    Owner,
    Kitchen,
    Waiter(u16),
    Customer(u16),
}

/// E.g. `kitchen`, `waiter w1`, `customer s3`.
impl std::fmt::Display for Viewer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match *self {
            Viewer::Waiter(w) => write!(f, "waiter {}", who('w', w)),
            Viewer::Customer(s) => write!(f, "customer {}", who('s', s)),
            Viewer::Admin => f.write_str("chain admin"),
            other => f.write_str(other.role().as_str()),
        }
    }
}

impl Viewer {
    /// The audience role whose events it gets (an admin sees what an owner
    /// sees).
    pub fn role(self) -> Role {
        match self {
            Viewer::Admin | Viewer::Owner => Role::Owner,
            Viewer::Kitchen => Role::Kitchen,
            Viewer::Waiter(_) => Role::Waiter,
            Viewer::Customer(_) => Role::Customer,
        }
    }

    /// The delivery rule: admins and owners see everything; a kitchen the kitchen audience; a
    /// waiter the waiter audience unless the event names another waiter; a
    /// customer only events naming its own table session.
    pub fn entitled(self, audience: &Audience) -> bool {
        match self {
            Viewer::Admin | Viewer::Owner => true,
            Viewer::Kitchen => audience.includes(Role::Kitchen),
            Viewer::Waiter(me) => {
                audience.includes(Role::Waiter) && audience.waiter.is_none_or(|w| w == me)
            }
            Viewer::Customer(me) => {
                audience.includes(Role::Customer) && audience.session == Some(me)
            }
        }
    }
}

/// An event the tester caused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Known {
    pub kind: Kind,
    pub audience: Audience,
    /// When the request that caused it started, µs since the run began.
    pub sent_us: u64,
}

/// One restaurant's events, by seq.
#[derive(Debug, Default)]
pub struct Book {
    /// `events[seq - 1]`; `None` where a write's answer was lost.
    pub events: Vec<Option<Known>>,
}

impl Book {
    /// The highest seq known to be committed.
    pub fn head(&self) -> u64 {
        self.events.len() as u64
    }

    pub fn get(&self, seq: u64) -> Option<&Known> {
        let i = usize::try_from(seq).ok()?.checked_sub(1)?;
        self.events.get(i)?.as_ref()
    }

    /// Records event `seq`.
    pub fn record(&mut self, seq: u64, known: Known) {
        let i = seq as usize - 1;
        if self.events.len() <= i {
            self.events.resize(i + 1, None);
        }
        self.events[i] = Some(known);
    }

    /// The last seq after `from` that `viewer` is entitled to.
    pub fn last_entitled(&self, viewer: Viewer, from: u64) -> u64 {
        (from + 1..=self.head())
            .rev()
            .find(|&seq| self.get(seq).is_some_and(|k| viewer.entitled(&k.audience)))
            .unwrap_or(from)
    }
}

/// Every restaurant's book.
#[derive(Debug)]
pub struct Ledger {
    books: Vec<Mutex<Book>>,
}

impl Ledger {
    pub fn new(restaurants: usize) -> Ledger {
        Ledger {
            books: (0..restaurants).map(|_| Mutex::default()).collect(),
        }
    }

    pub fn book(&self, restaurant: usize) -> std::sync::MutexGuard<'_, Book> {
        self.books[restaurant].lock().expect("ledger lock")
    }

    pub fn restaurants(&self) -> usize {
        self.books.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entitlement_follows_design_section_7() {
        let order = Audience::of(
            &[Role::Owner, Role::Kitchen, Role::Waiter, Role::Customer],
            Some(1),
            Some(2),
        );
        assert!(Viewer::Owner.entitled(&order));
        assert!(Viewer::Kitchen.entitled(&order));
        assert!(Viewer::Waiter(2).entitled(&order));
        assert!(!Viewer::Waiter(1).entitled(&order));
        assert!(Viewer::Customer(1).entitled(&order));
        assert!(!Viewer::Customer(2).entitled(&order));

        let walk_in = Audience::of(
            &[Role::Owner, Role::Kitchen, Role::Waiter, Role::Customer],
            None,
            None,
        );
        assert!(Viewer::Waiter(0).entitled(&walk_in));
        assert!(
            !Viewer::Customer(0).entitled(&walk_in),
            "no session, no customer"
        );

        let kitchen_only = Audience::of(&[Role::Kitchen], None, None);
        assert!(Viewer::Owner.entitled(&kitchen_only));
        assert!(Viewer::Admin.entitled(&kitchen_only));
        assert_eq!(Viewer::Admin.to_string(), "chain admin");
        assert!(!Viewer::Waiter(0).entitled(&kitchen_only));
    }

    #[test]
    fn last_entitled_skips_what_the_viewer_may_not_see() {
        let mut book = Book::default();
        let k = |session| Known {
            kind: Kind::OrderCreated,
            audience: Audience::of(&[Role::Customer], Some(session), None),
            sent_us: 0,
        };
        book.record(1, k(0));
        book.record(2, k(1));
        book.record(4, k(1));
        assert_eq!(book.head(), 4);
        assert_eq!(book.get(3), None);
        assert_eq!(book.last_entitled(Viewer::Customer(0), 0), 1);
        assert_eq!(book.last_entitled(Viewer::Customer(1), 0), 4);
        assert_eq!(book.last_entitled(Viewer::Customer(0), 2), 2);
    }
}
