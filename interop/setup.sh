#!/usr/bin/env bash
# Install what the interop servers need and create the throwaway TLS material.
# Idempotent: a second run does no apt work and keeps a still-valid CA.
set -euo pipefail
# shellcheck source=interop/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

require_root

# sasl2-bin: saslpasswd2 for the sasldb; libsasl2-modules: PLAIN/LOGIN/
# CRAM-MD5/DIGEST-MD5/SCRAM plugins; libsasl2-modules-db: the sasldb auxprop.
# opendkim: the verifying milter of the DKIM listeners (see opendkim/configure.sh).
PACKAGES=(postfix sasl2-bin libsasl2-modules libsasl2-modules-db openssl opendkim)

install_packages() {
    local missing=() p
    for p in "${PACKAGES[@]}"; do
        # "install ok installed" only; a removed-but-configured package does
        # not give us the binaries.
        if [[ "$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)" != "install ok installed" ]]; then
            missing+=("$p")
        fi
    done
    ((${#missing[@]} == 0)) && return 0

    log "installing Debian packages: ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    # "No configuration" keeps the postinst from writing /etc/postfix/main.cf
    # and starting the system instance on port 25: we only want the binaries.
    echo "postfix postfix/main_mailer_type select No configuration" | debconf-set-selections
    # Fresh CI images ship without package lists; refresh once, only when
    # something is actually missing.
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

make_tls() {
    mkdir -p "$INTEROP_TLS_DIR"
    chmod 755 "$INTEROP_TLS_DIR"
    local ca_key="$INTEROP_TLS_DIR/ca.key" key="$INTEROP_TLS_DIR/server.key"
    local crt="$INTEROP_TLS_DIR/server.pem" chain="$INTEROP_TLS_DIR/server-chain.pem"

    # Reuse if present and valid for at least another day, so repeated runs
    # (and any long-lived client trust of ca.pem) stay stable.
    if [[ -s "$INTEROP_CA_PEM" && -s "$chain" && -s "$key" ]] &&
        openssl x509 -checkend 86400 -noout -in "$crt" >/dev/null 2>&1 &&
        openssl x509 -checkend 86400 -noout -in "$INTEROP_CA_PEM" >/dev/null 2>&1; then
        return 0
    fi
    log "creating throwaway CA and server certificate in $INTEROP_TLS_DIR"
    local tmp
    tmp="$(mktemp -d)"
    # Extensions chosen to satisfy strict verifiers (Python 3.13's
    # VERIFY_X509_STRICT needs AKI/SKI and a critical basicConstraints on the CA).
    cat >"$tmp/ca.cnf" <<'EOF'
[req]
distinguished_name = dn
prompt = no
x509_extensions = v3_ca
[dn]
CN = smtpsubmit interop throwaway CA
[v3_ca]
basicConstraints = critical, CA:TRUE, pathlen:0
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash
EOF
    cat >"$tmp/leaf.cnf" <<'EOF'
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature, keyEncipherment
extendedKeyUsage = serverAuth
subjectAltName = DNS:localhost, IP:127.0.0.1
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid:always
EOF
    # RSA rather than EC: Postfix's smtpd_tls_cert_file is the RSA slot and
    # every client/library on earth can do RSA.
    openssl req -x509 -new -newkey rsa:2048 -nodes -sha256 -days 30 \
        -keyout "$ca_key" -out "$INTEROP_CA_PEM" -config "$tmp/ca.cnf" 2>/dev/null
    openssl req -new -newkey rsa:2048 -nodes -sha256 -subj "/CN=localhost" \
        -keyout "$key" -out "$tmp/server.csr" 2>/dev/null
    openssl x509 -req -in "$tmp/server.csr" -CA "$INTEROP_CA_PEM" -CAkey "$ca_key" \
        -CAcreateserial -days 29 -sha256 -extfile "$tmp/leaf.cnf" -out "$crt" 2>/dev/null
    cat "$crt" "$INTEROP_CA_PEM" >"$chain"
    rm -rf "$tmp"
    # Keys are read by root-started daemons only; the CA cert is public.
    chmod 600 "$ca_key" "$key"
    chmod 644 "$INTEROP_CA_PEM" "$crt" "$chain"
}

install_packages
mkdir -p "$INTEROP_DIR" "$INTEROP_LOG_DIR"
chmod 755 "$INTEROP_DIR"
make_tls
log "setup ok"
