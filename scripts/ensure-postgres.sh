#!/usr/bin/env bash
# Make sure a PostgreSQL server answers on 127.0.0.1:5432 with trust auth for user postgres.
set -euo pipefail
if pg_isready -q -h 127.0.0.1 -p 5432 2>/dev/null; then
  exit 0
fi
version=$(ls /etc/postgresql 2>/dev/null | sort -n | tail -1 || true)
if [ -n "$version" ] && command -v pg_ctlcluster >/dev/null; then
  echo "postgres: starting cluster $version/main"
  pg_ctlcluster --skip-systemctl-redirect "$version" main start || true
fi
if ! pg_isready -q -h 127.0.0.1 -p 5432 2>/dev/null; then
  # No cluster to start: make a throwaway one with trust auth.
  bindir=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)
  data=/tmp/mailferry-pg
  rm -rf "$data" && mkdir -p "$data" && chown postgres "$data"
  su postgres -c "$bindir/initdb -D $data -A trust -U postgres" >/dev/null
  su postgres -c "$bindir/pg_ctl -D $data -o '-h 127.0.0.1 -p 5432 -k /tmp' -l $data/log -w start"
fi
for _ in $(seq 1 30); do
  pg_isready -q -h 127.0.0.1 -p 5432 && break
  sleep 1
done
if ! pg_isready -q -h 127.0.0.1 -p 5432; then
  echo "postgres: nothing answers on 127.0.0.1:5432" >&2
  exit 1
fi
# The database the tests' DATABASE_URL names (they create test_mailferry beside it).
psql -h 127.0.0.1 -U postgres -tAc "SELECT 1 FROM pg_database WHERE datname = 'mailferry'" \
  | grep -q 1 || createdb -h 127.0.0.1 -U postgres mailferry
