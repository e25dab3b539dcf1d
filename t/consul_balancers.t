# Every balancer with per-worker lists, with and without keepalive, under
# real traffic while servers come and go; and lists longer than 64 servers
# (requests' "tried" bitmaps are sized from the list they walk).
use lib 't/lib';
use Test::Upsync;

run_tests();

__DATA__

=== TEST 1: round robin: servers added and removed under traffic
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

>>> consul PUT /v1/kv/upstreams/app/127.0.0.1:$TEST_NGINX_PORT2
>>> wait /show?app
Upstream name: app; Backend server count: 2
        server 127.0.0.1:$TEST_NGINX_PORT2 weight=1 max_fails=2 fail_timeout=10s;
        server 127.0.0.1:$TEST_NGINX_PORT1 weight=1 max_fails=2 fail_timeout=10s;

>>> traffic / 40
one >0
two >0

>>> consul DELETE /v1/kv/upstreams/app/127.0.0.1:$TEST_NGINX_PORT1
>>> wait /show?app
Upstream name: app; Backend server count: 1
        server 127.0.0.1:$TEST_NGINX_PORT2 weight=1 max_fails=2 fail_timeout=10s;

>>> traffic / 20
two 20

>>> consul PUT /v1/kv/upstreams/app/127.0.0.1:$TEST_NGINX_PORT3
>>> wait /show?app
Upstream name: app; Backend server count: 2
        server 127.0.0.1:$TEST_NGINX_PORT3 weight=1 max_fails=2 fail_timeout=10s;
        server 127.0.0.1:$TEST_NGINX_PORT2 weight=1 max_fails=2 fail_timeout=10s;

>>> traffic / 40
two >0
three >0
--- no_error_log
[error]

=== TEST 2: round robin with keepalive: servers added and removed under traffic
--- registry: consul
--- init
>>> consul PUT /v1/kv/upstreams/app/127.0.0.1:$TEST_NGINX_PORT1
--- http_config
    upstream app {
        
        upsync 127.0.0.1:$TEST_NGINX_CONSUL_PORT/v1/kv/upstreams/app/ upsync_interval=50ms upsync_type=consul;
        upsync_dump_path $TEST_NGINX_DIR/servers_app.conf;
        keepalive 8;
    }
    server { listen 127.0.0.1:$TEST_NGINX_PORT1; return 200 "one\n"; }
    server { listen 127.0.0.1:$TEST_NGINX_PORT2; return 200 "two\n"; }
    server { listen 127.0.0.1:$TEST_NGINX_PORT3; return 200 "three\n"; }
--- config
    location / { proxy_pass http://app; proxy_http_version 1.1; proxy_set_header Connection ""; }
    location /show { upstream_show; }
--- steps
>>> wait /show?app
Upstream name: app; Backend server count: 1
        server 127.0.0.1:$TEST_NGINX_PORT1 weight=1 max_fails=2 fail_timeout=10s;

>>> consul PUT /v1/kv/upstreams/app/127.0.0.1:$TEST_NGINX_PORT2
>>> wait /show?app
Upstream name: app; Backend server count: 2
        server 127.0.0.1:$TEST_NGINX_PORT2 weight=1 max_fails=2 fail_timeout=10s;
        server 127.0.0.1:$TEST_NGINX_PORT1 weight=1 max_fails=2 fail_timeout=10s;

>>> traffic / 40
one >0
two >0

>>> consul DELETE /v1/kv/upstreams/app/127.0.0.1:$TEST_NGINX_PORT1
>>> wait /show?app
Upstream name: app; Backend server count: 1
        server 127.0.0.1:$TEST_NGINX_PORT2 weight=1 max_fails=2 fail_timeout=10s;

>>> traffic / 20
two 20

>>> consul PUT /v1/kv/upstreams/app/127.0.0.1:$TEST_NGINX_PORT3
>>> wait /show?app
Upstream name: app; Backend server count: 2
        server 127.0.0.1:$TEST_NGINX_PORT3 weight=1 max_fails=2 fail_timeout=10s;
        server 127.0.0.1:$TEST_NGINX_PORT2 weight=1 max_fails=2 fail_timeout=10s;

>>> traffic / 40
two >0
three >0
--- no_error_log
[error]

=== TEST 3: least_conn: servers added and removed under traffic
--- registry: consul
--- init
>>> consul PUT /v1/kv/upstreams/app/127.0.0.1:$TEST_NGINX_PORT1
--- http_config
    upstream app {
        least_conn;
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

>>> consul PUT /v1/kv/upstreams/app/127.0.0.1:$TEST_NGINX_PORT2
>>> wait /show?app
Upstream name: app; Backend server count: 2
        server 127.0.0.1:$TEST_NGINX_PORT2 weight=1 max_fails=2 fail_timeout=10s;
        server 127.0.0.1:$TEST_NGINX_PORT1 weight=1 max_fails=2 fail_timeout=10s;

>>> traffic / 40
one >0
two >0

>>> consul DELETE /v1/kv/upstreams/app/127.0.0.1:$TEST_NGINX_PORT1
>>> wait /show?app
Upstream name: app; Backend server count: 1
        server 127.0.0.1:$TEST_NGINX_PORT2 weight=1 max_fails=2 fail_timeout=10s;

>>> traffic / 20
two 20

>>> consul PUT /v1/kv/upstreams/app/127.0.0.1:$TEST_NGINX_PORT3
>>> wait /show?app
Upstream name: app; Backend server count: 2
        server 127.0.0.1:$TEST_NGINX_PORT3 weight=1 max_fails=2 fail_timeout=10s;
        server 127.0.0.1:$TEST_NGINX_PORT2 weight=1 max_fails=2 fail_timeout=10s;

>>> traffic / 40
two >0
three >0
--- no_error_log
[error]

=== TEST 4: least_conn with keepalive: servers added and removed under traffic
--- registry: consul
--- init
>>> consul PUT /v1/kv/upstreams/app/127.0.0.1:$TEST_NGINX_PORT1
--- http_config
    upstream app {
        least_conn;
        upsync 127.0.0.1:$TEST_NGINX_CONSUL_PORT/v1/kv/upstreams/app/ upsync_interval=50ms upsync_type=consul;
        upsync_dump_path $TEST_NGINX_DIR/servers_app.conf;
        keepalive 8;
    }
    server { listen 127.0.0.1:$TEST_NGINX_PORT1; return 200 "one\n"; }
    server { listen 127.0.0.1:$TEST_NGINX_PORT2; return 200 "two\n"; }
    server { listen 127.0.0.1:$TEST_NGINX_PORT3; return 200 "three\n"; }
--- config
    location / { proxy_pass http://app; proxy_http_version 1.1; proxy_set_header Connection ""; }
    location /show { upstream_show; }
--- steps
>>> wait /show?app
Upstream name: app; Backend server count: 1
        server 127.0.0.1:$TEST_NGINX_PORT1 weight=1 max_fails=2 fail_timeout=10s;

>>> consul PUT /v1/kv/upstreams/app/127.0.0.1:$TEST_NGINX_PORT2
>>> wait /show?app
Upstream name: app; Backend server count: 2
        server 127.0.0.1:$TEST_NGINX_PORT2 weight=1 max_fails=2 fail_timeout=10s;
        server 127.0.0.1:$TEST_NGINX_PORT1 weight=1 max_fails=2 fail_timeout=10s;

>>> traffic / 40
one >0
two >0

>>> consul DELETE /v1/kv/upstreams/app/127.0.0.1:$TEST_NGINX_PORT1
>>> wait /show?app
Upstream name: app; Backend server count: 1
        server 127.0.0.1:$TEST_NGINX_PORT2 weight=1 max_fails=2 fail_timeout=10s;

>>> traffic / 20
two 20

>>> consul PUT /v1/kv/upstreams/app/127.0.0.1:$TEST_NGINX_PORT3
>>> wait /show?app
Upstream name: app; Backend server count: 2
        server 127.0.0.1:$TEST_NGINX_PORT3 weight=1 max_fails=2 fail_timeout=10s;
        server 127.0.0.1:$TEST_NGINX_PORT2 weight=1 max_fails=2 fail_timeout=10s;

>>> traffic / 40
two >0
three >0
--- no_error_log
[error]

=== TEST 5: ip_hash: servers added and removed under traffic
--- registry: consul
--- init
>>> consul PUT /v1/kv/upstreams/app/127.0.0.1:$TEST_NGINX_PORT1
--- http_config
    upstream app {
        ip_hash;
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

>>> consul PUT /v1/kv/upstreams/app/127.0.0.1:$TEST_NGINX_PORT2
>>> wait /show?app
Upstream name: app; Backend server count: 2
        server 127.0.0.1:$TEST_NGINX_PORT2 weight=1 max_fails=2 fail_timeout=10s;
        server 127.0.0.1:$TEST_NGINX_PORT1 weight=1 max_fails=2 fail_timeout=10s;

>>> traffic / 40
one *
two *

>>> consul DELETE /v1/kv/upstreams/app/127.0.0.1:$TEST_NGINX_PORT1
>>> wait /show?app
Upstream name: app; Backend server count: 1
        server 127.0.0.1:$TEST_NGINX_PORT2 weight=1 max_fails=2 fail_timeout=10s;

>>> traffic / 20
two 20

>>> consul PUT /v1/kv/upstreams/app/127.0.0.1:$TEST_NGINX_PORT3
>>> wait /show?app
Upstream name: app; Backend server count: 2
        server 127.0.0.1:$TEST_NGINX_PORT3 weight=1 max_fails=2 fail_timeout=10s;
        server 127.0.0.1:$TEST_NGINX_PORT2 weight=1 max_fails=2 fail_timeout=10s;

>>> traffic / 40
two *
three *
--- no_error_log
[error]

=== TEST 6: ip_hash with keepalive: servers added and removed under traffic
--- registry: consul
--- init
>>> consul PUT /v1/kv/upstreams/app/127.0.0.1:$TEST_NGINX_PORT1
--- http_config
    upstream app {
        ip_hash;
        upsync 127.0.0.1:$TEST_NGINX_CONSUL_PORT/v1/kv/upstreams/app/ upsync_interval=50ms upsync_type=consul;
        upsync_dump_path $TEST_NGINX_DIR/servers_app.conf;
        keepalive 8;
    }
    server { listen 127.0.0.1:$TEST_NGINX_PORT1; return 200 "one\n"; }
    server { listen 127.0.0.1:$TEST_NGINX_PORT2; return 200 "two\n"; }
    server { listen 127.0.0.1:$TEST_NGINX_PORT3; return 200 "three\n"; }
--- config
    location / { proxy_pass http://app; proxy_http_version 1.1; proxy_set_header Connection ""; }
    location /show { upstream_show; }
--- steps
>>> wait /show?app
Upstream name: app; Backend server count: 1
        server 127.0.0.1:$TEST_NGINX_PORT1 weight=1 max_fails=2 fail_timeout=10s;

>>> consul PUT /v1/kv/upstreams/app/127.0.0.1:$TEST_NGINX_PORT2
>>> wait /show?app
Upstream name: app; Backend server count: 2
        server 127.0.0.1:$TEST_NGINX_PORT2 weight=1 max_fails=2 fail_timeout=10s;
        server 127.0.0.1:$TEST_NGINX_PORT1 weight=1 max_fails=2 fail_timeout=10s;

>>> traffic / 40
one *
two *

>>> consul DELETE /v1/kv/upstreams/app/127.0.0.1:$TEST_NGINX_PORT1
>>> wait /show?app
Upstream name: app; Backend server count: 1
        server 127.0.0.1:$TEST_NGINX_PORT2 weight=1 max_fails=2 fail_timeout=10s;

>>> traffic / 20
two 20

>>> consul PUT /v1/kv/upstreams/app/127.0.0.1:$TEST_NGINX_PORT3
>>> wait /show?app
Upstream name: app; Backend server count: 2
        server 127.0.0.1:$TEST_NGINX_PORT3 weight=1 max_fails=2 fail_timeout=10s;
        server 127.0.0.1:$TEST_NGINX_PORT2 weight=1 max_fails=2 fail_timeout=10s;

>>> traffic / 40
two *
three *
--- no_error_log
[error]

=== TEST 7: hash: servers added and removed under traffic
--- registry: consul
--- init
>>> consul PUT /v1/kv/upstreams/app/127.0.0.1:$TEST_NGINX_PORT1
--- http_config
    upstream app {
        hash $request_id;
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

>>> consul PUT /v1/kv/upstreams/app/127.0.0.1:$TEST_NGINX_PORT2
>>> wait /show?app
Upstream name: app; Backend server count: 2
        server 127.0.0.1:$TEST_NGINX_PORT2 weight=1 max_fails=2 fail_timeout=10s;
        server 127.0.0.1:$TEST_NGINX_PORT1 weight=1 max_fails=2 fail_timeout=10s;

>>> traffic / 40
one >0
two >0

>>> consul DELETE /v1/kv/upstreams/app/127.0.0.1:$TEST_NGINX_PORT1
>>> wait /show?app
Upstream name: app; Backend server count: 1
        server 127.0.0.1:$TEST_NGINX_PORT2 weight=1 max_fails=2 fail_timeout=10s;

>>> traffic / 20
two 20

>>> consul PUT /v1/kv/upstreams/app/127.0.0.1:$TEST_NGINX_PORT3
>>> wait /show?app
Upstream name: app; Backend server count: 2
        server 127.0.0.1:$TEST_NGINX_PORT3 weight=1 max_fails=2 fail_timeout=10s;
        server 127.0.0.1:$TEST_NGINX_PORT2 weight=1 max_fails=2 fail_timeout=10s;

>>> traffic / 40
two >0
three >0
--- no_error_log
[error]

=== TEST 8: hash with keepalive: servers added and removed under traffic
--- registry: consul
--- init
>>> consul PUT /v1/kv/upstreams/app/127.0.0.1:$TEST_NGINX_PORT1
--- http_config
    upstream app {
        hash $request_id;
        upsync 127.0.0.1:$TEST_NGINX_CONSUL_PORT/v1/kv/upstreams/app/ upsync_interval=50ms upsync_type=consul;
        upsync_dump_path $TEST_NGINX_DIR/servers_app.conf;
        keepalive 8;
    }
    server { listen 127.0.0.1:$TEST_NGINX_PORT1; return 200 "one\n"; }
    server { listen 127.0.0.1:$TEST_NGINX_PORT2; return 200 "two\n"; }
    server { listen 127.0.0.1:$TEST_NGINX_PORT3; return 200 "three\n"; }
--- config
    location / { proxy_pass http://app; proxy_http_version 1.1; proxy_set_header Connection ""; }
    location /show { upstream_show; }
--- steps
>>> wait /show?app
Upstream name: app; Backend server count: 1
        server 127.0.0.1:$TEST_NGINX_PORT1 weight=1 max_fails=2 fail_timeout=10s;

>>> consul PUT /v1/kv/upstreams/app/127.0.0.1:$TEST_NGINX_PORT2
>>> wait /show?app
Upstream name: app; Backend server count: 2
        server 127.0.0.1:$TEST_NGINX_PORT2 weight=1 max_fails=2 fail_timeout=10s;
        server 127.0.0.1:$TEST_NGINX_PORT1 weight=1 max_fails=2 fail_timeout=10s;

>>> traffic / 40
one >0
two >0

>>> consul DELETE /v1/kv/upstreams/app/127.0.0.1:$TEST_NGINX_PORT1
>>> wait /show?app
Upstream name: app; Backend server count: 1
        server 127.0.0.1:$TEST_NGINX_PORT2 weight=1 max_fails=2 fail_timeout=10s;

>>> traffic / 20
two 20

>>> consul PUT /v1/kv/upstreams/app/127.0.0.1:$TEST_NGINX_PORT3
>>> wait /show?app
Upstream name: app; Backend server count: 2
        server 127.0.0.1:$TEST_NGINX_PORT3 weight=1 max_fails=2 fail_timeout=10s;
        server 127.0.0.1:$TEST_NGINX_PORT2 weight=1 max_fails=2 fail_timeout=10s;

>>> traffic / 40
two >0
three >0
--- no_error_log
[error]

=== TEST 9: random: servers added and removed under traffic
--- registry: consul
--- init
>>> consul PUT /v1/kv/upstreams/app/127.0.0.1:$TEST_NGINX_PORT1
--- http_config
    upstream app {
        random;
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

>>> consul PUT /v1/kv/upstreams/app/127.0.0.1:$TEST_NGINX_PORT2
>>> wait /show?app
Upstream name: app; Backend server count: 2
        server 127.0.0.1:$TEST_NGINX_PORT2 weight=1 max_fails=2 fail_timeout=10s;
        server 127.0.0.1:$TEST_NGINX_PORT1 weight=1 max_fails=2 fail_timeout=10s;

>>> traffic / 40
one >0
two >0

>>> consul DELETE /v1/kv/upstreams/app/127.0.0.1:$TEST_NGINX_PORT1
>>> wait /show?app
Upstream name: app; Backend server count: 1
        server 127.0.0.1:$TEST_NGINX_PORT2 weight=1 max_fails=2 fail_timeout=10s;

>>> traffic / 20
two 20

>>> consul PUT /v1/kv/upstreams/app/127.0.0.1:$TEST_NGINX_PORT3
>>> wait /show?app
Upstream name: app; Backend server count: 2
        server 127.0.0.1:$TEST_NGINX_PORT3 weight=1 max_fails=2 fail_timeout=10s;
        server 127.0.0.1:$TEST_NGINX_PORT2 weight=1 max_fails=2 fail_timeout=10s;

>>> traffic / 40
two >0
three >0
--- no_error_log
[error]

=== TEST 10: random with keepalive: servers added and removed under traffic
--- registry: consul
--- init
>>> consul PUT /v1/kv/upstreams/app/127.0.0.1:$TEST_NGINX_PORT1
--- http_config
    upstream app {
        random;
        upsync 127.0.0.1:$TEST_NGINX_CONSUL_PORT/v1/kv/upstreams/app/ upsync_interval=50ms upsync_type=consul;
        upsync_dump_path $TEST_NGINX_DIR/servers_app.conf;
        keepalive 8;
    }
    server { listen 127.0.0.1:$TEST_NGINX_PORT1; return 200 "one\n"; }
    server { listen 127.0.0.1:$TEST_NGINX_PORT2; return 200 "two\n"; }
    server { listen 127.0.0.1:$TEST_NGINX_PORT3; return 200 "three\n"; }
--- config
    location / { proxy_pass http://app; proxy_http_version 1.1; proxy_set_header Connection ""; }
    location /show { upstream_show; }
--- steps
>>> wait /show?app
Upstream name: app; Backend server count: 1
        server 127.0.0.1:$TEST_NGINX_PORT1 weight=1 max_fails=2 fail_timeout=10s;

>>> consul PUT /v1/kv/upstreams/app/127.0.0.1:$TEST_NGINX_PORT2
>>> wait /show?app
Upstream name: app; Backend server count: 2
        server 127.0.0.1:$TEST_NGINX_PORT2 weight=1 max_fails=2 fail_timeout=10s;
        server 127.0.0.1:$TEST_NGINX_PORT1 weight=1 max_fails=2 fail_timeout=10s;

>>> traffic / 40
one >0
two >0

>>> consul DELETE /v1/kv/upstreams/app/127.0.0.1:$TEST_NGINX_PORT1
>>> wait /show?app
Upstream name: app; Backend server count: 1
        server 127.0.0.1:$TEST_NGINX_PORT2 weight=1 max_fails=2 fail_timeout=10s;

>>> traffic / 20
two 20

>>> consul PUT /v1/kv/upstreams/app/127.0.0.1:$TEST_NGINX_PORT3
>>> wait /show?app
Upstream name: app; Backend server count: 2
        server 127.0.0.1:$TEST_NGINX_PORT3 weight=1 max_fails=2 fail_timeout=10s;
        server 127.0.0.1:$TEST_NGINX_PORT2 weight=1 max_fails=2 fail_timeout=10s;

>>> traffic / 40
two >0
three >0
--- no_error_log
[error]

=== TEST 11: a list that grows past 64 servers while requests walk it
--- registry: consul
--- init
>>> consul PUT /v1/kv/upstreams/big/127.0.0.1:$TEST_NGINX_PORT1
--- http_config
    upstream big {
        upsync 127.0.0.1:$TEST_NGINX_CONSUL_PORT/v1/kv/upstreams/big/ upsync_interval=50ms upsync_type=consul;
        upsync_dump_path $TEST_NGINX_DIR/servers_big.conf;
    }
    server { listen 127.0.0.1:$TEST_NGINX_PORT1; return 200 "one\n"; }
--- config
    location / { proxy_pass http://big; proxy_next_upstream error; proxy_next_upstream_tries 0; }
--- steps
>>> traffic / 5
one 5

>>> consul PUT /v1/kv/upstreams/big/127.0.0.1:1
{"max_fails":0}
>>> consul PUT /v1/kv/upstreams/big/127.0.0.1:2
{"max_fails":0}
>>> consul PUT /v1/kv/upstreams/big/127.0.0.1:3
{"max_fails":0}
>>> consul PUT /v1/kv/upstreams/big/127.0.0.1:4
{"max_fails":0}
>>> consul PUT /v1/kv/upstreams/big/127.0.0.1:5
{"max_fails":0}
>>> consul PUT /v1/kv/upstreams/big/127.0.0.1:6
{"max_fails":0}
>>> consul PUT /v1/kv/upstreams/big/127.0.0.1:7
{"max_fails":0}
>>> consul PUT /v1/kv/upstreams/big/127.0.0.1:8
{"max_fails":0}
>>> consul PUT /v1/kv/upstreams/big/127.0.0.1:9
{"max_fails":0}
>>> consul PUT /v1/kv/upstreams/big/127.0.0.1:10
{"max_fails":0}
>>> consul PUT /v1/kv/upstreams/big/127.0.0.1:11
{"max_fails":0}
>>> consul PUT /v1/kv/upstreams/big/127.0.0.1:12
{"max_fails":0}
>>> consul PUT /v1/kv/upstreams/big/127.0.0.1:13
{"max_fails":0}
>>> consul PUT /v1/kv/upstreams/big/127.0.0.1:14
{"max_fails":0}
>>> consul PUT /v1/kv/upstreams/big/127.0.0.1:15
{"max_fails":0}
>>> consul PUT /v1/kv/upstreams/big/127.0.0.1:16
{"max_fails":0}
>>> consul PUT /v1/kv/upstreams/big/127.0.0.1:17
{"max_fails":0}
>>> consul PUT /v1/kv/upstreams/big/127.0.0.1:18
{"max_fails":0}
>>> consul PUT /v1/kv/upstreams/big/127.0.0.1:19
{"max_fails":0}
>>> consul PUT /v1/kv/upstreams/big/127.0.0.1:20
{"max_fails":0}
>>> consul PUT /v1/kv/upstreams/big/127.0.0.1:21
{"max_fails":0}
>>> consul PUT /v1/kv/upstreams/big/127.0.0.1:22
{"max_fails":0}
>>> consul PUT /v1/kv/upstreams/big/127.0.0.1:23
{"max_fails":0}
>>> consul PUT /v1/kv/upstreams/big/127.0.0.1:24
{"max_fails":0}
>>> consul PUT /v1/kv/upstreams/big/127.0.0.1:25
{"max_fails":0}
>>> consul PUT /v1/kv/upstreams/big/127.0.0.1:26
{"max_fails":0}
>>> consul PUT /v1/kv/upstreams/big/127.0.0.1:27
{"max_fails":0}
>>> consul PUT /v1/kv/upstreams/big/127.0.0.1:28
{"max_fails":0}
>>> consul PUT /v1/kv/upstreams/big/127.0.0.1:29
{"max_fails":0}
>>> consul PUT /v1/kv/upstreams/big/127.0.0.1:30
{"max_fails":0}
>>> consul PUT /v1/kv/upstreams/big/127.0.0.1:31
{"max_fails":0}
>>> consul PUT /v1/kv/upstreams/big/127.0.0.1:32
{"max_fails":0}
>>> consul PUT /v1/kv/upstreams/big/127.0.0.1:33
{"max_fails":0}
>>> consul PUT /v1/kv/upstreams/big/127.0.0.1:34
{"max_fails":0}
>>> consul PUT /v1/kv/upstreams/big/127.0.0.1:35
{"max_fails":0}
>>> consul PUT /v1/kv/upstreams/big/127.0.0.1:36
{"max_fails":0}
>>> consul PUT /v1/kv/upstreams/big/127.0.0.1:37
{"max_fails":0}
>>> consul PUT /v1/kv/upstreams/big/127.0.0.1:38
{"max_fails":0}
>>> consul PUT /v1/kv/upstreams/big/127.0.0.1:39
{"max_fails":0}
>>> consul PUT /v1/kv/upstreams/big/127.0.0.1:40
{"max_fails":0}
>>> consul PUT /v1/kv/upstreams/big/127.0.0.1:41
{"max_fails":0}
>>> consul PUT /v1/kv/upstreams/big/127.0.0.1:42
{"max_fails":0}
>>> consul PUT /v1/kv/upstreams/big/127.0.0.1:43
{"max_fails":0}
>>> consul PUT /v1/kv/upstreams/big/127.0.0.1:44
{"max_fails":0}
>>> consul PUT /v1/kv/upstreams/big/127.0.0.1:45
{"max_fails":0}
>>> consul PUT /v1/kv/upstreams/big/127.0.0.1:46
{"max_fails":0}
>>> consul PUT /v1/kv/upstreams/big/127.0.0.1:47
{"max_fails":0}
>>> consul PUT /v1/kv/upstreams/big/127.0.0.1:48
{"max_fails":0}
>>> consul PUT /v1/kv/upstreams/big/127.0.0.1:49
{"max_fails":0}
>>> consul PUT /v1/kv/upstreams/big/127.0.0.1:50
{"max_fails":0}
>>> consul PUT /v1/kv/upstreams/big/127.0.0.1:51
{"max_fails":0}
>>> consul PUT /v1/kv/upstreams/big/127.0.0.1:52
{"max_fails":0}
>>> consul PUT /v1/kv/upstreams/big/127.0.0.1:53
{"max_fails":0}
>>> consul PUT /v1/kv/upstreams/big/127.0.0.1:54
{"max_fails":0}
>>> consul PUT /v1/kv/upstreams/big/127.0.0.1:55
{"max_fails":0}
>>> consul PUT /v1/kv/upstreams/big/127.0.0.1:56
{"max_fails":0}
>>> consul PUT /v1/kv/upstreams/big/127.0.0.1:57
{"max_fails":0}
>>> consul PUT /v1/kv/upstreams/big/127.0.0.1:58
{"max_fails":0}
>>> consul PUT /v1/kv/upstreams/big/127.0.0.1:59
{"max_fails":0}
>>> consul PUT /v1/kv/upstreams/big/127.0.0.1:60
{"max_fails":0}
>>> consul PUT /v1/kv/upstreams/big/127.0.0.1:61
{"max_fails":0}
>>> consul PUT /v1/kv/upstreams/big/127.0.0.1:62
{"max_fails":0}
>>> consul PUT /v1/kv/upstreams/big/127.0.0.1:63
{"max_fails":0}
>>> consul PUT /v1/kv/upstreams/big/127.0.0.1:64
{"max_fails":0}
>>> consul PUT /v1/kv/upstreams/big/127.0.0.1:65
{"max_fails":0}
>>> consul PUT /v1/kv/upstreams/big/127.0.0.1:66
{"max_fails":0}
>>> consul PUT /v1/kv/upstreams/big/127.0.0.1:67
{"max_fails":0}
>>> consul PUT /v1/kv/upstreams/big/127.0.0.1:68
{"max_fails":0}
>>> consul PUT /v1/kv/upstreams/big/127.0.0.1:69
{"max_fails":0}
>>> log updated from the registry, 70 servers
>>> traffic / 30
one 30
