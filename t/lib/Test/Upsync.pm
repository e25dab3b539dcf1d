package Test::Upsync;

# A test harness in the data format of OpenResty's Test::Nginx::Socket, built
# on Debian's Perl packages (Test::Base, HTTP::Tiny). Each block of a t/*.t
# file runs a real nginx with the module loaded, on free loopback ports, and
# registries (a real etcd, the Consul stand-in) when the block asks for them.
#
# Block sections (Test::Nginx::Socket's own):
#   main_config, http_config, config    nginx.conf pieces (config: the server{})
#   request                             "METHOD /uri" (a body may follow)
#   more_headers                        "Name: value" lines sent with it
#   error_code                          expected status (default 200)
#   response_body, response_body_like   exact body / a regex
#   response_headers                    "Name: value" lines; "!Name" = absent
#   error_log, no_error_log             lines that must / must not be logged
#   must_die                            nginx must fail to start
#   timeout, wait                       seconds
# Sections of our own:
#   workers: N                          worker_processes (default 1)
#   daemon                              run nginx as a daemon (binary upgrades
#                                       need it)
#   registry: consul etcd               start these registries for the block;
#                                       consul2, consul3: more stand-ins (same
#                                       consul_args; ports CONSUL2_PORT ...);
#                                       etcd_cluster: three etcd members,
#                                       etcd_cluster1..3 (ETCD_CLUSTER1_PORT ...)
#   consul_args: --token secret         extra stand-in arguments (with
#                                       "--host ::1" it listens on IPv6)
#   hostile_args: --mode M              a misbehaving registry
#                                       (t/registry/hostile.py), "registry:
#                                       hostile", at $TEST_NGINX_HOSTILE_PORT
#   dns_hosts                           "registry: dns" starts dnsmasq at
#                                       127.0.0.1:$TEST_NGINX_DNS_PORT: it
#                                       answers names under .test from these
#                                       /etc/hosts lines with a TTL of 1 s
#                                       (NXDOMAIN for others), and logs each
#                                       query to $TEST_NGINX_DIR/logs/dns.log
#   backends: http:one tcp:two ...      health-check backends
#                                       (t/registry/check_backend.py), one per
#                                       PROTO:NAME, at $TEST_NGINX_ONE_PORT,
#                                       control port $TEST_NGINX_ONE_CONTROL
#   init                                steps run before nginx starts
#   steps                               steps run after it started (below)
#   no_module                           do not load the module
#   module: PATH                        load this .so instead
#   skip_nginx: <1.27.3                 skip on versions below / ">=" above
#   skip_unless: ENV_VAR                skip unless the variable is set
#   allow_alerts                        [alert]/[emerg]/crashes are expected
#
# Steps: a list of ">>> action args" lines, each followed by its body:
#   >>> consul METHOD /path            request to the Consul stand-in; body sent
#   >>> etcd3 put KEY / delete KEY     etcd v3 through its JSON gateway (the
#   >>> etcd3 compact                  body is the value); compact to now
#   >>> etcd METHOD /path              request to etcd; body sent (chomped)
#                                      (either: a trailing "xN" sends it N times)
#   >>> http METHOD /uri [status=N]    request to nginx; body, if any, is the
#                                      exact expected response body
#   >>> wait /uri                      poll nginx until the body is exactly this
#   >>> settle /uri N                  poll nginx until N answers in a row match
#                                      the body (a regex): every worker agrees
#   >>> file PATH                      poll until the file holds exactly this
#   >>> no_file PATH                   the file does not exist
#   >>> write PATH                     write the body to a file
#   >>> expect consul|etcd METHOD /p   poll the registry until its answer
#                                      matches the body (a regex)
#   >>> log REGEX                      poll until the error log matches
#   >>> traffic /uri N                 N requests; body lines "BODY COUNT" where
#                                      COUNT is a number, ">0" or "*"; bodies
#                                      not listed must not answer
#   >>> same /uri N                    N requests, every answer exactly the body
#   >>> agree /uri N [REGEX]           N requests, every answer 200 and the same
#                                      as the first, which matches REGEX if given
#   >>> keys /uri?k= N                 requests /uri?k=1 .. N and keeps which
#                                      body answered each key; again with the
#                                      body "moved BODY": every key answers as
#                                      before or with BODY, and some moved;
#                                      "left BODY": the keys of BODY moved, and
#                                      only those; "same": no key moved (the
#                                      uri may differ from the last keys step)
#   >>> run                            run the body with bash; it must succeed
#   >>> rss_below KB                   every nginx worker's resident memory is
#                                      below KB kilobytes
#   >>> sleep SECONDS
#   >>> reload                         HUP, then wait for the new workers
#   >>> signal NAME                    send a signal to the nginx master
#   >>> upgrade                        binary upgrade: USR2, then QUIT to the
#                                      old master once the new one runs
#   >>> stop consul|etcd / start ...   stop or restart a registry (same port)
#   >>> dns                            the DNS server answers from these hosts
#                                      lines from now on
#   >>> pause dns / resume dns         the DNS server stops answering (SIGSTOP)
#                                      and answers again
#   >>> mode NAME MODE                 a check backend's mode (ok, 500, hang,
#                                      close, refuse, bad...)
#   >>> json /uri [status=N]           poll nginx until its JSON answer meets
#                                      every body line "PATH OP VALUE": PATH is
#                                      keys and array indexes joined by '.',
#                                      OP is = (as text; true, false, null),
#                                      >= (a number), ~ (a regex) or "absent"
#   >>> metrics /uri                   poll nginx until its Prometheus answer
#                                      has every body line ("~ RE": a line
#                                      matching RE); then promtool check metrics
# Blank lines between steps are not part of a body: a trailing "-keep" on the
# action line keeps them (the next ">>>" line then ends the body), "-chomp"
# drops the body's last newline.
# Every "$TEST_NGINX_*" variable in a block is replaced before it runs:
#   SERVER_PORT, PORT1..PORT9 (free ports for backends), CONSUL_PORT,
#   ETCD_PORT, DIR (the block's prefix directory), CERTS (certificates from
#   t/lib/make-certs.sh, made when the block names it), NGINX_VERSION, and any
#   TEST_NGINX_* variable of the environment.
#
# With TEST_NGINX_VALGRIND set, nginx runs under valgrind's memcheck (every
# process: the master and the workers it forks), and a block fails on any
# invalid read, write or free, on any other error with a frame of the
# module, and on memory the module definitely lost (t/memcheck.t).

use strict;
use warnings;

use Test::Base;    # the block parser, its filters (chomp, eval, ...), Test::More
use Exporter ();
*import = \&Exporter::import;
use Cwd qw(abs_path getcwd);
use File::Path qw(make_path remove_tree);
use File::Spec;
use File::Temp qw(tempdir);
use HTTP::Tiny;
use JSON::PP ();
use MIME::Base64 qw(encode_base64);
use IO::Socket::INET;
use POSIX qw(WNOHANG);
use Time::HiRes qw(sleep time);

our @EXPORT = qw(run_tests nginx_version);

my $ROOT = abs_path(File::Spec->catdir((File::Spec->splitpath(abs_path(__FILE__)))[1], '..', '..', '..'));
my $NGINX = $ENV{TEST_NGINX_BINARY} or die "TEST_NGINX_BINARY is not set (scripts/test sets it)\n";
my $MODULE = $ENV{TEST_NGINX_MODULE} or die "TEST_NGINX_MODULE is not set\n";
my $KEEP = $ENV{TEST_NGINX_KEEP};    # keep block directories for debugging
my $VALGRIND = $ENV{TEST_NGINX_VALGRIND};
# Under valgrind nginx starts, answers and exits many times slower.
my $SLOW = $VALGRIND ? 10 : 1;

sub nginx_version () {
    my $v = `$NGINX -v 2>&1`;
    $v =~ m{nginx/(\d+)\.(\d+)\.(\d+)} or die "cannot read the version of $NGINX: $v";
    return ($1, $2, $3);
}

my @VERSION = nginx_version();

sub version_num { my ($a, $b, $c) = @_; $a * 1_000_000 + $b * 1000 + $c }

# ---------------------------------------------------------------------------
# processes

my %registry;    # name => { pid, port, args, ... }
my $nginx_pid;

# A free port below the kernel's ephemeral range: a port the kernel handed
# out (bind to port 0) can be taken again by an outgoing connection (nginx to
# a registry, the harness to nginx) before the block's nginx binds it.
my %handed_out;
sub free_port () {
    my $low = 0;
    if (open(my $fh, '<', '/proc/sys/net/ipv4/ip_local_port_range')) {
        ($low) = split ' ', (<$fh> // '');
    }
    $low = 32768 unless $low && $low > 12000;
    for (1 .. 500) {
        my $port = 10000 + int(rand($low - 10000));
        next if $handed_out{$port};
        my $s = IO::Socket::INET->new(Listen => 1, LocalAddr => '127.0.0.1', LocalPort => $port,
            ReuseAddr => 1) or next;
        close $s;
        $handed_out{$port} = 1;
        return $port;
    }
    die "no free port below the ephemeral range\n";
}

sub spawn (@) {
    my ($log, @cmd) = @_;
    my $pid = fork // die "fork: $!";
    if ($pid == 0) {
        open STDIN, '<', '/dev/null';
        open STDOUT, '>>', $log or die "open $log: $!";
        open STDERR, '>&', \*STDOUT;
        exec @cmd or die "exec $cmd[0]: $!";
    }
    return $pid;
}

# Stops a process by its PID: SIGTERM (or $sig), then SIGKILL after 10 s.
# Whether a process runs (a zombie that nobody reaped does not).
sub alive ($) {
    my ($pid) = @_;
    return 0 unless kill 0, $pid;
    my $stat = slurp("/proc/$pid/stat") // '';
    return $stat !~ /^\d+ \(.*\) Z/;
}

sub stop_pid ($;$$) {
    my ($pid, $sig, $grace) = @_;
    return unless $pid;
    kill $sig // 'TERM', $pid;
    my $deadline = time + ($grace // 10);
    while (time < $deadline) {
        return if waitpid($pid, WNOHANG) == $pid || !alive($pid);
        sleep 0.05;
    }
    kill 'KILL', $pid;
    waitpid($pid, 0);
}

sub http_request ($$$;$$) {
    my ($method, $url, $body, $headers, $timeout) = @_;
    my $http = HTTP::Tiny->new(keep_alive => 0, timeout => $timeout // 10);
    my %opt = (headers => $headers // {});
    $opt{content} = $body if defined $body && length $body;
    return $http->request($method, $url, \%opt);
}

sub wait_until ($$) {
    my ($timeout, $check) = @_;
    my $deadline = time + $timeout;
    while (1) {
        return 1 if $check->();
        return 0 if time > $deadline;
        sleep 0.05;
    }
}

sub start_registry ($$$);

# The members of the three-member etcd cluster ("registry: etcd_cluster").
my @CLUSTER = map { "etcd_cluster$_" } 1 .. 3;

sub start_registry ($$$) {
    my ($name, $dir, $args) = @_;
    if ($name eq 'etcd_cluster') {
        $registry{$_} //= { port => free_port(), peer_port => free_port(), args => $args, dir => $dir }
            for @CLUSTER;
        start_registry($_, $dir, $args) for @CLUSTER;
        return;
    }
    my $r = $registry{$name} //= { port => free_port(), args => $args, dir => $dir };
    # "--host ::1" in the stand-in's arguments: it listens there, and the
    # harness talks to it there.
    my ($host) = ($args // '') =~ /--host\s+(\S+)/;
    $r->{host} = !defined $host ? '127.0.0.1' : $host =~ /:/ ? "[$host]" : $host;
    my $log = "$dir/logs/$name.log";
    if ($name =~ /^consul\d*$/) {
        $r->{pid} = spawn($log, 'python3', "$ROOT/t/registry/consul_standin.py",
            '--port', $r->{port}, split(' ', $args // ''));
        wait_until(10, sub { http_request('GET', "http://$r->{host}:$r->{port}/v1/status/leader", '', undef, 1)->{status} != 599 })
            or die "the Consul stand-in did not start: " . slurp($log);
    } elsif ($name eq 'hostile') {
        $r->{pid} = spawn($log, 'python3', "$ROOT/t/registry/hostile.py", '--port', $r->{port},
            split(' ', $args // ''));
        wait_until(10, sub { http_request('GET', "http://127.0.0.1:$r->{port}/_stats", '', undef, 1)->{status} == 200 })
            or die "the hostile registry did not start: " . slurp($log);
    } elsif ($name =~ /^etcd_cluster\d$/) {
        my $cluster = join ',', map { "$_=http://127.0.0.1:$registry{$_}{peer_port}" } @CLUSTER;
        my $peer = "http://127.0.0.1:$r->{peer_port}";
        my $client = "http://127.0.0.1:$r->{port}";
        $r->{pid} = spawn($log, 'etcd', '--name', $name, '--data-dir', "$dir/$name-data",
            '--listen-client-urls', $client, '--advertise-client-urls', $client,
            '--listen-peer-urls', $peer, '--initial-advertise-peer-urls', $peer,
            '--initial-cluster', $cluster, '--initial-cluster-token', "upsync-$registry{$CLUSTER[0]}{port}",
            '--heartbeat-interval', 50, '--election-timeout', 500, split(' ', $args // ''));
        # A member is healthy once the cluster has a leader: the others must
        # be up too, so wait only for the last one started.
        if ($name eq $CLUSTER[-1] || grep({ $_ ne $name && $registry{$_}{pid} } @CLUSTER) == 2) {
            wait_until(30, sub { http_request('GET', "$client/health", '', undef, 1)->{content} =~ /"health":\s*"true"/ })
                or die "the etcd cluster did not start: " . slurp($log);
        }
    } elsif ($name eq 'etcd') {
        $r->{peer_port} //= free_port();
        # With "--cert-file" in etcd_args its clients speak TLS (and show a
        # client certificate, t/lib/make-certs.sh's, to check its health).
        my $tls = ($args // '') =~ /--cert-file/;
        my $peer = "http://127.0.0.1:$r->{peer_port}";
        my $client = ($tls ? 'https' : 'http') . "://127.0.0.1:$r->{port}";
        $r->{pid} = spawn($log, 'etcd', '--name', 'upsync-test', '--data-dir', "$dir/etcd-data",
            '--listen-client-urls', $client, '--advertise-client-urls', $client,
            '--listen-peer-urls', $peer, '--initial-advertise-peer-urls', $peer,
            '--initial-cluster', "upsync-test=$peer", '--enable-v2=true', split(' ', $args // ''));
        my $health = $tls
            ? sub { `curl -sk --max-time 1 --cert '$dir/certs/client.pem' --key '$dir/certs/client.key' $client/health` }
            : sub { http_request('GET', "$client/health", '', undef, 1)->{content} };
        wait_until(20, sub { $health->() =~ /"health":\s*"true"/ })
            or die "etcd did not start: " . slurp($log);
    } elsif ($name eq 'dns') {
        my $hosts = "$dir/dns.hosts";
        spew($hosts, $args // '') unless -e $hosts;
        # As this user: dnsmasq reads the hosts file again on SIGHUP, after
        # dropping root, and the block's directory is private.
        my $user = getpwuid($<);
        $r->{pid} = spawn($log, 'dnsmasq', '--keep-in-foreground', '--conf-file=/dev/null',
            '--no-resolv', '--no-hosts', "--addn-hosts=$hosts", '--local=/test/',
            '--local-ttl=1', '--neg-ttl=1', '--listen-address=127.0.0.1', '--bind-interfaces',
            "--port=$r->{port}", '--log-queries', "--log-facility=$dir/logs/dns.log",
            "--user=$user", '--pid-file=');
        wait_until(10, sub { (slurp("$dir/logs/dns.log") // '') =~ /read \Q$hosts\E/ })
            or die "dnsmasq did not start: " . (slurp($log) // '') . (slurp("$dir/logs/dns.log") // '');
    } else {
        die "unknown registry $name\n";
    }
}

# The DNS server answers from these hosts lines from now on.
sub step_dns {
    my ($ctx, $step) = @_;
    my $r = $registry{dns} or die "no DNS server (add '--- registry: dns')\n";
    my $hosts = "$ctx->{dir}/dns.hosts";
    my $log = "$ctx->{dir}/logs/dns.log";
    my $reads = () = (slurp($log) // '') =~ /read \Q$hosts\E/g;
    spew($hosts, $step->{body});
    kill 'HUP', $r->{pid};
    ok(wait_until(10, sub { my $n = () = (slurp($log) // '') =~ /read \Q$hosts\E/g; $n > $reads }),
        "$ctx->{name} - $step->{line}");
}

sub stop_registry ($) {
    my ($name) = @_;
    my $r = $registry{$name} or return;
    # A paused server (">>> pause") must run to see the signal.
    kill 'CONT', $r->{pid} if $r->{pid};
    stop_pid(delete $r->{pid});
}

sub stop_all () {
    stop_nginx();
    stop_registry($_) for keys %registry;
    %registry = ();
}

END { stop_all() }
$SIG{INT} = $SIG{TERM} = sub { stop_all(); exit 1 };

# ---------------------------------------------------------------------------
# nginx

sub slurp ($) {
    my ($f) = @_;
    open my $fh, '<', $f or return undef;
    local $/;
    my $s = <$fh>;
    return $s;
}

sub spew ($$) {
    my ($f, $s) = @_;
    open my $fh, '>', $f or die "write $f: $!";
    print $fh $s;
    close $fh;
}

sub write_config ($$$) {
    my ($block, $dir, $vars) = @_;
    my $module = $block->module ? trim($block->module) : $MODULE;
    my $load = defined $block->no_module ? '' : "load_module $module;\n";
    my $workers = $block->workers ? trim($block->workers) : 1;
    my $daemon = defined $block->daemon ? 'on' : 'off';
    my $user = $> == 0 ? "user root;\n" : '';
    my $main = $block->main_config // '';
    my $http = $block->http_config // '';
    my $config = $block->config // '';
    my $port = $vars->{SERVER_PORT};
    my $conf = <<"END";
${load}${user}worker_processes $workers;
daemon $daemon;
master_process on;
pid $dir/logs/nginx.pid;
error_log $dir/logs/error.log info;
$main
events {
    worker_connections 1024;
}

http {
    access_log off;
    client_body_temp_path $dir/tmp/client_body;
    proxy_temp_path $dir/tmp/proxy;
    fastcgi_temp_path $dir/tmp/fastcgi;
    uwsgi_temp_path $dir/tmp/uwsgi;
    scgi_temp_path $dir/tmp/scgi;

$http

    server {
        listen 127.0.0.1:$port;
        server_name localhost;

$config
    }
}
END
    spew("$dir/conf/nginx.conf", $conf);
}

sub start_nginx ($$;$) {
    my ($dir, $port, $daemon) = @_;
    my @valgrind = $VALGRIND ? ('valgrind', '--tool=memcheck', '--leak-check=full',
        '--show-leak-kinds=definite', '--num-callers=40', '--error-limit=no',
        "--log-file=$dir/logs/valgrind.%p.log") : ();
    $nginx_pid = spawn("$dir/logs/stderr.log", @valgrind, $NGINX, '-p', "$dir/", '-c',
        "$dir/conf/nginx.conf", '-e', "$dir/logs/error.log");
    if ($daemon) {
        # The process we started forks the master and exits: follow the pid file.
        my $starter = $nginx_pid;
        waitpid($starter, 0);
        $nginx_pid = undef;
        wait_until(10 * $SLOW, sub { ($nginx_pid) = (slurp("$dir/logs/nginx.pid") // '') =~ /(\d+)/; $nginx_pid });
        return unless $nginx_pid;
    }
    my $exited;
    wait_until(10 * $SLOW, sub {
        $exited = waitpid($nginx_pid, WNOHANG) == $nginx_pid || !alive($nginx_pid);
        return $exited || IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => $port, Timeout => 1);
    });
    $nginx_pid = undef if $exited;
    return defined $nginx_pid;
}

sub stop_nginx () {
    return unless $nginx_pid;
    stop_pid($nginx_pid, 'QUIT', 10 * $SLOW);
    $nginx_pid = undef;
}

sub worker_starts ($) {
    my ($dir) = @_;
    my $log = slurp("$dir/logs/error.log") // '';
    my @n = $log =~ /start worker process/g;
    return scalar @n;
}

# ---------------------------------------------------------------------------
# blocks

sub trim { my $s = shift; $s =~ s/^\s+|\s+$//g; $s }

sub substitute ($$) {
    my ($text, $vars) = @_;
    return $text unless defined $text;
    $text =~ s/\$TEST_NGINX_([A-Z0-9_]+)/
        exists $vars->{$1} ? $vars->{$1} : $ENV{"TEST_NGINX_$1"} \/\/ "\$TEST_NGINX_$1"/gex;
    return $text;
}

# Test::Base keeps each section as a list of values (strings, or what a
# filter such as "eval" made of them): replace variables in the strings.
sub substitute_block ($$) {
    my ($block, $vars) = @_;
    for my $section (keys %{ $block->{_section_map}[0] // {} }) {
        for (@{ $block->{$section} // [] }) {
            $_ = substitute($_, $vars) unless ref $_;
        }
    }
}

sub skip_reason ($) {
    my ($block) = @_;
    if (my $var = $block->skip_unless) {
        $var = trim($var);
        return "$var is not set" unless $ENV{$var};
    }
    my $spec = $block->skip_nginx or return;
    $spec = trim($spec);
    $spec =~ /^(<|>=)\s*(\d+)\.(\d+)\.(\d+)$/ or die "bad skip_nginx: $spec\n";
    my $have = version_num(@VERSION);
    my $want = version_num($2, $3, $4);
    return "nginx " . join('.', @VERSION) . " $spec" if $1 eq '<' ? $have < $want : $have >= $want;
    return;
}

sub run_tests () {
    plan('no_plan');    # through Test::Base's wrapper, which then plans nothing itself
    for my $block (blocks()) {
        my $name = $block->name;
        if (my $why = skip_reason($block)) {
            SKIP: { skip("$name: $why", 1) }
            next;
        }
        my $ok = eval { run_block($block); 1 };
        unless ($ok) {
            fail("$name: $@");
        }
        stop_all();
    }
}

sub run_block ($) {
    my ($block) = @_;
    my $name = $block->name;
    my $dir = tempdir("upsync-test-XXXXXX", TMPDIR => 1, CLEANUP => !$KEEP);
    make_path(map { "$dir/$_" } qw(conf logs tmp html));
    diag("$name: kept in $dir") if $KEEP;

    my %vars = (SERVER_PORT => free_port(), DIR => $dir, NGINX_VERSION => join('.', @VERSION));
    $vars{"PORT$_"} = free_port() for 1 .. 9;
    # Certificates (t/lib/make-certs.sh) for the blocks that use them.
    $vars{CERTS} = "$dir/certs";
    if (grep { defined && /TEST_NGINX_CERTS/ } map { scalar $block->$_ }
        qw(main_config http_config config consul_args etcd_args init steps)) {
        system('bash', "$ROOT/t/lib/make-certs.sh", $vars{CERTS}) == 0
            or die "t/lib/make-certs.sh failed\n";
    }

    substitute_block($block, \%vars);
    for my $r (split ' ', $block->registry // '') {
        my ($kind) = $r =~ /^([a-z_]+?)\d*$/;
        my $args = { consul => scalar $block->consul_args, etcd => scalar $block->etcd_args,
            etcd_cluster => scalar $block->etcd_args,
            hostile => scalar $block->hostile_args, dns => scalar $block->dns_hosts }->{$kind};
        start_registry($r, $dir, $args);
        $vars{ uc($_) . '_PORT' } = $registry{$_}{port}
            for $r eq 'etcd_cluster' ? @CLUSTER : ($r);
    }
    for my $b (split ' ', $block->backends // '') {
        my ($proto, $bname) = $b =~ /^(\w+):(\w+)$/ or die "bad backend $b\n";
        my $r = $registry{"backend_$bname"} = { port => free_port(), control => free_port() };
        my @tls = $proto eq 'ssl' ? ('--cert', "$vars{CERTS}/server.pem", '--key', "$vars{CERTS}/server.key") : ();
        if (@tls && !-e "$vars{CERTS}/server.pem") {
            system('bash', "$ROOT/t/lib/make-certs.sh", $vars{CERTS}) == 0 or die "make-certs.sh failed\n";
        }
        $r->{pid} = spawn("$dir/logs/backend_$bname.log", 'python3', "$ROOT/t/registry/check_backend.py",
            '--proto', $proto, '--port', $r->{port}, '--control-port', $r->{control}, '--name', $bname, @tls);
        wait_until(10, sub { http_request('GET', "http://127.0.0.1:$r->{control}/stats", '', undef, 1)->{status} == 200 })
            or die "check backend $bname did not start: " . (slurp("$dir/logs/backend_$bname.log") // '');
        $vars{ uc($bname) . '_PORT' } = $r->{port};
        $vars{ uc($bname) . '_CONTROL' } = $r->{control};
    }
    # Registry ports are known only now: substitute them as well.
    substitute_block($block, \%vars);

    my $ctx = { block => $block, dir => $dir, vars => \%vars, name => $name };
    run_steps($ctx, $block->init) if defined $block->init;

    write_config($block, $dir, \%vars);
    my $started = start_nginx($dir, $vars{SERVER_PORT}, defined $block->daemon);

    if (defined $block->must_die) {
        ok(!$started, "$name - nginx refuses to start");
        stop_nginx();
        check_logs($ctx);
        return;
    }
    unless ($started) {
        my $log = (slurp("$dir/logs/error.log") // '') . (slurp("$dir/logs/stderr.log") // '');
        die "nginx did not start:\n$log";
    }

    sleep($block->wait) if $block->wait;
    run_steps($ctx, $block->steps) if defined $block->steps;
    run_request($ctx) if defined $block->request;

    stop_nginx();
    check_logs($ctx);
}

sub request_url ($$) {
    my ($ctx, $uri) = @_;
    return "http://127.0.0.1:$ctx->{vars}{SERVER_PORT}$uri";
}

sub run_request ($) {
    my ($ctx) = @_;
    my $block = $ctx->{block};
    my $name = $ctx->{name};
    my ($line, $body) = split /\n/, $block->request, 2;
    my ($method, $uri) = split ' ', trim($line);
    my %headers;
    for (split /\n/, $block->more_headers // '') {
        next unless /\S/;
        my ($k, $v) = /^\s*([^:]+?)\s*:\s*(.*?)\s*$/ or die "bad more_headers line: $_\n";
        $headers{$k} = $v;
    }
    my $res = http_request($method, request_url($ctx, $uri), $body, \%headers, $block->timeout);
    $res->{content} //= '';
    my $code = defined $block->error_code ? trim($block->error_code) : 200;
    is($res->{status}, $code, "$name - status code");
    if (defined $block->response_body) {
        is($res->{content}, $block->response_body, "$name - response body");
    }
    if (defined(my $like = $block->response_body_like)) {
        $like = trim($like) unless ref $like;
        like($res->{content}, ref $like ? $like : qr/$like/s, "$name - response body like");
    }
    for (split /\n/, $block->response_headers // '') {
        next unless /\S/;
        if (/^\s*!\s*(\S+)\s*$/) {
            ok(!exists $res->{headers}{ lc $1 }, "$name - no header $1");
            next;
        }
        my ($k, $v) = /^\s*([^:]+?)\s*:\s*(.*?)\s*$/ or die "bad response_headers line: $_\n";
        is($res->{headers}{ lc $k }, $v, "$name - header $k");
    }
}

sub check_logs ($) {
    my ($ctx) = @_;
    my $block = $ctx->{block};
    my $name = $ctx->{name};
    my $dir = $ctx->{dir};
    my $log = (slurp("$dir/logs/error.log") // '') . (slurp("$dir/logs/stderr.log") // '');

    for my $want (lines_or_patterns($block->error_log)) {
        my $found = ref $want ? $log =~ $want : index($log, $want) >= 0;
        ok($found, "$name - error log has: $want") or diag(tail_of($log));
    }
    for my $unwanted (lines_or_patterns($block->no_error_log)) {
        my $found = ref $unwanted ? $log =~ $unwanted : index($log, $unwanted) >= 0;
        ok(!$found, "$name - error log has not: $unwanted") or diag(matching_lines($log, $unwanted));
    }
    return if defined $block->allow_alerts || defined $block->must_die;
    # The level where nginx writes it (a registry's text quoted in a message
    # may say anything).
    my @bad = grep { /^(\S+ \S+ |nginx: )\[(alert|emerg)\]|exited on signal|worker process \d+ exited with code [^0]/ }
        split /\n/, $log;
    ok(!@bad, "$name - no alert, emerg or crash in the error log") or diag(join "\n", @bad);
    check_valgrind($ctx) if $VALGRIND;
}

# valgrind's reports of the block's nginx processes: one file a process.
sub check_valgrind ($) {
    my ($ctx) = @_;
    my @files = glob("$ctx->{dir}/logs/valgrind.*.log");
    ok(@files >= 2, "$ctx->{name} - valgrind reported on the master and the workers ("
        . scalar(@files) . " processes)");
    my ($bad, $leaks, $checked) = (0, 0, 0);
    my @report;
    for my $file (@files) {
        my $text = slurp($file) // '';
        $checked++ if $text =~ /ERROR SUMMARY:/;
        # A report is a run of "==PID== " lines up to a blank one.
        for my $record (split /\n==\d+==\s*\n/, $text) {
            my @frames = $record =~ /^==\d+==\s+(?:at|by) 0x[0-9A-F]+: (.*)$/mg;
            my $in_module = grep { /ngx_http_upsync_module/ } @frames;
            # Memory is the module's when the module called the allocator.
            my ($caller) = grep { !/vgpreload_memcheck/ } @frames;
            my $allocated_by_module = ($caller // '') =~ /ngx_http_upsync_module/;
            if ($record =~ /^==\d+== (Invalid (read|write|free)|Mismatched free|Source and destination overlap)/m
                || ($in_module && $record =~ /^==\d+== (Conditional jump|Use of uninitialised|Syscall param)/m))
            {
                $bad++;
                push @report, $record;
            } elsif ($allocated_by_module && $record =~ /definitely lost in loss record/) {
                $leaks++;
                push @report, $record;
            }
        }
    }
    ok($checked == @files, "$ctx->{name} - every process ran to valgrind's summary ($checked of "
        . scalar(@files) . ")");
    ok(!$bad, "$ctx->{name} - valgrind: no invalid access, none in the module ($bad)")
        or diag(join "\n\n", @report[0 .. ($#report < 4 ? $#report : 4)]);
    ok(!$leaks, "$ctx->{name} - valgrind: no memory definitely lost by the module ($leaks)")
        or diag(join "\n\n", grep { /definitely lost/ } @report);
}

sub lines_or_patterns ($) {
    my ($spec) = @_;
    return () unless defined $spec;
    return map { ref $_ ? $_ : $_ } @$spec if ref $spec eq 'ARRAY';
    return ($spec) if ref $spec eq 'Regexp';
    return grep { length } map { trim($_) } split /\n/, $spec;
}

sub tail_of ($) {
    my @l = split /\n/, shift;
    return join "\n", @l > 30 ? @l[-30 .. -1] : @l;
}

sub matching_lines ($$) {
    my ($log, $what) = @_;
    return join "\n", grep { ref $what ? $_ =~ $what : index($_, $what) >= 0 } split /\n/, $log;
}

# ---------------------------------------------------------------------------
# steps

sub parse_steps ($) {
    my ($text) = @_;
    my @steps;
    for my $line (split /^/, $text) {
        if ($line =~ /^>>>\s*(.*?)\s*$/) {
            my @words = split ' ', $1;
            my %flags;
            $flags{ pop @words } = 1 while @words && $words[-1] =~ /^-(chomp|keep)$/;
            push @steps, { words => \@words, body => '', chomp => $flags{-chomp},
                keep => $flags{-keep}, line => $1 };
            next;
        }
        die "steps must start with a '>>> action' line, got: $line" unless @steps;
        $steps[-1]{body} .= $line;
    }
    for (@steps) {
        # Blank lines between steps separate them; they are not part of a body.
        $_->{body} =~ s/\n\n+\z/\n/ unless $_->{keep};
        $_->{body} =~ s/\n\z// if $_->{chomp};
    }
    return @steps;
}

my %STEP = (
    consul => \&step_registry,
    consul2 => \&step_registry,
    consul3 => \&step_registry,
    etcd => \&step_registry,
    http => \&step_http,
    wait => \&step_wait,
    settle => \&step_settle,
    file => \&step_file,
    no_file => \&step_no_file,
    write => sub { spew($_[1]{words}[1], $_[1]{body}) },
    expect => \&step_expect,
    etcd3 => \&step_etcd3,
    run => \&step_run,
    log => \&step_log,
    traffic => \&step_traffic,
    same => \&step_same,
    agree => \&step_agree,
    keys => \&step_keys,
    sleep => sub { sleep $_[1]{words}[1] },
    rss_below => \&step_rss_below,
    json => \&step_json,
    metrics => \&step_metrics,
    reload => \&step_reload,
    upgrade => \&step_upgrade,
    signal => sub { kill $_[1]{words}[1], $nginx_pid or die "no nginx to signal\n" },
    stop => sub { stop_registry($_[1]{words}[1]) },
    dns => \&step_dns,
    mode => sub {
        my ($ctx, $step) = @_;
        my (undef, $bname, $mode) = @{ $step->{words} };
        my $r = $registry{"backend_$bname"} or die "no backend $bname\n";
        my $res = http_request('PUT', "http://127.0.0.1:$r->{control}/mode", $mode);
        ok($res->{success}, "$ctx->{name} - $step->{line}") or diag("$res->{status} $res->{content}");
    },
    pause => sub { kill 'STOP', ($registry{ $_[1]{words}[1] } // {})->{pid} || die "not running\n" },
    resume => sub { kill 'CONT', ($registry{ $_[1]{words}[1] } // {})->{pid} || die "not running\n" },
    start => sub { start_registry($_[1]{words}[1], $_[0]{dir}, $registry{ $_[1]{words}[1] }{args}) },
);

sub run_steps ($$) {
    my ($ctx, $text) = @_;
    for my $step (parse_steps($text)) {
        my $action = $step->{words}[0] // '';
        my $run = $STEP{$action} or die "unknown step action '$action'\n";
        $run->($ctx, $step);
    }
}

sub step_registry {
    my ($ctx, $step) = @_;
    my ($name, $method, $path, $times) = @{ $step->{words} };
    my $r = $registry{$name} or die "registry $name is not running (add '--- registry: $name')\n";
    my $n = defined $times && $times =~ /^x(\d+)$/ ? $1 : 1;
    (my $body = $step->{body}) =~ s/\n\z//;
    my %headers;
    $headers{'Content-Type'} = 'application/x-www-form-urlencoded' if $body =~ /^value=/;
    $headers{'X-Consul-Token'} = $1 if $name =~ /^consul/ && ($r->{args} // '') =~ /--token\s+(\S+)/;
    my $res;
    for (1 .. $n) {
        $res = http_request($method, "http://$r->{host}:$r->{port}$path", $body, \%headers);
        last unless $res->{success};
    }
    ok($res->{success}, "$ctx->{name} - $step->{line}")
        or diag("$res->{status} $res->{content}");
}

# The value at a dotted path of decoded JSON, and whether it exists.
sub json_at ($$) {
    my ($data, $path) = @_;
    for my $k (split /\./, $path) {
        if (ref $data eq 'HASH' && exists $data->{$k}) { $data = $data->{$k} }
        elsif (ref $data eq 'ARRAY' && $k =~ /^\d+$/ && $k < @$data) { $data = $data->[$k] }
        else { return (undef, 0) }
    }
    return ($data, 1);
}

sub json_text ($) {
    my ($v) = @_;
    return 'null' unless defined $v;
    return $v ? 'true' : 'false' if JSON::PP::is_bool($v);
    return ref $v ? JSON::PP->new->canonical->encode($v) : "$v";
}

# The lines of a check that fail on `$res`, or why the answer is unusable.
sub json_problems ($$$) {
    my ($res, $status, $checks) = @_;
    return ("status $res->{status}: $res->{content}") if $res->{status} != $status;
    my $type = $res->{headers}{'content-type'} // '';
    return ("Content-Type $type") if $type ne 'application/json';
    my $data = eval { JSON::PP->new->decode($res->{content}) };
    return ("not JSON ($@): $res->{content}") unless defined $data;
    my @bad;
    for (split /\n/, $checks) {
        next unless /\S/;
        my ($path, $op, $want) = /^\s*(\S+)\s+(=|>=|~|absent)\s*(.*?)\s*$/ or die "bad json check: $_\n";
        my ($v, $exists) = json_at($data, $path);
        my $got = $exists ? json_text($v) : '(absent)';
        my $good = $op eq 'absent' ? !$exists
            : !$exists ? 0
            : $op eq '=' ? $got eq $want
            : $op eq '>=' ? $got =~ /^-?[\d.e+]+$/ && $got >= $want
            : $got =~ /$want/;
        push @bad, "$path: got $got, want $op $want" unless $good;
    }
    return @bad;
}

sub step_json {
    my ($ctx, $step) = @_;
    my (undef, $uri, @opts) = @{ $step->{words} };
    my %opt = map { split /=/, $_, 2 } @opts;
    my @bad;
    wait_until($ctx->{block}->timeout // 10, sub {
        my $res = http_request('GET', request_url($ctx, $uri), undef);
        @bad = json_problems($res, $opt{status} // 200, $step->{body});
        !@bad;
    });
    ok(!@bad, "$ctx->{name} - $step->{line}") or diag(join "\n", @bad);
}

sub promtool () {
    return $ENV{TEST_NGINX_PROMTOOL} if $ENV{TEST_NGINX_PROMTOOL};
    (my $root = abs_path(__FILE__)) =~ s{/t/lib/Test/Upsync\.pm$}{};
    my $built = "$root/build/tools/promtool";
    return -x $built ? $built : 'promtool';
}

sub step_metrics {
    my ($ctx, $step) = @_;
    my $uri = $step->{words}[1];
    my ($res, @missing);
    wait_until($ctx->{block}->timeout // 10, sub {
        $res = http_request('GET', request_url($ctx, $uri), undef);
        my %have = map { $_ => 1 } split /\n/, $res->{content} // '';
        @missing = grep {
            my $want = $_;
            $want =~ /^~\s*(.*)$/ ? !grep({ /$1/ } keys %have) : !$have{$want};
        } grep { /\S/ } split /\n/, $step->{body};
        !@missing && $res->{status} == 200;
    });
    ok(!@missing && $res->{status} == 200, "$ctx->{name} - $step->{line}")
        or diag("missing: $missing[0]\n$res->{status}: $res->{content}");
    is($res->{headers}{'content-type'}, 'text/plain; version=0.0.4; charset=utf-8',
        "$ctx->{name} - $step->{line}: Content-Type");
    my $file = "$ctx->{dir}/metrics.txt";
    spew($file, $res->{content});
    my $out = `'${\ promtool()}' check metrics < '$file' 2>&1`;
    ok($? == 0 && $out !~ /\S/, "$ctx->{name} - $step->{line}: promtool check metrics")
        or diag($out);
}

sub step_rss_below {
    my ($ctx, $step) = @_;
    my $limit = $step->{words}[1];
    my @workers = grep { (slurp("/proc/$_/stat") // '') =~ /^\d+ \(.*\) \S+ $nginx_pid / }
        map { m{/proc/(\d+)/stat$} ? $1 : () } glob('/proc/[0-9]*/stat');
    my @over;
    for my $pid (@workers) {
        my ($rss) = (slurp("/proc/$pid/status") // '') =~ /^VmRSS:\s+(\d+)/m;
        push @over, "worker $pid: $rss kB" if ($rss // 0) >= $limit;
    }
    ok(@workers && !@over, "$ctx->{name} - $step->{line} (" . scalar(@workers) . " workers)")
        or diag(@over ? join("\n", @over) : 'no worker found');
}

sub step_run {
    my ($ctx, $step) = @_;
    open(my $fh, '-|', 'bash', '-c', "exec 2>&1; $step->{body}") or die "bash: $!";
    my $out = do { local $/; <$fh> } // '';
    close $fh;
    ok($? == 0, "$ctx->{name} - run: $step->{body}") or diag($out);
}

sub etcd3_call ($$) {
    my ($path, $request) = @_;
    # etcd, or the first member of the cluster that runs.
    my ($r) = grep { $_ && $_->{pid} } map { $registry{$_} } 'etcd', @CLUSTER;
    $r or die "etcd is not running (add '--- registry: etcd')\n";
    my $res = http_request('POST', "http://127.0.0.1:$r->{port}$path",
        JSON::PP::encode_json($request), { 'Content-Type' => 'application/json' });
    die "etcd $path: $res->{status} $res->{content}\n" unless $res->{success};
    return JSON::PP::decode_json($res->{content});
}

sub step_etcd3 {
    my ($ctx, $step) = @_;
    my (undef, $op, $key) = @{ $step->{words} };
    my $b64 = sub { encode_base64($_[0], '') };
    (my $value = $step->{body}) =~ s/\n\z//;
    if ($op eq 'put') {
        etcd3_call('/v3/kv/put', { key => $b64->($key), value => $b64->($value) });
    } elsif ($op eq 'delete') {
        etcd3_call('/v3/kv/deleterange', { key => $b64->($key) });
    } elsif ($op eq 'compact') {
        my $rev = etcd3_call('/v3/kv/range', { key => $b64->("\0") })->{header}{revision};
        etcd3_call('/v3/kv/compaction', { revision => $rev });
    } else {
        die "unknown etcd3 operation '$op'\n";
    }
    pass("$ctx->{name} - $step->{line}");
}

sub step_expect {
    my ($ctx, $step) = @_;
    my (undef, $name, $method, $path) = @{ $step->{words} };
    my $r = $registry{$name} or die "registry $name is not running\n";
    (my $re = $step->{body}) =~ s/\n\z//;
    my $got;
    my $timeout = $ctx->{block}->timeout // 10;
    wait_until($timeout, sub {
        $got = http_request($method, "http://$r->{host}:$r->{port}$path", undef)->{content};
        $got =~ /$re/;
    });
    like($got, qr/$re/, "$ctx->{name} - $step->{line}");
}

sub step_http {
    my ($ctx, $step) = @_;
    my (undef, $method, $uri, @opts) = @{ $step->{words} };
    my %opt = map { split /=/, $_, 2 } @opts;
    my $res = http_request($method, request_url($ctx, $uri), undef);
    is($res->{status}, $opt{status} // 200, "$ctx->{name} - $step->{line}: status");
    is($res->{content}, $step->{body}, "$ctx->{name} - $step->{line}: body")
        if length $step->{body};
}

sub poll_equal ($$$$) {
    my ($ctx, $step, $fetch, $what) = @_;
    my $want = $step->{body};
    my $got;
    my $timeout = $ctx->{block}->timeout // 10;
    my $ok = wait_until($timeout, sub { $got = $fetch->(); defined $got && $got eq $want });
    is($got, $want, "$ctx->{name} - $step->{line}: $what");
}

sub step_wait {
    my ($ctx, $step) = @_;
    my $uri = $step->{words}[1];
    poll_equal($ctx, $step, sub {
        my $res = http_request('GET', request_url($ctx, $uri), undef, undef, 2);
        return $res->{status} == 200 ? $res->{content} : "status $res->{status}";
    }, 'body');
}

sub step_settle {
    my ($ctx, $step) = @_;
    my (undef, $uri, $n) = @{ $step->{words} };
    (my $re = $step->{body}) =~ s/\n\z//;
    my ($run, $got) = (0, '');
    my $timeout = $ctx->{block}->timeout // 10;
    my $ok = wait_until($timeout, sub {
        my $res = http_request('GET', request_url($ctx, $uri), undef, undef, 2);
        $got = "status $res->{status}: $res->{content}";
        $run = $res->{status} == 200 && $res->{content} =~ /$re/ ? $run + 1 : 0;
        return $run >= $n;
    });
    ok($ok, "$ctx->{name} - $step->{line}") or diag("last answer: $got");
}

sub step_file {
    my ($ctx, $step) = @_;
    my $path = $step->{words}[1];
    poll_equal($ctx, $step, sub { slurp($path) }, 'contents');
}

sub step_no_file {
    my ($ctx, $step) = @_;
    ok(!-e $step->{words}[1], "$ctx->{name} - $step->{line}");
}

sub step_log {
    my ($ctx, $step) = @_;
    my $re = join ' ', @{ $step->{words} }[1 .. $#{ $step->{words} }];
    my $timeout = $ctx->{block}->timeout // 10;
    ok(wait_until($timeout, sub { (slurp("$ctx->{dir}/logs/error.log") // '') =~ /$re/ }),
        "$ctx->{name} - error log matches $re");
}

sub step_traffic {
    my ($ctx, $step) = @_;
    my (undef, $uri, $n) = @{ $step->{words} };
    my %want;
    for (split /\n/, $step->{body}) {
        next unless /\S/;
        my ($body, $count) = /^\s*(.*?)\s+(\d+|>0|\*)\s*$/ or die "bad traffic line: $_\n";
        $want{$body} = $count;
    }
    my %got;
    for (1 .. $n) {
        my $res = http_request('GET', request_url($ctx, $uri), undef, undef, 5);
        my $key = $res->{status} == 200 ? trim($res->{content}) : "status $res->{status}";
        $got{$key}++;
    }
    my @errors;
    for my $body (sort keys %got) {
        push @errors, "unexpected '$body' x $got{$body}" unless exists $want{$body};
    }
    for my $body (sort keys %want) {
        my $count = $got{$body} // 0;
        my $w = $want{$body};
        next if $w eq '*';
        push @errors, "'$body' answered $count times, want $w"
            if ($w eq '>0' && $count == 0) || ($w =~ /^\d+$/ && $count != $w);
    }
    ok(!@errors, "$ctx->{name} - $step->{line}") or diag(join "\n", @errors);
}

sub step_agree {
    my ($ctx, $step) = @_;
    my (undef, $uri, $n, $re) = @{ $step->{words} };
    my ($first, @differ);
    for (1 .. $n) {
        my $res = http_request('GET', request_url($ctx, $uri), undef, undef, 5);
        my $got = "status $res->{status}: $res->{content}";
        $first //= $got;
        push @differ, $got if $res->{status} != 200 || $got ne $first;
    }
    push @differ, "'$first' does not match /$re/" if defined $re && $first !~ /$re/;
    ok(!@differ, "$ctx->{name} - $step->{line}") or diag("first: $first\ndiffers: $differ[0]");
}

sub step_keys {
    my ($ctx, $step) = @_;
    my (undef, $uri, $n) = @{ $step->{words} };
    my %now;
    for my $k (1 .. $n) {
        my $res = http_request('GET', request_url($ctx, "$uri$k"), undef, undef, 5);
        $now{$k} = $res->{status} == 200 ? $res->{content} : "status $res->{status}";
    }
    my $before = $ctx->{keys};
    $ctx->{keys} = \%now;
    my ($how, $who) = ($step->{body} // '') =~ /^(moved|left|same)(?: (.*))?$/m or return;
    my (@wrong, $moved);
    for my $k (1 .. $n) {
        my $changed = $now{$k} ne $before->{$k};
        my $right = $how eq 'same' ? !$changed
            : $how eq 'moved' ? !$changed || $now{$k} eq "$who\n"
            : $changed == ($before->{$k} eq "$who\n");
        push @wrong, "key $k: $before->{$k} -> $now{$k}" unless $right;
        $moved++ if $changed;
    }
    if ($how eq 'same') {
        ok(!@wrong, "$ctx->{name} - $step->{line} same") or diag(scalar(@wrong) . " keys differ, first: $wrong[0]");
        return;
    }
    ok(!@wrong && $moved, "$ctx->{name} - $step->{line} $how $who (" . ($moved // 0) . " of $n moved)")
        or diag(@wrong ? $wrong[0] : "no key moved");
}

sub step_same {
    my ($ctx, $step) = @_;
    my (undef, $uri, $n) = @{ $step->{words} };
    my @differ;
    for (1 .. $n) {
        my $res = http_request('GET', request_url($ctx, $uri), undef, undef, 5);
        push @differ, "status $res->{status}: $res->{content}"
            if $res->{status} != 200 || $res->{content} ne $step->{body};
    }
    ok(!@differ, "$ctx->{name} - $step->{line}") or diag($differ[0]);
}

sub step_upgrade {
    my ($ctx, $step) = @_;
    my $dir = $ctx->{dir};
    my $old = $nginx_pid;
    my $before = worker_starts($dir);
    kill 'USR2', $old or die "no nginx to upgrade\n";
    my $new;
    my $ok = wait_until(10, sub {
        $new = slurp("$dir/logs/nginx.pid") // '';
        chomp $new;
        -e "$dir/logs/nginx.pid.oldbin" && $new =~ /^\d+$/ && $new != $old
            && worker_starts($dir) > $before;
    });
    ok($ok, "$ctx->{name} - a new master runs") or return;
    stop_pid($old, 'QUIT');
    $nginx_pid = $new;
    ok(!-e "$dir/logs/nginx.pid.oldbin", "$ctx->{name} - the old master is gone");
}

sub step_reload {
    my ($ctx, $step) = @_;
    my $before = worker_starts($ctx->{dir});
    kill 'HUP', $nginx_pid or die "no nginx to reload\n";
    ok(wait_until(10 * $SLOW, sub { worker_starts($ctx->{dir}) > $before }), "$ctx->{name} - reloaded");
    sleep 0.2;
}

1;
