#!/usr/bin/env bash
# One-shot interop run: install, start Postfix + aiosmtpd, describe them in
# $INTEROP_DIR/servers.json, run `pytest -m interop tests/interop -q` (extra
# args are passed through), and always stop the servers. Exit code = pytest's.
#
# A server that fails to start is a hard failure with its log tail printed:
# a silently skipped interop suite is worse than a red build.
set -euo pipefail
# shellcheck source=interop/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

require_root
cd "$REPO_ROOT"
t0=$SECONDS

# shellcheck disable=SC2317  # invoked via trap
on_exit() {
    local rc=$?
    trap - EXIT INT TERM
    if ((rc != 0)); then
        dump_logs
        log "FAILED (exit $rc) after $((SECONDS - t0))s; logs in $INTEROP_LOG_DIR"
    fi
    # Never let a failing stop mask the run's own exit status.
    bash "$INTEROP_ROOT/down.sh" || log "warning: stopping the servers failed"
    exit "$rc"
}
trap on_exit EXIT
export INTEROP_DEFER_LOG_DUMP=1
# Turn signals into a normal exit so the EXIT trap tears everything down.
trap 'exit 130' INT
trap 'exit 143' TERM

bash "$INTEROP_ROOT/up.sh"

export SMTPSUBMIT_INTEROP_JSON="$INTEROP_JSON"
rc=0
"$PYTHON" -m pytest -m interop tests/interop -q "$@" || rc=$?
log "pytest exit $rc; total $((SECONDS - t0))s"
exit "$rc"
