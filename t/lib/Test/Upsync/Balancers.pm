package Test::Upsync::Balancers;

# nginx's balancers, as the tests configure them: [label, directive, how
# requests spread over a list: "all" (every server answers), "some" (random:
# every server of a short list answers), "any" (one server may take all: a
# client address, an empty key), "weighted" when the test gives weights].

use strict;
use warnings;
use Exporter 'import';

our @EXPORT = qw(@BALANCERS);

our @BALANCERS = (
    ['round robin',           '',                         'all'],
    ['weighted round robin',  '',                         'all', 'weighted'],
    ['least_conn',            'least_conn;',              'all'],
    ['ip_hash',               'ip_hash;',                 'any'],
    ['hash',                  'hash $arg_k;',             'any'],
    ['hash consistent',       'hash $arg_k consistent;',  'any'],
    ['random',                'random;',                  'some'],
    ['random two',            'random two;',              'some'],
    ['random two least_conn', 'random two least_conn;',   'some'],
);

1;
