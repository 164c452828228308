#!/usr/bin/env bash
# What the seed tests need at CI time: a PostgreSQL server (started per test session from a temp
# directory) with its client programs (pg_dump and pg_restore, for the restore tests), the psycopg
# driver and moto's S3-compatible server. Idempotent and quiet.
set -euo pipefail

if ! command -v initdb >/dev/null 2>&1 && ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then
  echo "seed: installing the Debian postgresql package"
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends postgresql >/dev/null
  # The package starts a system cluster; the tests run their own, so stop it if it is running.
  $SUDO service postgresql stop >/dev/null 2>&1 || true
else
  echo "seed: PostgreSQL server binaries present"
fi
if ! command -v pg_dump >/dev/null 2>&1 || ! command -v pg_restore >/dev/null 2>&1; then
  echo "seed: installing the Debian postgresql-client package"
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends postgresql-client >/dev/null
fi

missing=()
python3 -c "import psycopg" 2>/dev/null || missing+=("psycopg[binary]>=3.1")
python3 -c "import moto.server, flask" 2>/dev/null || missing+=("moto[server]>=5")
python3 -c "import boto3" 2>/dev/null || missing+=("boto3>=1.34")
if [ ${#missing[@]} -gt 0 ]; then
  echo "seed: pip install ${missing[*]}"
  python3 -m pip install -q "${missing[@]}"
else
  echo "seed: psycopg, moto[server] and boto3 present"
fi
