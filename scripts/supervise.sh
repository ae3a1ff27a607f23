# supervise LABEL COMMAND...: run COMMAND again whenever it exits (a crash, a broker it gave up
# on), after RESTART_DELAY seconds (5), as compose's `restart: unless-stopped` does. SIGTERM
# stops the command, waits for it (a Celery worker finishes its batch) and ends the loop.
# Sourced by scripts/run.sh; run it in the background.
#
# COMMAND runs in a process group of its own: a Celery worker killed outright (SIGKILL, out of
# memory) leaves its pool processes and its embedded beat behind, and a second beat would run
# every periodic task twice. Whatever is left in the group goes with it.
supervise() {
    local label=$1 child="" status
    shift
    trap 'trap - TERM; _supervise_stop "$child"; exit 0' TERM
    while true; do
        setsid "$@" &
        child=$!
        wait "$child" && status=0 || status=$?
        kill -KILL -- -"$child" 2>/dev/null || true
        echo "mailferry: $label exited with status $status; starting it again in ${RESTART_DELAY:-5} s" >&2
        sleep "${RESTART_DELAY:-5}" &
        wait $! || true
    done
}

_supervise_stop() {
    [ -n "$1" ] || return 0
    kill -TERM "$1" 2>/dev/null || true
    wait "$1" 2>/dev/null || true
    kill -KILL -- -"$1" 2>/dev/null || true
}
