//! The traffic: orders created on an open-loop schedule, each walking its
//! life cycle, waiter requests and notifications. Every answer goes into
//! the ledger, so the verifier knows each event's seq, type and audience.

use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, Instant};

use rand::Rng;
use serde_json::{Value, json};
use tokio::task::JoinSet;

use crate::ctx::Ctx;
use crate::ledger::{Audience, Kind, Known, Role};
use crate::scenario::Lifecycle;

const STATIONS: [&str; 4] = ["grill", "fry", "bar", "cold"];
const ORDER_ROLES: [Role; 4] = [Role::Owner, Role::Kitchen, Role::Waiter, Role::Customer];
const REQUEST_ROLES: [Role; 3] = [Role::Owner, Role::Waiter, Role::Customer];

/// A write that did not commit: refused (an error answer) or lost (no
/// answer; it may or may not have committed).
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

impl Ctx {
    /// Sends one write to an api (spread over them) as the restaurant's
    /// owner. Latency counts from `due` (the schedule, for new orders) or
    /// from the send.
    async fn write(
        &self,
        restaurant: usize,
        path: &str,
        body: &Value,
        due: Option<Instant>,
        order: bool,
    ) -> Result<(Value, u64), WriteFailed> {
        let apis = &self.scenario.apis;
        let n = self.writes_sent.fetch_add(1, Relaxed);
        let api = apis[n as usize % apis.len()].trim_end_matches('/');
        let r = &self.restaurants[restaurant];
        let _permit = self.in_flight.acquire().await.expect("never closed");
        let started = Instant::now();
        let sent_us = self.stats.now_us();
        let result = self
            .api
            .post(format!("{api}/v1/restaurants/{}{path}", r.id))
            .bearer_auth(&r.owner)
            .json(body)
            .send()
            .await;
        let response = match result {
            Ok(response) => response,
            Err(e) => {
                self.stats.writes_lost.fetch_add(1, Relaxed);
                self.note_failure(&format!("api {path}: {e}"));
                return Err(WriteFailed);
            }
        };
        let status = response.status();
        let value = match response.json::<Value>().await {
            Ok(v) if status.is_success() => v,
            Ok(v) => {
                self.stats.writes_refused.fetch_add(1, Relaxed);
                self.note_failure(&format!("api {path}: HTTP {status} {}", v["type"]));
                return Err(WriteFailed);
            }
            Err(e) => {
                self.stats.writes_lost.fetch_add(1, Relaxed);
                self.note_failure(&format!("api {path}: {e}"));
                return Err(WriteFailed);
            }
        };
        let took = due.unwrap_or(started).elapsed().as_micros() as u64;
        self.stats.wrote(sent_us, took, order);
        Ok((value, sent_us))
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

    fn order_audience(order: &Value) -> Audience {
        Audience::of(
            &ORDER_ROLES,
            index_of(&order["session_id"], 's'),
            index_of(&order["waiter_id"], 'w'),
        )
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
    async fn set_status(&self, r: usize, oid: &str, status: &str) -> Result<Value, WriteFailed> {
        let (resp, sent) = self
            .write(
                r,
                &format!("/orders/{oid}/status"),
                &json!({ "status": status }),
                None,
                false,
            )
            .await?;
        let order = resp["order"].clone();
        self.record(
            r,
            &resp["seq"],
            Kind::OrderStatusChanged,
            Self::order_audience(&order),
            sent,
        );
        Ok(order)
    }

    /// Sets an item's status; the last item ready makes the order ready
    /// too (two events).
    async fn set_item(
        &self,
        r: usize,
        oid: &str,
        iid: &str,
        status: &str,
    ) -> Result<Value, WriteFailed> {
        let (resp, sent) = self
            .write(
                r,
                &format!("/orders/{oid}/items/{iid}/status"),
                &json!({ "status": status }),
                None,
                false,
            )
            .await?;
        let order = resp["order"].clone();
        let audience = Self::order_audience(&order);
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

    /// One order from creation to payment (or cancellation).
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
        let (resp, sent) = self.write(r, "/orders", &body, Some(due), true).await?;
        let order = &resp["order"];
        self.record(
            r,
            &resp["seq"],
            Kind::OrderCreated,
            Self::order_audience(order),
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
        if with_request && let Some(session) = order["session_id"].as_str() {
            let table = order["table"].as_str().unwrap_or("T0").to_owned();
            let session = session.to_owned();
            tokio::spawn(self.clone().request(r, table, session));
        }
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
            self.set_status(r, &oid, status).await?;
        }
        if cancel {
            return Ok(());
        }
        for item_status in ["cooking", "ready"] {
            for iid in &items {
                self.pause().await;
                if self.traffic_over() {
                    return Ok(());
                }
                self.set_item(r, &oid, iid, item_status).await?;
            }
        }
        for status in ["served", "paid"] {
            self.pause().await;
            if self.traffic_over() {
                return Ok(());
            }
            self.set_status(r, &oid, status).await?;
        }
        Ok(())
    }

    /// A table calls its waiter, who acknowledges, then resolves it.
    async fn request(
        self: Arc<Self>,
        r: usize,
        table: String,
        session: String,
    ) -> Result<(), WriteFailed> {
        self.pause().await;
        if self.traffic_over() {
            return Ok(());
        }
        let body = json!({"kind": "call_waiter", "table": table, "session_id": session});
        let (resp, sent) = self.write(r, "/requests", &body, None, false).await?;
        let audience = |req: &Value| {
            Audience::of(
                &REQUEST_ROLES,
                index_of(&req["session_id"], 's'),
                index_of(&req["waiter_id"], 'w'),
            )
        };
        self.record(
            r,
            &resp["seq"],
            Kind::RequestCreated,
            audience(&resp["request"]),
            sent,
        );
        let id = resp["request"]["id"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        for status in ["acknowledged", "resolved"] {
            self.pause().await;
            if self.traffic_over() {
                return Ok(());
            }
            let (resp, sent) = self
                .write(
                    r,
                    &format!("/requests/{id}/status"),
                    &json!({ "status": status }),
                    None,
                    false,
                )
                .await?;
            self.record(
                r,
                &resp["seq"],
                Kind::RequestStatusChanged,
                audience(&resp["request"]),
                sent,
            );
        }
        Ok(())
    }

    /// A kitchen-wide urgent notification or one for a single waiter.
    async fn notification(self: Arc<Self>, r: usize, n: u64) -> Result<(), WriteFailed> {
        let (body, audience) = if n.is_multiple_of(2) {
            (
                json!({"audience": {"roles": ["kitchen"]}, "urgency": "urgent",
                    "title": "86 salmon", "message": "Out of salmon for tonight"}),
                Audience::of(&[Role::Kitchen], None, None),
            )
        } else {
            let w = (n / 2 % self.scenario.waiter_ids as u64) as u16;
            (
                json!({"audience": {"roles": ["waiter"], "waiter_id": format!("w{w}")},
                    "urgency": "info", "title": "Table ready", "message": "Food is up",
                    "group_key": "pickup"}),
                Audience::of(&[Role::Waiter], None, Some(w)),
            )
        };
        let (resp, sent) = self.write(r, "/notifications", &body, None, false).await?;
        self.record(r, &resp["seq"], Kind::Notification, audience, sent);
        Ok(())
    }
}

/// Drives traffic for `length`, then waits for every write in flight.
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
            tasks.spawn(ctx.clone().order(orders as usize % restaurants, next));
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
    while tasks.join_next().await.is_some() {}
    // Requests spawned by orders: wait until none is in flight.
    let _all = ctx
        .in_flight
        .acquire_many(ctx.scenario.max_in_flight as u32)
        .await;
}
