-- Ordercast's durable record. PostgreSQL is the source of truth; Redis
-- streams only carry a recent copy of the events below.
--
-- No foreign keys on the hot tables, on purpose: every write takes the
-- restaurant's next seq (`UPDATE restaurants … RETURNING`) in the same
-- transaction, which fails for an unknown restaurant and rolls everything
-- back, and items are only ever inserted in the statement that inserts
-- their order. Foreign keys would re-check that with one query per row
-- (about a fifth of PostgreSQL's CPU per order; docs/performance.md).

CREATE TABLE restaurants (
    id          uuid PRIMARY KEY,
    -- No CHECK constraints: every write updates this row, and PostgreSQL
    -- re-evaluates a table's checks on each update. The api validates.
    name        text NOT NULL,
    chain_id    uuid,
    region      text,
    -- Last event sequence number handed out. Bumped inside every write
    -- transaction; its row lock orders the writers of one restaurant.
    last_seq    bigint NOT NULL DEFAULT 0,
    created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX restaurants_chain ON restaurants (chain_id) WHERE chain_id IS NOT NULL;

CREATE TABLE orders (
    id             uuid PRIMARY KEY,
    restaurant_id  uuid NOT NULL,
    status         text NOT NULL CHECK (status IN
                   ('new', 'accepted', 'in_progress', 'ready', 'served', 'paid', 'cancelled', 'rejected')),
    version        integer NOT NULL DEFAULT 1,
    table_label    text,
    session_id     text,
    waiter_id      text,
    channel        text NOT NULL,
    notes          text,
    reason         text,
    total_cents    bigint NOT NULL CHECK (total_cents >= 0),
    created_at     timestamptz NOT NULL,
    updated_at     timestamptz NOT NULL
);
CREATE INDEX orders_open ON orders (restaurant_id, created_at)
    WHERE status NOT IN ('paid', 'cancelled', 'rejected');
CREATE INDEX orders_by_restaurant ON orders (restaurant_id, created_at);
CREATE INDEX orders_by_session ON orders (restaurant_id, session_id) WHERE session_id IS NOT NULL;
CREATE INDEX orders_by_waiter ON orders (restaurant_id, waiter_id) WHERE waiter_id IS NOT NULL;

CREATE TABLE order_items (
    order_id          uuid NOT NULL,
    id                uuid NOT NULL,
    position          smallint NOT NULL,
    sku               text NOT NULL,
    name              text NOT NULL,
    quantity          integer NOT NULL CHECK (quantity > 0),
    unit_price_cents  bigint NOT NULL CHECK (unit_price_cents >= 0),
    station           text,
    notes             text,
    status            text NOT NULL CHECK (status IN ('queued', 'cooking', 'ready', 'served', 'cancelled')),
    PRIMARY KEY (order_id, id)
);

CREATE TABLE waiter_requests (
    id             uuid PRIMARY KEY,
    restaurant_id  uuid NOT NULL,
    kind           text NOT NULL CHECK (kind IN ('call_waiter', 'bill', 'water', 'other')),
    table_label    text NOT NULL,
    session_id     text,
    waiter_id      text,
    message        text,
    status         text NOT NULL CHECK (status IN ('open', 'acknowledged', 'resolved', 'cancelled')),
    version        integer NOT NULL DEFAULT 1,
    created_at     timestamptz NOT NULL,
    updated_at     timestamptz NOT NULL
);
CREATE INDEX waiter_requests_open ON waiter_requests (restaurant_id, created_at)
    WHERE status IN ('open', 'acknowledged');

-- One row per event; (restaurant_id, seq) is the cursor every transport uses.
CREATE TABLE events (
    restaurant_id    uuid NOT NULL,
    seq              bigint NOT NULL,
    type             text NOT NULL,
    audience         jsonb NOT NULL,
    data             jsonb NOT NULL,
    previous_status  text,
    item_id          uuid,
    trace            text,
    created_at       timestamptz NOT NULL,
    PRIMARY KEY (restaurant_id, seq)
);
-- Retention deletes by age; rows arrive in time order, so BRIN is enough.
CREATE INDEX events_created_at ON events USING brin (created_at);

-- The outbox: events committed but not yet known to be in their Redis
-- stream. A row is inserted with its event and deleted once the XADD is
-- acknowledged. A narrow table instead of a `published_at` column on
-- events: marking an event published then costs a small delete, not a
-- second copy of the ~1 KB event row (measured in docs/performance.md).
CREATE TABLE outbox (
    restaurant_id  uuid NOT NULL,
    seq            bigint NOT NULL,
    created_at     timestamptz NOT NULL,
    PRIMARY KEY (restaurant_id, seq)
);
CREATE INDEX outbox_created_at ON outbox (created_at);

CREATE TABLE idempotency_keys (
    restaurant_id    uuid NOT NULL,
    key              text NOT NULL,
    -- SHA-256 of method, path and body: the same key with another request is refused.
    request_hash     bytea NOT NULL,
    response_status  smallint,
    response_body    jsonb,
    created_at       timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (restaurant_id, key)
);
CREATE INDEX idempotency_keys_created_at ON idempotency_keys USING brin (created_at);
