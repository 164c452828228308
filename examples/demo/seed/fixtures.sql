-- Fixtures the tests assert on (tests/test_api.py and api/smoke.py name them): three items, ids 1-3.
INSERT INTO items (name, price_cents) VALUES
    ('espresso', 250),
    ('flat white', 380),
    ('cortado', 320)
ON CONFLICT (name) DO NOTHING;
