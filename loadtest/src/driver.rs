//! The traffic: orders created on an open-loop schedule, each walking its
//! life cycle, waiter requests and notifications. Every answer goes into
//! the ledger, so the verifier knows each event's seq, type and audience.

use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, Instant};

use rand::Rng;
use serde_json::{Value, json};
use tokio::task::JoinSet;

use ordercast_core::Chain;

use crate::ctx::Ctx;
use crate::ledger::{Audience, Kind, Known, Role};
use crate::resolve::{Probe, Unsettled};
use crate::scenario::Lifecycle;

const STATIONS: [&str; 4] = ["grill", "fry", "bar", "cold"];
const ORDER_ROLES: [Role; 4] = [Role::Owner, Role::Kitchen, Role::Waiter, Role::Customer];
const REQUEST_ROLES: [Role; 3] = [Role::Owner, Role::Waiter, Role::Customer];

/// A write that did not commit: refused (an error answer) or lost (no
/// certain answer before retries ran out; it may or may not have
/// committed).
#[derive(Debug)]
struct WriteFailed;

/// Parses `s3` / `w3` into 3; another label is someone the tester does not
/// know (`u16::MAX`).
fn index_of(v: &Value, prefix: char) -> Option<u16> {
    let s = v.as_str()?;
    Some(
        s.strip_prefix(prefix)
            .and_then(|n| n.parse().ok())
            .unwrap_or(u16::MAX),
    )
}

/// Who an order's events are for.
pub(crate) fn order_audience(order: &Value) -> Audience {
    Audience::of(
        &ORDER_ROLES,
        index_of(&order["session_id"], 's'),
        index_of(&order["waiter_id"], 'w'),
    )
}

/// Who a waiter request's events are for.
pub(crate) fn request_audience(request: &Value) -> Audience {
    Audience::of(
        &REQUEST_ROLES,
        index_of(&request["session_id"], 's'),
        index_of(&request["waiter_id"], 'w'),
    )
}

/// One logical write: where it goes and how to recognise its events.
struct Write<'a> {
    restaurant: usize,
    /// The region whose api it is sent to.
    via: usize,
    path: &'a str,
    body: &'a Value,
    /// When it was due (new orders: latency counts from the schedule).
    due: Option<Instant>,
    order: bool,
    probe: Probe,
    /// Its Idempotency-Key, the same on every attempt.
    key: &'a str,
}

/// What became of one attempt.
enum Attempt {
    Answered(Value),
    /// An error answer that says nothing committed (4xx but 409 after an
    /// unknown outcome, or a 5xx other than 503).
    Refused(String),
    /// The write may have committed: 409 `illegal-transition` after an
    /// earlier attempt without a certain outcome.
    AlreadyDone,
    /// No certain outcome: 503 or no answer. `Some` retry delay the
    /// server asked for.
    Unknown(String, Option<Duration>),
}

/// First retry after 200 ms, doubling to 2 s, with half jitter.
fn retry_pause(attempt: u32, hint: Option<Duration>) -> Duration {
    if let Some(h) = hint {
        return h.min(Duration::from_secs(5));
    }
    let cap = Duration::from_millis(200 * 2u64.pow(attempt.min(4))).min(Duration::from_secs(2));
    cap.mul_f64(0.5 + rand::random::<f64>() / 2.0)
}

impl Ctx {
    /// A fresh Idempotency-Key (and tag) for one logical write.
    fn next_key(&self) -> String {
        format!(
            "lt-{}-{}",
            self.run_tag,
            self.write_ids.fetch_add(1, Relaxed)
        )
    }

    /// The region a new order (with all its writes) or notification is
    /// sent through: its home, or by `--forward-share` another region.
    fn route(&self, restaurant: usize) -> usize {
        let home = self.restaurants[restaurant].home;
        let n = self.regions.len();
        let mut rng = rand::rng();
        if n > 1 && rng.random_bool(self.scenario.forward_share) {
            (home + rng.random_range(1..n)) % n
        } else {
            home
        }
    }

    /// Sends one attempt to an api of region `via` (spread over them) as
    /// the restaurant's owner.
    async fn attempt(&self, w: &Write<'_>, after_unknown: bool) -> Attempt {
        let apis = &self.regions[w.via].apis;
        let n = self.writes_sent.fetch_add(1, Relaxed);
        let api = apis[n as usize % apis.len()].trim_end_matches('/');
        let r = &self.restaurants[w.restaurant];
        let _permit = self.in_flight.acquire().await.expect("never closed");
        let result = self
            .api
            .post(format!("{api}/v1/restaurants/{}{}", r.id, w.path))
            .bearer_auth(&r.owner)
            .header("idempotency-key", w.key)
            .json(w.body)
            .send()
            .await;
        let response = match result {
            Ok(response) => response,
            Err(e) => return Attempt::Unknown(Chain(&e.without_url()).to_string(), None),
        };
        let status = response.status();
        let hint = response
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok()?.parse().ok())
            .map(Duration::from_secs);
        let value = match response.json::<Value>().await {
            Ok(v) => v,
            Err(e) => {
                return Attempt::Unknown(
                    format!("reading the answer: {}", Chain(&e.without_url())),
                    None,
                );
            }
        };
        if status.is_success() {
            return Attempt::Answered(value);
        }
        let slug = value["type"]
            .as_str()
            .unwrap_or_default()
            .rsplit('/')
            .next()
            .unwrap_or_default()
            .to_owned();
        let what = format!("HTTP {status} {slug}");
        if status == reqwest::StatusCode::SERVICE_UNAVAILABLE {
            Attempt::Unknown(what, hint)
        } else if status == reqwest::StatusCode::CONFLICT
            && after_unknown
            && slug == "illegal-transition"
        {
            Attempt::AlreadyDone
        } else {
            Attempt::Refused(format!("{}: {what}", w.path_kind()))
        }
    }

    /// Sends a write, again after an unknown outcome (the same key; for
    /// writes the server does not deduplicate, only once the restaurant's
    /// log shows it did not commit), until it is answered or the retry
    /// deadline passes. Latency counts from `due` (the schedule, for new
    /// orders) or from the first send.
    async fn write(&self, w: Write<'_>) -> Result<(Value, u64), WriteFailed> {
        let started = Instant::now();
        let sent_us = self.stats.now_us();
        let home = self.restaurants[w.restaurant].home;
        let region = &self.stats.regions[w.via];
        let forwarded = w.via != home;
        if forwarded {
            region.forwarded.fetch_add(1, Relaxed);
        }
        // Any event of this write has a seq above every seq answered
        // before it was sent.
        let floor = self.ledger.book(w.restaurant).head();
        let mut unknown = 0u32;
        let mut resent_blind = false;
        let answer = loop {
            if unknown > 0 && !matches!(w.probe, Probe::Keyed) {
                if let Some(found) = self.find(w.restaurant, floor, &w.probe).await
                    && !found.is_empty()
                {
                    self.stats.writes_resolved.fetch_add(1, Relaxed);
                    break Probe::answer(&found);
                }
                resent_blind = true;
            }
            match self.attempt(&w, unknown > 0).await {
                Attempt::Answered(v) => break v,
                Attempt::Refused(what) => {
                    self.stats.writes_refused.fetch_add(1, Relaxed);
                    self.note_failure(&format!("api {what}"));
                    return Err(WriteFailed);
                }
                outcome @ (Attempt::Unknown(..) | Attempt::AlreadyDone) => {
                    let (what, hint) = match outcome {
                        Attempt::Unknown(what, hint) => (what, hint),
                        _ => (
                            "HTTP 409 illegal-transition after an unknown outcome".to_owned(),
                            Some(Duration::from_millis(300)),
                        ),
                    };
                    let pause = retry_pause(unknown, hint);
                    let deadline = self.retry_until_us.load(Relaxed);
                    if self.stats.now_us() + pause.as_micros() as u64 > deadline || unknown >= 1000
                    {
                        self.stats.writes_lost.fetch_add(1, Relaxed);
                        self.note_failure(&format!(
                            "api {}: {what} (retries ran out)",
                            w.path_kind()
                        ));
                        return Err(WriteFailed);
                    }
                    self.note_retry(&format!("{what} (through {})", self.regions[w.via].name));
                    unknown += 1;
                    region.retries.fetch_add(1, Relaxed);
                    if forwarded {
                        region.forwarded_retries.fetch_add(1, Relaxed);
                    }
                    tokio::time::sleep(pause).await;
                }
            }
        };
        if resent_blind && w.probe.may_commit_twice() {
            self.unsettled
                .lock()
                .expect("unsettled lock")
                .push(Unsettled {
                    restaurant: w.restaurant,
                    floor,
                    probe: w.probe.clone(),
                    sent_us,
                });
        }
        let took = w.due.unwrap_or(started).elapsed().as_micros() as u64;
        self.stats.wrote(sent_us, took, w.order);
        Ok((answer, sent_us))
    }

    fn record(&self, restaurant: usize, seq: &Value, kind: Kind, audience: Audience, sent_us: u64) {
        if let Some(seq) = seq.as_u64().filter(|&s| s > 0) {
            self.ledger.book(restaurant).record(
                seq,
                Known {
                    kind,
                    audience,
                    sent_us,
                },
            );
        }
    }

    async fn pause(&self) {
        let d = self.scenario.step_delay;
        let pause = if d.max > d.min {
            rand::rng().random_range(d.min..=d.max)
        } else {
            d.min
        };
        tokio::time::sleep(pause).await;
    }

    fn traffic_over(&self) -> bool {
        self.traffic_over.load(Relaxed)
    }

    /// Sets an order's status; returns the order.
    async fn set_status(
        &self,
        r: usize,
        via: usize,
        oid: &str,
        status: &str,
    ) -> Result<Value, WriteFailed> {
        let key = self.next_key();
        let (resp, sent) = self
            .write(Write {
                restaurant: r,
                via,
                path: &format!("/orders/{oid}/status"),
                body: &json!({ "status": status }),
                due: None,
                order: false,
                probe: Probe::OrderStatus {
                    order: oid.to_owned(),
                    status: status.to_owned(),
                },
                key: &key,
            })
            .await?;
        let order = resp["order"].clone();
        self.record(
            r,
            &resp["seq"],
            Kind::OrderStatusChanged,
            order_audience(&order),
            sent,
        );
        Ok(order)
    }

    /// Sets an item's status; the last item ready makes the order ready
    /// too (two events).
    async fn set_item(
        &self,
        r: usize,
        via: usize,
        oid: &str,
        iid: &str,
        status: &str,
    ) -> Result<Value, WriteFailed> {
        let key = self.next_key();
        let (resp, sent) = self
            .write(Write {
                restaurant: r,
                via,
                path: &format!("/orders/{oid}/items/{iid}/status"),
                body: &json!({ "status": status }),
                due: None,
                order: false,
                probe: Probe::ItemStatus {
                    order: oid.to_owned(),
                    item: iid.to_owned(),
                    status: status.to_owned(),
                },
                key: &key,
            })
            .await?;
        let order = resp["order"].clone();
        let audience = order_audience(&order);
        let seq = resp["seq"].as_u64().unwrap_or(0);
        if status == "ready" && order["status"] == "ready" {
            self.record(
                r,
                &json!(seq.saturating_sub(1)),
                Kind::ItemStatusChanged,
                audience,
                sent,
            );
            self.record(r, &json!(seq), Kind::OrderStatusChanged, audience, sent);
        } else {
            self.record(r, &json!(seq), Kind::ItemStatusChanged, audience, sent);
        }
        Ok(order)
    }

    /// One order from creation to payment (or cancellation), every write
    /// through one region's api.
    async fn order(self: Arc<Self>, r: usize, due: Instant) -> Result<(), WriteFailed> {
        let (body, with_request) = {
            let mut rng = rand::rng();
            let s = &self.scenario;
            let items: Vec<Value> = (0..rng.random_range(1..=4))
                .map(|i| {
                    json!({"sku": format!("sku-{i}"), "name": format!("Dish {i}"),
                        "quantity": rng.random_range(1..=3), "unit_price_cents": 450 + 100 * i,
                        "station": STATIONS[rng.random_range(0..STATIONS.len())]})
                })
                .collect();
            let body = if rng.random_bool(0.1) {
                json!({"channel": "online", "items": items, "notes": "takeaway"})
            } else {
                let table = rng.random_range(0..s.sessions);
                json!({"channel": "pos", "table": format!("T{table}"),
                    "session_id": format!("s{table}"),
                    "waiter_id": format!("w{}", rng.random_range(0..s.waiter_ids)),
                    "items": items})
            };
            (body, rng.random_bool(s.request_share))
        };
        let via = self.route(r);
        let key = self.next_key();
        let (resp, sent) = self
            .write(Write {
                restaurant: r,
                via,
                path: "/orders",
                body: &body,
                due: Some(due),
                order: true,
                probe: Probe::Keyed,
                key: &key,
            })
            .await?;
        let order = &resp["order"];
        self.record(
            r,
            &resp["seq"],
            Kind::OrderCreated,
            order_audience(order),
            sent,
        );
        if self.scenario.lifecycle == Lifecycle::Create {
            return Ok(());
        }
        let oid = order["id"].as_str().unwrap_or_default().to_owned();
        let items: Vec<String> = order["items"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|i| i["id"].as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default();
        // The request walks beside the order; the order's task ends after
        // it, so the driver's wait covers it, retries included.
        let request = match order["session_id"].as_str() {
            Some(session) if with_request => {
                let table = order["table"].as_str().unwrap_or("T0").to_owned();
                let session = session.to_owned();
                Some(tokio::spawn(self.clone().request(r, via, table, session)))
            }
            _ => None,
        };
        let walked = self.walk(r, via, &oid, &items).await;
        if let Some(request) = request {
            let _ = request.await;
        }
        walked
    }

    /// An order's steps after its creation.
    async fn walk(
        &self,
        r: usize,
        via: usize,
        oid: &str,
        items: &[String],
    ) -> Result<(), WriteFailed> {
        let cancel = rand::rng().random_bool(self.scenario.cancel_share);
        let steps: &[&str] = if cancel {
            &["accepted", "cancelled"]
        } else {
            &["accepted", "in_progress"]
        };
        for status in steps {
            self.pause().await;
            if self.traffic_over() {
                return Ok(());
            }
            self.set_status(r, via, oid, status).await?;
        }
        if cancel {
            return Ok(());
        }
        for item_status in ["cooking", "ready"] {
            for iid in items {
                self.pause().await;
                if self.traffic_over() {
                    return Ok(());
                }
                self.set_item(r, via, oid, iid, item_status).await?;
            }
        }
        for status in ["served", "paid"] {
            self.pause().await;
            if self.traffic_over() {
                return Ok(());
            }
            self.set_status(r, via, oid, status).await?;
        }
        Ok(())
    }

    /// A table calls its waiter, who acknowledges, then resolves it.
    async fn request(
        self: Arc<Self>,
        r: usize,
        via: usize,
        table: String,
        session: String,
    ) -> Result<(), WriteFailed> {
        self.pause().await;
        if self.traffic_over() {
            return Ok(());
        }
        // The message tells this request's event from any other's.
        let key = self.next_key();
        let body = json!({"kind": "call_waiter", "table": table, "session_id": session,
            "message": key});
        let (resp, sent) = self
            .write(Write {
                restaurant: r,
                via,
                path: "/requests",
                body: &body,
                due: None,
                order: false,
                probe: Probe::RequestCreated { tag: key.clone() },
                key: &key,
            })
            .await?;
        self.record(
            r,
            &resp["seq"],
            Kind::RequestCreated,
            request_audience(&resp["request"]),
            sent,
        );
        let id = resp["request"]["id"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        for status in ["acknowledged", "in_progress", "resolved"] {
            self.pause().await;
            if self.traffic_over() {
                return Ok(());
            }
            let key = self.next_key();
            let (resp, sent) = self
                .write(Write {
                    restaurant: r,
                    via,
                    path: &format!("/requests/{id}/status"),
                    body: &json!({ "status": status }),
                    due: None,
                    order: false,
                    probe: Probe::RequestStatus {
                        request: id.clone(),
                        status: status.to_owned(),
                    },
                    key: &key,
                })
                .await?;
            self.record(
                r,
                &resp["seq"],
                Kind::RequestStatusChanged,
                request_audience(&resp["request"]),
                sent,
            );
        }
        Ok(())
    }

    /// A kitchen-wide urgent notification or one for a single waiter.
    async fn notification(self: Arc<Self>, r: usize, n: u64) -> Result<(), WriteFailed> {
        // The message tells this notification's event from any other's.
        let key = self.next_key();
        let (body, audience) = if n.is_multiple_of(2) {
            (
                json!({"audience": {"roles": ["kitchen"]}, "urgency": "urgent",
                    "title": "86 salmon", "message": format!("Out of salmon for tonight ({key})")}),
                Audience::of(&[Role::Kitchen], None, None),
            )
        } else {
            let w = (n / 2 % self.scenario.waiter_ids as u64) as u16;
            (
                json!({"audience": {"roles": ["waiter"], "waiter_id": format!("w{w}")},
                    "urgency": "info", "title": "Table ready",
                    "message": format!("Food is up ({key})"), "group_key": "pickup"}),
                Audience::of(&[Role::Waiter], None, Some(w)),
            )
        };
        let tag = body["message"].as_str().unwrap_or_default().to_owned();
        let (resp, sent) = self
            .write(Write {
                restaurant: r,
                via: self.route(r),
                path: "/notifications",
                body: &body,
                due: None,
                order: false,
                probe: Probe::Tagged {
                    kind: Kind::Notification,
                    tag,
                    audience,
                },
                key: &key,
            })
            .await?;
        self.record(r, &resp["seq"], Kind::Notification, audience, sent);
        Ok(())
    }

    /// `--lifecycle publish`: one `x.bench` event for the kitchen, its data
    /// padded to `--payload-bytes`, through the generic publish endpoint.
    async fn bench_event(self: Arc<Self>, r: usize, due: Instant) -> Result<(), WriteFailed> {
        let key = self.next_key();
        let audience = Audience::of(&[Role::Kitchen], None, None);
        let overhead = r#"{"message":"","pad":""}"#.len() + key.len();
        let pad = "x".repeat(self.scenario.payload_bytes.saturating_sub(overhead));
        let body = json!({"type": "x.bench", "audience": {"roles": ["kitchen"]},
            "data": {"message": key, "pad": pad}});
        let (resp, sent) = self
            .write(Write {
                restaurant: r,
                via: self.route(r),
                path: "/events",
                body: &body,
                due: Some(due),
                order: false,
                probe: Probe::Tagged {
                    kind: Kind::Bench,
                    tag: key.clone(),
                    audience,
                },
                key: &key,
            })
            .await?;
        self.record(r, &resp["seq"], Kind::Bench, audience, sent);
        Ok(())
    }
}

impl Write<'_> {
    /// The path with its ids left out, for messages: `/orders/…/status`.
    fn path_kind(&self) -> String {
        self.path
            .split('/')
            .map(|part| {
                if part.len() == 36 && part.matches('-').count() == 4 {
                    "…"
                } else {
                    part
                }
            })
            .collect::<Vec<_>>()
            .join("/")
    }
}

/// Drives traffic for `length`, waits for every write in flight, then
/// settles the writes that may have committed twice.
pub async fn drive(ctx: Arc<Ctx>, length: Duration) {
    let start = Instant::now();
    let end = start + length;
    let mut tasks = JoinSet::new();
    let restaurants = ctx.restaurants.len();
    let ticker = |rate: f64| (rate > 0.0).then(|| Duration::from_secs_f64(1.0 / rate));
    let order_every = ticker(ctx.scenario.rate);
    let notify_every = ticker(ctx.scenario.notification_rate);
    let (mut orders, mut notes) = (0u64, 0u64);
    loop {
        let next_order = order_every.map(|d| start + d.mul_f64(orders as f64));
        let next_note = notify_every.map(|d| start + d.mul_f64(notes as f64));
        let next = match (next_order, next_note) {
            (Some(a), Some(b)) => a.min(b),
            (a, b) => match a.or(b) {
                Some(t) => t,
                None => {
                    tokio::time::sleep_until(end.into()).await;
                    break;
                }
            },
        };
        if next >= end {
            tokio::time::sleep_until(end.into()).await;
            break;
        }
        tokio::time::sleep_until(next.into()).await;
        while tasks.try_join_next().is_some() {}
        if next_order == Some(next) {
            let r = orders as usize % restaurants;
            match ctx.scenario.lifecycle {
                Lifecycle::Publish => tasks.spawn(ctx.clone().bench_event(r, next)),
                _ => tasks.spawn(ctx.clone().order(r, next)),
            };
            orders += 1;
        } else {
            tasks.spawn(
                ctx.clone()
                    .notification(notes as usize % restaurants, notes),
            );
            notes += 1;
        }
    }
    ctx.traffic_over.store(true, Relaxed);
    // Every order task ends after its request's, so this waits for every
    // write, retries included.
    while tasks.join_next().await.is_some() {}
    ctx.reconcile().await;
}
