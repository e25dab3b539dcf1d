# Host names in every balancer and mode: each of nginx's balancers, with
# per-worker lists and (nginx 1.27.3 and newer) with a shared zone, on a
# synced upstream with a `server` line, 2 workers. The registry names one
# server by a host name of two addresses: both take the traffic (one of
# them for the balancers that pick by key), the configured server none.
use lib 't/lib';
use Test::Upsync;
use Test::Upsync::Balancers;
use Test::Base ();

my ($major, $minor, $patch) = nginx_version();
my $zones = $major * 1_000_000 + $minor * 1000 + $patch >= 1_027_003;

my $spec = '';
my $n = 0;
for my $zone ($zones ? (0, 1) : (0)) {
    $n++;
    my (@upstreams, @locations, @steps);
    my $i = 0;
    for my $b (@BALANCERS) {
        my (undef, $directive, $spread) = @$b;
        $i++;
        my $z = $zone ? "        zone u$i 64k;\n" : '';
        push @upstreams, <<"END";
    upstream u$i {
$z        $directive
        server 127.0.0.1:\$TEST_NGINX_PORT2;
        upsync 127.0.0.1:\$TEST_NGINX_CONSUL_PORT/v1/kv/upstreams/all/ upsync_timeout=6m upsync_interval=100ms upsync_type=consul;
        upsync_dump_path \$TEST_NGINX_DIR/servers_u$i.conf;
    }
END
        push @locations, "    location /u$i { proxy_pass http://u$i; }\n";
        # "any": a key balancer sends one key to one address.
        my $want = $spread eq 'any' ? "five *\nsix *\n" : "five >0\nsix >0\n";
        push @steps, ">>> settle /u$i?k=1 4\nfive|six\n>>> traffic /u$i?k=1 40\n$want";
    }
    my $mode = $zone ? 'zone mode' : 'per-worker lists';
    $spec .= <<"END";
=== TEST $n: every balancer with a server line, $mode, 2 workers: a name's addresses take the traffic, the configured server none
--- registry: consul dns
--- dns_hosts
127.0.0.5 api.test
127.0.0.6 api.test
--- init
>>> consul PUT /v1/kv/upstreams/all/api.test:\$TEST_NGINX_PORT1
--- http_config
    resolver 127.0.0.1:\$TEST_NGINX_DNS_PORT valid=1s ipv6=off;
@{[ join '', @upstreams ]}
    server { listen 127.0.0.5:\$TEST_NGINX_PORT1; return 200 "five\\n"; }
    server { listen 127.0.0.6:\$TEST_NGINX_PORT1; return 200 "six\\n"; }
    server { listen 127.0.0.1:\$TEST_NGINX_PORT2; return 200 "configured\\n"; }
--- config
@{[ join '', @locations ]}
--- workers: 2
--- timeout: 20
--- steps
>>> sleep 3
@{[ join '', @steps ]}--- no_error_log
[error]

END
}

Test::Base::spec_string($spec);
run_tests();
