# Configuration of upsync: mistakes fail "nginx -t" with a message that names
# the directive and the problem; good configurations start.
use lib 't/lib';
use Test::Upsync;

run_tests();

__DATA__

=== TEST 1: an unknown parameter
--- http_config
    upstream test {
        upsync 127.0.0.1:8500/v1/kv/upstreams/test upsync_type=consul upsync_color=blue;
    }
--- must_die
--- error_log
"upsync" directive: unknown parameter "upsync_color"

=== TEST 2: an unknown upsync_type
--- http_config
    upstream test {
        upsync 127.0.0.1:8500/v1/kv/upstreams/test upsync_type=zookeeper;
    }
--- must_die
--- error_log
"upsync" directive: unknown upsync_type "zookeeper"

=== TEST 3: upsync_type is required
--- http_config
    upstream test {
        upsync 127.0.0.1:8500/v1/kv/upstreams/test upsync_interval=1s;
    }
--- must_die
--- error_log
"upsync" directive: upsync_type is required

=== TEST 4: a missing path
--- http_config
    upstream test {
        upsync 127.0.0.1:8500 upsync_type=consul;
    }
--- must_die
--- error_log
"upsync" directive: missing path in "127.0.0.1:8500"

=== TEST 5: a bad time
--- http_config
    upstream test {
        upsync 127.0.0.1:8500/v1/kv/upstreams/test upsync_type=consul upsync_interval=often;
    }
--- must_die
--- error_log
"upsync" directive: invalid upsync_interval "often"

=== TEST 6: a bad port
--- http_config
    upstream test {
        upsync 127.0.0.1:85000/v1/kv/upstreams/test upsync_type=consul;
    }
--- must_die
--- error_log
"upsync" directive: invalid port in "127.0.0.1:85000"

=== TEST 7: a duplicate directive
--- http_config
    upstream test {
        upsync 127.0.0.1:8500/v1/kv/upstreams/test upsync_type=consul;
        upsync 127.0.0.1:8500/v1/kv/upstreams/test upsync_type=consul;
    }
--- must_die
--- error_log
"upsync" directive is duplicate

=== TEST 8: upsync outside an upstream
--- config
    location / {
        upsync 127.0.0.1:8500/v1/kv/upstreams/test upsync_type=consul;
    }
--- must_die
--- error_log
"upsync" directive is not allowed here

=== TEST 9: an unknown upsync_lb
--- http_config
    upstream test {
        upsync 127.0.0.1:8500/v1/kv/upstreams/test upsync_type=consul;
        upsync_lb fastest;
    }
--- must_die
--- error_log
"upsync_lb" directive: unknown method "fastest"

=== TEST 10: "server ... resolve" in a synced upstream: refused, with what to do
--- skip_nginx: <1.27.3
--- http_config
    upstream test {
        zone test 64k;
        resolver 127.0.0.1:1;
        upsync 127.0.0.1:8500/v1/kv/upstreams/test upsync_type=consul;
        server localhost:8088 resolve;
    }
--- must_die
--- error_log
upstream "test": "server localhost:8088 ... resolve" cannot be used with "upsync": the registry decides the upstream's servers

=== TEST 11: a zone before nginx 1.27.3: refused, with what to do
--- skip_nginx: >=1.27.3
--- http_config
    upstream test {
        zone test 64k;
        upsync 127.0.0.1:8500/v1/kv/upstreams/test upsync_type=consul;
    }
--- must_die
--- error_log
nginx: [emerg] upsync: upstream "test" has a "zone": syncing a shared-memory upstream needs nginx 1.27.3 or newer; remove "zone" to keep a list per worker

=== TEST 12: the token never shows in errors
--- http_config
    upstream test {
        upsync 127.0.0.1:8500/v1/kv/upstreams/test upsync_type=etcd upsync_token=SECRET-TOKEN;
    }
--- must_die
--- error_log
upsync_token is for the consul types only
--- no_error_log
SECRET-TOKEN

=== TEST 13: every parameter of the C module, no server line, no dump file
--- http_config
    upstream test {
        upsync 127.0.0.1:1/v1/kv/upstreams/test upsync_type=consul upsync_interval=500ms upsync_timeout=6m strong_dependency=off;
        upsync_dump_path $TEST_NGINX_DIR/servers_test.conf;
        upsync_lb roundrobin;
    }
--- config
    location /upstream_show { upstream_show; }
--- request
GET /upstream_show?test
--- response_body
Upstream name: test; Backend server count: 0

=== TEST 14: an nginx with nginx_upstream_check_module compiled in (here: its symbol, preloaded) is refused, with the reason
--- http_config
    upstream test {
        server 127.0.0.1:$TEST_NGINX_PORT1;
    }
--- config
    location / { proxy_pass http://test; }
--- steps
>>> run
set -e
cd $TEST_NGINX_DIR
echo 'int ngx_http_upstream_check_module = 1;' > check.c
cc -shared -fPIC -o check.so check.c
if LD_PRELOAD=$TEST_NGINX_DIR/check.so $TEST_NGINX_BINARY -t -e $TEST_NGINX_DIR/t.log -p $TEST_NGINX_DIR/ -c conf/nginx.conf > t.out 2>&1; then
    echo "nginx -t passed"; exit 1
fi
cat t.out
grep -q 'this nginx has nginx_upstream_check_module compiled in: its patch changes the layout of every upstream peer' t.out
$TEST_NGINX_BINARY -t -p $TEST_NGINX_DIR/ -c conf/nginx.conf
