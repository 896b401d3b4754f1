#!/usr/bin/env bash
# Stop both servers and drop the JSON description so a later pytest run fails
# with "run make interop" instead of timing out against dead ports.
set -euo pipefail
# shellcheck source=interop/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

rc=0
bash "$INTEROP_ROOT/aiosmtpd/stop.sh" || rc=1
bash "$INTEROP_ROOT/postfix/stop.sh" || rc=1
bash "$INTEROP_ROOT/opendkim/stop.sh" || rc=1
rm -f "$INTEROP_JSON"
exit "$rc"
