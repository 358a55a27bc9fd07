//! Who watches each restaurant on this edge, by transport and role, for
//! `/debug/restaurants/{rid}`. One entry per open subscription (an SSE
//! stream, a waiting long-poll, a WebSocket's subscription), removed when
//! it ends.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use ordercast_core::{RestaurantId, Role};

use crate::metrics::Transport;

type Key = (Transport, Role);

/// Open subscriptions per restaurant.
#[derive(Default)]
pub(crate) struct Watchers {
    // std Mutex: never held across .await, held for a counter update.
    map: Mutex<HashMap<RestaurantId, HashMap<Key, usize>>>,
}

impl Watchers {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<RestaurantId, HashMap<Key, usize>>> {
        self.map.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Counts one subscription until the guard drops.
    pub(crate) fn watch(
        self: &Arc<Self>,
        restaurant: RestaurantId,
        transport: Transport,
        role: Role,
    ) -> Watching {
        *self
            .lock()
            .entry(restaurant)
            .or_default()
            .entry((transport, role))
            .or_default() += 1;
        Watching {
            watchers: self.clone(),
            restaurant,
            key: (transport, role),
        }
    }

    /// `{transport: {role: n}}` of `restaurant` (empty: nobody here).
    pub(crate) fn of(&self, restaurant: RestaurantId) -> serde_json::Value {
        let mut out = serde_json::Map::new();
        if let Some(counts) = self.lock().get(&restaurant) {
            for ((transport, role), n) in counts {
                let by_role = out
                    .entry(transport.as_str())
                    .or_insert_with(|| serde_json::json!({}));
                by_role[role.as_str()] = (*n).into();
            }
        }
        out.into()
    }
}

/// One counted subscription.
pub(crate) struct Watching {
    watchers: Arc<Watchers>,
    restaurant: RestaurantId,
    key: Key,
}

impl Drop for Watching {
    fn drop(&mut self) {
        let mut map = self.watchers.lock();
        let Some(counts) = map.get_mut(&self.restaurant) else {
            return;
        };
        if let Some(n) = counts.get_mut(&self.key) {
            *n -= 1;
            if *n == 0 {
                counts.remove(&self.key);
            }
        }
        if counts.is_empty() {
            map.remove(&self.restaurant);
        }
    }
}
