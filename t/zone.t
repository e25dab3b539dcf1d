# Shared-zone mode (nginx 1.27.3 and newer): one worker polls each upstream
# for all workers and changes the upstream's shared lists in place.
use lib 't/lib';
use Test::Upsync;

run_tests();

__DATA__

=== TEST 1: four workers, two upstreams: one registry connection each, the same list in every worker
--- skip_nginx: <1.27.3
--- workers: 4
--- registry: consul
--- init
>>> consul PUT /v1/kv/upstreams/a/127.0.0.1:$TEST_NGINX_PORT1
>>> consul PUT /v1/kv/upstreams/b/127.0.0.1:$TEST_NGINX_PORT2
--- http_config
    upstream a {
        zone a 64k;
        upsync 127.0.0.1:$TEST_NGINX_CONSUL_PORT/v1/kv/upstreams/a/ upsync_interval=50ms upsync_timeout=6m upsync_type=consul;
        upsync_dump_path $TEST_NGINX_DIR/servers_a.conf;
    }
    upstream b {
        zone b 64k;
        upsync 127.0.0.1:$TEST_NGINX_CONSUL_PORT/v1/kv/upstreams/b/ upsync_interval=50ms upsync_timeout=6m upsync_type=consul;
        upsync_dump_path $TEST_NGINX_DIR/servers_b.conf;
    }
    server { listen 127.0.0.1:$TEST_NGINX_PORT1; return 200 "one\n"; }
    server { listen 127.0.0.1:$TEST_NGINX_PORT2; return 200 "two\n"; }
    server { listen 127.0.0.1:$TEST_NGINX_PORT3; return 200 "three\n"; }
--- config
    location /a { proxy_pass http://a; }
    location /b { proxy_pass http://b; }
    location /show { upstream_show; }
--- steps
>>> wait /show?a
Upstream name: a; Backend server count: 1
        server 127.0.0.1:$TEST_NGINX_PORT1 weight=1 max_fails=2 fail_timeout=10s;

>>> wait /show?b
Upstream name: b; Backend server count: 1
        server 127.0.0.1:$TEST_NGINX_PORT2 weight=1 max_fails=2 fail_timeout=10s;

>>> expect consul GET /_test/stats
"blocking": 2, "hanging": 0, "connections": 3,
>>> consul PUT /v1/kv/upstreams/a/127.0.0.1:$TEST_NGINX_PORT3
{"weight":3}
>>> wait /show?a
Upstream name: a; Backend server count: 2
        server 127.0.0.1:$TEST_NGINX_PORT3 weight=3 max_fails=2 fail_timeout=10s;
        server 127.0.0.1:$TEST_NGINX_PORT1 weight=1 max_fails=2 fail_timeout=10s;

>>> same /show?a 40
Upstream name: a; Backend server count: 2
        server 127.0.0.1:$TEST_NGINX_PORT3 weight=3 max_fails=2 fail_timeout=10s;
        server 127.0.0.1:$TEST_NGINX_PORT1 weight=1 max_fails=2 fail_timeout=10s;

>>> traffic /a 40
three 30
one 10

>>> file $TEST_NGINX_DIR/servers_a.conf
server 127.0.0.1:$TEST_NGINX_PORT3 weight=3 max_fails=2 fail_timeout=10s;
server 127.0.0.1:$TEST_NGINX_PORT1 weight=1 max_fails=2 fail_timeout=10s;

>>> consul DELETE /v1/kv/upstreams/a/127.0.0.1:$TEST_NGINX_PORT1
>>> wait /show?a
Upstream name: a; Backend server count: 1
        server 127.0.0.1:$TEST_NGINX_PORT3 weight=3 max_fails=2 fail_timeout=10s;

>>> traffic /a 20
three 20

>>> expect consul GET /_test/stats
"blocking": 2, "hanging": 0, "connections": 3,
--- no_error_log
[error]

=== TEST 2: the poller killed with SIGKILL: another worker takes over; a reload in the middle
--- skip_nginx: <1.27.3
--- workers: 4
--- allow_alerts
--- registry: consul
--- init
>>> consul PUT /v1/kv/upstreams/a/127.0.0.1:$TEST_NGINX_PORT1
--- http_config
    upstream a {
        zone a 64k;
        upsync 127.0.0.1:$TEST_NGINX_CONSUL_PORT/v1/kv/upstreams/a/ upsync_interval=50ms upsync_timeout=6m upsync_type=consul;
        upsync_dump_path $TEST_NGINX_DIR/servers_a.conf;
    }
    server { listen 127.0.0.1:$TEST_NGINX_PORT1; return 200 "one\n"; }
    server { listen 127.0.0.1:$TEST_NGINX_PORT2; return 200 "two\n"; }
    server { listen 127.0.0.1:$TEST_NGINX_PORT3; return 200 "three\n"; }
--- config
    location /a { proxy_pass http://a; }
    location /show { upstream_show; }
--- steps
>>> wait /show?a
Upstream name: a; Backend server count: 1
        server 127.0.0.1:$TEST_NGINX_PORT1 weight=1 max_fails=2 fail_timeout=10s;

>>> expect consul GET /_test/stats
"blocking": 1, "hanging": 0, "connections": 2,
>>> run
pid=$(grep -o '[0-9]*#[0-9]*: upsync: upstream "a": this worker polls' $TEST_NGINX_DIR/logs/error.log | cut -d'#' -f1)
[ "$(echo "$pid" | wc -l)" = 1 ] && kill -KILL $pid
>>> log (?s)this worker polls.*exited on signal 9.*this worker polls
>>> consul PUT /v1/kv/upstreams/a/127.0.0.1:$TEST_NGINX_PORT2
>>> wait /show?a
Upstream name: a; Backend server count: 2
        server 127.0.0.1:$TEST_NGINX_PORT2 weight=1 max_fails=2 fail_timeout=10s;
        server 127.0.0.1:$TEST_NGINX_PORT1 weight=1 max_fails=2 fail_timeout=10s;

>>> traffic /a 40
one 20
two 20

>>> expect consul GET /_test/stats
"blocking": 1, "hanging": 0, "connections": 2,
>>> reload
>>> consul PUT /v1/kv/upstreams/a/127.0.0.1:$TEST_NGINX_PORT3
>>> log updated from the registry, 3 servers
>>> agree /show?a 20 count:.3\n
>>> traffic /a 30
one 10
two 10
three 10

>>> expect consul GET /_test/stats
"blocking": 1, "hanging": 0, "connections": 2,
--- error_log
exited on signal 9
--- no_error_log
[error]

=== TEST 3: a small zone under load through a thousand add/remove cycles: no failed request, removed peers return to the slab
--- skip_nginx: <1.27.3
--- workers: 4
--- registry: consul
--- init
>>> consul PUT /v1/kv/upstreams/a/127.0.0.1:$TEST_NGINX_PORT1
--- http_config
    upstream a {
        zone a 32k;
        upsync 127.0.0.1:$TEST_NGINX_CONSUL_PORT/v1/kv/upstreams/a/ upsync_interval=1ms upsync_timeout=6m upsync_type=consul;
        upsync_dump_path $TEST_NGINX_DIR/servers_a.conf;
    }
    server { listen 127.0.0.1:$TEST_NGINX_PORT1; return 200 "one\n"; }
    server { listen 127.0.0.1:$TEST_NGINX_PORT2; return 200 "two\n"; }
--- config
    location /a { proxy_pass http://a; }
    location /show { upstream_show; }
--- steps
>>> wait /show?a
Upstream name: a; Backend server count: 1
        server 127.0.0.1:$TEST_NGINX_PORT1 weight=1 max_fails=2 fail_timeout=10s;

>>> consul PUT /_test/fault
{"mode":"flap","paths":"/v1/kv/","extra":"127.0.0.1:$TEST_NGINX_PORT2"}
>>> consul PUT /v1/kv/upstreams/a/127.0.0.1:$TEST_NGINX_PORT1
>>> run
out=$(wrk -t1 -c8 -d3s http://127.0.0.1:$TEST_NGINX_SERVER_PORT/a)
echo "$out"
! echo "$out" | grep -q "Non-2xx\|Socket errors"
>>> run
for i in $(seq 600); do
    [ "$(grep -c 'updated from the registry' $TEST_NGINX_DIR/logs/error.log)" -ge 1000 ] && exit 0
    sleep 0.1
done
exit 1
>>> consul PUT /_test/fault
{"mode":"none"}
>>> consul PUT /v1/kv/upstreams/a/127.0.0.1:$TEST_NGINX_PORT1
{"weight":5}
>>> wait /show?a
Upstream name: a; Backend server count: 1
        server 127.0.0.1:$TEST_NGINX_PORT1 weight=5 max_fails=2 fail_timeout=10s;

>>> traffic /a 10
one 10
--- no_error_log
[error]
no room

=== TEST 4: a zone too small for the registry's list: a clear error, the last list kept, the list tried again after the interval
--- skip_nginx: <1.27.3
--- registry: consul
--- init
>>> run
python3 - <<'PY'
import urllib.request
for i in range(1, 401):
    req = urllib.request.Request("http://127.0.0.1:$TEST_NGINX_CONSUL_PORT/v1/kv/upstreams/a/10.0.%d.%d:80" % (i // 250, i % 250 + 1), data=b"", method="PUT")
    urllib.request.urlopen(req).read()
PY
--- http_config
    upstream a {
        zone a 32k;
        upsync 127.0.0.1:$TEST_NGINX_CONSUL_PORT/v1/kv/upstreams/a/ upsync_interval=50ms upsync_timeout=6m upsync_type=consul;
        upsync_dump_path $TEST_NGINX_DIR/servers_a.conf;
        server 127.0.0.1:$TEST_NGINX_PORT1;
    }
    server { listen 127.0.0.1:$TEST_NGINX_PORT1; return 200 "one\n"; }
--- config
    location /a { proxy_pass http://a; }
    location /show { upstream_show; }
--- steps
>>> log upstream "a": its zone has no room for \d+ new servers: keeping the last list and trying again after the interval; make the zone larger
>>> log (?s)its zone has no room for \d+ new servers.*its zone has no room for \d+ new servers
>>> same /show?a 5
Upstream name: a; Backend server count: 1
        server 127.0.0.1:$TEST_NGINX_PORT1 weight=1 max_fails=1 fail_timeout=10s;

>>> traffic /a 10
one 10
>>> no_file $TEST_NGINX_DIR/servers_a.conf

=== TEST 5: backup servers appear and go in a shared list
--- skip_nginx: <1.27.3
--- workers: 2
--- registry: consul
--- init
>>> consul PUT /v1/kv/upstreams/app/127.0.0.1:$TEST_NGINX_PORT1
--- http_config
    upstream app {
        zone app 64k;
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

>>> consul PUT /v1/kv/upstreams/app/127.0.0.1:$TEST_NGINX_PORT2
{"backup":1}
>>> file $TEST_NGINX_DIR/servers_app.conf
server 127.0.0.1:$TEST_NGINX_PORT1 weight=1 max_fails=2 fail_timeout=10s;
server 127.0.0.1:$TEST_NGINX_PORT2 weight=1 max_fails=2 fail_timeout=10s backup;

>>> traffic / 10
one 10

>>> consul PUT /v1/kv/upstreams/app/127.0.0.1:$TEST_NGINX_PORT1
{"down":1}
>>> file $TEST_NGINX_DIR/servers_app.conf
server 127.0.0.1:$TEST_NGINX_PORT1 weight=1 max_fails=2 fail_timeout=10s down;
server 127.0.0.1:$TEST_NGINX_PORT2 weight=1 max_fails=2 fail_timeout=10s backup;

>>> traffic / 10
two 10

>>> consul DELETE /v1/kv/upstreams/app/127.0.0.1:$TEST_NGINX_PORT2
>>> consul PUT /v1/kv/upstreams/app/127.0.0.1:$TEST_NGINX_PORT1
>>> file $TEST_NGINX_DIR/servers_app.conf
server 127.0.0.1:$TEST_NGINX_PORT1 weight=1 max_fails=2 fail_timeout=10s;

>>> traffic / 10
one 10
--- no_error_log
[error]

=== TEST 6: etcd v3 in a zone: one worker watches, every worker serves the change
--- skip_nginx: <1.27.3
--- workers: 4
--- registry: etcd
--- init
>>> etcd3 put /upstreams/app/127.0.0.1:$TEST_NGINX_PORT1
--- http_config
    upstream app {
        zone app 64k;
        upsync 127.0.0.1:$TEST_NGINX_ETCD_PORT/upstreams/app/ upsync_interval=50ms upsync_timeout=6m upsync_type=etcdv3;
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

>>> etcd3 put /upstreams/app/127.0.0.1:$TEST_NGINX_PORT2
{"weight":2}
>>> wait /show?app
Upstream name: app; Backend server count: 2
        server 127.0.0.1:$TEST_NGINX_PORT2 weight=2 max_fails=2 fail_timeout=10s;
        server 127.0.0.1:$TEST_NGINX_PORT1 weight=1 max_fails=2 fail_timeout=10s;

>>> agree /show?app 20
>>> traffic / 30
one 10
two 20

>>> run
n=$(grep -c 'upsync: upstream "app": this worker polls' $TEST_NGINX_DIR/logs/error.log)
[ "$n" = 1 ]
--- no_error_log
[error]

=== TEST 7: a poller silent too long is replaced, and steps down when it wakes
--- skip_nginx: <1.27.3
--- workers: 2
--- registry: consul
--- init
>>> consul PUT /v1/kv/upstreams/a/127.0.0.1:$TEST_NGINX_PORT1
--- http_config
    upstream a {
        zone a 64k;
        upsync 127.0.0.1:$TEST_NGINX_CONSUL_PORT/v1/kv/upstreams/a/ upsync_interval=50ms upsync_timeout=6m upsync_type=consul;
        upsync_dump_path $TEST_NGINX_DIR/servers_a.conf;
    }
    server { listen 127.0.0.1:$TEST_NGINX_PORT1; return 200 "one\n"; }
    server { listen 127.0.0.1:$TEST_NGINX_PORT2; return 200 "two\n"; }
--- config
    location /a { proxy_pass http://a; }
    location /show { upstream_show; }
--- steps
>>> wait /show?a
Upstream name: a; Backend server count: 1
        server 127.0.0.1:$TEST_NGINX_PORT1 weight=1 max_fails=2 fail_timeout=10s;

>>> run
pid=$(grep -o '[0-9]*#[0-9]*: upsync: upstream "a": this worker polls' $TEST_NGINX_DIR/logs/error.log | cut -d'#' -f1)
[ "$(echo "$pid" | wc -l)" = 1 ] || exit 1
kill -STOP $pid
for i in $(seq 100); do
    [ "$(grep -c 'this worker polls' $TEST_NGINX_DIR/logs/error.log)" = 2 ] && break
    sleep 0.1
done
kill -CONT $pid
[ "$(grep -c 'this worker polls' $TEST_NGINX_DIR/logs/error.log)" = 2 ]
>>> log another worker polls 127.0.0.1:\d+ now
>>> run
# The stand-in holds a query until it answers, even when its client left:
# count nginx's own connections to it instead.
for i in $(seq 100); do
    [ "$(ss -Htn state established "( dport = :$TEST_NGINX_CONSUL_PORT )" | wc -l)" = 1 ] && exit 0
    sleep 0.1
done
ss -tn "( dport = :$TEST_NGINX_CONSUL_PORT )"
exit 1
>>> consul PUT /v1/kv/upstreams/a/127.0.0.1:$TEST_NGINX_PORT2
>>> wait /show?a
Upstream name: a; Backend server count: 2
        server 127.0.0.1:$TEST_NGINX_PORT2 weight=1 max_fails=2 fail_timeout=10s;
        server 127.0.0.1:$TEST_NGINX_PORT1 weight=1 max_fails=2 fail_timeout=10s;

>>> agree /show?a 10
--- timeout: 15
--- no_error_log
[error]
