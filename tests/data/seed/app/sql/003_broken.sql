INSERT INTO products (sku, name, price_cents) VALUES ('D-4', 'Cup', 299);

INSERT INTO products (sku, name, price_cents)
VALUES ('E-5', 'Saucer',
        'not a number');
