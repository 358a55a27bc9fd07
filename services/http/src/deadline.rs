//! A deadline for a request body to arrive in full.
//!
//! hyper times out request heads but not bodies: a client that sends a
//! body a byte at a time would hold its connection, and a handler reading
//! it, for as long as it likes. Here the whole body must arrive within the
//! deadline from the end of its head; a body still arriving then fails
//! with [`BodyTimedOut`], which handlers answer `408 request-timeout` and
//! after which the connection closes. The deadline is for the whole body,
//! not between chunks, so trickling bytes does not extend it.

use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::{Body, HttpBody};
use axum::extract::Request;
use bytes::Bytes;
use hyper::body::{Frame, SizeHint};
use tokio::time::Sleep;

/// The body did not arrive in full before its deadline.
#[derive(Debug, thiserror::Error)]
#[error("the request body did not arrive within {0:?}")]
pub struct BodyTimedOut(pub Duration);

/// `request` with its body bounded by `timeout` (a request without a body
/// is left as it is).
pub fn with_body_deadline<B>(request: Request<B>, timeout: Duration) -> Request
where
    B: HttpBody<Data = Bytes> + Send + Unpin + 'static,
    B::Error: Into<axum::BoxError>,
{
    let (parts, body) = request.into_parts();
    let body = match body.is_end_stream() {
        true => Body::new(body),
        false => Body::new(DeadlineBody {
            body,
            timeout,
            deadline: Box::pin(tokio::time::sleep(timeout)),
        }),
    };
    Request::from_parts(parts, body)
}

/// Whether `error` or one of its causes is a [`BodyTimedOut`].
pub fn is_body_timeout(error: &(dyn std::error::Error + 'static)) -> bool {
    caused_by::<BodyTimedOut>(error)
}

/// Whether `error` or one of its causes is an `E`.
pub fn caused_by<E: std::error::Error + 'static>(
    error: &(dyn std::error::Error + 'static),
) -> bool {
    let mut cause = Some(error);
    while let Some(e) = cause {
        if e.is::<E>() {
            return true;
        }
        cause = e.source();
    }
    false
}

struct DeadlineBody<B> {
    body: B,
    timeout: Duration,
    deadline: Pin<Box<Sleep>>,
}

impl<B> HttpBody for DeadlineBody<B>
where
    B: HttpBody<Data = Bytes> + Unpin,
    B::Error: Into<axum::BoxError>,
{
    type Data = Bytes;
    type Error = axum::BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::BoxError>>> {
        if let Poll::Ready(frame) = Pin::new(&mut self.body).poll_frame(cx) {
            return Poll::Ready(frame.map(|f| f.map_err(Into::into)));
        }
        match self.deadline.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(Some(Err(Box::new(BodyTimedOut(self.timeout))))),
            Poll::Pending => Poll::Pending,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use http_body_util::BodyExt;

    use super::*;

    /// A body that sends one byte and then never finishes.
    struct Trickle {
        sent: bool,
    }

    impl HttpBody for Trickle {
        type Data = Bytes;
        type Error = std::convert::Infallible;

        fn poll_frame(
            mut self: Pin<&mut Self>,
            _: &mut Context<'_>,
        ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
            match std::mem::replace(&mut self.sent, true) {
                false => Poll::Ready(Some(Ok(Frame::data(Bytes::from_static(b"{"))))),
                true => Poll::Pending,
            }
        }
    }

    #[tokio::test]
    async fn a_body_still_arriving_at_its_deadline_fails() {
        let request = Request::new(Trickle { sent: false });
        let request = with_body_deadline(request, Duration::from_millis(100));
        let error = request.into_body().collect().await.unwrap_err();
        assert!(is_body_timeout(&error), "{error}");
    }

    #[tokio::test]
    async fn a_body_that_arrives_in_time_is_read_whole() {
        let request = Request::new(Body::from("{\"a\":1}"));
        let request = with_body_deadline(request, Duration::from_secs(10));
        let body = request.into_body().collect().await.unwrap().to_bytes();
        assert_eq!(body, "{\"a\":1}");
    }
}
