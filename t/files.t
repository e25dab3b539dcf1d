# The module's files: where the dump file goes by default, how it is
# written (never through a planted link), which dump files it trusts at
# start, and that what it writes always loads again, in the module and
# through nginx's own `include`.
use lib 't/lib';
use Test::Upsync;

run_tests();

__DATA__

=== TEST 1: without upsync_dump_path the dump goes under the prefix, in a directory nginx creates for it; a file planted at the C module's /tmp default is not read
--- registry: consul
--- init
>>> write /tmp/servers_files$TEST_NGINX_PORT1.conf
server 127.0.0.1:$TEST_NGINX_PORT2 weight=100;
>>> consul PUT /v1/kv/upstreams/app/127.0.0.1:$TEST_NGINX_PORT1
--- http_config
    upstream files$TEST_NGINX_PORT1 {
        upsync 127.0.0.1:$TEST_NGINX_CONSUL_PORT/v1/kv/upstreams/app/ upsync_interval=100ms upsync_type=consul;
    }
    server { listen 127.0.0.1:$TEST_NGINX_PORT1; return 200 "one\n"; }
    server { listen 127.0.0.1:$TEST_NGINX_PORT2; return 200 "planted\n"; }
--- config
    location / { proxy_pass http://files$TEST_NGINX_PORT1; }
--- steps
>>> file $TEST_NGINX_DIR/upsync/servers_files$TEST_NGINX_PORT1.conf
server 127.0.0.1:$TEST_NGINX_PORT1 weight=1 max_fails=2 fail_timeout=10s;
>>> run
[ "$(stat -c %a $TEST_NGINX_DIR/upsync)" = 700 ]
rm -f /tmp/servers_files$TEST_NGINX_PORT1.conf
>>> traffic / 10
one 10
--- no_error_log
starts with the

=== TEST 2: a relative upsync_dump_path is relative to the prefix
--- registry: consul
--- init
>>> consul PUT /v1/kv/upstreams/app/127.0.0.1:$TEST_NGINX_PORT1
--- http_config
    upstream app {
        upsync 127.0.0.1:$TEST_NGINX_CONSUL_PORT/v1/kv/upstreams/app/ upsync_interval=100ms upsync_type=consul;
        upsync_dump_path servers_relative.conf;
    }
    server { listen 127.0.0.1:$TEST_NGINX_PORT1; return 200 "one\n"; }
--- config
    location / { proxy_pass http://app; }
--- steps
>>> file $TEST_NGINX_DIR/servers_relative.conf
server 127.0.0.1:$TEST_NGINX_PORT1 weight=1 max_fails=2 fail_timeout=10s;

=== TEST 3: two upstreams with one dump file are refused
--- http_config
    upstream a {
        upsync 127.0.0.1:$TEST_NGINX_PORT9/v1/kv/upstreams/a/ upsync_type=consul;
        upsync_dump_path $TEST_NGINX_DIR/same.conf;
    }
    upstream b {
        upsync 127.0.0.1:$TEST_NGINX_PORT9/v1/kv/upstreams/b/ upsync_type=consul;
        upsync_dump_path $TEST_NGINX_DIR/same.conf;
    }
--- must_die
--- error_log
upstreams "a" and "b" have the same dump file "$TEST_NGINX_DIR/same.conf": give each its own "upsync_dump_path"

=== TEST 4: a dump directory that does not exist is reported at start; traffic is served
--- http_config
    upstream app {
        server 127.0.0.1:$TEST_NGINX_PORT1;
        upsync 127.0.0.1:$TEST_NGINX_PORT9/v1/kv/upstreams/app/ upsync_type=consul;
        upsync_dump_path $TEST_NGINX_DIR/nope/deeper/servers.conf;
    }
    server { listen 127.0.0.1:$TEST_NGINX_PORT1; return 200 "one\n"; }
--- config
    location / { proxy_pass http://app; }
--- steps
>>> traffic / 5
one 5
--- error_log eval
qr{\[warn\] .*"upsync_dump_path": the directory of "[^"]*/nope/deeper/servers.conf" does not exist: the dump file cannot be written until it is created in }

=== TEST 5: links planted at the temporary names are never written through
--- registry: consul
--- workers: 2
--- init
>>> consul PUT /v1/kv/upstreams/app/127.0.0.1:$TEST_NGINX_PORT1
>>> write $TEST_NGINX_DIR/victim
kept
>>> run
mkdir -p $TEST_NGINX_DIR/dump
--- http_config
    upstream app {
        upsync 127.0.0.1:$TEST_NGINX_CONSUL_PORT/v1/kv/upstreams/app/ upsync_interval=100ms upsync_type=consul;
        upsync_dump_path $TEST_NGINX_DIR/dump/servers_app.conf;
    }
    server { listen 127.0.0.1:$TEST_NGINX_PORT1; return 200 "one\n"; }
    server { listen 127.0.0.1:$TEST_NGINX_PORT2; return 200 "two\n"; }
--- config
    location / { proxy_pass http://app; }
--- steps
>>> file $TEST_NGINX_DIR/dump/servers_app.conf
server 127.0.0.1:$TEST_NGINX_PORT1 weight=1 max_fails=2 fail_timeout=10s;
>>> run
master=$(cat $TEST_NGINX_DIR/logs/nginx.pid)
# The names earlier versions (and the C module) used: <dump>.tmp.<pid>.
for status in $(grep -l "^PPid:[[:space:]]*$master\$" /proc/[0-9]*/status); do
    pid=$(echo $status | cut -d/ -f3)
    ln -s $TEST_NGINX_DIR/victim $TEST_NGINX_DIR/dump/servers_app.conf.tmp.$pid
done
ls -l $TEST_NGINX_DIR/dump | grep -c -- '->' | grep -q 2
>>> consul PUT /v1/kv/upstreams/app/127.0.0.1:$TEST_NGINX_PORT2
>>> file $TEST_NGINX_DIR/dump/servers_app.conf
server 127.0.0.1:$TEST_NGINX_PORT2 weight=1 max_fails=2 fail_timeout=10s;
server 127.0.0.1:$TEST_NGINX_PORT1 weight=1 max_fails=2 fail_timeout=10s;
>>> file $TEST_NGINX_DIR/victim
kept
>>> run
# The dump is a file of its own, and no temporary file is left but the links.
[ ! -L $TEST_NGINX_DIR/dump/servers_app.conf ]
[ "$(ls $TEST_NGINX_DIR/dump | wc -l)" = 3 ]

=== TEST 6: a dump file owned by another user is not loaded at start
--- init
>>> write $TEST_NGINX_DIR/servers_app.conf
server 127.0.0.1:$TEST_NGINX_PORT2;
>>> run
chown 65534 $TEST_NGINX_DIR/servers_app.conf
--- http_config
    upstream app {
        server 127.0.0.1:$TEST_NGINX_PORT1;
        upsync 127.0.0.1:$TEST_NGINX_PORT9/v1/kv/upstreams/app/ upsync_type=consul;
        upsync_dump_path $TEST_NGINX_DIR/servers_app.conf;
    }
    server { listen 127.0.0.1:$TEST_NGINX_PORT1; return 200 "one\n"; }
    server { listen 127.0.0.1:$TEST_NGINX_PORT2; return 200 "planted\n"; }
--- config
    location / { proxy_pass http://app; }
--- steps
>>> traffic / 10
one 10
--- error_log eval
qr{upstream "app": ignoring the dump file "[^"]*/servers_app.conf": it is owned by uid 65534, not by root or nginx's user}

=== TEST 7: a dump file anyone may write is not loaded at start
--- init
>>> write $TEST_NGINX_DIR/servers_app.conf
server 127.0.0.1:$TEST_NGINX_PORT2;
>>> run
chmod 666 $TEST_NGINX_DIR/servers_app.conf
--- http_config
    upstream app {
        server 127.0.0.1:$TEST_NGINX_PORT1;
        upsync 127.0.0.1:$TEST_NGINX_PORT9/v1/kv/upstreams/app/ upsync_type=consul;
        upsync_dump_path $TEST_NGINX_DIR/servers_app.conf;
    }
    server { listen 127.0.0.1:$TEST_NGINX_PORT1; return 200 "one\n"; }
    server { listen 127.0.0.1:$TEST_NGINX_PORT2; return 200 "planted\n"; }
--- config
    location / { proxy_pass http://app; }
--- steps
>>> traffic / 10
one 10
--- error_log eval
qr{upstream "app": ignoring the dump file "[^"]*/servers_app.conf": anyone may write to it}

=== TEST 8: a dump whose servers are not addresses falls back to the configured servers; a host name in it waits for a resolver
--- init
>>> write $TEST_NGINX_DIR/servers_app.conf
server backend_1.example.com:80;
>>> write $TEST_NGINX_DIR/servers_names.conf
server backend.example.com:80;
--- http_config
    upstream app {
        server 127.0.0.1:$TEST_NGINX_PORT1;
        upsync 127.0.0.1:$TEST_NGINX_PORT9/v1/kv/upstreams/app/ upsync_type=consul;
        upsync_dump_path $TEST_NGINX_DIR/servers_app.conf;
    }
    upstream names {
        server 127.0.0.1:$TEST_NGINX_PORT1;
        upsync 127.0.0.1:$TEST_NGINX_PORT9/v1/kv/upstreams/names/ upsync_type=consul;
        upsync_dump_path $TEST_NGINX_DIR/servers_names.conf;
    }
    server { listen 127.0.0.1:$TEST_NGINX_PORT1; return 200 "one\n"; }
--- config
    location / { proxy_pass http://app; }
    location /names { proxy_pass http://names; }
--- steps
>>> traffic / 10
one 10
>>> traffic /names 10
one 10
--- error_log
server "backend_1.example.com:80" is neither an address nor a host name, left out
has no usable primary server, starting with the configured servers
upstream "names": server "backend.example.com:80" is a host name, and no "resolver" is configured

=== TEST 9: numbers beyond nginx's bounds are capped; the dump, included by an upstream with "hash", loads again in nginx and in the module with the registry down
--- registry: consul
--- init
>>> write $TEST_NGINX_DIR/servers_app.conf
>>> consul PUT /v1/kv/upstreams/app/127.0.0.1:$TEST_NGINX_PORT1
{"weight":9223372036854775807,"max_fails":18446744073709551615,"fail_timeout":18446744073709552}
>>> consul PUT /v1/kv/upstreams/app/127.0.0.1:$TEST_NGINX_PORT2
{"backup":1}
--- http_config
    upstream app {
        hash $request_uri;
        upsync 127.0.0.1:$TEST_NGINX_CONSUL_PORT/v1/kv/upstreams/app/ upsync_interval=100ms upsync_type=consul;
        upsync_dump_path $TEST_NGINX_DIR/servers_app.conf;
        include $TEST_NGINX_DIR/servers_app.conf;
    }
    server { listen 127.0.0.1:$TEST_NGINX_PORT1; return 200 "one\n"; }
    server { listen 127.0.0.1:$TEST_NGINX_PORT2; return 200 "two\n"; }
--- config
    location / { proxy_pass http://app; }
    location /show { upstream_show; }
--- steps
>>> file $TEST_NGINX_DIR/servers_app.conf
server 127.0.0.1:$TEST_NGINX_PORT1 weight=1000000 max_fails=9223372036854775807 fail_timeout=9223372036854775s;
>>> log key "upstreams/app/127.0.0.1:\d+": weight: 9223372036854775807 is more than 1000000, using 1000000
>>> stop consul
>>> reload
>>> http GET /show?app
Upstream name: app; Backend server count: 1
        server 127.0.0.1:$TEST_NGINX_PORT1 weight=1000000 max_fails=9223372036854775807 fail_timeout=9223372036854775s;

>>> traffic / 10
one 10
--- error_log
starts with the 1 servers of

=== TEST 10: every balancer writes a dump that loads again through its own include (backup lines only where the balancer takes them), per-worker lists; reloaded with the registry down
--- registry: consul
--- init
>>> write $TEST_NGINX_DIR/servers_rr.conf
>>> consul PUT /v1/kv/upstreams/rr/127.0.0.1:$TEST_NGINX_PORT1
>>> consul PUT /v1/kv/upstreams/rr/127.0.0.1:$TEST_NGINX_PORT2
{"backup":1}
>>> write $TEST_NGINX_DIR/servers_lc.conf
>>> consul PUT /v1/kv/upstreams/lc/127.0.0.1:$TEST_NGINX_PORT1
>>> consul PUT /v1/kv/upstreams/lc/127.0.0.1:$TEST_NGINX_PORT2
{"backup":1}
>>> write $TEST_NGINX_DIR/servers_iph.conf
>>> consul PUT /v1/kv/upstreams/iph/127.0.0.1:$TEST_NGINX_PORT1
>>> consul PUT /v1/kv/upstreams/iph/127.0.0.1:$TEST_NGINX_PORT2
{"backup":1}
>>> write $TEST_NGINX_DIR/servers_hash.conf
>>> consul PUT /v1/kv/upstreams/hash/127.0.0.1:$TEST_NGINX_PORT1
>>> consul PUT /v1/kv/upstreams/hash/127.0.0.1:$TEST_NGINX_PORT2
{"backup":1}
>>> write $TEST_NGINX_DIR/servers_rnd.conf
>>> consul PUT /v1/kv/upstreams/rnd/127.0.0.1:$TEST_NGINX_PORT1
>>> consul PUT /v1/kv/upstreams/rnd/127.0.0.1:$TEST_NGINX_PORT2
{"backup":1}
--- http_config
    upstream rr {
        # round robin
        upsync 127.0.0.1:$TEST_NGINX_CONSUL_PORT/v1/kv/upstreams/rr/ upsync_interval=100ms upsync_type=consul;
        upsync_dump_path $TEST_NGINX_DIR/servers_rr.conf;
        include $TEST_NGINX_DIR/servers_rr.conf;
    }
    upstream lc {
        least_conn;
        upsync 127.0.0.1:$TEST_NGINX_CONSUL_PORT/v1/kv/upstreams/lc/ upsync_interval=100ms upsync_type=consul;
        upsync_dump_path $TEST_NGINX_DIR/servers_lc.conf;
        include $TEST_NGINX_DIR/servers_lc.conf;
    }
    upstream iph {
        ip_hash;
        upsync 127.0.0.1:$TEST_NGINX_CONSUL_PORT/v1/kv/upstreams/iph/ upsync_interval=100ms upsync_type=consul;
        upsync_dump_path $TEST_NGINX_DIR/servers_iph.conf;
        include $TEST_NGINX_DIR/servers_iph.conf;
    }
    upstream hash {
        hash $request_uri;
        upsync 127.0.0.1:$TEST_NGINX_CONSUL_PORT/v1/kv/upstreams/hash/ upsync_interval=100ms upsync_type=consul;
        upsync_dump_path $TEST_NGINX_DIR/servers_hash.conf;
        include $TEST_NGINX_DIR/servers_hash.conf;
    }
    upstream rnd {
        random;
        upsync 127.0.0.1:$TEST_NGINX_CONSUL_PORT/v1/kv/upstreams/rnd/ upsync_interval=100ms upsync_type=consul;
        upsync_dump_path $TEST_NGINX_DIR/servers_rnd.conf;
        include $TEST_NGINX_DIR/servers_rnd.conf;
    }
    server { listen 127.0.0.1:$TEST_NGINX_PORT1; return 200 "one\n"; }
    server { listen 127.0.0.1:$TEST_NGINX_PORT2; return 200 "two\n"; }
--- config
    location /rr { proxy_pass http://rr; }
    location /lc { proxy_pass http://lc; }
    location /iph { proxy_pass http://iph; }
    location /hash { proxy_pass http://hash; }
    location /rnd { proxy_pass http://rnd; }
--- steps
>>> file $TEST_NGINX_DIR/servers_rr.conf
server 127.0.0.1:$TEST_NGINX_PORT1 weight=1 max_fails=2 fail_timeout=10s;
server 127.0.0.1:$TEST_NGINX_PORT2 weight=1 max_fails=2 fail_timeout=10s backup;
>>> file $TEST_NGINX_DIR/servers_lc.conf
server 127.0.0.1:$TEST_NGINX_PORT1 weight=1 max_fails=2 fail_timeout=10s;
server 127.0.0.1:$TEST_NGINX_PORT2 weight=1 max_fails=2 fail_timeout=10s backup;
>>> file $TEST_NGINX_DIR/servers_iph.conf
server 127.0.0.1:$TEST_NGINX_PORT1 weight=1 max_fails=2 fail_timeout=10s;
>>> file $TEST_NGINX_DIR/servers_hash.conf
server 127.0.0.1:$TEST_NGINX_PORT1 weight=1 max_fails=2 fail_timeout=10s;
>>> file $TEST_NGINX_DIR/servers_rnd.conf
server 127.0.0.1:$TEST_NGINX_PORT1 weight=1 max_fails=2 fail_timeout=10s;
>>> stop consul
>>> reload
>>> traffic /rr 5
one 5
>>> traffic /lc 5
one 5
>>> traffic /iph 5
one 5
>>> traffic /hash 5
one 5
>>> traffic /rnd 5
one 5
--- error_log
starts with the 2 servers of
starts with the 1 servers of

=== TEST 11: every balancer writes a dump that loads again through its own include (backup lines only where the balancer takes them), shared zones; reloaded with the registry down
--- skip_nginx: <1.27.3
--- registry: consul
--- init
>>> write $TEST_NGINX_DIR/servers_rr.conf
>>> consul PUT /v1/kv/upstreams/rr/127.0.0.1:$TEST_NGINX_PORT1
>>> consul PUT /v1/kv/upstreams/rr/127.0.0.1:$TEST_NGINX_PORT2
{"backup":1}
>>> write $TEST_NGINX_DIR/servers_lc.conf
>>> consul PUT /v1/kv/upstreams/lc/127.0.0.1:$TEST_NGINX_PORT1
>>> consul PUT /v1/kv/upstreams/lc/127.0.0.1:$TEST_NGINX_PORT2
{"backup":1}
>>> write $TEST_NGINX_DIR/servers_iph.conf
>>> consul PUT /v1/kv/upstreams/iph/127.0.0.1:$TEST_NGINX_PORT1
>>> consul PUT /v1/kv/upstreams/iph/127.0.0.1:$TEST_NGINX_PORT2
{"backup":1}
>>> write $TEST_NGINX_DIR/servers_hash.conf
>>> consul PUT /v1/kv/upstreams/hash/127.0.0.1:$TEST_NGINX_PORT1
>>> consul PUT /v1/kv/upstreams/hash/127.0.0.1:$TEST_NGINX_PORT2
{"backup":1}
>>> write $TEST_NGINX_DIR/servers_rnd.conf
>>> consul PUT /v1/kv/upstreams/rnd/127.0.0.1:$TEST_NGINX_PORT1
>>> consul PUT /v1/kv/upstreams/rnd/127.0.0.1:$TEST_NGINX_PORT2
{"backup":1}
--- http_config
    upstream rr {
        zone rr 64k;
        # round robin
        upsync 127.0.0.1:$TEST_NGINX_CONSUL_PORT/v1/kv/upstreams/rr/ upsync_interval=100ms upsync_type=consul;
        upsync_dump_path $TEST_NGINX_DIR/servers_rr.conf;
        include $TEST_NGINX_DIR/servers_rr.conf;
    }
    upstream lc {
        zone lc 64k;
        least_conn;
        upsync 127.0.0.1:$TEST_NGINX_CONSUL_PORT/v1/kv/upstreams/lc/ upsync_interval=100ms upsync_type=consul;
        upsync_dump_path $TEST_NGINX_DIR/servers_lc.conf;
        include $TEST_NGINX_DIR/servers_lc.conf;
    }
    upstream iph {
        zone iph 64k;
        ip_hash;
        upsync 127.0.0.1:$TEST_NGINX_CONSUL_PORT/v1/kv/upstreams/iph/ upsync_interval=100ms upsync_type=consul;
        upsync_dump_path $TEST_NGINX_DIR/servers_iph.conf;
        include $TEST_NGINX_DIR/servers_iph.conf;
    }
    upstream hash {
        zone hash 64k;
        hash $request_uri;
        upsync 127.0.0.1:$TEST_NGINX_CONSUL_PORT/v1/kv/upstreams/hash/ upsync_interval=100ms upsync_type=consul;
        upsync_dump_path $TEST_NGINX_DIR/servers_hash.conf;
        include $TEST_NGINX_DIR/servers_hash.conf;
    }
    upstream rnd {
        zone rnd 64k;
        random;
        upsync 127.0.0.1:$TEST_NGINX_CONSUL_PORT/v1/kv/upstreams/rnd/ upsync_interval=100ms upsync_type=consul;
        upsync_dump_path $TEST_NGINX_DIR/servers_rnd.conf;
        include $TEST_NGINX_DIR/servers_rnd.conf;
    }
    server { listen 127.0.0.1:$TEST_NGINX_PORT1; return 200 "one\n"; }
    server { listen 127.0.0.1:$TEST_NGINX_PORT2; return 200 "two\n"; }
--- config
    location /rr { proxy_pass http://rr; }
    location /lc { proxy_pass http://lc; }
    location /iph { proxy_pass http://iph; }
    location /hash { proxy_pass http://hash; }
    location /rnd { proxy_pass http://rnd; }
--- steps
>>> file $TEST_NGINX_DIR/servers_rr.conf
server 127.0.0.1:$TEST_NGINX_PORT1 weight=1 max_fails=2 fail_timeout=10s;
server 127.0.0.1:$TEST_NGINX_PORT2 weight=1 max_fails=2 fail_timeout=10s backup;
>>> file $TEST_NGINX_DIR/servers_lc.conf
server 127.0.0.1:$TEST_NGINX_PORT1 weight=1 max_fails=2 fail_timeout=10s;
server 127.0.0.1:$TEST_NGINX_PORT2 weight=1 max_fails=2 fail_timeout=10s backup;
>>> file $TEST_NGINX_DIR/servers_iph.conf
server 127.0.0.1:$TEST_NGINX_PORT1 weight=1 max_fails=2 fail_timeout=10s;
>>> file $TEST_NGINX_DIR/servers_hash.conf
server 127.0.0.1:$TEST_NGINX_PORT1 weight=1 max_fails=2 fail_timeout=10s;
>>> file $TEST_NGINX_DIR/servers_rnd.conf
server 127.0.0.1:$TEST_NGINX_PORT1 weight=1 max_fails=2 fail_timeout=10s;
>>> stop consul
>>> reload
>>> traffic /rr 5
one 5
>>> traffic /lc 5
one 5
>>> traffic /iph 5
one 5
>>> traffic /hash 5
one 5
>>> traffic /rnd 5
one 5
--- error_log
starts with the 2 servers of
starts with the 1 servers of
