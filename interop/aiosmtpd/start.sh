#!/usr/bin/env bash
# Start interop/aiosmtpd_server.py in the background and wait until it has
# written ready.json (its chosen ports). Fails with the log tail otherwise.
set -euo pipefail
# shellcheck source=interop/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"

here="$(dirname "${BASH_SOURCE[0]}")"
bash "$here/stop.sh"

mkdir -p "$AIOSMTPD_DIR" "$INTEROP_LOG_DIR"
# Fresh capture dir per run: tests must never see a previous run's mail.
rm -rf "$AIOSMTPD_DIR/messages"
rm -f "$AIOSMTPD_DIR/ready.json"
logf="$INTEROP_LOG_DIR/aiosmtpd.log"
: >"$logf"

"$PYTHON" -c 'import aiosmtpd' 2>/dev/null ||
    die "$PYTHON cannot import aiosmtpd; run 'make interop' (it installs .[interop])"

log "starting aiosmtpd"
# setsid: own process group, so a Ctrl-C on run.sh's terminal does not kill
# it before the trap's orderly stop; stdin from /dev/null so it never blocks.
setsid "$PYTHON" -u "$INTEROP_ROOT/aiosmtpd_server.py" \
    --dir "$AIOSMTPD_DIR" --host "$AIOSMTPD_HOST" \
    --port "$AIOSMTPD_PORT" --implicit-port "${INTEROP_AIOSMTPD_IMPLICIT_PORT:-0}" \
    --cert "$INTEROP_TLS_DIR/server-chain.pem" --key "$INTEROP_TLS_DIR/server.key" \
    --user "$INTEROP_USER" --password "$INTEROP_PASSWORD" \
    --rejected "$INTEROP_REJECTED_RCPT" --tempfail "$INTEROP_TEMPFAIL_RCPT" \
    --size-limit "$INTEROP_MESSAGE_SIZE_LIMIT" \
    </dev/null >>"$logf" 2>&1 &
pid=$!
echo "$pid" >"$AIOSMTPD_DIR/pid"

deadline=$((SECONDS + 20))
until [[ -s "$AIOSMTPD_DIR/ready.json" ]]; do
    if ! kill -0 "$pid" 2>/dev/null || ((SECONDS >= deadline)); then
        maybe_dump_logs
        die "aiosmtpd did not become ready (pid $pid)"
    fi
    sleep 0.1
done
log "aiosmtpd up: $(tr -d '\n ' <"$AIOSMTPD_DIR/ready.json")"
