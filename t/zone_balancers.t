# Every balancer on a shared zone (nginx 1.27.3 and newer), with and without
# keepalive, four workers, real traffic, and assertions on the distribution:
# weighted round robin is exact across workers (the weights are shared),
# ip_hash and hash keep a client or key on one server, hash ... consistent
# moves only the keys consistent hashing gives to a new server.
use lib 't/lib';
use Test::Upsync;

run_tests();

__DATA__

=== TEST 1: weighted round robin: exact shares across workers, servers added and removed
--- skip_nginx: <1.27.3
--- workers: 4
--- registry: consul
--- init
>>> consul PUT /v1/kv/upstreams/app/127.0.0.1:$TEST_NGINX_PORT1
>>> consul PUT /v1/kv/upstreams/app/127.0.0.1:$TEST_NGINX_PORT2
{"weight":3}
--- http_config
    upstream app {
        zone app 64k;
        
        upsync 127.0.0.1:$TEST_NGINX_CONSUL_PORT/v1/kv/upstreams/app/ upsync_interval=50ms upsync_type=consul;
        upsync_dump_path $TEST_NGINX_DIR/servers_app.conf;
    }
    server { listen 127.0.0.1:$TEST_NGINX_PORT1; return 200 "one\n"; }
    server { listen 127.0.0.1:$TEST_NGINX_PORT2; return 200 "two\n"; }
    server { listen 127.0.0.1:$TEST_NGINX_PORT3; return 200 "three\n"; }
--- config
    location / { proxy_pass http://app; proxy_http_version 1.1; proxy_set_header Connection ""; }
    location /show { upstream_show; }
--- steps
>>> log updated from the registry, 2 servers
>>> agree /show?app 8 count:.2\n
>>> traffic / 40
one 10
two 30

>>> consul PUT /v1/kv/upstreams/app/127.0.0.1:$TEST_NGINX_PORT3
>>> log updated from the registry, 3 servers
>>> traffic / 50
one 10
two 30
three 10

>>> consul DELETE /v1/kv/upstreams/app/127.0.0.1:$TEST_NGINX_PORT1
>>> log updated from the registry, 2 servers\b.*\n(?s:.*)updated from the registry, 2 servers
>>> traffic / 40
two 30
three 10

--- no_error_log
[error]

=== TEST 2: least_conn: every server gets requests, a removed one none
--- skip_nginx: <1.27.3
--- workers: 4
--- registry: consul
--- init
>>> consul PUT /v1/kv/upstreams/app/127.0.0.1:$TEST_NGINX_PORT1
>>> consul PUT /v1/kv/upstreams/app/127.0.0.1:$TEST_NGINX_PORT2
{"weight":3}
--- http_config
    upstream app {
        zone app 64k;
        least_conn;
        upsync 127.0.0.1:$TEST_NGINX_CONSUL_PORT/v1/kv/upstreams/app/ upsync_interval=50ms upsync_type=consul;
        upsync_dump_path $TEST_NGINX_DIR/servers_app.conf;
    }
    server { listen 127.0.0.1:$TEST_NGINX_PORT1; return 200 "one\n"; }
    server { listen 127.0.0.1:$TEST_NGINX_PORT2; return 200 "two\n"; }
    server { listen 127.0.0.1:$TEST_NGINX_PORT3; return 200 "three\n"; }
--- config
    location / { proxy_pass http://app; proxy_http_version 1.1; proxy_set_header Connection ""; }
    location /show { upstream_show; }
--- steps
>>> log updated from the registry, 2 servers
>>> agree /show?app 8 count:.2\n
>>> traffic / 40
one >0
two >0

>>> consul PUT /v1/kv/upstreams/app/127.0.0.1:$TEST_NGINX_PORT3
>>> log updated from the registry, 3 servers
>>> traffic / 60
one >0
two >0
three >0

>>> consul DELETE /v1/kv/upstreams/app/127.0.0.1:$TEST_NGINX_PORT1
>>> log updated from the registry, 2 servers\b.*\n(?s:.*)updated from the registry, 2 servers
>>> traffic / 40
two >0
three >0

--- no_error_log
[error]

=== TEST 3: ip_hash: one client stays on one server
--- skip_nginx: <1.27.3
--- workers: 4
--- registry: consul
--- init
>>> consul PUT /v1/kv/upstreams/app/127.0.0.1:$TEST_NGINX_PORT1
>>> consul PUT /v1/kv/upstreams/app/127.0.0.1:$TEST_NGINX_PORT2
{"weight":3}
--- http_config
    upstream app {
        zone app 64k;
        ip_hash;
        upsync 127.0.0.1:$TEST_NGINX_CONSUL_PORT/v1/kv/upstreams/app/ upsync_interval=50ms upsync_type=consul;
        upsync_dump_path $TEST_NGINX_DIR/servers_app.conf;
    }
    server { listen 127.0.0.1:$TEST_NGINX_PORT1; return 200 "one\n"; }
    server { listen 127.0.0.1:$TEST_NGINX_PORT2; return 200 "two\n"; }
    server { listen 127.0.0.1:$TEST_NGINX_PORT3; return 200 "three\n"; }
--- config
    location / { proxy_pass http://app; proxy_http_version 1.1; proxy_set_header Connection ""; }
    location /show { upstream_show; }
--- steps
>>> log updated from the registry, 2 servers
>>> agree /show?app 8 count:.2\n
>>> agree / 20
>>> consul PUT /v1/kv/upstreams/app/127.0.0.1:$TEST_NGINX_PORT3
>>> log updated from the registry, 3 servers
>>> agree / 20
>>> consul DELETE /v1/kv/upstreams/app/127.0.0.1:$TEST_NGINX_PORT1
>>> log updated from the registry, 2 servers\b.*\n(?s:.*)updated from the registry, 2 servers
>>> agree / 20 ^status 200: (two|three)
--- no_error_log
[error]

=== TEST 4: hash: one key stays on one server
--- skip_nginx: <1.27.3
--- workers: 4
--- registry: consul
--- init
>>> consul PUT /v1/kv/upstreams/app/127.0.0.1:$TEST_NGINX_PORT1
>>> consul PUT /v1/kv/upstreams/app/127.0.0.1:$TEST_NGINX_PORT2
{"weight":3}
--- http_config
    upstream app {
        zone app 64k;
        hash $arg_k;
        upsync 127.0.0.1:$TEST_NGINX_CONSUL_PORT/v1/kv/upstreams/app/ upsync_interval=50ms upsync_type=consul;
        upsync_dump_path $TEST_NGINX_DIR/servers_app.conf;
    }
    server { listen 127.0.0.1:$TEST_NGINX_PORT1; return 200 "one\n"; }
    server { listen 127.0.0.1:$TEST_NGINX_PORT2; return 200 "two\n"; }
    server { listen 127.0.0.1:$TEST_NGINX_PORT3; return 200 "three\n"; }
--- config
    location / { proxy_pass http://app; proxy_http_version 1.1; proxy_set_header Connection ""; }
    location /show { upstream_show; }
--- steps
>>> log updated from the registry, 2 servers
>>> agree /show?app 8 count:.2\n
>>> agree /?k=a 10
>>> agree /?k=b 10
>>> consul PUT /v1/kv/upstreams/app/127.0.0.1:$TEST_NGINX_PORT3
>>> log updated from the registry, 3 servers
>>> agree /?k=a 10
>>> agree /?k=b 10
>>> consul DELETE /v1/kv/upstreams/app/127.0.0.1:$TEST_NGINX_PORT1
>>> log updated from the registry, 2 servers\b.*\n(?s:.*)updated from the registry, 2 servers
>>> agree /?k=a 10 ^status 200: (two|three)
--- no_error_log
[error]

=== TEST 5: hash consistent: a new server takes only the keys consistent hashing moves to it
--- skip_nginx: <1.27.3
--- workers: 4
--- registry: consul
--- init
>>> consul PUT /v1/kv/upstreams/app/127.0.0.1:$TEST_NGINX_PORT1
>>> consul PUT /v1/kv/upstreams/app/127.0.0.1:$TEST_NGINX_PORT2
{"weight":3}
--- http_config
    upstream app {
        zone app 64k;
        hash $arg_k consistent;
        upsync 127.0.0.1:$TEST_NGINX_CONSUL_PORT/v1/kv/upstreams/app/ upsync_interval=50ms upsync_type=consul;
        upsync_dump_path $TEST_NGINX_DIR/servers_app.conf;
    }
    server { listen 127.0.0.1:$TEST_NGINX_PORT1; return 200 "one\n"; }
    server { listen 127.0.0.1:$TEST_NGINX_PORT2; return 200 "two\n"; }
    server { listen 127.0.0.1:$TEST_NGINX_PORT3; return 200 "three\n"; }
--- config
    location / { proxy_pass http://app; proxy_http_version 1.1; proxy_set_header Connection ""; }
    location /show { upstream_show; }
--- steps
>>> log updated from the registry, 2 servers
>>> agree /show?app 8 count:.2\n
>>> keys /?k= 200
>>> consul PUT /v1/kv/upstreams/app/127.0.0.1:$TEST_NGINX_PORT3
>>> log updated from the registry, 3 servers
>>> keys /?k= 200
moved three
>>> agree /?k=17 10
>>> consul DELETE /v1/kv/upstreams/app/127.0.0.1:$TEST_NGINX_PORT1
>>> log updated from the registry, 2 servers\b.*\n(?s:.*)updated from the registry, 2 servers
>>> keys /?k= 200
left one
--- no_error_log
[error]

=== TEST 6: random: every server gets requests, a removed one none
--- skip_nginx: <1.27.3
--- workers: 4
--- registry: consul
--- init
>>> consul PUT /v1/kv/upstreams/app/127.0.0.1:$TEST_NGINX_PORT1
>>> consul PUT /v1/kv/upstreams/app/127.0.0.1:$TEST_NGINX_PORT2
{"weight":3}
--- http_config
    upstream app {
        zone app 64k;
        random;
        upsync 127.0.0.1:$TEST_NGINX_CONSUL_PORT/v1/kv/upstreams/app/ upsync_interval=50ms upsync_type=consul;
        upsync_dump_path $TEST_NGINX_DIR/servers_app.conf;
    }
    server { listen 127.0.0.1:$TEST_NGINX_PORT1; return 200 "one\n"; }
    server { listen 127.0.0.1:$TEST_NGINX_PORT2; return 200 "two\n"; }
    server { listen 127.0.0.1:$TEST_NGINX_PORT3; return 200 "three\n"; }
--- config
    location / { proxy_pass http://app; proxy_http_version 1.1; proxy_set_header Connection ""; }
    location /show { upstream_show; }
--- steps
>>> log updated from the registry, 2 servers
>>> agree /show?app 8 count:.2\n
>>> traffic / 60
one >0
two >0

>>> consul PUT /v1/kv/upstreams/app/127.0.0.1:$TEST_NGINX_PORT3
>>> log updated from the registry, 3 servers
>>> traffic / 90
one >0
two >0
three >0

>>> consul DELETE /v1/kv/upstreams/app/127.0.0.1:$TEST_NGINX_PORT1
>>> log updated from the registry, 2 servers\b.*\n(?s:.*)updated from the registry, 2 servers
>>> traffic / 40
two >0
three >0

--- no_error_log
[error]

=== TEST 7: weighted round robin: exact shares across workers, servers added and removed with keepalive
--- skip_nginx: <1.27.3
--- workers: 4
--- registry: consul
--- init
>>> consul PUT /v1/kv/upstreams/app/127.0.0.1:$TEST_NGINX_PORT1
>>> consul PUT /v1/kv/upstreams/app/127.0.0.1:$TEST_NGINX_PORT2
{"weight":3}
--- http_config
    upstream app {
        zone app 64k;
        
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
>>> log updated from the registry, 2 servers
>>> agree /show?app 8 count:.2\n
>>> traffic / 40
one 10
two 30

>>> consul PUT /v1/kv/upstreams/app/127.0.0.1:$TEST_NGINX_PORT3
>>> log updated from the registry, 3 servers
>>> traffic / 50
one 10
two 30
three 10

>>> consul DELETE /v1/kv/upstreams/app/127.0.0.1:$TEST_NGINX_PORT1
>>> log updated from the registry, 2 servers\b.*\n(?s:.*)updated from the registry, 2 servers
>>> traffic / 40
two 30
three 10

--- no_error_log
[error]

=== TEST 8: least_conn: every server gets requests, a removed one none with keepalive
--- skip_nginx: <1.27.3
--- workers: 4
--- registry: consul
--- init
>>> consul PUT /v1/kv/upstreams/app/127.0.0.1:$TEST_NGINX_PORT1
>>> consul PUT /v1/kv/upstreams/app/127.0.0.1:$TEST_NGINX_PORT2
{"weight":3}
--- http_config
    upstream app {
        zone app 64k;
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
>>> log updated from the registry, 2 servers
>>> agree /show?app 8 count:.2\n
>>> traffic / 40
one >0
two >0

>>> consul PUT /v1/kv/upstreams/app/127.0.0.1:$TEST_NGINX_PORT3
>>> log updated from the registry, 3 servers
>>> traffic / 60
one >0
two >0
three >0

>>> consul DELETE /v1/kv/upstreams/app/127.0.0.1:$TEST_NGINX_PORT1
>>> log updated from the registry, 2 servers\b.*\n(?s:.*)updated from the registry, 2 servers
>>> traffic / 40
two >0
three >0

--- no_error_log
[error]

=== TEST 9: ip_hash: one client stays on one server with keepalive
--- skip_nginx: <1.27.3
--- workers: 4
--- registry: consul
--- init
>>> consul PUT /v1/kv/upstreams/app/127.0.0.1:$TEST_NGINX_PORT1
>>> consul PUT /v1/kv/upstreams/app/127.0.0.1:$TEST_NGINX_PORT2
{"weight":3}
--- http_config
    upstream app {
        zone app 64k;
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
>>> log updated from the registry, 2 servers
>>> agree /show?app 8 count:.2\n
>>> agree / 20
>>> consul PUT /v1/kv/upstreams/app/127.0.0.1:$TEST_NGINX_PORT3
>>> log updated from the registry, 3 servers
>>> agree / 20
>>> consul DELETE /v1/kv/upstreams/app/127.0.0.1:$TEST_NGINX_PORT1
>>> log updated from the registry, 2 servers\b.*\n(?s:.*)updated from the registry, 2 servers
>>> agree / 20 ^status 200: (two|three)
--- no_error_log
[error]

=== TEST 10: hash: one key stays on one server with keepalive
--- skip_nginx: <1.27.3
--- workers: 4
--- registry: consul
--- init
>>> consul PUT /v1/kv/upstreams/app/127.0.0.1:$TEST_NGINX_PORT1
>>> consul PUT /v1/kv/upstreams/app/127.0.0.1:$TEST_NGINX_PORT2
{"weight":3}
--- http_config
    upstream app {
        zone app 64k;
        hash $arg_k;
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
>>> log updated from the registry, 2 servers
>>> agree /show?app 8 count:.2\n
>>> agree /?k=a 10
>>> agree /?k=b 10
>>> consul PUT /v1/kv/upstreams/app/127.0.0.1:$TEST_NGINX_PORT3
>>> log updated from the registry, 3 servers
>>> agree /?k=a 10
>>> agree /?k=b 10
>>> consul DELETE /v1/kv/upstreams/app/127.0.0.1:$TEST_NGINX_PORT1
>>> log updated from the registry, 2 servers\b.*\n(?s:.*)updated from the registry, 2 servers
>>> agree /?k=a 10 ^status 200: (two|three)
--- no_error_log
[error]

=== TEST 11: hash consistent: a new server takes only the keys consistent hashing moves to it with keepalive
--- skip_nginx: <1.27.3
--- workers: 4
--- registry: consul
--- init
>>> consul PUT /v1/kv/upstreams/app/127.0.0.1:$TEST_NGINX_PORT1
>>> consul PUT /v1/kv/upstreams/app/127.0.0.1:$TEST_NGINX_PORT2
{"weight":3}
--- http_config
    upstream app {
        zone app 64k;
        hash $arg_k consistent;
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
>>> log updated from the registry, 2 servers
>>> agree /show?app 8 count:.2\n
>>> keys /?k= 200
>>> consul PUT /v1/kv/upstreams/app/127.0.0.1:$TEST_NGINX_PORT3
>>> log updated from the registry, 3 servers
>>> keys /?k= 200
moved three
>>> agree /?k=17 10
>>> consul DELETE /v1/kv/upstreams/app/127.0.0.1:$TEST_NGINX_PORT1
>>> log updated from the registry, 2 servers\b.*\n(?s:.*)updated from the registry, 2 servers
>>> keys /?k= 200
left one
--- no_error_log
[error]

=== TEST 12: random: every server gets requests, a removed one none with keepalive
--- skip_nginx: <1.27.3
--- workers: 4
--- registry: consul
--- init
>>> consul PUT /v1/kv/upstreams/app/127.0.0.1:$TEST_NGINX_PORT1
>>> consul PUT /v1/kv/upstreams/app/127.0.0.1:$TEST_NGINX_PORT2
{"weight":3}
--- http_config
    upstream app {
        zone app 64k;
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
>>> log updated from the registry, 2 servers
>>> agree /show?app 8 count:.2\n
>>> traffic / 60
one >0
two >0

>>> consul PUT /v1/kv/upstreams/app/127.0.0.1:$TEST_NGINX_PORT3
>>> log updated from the registry, 3 servers
>>> traffic / 90
one >0
two >0
three >0

>>> consul DELETE /v1/kv/upstreams/app/127.0.0.1:$TEST_NGINX_PORT1
>>> log updated from the registry, 2 servers\b.*\n(?s:.*)updated from the registry, 2 servers
>>> traffic / 40
two >0
three >0

--- no_error_log
[error]
