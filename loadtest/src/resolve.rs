//! Writes whose outcome is unknown — the api answered `503` (a region it
//! forwards to is unreachable) or the connection failed — may or may not
//! have committed. The tester must know, or the ledger would miss an event
//! (then reported `unexpected`) or, after a blind retry, hold a duplicate.
//!
//! Order creation carries an `Idempotency-Key`: sent again, it returns the
//! first answer if the first attempt committed. The other writes are not
//! deduplicated by the server, so before sending one again the tester looks
//! for its event in the restaurant's log at its home region (long-poll as
//! the owner, which sees every event): a status change is found by its
//! order (or request), item and new status, which happen once; a request or
//! a notification by a tag the tester put in its `message`. A creation
//! sent again may still commit twice when its first attempt lands after the
//! look-up; those are looked up once more before the screens settle and
//! every commit is put in the ledger ([`Ctx::reconcile`]).

use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

use serde::Deserialize;
use serde_json::{Value, json};

use crate::ctx::Ctx;
use crate::ledger::{Audience, Kind, Known};

/// How to recognise a write's events in its restaurant's log.
#[derive(Clone, Debug)]
pub enum Probe {
    /// Order creation: idempotent by its key, never looked up.
    Keyed,
    OrderStatus {
        order: String,
        status: String,
    },
    /// An item's status; an item becoming ready may make its order ready in
    /// the same transaction (the next seq).
    ItemStatus {
        order: String,
        item: String,
        status: String,
    },
    RequestCreated {
        tag: String,
    },
    RequestStatus {
        request: String,
        status: String,
    },
    /// A notification or an `x.bench` event, told from any other by the
    /// `message` in its data.
    Tagged {
        kind: Kind,
        tag: String,
        audience: Audience,
    },
}

/// A write sent again after an unknown outcome that may have committed
/// twice; looked up again by [`Ctx::reconcile`].
#[derive(Debug)]
pub struct Unsettled {
    pub restaurant: usize,
    /// Its events have a seq above this.
    pub floor: u64,
    pub probe: Probe,
    pub sent_us: u64,
}

fn str_at<'a>(v: &'a Value, key: &str) -> &'a str {
    v[key].as_str().unwrap_or_default()
}

impl Probe {
    /// A creation the server does not deduplicate.
    pub fn may_commit_twice(&self) -> bool {
        matches!(self, Probe::RequestCreated { .. } | Probe::Tagged { .. })
    }

    /// Whether `event` (an envelope) is one of this write's.
    fn matches(&self, event: &Value) -> bool {
        let (kind, data) = (str_at(event, "type"), &event["data"]);
        match self {
            Probe::Keyed => false,
            Probe::OrderStatus { order, status } => {
                kind == "order.status_changed"
                    && str_at(data, "id") == order
                    && str_at(data, "status") == status
            }
            Probe::ItemStatus {
                order,
                item,
                status,
            } => {
                if str_at(data, "id") != order {
                    return false;
                }
                match kind {
                    "order.item_status_changed" => {
                        str_at(event, "item_id") == item
                            && data["items"].as_array().is_some_and(|items| {
                                items.iter().any(|i| {
                                    str_at(i, "id") == item && str_at(i, "status") == status
                                })
                            })
                    }
                    "order.status_changed" => {
                        status == "ready" && str_at(data, "status") == "ready"
                    }
                    _ => false,
                }
            }
            Probe::RequestCreated { tag } => {
                kind == "request.created" && str_at(data, "message") == tag
            }
            Probe::RequestStatus { request, status } => {
                kind == "request.status_changed"
                    && str_at(data, "id") == request
                    && str_at(data, "status") == status
            }
            Probe::Tagged {
                kind: tagged, tag, ..
            } => kind == tagged.as_str() && str_at(data, "message") == tag,
        }
    }

    /// Keeps the matches that are this write's: an order's becoming ready
    /// only right after its item's change.
    fn keep(&self, mut found: Vec<Value>) -> Vec<Value> {
        if let Probe::ItemStatus { .. } = self {
            let item_seqs: Vec<u64> = found
                .iter()
                .filter(|e| str_at(e, "type") == "order.item_status_changed")
                .filter_map(|e| e["seq"].as_u64())
                .collect();
            found.retain(|e| {
                str_at(e, "type") == "order.item_status_changed"
                    || e["seq"]
                        .as_u64()
                        .is_some_and(|s| item_seqs.contains(&(s.saturating_sub(1))))
            });
        }
        found
    }

    /// The api's answer to the write, rebuilt from its events: the
    /// resource as of the last one, and that one's seq.
    pub fn answer(found: &[Value]) -> Value {
        let last = found.last().cloned().unwrap_or_default();
        json!({"order": last["data"], "request": last["data"], "seq": last["seq"]})
    }
}

#[derive(Deserialize)]
struct Page {
    events: Vec<Value>,
    next: u64,
}

impl Ctx {
    /// The events of restaurant `r` after `floor` that `probe` matches, in
    /// seq order, read from its home region's edges; `None` when none of
    /// them answered.
    pub async fn find(&self, r: usize, floor: u64, probe: &Probe) -> Option<Vec<Value>> {
        let restaurant = &self.restaurants[r];
        let edges = &self.regions[restaurant.home].edges;
        'edges: for edge in edges.iter() {
            let mut since = floor;
            let mut found = Vec::new();
            loop {
                let url = format!(
                    "{edge}/v1/restaurants/{}/events?since={since}&limit=1000&wait=0",
                    restaurant.id
                );
                let response = self
                    .streams
                    .get(url)
                    .bearer_auth(&restaurant.owner)
                    .timeout(Duration::from_secs(10))
                    .send()
                    .await;
                let page = match response {
                    Ok(r) if r.status().is_success() => r.json::<Page>().await.ok(),
                    _ => None,
                };
                let Some(page) = page else {
                    continue 'edges;
                };
                if page.events.is_empty() || page.next <= since {
                    return Some(probe.keep(found));
                }
                found.extend(page.events.into_iter().filter(|e| probe.matches(e)));
                since = page.next;
            }
        }
        None
    }

    /// Before the screens settle: looks up every write that may have
    /// committed twice and puts each of its commits in the ledger.
    pub async fn reconcile(&self) {
        let unsettled = std::mem::take(&mut *self.unsettled.lock().expect("unsettled lock"));
        for u in unsettled {
            let Some(found) = self.find(u.restaurant, u.floor, &u.probe).await else {
                self.note_failure("could not read a restaurant's log to settle a retried write");
                continue;
            };
            for event in found {
                let Some(seq) = event["seq"].as_u64().filter(|&s| s > 0) else {
                    continue;
                };
                let Some(kind) = Kind::parse(str_at(&event, "type")) else {
                    continue;
                };
                let audience = match (&u.probe, kind) {
                    (Probe::Tagged { audience, .. }, _) => *audience,
                    (_, Kind::RequestCreated | Kind::RequestStatusChanged) => {
                        crate::driver::request_audience(&event["data"])
                    }
                    _ => crate::driver::order_audience(&event["data"]),
                };
                let mut book = self.ledger.book(u.restaurant);
                if book.get(seq).is_none() {
                    book.record(
                        seq,
                        Known {
                            kind,
                            audience,
                            sent_us: u.sent_us,
                        },
                    );
                    self.stats.extra_commits.fetch_add(1, Relaxed);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn order_event(seq: u64, kind: &str, status: &str, item: Option<(&str, &str)>) -> Value {
        let items = item.map_or_else(Vec::new, |(id, st)| vec![json!({"id": id, "status": st})]);
        let mut e = json!({"seq": seq, "type": kind,
            "data": {"id": "o1", "status": status, "items": items}});
        if let Some((id, _)) = item {
            e["item_id"] = json!(id);
        }
        e
    }

    #[test]
    fn probes_find_their_own_events_only() {
        let status = Probe::OrderStatus {
            order: "o1".into(),
            status: "accepted".into(),
        };
        assert!(status.matches(&order_event(3, "order.status_changed", "accepted", None)));
        assert!(!status.matches(&order_event(3, "order.status_changed", "in_progress", None)));
        assert!(!status.matches(&order_event(3, "order.created", "accepted", None)));

        let ready = Probe::ItemStatus {
            order: "o1".into(),
            item: "i1".into(),
            status: "ready".into(),
        };
        let events = vec![
            order_event(
                5,
                "order.item_status_changed",
                "in_progress",
                Some(("i1", "ready")),
            ),
            order_event(6, "order.status_changed", "ready", None),
        ];
        let found: Vec<Value> = events.into_iter().filter(|e| ready.matches(e)).collect();
        let kept = ready.keep(found);
        assert_eq!(kept.len(), 2, "the item and the order it made ready");
        assert_eq!(Probe::answer(&kept)["seq"], 6);
        assert_eq!(Probe::answer(&kept)["order"]["status"], "ready");
        // The order becoming ready without this item's change is another
        // write's.
        let alone = ready.keep(vec![order_event(9, "order.status_changed", "ready", None)]);
        assert!(alone.is_empty());

        let note = Probe::Tagged {
            kind: Kind::Notification,
            tag: "lt-1".into(),
            audience: Audience::of(&[], None, None),
        };
        assert!(note.matches(&json!({"type": "notification", "data": {"message": "lt-1"}})));
        assert!(!note.matches(&json!({"type": "notification", "data": {"message": "lt-2"}})));
        assert!(!note.matches(&json!({"type": "x.bench", "data": {"message": "lt-1"}})));
        assert!(note.may_commit_twice() && !status.may_commit_twice());
    }
}
