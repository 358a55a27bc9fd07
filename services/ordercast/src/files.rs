//! How many connections the public port may hold, from the open files the
//! process may have.
//!
//! Every connection is a file. If the limits allowed as many connections as
//! files, a flood would exhaust them: `accept` would fail for everyone and
//! PostgreSQL, Redis and the admin port could not open theirs, so nobody
//! would ever be answered `503 too-many-connections`. So at start the soft
//! `RLIMIT_NOFILE` is raised to the hard one, the files the process needs
//! for itself are set aside, and what is left is shared between pending
//! connections (handshakes, requests, idle keep-alives) and streams.

/// The open-files limit after raising the soft limit to the hard one (as
/// far as the kernel allows); unknown limits count as `fallback`.
pub fn raise_open_files_limit(fallback: u64) -> u64 {
    match rlimit::increase_nofile_limit(MAX_FILES) {
        Ok(files) => files.min(MAX_FILES),
        Err(e) => {
            tracing::warn!(error = %e, "cannot raise the open-files limit");
            rlimit::Resource::NOFILE
                .get()
                .map(|(soft, _)| soft.min(MAX_FILES))
                .unwrap_or(fallback)
        }
    }
}

/// Files counted at most: an unlimited hard limit is this many.
const MAX_FILES: u64 = 1 << 20;

/// Files of the process's own, beyond its pools and its ports' connections:
/// standard streams, listeners, the runtime's epoll and wakers, log and
/// trace exporters, DNS, clients of peer regions.
pub const RESERVED_FILES: u64 = 128;

/// Files an edge's shard readers hold: a reading and a wake-up connection
/// to Redis for each shard.
pub const SHARD_READER_FILES: u64 = 2 * ordercast_bus::SHARDS as u64;

/// Defaults: pending connections are at most a quarter of what is left on a
/// process that streams (the rest is for streams), and at most this many.
pub const MAX_DEFAULT_PENDING: usize = 10_000;

/// What the process needs besides its public port.
#[derive(Clone, Copy, Debug)]
pub struct Headroom {
    /// `ORDERCAST_DATABASE_POOL`.
    pub database_pool: u64,
    /// `ORDERCAST_REDIS_POOL`.
    pub redis_pool: u64,
    /// `ORDERCAST_ADMIN_MAX_CONNECTIONS`.
    pub admin_connections: u64,
    /// The edge's shard readers, when this process serves the edge.
    pub shard_readers: u64,
}

impl Headroom {
    /// Every file set aside.
    pub fn files(&self) -> u64 {
        RESERVED_FILES
            + self.database_pool
            + self.redis_pool
            + self.admin_connections
            + self.shard_readers
    }
}

/// The public port's limits: what was asked for (`None`: the default) and
/// what the files allow.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConnectionBudget {
    /// Connections that are not streams (`ORDERCAST_MAX_PENDING_CONNECTIONS`).
    pub pending: usize,
    /// Streams (`ORDERCAST_MAX_CONNECTIONS`); 0 on a process without the
    /// edge.
    pub streams: usize,
}

/// What was asked for.
#[derive(Clone, Copy, Debug, Default)]
pub struct Requested {
    pub pending: Option<usize>,
    pub streams: Option<usize>,
}

impl ConnectionBudget {
    /// The budget for `files` open files: defaults derived from what is
    /// left after `headroom`, settings capped to it. Each cap is returned
    /// as a line to log.
    pub fn from_files(
        files: u64,
        headroom: &Headroom,
        requested: Requested,
        streams: bool,
    ) -> anyhow::Result<(ConnectionBudget, Vec<String>)> {
        let left = files.saturating_sub(headroom.files());
        let left = usize::try_from(left).unwrap_or(usize::MAX);
        let least = if streams { 2 } else { 1 };
        anyhow::ensure!(
            left >= least,
            "the open-files limit ({files}) leaves no file for connections once {} are set aside \
             for PostgreSQL, Redis, the admin port and the process itself; raise it (ulimit -n, \
             or the container's nofile limit) or lower ORDERCAST_DATABASE_POOL / ORDERCAST_REDIS_POOL",
            headroom.files()
        );
        let mut capped = vec![];
        let mut cap = |name: &str, asked: usize, allowed: usize| {
            if asked > allowed {
                capped.push(format!(
                    "{name}={asked} is more than the open-files limit ({files}) allows; using {allowed}"
                ));
            }
            asked.min(allowed)
        };
        let pending_allowed = left - (least - 1);
        let pending = match requested.pending {
            Some(asked) => cap("ORDERCAST_MAX_PENDING_CONNECTIONS", asked, pending_allowed),
            None if streams => (left / 4).clamp(1, MAX_DEFAULT_PENDING),
            None => left.min(MAX_DEFAULT_PENDING),
        };
        let streams = match (streams, requested.streams) {
            (false, _) => 0,
            (true, Some(asked)) => cap("ORDERCAST_MAX_CONNECTIONS", asked, left - pending),
            (true, None) => {
                (left - pending).min(ordercast_edge::EdgeSettings::DEFAULT.max_connections)
            }
        };
        Ok((ConnectionBudget { pending, streams }, capped))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Defaults' headroom: 16 + 16 PostgreSQL and Redis connections, 16 on
    /// the admin port, and the edge's 128 shard readers: 304 files in all.
    fn headroom(edge: bool) -> Headroom {
        Headroom {
            database_pool: 16,
            redis_pool: 16,
            admin_connections: 16,
            shard_readers: if edge { SHARD_READER_FILES } else { 0 },
        }
    }

    fn budget(files: u64, requested: Requested, edge: bool) -> (ConnectionBudget, Vec<String>) {
        ConnectionBudget::from_files(files, &headroom(edge), requested, edge).unwrap()
    }

    #[test]
    fn the_defaults_leave_headroom_and_share_the_rest_between_pending_and_streams() {
        assert_eq!(headroom(true).files(), 304);
        let (b, capped) = budget(1_024, Requested::default(), true);
        assert_eq!(
            b,
            ConnectionBudget {
                pending: 180,
                streams: 540
            }
        );
        assert!(capped.is_empty());
        assert!(b.pending + b.streams + 304 <= 1_024);
    }

    #[test]
    fn with_many_files_the_defaults_stop_at_their_ceilings() {
        let (b, _) = budget(1 << 20, Requested::default(), true);
        assert_eq!(
            b,
            ConnectionBudget {
                pending: 10_000,
                streams: 20_000
            }
        );
    }

    #[test]
    fn a_process_without_the_edge_gives_every_file_left_to_pending_connections() {
        let (b, _) = budget(1_024, Requested::default(), false);
        assert_eq!(
            b,
            ConnectionBudget {
                pending: 1_024 - 176,
                streams: 0
            }
        );
    }

    #[test]
    fn a_setting_wins_below_the_files_and_is_capped_above_them_with_a_reason() {
        let asked = |pending, streams| Requested { pending, streams };
        let (b, capped) = budget(1_024, asked(Some(100), Some(300)), true);
        assert_eq!(
            b,
            ConnectionBudget {
                pending: 100,
                streams: 300
            }
        );
        assert!(capped.is_empty());

        let (b, capped) = budget(1_024, asked(None, Some(20_000)), true);
        assert_eq!(
            b,
            ConnectionBudget {
                pending: 180,
                streams: 540
            }
        );
        assert_eq!(
            capped,
            [
                "ORDERCAST_MAX_CONNECTIONS=20000 is more than the open-files limit (1024) allows; using 540"
            ]
        );

        let (b, capped) = budget(1_024, asked(Some(5_000), None), true);
        assert_eq!(
            b,
            ConnectionBudget {
                pending: 719,
                streams: 1
            }
        );
        assert_eq!(capped.len(), 1);
    }

    #[test]
    fn too_few_files_stop_the_process_with_the_reason() {
        let error = ConnectionBudget::from_files(300, &headroom(true), Requested::default(), true)
            .unwrap_err()
            .to_string();
        assert!(error.contains("open-files limit (300)"), "{error}");
        assert!(error.contains("ulimit -n"), "{error}");
    }
}
