//! Long-poll: `GET /v1/restaurants/{rid}/events?since=&limit=&wait=`, the
//! fallback where streaming is blocked. Answers at once when events follow
//! `since`, otherwise waits up to `wait` seconds for one. Every answer says
//! whether the restaurant's home region is stale; a wait ends early when it
//! goes stale or comes back, so a polling screen learns it as soon as a
//! streaming one.

use std::time::{Duration, SystemTime};

use axum::extract::State;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use ordercast_core::RestaurantId;
use ordercast_http::HttpError;
use ordercast_http::extract::{Path, Query};
use serde::Deserialize;

use ordercast_http::Subscriber;

use crate::auth::may_watch;
use crate::metrics::{ConnectionGuard, Peer, Transport};
use crate::state::EdgeState;
use crate::subscription::{Next, Subscription, parse_since};

/// Default and largest `limit`.
pub(crate) const DEFAULT_LIMIT: usize = 100;
pub(crate) const MAX_LIMIT: usize = 1_000;
/// Default `wait`, seconds.
pub(crate) const DEFAULT_WAIT_SECS: f64 = 25.0;

#[derive(Default, Deserialize)]
pub(crate) struct PollQuery {
    pub since: Option<String>,
    pub limit: Option<String>,
    pub wait: Option<String>,
}

fn parse_limit(raw: Option<&str>) -> Result<usize, HttpError> {
    match raw {
        None => Ok(DEFAULT_LIMIT),
        Some(s) => s
            .parse::<usize>()
            .ok()
            .filter(|n| (1..=MAX_LIMIT).contains(n))
            .ok_or_else(|| {
                HttpError::InvalidParameter(format!(
                    "limit must be an integer from 1 to {MAX_LIMIT}"
                ))
            }),
    }
}

fn parse_wait(raw: Option<&str>, max: Duration) -> Result<Duration, HttpError> {
    let secs = match raw {
        None => DEFAULT_WAIT_SECS.min(max.as_secs_f64()),
        Some(s) => s
            .parse::<f64>()
            .ok()
            .filter(|w| w.is_finite() && (0.0..=max.as_secs_f64()).contains(w))
            .ok_or_else(|| {
                HttpError::InvalidParameter(format!(
                    "wait must be a number of seconds from 0 to {}",
                    max.as_secs()
                ))
            })?,
    };
    Ok(Duration::from_secs_f64(secs))
}

pub(crate) async fn events(
    State(state): State<EdgeState>,
    subscriber: Subscriber,
    Path(rid): Path<RestaurantId>,
    Query(query): Query<PollQuery>,
) -> Result<Response, HttpError> {
    let since = query.since.as_deref().map(parse_since).transpose()?;
    let limit = parse_limit(query.limit.as_deref())?;
    let wait = parse_wait(query.wait.as_deref(), state.settings.max_poll_wait)?;
    let _permit = state.admit(&subscriber.0)?;
    may_watch(&state, &subscriber.0, rid).await?;
    let mut sub = Subscription::open(&state, rid, subscriber.0.viewer(), since).await?;
    // The answer carries the home's state as it is then: only a change
    // while waiting is news.
    sub.home_told();
    let peer = Peer::new(&subscriber.0, Some(rid));
    let mut guard = ConnectionGuard::new(&state.metrics, Transport::LongPoll, peer);
    let _watching = state
        .watchers
        .watch(rid, Transport::LongPoll, subscriber.0.role);
    guard.set_reason("answered");
    // A wait never outlives the token.
    let wait = wait.min(subscriber.0.valid_for(SystemTime::now()));
    let deadline = tokio::time::Instant::now() + wait;
    let mut frames = Vec::new();
    while frames.is_empty() {
        let next = tokio::select! {
            _ = state.drain.cancelled() => break,
            _ = tokio::time::sleep_until(deadline) => break,
            next = sub.next() => next.map_err(HttpError::from)?,
        };
        match next {
            Next::Batch(batch) => frames.extend(batch.frames.into_iter().map(|f| (batch.kind, f))),
            Next::Region(_) => break,
        }
    }
    // Whatever else is already there, up to the limit.
    while frames.len() < limit {
        match sub.ready().await.map_err(HttpError::from)? {
            Some(batch) => frames.extend(batch.frames.into_iter().map(|f| (batch.kind, f))),
            None => break,
        }
    }
    let next = if frames.len() > limit {
        frames.truncate(limit);
        frames[limit - 1].1.seq
    } else {
        sub.cursor()
    };
    state
        .metrics
        .delivered(Transport::LongPoll, frames.iter().map(|(k, f)| (*k, &**f)));
    guard.delivered(frames.len());
    if let Some((_, last)) = frames.last() {
        state
            .receipts
            .delivered(sub.restaurant(), sub.role(), last.seq);
    }
    let mut body =
        Vec::with_capacity(frames.iter().map(|(_, f)| f.json.len() + 1).sum::<usize>() + 32);
    body.extend_from_slice(b"{\"events\":[");
    for (i, (_, frame)) in frames.iter().enumerate() {
        if i > 0 {
            body.push(b',');
        }
        body.extend_from_slice(&frame.json);
    }
    body.extend_from_slice(format!("],\"next\":{next}").as_bytes());
    if let Some(stale) = sub.stale_now() {
        body.extend_from_slice(b",\"stale\":");
        body.extend_from_slice(&serde_json::to_vec(&stale).expect("stale serializes"));
    }
    body.push(b'}');
    let mut response = body.into_response();
    let h = response.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_and_waits_are_bounded() {
        assert_eq!(parse_limit(None).unwrap(), DEFAULT_LIMIT);
        assert_eq!(parse_limit(Some("1000")).unwrap(), 1000);
        for bad in ["0", "1001", "-1", "x"] {
            assert!(parse_limit(Some(bad)).is_err(), "{bad}");
        }
        let max = Duration::from_secs(30);
        assert_eq!(
            parse_wait(Some("0.5"), max).unwrap(),
            Duration::from_millis(500)
        );
        assert_eq!(parse_wait(None, max).unwrap(), Duration::from_secs(25));
        for bad in ["31", "-1", "NaN", "inf", "soon"] {
            assert!(parse_wait(Some(bad), max).is_err(), "{bad}");
        }
    }
}
