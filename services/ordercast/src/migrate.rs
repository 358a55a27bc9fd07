//! `ordercast migrate`: the schema, this database's region, and
//! replication with the peer regions (docs/multi-region.md).

use ordercast_core::Region;
use ordercast_store::{PeerDatabase, RegionsReport, Store};

/// Applies the migrations, records that the database belongs to `me`,
/// homes restaurants without a region here, and creates or updates the
/// publications and subscriptions with `peers`. Idempotent.
pub async fn migrate(
    store: &Store,
    me: &Region,
    peers: &[PeerDatabase],
) -> anyhow::Result<RegionsReport> {
    store.migrate().await?;
    tracing::info!("migrations applied");
    store.claim_cell(me).await?;
    let adopted = store.adopt_restaurants(me).await?;
    if adopted > 0 {
        tracing::info!(adopted, region = %me, "restaurants without a region are homed here");
    }
    let mut known: Vec<_> = peers.iter().map(|p| p.region.clone()).collect();
    known.push(me.clone());
    for (region, restaurants) in store.restaurants_homed_outside(&known).await? {
        tracing::warn!(
            region,
            restaurants,
            "restaurants homed in a region that is not configured: writes for them fail with 503 until ORDERCAST_PEERS lists it"
        );
    }
    let report = store.connect_regions(me, peers).await?;
    for removed in &report.removed {
        tracing::info!(removed, "no longer a peer");
    }
    for slot in &report.slots_in_use {
        tracing::warn!(
            slot,
            "a removed peer still streams from this replication slot: remove this region from the peer's ORDERCAST_PEERS and migrate it, then run `ordercast migrate` here again"
        );
    }
    for region in &report.waiting_for {
        tracing::warn!(
            %region,
            "region {region} has not published for this region yet: run `ordercast migrate` again after it has migrated"
        );
    }
    tracing::info!(
        region = %me,
        publishing_to = ?report.publishing_to,
        subscribed_to = ?report.subscribed_to,
        "regions connected"
    );
    Ok(report)
}
