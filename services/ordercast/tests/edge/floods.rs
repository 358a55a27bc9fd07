//! One principal's flood of streams is refused on its own: the rest of the
//! process's streaming slots stay for everyone else.

use ordercast::app::Role as ServerRole;
use ordercast_core::Role;
use reqwest::StatusCode;

use crate::clients::{Resume, Sse};
use crate::common::{Backends, TestApp};

#[tokio::test]
async fn one_tokens_stream_flood_gets_429_while_other_screens_still_connect() {
    let app = TestApp::spawn_with(Backends::fresh().await, ServerRole::All, |s| {
        s.edge.max_connections = 40;
        s.edge.max_connections_per_principal = Some(5);
    })
    .await;
    let a = app.create_restaurant().await;
    let b = app.create_restaurant().await;
    let guest = |session: &str| {
        app.token_with(Role::Customer, a, |c| {
            c.session_id = Some(session.parse().unwrap());
        })
    };
    let flooder = guest("table-7");

    // The guest's token takes its five streams, then is refused.
    let mut held = Vec::new();
    for _ in 0..5 {
        held.push(Sse::connect(&app.base, a, &flooder, Resume::default()).await);
    }
    let refused = app
        .client
        .get(format!("{}/v1/restaurants/{a}/stream", app.base))
        .bearer_auth(&flooder)
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(refused.headers().contains_key("retry-after"));
    let problem: serde_json::Value = refused.json().await.unwrap();
    assert_eq!(
        problem["type"],
        "https://ordercast.dev/problems/too-many-streams"
    );
    let (status, _) = crate::clients::poll(&app.base, a, &flooder, "wait=0").await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);

    // Another restaurant's screens, and another table, still connect.
    let kitchen_b = app.token(Role::Kitchen, b);
    for _ in 0..5 {
        held.push(Sse::connect(&app.base, b, &kitchen_b, Resume::default()).await);
    }
    held.push(Sse::connect(&app.base, a, &guest("table-8"), Resume::default()).await);
    let counted = r#"ordercast_streams_refused_total{reason="principal"}"#;
    assert!(app.metric(counted).await >= 2.0);

    // A stream given back is the guest's to open again.
    held.remove(0);
    ordercast_testkit::eventually(
        "the slot is back",
        std::time::Duration::from_secs(10),
        || async {
            Sse::open(&app.base, a, &flooder, Resume::default())
                .await
                .ok()
        },
    )
    .await;
}
