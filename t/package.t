# The Debian package (scripts/package): installed next to Debian's nginx, it
# makes the module available with no other step (the load_module snippet is
# enabled), nginx serves a synced upstream with it, and removing it leaves
# nginx working. scripts/test builds the package and sets
# TEST_NGINX_PACKAGE; the blocks run against Debian's nginx only.
use lib 't/lib';
use Test::Upsync;

run_tests();

__DATA__

=== TEST 1: installed, the module is enabled, and nginx serves a synced upstream with it
--- skip_unless: TEST_NGINX_PACKAGE
--- skip_nginx: >=1.27.3
--- no_module
--- registry: consul
--- init
>>> run
dpkg -i $TEST_NGINX_PACKAGE
# What Debian's nginx.conf includes: the enabled snippets.
[ -L /etc/nginx/modules-enabled/50-mod-http-upsync.conf ]
grep -qx 'load_module modules/ngx_http_upsync_module.so;' /etc/nginx/modules-enabled/50-mod-http-upsync.conf
# The system's own configuration loads it.
/usr/sbin/nginx -t -q
# The snippet's path is relative to the prefix, as for Debian's own modules.
ln -s /usr/share/nginx/modules $TEST_NGINX_DIR/modules
>>> consul PUT /v1/kv/upstreams/app/127.0.0.1:$TEST_NGINX_PORT1
--- main_config
include /etc/nginx/modules-enabled/*.conf;
--- http_config
    upstream app {
        upsync 127.0.0.1:$TEST_NGINX_CONSUL_PORT/v1/kv/upstreams/app/ upsync_interval=100ms upsync_type=consul;
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
>>> wait /show?app
Upstream name: app; Backend server count: 2
        server 127.0.0.1:$TEST_NGINX_PORT2 weight=1 max_fails=2 fail_timeout=10s;
        server 127.0.0.1:$TEST_NGINX_PORT1 weight=1 max_fails=2 fail_timeout=10s;

>>> traffic / 20
one >0
two >0

=== TEST 2: removed, nginx works without it; purged, nothing is left
--- skip_unless: TEST_NGINX_PACKAGE
--- skip_nginx: >=1.27.3
--- no_module
--- init
>>> run
dpkg -r libnginx-mod-http-upsync
[ ! -e /etc/nginx/modules-enabled/50-mod-http-upsync.conf ]
[ ! -e /usr/lib/nginx/modules/ngx_http_upsync_module.so ]
/usr/sbin/nginx -t -q
dpkg -P libnginx-mod-http-upsync
[ -z "$(ls /etc/nginx/modules-enabled | grep upsync)" ]
/usr/sbin/nginx -t -q
ln -s /usr/share/nginx/modules $TEST_NGINX_DIR/modules
--- main_config
include /etc/nginx/modules-enabled/*.conf;
--- config
    location / { return 200 "static\n"; }
--- steps
>>> traffic / 5
static 5
