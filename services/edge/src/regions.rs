//! The edge's view of the other regions (docs/protocol.md, "Regions"): a
//! monitor that polls how long each peer has been silent and keeps which of
//! them are stale in a watch channel, and the `stale` / `live` signals hubs
//! send the screens of restaurants homed in a peer.
//!
//! Events replicated from a peer reach this region's Redis like local ones,
//! so nothing else on the edge knows about regions: a silent home region
//! just looks like a quiet restaurant. The signal is what tells the two
//! apart.

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::{DateTime, SubsecRound, Utc};
use ordercast_core::{Chain, Region, RestaurantId, Seq};
use ordercast_store::{PeerSilence, Store, StoreError};
use prometheus::IntGaugeVec;
use serde::Serialize;
use tokio::sync::watch;

/// How often the monitor looks at the peers (they beat once a second).
const POLL_EVERY: Duration = Duration::from_secs(1);

/// Every peer, fresh (`None`) or stale since when this edge noticed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct PeerStates(BTreeMap<Region, Option<DateTime<Utc>>>);

impl PeerStates {
    /// Every peer fresh: what the edge assumes until PostgreSQL first
    /// answers. An edge that cannot read its own database knows nothing of
    /// its peers, and says nothing rather than something false.
    fn fresh(peers: &[Region]) -> PeerStates {
        PeerStates(peers.iter().map(|p| (p.clone(), None)).collect())
    }

    /// The state of `home` if it is a peer (`None`: this region).
    pub(crate) fn home(&self, home: &Region) -> Option<PeerHome> {
        let stale_since = *self.0.get(home)?;
        Some(PeerHome {
            region: home.clone(),
            stale_since,
        })
    }

    /// The states after a look at the peers' silence at `now`: silent
    /// longer than `stale_after` (or never heard) is stale, and stays stale
    /// since the moment it was first seen so. A peer missing from the
    /// answer keeps its state.
    fn after(&self, silences: &[PeerSilence], stale_after: Duration, now: DateTime<Utc>) -> Self {
        let mut next = self.clone();
        for s in silences {
            let Some(state) = next.0.get_mut(&s.region) else {
                continue;
            };
            let stale = s.is_stale(stale_after);
            *state = match (stale, *state) {
                (false, _) => None,
                (true, Some(since)) => Some(since),
                (true, None) => Some(now),
            };
        }
        next
    }
}

/// A restaurant's home region when it is a peer, and since when it has
/// been stale (`None`: fresh).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct PeerHome {
    pub region: Region,
    pub stale_since: Option<DateTime<Utc>>,
}

/// What a screen is told about a restaurant whose home is stale: the last
/// event this edge has of it, so it can say how old its view is.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub(crate) struct Stale {
    pub region: Region,
    /// The hub's head.
    pub last_seq: Seq,
    /// The commit time of `last_seq`, when the hub still holds that event.
    pub last_event_at: Option<DateTime<Utc>>,
    /// When this edge saw the region go stale.
    pub since: DateTime<Utc>,
}

/// A signal about a restaurant's home region, the same JSON on SSE (as the
/// `data:` of an `event: stale` / `event: live`) and WebSocket.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub(crate) enum Signal {
    Stale {
        restaurant_id: RestaurantId,
        #[serde(flatten)]
        stale: Stale,
    },
    Live {
        restaurant_id: RestaurantId,
        region: Region,
    },
}

impl Signal {
    /// `stale` or `live`: the SSE event name.
    pub(crate) fn name(&self) -> &'static str {
        match self {
            Signal::Stale { .. } => "stale",
            Signal::Live { .. } => "live",
        }
    }

    pub(crate) fn json(&self) -> String {
        serde_json::to_string(self).expect("signals serialize")
    }
}

/// Where the monitor learns how long the peers have been silent: the store
/// (tests give their own).
pub(crate) trait Silence: Send + 'static {
    fn peer_silence(
        &self,
        peers: &[Region],
    ) -> impl Future<Output = Result<Vec<PeerSilence>, StoreError>> + Send;
}

impl Silence for Store {
    fn peer_silence(
        &self,
        peers: &[Region],
    ) -> impl Future<Output = Result<Vec<PeerSilence>, StoreError>> + Send {
        Store::peer_silence(self, peers)
    }
}

/// Starts the monitor of `peers` (none: nothing starts, `None`). Hubs
/// watch the receiver; the monitor stops when the last one is dropped.
/// `ordercast_region_stale{region}` is set for every peer from now on.
pub(crate) fn start(
    source: impl Silence,
    peers: &[Region],
    stale_after: Duration,
    gauge: IntGaugeVec,
) -> Option<watch::Receiver<PeerStates>> {
    if peers.is_empty() {
        return None;
    }
    let states = PeerStates::fresh(peers);
    show(&states, &gauge);
    let (tx, rx) = watch::channel(states);
    let peers = peers.to_vec();
    tokio::spawn(monitor(source, peers, stale_after, gauge, tx));
    Some(rx)
}

/// Looks at the peers every second; publishes only changes.
#[tracing::instrument(name = "region_monitor", skip_all)]
async fn monitor(
    source: impl Silence,
    peers: Vec<Region>,
    stale_after: Duration,
    gauge: IntGaugeVec,
    tx: watch::Sender<PeerStates>,
) {
    let mut tick = tokio::time::interval(POLL_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tx.closed() => return,
            _ = tick.tick() => {}
        }
        let silences = match source.peer_silence(&peers).await {
            Ok(silences) => silences,
            Err(e) => {
                // Without PostgreSQL nothing is known: keep the last state.
                tracing::debug!(error = %Chain(&e), "could not read the peers' heartbeats");
                continue;
            }
        };
        let now = Utc::now().trunc_subsecs(3);
        tx.send_if_modified(|states| {
            let next = states.after(&silences, stale_after, now);
            if next == *states {
                return false;
            }
            for (region, since) in &next.0 {
                match (states.0.get(region), since) {
                    (Some(None), Some(_)) => tracing::warn!(%region, "peer region is stale"),
                    (Some(Some(_)), None) => tracing::info!(%region, "peer region is fresh again"),
                    _ => {}
                }
            }
            show(&next, &gauge);
            *states = next;
            true
        });
    }
}

/// `ordercast_region_stale{region}`: 1 stale, 0 fresh.
fn show(states: &PeerStates, gauge: &IntGaugeVec) {
    for (region, since) in &states.0 {
        gauge
            .with_label_values(&[region.as_str()])
            .set(i64::from(since.is_some()));
    }
}

#[cfg(test)]
mod tests {
    use std::collections::VecDeque;
    use std::sync::Mutex;

    use prometheus::Opts;
    use serde_json::json;

    use super::*;

    const SEC: Duration = Duration::from_secs(1);

    fn region(name: &str) -> Region {
        name.parse().unwrap()
    }

    type Answer = Result<Vec<PeerSilence>, StoreError>;

    /// Answers the test queued, in order; then "unreachable".
    #[derive(Default)]
    struct Scripted(Mutex<VecDeque<Answer>>);

    impl Scripted {
        fn answer(&self, silences: &[(&str, Option<u64>)]) {
            let silences = silences
                .iter()
                .map(|(r, secs)| PeerSilence {
                    region: region(r),
                    silent_for: secs.map(Duration::from_secs),
                })
                .collect();
            self.0.lock().unwrap().push_back(Ok(silences));
        }

        fn unreachable(&self) {
            self.0.lock().unwrap().push_back(Err(unreachable()));
        }
    }

    fn unreachable() -> StoreError {
        StoreError::Unavailable(sqlx::Error::PoolTimedOut)
    }

    impl Silence for Scripted {
        async fn peer_silence(&self, _: &[Region]) -> Result<Vec<PeerSilence>, StoreError> {
            let next = self.0.lock().unwrap().pop_front();
            next.unwrap_or_else(|| Err(unreachable()))
        }
    }

    fn gauge() -> IntGaugeVec {
        IntGaugeVec::new(Opts::new("ordercast_region_stale", "test"), &["region"]).unwrap()
    }

    fn stale(rx: &watch::Receiver<PeerStates>) -> Vec<String> {
        let states = rx.borrow();
        let stale = states.0.iter().filter(|(_, since)| since.is_some());
        stale.map(|(r, _)| r.to_string()).collect()
    }

    fn shown(gauge: &IntGaugeVec, name: &str) -> i64 {
        gauge.with_label_values(&[name]).get()
    }

    #[test]
    fn silent_longer_than_the_limit_or_never_heard_is_stale_and_keeps_its_since() {
        let (eu, us, ap) = (region("eu"), region("us"), region("ap"));
        let start = PeerStates::fresh(&[eu.clone(), us.clone(), ap.clone()]);
        let t0: DateTime<Utc> = "2026-12-05T10:00:00Z".parse().unwrap();
        let silence = |r: &Region, secs: Option<f64>| PeerSilence {
            region: r.clone(),
            silent_for: secs.map(Duration::from_secs_f64),
        };

        let first = start.after(
            &[
                silence(&eu, Some(3.0)),
                silence(&us, Some(3.5)),
                silence(&ap, None),
            ],
            3 * SEC,
            t0,
        );
        assert_eq!(first.home(&eu).unwrap().stale_since, None, "at the limit");
        assert_eq!(first.home(&us).unwrap().stale_since, Some(t0));
        assert_eq!(
            first.home(&ap).unwrap().stale_since,
            Some(t0),
            "never heard"
        );
        assert_eq!(first.home(&region("local")), None, "not a peer");

        let later = t0 + chrono::Duration::seconds(5);
        let second = first.after(
            &[silence(&us, Some(8.5)), silence(&ap, Some(0.2))],
            3 * SEC,
            later,
        );
        assert_eq!(
            second.home(&us).unwrap().stale_since,
            Some(t0),
            "still since t0"
        );
        assert_eq!(second.home(&ap).unwrap().stale_since, None, "heard again");
        assert_eq!(
            second.home(&eu),
            first.home(&eu),
            "not in the answer: unchanged"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn the_monitor_publishes_changes_and_keeps_its_state_while_postgres_is_away() {
        let source = Scripted::default();
        let gauge = gauge();
        source.unreachable();
        source.answer(&[("eu", Some(1)), ("us", None)]);
        source.unreachable();
        source.answer(&[("eu", Some(10)), ("us", Some(0))]);
        let mut rx = start(
            source,
            &[region("eu"), region("us")],
            3 * SEC,
            gauge.clone(),
        )
        .expect("peers: a monitor");
        assert_eq!(stale(&rx), Vec::<String>::new(), "fresh until known");
        assert_eq!(
            (shown(&gauge, "eu"), shown(&gauge, "us")),
            (0, 0),
            "from the start"
        );

        rx.changed().await.unwrap();
        assert_eq!(stale(&rx), ["us"]);
        assert_eq!((shown(&gauge, "eu"), shown(&gauge, "us")), (0, 1));
        let since = rx.borrow().home(&region("us")).unwrap().stale_since;

        rx.changed().await.unwrap();
        assert_eq!(stale(&rx), ["eu"], "the failure in between changed nothing");
        assert_eq!((shown(&gauge, "eu"), shown(&gauge, "us")), (1, 0));
        assert!(since.is_some());

        // PostgreSQL is gone for good: the last state stays.
        tokio::time::sleep(30 * SEC).await;
        assert!(!rx.has_changed().unwrap());
        assert_eq!(stale(&rx), ["eu"]);
    }

    #[test]
    fn no_peers_no_monitor() {
        assert!(start(Scripted::default(), &[], 3 * SEC, gauge()).is_none());
    }

    #[test]
    fn signals_carry_their_type_the_restaurant_and_a_null_last_event_at() {
        let rid: RestaurantId = "6f1c0d2e-0000-4000-8000-000000000001".parse().unwrap();
        let stale = Signal::Stale {
            restaurant_id: rid,
            stale: Stale {
                region: region("eu"),
                last_seq: Seq(41),
                last_event_at: None,
                since: "2026-12-05T10:00:00.250Z".parse().unwrap(),
            },
        };
        let value: serde_json::Value = serde_json::from_str(&stale.json()).unwrap();
        assert_eq!(
            value,
            json!({"type": "stale", "restaurant_id": rid, "region": "eu", "last_seq": 41,
                   "last_event_at": null, "since": "2026-12-05T10:00:00.250Z"})
        );
        let live = Signal::Live {
            restaurant_id: rid,
            region: region("eu"),
        };
        assert_eq!(
            live.json(),
            format!(r#"{{"type":"live","restaurant_id":"{rid}","region":"eu"}}"#)
        );
        assert_eq!((stale.name(), live.name()), ("stale", "live"));
    }
}
