//! One synced upstream in one process: its current peer list, its registry
//! poll loop, and the apply path that every registry type shares.

use std::ffi::c_void;
use std::net::SocketAddr;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::ptr;
use std::rc::Rc;

use ngx::ffi::{
    ngx_cycle, ngx_del_timer, ngx_event_t, ngx_exiting, ngx_http_upstream_init_peer_pt,
    ngx_http_upstream_srv_conf_t, ngx_log_t, ngx_msec_t, ngx_quit, ngx_terminate, ngx_uint_t,
    NGX_LOG_ALERT, NGX_LOG_ERR, NGX_LOG_INFO, NGX_LOG_NOTICE, NGX_LOG_WARN,
};

use super::client::{Fetch, FetchError, FetchOwner};
use super::generation::{Generation, Lineage, PeerSource, SockAddr};
use super::log;
use crate::apply::{merge, Outcome};
use crate::conf::{RegistryKind, UpsyncConf};
use crate::dump;
use crate::http::{build_request, Lines, ResponseParser};
use crate::pace::Pacer;
use crate::registry::consul::{self, IndexState};
use crate::registry::etcdv3::{self, Event, WatchMessage};
use crate::registry::{etcd, excerpt, summary, ParseError, Parsed};
use crate::server::Server;
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;

/// Registry answers larger than this are refused with an error.
const MAX_BODY: usize = 8 * 1024 * 1024;
/// Bound on connecting to the registry and sending the request.
const CONNECT_TIMEOUT_MS: u64 = 10_000;
/// How long a worker waits for the registries of all its
/// `strong_dependency=on` upstreams together before it serves.
const STRONG_BUDGET_MS: u64 = 10_000;

thread_local! {
    /// When this worker's `strong_dependency` wait ends (set by the first).
    static STRONG_DEADLINE: std::cell::Cell<Option<std::time::Instant>> =
        const { std::cell::Cell::new(None) };
}

pub(crate) struct Upstream {
    uscf: *mut ngx_http_upstream_srv_conf_t,
    /// The upstream's name, for messages.
    name: String,
    conf: UpsyncConf,
    registry: SocketAddr,
    dump_path: String,
    /// Its per-worker lists: the current one (`uscf->peer.data` points
    /// into it) and the connections open across them.
    lineage: Rc<Lineage>,
    /// The balancer's own `peer.init`, which our wrapper calls.
    pub(crate) original_init_peer: ngx_http_upstream_init_peer_pt,
    /// The first change that adds or removes servers reverses the list once.
    reversed: bool,
    index: IndexState,
    /// etcd v2: the `waitIndex` of the next watch; `None`: a full read.
    etcd_wait: Option<u64>,
    /// The exchange under way is an etcd watch.
    watching: bool,
    /// etcd v3: the keys under the prefix and the revision they are at
    /// (`None`: read the range again), and a partial line of the watch.
    v3_keys: etcdv3::Keys,
    v3_revision: Option<u64>,
    v3_line: Lines,
    /// etcd v3 auth token (never logged); the exchange under way
    /// authenticates; the token was just issued (a refusal is then final).
    v3_token: Option<String>,
    authenticating: bool,
    token_fresh: bool,
    /// Only one process writes the dump file.
    writes_dump: bool,
    /// The balancer accepts `backup` servers (nginx's round robin and
    /// `least_conn` do; `ip_hash`, `hash` and `random` do not).
    backups: bool,
    timer: ngx_event_t,
    fetch: Fetch,
    /// Keeps quick answers from making the loop spin.
    pacer: Pacer,
    started: bool,
    /// Shared-zone mode: the upstream's election slot, and the timer that
    /// runs the election in this worker.
    #[cfg(ngx_resolve_peers)]
    shared: Option<Shared>,
}

/// Where a zone upstream's election slot is.
#[cfg(ngx_resolve_peers)]
pub(crate) struct Shared {
    /// The module's election zone of the cycle.
    pub(crate) election: *mut ngx::ffi::ngx_shm_zone_t,
    /// This upstream's slot in it.
    pub(crate) index: usize,
    pub(crate) timer: ngx_event_t,
    /// This process takes part in the election (a worker that started): only
    /// then is the zone known to be mapped. The master destroys an old
    /// cycle's upstreams after unmapping its zones.
    pub(crate) seated: bool,
}

impl Upstream {
    /// Takes over `uscf` with a first generation built from `initial`.
    ///
    /// # Safety
    /// `uscf` must be a live upstream whose `peer.data` is a round-robin list.
    pub(crate) unsafe fn install(
        uscf: *mut ngx_http_upstream_srv_conf_t,
        conf: UpsyncConf,
        dump_path: String,
        registry: SocketAddr,
        initial: &[Server],
        #[cfg(ngx_resolve_peers)] shared: Option<Shared>,
        problems: &mut Vec<String>,
    ) -> Box<Upstream> {
        // SAFETY: per the contract.
        let u = unsafe { &mut *uscf };
        // SAFETY: the host string lives as long as the cycle.
        let name =
            String::from_utf8_lossy(unsafe { super::peers::str_bytes(&u.host) }).into_owned();
        // SAFETY: nginx's list is live for the cycle's lifetime.
        let source = unsafe { PeerSource::from_list(u.peer.data.cast()) };
        // What the balancer derived from the configured list, which each
        // per-worker generation provides anew (a shared list has none:
        // nginx derives it again from each version of the list itself).
        // SAFETY: nginx initialised the upstream's balancer before the
        // module's postconfiguration, which calls this.
        let lineage = Lineage::new(unsafe { super::peers::balancer_tables(u) });
        let gen = Box::into_raw(Generation::build(
            initial,
            &source,
            &mut u.host,
            &lineage,
            problems,
        ));
        lineage.set_current(gen);
        // SAFETY: `gen` is a fresh live generation.
        u.peer.data = unsafe { (*gen).list() }.cast();
        let fetch = Fetch::new(SockAddr::from_socket_addr(registry), &conf.authority);
        Box::new(Upstream {
            uscf,
            name,
            conf,
            registry,
            dump_path,
            lineage,
            original_init_peer: u.peer.init,
            reversed: false,
            index: IndexState::default(),
            etcd_wait: None,
            watching: false,
            v3_keys: etcdv3::Keys::new(),
            v3_revision: None,
            v3_line: Lines::new(MAX_BODY),
            v3_token: None,
            authenticating: false,
            token_fresh: false,
            writes_dump: false,
            backups: u.flags & ngx::ffi::NGX_HTTP_UPSTREAM_BACKUP as ngx_uint_t != 0,
            // SAFETY: all-zero is the initial state of an nginx event.
            timer: unsafe { std::mem::zeroed() },
            fetch,
            pacer: Pacer::default(),
            started: false,
            #[cfg(ngx_resolve_peers)]
            shared,
        })
    }

    /// Its per-worker lists.
    pub(crate) fn lineage(&self) -> &Lineage {
        &self.lineage
    }

    /// Starts polling in this worker. `writes_dump`: this process owns the
    /// dump file.
    pub(crate) fn start(&mut self, writes_dump: bool) {
        let me: *mut Upstream = self;
        self.timer.handler = Some(on_timer);
        self.timer.data = me.cast::<c_void>();
        self.timer.log = cycle_log();
        self.timer.set_cancelable(1);
        #[cfg(ngx_resolve_peers)]
        if let Some(shared) = &mut self.shared {
            // Zone mode: the election decides who polls and writes the dump.
            shared.timer.handler = Some(on_election);
            shared.timer.data = me.cast::<c_void>();
            shared.timer.log = cycle_log();
            shared.timer.set_cancelable(1);
            shared.seated = true;
            self.elect();
            return;
        }
        self.writes_dump = writes_dump;
        self.started = true;
        if self.conf.strong_dependency {
            self.pull_before_serving();
        }
        self.schedule(0);
    }

    /// Ends the poll loop: no timer, no exchange under way.
    fn stop_polling(&mut self) {
        if self.timer.timer_set() != 0 {
            // SAFETY: our own timer, set in the running event loop.
            unsafe { ngx_del_timer(&mut self.timer) };
        }
        self.fetch.close();
        self.started = false;
    }

    /// Stops polling: the worker is exiting.
    pub(crate) fn stop(&mut self) {
        self.stop_polling();
        #[cfg(ngx_resolve_peers)]
        if let Some(shared) = &mut self.shared {
            if shared.timer.timer_set() != 0 {
                // SAFETY: our own timer, set in the running event loop.
                unsafe { ngx_del_timer(&mut shared.timer) };
            }
            if std::mem::take(&mut shared.seated) {
                // SAFETY: a worker's cycle's election zone, mapped while the
                // worker runs.
                unsafe { super::zone::slot(shared.election, shared.index) }.resign();
            }
        }
    }

    /// Zone mode: takes, keeps or leaves the poller role; runs every
    /// election tick in every worker.
    #[cfg(ngx_resolve_peers)]
    fn elect(&mut self) {
        use super::zone::{Role, ELECTION_TICK_MS};
        let Some(shared) = &mut self.shared else {
            return;
        };
        if exiting() {
            return;
        }
        // SAFETY: the cycle's election zone, mapped in every worker.
        let role = unsafe { super::zone::slot(shared.election, shared.index) }.elect();
        // SAFETY: our own event, alive as long as `self`.
        unsafe { ngx::ffi::ngx_add_timer(&mut shared.timer, ELECTION_TICK_MS as ngx_msec_t) };
        if role == Role::Poller(true) {
            log!(
                NGX_LOG_NOTICE,
                cycle_log(),
                "upstream \"{}\": this worker polls {} for every worker",
                self.name,
                self.conf.authority
            );
            self.writes_dump = true;
            self.started = true;
            self.schedule(0);
        } else if role == Role::Follower && self.started {
            // Another worker took over (this one was silent too long): it
            // polls now, this one stops.
            log!(
                NGX_LOG_NOTICE,
                cycle_log(),
                "upstream \"{}\": another worker polls {} now",
                self.name,
                self.conf.authority
            );
            self.stop_polling();
            self.writes_dump = false;
        }
    }

    fn schedule_next(&mut self, next: Next) {
        self.schedule(match next {
            Next::Now => 0,
            Next::Interval => self.conf.interval_ms,
            Next::Retry => self.retry_ms(),
        });
    }

    /// The wait after a failure: `upsync_interval=0` means no pause after an
    /// answer, but a failure always waits.
    fn retry_ms(&self) -> u64 {
        self.conf.interval_ms.max(crate::pace::MIN_PAUSE_MS)
    }

    fn schedule(&mut self, delay_ms: u64) {
        if exiting() || !self.started {
            return;
        }
        let delay_ms = self.pacer.delay(now_ms(), delay_ms, self.conf.interval_ms);
        if self.timer.timer_set() != 0 {
            // SAFETY: our own timer.
            unsafe { ngx_del_timer(&mut self.timer) };
        }
        // SAFETY: our own event, alive as long as `self`.
        unsafe { ngx::ffi::ngx_add_timer(&mut self.timer, delay_ms as ngx_msec_t) };
    }

    /// The request of the next poll; `blocking`: a long poll may be used.
    fn next_request(&mut self, blocking: bool) -> Vec<u8> {
        self.watching = false;
        self.authenticating = false;
        if self.conf.kind == RegistryKind::EtcdV3 {
            let prefix = &self.conf.path;
            let json = ("Content-Type", "application/json");
            if let (Some(user), Some(password), None) =
                (&self.conf.user, &self.conf.password, &self.v3_token)
            {
                self.authenticating = true;
                let body = etcdv3::auth_request(user, password);
                return build_request(
                    "POST",
                    &self.conf.authority,
                    "/v3/auth/authenticate",
                    &[json],
                    body.as_bytes(),
                );
            }
            let (target, body) = match self.v3_revision.filter(|_| blocking) {
                Some(rev) => {
                    self.watching = true;
                    self.v3_line.clear();
                    ("/v3/watch", etcdv3::watch_request(prefix, rev + 1))
                }
                None => ("/v3/kv/range", etcdv3::range_request(prefix)),
            };
            let mut headers = vec![json];
            if let Some(token) = &self.v3_token {
                headers.push(("Authorization", token));
            }
            return build_request(
                "POST",
                &self.conf.authority,
                target,
                &headers,
                body.as_bytes(),
            );
        }
        let target = if self.conf.kind == RegistryKind::Etcd {
            let sep = if self.conf.path.contains('?') {
                '&'
            } else {
                '?'
            };
            match self.etcd_wait.filter(|_| blocking) {
                Some(n) => {
                    self.watching = true;
                    format!(
                        "{}{sep}wait=true&recursive=true&waitIndex={n}",
                        self.conf.path
                    )
                }
                None => format!("{}{sep}recursive=true", self.conf.path),
            }
        } else {
            let index = if blocking {
                self.index.next_request_index()
            } else {
                0
            };
            consul::poll_target(
                &self.conf.path,
                consul_kind(self.conf.kind),
                index,
                self.wait_secs(),
            )
        };
        let basic;
        let mut headers: Vec<(&str, &str)> = Vec::new();
        if let Some(token) = &self.conf.token {
            headers.push(("X-Consul-Token", token));
        }
        if let (Some(user), Some(password)) = (&self.conf.user, &self.conf.password) {
            basic = format!("Basic {}", B64.encode(format!("{user}:{password}")));
            headers.push(("Authorization", &basic));
        }
        build_request("GET", &self.conf.authority, &target, &headers, b"")
    }

    /// Consul holds a blocking query up to `wait` plus wait/16: keep that
    /// within `upsync_timeout`, with a second to spare.
    fn wait_secs(&self) -> u64 {
        let timeout_s = self.conf.timeout_ms / 1000;
        (timeout_s.saturating_sub(1) * 16 / 17).clamp(1, 600)
    }

    fn poll(&mut self) {
        if exiting() {
            return;
        }
        let request = self.next_request(true);
        self.pacer.started(now_ms());
        let me: *mut Upstream = self;
        // SAFETY: the upstream is boxed and lives until the worker exits,
        // where `stop` closes the exchange first.
        unsafe {
            Fetch::start(
                me,
                request,
                MAX_BODY,
                CONNECT_TIMEOUT_MS.min(self.conf.timeout_ms) as ngx_msec_t,
                self.conf.timeout_ms as ngx_msec_t,
                self.watching && self.conf.kind == RegistryKind::EtcdV3,
            )
        };
    }

    /// `strong_dependency=on`: a plain read before the worker serves, bounded
    /// by `upsync_timeout` and by what is left of the worker's
    /// [`STRONG_BUDGET_MS`] for all its upstreams together. On failure the
    /// worker serves the list it has and says so.
    fn pull_before_serving(&mut self) {
        let now = std::time::Instant::now();
        let deadline = STRONG_DEADLINE.with(|d| {
            let deadline = d
                .get()
                .unwrap_or(now + std::time::Duration::from_millis(STRONG_BUDGET_MS));
            d.set(Some(deadline));
            deadline
        });
        // Two exchanges when the first one only authenticates (etcd v3).
        for _ in 0..2 {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            if left.as_millis() == 0 {
                log!(
                    NGX_LOG_ERR,
                    cycle_log(),
                    "upstream \"{}\": strong_dependency: the worker has waited {} ms for its \
                     registries before serving, its limit for all upstreams: serving the list it has",
                    self.name,
                    STRONG_BUDGET_MS
                );
                return;
            }
            let bound = left.min(std::time::Duration::from_millis(self.conf.timeout_ms));
            let request = self.next_request(false);
            let authenticating = self.authenticating;
            match super::blocking::exchange(self.registry, &request, bound, MAX_BODY) {
                Ok(parser) => {
                    self.handle_response(&parser);
                    if authenticating && self.v3_token.is_some() {
                        continue;
                    }
                    log!(
                        NGX_LOG_NOTICE,
                        cycle_log(),
                        "upstream \"{}\": strong_dependency: registry answered {} before serving",
                        self.name,
                        parser.status().unwrap_or(0)
                    );
                }
                Err(e) => log!(
                    NGX_LOG_ERR,
                    cycle_log(),
                    "upstream \"{}\": strong_dependency: registry {} unreachable ({}), serving the list it has",
                    self.name,
                    self.conf.authority,
                    e
                ),
            }
            break;
        }
    }

    /// One registry answer: check it, parse it, apply it. Says when to poll
    /// next.
    fn handle_response(&mut self, parser: &ResponseParser) -> Next {
        match self.conf.kind {
            RegistryKind::Etcd => self.handle_etcd(parser),
            RegistryKind::EtcdV3 => self.handle_etcd_v3(parser),
            _ => self.handle_consul(parser),
        }
    }

    fn handle_consul(&mut self, parser: &ResponseParser) -> Next {
        let status = parser.status().unwrap_or(0);
        let header_index = header_u64(parser, "X-Consul-Index");
        if status == 404 {
            // Every key under the prefix is gone: keep serving, and block on
            // the prefix so that its return is seen at once.
            self.index.observe(header_index);
            self.log_nothing_under();
            return Next::Interval;
        }
        if status != 200 {
            self.index.reset();
            self.log_bad_status(status, parser.body());
            return Next::Retry;
        }
        if self.index.observe(header_index) {
            let parsed = match self.conf.kind {
                RegistryKind::ConsulServices => consul::parse_catalog(parser.body()),
                RegistryKind::ConsulHealth => consul::parse_health(parser.body()),
                _ => consul::parse_kv(kv_prefix(&self.conf.path), parser.body()),
            };
            if !self.use_answer(parsed) {
                // Not blocking on this index: the refused list is read and
                // tried again after the interval, even if it does not change.
                self.index.reset();
                return Next::Retry;
            }
        }
        Next::Interval
    }

    /// etcd v2, as the C module does it but corrected: a full read, then a
    /// watch from the read's index + 1; any event, or history cleared
    /// (errorCode 401), leads to a new full read at once.
    fn handle_etcd(&mut self, parser: &ResponseParser) -> Next {
        let status = parser.status().unwrap_or(0);
        let body = parser.body();
        if std::mem::take(&mut self.watching) {
            self.etcd_wait = None;
            if status == 200 {
                return match etcd::v2_event_index(body) {
                    Ok(_) => Next::Now,
                    Err(e) => {
                        self.log_unusable(&e);
                        Next::Retry
                    }
                };
            }
            if matches!(etcd::v2_error(body), Some((401, _))) {
                log!(
                    NGX_LOG_INFO,
                    cycle_log(),
                    "upstream \"{}\": etcd history was cleared, reading the list again",
                    self.name
                );
                return Next::Now;
            }
            self.log_bad_status(status, body);
            return Next::Retry;
        }
        let next_wait = header_u64(parser, "X-Etcd-Index").and_then(|i| i.checked_add(1));
        match status {
            200 => {
                if !self.use_answer(etcd::parse_v2_dir(body)) {
                    // No watch: the refused list is read again.
                    return Next::Retry;
                }
            }
            404 => self.log_nothing_under(),
            _ => {
                self.log_bad_status(status, body);
                return Next::Retry;
            }
        }
        self.etcd_wait = next_wait;
        if next_wait.is_some() {
            Next::Now
        } else {
            Next::Interval
        }
    }

    /// etcd v3: a range read, then a streaming watch from its revision + 1
    /// whose events are applied as they come (`fetch_data`). The end of the
    /// stream, compaction, cancellation or an error lead to a new read.
    fn handle_etcd_v3(&mut self, parser: &ResponseParser) -> Next {
        let status = parser.status().unwrap_or(0);
        if std::mem::take(&mut self.authenticating) {
            return match etcdv3::parse_auth(parser.body()) {
                Ok(token) => {
                    self.v3_token = Some(token);
                    self.token_fresh = true;
                    Next::Now
                }
                Err(e) => {
                    log!(
                        NGX_LOG_ERR,
                        cycle_log(),
                        "upstream \"{}\": etcd authentication as \"{}\" failed ({}), keeping the last list",
                        self.name,
                        self.conf.user.as_deref().unwrap_or(""),
                        e
                    );
                    Next::Retry
                }
            };
        }
        if self.conf.user.is_some() && etcdv3::needs_auth(status, parser.body()) {
            // The token expired or was revoked: authenticate again, at once
            // unless the token was brand new.
            self.v3_token = None;
            self.watching = false;
            self.v3_revision = None;
            if std::mem::take(&mut self.token_fresh) {
                self.log_bad_status(status, parser.body());
                return Next::Retry;
            }
            log!(
                NGX_LOG_INFO,
                cycle_log(),
                "upstream \"{}\": etcd refused the token, authenticating again",
                self.name
            );
            return Next::Now;
        }
        if status == 200 {
            self.token_fresh = false;
        }
        if std::mem::take(&mut self.watching) {
            self.v3_revision = None;
            if status != 200 {
                self.log_bad_status(status, parser.body());
                return Next::Retry;
            }
            let rest = parser.body().to_vec();
            return match self.watch_data(rest) {
                Watch::Ended(next) => next,
                Watch::Open { .. } => Next::Now,
            };
        }
        if status != 200 {
            self.log_bad_status(status, parser.body());
            return Next::Retry;
        }
        match etcdv3::parse_range(parser.body()) {
            Ok((revision, keys)) => {
                self.v3_keys = keys;
                if !self.apply_v3_keys() {
                    // No watch: the refused list is read again.
                    return Next::Retry;
                }
                self.v3_revision = Some(revision);
                Next::Now
            }
            Err(e) => {
                self.log_unusable(&e);
                Next::Retry
            }
        }
    }

    /// False when the list they make was refused.
    fn apply_v3_keys(&mut self) -> bool {
        let parsed = etcdv3::servers(&self.conf.path, &self.v3_keys);
        if parsed.servers.is_empty() && self.v3_keys.is_empty() {
            self.log_nothing_under();
            return true;
        }
        self.use_answer(Ok(parsed))
    }

    /// Lines of an etcd v3 watch stream. A watch that ended lets go of its
    /// partial line.
    fn watch_data(&mut self, data: Vec<u8>) -> Watch {
        let watch = self.watch_lines(data);
        if matches!(watch, Watch::Ended(_)) {
            self.v3_line.clear();
        }
        watch
    }

    fn watch_lines(&mut self, data: Vec<u8>) -> Watch {
        let lines = match self.v3_line.push(&data) {
            Ok(lines) => lines,
            Err(e) => {
                log!(
                    NGX_LOG_ERR,
                    cycle_log(),
                    "upstream \"{}\": etcd watch: {}, reading the list again",
                    self.name,
                    e
                );
                self.v3_revision = None;
                return Watch::Ended(Next::Retry);
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
                    self.v3_revision = Some(revision);
                    if events.is_empty() {
                        continue;
                    }
                    for event in events {
                        match event {
                            Event::Put(key, value) => self.v3_keys.insert(key, value),
                            Event::Delete(key) => self.v3_keys.remove(&key),
                        };
                    }
                    if !self.apply_v3_keys() {
                        self.v3_revision = None;
                        return Watch::Ended(Next::Retry);
                    }
                }
                Ok(WatchMessage::Ended(why)) => {
                    log!(
                        NGX_LOG_INFO,
                        cycle_log(),
                        "upstream \"{}\": etcd watch ended ({}), reading the list again",
                        self.name,
                        why
                    );
                    self.v3_revision = None;
                    return Watch::Ended(Next::Now);
                }
                Err(e) => {
                    self.log_unusable(&e);
                    self.v3_revision = None;
                    return Watch::Ended(Next::Retry);
                }
            }
        }
        Watch::Open { progress }
    }

    /// Applies a parsed answer, logging what was wrong in it; false when it
    /// could not be used at all, or its list was refused.
    fn use_answer(&mut self, parsed: Result<Parsed, ParseError>) -> bool {
        match parsed {
            Ok(parsed) => {
                for line in summary(&parsed.warnings) {
                    log!(
                        NGX_LOG_ERR,
                        cycle_log(),
                        "upstream \"{}\": {}",
                        self.name,
                        line
                    );
                }
                self.apply(&parsed.servers)
            }
            Err(e) => {
                self.log_unusable(&e);
                false
            }
        }
    }

    fn log_nothing_under(&self) {
        let path = path_only(&self.conf.path);
        let hint = match self.conf.kind.path_prefix() {
            Some(prefix) if !path.starts_with(prefix) => format!(
                " (the path looks wrong: an upsync_type={} path starts with {prefix})",
                self.conf.kind.name()
            ),
            _ => String::new(),
        };
        log!(
            NGX_LOG_WARN,
            cycle_log(),
            "upstream \"{}\": registry has nothing under {}{}, keeping the last list",
            self.name,
            path,
            hint
        );
    }

    fn log_bad_status(&self, status: u16, body: &[u8]) {
        log!(
            NGX_LOG_ERR,
            cycle_log(),
            "upstream \"{}\": registry answered {} for {}: {}, keeping the last list",
            self.name,
            status,
            path_only(&self.conf.path),
            excerpt(body, &self.secrets())
        );
    }

    /// What this upstream sends the registry that must never be logged: the
    /// Consul token, the etcd password, its basic credentials and v3 token.
    fn secrets(&self) -> Vec<String> {
        let mut out: Vec<String> = [&self.conf.token, &self.conf.password, &self.v3_token]
            .into_iter()
            .flatten()
            .cloned()
            .collect();
        if let (Some(user), Some(password)) = (&self.conf.user, &self.conf.password) {
            out.push(B64.encode(format!("{user}:{password}")));
        }
        out
    }

    fn log_unusable(&self, e: &ParseError) {
        log!(
            NGX_LOG_ERR,
            cycle_log(),
            "upstream \"{}\": unusable registry answer ({}), keeping the last list",
            self.name,
            e
        );
    }

    /// The list `desired` makes of `current`: `None` when nothing changes,
    /// an error when it is refused.
    fn merged(
        &self,
        current: &[Server],
        desired: &[Server],
        reversed: &mut bool,
    ) -> Result<Option<Vec<Server>>, ()> {
        match merge(current, desired, reversed) {
            Outcome::Unchanged => Ok(None),
            Outcome::RefusedEmpty => {
                log!(
                    NGX_LOG_ERR,
                    cycle_log(),
                    "upstream \"{}\": registry list is empty, cannot delete all peers: keeping the last list",
                    self.name
                );
                Err(())
            }
            Outcome::Changed(list) => Ok(Some(list)),
        }
    }

    /// The apply path shared by every registry type: false when the list
    /// was refused (and the last one kept).
    fn apply(&mut self, desired: &[Server]) -> bool {
        #[cfg(ngx_resolve_peers)]
        if self.shared.is_some() {
            return self.apply_shared(desired);
        }
        let current = self.lineage.current();
        // SAFETY: the current generation is live while it is current.
        let current = unsafe { &*current };
        let mut reversed = self.reversed;
        let list = match self.merged(&current.servers, desired, &mut reversed) {
            Ok(Some(list)) => list,
            Ok(None) => return true,
            Err(()) => return false,
        };
        self.reversed = reversed;
        let mut problems = Vec::new();
        // SAFETY: the current generation's lists are live.
        let source = unsafe { PeerSource::from_list((*self.lineage.current()).list()) };
        // SAFETY: the upstream and its name live as long as the cycle.
        let gen = Generation::build(
            &list,
            &source,
            unsafe { &mut (*self.uscf).host },
            &self.lineage,
            &mut problems,
        );
        for p in &problems {
            log!(
                NGX_LOG_ERR,
                cycle_log(),
                "upstream \"{}\": {}",
                self.name,
                p
            );
        }
        if gen.primary_count() == 0 {
            log!(
                NGX_LOG_ERR,
                cycle_log(),
                "upstream \"{}\": no usable primary server in the new list: keeping the last list",
                self.name
            );
            return false;
        }
        let gen = Box::into_raw(gen);
        let old = self.lineage.current();
        self.lineage.set_current(gen);
        // SAFETY: `gen` is live; requests from now on start on it. `old`
        // came from Box::into_raw and is not used here again.
        unsafe {
            (*self.uscf).peer.data = (*gen).list().cast();
            Generation::retire(old);
        }
        // SAFETY: `gen` is the live current generation.
        let servers = unsafe { &(*gen).servers };
        self.applied(servers);
        true
    }

    /// Zone mode: the poller changes the shared lists every worker uses.
    #[cfg(ngx_resolve_peers)]
    fn apply_shared(&mut self, desired: &[Server]) -> bool {
        use super::zone::{self, ApplyError};
        let Some(shared) = &self.shared else {
            return false;
        };
        // SAFETY: the cycle's election zone, mapped in every worker.
        let slot = unsafe { zone::slot(shared.election, shared.index) };
        // SAFETY: in zone mode `peer.data` is the upstream's shared list.
        let peers = unsafe { (*self.uscf).peer.data.cast() };
        // SAFETY: as above.
        let current = unsafe { zone::servers(peers) };
        let mut reversed = slot.reversed.load(std::sync::atomic::Ordering::Acquire);
        let list = match self.merged(&current, desired, &mut reversed) {
            Ok(Some(list)) => list,
            Ok(None) => return true,
            Err(()) => return false,
        };
        let mut problems = Vec::new();
        // SAFETY: this worker is the poller, the only writer of the list.
        let result = unsafe { zone::apply(peers, &list, &mut problems) };
        for p in &problems {
            log!(
                NGX_LOG_ERR,
                cycle_log(),
                "upstream \"{}\": {}",
                self.name,
                p
            );
        }
        match result {
            Ok(servers) => {
                slot.reversed
                    .store(reversed, std::sync::atomic::Ordering::Release);
                self.applied(&servers);
                return true;
            }
            Err(ApplyError::NoPrimary) => log!(
                NGX_LOG_ERR,
                cycle_log(),
                "upstream \"{}\": no usable primary server in the new list: keeping the last list",
                self.name
            ),
            Err(ApplyError::ZoneFull(n)) => log!(
                NGX_LOG_ERR,
                cycle_log(),
                "upstream \"{}\": its zone has no room for {} new servers: keeping the last list \
                 and trying again after the interval; make the zone larger",
                self.name,
                n
            ),
        }
        false
    }

    /// After a change: say so, and write the dump file.
    fn applied(&self, servers: &[Server]) {
        log!(
            NGX_LOG_NOTICE,
            cycle_log(),
            "upstream \"{}\": updated from the registry, {} servers",
            self.name,
            servers.len()
        );
        if self.writes_dump {
            if let Err(e) =
                dump::write_atomic(&self.dump_path, &dump::render(servers, self.backups))
            {
                log!(
                    NGX_LOG_ERR,
                    cycle_log(),
                    "upstream \"{}\": cannot write the dump file \"{}\": {}",
                    self.name,
                    self.dump_path,
                    e
                );
            }
        }
    }
}

impl FetchOwner for Upstream {
    fn fetch(&mut self) -> &mut Fetch {
        &mut self.fetch
    }

    fn fetch_data(&mut self, data: Vec<u8>) -> bool {
        match self.watch_data(data) {
            Watch::Open { progress } => progress,
            Watch::Ended(next) => {
                self.fetch.close();
                self.watching = false;
                self.schedule_next(next);
                false
            }
        }
    }

    fn fetch_done(&mut self, result: Result<ResponseParser, FetchError>) {
        let next = match result {
            Ok(parser) => self.handle_response(&parser),
            Err(FetchError::Closing) => return,
            // A watch that saw no event within upsync_timeout is renewed.
            Err(FetchError::TimedOut("read")) if std::mem::take(&mut self.watching) => {
                log!(
                    NGX_LOG_INFO,
                    cycle_log(),
                    "upstream \"{}\": etcd watch idle, renewing it",
                    self.name
                );
                Next::Now
            }
            Err(e) => {
                self.index.reset();
                self.etcd_wait = None;
                self.v3_revision = None;
                self.watching = false;
                log!(
                    NGX_LOG_ERR,
                    cycle_log(),
                    "upstream \"{}\": registry {}: {}, retrying in {} ms",
                    self.name,
                    self.conf.authority,
                    e,
                    self.retry_ms()
                );
                Next::Retry
            }
        };
        self.schedule_next(next);
    }
}

/// What a watch stream's data did.
enum Watch {
    /// The watch goes on; `progress`: a complete message arrived.
    Open { progress: bool },
    /// The watch is over; poll again then.
    Ended(Next),
}

/// When to poll next.
enum Next {
    /// At once: an etcd watch to start, or a full read after an event.
    Now,
    /// After `upsync_interval`: the registry answered.
    Interval,
    /// After a failure (no usable answer, or a list that was refused):
    /// after `upsync_interval`, and never at once.
    Retry,
}

impl Drop for Upstream {
    fn drop(&mut self) {
        self.stop();
        // SAFETY: the upstream's own generation; at cycle destruction no
        // request of this process runs any more.
        unsafe { Generation::retire(self.lineage.current()) };
        self.lineage.set_current(ptr::null_mut());
    }
}

#[cfg(ngx_resolve_peers)]
unsafe extern "C" fn on_election(ev: *mut ngx_event_t) {
    // SAFETY: the timer's data is its live boxed upstream.
    let up = unsafe { (*ev).data.cast::<Upstream>() };
    let r = catch_unwind(AssertUnwindSafe(|| {
        // SAFETY: as above; nothing else borrows it during the handler.
        unsafe { (*up).elect() }
    }));
    if r.is_err() {
        log!(NGX_LOG_ALERT, cycle_log(), "election panicked, stopping it");
    }
}

unsafe extern "C" fn on_timer(ev: *mut ngx_event_t) {
    // SAFETY: the timer's data is its live boxed upstream.
    let up = unsafe { (*ev).data.cast::<Upstream>() };
    let r = catch_unwind(AssertUnwindSafe(|| {
        // SAFETY: as above; nothing else borrows it during the handler.
        unsafe { (*up).poll() }
    }));
    if r.is_err() {
        log!(
            NGX_LOG_ALERT,
            cycle_log(),
            "poll loop panicked, stopping it"
        );
    }
}

fn consul_kind(kind: RegistryKind) -> consul::Kind {
    match kind {
        RegistryKind::ConsulServices => consul::Kind::Catalog,
        RegistryKind::ConsulHealth => consul::Kind::Health,
        _ => consul::Kind::Kv,
    }
}

/// `/v1/kv/upstreams/test/?dc=x` -> `upstreams/test/`.
fn kv_prefix(path: &str) -> &str {
    let path = path_only(path);
    path.strip_prefix("/v1/kv/").unwrap_or(path)
}

fn header_u64(parser: &ResponseParser, name: &str) -> Option<u64> {
    parser.header(name).and_then(|v| v.parse().ok())
}

fn path_only(path: &str) -> &str {
    path.split('?').next().unwrap_or(path)
}

/// nginx's cached monotonic clock, in milliseconds.
fn now_ms() -> u64 {
    // SAFETY: a process-wide value nginx updates in its event loop.
    unsafe { ngx::ffi::ngx_current_msec as u64 }
}

fn exiting() -> bool {
    // SAFETY: process-wide flags nginx sets from its signal handlers and
    // event loop; reading them is what nginx's own modules do.
    unsafe { ngx_exiting != 0 || ngx_quit != 0 || ngx_terminate != 0 }
}

pub(crate) fn cycle_log() -> *mut ngx_log_t {
    // SAFETY: the running cycle and its log outlive every caller.
    unsafe { (*ngx_cycle).log }
}
