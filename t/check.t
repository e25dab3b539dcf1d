# Active health checks, nginx_upstream_check_module's directives: one
# worker probes for all, every balancer skips a server the checks mark
# down, and check_status answers the same from every worker. The backends
# are t/registry/check_backend.py, whose mode a step changes.
use lib 't/lib';
use Test::Upsync;

run_tests();

__DATA__

=== TEST 1: the seed config as its users write it (Consul, a dump, check, check_http_send, check_http_expect_alive, check_status), 4 workers: a failing server gets no traffic after fall checks, and traffic again after rise
--- registry: consul
--- backends: http:one http:two
--- init
>>> consul PUT /v1/kv/upstreams/con_server/127.0.0.1:$TEST_NGINX_ONE_PORT
>>> consul PUT /v1/kv/upstreams/con_server/127.0.0.1:$TEST_NGINX_TWO_PORT
--- http_config
    upstream con_server {
        upsync 127.0.0.1:$TEST_NGINX_CONSUL_PORT/v1/kv/upstreams/con_server/ upsync_timeout=6m upsync_interval=500ms upsync_type=consul strong_dependency=off;
        upsync_dump_path $TEST_NGINX_DIR/con_server.conf;
        check interval=300 rise=1 fall=3 timeout=4000 type=http;
        check_http_send "HEAD / HTTP/1.0\r\n\r\n";
        check_http_expect_alive http_2xx http_3xx;
    }
--- config
    location / { proxy_pass http://con_server; }
    location /status { check_status; }
    location /show { upstream_show; }
    location /json { upstream_show json; }
    location /prom { upstream_show prometheus; }
--- workers: 4
--- timeout: 20
--- steps
>>> settle /status?format=csv 8
^0,con_server,127\.0\.0\.1:\d+,up,\d+,0,http,0\n1,con_server,127\.0\.0\.1:\d+,up,\d+,0,http,0\n$
>>> traffic / 40
one >0
two >0
>>> mode two 500
>>> log disable check peer: 127\.0\.0\.1:$TEST_NGINX_TWO_PORT \(3 failed checks in a row
>>> traffic / 40
one 40
>>> settle /status?format=csv 12
127\.0\.0\.1:$TEST_NGINX_TWO_PORT,down
>>> run
# every worker: two is unhealthy, one up; upstream_show and the dump keep
# the registry's view (no "down")
set -e
for i in $(seq 12); do
    curl -s http://127.0.0.1:$TEST_NGINX_SERVER_PORT/json | python3 -c '
import json, sys
peers = {p["name"]: p["state"] for p in json.load(sys.stdin)["con_server"]["peers"]}
assert peers == {"127.0.0.1:$TEST_NGINX_TWO_PORT": "unhealthy", "127.0.0.1:$TEST_NGINX_ONE_PORT": "up"}, peers'
done
# NGINX Plus's health_checks counters, the same from every worker
curl -s http://127.0.0.1:$TEST_NGINX_SERVER_PORT/json | python3 -c '
import json, sys
peer = [p for p in json.load(sys.stdin)["con_server"]["peers"] if p["name"] == "127.0.0.1:$TEST_NGINX_TWO_PORT"][0]
h = peer["health_checks"]
assert h["checks"] >= 4 and h["fails"] >= 3 and h["unhealthy"] == 1 and h["last_passed"] is False, h
assert peer["downtime"] >= 0 and peer["downstart"].endswith("Z"), peer'

curl -s "http://127.0.0.1:$TEST_NGINX_SERVER_PORT/show?con_server" > $TEST_NGINX_DIR/show.txt
grep -q "^        server 127.0.0.1:$TEST_NGINX_TWO_PORT weight=1 max_fails=2 fail_timeout=10s;$" $TEST_NGINX_DIR/show.txt
grep -q "^        server 127.0.0.1:$TEST_NGINX_ONE_PORT weight=1 max_fails=2 fail_timeout=10s;$" $TEST_NGINX_DIR/show.txt
grep -qx "server 127.0.0.1:$TEST_NGINX_TWO_PORT weight=1 max_fails=2 fail_timeout=10s;" $TEST_NGINX_DIR/con_server.conf
>>> metrics /prom
~ ^nginx_upsync_upstream_server_state\{upstream="con_server",server="127\.0\.0\.1:$TEST_NGINX_TWO_PORT"\} 6$
~ ^nginx_upsync_upstream_server_health_check_fails_total\{upstream="con_server",server="127\.0\.0\.1:$TEST_NGINX_TWO_PORT"\} [3-9]\d*$
~ ^nginx_upsync_upstream_server_unhealthy_total\{upstream="con_server",server="127\.0\.0\.1:$TEST_NGINX_TWO_PORT"\} 1$
>>> mode two ok
>>> log (?s)disable check peer: 127\.0\.0\.1:$TEST_NGINX_TWO_PORT.*enable check peer: 127\.0\.0\.1:$TEST_NGINX_TWO_PORT
>>> settle / 4
one|two
>>> traffic / 40
one >0
two >0
>>> run
curl -s http://127.0.0.1:$TEST_NGINX_TWO_CONTROL/stats | grep -q '"HEAD / HTTP/1.0"'
--- no_error_log
[error]

=== TEST 2: a static upstream with a backup, per-worker lists: the backup serves when every primary is down, 502 when it is down too; check_status in html, csv and json, byte for byte, filtered
--- backends: http:one http:two http:spare
--- http_config
    upstream app {
        server 127.0.0.1:$TEST_NGINX_ONE_PORT;
        server 127.0.0.1:$TEST_NGINX_TWO_PORT;
        server 127.0.0.1:$TEST_NGINX_SPARE_PORT backup;
        check interval=200 rise=2 fall=2 timeout=1000 type=http default_down=false;
    }
--- config
    location / { proxy_pass http://app; proxy_next_upstream error timeout http_500; }
    location /status { check_status; }
    location /csv { check_status csv; }
    location /json { check_status json; }
--- workers: 2
--- timeout: 20
--- steps
>>> traffic / 20
one >0
two >0
>>> mode one refuse
>>> mode two hang
>>> log disable check peer: 127\.0\.0\.1:$TEST_NGINX_ONE_PORT
>>> log disable check peer: 127\.0\.0\.1:$TEST_NGINX_TWO_PORT \(2 failed checks in a row: timed out\)
>>> settle / 6
spare
>>> mode spare 500
>>> log disable check peer: 127\.0\.0\.1:$TEST_NGINX_SPARE_PORT
>>> run
for i in 1 2 3 4 5 6; do
    [ "$(curl -s -o /dev/null -w '%{http_code}' http://127.0.0.1:$TEST_NGINX_SERVER_PORT/)" = 502 ] || exit 1
done
>>> mode two ok
>>> log enable check peer: 127\.0\.0\.1:$TEST_NGINX_TWO_PORT \(2 passed checks in a row\)
>>> settle / 6
two
>>> settle /csv?status=down 10
^0,app,127\.0\.0\.1:$TEST_NGINX_ONE_PORT,down,0,\d+,http,0\n2,app,127\.0\.0\.1:$TEST_NGINX_SPARE_PORT,down,0,\d+,http,0\n$
>>> settle /json?status=up 10
^\{"servers": \{\n  "total": 1,\n  "generation": 1,\n  "server": \[\n    \{"index": 1, "upstream": "app", "name": "127\.0\.0\.1:$TEST_NGINX_TWO_PORT", "status": "up", "rise": \d+, "fall": 0, "type": "http", "port": 0\}\n  \]\n\}\}\n$
>>> settle /status?format=html&status=up 10
^<!DOCTYPE html PUBLIC "-//W3C//DTD XHTML 1.0 Strict//EN\n"http://www.w3.org/TR/xhtml1/DTD/xhtml1-strict.dtd">\n<html xmlns="http://www.w3.org/1999/xhtml">\n<head>\n  <title>Nginx http upstream check status</title>\n</head>\n<body>\n<h1>Nginx http upstream check status</h1>\n<h2>Check upstream server number: 1, generation: 1</h2>\n<table style="background-color:white" cellspacing="0"        cellpadding="3" border="1">\n  <tr bgcolor="#C0C0C0">\n    <th>Index</th>\n    <th>Upstream</th>\n    <th>Name</th>\n    <th>Status</th>\n    <th>Rise counts</th>\n    <th>Fall counts</th>\n    <th>Check type</th>\n    <th>Check port</th>\n  </tr>\n  <tr>\n    <td>1</td>\n    <td>app</td>\n    <td>127\.0\.0\.1:$TEST_NGINX_TWO_PORT</td>\n    <td>up</td>\n    <td>\d+</td>\n    <td>0</td>\n    <td>http</td>\n    <td>0</td>\n  </tr>\n</table>\n</body>\n</html>\n$

=== TEST 3: zone mode with random and a synced list, 4 workers: a refusing server is skipped by every worker; a server the registry adds is probed and comes up after rise (default_down)
--- skip_nginx: <1.27.3
--- registry: consul
--- backends: http:one http:two http:three
--- init
>>> consul PUT /v1/kv/upstreams/z/127.0.0.1:$TEST_NGINX_ONE_PORT
>>> consul PUT /v1/kv/upstreams/z/127.0.0.1:$TEST_NGINX_TWO_PORT
--- http_config
    upstream z {
        zone z 128k;
        random two;
        server 127.0.0.1:$TEST_NGINX_ONE_PORT;
        upsync 127.0.0.1:$TEST_NGINX_CONSUL_PORT/v1/kv/upstreams/z/ upsync_timeout=6m upsync_interval=100ms upsync_type=consul;
        upsync_dump_path $TEST_NGINX_DIR/servers_z.conf;
        check interval=200 rise=3 fall=2 timeout=1000 type=http;
    }
--- config
    location / { proxy_pass http://z; }
    location /status { check_status csv; }
--- workers: 4
--- timeout: 20
--- steps
>>> settle /status 12
127\.0\.0\.1:$TEST_NGINX_TWO_PORT,up
>>> traffic / 40
one >0
two >0
>>> mode one refuse
>>> log disable check peer: 127\.0\.0\.1:$TEST_NGINX_ONE_PORT
>>> traffic / 40
two 40
>>> consul PUT /v1/kv/upstreams/z/127.0.0.1:$TEST_NGINX_THREE_PORT
>>> log enable check peer: 127\.0\.0\.1:$TEST_NGINX_THREE_PORT \(3 passed checks in a row\)
>>> traffic / 40
two >0
three >0
>>> consul DELETE /v1/kv/upstreams/z/127.0.0.1:$TEST_NGINX_TWO_PORT
>>> settle /status 12
^0,z,127\.0\.0\.1:$TEST_NGINX_ONE_PORT,down,0,\d+,http,0\n1,z,127\.0\.0\.1:$TEST_NGINX_THREE_PORT,up,\d+,0,http,0\n$
--- no_error_log
[alert]

=== TEST 4: exactly one probe per server per interval, whatever worker_processes is (4 workers, then the prober killed)
--- backends: http:one
--- http_config
    upstream app {
        server 127.0.0.1:$TEST_NGINX_ONE_PORT;
        check interval=1000 rise=1 fall=1 timeout=1000 type=http;
    }
--- config
    location / { proxy_pass http://app; }
--- workers: 4
--- allow_alerts
--- timeout: 30
--- steps
>>> sleep 2
>>> run
set -e
curl -s "http://127.0.0.1:$TEST_NGINX_ONE_CONTROL/stats?reset=1" > /dev/null
sleep 6
n=$(curl -s http://127.0.0.1:$TEST_NGINX_ONE_CONTROL/stats | python3 -c 'import json,sys; print(json.load(sys.stdin)["requests"])')
echo "probes in 6 s: $n"
[ "$n" -ge 5 ] && [ "$n" -le 7 ]
pid=$(grep -o '[0-9]*#[0-9]*: upsync: this worker runs the health checks' $TEST_NGINX_DIR/logs/error.log | cut -d'#' -f1)
[ "$(echo "$pid" | wc -l)" = 1 ] && kill -KILL $pid
>>> log (?s)this worker runs the health checks.*exited on signal 9.*this worker runs the health checks
>>> run
set -e
sleep 1
curl -s "http://127.0.0.1:$TEST_NGINX_ONE_CONTROL/stats?reset=1" > /dev/null
sleep 5
n=$(curl -s http://127.0.0.1:$TEST_NGINX_ONE_CONTROL/stats | python3 -c 'import json,sys; print(json.load(sys.stdin)["requests"])')
echo "probes in 5 s: $n"
[ "$n" -ge 4 ] && [ "$n" -le 6 ]

=== TEST 5: every check type against a backend that speaks its protocol: up, then down when it answers wrong
--- backends: tcp:t mysql:m ajp:a fastcgi:f ssl:s
--- http_config
    upstream tcp { server 127.0.0.1:$TEST_NGINX_T_PORT; check interval=200 rise=1 fall=1 type=tcp; }
    upstream mysql { server 127.0.0.1:$TEST_NGINX_M_PORT; check interval=200 rise=1 fall=1 type=mysql; }
    upstream ajp { server 127.0.0.1:$TEST_NGINX_A_PORT; check interval=200 rise=1 fall=1 type=ajp; }
    upstream fastcgi {
        server 127.0.0.1:$TEST_NGINX_F_PORT;
        check interval=200 rise=1 fall=1 type=fastcgi;
        check_fastcgi_param REQUEST_METHOD GET;
        check_fastcgi_param REQUEST_URI /ping;
        check_http_expect_alive http_2xx;
    }
    upstream ssl { server 127.0.0.1:$TEST_NGINX_S_PORT; check interval=200 rise=1 fall=1 type=ssl_hello; }
--- config
    location /status { check_status csv; }
--- timeout: 20
--- steps
>>> settle /status 3
^0,tcp,[^\n]*,up,[^\n]*,tcp,0\n1,mysql,[^\n]*,up,[^\n]*,mysql,0\n2,ajp,[^\n]*,up,[^\n]*,ajp,0\n3,fastcgi,[^\n]*,up,[^\n]*,fastcgi,0\n4,ssl,[^\n]*,up,[^\n]*,ssl_hello,0\n$
>>> run
curl -s http://127.0.0.1:$TEST_NGINX_F_CONTROL/stats | grep -q 'GET /ping'
>>> mode t refuse
>>> mode m bad
>>> mode a bad
>>> mode f 500
>>> mode s bad
>>> settle /status 3
^0,tcp,[^\n]*,down,[^\n]*\n1,mysql,[^\n]*,down,[^\n]*\n2,ajp,[^\n]*,down,[^\n]*\n3,fastcgi,[^\n]*,down,[^\n]*\n4,ssl,[^\n]*,down,[^\n]*\n$
>>> mode f stderr
>>> mode f ok
>>> settle /status?status=up 3
^3,fastcgi,
--- no_error_log
[alert]

=== TEST 6: the check module's config errors, with its messages
--- http_config
    upstream app {
        server 127.0.0.1:$TEST_NGINX_PORT1;
        check interval=0 type=http;
    }
--- must_die
--- error_log
"check": invalid parameter "interval=0"

=== TEST 7: a static upstream in a shared zone (nginx's own shared list, both targets), 4 workers: a refusing server gets no traffic, then traffic again
--- backends: http:one http:two
--- http_config
    upstream app {
        zone app 64k;
        least_conn;
        server 127.0.0.1:$TEST_NGINX_ONE_PORT;
        server 127.0.0.1:$TEST_NGINX_TWO_PORT;
        check interval=200 rise=2 fall=2 timeout=1000 type=tcp default_down=false;
    }
--- config
    location / { proxy_pass http://app; }
    location /status { check_status csv; }
--- workers: 4
--- timeout: 20
--- steps
>>> traffic / 20
one >0
two >0
>>> mode two refuse
>>> log disable check peer: 127\.0\.0\.1:$TEST_NGINX_TWO_PORT
>>> traffic / 40
one 40
>>> mode two ok
>>> log (?s)disable check peer: 127\.0\.0\.1:$TEST_NGINX_TWO_PORT.*enable check peer: 127\.0\.0\.1:$TEST_NGINX_TWO_PORT
>>> settle / 3
one|two
>>> traffic / 40
one >0
two >0
--- no_error_log
[alert]
