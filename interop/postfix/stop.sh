#!/usr/bin/env bash
# Stop the private Postfix instance if it runs. Safe to call at any time
# (including when it was never configured) so run.sh can use it in a trap.
set -euo pipefail
# shellcheck source=interop/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"

[[ -f "$POSTFIX_CONF/main.cf" ]] || exit 0
pidfile="$POSTFIX_DIR/spool/pid/master.pid"

# Check the pid ourselves: "postfix status" would write "not running" into
# the fresh log that run.sh prints on failure.
if [[ -s "$pidfile" ]] && kill -0 "$(tr -d ' \n' <"$pidfile")" 2>/dev/null; then
    log "stopping postfix"
    postfix -c "$POSTFIX_CONF" stop >/dev/null 2>&1 || true
fi

# "postfix stop" only signals master(8); wait so the ports are free when we
# return (a quick restart would otherwise race the old listeners).
if [[ -s "$pidfile" ]]; then
    pid="$(tr -d ' \n' <"$pidfile")"
    for _ in $(seq 1 100); do
        kill -0 "$pid" 2>/dev/null || exit 0
        sleep 0.1
    done
    # Only our own master, by pid: never a broad pkill.
    log "postfix master $pid did not exit, killing it"
    kill -KILL "$pid" 2>/dev/null || true
fi
