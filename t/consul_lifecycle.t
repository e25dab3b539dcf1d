# Process life: several workers, reload in the middle of a long poll,
# strong_dependency both ways, starting from the dump file, starting with
# nothing, and processes that must not poll.
use lib 't/lib';
use Test::Upsync;

run_tests();

__DATA__

=== TEST 1: two workers follow the registry, each applying it itself
--- workers: 2
--- registry: consul
--- http_config
    upstream test {
        upsync 127.0.0.1:$TEST_NGINX_CONSUL_PORT/v1/kv/upstreams/test upsync_interval=50ms upsync_timeout=6m upsync_type=consul;
        upsync_dump_path $TEST_NGINX_DIR/servers_test.conf;
        server 127.0.0.1:8088 weight=10 max_fails=3 fail_timeout=10;
    }
--- config
    location /upstream_list { upstream_show; }
--- steps
>>> consul PUT /v1/kv/upstreams/test/127.0.0.1:8089
>>> wait /upstream_list?test
Upstream name: test; Backend server count: 1
        server 127.0.0.1:8089 weight=1 max_fails=2 fail_timeout=10s;

>>> consul PUT /v1/kv/upstreams/test/127.0.0.1:8088
{"weight":10,"max_fails":3,"fail_timeout":10}
>>> wait /upstream_list?test
Upstream name: test; Backend server count: 2
        server 127.0.0.1:8088 weight=10 max_fails=3 fail_timeout=10s;
        server 127.0.0.1:8089 weight=1 max_fails=2 fail_timeout=10s;

>>> expect consul GET /_test/stats
"blocking": 2\b
>>> file $TEST_NGINX_DIR/servers_test.conf
server 127.0.0.1:8088 weight=10 max_fails=3 fail_timeout=10s;
server 127.0.0.1:8089 weight=1 max_fails=2 fail_timeout=10s;

>>> consul PUT /v1/kv/upstreams/test/127.0.0.1:8088
{"weight":40,"down":1}
>>> sleep 0.5
>>> same /upstream_list?test 20
Upstream name: test; Backend server count: 2
        server 127.0.0.1:8088 weight=40 max_fails=2 fail_timeout=10s down;
        server 127.0.0.1:8089 weight=1 max_fails=2 fail_timeout=10s;

=== TEST 2: a reload in the middle of a long poll: old workers leave at once, new ones poll
--- registry: consul
--- init
>>> consul PUT /v1/kv/upstreams/test/127.0.0.1:8089
--- http_config
    upstream test {
        upsync 127.0.0.1:$TEST_NGINX_CONSUL_PORT/v1/kv/upstreams/test/ upsync_interval=50ms upsync_timeout=6m upsync_type=consul;
        upsync_dump_path $TEST_NGINX_DIR/servers_test.conf;
    }
--- config
    location /show { upstream_show; }
--- steps
>>> wait /show?test
Upstream name: test; Backend server count: 1
        server 127.0.0.1:8089 weight=1 max_fails=2 fail_timeout=10s;

>>> expect consul GET /_test/stats
"blocking": 1\b
>>> reload
>>> log worker process \d+ exited with code 0
>>> consul PUT /v1/kv/upstreams/test/127.0.0.1:8090
>>> wait /show?test
Upstream name: test; Backend server count: 2
        server 127.0.0.1:8090 weight=1 max_fails=2 fail_timeout=10s;
        server 127.0.0.1:8089 weight=1 max_fails=2 fail_timeout=10s;
--- no_error_log
[error]

=== TEST 3: strong_dependency=on: the worker has the registry's list before it serves
--- registry: consul
--- init
>>> consul PUT /v1/kv/upstreams/test/127.0.0.1:8089
{"weight":5}
--- http_config
    upstream test {
        upsync 127.0.0.1:$TEST_NGINX_CONSUL_PORT/v1/kv/upstreams/test/ upsync_interval=10s upsync_type=consul strong_dependency=on;
        upsync_dump_path $TEST_NGINX_DIR/servers_test.conf;
        server 127.0.0.1:8088;
    }
--- config
    location /show { upstream_show; }
--- request
GET /show?test
--- response_body
Upstream name: test; Backend server count: 1
        server 127.0.0.1:8089 weight=5 max_fails=2 fail_timeout=10s;
--- error_log
strong_dependency: registry answered 200 before serving

=== TEST 4: strong_dependency=on with the registry down: the worker serves what it has
--- http_config
    upstream test {
        upsync 127.0.0.1:$TEST_NGINX_PORT9/v1/kv/upstreams/test/ upsync_interval=1s upsync_timeout=2s upsync_type=consul strong_dependency=on;
        upsync_dump_path $TEST_NGINX_DIR/servers_test.conf;
        server 127.0.0.1:$TEST_NGINX_PORT1;
    }
    server { listen 127.0.0.1:$TEST_NGINX_PORT1; return 200 "one\n"; }
--- config
    location / { proxy_pass http://test; }
--- request
GET /
--- response_body
one
--- error_log eval
qr/strong_dependency: registry 127.0.0.1:\d+ unreachable \(.*refused.*\), serving the list it has/

=== TEST 5: the dump file is used at start, so a restart works with the registry down
--- init
>>> write $TEST_NGINX_DIR/servers_test.conf
server 127.0.0.1:$TEST_NGINX_PORT2 weight=2 max_fails=2 fail_timeout=10s;
server 127.0.0.1:$TEST_NGINX_PORT1 weight=1 max_fails=2 fail_timeout=10s down;
--- http_config
    upstream test {
        upsync 127.0.0.1:$TEST_NGINX_PORT9/v1/kv/upstreams/test/ upsync_interval=1s upsync_type=consul;
        upsync_dump_path $TEST_NGINX_DIR/servers_test.conf;
    }
    server { listen 127.0.0.1:$TEST_NGINX_PORT1; return 200 "one\n"; }
    server { listen 127.0.0.1:$TEST_NGINX_PORT2; return 200 "two\n"; }
--- config
    location / { proxy_pass http://test; }
    location /show { upstream_show; }
--- steps
>>> http GET /show?test
Upstream name: test; Backend server count: 2
        server 127.0.0.1:$TEST_NGINX_PORT2 weight=2 max_fails=2 fail_timeout=10s;
        server 127.0.0.1:$TEST_NGINX_PORT1 weight=1 max_fails=2 fail_timeout=10s down;

>>> traffic / 6
two 6
--- error_log
starts with the 2 servers of

=== TEST 6: the C module's way: the dump file included in the upstream
--- init
>>> write $TEST_NGINX_DIR/servers_test.conf
server 127.0.0.1:$TEST_NGINX_PORT1 weight=1 max_fails=2 fail_timeout=10s;
--- http_config
    upstream test {
        upsync 127.0.0.1:$TEST_NGINX_PORT9/v1/kv/upstreams/test/ upsync_interval=1s upsync_type=consul;
        upsync_dump_path $TEST_NGINX_DIR/servers_test.conf;
        include $TEST_NGINX_DIR/servers_test.conf;
    }
    server { listen 127.0.0.1:$TEST_NGINX_PORT1; return 200 "one\n"; }
--- config
    location / { proxy_pass http://test; }
    location /show { upstream_show; }
--- steps
>>> http GET /show?test
Upstream name: test; Backend server count: 1
        server 127.0.0.1:$TEST_NGINX_PORT1 weight=1 max_fails=2 fail_timeout=10s;

>>> traffic / 3
one 3

=== TEST 7: neither servers nor dump nor registry: 502 until the registry answers
--- registry: consul
--- http_config
    upstream test {
        upsync 127.0.0.1:$TEST_NGINX_CONSUL_PORT/v1/kv/upstreams/test/ upsync_interval=50ms upsync_type=consul;
        upsync_dump_path $TEST_NGINX_DIR/servers_test.conf;
    }
    server { listen 127.0.0.1:$TEST_NGINX_PORT1; return 200 "one\n"; }
--- config
    location / { proxy_pass http://test; }
    location /show { upstream_show; }
--- steps
>>> http GET /show?test
Upstream name: test; Backend server count: 0

>>> traffic / 2
status 502 2

>>> consul PUT /v1/kv/upstreams/test/127.0.0.1:$TEST_NGINX_PORT1
>>> wait /show?test
Upstream name: test; Backend server count: 1
        server 127.0.0.1:$TEST_NGINX_PORT1 weight=1 max_fails=2 fail_timeout=10s;

>>> traffic / 3
one 3
--- error_log
no live upstreams

=== TEST 8: the cache manager and loader never poll
--- registry: consul
--- init
>>> consul PUT /v1/kv/upstreams/test/127.0.0.1:8089
--- http_config
    proxy_cache_path $TEST_NGINX_DIR/cache keys_zone=c:1m;
    upstream test {
        upsync 127.0.0.1:$TEST_NGINX_CONSUL_PORT/v1/kv/upstreams/test/ upsync_interval=50ms upsync_type=consul;
        upsync_dump_path $TEST_NGINX_DIR/servers_test.conf;
    }
--- config
    location /show { upstream_show; }
--- steps
>>> wait /show?test
Upstream name: test; Backend server count: 1
        server 127.0.0.1:8089 weight=1 max_fails=2 fail_timeout=10s;

>>> sleep 1
>>> expect consul GET /_test/stats
"blocking": 1\b
>>> expect consul GET /_test/stats
"/v1/kv/upstreams/test/": 2\b

=== TEST 9: a binary upgrade: the new master's workers poll, the old ones leave
--- daemon
--- registry: consul
--- init
>>> consul PUT /v1/kv/upstreams/test/127.0.0.1:8089
--- http_config
    upstream test {
        upsync 127.0.0.1:$TEST_NGINX_CONSUL_PORT/v1/kv/upstreams/test/ upsync_interval=50ms upsync_timeout=6m upsync_type=consul;
        upsync_dump_path $TEST_NGINX_DIR/servers_test.conf;
    }
--- config
    location /show { upstream_show; }
--- steps
>>> wait /show?test
Upstream name: test; Backend server count: 1
        server 127.0.0.1:8089 weight=1 max_fails=2 fail_timeout=10s;

>>> upgrade
>>> consul PUT /v1/kv/upstreams/test/127.0.0.1:8090
>>> wait /show?test
Upstream name: test; Backend server count: 2
        server 127.0.0.1:8090 weight=1 max_fails=2 fail_timeout=10s;
        server 127.0.0.1:8089 weight=1 max_fails=2 fail_timeout=10s;

>>> same /show?test 10
Upstream name: test; Backend server count: 2
        server 127.0.0.1:8090 weight=1 max_fails=2 fail_timeout=10s;
        server 127.0.0.1:8089 weight=1 max_fails=2 fail_timeout=10s;
--- no_error_log
[error]
