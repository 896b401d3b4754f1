#!/usr/bin/env bash
# (Re)configure and start OpenDKIM as a verifying milter for the Postfix DKIM
# listeners; returns once it listens, or fails with the log tail.
set -euo pipefail
# shellcheck source=interop/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"

require_root
here="$(dirname "${BASH_SOURCE[0]}")"
bash "$here/stop.sh"
port_listening 127.0.0.1 "$OPENDKIM_PORT" &&
    die "port 127.0.0.1:$OPENDKIM_PORT already in use (set INTEROP_OPENDKIM_PORT)"
bash "$here/configure.sh"

logf="$INTEROP_LOG_DIR/opendkim.log"
: >"$logf"
# Check the configuration first: opendkim's own complaint is clearer than a
# milter that never answers.
if ! opendkim -n -x "$OPENDKIM_DIR/opendkim.conf" >>"$logf" 2>&1; then
    maybe_dump_logs
    die "opendkim refused its configuration"
fi
log "starting opendkim (verifier) on 127.0.0.1:$OPENDKIM_PORT"
# It puts itself in the background and writes PidFile; -l would send its log
# to syslog, which CI containers lack: startup errors land in opendkim.log.
if ! opendkim -x "$OPENDKIM_DIR/opendkim.conf" </dev/null >>"$logf" 2>&1; then
    maybe_dump_logs
    die "opendkim did not start"
fi
if ! wait_for_listen 127.0.0.1 "$OPENDKIM_PORT" 20; then
    maybe_dump_logs
    die "opendkim is not listening on 127.0.0.1:$OPENDKIM_PORT"
fi
log "opendkim up (pid $(cat "$OPENDKIM_DIR/opendkim.pid" 2>/dev/null || echo '?'))"
