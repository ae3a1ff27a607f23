#!/usr/bin/env bash
# Make sure a PostgreSQL server answers on 127.0.0.1:5432 with trust auth for user postgres,
# and that it has the database the tests' DATABASE_URL names (they create test_mailferry).
set -euo pipefail

answers() { pg_isready -q -h 127.0.0.1 -p 5432 2>/dev/null; }

if ! answers; then
  version=$(ls /etc/postgresql 2>/dev/null | sort -n | tail -1 || true)
  if [ -n "$version" ] && command -v pg_ctlcluster >/dev/null; then
    echo "postgres: starting cluster $version/main"
    pg_ctlcluster --skip-systemctl-redirect "$version" main start || true
  fi
fi
if ! answers; then
  # No cluster to start: make a throwaway one with trust auth.
  bindir=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)
  data=/tmp/mailferry-pg
  rm -rf "$data" && mkdir -p "$data" && chown postgres "$data"
  su postgres -c "$bindir/initdb -D $data -A trust -U postgres" >/dev/null
  su postgres -c "$bindir/pg_ctl -D $data -o '-h 127.0.0.1 -p 5432 -k /tmp' -l $data/log -w start"
fi
for _ in $(seq 1 30); do
  answers && break
  sleep 1
done
if ! answers; then
  echo "postgres: nothing answers on 127.0.0.1:5432" >&2
  exit 1
fi
if ! psql -h 127.0.0.1 -U postgres -tAc "SELECT 1 FROM pg_database WHERE datname = 'mailferry'" \
  | grep -q 1; then
  createdb -h 127.0.0.1 -U postgres mailferry
fi
