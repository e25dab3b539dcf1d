use super::*;
use crate::check::conf::CheckDirectives;

fn spec(check: &[&str], send: &[u8], expect: &[&str], keepalive: u64) -> CheckSpec {
    let mut d = CheckDirectives::default();
    d.check(check).unwrap();
    d.http_send(send);
    if !expect.is_empty() {
        d.http_expect_alive(expect).unwrap();
    }
    d.keepalive_requests(&keepalive.to_string()).unwrap();
    d.finish().unwrap()
}

fn probe(kind: &str) -> Probe {
    Probe::new(&spec(&[&format!("type={kind}")], b"", &[], 1))
}

/// Feeds the answer in pieces of `step` bytes; the first verdict.
fn run(p: &mut Probe, answer: &[u8], step: usize) -> Progress {
    for piece in answer.chunks(step) {
        let r = p.feed(piece);
        if r != Progress::NeedMore {
            return r;
        }
    }
    Progress::NeedMore
}

fn is_fail(p: &Progress) -> bool {
    matches!(p, Progress::Fail(_))
}

#[test]
fn ssl_client_hello_is_the_c_modules() {
    // sslv3_client_hello_pkt of the C module, as hex.
    let c_hex = concat!(
        "160301006f0100006b0303000000004e47585f485454505f434845434b5f5353",
        "4c5f48454c4c4f0a0a0a0a00001ac02bc02fcca9cca8c00ac009c013c0140033",
        "0039002f0035000a01000028000a00080006001700180019000d001800160401",
        "0501060102010403050306030203050204020202",
    );
    let c: Vec<u8> = (0..c_hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&c_hex[i..i + 2], 16).unwrap())
        .collect();
    assert_eq!(SSL_CLIENT_HELLO[..], c[..]);
    let h = SSL_CLIENT_HELLO;
    assert_eq!(h.len(), 116);
    assert_eq!(&h[..5], b"\x16\x03\x01\x00\x6f");
    assert_eq!(usize::from(u16::from_be_bytes([h[3], h[4]])), h.len() - 5);
    assert_eq!(h[5], 0x01);
    assert_eq!(usize::from(h[8]), h.len() - 9);
    assert_eq!(&h[9..11], b"\x03\x03");
    assert_eq!(&h[15..43], b"NGX_HTTP_CHECK_SSL_HELLO\n\n\n\n");
    assert_eq!(&h[43..46], b"\x00\x00\x1a");
    assert_eq!(&h[46..48], b"\xc0\x2b");
    assert_eq!(&h[70..74], b"\x00\x0a\x01\x00");
    assert_eq!(
        usize::from(u16::from_be_bytes([h[74], h[75]])),
        h.len() - 76
    );
    assert_eq!(&h[110..], b"\x05\x02\x04\x02\x02\x02");
    assert_eq!(probe("ssl_hello").request(), &h[..]);
}

#[test]
fn requests_per_type() {
    assert_eq!(probe("tcp").request(), b"");
    assert_eq!(probe("mysql").request(), b"");
    assert_eq!(probe("ajp").request(), b"\x12\x34\x00\x01\x0a");
    assert_eq!(probe("http").request(), b"GET / HTTP/1.0\r\n\r\n");
    let p = Probe::new(&spec(
        &["type=http"],
        b"HEAD / HTTP/1.1\r\nHost: x\r\n\r\n",
        &[],
        1,
    ));
    assert_eq!(p.request(), b"HEAD / HTTP/1.1\r\nHost: x\r\n\r\n");
}

#[test]
fn fastcgi_default_request_bytes() {
    let mut want: Vec<u8> = Vec::new();
    want.extend_from_slice(b"\x01\x01\x00\x01\x00\x08\x00\x00");
    want.extend_from_slice(b"\x00\x01\x00\x00\x00\x00\x00\x00");
    // 14+3+2 + 11+1+2 + 15+9+2 = 59 bytes of parameters, 5 of padding.
    want.extend_from_slice(b"\x01\x04\x00\x01\x00\x3b\x05\x00");
    want.extend_from_slice(b"\x0e\x03REQUEST_METHODGET");
    want.extend_from_slice(b"\x0b\x01REQUEST_URI/");
    want.extend_from_slice(b"\x0f\x09SCRIPT_FILENAMEindex.php");
    want.extend_from_slice(&[0; 5]);
    want.extend_from_slice(b"\x01\x04\x00\x01\x00\x00\x00\x00");
    want.extend_from_slice(b"\x01\x05\x00\x01\x00\x00\x00\x00");
    assert_eq!(probe("fastcgi").request(), &want[..]);
}

#[test]
fn fastcgi_long_names_and_values() {
    let name = [b'N'; 200];
    let value = [b'v'; 1000];
    let r = fastcgi_request(&[(&name[..], &value[..])]);
    let body = &r[24..];
    assert_eq!(&body[..8], b"\x80\x00\x00\xc8\x80\x00\x03\xe8");
    assert_eq!(&body[8..208], &name[..]);
    let len = 8 + 200 + 1000;
    assert_eq!(u16::from_be_bytes([r[20], r[21]]) as usize, len);
    assert_eq!(r[22] as usize, (8 - len % 8) % 8);
    // A stream longer than one record is split into several.
    let big = vec![b'x'; 100_000];
    let r = fastcgi_request(&[(&b"BIG"[..], &big[..])]);
    let mut at = 16;
    let mut records = 0;
    let mut content = 0;
    while r[at + 1] == FCGI_PARAMS {
        let len = usize::from(u16::from_be_bytes([r[at + 4], r[at + 5]]));
        content += len;
        records += 1;
        at += 8 + len + usize::from(r[at + 6]);
        if len == 0 {
            break;
        }
    }
    assert_eq!(records, 3);
    assert_eq!(content, 1 + 4 + 3 + 100_000);
    assert_eq!(&r[at..], b"\x01\x05\x00\x01\x00\x00\x00\x00");
}

#[test]
fn tcp() {
    let mut p = probe("tcp");
    assert!(p.wants_more());
    assert_eq!(p.connected(), Progress::Pass);
    assert!(!p.wants_more() && !p.reusable());
    let mut p = probe("tcp");
    assert_eq!(p.feed(b"x"), Progress::Pass);
    let mut p = probe("tcp");
    assert_eq!(p.eof(), fail("connection closed"));
    assert_eq!(p.connected(), fail("connection closed"));
}

#[test]
fn http_status_line() {
    let cases: [(&[u8], bool); 14] = [
        (b"HTTP/1.1 200 OK\r\n", true),
        (b"HTTP/1.0 302 Found\r\n\r\n", true),
        (b"HTTP/1.1 200\r\n", true),
        (b"HTTP/1.1 204\n", true),
        (b"HTTP/1.1   200 OK\r\n", true),
        (b"HTTP/10.25 299 x\n", true),
        (b"HTTP/1.1 200.1 IIS\r\n", true),
        (b"HTTP/1.1 404 Not Found\r\n", false),
        (b"HTTP/1.1 500 Oops\r\n", false),
        (b"HTTP/1.1 100 Continue\r\n", false),
        (b"HTTP/1.1 600 x\r\n", false),
        (b"HTTP/0.9 200 OK\r\n", false),
        (b"http/1.1 200 OK\r\n", false),
        (b"HTTP/1.1 2000\r\n", false),
    ];
    for (answer, pass) in cases {
        for step in [1, 3, answer.len()] {
            let mut p = probe("http");
            let r = run(&mut p, answer, step);
            assert_eq!(
                r == Progress::Pass,
                pass,
                "{:?} {step}",
                answer.escape_ascii()
            );
            assert_ne!(r, Progress::NeedMore);
            assert!(!p.wants_more());
            assert!(!p.reusable());
        }
    }
    let mut p = probe("http");
    assert_eq!(
        run(&mut p, b"HTTP/1.1 503 Busy\r\n", 100),
        fail("unexpected status 503")
    );
    let mut p = probe("http");
    assert_eq!(
        run(&mut p, b"SSH-2.0-OpenSSH\r\n", 100),
        fail("bad status line")
    );
    // The rest of the answer does not change the verdict.
    assert_eq!(p.feed(b"HTTP/1.1 200 OK\r\n"), fail("bad status line"));
}

#[test]
fn http_close_before_the_status_line_ends_fails() {
    for answer in [
        &b""[..],
        b"HTTP/1.1 200",
        b"HTTP/1.1 200 OK",
        b"HTTP/1.1 200 OK\r",
    ] {
        let mut p = probe("http");
        assert_eq!(p.feed(answer), Progress::NeedMore);
        assert!(p.wants_more());
        assert_eq!(
            p.eof(),
            fail("connection closed before a complete status line")
        );
        assert!(!p.wants_more());
    }
}

#[test]
fn http_expect_masks() {
    let s = spec(&["type=http"], b"", &["http_4xx"], 1);
    let mut p = Probe::new(&s);
    assert_eq!(p.feed(b"HTTP/1.1 404 Not Found\r\n"), Progress::Pass);
    // C never reuses a connection after a 4xx or 5xx.
    assert!(!p.reusable());
    let mut p = Probe::new(&s);
    assert_eq!(
        p.feed(b"HTTP/1.1 200 OK\r\n"),
        fail("unexpected status 200")
    );
    let s = spec(&["type=http"], b"", &["http_1xx"], 1);
    let mut p = Probe::new(&s);
    assert_eq!(p.feed(b"HTTP/1.1 101 Switching\r\n"), Progress::Pass);
}

#[test]
fn http_response_is_bounded() {
    let mut p = probe("http");
    let mut answer = b"HTTP/1.1 200 ".to_vec();
    answer.resize(MAX_RESPONSE, b'x');
    assert_eq!(p.feed(&answer), Progress::NeedMore);
    assert_eq!(
        p.feed(b"x"),
        fail("no verdict in the first 65536 bytes of the response")
    );
    // A verdict within the bound stands even if more came in the read.
    let mut p = probe("http");
    let mut answer = b"HTTP/1.1 200 OK\r\n".to_vec();
    answer.resize(MAX_RESPONSE * 2, b'x');
    assert_eq!(p.feed(&answer), Progress::Pass);
}

fn keepalive(send: &[u8]) -> Probe {
    Probe::new(&spec(&["type=http"], send, &[], 10))
}

const GET11: &[u8] = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n";

/// Feeds the whole answer in pieces; whether the connection is reusable.
fn reusable_after(send: &[u8], answer: &[u8], step: usize) -> bool {
    let mut p = keepalive(send);
    let mut verdict = Progress::NeedMore;
    for piece in answer.chunks(step) {
        let r = p.feed(piece);
        if verdict == Progress::NeedMore {
            verdict = r;
        } else {
            assert_eq!(r, verdict);
        }
    }
    assert_eq!(verdict, Progress::Pass);
    if p.reusable() {
        assert!(!p.wants_more());
    }
    p.reusable()
}

#[test]
fn http_keepalive_reuse() {
    let yes: [&[u8]; 8] = [
        b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello",
        b"HTTP/1.1 200 OK\r\ncontent-length:0\r\n\r\n",
        b"HTTP/1.1 200 OK\nContent-Length: 2\n\nok",
        b"HTTP/1.1 204 No Content\r\n\r\n",
        b"HTTP/1.1 304 Not Modified\r\nContent-Length: 10\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
        b"HTTP/1.1 301 Moved\r\nTransfer-Encoding: gzip, chunked\r\n\r\na;x=1\r\n0123456789\r\n0\r\nX-T: 1\r\n\r\n",
        b"HTTP/1.0 200 OK\r\nConnection: Keep-Alive\r\nContent-Length: 1\r\n\r\nx",
    ];
    for answer in yes {
        for step in [1, 2, 7, answer.len()] {
            assert!(
                reusable_after(GET11, answer, step),
                "{:?} {step}",
                answer.escape_ascii()
            );
        }
    }
    let no: [&[u8]; 10] = [
        // The body runs to the close.
        b"HTTP/1.1 200 OK\r\n\r\nhello",
        // HTTP/1.0 without keep-alive, or Connection: close.
        b"HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 0\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nConnection: keep-alive, close\r\nContent-Length: 0\r\n\r\n",
        // Unclear or conflicting framing.
        b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello",
        b"HTTP/1.1 200 OK\r\nContent-Length: 5x\r\n\r\nhello",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\nhello",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n0\r\n\r\n",
        // A bad chunk size, bytes after the response.
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nxy",
    ];
    for answer in no {
        for step in [1, 5, answer.len()] {
            assert!(
                !reusable_after(GET11, answer, step),
                "{:?} {step}",
                answer.escape_ascii()
            );
        }
    }
}

#[test]
fn http_keepalive_partial_and_head() {
    let mut p = keepalive(GET11);
    assert_eq!(
        p.feed(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nhello"),
        Progress::Pass
    );
    assert!(p.wants_more() && !p.reusable());
    assert_eq!(p.feed(b"world"), Progress::Pass);
    assert!(!p.wants_more() && p.reusable());
    // The peer closing makes it not reusable.
    assert_eq!(p.eof(), Progress::Pass);
    assert!(!p.reusable());

    // A response to HEAD has no body, whatever Content-Length says.
    let head = b"HEAD / HTTP/1.1\r\nHost: x\r\n\r\n";
    assert!(reusable_after(
        head,
        b"HTTP/1.1 200 OK\r\nContent-Length: 1234\r\n\r\n",
        3
    ));
    // Without check_keepalive_requests nothing is drained.
    let mut p = probe("http");
    assert_eq!(
        p.feed(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"),
        Progress::Pass
    );
    assert!(!p.wants_more() && !p.reusable());
}

#[test]
fn http_drain_is_bounded() {
    let mut p = keepalive(GET11);
    let head = format!(
        "HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n",
        MAX_RESPONSE
    );
    assert_eq!(p.feed(head.as_bytes()), Progress::Pass);
    assert!(p.wants_more());
    assert_eq!(p.feed(&vec![b'x'; MAX_RESPONSE]), Progress::Pass);
    assert!(!p.wants_more() && !p.reusable());
    let mut p = keepalive(GET11);
    assert_eq!(p.feed(b"HTTP/1.1 200 OK\r\n"), Progress::Pass);
    for _ in 0..100 {
        p.feed(&[b'a'; 1024]);
    }
    assert!(!p.wants_more() && !p.reusable());
}

#[test]
fn mysql() {
    let greeting = b"\x4a\x00\x00\x00\x0a8.0.36\x00";
    for step in [1, 2, greeting.len()] {
        let mut p = probe("mysql");
        assert_eq!(run(&mut p, greeting, step), Progress::Pass);
        assert!(!p.reusable());
    }
    let mut p = probe("mysql");
    assert_eq!(p.feed(b"\x4a\x00\x00"), Progress::NeedMore);
    assert_eq!(
        p.feed(b"\x01"),
        fail("mysql greeting with packet number 1, not 0")
    );
    let mut p = probe("mysql");
    assert_eq!(p.feed(b"\x4a\x00\x00\x00"), Progress::NeedMore);
    assert_eq!(
        p.eof(),
        fail("connection closed after 4 of 5 bytes of the answer")
    );
}

#[test]
fn ajp() {
    let mut p = probe("ajp");
    assert_eq!(p.feed(b"AB\x00"), Progress::NeedMore);
    assert_eq!(p.feed(b"\x01\x09trailing"), Progress::Pass);
    let mut p = probe("ajp");
    assert_eq!(p.feed(b"AB\x00\x02"), fail("ajp answer is not a CPONG"));
    let mut p = probe("ajp");
    assert_eq!(p.feed(b"\x12"), fail("ajp answer is not a CPONG"));
    let mut p = probe("ajp");
    assert!(is_fail(&p.eof()));
}

#[test]
fn ssl_hello() {
    let mut hello = b"\x16\x03\x03\x00\x5a\x02\x00\x00\x56\x03\x03".to_vec();
    hello.resize(95, 0x42);
    for step in [1, 10, hello.len()] {
        let mut p = probe("ssl_hello");
        assert_eq!(run(&mut p, &hello, step), Progress::Pass);
    }
    // 46 bytes are not enough; 47 are.
    let mut p = probe("ssl_hello");
    assert_eq!(p.feed(&hello[..46]), Progress::NeedMore);
    assert_eq!(p.feed(&hello[46..47]), Progress::Pass);
    let mut p = probe("ssl_hello");
    assert_eq!(p.feed(&hello[..46]), Progress::NeedMore);
    assert!(is_fail(&p.eof()));
    // An alert fails at its first byte.
    let mut p = probe("ssl_hello");
    assert_eq!(
        p.feed(b"\x15\x03\x03\x00\x02\x02\x28"),
        fail("ssl answer is not a handshake record (content type 21)")
    );
    let mut p = probe("ssl_hello");
    assert_eq!(
        p.feed(b"\x16\x03\x03\x00\x5a\x0b"),
        fail("ssl handshake message 11 is not a ServerHello")
    );
}

fn fcgi(kind: u8, content: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    fcgi_record(&mut out, kind, content);
    out
}

fn fastcgi_answer(stdout: &[u8]) -> Vec<u8> {
    let mut a = fcgi(FCGI_STDOUT, stdout);
    a.extend(fcgi(FCGI_END_REQUEST, &[0; 8]));
    a
}

#[test]
fn fastcgi_any_stdout_passes_by_default() {
    let answer = fastcgi_answer(b"Status: 500 Oops\r\nContent-type: text/html\r\n\r\nbad");
    for step in [1, 3, answer.len()] {
        let mut p = probe("fastcgi");
        assert_eq!(run(&mut p, &answer, step), Progress::Pass);
        assert!(!p.reusable());
    }
}

#[test]
fn fastcgi_status_with_a_mask() {
    let s = spec(&["type=fastcgi"], b"", &["http_2xx", "http_3xx"], 1);
    let cases: [(&[u8], Progress); 9] = [
        (b"Status: 200 OK\r\n\r\n", Progress::Pass),
        (
            b"X-Powered-By: PHP\r\nstatus:302 Found\r\n\r\n",
            Progress::Pass,
        ),
        (
            b"Content-type: text/html\r\n\r\nStatus: 500\r\n",
            Progress::Pass,
        ),
        (b"Content-type: text/html\r\n", Progress::Pass),
        (
            b"Status: 503 Busy\r\n\r\n",
            fail("unexpected FastCGI status 503"),
        ),
        (b"Status: 404\n\n", fail("unexpected FastCGI status 404")),
        (b"Status: 20\r\n\r\n", fail("bad FastCGI Status header")),
        (b"Status: 099\r\n\r\n", fail("bad FastCGI Status header")),
        (b"Status: OK\r\n\r\n", fail("bad FastCGI Status header")),
    ];
    for (stdout, want) in cases {
        let answer = fastcgi_answer(stdout);
        for step in [1, 4, answer.len()] {
            let mut p = Probe::new(&s);
            assert_eq!(
                run(&mut p, &answer, step),
                want,
                "{:?}",
                stdout.escape_ascii()
            );
        }
    }
    // A record that ends inside the Status line: its digits decide.
    let mut p = Probe::new(&s);
    assert_eq!(
        p.feed(&fcgi(FCGI_STDOUT, b"Status: 500")),
        fail("unexpected FastCGI status 500")
    );
    let mut p = Probe::new(&s);
    assert_eq!(p.feed(&fcgi(FCGI_STDOUT, b"Status: 5")), Progress::Pass);
}

#[test]
fn fastcgi_failures() {
    let cases: [(Vec<u8>, &str); 6] = [
        (fcgi(FCGI_STDERR, b"PHP Warning"), "FastCGI STDERR record"),
        (fcgi(FCGI_STDOUT, b""), "prematurely closed FastCGI stdout"),
        (
            fcgi(FCGI_END_REQUEST, &[0; 8]),
            "FastCGI END_REQUEST before STDOUT",
        ),
        (fcgi(FCGI_PARAMS, b""), "invalid FastCGI record type 4"),
        (
            b"\x02\x06\x00\x01\x00\x01\x00\x00x".to_vec(),
            "unsupported FastCGI protocol version 2",
        ),
        (
            b"\x01\x06\x00\x02\x00\x01\x00\x00x".to_vec(),
            "unexpected FastCGI request id 2",
        ),
    ];
    for (answer, reason) in cases {
        let mut p = probe("fastcgi");
        assert_eq!(run(&mut p, &answer, 1), fail(reason));
    }
    let mut p = probe("fastcgi");
    assert_eq!(p.feed(b"\x01\x06\x00"), Progress::NeedMore);
    assert_eq!(
        p.eof(),
        fail("connection closed before a FastCGI STDOUT record")
    );
}
