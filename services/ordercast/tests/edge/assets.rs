use reqwest::StatusCode;
use reqwest::header::{CACHE_CONTROL, CONTENT_TYPE, ETAG, IF_NONE_MATCH};

use crate::common::TestApp;

#[tokio::test]
async fn the_edge_serves_the_browser_client_and_the_demo_screens_from_the_binary() {
    let app = TestApp::spawn().await;
    for (path, content_type, needle) in [
        (
            "/client/ordercast.js",
            "text/javascript",
            "export class OrdercastClient",
        ),
        (
            "/client/ordercast.d.ts",
            "application/typescript",
            "export declare class OrdercastClient",
        ),
        ("/demo/", "text/html", "Ordercast screens"),
        ("/demo/kitchen.html", "text/html", "/demo/kitchen.js"),
        ("/demo/owner.html", "text/html", "/demo/owner.js"),
        ("/demo/table.html", "text/html", "/demo/table.js"),
        ("/demo/index.js", "text/javascript", "location.hash"),
        ("/demo/common.js", "text/javascript", "/client/ordercast.js"),
        ("/demo/demo.css", "text/css", ".ticket"),
        ("/demo/icon.svg", "image/svg+xml", "<svg"),
    ] {
        let res = app
            .client
            .get(format!("{}{path}", app.base))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::OK, "{path}");
        let headers = res.headers().clone();
        assert!(
            headers[CONTENT_TYPE]
                .to_str()
                .unwrap()
                .starts_with(content_type),
            "{path}: {:?}",
            headers[CONTENT_TYPE]
        );
        assert_eq!(headers[CACHE_CONTROL], "no-cache", "{path}");
        if content_type == "text/html" {
            // Only the scripts served here run: no inline script, no eval.
            let policy = headers["content-security-policy"].to_str().unwrap();
            assert!(policy.contains("default-src 'self'"), "{path}: {policy}");
            assert!(!policy.contains("unsafe"), "{path}: {policy}");
        }
        assert!(res.text().await.unwrap().contains(needle), "{path}");
        // A screen that already has the file revalidates for nothing.
        let again = app
            .client
            .get(format!("{}{path}", app.base))
            .header(IF_NONE_MATCH, headers[ETAG].clone())
            .send()
            .await
            .unwrap();
        assert_eq!(again.status(), StatusCode::NOT_MODIFIED, "{path}");
    }
    let missing = app
        .client
        .get(format!("{}/demo/nope.html", app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), StatusCode::NOT_FOUND);
    let bare = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
        .get(format!("{}/demo", app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(bare.status(), StatusCode::PERMANENT_REDIRECT);
    assert_eq!(bare.headers()["location"], "/demo/");
}
