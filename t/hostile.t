# Hostile registries: a misbehaving registry (t/registry/hostile.py, raw
# sockets) cannot grow a worker without bound, keep a stream alive with
# bytes that never make a message, make the poll loop spin, read the
# request's secrets back into the log, or write lines of its own into it.
# The upstream keeps its list and traffic flows meanwhile. Failures wait
# even with upsync_interval=0; strong_dependency is bounded per worker; many
# bad keys make a few lines; messages say what is wrong.
use lib 't/lib';
use Test::Upsync;

run_tests();

__DATA__

=== TEST 1: a registry that sends response headers forever: refused at the head limit, memory bounded
--- registry: hostile
--- hostile_args: --mode headers-forever
--- http_config
    upstream app {
        server 127.0.0.1:$TEST_NGINX_PORT1;
        upsync 127.0.0.1:$TEST_NGINX_HOSTILE_PORT/v1/kv/upstreams/app/ upsync_type=consul upsync_interval=100ms upsync_timeout=6s;
        upsync_dump_path $TEST_NGINX_DIR/servers_app.conf;
    }
    server { listen 127.0.0.1:$TEST_NGINX_PORT1; return 200 "one\n"; }
--- config
    location / { proxy_pass http://app; }
--- steps
>>> log response head is larger than 65536 bytes, retrying
>>> sleep 3
>>> rss_below 65536
>>> traffic / 20
one 20

=== TEST 2: an etcd v3 watch line that never ends: capped, the watch read again, memory bounded
--- registry: hostile
--- hostile_args: --mode etcd-endless-line --server 127.0.0.1:$TEST_NGINX_PORT1
--- http_config
    upstream app {
        server 127.0.0.1:$TEST_NGINX_PORT2;
        upsync 127.0.0.1:$TEST_NGINX_HOSTILE_PORT/upstreams/app/ upsync_type=etcdv3 upsync_interval=100ms upsync_timeout=6s;
        upsync_dump_path $TEST_NGINX_DIR/servers_app.conf;
    }
    server { listen 127.0.0.1:$TEST_NGINX_PORT1; return 200 "one\n"; }
    server { listen 127.0.0.1:$TEST_NGINX_PORT2; return 200 "two\n"; }
--- config
    location / { proxy_pass http://app; }
--- steps
>>> log etcd watch: a streamed message is larger than 8388608 bytes, reading the list again
>>> sleep 2
>>> rss_below 102400
>>> traffic / 20
one 20

=== TEST 3: an etcd v3 watch that trickles bytes of no message: renewed after upsync_timeout
--- registry: hostile
--- hostile_args: --mode etcd-trickle --server 127.0.0.1:$TEST_NGINX_PORT1
--- http_config
    upstream app {
        upsync 127.0.0.1:$TEST_NGINX_HOSTILE_PORT/upstreams/app/ upsync_type=etcdv3 upsync_interval=100ms upsync_timeout=2s;
        upsync_dump_path $TEST_NGINX_DIR/servers_app.conf;
    }
    server { listen 127.0.0.1:$TEST_NGINX_PORT1; return 200 "one\n"; }
--- config
    location / { proxy_pass http://app; }
--- steps
>>> traffic / 10
one 10

>>> log etcd watch idle, renewing it(?s:.*)etcd watch idle, renewing it
>>> traffic / 10
one 10

=== TEST 4: etcd's cancel reason is quoted: no line of the registry's in the log, and the ended watch does not spin
--- registry: hostile
--- hostile_args: --mode etcd-forged --server 127.0.0.1:$TEST_NGINX_PORT1
--- http_config
    upstream app {
        upsync 127.0.0.1:$TEST_NGINX_HOSTILE_PORT/upstreams/app/ upsync_type=etcdv3 upsync_interval=500ms upsync_timeout=6s;
        upsync_dump_path $TEST_NGINX_DIR/servers_app.conf;
    }
    server { listen 127.0.0.1:$TEST_NGINX_PORT1; return 200 "one\n"; }
--- config
    location / { proxy_pass http://app; }
--- steps
>>> log etcd watch ended \(canceled: "bye\\n2026/01/01 00:00:00 \[emerg\] 1#1: forged by the registry"\)
>>> sleep 3
>>> run
n=$(curl -s http://127.0.0.1:$TEST_NGINX_HOSTILE_PORT/_stats | sed 's/[^0-9]//g')
echo "$n connections"
# A read and a watch at once, three times, then a pause of the interval:
# some 12 connections a second, not thousands.
[ "$n" -lt 80 ]
>>> traffic / 10
one 10
--- no_error_log eval
[qr{^2026/01/01 00:00:00}m, qr{forged by the registry"?\n}]

=== TEST 5: an error page that echoes the request: the Consul token never reaches the log
--- registry: hostile
--- hostile_args: --mode echo
--- http_config
    upstream app {
        server 127.0.0.1:$TEST_NGINX_PORT1;
        upsync 127.0.0.1:$TEST_NGINX_HOSTILE_PORT/v1/kv/upstreams/app/ upsync_type=consul upsync_interval=100ms upsync_token=SECRET-TOKEN-1;
        upsync_dump_path $TEST_NGINX_DIR/servers_app.conf;
    }
    server { listen 127.0.0.1:$TEST_NGINX_PORT1; return 200 "one\n"; }
--- config
    location / { proxy_pass http://app; }
--- steps
>>> log registry answered 400 for /v1/kv/upstreams/app/: \(the body is not shown: it echoes the request's credentials\)
>>> traffic / 10
one 10
--- no_error_log
SECRET-TOKEN-1

=== TEST 6: an error page that echoes the request: etcd v2 basic credentials never reach the log
--- registry: hostile
--- hostile_args: --mode echo
--- http_config
    upstream app {
        server 127.0.0.1:$TEST_NGINX_PORT1;
        upsync 127.0.0.1:$TEST_NGINX_HOSTILE_PORT/v2/keys/upstreams/app upsync_type=etcd upsync_interval=100ms upsync_user=root upsync_password=PASS-WORD-2;
        upsync_dump_path $TEST_NGINX_DIR/servers_app.conf;
    }
    server { listen 127.0.0.1:$TEST_NGINX_PORT1; return 200 "one\n"; }
--- config
    location / { proxy_pass http://app; }
--- steps
>>> log registry answered 400 for /v2/keys/upstreams/app: \(the body is not shown
>>> traffic / 10
one 10
--- no_error_log
PASS-WORD-2
cm9vdDpQQVNTLVdPUkQtMg==

=== TEST 7: an error page that echoes the request: the etcd v3 password never reaches the log
--- registry: hostile
--- hostile_args: --mode echo
--- http_config
    upstream app {
        server 127.0.0.1:$TEST_NGINX_PORT1;
        upsync 127.0.0.1:$TEST_NGINX_HOSTILE_PORT/upstreams/app/ upsync_type=etcdv3 upsync_interval=100ms upsync_user=root upsync_password=PASS-WORD-3;
        upsync_dump_path $TEST_NGINX_DIR/servers_app.conf;
    }
    server { listen 127.0.0.1:$TEST_NGINX_PORT1; return 200 "one\n"; }
--- config
    location / { proxy_pass http://app; }
--- steps
>>> log etcd authentication as "root" failed
>>> traffic / 10
one 10
--- no_error_log
PASS-WORD-3

=== TEST 8: an etcd v3 watch that ends as soon as it is created does not make the loop spin
--- registry: hostile
--- hostile_args: --mode etcd-watch-ends --server 127.0.0.1:$TEST_NGINX_PORT1
--- http_config
    upstream app {
        upsync 127.0.0.1:$TEST_NGINX_HOSTILE_PORT/upstreams/app/ upsync_type=etcdv3 upsync_interval=500ms upsync_timeout=6s;
        upsync_dump_path $TEST_NGINX_DIR/servers_app.conf;
    }
    server { listen 127.0.0.1:$TEST_NGINX_PORT1; return 200 "one\n"; }
--- config
    location / { proxy_pass http://app; }
--- steps
>>> sleep 3
>>> run
n=$(curl -s http://127.0.0.1:$TEST_NGINX_HOSTILE_PORT/_stats | sed 's/[^0-9]//g')
echo "$n connections in 3 s"
# At most a few polls at once, then a pause: tens of connections, not thousands.
[ "$n" -lt 80 ]
>>> traffic / 10
one 10

=== TEST 9: an etcd v3 watch that is compacted at once does not make the loop spin
--- registry: hostile
--- hostile_args: --mode etcd-compacted --server 127.0.0.1:$TEST_NGINX_PORT1
--- http_config
    upstream app {
        upsync 127.0.0.1:$TEST_NGINX_HOSTILE_PORT/upstreams/app/ upsync_type=etcdv3 upsync_interval=500ms upsync_timeout=6s;
        upsync_dump_path $TEST_NGINX_DIR/servers_app.conf;
    }
    server { listen 127.0.0.1:$TEST_NGINX_PORT1; return 200 "one\n"; }
--- config
    location / { proxy_pass http://app; }
--- steps
>>> sleep 3
>>> run
n=$(curl -s http://127.0.0.1:$TEST_NGINX_HOSTILE_PORT/_stats | sed 's/[^0-9]//g')
echo "$n connections in 3 s"
# At most a few polls at once, then a pause: tens of connections, not thousands.
[ "$n" -lt 80 ]
>>> traffic / 10
one 10

=== TEST 10: an etcd v3 that refuses every token does not make the loop spin
--- registry: hostile
--- hostile_args: --mode etcd-401 --server 127.0.0.1:$TEST_NGINX_PORT1
--- http_config
    upstream app {
        upsync 127.0.0.1:$TEST_NGINX_HOSTILE_PORT/upstreams/app/ upsync_type=etcdv3 upsync_interval=500ms upsync_timeout=6s upsync_user=root upsync_password=PASS-WORD-10;
        server 127.0.0.1:$TEST_NGINX_PORT1;
        upsync_dump_path $TEST_NGINX_DIR/servers_app.conf;
    }
    server { listen 127.0.0.1:$TEST_NGINX_PORT1; return 200 "one\n"; }
--- config
    location / { proxy_pass http://app; }
--- steps
>>> log registry answered 401 for /upstreams/app/
>>> sleep 3
>>> run
n=$(curl -s http://127.0.0.1:$TEST_NGINX_HOSTILE_PORT/_stats | sed 's/[^0-9]//g')
echo "$n connections in 3 s"
# At most a few polls at once, then a pause: tens of connections, not thousands.
[ "$n" -lt 80 ]
>>> traffic / 10
one 10
--- no_error_log
PASS-WORD-10
tok.

=== TEST 11: etcd v2 events that come at once do not make the loop spin
--- registry: hostile
--- hostile_args: --mode etcd2-events --server 127.0.0.1:$TEST_NGINX_PORT1
--- http_config
    upstream app {
        upsync 127.0.0.1:$TEST_NGINX_HOSTILE_PORT/v2/keys/upstreams/app upsync_type=etcd upsync_interval=500ms upsync_timeout=6s;
        upsync_dump_path $TEST_NGINX_DIR/servers_app.conf;
    }
    server { listen 127.0.0.1:$TEST_NGINX_PORT1; return 200 "one\n"; }
--- config
    location / { proxy_pass http://app; }
--- steps
>>> sleep 3
>>> run
n=$(curl -s http://127.0.0.1:$TEST_NGINX_HOSTILE_PORT/_stats | sed 's/[^0-9]//g')
echo "$n connections in 3 s"
# At most a few polls at once, then a pause: tens of connections, not thousands.
[ "$n" -lt 80 ]
>>> traffic / 10
one 10

=== TEST 12: upsync_interval=0 against a registry that answers 500: failures still wait
--- registry: hostile
--- hostile_args: --mode status-500
--- http_config
    upstream app {
        server 127.0.0.1:$TEST_NGINX_PORT1;
        upsync 127.0.0.1:$TEST_NGINX_HOSTILE_PORT/v1/kv/upstreams/app/ upsync_type=consul upsync_interval=0;
        upsync_dump_path $TEST_NGINX_DIR/servers_app.conf;
    }
    server { listen 127.0.0.1:$TEST_NGINX_PORT1; return 200 "one\n"; }
--- config
    location / { proxy_pass http://app; }
--- steps
>>> log registry answered 500 for /v1/kv/upstreams/app/: boom, keeping the last list
>>> sleep 3
>>> run
n=$(curl -s http://127.0.0.1:$TEST_NGINX_HOSTILE_PORT/_stats | sed 's/[^0-9]//g')
lines=$(grep -c 'registry answered 500' $TEST_NGINX_DIR/logs/error.log)
echo "$n connections, $lines error lines"
# A failure waits at least 100 ms: some 10 a second, not 3,000.
[ "$n" -lt 50 ] && [ "$lines" -lt 50 ]
>>> traffic / 10
one 10

=== TEST 13: upsync_interval=0 against a closed port: failures still wait, the log stays small
--- http_config
    upstream app {
        server 127.0.0.1:$TEST_NGINX_PORT1;
        upsync 127.0.0.1:$TEST_NGINX_PORT9/v1/kv/upstreams/app/ upsync_type=consul upsync_interval=0;
        upsync_dump_path $TEST_NGINX_DIR/servers_app.conf;
    }
    server { listen 127.0.0.1:$TEST_NGINX_PORT1; return 200 "one\n"; }
--- config
    location / { proxy_pass http://app; }
--- steps
>>> log retrying in 100 ms
>>> sleep 3
>>> run
lines=$(wc -l < $TEST_NGINX_DIR/logs/error.log)
echo "$lines log lines"
# Not 100,000 lines a second.
[ "$lines" -lt 200 ]
>>> traffic / 10
one 10

=== TEST 14: strong_dependency=on with three upstreams and a registry that never answers: the worker serves within its bound in total
--- registry: hostile
--- hostile_args: --mode silent
--- http_config
    upstream a {
        server 127.0.0.1:$TEST_NGINX_PORT1;
        upsync 127.0.0.1:$TEST_NGINX_HOSTILE_PORT/v1/kv/upstreams/a/ upsync_type=consul upsync_timeout=6s strong_dependency=on;
        upsync_dump_path $TEST_NGINX_DIR/servers_a.conf;
    }
    upstream b {
        server 127.0.0.1:$TEST_NGINX_PORT1;
        upsync 127.0.0.1:$TEST_NGINX_HOSTILE_PORT/v1/kv/upstreams/b/ upsync_type=consul upsync_timeout=6s strong_dependency=on;
        upsync_dump_path $TEST_NGINX_DIR/servers_b.conf;
    }
    upstream c {
        server 127.0.0.1:$TEST_NGINX_PORT1;
        upsync 127.0.0.1:$TEST_NGINX_HOSTILE_PORT/v1/kv/upstreams/c/ upsync_type=consul upsync_timeout=6s strong_dependency=on;
        upsync_dump_path $TEST_NGINX_DIR/servers_c.conf;
    }
    server { listen 127.0.0.1:$TEST_NGINX_PORT1; return 200 "one\n"; }
--- config
    location /a { proxy_pass http://a; }
    location /c { proxy_pass http://c; }
--- steps
>>> run
start=$(date +%s%N)
until curl -sf -m 1 http://127.0.0.1:$TEST_NGINX_SERVER_PORT/c >/dev/null; do sleep 0.1; done
ms=$(( ($(date +%s%N) - start) / 1000000 ))
echo "served after $ms ms"
# 10 s for all three upstreams together, not 6 s each.
[ "$ms" -lt 12000 ]
>>> log upstream "a": strong_dependency: registry 127.0.0.1:\d+ unreachable \(no answer within 6000 ms\), serving the list it has
>>> log upstream "c": strong_dependency: the worker has waited 10000 ms for its registries before serving, its limit for all upstreams: serving the list it has
>>> traffic /a 5
one 5
--- timeout: 40

=== TEST 15: 10,000 keys that are not addresses: a few lines per answer, not one per key
--- registry: hostile
--- hostile_args: --mode bad-keys --bad 10000 --server 127.0.0.1:$TEST_NGINX_PORT1
--- http_config
    upstream app {
        server 127.0.0.1:$TEST_NGINX_PORT2;
        upsync 127.0.0.1:$TEST_NGINX_HOSTILE_PORT/v1/kv/upstreams/app/ upsync_type=consul upsync_interval=100ms;
        upsync_dump_path $TEST_NGINX_DIR/servers_app.conf;
    }
    server { listen 127.0.0.1:$TEST_NGINX_PORT1; return 200 "one\n"; }
    server { listen 127.0.0.1:$TEST_NGINX_PORT2; return 200 "two\n"; }
--- config
    location / { proxy_pass http://app; }
--- steps
>>> log 9995 more problems in the registry's answer, not shown
>>> sleep 2
>>> run
answers=$(curl -s http://127.0.0.1:$TEST_NGINX_HOSTILE_PORT/_stats | sed 's/[^0-9]//g')
lines=$(grep -c 'upstreams/app/bad-' $TEST_NGINX_DIR/logs/error.log)
echo "$lines lines for $answers answers"
# Five keys shown per answer, and the count.
[ "$lines" -le $((answers * 5)) ]
>>> traffic / 10
one 10

=== TEST 16: a key with characters an address cannot have says so
--- registry: consul
--- init
>>> consul PUT /v1/kv/upstreams/app/127.0.0.1:$TEST_NGINX_PORT1
>>> consul PUT /v1/kv/upstreams/app/127.0.0.1:80;server%2010.6.6.6:80
--- http_config
    upstream app {
        upsync 127.0.0.1:$TEST_NGINX_CONSUL_PORT/v1/kv/upstreams/app/ upsync_type=consul upsync_interval=100ms;
        upsync_dump_path $TEST_NGINX_DIR/servers_app.conf;
    }
    server { listen 127.0.0.1:$TEST_NGINX_PORT1; return 200 "one\n"; }
--- config
    location / { proxy_pass http://app; }
--- steps
>>> log key "upstreams/app/127.0.0.1:80;server 10.6.6.6:80": "127.0.0.1:80;server 10.6.6.6:80" holds characters an address cannot have
>>> traffic / 10
one 10
>>> file $TEST_NGINX_DIR/servers_app.conf
server 127.0.0.1:$TEST_NGINX_PORT1 weight=1 max_fails=2 fail_timeout=10s;

=== TEST 17: a Consul path that is not a KV path: the warning says the path looks wrong
--- registry: consul
--- http_config
    upstream app {
        server 127.0.0.1:$TEST_NGINX_PORT1;
        upsync 127.0.0.1:$TEST_NGINX_CONSUL_PORT/upstreams/app/ upsync_type=consul upsync_interval=100ms;
        upsync_dump_path $TEST_NGINX_DIR/servers_app.conf;
    }
    server { listen 127.0.0.1:$TEST_NGINX_PORT1; return 200 "one\n"; }
--- config
    location / { proxy_pass http://app; }
--- steps
>>> log registry has nothing under /upstreams/app/ \(the path looks wrong: an upsync_type=consul path starts with /v1/kv/\), keeping the last list
>>> traffic / 10
one 10
