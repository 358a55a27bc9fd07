//! Hub membership under churn: screens of one shard's restaurants join and
//! leave at once, as a reconnect storm makes them, and every hub still
//! streams afterwards.

use std::sync::Arc;
use std::time::Duration;

use ordercast_bus::{Shard, Streams};
use ordercast_core::RestaurantId;
use ordercast_store::{NewRestaurant, Store};

use crate::EdgeSettings;
use crate::hub::HubGuard;
use crate::state::Shared;
use crate::testing::{on_servers, publish};

/// Restaurants of the one shard the test churns.
const RESTAURANTS: usize = 4;
/// Tasks joining and leaving at once.
const TASKS: usize = 8;
const ROUNDS: u64 = 300;

async fn edge() -> (Arc<Shared>, Streams, Store) {
    let edge = on_servers(EdgeSettings::default()).await;
    (edge.shared, edge.streams, edge.store)
}

/// Restaurants that share one shard, so their hubs share one reader.
async fn one_shard(store: &Store) -> Vec<RestaurantId> {
    let shard = Shard::of(RestaurantId::new());
    let mut ids = Vec::new();
    while ids.len() < RESTAURANTS {
        let id = RestaurantId::new();
        if Shard::of(id) == shard {
            let new = NewRestaurant {
                id,
                name: "Churn".into(),
                chain_id: None,
                region: Default::default(),
                reach: Default::default(),
            };
            store.create_restaurant(new).await.unwrap();
            ids.push(id);
        }
    }
    ids
}

/// One task's round: join and leave the shard's restaurants in turn, then
/// stay on one of them.
async fn churn(ctx: Arc<Shared>, restaurants: Vec<RestaurantId>, task: usize) -> HubGuard {
    for step in 0..RESTAURANTS * 2 {
        let rid = restaurants[(task + step) % RESTAURANTS];
        let guard = ctx.hubs.join(rid).await.unwrap();
        tokio::task::yield_now().await;
        drop(guard);
    }
    ctx.hubs
        .join(restaurants[task % RESTAURANTS])
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_hub_streams_after_screens_join_and_leave_at_once() {
    let (ctx, streams, store) = edge().await;
    let restaurants = one_shard(&store).await;
    for round in 1..=ROUNDS {
        let tasks: Vec<_> = (0..TASKS)
            .map(|task| tokio::spawn(churn(ctx.clone(), restaurants.clone(), task)))
            .collect();
        let mut held = Vec::new();
        for task in tasks {
            held.push(task.await.unwrap());
        }
        for &rid in &restaurants {
            publish(&streams, rid, round).await;
        }
        for guard in &held {
            let mut head = guard.watch_head();
            let reached =
                tokio::time::timeout(Duration::from_secs(5), head.wait_for(|s| s.0 >= round)).await;
            assert!(
                reached.is_ok(),
                "round {round}: restaurant {} never received seq {round} (head {})",
                guard.restaurant,
                guard.head()
            );
        }
    }
}
