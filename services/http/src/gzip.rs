//! gzip for JSON answers (api commands and queries, long-poll) when the
//! client sends `Accept-Encoding: gzip`. Small bodies are sent as they are:
//! below [`MIN_GZIP_BYTES`] the gzip header and the CPU cost more than the
//! bytes saved. Streams (SSE, WebSocket) are never touched here; SSE has a
//! gzip of its own, off by default (`ORDERCAST_SSE_GZIP`).

use std::io::Write as _;

use axum::body::{Body, HttpBody as _};
use axum::extract::Request;
use axum::http::{HeaderMap, HeaderValue, header};
use axum::middleware::Next;
use axum::response::Response;
use flate2::Compression;
use flate2::write::GzEncoder;

/// Smallest body compressed, bytes (1 KiB).
pub const MIN_GZIP_BYTES: u64 = 1024;
/// Largest body compressed, bytes (8 MiB; answers are bounded well below).
const MAX_GZIP_BYTES: u64 = 8 * 1024 * 1024;

/// Whether the client accepts gzip (`Accept-Encoding: gzip`, not `q=0`).
pub fn accepts_gzip(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::ACCEPT_ENCODING)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|coding| {
            let mut parts = coding.split(';').map(str::trim);
            let name = parts.next().unwrap_or("");
            let refused = parts.any(|p| {
                p.strip_prefix("q=")
                    .is_some_and(|q| q.parse::<f32>().is_ok_and(|q| q == 0.0))
            });
            (name.eq_ignore_ascii_case("gzip") || name == "*") && !refused
        })
}

/// Compresses a complete JSON answer of known size when asked.
pub async fn json(request: Request, next: Next) -> Response {
    let wants = accepts_gzip(request.headers());
    let response = next.run(request).await;
    if !wants || !compressible(&response) {
        return response;
    }
    let (mut parts, body) = response.into_parts();
    let Ok(bytes) = axum::body::to_bytes(body, MAX_GZIP_BYTES as usize).await else {
        // Cannot happen for a body of exact size within the bound.
        return Response::from_parts(parts, Body::empty());
    };
    let mut encoder = GzEncoder::new(Vec::with_capacity(bytes.len() / 4), Compression::fast());
    let compressed = encoder.write_all(&bytes).and_then(|()| encoder.finish());
    let h = &mut parts.headers;
    h.append(header::VARY, HeaderValue::from_static("accept-encoding"));
    match compressed {
        Ok(gz) => {
            h.insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
            h.remove(header::CONTENT_LENGTH);
            Response::from_parts(parts, Body::from(gz))
        }
        Err(_) => Response::from_parts(parts, Body::from(bytes)),
    }
}

/// A JSON body of exact size from [`MIN_GZIP_BYTES`], not yet encoded.
fn compressible(response: &Response) -> bool {
    let h = response.headers();
    let json = h
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|t| {
            t.starts_with("application/json") || t.starts_with("application/problem+json")
        });
    let size = response.body().size_hint().exact();
    json && !h.contains_key(header::CONTENT_ENCODING)
        && size.is_some_and(|n| (MIN_GZIP_BYTES..=MAX_GZIP_BYTES).contains(&n))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gzip_is_taken_unless_refused() {
        let asked = |v: &'static str| {
            let mut h = HeaderMap::new();
            h.insert(header::ACCEPT_ENCODING, HeaderValue::from_static(v));
            accepts_gzip(&h)
        };
        assert!(asked("gzip"));
        assert!(asked("br, gzip;q=0.8, deflate"));
        assert!(asked("*"));
        assert!(!asked("gzip;q=0"));
        assert!(!asked("br, deflate"));
        assert!(!accepts_gzip(&HeaderMap::new()));
    }
}
