//! A registry session: the protocol of one upstream's registry as a plain
//! state machine, with no I/O and no nginx type (in the style of the
//! sans-IO crates: quinn-proto, rustls, httparse).
//!
//! The driver (the poller in `src/nginx/`) asks for the next request, sends
//! it with whatever transport it has (the worker's nonblocking exchange, or
//! the blocking read of `strong_dependency=on`), and hands back what came:
//! a whole answer, a piece of a streaming answer, or a failure. The session
//! says when to poll next ([`Next`]) and reports through a [`Sink`]: lists
//! to apply and lines to log. Each registry kind has its own session
//! ([`consul`], [`etcdv2`], [`etcdv3`]); [`Session`] holds the one an
//! upstream uses and what every kind shares: the error messages, the
//! secrets they must never show, and the [`Status`] of the sync.

mod consul;
mod etcdv2;
mod etcdv3;

use std::fmt;

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;

use super::{excerpt, summary, ParseError, Parsed};
use crate::conf::{RegistryKind, UpsyncConf};
use crate::http::{self, ResponseParser};
use crate::server::Server;

/// When to poll next.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Next {
    /// At once: an etcd watch to start, or a full read after an event. The
    /// driver's pacer keeps a run of these from spinning.
    Now,
    /// After `upsync_interval`: the registry answered.
    Interval,
    /// After a failure (no usable answer, or a list that was refused):
    /// after `upsync_interval`, and never at once.
    Retry,
}

/// What a piece of a streaming answer did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stream {
    /// The stream goes on; `progress`: a complete message arrived (only
    /// that keeps the stream from timing out).
    Open { progress: bool },
    /// The stream is over: close it and poll again then.
    Ended(Next),
}

/// The step of an exchange that timed out.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    Connect,
    Send,
    Read,
}

impl fmt::Display for Phase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Connect => "connect",
            Self::Send => "send",
            Self::Read => "read",
        })
    }
}

/// How an exchange with the registry failed.
#[derive(Debug)]
pub enum Failure {
    /// The connection was refused or could not be made (with the reason,
    /// when the transport knows it).
    Connect(Option<std::io::Error>),
    TimedOut(Phase),
    Send,
    Recv,
    Parse(http::ParseError),
    /// The TLS handshake failed, or the certificate did not verify.
    Tls(String),
    /// The worker is shutting down and asked idle connections to close.
    Closing,
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Connect(None) => f.write_str("cannot connect"),
            Self::Connect(Some(e)) => write!(f, "cannot connect: {e}"),
            Self::TimedOut(phase) => write!(f, "{phase} timed out"),
            Self::Send => f.write_str("send failed"),
            Self::Recv => f.write_str("recv failed"),
            Self::Parse(e) => write!(f, "bad response: {e}"),
            Self::Tls(e) => f.write_str(e),
            Self::Closing => f.write_str("closed for shutdown"),
        }
    }
}

/// The level of a line to log, as nginx names them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Level {
    Error,
    Warn,
    Notice,
    Info,
    Debug,
}

/// What applying a list did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Applied {
    Changed,
    Unchanged,
    /// Refused (an empty list, no usable primary, a full zone); the last
    /// list is kept.
    Refused,
}

/// Where a session's results go: the upstream's peer lists and its log.
pub trait Sink {
    /// Applies the registry's list to the upstream.
    fn apply(&mut self, servers: &[Server]) -> Applied;
    /// Logs `message` (the text after `upstream "<name>": `).
    fn log(&mut self, level: Level, message: &str);
}

/// A request for the driver to send.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Request {
    pub method: &'static str,
    pub target: String,
    pub headers: Vec<(&'static str, String)>,
    pub body: Vec<u8>,
    /// The answer is a stream of messages (an etcd v3 watch): hand its body
    /// over as it comes ([`Session::on_stream`]).
    pub streaming: bool,
}

impl Request {
    fn get(target: String) -> Request {
        Request {
            method: "GET",
            target,
            headers: Vec::new(),
            body: Vec::new(),
            streaming: false,
        }
    }

    /// The request's bytes, for `authority` (the `Host` header).
    pub fn to_bytes(&self, authority: &str) -> Vec<u8> {
        let headers: Vec<(&str, &str)> =
            self.headers.iter().map(|(n, v)| (*n, v.as_str())).collect();
        http::build_request(self.method, authority, &self.target, &headers, &self.body)
    }
}

/// Why a poll failed, for the status counters: a bounded set, each counted
/// from the start.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reason {
    /// No connection, or it broke (refused, reset, closed).
    Connect,
    /// A step took longer than its bound.
    Timeout,
    /// An answer that is not HTTP, or a status other than success.
    Http,
    /// An answer the registry kind cannot use.
    Parse,
    /// A list that was refused (empty, no usable primary, a full zone).
    Refused,
    /// The TLS handshake failed, or the registry's certificate did not pass.
    Tls,
}

/// How many [`Reason`]s there are.
pub const REASONS: usize = 6;

impl Reason {
    pub const ALL: [Reason; REASONS] = [
        Reason::Connect,
        Reason::Timeout,
        Reason::Http,
        Reason::Parse,
        Reason::Refused,
        Reason::Tls,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Reason::Connect => "connect",
            Reason::Timeout => "timeout",
            Reason::Http => "http",
            Reason::Parse => "parse",
            Reason::Refused => "refused",
            Reason::Tls => "tls",
        }
    }

    fn of(failure: &Failure) -> Reason {
        match failure {
            Failure::TimedOut(_) => Reason::Timeout,
            Failure::Parse(_) => Reason::Http,
            Failure::Tls(_) => Reason::Tls,
            Failure::Connect(_) | Failure::Send | Failure::Recv | Failure::Closing => {
                Reason::Connect
            }
        }
    }
}

/// Where the sync of an upstream stands, for status pages.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Status {
    /// Consul's index or etcd's revision (v2: the index) of the last answer.
    pub position: Option<u64>,
    /// Answers used (applied or unchanged) and when the last one came.
    pub syncs: u64,
    pub last_sync_ms: Option<u64>,
    /// Changes applied and when the last one was.
    pub changes: u64,
    pub last_change_ms: Option<u64>,
    /// Failures (transport, status, unusable or refused answers), by
    /// [`Reason`] (in the order of `Reason::ALL`), and the last one's
    /// message and time.
    pub errors: [u64; REASONS],
    pub last_error: Option<String>,
    pub last_error_ms: Option<u64>,
    /// The last poll gave a usable answer.
    pub last_ok: bool,
    /// The last poll failed in a way that another endpoint of the cluster
    /// may not: no connection, a timeout, a 5xx or 429, an unusable answer
    /// (a 401 or 403, or a refused list, would fail there too).
    pub endpoint_failed: bool,
}

impl Status {
    /// Failures of every reason.
    pub fn error_count(&self) -> u64 {
        self.errors.iter().sum()
    }
}

/// The session of one upstream's registry.
pub struct Session {
    conf: UpsyncConf,
    protocol: Protocol,
    status: Status,
    /// The endpoint in use, for messages.
    endpoint: String,
}

enum Protocol {
    Consul(consul::Consul),
    EtcdV2(etcdv2::EtcdV2),
    EtcdV3(etcdv3::EtcdV3),
}

impl Session {
    pub fn new(conf: UpsyncConf, max_line: usize) -> Session {
        let protocol = match conf.kind {
            RegistryKind::Etcd => Protocol::EtcdV2(etcdv2::EtcdV2::default()),
            RegistryKind::EtcdV3 => Protocol::EtcdV3(etcdv3::EtcdV3::new(&conf.path, max_line)),
            _ => Protocol::Consul(consul::Consul::default()),
        };
        Session {
            endpoint: conf.endpoints[0].authority.clone(),
            conf,
            protocol,
            status: Status::default(),
        }
    }

    /// The request of the next poll; `blocking`: a long poll (or a watch)
    /// may be used, else a plain read (`strong_dependency`'s).
    pub fn next_request(&mut self, blocking: bool) -> Request {
        match &mut self.protocol {
            Protocol::Consul(p) => p.next_request(&self.conf, blocking),
            Protocol::EtcdV2(p) => p.next_request(&self.conf, blocking),
            Protocol::EtcdV3(p) => p.next_request(&self.conf, blocking),
        }
    }

    /// The endpoint polls go to now (`host:port` as configured).
    pub fn set_endpoint(&mut self, authority: &str) {
        self.endpoint = authority.to_string();
    }

    /// The request under way only authenticates (etcd v3): another
    /// exchange is needed before the list is read.
    pub fn authenticating(&self) -> bool {
        matches!(&self.protocol, Protocol::EtcdV3(p) if p.authenticating())
    }

    /// A whole answer came, at `now_ms`.
    pub fn on_response(
        &mut self,
        answer: &ResponseParser,
        now_ms: u64,
        sink: &mut dyn Sink,
    ) -> Next {
        let secrets = self.secrets();
        self.status.endpoint_failed = false;
        let mut ctx = Ctx::new(&self.conf, secrets, &mut self.status, now_ms, sink);
        match &mut self.protocol {
            Protocol::Consul(p) => p.on_response(&mut ctx, answer),
            Protocol::EtcdV2(p) => p.on_response(&mut ctx, answer),
            Protocol::EtcdV3(p) => p.on_response(&mut ctx, answer),
        }
    }

    /// More of a streaming answer's body came, at `now_ms`.
    pub fn on_stream(&mut self, data: &[u8], now_ms: u64, sink: &mut dyn Sink) -> Stream {
        let secrets = self.secrets();
        self.status.endpoint_failed = false;
        let mut ctx = Ctx::new(&self.conf, secrets, &mut self.status, now_ms, sink);
        match &mut self.protocol {
            Protocol::EtcdV3(p) => p.on_stream(&mut ctx, data),
            _ => Stream::Open { progress: false },
        }
    }

    /// An exchange failing so is only the end of an idle watch, renewed at
    /// once: not a failure of the registry.
    pub fn renews(&self, failure: &Failure) -> bool {
        let idle = matches!(failure, Failure::TimedOut(Phase::Read));
        match &self.protocol {
            Protocol::Consul(_) => false,
            Protocol::EtcdV2(p) => idle && p.watching(),
            Protocol::EtcdV3(p) => idle && p.watching(),
        }
    }

    /// The exchange failed, at `now_ms`; `then` ends the line that says so
    /// (what the driver does next: ", retrying in 100 ms").
    pub fn on_failure(
        &mut self,
        failure: &Failure,
        now_ms: u64,
        then: &str,
        sink: &mut dyn Sink,
    ) -> Next {
        // A watch that saw no event within upsync_timeout is renewed;
        // anything else means a full read next.
        let idle = matches!(failure, Failure::TimedOut(Phase::Read));
        let renew = match &mut self.protocol {
            Protocol::Consul(p) => p.on_failure(),
            Protocol::EtcdV2(p) => p.on_failure(idle),
            Protocol::EtcdV3(p) => p.on_failure(idle),
        };
        if renew {
            sink.log(Level::Info, "etcd watch idle, renewing it");
            return Next::Now;
        }
        let secrets = self.secrets();
        let message = format!("registry {}: {failure}{then}", self.endpoint);
        let mut ctx = Ctx::new(&self.conf, secrets, &mut self.status, now_ms, sink);
        ctx.error(Reason::of(failure), &message);
        ctx.status.endpoint_failed = true;
        Next::Retry
    }

    /// What this session sends the registry that must never be logged: the
    /// Consul token, the etcd password, its basic credentials and v3 token.
    pub fn secrets(&self) -> Vec<String> {
        let token = match &self.protocol {
            Protocol::EtcdV3(p) => p.token(),
            _ => None,
        };
        let mut out: Vec<String> = [
            self.conf.token.as_deref(),
            self.conf.password.as_deref(),
            token,
        ]
        .into_iter()
        .flatten()
        .map(String::from)
        .collect();
        if let Some(basic) = basic_credentials(&self.conf) {
            out.push(basic);
        }
        out
    }

    /// The last poll failed in a way another endpoint may not (see
    /// [`Status::endpoint_failed`]).
    pub fn endpoint_failed(&self) -> bool {
        self.status.endpoint_failed
    }

    /// Where the sync stands.
    pub fn status(&self) -> Status {
        Status {
            position: self.position(),
            ..self.status.clone()
        }
    }

    /// Consul's index or etcd's revision (v2: index) of the last answer.
    pub fn position(&self) -> Option<u64> {
        match &self.protocol {
            Protocol::Consul(p) => p.position(),
            Protocol::EtcdV2(p) => p.position(),
            Protocol::EtcdV3(p) => p.position(),
        }
    }
}

/// The wait after a failure: `upsync_interval=0` means no pause after an
/// answer, but a failure always waits.
pub fn retry_ms(interval_ms: u64) -> u64 {
    interval_ms.max(crate::pace::MIN_PAUSE_MS)
}

/// `user:password` in base64, for basic auth (etcd v2).
fn basic_credentials(conf: &UpsyncConf) -> Option<String> {
    let (user, password) = (conf.user.as_ref()?, conf.password.as_ref()?);
    Some(B64.encode(format!("{user}:{password}")))
}

/// The headers of a GET poll (Consul, etcd v2): the Consul token, basic
/// credentials.
fn auth_headers(conf: &UpsyncConf, request: &mut Request) {
    if let Some(token) = &conf.token {
        request.headers.push(("X-Consul-Token", token.clone()));
    }
    if let Some(basic) = basic_credentials(conf) {
        request
            .headers
            .push(("Authorization", format!("Basic {basic}")));
    }
}

/// A header's value as a number.
fn header_u64(answer: &ResponseParser, name: &str) -> Option<u64> {
    answer.header(name).and_then(|v| v.parse().ok())
}

/// The path without its query.
fn path_only(path: &str) -> &str {
    path.split('?').next().unwrap_or(path)
}

/// What one event can use of a session: its configuration and the sink,
/// with the messages every kind shares.
struct Ctx<'a> {
    conf: &'a UpsyncConf,
    secrets: Vec<String>,
    status: &'a mut Status,
    now_ms: u64,
    sink: &'a mut dyn Sink,
}

impl<'a> Ctx<'a> {
    fn new(
        conf: &'a UpsyncConf,
        secrets: Vec<String>,
        status: &'a mut Status,
        now_ms: u64,
        sink: &'a mut dyn Sink,
    ) -> Self {
        Ctx {
            conf,
            secrets,
            status,
            now_ms,
            sink,
        }
    }

    fn log(&mut self, level: Level, message: &str) {
        self.sink.log(level, message);
    }

    /// A failure: logged at error level and counted.
    fn error(&mut self, reason: Reason, message: &str) {
        self.failed(reason, message);
        self.sink.log(Level::Error, message);
    }

    fn failed(&mut self, reason: Reason, message: &str) {
        self.status.endpoint_failed = matches!(reason, Reason::Parse);
        self.status.errors[reason as usize] += 1;
        self.status.last_error = Some(message.to_string());
        self.status.last_error_ms = Some(self.now_ms);
        self.status.last_ok = false;
    }

    fn synced(&mut self) {
        self.status.syncs += 1;
        self.status.last_sync_ms = Some(self.now_ms);
        self.status.last_ok = true;
    }

    /// Applies a parsed answer, logging what was wrong in it; false when it
    /// could not be used at all, or its list was refused.
    fn use_answer(&mut self, parsed: Result<Parsed, ParseError>) -> bool {
        match parsed {
            Ok(parsed) => {
                for line in summary(&parsed.warnings) {
                    self.sink.log(Level::Error, &line);
                }
                match self.sink.apply(&parsed.servers) {
                    Applied::Refused => {
                        self.failed(Reason::Refused, "the registry's list was refused");
                        false
                    }
                    applied => {
                        if applied == Applied::Changed {
                            self.status.changes += 1;
                            self.status.last_change_ms = Some(self.now_ms);
                        }
                        self.synced();
                        true
                    }
                }
            }
            Err(e) => {
                self.unusable(&e);
                false
            }
        }
    }

    fn unusable(&mut self, e: &ParseError) {
        self.error(
            Reason::Parse,
            &format!("unusable registry answer ({e}), keeping the last list"),
        );
    }

    fn bad_status(&mut self, status: u16, body: &[u8]) {
        let message = format!(
            "registry answered {} for {}: {}, keeping the last list",
            status,
            path_only(&self.conf.path),
            excerpt(body, &self.secrets)
        );
        self.error(Reason::Http, &message);
        self.status.endpoint_failed = status >= 500 || status == 429;
    }

    /// The registry holds nothing for the upstream (a 404, no keys): the
    /// last list is kept. A path that does not look like the kind's API is
    /// the likely cause, and is said.
    fn nothing_under(&mut self) {
        let path = path_only(&self.conf.path);
        let hint = match self.conf.kind.path_prefix() {
            Some(prefix) if !path.starts_with(prefix) => format!(
                " (the path looks wrong: an upsync_type={} path starts with {prefix})",
                self.conf.kind.name()
            ),
            _ => String::new(),
        };
        self.synced();
        let message = format!("registry has nothing under {path}{hint}, keeping the last list");
        self.sink.log(Level::Warn, &message);
    }
}

#[cfg(test)]
mod tests;
