# Health checks in every balancer and mode: each of nginx's balancers, with
# per-worker lists and (nginx 1.27.3 and newer) with a shared zone, on a
# synced upstream with a `server` line, 4 workers. When a server starts
# failing its probe, no balancer sends it a request; when it passes again,
# it takes requests again.
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
    my (@upstreams, @locations, @before, @after, @back);
    my $i = 0;
    for my $b (@BALANCERS) {
        my ($name, $directive, undef, $weighted) = @$b;
        $i++;
        my $z = $zone ? "        zone u$i 64k;\n" : '';
        push @upstreams, <<"END";
    upstream u$i {
$z        $directive
        server 127.0.0.1:\$TEST_NGINX_ONE_PORT;
        upsync 127.0.0.1:\$TEST_NGINX_CONSUL_PORT/v1/kv/upstreams/app/ upsync_interval=100ms upsync_timeout=6m upsync_type=consul;
        upsync_dump_path \$TEST_NGINX_DIR/servers_u$i.conf;
        check interval=200 rise=2 fall=2 timeout=1000 type=http default_down=false;
    }
END
        push @locations, "    location /u$i { proxy_pass http://u$i; }\n";
        push @before, ">>> settle /u$i?k=$i 3\none|two\n>>> traffic /u$i?k=$i 12\none *\ntwo *\n";
        push @after, ">>> traffic /u$i?k=$i 20\none 20\n";
        push @back, ">>> settle /u$i?k=$i 3\none|two\n";
    }
    my $mode = $zone ? 'zone' : 'per-worker lists';
    $spec .= <<"END";
=== TEST $n: every balancer, $mode, 4 workers: a server failing its probe gets no request from any balancer, then requests again
--- registry: consul
--- backends: http:one http:two
--- init
>>> consul PUT /v1/kv/upstreams/app/127.0.0.1:\$TEST_NGINX_ONE_PORT
>>> consul PUT /v1/kv/upstreams/app/127.0.0.1:\$TEST_NGINX_TWO_PORT
--- http_config
@{[ join '', @upstreams ]}
--- config
@{[ join '', @locations ]}    location /status { check_status csv; }
--- workers: 4
--- timeout: 20
--- steps
@{[ join '', @before ]}>>> mode two 500
>>> settle /status 8
^(?:[^\\n]*\\n)*[^\\n]*127\\.0\\.0\\.1:\$TEST_NGINX_TWO_PORT,down(?:[^\\n]*\\n)*\$
>>> run
# every upstream's entry for two is down
[ "\$(curl -s http://127.0.0.1:\$TEST_NGINX_SERVER_PORT/status | grep -c "127.0.0.1:\$TEST_NGINX_TWO_PORT,down")" = $i ]
@{[ join '', @after ]}>>> mode two ok
>>> run
sleep 1
[ "\$(curl -s http://127.0.0.1:\$TEST_NGINX_SERVER_PORT/status | grep -c "127.0.0.1:\$TEST_NGINX_TWO_PORT,up")" = $i ]
@{[ join '', @back ]}>>> traffic /u1 40
one >0
two >0
--- no_error_log
[alert]

END
}

Test::Base::spec_string($spec);
run_tests();
