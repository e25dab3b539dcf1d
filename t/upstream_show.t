# upstream_show: the C module's byte format, for static upstreams.
use lib 't/lib';
use Test::Upsync;

run_tests();

__DATA__

=== TEST 1: one upstream by name, matched case-insensitively
--- http_config
    upstream test {
        server 127.0.0.1:8088 weight=40 max_fails=3 fail_timeout=20s down;
        server 127.0.0.1:8089;
    }
    upstream backend {
        server 127.0.0.1:8090 weight=10 max_fails=3;
    }
--- config
    location /upstream_show { upstream_show; }
--- request
GET /upstream_show?TeSt
--- response_body
Upstream name: test; Backend server count: 2
        server 127.0.0.1:8088 weight=40 max_fails=3 fail_timeout=20s down;
        server 127.0.0.1:8089 weight=1 max_fails=1 fail_timeout=10s;
--- response_headers
Content-Type: text/plain
--- no_error_log
[error]

=== TEST 2: every upstream in config order, each followed by a blank line
--- http_config
    upstream test {
        server 127.0.0.1:8089 weight=20 max_fails=0 fail_timeout=30s;
    }
    upstream backend {
        server 127.0.0.1:8090 weight=10 max_fails=3 fail_timeout=10s;
    }
--- config
    location /upstream_show { upstream_show; }
--- request
GET /upstream_show
--- response_body eval
"Upstream name: test; Backend server count: 1
        server 127.0.0.1:8089 weight=20 max_fails=0 fail_timeout=30s;

Upstream name: backend; Backend server count: 1
        server 127.0.0.1:8090 weight=10 max_fails=3 fail_timeout=10s;

"
--- response_headers
Content-Length: 235

=== TEST 3: an unknown name
--- http_config
    upstream test {
        server 127.0.0.1:8089;
    }
--- config
    location /upstream_show { upstream_show; }
--- request
GET /upstream_show?nosuch
--- response_body chomp
The upstream you requested does not exist. Please double-check the name

=== TEST 4: no upstreams at all
--- config
    location /upstream_show { upstream_show; }
--- request
GET /upstream_show
--- response_body chomp
No upstreams defined

=== TEST 5: HEAD answers the headers only
--- http_config
    upstream test {
        server 127.0.0.1:8089;
    }
--- config
    location /upstream_show { upstream_show; }
--- request
HEAD /upstream_show?test
--- response_body chomp
--- response_headers
Content-Type: text/plain
Content-Length: 114

=== TEST 6: other methods are not allowed
--- http_config
    upstream test {
        server 127.0.0.1:8089;
    }
--- config
    location /upstream_show { upstream_show; }
--- request
POST /upstream_show?test
hello
--- error_code: 405
--- response_body_like: 405 Not Allowed

=== TEST 7: backup servers are not listed, as in the C module
--- http_config
    upstream test {
        server 127.0.0.1:8089 weight=2;
        server 127.0.0.1:8090 backup;
    }
--- config
    location /upstream_show { upstream_show; }
--- request
GET /upstream_show?test
--- response_body
Upstream name: test; Backend server count: 1
        server 127.0.0.1:8089 weight=2 max_fails=1 fail_timeout=10s;

=== TEST 8: an upstream in a shared zone is read under its lock
--- http_config
    upstream test {
        zone test 64k;
        server 127.0.0.1:8089 weight=3;
        server 127.0.0.1:8090 down;
    }
--- config
    location /upstream_show { upstream_show; }
--- request
GET /upstream_show?test
--- response_body
Upstream name: test; Backend server count: 2
        server 127.0.0.1:8089 weight=3 max_fails=1 fail_timeout=10s;
        server 127.0.0.1:8090 weight=1 max_fails=1 fail_timeout=10s down;

=== TEST 9: upstream_show takes at most a format
--- config
    location /upstream_show { upstream_show json prometheus; }
--- must_die
--- error_log
invalid number of arguments in "upstream_show" directive

=== TEST 10: the module built by nginx's own ./configure --add-dynamic-module loads and serves
--- skip_unless: TEST_NGINX_ADDON_MODULE
--- module: $TEST_NGINX_ADDON_MODULE
--- http_config
    upstream backend {
        server 127.0.0.1:8090 weight=10 max_fails=3;
    }
--- config
    location /upstream_show { upstream_show; }
--- request
GET /upstream_show?backend
--- response_body
Upstream name: backend; Backend server count: 1
        server 127.0.0.1:8090 weight=10 max_fails=3 fail_timeout=10s;
