# supervise LABEL COMMAND...: run COMMAND again whenever it exits (a crash, a broker it gave up
# on), after RESTART_DELAY seconds (5), as compose's `restart: unless-stopped` does. SIGTERM
# stops the command, waits for it (a Celery worker finishes its batch) and ends the loop.
# Sourced by scripts/run.sh; run it in the background.
supervise() {
    local label=$1 child="" status
    shift
    trap 'trap - TERM; [ -n "$child" ] && kill -TERM "$child" 2>/dev/null; wait; exit 0' TERM
    while true; do
        "$@" &
        child=$!
        wait "$child" && status=0 || status=$?
        child=""
        echo "mailferry: $label exited with status $status; starting it again in ${RESTART_DELAY:-5} s" >&2
        sleep "${RESTART_DELAY:-5}" &
        wait $! || true
    done
}
