use std::time::Duration;

use ordercast_api::metrics::ApiMetrics;
use ordercast_api::retention::{RetentionSettings, run_once};
use ordercast_store::Store;
use ordercast_testkit::eventually;
use tokio_util::sync::CancellationToken;

use crate::common::{TestApp, seqs};

#[tokio::test]
async fn retention_deletes_only_events_older_than_the_window() {
    let app = TestApp::spawn().await;
    let rid = app.create_restaurant().await;
    for _ in 0..3 {
        app.order(rid).await;
    }
    sqlx::query("UPDATE events SET created_at = now() - interval '8 days' WHERE restaurant_id = $1 AND seq <= 2")
        .bind(rid.as_uuid())
        .execute(&app.db)
        .await
        .unwrap();
    // An expired event that never reached Redis leaves an outbox row behind.
    let outbox = "SELECT count(*) FROM outbox WHERE restaurant_id = $1";
    eventually(
        "the fast path to empty the outbox",
        Duration::from_secs(10),
        || async { (app.count(outbox, rid).await == 0).then_some(()) },
    )
    .await;
    sqlx::query("INSERT INTO outbox (restaurant_id, seq, created_at) VALUES ($1, 1, now() - interval '8 days')")
        .bind(rid.as_uuid())
        .execute(&app.db)
        .await
        .unwrap();
    let metrics = ApiMetrics::new(&prometheus::Registry::new()).unwrap();
    let settings = RetentionSettings {
        days: 7,
        ..RetentionSettings::default()
    };

    run_once(
        &Store::from_pool(app.db.clone()),
        &metrics,
        &settings,
        &CancellationToken::new(),
    )
    .await
    .unwrap();

    assert_eq!(seqs(&app.stored_events(rid).await), [3]);
    assert_eq!(
        metrics
            .retention_deleted
            .with_label_values(&["events"])
            .get(),
        2
    );
    assert_eq!(
        app.count("SELECT count(*) FROM orders WHERE restaurant_id = $1", rid)
            .await,
        3,
        "orders are kept"
    );
}
