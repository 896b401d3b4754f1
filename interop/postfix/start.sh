#!/usr/bin/env bash
# (Re)configure and start the private Postfix instance; returns once all
# three listeners accept connections, or fails with the log tail.
set -euo pipefail
# shellcheck source=interop/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"

require_root
here="$(dirname "${BASH_SOURCE[0]}")"

# A leftover instance from an aborted run would serve a stale config.
bash "$here/stop.sh"

ports=("$POSTFIX_SUBMISSION_PORT" "$POSTFIX_SUBMISSIONS_PORT" "$POSTFIX_CLEARTEXT_PORT"
    "$POSTFIX_DKIM_PORT" "$POSTFIX_DKIM_7BIT_PORT")
for p in "${ports[@]}"; do
    # Postfix silently wraps out-of-range ports modulo 65536.
    if ! [[ "$p" =~ ^[0-9]+$ ]] || ((p < 1 || p > 65535)); then
        die "invalid port '$p'"
    fi
    # Someone else's listener would make every test talk to the wrong server.
    port_listening "$POSTFIX_HOST" "$p" && die "port $POSTFIX_HOST:$p already in use (set INTEROP_POSTFIX_*_PORT)"
done

bash "$here/configure.sh"

# Each run starts with empty mailboxes and an empty queue, so tests never
# match a message left over from an earlier run.
find "$POSTFIX_MAIL_BASE" -mindepth 1 -delete
if [[ -d "$POSTFIX_DIR/spool/deferred" ]]; then
    postsuper -c "$POSTFIX_CONF" -d ALL >/dev/null 2>&1 || true
fi
log "starting postfix ($POSTFIX_CONF)"
# postfix(1) runs postfix-script: it creates missing queue dirs and fixes
# their ownership before launching master(8) in the background.
if ! postfix -c "$POSTFIX_CONF" start >>"$INTEROP_LOG_DIR/postfix-start.log" 2>&1; then
    maybe_dump_logs
    die "postfix start failed"
fi
for p in "${ports[@]}"; do
    if ! wait_for_listen "$POSTFIX_HOST" "$p" 20; then
        maybe_dump_logs
        die "postfix is not listening on $POSTFIX_HOST:$p"
    fi
done
log "postfix up on $POSTFIX_HOST:{$POSTFIX_SUBMISSION_PORT,$POSTFIX_SUBMISSIONS_PORT,$POSTFIX_CLEARTEXT_PORT,$POSTFIX_DKIM_PORT,$POSTFIX_DKIM_7BIT_PORT}"
