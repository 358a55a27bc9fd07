-- no-transaction
-- A guest's resume reads only its table session's events (Store::
-- session_events_after) instead of the restaurant's whole history. Built
-- concurrently so a large events table keeps taking writes meanwhile. An
-- index is local to its database: replication (publications with row
-- filters, REPLICA IDENTITY FULL) is unaffected, and every region builds
-- its own with this migration.
CREATE INDEX CONCURRENTLY IF NOT EXISTS events_by_session
    ON events (restaurant_id, (audience->>'session_id'), seq)
    WHERE audience->>'session_id' IS NOT NULL;
