//! Regions in PostgreSQL: which region a database belongs to, the
//! publications and subscriptions that carry restaurants' rows between
//! regions, and the heartbeats that tell a region its peers are still
//! talking (docs/multi-region.md).
//!
//! Region `eu` publishes, for each peer `us`, a publication `oc_eu_to_us`
//! of the rows homed in `eu` whose reach includes `us`; `us` subscribes to
//! it with a subscription (and, on `eu`, a replication slot) of the same
//! name. Publications are created by their own region, subscriptions by
//! the subscriber once the publication exists: running `ordercast migrate`
//! in every region, then once more, converges from any state.

use std::time::Duration;

use ordercast_core::{Region, RestaurantId};
use sqlx::{AssertSqlSafe, Connection, PgConnection};

use crate::{Store, StoreError};

/// The tables whose rows follow their restaurant to the peers. Inserts and
/// updates are replicated, deletes are not: every region expires its own
/// copy.
const REPLICATED: [&str; 5] = [
    "restaurants",
    "orders",
    "order_items",
    "waiter_requests",
    "events",
];

/// The advisory lock `migrate` holds while it changes publications and
/// subscriptions ("ocregion").
const REGIONS_LOCK: i64 = 0x6f63_7265_6769_6f6e;

/// Another region, as this region's PostgreSQL reaches it.
#[derive(Clone, Debug)]
pub struct PeerDatabase {
    pub region: Region,
    /// A `postgres://` URL of the peer's database, as the local PostgreSQL
    /// server (which runs the subscription) reaches it; the migrating
    /// process connects to it too, to see whether the peer has published.
    pub url: String,
}

/// What [`Store::connect_regions`] did.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct RegionsReport {
    /// Peers this region now publishes to.
    pub publishing_to: Vec<Region>,
    /// Peers this region now receives from.
    pub subscribed_to: Vec<Region>,
    /// Peers that have not published for this region yet (run `migrate`
    /// again once they have).
    pub waiting_for: Vec<Region>,
    /// Publications, subscriptions and replication slots of regions no
    /// longer configured, removed.
    pub removed: Vec<String>,
    /// Replication slots of regions no longer configured that their peer
    /// still streams from (removed by a later run, once it stops).
    pub slots_in_use: Vec<String>,
}

/// How long since a peer's last heartbeat arrived (`None`: never).
#[derive(Clone, Debug, PartialEq)]
pub struct PeerSilence {
    pub region: Region,
    pub silent_for: Option<Duration>,
}

impl PeerSilence {
    /// Stale: silent for longer than `after`, or never heard.
    pub fn is_stale(&self, after: Duration) -> bool {
        self.silent_for.is_none_or(|d| d > after)
    }
}

/// How far a peer is behind this region's WAL.
#[derive(Clone, Debug, PartialEq)]
pub struct PeerBacklog {
    pub region: Region,
    /// WAL bytes the peer's replication slot still holds back (0 when it
    /// is caught up; `None` while the peer has no slot here yet).
    pub bytes: Option<i64>,
    /// Whether the peer is connected and streaming right now.
    pub streaming: bool,
}

/// `oc_<from>_to_<to>`: the publication, subscription and slot name.
pub fn link_name(from: &Region, to: &Region) -> String {
    format!("oc_{}_to_{}", from.ident(), to.ident())
}

/// The row filter of the replicated tables in the publication from `home`
/// to `peer`: rows homed in `home` whose reach includes `peer`.
fn row_filter(home: &Region, peer: &Region) -> String {
    // Region names are validated (a-z, 0-9, '-'): safe as literals.
    let home = home.as_str();
    let peer = peer.as_str();
    format!("region = '{home}' AND (reach IS NULL OR '{peer}' = ANY(reach))")
}

impl Store {
    /// Records that this database belongs to `region`, or fails with
    /// [`StoreError::WrongRegion`] if it belongs to another.
    pub async fn claim_cell(&self, region: &Region) -> Result<(), StoreError> {
        sqlx::query("INSERT INTO cell (region) VALUES ($1) ON CONFLICT DO NOTHING")
            .bind(region.as_str())
            .execute(&self.pool)
            .await?;
        self.check_cell(region).await
    }

    /// Fails with [`StoreError::WrongRegion`] unless this database belongs
    /// to `region` (or to no region yet: `migrate` has not run since
    /// regions were introduced).
    pub async fn check_cell(&self, region: &Region) -> Result<(), StoreError> {
        let stored: Option<String> = sqlx::query_scalar("SELECT region FROM cell")
            .fetch_optional(&self.pool)
            .await?;
        match stored {
            Some(stored) if stored != region.as_str() => Err(StoreError::WrongRegion {
                database: stored,
                configured: region.to_string(),
            }),
            _ => Ok(()),
        }
    }

    /// Homes in `region` every restaurant created before the deployment
    /// named its regions. Returns how many.
    pub async fn adopt_restaurants(&self, region: &Region) -> Result<u64, StoreError> {
        let done = sqlx::query("UPDATE restaurants SET region = $1 WHERE region IS NULL")
            .bind(region.as_str())
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected())
    }

    /// Restaurants stored here whose home is none of `known`, by region:
    /// writes for them have nowhere to go.
    pub async fn restaurants_homed_outside(
        &self,
        known: &[Region],
    ) -> Result<Vec<(String, i64)>, StoreError> {
        let known: Vec<&str> = known.iter().map(Region::as_str).collect();
        Ok(sqlx::query_as(
            "SELECT region, count(*) FROM restaurants
             WHERE region IS NOT NULL AND region <> ALL($1) GROUP BY region ORDER BY region",
        )
        .bind(known)
        .fetch_all(&self.pool)
        .await?)
    }

    /// Creates or updates this region's publications, one per peer, and
    /// the subscriptions to the peers' publications for this region; drops
    /// those of regions no longer listed. Needs `wal_level = logical` and
    /// a role allowed to create subscriptions (a superuser on PostgreSQL 15).
    pub async fn connect_regions(
        &self,
        me: &Region,
        peers: &[PeerDatabase],
    ) -> Result<RegionsReport, StoreError> {
        // One `migrate` at a time changes publications and subscriptions
        // (several pods may run it at once); the lock goes with the
        // connection.
        let mut lock = self.pool.acquire().await?;
        sqlx::query("SELECT pg_advisory_lock($1)")
            .bind(REGIONS_LOCK)
            .execute(&mut *lock)
            .await?;
        let report = self.connect_regions_locked(me, peers).await;
        sqlx::query("SELECT pg_advisory_unlock($1)")
            .bind(REGIONS_LOCK)
            .execute(&mut *lock)
            .await?;
        report
    }

    async fn connect_regions_locked(
        &self,
        me: &Region,
        peers: &[PeerDatabase],
    ) -> Result<RegionsReport, StoreError> {
        let mut report = RegionsReport::default();
        if !peers.is_empty() {
            let wal_level: String = sqlx::query_scalar("SHOW wal_level")
                .fetch_one(&self.pool)
                .await?;
            if wal_level != "logical" {
                return Err(StoreError::Replication(format!(
                    "PostgreSQL runs with wal_level = {wal_level}; peers need wal_level = logical \
                     (set it in postgresql.conf and restart PostgreSQL)"
                )));
            }
        }
        let wanted_publications: Vec<String> =
            peers.iter().map(|p| link_name(me, &p.region)).collect();
        let wanted_subscriptions: Vec<String> =
            peers.iter().map(|p| link_name(&p.region, me)).collect();

        // Subscriptions first: dropping one releases its slot on the peer.
        let subscriptions: Vec<String> = sqlx::query_scalar(
            "SELECT subname::text FROM pg_subscription WHERE subname LIKE 'oc\\_%'",
        )
        .fetch_all(&self.pool)
        .await?;
        for name in subscriptions
            .iter()
            .filter(|n| !wanted_subscriptions.contains(n))
        {
            self.drop_subscription(name).await?;
            report.removed.push(format!("subscription {name}"));
        }
        let publications: Vec<String> = sqlx::query_scalar(
            "SELECT pubname::text FROM pg_publication WHERE pubname LIKE 'oc\\_%'",
        )
        .fetch_all(&self.pool)
        .await?;
        for name in publications
            .iter()
            .filter(|n| !wanted_publications.contains(n))
        {
            self.execute(&format!("DROP PUBLICATION {name}")).await?;
            report.removed.push(format!("publication {name}"));
        }
        // A removed peer's slot would hold WAL back forever. One still in
        // use (the peer has not dropped its subscription yet) is left for
        // the next run, and said.
        let slots: Vec<(String, bool)> = sqlx::query_as(
            "SELECT slot_name::text, active FROM pg_replication_slots
             WHERE slot_type = 'logical' AND slot_name LIKE $1",
        )
        .bind(format!("oc\\_{}\\_to\\_%", me.ident()))
        .fetch_all(&self.pool)
        .await?;
        for (slot, active) in slots
            .iter()
            .filter(|(s, _)| !wanted_publications.contains(s))
        {
            if *active {
                report.slots_in_use.push(slot.clone());
                continue;
            }
            sqlx::query("SELECT pg_drop_replication_slot($1)")
                .bind(slot)
                .execute(&self.pool)
                .await?;
            report.removed.push(format!("replication slot {slot}"));
        }

        for peer in peers {
            let name = link_name(me, &peer.region);
            self.publish_to(&name, me, &peer.region, publications.contains(&name))
                .await?;
            report.publishing_to.push(peer.region.clone());
        }
        for peer in peers {
            let name = link_name(&peer.region, me);
            if self
                .subscribe_to(&name, peer, subscriptions.contains(&name))
                .await?
            {
                report.subscribed_to.push(peer.region.clone());
            } else {
                report.waiting_for.push(peer.region.clone());
            }
        }
        Ok(report)
    }

    /// Creates (`exists`: brings up to date) the publication `name` of this
    /// region's rows for `peer`, with the heartbeat table.
    async fn publish_to(
        &self,
        name: &str,
        me: &Region,
        peer: &Region,
        exists: bool,
    ) -> Result<(), StoreError> {
        let mut tables: Vec<String> = REPLICATED
            .iter()
            .map(|t| format!("{t} WHERE ({})", row_filter(me, peer)))
            .collect();
        tables.push(format!("region_beats WHERE (region = '{}')", me.as_str()));
        let tables = tables.join(", ");
        if exists {
            self.execute(&format!("ALTER PUBLICATION {name} SET TABLE {tables}"))
                .await
        } else {
            self.execute(&format!(
                "CREATE PUBLICATION {name} FOR TABLE {tables} WITH (publish = 'insert, update')"
            ))
            .await
        }
    }

    /// Subscribes (subscription `name`) to `peer`'s publication for this
    /// region, if the peer has created it; `false` if not yet. An existing
    /// subscription (`exists`) gets the configured URL.
    async fn subscribe_to(
        &self,
        name: &str,
        peer: &PeerDatabase,
        exists: bool,
    ) -> Result<bool, StoreError> {
        let url = peer.url.replace('\'', "''");
        if exists {
            self.execute(&format!("ALTER SUBSCRIPTION {name} CONNECTION '{url}'"))
                .await?;
            return Ok(true);
        }
        let mut remote = PgConnection::connect(&peer.url).await.map_err(|e| {
            StoreError::Replication(format!(
                "cannot reach region {}'s database: {e}",
                peer.region
            ))
        })?;
        let published: bool =
            sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_publication WHERE pubname = $1)")
                .bind(name)
                .fetch_one(&mut remote)
                .await?;
        remote.close().await.ok();
        if !published {
            return Ok(false);
        }
        // Not in a transaction: CREATE SUBSCRIPTION creates the slot on the
        // peer and cannot run inside one.
        self.execute(&format!(
            "CREATE SUBSCRIPTION {name} CONNECTION '{url}' PUBLICATION {name}"
        ))
        .await?;
        Ok(true)
    }

    /// Drops a subscription; if the peer cannot be reached to release its
    /// slot, the slot is left to the peer's own `migrate`.
    async fn drop_subscription(&self, name: &str) -> Result<(), StoreError> {
        if self
            .execute(&format!("DROP SUBSCRIPTION {name}"))
            .await
            .is_ok()
        {
            return Ok(());
        }
        self.execute(&format!("ALTER SUBSCRIPTION {name} DISABLE"))
            .await?;
        self.execute(&format!("ALTER SUBSCRIPTION {name} SET (slot_name = NONE)"))
            .await?;
        self.execute(&format!("DROP SUBSCRIPTION {name}")).await
    }

    async fn execute(&self, statement: &str) -> Result<(), StoreError> {
        sqlx::raw_sql(AssertSqlSafe(statement.to_owned()))
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// This region's heartbeat: everything committed before it reaches a
    /// peer before the beat does.
    pub async fn beat(&self, me: &Region) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO region_beats (region, beat_at) VALUES ($1, now())
             ON CONFLICT (region) DO UPDATE SET beat_at = excluded.beat_at",
        )
        .bind(me.as_str())
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// How long each of `peers` has been silent, by this database's clock.
    pub async fn peer_silence(&self, peers: &[Region]) -> Result<Vec<PeerSilence>, StoreError> {
        let names: Vec<&str> = peers.iter().map(Region::as_str).collect();
        let rows: Vec<(String, Option<f64>)> = sqlx::query_as(
            "SELECT p.region, extract(epoch FROM clock_timestamp() - b.received_at)::float8
             FROM unnest($1::text[]) AS p(region) LEFT JOIN region_beats b USING (region)",
        )
        .bind(names)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .into_iter()
            .filter_map(|(region, secs)| {
                Some(PeerSilence {
                    region: region.parse().ok()?,
                    silent_for: secs.map(|s| Duration::from_secs_f64(s.max(0.0))),
                })
            })
            .collect())
    }

    /// How far each peer's replication slot is behind this region's WAL.
    pub async fn peer_backlog(
        &self,
        me: &Region,
        peers: &[Region],
    ) -> Result<Vec<PeerBacklog>, StoreError> {
        let slots: Vec<String> = peers.iter().map(|p| link_name(me, p)).collect();
        let rows: Vec<(String, Option<i64>, Option<bool>)> = sqlx::query_as(
            "SELECT w.slot, pg_wal_lsn_diff(pg_current_wal_lsn(), s.confirmed_flush_lsn)::bigint,
                    s.active
             FROM unnest($1::text[]) AS w(slot) LEFT JOIN pg_replication_slots s ON s.slot_name = w.slot",
        )
        .bind(&slots)
        .fetch_all(&self.pool)
        .await?;
        Ok(peers
            .iter()
            .zip(rows)
            .map(|(region, (_, bytes, active))| PeerBacklog {
                region: region.clone(),
                bytes: bytes.map(|b| b.max(0)),
                streaming: active.unwrap_or(false),
            })
            .collect())
    }

    /// The home region of a restaurant (`None`: not homed in a named
    /// region, so homed here), or [`StoreError::NotFound`].
    pub async fn home_of(&self, restaurant: RestaurantId) -> Result<Option<Region>, StoreError> {
        let region: Option<Option<String>> =
            sqlx::query_scalar("SELECT region FROM restaurants WHERE id = $1")
                .bind(restaurant.as_uuid())
                .fetch_optional(&self.pool)
                .await?;
        let region = region.ok_or(StoreError::NotFound("restaurant"))?;
        Ok(region.and_then(|r| r.parse().ok()))
    }
}
