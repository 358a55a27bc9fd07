//! Counts over time: every `ORDERCAST_ACTIVITY_EVERY` (default a minute)
//! the edge takes a sample of its streams — connections open by transport,
//! connections opened and events delivered since the last sample — logs it
//! at info (the periodic counts instead of a line per event), and keeps
//! the last [`KEPT`] samples in memory for `/debug/activity`.

use std::collections::VecDeque;
use std::sync::{Mutex, Weak};
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::metrics::{EdgeMetrics, Transport};

/// Samples kept: an hour at the default interval.
pub(crate) const KEPT: usize = 60;

/// Streams by transport.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub(crate) struct ByTransport {
    pub(crate) sse: u64,
    pub(crate) websocket: u64,
    pub(crate) long_poll: u64,
}

impl ByTransport {
    fn read(mut value: impl FnMut(Transport) -> u64) -> ByTransport {
        ByTransport {
            sse: value(Transport::Sse),
            websocket: value(Transport::WebSocket),
            long_poll: value(Transport::LongPoll),
        }
    }

    fn minus(self, earlier: ByTransport) -> ByTransport {
        ByTransport {
            sse: self.sse.saturating_sub(earlier.sse),
            websocket: self.websocket.saturating_sub(earlier.websocket),
            long_poll: self.long_poll.saturating_sub(earlier.long_poll),
        }
    }

    fn total(self) -> u64 {
        self.sse + self.websocket + self.long_poll
    }
}

/// One interval's counts.
#[derive(Clone, Debug, Serialize)]
pub(crate) struct Sample {
    pub(crate) from: DateTime<Utc>,
    pub(crate) to: DateTime<Utc>,
    /// Open at the end of the interval.
    pub(crate) connections: ByTransport,
    /// Opened during the interval.
    pub(crate) connects: ByTransport,
    /// Events written during the interval.
    pub(crate) deliveries: ByTransport,
}

/// Counter totals at one moment.
#[derive(Clone, Copy)]
struct Totals {
    at: DateTime<Utc>,
    connects: ByTransport,
    deliveries: ByTransport,
}

/// The samples, and the totals the next one starts from.
pub(crate) struct Activity {
    // std Mutex: never held across .await.
    state: Mutex<(VecDeque<Sample>, Totals)>,
    metrics: EdgeMetrics,
}

impl Activity {
    pub(crate) fn new(metrics: EdgeMetrics) -> Activity {
        let totals = totals(&metrics);
        Activity {
            state: Mutex::new((VecDeque::with_capacity(KEPT), totals)),
            metrics,
        }
    }

    /// The counts since the last sample, without closing them.
    pub(crate) fn current(&self) -> Sample {
        let state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        sample(&self.metrics, state.1).0
    }

    /// Closes the interval: keeps and returns its sample.
    fn close(&self) -> Sample {
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let (sample, now) = sample(&self.metrics, state.1);
        if state.0.len() == KEPT {
            state.0.pop_front();
        }
        state.0.push_back(sample.clone());
        state.1 = now;
        sample
    }

    /// The kept samples, oldest first.
    pub(crate) fn samples(&self) -> Vec<Sample> {
        let state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        state.0.iter().cloned().collect()
    }
}

fn totals(metrics: &EdgeMetrics) -> Totals {
    Totals {
        at: Utc::now(),
        connects: ByTransport::read(|t| metrics.connects.with_label_values(&[t.as_str()]).get()),
        deliveries: ByTransport::read(|t| {
            metrics.deliveries.with_label_values(&[t.as_str()]).get()
        }),
    }
}

fn sample(metrics: &EdgeMetrics, since: Totals) -> (Sample, Totals) {
    let now = totals(metrics);
    let open = |t: Transport| {
        let n = metrics.connections.with_label_values(&[t.as_str()]).get();
        u64::try_from(n).unwrap_or(0)
    };
    let sample = Sample {
        from: since.at,
        to: now.at,
        connections: ByTransport::read(open),
        connects: now.connects.minus(since.connects),
        deliveries: now.deliveries.minus(since.deliveries),
    };
    (sample, now)
}

/// Samples every `every` while the edge lives, logging each.
pub(crate) async fn run(activity: Weak<Activity>, every: Duration) {
    let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let Some(activity) = activity.upgrade() else {
            return;
        };
        let s = activity.close();
        let secs = (s.to - s.from).as_seconds_f64().max(0.001);
        tracing::info!(
            connections.sse = s.connections.sse,
            connections.websocket = s.connections.websocket,
            connections.long_poll = s.connections.long_poll,
            connects = s.connects.total(),
            deliveries = s.deliveries.total(),
            events_per_sec = (s.deliveries.total() as f64 / secs * 10.0).round() / 10.0,
            "edge activity"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn samples_are_deltas_and_only_the_last_hour_is_kept() {
        let metrics = EdgeMetrics::new(&prometheus::Registry::new()).unwrap();
        let activity = Activity::new(metrics.clone());
        metrics.deliveries.with_label_values(&["sse"]).inc_by(5);
        metrics.connects.with_label_values(&["websocket"]).inc();
        assert_eq!(activity.current().deliveries.sse, 5);
        let first = activity.close();
        assert_eq!((first.deliveries.sse, first.connects.websocket), (5, 1));
        assert_eq!(activity.close().deliveries.sse, 0, "counted once");
        for _ in 0..KEPT + 5 {
            activity.close();
        }
        assert_eq!(activity.samples().len(), KEPT);
    }
}
