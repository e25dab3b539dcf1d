//! The etcd v3 session, over etcd's JSON gateway: authenticate when a user
//! is configured, read the range of keys under the prefix, then watch from
//! its revision + 1 and apply events as they stream in. The end of the
//! stream, compaction, cancellation or an error lead to a new read; an
//! expired or revoked token to a new authentication.

use super::{Ctx, Level, Next, Reason, Request, Stream};
use crate::conf::UpsyncConf;
use crate::http::{Lines, ResponseParser};
use crate::registry::etcdv3::{self, Event, KeyList, WatchMessage};

pub(super) struct EtcdV3 {
    /// The keys under the prefix and the revision they are at (`None`:
    /// read the range again).
    keys: KeyList,
    revision: Option<u64>,
    /// A partial line of the watch stream.
    line: Lines,
    /// The auth token (never logged); the exchange under way authenticates;
    /// the token was just issued (a refusal is then final).
    token: Option<String>,
    authenticating: bool,
    token_fresh: bool,
    /// The exchange under way is a watch.
    watching: bool,
}

impl EtcdV3 {
    pub(super) fn new(prefix: &str, max_line: usize) -> Self {
        EtcdV3 {
            keys: KeyList::new(prefix),
            revision: None,
            line: Lines::new(max_line),
            token: None,
            authenticating: false,
            token_fresh: false,
            watching: false,
        }
    }

    pub(super) fn authenticating(&self) -> bool {
        self.authenticating
    }

    pub(super) fn token(&self) -> Option<&str> {
        self.token.as_deref()
    }

    /// The exchange failed (`idle`: no event within the timeout): true when
    /// the watch is renewed from the same revision, else a new read next.
    pub(super) fn on_failure(&mut self, idle: bool) -> bool {
        if std::mem::take(&mut self.watching) && idle {
            return true;
        }
        self.revision = None;
        false
    }

    /// The exchange under way is a watch.
    pub(super) fn watching(&self) -> bool {
        self.watching
    }

    pub(super) fn position(&self) -> Option<u64> {
        self.revision
    }

    pub(super) fn next_request(&mut self, conf: &UpsyncConf, blocking: bool) -> Request {
        self.watching = false;
        self.authenticating = false;
        let json = ("Content-Type", "application/json".to_string());
        if let (Some(user), Some(password), None) = (&conf.user, &conf.password, &self.token) {
            self.authenticating = true;
            return Request {
                method: "POST",
                target: "/v3/auth/authenticate".into(),
                headers: vec![json],
                body: etcdv3::auth_request(user, password).into_bytes(),
                streaming: false,
            };
        }
        let (target, body) = match self.revision.filter(|_| blocking) {
            Some(rev) => {
                self.watching = true;
                self.line.clear();
                ("/v3/watch", etcdv3::watch_request(&conf.path, rev + 1))
            }
            None => ("/v3/kv/range", etcdv3::range_request(&conf.path)),
        };
        let mut headers = vec![json];
        if self.watching {
            // A member that loses its quorum ends the watch (gRPC's
            // `hasleader` metadata) instead of going silent.
            headers.push(("Grpc-Metadata-hasleader", "true".to_string()));
        }
        if let Some(token) = &self.token {
            headers.push(("Authorization", token.clone()));
        }
        Request {
            method: "POST",
            target: target.into(),
            headers,
            body: body.into_bytes(),
            streaming: self.watching,
        }
    }

    pub(super) fn on_response(&mut self, ctx: &mut Ctx<'_>, answer: &ResponseParser) -> Next {
        let status = answer.status().unwrap_or(0);
        let body = answer.body();
        if std::mem::take(&mut self.authenticating) {
            return match etcdv3::parse_auth(body) {
                Ok(token) => {
                    self.token = Some(token);
                    self.token_fresh = true;
                    Next::Now
                }
                Err(e) => {
                    let user = ctx.conf.user.as_deref().unwrap_or("");
                    ctx.error(
                        Reason::Http,
                        &format!(
                            "etcd authentication as \"{user}\" failed ({e}), keeping the last list"
                        ),
                    );
                    Next::Retry
                }
            };
        }
        if ctx.conf.user.is_some() && etcdv3::needs_auth(status, body) {
            // The token expired or was revoked: authenticate again, at once
            // unless the token was brand new.
            self.token = None;
            self.watching = false;
            self.revision = None;
            if std::mem::take(&mut self.token_fresh) {
                ctx.bad_status(status, body);
                return Next::Retry;
            }
            ctx.log(Level::Info, "etcd refused the token, authenticating again");
            return Next::Now;
        }
        if status == 200 {
            self.token_fresh = false;
        }
        if std::mem::take(&mut self.watching) {
            self.revision = None;
            if status != 200 {
                ctx.bad_status(status, body);
                return Next::Retry;
            }
            return match self.stream(ctx, body) {
                Stream::Ended(next) => next,
                Stream::Open { .. } => Next::Now,
            };
        }
        if status != 200 {
            ctx.bad_status(status, body);
            return Next::Retry;
        }
        match etcdv3::parse_range(body) {
            Ok((revision, keys)) => {
                self.keys.replace(keys);
                if !self.apply_keys(ctx) {
                    // No watch: the refused list is read again.
                    return Next::Retry;
                }
                self.revision = Some(revision);
                Next::Now
            }
            Err(e) => {
                ctx.unusable(&e);
                Next::Retry
            }
        }
    }

    /// More of the watch stream. A watch that ended lets go of its partial
    /// line.
    pub(super) fn on_stream(&mut self, ctx: &mut Ctx<'_>, data: &[u8]) -> Stream {
        let stream = self.stream(ctx, data);
        if let Stream::Ended(_) = stream {
            self.watching = false;
        }
        stream
    }

    fn stream(&mut self, ctx: &mut Ctx<'_>, data: &[u8]) -> Stream {
        let stream = self.lines(ctx, data);
        if matches!(stream, Stream::Ended(_)) {
            self.line.clear();
        }
        stream
    }

    fn lines(&mut self, ctx: &mut Ctx<'_>, data: &[u8]) -> Stream {
        let lines = match self.line.push(data) {
            Ok(lines) => lines,
            Err(e) => {
                ctx.error(
                    Reason::Parse,
                    &format!("etcd watch: {e}, reading the list again"),
                );
                self.revision = None;
                return Stream::Ended(Next::Retry);
            }
        };
        let progress = !lines.is_empty();
        for line in lines {
            if line.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            match etcdv3::parse_watch_line(&line) {
                Ok(WatchMessage::Created) => {}
                Ok(WatchMessage::Events { revision, events }) => {
                    self.revision = Some(revision);
                    if events.is_empty() {
                        continue;
                    }
                    for event in events {
                        match event {
                            Event::Put(key, value) => self.keys.put(key, &value),
                            Event::Delete(key) => self.keys.remove(&key),
                        }
                    }
                    if !self.apply_keys(ctx) {
                        self.revision = None;
                        return Stream::Ended(Next::Retry);
                    }
                }
                Ok(WatchMessage::Ended(why)) => {
                    ctx.log(
                        Level::Info,
                        &format!("etcd watch ended ({why}), reading the list again"),
                    );
                    self.revision = None;
                    return Stream::Ended(Next::Now);
                }
                Err(e) => {
                    ctx.unusable(&e);
                    self.revision = None;
                    return Stream::Ended(Next::Retry);
                }
            }
        }
        Stream::Open { progress }
    }

    /// Applies the list the keys make; false when it was refused.
    fn apply_keys(&mut self, ctx: &mut Ctx<'_>) -> bool {
        let parsed = self.keys.servers();
        if parsed.servers.is_empty() && self.keys.is_empty() {
            ctx.nothing_under();
            return true;
        }
        ctx.use_answer(Ok(parsed))
    }
}
