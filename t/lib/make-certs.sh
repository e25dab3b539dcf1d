#!/usr/bin/env bash
# t/lib/make-certs.sh DIR: the certificates the TLS tests use, made with
# openssl: two CAs (ca, other-ca); server certificates for localhost and
# 127.0.0.1 (server, signed by ca; other-server, by other-ca; expired, by ca,
# valid until yesterday; wrong-name, for other.test only); client
# certificates with an empty common name, as etcd's gateway wants them with
# users (client, by ca; other-client, by other-ca). Every leaf has the
# serverAuth and clientAuth usages (etcd members are both).
set -euo pipefail
dir=$1
mkdir -p "$dir"
cd "$dir"
ca() {
    openssl req -x509 -newkey rsa:2048 -nodes -keyout "$1.key" -out "$1.pem" -days 30 \
        -subj "/CN=upsync test $1" >/dev/null 2>&1
}
leaf() { # name, its CA, subject, subjectAltName, days
    openssl req -newkey rsa:2048 -nodes -keyout "$1.key" -out "$1.csr" -subj "$3" >/dev/null 2>&1
    printf 'subjectAltName=%s\nextendedKeyUsage=serverAuth,clientAuth\n' "$4" >"$1.ext"
    openssl x509 -req -in "$1.csr" -CA "$2.pem" -CAkey "$2.key" -CAcreateserial -out "$1.pem" \
        -days "$5" -extfile "$1.ext" >/dev/null 2>&1
    rm -f "$1.csr" "$1.ext"
}
ca ca
ca other-ca
leaf server ca /CN=localhost DNS:localhost,IP:127.0.0.1 30
leaf other-server other-ca /CN=localhost DNS:localhost,IP:127.0.0.1 30
leaf expired ca /CN=localhost DNS:localhost,IP:127.0.0.1 -1
leaf wrong-name ca /CN=other.test DNS:other.test 30
leaf client ca /O=upsync DNS:client 30
leaf other-client other-ca /O=upsync DNS:client 30
chmod 0644 ./*.key
