//! One subscription of a socket: authorize, optionally snapshot, then
//! deliver from the cursor into the socket's queue for as long as the
//! socket lives. A full queue pauses only this socket's subscriptions.

use std::sync::Arc;

use ordercast_core::auth::Principal;
use ordercast_core::backoff::Backoff;
use ordercast_core::{Chain, RestaurantId, Seq};
use ordercast_http::HttpError;
use ordercast_store::{Page, SNAPSHOT_LIMIT, SNAPSHOT_MAX_BYTES};
use tokio::sync::mpsc;

use super::protocol::ServerMessage;
use crate::auth::may_watch;
use crate::frame::Frame;
use crate::metrics::{Kind, Transport};
use crate::regions::Signal;
use crate::state::EdgeState;
use crate::subscription::{Next, Since, Subscription};
use crate::watchers::Watching;

/// A `sync`'s snapshot: the newest open orders, one page.
const FIRST_PAGE: Page = Page {
    after: None,
    limit: SNAPSHOT_LIMIT,
    max_bytes: SNAPSHOT_MAX_BYTES,
};

/// What a subscription task hands the socket task. Small (the rare big
/// messages boxed): the queue's first block of 32 is allocated with it,
/// for every socket.
pub(crate) enum Out {
    /// An event of subscription `id`.
    Event {
        restaurant: RestaurantId,
        id: u64,
        frame: Arc<Frame>,
        /// The kind of the batch it was read in.
        kind: Kind,
    },
    /// `stale` or `live` of subscription `id`.
    Signal {
        restaurant: RestaurantId,
        id: u64,
        signal: Box<Signal>,
    },
    /// The `snapshot` of subscription `id` (charged to the socket's sync
    /// budget when sent).
    Snapshot {
        restaurant: RestaurantId,
        id: u64,
        message: Box<ServerMessage>,
    },
    /// Any other message (`subscribed`, `error`, …).
    Control(Box<ServerMessage>),
    /// Subscription `id` ended by itself (refused, or failed).
    Ended { restaurant: RestaurantId, id: u64 },
}

/// What to subscribe to.
pub(crate) struct Request {
    pub restaurant: RestaurantId,
    pub since: Option<Since>,
    /// Send a snapshot first, and `sync_complete` once caught up.
    pub sync: bool,
    /// Tells this subscription from an earlier one of the same restaurant.
    pub id: u64,
}

impl Out {
    pub(crate) fn control(message: ServerMessage) -> Out {
        Out::Control(Box::new(message))
    }
}

/// The subscription task.
#[tracing::instrument(name = "ws_subscription", skip_all, fields(restaurant = %request.restaurant))]
pub(crate) async fn run(
    state: EdgeState,
    principal: Arc<Principal>,
    request: Request,
    tx: mpsc::Sender<Out>,
) {
    let (sync, id) = (request.sync, request.id);
    // Boxed: opening is large (authorization, a snapshot, the hub) and
    // over at once, and every idle subscription's task would otherwise be
    // as big as it.
    let Some((sub, _watching)) = Box::pin(open(&state, &principal, request, &tx)).await else {
        return;
    };
    deliver(sub, sync, id, &tx).await;
}

/// Authorizes, sends the snapshot when syncing, and opens the
/// subscription; `None` when refused (the client was told) or the socket
/// is gone.
async fn open(
    state: &EdgeState,
    principal: &Principal,
    request: Request,
    tx: &mpsc::Sender<Out>,
) -> Option<(Subscription, Watching)> {
    let Request {
        restaurant,
        since,
        sync,
        id,
    } = request;
    let refuse = |e: HttpError| {
        let tx = tx.clone();
        let code = e.ws_code();
        // The problem's detail, as HTTP would answer: database details are
        // logged, never sent.
        let frame = ServerMessage::error(code, e.problem().detail, Some(restaurant));
        async move {
            let _ = tx.send(Out::control(frame)).await;
            let _ = tx.send(Out::Ended { restaurant, id }).await;
        }
    };
    if let Err(e) = may_watch(state, principal, restaurant).await {
        refuse(e).await;
        return None;
    }
    let since = match sync {
        true => match snapshot(state, principal, restaurant).await {
            Ok((seq, message)) => {
                let snapshot = Out::Snapshot {
                    restaurant,
                    id,
                    message: Box::new(message),
                };
                tx.send(snapshot).await.ok()?;
                Some(Since::Seq(seq))
            }
            Err(e) => {
                refuse(e).await;
                return None;
            }
        },
        false => since,
    };
    let sub = match Subscription::open(state, restaurant, principal.viewer(), since).await {
        Ok(sub) => sub,
        Err(e) => {
            refuse(e.into()).await;
            return None;
        }
    };
    let watching = state
        .watchers
        .watch(restaurant, Transport::WebSocket, principal.role);
    Some((sub, watching))
}

/// Sends `subscribed`, the backlog (then `sync_complete` when syncing) and
/// live events, with `stale` / `live` once caught up, until the socket is
/// gone. A failed step is retried from the same cursor.
async fn deliver(mut sub: Subscription, sync: bool, id: u64, tx: &mpsc::Sender<Out>) {
    let restaurant = sub.restaurant();
    let subscribed = ServerMessage::Subscribed {
        restaurant_id: restaurant,
        seq: sub.cursor(),
        head: sub.head(),
    };
    if tx.send(Out::control(subscribed)).await.is_err() {
        return;
    }
    let mut syncing = sync;
    let mut backoff = Backoff::default();
    loop {
        let next = match syncing {
            true => match sub.ready().await {
                Ok(Some(batch)) => Ok(Next::Batch(batch)),
                Ok(None) => {
                    syncing = false;
                    let done = ServerMessage::SyncComplete {
                        restaurant_id: restaurant,
                        seq: sub.cursor(),
                    };
                    if tx.send(Out::control(done)).await.is_err() {
                        return;
                    }
                    continue;
                }
                Err(e) => Err(e),
            },
            false => sub.next().await,
        };
        match next {
            Ok(Next::Batch(batch)) => {
                backoff.reset();
                for frame in batch.frames {
                    let event = Out::Event {
                        restaurant,
                        id,
                        frame,
                        kind: batch.kind,
                    };
                    if tx.send(event).await.is_err() {
                        return;
                    }
                }
            }
            Ok(Next::Region(signal)) => {
                let signal = Out::Signal {
                    restaurant,
                    id,
                    signal: Box::new(signal),
                };
                if tx.send(signal).await.is_err() {
                    return;
                }
            }
            Err(e) => {
                // The cursor is intact: retry quietly until the source answers.
                tracing::warn!(%restaurant, error = %Chain(&e), "subscription catch-up failed; retrying");
                tokio::time::sleep(backoff.next_pause()).await;
            }
        }
    }
}

/// Open orders the principal may see, as one `snapshot` message, and the
/// seq it reflects: the newest, at most one page of a snapshot
/// ([`SNAPSHOT_LIMIT`] orders, [`SNAPSHOT_MAX_BYTES`] of JSON).
async fn snapshot(
    state: &EdgeState,
    principal: &Principal,
    restaurant: RestaurantId,
) -> Result<(Seq, ServerMessage), HttpError> {
    let snapshot = state
        .store
        .visible_orders(restaurant, &principal.viewer(), true, FIRST_PAGE)
        .await
        .map_err(crate::error::EdgeError::from)?;
    let message = ServerMessage::Snapshot {
        restaurant_id: restaurant,
        seq: snapshot.seq,
        orders: snapshot.orders,
        truncated: snapshot.next.is_some(),
    };
    Ok((snapshot.seq, message))
}
