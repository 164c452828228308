#!/bin/bash
# Entry point of envci.local/postgres:15: initialise a data directory from the environment on first start,
# then run postgres in the foreground as the `postgres` user, listening on every address with password auth.
#
# The variables are the ones the official postgres image made familiar, so charts written for it work:
#   POSTGRES_PASSWORD  required: the superuser's password (scram-sha-256)
#   POSTGRES_USER      the superuser's name (default: postgres)
#   POSTGRES_DB        a database created on first start (default: $POSTGRES_USER)
#   PGDATA             the data directory (default: /var/lib/postgresql/data)
# Arguments are passed to postgres (e.g. `-c max_connections=50`).
set -euo pipefail

export PGDATA="${PGDATA:-/var/lib/postgresql/data}"
POSTGRES_USER="${POSTGRES_USER:-postgres}"
POSTGRES_DB="${POSTGRES_DB:-$POSTGRES_USER}"
SOCKETS=/var/run/postgresql

say() { echo "postgres-entrypoint: $*" >&2; }

if [ "$(id -u)" = 0 ]; then
  # Volumes arrive owned by root: hand them to postgres, then drop privileges for good.
  mkdir -p "$PGDATA" "$SOCKETS"
  chown postgres:postgres "$PGDATA" "$SOCKETS"
  chmod 700 "$PGDATA"
  # Some provisioners hand out a volume whose root only root may enter (the host-path one makes it
  # 0750): with PGDATA a subdirectory of it, postgres could not reach its own data.
  parent="$(dirname "$PGDATA")"
  if ! setpriv --reuid=postgres --regid=postgres --init-groups test -x "$parent"; then
    chown postgres:postgres "$parent"
  fi
  exec setpriv --reuid=postgres --regid=postgres --init-groups "$0" "$@"
fi

if [ ! -s "$PGDATA/PG_VERSION" ]; then
  if [ -z "${POSTGRES_PASSWORD:-}" ]; then
    say "error: POSTGRES_PASSWORD is not set; set it (and optionally POSTGRES_USER, POSTGRES_DB) in the container's env"
    exit 1
  fi
  say "initialising $PGDATA for user $POSTGRES_USER"
  mkdir -p "$PGDATA"
  chmod 700 "$PGDATA"
  initdb --username="$POSTGRES_USER" --pwfile=<(printf '%s\n' "$POSTGRES_PASSWORD") \
    --auth-local=trust --auth-host=scram-sha-256 --encoding=UTF8 --locale=C.UTF-8 >/dev/null
  # Connections from other pods: any address, password required.
  printf 'host all all all scram-sha-256\n' >>"$PGDATA/pg_hba.conf"
  if [ "$POSTGRES_DB" != postgres ]; then
    say "creating database $POSTGRES_DB"
    pg_ctl -D "$PGDATA" -w -o "-c listen_addresses='' -c unix_socket_directories=$SOCKETS" start >/dev/null
    psql -v ON_ERROR_STOP=1 -q -h "$SOCKETS" --username "$POSTGRES_USER" --dbname postgres -v db="$POSTGRES_DB" <<<'CREATE DATABASE :"db";'
    pg_ctl -D "$PGDATA" -w -m fast stop >/dev/null
  fi
  say "initialised"
fi

# jit=off: the image leaves out LLVM (over 100 MB) to stay small.
exec postgres -D "$PGDATA" -c listen_addresses='*' -c unix_socket_directories="$SOCKETS" -c jit=off "$@"
