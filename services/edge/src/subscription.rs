//! One subscriber's view of one restaurant: a cursor that only moves
//! forward, fed from the hub's ring, else Redis `XRANGE`, else PostgreSQL.
//! Every transport delivers through this, so every transport resumes the
//! same way: no gap, no duplicate. It also says when the restaurant's home
//! region (a peer) goes stale or comes back, once caught up.

use std::sync::Arc;

use chrono::{DateTime, Utc};

use ordercast_core::audience::Scope;
use ordercast_core::{RestaurantId, Role, Seq, SessionId, Viewer};
use ordercast_http::HttpError;
use tokio::sync::watch;

use crate::error::EdgeError;
use crate::frame::Frame;
use crate::hub::HubGuard;
use crate::metrics::{Kind, Source};
use crate::regions::{PeerHome, Signal, Stale};
use crate::state::Shared;

/// The events of one catch-up step that the subscriber may see (possibly
/// none); the subscription's cursor has moved past all of the step.
pub(crate) struct Batch {
    pub frames: Vec<Arc<Frame>>,
    /// `Catchup` while the subscription sends its backlog (from a resume
    /// or after falling out of the ring), else `Live`.
    pub kind: Kind,
}

/// What a subscription has next for its client.
pub(crate) enum Next {
    /// A catch-up step (see [`Batch`]).
    Batch(Batch),
    /// The restaurant's home region went stale or came back. Not an event:
    /// no seq, and the cursor does not move.
    Region(Signal),
}

/// What one catch-up step read, and where the cursor moves.
struct Read {
    frames: Vec<Arc<Frame>>,
    /// The last seq the step covered.
    through: Seq,
    /// Read already narrowed to the viewer's events: empty is not missing.
    narrowed: bool,
}

impl Read {
    /// Consecutive frames of every audience: the step covers up to the
    /// last of them, or (none at all: expired) up to the head.
    fn all(frames: Vec<Arc<Frame>>, head: Seq) -> Read {
        let through = frames.last().map_or(head, |f| f.seq);
        Read {
            frames,
            through,
            narrowed: false,
        }
    }
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
    /// last event is refused, and so is a time before retention's horizon.
    pub(crate) async fn open(
        ctx: &Arc<Shared>,
        restaurant: RestaurantId,
        viewer: Viewer,
        since: Option<Since>,
    ) -> Result<Subscription, EdgeError> {
        let since = match since {
            None => None,
            Some(Since::Seq(seq)) => Some(seq),
            Some(Since::Time(at)) => Some(seq_before_time(ctx, restaurant, at).await?),
        };
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
        let (read, source) = match self.hub.ring_range(self.cursor, head, max) {
            Some(frames) => (Read::all(frames, head), Source::Ring),
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
                Box::pin(self.read_behind(head, max)).await?
            }
        };
        if read.frames.is_empty() && read.through == head && !read.narrowed {
            tracing::warn!(restaurant = %self.restaurant(), cursor = %self.cursor, %head,
                "events missing everywhere (expired?); skipping to the head");
        }
        let kind = match self.catching_up {
            true => Kind::Catchup,
            false => Kind::Live,
        };
        if kind == Kind::Catchup {
            self.ctx
                .metrics
                .catchup_events
                .with_label_values(&[source.as_str()])
                .inc_by(read.frames.len() as u64);
        }
        self.cursor = read.through;
        if read.through >= head {
            self.catching_up = false;
        }
        let frames = read
            .frames
            .into_iter()
            .filter(|f| self.viewer.may_see(&f.audience))
            .collect();
        Ok(Some(Batch { frames, kind }))
    }

    /// The events after the cursor that the ring no longer holds. A guest
    /// sees only its table session's events, so they are read from
    /// PostgreSQL by session rather than the restaurant's whole history
    /// from Redis and filtered here: a resume from far behind costs what
    /// it delivers. Everyone else reads Redis, else PostgreSQL.
    async fn read_behind(&self, head: Seq, max: usize) -> Result<(Read, Source), EdgeError> {
        if let Scope::Customer(session) = self.viewer.scope() {
            let frames = match session {
                Some(session) => self.read_session(&session, head, max).await?,
                None => Vec::new(), // sees nothing
            };
            let through = match frames.len() < max {
                true => head,
                false => frames.last().map_or(head, |f| f.seq),
            };
            let read = Read {
                frames,
                through,
                narrowed: true,
            };
            return Ok((read, Source::Postgres));
        }
        // Boxed: these futures are large and rarely alive, and every idle
        // subscriber's future would otherwise be as big as them.
        Ok(match Box::pin(self.read_redis(max)).await {
            Some(frames) => (Read::all(frames, head), Source::Redis),
            None => {
                let frames = Box::pin(self.read_postgres(max)).await?;
                (Read::all(frames, head), Source::Postgres)
            }
        })
    }

    async fn read_session(
        &self,
        session: &SessionId,
        head: Seq,
        max: usize,
    ) -> Result<Vec<Arc<Frame>>, EdgeError> {
        let events = self
            .ctx
            .store
            .session_events_after(self.restaurant(), session, self.cursor, head, max as i64)
            .await?;
        Ok(events
            .iter()
            .map(|e| Arc::new(Frame::from_envelope(e)))
            .collect())
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

/// Where a subscription starts (`since`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Since {
    /// After this seq.
    Seq(Seq),
    /// With the first event stamped at or after this time.
    Time(DateTime<Utc>),
}

/// A `since`: a seq, or an RFC 3339 time (`2026-12-05T10:42:07Z`, any
/// offset, fractions allowed).
pub(crate) fn parse_since(raw: &str) -> Result<Since, HttpError> {
    if let Ok(seq) = raw.trim().parse::<Seq>() {
        return Ok(Since::Seq(seq));
    }
    DateTime::parse_from_rfc3339(raw.trim())
        .map(|t| Since::Time(t.with_timezone(&Utc)))
        .map_err(|_| {
            HttpError::InvalidCursor(format!(
                "since {raw:?} is neither a sequence number (a non-negative integer) nor an RFC 3339 time"
            ))
        })
}

/// The seq to resume after to start at `at`: refused before retention's
/// horizon, where events at or after `at` may already be deleted.
async fn seq_before_time(
    ctx: &Shared,
    restaurant: RestaurantId,
    at: DateTime<Utc>,
) -> Result<Seq, EdgeError> {
    let horizon = Utc::now() - ctx.settings.retention;
    if at < horizon {
        return Err(EdgeError::CursorExpired { at, horizon });
    }
    let store = &ctx.store;
    Ok(store.within(store.seq_before_time(restaurant, at)).await?)
}

/// A cursor (`Last-Event-ID`): a non-negative integer seq.
pub(crate) fn parse_cursor(raw: &str) -> Result<Seq, HttpError> {
    raw.trim().parse::<Seq>().map_err(|_| {
        HttpError::InvalidCursor(format!(
            "cursor {raw:?} is not a sequence number (a non-negative integer)"
        ))
    })
}
