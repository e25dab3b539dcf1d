//! HTTP/1.1 for the registry client, without I/O: the request bytes, and an
//! incremental response parser fed with whatever the socket gave.
//!
//! Success is decided by the status code; bodies are framed by
//! `Content-Length`, chunked coding or the end of the connection; the buffered
//! body is capped. Nothing here panics on any input.

use std::fmt;

/// The head (status line and headers) may not exceed this.
const MAX_HEAD: usize = 64 * 1024;

/// Builds a request: `Host`, `Connection: close`, `User-Agent`, `Accept`,
/// the extra headers, then `Content-Length` for a body (or for POST and PUT).
pub fn build_request(
    method: &str,
    host: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Vec<u8> {
    let mut head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\
         User-Agent: nginx-upsync\r\nAccept: application/json\r\n"
    );
    for (name, value) in headers {
        head.push_str(name);
        head.push_str(": ");
        head.push_str(value);
        head.push_str("\r\n");
    }
    if !body.is_empty() || method == "POST" || method == "PUT" {
        head.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    head.push_str("\r\n");
    let mut out = head.into_bytes();
    out.extend_from_slice(body);
    out
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ParseError {
    HeadTooLarge,
    BodyTooLarge { limit: usize },
    Malformed(&'static str),
    Truncated,
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::HeadTooLarge => write!(f, "response head is larger than {MAX_HEAD} bytes"),
            Self::BodyTooLarge { limit } => {
                write!(f, "response body is larger than {limit} bytes")
            }
            Self::Malformed(what) => write!(f, "malformed {what}"),
            Self::Truncated => f.write_str("connection closed before the response was complete"),
        }
    }
}

impl std::error::Error for ParseError {}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Head,
    /// `Content-Length` bytes still to come.
    Length(u64),
    /// Waiting for a chunk-size line.
    ChunkSize,
    /// Chunk data bytes still to come.
    ChunkData(u64),
    /// The CRLF after chunk data.
    ChunkEnd,
    /// Trailer lines after the last chunk.
    Trailers,
    /// Until the connection closes.
    UntilClose,
    Complete,
}

/// An incremental HTTP/1.x response parser.
pub struct ResponseParser {
    max_body: usize,
    head_request: bool,
    state: State,
    /// Bytes not parsed yet (an incomplete line).
    pending: Vec<u8>,
    /// Bytes of head lines parsed so far, interim (1xx) heads included.
    head_len: usize,
    status: Option<u16>,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl ResponseParser {
    pub fn new(max_body: usize, head_request: bool) -> Self {
        ResponseParser {
            max_body,
            head_request,
            state: State::Head,
            pending: Vec::new(),
            head_len: 0,
            status: None,
            headers: Vec::new(),
            body: Vec::new(),
        }
    }

    /// Feeds received bytes; `Ok(true)` once the response is complete.
    pub fn feed(&mut self, data: &[u8]) -> Result<bool, ParseError> {
        if self.state == State::Complete {
            return Ok(true);
        }
        self.pending.extend_from_slice(data);
        let mut pos = 0;
        let result = self.run(&mut pos);
        self.pending.drain(..pos.min(self.pending.len()));
        result?;
        if self.state == State::Head && self.pending.len() > MAX_HEAD {
            return Err(ParseError::HeadTooLarge);
        }
        Ok(self.state == State::Complete)
    }

    /// The connection ended.
    pub fn finish(&mut self) -> Result<(), ParseError> {
        match self.state {
            State::Complete => Ok(()),
            State::UntilClose => {
                self.state = State::Complete;
                Ok(())
            }
            _ => Err(ParseError::Truncated),
        }
    }

    pub fn is_complete(&self) -> bool {
        self.state == State::Complete
    }

    pub fn headers_done(&self) -> bool {
        self.state != State::Head
    }

    pub fn status(&self) -> Option<u16> {
        if self.headers_done() {
            self.status
        } else {
            None
        }
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn body(&self) -> &[u8] {
        &self.body
    }

    pub fn take_body(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.body)
    }

    /// Takes one line (without its CRLF or LF) from `pending` at `pos`.
    fn line(&self, pos: &mut usize) -> Option<Vec<u8>> {
        let rest = self.pending.get(*pos..)?;
        let end = rest.iter().position(|&b| b == b'\n')?;
        let mut line = &rest[..end];
        if let Some(stripped) = line.strip_suffix(b"\r") {
            line = stripped;
        }
        *pos += end + 1;
        Some(line.to_vec())
    }

    fn push_body(&mut self, data: &[u8]) -> Result<(), ParseError> {
        match self.body.len().checked_add(data.len()) {
            Some(n) if n <= self.max_body => {
                self.body.extend_from_slice(data);
                Ok(())
            }
            _ => Err(ParseError::BodyTooLarge {
                limit: self.max_body,
            }),
        }
    }

    fn run(&mut self, pos: &mut usize) -> Result<(), ParseError> {
        loop {
            let available = self.pending.len().saturating_sub(*pos);
            match self.state {
                State::Complete => return Ok(()),
                State::Head => {
                    let Some(line) = self.line(pos) else {
                        return Ok(());
                    };
                    // Every head line counts, complete ones too: a head
                    // that never ends is refused, not kept.
                    self.head_len += line.len() + 2;
                    if self.head_len > MAX_HEAD {
                        return Err(ParseError::HeadTooLarge);
                    }
                    self.head_line(&line)?;
                }
                State::Length(0) => self.state = State::Complete,
                State::Length(left) | State::ChunkData(left) => {
                    if available == 0 {
                        return Ok(());
                    }
                    let take = usize::try_from(left).unwrap_or(usize::MAX).min(available);
                    let chunk = self.pending[*pos..*pos + take].to_vec();
                    self.push_body(&chunk)?;
                    *pos += take;
                    let left = left - take as u64;
                    self.state = match self.state {
                        State::Length(_) => State::Length(left),
                        _ if left == 0 => State::ChunkEnd,
                        _ => State::ChunkData(left),
                    };
                }
                State::UntilClose => {
                    let chunk = self.pending[*pos..].to_vec();
                    *pos = self.pending.len();
                    self.push_body(&chunk)?;
                    return Ok(());
                }
                State::ChunkSize => {
                    let Some(line) = self.line(pos) else {
                        return self.check_line_length(*pos);
                    };
                    let size = chunk_size(&line)?;
                    self.state = if size == 0 {
                        State::Trailers
                    } else {
                        State::ChunkData(size)
                    };
                }
                State::ChunkEnd => {
                    let Some(line) = self.line(pos) else {
                        return self.check_line_length(*pos);
                    };
                    if !line.is_empty() {
                        return Err(ParseError::Malformed("chunk end"));
                    }
                    self.state = State::ChunkSize;
                }
                State::Trailers => {
                    let Some(line) = self.line(pos) else {
                        return self.check_line_length(*pos);
                    };
                    if line.is_empty() {
                        self.state = State::Complete;
                    }
                }
            }
        }
    }

    /// A framing line (chunk size, trailer) that never ends is malformed.
    fn check_line_length(&self, pos: usize) -> Result<(), ParseError> {
        if self.pending.len().saturating_sub(pos) > 4096 {
            return Err(ParseError::Malformed("chunked framing"));
        }
        Ok(())
    }

    fn head_line(&mut self, line: &[u8]) -> Result<(), ParseError> {
        if self.status.is_none() {
            self.status = Some(status_line(line)?);
            return Ok(());
        }
        if !line.is_empty() {
            let text = std::str::from_utf8(line).map_err(|_| ParseError::Malformed("header"))?;
            let (name, value) = text
                .split_once(':')
                .ok_or(ParseError::Malformed("header"))?;
            if name.is_empty() || name.bytes().any(|b| b <= b' ' || b == 0x7f) {
                return Err(ParseError::Malformed("header"));
            }
            self.headers
                .push((name.to_string(), value.trim().to_string()));
            return Ok(());
        }
        // The end of the head.
        let status = self.status.unwrap_or(0);
        if (100..200).contains(&status) {
            // An interim response: the real one follows.
            self.status = None;
            self.headers.clear();
            return Ok(());
        }
        self.state = self.framing(status)?;
        Ok(())
    }

    fn framing(&self, status: u16) -> Result<State, ParseError> {
        if self.head_request || status == 204 || status == 304 {
            return Ok(State::Complete);
        }
        let chunked = self
            .headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case("Transfer-Encoding"))
            .flat_map(|(_, v)| v.split(','))
            .map(str::trim)
            .next_back()
            .is_some_and(|last| last.eq_ignore_ascii_case("chunked"));
        if chunked {
            return Ok(State::ChunkSize);
        }
        let mut length: Option<u64> = None;
        for (_, v) in self
            .headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case("Content-Length"))
        {
            if v.is_empty() || !v.bytes().all(|b| b.is_ascii_digit()) {
                return Err(ParseError::Malformed("content length"));
            }
            let n: u64 = v
                .parse()
                .map_err(|_| ParseError::Malformed("content length"))?;
            if length.is_some_and(|l| l != n) {
                return Err(ParseError::Malformed("content length"));
            }
            length = Some(n);
        }
        match length {
            Some(n) if n > self.max_body as u64 => Err(ParseError::BodyTooLarge {
                limit: self.max_body,
            }),
            Some(n) => Ok(State::Length(n)),
            None => Ok(State::UntilClose),
        }
    }
}

fn status_line(line: &[u8]) -> Result<u16, ParseError> {
    let bad = ParseError::Malformed("status line");
    let rest = line.strip_prefix(b"HTTP/1.").ok_or(bad.clone())?;
    match rest {
        [minor, b' ', a, b, c, tail @ ..]
            if minor.is_ascii_digit()
                && [a, b, c].iter().all(|d| d.is_ascii_digit())
                && (tail.is_empty() || tail[0] == b' ') =>
        {
            Ok(u16::from(a - b'0') * 100 + u16::from(b - b'0') * 10 + u16::from(c - b'0'))
        }
        _ => Err(bad),
    }
}

fn chunk_size(line: &[u8]) -> Result<u64, ParseError> {
    let bad = ParseError::Malformed("chunk size");
    let hex = line.split(|&b| b == b';').next().unwrap_or(&[]);
    let hex = std::str::from_utf8(hex).map_err(|_| bad.clone())?.trim();
    if hex.is_empty() || hex.len() > 15 {
        return Err(bad);
    }
    u64::from_str_radix(hex, 16).map_err(|_| bad)
}

/// The lines of a streaming body (an etcd v3 watch: one JSON message per
/// line), as they complete. Each byte is scanned once, however the stream is
/// cut, and a line longer than the limit is refused.
pub struct Lines {
    buf: Vec<u8>,
    /// `buf[..scanned]` holds no newline.
    scanned: usize,
    max_line: usize,
}

/// A streamed line exceeded [`Lines`]'s limit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LineTooLong {
    pub limit: usize,
}

impl fmt::Display for LineTooLong {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "a streamed message is larger than {} bytes", self.limit)
    }
}

impl Lines {
    pub fn new(max_line: usize) -> Self {
        Lines {
            buf: Vec::new(),
            scanned: 0,
            max_line,
        }
    }

    /// Adds received bytes; gives back the lines they completed (without
    /// their newline). On a line over the limit the buffer is dropped.
    pub fn push(&mut self, data: &[u8]) -> Result<Vec<Vec<u8>>, LineTooLong> {
        self.buf.extend_from_slice(data);
        let mut lines = Vec::new();
        let mut start = 0;
        while let Some(at) = self.buf[self.scanned..].iter().position(|&b| b == b'\n') {
            let end = self.scanned + at;
            lines.push(self.buf[start..end].to_vec());
            start = end + 1;
            self.scanned = start;
        }
        self.buf.drain(..start);
        self.scanned = self.buf.len();
        if self.buf.len() > self.max_line {
            self.clear();
            return Err(LineTooLong {
                limit: self.max_line,
            });
        }
        Ok(lines)
    }

    /// Forgets a partial line, and the memory it took.
    pub fn clear(&mut self) {
        self.buf = Vec::new();
        self.scanned = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_all(input: &[u8], max: usize) -> Result<ResponseParser, ParseError> {
        let mut p = ResponseParser::new(max, false);
        p.feed(input)?;
        Ok(p)
    }

    /// Feeds in pieces split by a deterministic LCG; also byte by byte.
    fn parse_split(input: &[u8], seed: u64) -> ResponseParser {
        let mut p = ResponseParser::new(1 << 20, false);
        let mut x = seed;
        let mut i = 0;
        while i < input.len() {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let n = if seed == 0 {
                1
            } else {
                1 + (x >> 33) as usize % 7
            };
            let end = (i + n).min(input.len());
            p.feed(&input[i..end]).unwrap();
            i = end;
        }
        p
    }

    #[test]
    fn content_length_body_and_headers() {
        let p = parse_all(
            b"HTTP/1.1 200 OK\r\nX-Consul-Index: 42\r\nContent-Length: 5\r\n\r\nhello",
            100,
        )
        .unwrap();
        assert!(p.is_complete());
        assert_eq!(p.status(), Some(200));
        assert_eq!(p.header("x-consul-index"), Some("42"));
        assert_eq!(p.body(), b"hello");
        let p = parse_all(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n", 100).unwrap();
        assert!(p.is_complete());
        assert_eq!(p.status(), Some(404));
    }

    #[test]
    fn chunked_with_extensions_and_trailers_split_everywhere() {
        let input = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n\
                      5;ext=1\r\nhello\r\n7\r\n, world\r\n0\r\nTrailer: x\r\n\r\n";
        for seed in 0..20 {
            let p = parse_split(input, seed);
            assert!(p.is_complete(), "seed {seed}");
            assert_eq!(p.body(), b"hello, world");
        }
    }

    #[test]
    fn read_until_close_and_truncation() {
        let mut p = parse_all(b"HTTP/1.0 200 OK\r\n\r\nsome", 100).unwrap();
        assert!(!p.is_complete());
        p.finish().unwrap();
        assert_eq!(p.body(), b"some");
        let mut p = parse_all(b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\nsome", 100).unwrap();
        assert_eq!(p.finish(), Err(ParseError::Truncated));
        let mut p = parse_all(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n4\r\nso",
            100,
        )
        .unwrap();
        assert_eq!(p.finish(), Err(ParseError::Truncated));
        let mut p = parse_all(b"HTTP/1.1 200 OK\r\nContent-Le", 100).unwrap();
        assert_eq!(p.finish(), Err(ParseError::Truncated));
    }

    #[test]
    fn no_body_for_head_204_304_and_interim_responses_skipped() {
        let mut p = ResponseParser::new(100, true);
        assert!(p
            .feed(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n")
            .unwrap());
        let p = parse_all(b"HTTP/1.1 204 No Content\r\nContent-Length: 3\r\n\r\n", 100).unwrap();
        assert!(p.is_complete());
        let p = parse_all(
            b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 201 Created\r\nContent-Length: 2\r\n\r\nok",
            100,
        )
        .unwrap();
        assert_eq!((p.status(), p.body()), (Some(201), &b"ok"[..]));
    }

    #[test]
    fn caps_and_malformed_input() {
        let too_big = ParseError::BodyTooLarge { limit: 4 };
        assert_eq!(
            parse_all(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n", 4).err(),
            Some(too_big.clone())
        );
        assert_eq!(
            parse_all(
                b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n",
                4
            )
            .err(),
            Some(too_big.clone())
        );
        assert_eq!(
            parse_all(b"HTTP/1.1 200 OK\r\n\r\nhello", 4).err(),
            Some(too_big)
        );
        assert_eq!(
            parse_all(
                b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nffffffffffffffffffff\r\n",
                4
            )
            .err(),
            Some(ParseError::Malformed("chunk size"))
        );
        assert_eq!(
            parse_all(
                b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
                4
            )
            .err(),
            Some(ParseError::Malformed("chunk size"))
        );
        assert_eq!(
            parse_all(b"<html>\r\n", 4).err(),
            Some(ParseError::Malformed("status line"))
        );
        assert_eq!(
            parse_all(b"HTTP/1.1 200 OK\r\nno colon\r\n", 4).err(),
            Some(ParseError::Malformed("header"))
        );
        assert_eq!(
            parse_all(
                b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
                9
            )
            .err(),
            Some(ParseError::Malformed("content length"))
        );
        assert_eq!(
            parse_all(b"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n", 9).err(),
            Some(ParseError::Malformed("content length"))
        );
        let mut p = ResponseParser::new(10, false);
        assert_eq!(
            p.feed(&vec![b'a'; MAX_HEAD + 1]).err(),
            Some(ParseError::HeadTooLarge)
        );
    }

    #[test]
    fn a_head_of_complete_lines_that_never_ends_is_refused() {
        let mut p = ResponseParser::new(10, false);
        p.feed(b"HTTP/1.1 200 OK\r\n").unwrap();
        let line = b"X-Filler: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n";
        let mut fed = 0;
        let err = loop {
            match p.feed(line) {
                Ok(done) => assert!(!done),
                Err(e) => break e,
            }
            fed += line.len();
            assert!(fed <= MAX_HEAD, "still reading a head of {fed} bytes");
        };
        assert_eq!(err, ParseError::HeadTooLarge);
        // Interim responses count as well.
        let mut p = ResponseParser::new(10, false);
        let mut err = None;
        for _ in 0..MAX_HEAD {
            if let Err(e) = p.feed(b"HTTP/1.1 100 Continue\r\n\r\n") {
                err = Some(e);
                break;
            }
        }
        assert_eq!(err, Some(ParseError::HeadTooLarge));
    }

    #[test]
    fn a_stream_taken_as_it_comes_is_never_capped() {
        let mut p = ResponseParser::new(64, false);
        p.feed(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
            .unwrap();
        let mut seen = 0;
        for _ in 0..1000 {
            p.feed(b"a\r\n{\"n\":123}\n\r\n").unwrap();
            seen += p.take_body().len();
        }
        assert_eq!(seen, 10_000);
        assert!(!p.is_complete());
    }

    #[test]
    fn request_bytes() {
        assert_eq!(
            build_request(
                "GET",
                "127.0.0.1:8500",
                "/v1/kv/x?recurse",
                &[("X-Consul-Token", "t")],
                b""
            ),
            b"GET /v1/kv/x?recurse HTTP/1.1\r\nHost: 127.0.0.1:8500\r\nConnection: close\r\n\
              User-Agent: nginx-upsync\r\nAccept: application/json\r\nX-Consul-Token: t\r\n\r\n"
                .to_vec()
        );
        let put = build_request("PUT", "h", "/k", &[], b"ab");
        assert!(put.ends_with(b"Content-Length: 2\r\n\r\nab"));
    }

    #[test]
    fn lines_complete_across_reads_and_long_ones_are_refused() {
        let mut l = Lines::new(16);
        assert_eq!(l.push(b"ab").unwrap(), Vec::<Vec<u8>>::new());
        assert_eq!(
            l.push(b"c\nde\n\nf").unwrap(),
            vec![b"abc".to_vec(), b"de".to_vec(), vec![]]
        );
        assert_eq!(l.push(b"g\n").unwrap(), vec![b"fg".to_vec()]);
        // A line that never ends is refused once over the limit, fed a byte
        // at a time, and the buffer starts afresh.
        let mut err = None;
        for _ in 0..17 {
            if let Err(e) = l.push(b"x") {
                err = Some(e);
                break;
            }
        }
        assert_eq!(err, Some(LineTooLong { limit: 16 }));
        assert_eq!(l.push(b"ok\n").unwrap(), vec![b"ok".to_vec()]);
        // Long lines up to the limit, fed in small pieces, still come whole.
        let mut l = Lines::new(1 << 20);
        let line = vec![b'y'; 1 << 20];
        let mut got = Vec::new();
        for piece in line.chunks(7) {
            got.extend(l.push(piece).unwrap());
        }
        got.extend(l.push(b"\n").unwrap());
        assert_eq!(got, vec![line]);
    }
}
