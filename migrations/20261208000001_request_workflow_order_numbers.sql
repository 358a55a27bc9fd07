-- Issue #20: the full request workflow, and order numbers a guest or a cook
-- can say out loud.

-- Requests: open → acknowledged → in_progress ↔ on_hold → resolved | cancelled.
-- Existing rows are all in states the new check keeps.
ALTER TABLE waiter_requests DROP CONSTRAINT waiter_requests_status_check;
ALTER TABLE waiter_requests ADD CONSTRAINT waiter_requests_status_check CHECK (status IN
    ('open', 'acknowledged', 'in_progress', 'on_hold', 'resolved', 'cancelled'));
DROP INDEX waiter_requests_open;
CREATE INDEX waiter_requests_open ON waiter_requests (restaurant_id, created_at)
    WHERE status NOT IN ('resolved', 'cancelled');

-- Order numbers are rolling per restaurant: 1, 2, … 9999, then 1 again
-- (restaurants have no time zone here, so no "daily" reset). The counter
-- counts every order the restaurant has had; it is bumped in the statement
-- that takes the seqs, under the same row lock, so concurrent creates on any
-- number of api replicas get distinct, consecutive numbers.
ALTER TABLE restaurants ADD COLUMN orders_created bigint NOT NULL DEFAULT 0;
ALTER TABLE orders ADD COLUMN number integer;

-- Existing orders are numbered in the order they were created, and the
-- counter continues after them. Events already written keep their data
-- (no number); the order resource and every later event carry it.
WITH n AS (
    SELECT id, row_number() OVER (PARTITION BY restaurant_id ORDER BY created_at, id) AS k
    FROM orders
)
UPDATE orders o SET number = ((n.k - 1) % 9999 + 1)::integer FROM n WHERE n.id = o.id;
UPDATE restaurants r SET orders_created = c.n
FROM (SELECT restaurant_id, count(*) AS n FROM orders GROUP BY restaurant_id) c
WHERE c.restaurant_id = r.id;
ALTER TABLE orders ALTER COLUMN number SET NOT NULL;

-- During a rolling upgrade, api replicas of the previous version still
-- insert orders without a number: number those here, from the same counter
-- under the same row lock (their statement already holds it). The current
-- version always sets the number itself, so this never fires for it.
CREATE FUNCTION number_order() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE restaurants SET orders_created = orders_created + 1 WHERE id = NEW.restaurant_id
    RETURNING ((orders_created - 1) % 9999 + 1)::integer INTO NEW.number;
    RETURN NEW;
END $$;
CREATE TRIGGER number_order BEFORE INSERT ON orders
    FOR EACH ROW WHEN (NEW.number IS NULL) EXECUTE FUNCTION number_order();
