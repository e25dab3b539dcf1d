//! One probe, without I/O: the bytes a check type sends and the judgment
//! of what comes back, as nginx_upstream_check_module judges it.
//!
//! The nginx layer connects (to the `port=` if set), writes
//! [`Probe::request`], then hands every read to [`Probe::feed`] and the
//! peer's close to [`Probe::eof`] until the answer is [`Progress::Pass`]
//! or [`Progress::Fail`]; the `timeout=` timer, connect errors and read
//! errors are failures it decides itself.
//!
//! - `tcp` sends nothing. The layer judges it as C does: once the connect
//!   completes it peeks one byte (`recv(fd, 1, MSG_PEEK)`); one byte or
//!   `EAGAIN` is a pass ([`Probe::connected`]), 0 (closed) is a failure
//!   ([`Probe::eof`]), an error is a failure.
//! - `http` sends the `check_http_send` request; it passes when the status
//!   line is complete and its class is expected. A close before a whole
//!   status line fails.
//! - `mysql` sends nothing; the server's greeting passes when its first 5
//!   bytes are in and its packet number (byte 3) is 0.
//! - `ajp` sends a CPING; the first 5 bytes of the answer must be a CPONG.
//! - `ssl_hello` sends the C module's fixed ClientHello; the answer passes
//!   when 47 bytes are in (`sizeof(ngx_ssl_server_hello_t)` on LP64),
//!   byte 0 is a handshake record (0x16) and byte 5 a ServerHello (0x02).
//! - `fastcgi` sends BEGIN_REQUEST, the parameters and the empty PARAMS
//!   and STDIN records; the first record decides: STDOUT passes (but a
//!   `Status:` header in it must be of an expected class when
//!   `check_http_expect_alive` is set), STDERR and anything else fail.
//!
//! A probe fails early when a byte already read makes a pass impossible;
//! the verdict is the one C would reach, only sooner. At most
//! [`MAX_RESPONSE`] bytes are read before a verdict.

use std::cmp::min;

use super::conf::{CheckSpec, CheckType, Expect};

/// The most bytes read before a verdict, and the most an http probe drains
/// after its verdict to reuse the connection.
pub const MAX_RESPONSE: usize = 64 * 1024;

/// AJP13 CPING: magic 0x1234, length 1, type 10.
pub const AJP_CPING: [u8; 5] = [0x12, 0x34, 0x00, 0x01, 0x0a];
/// AJP13 CPONG: magic "AB", length 1, type 9.
pub const AJP_CPONG: [u8; 5] = [0x41, 0x42, 0x00, 0x01, 0x09];

/// The bytes of an ssl_hello answer read before judging it.
pub const SERVER_HELLO_MIN: usize = 47;
/// The bytes of a mysql greeting read before judging it.
pub const MYSQL_GREETING_MIN: usize = 5;

/// The ClientHello of `type=ssl_hello`, byte for byte the C module's:
/// a TLS 1.0 record carrying a TLS 1.2 hello, no session, 13 suites,
/// null compression, the curves and signature-algorithm extensions (no
/// SNI). The time is 0 and the random a fixed text.
pub const SSL_CLIENT_HELLO: [u8; 116] = concat_hello();

const SSL_CLIENT_HELLO_PARTS: [&[u8]; 16] = [
    b"\x16\x03\x01\x00\x6f",             // record: handshake, TLS 1.0, 111 bytes
    b"\x01\x00\x00\x6b",                 // ClientHello, 107 bytes
    b"\x03\x03",                         // client version TLS 1.2
    b"\x00\x00\x00\x00",                 // gmt_unix_time
    b"NGX_HTTP_CHECK_SSL_HELLO\n\n\n\n", // 28 random bytes
    b"\x00",                             // no session id
    b"\x00\x1a",                         // 26 bytes of cipher suites:
    b"\xc0\x2b\xc0\x2f\xcc\xa9\xcc\xa8", // ECDHE GCM, ChaCha20
    b"\xc0\x0a\xc0\x09\xc0\x13\xc0\x14", // ECDHE CBC
    b"\x00\x33\x00\x39\x00\x2f\x00\x35\x00\x0a", // DHE, RSA, 3DES
    b"\x01\x00",                         // one compression method: null
    b"\x00\x28",                         // 40 bytes of extensions:
    b"\x00\x0a\x00\x08\x00\x06",         // supported_groups, 3 curves:
    b"\x00\x17\x00\x18\x00\x19",         // secp256r1, secp384r1, secp521r1
    b"\x00\x0d\x00\x18\x00\x16",         // signature_algorithms, 11 pairs:
    b"\x04\x01\x05\x01\x06\x01\x02\x01\x04\x03\x05\x03\x06\x03\x02\x03\x05\x02\x04\x02\x02\x02",
];

const fn concat_hello() -> [u8; 116] {
    let mut out = [0u8; 116];
    let mut n = 0;
    let mut p = 0;
    while p < SSL_CLIENT_HELLO_PARTS.len() {
        let part = SSL_CLIENT_HELLO_PARTS[p];
        let mut i = 0;
        while i < part.len() {
            out[n] = part[i];
            n += 1;
            i += 1;
        }
        p += 1;
    }
    assert!(n == out.len());
    out
}

const FCGI_VERSION: u8 = 1;
const FCGI_BEGIN_REQUEST: u8 = 1;
const FCGI_END_REQUEST: u8 = 3;
const FCGI_PARAMS: u8 = 4;
const FCGI_STDIN: u8 = 5;
const FCGI_STDOUT: u8 = 6;
const FCGI_STDERR: u8 = 7;
const FCGI_RESPONDER: u8 = 1;
/// The request id of every probe (one request per connection).
const FCGI_REQUEST_ID: u16 = 1;
/// The most content of one record; longer parameter streams are split.
const FCGI_MAX_CONTENT: usize = 0xffff;

/// Appends one FastCGI record, its content padded to a multiple of 8.
fn fcgi_record(out: &mut Vec<u8>, kind: u8, content: &[u8]) {
    let len = content.len();
    debug_assert!(len <= FCGI_MAX_CONTENT);
    let padding = (8 - len % 8) % 8;
    out.push(FCGI_VERSION);
    out.push(kind);
    out.extend_from_slice(&FCGI_REQUEST_ID.to_be_bytes());
    out.extend_from_slice(&(len as u16).to_be_bytes());
    out.push(padding as u8);
    out.push(0);
    out.extend_from_slice(content);
    out.resize(out.len() + padding, 0);
}

/// FastCGI name-value length: one byte up to 127, else four with the top
/// bit set.
fn fcgi_length(out: &mut Vec<u8>, len: usize) {
    if len <= 127 {
        out.push(len as u8);
    } else {
        out.extend_from_slice(&((len as u32 & 0x7fff_ffff) | 0x8000_0000).to_be_bytes());
    }
}

/// The `type=fastcgi` request: BEGIN_REQUEST (responder, no keep-conn:
/// the probe's connection is never reused), the parameters in PARAMS
/// records, the empty PARAMS and the empty STDIN that end the request.
pub fn fastcgi_request<K: AsRef<[u8]>, V: AsRef<[u8]>>(params: &[(K, V)]) -> Vec<u8> {
    let mut body = Vec::new();
    for (k, v) in params {
        let (k, v) = (k.as_ref(), v.as_ref());
        fcgi_length(&mut body, k.len());
        fcgi_length(&mut body, v.len());
        body.extend_from_slice(k);
        body.extend_from_slice(v);
    }
    let mut out = Vec::with_capacity(body.len() + 48);
    fcgi_record(
        &mut out,
        FCGI_BEGIN_REQUEST,
        &[0, FCGI_RESPONDER, 0, 0, 0, 0, 0, 0],
    );
    for chunk in body.chunks(FCGI_MAX_CONTENT - 7) {
        fcgi_record(&mut out, FCGI_PARAMS, chunk);
    }
    fcgi_record(&mut out, FCGI_PARAMS, &[]);
    fcgi_record(&mut out, FCGI_STDIN, &[]);
    out
}

/// The bytes a probe of this type sends: `http_send` for http, the
/// encoded parameters for fastcgi, the fixed packets of ajp and
/// ssl_hello, nothing for tcp and mysql.
pub fn request_bytes<K: AsRef<[u8]>, V: AsRef<[u8]>>(
    kind: CheckType,
    http_send: &[u8],
    fastcgi_params: &[(K, V)],
) -> Vec<u8> {
    match kind {
        CheckType::Tcp | CheckType::Mysql => Vec::new(),
        CheckType::Http => http_send.to_vec(),
        CheckType::SslHello => SSL_CLIENT_HELLO.to_vec(),
        CheckType::Ajp => AJP_CPING.to_vec(),
        CheckType::Fastcgi => fastcgi_request(fastcgi_params),
    }
}

/// Where a probe stands.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Progress {
    /// Keep reading.
    NeedMore,
    Pass,
    /// Failed, and why (for the error log).
    Fail(String),
}

fn fail(reason: impl Into<String>) -> Progress {
    Progress::Fail(reason.into())
}

/// One probe on one connection.
#[derive(Debug)]
pub struct Probe {
    kind: CheckType,
    request: Vec<u8>,
    expect: Expect,
    /// Bytes of the answer read before the verdict.
    read: usize,
    verdict: Option<Progress>,
    closed: bool,
    parser: Parser,
}

#[derive(Debug)]
enum Parser {
    Tcp,
    /// mysql, ajp, ssl_hello: a verdict on the first bytes.
    Prefix(Vec<u8>),
    Http(Box<Http>),
    Fastcgi(Fastcgi),
}

impl Probe {
    pub fn new(spec: &CheckSpec) -> Probe {
        let kind = spec.conf.kind;
        let parser = match kind {
            CheckType::Tcp => Parser::Tcp,
            CheckType::Mysql | CheckType::Ajp | CheckType::SslHello => {
                Parser::Prefix(Vec::with_capacity(SERVER_HELLO_MIN))
            }
            CheckType::Http => Parser::Http(Box::new(Http::new(
                spec.request.starts_with(b"HEAD "),
                spec.keepalive(),
            ))),
            CheckType::Fastcgi => Parser::Fastcgi(Fastcgi::default()),
        };
        Probe {
            kind,
            request: spec.request.clone(),
            expect: spec.expect,
            read: 0,
            verdict: None,
            closed: false,
            parser,
        }
    }

    /// The bytes to write once connected (empty: write nothing).
    pub fn request(&self) -> &[u8] {
        &self.request
    }

    /// The verdict, once there is one.
    pub fn verdict(&self) -> Option<&Progress> {
        self.verdict.as_ref()
    }

    fn decide(&mut self, p: Progress) -> Progress {
        if p != Progress::NeedMore {
            self.verdict = Some(p.clone());
        }
        p
    }

    /// The connect completed and the one-byte peek found data or `EAGAIN`:
    /// a pass for tcp. The other types still need their answer.
    pub fn connected(&mut self) -> Progress {
        if let Some(v) = &self.verdict {
            return v.clone();
        }
        match self.parser {
            Parser::Tcp => self.decide(Progress::Pass),
            _ => Progress::NeedMore,
        }
    }

    /// Bytes read from the peer. After the verdict they only complete an
    /// http response for reuse, and the verdict is returned again.
    pub fn feed(&mut self, data: &[u8]) -> Progress {
        if let Some(v) = &self.verdict {
            let v = v.clone();
            if let Parser::Http(h) = &mut self.parser {
                h.drain(data);
            }
            return v;
        }
        if data.is_empty() {
            return Progress::NeedMore;
        }
        let room = MAX_RESPONSE - self.read;
        let (now, over) = data.split_at(min(room, data.len()));
        self.read += now.len();
        let expect = self.expect;
        let p = match &mut self.parser {
            Parser::Tcp => Progress::Pass,
            Parser::Prefix(got) => judge_prefix(self.kind, got, now),
            Parser::Http(h) => h.feed(now, expect),
            Parser::Fastcgi(f) => f.feed(now, expect),
        };
        if p == Progress::NeedMore && !over.is_empty() {
            return self.decide(fail(format!(
                "no verdict in the first {MAX_RESPONSE} bytes of the response"
            )));
        }
        if let Parser::Http(h) = &mut self.parser {
            if p == Progress::Pass {
                h.drain(over);
            }
        }
        self.decide(p)
    }

    /// The peer closed the connection (a read returned 0).
    pub fn eof(&mut self) -> Progress {
        self.closed = true;
        if let Some(v) = &self.verdict {
            return v.clone();
        }
        let reason = match &self.parser {
            Parser::Tcp => "connection closed".to_string(),
            Parser::Prefix(got) => format!(
                "connection closed after {} of {} bytes of the answer",
                got.len(),
                prefix_len(self.kind)
            ),
            Parser::Http(_) => "connection closed before a complete status line".to_string(),
            Parser::Fastcgi(_) => "connection closed before a FastCGI STDOUT record".to_string(),
        };
        self.decide(fail(reason))
    }

    /// Whether the driver should keep reading: no verdict yet, or an http
    /// pass whose response is being drained for reuse.
    pub fn wants_more(&self) -> bool {
        if self.closed {
            return false;
        }
        match (&self.verdict, &self.parser) {
            (None, _) => true,
            (Some(Progress::Pass), Parser::Http(h)) => h.draining(),
            _ => false,
        }
    }

    /// Whether the connection may carry the next probe (the driver also
    /// counts `check_keepalive_requests`). Only for http with keepalive
    /// on, after a pass with a 2xx or 3xx (C closes after any other
    /// status), when the whole response was read and nothing more: the
    /// head, then no body (a HEAD request, 204, 304), or exactly
    /// Content-Length bytes, or the chunks through the last chunk and the
    /// trailers; and the server keeps the connection (HTTP/1.1 without
    /// `Connection: close`, or HTTP/1.0 with `Connection: keep-alive`).
    pub fn reusable(&self) -> bool {
        match (&self.verdict, &self.parser) {
            (Some(Progress::Pass), Parser::Http(h)) => !self.closed && h.reusable(),
            _ => false,
        }
    }
}

fn prefix_len(kind: CheckType) -> usize {
    match kind {
        CheckType::Mysql => MYSQL_GREETING_MIN,
        CheckType::Ajp => AJP_CPONG.len(),
        _ => SERVER_HELLO_MIN,
    }
}

/// mysql, ajp and ssl_hello: judge the first bytes, failing on the first
/// one that rules a pass out.
fn judge_prefix(kind: CheckType, got: &mut Vec<u8>, data: &[u8]) -> Progress {
    let want = prefix_len(kind);
    let take = min(want - got.len(), data.len());
    got.extend_from_slice(&data[..take]);
    let g = &got[..];
    match kind {
        CheckType::Mysql if g.len() > 3 && g[3] != 0 => {
            fail(format!("mysql greeting with packet number {}, not 0", g[3]))
        }
        CheckType::Ajp if AJP_CPONG[..g.len()] != *g => fail("ajp answer is not a CPONG"),
        CheckType::SslHello if g.first().is_some_and(|&t| t != 0x16) => fail(format!(
            "ssl answer is not a handshake record (content type {})",
            g[0]
        )),
        CheckType::SslHello if g.len() > 5 && g[5] != 0x02 => fail(format!(
            "ssl handshake message {} is not a ServerHello",
            g[5]
        )),
        _ if g.len() == want => Progress::Pass,
        _ => Progress::NeedMore,
    }
}

/// The C module's status-line grammar (`HTTP/` digits `.` digits, spaces,
/// three digits, then space, `.`, CR or LF).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Line {
    Start,
    H,
    Ht,
    Htt,
    Http,
    FirstMajor,
    Major,
    FirstMinor,
    Minor,
    Status,
    AfterStatus,
    Text,
    AlmostDone,
}

/// After the status line: reading the rest for reuse.
#[derive(Debug, PartialEq, Eq)]
enum Phase {
    StatusLine,
    Headers,
    Length(u64),
    ChunkSize,
    ChunkData(u64),
    ChunkEnd,
    Trailers,
    /// The whole response was read.
    Done,
    /// Stopped reading: the connection cannot be reused.
    Abandoned,
}

#[derive(Debug)]
struct Http {
    head: bool,
    keepalive: bool,
    line: Line,
    major: u32,
    minor: u32,
    code: u16,
    digits: u8,
    phase: Phase,
    /// The header or chunk line being read.
    buf: Vec<u8>,
    /// Bytes drained after the verdict.
    drained: usize,
    content_length: Option<u64>,
    chunked: bool,
    bad_framing: bool,
    close: bool,
    keep_alive: bool,
    /// Bytes came after the end of the response.
    extra: bool,
}

impl Http {
    fn new(head: bool, keepalive: bool) -> Http {
        Http {
            head,
            keepalive,
            line: Line::Start,
            major: 0,
            minor: 0,
            code: 0,
            digits: 0,
            phase: Phase::StatusLine,
            buf: Vec::new(),
            drained: 0,
            content_length: None,
            chunked: false,
            bad_framing: false,
            close: false,
            keep_alive: false,
            extra: false,
        }
    }

    /// One byte of the status line: `Ok(true)` when it ended.
    fn status_byte(&mut self, c: u8) -> Result<bool, ()> {
        let digit = c.is_ascii_digit();
        self.line = match (self.line, c) {
            (Line::Start, b'H') => Line::H,
            (Line::H, b'T') => Line::Ht,
            (Line::Ht, b'T') => Line::Htt,
            (Line::Htt, b'P') => Line::Http,
            (Line::Http, b'/') => Line::FirstMajor,
            (Line::FirstMajor, b'1'..=b'9') | (Line::Major, b'0'..=b'9') => {
                self.major = self
                    .major
                    .saturating_mul(10)
                    .saturating_add(u32::from(c - b'0'));
                Line::Major
            }
            (Line::Major, b'.') => Line::FirstMinor,
            (Line::FirstMinor | Line::Minor, b'0'..=b'9') => {
                self.minor = self
                    .minor
                    .saturating_mul(10)
                    .saturating_add(u32::from(c - b'0'));
                Line::Minor
            }
            (Line::Minor, b' ') => Line::Status,
            (Line::Status, b' ') => Line::Status,
            (Line::Status, _) if digit => {
                self.code = self.code * 10 + u16::from(c - b'0');
                self.digits += 1;
                if self.digits == 3 {
                    Line::AfterStatus
                } else {
                    Line::Status
                }
            }
            (Line::AfterStatus, b' ' | b'.') => Line::Text,
            (Line::AfterStatus | Line::Text, b'\r') => Line::AlmostDone,
            (Line::AfterStatus | Line::Text | Line::AlmostDone, b'\n') => return Ok(true),
            (Line::Text, _) => Line::Text,
            _ => return Err(()),
        };
        Ok(false)
    }

    fn feed(&mut self, data: &[u8], expect: Expect) -> Progress {
        for (i, &c) in data.iter().enumerate() {
            match self.status_byte(c) {
                Ok(false) => continue,
                Err(()) => {
                    self.phase = Phase::Abandoned;
                    return fail("bad status line");
                }
                Ok(true) => {}
            }
            let code = self.code;
            if !expect.allows(code) {
                self.phase = Phase::Abandoned;
                return fail(format!("unexpected status {code}"));
            }
            self.phase = if self.keepalive && (200..400).contains(&code) {
                Phase::Headers
            } else {
                Phase::Abandoned
            };
            self.drain(&data[i + 1..]);
            return Progress::Pass;
        }
        Progress::NeedMore
    }

    fn draining(&self) -> bool {
        !matches!(self.phase, Phase::Done | Phase::Abandoned)
    }

    fn reusable(&self) -> bool {
        let persistent = if (self.major, self.minor) >= (1, 1) {
            !self.close
        } else {
            self.keep_alive && !self.close
        };
        self.phase == Phase::Done && !self.extra && persistent
    }

    /// Reads the rest of the response after a pass.
    fn drain(&mut self, mut data: &[u8]) {
        if self.phase == Phase::Done && !data.is_empty() {
            self.extra = true;
        }
        if !self.draining() || data.is_empty() {
            return;
        }
        self.drained += data.len();
        if self.drained > MAX_RESPONSE {
            self.phase = Phase::Abandoned;
            return;
        }
        while !data.is_empty() && self.draining() {
            data = match self.phase {
                Phase::Length(n) | Phase::ChunkData(n) => {
                    let take = min(n, data.len() as u64) as usize;
                    let left = n - take as u64;
                    self.phase = match (&self.phase, left) {
                        (Phase::Length(_), 0) => Phase::Done,
                        (Phase::Length(_), _) => Phase::Length(left),
                        (_, 0) => Phase::ChunkEnd,
                        _ => Phase::ChunkData(left),
                    };
                    &data[take..]
                }
                _ => match data.iter().position(|&c| c == b'\n') {
                    Some(at) => {
                        self.buf.extend_from_slice(&data[..at]);
                        let mut line = std::mem::take(&mut self.buf);
                        if line.last() == Some(&b'\r') {
                            line.pop();
                        }
                        self.line_done(&line);
                        &data[at + 1..]
                    }
                    None => {
                        self.buf.extend_from_slice(data);
                        &[]
                    }
                },
            };
        }
        if self.phase == Phase::Done && !data.is_empty() {
            self.extra = true;
        }
    }

    /// A complete header, chunk-size, chunk-end or trailer line.
    fn line_done(&mut self, line: &[u8]) {
        self.phase = match self.phase {
            Phase::Headers if line.is_empty() => self.body_framing(),
            Phase::Headers => {
                self.header(line);
                Phase::Headers
            }
            Phase::ChunkSize => match chunk_size(line) {
                Some(0) => Phase::Trailers,
                Some(n) => Phase::ChunkData(n),
                None => Phase::Abandoned,
            },
            Phase::ChunkEnd if line.is_empty() => Phase::ChunkSize,
            Phase::Trailers if line.is_empty() => Phase::Done,
            Phase::Trailers => Phase::Trailers,
            _ => Phase::Abandoned,
        };
    }

    fn header(&mut self, line: &[u8]) {
        let Some(colon) = line.iter().position(|&c| c == b':') else {
            return;
        };
        let name = &line[..colon];
        let value = line[colon + 1..].trim_ascii();
        if name.eq_ignore_ascii_case(b"content-length") {
            let n = std::str::from_utf8(value)
                .ok()
                .filter(|v| !v.is_empty() && v.bytes().all(|c| c.is_ascii_digit()))
                .and_then(|v| v.parse::<u64>().ok());
            match (n, self.content_length) {
                (Some(n), None) => self.content_length = Some(n),
                (Some(n), Some(m)) if n == m => {}
                _ => self.bad_framing = true,
            }
        } else if name.eq_ignore_ascii_case(b"transfer-encoding") {
            let last = value.rsplit(|&c| c == b',').next().unwrap_or_default();
            self.chunked = last.trim_ascii().eq_ignore_ascii_case(b"chunked");
            if !self.chunked {
                self.bad_framing = true;
            }
        } else if name.eq_ignore_ascii_case(b"connection") {
            for token in value.split(|&c| c == b',') {
                let token = token.trim_ascii();
                self.close |= token.eq_ignore_ascii_case(b"close");
                self.keep_alive |= token.eq_ignore_ascii_case(b"keep-alive");
            }
        }
    }

    /// At the end of the head: where the body ends, if it can be known.
    fn body_framing(&self) -> Phase {
        if self.head || self.code == 204 || self.code == 304 {
            return Phase::Done;
        }
        if self.bad_framing || (self.chunked && self.content_length.is_some()) {
            return Phase::Abandoned;
        }
        match (self.chunked, self.content_length) {
            (true, _) => Phase::ChunkSize,
            (false, Some(0)) => Phase::Done,
            (false, Some(n)) => Phase::Length(n),
            // The body runs to the close.
            (false, None) => Phase::Abandoned,
        }
    }
}

/// A chunk-size line: hex digits, then optional extensions after `;`.
fn chunk_size(line: &[u8]) -> Option<u64> {
    let end = line.iter().position(|&c| c == b';').unwrap_or(line.len());
    let hex = line[..end].trim_ascii();
    if hex.is_empty() || hex.len() > 15 || !hex.iter().all(u8::is_ascii_hexdigit) {
        return None;
    }
    u64::from_str_radix(std::str::from_utf8(hex).ok()?, 16).ok()
}

/// The first FastCGI record, and the CGI headers of a STDOUT one.
#[derive(Debug, Default)]
struct Fastcgi {
    header: Vec<u8>,
    /// STDOUT content still to come.
    content_left: usize,
    /// The CGI header line being read.
    line: Vec<u8>,
}

impl Fastcgi {
    fn feed(&mut self, mut data: &[u8], expect: Expect) -> Progress {
        if self.header.len() < 8 {
            let take = min(8 - self.header.len(), data.len());
            self.header.extend_from_slice(&data[..take]);
            data = &data[take..];
            if self.header.len() < 8 {
                return Progress::NeedMore;
            }
            let h = &self.header;
            let id = u16::from_be_bytes([h[2], h[3]]);
            let len = usize::from(u16::from_be_bytes([h[4], h[5]]));
            match h[1] {
                _ if h[0] != FCGI_VERSION => {
                    return fail(format!("unsupported FastCGI protocol version {}", h[0]))
                }
                FCGI_STDOUT | FCGI_STDERR | FCGI_END_REQUEST if id != FCGI_REQUEST_ID => {
                    return fail(format!("unexpected FastCGI request id {id}"))
                }
                FCGI_STDOUT if len == 0 => return fail("prematurely closed FastCGI stdout"),
                FCGI_STDOUT if expect.is_empty() => return Progress::Pass,
                FCGI_STDOUT => self.content_left = len,
                FCGI_STDERR => return fail("FastCGI STDERR record"),
                FCGI_END_REQUEST => return fail("FastCGI END_REQUEST before STDOUT"),
                t => return fail(format!("invalid FastCGI record type {t}")),
            }
        }
        let data = &data[..min(self.content_left, data.len())];
        self.content_left -= data.len();
        for &c in data {
            if c != b'\n' {
                self.line.push(c);
                continue;
            }
            let mut line = std::mem::take(&mut self.line);
            if line.last() == Some(&b'\r') {
                line.pop();
            }
            if line.is_empty() {
                // The end of the headers, without Status.
                return Progress::Pass;
            }
            if let Some(p) = judge_cgi_status(&line, true, expect) {
                return p;
            }
        }
        if self.content_left > 0 {
            return Progress::NeedMore;
        }
        // The record ended inside the headers: as in C, judge a Status
        // line that is there, else pass.
        judge_cgi_status(&self.line, false, expect).unwrap_or(Progress::Pass)
    }
}

/// A CGI `Status:` header line judged (`None`: another header). Its value
/// starts with three digits, the first not 0; `complete` is false for a
/// line cut by the end of the record, where fewer digits pass as in C.
fn judge_cgi_status(line: &[u8], complete: bool, expect: Expect) -> Option<Progress> {
    let colon = line.iter().position(|&c| c == b':')?;
    if !line[..colon].eq_ignore_ascii_case(b"status") {
        return None;
    }
    let value = &line[colon + 1..];
    let value = &value[value.iter().take_while(|&&c| c == b' ').count()..];
    let digits = value
        .iter()
        .take(3)
        .take_while(|c| c.is_ascii_digit())
        .count();
    let well_formed = value.first().is_some_and(|&c| c != b'0');
    if digits == 3 && well_formed {
        let code = value[..3]
            .iter()
            .fold(0u16, |n, &c| n * 10 + u16::from(c - b'0'));
        return Some(if expect.allows(code) {
            Progress::Pass
        } else {
            fail(format!("unexpected FastCGI status {code}"))
        });
    }
    if !complete && digits == value.len() && (digits == 0 || well_formed) {
        return Some(Progress::Pass);
    }
    Some(fail("bad FastCGI Status header"))
}

#[cfg(test)]
mod tests;
