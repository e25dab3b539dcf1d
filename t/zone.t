# Shared-zone mode (nginx 1.27.3 and newer): one worker polls each upstream
# for all workers and changes the upstream's shared lists in place.
use lib 't/lib';
use Test::Upsync;

run_tests();

__DATA__

=== TEST 1: four workers, two upstreams: one registry connection each, the same list in every worker
--- skip_nginx: <1.27.3
--- workers: 4
--- registry: consul
--- init
>>> consul PUT /v1/kv/upstreams/a/127.0.0.1:$TEST_NGINX_PORT1
>>> consul PUT /v1/kv/upstreams/b/127.0.0.1:$TEST_NGINX_PORT2
--- http_config
    upstream a {
        zone a 64k;
        upsync 127.0.0.1:$TEST_NGINX_CONSUL_PORT/v1/kv/upstreams/a/ upsync_interval=50ms upsync_timeout=6m upsync_type=consul;
        upsync_dump_path $TEST_NGINX_DIR/servers_a.conf;
    }
    upstream b {
        zone b 64k;
        upsync 127.0.0.1:$TEST_NGINX_CONSUL_PORT/v1/kv/upstreams/b/ upsync_interval=50ms upsync_timeout=6m upsync_type=consul;
        upsync_dump_path $TEST_NGINX_DIR/servers_b.conf;
    }
    server { listen 127.0.0.1:$TEST_NGINX_PORT1; return 200 "one\n"; }
    server { listen 127.0.0.1:$TEST_NGINX_PORT2; return 200 "two\n"; }
    server { listen 127.0.0.1:$TEST_NGINX_PORT3; return 200 "three\n"; }
--- config
    location /a { proxy_pass http://a; }
    location /b { proxy_pass http://b; }
    location /show { upstream_show; }
--- steps
>>> wait /show?a
Upstream name: a; Backend server count: 1
        server 127.0.0.1:$TEST_NGINX_PORT1 weight=1 max_fails=2 fail_timeout=10s;

>>> wait /show?b
Upstream name: b; Backend server count: 1
        server 127.0.0.1:$TEST_NGINX_PORT2 weight=1 max_fails=2 fail_timeout=10s;

>>> expect consul GET /_test/stats
"blocking": 2, "hanging": 0, "connections": 3,
>>> consul PUT /v1/kv/upstreams/a/127.0.0.1:$TEST_NGINX_PORT3
{"weight":3}
>>> wait /show?a
Upstream name: a; Backend server count: 2
        server 127.0.0.1:$TEST_NGINX_PORT3 weight=3 max_fails=2 fail_timeout=10s;
        server 127.0.0.1:$TEST_NGINX_PORT1 weight=1 max_fails=2 fail_timeout=10s;

>>> same /show?a 40
Upstream name: a; Backend server count: 2
        server 127.0.0.1:$TEST_NGINX_PORT3 weight=3 max_fails=2 fail_timeout=10s;
        server 127.0.0.1:$TEST_NGINX_PORT1 weight=1 max_fails=2 fail_timeout=10s;

>>> traffic /a 40
three 30
one 10

>>> file $TEST_NGINX_DIR/servers_a.conf
server 127.0.0.1:$TEST_NGINX_PORT3 weight=3 max_fails=2 fail_timeout=10s;
server 127.0.0.1:$TEST_NGINX_PORT1 weight=1 max_fails=2 fail_timeout=10s;

>>> consul DELETE /v1/kv/upstreams/a/127.0.0.1:$TEST_NGINX_PORT1
>>> wait /show?a
Upstream name: a; Backend server count: 1
        server 127.0.0.1:$TEST_NGINX_PORT3 weight=3 max_fails=2 fail_timeout=10s;

>>> traffic /a 20
three 20

>>> expect consul GET /_test/stats
"blocking": 2, "hanging": 0, "connections": 3,
--- no_error_log
[error]
