# Bad registry answers and an unreachable registry: a clear error, and the
# upstream keeps serving its last good list.
use lib 't/lib';
use Test::Upsync;

run_tests();

__DATA__

=== TEST 1: registry down at start, then up, then down at run time
--- http_config
    upstream test {
        upsync 127.0.0.1:$TEST_NGINX_PORT9/v1/kv/upstreams/test/ upsync_interval=100ms upsync_timeout=2s upsync_type=consul;
        upsync_dump_path $TEST_NGINX_DIR/servers_test.conf;
        server 127.0.0.1:$TEST_NGINX_PORT1;
    }
    server { listen 127.0.0.1:$TEST_NGINX_PORT1; return 200 "one\n"; }
--- config
    location / { proxy_pass http://test; }
    location /show { upstream_show; }
--- steps
>>> log registry 127.0.0.1:\d+: cannot connect, retrying in 100 ms
>>> traffic / 5
one 5

>>> http GET /show?test
Upstream name: test; Backend server count: 1
        server 127.0.0.1:$TEST_NGINX_PORT1 weight=1 max_fails=1 fail_timeout=10s;
--- error_log
(111: Connection refused)

=== TEST 2: an error answer, a body that is not JSON, a huge body, a registry that never answers
--- registry: consul
--- init
>>> consul PUT /v1/kv/upstreams/test/127.0.0.1:$TEST_NGINX_PORT1
--- http_config
    upstream test {
        upsync 127.0.0.1:$TEST_NGINX_CONSUL_PORT/v1/kv/upstreams/test/ upsync_interval=100ms upsync_timeout=2s upsync_type=consul;
        upsync_dump_path $TEST_NGINX_DIR/servers_test.conf;
    }
    server { listen 127.0.0.1:$TEST_NGINX_PORT1; return 200 "one\n"; }
--- config
    location / { proxy_pass http://test; }
    location /show { upstream_show; }
--- timeout: 15
--- steps
>>> wait /show?test
Upstream name: test; Backend server count: 1
        server 127.0.0.1:$TEST_NGINX_PORT1 weight=1 max_fails=2 fail_timeout=10s;

>>> consul PUT /_test/fault
{"mode": "status500"}
>>> log registry answered 500 for /v1/kv/upstreams/test/: rpc error, keeping the last list
>>> consul PUT /_test/fault
{"mode": "garbage"}
>>> log unusable registry answer \(invalid JSON
>>> consul PUT /_test/fault
{"mode": "huge", "size": 9437184}
>>> log bad response: response body is larger than 8388608 bytes
>>> consul PUT /_test/fault
{"mode": "hang"}
>>> log read timed out, retrying in \d+ ms
>>> consul PUT /_test/fault
{"mode": "close"}
>>> log bad response: connection closed before the response was complete
>>> traffic / 5
one 5

>>> consul PUT /_test/fault
{"mode": "none"}
>>> consul PUT /v1/kv/upstreams/test/127.0.0.1:$TEST_NGINX_PORT2
>>> wait /show?test
Upstream name: test; Backend server count: 2
        server 127.0.0.1:$TEST_NGINX_PORT2 weight=1 max_fails=2 fail_timeout=10s;
        server 127.0.0.1:$TEST_NGINX_PORT1 weight=1 max_fails=2 fail_timeout=10s;
--- error_log
rpc error
--- no_error_log
[crit]

=== TEST 3: invalid keys are skipped with an error, valid ones applied
--- registry: consul
--- init
>>> consul PUT /v1/kv/upstreams/test/backend.example.com:80
>>> consul PUT /v1/kv/upstreams/test/::1:8080
>>> consul PUT /v1/kv/upstreams/test/127.0.0.1
>>> consul PUT /v1/kv/upstreams/test/[::1]:8081
{"weight":2}
>>> consul PUT /v1/kv/upstreams/test/127.0.0.1:8089
not json at all
>>> consul PUT /v1/kv/upstreams/test/127.0.0.1:8090
{"weight":0,"max_fails":"3"}
--- http_config
    upstream test {
        upsync 127.0.0.1:$TEST_NGINX_CONSUL_PORT/v1/kv/upstreams/test/ upsync_interval=100ms upsync_type=consul;
        upsync_dump_path $TEST_NGINX_DIR/servers_test.conf;
        server 127.0.0.1:8088;
    }
--- config
    location /show { upstream_show; }
--- steps
>>> wait /show?test
Upstream name: test; Backend server count: 3
        server [::1]:8081 weight=2 max_fails=2 fail_timeout=10s;
        server 127.0.0.1:8090 weight=1 max_fails=3 fail_timeout=10s;
        server 127.0.0.1:8089 weight=1 max_fails=2 fail_timeout=10s;
--- error_log
backend.example.com:80
::1:8080
upstreams/test/127.0.0.1
127.0.0.1:8089
weight

=== TEST 4: an empty catalog answer never empties the upstream, and is tried again though the registry does not change
--- registry: consul
--- http_config
    upstream test {
        upsync 127.0.0.1:$TEST_NGINX_CONSUL_PORT/v1/catalog/service/web upsync_interval=100ms upsync_type=consul_services;
        upsync_dump_path $TEST_NGINX_DIR/servers_test.conf;
        server 127.0.0.1:8088;
    }
--- config
    location /show { upstream_show; }
--- steps
>>> log registry list is empty, cannot delete all peers: keeping the last list
>>> log (?s)registry list is empty, cannot delete all peers.*registry list is empty, cannot delete all peers
>>> http GET /show?test
Upstream name: test; Backend server count: 1
        server 127.0.0.1:8088 weight=1 max_fails=1 fail_timeout=10s;

=== TEST 5: an index that goes backwards leads to a full read
--- registry: consul
--- init
>>> consul PUT /v1/kv/upstreams/test/127.0.0.1:8089
--- http_config
    upstream test {
        upsync 127.0.0.1:$TEST_NGINX_CONSUL_PORT/v1/kv/upstreams/test/ upsync_interval=100ms upsync_timeout=3s upsync_type=consul;
        upsync_dump_path $TEST_NGINX_DIR/servers_test.conf;
    }
--- config
    location /show { upstream_show; }
--- steps
>>> wait /show?test
Upstream name: test; Backend server count: 1
        server 127.0.0.1:8089 weight=1 max_fails=2 fail_timeout=10s;

>>> consul PUT /_test/fault
{"mode": "none", "index_override": 1}
>>> consul PUT /v1/kv/upstreams/test/127.0.0.1:8090
>>> wait /show?test
Upstream name: test; Backend server count: 2
        server 127.0.0.1:8090 weight=1 max_fails=2 fail_timeout=10s;
        server 127.0.0.1:8089 weight=1 max_fails=2 fail_timeout=10s;
