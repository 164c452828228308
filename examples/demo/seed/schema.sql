-- The demo's schema, loaded by `envci seed` (the sql step) through a port-forward to the db.
-- IF NOT EXISTS: the history table envci keeps makes a re-run skip this file, and a database
-- restored from elsewhere may already have the table.
CREATE TABLE IF NOT EXISTS items (
    id          bigserial PRIMARY KEY,
    name        text NOT NULL UNIQUE CHECK (length(name) BETWEEN 1 AND 200),
    price_cents integer NOT NULL CHECK (price_cents >= 0)
);
