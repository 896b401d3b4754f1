# shellcheck shell=bash
# Shared settings for the interop scripts. Sourced, never executed.
#
# Every knob is an environment variable with a default so CI and developers can
# move ports/paths around (e.g. two checkouts on one box) without editing files.

INTEROP_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO_ROOT="$(cd "$INTEROP_ROOT/.." && pwd)"

# All state lives under one throwaway directory; deleting it resets everything.
export INTEROP_DIR="${INTEROP_DIR:-/tmp/smtpsubmit-interop}"
export INTEROP_LOG_DIR="$INTEROP_DIR/logs"
export INTEROP_TLS_DIR="$INTEROP_DIR/tls"
export INTEROP_CA_PEM="$INTEROP_TLS_DIR/ca.pem"
export INTEROP_JSON="${SMTPSUBMIT_INTEROP_JSON:-$INTEROP_DIR/servers.json}"

# Postfix private instance (config, queue, data, maildirs all under this).
export POSTFIX_DIR="$INTEROP_DIR/postfix"
export POSTFIX_CONF="$POSTFIX_DIR/etc"
export POSTFIX_MAIL_BASE="$POSTFIX_DIR/mail"
export POSTFIX_HOST=127.0.0.1
# Non-default ports: the box's own MTA (if any) keeps 25/465/587.
export POSTFIX_SUBMISSION_PORT="${INTEROP_POSTFIX_SUBMISSION_PORT:-10587}"
export POSTFIX_SUBMISSIONS_PORT="${INTEROP_POSTFIX_SUBMISSIONS_PORT:-10465}"
# Cleartext port that still offers AUTH: lets tests prove the client refuses
# to send credentials without TLS. Nothing else should ever use it.
export POSTFIX_CLEARTEXT_PORT="${INTEROP_POSTFIX_CLEARTEXT_PORT:-10025}"

# Two more Postfix listeners (STARTTLS, same AUTH policy) pass each message to
# OpenDKIM, a verifying milter that adds Authentication-Results; the second
# one hides 8BITMIME and SMTPUTF8, so clients must send 7-bit content.
export POSTFIX_DKIM_PORT="${INTEROP_POSTFIX_DKIM_PORT:-10588}"
export POSTFIX_DKIM_7BIT_PORT="${INTEROP_POSTFIX_DKIM_7BIT_PORT:-10589}"
export OPENDKIM_DIR="$INTEROP_DIR/opendkim"
export OPENDKIM_PORT="${INTEROP_OPENDKIM_PORT:-10891}"
export DKIM_KEY_DIR="$INTEROP_DIR/dkim"
export DKIM_RSA_SELECTOR=rsa2026
export DKIM_ED25519_SELECTOR=ed2026
export DKIM_AUTHSERV_ID=opendkim.interop.test

# aiosmtpd: port 0 means "pick a free one at start" (written to a port file).
export AIOSMTPD_DIR="$INTEROP_DIR/aiosmtpd"
export AIOSMTPD_HOST=127.0.0.1
export AIOSMTPD_PORT="${INTEROP_AIOSMTPD_PORT:-0}"

# Test identity. Fixed by default so a failing run can be replayed by hand
# with swaks; overridable if someone wants to fuzz the credentials.
export INTEROP_DOMAIN=example.test
export INTEROP_USER="${INTEROP_USER:-alice}"
export INTEROP_PASSWORD="${INTEROP_PASSWORD:-interop-Secret-42}"
# Named Postfix mailboxes (everything else in the domain goes to "catchall").
export INTEROP_MAILBOXES="$INTEROP_USER bob carol"
export INTEROP_REJECTED_RCPT="rejected@$INTEROP_DOMAIN"
export INTEROP_TEMPFAIL_RCPT="tempfail@$INTEROP_DOMAIN"
# >= 30 MB as required by the large-message tests; same for both servers.
export INTEROP_MESSAGE_SIZE_LIMIT=52428800

# Python that has aiosmtpd + pytest (the Makefile's venv unless overridden).
if [[ -z "${PYTHON:-}" ]]; then
    if [[ -x "$REPO_ROOT/.venv/bin/python" ]]; then
        PYTHON="$REPO_ROOT/.venv/bin/python"
    else
        PYTHON=python3
    fi
fi
export PYTHON

log() { printf '[interop] %s\n' "$*" >&2; }
die() { printf '[interop] ERROR: %s\n' "$*" >&2; exit 1; }

require_root() {
    # Postfix's master must start as root (it binds, then drops to mail_owner).
    [[ "$(id -u)" -eq 0 ]] || die "must run as root (Postfix master needs it)"
}

# Is anything LISTENing on port $2 where it would clash with 127.0.0.1:$2?
# Reads the kernel's socket table instead of connecting: a probe connection
# would spam the server logs we print on failure. Linux-only, like the rest.
port_listening() {
    local port_hex
    port_hex="$(printf '%04X' "$2")"
    # local_address is HEXIP:HEXPORT, st 0A = LISTEN; 0100007F = 127.0.0.1,
    # all zeros = wildcard (v4 or dual-stack v6).
    awk -v p=":$port_hex" '
        $4 == "0A" && ($2 == "0100007F" p || $2 ~ ("^0+" p "$")) { found = 1 }
        END { exit !found }' /proc/net/tcp /proc/net/tcp6 2>/dev/null
}

# Wait until port $2 is listening, or give up after $3 seconds.
wait_for_listen() {
    local port=$2 timeout=${3:-20} deadline
    deadline=$((SECONDS + timeout))
    while ((SECONDS < deadline)); do
        port_listening "$1" "$port" && return 0
        sleep 0.1
    done
    return 1
}

# Print the tail of every log we own; called on any failure so CI output is
# enough to diagnose without shell access to the runner.
dump_logs() {
    local f
    [[ -d "$INTEROP_LOG_DIR" ]] || return 0
    for f in "$INTEROP_LOG_DIR"/*.log; do
        [[ -s "$f" ]] || continue
        printf '\n===== tail -n 60 %s =====\n' "$f" >&2
        tail -n 60 "$f" >&2 || true
    done
}

# For the start scripts: useful when they run alone, but under run.sh
# (INTEROP_DEFER_LOG_DUMP set) its exit trap prints the tails, once.
maybe_dump_logs() {
    [[ -n "${INTEROP_DEFER_LOG_DUMP:-}" ]] || dump_logs
}
