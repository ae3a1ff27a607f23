#!/usr/bin/env bash
# The embedded default: SQLite and a filesystem broker in var/, the web server on
# 127.0.0.1:8000 and a separate Celery worker process (with beat for the periodic checks).
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=.venv/bin
export DJANGO_SETTINGS_MODULE=migrator.settings
# Test servers on this machine (Dovecot, a local EWS) are fair game here; production refuses them.
export ALLOW_LOCAL_ENDPOINTS="${ALLOW_LOCAL_ENDPOINTS:-1}"

$BIN/python manage.py migrate --noinput
$BIN/python manage.py collectstatic --noinput -v0
$BIN/python manage.py ensure_admin

$BIN/celery -A migrator worker --beat --loglevel=INFO --concurrency="${WORKER_CONCURRENCY:-2}" &
WORKER=$!
trap 'kill $WORKER 2>/dev/null; wait $WORKER 2>/dev/null' EXIT INT TERM

echo "mailferry: http://127.0.0.1:8000/ (worker pid $WORKER; Ctrl-C stops both)"
$BIN/gunicorn migrator.wsgi --bind "${BIND:-127.0.0.1:8000}" --workers 2 --access-logfile -
