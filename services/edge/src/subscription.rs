//! One subscriber's view of one restaurant: a cursor that only moves
//! forward, fed from the hub's ring, else Redis `XRANGE`, else PostgreSQL.
//! Every transport delivers through this, so every transport resumes the
//! same way: no gap, no duplicate. It also says when the restaurant's home
//! region (a peer) goes stale or comes back, once caught up.

use std::sync::Arc;

use ordercast_core::{RestaurantId, Role, Seq, Viewer};
use ordercast_http::HttpError;
use tokio::sync::watch;

use crate::error::EdgeError;
use crate::frame::Frame;
use crate::hub::HubGuard;
use crate::metrics::Source;
use crate::regions::{PeerHome, Signal, Stale};
use crate::state::Shared;

/// The events of one catch-up step that the subscriber may see (possibly
/// none); the subscription's cursor has moved past all of the step.
pub(crate) struct Batch {
    pub frames: Vec<Arc<Frame>>,
}

/// What a subscription has next for its client.
pub(crate) enum Next {
    /// A catch-up step (see [`Batch`]).
    Batch(Batch),
    /// The restaurant's home region went stale or came back. Not an event:
    /// no seq, and the cursor does not move.
    Region(Signal),
}

pub(crate) struct Subscription {
    ctx: Arc<Shared>,
    hub: HubGuard,
    viewer: Viewer,
    cursor: Seq,
    head: watch::Receiver<Seq>,
    /// True while sending a backlog (counted as catch-up by source).
    catching_up: bool,
    /// The home region when it is a peer, as the hub sees it.
    home: watch::Receiver<Option<PeerHome>>,
    /// What the client was last told about the home (`None`: nothing).
    told: Option<PeerHome>,
}

impl Subscription {
    /// Joins the restaurant's hub first, then places the cursor: `since`, or
    /// the head when absent ("from now"). A cursor beyond the restaurant's
    /// last event is refused.
    pub(crate) async fn open(
        ctx: &Arc<Shared>,
        restaurant: RestaurantId,
        viewer: Viewer,
        since: Option<Seq>,
    ) -> Result<Subscription, EdgeError> {
        let hub = ctx.hubs.join(restaurant).await?;
        let home = hub.watch_home();
        let mut head = hub.watch_head();
        let now = *head.borrow_and_update();
        let cursor = match since {
            None => now,
            Some(since) if since <= now => since,
            // The hub may trail PostgreSQL by a few milliseconds.
            Some(since) if since <= ctx.store.within(ctx.store.head(restaurant)).await? => since,
            Some(since) => return Err(EdgeError::CursorAhead(since)),
        };
        Ok(Subscription {
            ctx: ctx.clone(),
            hub,
            viewer,
            cursor,
            head,
            catching_up: cursor < now,
            home,
            told: None,
        })
    }

    pub(crate) fn restaurant(&self) -> RestaurantId {
        self.hub.restaurant
    }

    /// The role of the screen, for delivery receipts.
    pub(crate) fn role(&self) -> Role {
        self.viewer.role
    }

    pub(crate) fn cursor(&self) -> Seq {
        self.cursor
    }

    /// The hub's head as last seen.
    pub(crate) fn head(&self) -> Seq {
        *self.head.borrow()
    }

    /// Waits until something follows the cursor and returns the next batch
    /// (empty when none of it is for this viewer), or, once caught up, what
    /// changed about the home region since the client was last told.
    /// Cancel-safe: the cursor moves only when a batch is returned, and the
    /// told state only when a signal is.
    pub(crate) async fn next(&mut self) -> Result<Next, EdgeError> {
        loop {
            if let Some(batch) = self.ready().await? {
                return Ok(Next::Batch(batch));
            }
            if let Some(signal) = self.region_signal() {
                return Ok(Next::Region(signal));
            }
            let woken = tokio::select! {
                head = self.head.changed() => head,
                home = self.home.changed() => home,
            };
            if woken.is_err() {
                return Err(EdgeError::Unavailable);
            }
        }
    }

    /// `stale` or `live` when the home's state differs from what the client
    /// was told. A subscription to a restaurant homed in a peer starts with
    /// one of them, so a client that reconnects learns the state afresh.
    fn region_signal(&mut self) -> Option<Signal> {
        let home = self.home.borrow_and_update().clone();
        if home == self.told {
            return None;
        }
        self.told.clone_from(&home);
        let home = home?;
        let restaurant_id = self.restaurant();
        Some(match self.stale(&home) {
            Some(stale) => Signal::Stale {
                restaurant_id,
                stale,
            },
            None => Signal::Live {
                restaurant_id,
                region: home.region,
            },
        })
    }

    /// The client learns the home's state otherwise (a long-poll answer
    /// carries it): from now on only a change is a signal.
    pub(crate) fn home_told(&mut self) {
        self.told = self.home.borrow_and_update().clone();
    }

    /// What to tell the client if the home is stale now.
    pub(crate) fn stale_now(&self) -> Option<Stale> {
        let home = self.home.borrow().clone()?;
        self.stale(&home)
    }

    fn stale(&self, home: &PeerHome) -> Option<Stale> {
        let last_seq = self.head();
        Some(Stale {
            region: home.region.clone(),
            last_seq,
            last_event_at: self.hub.event_time(last_seq),
            since: home.stale_since?,
        })
    }

    /// The next batch if the cursor is behind the head, without waiting.
    pub(crate) async fn ready(&mut self) -> Result<Option<Batch>, EdgeError> {
        let head = *self.head.borrow_and_update();
        if self.cursor >= head {
            self.catching_up = false;
            return Ok(None);
        }
        let max = self.ctx.settings.batch_size;
        let (frames, source) = match self.hub.ring_range(self.cursor, head, max) {
            Some(frames) => (frames, Source::Ring),
            None => {
                if !self.catching_up {
                    // Fell out of the ring while live: a slow consumer.
                    self.ctx
                        .metrics
                        .slow_consumer_actions
                        .with_label_values(&["caught_up"])
                        .inc();
                    self.catching_up = true;
                }
                // Boxed: these futures are large and rarely alive, and every
                // idle subscriber's future would otherwise be as big as them.
                match Box::pin(self.read_redis(max)).await {
                    Some(frames) => (frames, Source::Redis),
                    None => (Box::pin(self.read_postgres(max)).await?, Source::Postgres),
                }
            }
        };
        let last = match frames.last() {
            Some(f) => f.seq,
            None => {
                tracing::warn!(restaurant = %self.restaurant(), cursor = %self.cursor, %head,
                    "events missing everywhere (expired?); skipping to the head");
                head
            }
        };
        if self.catching_up {
            self.ctx
                .metrics
                .catchup_events
                .with_label_values(&[source.as_str()])
                .inc_by(frames.len() as u64);
        }
        self.cursor = last;
        if last >= head {
            self.catching_up = false;
        }
        let frames = frames
            .into_iter()
            .filter(|f| self.viewer.may_see(&f.audience))
            .collect();
        Ok(Some(Batch { frames }))
    }

    /// `cursor+1 …` from the restaurant's stream, if the stream still holds
    /// `cursor+1`; stops at the first hole.
    async fn read_redis(&self, max: usize) -> Option<Vec<Arc<Frame>>> {
        let restaurant = self.restaurant();
        let entries = self
            .ctx
            .streams
            .range_after(restaurant, self.cursor, max)
            .await
            .ok()?;
        let frames: Vec<_> = entries
            .into_iter()
            .map_while(|entry| Frame::from_entry(restaurant, entry).map(Arc::new))
            .collect();
        (!frames.is_empty()).then_some(frames)
    }

    async fn read_postgres(&self, max: usize) -> Result<Vec<Arc<Frame>>, EdgeError> {
        let store = &self.ctx.store;
        let read = store.events_after(self.restaurant(), self.cursor, max as i64);
        let events = store.within(read).await?;
        Ok(events
            .iter()
            .map(|e| Arc::new(Frame::from_envelope(e)))
            .collect())
    }
}

/// A cursor (`since`, `Last-Event-ID`): a non-negative integer seq.
pub(crate) fn parse_cursor(raw: &str) -> Result<Seq, HttpError> {
    raw.trim().parse::<Seq>().map_err(|_| {
        HttpError::InvalidCursor(format!(
            "cursor {raw:?} is not a sequence number (a non-negative integer)"
        ))
    })
}
