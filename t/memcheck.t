# A churn scenario for valgrind's memcheck (scripts/test runs it with
# TEST_NGINX_VALGRIND=1; plain `prove -r t` skips it): every balancer, with
# per-worker lists and, on nginx 1.27.3 and newer, with a shared zone, with
# and without keepalive, under traffic that keeps requests in flight across
# changes (slow downloads), while the registry grows the list past 64
# servers, shrinks it to one and grows it again, with a reload in between.
# The harness fails the block on any invalid read, write or free, on any
# error with a frame of the module, and on memory the module definitely lost.
use lib 't/lib';
use Test::Upsync;
use Test::Upsync::Balancers;
use Test::Base ();

my ($major, $minor, $patch) = nginx_version();
my $zones = $major * 1_000_000 + $minor * 1000 + $patch >= 1_027_003;

my (@upstreams, @locations);
my $n = 0;
for my $b (@BALANCERS) {
    my (undef, $directive) = @$b;
    for my $zone ($zones ? (0, 1) : (0)) {
        $n++;
        my $extra = ($zone ? "        zone u$n 256k;\n" : '') . ($n % 2 ? "        keepalive 4;\n" : '');
        push @upstreams, <<"END";
    upstream u$n {
        $directive
        server 127.0.0.2:\$TEST_NGINX_PORT1;
        server 127.0.0.3:\$TEST_NGINX_PORT1 weight=2;
$extra        upsync 127.0.0.1:\$TEST_NGINX_CONSUL_PORT/v1/kv/upstreams/app/ upsync_interval=50ms upsync_type=consul;
        upsync_dump_path \$TEST_NGINX_DIR/servers_u$n.conf;
    }
END
        push @locations, qq(    location /u$n/ { proxy_pass http://u$n/; proxy_http_version 1.1; proxy_set_header Connection ""; }\n);
    }
}
my $listen = join('', map { "        listen 127.0.0.$_:\$TEST_NGINX_PORT1;\n" } 2 .. 90);

Test::Base::spec_string(<<"END");
=== TEST 1: every balancer and mode under churn and traffic, the list past 64 servers and back, a reload
--- skip_unless: TEST_NGINX_VALGRIND
--- workers: 2
--- timeout: 120
--- registry: consul
--- init
>>> run
head -c 20000 /dev/zero > \$TEST_NGINX_DIR/html/big
cat > \$TEST_NGINX_DIR/load.lua <<'LUA'
local i = 0
request = function()
    i = i + 1
    local u = i % $n + 1
    if i % 20 == 0 then
        return wrk.format("GET", "/u" .. u .. "/big")
    end
    return wrk.format("GET", "/u" .. u .. "/?k=" .. i)
end
LUA
--- http_config
@{[ join '', @upstreams ]}
    server {
$listen        location / { return 200 "\$server_addr\\n"; }
        location = /big { root \$TEST_NGINX_DIR/html; limit_rate 20k; }
    }
--- config
@{[ join '', @locations ]}    location /show { upstream_show; }
--- steps
>>> run
consul=http://127.0.0.1:\$TEST_NGINX_CONSUL_PORT
# The registry holds servers 127.0.0.10 .. 10+size-1; some weighted, some down.
size=0
resize() {
    local want=\$1 ops= i value
    if [ "\$want" -gt "\$size" ]; then
        for ((i = size; i < want; i++)); do
            if ((i % 11 == 5)); then value='{"down":1}'; else value="{\\"weight\\":\$((1 + i % 3))}"; fi
            ops+="{\\"KV\\":{\\"Verb\\":\\"set\\",\\"Key\\":\\"upstreams/app/127.0.0.\$((10 + i)):\$TEST_NGINX_PORT1\\",\\"Value\\":\\"\$(printf %s "\$value" | base64 -w0)\\"}},"
        done
    else
        for ((i = want; i < size; i++)); do
            ops+="{\\"KV\\":{\\"Verb\\":\\"delete\\",\\"Key\\":\\"upstreams/app/127.0.0.\$((10 + i)):\$TEST_NGINX_PORT1\\"}},"
        done
    fi
    [ -n "\$ops" ] && curl -sf -X PUT --data-binary "[\${ops%,}]" "\$consul/v1/txn" >/dev/null || return 1
    size=\$want
}
wrk -t1 -c12 -d50s --timeout 30s -s \$TEST_NGINX_DIR/load.lua http://127.0.0.1:\$TEST_NGINX_SERVER_PORT/ > \$TEST_NGINX_DIR/wrk.out 2>&1 &
wrk_pid=\$!
sleep 3
for round in 1 2; do
    for want in 3 30 70 66 6 64 65 2 40 70 8 1 20; do
        resize \$want || { echo "resize to \$want failed"; exit 1; }
        sleep 0.7
    done
    [ \$round = 1 ] && kill -HUP \$(cat \$TEST_NGINX_DIR/logs/nginx.pid) && sleep 3
done
wait \$wrk_pid
cat \$TEST_NGINX_DIR/wrk.out
grep -q 'requests in' \$TEST_NGINX_DIR/wrk.out
! grep -q 'Non-2xx' \$TEST_NGINX_DIR/wrk.out

>>> settle /show?u1 3
Backend server count: 20\\n

--- no_error_log eval
# The backends are this nginx: at the reload, keepalive connections to the old
# workers end as nginx ends them (reset, retried); the module logs nothing.
[qr/\\[(error|crit)\\].*upsync:/, "no live upstreams"]

=== TEST 2: host names: added and removed while their queries are in flight, answers changing, a reload, in both modes
--- skip_unless: TEST_NGINX_VALGRIND
--- workers: 2
--- timeout: 120
--- registry: consul dns
--- dns_hosts
127.0.0.5 a.test
127.0.0.6 a.test
127.0.0.7 b.test
--- init
>>> consul PUT /v1/kv/upstreams/names/a.test:\$TEST_NGINX_PORT1
>>> consul PUT /v1/kv/upstreams/names/b.test:\$TEST_NGINX_PORT1
>>> consul PUT /v1/kv/upstreams/names/gone.test:\$TEST_NGINX_PORT1
--- http_config
    resolver 127.0.0.1:\$TEST_NGINX_DNS_PORT valid=1s ipv6=off;
    resolver_timeout 1s;
    upstream w {
        server 127.0.0.5:\$TEST_NGINX_PORT1;
        upsync 127.0.0.1:\$TEST_NGINX_CONSUL_PORT/v1/kv/upstreams/names/ upsync_interval=50ms upsync_type=consul;
        upsync_dump_path \$TEST_NGINX_DIR/servers_w.conf;
    }
@{[ $zones ? <<'ZONE' : '' ]}
    upstream z {
        zone z 64k;
        random two;
        server 127.0.0.5:$TEST_NGINX_PORT1;
        upsync 127.0.0.1:$TEST_NGINX_CONSUL_PORT/v1/kv/upstreams/names/ upsync_interval=50ms upsync_type=consul;
        upsync_dump_path $TEST_NGINX_DIR/servers_z.conf;
    }
ZONE
    server {
        listen 127.0.0.5:\$TEST_NGINX_PORT1;
        listen 127.0.0.6:\$TEST_NGINX_PORT1;
        listen 127.0.0.7:\$TEST_NGINX_PORT1;
        location / { return 200 "up\\n"; }
    }
--- config
    location /w { proxy_pass http://w/; }
    location /z { proxy_pass http://@{[ $zones ? 'z' : 'w' ]}/; }
--- steps
>>> sleep 4
>>> same /w 4
up
>>> same /z 4
up
>>> pause dns
>>> sleep 3
>>> consul DELETE /v1/kv/upstreams/names/b.test:\$TEST_NGINX_PORT1
>>> consul PUT /v1/kv/upstreams/names/new.test:\$TEST_NGINX_PORT1
>>> sleep 2
>>> resume dns
>>> dns
127.0.0.7 a.test
127.0.0.5 new.test
>>> sleep 4
>>> reload
>>> sleep 4
>>> pause dns
>>> sleep 3
>>> consul DELETE /v1/kv/upstreams/names/new.test:\$TEST_NGINX_PORT1
>>> consul DELETE /v1/kv/upstreams/names/gone.test:\$TEST_NGINX_PORT1
>>> sleep 2
>>> resume dns
>>> sleep 3
>>> same /w 4
up
>>> same /z 4
up

=== TEST 3: health checks: servers added and removed while probes are in flight (some hang, some refuse), a reload, in both modes
--- skip_unless: TEST_NGINX_VALGRIND
--- workers: 2
--- timeout: 120
--- registry: consul
--- backends: http:one http:two
--- init
>>> consul PUT /v1/kv/upstreams/checked/127.0.0.1:\$TEST_NGINX_ONE_PORT
>>> consul PUT /v1/kv/upstreams/checked/127.0.0.1:\$TEST_NGINX_TWO_PORT
--- http_config
    upstream w {
        server 127.0.0.1:\$TEST_NGINX_ONE_PORT;
        upsync 127.0.0.1:\$TEST_NGINX_CONSUL_PORT/v1/kv/upstreams/checked/ upsync_interval=50ms upsync_type=consul;
        upsync_dump_path \$TEST_NGINX_DIR/servers_cw.conf;
        check interval=200 rise=1 fall=1 timeout=500 type=http default_down=false;
    }
@{[ $zones ? <<'ZONE' : '' ]}
    upstream z {
        zone z 64k;
        least_conn;
        server 127.0.0.1:$TEST_NGINX_ONE_PORT;
        upsync 127.0.0.1:$TEST_NGINX_CONSUL_PORT/v1/kv/upstreams/checked/ upsync_interval=50ms upsync_type=consul;
        upsync_dump_path $TEST_NGINX_DIR/servers_cz.conf;
        check interval=200 rise=1 fall=1 timeout=500 type=tcp default_down=false;
    }
ZONE
--- config
    location /w { proxy_pass http://w; }
    location /z { proxy_pass http://@{[ $zones ? 'z' : 'w' ]}; }
    location /status { check_status json; }
--- steps
>>> sleep 3
>>> mode two hang
>>> sleep 2
>>> consul DELETE /v1/kv/upstreams/checked/127.0.0.1:\$TEST_NGINX_TWO_PORT
>>> consul PUT /v1/kv/upstreams/checked/127.0.0.1:\$TEST_NGINX_PORT1
>>> sleep 2
>>> consul PUT /v1/kv/upstreams/checked/127.0.0.1:\$TEST_NGINX_TWO_PORT
>>> mode two refuse
>>> sleep 2
>>> reload
>>> sleep 3
>>> mode two ok
>>> consul DELETE /v1/kv/upstreams/checked/127.0.0.1:\$TEST_NGINX_PORT1
>>> sleep 3
>>> traffic /w 20
one *
two *
>>> http GET /status
END

run_tests();
