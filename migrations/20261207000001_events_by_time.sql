-- no-transaction
-- A subscription may start at a time (`since=2026-12-05T10:42:07Z`):
-- Store::seq_before_time reads the smallest seq stamped at or after it.
-- With `seq` included the read is an index-only scan over the restaurant's
-- events from that time on. Built concurrently so a large events table
-- keeps taking writes meanwhile; local to each region's database, like
-- events_by_session.
CREATE INDEX CONCURRENTLY IF NOT EXISTS events_by_time
    ON events (restaurant_id, created_at) INCLUDE (seq);
