//! Which chain each restaurant belongs to, remembered (it never changes),
//! so chain-scoped admins are authorized without a query per request.

use std::collections::HashMap;
use std::sync::Mutex;

use ordercast_core::{ChainId, RestaurantId};

use crate::{Store, StoreError};

/// Most restaurants whose chain is remembered; the map is cleared when full.
const CHAIN_CACHE_LIMIT: usize = 100_000;

/// Restaurants' chains, read once each.
#[derive(Default)]
pub struct ChainDirectory {
    // std Mutex: never held across .await.
    known: Mutex<HashMap<RestaurantId, Option<ChainId>>>,
}

impl ChainDirectory {
    /// The chain of restaurant `id` (`None`: it belongs to none);
    /// `NotFound` for an unknown restaurant, which is not remembered: it may
    /// be created later.
    pub async fn chain_of(
        &self,
        store: &Store,
        id: RestaurantId,
    ) -> Result<Option<ChainId>, StoreError> {
        if let Some(chain) = self.lock().get(&id) {
            return Ok(*chain);
        }
        let chain = store.restaurant(id).await?.chain_id;
        let mut known = self.lock();
        if known.len() >= CHAIN_CACHE_LIMIT {
            known.clear();
        }
        known.insert(id, chain);
        Ok(chain)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<RestaurantId, Option<ChainId>>> {
        self.known.lock().unwrap_or_else(|p| p.into_inner())
    }
}
