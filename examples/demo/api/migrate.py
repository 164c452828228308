"""The demo's schema migration, run by `envci seed` as a Job with the API's own image.

It adds what the API's current code needs on top of the seeded schema (seed/schema.sql): a
created_at column and an index on it. Every statement is idempotent and all of them run in one
transaction, so a retried Job or a re-run pipeline converges instead of failing half-way.
Connection settings are the API's (DATABASE_URL or PG* variables).
"""

from __future__ import annotations

import os
import sys

import psycopg

STATEMENTS = (
    "ALTER TABLE items ADD COLUMN IF NOT EXISTS created_at timestamptz NOT NULL DEFAULT now()",
    "CREATE INDEX IF NOT EXISTS items_created_at_idx ON items (created_at)",
    "CREATE TABLE IF NOT EXISTS schema_migrations (version text PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())",
    "INSERT INTO schema_migrations (version) VALUES ('0002_items_created_at') ON CONFLICT DO NOTHING",
)


def main() -> int:
    try:
        with psycopg.connect(os.environ.get("DATABASE_URL", ""), connect_timeout=10, application_name="demo-migrate") as conn:
            if conn.execute("SELECT to_regclass('public.items')").fetchone() == (None,):
                print("migrate: table items does not exist; load seed/schema.sql first", file=sys.stderr)
                return 1
            with conn.transaction():
                for sql in STATEMENTS:
                    conn.execute(sql)
                    print(f"migrate: {sql}")
            versions = [r[0] for r in conn.execute("SELECT version FROM schema_migrations ORDER BY version")]
    except psycopg.Error as e:
        print(f"migrate: {type(e).__name__}: {str(e).strip().splitlines()[0] if str(e).strip() else ''}", file=sys.stderr)
        return 1
    print(f"migrate: done; applied versions: {', '.join(versions)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
