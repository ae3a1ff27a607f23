#!/usr/bin/env bash
# The embedded default: SQLite and a filesystem broker in var/, the web server on
# 127.0.0.1:8000 and two Celery workers: one for copies (with beat for the periodic sweeps and
# checks), one for connection and login tests, discovery and DNS checks, so a test waiting on a
# server that never answers cannot hold a copy's slot.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=.venv/bin
export DJANGO_SETTINGS_MODULE=migrator.settings
# On one machine the test servers and the app live side by side on loopback; production
# (docker-compose.yml) leaves this off so tenants cannot reach the app's own services.
export ALLOW_LOCAL_ENDPOINTS="${ALLOW_LOCAL_ENDPOINTS:-1}"

$BIN/python manage.py migrate --noinput
$BIN/python manage.py collectstatic --noinput -v0
$BIN/python manage.py ensure_admin

source scripts/supervise.sh
supervise copies-worker $BIN/celery -A migrator worker --beat -Q copies -n copies@%h --loglevel=INFO \
    --concurrency="${WORKER_CONCURRENCY:-2}" &
COPIES=$!
supervise checks-worker $BIN/celery -A migrator worker -Q checks -n checks@%h --loglevel=INFO \
    --concurrency="${CHECK_CONCURRENCY:-2}" &
CHECKS=$!
trap 'kill -TERM $COPIES $CHECKS 2>/dev/null; wait $COPIES $CHECKS 2>/dev/null' EXIT INT TERM

echo "mailferry: http://127.0.0.1:8000/ (Ctrl-C stops the web server and both workers)"
$BIN/gunicorn migrator.wsgi --bind "${BIND:-127.0.0.1:8000}" --workers 2 --access-logfile -
