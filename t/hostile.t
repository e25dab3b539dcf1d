# Hostile registries: a misbehaving registry (t/registry/hostile.py, raw
# sockets) cannot grow a worker without bound, keep a stream alive with
# bytes that never make a message, make the poll loop spin, read the
# request's secrets back into the log, or write lines of its own into it.
# The upstream keeps its list and traffic flows meanwhile.
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
