# TLS to the registry: a real etcd with client certificates, the Consul
# stand-in over TLS; every certificate problem named in the log, the last
# list kept, no crash. Certificates come from t/lib/make-certs.sh.
use lib 't/lib';
use Test::Upsync;

run_tests();

__DATA__

=== TEST 1: etcd v3 over TLS with --client-cert-auth: the right CA and a client certificate; verified by IP address
--- registry: etcd
--- etcd_args: --cert-file $TEST_NGINX_CERTS/server.pem --key-file $TEST_NGINX_CERTS/server.key --trusted-ca-file $TEST_NGINX_CERTS/ca.pem --client-cert-auth
--- init
>>> run
etcdctl --endpoints=https://127.0.0.1:$TEST_NGINX_ETCD_PORT --cacert=$TEST_NGINX_CERTS/ca.pem --cert=$TEST_NGINX_CERTS/client.pem --key=$TEST_NGINX_CERTS/client.key put /upstreams/backend/127.0.0.1:$TEST_NGINX_PORT1 '{"weight":2}'
--- http_config
    upsync_ssl_trusted_certificate $TEST_NGINX_CERTS/ca.pem;
    upsync_ssl_certificate $TEST_NGINX_CERTS/client.pem;
    upsync_ssl_certificate_key $TEST_NGINX_CERTS/client.key;
    upstream backend {
        upsync https://127.0.0.1:$TEST_NGINX_ETCD_PORT/upstreams/backend/ upsync_type=etcdv3 upsync_interval=100ms upsync_timeout=6m;
        upsync_dump_path $TEST_NGINX_DIR/servers_backend.conf;
    }
    server { listen 127.0.0.1:$TEST_NGINX_PORT1; return 200 "one\n"; }
    server { listen 127.0.0.1:$TEST_NGINX_PORT2; return 200 "two\n"; }
--- config
    location / { proxy_pass http://backend; }
    location /show { upstream_show; }
    location /json { upstream_show json; }
--- steps
>>> wait /show?backend
Upstream name: backend; Backend server count: 1
        server 127.0.0.1:$TEST_NGINX_PORT1 weight=2 max_fails=2 fail_timeout=10s;

>>> run
etcdctl --endpoints=https://127.0.0.1:$TEST_NGINX_ETCD_PORT --cacert=$TEST_NGINX_CERTS/ca.pem --cert=$TEST_NGINX_CERTS/client.pem --key=$TEST_NGINX_CERTS/client.key put /upstreams/backend/127.0.0.1:$TEST_NGINX_PORT2 '{"weight":3}'
>>> wait /show?backend
Upstream name: backend; Backend server count: 2
        server 127.0.0.1:$TEST_NGINX_PORT2 weight=3 max_fails=2 fail_timeout=10s;
        server 127.0.0.1:$TEST_NGINX_PORT1 weight=2 max_fails=2 fail_timeout=10s;

>>> json /json
backend.upsync.registry = https://127.0.0.1:$TEST_NGINX_ETCD_PORT/upstreams/backend/
backend.upsync.errors = 0
>>> traffic / 50
two 30
one 20
--- no_error_log
[error]

=== TEST 2: a certificate from another CA: the error names it, the configured servers keep serving
--- registry: etcd
--- etcd_args: --cert-file $TEST_NGINX_CERTS/other-server.pem --key-file $TEST_NGINX_CERTS/other-server.key --trusted-ca-file $TEST_NGINX_CERTS/ca.pem --client-cert-auth
--- http_config
    upstream backend {
        upsync https://127.0.0.1:$TEST_NGINX_ETCD_PORT/upstreams/backend/ upsync_type=etcdv3 upsync_interval=100ms upsync_timeout=6m;
        upsync_dump_path $TEST_NGINX_DIR/servers_backend.conf;
        upsync_ssl_trusted_certificate $TEST_NGINX_CERTS/ca.pem;
        upsync_ssl_certificate $TEST_NGINX_CERTS/client.pem;
        upsync_ssl_certificate_key $TEST_NGINX_CERTS/client.key;
        server 127.0.0.1:$TEST_NGINX_PORT1;
    }
    server { listen 127.0.0.1:$TEST_NGINX_PORT1; return 200 "one\n"; }
--- config
    location / { proxy_pass http://backend; }
    location /json { upstream_show json; }
--- steps
>>> log registry 127\.0\.0\.1:\d+: TLS certificate verify error: \((20:unable to get local issuer certificate|21:unable to verify the first certificate)\), retrying in 100 ms
>>> json /json
backend.upsync.errors_by_reason.tls >= 1
backend.upsync.last_sync_successful = false
backend.peers.0.server = 127.0.0.1:$TEST_NGINX_PORT1
>>> traffic / 10
one 10

=== TEST 3: no client certificate where etcd asks for one: the handshake fails, said so
--- registry: etcd
--- etcd_args: --cert-file $TEST_NGINX_CERTS/server.pem --key-file $TEST_NGINX_CERTS/server.key --trusted-ca-file $TEST_NGINX_CERTS/ca.pem --client-cert-auth
--- http_config
    upsync_ssl_trusted_certificate $TEST_NGINX_CERTS/ca.pem;
    upstream backend {
        upsync https://127.0.0.1:$TEST_NGINX_ETCD_PORT/upstreams/backend/ upsync_type=etcdv3 upsync_interval=100ms upsync_timeout=6m;
        upsync_dump_path $TEST_NGINX_DIR/servers_backend.conf;
        server 127.0.0.1:$TEST_NGINX_PORT1;
    }
    server { listen 127.0.0.1:$TEST_NGINX_PORT1; return 200 "one\n"; }
--- config
    location / { proxy_pass http://backend; }
--- steps
>>> log registry 127\.0\.0\.1:\d+: (TLS handshake failed|recv failed|bad response: connection closed[^,]*), retrying in
>>> traffic / 10
one 10

=== TEST 4: an expired certificate
--- registry: etcd
--- etcd_args: --cert-file $TEST_NGINX_CERTS/expired.pem --key-file $TEST_NGINX_CERTS/expired.key --trusted-ca-file $TEST_NGINX_CERTS/ca.pem --client-cert-auth
--- http_config
    upsync_ssl_trusted_certificate $TEST_NGINX_CERTS/ca.pem;
    upsync_ssl_certificate $TEST_NGINX_CERTS/client.pem;
    upsync_ssl_certificate_key $TEST_NGINX_CERTS/client.key;
    upstream backend {
        upsync https://127.0.0.1:$TEST_NGINX_ETCD_PORT/upstreams/backend/ upsync_type=etcdv3 upsync_interval=100ms upsync_timeout=6m;
        upsync_dump_path $TEST_NGINX_DIR/servers_backend.conf;
        server 127.0.0.1:$TEST_NGINX_PORT1;
    }
    server { listen 127.0.0.1:$TEST_NGINX_PORT1; return 200 "one\n"; }
--- config
    location / { proxy_pass http://backend; }
--- steps
>>> log TLS certificate verify error: \(10:certificate has expired\)
>>> traffic / 10
one 10

=== TEST 5: a name mismatch (upsync_ssl_name other.test against a certificate for localhost), then the name it has
--- registry: etcd
--- etcd_args: --cert-file $TEST_NGINX_CERTS/server.pem --key-file $TEST_NGINX_CERTS/server.key --trusted-ca-file $TEST_NGINX_CERTS/ca.pem --client-cert-auth
--- init
>>> run
etcdctl --endpoints=https://127.0.0.1:$TEST_NGINX_ETCD_PORT --cacert=$TEST_NGINX_CERTS/ca.pem --cert=$TEST_NGINX_CERTS/client.pem --key=$TEST_NGINX_CERTS/client.key put /upstreams/backend/127.0.0.1:$TEST_NGINX_PORT2 '{}'
--- http_config
    upsync_ssl_trusted_certificate $TEST_NGINX_CERTS/ca.pem;
    upsync_ssl_certificate $TEST_NGINX_CERTS/client.pem;
    upsync_ssl_certificate_key $TEST_NGINX_CERTS/client.key;
    upstream wrong {
        upsync https://127.0.0.1:$TEST_NGINX_ETCD_PORT/upstreams/backend/ upsync_type=etcdv3 upsync_interval=100ms upsync_timeout=6m;
        upsync_dump_path $TEST_NGINX_DIR/servers_wrong.conf;
        upsync_ssl_name other.test;
        server 127.0.0.1:$TEST_NGINX_PORT1;
    }
    upstream right {
        upsync https://127.0.0.1:$TEST_NGINX_ETCD_PORT/upstreams/backend/ upsync_type=etcdv3 upsync_interval=100ms upsync_timeout=6m;
        upsync_dump_path $TEST_NGINX_DIR/servers_right.conf;
        upsync_ssl_name localhost;
        server 127.0.0.1:$TEST_NGINX_PORT1;
    }
    server { listen 127.0.0.1:$TEST_NGINX_PORT1; return 200 "one\n"; }
    server { listen 127.0.0.1:$TEST_NGINX_PORT2; return 200 "two\n"; }
--- config
    location /wrong { proxy_pass http://wrong; }
    location /right { proxy_pass http://right; }
--- steps
>>> log upstream "wrong": registry 127\.0\.0\.1:\d+: TLS certificate verify error: \(62:hostname mismatch\)
>>> traffic /wrong 10
one 10
>>> traffic /right 10
two 10

=== TEST 6: the Consul stand-in over TLS, by name: SNI sent, the session resumed, verification off for a self-signed test server
--- timeout: 20
--- registry: consul
--- consul_args: --tls-port $TEST_NGINX_PORT9 --tls-cert $TEST_NGINX_CERTS/server.pem --tls-key $TEST_NGINX_CERTS/server.key
--- init
>>> consul PUT /v1/kv/upstreams/backend/127.0.0.1:$TEST_NGINX_PORT1
--- http_config
    upstream backend {
        upsync https://localhost:$TEST_NGINX_PORT9/v1/kv/upstreams/backend/ upsync_type=consul upsync_interval=100ms upsync_timeout=6m;
        upsync_dump_path $TEST_NGINX_DIR/servers_backend.conf;
        upsync_ssl_trusted_certificate $TEST_NGINX_CERTS/ca.pem;
    }
    upstream unverified {
        upsync https://127.0.0.1:$TEST_NGINX_PORT9/v1/kv/upstreams/backend/ upsync_type=consul upsync_interval=100ms upsync_timeout=6m;
        upsync_dump_path $TEST_NGINX_DIR/servers_unverified.conf;
        upsync_ssl_verify off;
    }
    server { listen 127.0.0.1:$TEST_NGINX_PORT1; return 200 "one\n"; }
    server { listen 127.0.0.1:$TEST_NGINX_PORT2; return 200 "two\n"; }
--- config
    location / { proxy_pass http://backend; }
    location /show { upstream_show; }
--- steps
>>> wait /show?backend
Upstream name: backend; Backend server count: 1
        server 127.0.0.1:$TEST_NGINX_PORT1 weight=1 max_fails=2 fail_timeout=10s;

>>> consul PUT /v1/kv/upstreams/backend/127.0.0.1:$TEST_NGINX_PORT2
>>> consul PUT /v1/kv/upstreams/backend/127.0.0.1:$TEST_NGINX_PORT2
{"weight":2}
>>> wait /show?unverified
Upstream name: unverified; Backend server count: 2
        server 127.0.0.1:$TEST_NGINX_PORT2 weight=2 max_fails=2 fail_timeout=10s;
        server 127.0.0.1:$TEST_NGINX_PORT1 weight=1 max_fails=2 fail_timeout=10s;

>>> expect consul GET /_test/stats
"tls": \{"handshakes": [4-9]\d*, "resumed": [1-9]\d*, "failed": 0, "sni": \["localhost"\]\}
>>> traffic / 30
two 20
one 10
--- no_error_log
[error]

=== TEST 7: https:// against a plain HTTP registry: the handshake fails and is retried, the servers keep serving
--- registry: consul
--- http_config
    upstream backend {
        upsync https://127.0.0.1:$TEST_NGINX_CONSUL_PORT/v1/kv/upstreams/backend/ upsync_type=consul upsync_interval=100ms upsync_timeout=6m;
        upsync_dump_path $TEST_NGINX_DIR/servers_backend.conf;
        upsync_ssl_verify off;
        server 127.0.0.1:$TEST_NGINX_PORT1;
    }
    server { listen 127.0.0.1:$TEST_NGINX_PORT1; return 200 "one\n"; }
--- config
    location / { proxy_pass http://backend; }
--- steps
>>> log registry 127\.0\.0\.1:\d+: TLS handshake failed, retrying in 100 ms
>>> log retrying in [2-9]\d\d ms
>>> traffic / 10
one 10

=== TEST 8: a certificate without its key is refused at start
--- http_config
    upstream backend {
        upsync https://127.0.0.1:1/v1/kv/upstreams/backend/ upsync_type=consul;
        upsync_ssl_certificate /nonexistent.pem;
    }
--- must_die
--- error_log
no "upsync_ssl_certificate_key" is defined for certificate "/nonexistent.pem"

=== TEST 9: strong_dependency=on with https:// is refused, with the reason
--- http_config
    upstream backend {
        upsync https://127.0.0.1:1/v1/kv/upstreams/backend/ upsync_type=consul strong_dependency=on;
    }
--- must_die
--- error_log
strong_dependency=on cannot be used with an https:// registry

=== TEST 10: an unknown protocol and a bad flag are refused
--- http_config
    upsync_ssl_protocols TLSv1.2 SSLv3;
--- must_die
--- error_log
"upsync_ssl_protocols" unknown protocol "SSLv3": use TLSv1, TLSv1.1, TLSv1.2, TLSv1.3

=== TEST 11: a shared zone, four workers, least_conn and a server line: one poller speaks TLS for all, every worker follows
--- skip_nginx: <1.27.3
--- workers: 4
--- registry: consul
--- consul_args: --tls-port $TEST_NGINX_PORT9 --tls-cert $TEST_NGINX_CERTS/server.pem --tls-key $TEST_NGINX_CERTS/server.key
--- init
>>> consul PUT /v1/kv/upstreams/backend/127.0.0.1:$TEST_NGINX_PORT2
--- http_config
    upsync_ssl_trusted_certificate $TEST_NGINX_CERTS/ca.pem;
    upstream backend {
        zone backend 64k;
        least_conn;
        upsync https://127.0.0.1:$TEST_NGINX_PORT9/v1/kv/upstreams/backend/ upsync_type=consul upsync_interval=100ms upsync_timeout=6m;
        upsync_dump_path $TEST_NGINX_DIR/servers_backend.conf;
        server 127.0.0.1:$TEST_NGINX_PORT1;
    }
    server { listen 127.0.0.1:$TEST_NGINX_PORT1; return 200 "one\n"; }
    server { listen 127.0.0.1:$TEST_NGINX_PORT2; return 200 "two\n"; }
    server { listen 127.0.0.1:$TEST_NGINX_PORT3; return 200 "three\n"; }
--- config
    location / { proxy_pass http://backend; }
    location /show { upstream_show; }
--- steps
>>> wait /show?backend
Upstream name: backend; Backend server count: 1
        server 127.0.0.1:$TEST_NGINX_PORT2 weight=1 max_fails=2 fail_timeout=10s;

>>> consul PUT /v1/kv/upstreams/backend/127.0.0.1:$TEST_NGINX_PORT3
>>> consul DELETE /v1/kv/upstreams/backend/127.0.0.1:$TEST_NGINX_PORT2
>>> wait /show?backend
Upstream name: backend; Backend server count: 1
        server 127.0.0.1:$TEST_NGINX_PORT3 weight=1 max_fails=2 fail_timeout=10s;

>>> same /show?backend 20
Upstream name: backend; Backend server count: 1
        server 127.0.0.1:$TEST_NGINX_PORT3 weight=1 max_fails=2 fail_timeout=10s;

>>> expect consul GET /_test/stats
"blocking": 1, "hanging": 0
>>> traffic / 20
three 20
--- no_error_log
[error]
