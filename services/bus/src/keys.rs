//! Stream key naming: `<prefix>:{s<NN>}:r:<restaurant>`.

use std::fmt;

use ordercast_core::RestaurantId;

/// Number of shards restaurants are spread over.
pub const SHARDS: u8 = 64;

/// A shard: a Redis Cluster hash slot shared by its restaurants' streams, so
/// one blocking `XREAD` can cover them all.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Shard(u8);

impl Shard {
    /// The shard of a restaurant: CRC-32 (IEEE) of its lowercase hyphenated
    /// id, modulo 64.
    pub fn of(restaurant: RestaurantId) -> Shard {
        let crc = crc32fast::hash(restaurant.to_string().as_bytes());
        Shard((crc % u32::from(SHARDS)) as u8)
    }

    /// The shard's number, `0..64`.
    pub fn index(self) -> u8 {
        self.0
    }

    /// Every shard.
    pub fn all() -> impl Iterator<Item = Shard> {
        (0..SHARDS).map(Shard)
    }
}

impl fmt::Display for Shard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:02x}", self.0)
    }
}

/// Builds key names under one prefix (`oc` by default; tests use a random
/// one to stay isolated).
#[derive(Clone, Debug)]
pub struct Keys {
    prefix: String,
}

impl Keys {
    /// Keys under `prefix`.
    pub fn new(prefix: impl Into<String>) -> Keys {
        Keys {
            prefix: prefix.into(),
        }
    }

    /// The prefix.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// The stream of `restaurant`, e.g. `oc:{s2f}:r:6f1c0d2e-…`.
    pub fn stream(&self, restaurant: RestaurantId) -> String {
        format!(
            "{}:{{s{}}}:r:{restaurant}",
            self.prefix,
            Shard::of(restaurant)
        )
    }

    /// The delivery-receipt stream of a shard (see `receipts.rs`).
    pub fn receipts(&self, shard: Shard) -> String {
        format!("{}:{{s{shard}}}:receipts", self.prefix)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Vectors computed independently with Python's zlib.crc32.
    const VECTORS: [(&str, &str); 4] = [
        ("6f1c0d2e-0000-4000-8000-000000000001", "12"),
        ("00000000-0000-0000-0000-000000000000", "09"),
        ("ffffffff-ffff-ffff-ffff-ffffffffffff", "0f"),
        ("0194f5a8-7c3b-7d2e-9a41-5be0c1d2e3f4", "19"),
    ];

    #[test]
    fn shards_match_fixed_crc32_vectors() {
        for (id, shard) in VECTORS {
            let rid: RestaurantId = id.parse().unwrap();
            assert_eq!(Shard::of(rid).to_string(), shard, "{id}");
        }
    }

    #[test]
    fn uppercase_ids_hash_like_lowercase() {
        let upper: RestaurantId = "0194F5A8-7C3B-7D2E-9A41-5BE0C1D2E3F4".parse().unwrap();
        assert_eq!(Shard::of(upper).to_string(), "19");
    }

    #[test]
    fn stream_key_has_a_literal_hash_tag() {
        let rid: RestaurantId = VECTORS[0].0.parse().unwrap();
        assert_eq!(
            Keys::new("oc").stream(rid),
            "oc:{s12}:r:6f1c0d2e-0000-4000-8000-000000000001"
        );
        assert_eq!(
            Keys::new("t1").receipts(Shard::of(rid)),
            "t1:{s12}:receipts"
        );
    }
}
