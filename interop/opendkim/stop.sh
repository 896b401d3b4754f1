#!/usr/bin/env bash
# Stop the OpenDKIM milter started by start.sh (by its pid file only).
set -euo pipefail
# shellcheck source=interop/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"

pidfile="$OPENDKIM_DIR/opendkim.pid"
[[ -s "$pidfile" ]] || exit 0
pid="$(tr -d ' \n' <"$pidfile")"
# Guard against pid reuse: only signal it if it is still an opendkim.
if kill -0 "$pid" 2>/dev/null && [[ "$(cat "/proc/$pid/comm" 2>/dev/null)" == opendkim ]]; then
    log "stopping opendkim ($pid)"
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 1 50); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    if kill -0 "$pid" 2>/dev/null; then
        log "opendkim $pid did not exit, killing it"
        kill -KILL "$pid" 2>/dev/null || true
    fi
fi
rm -f "$pidfile"
