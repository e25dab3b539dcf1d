//! A blocking exchange for `strong_dependency=on` only: it runs in
//! `init_process`, before the worker accepts any connection, so blocking there
//! delays nothing but the worker's own start, and is bounded.

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use crate::http::ResponseParser;
use crate::registry::session::{Failure, Phase};

/// Sends `request` and reads the whole response within `bound`.
pub(crate) fn exchange(
    addr: SocketAddr,
    request: &[u8],
    bound: Duration,
    max_body: usize,
) -> Result<ResponseParser, Failure> {
    let deadline = Instant::now() + bound;
    // A socket timeout reads as EAGAIN.
    let timed_out =
        |e: &std::io::Error| matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut);
    let mut stream = TcpStream::connect_timeout(&addr, bound).map_err(|e| match timed_out(&e) {
        true => Failure::TimedOut(Phase::Connect),
        false => Failure::Connect(Some(e)),
    })?;
    let left = || {
        deadline
            .saturating_duration_since(Instant::now())
            .max(Duration::from_millis(1))
    };
    let send = |e: std::io::Error| match timed_out(&e) {
        true => Failure::TimedOut(Phase::Send),
        false => Failure::Send,
    };
    stream.set_write_timeout(Some(left())).map_err(send)?;
    stream.write_all(request).map_err(send)?;
    let recv = |e: std::io::Error| match timed_out(&e) {
        true => Failure::TimedOut(Phase::Read),
        false => Failure::Recv,
    };
    let mut parser = ResponseParser::new(max_body, false);
    let mut buf = [0u8; 16384];
    loop {
        if Instant::now() >= deadline {
            return Err(Failure::TimedOut(Phase::Read));
        }
        stream.set_read_timeout(Some(left())).map_err(recv)?;
        let n = stream.read(&mut buf).map_err(recv)?;
        if n == 0 {
            parser.finish().map_err(Failure::Parse)?;
            return Ok(parser);
        }
        if parser.feed(&buf[..n]).map_err(Failure::Parse)? {
            return Ok(parser);
        }
    }
}
