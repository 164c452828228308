-- Tables of the shop; safe to run once per database.
CREATE TABLE products (
    id serial PRIMARY KEY,
    sku text NOT NULL,
    name text NOT NULL,
    price_cents integer NOT NULL CHECK (price_cents >= 0)
);

CREATE FUNCTION product_count() RETURNS bigint AS $$
    SELECT count(*) FROM products;  -- a semicolon inside a function body
$$ LANGUAGE sql;
