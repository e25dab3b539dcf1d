# Every balancer follows the registry in every mode: each of nginx's
# balancers, with per-worker lists and with a shared zone, with keepalive and
# without, on an upstream that starts from two configured `server` lines.
# The registry replaces them with 40 others in one write, then shrinks the
# list to 3: every request reaches a server of the current list, and no
# worker dies. Then blocks on what a balancer derives from the list: the
# consistent-hash ring (only the keys consistent hashing gives to a new
# server move; per-worker rings map keys exactly as nginx's own does in a
# zone), and the connections counted across lists (least_conn, random two
# least_conn and max_conns see requests that started on an older list).
use lib 't/lib';
use Test::Upsync;
use Test::Upsync::Balancers;
use Test::Base ();
use MIME::Base64 qw(encode_base64);

# Backends: 127.0.0.A:PORT1, each answering its own address.
my @ADDRS = map { "127.0.0.$_" } 2 .. 60;
my $BACKENDS = join('', map { "        listen $_:\$TEST_NGINX_PORT1;\n" } @ADDRS);
my @CONFIGURED = @ADDRS[0, 1];    # 127.0.0.2, .3
my @REGISTRY = @ADDRS[8 .. 47];   # 40 others: 127.0.0.10 .. .49
my @KEPT = @REGISTRY[5, 17, 33];  # the 3 that stay
my $ADDED = $ADDRS[55];           # one more for the hash ring

sub server { "$_[0]:\$TEST_NGINX_PORT1" }
sub key { "upstreams/app/" . server($_[0]) }
sub weight_of { my ($i) = @_; 1 + $i % 3 }

sub txn {
    my ($weighted, $set, $delete) = @_;
    my @ops;
    for my $i (0 .. $#$set) {
        my $value = $weighted ? '{"weight":' . weight_of($i) . '}' : '';
        push @ops, qq({"KV":{"Verb":"set","Key":") . key($set->[$i]) . qq(","Value":")
            . encode_base64($value, '') . qq("}});
    }
    push @ops, qq({"KV":{"Verb":"delete","Key":") . key($_) . qq("}}) for @$delete;
    return ">>> consul PUT /v1/txn\n[" . join(',', @ops) . "]\n\n";
}

sub traffic {
    my ($n, $spread, @servers) = @_;
    my $each = $spread eq 'all' || ($spread eq 'some' && @servers <= 3) ? '>0' : '*';
    return ">>> traffic / $n\n" . join('', map { server($_) . " $each\n" } @servers) . "\n";
}

sub upstream {
    my ($name, $balancer, %o) = @_;
    my $weights = $o{weighted} ? ' weight=2' : '';
    my $zone = $o{zone} ? "        zone $name 128k;\n" : '';
    my $keepalive = $o{keepalive} ? "        keepalive 8;\n" : '';
    my $lines = join('', map { "        server " . server($_) . "$weights;\n" } @{ $o{servers} // \@CONFIGURED });
    return <<"END";
    upstream $name {
        $balancer
$zone$lines$keepalive        upsync 127.0.0.1:\$TEST_NGINX_CONSUL_PORT/v1/kv/upstreams/app/ upsync_interval=50ms upsync_type=consul;
        upsync_dump_path \$TEST_NGINX_DIR/servers_$name.conf;
    }
END
}

my $proxy = 'proxy_http_version 1.1; proxy_set_header Connection "";';
my $spec = '';
my $n = 0;
for my $b (@BALANCERS) {
    my ($label, $directive, $spread, $weighted) = @$b;
    for my $zone (0, 1) {
        for my $keepalive (0, 1) {
            $n++;
            my $mode = $zone ? 'shared zone' : 'per-worker lists';
            my $ka = $keepalive ? ', keepalive' : '';
            my $skip = $zone ? "--- skip_nginx: <1.27.3\n" : '';
            my $up = upstream('app', $directive, zone => $zone, keepalive => $keepalive,
                weighted => $weighted);
            my @left = grep { my $a = $_; !grep { $_ eq $a } @KEPT } @REGISTRY;
            my $steps = traffic(40, $spread, @CONFIGURED)
                . txn($weighted, \@REGISTRY, [])
                . ">>> settle /show?app 10\nBackend server count: 40\\n\n\n"
                . traffic(200, $spread, @REGISTRY)
                . txn(0, [], \@left)
                . ">>> settle /show?app 10\nBackend server count: 3\\n\n\n"
                . traffic(60, $spread, @KEPT);
            if ($directive =~ /consistent/) {
                $steps .= ">>> keys /?k= 300\n\n"
                    . ">>> consul PUT /v1/kv/" . key($ADDED) . "\n\n"
                    . ">>> settle /show?app 10\nBackend server count: 4\\n\n\n"
                    . ">>> keys /?k= 300\nmoved " . server($ADDED) . "\n\n";
            }
            $spec .= <<"END";
=== TEST $n: $label, $mode$ka: 2 configured servers, then 40 from the registry, then 3
${skip}--- workers: 2
--- registry: consul
--- http_config
$up
    server {
$BACKENDS        return 200 "\$server_addr:\$server_port\\n";
    }
--- config
    location / { proxy_pass http://app; $proxy }
    location /show { upstream_show; }
--- steps
$steps--- no_error_log
[error]

END
        }
    }
}

# Per-worker rings are nginx's own: the same keys land on the same servers as
# in a zone, where nginx builds the ring itself.
$n++;
$spec .= <<"END";
=== TEST $n: hash consistent: a per-worker ring maps every key as nginx's own ring in a zone
--- skip_nginx: <1.27.3
--- workers: 2
--- registry: consul
--- http_config
@{[ upstream('shared', 'hash $arg_k consistent;', zone => 1) ]}
@{[ upstream('private', 'hash $arg_k consistent;') ]}
    server {
$BACKENDS        return 200 "\$server_addr:\$server_port\\n";
    }
--- config
    location /shared { proxy_pass http://shared; $proxy }
    location /private { proxy_pass http://private; $proxy }
    location /show { upstream_show; }
--- steps
@{[ txn(1, \@REGISTRY, []) ]}>>> settle /show?shared 10
Backend server count: 40\\n

>>> settle /show?private 10
Backend server count: 40\\n

>>> keys /shared?k= 400

>>> keys /private?k= 400
same

--- no_error_log
[error]

END

# Connections across lists: three slow downloads hold server A; then the
# registry adds B. The new list still counts A's three connections, so every
# quick request goes to B; with keepalive and without. One worker: without a
# zone, connection counts are each worker's own, as in nginx.
my ($A, $B) = @ADDRS[0, 1];
my @HELD = (['least_conn', 'least_conn;', ''], ['random two least_conn', 'random two least_conn;', ''],
    ['max_conns=3', '', ' max_conns=3']);
for my $c (map { my $c = $_; map { [@$c, $_] } 0, 1 } @HELD) {
    my ($label, $directive, $param, $keepalive) = @$c;
    $n++;
    my $a = server($A);
    my $ka = $keepalive ? ', keepalive' : '';
    my $ka_line = $keepalive ? "        keepalive 8;\n" : '';
    my $ka_proxy = $keepalive ? " $proxy" : '';
    $spec .= <<"END";
=== TEST $n: $label, per-worker lists$ka: connections open on the old list count in the new one
--- registry: consul
--- init
>>> run
head -c 300000 /dev/zero > \$TEST_NGINX_DIR/html/big
--- http_config
    upstream app {
        $directive
        server $a$param;
$ka_line        upsync 127.0.0.1:\$TEST_NGINX_CONSUL_PORT/v1/kv/upstreams/app/ upsync_interval=50ms upsync_type=consul;
        upsync_dump_path \$TEST_NGINX_DIR/servers_app.conf;
    }
    server {
$BACKENDS        location / { return 200 "\$server_addr:\$server_port\\n"; }
        location = /big { root \$TEST_NGINX_DIR/html; limit_rate 10k; }
    }
--- config
    location / { proxy_pass http://app;$ka_proxy }
    location /show { upstream_show; }
--- steps
>>> run
for i in 1 2 3; do
    curl -s -o /dev/null --max-time 60 http://127.0.0.1:\$TEST_NGINX_SERVER_PORT/big >/dev/null 2>&1 &
    echo \$! >> \$TEST_NGINX_DIR/slow.pids
done
sleep 1

@{[ txn(0, [$A, $B], []) ]}>>> settle /show?app 3
Backend server count: 2\\n

>>> traffic / 20
@{[ server($B) ]} 20

>>> run
kill \$(cat \$TEST_NGINX_DIR/slow.pids)
--- no_error_log
[error]

END
}

Test::Base::spec_string($spec);
run_tests();
