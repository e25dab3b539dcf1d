//! The etcd v2 session: a recursive read of the directory, then a watch
//! from the read's index + 1. Any event, or a cleared history (errorCode
//! 401), leads to a new full read at once.

use super::{auth_headers, header_u64, Ctx, Level, Next, Request};
use crate::conf::UpsyncConf;
use crate::http::ResponseParser;
use crate::registry::etcd;

#[derive(Default)]
pub(super) struct EtcdV2 {
    /// The `waitIndex` of the next watch; `None`: a full read.
    wait: Option<u64>,
    /// The exchange under way is a watch.
    watching: bool,
    /// The `X-Etcd-Index` of the last read, for the status.
    seen: Option<u64>,
}

impl EtcdV2 {
    pub(super) fn next_request(&mut self, conf: &UpsyncConf, blocking: bool) -> Request {
        let sep = if conf.path.contains('?') { '&' } else { '?' };
        self.watching = false;
        let target = match self.wait.filter(|_| blocking) {
            Some(n) => {
                self.watching = true;
                format!("{}{sep}wait=true&recursive=true&waitIndex={n}", conf.path)
            }
            None => format!("{}{sep}recursive=true", conf.path),
        };
        let mut request = Request::get(target);
        auth_headers(conf, &mut request);
        request
    }

    pub(super) fn on_response(&mut self, ctx: &mut Ctx<'_>, answer: &ResponseParser) -> Next {
        let status = answer.status().unwrap_or(0);
        let body = answer.body();
        if std::mem::take(&mut self.watching) {
            self.wait = None;
            if status == 200 {
                return match etcd::v2_event_index(body) {
                    Ok(_) => Next::Now,
                    Err(e) => {
                        ctx.unusable(&e);
                        Next::Retry
                    }
                };
            }
            if matches!(etcd::v2_error(body), Some((401, _))) {
                ctx.log(
                    Level::Info,
                    "etcd history was cleared, reading the list again",
                );
                return Next::Now;
            }
            ctx.bad_status(status, body);
            return Next::Retry;
        }
        let index = header_u64(answer, "X-Etcd-Index");
        let next_wait = index.and_then(|i| i.checked_add(1));
        match status {
            200 => {
                if !ctx.use_answer(etcd::parse_v2_dir(body)) {
                    // No watch: the refused list is read again.
                    return Next::Retry;
                }
            }
            404 => ctx.nothing_under(),
            _ => {
                ctx.bad_status(status, body);
                return Next::Retry;
            }
        }
        if index.is_some() {
            self.seen = index;
        }
        self.wait = next_wait;
        if next_wait.is_some() {
            Next::Now
        } else {
            Next::Interval
        }
    }

    /// The exchange failed (`idle`: no answer within the timeout): true
    /// when a watch is renewed from the same index, else a full read next.
    pub(super) fn on_failure(&mut self, idle: bool) -> bool {
        if std::mem::take(&mut self.watching) && idle {
            return true;
        }
        self.wait = None;
        false
    }

    /// The exchange under way is a watch.
    pub(super) fn watching(&self) -> bool {
        self.watching
    }

    pub(super) fn position(&self) -> Option<u64> {
        self.seen
    }
}
