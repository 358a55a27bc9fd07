//! Which connections a port accepts: a bound on the connections that are
//! not (yet) streaming, process-wide and per client address.
//!
//! Every accepted connection holds a *pending* slot while it handshakes,
//! sends a request, waits for its answer or idles between requests. Slots
//! are few next to the process's open files, so a flood of slow or idle
//! connections is refused at the door instead of exhausting the files that
//! streams, PostgreSQL and Redis need. A connection that becomes an event
//! stream gives its slot back ([`Slot::promote`]): from then on the edge's
//! streaming limits count it. Before a request is authenticated the only
//! principal is the address, so that is what the per-address limit counts
//! (docs/design.md §12).

use std::collections::HashMap;
use std::hash::Hash;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

use prometheus::{IntCounterVec, Opts, Registry};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// How many pending connections a port admits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AdmissionLimits {
    /// Pending connections of the whole port.
    pub pending: usize,
    /// Pending connections of one client address; `None` is no limit.
    pub per_address: Option<usize>,
}

/// `ordercast_connections_refused_total{port,reason}`.
#[derive(Clone)]
pub struct RefusedConnections(IntCounterVec);

impl RefusedConnections {
    pub fn new(registry: &Registry) -> prometheus::Result<RefusedConnections> {
        let counter = IntCounterVec::new(
            Opts::new(
                "ordercast_connections_refused_total",
                "Connections closed at accept: the port's pending connections, or the client address's, were at their limit.",
            ),
            &["port", "reason"],
        )?;
        // Every series at 0 from the start: a panel shows 0, not "no data".
        for port in ["public", "admin"] {
            for refusal in [Refusal::Pending, Refusal::Address] {
                counter.with_label_values(&[port, refusal.as_str()]);
            }
        }
        registry.register(Box::new(counter.clone()))?;
        Ok(RefusedConnections(counter))
    }
}

/// Why a connection was refused (the metric's `reason`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// The port's pending connections are at their limit.
    Pending,
    /// The client address's pending connections are at their limit.
    Address,
}

impl Refusal {
    pub fn as_str(self) -> &'static str {
        match self {
            Refusal::Pending => "pending",
            Refusal::Address => "address",
        }
    }
}

/// The pending connections of one port.
#[derive(Clone)]
pub struct Admission {
    limits: AdmissionLimits,
    pending: Arc<Semaphore>,
    addresses: Counts<IpAddr>,
    port: &'static str,
    refused: RefusedConnections,
}

impl Admission {
    /// Admission for the port named `port` in metrics (`public`, `admin`).
    pub fn new(limits: AdmissionLimits, port: &'static str, refused: RefusedConnections) -> Self {
        Admission {
            limits,
            pending: Arc::new(Semaphore::new(limits.pending)),
            addresses: Counts::default(),
            port,
            refused,
        }
    }

    /// A pending slot for a connection from `address`, or why not (and the
    /// refusal is counted).
    pub fn admit(&self, address: IpAddr) -> Result<Slot, Refusal> {
        let result = self.try_admit(address.to_canonical());
        if let Err(refusal) = result {
            self.refused
                .0
                .with_label_values(&[self.port, refusal.as_str()])
                .inc();
        }
        result
    }

    fn try_admit(&self, address: IpAddr) -> Result<Slot, Refusal> {
        let address = match self.limits.per_address {
            Some(limit) => Some(
                self.addresses
                    .take(address, limit)
                    .ok_or(Refusal::Address)?,
            ),
            None => None,
        };
        let permit = self
            .pending
            .clone()
            .try_acquire_owned()
            .map_err(|_| Refusal::Pending)?;
        Ok(Slot(Arc::new(Mutex::new(Some(Pending {
            _permit: permit,
            _address: address,
        })))))
    }
}

/// One connection's pending slot, shared with its requests (as a request
/// extension) so that a handler can [promote](Slot::promote) it.
#[derive(Clone)]
pub struct Slot(Arc<Mutex<Option<Pending>>>);

impl Slot {
    /// The connection is a stream now and counts against the streaming
    /// limits instead; its pending slot goes back. A promoted connection
    /// must close when its response ends (event streams do).
    pub fn promote(&self) {
        let pending = self.0.lock().expect("slot lock").take();
        drop(pending);
    }

    /// Whether the connection still holds its pending slot.
    pub fn is_pending(&self) -> bool {
        self.0.lock().expect("slot lock").is_some()
    }
}

struct Pending {
    _permit: OwnedSemaphorePermit,
    _address: Option<Counted<IpAddr>>,
}

/// How many of something each key holds (connections per address,
/// streams per principal); keys holding none are forgotten.
pub struct Counts<K: Hash + Eq>(
    // std Mutex: held for a map update, never across an .await.
    Arc<Mutex<HashMap<K, usize>>>,
);

impl<K: Hash + Eq> Default for Counts<K> {
    fn default() -> Self {
        Counts(Arc::default())
    }
}

impl<K: Hash + Eq> Clone for Counts<K> {
    fn clone(&self) -> Self {
        Counts(self.0.clone())
    }
}

impl<K: Hash + Eq + Clone> Counts<K> {
    /// One more for `key`, held until dropped; `None` if it holds `limit`.
    pub fn take(&self, key: K, limit: usize) -> Option<Counted<K>> {
        let mut counts = self.0.lock().expect("counts lock");
        let count = counts.entry(key.clone()).or_default();
        if *count >= limit {
            return None;
        }
        *count += 1;
        Some(Counted {
            counts: self.clone(),
            key,
        })
    }

    /// Whether no key holds anything.
    pub fn is_empty(&self) -> bool {
        self.0.lock().expect("counts lock").is_empty()
    }
}

/// One of a key's count, given back when dropped.
pub struct Counted<K: Hash + Eq> {
    counts: Counts<K>,
    key: K,
}

impl<K: Hash + Eq> Drop for Counted<K> {
    fn drop(&mut self) {
        let mut counts = self.counts.0.lock().expect("counts lock");
        if let Some(count) = counts.get_mut(&self.key) {
            *count -= 1;
            if *count == 0 {
                counts.remove(&self.key);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn admission(pending: usize, per_address: Option<usize>) -> Admission {
        let refused = RefusedConnections::new(&Registry::new()).unwrap();
        Admission::new(
            AdmissionLimits {
                pending,
                per_address,
            },
            "public",
            refused,
        )
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn one_address_cannot_take_every_pending_slot() {
        let admission = admission(3, Some(2));
        let _a = admission.admit(ip("10.0.0.1")).unwrap();
        let _b = admission.admit(ip("10.0.0.1")).unwrap();
        assert_eq!(
            admission.admit(ip("10.0.0.1")).err(),
            Some(Refusal::Address)
        );
        let _c = admission.admit(ip("10.0.0.2")).unwrap();
        assert_eq!(
            admission.admit(ip("10.0.0.3")).err(),
            Some(Refusal::Pending)
        );
    }

    #[test]
    fn a_closed_or_promoted_connection_frees_its_slot_and_its_address_count() {
        let admission = admission(1, Some(1));
        let slot = admission.admit(ip("10.0.0.1")).unwrap();
        slot.promote();
        assert!(!slot.is_pending());
        let again = admission.admit(ip("10.0.0.1")).unwrap();
        drop(again);
        assert!(admission.admit(ip("10.0.0.1")).is_ok());
        assert!(admission.addresses.is_empty());
    }

    #[test]
    fn an_ipv4_mapped_address_is_the_same_client() {
        let admission = admission(4, Some(1));
        let _v4 = admission.admit(ip("10.0.0.1")).unwrap();
        assert_eq!(
            admission.admit(ip("::ffff:10.0.0.1")).err(),
            Some(Refusal::Address)
        );
    }
}
