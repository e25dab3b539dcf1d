# Host-name backends: registry entries that name a server by host name are
# resolved with nginx's resolver (dnsmasq on loopback here), each address a
# peer; the answer's changes move traffic, a failed answer keeps the last
# addresses, and upstream_show and the dump file keep the name.
use lib 't/lib';
use Test::Upsync;

run_tests();

__DATA__

=== TEST 1: a Consul KV name with one address, then two, then another one: traffic follows DNS, upstream_show and the dump keep the name
--- registry: consul dns
--- dns_hosts
127.0.0.5 api.test
--- init
>>> consul PUT /v1/kv/upstreams/backend/API.test:$TEST_NGINX_PORT1
{"weight": 2, "max_fails": 3, "fail_timeout": 7}
>>> write $TEST_NGINX_DIR/servers_backend.conf
server 127.0.0.1:$TEST_NGINX_PORT2;
--- http_config
    resolver 127.0.0.1:$TEST_NGINX_DNS_PORT valid=1s ipv6=off;
    resolver_timeout 1s;
    upstream backend {
        server 127.0.0.1:$TEST_NGINX_PORT2;
        upsync 127.0.0.1:$TEST_NGINX_CONSUL_PORT/v1/kv/upstreams/backend/ upsync_timeout=6m upsync_interval=100ms upsync_type=consul;
        upsync_dump_path $TEST_NGINX_DIR/servers_backend.conf;
    }
    upstream included {
        include $TEST_NGINX_DIR/servers_backend.conf;
    }
    server { listen 127.0.0.5:$TEST_NGINX_PORT1; return 200 "five\n"; }
    server { listen 127.0.0.6:$TEST_NGINX_PORT1; return 200 "six\n"; }
    server { listen 127.0.0.7:$TEST_NGINX_PORT1; return 200 "seven\n"; }
    server { listen 127.0.0.1:$TEST_NGINX_PORT2; return 200 "configured\n"; }
--- config
    location / { proxy_pass http://backend; }
    location /included { proxy_pass http://included; }
    location /show { upstream_show; }
    location /json { upstream_show json; }
--- workers: 2
--- timeout: 20
--- steps
>>> wait /show?backend
Upstream name: backend; Backend server count: 1
        server api.test:$TEST_NGINX_PORT1 weight=2 max_fails=3 fail_timeout=7s;

>>> traffic / 20
five 20
>>> file $TEST_NGINX_DIR/servers_backend.conf
server 127.0.0.5:$TEST_NGINX_PORT1 weight=2 max_fails=3 fail_timeout=7s; # resolved from api.test:$TEST_NGINX_PORT1
>>> dns
127.0.0.5 api.test
127.0.0.6 api.test
>>> settle /json 8
127\.0\.0\.6:$TEST_NGINX_PORT1[\s\S]*127\.0\.0\.5:$TEST_NGINX_PORT1
>>> traffic / 40
five >0
six >0
>>> json /json
backend.peers.0.server = api.test:$TEST_NGINX_PORT1
backend.peers.0.name = 127.0.0.6:$TEST_NGINX_PORT1
backend.peers.0.weight = 2
backend.peers.1.server = api.test:$TEST_NGINX_PORT1
backend.peers.1.name = 127.0.0.5:$TEST_NGINX_PORT1
backend.peers.2 absent
>>> wait /show?backend
Upstream name: backend; Backend server count: 1
        server api.test:$TEST_NGINX_PORT1 weight=2 max_fails=3 fail_timeout=7s;

>>> file $TEST_NGINX_DIR/servers_backend.conf
server 127.0.0.6:$TEST_NGINX_PORT1 weight=2 max_fails=3 fail_timeout=7s; # resolved from api.test:$TEST_NGINX_PORT1
server 127.0.0.5:$TEST_NGINX_PORT1 weight=2 max_fails=3 fail_timeout=7s; # resolved from api.test:$TEST_NGINX_PORT1
>>> dns
127.0.0.7 api.test
>>> settle / 10
seven
>>> log "api\.test:$TEST_NGINX_PORT1" resolved to 127\.0\.0\.7
>>> consul PUT /v1/kv/upstreams/backend/API.test:$TEST_NGINX_PORT1
{"weight": 5}
>>> wait /show?backend
Upstream name: backend; Backend server count: 1
        server api.test:$TEST_NGINX_PORT1 weight=5 max_fails=2 fail_timeout=10s;

>>> traffic / 10
seven 10
>>> same /included 2
configured
>>> reload
>>> same / 10
seven
>>> same /included 4
seven
--- no_error_log
[error]

=== TEST 2: NXDOMAIN and a DNS server that stops answering keep the last addresses; a name not resolved yet waits for the resolver
--- registry: consul dns
--- dns_hosts
127.0.0.5 api.test
127.0.0.6 api.test
--- init
>>> consul PUT /v1/kv/upstreams/backend/api.test:$TEST_NGINX_PORT1
--- http_config
    resolver 127.0.0.1:$TEST_NGINX_DNS_PORT valid=1s ipv6=off;
    resolver_timeout 1s;
    upstream backend {
        upsync 127.0.0.1:$TEST_NGINX_CONSUL_PORT/v1/kv/upstreams/backend/ upsync_timeout=6m upsync_interval=100ms upsync_type=consul;
        upsync_dump_path $TEST_NGINX_DIR/servers_backend.conf;
    }
    server { listen 127.0.0.5:$TEST_NGINX_PORT1; return 200 "five\n"; }
    server { listen 127.0.0.6:$TEST_NGINX_PORT1; return 200 "six\n"; }
    server { listen 127.0.0.7:$TEST_NGINX_PORT2; return 200 "late\n"; }
--- config
    location / { proxy_pass http://backend; }
    location /show { upstream_show; }
--- timeout: 20
--- steps
>>> settle / 6
five|six
>>> dns
127.0.0.9 other.test
>>> log "api\.test:$TEST_NGINX_PORT1" could not be resolved \(3: Host not found\), keeping its last 2 addresses
>>> traffic / 20
five >0
six >0
>>> dns
127.0.0.6 api.test
>>> settle / 10
six
>>> pause dns
>>> log "api\.test:$TEST_NGINX_PORT1" could not be resolved \(110: Operation timed out\), keeping its last 1 addresses
>>> traffic / 10
six 10
>>> resume dns
>>> consul PUT /v1/kv/upstreams/backend/late.test:$TEST_NGINX_PORT2
>>> log "late\.test:$TEST_NGINX_PORT2" could not be resolved \(3: Host not found\), it has no address yet
>>> file $TEST_NGINX_DIR/servers_backend.conf
server 127.0.0.6:$TEST_NGINX_PORT1 weight=1 max_fails=2 fail_timeout=10s; # resolved from api.test:$TEST_NGINX_PORT1
# server late.test:$TEST_NGINX_PORT2 weight=1 max_fails=2 fail_timeout=10s; # not resolved yet
>>> traffic / 10
six 10
>>> dns
127.0.0.6 api.test
127.0.0.7 late.test
>>> log "late\.test:$TEST_NGINX_PORT2" resolved to 127\.0\.0\.7
>>> traffic / 20
six >0
late >0
--- error_log
could not be resolved (3: Host not found), keeping its last 2 addresses

=== TEST 3: a name and an IP key for the same address make one peer; without valid= the answer's TTL (1 s here) decides when it is asked again
--- registry: consul dns
--- dns_hosts
127.0.0.5 api.test
127.0.0.6 api.test
--- init
>>> consul PUT /v1/kv/upstreams/backend/127.0.0.5:$TEST_NGINX_PORT1
>>> consul PUT /v1/kv/upstreams/backend/api.test:$TEST_NGINX_PORT1
--- http_config
    resolver 127.0.0.1:$TEST_NGINX_DNS_PORT ipv6=off;
    upstream backend {
        upsync 127.0.0.1:$TEST_NGINX_CONSUL_PORT/v1/kv/upstreams/backend/ upsync_timeout=6m upsync_interval=100ms upsync_type=consul;
        upsync_dump_path $TEST_NGINX_DIR/servers_backend.conf;
    }
    server { listen 127.0.0.5:$TEST_NGINX_PORT1; return 200 "five\n"; }
    server { listen 127.0.0.6:$TEST_NGINX_PORT1; return 200 "six\n"; }
--- config
    location / { proxy_pass http://backend; }
    location /show { upstream_show; }
    location /json { upstream_show json; }
--- timeout: 20
--- steps
>>> wait /show?backend
Upstream name: backend; Backend server count: 2
        server api.test:$TEST_NGINX_PORT1 weight=1 max_fails=2 fail_timeout=10s;
        server 127.0.0.5:$TEST_NGINX_PORT1 weight=1 max_fails=2 fail_timeout=10s;

>>> json /json
backend.peers.0.name = 127.0.0.6:$TEST_NGINX_PORT1
backend.peers.0.server = api.test:$TEST_NGINX_PORT1
backend.peers.1.name = 127.0.0.5:$TEST_NGINX_PORT1
backend.peers.1.server = 127.0.0.5:$TEST_NGINX_PORT1
backend.peers.2 absent
>>> traffic / 20
five >0
six >0
>>> consul DELETE /v1/kv/upstreams/backend/127.0.0.5:$TEST_NGINX_PORT1
>>> wait /show?backend
Upstream name: backend; Backend server count: 1
        server api.test:$TEST_NGINX_PORT1 weight=1 max_fails=2 fail_timeout=10s;

>>> traffic / 20
five >0
six >0
>>> dns
127.0.0.6 api.test
>>> settle / 10
six
--- no_error_log
[error]

=== TEST 4: a restart from the dump file never waits for DNS: the last addresses serve, then the name's new ones; a name of the dump without an address comes up once resolved
--- registry: dns
--- dns_hosts
127.0.0.6 api.test
127.0.0.7 late.test
--- init
>>> write $TEST_NGINX_DIR/servers_backend.conf
server 127.0.0.5:$TEST_NGINX_PORT1 weight=1 max_fails=2 fail_timeout=10s; # resolved from api.test:$TEST_NGINX_PORT1
>>> write $TEST_NGINX_DIR/servers_other.conf
# server late.test:$TEST_NGINX_PORT1 weight=1 max_fails=2 fail_timeout=10s; # not resolved yet
>>> write $TEST_NGINX_DIR/servers_refused.conf
server 127.0.0.5:$TEST_NGINX_PORT1 weight=1 max_fails=2 fail_timeout=10s; # resolved from api.example:$TEST_NGINX_PORT1
>>> pause dns
--- http_config
    resolver 127.0.0.1:$TEST_NGINX_DNS_PORT valid=1s ipv6=off;
    resolver_timeout 1s;
    upstream backend {
        upsync 127.0.0.1:$TEST_NGINX_PORT9/v1/kv/upstreams/backend/ upsync_timeout=6m upsync_interval=100ms upsync_type=consul;
        upsync_dump_path $TEST_NGINX_DIR/servers_backend.conf;
    }
    upstream other {
        server 127.0.0.1:$TEST_NGINX_PORT2;
        upsync 127.0.0.1:$TEST_NGINX_PORT9/v1/kv/upstreams/other/ upsync_timeout=6m upsync_interval=100ms upsync_type=consul;
        upsync_dump_path $TEST_NGINX_DIR/servers_other.conf;
    }
    upstream included {
        include $TEST_NGINX_DIR/servers_backend.conf;
    }
    upstream refused {
        upsync 127.0.0.1:$TEST_NGINX_PORT9/v1/kv/upstreams/refused/ upsync_timeout=6m upsync_interval=100ms upsync_type=consul;
        upsync_dump_path $TEST_NGINX_DIR/servers_refused.conf;
    }
    server { listen 127.0.0.5:$TEST_NGINX_PORT1; return 200 "five\n"; }
    server { listen 127.0.0.6:$TEST_NGINX_PORT1; return 200 "six\n"; }
    server { listen 127.0.0.7:$TEST_NGINX_PORT1; return 200 "late\n"; }
    server { listen 127.0.0.1:$TEST_NGINX_PORT2; return 200 "configured\n"; }
--- config
    location / { proxy_pass http://backend; }
    location /other { proxy_pass http://other; }
    location /included { proxy_pass http://included; }
    location /refused { proxy_pass http://refused; }
    location /show { upstream_show; }
--- timeout: 20
--- steps
>>> same / 5
five
>>> same /other 5
configured
>>> same /included 3
five
>>> resume dns
>>> settle / 10
six
>>> settle /other 10
late
>>> file $TEST_NGINX_DIR/servers_other.conf
server 127.0.0.7:$TEST_NGINX_PORT1 weight=1 max_fails=2 fail_timeout=10s; # resolved from late.test:$TEST_NGINX_PORT1
>>> log "api\.example:$TEST_NGINX_PORT1" could not be resolved \(5: Operation refused\), keeping its last 1 addresses
>>> same /refused 5
five

=== TEST 5: zone mode, 4 workers: one worker resolves for all (the DNS server's query log), and every worker's traffic follows the answer
--- registry: etcd dns
--- dns_hosts
127.0.0.5 api.test
--- init
>>> etcd3 put /upstreams/backend/api.test:$TEST_NGINX_PORT1
{"weight": 1}
--- http_config
    upstream backend {
        zone backend 64k;
        resolver 127.0.0.1:$TEST_NGINX_DNS_PORT valid=1s ipv6=off;
        resolver_timeout 1s;
        least_conn;
        upsync 127.0.0.1:$TEST_NGINX_ETCD_PORT/upstreams/backend/ upsync_timeout=6m upsync_interval=100ms upsync_type=etcdv3;
        upsync_dump_path $TEST_NGINX_DIR/servers_backend.conf;
    }
    server { listen 127.0.0.5:$TEST_NGINX_PORT1; return 200 "five\n"; }
    server { listen 127.0.0.6:$TEST_NGINX_PORT1; return 200 "six\n"; }
--- config
    location / { proxy_pass http://backend; }
    location /show { upstream_show; }
--- workers: 4
--- skip_nginx: <1.27.3
--- timeout: 30
--- steps
>>> settle /show?backend 8
server api\.test:$TEST_NGINX_PORT1 weight=1 max_fails=2 fail_timeout=10s;
>>> same / 12
five
>>> run
log=$TEST_NGINX_DIR/logs/dns.log
before=$(grep -c 'query\[A\] api.test' $log)
sleep 6
after=$(grep -c 'query\[A\] api.test' $log)
# TTL 1 s: one resolving worker asks about every 2 s; four would ask 12 times
echo "queries in 6 s: $((after - before))"
[ $((after - before)) -ge 2 ] && [ $((after - before)) -le 5 ]
>>> dns
127.0.0.6 api.test
>>> settle / 12
six
>>> same / 12
six
--- no_error_log
[error]

=== TEST 6: names in an etcd v2 directory, a Consul catalog service and a Consul health service; a malformed name is skipped
--- registry: etcd consul dns
--- dns_hosts
127.0.0.5 api.test
127.0.0.6 web.test
127.0.0.7 health.test
--- init
>>> etcd PUT /v2/keys/upstreams/v2/api.test:$TEST_NGINX_PORT1
value={"weight":1}
>>> etcd PUT /v2/keys/upstreams/v2/bad_name.test:$TEST_NGINX_PORT1
value={"weight":1}
>>> consul PUT /v1/catalog/register
{"Node": "n1", "Address": "127.0.0.1", "Service": {"ID": "web1", "Service": "web", "Address": "Web.Test.", "Port": $TEST_NGINX_PORT1}}
>>> consul PUT /v1/catalog/register
{"Node": "n2", "Address": "127.0.0.1", "Service": {"ID": "h1", "Service": "health", "Address": "health.test", "Port": $TEST_NGINX_PORT1}}
--- http_config
    resolver 127.0.0.1:$TEST_NGINX_DNS_PORT valid=1s ipv6=off;
    upstream v2 {
        upsync 127.0.0.1:$TEST_NGINX_ETCD_PORT/v2/keys/upstreams/v2 upsync_timeout=6m upsync_interval=100ms upsync_type=etcd;
        upsync_dump_path $TEST_NGINX_DIR/servers_v2.conf;
    }
    upstream web {
        upsync 127.0.0.1:$TEST_NGINX_CONSUL_PORT/v1/catalog/service/web upsync_timeout=6m upsync_interval=100ms upsync_type=consul_services;
        upsync_dump_path $TEST_NGINX_DIR/servers_web.conf;
    }
    upstream health {
        upsync 127.0.0.1:$TEST_NGINX_CONSUL_PORT/v1/health/service/health upsync_timeout=6m upsync_interval=100ms upsync_type=consul_health;
        upsync_dump_path $TEST_NGINX_DIR/servers_health.conf;
    }
    server { listen 127.0.0.5:$TEST_NGINX_PORT1; return 200 "five\n"; }
    server { listen 127.0.0.6:$TEST_NGINX_PORT1; return 200 "six\n"; }
    server { listen 127.0.0.7:$TEST_NGINX_PORT1; return 200 "seven\n"; }
--- config
    location /v2 { proxy_pass http://v2; }
    location /web { proxy_pass http://web; }
    location /health { proxy_pass http://health; }
    location /show { upstream_show; }
--- timeout: 20
--- steps
>>> settle /v2 5
five
>>> settle /web 5
six
>>> settle /health 5
seven
>>> wait /show?web
Upstream name: web; Backend server count: 1
        server web.test:$TEST_NGINX_PORT1 weight=1 max_fails=2 fail_timeout=10s;

>>> log "bad_name\.test:$TEST_NGINX_PORT1" is neither an IP address nor a host name, skipped

=== TEST 7: without a resolver a name is skipped with a message that says what to configure, and the addresses keep serving
--- registry: consul
--- init
>>> consul PUT /v1/kv/upstreams/plain/127.0.0.5:$TEST_NGINX_PORT1
>>> consul PUT /v1/kv/upstreams/plain/api.test:$TEST_NGINX_PORT2
>>> consul PUT /v1/kv/upstreams/names/api.test:$TEST_NGINX_PORT2
--- http_config
    upstream plain {
        upsync 127.0.0.1:$TEST_NGINX_CONSUL_PORT/v1/kv/upstreams/plain/ upsync_timeout=6m upsync_interval=100ms upsync_type=consul;
        upsync_dump_path $TEST_NGINX_DIR/servers_plain.conf;
    }
    upstream names {
        server 127.0.0.5:$TEST_NGINX_PORT1;
        upsync 127.0.0.1:$TEST_NGINX_CONSUL_PORT/v1/kv/upstreams/names/ upsync_timeout=6m upsync_interval=100ms upsync_type=consul;
        upsync_dump_path $TEST_NGINX_DIR/servers_names.conf;
    }
    server { listen 127.0.0.5:$TEST_NGINX_PORT1; return 200 "five\n"; }
--- config
    location /plain { proxy_pass http://plain; }
    location /names { proxy_pass http://names; }
    location /show { upstream_show; }
--- timeout: 20
--- steps
>>> wait /show?plain
Upstream name: plain; Backend server count: 1
        server 127.0.0.5:$TEST_NGINX_PORT1 weight=1 max_fails=2 fail_timeout=10s;

>>> log upstream "plain": server "api\.test:$TEST_NGINX_PORT2" is a host name, and no "resolver" is configured \(in http\{\}, or in the upstream on nginx 1\.27\.3 and newer\): skipped
>>> log upstream "names": its servers are host names, and no "resolver" is configured: keeping the last list
>>> same /plain 5
five
>>> same /names 5
five

=== TEST 8: zone mode: the polling worker killed while DNS is silent; the next poller keeps the name's addresses, then follows its new answer
--- registry: consul dns
--- dns_hosts
127.0.0.5 api.test
--- init
>>> consul PUT /v1/kv/upstreams/a/api.test:$TEST_NGINX_PORT1
--- http_config
    resolver 127.0.0.1:$TEST_NGINX_DNS_PORT valid=1s ipv6=off;
    resolver_timeout 1s;
    upstream a {
        zone a 64k;
        upsync 127.0.0.1:$TEST_NGINX_CONSUL_PORT/v1/kv/upstreams/a/ upsync_interval=50ms upsync_timeout=6m upsync_type=consul;
        upsync_dump_path $TEST_NGINX_DIR/servers_a.conf;
    }
    server { listen 127.0.0.5:$TEST_NGINX_PORT1; return 200 "five\n"; }
    server { listen 127.0.0.6:$TEST_NGINX_PORT1; return 200 "six\n"; }
--- config
    location /a { proxy_pass http://a; }
    location /show { upstream_show; }
--- workers: 4
--- skip_nginx: <1.27.3
--- allow_alerts
--- timeout: 20
--- steps
>>> settle /a 8
five
>>> pause dns
>>> run
pid=$(grep -o '[0-9]*#[0-9]*: upsync: upstream "a": this worker polls' $TEST_NGINX_DIR/logs/error.log | cut -d'#' -f1)
[ "$(echo "$pid" | wc -l)" = 1 ] && kill -KILL $pid
>>> log (?s)this worker polls.*exited on signal 9.*this worker polls
>>> log (?s)exited on signal 9.*"api\.test:$TEST_NGINX_PORT1" could not be resolved \(110: Operation timed out\), keeping its last 1 addresses
>>> same /a 12
five
>>> resume dns
>>> dns
127.0.0.6 api.test
>>> settle /a 12
six
--- error_log
exited on signal 9
