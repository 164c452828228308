-- Not idempotent on purpose: a second run would double the rows unless envci skips it.
INSERT INTO products (sku, name, price_cents) VALUES
    ('A-1', 'Kettle; electric', 2999),
    ('B-2', 'Teapot', 1999),
    ('C-3', 'Mug', 499);
