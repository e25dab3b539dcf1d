# A registry of several endpoints: failover to the next one when the one in
# use fails, back to the first when its down period ends; backoff when every
# endpoint fails; the Consul options of the path and etcd's hasleader.
use lib 't/lib';
use Test::Upsync;

run_tests();

__DATA__

=== TEST 1: three Consul endpoints: the one in use stops, changes made through the others arrive; back to the first after its down period
--- registry: consul consul2 consul3
--- init
>>> consul PUT /v1/kv/upstreams/backend/127.0.0.1:$TEST_NGINX_PORT1
>>> consul2 PUT /v1/kv/upstreams/backend/127.0.0.1:$TEST_NGINX_PORT1
>>> consul3 PUT /v1/kv/upstreams/backend/127.0.0.1:$TEST_NGINX_PORT1
--- http_config
    upstream backend {
        upsync 127.0.0.1:$TEST_NGINX_CONSUL_PORT,127.0.0.1:$TEST_NGINX_CONSUL2_PORT,127.0.0.1:$TEST_NGINX_CONSUL3_PORT/v1/kv/upstreams/backend/ upsync_timeout=6m upsync_interval=100ms upsync_type=consul;
        upsync_dump_path $TEST_NGINX_DIR/servers_backend.conf;
    }
    server { listen 127.0.0.1:$TEST_NGINX_PORT1; return 200 "one\n"; }
    server { listen 127.0.0.1:$TEST_NGINX_PORT2; return 200 "two\n"; }
    server { listen 127.0.0.1:$TEST_NGINX_PORT3; return 200 "three\n"; }
--- config
    location / { proxy_pass http://backend; }
    location /show { upstream_show; }
    location /json { upstream_show json; }
--- timeout: 20
--- steps
>>> wait /show?backend
Upstream name: backend; Backend server count: 1
        server 127.0.0.1:$TEST_NGINX_PORT1 weight=1 max_fails=2 fail_timeout=10s;

>>> expect consul GET /_test/stats
"blocking": 1
>>> stop consul
>>> consul2 PUT /v1/kv/upstreams/backend/127.0.0.1:$TEST_NGINX_PORT2
>>> consul3 PUT /v1/kv/upstreams/backend/127.0.0.1:$TEST_NGINX_PORT2
>>> wait /show?backend
Upstream name: backend; Backend server count: 2
        server 127.0.0.1:$TEST_NGINX_PORT2 weight=1 max_fails=2 fail_timeout=10s;
        server 127.0.0.1:$TEST_NGINX_PORT1 weight=1 max_fails=2 fail_timeout=10s;

>>> log registry 127\.0\.0\.1:$TEST_NGINX_CONSUL_PORT: [^\n]*, trying 127\.0\.0\.1:$TEST_NGINX_CONSUL2_PORT next
>>> log using registry 127\.0\.0\.1:$TEST_NGINX_CONSUL2_PORT, registry 127\.0\.0\.1:$TEST_NGINX_CONSUL_PORT is down
>>> json /json
backend.upsync.registry = 127.0.0.1:$TEST_NGINX_CONSUL_PORT,127.0.0.1:$TEST_NGINX_CONSUL2_PORT,127.0.0.1:$TEST_NGINX_CONSUL3_PORT/v1/kv/upstreams/backend/
backend.upsync.last_sync_successful = true
>>> expect consul2 GET /_test/stats
"blocking": 1
>>> start consul
>>> consul PUT /v1/kv/upstreams/backend/127.0.0.1:$TEST_NGINX_PORT2
>>> consul PUT /v1/kv/upstreams/backend/127.0.0.1:$TEST_NGINX_PORT1
>>> sleep 10
>>> consul PUT /v1/kv/upstreams/backend/127.0.0.1:$TEST_NGINX_PORT3
>>> consul2 PUT /v1/kv/upstreams/backend/127.0.0.1:$TEST_NGINX_PORT3
>>> consul3 PUT /v1/kv/upstreams/backend/127.0.0.1:$TEST_NGINX_PORT3
>>> log using registry 127\.0\.0\.1:$TEST_NGINX_CONSUL_PORT again, its down period is over
>>> expect consul GET /_test/stats
"blocking": 1
>>> wait /show?backend
Upstream name: backend; Backend server count: 3
        server 127.0.0.1:$TEST_NGINX_PORT3 weight=1 max_fails=2 fail_timeout=10s;
        server 127.0.0.1:$TEST_NGINX_PORT2 weight=1 max_fails=2 fail_timeout=10s;
        server 127.0.0.1:$TEST_NGINX_PORT1 weight=1 max_fails=2 fail_timeout=10s;

>>> traffic / 30
three 10
two 10
one 10

=== TEST 2: a three-member etcd cluster: the member in use stops, changes through the others reach nginx within seconds; every watch asks for a leader
--- registry: etcd_cluster
--- init
>>> etcd3 put /upstreams/backend/127.0.0.1:$TEST_NGINX_PORT1
--- http_config
    upstream backend {
        upsync 127.0.0.1:$TEST_NGINX_ETCD_CLUSTER1_PORT,127.0.0.1:$TEST_NGINX_ETCD_CLUSTER2_PORT,127.0.0.1:$TEST_NGINX_ETCD_CLUSTER3_PORT/upstreams/backend/ upsync_timeout=6m upsync_interval=100ms upsync_type=etcdv3;
        upsync_dump_path $TEST_NGINX_DIR/servers_backend.conf;
    }
    server { listen 127.0.0.1:$TEST_NGINX_PORT1; return 200 "one\n"; }
    server { listen 127.0.0.1:$TEST_NGINX_PORT2; return 200 "two\n"; }
--- config
    location / { proxy_pass http://backend; }
    location /show { upstream_show; }
--- timeout: 20
--- steps
>>> wait /show?backend
Upstream name: backend; Backend server count: 1
        server 127.0.0.1:$TEST_NGINX_PORT1 weight=1 max_fails=2 fail_timeout=10s;

>>> stop etcd_cluster1
>>> etcd3 put /upstreams/backend/127.0.0.1:$TEST_NGINX_PORT2
>>> wait /show?backend
Upstream name: backend; Backend server count: 2
        server 127.0.0.1:$TEST_NGINX_PORT2 weight=1 max_fails=2 fail_timeout=10s;
        server 127.0.0.1:$TEST_NGINX_PORT1 weight=1 max_fails=2 fail_timeout=10s;

>>> log trying 127\.0\.0\.1:$TEST_NGINX_ETCD_CLUSTER2_PORT next
>>> etcd3 delete /upstreams/backend/127.0.0.1:$TEST_NGINX_PORT1
>>> wait /show?backend
Upstream name: backend; Backend server count: 1
        server 127.0.0.1:$TEST_NGINX_PORT2 weight=1 max_fails=2 fail_timeout=10s;

>>> traffic / 10
two 10
--- no_error_log
[emerg]

=== TEST 3: a registry that accepts and closes: the retries back off to the cap, not one every interval
--- registry: hostile
--- hostile_args: --mode close
--- http_config
    upstream app {
        upsync 127.0.0.1:$TEST_NGINX_HOSTILE_PORT/v1/kv/upstreams/app/ upsync_type=consul upsync_interval=100ms upsync_timeout=6m;
        upsync_dump_path $TEST_NGINX_DIR/servers_app.conf;
        server 127.0.0.1:$TEST_NGINX_PORT1;
    }
    server { listen 127.0.0.1:$TEST_NGINX_PORT1; return 200 "one\n"; }
--- config
    location / { proxy_pass http://app; }
--- steps
>>> log retrying in 100 ms
>>> log retrying in (1[6-9]\d\d|[2-9]\d\d\d) ms
>>> sleep 3
>>> run
n=$(curl -s http://127.0.0.1:$TEST_NGINX_HOSTILE_PORT/_stats | sed 's/[^0-9]//g')
sleep 5
m=$(curl -s http://127.0.0.1:$TEST_NGINX_HOSTILE_PORT/_stats | sed 's/[^0-9]//g')
echo "$n connections, then $((m - n)) in 5 s"
# 100, 200, 400, 800, 1600 ms ... (each from half to whole): some 8
# attempts in the first 6 s, then one every few seconds; every 100 ms would
# be 50 in 5 s.
[ "$n" -lt 20 ] && [ $((m - n)) -le 4 ]
>>> traffic / 10
one 10

=== TEST 4: four workers: their retries are spread by the jitter
--- workers: 4
--- registry: hostile
--- hostile_args: --mode close
--- http_config
    upstream app {
        upsync 127.0.0.1:$TEST_NGINX_HOSTILE_PORT/v1/kv/upstreams/app/ upsync_type=consul upsync_interval=200ms upsync_timeout=6m;
        upsync_dump_path $TEST_NGINX_DIR/servers_app.conf;
        server 127.0.0.1:$TEST_NGINX_PORT1;
    }
    server { listen 127.0.0.1:$TEST_NGINX_PORT1; return 200 "one\n"; }
--- config
    location / { proxy_pass http://app; }
--- steps
>>> sleep 4
>>> run
grep -o 'retrying in [0-9]* ms' $TEST_NGINX_DIR/logs/error.log | sort | uniq -c | sort -rn > $TEST_NGINX_DIR/delays
cat $TEST_NGINX_DIR/delays
# Four workers' first retries all wait the interval; later ones differ.
[ "$(grep -c . $TEST_NGINX_DIR/delays)" -ge 6 ]

=== TEST 5: the Consul options of the path reach the registry and work there: dc, stale, tag, passing, filter
--- registry: consul
--- init
>>> consul PUT /v1/catalog/register
{"Node":"n1","Address":"127.0.0.1","Service":{"ID":"a","Service":"web","Port":$TEST_NGINX_PORT1,"Tags":["v1"],"Weights":{"Passing":3,"Warning":1}}}
>>> consul PUT /v1/catalog/register
{"Node":"n2","Address":"127.0.0.1","Service":{"ID":"b","Service":"web","Port":$TEST_NGINX_PORT2,"Tags":["v2"]}}
>>> consul PUT /v1/catalog/register
{"Node":"n3","Address":"127.0.0.1","Service":{"ID":"c","Service":"web","Port":$TEST_NGINX_PORT3,"Tags":["v2"]},"Check":{"CheckID":"c","Name":"c","Status":"critical","ServiceID":"c"}}
--- http_config
    upstream tagged {
        upsync 127.0.0.1:$TEST_NGINX_CONSUL_PORT/v1/catalog/service/web?dc=dc1&stale&tag=v2 upsync_type=consul_services upsync_interval=100ms upsync_timeout=6m;
        upsync_dump_path $TEST_NGINX_DIR/servers_tagged.conf;
    }
    upstream healthy {
        upsync 127.0.0.1:$TEST_NGINX_CONSUL_PORT/v1/health/service/web?passing&consistent upsync_type=consul_health upsync_interval=100ms upsync_timeout=6m;
        upsync_dump_path $TEST_NGINX_DIR/servers_healthy.conf;
    }
    upstream filtered {
        upsync 127.0.0.1:$TEST_NGINX_CONSUL_PORT/v1/health/service/web?filter=Service.Tags%20contains%20%22v1%22 upsync_type=consul_health upsync_interval=100ms upsync_timeout=6m;
        upsync_dump_path $TEST_NGINX_DIR/servers_filtered.conf;
    }
--- config
    location /show { upstream_show; }
--- steps
>>> wait /show?tagged
Upstream name: tagged; Backend server count: 2
        server 127.0.0.1:$TEST_NGINX_PORT3 weight=1 max_fails=2 fail_timeout=10s;
        server 127.0.0.1:$TEST_NGINX_PORT2 weight=1 max_fails=2 fail_timeout=10s;

>>> wait /show?healthy
Upstream name: healthy; Backend server count: 2
        server 127.0.0.1:$TEST_NGINX_PORT2 weight=1 max_fails=2 fail_timeout=10s;
        server 127.0.0.1:$TEST_NGINX_PORT1 weight=3 max_fails=2 fail_timeout=10s;

>>> wait /show?filtered
Upstream name: filtered; Backend server count: 1
        server 127.0.0.1:$TEST_NGINX_PORT1 weight=3 max_fails=2 fail_timeout=10s;

>>> expect consul GET /_test/requests
/v1/catalog/service/web\?dc=dc1&stale&tag=v2&index=\d+&wait=\d+
>>> expect consul GET /_test/requests
/v1/health/service/web\?passing&consistent&index=\d+
>>> expect consul GET /_test/requests
/v1/health/service/web\?filter=Service\.Tags%20contains%20%22v1%22&index=
>>> consul PUT /v1/catalog/register
{"Node":"n1","Address":"127.0.0.1","Service":{"ID":"a","Service":"web","Port":$TEST_NGINX_PORT1,"Tags":["v1"],"Weights":{"Passing":3,"Warning":2}},"Check":{"CheckID":"w","Name":"w","Status":"warning","ServiceID":"a"}}
>>> wait /show?filtered
Upstream name: filtered; Backend server count: 1
        server 127.0.0.1:$TEST_NGINX_PORT1 weight=2 max_fails=2 fail_timeout=10s;

=== TEST 6: a name with several addresses is several endpoints: it syncs whichever address comes first (the stand-in listens on 127.0.0.1 only)
--- registry: consul
--- init
>>> consul PUT /v1/kv/upstreams/backend/127.0.0.1:$TEST_NGINX_PORT1
--- http_config
    upstream backend {
        upsync localhost:$TEST_NGINX_CONSUL_PORT/v1/kv/upstreams/backend/ upsync_timeout=6m upsync_interval=100ms upsync_type=consul;
        upsync_dump_path $TEST_NGINX_DIR/servers_backend.conf;
    }
    server { listen 127.0.0.1:$TEST_NGINX_PORT1; return 200 "one\n"; }
--- config
    location /show { upstream_show; }
--- steps
>>> wait /show?backend
Upstream name: backend; Backend server count: 1
        server 127.0.0.1:$TEST_NGINX_PORT1 weight=1 max_fails=2 fail_timeout=10s;


=== TEST 7: a shared zone, four workers, ip_hash and a server line: the poller fails over for every worker
--- skip_nginx: <1.27.3
--- workers: 4
--- registry: consul consul2
--- init
>>> consul PUT /v1/kv/upstreams/backend/127.0.0.1:$TEST_NGINX_PORT1
>>> consul2 PUT /v1/kv/upstreams/backend/127.0.0.1:$TEST_NGINX_PORT1
--- http_config
    upstream backend {
        zone backend 64k;
        ip_hash;
        upsync 127.0.0.1:$TEST_NGINX_CONSUL_PORT,127.0.0.1:$TEST_NGINX_CONSUL2_PORT/v1/kv/upstreams/backend/ upsync_timeout=6m upsync_interval=100ms upsync_type=consul;
        upsync_dump_path $TEST_NGINX_DIR/servers_backend.conf;
        server 127.0.0.1:$TEST_NGINX_PORT3;
    }
    server { listen 127.0.0.1:$TEST_NGINX_PORT1; return 200 "one\n"; }
    server { listen 127.0.0.1:$TEST_NGINX_PORT2; return 200 "two\n"; }
    server { listen 127.0.0.1:$TEST_NGINX_PORT3; return 200 "three\n"; }
--- config
    location / { proxy_pass http://backend; }
    location /show { upstream_show; }
--- timeout: 20
--- steps
>>> wait /show?backend
Upstream name: backend; Backend server count: 1
        server 127.0.0.1:$TEST_NGINX_PORT1 weight=1 max_fails=2 fail_timeout=10s;

>>> stop consul
>>> consul2 PUT /v1/kv/upstreams/backend/127.0.0.1:$TEST_NGINX_PORT2
>>> consul2 DELETE /v1/kv/upstreams/backend/127.0.0.1:$TEST_NGINX_PORT1
>>> wait /show?backend
Upstream name: backend; Backend server count: 1
        server 127.0.0.1:$TEST_NGINX_PORT2 weight=1 max_fails=2 fail_timeout=10s;

>>> same /show?backend 20
Upstream name: backend; Backend server count: 1
        server 127.0.0.1:$TEST_NGINX_PORT2 weight=1 max_fails=2 fail_timeout=10s;

>>> log trying 127\.0\.0\.1:$TEST_NGINX_CONSUL2_PORT next
>>> expect consul2 GET /_test/stats
"blocking": 1, "hanging": 0
>>> traffic / 20
two 20
