# upsync_type=etcd (the v2 API) against a real etcd: the C module's scenario
# step by step, history cleared, etcd stopped and restarted.
use lib 't/lib';
use Test::Upsync;

run_tests();

__DATA__

=== TEST 1: the C module's scenario over etcd v2
--- registry: etcd
--- http_config
    upstream test {
        upsync 127.0.0.1:$TEST_NGINX_ETCD_PORT/v2/keys/upstreams/test upsync_interval=50ms upsync_timeout=6m upsync_type=etcd;
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

>>> etcd PUT /v2/keys/upstreams/test/127.0.0.1:8089
value=
>>> wait /upstream_list?test
Upstream name: test; Backend server count: 1
        server 127.0.0.1:8089 weight=1 max_fails=2 fail_timeout=10s;

>>> file $TEST_NGINX_DIR/servers_test.conf
server 127.0.0.1:8089 weight=1 max_fails=2 fail_timeout=10s;

>>> etcd PUT /v2/keys/upstreams/test/127.0.0.1:8088
value={"weight":10,"max_fails":3,"fail_timeout":10}
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

>>> etcd DELETE /v2/keys/upstreams/test/127.0.0.1:8089
>>> wait /upstream_list?test
Upstream name: test; Backend server count: 1
        server 127.0.0.1:8088 weight=10 max_fails=3 fail_timeout=10s;

>>> etcd PUT /v2/keys/upstreams/test/127.0.0.1:8089
value={"weight":20,"max_fails":0,"fail_timeout":30}
>>> wait /upstream_list?test
Upstream name: test; Backend server count: 2
        server 127.0.0.1:8089 weight=20 max_fails=0 fail_timeout=30s;
        server 127.0.0.1:8088 weight=10 max_fails=3 fail_timeout=10s;

>>> etcd DELETE /v2/keys/upstreams/test/127.0.0.1:8088
>>> wait /upstream_list?test
Upstream name: test; Backend server count: 1
        server 127.0.0.1:8089 weight=20 max_fails=0 fail_timeout=30s;

>>> etcd PUT /v2/keys/upstreams/test/127.0.0.1:8088
value={"weight":20,"max_fails":0,"fail_timeout":30}
>>> wait /upstream_list?test
Upstream name: test; Backend server count: 2
        server 127.0.0.1:8088 weight=20 max_fails=0 fail_timeout=30s;
        server 127.0.0.1:8089 weight=20 max_fails=0 fail_timeout=30s;

>>> etcd PUT /v2/keys/upstreams/test/127.0.0.1:8088
value={"weight":40}
>>> wait /upstream_list?test
Upstream name: test; Backend server count: 2
        server 127.0.0.1:8088 weight=40 max_fails=2 fail_timeout=10s;
        server 127.0.0.1:8089 weight=20 max_fails=0 fail_timeout=30s;

>>> file $TEST_NGINX_DIR/servers_test.conf
server 127.0.0.1:8088 weight=40 max_fails=2 fail_timeout=10s;
server 127.0.0.1:8089 weight=20 max_fails=0 fail_timeout=30s;

>>> etcd DELETE /v2/keys/upstreams/test?recursive=true
>>> log registry has nothing under /v2/keys/upstreams/test, keeping the last list
>>> http GET /upstream_list?test
Upstream name: test; Backend server count: 2
        server 127.0.0.1:8088 weight=40 max_fails=2 fail_timeout=10s;
        server 127.0.0.1:8089 weight=20 max_fails=0 fail_timeout=30s;

>>> etcd PUT /v2/keys/upstreams/test/127.0.0.1:8088
value={"weight":40,"max_fails":3,"fail_timeout":20, "down":1}
>>> file $TEST_NGINX_DIR/servers_test.conf
server 127.0.0.1:8088 weight=40 max_fails=3 fail_timeout=20s down;

>>> etcd PUT /v2/keys/upstreams/test/127.0.0.1:8088
value={"weight":40,"max_fails":0,"fail_timeout":30, "down":0}
>>> file $TEST_NGINX_DIR/servers_test.conf
server 127.0.0.1:8088 weight=40 max_fails=0 fail_timeout=30s;

>>> wait /upstream_list?test
Upstream name: test; Backend server count: 1
        server 127.0.0.1:8088 weight=40 max_fails=0 fail_timeout=30s;
--- no_error_log
[crit]

=== TEST 2: etcd stopped and restarted: the list is kept, then followed again
--- registry: etcd
--- init
>>> etcd PUT /v2/keys/upstreams/test/127.0.0.1:8089
value=
--- http_config
    upstream test {
        upsync 127.0.0.1:$TEST_NGINX_ETCD_PORT/v2/keys/upstreams/test upsync_interval=3s upsync_type=etcd;
        upsync_dump_path $TEST_NGINX_DIR/servers_test.conf;
    }
--- config
    location /show { upstream_show; }
--- timeout: 20
--- steps
>>> wait /show?test
Upstream name: test; Backend server count: 1
        server 127.0.0.1:8089 weight=1 max_fails=2 fail_timeout=10s;

>>> stop etcd
>>> log registry 127.0.0.1:\d+: cannot connect
>>> start etcd
>>> etcd PUT /v2/keys/upstreams/test/127.0.0.1:8090
value={"weight":3}
>>> wait /show?test
Upstream name: test; Backend server count: 2
        server 127.0.0.1:8090 weight=3 max_fails=2 fail_timeout=10s;
        server 127.0.0.1:8089 weight=1 max_fails=2 fail_timeout=10s;

=== TEST 3: more than 1000 events while the watch was idle: history cleared, a full read
--- registry: etcd
--- init
>>> etcd PUT /v2/keys/upstreams/test/127.0.0.1:8089
value=
--- http_config
    upstream test {
        upsync 127.0.0.1:$TEST_NGINX_ETCD_PORT/v2/keys/upstreams/test upsync_interval=50ms upsync_timeout=2s upsync_type=etcd;
        upsync_dump_path $TEST_NGINX_DIR/servers_test.conf;
    }
--- config
    location /show { upstream_show; }
--- timeout: 30
--- steps
>>> wait /show?test
Upstream name: test; Backend server count: 1
        server 127.0.0.1:8089 weight=1 max_fails=2 fail_timeout=10s;

>>> etcd PUT /v2/keys/elsewhere/key x1100
value=1
>>> log etcd history was cleared, reading the list again
>>> etcd PUT /v2/keys/upstreams/test/127.0.0.1:8090
value=
>>> wait /show?test
Upstream name: test; Backend server count: 2
        server 127.0.0.1:8090 weight=1 max_fails=2 fail_timeout=10s;
        server 127.0.0.1:8089 weight=1 max_fails=2 fail_timeout=10s;
--- error_log
etcd watch idle, renewing it
--- no_error_log
[error]

=== TEST 4: an empty directory is refused, a missing one keeps the list
--- registry: etcd
--- init
>>> etcd PUT /v2/keys/upstreams/test?dir=true
--- http_config
    upstream test {
        upsync 127.0.0.1:$TEST_NGINX_ETCD_PORT/v2/keys/upstreams/test upsync_interval=50ms upsync_type=etcd;
        upsync_dump_path $TEST_NGINX_DIR/servers_test.conf;
        server 127.0.0.1:8088;
    }
--- config
    location /show { upstream_show; }
--- steps
>>> log registry list is empty, cannot delete all peers
>>> etcd DELETE /v2/keys/upstreams/test?dir=true
>>> log registry has nothing under /v2/keys/upstreams/test
>>> http GET /show?test
Upstream name: test; Backend server count: 1
        server 127.0.0.1:8088 weight=1 max_fails=1 fail_timeout=10s;

=== TEST 5: basic auth, with the guest role revoked; the password never logged
--- registry: etcd
--- init
>>> run
u=http://127.0.0.1:$TEST_NGINX_ETCD_PORT
curl -sf -X PUT $u/v2/keys/upstreams/test/127.0.0.1:8089 -d value= >/dev/null
curl -sf -X PUT $u/v2/auth/users/root -d '{"user":"root","password":"r00t-pw"}' >/dev/null
curl -sf -X PUT $u/v2/auth/enable >/dev/null
curl -sf -u root:r00t-pw -X PUT $u/v2/auth/roles/guest -d '{"role":"guest","revoke":{"kv":{"read":["/*"],"write":["/*"]}}}' >/dev/null
test "$(curl -s -o /dev/null -w '%{http_code}' $u/v2/keys/upstreams/test)" = 401
--- http_config
    upstream test {
        upsync 127.0.0.1:$TEST_NGINX_ETCD_PORT/v2/keys/upstreams/test upsync_interval=50ms upsync_type=etcd upsync_user=root upsync_password=r00t-pw;
        upsync_dump_path $TEST_NGINX_DIR/servers_test.conf;
        server 127.0.0.1:8088;
    }
--- config
    location /show { upstream_show; }
--- steps
>>> wait /show?test
Upstream name: test; Backend server count: 1
        server 127.0.0.1:8089 weight=1 max_fails=2 fail_timeout=10s;

>>> run
curl -sf -u root:r00t-pw -X PUT http://127.0.0.1:$TEST_NGINX_ETCD_PORT/v2/keys/upstreams/test/127.0.0.1:8090 -d value= >/dev/null
>>> wait /show?test
Upstream name: test; Backend server count: 2
        server 127.0.0.1:8090 weight=1 max_fails=2 fail_timeout=10s;
        server 127.0.0.1:8089 weight=1 max_fails=2 fail_timeout=10s;
--- no_error_log
r00t-pw
[error]
