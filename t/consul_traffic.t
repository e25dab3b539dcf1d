# Real traffic through nginx to real backends while Consul changes: a new
# server gets requests, a removed or down one gets none.
use lib 't/lib';
use Test::Upsync;

run_tests();

__DATA__

=== TEST 1: servers join, go down and leave under traffic (1 worker)
--- registry: consul
--- init
>>> consul PUT /v1/kv/upstreams/app/127.0.0.1:$TEST_NGINX_PORT1
--- http_config
    upstream app {
        upsync 127.0.0.1:$TEST_NGINX_CONSUL_PORT/v1/kv/upstreams/app/ upsync_interval=50ms upsync_type=consul;
        upsync_dump_path $TEST_NGINX_DIR/servers_app.conf;
    }
    server { listen 127.0.0.1:$TEST_NGINX_PORT1; return 200 "one\n"; }
    server { listen 127.0.0.1:$TEST_NGINX_PORT2; return 200 "two\n"; }
    server { listen 127.0.0.1:$TEST_NGINX_PORT3; return 200 "three\n"; }
--- config
    location / { proxy_pass http://app; }
    location /show { upstream_show; }
--- steps
>>> wait /show?app
Upstream name: app; Backend server count: 1
        server 127.0.0.1:$TEST_NGINX_PORT1 weight=1 max_fails=2 fail_timeout=10s;

>>> traffic / 10
one 10

>>> consul PUT /v1/kv/upstreams/app/127.0.0.1:$TEST_NGINX_PORT2
{"weight":3}
>>> wait /show?app
Upstream name: app; Backend server count: 2
        server 127.0.0.1:$TEST_NGINX_PORT2 weight=3 max_fails=2 fail_timeout=10s;
        server 127.0.0.1:$TEST_NGINX_PORT1 weight=1 max_fails=2 fail_timeout=10s;

>>> traffic / 40
one 10
two 30

>>> consul PUT /v1/kv/upstreams/app/127.0.0.1:$TEST_NGINX_PORT1
{"down":1}
>>> wait /show?app
Upstream name: app; Backend server count: 2
        server 127.0.0.1:$TEST_NGINX_PORT2 weight=3 max_fails=2 fail_timeout=10s;
        server 127.0.0.1:$TEST_NGINX_PORT1 weight=1 max_fails=2 fail_timeout=10s down;

>>> traffic / 20
two 20

>>> consul PUT /v1/kv/upstreams/app/127.0.0.1:$TEST_NGINX_PORT3
>>> consul DELETE /v1/kv/upstreams/app/127.0.0.1:$TEST_NGINX_PORT2
>>> wait /show?app
Upstream name: app; Backend server count: 2
        server 127.0.0.1:$TEST_NGINX_PORT3 weight=1 max_fails=2 fail_timeout=10s;
        server 127.0.0.1:$TEST_NGINX_PORT1 weight=1 max_fails=2 fail_timeout=10s down;

>>> traffic / 20
three 20
--- no_error_log
[error]

=== TEST 2: a backup server answers only when no primary can
--- registry: consul
--- init
>>> consul PUT /v1/kv/upstreams/app/127.0.0.1:$TEST_NGINX_PORT1
>>> consul PUT /v1/kv/upstreams/app/127.0.0.1:$TEST_NGINX_PORT2
{"backup":1}
--- http_config
    upstream app {
        upsync 127.0.0.1:$TEST_NGINX_CONSUL_PORT/v1/kv/upstreams/app/ upsync_interval=50ms upsync_type=consul;
        upsync_dump_path $TEST_NGINX_DIR/servers_app.conf;
    }
    server { listen 127.0.0.1:$TEST_NGINX_PORT1; return 200 "one\n"; }
    server { listen 127.0.0.1:$TEST_NGINX_PORT2; return 200 "two\n"; }
--- config
    location / { proxy_pass http://app; }
    location /show { upstream_show; }
--- steps
>>> wait /show?app
Upstream name: app; Backend server count: 1
        server 127.0.0.1:$TEST_NGINX_PORT1 weight=1 max_fails=2 fail_timeout=10s;

>>> traffic / 6
one 6

>>> consul PUT /v1/kv/upstreams/app/127.0.0.1:$TEST_NGINX_PORT1
{"down":1}
>>> file $TEST_NGINX_DIR/servers_app.conf
server 127.0.0.1:$TEST_NGINX_PORT1 weight=1 max_fails=2 fail_timeout=10s down;
server 127.0.0.1:$TEST_NGINX_PORT2 weight=1 max_fails=2 fail_timeout=10s backup;

>>> traffic / 6
two 6
