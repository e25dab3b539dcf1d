//! A blocking exchange for `strong_dependency=on` only: it runs in
//! `init_process`, before the worker accepts any connection, so blocking there
//! delays nothing but the worker's own start, and is bounded.

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use crate::http::ResponseParser;

/// Sends `request` and reads the whole response within `bound`.
pub(crate) fn exchange(
    addr: SocketAddr,
    request: &[u8],
    bound: Duration,
    max_body: usize,
) -> Result<ResponseParser, String> {
    let deadline = Instant::now() + bound;
    // A timeout is said as such (a socket timeout reads as EAGAIN).
    let said = |e: std::io::Error| match e.kind() {
        ErrorKind::WouldBlock | ErrorKind::TimedOut => {
            format!("no answer within {} ms", bound.as_millis())
        }
        _ => e.to_string(),
    };
    let mut stream = TcpStream::connect_timeout(&addr, bound).map_err(said)?;
    let left = || {
        deadline
            .saturating_duration_since(Instant::now())
            .max(Duration::from_millis(1))
    };
    stream.set_write_timeout(Some(left())).map_err(said)?;
    stream.write_all(request).map_err(said)?;
    let mut parser = ResponseParser::new(max_body, false);
    let mut buf = [0u8; 16384];
    loop {
        if Instant::now() >= deadline {
            return Err(format!("no answer within {} ms", bound.as_millis()));
        }
        stream.set_read_timeout(Some(left())).map_err(said)?;
        let n = stream.read(&mut buf).map_err(said)?;
        if n == 0 {
            parser.finish().map_err(|e| e.to_string())?;
            return Ok(parser);
        }
        if parser.feed(&buf[..n]).map_err(|e| e.to_string())? {
            return Ok(parser);
        }
    }
}
