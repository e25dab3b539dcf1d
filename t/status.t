# upstream_show for machines: the query options, JSON with NGINX Plus field
# names and the sync figures, Prometheus checked by promtool; the same answer
# from every worker, in both modes; no secret in any format.
use lib 't/lib';
use Test::Upsync;

run_tests();

__DATA__

=== TEST 1: the text is the C module's, whichever way it is asked for; backups are not listed in it
--- http_config
    upstream backend {
        server 127.0.0.1:8088 weight=4;
        server 127.0.0.1:8089 backup;
    }
--- config
    location /show { upstream_show; }
    location /show_text { upstream_show text; }
--- steps
>>> http GET /show?backend
Upstream name: backend; Backend server count: 1
        server 127.0.0.1:8088 weight=4 max_fails=1 fail_timeout=10s;

>>> http GET /show?format=text&upstream=BACKEND
Upstream name: backend; Backend server count: 1
        server 127.0.0.1:8088 weight=4 max_fails=1 fail_timeout=10s;

>>> http GET /show_text?backend
Upstream name: backend; Backend server count: 1
        server 127.0.0.1:8088 weight=4 max_fails=1 fail_timeout=10s;

>>> http GET /show?format=text&upstream=nosuch -chomp
The upstream you requested does not exist. Please double-check the name
--- request
GET /show?backend
--- response_headers
Content-Type: text/plain

=== TEST 2: unknown options get 400 and say why, in the location's format
--- http_config
    upstream backend { server 127.0.0.1:8088; }
--- config
    location /show { upstream_show; }
    location /json { upstream_show json; }
--- steps
>>> http GET /show?format=xml status=400
unknown format "xml": use text, json or prometheus
>>> http GET /show?format=json&verbose=1 status=400
unknown option "verbose": the options are format and upstream
>>> http GET /show?format=json&backend status=400
"backend" is not an option: use key=value
>>> json /json?colour=red status=400
error.status = 400
error.code = BadQuery
error.text = unknown option "colour": the options are format and upstream
>>> json /json?upstream=nosuch status=404
error.status = 404
error.code = UpstreamNotFound
error.text = upstream "nosuch" not found
>>> http GET /show?format=prometheus&upstream=nosuch status=404
upstream "nosuch" not found
--- request
GET /show?format=json&upstream=backend
--- response_headers
Content-Type: application/json

=== TEST 3: a static upstream in JSON and Prometheus: every peer, backups included, with its state
--- http_config
    upstream backend {
        server 127.0.0.1:8088 weight=4 max_conns=7 max_fails=2 fail_timeout=30s;
        server 127.0.0.1:8090 down;
        server 127.0.0.1:8089 backup;
    }
--- config
    location /json { upstream_show json; }
    location = /metrics { upstream_show prometheus; }
--- steps
>>> json /json
backend.peers.0.id = 0
backend.peers.0.server = 127.0.0.1:8088
backend.peers.0.name = 127.0.0.1:8088
backend.peers.0.weight = 4
backend.peers.0.max_conns = 7
backend.peers.0.max_fails = 2
backend.peers.0.fail_timeout = 30s
backend.peers.0.state = up
backend.peers.0.backup = false
backend.peers.0.down = false
backend.peers.0.active = 0
backend.peers.1.state = down
backend.peers.1.down = true
backend.peers.2.server = 127.0.0.1:8089
backend.peers.2.backup = true
backend.peers.3 absent
backend.upsync absent
backend.zone absent
>>> json /json?backend
peers.2.backup = true
>>> metrics /metrics
nginx_upsync_upstream_servers{upstream="backend"} 3
nginx_upsync_upstream_server_state{upstream="backend",server="127.0.0.1:8088"} 1
nginx_upsync_upstream_server_state{upstream="backend",server="127.0.0.1:8090"} 3
nginx_upsync_upstream_server_weight{upstream="backend",server="127.0.0.1:8088"} 4
nginx_upsync_upstream_server_limit{upstream="backend",server="127.0.0.1:8088"} 7
nginx_upsync_upstream_server_backup{upstream="backend",server="127.0.0.1:8089"} 1
nginx_upsync_upstream_server_fail_timeout_seconds{upstream="backend",server="127.0.0.1:8088"} 30
>>> run
! curl -sf http://127.0.0.1:$TEST_NGINX_SERVER_PORT/metrics | grep -E 'nginx_upsync_(syncs_total|upstream_info)'
>>> run
# The recording rules for dashboards built on nginx-prometheus-exporter.
promtool=${TEST_NGINX_PROMTOOL:-$PWD/build/tools/promtool}
cd contrib/prometheus && $promtool check rules nginxplus-compat.rules.yml && $promtool test rules nginxplus-compat.test.yml

=== TEST 4: per-worker lists, two workers: the figures of each worker slot, through changes, a registry that goes away and comes back; no secret shows
--- workers: 2
--- registry: consul
--- consul_args: --token s3cr3t-t0ken
--- init
>>> consul PUT /v1/kv/upstreams/backend/127.0.0.1:$TEST_NGINX_PORT1
{"weight":2}
--- http_config
    upstream backend {
        upsync 127.0.0.1:$TEST_NGINX_CONSUL_PORT/v1/kv/upstreams/backend/?dc=dc1 upsync_timeout=6m upsync_interval=100ms upsync_type=consul upsync_token=s3cr3t-t0ken;
        upsync_dump_path $TEST_NGINX_DIR/servers_backend.conf;
        server 127.0.0.1:$TEST_NGINX_PORT2;
    }
    upstream static_one { server 127.0.0.1:$TEST_NGINX_PORT3; }
    server { listen 127.0.0.1:$TEST_NGINX_PORT1; return 200 "one\n"; }
--- config
    location / { proxy_pass http://backend; }
    location /json { upstream_show json; }
    location = /metrics { upstream_show prometheus; }
    location /show { upstream_show; }
--- steps
>>> json /json
backend.peers.0.server = 127.0.0.1:$TEST_NGINX_PORT1
backend.peers.0.weight = 2
backend.peers.1 absent
backend.upsync.type = consul
backend.upsync.registry = 127.0.0.1:$TEST_NGINX_CONSUL_PORT/v1/kv/upstreams/backend/
backend.upsync.mode = worker
backend.upsync.interval = 100ms
backend.upsync.timeout = 360s
backend.upsync.dump_path = $TEST_NGINX_DIR/servers_backend.conf
backend.upsync.dump_written ~ ^20\d\d-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$
backend.upsync.last_sync ~ ^20\d\d-\d\d-\d\dT
backend.upsync.last_change ~ ^20\d\d-\d\d-\d\dT
backend.upsync.last_sync_successful = true
backend.upsync.last_error = null
backend.upsync.syncs >= 2
backend.upsync.changes >= 2
backend.upsync.errors = 0
backend.upsync.index >= 1
backend.upsync.poller_pid absent
backend.upsync.workers.0.worker = 0
backend.upsync.workers.0.pid >= 1
backend.upsync.workers.0.syncs >= 1
backend.upsync.workers.1.worker = 1
backend.upsync.workers.1.pid >= 1
backend.upsync.workers.1.changes = 1
backend.upsync.workers.2 absent
static_one.upsync absent
static_one.peers.0.server = 127.0.0.1:$TEST_NGINX_PORT3
>>> agree /json 20
>>> consul PUT /v1/kv/upstreams/backend/127.0.0.1:$TEST_NGINX_PORT2
{"weight":5}
>>> json /json
backend.peers.0.server = 127.0.0.1:$TEST_NGINX_PORT2
backend.peers.0.weight = 5
backend.upsync.workers.0.changes = 2
backend.upsync.workers.1.changes = 2
backend.upsync.changes = 4
>>> metrics /metrics
nginx_upsync_upstream_info{upstream="backend",type="consul",mode="worker"} 1
nginx_upsync_upstream_servers{upstream="backend"} 2
nginx_upsync_upstream_servers{upstream="static_one"} 1
nginx_upsync_upstream_server_weight{upstream="backend",server="127.0.0.1:$TEST_NGINX_PORT2"} 5
nginx_upsync_changes_total{upstream="backend",worker="0"} 2
nginx_upsync_changes_total{upstream="backend",worker="1"} 2
nginx_upsync_last_sync_successful{upstream="backend",worker="1"} 1
nginx_upsync_sync_errors_total{upstream="backend",worker="0",reason="connect"} 0
nginx_upsync_sync_errors_total{upstream="backend",worker="1",reason="refused"} 0
~ ^nginx_upsync_registry_index\{upstream="backend",worker="0"\} [1-9]\d*$
~ ^nginx_upsync_last_sync_success_timestamp_seconds\{upstream="backend",worker="1"\} 1\d{9}\.\d{3}$
~ ^nginx_upsync_syncs_total\{upstream="backend",worker="0"\} [1-9]
>>> agree /metrics 20
>>> stop consul
>>> json /json
backend.upsync.last_sync_successful = false
backend.upsync.workers.0.last_sync_successful = false
backend.upsync.workers.1.last_sync_successful = false
backend.upsync.workers.0.errors_by_reason.connect >= 1
backend.upsync.workers.1.errors_by_reason.connect >= 1
backend.upsync.errors_by_reason.http = 0
backend.upsync.last_error.text ~ ^registry 127\.0\.0\.1:\d+: cannot connect
backend.upsync.last_error.time ~ ^20\d\d-
backend.peers.0.server = 127.0.0.1:$TEST_NGINX_PORT2
backend.peers.1.server = 127.0.0.1:$TEST_NGINX_PORT1
>>> metrics /metrics
nginx_upsync_last_sync_successful{upstream="backend",worker="0"} 0
~ ^nginx_upsync_sync_errors_total\{upstream="backend",worker="1",reason="connect"\} [1-9]
>>> start consul
>>> consul PUT /v1/kv/upstreams/backend/127.0.0.1:$TEST_NGINX_PORT1
>>> json /json
backend.upsync.last_sync_successful = true
backend.upsync.workers.0.last_sync_successful = true
backend.upsync.workers.1.last_sync_successful = true
backend.peers.0.server = 127.0.0.1:$TEST_NGINX_PORT1
backend.peers.1 absent
backend.upsync.changes = 6
backend.upsync.last_error.text ~ cannot connect
>>> traffic / 10
one 10
>>> run
for q in '' '?format=json' '?format=prometheus' '?format=json&upstream=backend'; do
    for u in /show /json /metrics; do
        body=$(curl -sf "http://127.0.0.1:$TEST_NGINX_SERVER_PORT$u$q") || { echo "no answer from $u$q"; exit 1; }
        case $body in *s3cr3t*|*dc=dc1*) echo "$u$q shows a secret or the query: $body"; exit 1 ;; esac
    done
done
--- request
GET /show?backend
--- response_body
Upstream name: backend; Backend server count: 1
        server 127.0.0.1:$TEST_NGINX_PORT1 weight=1 max_fails=2 fail_timeout=10s;
--- no_error_log
s3cr3t

=== TEST 5: a shared zone, four workers: one poller, its pid, the same figures from every worker
--- skip_nginx: <1.27.3
--- workers: 4
--- registry: consul
--- init
>>> consul PUT /v1/kv/upstreams/backend/127.0.0.1:$TEST_NGINX_PORT1
--- http_config
    upstream backend {
        zone backend 64k;
        upsync 127.0.0.1:$TEST_NGINX_CONSUL_PORT/v1/kv/upstreams/backend/ upsync_timeout=6m upsync_interval=100ms upsync_type=consul;
        upsync_dump_path $TEST_NGINX_DIR/servers_backend.conf;
    }
    server { listen 127.0.0.1:$TEST_NGINX_PORT1; return 200 "one\n"; }
    server { listen 127.0.0.1:$TEST_NGINX_PORT2; return 200 "two\n"; }
--- config
    location / { proxy_pass http://backend; }
    location /json { upstream_show json; }
    location = /metrics { upstream_show prometheus; }
--- steps
>>> json /json
backend.zone = backend
backend.upsync.mode = zone
backend.upsync.poller_pid >= 1
backend.upsync.workers absent
backend.upsync.syncs >= 1
backend.upsync.changes = 1
backend.upsync.last_sync_successful = true
backend.peers.0.server = 127.0.0.1:$TEST_NGINX_PORT1
>>> agree /json 30
>>> consul PUT /v1/kv/upstreams/backend/127.0.0.1:$TEST_NGINX_PORT2
{"weight":3}
>>> json /json
backend.upsync.changes = 2
backend.peers.0.server = 127.0.0.1:$TEST_NGINX_PORT2
backend.peers.0.weight = 3
>>> agree /json 30
>>> metrics /metrics
nginx_upsync_upstream_info{upstream="backend",type="consul",mode="zone"} 1
nginx_upsync_changes_total{upstream="backend"} 2
nginx_upsync_sync_errors_total{upstream="backend",reason="timeout"} 0
nginx_upsync_upstream_server_weight{upstream="backend",server="127.0.0.1:$TEST_NGINX_PORT2"} 3
~ ^nginx_upsync_poller_pid\{upstream="backend"\} [1-9]\d*$
>>> agree /metrics 30
>>> traffic / 40
two 30
one 10
>>> run
! curl -sf http://127.0.0.1:$TEST_NGINX_SERVER_PORT/metrics | grep worker=

=== TEST 6: etcd v3: the revision is the index; a refused list is counted as refused
--- registry: etcd
--- init
>>> etcd3 put /upstreams/backend/127.0.0.1:$TEST_NGINX_PORT1
--- http_config
    upstream backend {
        upsync 127.0.0.1:$TEST_NGINX_ETCD_PORT/upstreams/backend/ upsync_timeout=6m upsync_interval=100ms upsync_type=etcdv3;
        upsync_dump_path $TEST_NGINX_DIR/servers_backend.conf;
    }
    server { listen 127.0.0.1:$TEST_NGINX_PORT1; return 200 "one\n"; }
--- config
    location /json { upstream_show json; }
    location = /metrics { upstream_show prometheus; }
--- steps
>>> json /json
backend.upsync.type = etcdv3
backend.upsync.index >= 2
backend.upsync.changes = 1
>>> etcd3 put /upstreams/backend/not-an-address
>>> etcd3 delete /upstreams/backend/127.0.0.1:$TEST_NGINX_PORT1
>>> json /json
backend.upsync.errors_by_reason.refused >= 1
backend.upsync.last_sync_successful = false
backend.peers.0.state = up
>>> metrics /metrics
~ ^nginx_upsync_sync_errors_total\{upstream="backend",worker="0",reason="refused"\} [1-9]
~ ^nginx_upsync_registry_index\{upstream="backend",worker="0"\} [2-9]
--- request
GET /json?upstream=backend
--- error_log
registry list is empty, cannot delete all peers

=== TEST 7: an unknown format on the directive is refused
--- config
    location /show { upstream_show yaml; }
--- must_die
--- error_log
"upstream_show": unknown format "yaml": use text, json or prometheus
