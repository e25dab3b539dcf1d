# An nginx built without OpenSSL (scripts/build's build/nossl-1.28.3): an
# https:// registry is refused at start with the reason; plain HTTP syncs.
use lib 't/lib';
use Test::Upsync;

run_tests();

__DATA__

=== TEST 1: https:// is refused, saying what nginx lacks
--- skip_unless: TEST_NGINX_NOSSL
--- http_config
    upstream backend {
        upsync https://127.0.0.1:1/v1/kv/upstreams/backend/ upsync_type=consul;
    }
--- must_die
--- error_log
upsync: upstream "backend": an https:// registry needs nginx built with OpenSSL (./configure --with-http_ssl_module); this nginx has none

=== TEST 2: a plain HTTP registry syncs on the same nginx
--- skip_unless: TEST_NGINX_NOSSL
--- registry: consul
--- init
>>> consul PUT /v1/kv/upstreams/backend/127.0.0.1:$TEST_NGINX_PORT1
--- http_config
    upstream backend {
        upsync 127.0.0.1:$TEST_NGINX_CONSUL_PORT/v1/kv/upstreams/backend/ upsync_type=consul upsync_interval=100ms upsync_timeout=6m;
        upsync_dump_path $TEST_NGINX_DIR/servers_backend.conf;
    }
    server { listen 127.0.0.1:$TEST_NGINX_PORT1; return 200 "one\n"; }
--- config
    location / { proxy_pass http://backend; }
    location /show { upstream_show; }
--- steps
>>> wait /show?backend
Upstream name: backend; Backend server count: 1
        server 127.0.0.1:$TEST_NGINX_PORT1 weight=1 max_fails=2 fail_timeout=10s;

>>> traffic / 5
one 5
