# upsync_type=consul: the C module's own scenario, step by step, with the
# exact upstream_show bytes and dump file contents after each registry change.
use lib 't/lib';
use Test::Upsync;

run_tests();

__DATA__

=== TEST 1: the C module's scenario, one worker
--- registry: consul
--- http_config
    upstream test {
        upsync 127.0.0.1:$TEST_NGINX_CONSUL_PORT/v1/kv/upstreams/test upsync_interval=50ms upsync_timeout=6m upsync_type=consul;
        upsync_dump_path $TEST_NGINX_DIR/servers_test.conf;
        server 127.0.0.1:8088 weight=10 max_fails=3 fail_timeout=10;
    }
    upstream backend {
        server 127.0.0.1:8090 weight=10 max_fails=3 fail_timeout=10;
    }
--- config
    location /upstream_list { upstream_show; }
--- steps
>>> wait /upstream_list?test
Upstream name: test; Backend server count: 1
        server 127.0.0.1:8088 weight=10 max_fails=3 fail_timeout=10s;

>>> no_file $TEST_NGINX_DIR/servers_test.conf

>>> consul PUT /v1/kv/upstreams/test/127.0.0.1:8089
>>> wait /upstream_list?test
Upstream name: test; Backend server count: 1
        server 127.0.0.1:8089 weight=1 max_fails=2 fail_timeout=10s;

>>> file $TEST_NGINX_DIR/servers_test.conf
server 127.0.0.1:8089 weight=1 max_fails=2 fail_timeout=10s;

>>> consul PUT /v1/kv/upstreams/test/127.0.0.1:8088
{"weight":10,"max_fails":3,"fail_timeout":10}
>>> wait /upstream_list?test
Upstream name: test; Backend server count: 2
        server 127.0.0.1:8088 weight=10 max_fails=3 fail_timeout=10s;
        server 127.0.0.1:8089 weight=1 max_fails=2 fail_timeout=10s;

>>> wait /upstream_list -keep
Upstream name: test; Backend server count: 2
        server 127.0.0.1:8088 weight=10 max_fails=3 fail_timeout=10s;
        server 127.0.0.1:8089 weight=1 max_fails=2 fail_timeout=10s;

Upstream name: backend; Backend server count: 1
        server 127.0.0.1:8090 weight=10 max_fails=3 fail_timeout=10s;

>>> consul DELETE /v1/kv/upstreams/test/127.0.0.1:8089
>>> wait /upstream_list?test
Upstream name: test; Backend server count: 1
        server 127.0.0.1:8088 weight=10 max_fails=3 fail_timeout=10s;

>>> consul PUT /v1/kv/upstreams/test/127.0.0.1:8089
{"weight":20,"max_fails":0,"fail_timeout":30}
>>> wait /upstream_list?test
Upstream name: test; Backend server count: 2
        server 127.0.0.1:8089 weight=20 max_fails=0 fail_timeout=30s;
        server 127.0.0.1:8088 weight=10 max_fails=3 fail_timeout=10s;

>>> consul DELETE /v1/kv/upstreams/test/127.0.0.1:8088
>>> wait /upstream_list?test
Upstream name: test; Backend server count: 1
        server 127.0.0.1:8089 weight=20 max_fails=0 fail_timeout=30s;

>>> consul PUT /v1/kv/upstreams/test/127.0.0.1:8088
{"weight":20,"max_fails":0,"fail_timeout":30}
>>> wait /upstream_list?test
Upstream name: test; Backend server count: 2
        server 127.0.0.1:8088 weight=20 max_fails=0 fail_timeout=30s;
        server 127.0.0.1:8089 weight=20 max_fails=0 fail_timeout=30s;

>>> consul PUT /v1/kv/upstreams/test/127.0.0.1:8088
{"weight":40}
>>> wait /upstream_list?test
Upstream name: test; Backend server count: 2
        server 127.0.0.1:8088 weight=40 max_fails=2 fail_timeout=10s;
        server 127.0.0.1:8089 weight=20 max_fails=0 fail_timeout=30s;

>>> file $TEST_NGINX_DIR/servers_test.conf
server 127.0.0.1:8088 weight=40 max_fails=2 fail_timeout=10s;
server 127.0.0.1:8089 weight=20 max_fails=0 fail_timeout=30s;

>>> consul DELETE /v1/kv/upstreams/test?recurse
>>> log registry has nothing under /v1/kv/upstreams/test, keeping the last list
>>> http GET /upstream_list?test
Upstream name: test; Backend server count: 2
        server 127.0.0.1:8088 weight=40 max_fails=2 fail_timeout=10s;
        server 127.0.0.1:8089 weight=20 max_fails=0 fail_timeout=30s;

>>> consul PUT /v1/kv/upstreams/test/127.0.0.1:8088
{"weight":40,"max_fails":3,"fail_timeout":20, "down":1}
>>> file $TEST_NGINX_DIR/servers_test.conf
server 127.0.0.1:8088 weight=40 max_fails=3 fail_timeout=20s down;

>>> consul PUT /v1/kv/upstreams/test/127.0.0.1:8088
{"weight":40,"max_fails":0,"fail_timeout":30, "down":0}
>>> file $TEST_NGINX_DIR/servers_test.conf
server 127.0.0.1:8088 weight=40 max_fails=0 fail_timeout=30s;

>>> wait /upstream_list?test
Upstream name: test; Backend server count: 1
        server 127.0.0.1:8088 weight=40 max_fails=0 fail_timeout=30s;
--- no_error_log
[crit]

=== TEST 2: a registry at an IPv6 address, with IPv6 servers in it
--- registry: consul
--- consul_args: --host ::1
--- init
>>> consul PUT /v1/kv/upstreams/test/[::1]:$TEST_NGINX_PORT1
>>> consul PUT /v1/kv/upstreams/test/127.0.0.1:$TEST_NGINX_PORT2
--- http_config
    upstream test {
        upsync [::1]:$TEST_NGINX_CONSUL_PORT/v1/kv/upstreams/test/ upsync_interval=50ms upsync_timeout=6m upsync_type=consul;
        upsync_dump_path $TEST_NGINX_DIR/servers_test.conf;
    }
    server { listen [::1]:$TEST_NGINX_PORT1; return 200 "six\n"; }
    server { listen 127.0.0.1:$TEST_NGINX_PORT2; return 200 "four\n"; }
--- config
    location / { proxy_pass http://test; }
    location /upstream_list { upstream_show; }
--- steps
>>> wait /upstream_list?test
Upstream name: test; Backend server count: 2
        server [::1]:$TEST_NGINX_PORT1 weight=1 max_fails=2 fail_timeout=10s;
        server 127.0.0.1:$TEST_NGINX_PORT2 weight=1 max_fails=2 fail_timeout=10s;

>>> traffic / 20
six 10
four 10

>>> consul DELETE /v1/kv/upstreams/test/127.0.0.1:$TEST_NGINX_PORT2
>>> wait /upstream_list?test
Upstream name: test; Backend server count: 1
        server [::1]:$TEST_NGINX_PORT1 weight=1 max_fails=2 fail_timeout=10s;

>>> expect consul GET /_test/stats
"blocking": 1\b
--- no_error_log
[error]
