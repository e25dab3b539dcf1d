//! The poller of one synced upstream in one process: its timer, its
//! exchange with the registry, the registry's session (the protocol, in
//! `crate::registry::session`) and the apply path every registry type
//! shares, onto the upstream's peer lists (per worker in `generation`,
//! shared in `zone`).

use std::ffi::c_void;
use std::net::SocketAddr;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::ptr;
use std::rc::Rc;

use ngx::ffi::{
    ngx_del_timer, ngx_event_t, ngx_exiting, ngx_http_upstream_init_peer_pt,
    ngx_http_upstream_srv_conf_t, ngx_msec_t, ngx_quit, ngx_terminate, ngx_uint_t, NGX_LOG_ALERT,
    NGX_LOG_DEBUG, NGX_LOG_ERR, NGX_LOG_INFO, NGX_LOG_NOTICE, NGX_LOG_WARN,
};

use super::generation::{Generation, Lineage, PeerSource, SockAddr};
use super::net::exchange::{Fetch, FetchOwner};
use super::peers::ApplyOutcome;
use super::resolve::{Names, Resolver};
use super::stats::Cells;
use super::{cycle_log, log};
use crate::conf::UpsyncConf;
use crate::dump;
use crate::endpoints::Endpoints;
use crate::http::ResponseParser;
use crate::names;
use crate::pace::Pacer;
use crate::registry::session::{retry_ms, Applied, Failure, Level, Next, Session, Sink, Stream};
use crate::server::Server;
use crate::status::{Mode, Record, Sync};

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

/// One address of the registry, resolved when nginx read its configuration.
#[derive(Clone, Debug)]
pub(crate) struct Address {
    pub(crate) addr: SocketAddr,
    /// `host:port` as configured: the `Host` header.
    pub(crate) authority: String,
    /// Its host as configured (brackets kept for IPv6): what TLS verifies.
    pub(crate) host: String,
    /// How messages name it: the authority, with the address when the name
    /// has several.
    pub(crate) label: String,
}

pub(crate) struct Poller {
    uscf: *mut ngx_http_upstream_srv_conf_t,
    /// The upstream's name, for messages.
    name: String,
    conf: UpsyncConf,
    /// The registry's addresses and which one is in use.
    registry: Vec<Address>,
    endpoints: Endpoints,
    /// The endpoint the exchange was last pointed at.
    peer_set: Option<usize>,
    /// `https://`: the TLS context and what the connections verify.
    tls: Option<(super::net::tls::Ctx, crate::conf::TlsConf)>,
    dump_path: String,
    /// Its per-worker lists: the current one (`uscf->peer.data` points
    /// into it) and the connections open across them.
    lineage: Rc<Lineage>,
    /// The balancer's own `peer.init`, which our wrapper calls.
    pub(crate) original_init_peer: ngx_http_upstream_init_peer_pt,
    /// The first change that adds or removes servers reverses the list once.
    reversed: bool,
    /// The registry's protocol (`None` only while it handles an event).
    session: Option<Session>,
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
    /// Its sync figures in shared memory (one cell, or one per worker
    /// slot); what the cell held when this process began to write it, which
    /// its own figures add to; when it last wrote the dump.
    cells: Option<Cells>,
    base: Option<Record>,
    dump_written_ms: Option<u64>,
    /// The registry's list as it gave it, host names and all (the upstream
    /// serves their addresses); at start, the dump file's entries.
    view: Vec<Server>,
    /// Its host names and their addresses, resolved in the process that
    /// polls; `dns_changed` runs when an answer changed some.
    names: Names,
    dns_changed: ngx_event_t,
    /// The names without an address the dump file holds.
    dumped_unresolved: Vec<Server>,
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

impl Poller {
    /// Takes over `uscf` with a first generation built from `initial`;
    /// `view` stands for the registry's list until it answers.
    ///
    /// # Safety
    /// `uscf` must be a live upstream whose `peer.data` is a round-robin list.
    #[allow(clippy::too_many_arguments)]
    pub(crate) unsafe fn install(
        uscf: *mut ngx_http_upstream_srv_conf_t,
        conf: UpsyncConf,
        dump_path: String,
        registry: Vec<Address>,
        initial: &[Server],
        view: Vec<Server>,
        resolver: Option<Resolver>,
        #[cfg(ngx_resolve_peers)] shared: Option<Shared>,
        problems: &mut Vec<String>,
    ) -> Box<Poller> {
        // SAFETY: per the contract.
        let u = unsafe { &mut *uscf };
        let name = String::from_utf8_lossy(u.host.as_bytes()).into_owned();
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
        let fetch = Fetch::new(
            SockAddr::from_socket_addr(registry[0].addr),
            &registry[0].label,
        );
        let session = Session::new(conf.clone(), MAX_BODY);
        let endpoints = Endpoints::new(registry.iter().map(|a| a.label.clone()).collect(), 1);
        let names = Names::new(&name, resolver);
        Box::new(Poller {
            uscf,
            name,
            conf,
            registry,
            endpoints,
            peer_set: None,
            tls: None,
            dump_path,
            lineage,
            original_init_peer: u.peer.init,
            reversed: false,
            session: Some(session),
            writes_dump: false,
            backups: u.flags & ngx::ffi::NGX_HTTP_UPSTREAM_BACKUP as ngx_uint_t != 0,
            // SAFETY: all-zero is the initial state of an nginx event.
            timer: unsafe { std::mem::zeroed() },
            fetch,
            pacer: Pacer::default(),
            started: false,
            cells: None,
            base: None,
            dump_written_ms: None,
            view,
            names,
            // SAFETY: all-zero is the initial state of an nginx event.
            dns_changed: unsafe { std::mem::zeroed() },
            dumped_unresolved: Vec::new(),
            #[cfg(ngx_resolve_peers)]
            shared,
        })
    }

    /// `https://`: the TLS context its exchanges use.
    pub(crate) fn set_tls(&mut self, ctx: super::net::tls::Ctx, conf: crate::conf::TlsConf) {
        self.tls = Some((ctx, conf));
    }

    /// Where its sync figures go.
    pub(crate) fn set_cells(&mut self, cells: Option<Cells>) {
        self.cells = cells;
    }

    /// Its per-worker lists.
    pub(crate) fn lineage(&self) -> &Lineage {
        &self.lineage
    }

    /// Starts polling in this worker. `writes_dump`: this process owns the
    /// dump file.
    pub(crate) fn start(&mut self, writes_dump: bool) {
        // SAFETY: a process-wide value: the jitter differs between workers.
        let pid = unsafe { ngx::ffi::ngx_pid } as u64;
        self.endpoints
            .seed(pid.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ wall_ms());
        let me: *mut Poller = self;
        self.timer.handler = Some(on_timer);
        self.timer.data = me.cast::<c_void>();
        self.timer.log = cycle_log();
        self.timer.set_cancelable(1);
        self.dns_changed.handler = Some(on_dns_changed);
        self.dns_changed.data = me.cast::<c_void>();
        self.dns_changed.log = cycle_log();
        self.dns_changed.set_cancelable(1);
        self.names.notify(&mut self.dns_changed);
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
        self.follow_names();
        self.publish();
        if self.conf.strong_dependency {
            self.pull_before_serving();
        }
        self.schedule(0);
    }

    /// Ends the poll loop: no timer, no exchange under way, no name
    /// resolved.
    fn stop_polling(&mut self) {
        for timer in [&mut self.timer, &mut self.dns_changed] {
            if timer.timer_set() != 0 {
                // SAFETY: our own timer, set in the running event loop.
                unsafe { ngx_del_timer(timer) };
            }
        }
        self.fetch.close();
        self.names.clear();
        self.started = false;
    }

    /// The servers the upstream serves now (the poller's own list).
    fn current_servers(&self) -> Vec<Server> {
        #[cfg(ngx_resolve_peers)]
        if self.shared.is_some() {
            // SAFETY: in zone mode `peer.data` is the upstream's live shared
            // list.
            return unsafe { super::zone::servers((*self.uscf).peer.data.cast()) };
        }
        // SAFETY: the lineage's current generation is live while current.
        unsafe { (*self.lineage.current()).servers.clone() }
    }

    /// Resolves the host names of the registry's list from now on, each
    /// starting with the addresses the upstream serves for it.
    fn follow_names(&mut self) {
        let known = names::known_addresses(&self.current_servers());
        for p in self.names.follow(&self.view, &known) {
            log!(
                NGX_LOG_WARN,
                cycle_log(),
                "upstream \"{}\": {}",
                self.name,
                p
            );
        }
    }

    /// The upstream's list for the registry's: each host name replaced by
    /// its addresses.
    fn expanded(&self) -> Vec<Server> {
        names::expand(&self.view, |name| self.names.addresses(name))
    }

    /// Host names of the registry's list that have no address yet.
    fn unresolved(&self) -> Vec<Server> {
        self.view
            .iter()
            .filter(|s| {
                crate::registry::is_host_name(&s.name)
                    && self.names.addresses(&s.name).map_or(true, <[_]>::is_empty)
            })
            .cloned()
            .collect()
    }

    /// An answer of the resolver changed some addresses: the list again.
    fn dns_changed(&mut self) {
        if !self.started || exiting() {
            return;
        }
        let list = self.expanded();
        if list.is_empty() {
            return;
        }
        self.apply_list(&list, "the addresses of its host names changed");
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
                unsafe { super::zone::slot(shared.election, shared.index) }
                    .lease
                    .resign();
            }
        }
    }

    /// Zone mode: takes, keeps or leaves the poller role; runs every
    /// election tick in every worker.
    #[cfg(ngx_resolve_peers)]
    fn elect(&mut self) {
        use super::election::{Role, ELECTION_TICK_MS};
        let Some(shared) = &mut self.shared else {
            return;
        };
        if exiting() {
            return;
        }
        // SAFETY: the cycle's election zone, mapped in every worker.
        let role = unsafe { super::zone::slot(shared.election, shared.index) }
            .lease
            .elect();
        // SAFETY: our own event, alive as long as `self`.
        unsafe { ngx::ffi::ngx_add_timer(&mut shared.timer, ELECTION_TICK_MS as ngx_msec_t) };
        if role == Role::Poller(true) {
            log!(
                NGX_LOG_NOTICE,
                cycle_log(),
                "upstream \"{}\": this worker polls {} for every worker",
                self.name,
                self.authorities()
            );
            self.writes_dump = true;
            self.started = true;
            self.base = None;
            self.follow_names();
            self.publish();
            self.schedule(0);
        } else if role == Role::Follower && self.started {
            // Another worker took over (this one was silent too long): it
            // polls now, this one stops.
            log!(
                NGX_LOG_NOTICE,
                cycle_log(),
                "upstream \"{}\": another worker polls {} now",
                self.name,
                self.authorities()
            );
            self.stop_polling();
            self.writes_dump = false;
        }
    }

    /// The registry as configured: its addresses, comma separated.
    fn authorities(&self) -> String {
        self.conf
            .endpoints
            .iter()
            .map(|e| e.authority.as_str())
            .collect::<Vec<_>>()
            .join(",")
    }

    /// The endpoint the next poll goes to, told to the exchange and the
    /// session; a change is logged with its reason.
    fn use_endpoint(&mut self) -> &Address {
        if let Some(message) = self.endpoints.pick(now_ms()) {
            log!(
                NGX_LOG_NOTICE,
                cycle_log(),
                "upstream \"{}\": {}",
                self.name,
                message
            );
        }
        let current = self.endpoints.current();
        let address = &self.registry[current];
        if self.peer_set != Some(current) {
            self.peer_set = Some(current);
            let tls = self
                .tls
                .as_ref()
                .map(|(ctx, conf)| super::net::tls::Peer::new(*ctx, conf, &address.host));
            self.fetch.set_peer(
                SockAddr::from_socket_addr(address.addr),
                &address.label,
                tls,
            );
            if let Some(session) = self.session.as_mut() {
                session.set_endpoint(&address.label);
            }
        }
        address
    }

    /// Schedules the poll after the session said `next`. A registry that
    /// answers resets the backoff; a failure of the endpoint in use moves to
    /// the next endpoint, or backs off when every one has failed.
    fn schedule_next(&mut self, next: Next) {
        let failed = self.session.as_ref().is_some_and(Session::endpoint_failed);
        let delay = match next {
            Next::Now | Next::Interval => {
                self.endpoints.succeeded();
                if next == Next::Now {
                    0
                } else {
                    self.conf.interval_ms
                }
            }
            Next::Retry if failed => {
                let failed = self.endpoints.current();
                let after = self.endpoints.failed(now_ms(), self.conf.interval_ms);
                if after.delay_ms != retry_ms(self.conf.interval_ms) {
                    log!(
                        NGX_LOG_WARN,
                        cycle_log(),
                        "upstream \"{}\": registry {} failed{}",
                        self.name,
                        self.endpoints.name(failed),
                        after.note
                    );
                }
                after.delay_ms
            }
            Next::Retry => retry_ms(self.conf.interval_ms),
        };
        self.schedule(delay);
    }

    /// Runs `f` on the session, with this upstream as its sink: `None`
    /// when the session is already busy (no such path exists).
    fn with_session<R>(&mut self, f: impl FnOnce(&mut Session, &mut dyn Sink) -> R) -> Option<R> {
        // The session is moved out for the call: the sink is the rest of
        // the upstream.
        let mut session = self.session.take()?;
        let r = f(&mut session, self);
        self.session = Some(session);
        self.publish();
        Some(r)
    }

    /// Zone mode: one poller for every worker.
    fn zoned(&self) -> bool {
        #[cfg(ngx_resolve_peers)]
        return self.shared.is_some();
        #[cfg(not(ngx_resolve_peers))]
        false
    }

    /// Writes this process's sync figures to its cell.
    fn publish(&mut self) {
        let (Some(cells), Some(session)) = (self.cells, &self.session) else {
            return;
        };
        // SAFETY: process-wide values nginx sets at the worker's start.
        let (slot, pid) = unsafe { (ngx::ffi::ngx_worker, ngx::ffi::ngx_pid as u64) };
        let slot = if self.zoned() { 0 } else { slot };
        // SAFETY: a worker (or the single process) of the cycle whose
        // configuration declared the zone.
        let Some(cell) = (unsafe { cells.cell(slot) }) else {
            return;
        };
        let st = session.status();
        // A respawned worker, or a new zone poller, goes on from the cell's
        // figures: counters stay counters.
        let base = self.base.get_or_insert_with(|| {
            let mut old = cell.read(slot);
            old.syncs = old.syncs.saturating_sub(st.syncs);
            old.changes = old.changes.saturating_sub(st.changes);
            for (o, e) in old.errors.iter_mut().zip(st.errors) {
                *o = o.saturating_sub(e);
            }
            old
        });
        let (wall, mono) = (wall_ms(), now_ms());
        let wall_of = |t: u64| wall.saturating_sub(mono.saturating_sub(t));
        let mut errors = base.errors;
        for (e, mine) in errors.iter_mut().zip(st.errors) {
            *e += mine;
        }
        let record = Record {
            worker: slot,
            pid,
            position: st.position.or(base.position),
            syncs: base.syncs + st.syncs,
            changes: base.changes + st.changes,
            errors,
            last_ok: if st.last_sync_ms.is_some() || st.last_error_ms.is_some() {
                st.last_ok
            } else {
                base.last_ok
            },
            last_sync_ms: st.last_sync_ms.map(wall_of).or(base.last_sync_ms),
            last_change_ms: st.last_change_ms.map(wall_of).or(base.last_change_ms),
            last_error: st
                .last_error_ms
                .zip(st.last_error)
                .map(|(t, text)| (wall_of(t), text))
                .or(base.last_error.clone()),
            dump_written_ms: self.dump_written_ms.or(base.dump_written_ms),
        };
        // A session reading the list again has no position: the last one
        // stays.
        base.position = record.position;
        cell.write(&record);
    }

    /// What `upstream_show` says of the sync: the figures of every cell.
    pub(crate) fn sync_view(&self) -> Sync {
        let mode = if self.zoned() {
            Mode::Zone
        } else {
            Mode::Worker
        };
        let mut records = Vec::new();
        if let Some(cells) = self.cells {
            let count = match mode {
                Mode::Zone => 1,
                Mode::Worker => cells.count.min(worker_processes()),
            };
            for i in 0..count {
                // SAFETY: a worker (or the single process) of the cycle
                // whose configuration declared the zone.
                if let Some(cell) = unsafe { cells.cell(i) } {
                    records.push(cell.read(i));
                }
            }
        }
        #[cfg(ngx_resolve_peers)]
        if let (Some(shared), Some(r)) = (&self.shared, records.first_mut()) {
            // The poller is whoever holds the election slot now.
            // SAFETY: the cycle's election zone, mapped in every worker.
            r.pid = unsafe { super::zone::slot(shared.election, shared.index) }
                .lease
                .owner_pid();
        }
        Sync {
            kind: self.conf.kind.name(),
            registry: format!(
                "{}{}{}",
                if self.conf.tls { "https://" } else { "" },
                self.authorities(),
                self.conf.path.split('?').next().unwrap_or_default()
            ),
            mode,
            interval_ms: self.conf.interval_ms,
            timeout_ms: self.conf.timeout_ms,
            dump_path: self.dump_path.clone(),
            records,
        }
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

    fn poll(&mut self) {
        if exiting() {
            return;
        }
        let authority = self.use_endpoint().authority.clone();
        let Some(request) = self.session.as_mut().map(|s| s.next_request(true)) else {
            return;
        };
        log!(
            NGX_LOG_DEBUG,
            cycle_log(),
            "upstream \"{}\": polling {} {}",
            self.name,
            self.endpoints.name(self.endpoints.current()),
            request.target
        );
        self.pacer.started(now_ms());
        let me: *mut Poller = self;
        // SAFETY: the upstream is boxed and lives until the worker exits,
        // where `stop` closes the exchange first.
        unsafe {
            Fetch::start(
                me,
                request.to_bytes(&authority),
                MAX_BODY,
                CONNECT_TIMEOUT_MS.min(self.conf.timeout_ms) as ngx_msec_t,
                self.conf.timeout_ms as ngx_msec_t,
                request.streaming,
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
        // Two exchanges when the first one only authenticates, and one more
        // for each other endpoint to fail over to.
        for _ in 0..2 + self.registry.len() {
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
            let address = self.use_endpoint().clone();
            let Some(session) = self.session.as_mut() else {
                return;
            };
            let request = session.next_request(false);
            let authenticating = session.authenticating();
            let bytes = request.to_bytes(&address.authority);
            match super::net::blocking::exchange(address.addr, &bytes, bound, MAX_BODY) {
                Ok(parser) => {
                    let next = self
                        .with_session(|session, sink| session.on_response(&parser, now_ms(), sink));
                    let next = next.unwrap_or(Next::Retry);
                    if authenticating && next == Next::Now {
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
                Err(e) => {
                    let why = match e {
                        Failure::TimedOut(_) => {
                            format!("no answer within {} ms", bound.as_millis())
                        }
                        e => e.to_string(),
                    };
                    let after = self.endpoints.failed(now_ms(), self.conf.interval_ms);
                    if after.delay_ms == 0 {
                        log!(
                            NGX_LOG_ERR,
                            cycle_log(),
                            "upstream \"{}\": strong_dependency: registry {} unreachable ({}){}",
                            self.name,
                            address.label,
                            why,
                            after.note
                        );
                        continue;
                    }
                    log!(
                        NGX_LOG_ERR,
                        cycle_log(),
                        "upstream \"{}\": strong_dependency: registry {} unreachable ({}), serving the list it has",
                        self.name,
                        address.label,
                        why
                    )
                }
            }
            break;
        }
    }

    /// The apply path shared by every registry type: the registry's list,
    /// its host names replaced by their addresses, goes to the upstream's
    /// peer lists (per worker, or shared in a zone), and what that did is
    /// said once, here.
    fn apply(&mut self, desired: &[Server]) -> Applied {
        self.view = desired.to_vec();
        self.follow_names();
        let list = self.expanded();
        // Only host names make an empty list of a registry's list that is not.
        if list.is_empty() && !desired.is_empty() {
            if self.names.can_resolve() {
                log!(
                    NGX_LOG_NOTICE,
                    cycle_log(),
                    "upstream \"{}\": its servers are host names without an address yet: \
                     keeping the last list until the resolver answers",
                    self.name
                );
                return Applied::Unchanged;
            }
            log!(
                NGX_LOG_ERR,
                cycle_log(),
                "upstream \"{}\": its servers are host names, and no \"resolver\" is \
                 configured: keeping the last list",
                self.name
            );
            return Applied::Refused;
        }
        let applied = self.apply_list(&list, "updated from the registry");
        if applied == Applied::Unchanged && self.unresolved() != self.dumped_unresolved {
            // Only names without an address changed: the dump keeps them.
            self.write_dump(&self.current_servers());
        }
        applied
    }

    /// `list` onto the peer lists; `what` says why, once it changed them.
    fn apply_list(&mut self, list: &[Server], what: &str) -> Applied {
        let mut problems = Vec::new();
        let outcome = self.apply_to_lists(list, &mut problems);
        for p in &problems {
            log!(
                NGX_LOG_ERR,
                cycle_log(),
                "upstream \"{}\": {}",
                self.name,
                p
            );
        }
        let refusal = match outcome {
            ApplyOutcome::Changed(servers) => {
                self.applied(&servers, what);
                return Applied::Changed;
            }
            ApplyOutcome::Unchanged => return Applied::Unchanged,
            ApplyOutcome::RefusedEmpty => {
                "registry list is empty, cannot delete all peers: keeping the last list".into()
            }
            ApplyOutcome::NoPrimary => {
                "no usable primary server in the new list: keeping the last list".into()
            }
            ApplyOutcome::ZoneFull(n) => format!(
                "its zone has no room for {n} new servers: keeping the last list \
                 and trying again after the interval; make the zone larger"
            ),
        };
        log!(
            NGX_LOG_ERR,
            cycle_log(),
            "upstream \"{}\": {}",
            self.name,
            refusal
        );
        Applied::Refused
    }

    fn apply_to_lists(&mut self, desired: &[Server], problems: &mut Vec<String>) -> ApplyOutcome {
        #[cfg(ngx_resolve_peers)]
        if let Some(shared) = &self.shared {
            // SAFETY: the cycle's election zone, mapped in every worker; in
            // zone mode `peer.data` is the upstream's shared list, and this
            // worker is the poller, its only writer.
            return unsafe {
                let slot = super::zone::slot(shared.election, shared.index);
                super::zone::apply_registry_list(
                    (*self.uscf).peer.data.cast(),
                    slot,
                    desired,
                    problems,
                )
            };
        }
        // SAFETY: a live upstream whose peer data is the lineage's current
        // generation.
        unsafe {
            super::generation::apply_registry_list(
                self.uscf,
                &self.lineage,
                &mut self.reversed,
                desired,
                problems,
            )
        }
    }

    /// After a change: say so, and write the dump file.
    fn applied(&mut self, servers: &[Server], what: &str) {
        log!(
            NGX_LOG_NOTICE,
            cycle_log(),
            "upstream \"{}\": {}, {} servers",
            self.name,
            what,
            servers.len()
        );
        self.write_dump(servers);
    }

    /// Writes the dump file, when this process owns it: `servers` and the
    /// names without an address yet.
    fn write_dump(&mut self, servers: &[Server]) {
        if self.writes_dump {
            let unresolved = self.unresolved();
            let text = dump::render(servers, &unresolved, self.backups);
            match dump::write_atomic(&self.dump_path, &text) {
                Ok(()) => {
                    self.dump_written_ms = Some(wall_ms());
                    self.dumped_unresolved = unresolved;
                }
                Err(e) => log!(
                    NGX_LOG_ERR,
                    cycle_log(),
                    "upstream \"{}\": cannot write the dump file \"{}\": {}",
                    self.name,
                    self.dump_path,
                    e
                ),
            }
        }
    }
}

impl Sink for Poller {
    fn apply(&mut self, servers: &[Server]) -> Applied {
        Poller::apply(self, servers)
    }

    fn log(&mut self, level: Level, message: &str) {
        let level = match level {
            Level::Error => NGX_LOG_ERR,
            Level::Warn => NGX_LOG_WARN,
            Level::Notice => NGX_LOG_NOTICE,
            Level::Info => NGX_LOG_INFO,
            Level::Debug => NGX_LOG_DEBUG,
        };
        log!(
            level,
            cycle_log(),
            "upstream \"{}\": {}",
            self.name,
            message
        );
    }
}

impl FetchOwner for Poller {
    fn fetch(&mut self) -> &mut Fetch {
        &mut self.fetch
    }

    fn fetch_data(&mut self, data: Vec<u8>) -> bool {
        let stream = self.with_session(|session, sink| session.on_stream(&data, now_ms(), sink));
        match stream.unwrap_or(Stream::Ended(Next::Retry)) {
            Stream::Open { progress } => progress,
            Stream::Ended(next) => {
                self.fetch.close();
                self.schedule_next(next);
                false
            }
        }
    }

    fn fetch_done(&mut self, result: Result<ResponseParser, Failure>) {
        let next = match result {
            Err(Failure::Closing) => return,
            Ok(parser) => self.with_session(|session, sink| {
                let next = session.on_response(&parser, now_ms(), sink);
                let at = session
                    .position()
                    .map_or(String::new(), |p| format!(", at {p}"));
                let message = format!(
                    "registry answered {}, {} bytes{at}",
                    parser.status().unwrap_or(0),
                    parser.body().len()
                );
                sink.log(Level::Debug, &message);
                next
            }),
            Err(e) => {
                let renews = self.session.as_ref().is_some_and(|s| s.renews(&e));
                if !renews {
                    let after = self.endpoints.failed(now_ms(), self.conf.interval_ms);
                    self.with_session(|session, sink| {
                        session.on_failure(&e, now_ms(), &after.note, sink)
                    });
                    self.schedule(after.delay_ms);
                    return;
                }
                self.with_session(|session, sink| session.on_failure(&e, now_ms(), "", sink))
            }
        };
        self.schedule_next(next.unwrap_or(Next::Retry));
    }
}

impl Drop for Poller {
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
    let up = unsafe { (*ev).data.cast::<Poller>() };
    let r = catch_unwind(AssertUnwindSafe(|| {
        // SAFETY: as above; nothing else borrows it during the handler.
        unsafe { (*up).elect() }
    }));
    if r.is_err() {
        log!(NGX_LOG_ALERT, cycle_log(), "election panicked, stopping it");
    }
}

unsafe extern "C" fn on_dns_changed(ev: *mut ngx_event_t) {
    // SAFETY: the timer's data is its live boxed upstream.
    let up = unsafe { (*ev).data.cast::<Poller>() };
    let r = catch_unwind(AssertUnwindSafe(|| {
        // SAFETY: as above; nothing else borrows it during the handler.
        unsafe { (*up).dns_changed() }
    }));
    if r.is_err() {
        log!(NGX_LOG_ALERT, cycle_log(), "applying DNS answers panicked");
    }
}

unsafe extern "C" fn on_timer(ev: *mut ngx_event_t) {
    // SAFETY: the timer's data is its live boxed upstream.
    let up = unsafe { (*ev).data.cast::<Poller>() };
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

/// nginx's cached wall clock, in Unix milliseconds.
pub(crate) fn wall_ms() -> u64 {
    // SAFETY: nginx keeps `ngx_cached_time` pointing at a live time slot,
    // updated in this process's event loop.
    unsafe {
        let t = &*ngx::ffi::ngx_cached_time;
        t.sec as u64 * 1000 + t.msec as u64
    }
}

/// The cycle's `worker_processes`.
fn worker_processes() -> usize {
    // SAFETY: the running cycle's core configuration, complete once workers
    // run.
    unsafe {
        let ctx = (*ngx::ffi::ngx_cycle).conf_ctx;
        let ccf = *ctx.add(ngx::ffi::ngx_core_module.index) as *const ngx::ffi::ngx_core_conf_t;
        (*ccf).worker_processes.max(1) as usize
    }
}

/// nginx's cached monotonic clock, in milliseconds.
pub(crate) fn now_ms() -> u64 {
    // SAFETY: a process-wide value nginx updates in its event loop.
    unsafe { ngx::ffi::ngx_current_msec as u64 }
}

pub(crate) fn exiting() -> bool {
    // SAFETY: process-wide flags nginx sets from its signal handlers and
    // event loop; reading them is what nginx's own modules do.
    unsafe { ngx_exiting != 0 || ngx_quit != 0 || ngx_terminate != 0 }
}
