//! The browser client (`/client/ordercast.js` and its TypeScript
//! declarations) and the demo screens (`/demo/`), compiled into the binary
//! so an edge needs no files next to it.

use axum::Router;
use axum::http::{HeaderMap, HeaderValue, StatusCode, Uri, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;

/// One embedded file.
struct Asset {
    path: &'static str,
    content_type: &'static str,
    body: &'static [u8],
    etag: u64,
}

macro_rules! asset {
    ($path:literal, $file:literal, $type:expr) => {{
        const BODY: &[u8] = include_bytes!(concat!("../../../web/", $file));
        Asset {
            path: $path,
            content_type: $type,
            body: BODY,
            etag: fnv1a(BODY),
        }
    }};
}

const JS: &str = "text/javascript; charset=utf-8";
const HTML: &str = "text/html; charset=utf-8";

/// The pages run only the scripts, styles and images served here, so an
/// order note that reached the page as markup could not run. They may
/// connect elsewhere: the `api=` setting names the api's origin.
const PAGE_POLICY: &str = "default-src 'self'; connect-src 'self' http: https: ws: wss:; \
    img-src 'self' data:; object-src 'none'; base-uri 'none'; form-action 'none'; \
    frame-ancestors 'none'";

static ASSETS: &[Asset] = &[
    asset!("/client/ordercast.js", "client/ordercast.js", JS),
    asset!(
        "/client/ordercast.d.ts",
        "client/ordercast.d.ts",
        "application/typescript; charset=utf-8"
    ),
    asset!("/demo/", "demo/index.html", HTML),
    asset!("/demo/kitchen.html", "demo/kitchen.html", HTML),
    asset!("/demo/owner.html", "demo/owner.html", HTML),
    asset!("/demo/table.html", "demo/table.html", HTML),
    asset!("/demo/index.js", "demo/index.js", JS),
    asset!("/demo/common.js", "demo/common.js", JS),
    asset!("/demo/kitchen.js", "demo/kitchen.js", JS),
    asset!("/demo/owner.js", "demo/owner.js", JS),
    asset!("/demo/table.js", "demo/table.js", JS),
    asset!("/demo/demo.css", "demo/demo.css", "text/css; charset=utf-8"),
    asset!("/demo/icon.svg", "demo/icon.svg", "image/svg+xml"),
];

/// FNV-1a, at compile time: a content hash for the `ETag`.
const fn fnv1a(bytes: &[u8]) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    let mut i = 0;
    while i < bytes.len() {
        hash ^= bytes[i] as u64;
        hash = hash.wrapping_mul(0x0100_0000_01b3);
        i += 1;
    }
    hash
}

/// The routes serving the embedded files.
pub(crate) fn router() -> Router {
    Router::new()
        .route("/client/{file}", get(serve))
        .route("/demo", get(|| async { Redirect::permanent("/demo/") }))
        .route("/demo/", get(serve))
        .route("/demo/{file}", get(serve))
}

async fn serve(uri: Uri, headers: HeaderMap) -> Response {
    let Some(asset) = ASSETS.iter().find(|a| a.path == uri.path()) else {
        return ordercast_http::no_route().await.into_response();
    };
    let etag = format!("\"{:016x}\"", asset.etag);
    // Not fingerprinted, so browsers revalidate every time (a cheap 304):
    // a new release reaches every screen on its next load.
    let mut response = if headers
        .get(header::IF_NONE_MATCH)
        .is_some_and(|v| v.as_bytes() == etag.as_bytes())
    {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        (
            [(
                header::CONTENT_TYPE,
                HeaderValue::from_static(asset.content_type),
            )],
            asset.body,
        )
            .into_response()
    };
    let h = response.headers_mut();
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    if let Ok(v) = HeaderValue::from_str(&etag) {
        h.insert(header::ETAG, v);
    }
    if asset.content_type == HTML {
        h.insert(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(PAGE_POLICY),
        );
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_asset_is_embedded_once_with_a_type() {
        for (i, a) in ASSETS.iter().enumerate() {
            assert!(!a.body.is_empty(), "{} is empty", a.path);
            assert!(!a.content_type.is_empty());
            assert!(
                ASSETS[..i].iter().all(|b| b.path != a.path),
                "{} twice",
                a.path
            );
        }
    }

    #[test]
    fn etags_follow_the_content() {
        assert_eq!(fnv1a(b""), 0xcbf2_9ce4_8422_2325);
        assert_ne!(fnv1a(b"a"), fnv1a(b"b"));
    }
}
