# upsync_type=consul_services (catalog, tags) and consul_health (checks), and
# the ACL token.
use lib 't/lib';
use Test::Upsync;

run_tests();

__DATA__

=== TEST 1: catalog: tags give the attributes, an empty ServiceAddress means the node's
--- registry: consul
--- init
>>> consul PUT /v1/catalog/register
{"Node":"n1","Address":"127.0.0.1","Service":{"ID":"web1","Service":"web","Address":"","Port":$TEST_NGINX_PORT1,"Tags":["weight=3","max_fails=5","fail_timeout=1m"]}}
>>> consul PUT /v1/catalog/register
{"Node":"n2","Address":"127.0.0.9","Service":{"ID":"web2","Service":"web","Address":"127.0.0.1","Port":$TEST_NGINX_PORT2,"Tags":["down"]}}
--- http_config
    upstream web {
        upsync 127.0.0.1:$TEST_NGINX_CONSUL_PORT/v1/catalog/service/web upsync_interval=50ms upsync_type=consul_services;
        upsync_dump_path $TEST_NGINX_DIR/servers_web.conf;
    }
    server { listen 127.0.0.1:$TEST_NGINX_PORT1; return 200 "one\n"; }
    server { listen 127.0.0.1:$TEST_NGINX_PORT2; return 200 "two\n"; }
--- config
    location / { proxy_pass http://web; }
    location /show { upstream_show; }
--- steps
>>> wait /show?web
Upstream name: web; Backend server count: 2
        server 127.0.0.1:$TEST_NGINX_PORT2 weight=1 max_fails=2 fail_timeout=10s down;
        server 127.0.0.1:$TEST_NGINX_PORT1 weight=3 max_fails=5 fail_timeout=60s;

>>> traffic / 6
one 6

>>> consul PUT /v1/catalog/register
{"Node":"n2","Address":"127.0.0.9","Service":{"ID":"web2","Service":"web","Address":"127.0.0.1","Port":$TEST_NGINX_PORT2,"Tags":[]}}
>>> wait /show?web
Upstream name: web; Backend server count: 2
        server 127.0.0.1:$TEST_NGINX_PORT2 weight=1 max_fails=2 fail_timeout=10s;
        server 127.0.0.1:$TEST_NGINX_PORT1 weight=3 max_fails=5 fail_timeout=60s;

>>> traffic / 8
one 6
two 2

>>> consul PUT /v1/catalog/deregister
{"Node":"n1","ServiceID":"web1"}
>>> wait /show?web
Upstream name: web; Backend server count: 1
        server 127.0.0.1:$TEST_NGINX_PORT2 weight=1 max_fails=2 fail_timeout=10s;

>>> traffic / 4
two 4

=== TEST 2: health: a failing check keeps the instance, down
--- registry: consul
--- init
>>> consul PUT /v1/catalog/register
{"Node":"n1","Address":"127.0.0.1","Service":{"ID":"api1","Service":"api","Port":$TEST_NGINX_PORT1},"Checks":[{"CheckID":"c1","Name":"c1","Status":"passing","ServiceID":"api1"}]}
>>> consul PUT /v1/catalog/register
{"Node":"n2","Address":"127.0.0.1","Service":{"ID":"api2","Service":"api","Port":$TEST_NGINX_PORT2},"Checks":[{"CheckID":"c2","Name":"c2","Status":"passing","ServiceID":"api2"}]}
--- http_config
    upstream api {
        upsync 127.0.0.1:$TEST_NGINX_CONSUL_PORT/v1/health/service/api upsync_interval=50ms upsync_type=consul_health;
        upsync_dump_path $TEST_NGINX_DIR/servers_api.conf;
    }
    server { listen 127.0.0.1:$TEST_NGINX_PORT1; return 200 "one\n"; }
    server { listen 127.0.0.1:$TEST_NGINX_PORT2; return 200 "two\n"; }
--- config
    location / { proxy_pass http://api; }
    location /show { upstream_show; }
--- steps
>>> wait /show?api
Upstream name: api; Backend server count: 2
        server 127.0.0.1:$TEST_NGINX_PORT2 weight=1 max_fails=2 fail_timeout=10s;
        server 127.0.0.1:$TEST_NGINX_PORT1 weight=1 max_fails=2 fail_timeout=10s;

>>> consul PUT /v1/catalog/register
{"Node":"n2","Address":"127.0.0.1","Service":{"ID":"api2","Service":"api","Port":$TEST_NGINX_PORT2},"Checks":[{"CheckID":"c2","Name":"c2","Status":"critical","ServiceID":"api2"}]}
>>> wait /show?api
Upstream name: api; Backend server count: 2
        server 127.0.0.1:$TEST_NGINX_PORT2 weight=1 max_fails=2 fail_timeout=10s down;
        server 127.0.0.1:$TEST_NGINX_PORT1 weight=1 max_fails=2 fail_timeout=10s;

>>> traffic / 6
one 6

>>> file $TEST_NGINX_DIR/servers_api.conf
server 127.0.0.1:$TEST_NGINX_PORT2 weight=1 max_fails=2 fail_timeout=10s down;
server 127.0.0.1:$TEST_NGINX_PORT1 weight=1 max_fails=2 fail_timeout=10s;

=== TEST 3: the ACL token is sent, and never logged
--- registry: consul
--- consul_args: --token s3cr3t-t0ken
--- init
>>> consul PUT /v1/kv/upstreams/test/127.0.0.1:8089
--- http_config
    upstream test {
        upsync 127.0.0.1:$TEST_NGINX_CONSUL_PORT/v1/kv/upstreams/test/ upsync_interval=50ms upsync_type=consul upsync_token=s3cr3t-t0ken;
        upsync_dump_path $TEST_NGINX_DIR/servers_test.conf;
    }
--- config
    location /show { upstream_show; }
--- steps
>>> wait /show?test
Upstream name: test; Backend server count: 1
        server 127.0.0.1:8089 weight=1 max_fails=2 fail_timeout=10s;
--- no_error_log
s3cr3t-t0ken
[error]

=== TEST 4: a wrong token: a clear error, the list is kept
--- registry: consul
--- consul_args: --token right-token
--- http_config
    upstream test {
        upsync 127.0.0.1:$TEST_NGINX_CONSUL_PORT/v1/kv/upstreams/test/ upsync_interval=50ms upsync_type=consul upsync_token=wrong-token;
        upsync_dump_path $TEST_NGINX_DIR/servers_test.conf;
        server 127.0.0.1:8088;
    }
--- config
    location /show { upstream_show; }
--- steps
>>> log registry answered 403 for /v1/kv/upstreams/test/: Permission denied, keeping the last list
>>> http GET /show?test
Upstream name: test; Backend server count: 1
        server 127.0.0.1:8088 weight=1 max_fails=1 fail_timeout=10s;
--- no_error_log
wrong-token
right-token
