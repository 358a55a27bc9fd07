-- The delivery ledger (DESIGN §8): what screens have received, from the
-- receipts edges append to Redis and the api's ledger workers record here.

-- The highest seq delivered to at least one screen of a role, per
-- restaurant ("role class": kitchen, owner, waiter, customer, …).
CREATE TABLE delivery_marks (
    restaurant_id  uuid NOT NULL,
    role           text NOT NULL,
    seq            bigint NOT NULL,
    updated_at     timestamptz NOT NULL,
    PRIMARY KEY (restaurant_id, role)
);

-- When events were first delivered to a role: every advance of a mark adds
-- the range it covered (from_seq ..= to_seq) with the time of the receipt.
-- Ranges of two concurrent workers may overlap; the earliest time counts.
CREATE TABLE delivery_ranges (
    restaurant_id  uuid NOT NULL,
    role           text NOT NULL,
    from_seq       bigint NOT NULL,
    to_seq         bigint NOT NULL,
    delivered_at   timestamptz NOT NULL
);
CREATE INDEX delivery_ranges_by_restaurant ON delivery_ranges (restaurant_id, role, to_seq);
CREATE INDEX delivery_ranges_delivered_at ON delivery_ranges USING brin (delivered_at);
