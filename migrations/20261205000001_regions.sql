-- Regions (docs/multi-region.md). A restaurant has one home region,
-- `restaurants.region`, where its seq is assigned and its writes commit.
-- Its rows reach the chain's other regions by PostgreSQL logical
-- replication: each region publishes, per peer, the rows homed here that
-- may reach that peer. A row filter cannot join, so every replicated row
-- carries its restaurant's `region` and `reach`, copied in the statement
-- that writes it.
--
-- `reach`: the other regions this restaurant's rows may be stored in.
-- NULL: every region of the deployment; '{}': the home region only.
-- A row written before the deployment named its regions has a NULL
-- `region` and is never replicated.

ALTER TABLE restaurants ADD COLUMN reach text[];
ALTER TABLE events ADD COLUMN region text, ADD COLUMN reach text[];
ALTER TABLE orders ADD COLUMN region text, ADD COLUMN reach text[];
ALTER TABLE order_items ADD COLUMN region text, ADD COLUMN reach text[];
ALTER TABLE waiter_requests ADD COLUMN region text, ADD COLUMN reach text[];

-- A publication that replicates updates needs its row filter's columns in
-- the replica identity. FULL costs WAL only when wal_level is logical (a
-- deployment with peers); the subscriber still finds rows by primary key.
-- Events are never updated, and deletes (retention) are not replicated:
-- every region expires its own copy.
ALTER TABLE restaurants REPLICA IDENTITY FULL;
ALTER TABLE orders REPLICA IDENTITY FULL;
ALTER TABLE order_items REPLICA IDENTITY FULL;
ALTER TABLE waiter_requests REPLICA IDENTITY FULL;

-- The region this database belongs to, written by the first `migrate`
-- that names one. A process configured for another region refuses to
-- start against it.
CREATE TABLE cell (
    only_row  boolean PRIMARY KEY DEFAULT true CHECK (only_row),
    region    text NOT NULL
);

-- Each region's heartbeat, written once a second by its api replicas and
-- replicated to its peers with the other rows, so a beat arriving means
-- everything its region committed before it has arrived too. `received_at`
-- is this database's clock when the beat was applied (peers' rows only):
-- how long a peer has been silent needs no synchronised clocks.
CREATE TABLE region_beats (
    region       text PRIMARY KEY,
    beat_at      timestamptz NOT NULL,
    received_at  timestamptz
);

CREATE FUNCTION region_beat_received() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    NEW.received_at := clock_timestamp();
    RETURN NEW;
END $$;
CREATE TRIGGER region_beat_received BEFORE INSERT OR UPDATE ON region_beats
    FOR EACH ROW EXECUTE FUNCTION region_beat_received();
-- REPLICA: fires only in the replication apply worker, never for local writes.
ALTER TABLE region_beats ENABLE REPLICA TRIGGER region_beat_received;

-- An event replicated from its home region gets an outbox row here, so this
-- region's api replicas publish it to this region's Redis as `<seq>-0` like
-- a local one; the notification wakes the relay at once (the sweeper is the
-- fallback). Local writes insert their outbox rows themselves.
ALTER TABLE outbox ADD COLUMN from_peer boolean NOT NULL DEFAULT false;
CREATE INDEX outbox_from_peer ON outbox (restaurant_id, seq) WHERE from_peer;

-- The apply worker runs with an empty search_path: the function keeps the
-- migration's.
CREATE FUNCTION event_from_peer() RETURNS trigger LANGUAGE plpgsql
SET search_path FROM CURRENT AS $$
BEGIN
    INSERT INTO outbox (restaurant_id, seq, created_at, from_peer)
        VALUES (NEW.restaurant_id, NEW.seq, now(), true) ON CONFLICT DO NOTHING;
    PERFORM pg_notify('ordercast_outbox', '');
    RETURN NULL;
END $$;
CREATE TRIGGER event_from_peer AFTER INSERT ON events
    FOR EACH ROW EXECUTE FUNCTION event_from_peer();
ALTER TABLE events ENABLE REPLICA TRIGGER event_from_peer;

-- A row from a peer never lands on a restaurant homed elsewhere. Two
-- regions can only disagree about a restaurant if an admin chose the same
-- id in both (ids may be given at creation) before either saw the other's:
-- then each region keeps its own and skips the peer's rows, with a warning
-- in PostgreSQL's log, and replication goes on instead of stopping at a
-- duplicate key. A row whose restaurant is not here yet (an initial copy
-- fills tables in any order) is accepted.
CREATE FUNCTION replicated_row_guard() RETURNS trigger LANGUAGE plpgsql
SET search_path FROM CURRENT AS $$
DECLARE
    home text;
BEGIN
    IF TG_TABLE_NAME = 'restaurants' THEN
        SELECT region INTO home FROM restaurants WHERE id = NEW.id;
        IF FOUND AND (TG_OP = 'INSERT' OR home IS DISTINCT FROM NEW.region) THEN
            RAISE WARNING 'ordercast: skipping replicated restaurant %: homed in % here, in % at the peer',
                NEW.id, home, NEW.region;
            RETURN NULL;
        END IF;
        RETURN NEW;
    ELSIF TG_TABLE_NAME = 'order_items' THEN
        SELECT region INTO home FROM orders WHERE id = NEW.order_id;
    ELSE
        SELECT region INTO home FROM restaurants WHERE id = NEW.restaurant_id;
    END IF;
    IF FOUND AND home IS DISTINCT FROM NEW.region THEN
        RAISE WARNING 'ordercast: skipping a replicated % row homed in % (here: %)',
            TG_TABLE_NAME, NEW.region, home;
        RETURN NULL;
    END IF;
    RETURN NEW;
END $$;
CREATE TRIGGER replicated_row_guard BEFORE INSERT OR UPDATE ON restaurants
    FOR EACH ROW EXECUTE FUNCTION replicated_row_guard();
CREATE TRIGGER replicated_row_guard BEFORE INSERT OR UPDATE ON orders
    FOR EACH ROW EXECUTE FUNCTION replicated_row_guard();
CREATE TRIGGER replicated_row_guard BEFORE INSERT OR UPDATE ON order_items
    FOR EACH ROW EXECUTE FUNCTION replicated_row_guard();
CREATE TRIGGER replicated_row_guard BEFORE INSERT OR UPDATE ON waiter_requests
    FOR EACH ROW EXECUTE FUNCTION replicated_row_guard();
CREATE TRIGGER replicated_row_guard BEFORE INSERT ON events
    FOR EACH ROW EXECUTE FUNCTION replicated_row_guard();
ALTER TABLE restaurants ENABLE REPLICA TRIGGER replicated_row_guard;
ALTER TABLE orders ENABLE REPLICA TRIGGER replicated_row_guard;
ALTER TABLE order_items ENABLE REPLICA TRIGGER replicated_row_guard;
ALTER TABLE waiter_requests ENABLE REPLICA TRIGGER replicated_row_guard;
ALTER TABLE events ENABLE REPLICA TRIGGER replicated_row_guard;
