#!/usr/bin/env bash
# Stop the aiosmtpd server started by start.sh (by its recorded pid only).
set -euo pipefail
# shellcheck source=interop/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"

pidfile="$AIOSMTPD_DIR/pid"
[[ -s "$pidfile" ]] || exit 0
pid="$(cat "$pidfile")"
# Guard against pid reuse: only signal it if it is still our server script.
if kill -0 "$pid" 2>/dev/null &&
    tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q aiosmtpd_server.py; then
    log "stopping aiosmtpd ($pid)"
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 1 50); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    if kill -0 "$pid" 2>/dev/null; then
        log "aiosmtpd $pid did not exit, killing it"
        kill -KILL "$pid" 2>/dev/null || true
    fi
fi
rm -f "$pidfile"
