//! The Consul session (KV, catalog, health): blocking queries by Consul's
//! index rules ([`IndexState`]).

use super::{auth_headers, header_u64, path_only, Ctx, Next, Request};
use crate::conf::{RegistryKind, UpsyncConf};
use crate::http::ResponseParser;
use crate::registry::consul::{self, IndexState, Kind};

#[derive(Default)]
pub(super) struct Consul {
    index: IndexState,
    /// The `X-Consul-Index` of the last answer, for the status.
    seen: Option<u64>,
}

impl Consul {
    pub(super) fn next_request(&mut self, conf: &UpsyncConf, blocking: bool) -> Request {
        let index = if blocking {
            self.index.next_request_index()
        } else {
            0
        };
        let target = consul::poll_target(&conf.path, kind(conf.kind), index, wait_secs(conf));
        let mut request = Request::get(target);
        auth_headers(conf, &mut request);
        request
    }

    pub(super) fn on_response(&mut self, ctx: &mut Ctx<'_>, answer: &ResponseParser) -> Next {
        let status = answer.status().unwrap_or(0);
        let header_index = header_u64(answer, "X-Consul-Index");
        if header_index.is_some() {
            self.seen = header_index;
        }
        if status == 404 {
            // Every key under the prefix is gone: keep serving, and block on
            // the prefix so that its return is seen at once.
            self.index.observe(header_index);
            ctx.nothing_under();
            return Next::Interval;
        }
        if status != 200 {
            self.index.reset();
            ctx.bad_status(status, answer.body());
            return Next::Retry;
        }
        if self.index.observe(header_index) {
            let parsed = match ctx.conf.kind {
                RegistryKind::ConsulServices => consul::parse_catalog(answer.body()),
                RegistryKind::ConsulHealth => consul::parse_health(answer.body()),
                _ => consul::parse_kv(kv_prefix(&ctx.conf.path), answer.body()),
            };
            if !ctx.use_answer(parsed) {
                // Not blocking on this index: the refused list is read and
                // tried again after the interval, even if it does not change.
                self.index.reset();
                return Next::Retry;
            }
        } else {
            ctx.synced();
        }
        Next::Interval
    }

    /// The exchange failed: a full read next.
    pub(super) fn on_failure(&mut self) -> bool {
        self.index.reset();
        false
    }

    pub(super) fn position(&self) -> Option<u64> {
        self.seen
    }
}

fn kind(kind: RegistryKind) -> Kind {
    match kind {
        RegistryKind::ConsulServices => Kind::Catalog,
        RegistryKind::ConsulHealth => Kind::Health,
        _ => Kind::Kv,
    }
}

/// `/v1/kv/upstreams/test/?dc=x` -> `upstreams/test/`.
fn kv_prefix(path: &str) -> &str {
    let path = path_only(path);
    path.strip_prefix("/v1/kv/").unwrap_or(path)
}

/// Consul holds a blocking query up to `wait` plus wait/16: keep that
/// within `upsync_timeout`, with a second to spare.
fn wait_secs(conf: &UpsyncConf) -> u64 {
    let timeout_s = conf.timeout_ms / 1000;
    (timeout_s.saturating_sub(1) * 16 / 17).clamp(1, 600)
}
