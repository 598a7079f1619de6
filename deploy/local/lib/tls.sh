# deploy/local/lib/tls.sh — TLS and SASL endpoints for the tests: an openssl-made CA, server,
# client and expired certificates, Kafka SASL_SSL (SCRAM-SHA-512) and SSL (client certificate
# required) listeners, and ClickHouse's https_port.
# Sourced by deploy/local/services, which sets the variables it uses; not run on its own.
# shellcheck shell=bash

KAFKA_SASL_SSL_PORT="${TOKENTRAIL_KAFKA_SASL_SSL_PORT:-19095}"
KAFKA_SSL_PORT="${TOKENTRAIL_KAFKA_SSL_PORT:-19096}"
CH_HTTPS_PORT="${TOKENTRAIL_CH_HTTPS_PORT:-18443}"
TLS_DIR="$LOCAL_DIR/tls"
SCRAM_USER=tokentrail
# Written to $KAFKA_DATA once the SCRAM user exists (at format time, or added afterwards).
SCRAM_MARKER=".tokentrail-scram"

# ------------------------------------------------------------ certificates ---

# A certificate for $1 (file stem) signed by the CA in $TLS_DIR, with subject CN $2 and
# extensions $3; days $4 (default 3650).
tls_sign() {
  local stem="$1" cn="$2" ext="$3" days="${4:-3650}"
  openssl req -new -newkey rsa:2048 -nodes -keyout "$TLS_DIR/$stem.key" \
    -subj "/CN=$cn" -out "$TLS_DIR/$stem.csr" 2>/dev/null
  printf '%s\n' "$ext" >"$TLS_DIR/$stem.ext"
  openssl x509 -req -in "$TLS_DIR/$stem.csr" -CA "$TLS_DIR/ca.pem" -CAkey "$TLS_DIR/ca.key" \
    -CAcreateserial -days "$days" -sha256 -extfile "$TLS_DIR/$stem.ext" \
    -out "$TLS_DIR/$stem.pem" 2>/dev/null
}

# An expired server certificate: `openssl ca` is the 3.0 tool that takes explicit dates.
tls_sign_expired() {
  local ca="$TLS_DIR/expired-ca"
  mkdir -p "$ca"
  : >"$ca/index.txt"
  echo 1000 >"$ca/serial"
  cat >"$ca/ca.cnf" <<EOF
[ ca ]
default_ca = tt
[ tt ]
database = $ca/index.txt
new_certs_dir = $ca
serial = $ca/serial
default_md = sha256
policy = any
copy_extensions = copy
unique_subject = no
[ any ]
commonName = supplied
EOF
  openssl req -new -newkey rsa:2048 -nodes -keyout "$TLS_DIR/expired.key" -subj "/CN=localhost" \
    -addext "subjectAltName=IP:127.0.0.1,DNS:localhost" -out "$TLS_DIR/expired.csr" 2>/dev/null
  openssl ca -batch -config "$ca/ca.cnf" -cert "$TLS_DIR/ca.pem" -keyfile "$TLS_DIR/ca.key" \
    -startdate 20200101000000Z -enddate 20200201000000Z -notext \
    -in "$TLS_DIR/expired.csr" -out "$TLS_DIR/expired.pem" 2>/dev/null
}

tls_certificates() {
  [[ -s "$TLS_DIR/.done" ]] && return 0
  command -v openssl >/dev/null || die "openssl not found (apt-get install openssl)"
  rm -rf "$TLS_DIR"
  mkdir -p "$TLS_DIR"
  chmod 700 "$TLS_DIR"
  log "tls: making a test CA and certificates in $TLS_DIR"
  openssl req -x509 -newkey rsa:2048 -nodes -keyout "$TLS_DIR/ca.key" -out "$TLS_DIR/ca.pem" \
    -days 3650 -subj "/CN=tokentrail test CA" 2>/dev/null
  # A second CA nobody uses: "unknown CA" tests trust it instead of the real one.
  openssl req -x509 -newkey rsa:2048 -nodes -keyout "$TLS_DIR/other-ca.key" \
    -out "$TLS_DIR/other-ca.pem" -days 3650 -subj "/CN=tokentrail other CA" 2>/dev/null
  tls_sign server localhost "subjectAltName=IP:127.0.0.1,DNS:localhost
extendedKeyUsage=serverAuth"
  tls_sign client tokentrail-client "extendedKeyUsage=clientAuth"
  tls_sign_expired
  # Kafka reads PEM key stores: the private key (PKCS#8, unencrypted) followed by the chain.
  cat "$TLS_DIR/server.key" "$TLS_DIR/server.pem" >"$TLS_DIR/server-keystore.pem"
  openssl rand -hex 16 >"$TLS_DIR/scram-password"
  chmod 600 "$TLS_DIR"/*.key "$TLS_DIR/scram-password"
  rm -f "$TLS_DIR"/*.csr "$TLS_DIR"/*.ext
  date -u +%FT%TZ >"$TLS_DIR/.done"
}

# -------------------------------------------------------------------- Kafka ---

tls_kafka_listeners() {
  echo "listeners=PLAINTEXT://127.0.0.1:$KAFKA_PORT,CONTROLLER://127.0.0.1:$KAFKA_CONTROLLER_PORT,SASL_SSL://127.0.0.1:$KAFKA_SASL_SSL_PORT,SSL://127.0.0.1:$KAFKA_SSL_PORT"
  echo "advertised.listeners=PLAINTEXT://127.0.0.1:$KAFKA_PORT,SASL_SSL://127.0.0.1:$KAFKA_SASL_SSL_PORT,SSL://127.0.0.1:$KAFKA_SSL_PORT"
  echo "listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT,SASL_SSL:SASL_SSL,SSL:SSL"
}

tls_kafka_config() {
  cat <<EOF
# TLS (deploy/local/lib/tls.sh): PEM stores, the test CA.
ssl.keystore.type=PEM
ssl.keystore.location=$TLS_DIR/server-keystore.pem
ssl.truststore.type=PEM
ssl.truststore.location=$TLS_DIR/ca.pem
listener.name.ssl.ssl.client.auth=required
sasl.enabled.mechanisms=SCRAM-SHA-512
listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required;
EOF
}

# Extra `StorageTool format` arguments: KRaft takes SCRAM credentials when formatting.
tls_kafka_format_args() {
  echo "--add-scram"
  echo "SCRAM-SHA-512=[name=$SCRAM_USER,password=$(<"$TLS_DIR/scram-password")]"
}

tls_kafka_formatted() { echo "$(date -u +%FT%TZ)" >"$KAFKA_DATA/$SCRAM_MARKER"; }

# Storage formatted before this file existed has no SCRAM user: add it through the admin API.
tls_kafka_after_start() {
  [[ -f "$KAFKA_DATA/$SCRAM_MARKER" ]] && return 0
  log "kafka: adding SCRAM-SHA-512 user $SCRAM_USER"
  kafka_java kafka.admin.ConfigCommand --bootstrap-server "127.0.0.1:$KAFKA_PORT" --alter \
    --add-config "SCRAM-SHA-512=[password=$(<"$TLS_DIR/scram-password")]" \
    --entity-type users --entity-name "$SCRAM_USER" >&2 || die "kafka: adding the SCRAM user failed"
  tls_kafka_formatted
}

# --------------------------------------------------------------- ClickHouse ---

tls_clickhouse_config() {
  cat <<EOF
    <https_port>$CH_HTTPS_PORT</https_port>
    <openSSL>
        <server>
            <certificateFile>$TLS_DIR/server.pem</certificateFile>
            <privateKeyFile>$TLS_DIR/server.key</privateKeyFile>
            <verificationMode>none</verificationMode>
            <loadDefaultCAFile>false</loadDefaultCAFile>
            <cacheSessions>true</cacheSessions>
            <disableProtocols>sslv2,sslv3</disableProtocols>
            <preferServerCiphers>true</preferServerCiphers>
        </server>
    </openSSL>
EOF
}

# ---------------------------------------------------------------------- env ---

tls_env() {
  cat <<EOF
export TOKENTRAIL_TEST_TLS_DIR=$TLS_DIR
export TOKENTRAIL_TEST_KAFKA_SASL_SSL=127.0.0.1:$KAFKA_SASL_SSL_PORT
export TOKENTRAIL_TEST_KAFKA_SSL=127.0.0.1:$KAFKA_SSL_PORT
export TOKENTRAIL_TEST_KAFKA_SCRAM_USER=$SCRAM_USER
export TOKENTRAIL_TEST_CH_HTTPS=https://127.0.0.1:$CH_HTTPS_PORT
EOF
}
