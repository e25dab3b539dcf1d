# upsync_type=etcdv3 against a real etcd: a range read, then a streaming watch
# whose events are applied as they come; compaction, restart, empty prefix.
use lib 't/lib';
use Test::Upsync;

run_tests();

__DATA__

=== TEST 1: the C module's scenario over etcd v3
--- registry: etcd
--- http_config
    upstream test {
        upsync 127.0.0.1:$TEST_NGINX_ETCD_PORT/upstreams/test/ upsync_interval=50ms upsync_timeout=6m upsync_type=etcdv3;
        upsync_dump_path $TEST_NGINX_DIR/servers_test.conf;
        server 127.0.0.1:8088 weight=10 max_fails=3 fail_timeout=10;
    }
--- config
    location /upstream_list { upstream_show; }
--- steps
>>> log registry has nothing under /upstreams/test/, keeping the last list
>>> etcd3 put /upstreams/test/127.0.0.1:8089
>>> wait /upstream_list?test
Upstream name: test; Backend server count: 1
        server 127.0.0.1:8089 weight=1 max_fails=2 fail_timeout=10s;

>>> etcd3 put /upstreams/test/127.0.0.1:8088
{"weight":10,"max_fails":3,"fail_timeout":10}
>>> wait /upstream_list?test
Upstream name: test; Backend server count: 2
        server 127.0.0.1:8088 weight=10 max_fails=3 fail_timeout=10s;
        server 127.0.0.1:8089 weight=1 max_fails=2 fail_timeout=10s;

>>> etcd3 delete /upstreams/test/127.0.0.1:8089
>>> wait /upstream_list?test
Upstream name: test; Backend server count: 1
        server 127.0.0.1:8088 weight=10 max_fails=3 fail_timeout=10s;

>>> etcd3 put /upstreams/test/127.0.0.1:8089
{"weight":20,"max_fails":0,"fail_timeout":30}
>>> wait /upstream_list?test
Upstream name: test; Backend server count: 2
        server 127.0.0.1:8089 weight=20 max_fails=0 fail_timeout=30s;
        server 127.0.0.1:8088 weight=10 max_fails=3 fail_timeout=10s;

>>> etcd3 put /upstreams/test/127.0.0.1:8088
{"weight":40}
>>> wait /upstream_list?test
Upstream name: test; Backend server count: 2
        server 127.0.0.1:8089 weight=20 max_fails=0 fail_timeout=30s;
        server 127.0.0.1:8088 weight=40 max_fails=2 fail_timeout=10s;

>>> file $TEST_NGINX_DIR/servers_test.conf
server 127.0.0.1:8089 weight=20 max_fails=0 fail_timeout=30s;
server 127.0.0.1:8088 weight=40 max_fails=2 fail_timeout=10s;

>>> etcd3 put /upstreams/test/127.0.0.1:8088
{"weight":40,"max_fails":3,"fail_timeout":20,"down":1}
>>> etcd3 delete /upstreams/test/127.0.0.1:8089
>>> wait /upstream_list?test
Upstream name: test; Backend server count: 1
        server 127.0.0.1:8088 weight=40 max_fails=3 fail_timeout=20s down;

>>> etcd3 delete /upstreams/test/127.0.0.1:8088
>>> log registry has nothing under /upstreams/test/, keeping the last list
>>> http GET /upstream_list?test
Upstream name: test; Backend server count: 1
        server 127.0.0.1:8088 weight=40 max_fails=3 fail_timeout=20s down;
--- no_error_log
[error]

=== TEST 2: compaction while the watch was idle: a new range read and a new watch
--- registry: etcd
--- http_config
    upstream test {
        upsync 127.0.0.1:$TEST_NGINX_ETCD_PORT/upstreams/test/ upsync_interval=50ms upsync_timeout=2s upsync_type=etcdv3;
        upsync_dump_path $TEST_NGINX_DIR/servers_test.conf;
        server 127.0.0.1:8088;
    }
--- config
    location /show { upstream_show; }
--- timeout: 20
--- steps
>>> etcd3 put /upstreams/test/127.0.0.1:8089
>>> wait /show?test
Upstream name: test; Backend server count: 1
        server 127.0.0.1:8089 weight=1 max_fails=2 fail_timeout=10s;

>>> etcd3 put /elsewhere/a
x
>>> etcd3 put /elsewhere/a
y
>>> etcd3 compact
>>> log etcd watch ended \(compacted at revision \d+\), reading the list again
>>> etcd3 put /upstreams/test/127.0.0.1:8090
>>> wait /show?test
Upstream name: test; Backend server count: 2
        server 127.0.0.1:8090 weight=1 max_fails=2 fail_timeout=10s;
        server 127.0.0.1:8089 weight=1 max_fails=2 fail_timeout=10s;

=== TEST 3: etcd stopped and restarted
--- registry: etcd
--- http_config
    upstream test {
        upsync 127.0.0.1:$TEST_NGINX_ETCD_PORT/upstreams/test/ upsync_interval=200ms upsync_type=etcdv3;
        upsync_dump_path $TEST_NGINX_DIR/servers_test.conf;
    }
--- config
    location /show { upstream_show; }
--- timeout: 20
--- steps
>>> etcd3 put /upstreams/test/127.0.0.1:8089
>>> wait /show?test
Upstream name: test; Backend server count: 1
        server 127.0.0.1:8089 weight=1 max_fails=2 fail_timeout=10s;

>>> stop etcd
>>> log registry 127.0.0.1:\d+: cannot connect
>>> start etcd
>>> etcd3 put /upstreams/test/127.0.0.1:8090
{"weight":2}
>>> wait /show?test
Upstream name: test; Backend server count: 2
        server 127.0.0.1:8090 weight=2 max_fails=2 fail_timeout=10s;
        server 127.0.0.1:8089 weight=1 max_fails=2 fail_timeout=10s;

=== TEST 4: auth: the module authenticates, sends the token, and never logs the password
--- registry: etcd
--- init
>>> run
export ETCDCTL_API=3; e="etcdctl --endpoints=127.0.0.1:$TEST_NGINX_ETCD_PORT"
$e user add root:r00t-pw && $e user grant-role root root && $e auth enable
$e --user root:r00t-pw put /upstreams/test/127.0.0.1:8089 '{"weight":2}'
--- http_config
    upstream test {
        upsync 127.0.0.1:$TEST_NGINX_ETCD_PORT/upstreams/test/ upsync_interval=50ms upsync_type=etcdv3 upsync_user=root upsync_password=r00t-pw;
        upsync_dump_path $TEST_NGINX_DIR/servers_test.conf;
        server 127.0.0.1:8088;
    }
--- config
    location /show { upstream_show; }
--- steps
>>> wait /show?test
Upstream name: test; Backend server count: 1
        server 127.0.0.1:8089 weight=2 max_fails=2 fail_timeout=10s;

>>> run
ETCDCTL_API=3 etcdctl --endpoints=127.0.0.1:$TEST_NGINX_ETCD_PORT --user root:r00t-pw put /upstreams/test/127.0.0.1:8090 ''
>>> wait /show?test
Upstream name: test; Backend server count: 2
        server 127.0.0.1:8090 weight=1 max_fails=2 fail_timeout=10s;
        server 127.0.0.1:8089 weight=2 max_fails=2 fail_timeout=10s;
--- no_error_log
r00t-pw
[error]

=== TEST 5: auth with a wrong password: a clear error, the list is kept
--- registry: etcd
--- init
>>> run
export ETCDCTL_API=3; e="etcdctl --endpoints=127.0.0.1:$TEST_NGINX_ETCD_PORT"
$e user add root:r00t-pw && $e user grant-role root root && $e auth enable
$e --user root:r00t-pw put /upstreams/test/127.0.0.1:8089 ''
--- http_config
    upstream test {
        upsync 127.0.0.1:$TEST_NGINX_ETCD_PORT/upstreams/test/ upsync_interval=100ms upsync_type=etcdv3 upsync_user=root upsync_password=wrong-pw;
        upsync_dump_path $TEST_NGINX_DIR/servers_test.conf;
        server 127.0.0.1:8088;
    }
--- config
    location /show { upstream_show; }
--- steps
>>> log etcd authentication as "root" failed \(etcd error: "etcdserver: authentication failed, invalid user ID or password"\), keeping the last list
>>> http GET /show?test
Upstream name: test; Backend server count: 1
        server 127.0.0.1:8088 weight=1 max_fails=1 fail_timeout=10s;
--- no_error_log
wrong-pw
r00t-pw

=== TEST 6: an expired token is replaced: the module authenticates again
--- registry: etcd
--- etcd_args: --auth-token-ttl 1
--- init
>>> run
export ETCDCTL_API=3; e="etcdctl --endpoints=127.0.0.1:$TEST_NGINX_ETCD_PORT"
$e user add root:r00t-pw && $e user grant-role root root && $e auth enable
$e --user root:r00t-pw put /upstreams/test/127.0.0.1:8089 ''
--- http_config
    upstream test {
        upsync 127.0.0.1:$TEST_NGINX_ETCD_PORT/upstreams/test/ upsync_interval=50ms upsync_timeout=2s upsync_type=etcdv3 upsync_user=root upsync_password=r00t-pw;
        upsync_dump_path $TEST_NGINX_DIR/servers_test.conf;
    }
--- config
    location /show { upstream_show; }
--- timeout: 20
--- steps
>>> wait /show?test
Upstream name: test; Backend server count: 1
        server 127.0.0.1:8089 weight=1 max_fails=2 fail_timeout=10s;

>>> log etcd refused the token, authenticating again
>>> run
ETCDCTL_API=3 etcdctl --endpoints=127.0.0.1:$TEST_NGINX_ETCD_PORT --user root:r00t-pw put /upstreams/test/127.0.0.1:8090 ''
>>> wait /show?test
Upstream name: test; Backend server count: 2
        server 127.0.0.1:8090 weight=1 max_fails=2 fail_timeout=10s;
        server 127.0.0.1:8089 weight=1 max_fails=2 fail_timeout=10s;
--- no_error_log
r00t-pw

=== TEST 7: real traffic follows etcd v3, two workers
--- workers: 2
--- registry: etcd
--- http_config
    upstream app {
        upsync 127.0.0.1:$TEST_NGINX_ETCD_PORT/upstreams/app/ upsync_interval=50ms upsync_type=etcdv3;
        upsync_dump_path $TEST_NGINX_DIR/servers_app.conf;
    }
    server { listen 127.0.0.1:$TEST_NGINX_PORT1; return 200 "one\n"; }
    server { listen 127.0.0.1:$TEST_NGINX_PORT2; return 200 "two\n"; }
--- config
    location / { proxy_pass http://app; }
    location /show { upstream_show; }
--- steps
>>> etcd3 put /upstreams/app/127.0.0.1:$TEST_NGINX_PORT1
>>> sleep 0.5
>>> traffic / 10
one 10

>>> etcd3 put /upstreams/app/127.0.0.1:$TEST_NGINX_PORT2
>>> etcd3 put /upstreams/app/127.0.0.1:$TEST_NGINX_PORT1
{"down":1}
>>> sleep 0.5
>>> traffic / 10
two 10

>>> etcd3 delete /upstreams/app/127.0.0.1:$TEST_NGINX_PORT2
>>> etcd3 put /upstreams/app/127.0.0.1:$TEST_NGINX_PORT1
>>> sleep 0.5
>>> traffic / 10
one 10
--- no_error_log
[error]
