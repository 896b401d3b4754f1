#!/usr/bin/env bash
# Install, start both servers and write the JSON description; leaves them
# running. For iterating on a test by hand:
#   bash interop/up.sh && .venv/bin/python -m pytest -m interop tests/interop -k NAME
#   bash interop/down.sh
# run.sh does exactly this around a full pytest run.
set -euo pipefail
# shellcheck source=interop/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

require_root
t0=$SECONDS
bash "$INTEROP_ROOT/setup.sh"

# Start from empty logs so the tails printed on failure belong to this run.
mkdir -p "$INTEROP_LOG_DIR"
rm -f "$INTEROP_LOG_DIR"/*.log "$INTEROP_JSON"

# The milter first: Postfix's DKIM listeners tempfail every message without it.
bash "$INTEROP_ROOT/opendkim/start.sh"
bash "$INTEROP_ROOT/postfix/start.sh"
bash "$INTEROP_ROOT/aiosmtpd/start.sh"
# Probe what the servers really advertise; a failing probe means a broken
# server, so it aborts like a failed start.
"$PYTHON" "$INTEROP_ROOT/describe.py" "$INTEROP_JSON" >&2 || {
    maybe_dump_logs
    die "probing the servers failed"
}
log "servers ready in $((SECONDS - t0))s; description in $INTEROP_JSON"
