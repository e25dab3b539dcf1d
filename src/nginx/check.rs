//! Active health checks (the `check` directives of nginx_upstream_check_module)
//! without patching nginx: one worker probes every checked server for all
//! workers, the results live in a shared memory zone of this module, and
//! every balancer skips a server the checks mark down.
//!
//! - **Who probes:** the worker that holds the zone's [`Lease`] (see
//!   `election`); another takes over when it exits. Probes are nonblocking
//!   connections on its event loop (`check/conn.rs`), at most
//!   [`MAX_IN_FLIGHT`] at once, each bounded by the check's `timeout`.
//! - **What it probes:** the servers of each checked upstream's current list
//!   (static, synced, per worker or shared), primary and backup, except
//!   those the configuration or the registry marks `down`.
//! - **State:** one [`Entry`] per (upstream, address) in the zone, written
//!   by the prober only: up or down, the rise and fall counts and the
//!   counters. Every change of a server's state bumps the header's `flips`.
//! - **Marking down:** bit 1 ([`HEALTH_DOWN`]) of `peer->down`, apart from
//!   the registry's bit 0, which `upstream_show`, the dump and the registry
//!   sync keep reading alone. Every stock balancer tests `down` as a whole.
//!   A worker's own lists take the bits in our `peer.init` wrapper when
//!   `flips` or the list changed; shared lists are written by the prober
//!   under their write lock.

mod conn;

use std::cell::Cell;
use std::collections::HashMap;
use std::ffi::c_void;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};

use ngx::ffi::{
    ngx_conf_t, ngx_del_timer, ngx_event_t, ngx_http_request_t, ngx_http_upstream_init_peer_pt,
    ngx_http_upstream_rr_peer_t, ngx_http_upstream_rr_peers_t, ngx_http_upstream_srv_conf_t,
    ngx_int_t, ngx_msec_t, ngx_shared_memory_add, ngx_shm_zone_t, ngx_slab_calloc, ngx_slab_pool_t,
    ngx_str_t, ngx_uint_t, NGX_ERROR, NGX_HTTP_INTERNAL_SERVER_ERROR, NGX_HTTP_NOT_ALLOWED,
    NGX_LOG_ERR, NGX_LOG_INFO, NGX_LOG_NOTICE, NGX_LOG_WARN, NGX_OK,
};
use ngx::http::{Method, Request};

use self::conn::{Conn, ProbeOwner, Started};
use super::election::{Lease, Role, ELECTION_TICK_MS};
use super::generation::PLACEHOLDER;
use super::poller::{now_ms, wall_ms};
use super::{cycle_log, guard, log};
use crate::check::conf::CheckSpec;
use crate::check::state::{PeerHealth, Transition};
use crate::check::status::{self, Format, Row};

/// The health bit of `peer->down` (bit 0 is the configuration's or the
/// registry's `down`).
pub(crate) const HEALTH_DOWN: ngx_uint_t = 2;
/// Probes open at once, at most.
const MAX_IN_FLIGHT: usize = 256;
/// How often the prober looks at its servers.
const TICK_MS: u64 = 100;
/// The longest server name kept for the status page.
const NAME_WORDS: usize = 8;

const ZONE_NAME: &[u8] = b"ngx_http_upsync_module_check";

/// Configuration loads in this master, 1 for the first: the status pages'
/// `generation`, as the C module counts it.
static GENERATION: AtomicU64 = AtomicU64::new(0);

#[repr(C)]
struct Header {
    lease: Lease,
    /// Bumped on every change of a server's state or of the set of entries.
    flips: AtomicU64,
    /// The next entry's registration number (status order).
    next_order: AtomicU64,
    capacity: AtomicU64,
}

/// One checked server, in shared memory; `key[0] == 0` is a free entry.
#[repr(C)]
struct Entry {
    /// Upstream index + 1 (high 32 bits), port, family; then the address.
    key: [AtomicU64; 3],
    down: AtomicU64,
    rise: AtomicU64,
    fall: AtomicU64,
    checks: AtomicU64,
    fails: AtomicU64,
    unhealthy: AtomicU64,
    last_passed: AtomicU64,
    downstart_ms: AtomicU64,
    downtime_ms: AtomicU64,
    order: AtomicU64,
    name_len: AtomicU64,
    name: [AtomicU64; NAME_WORDS],
}

type Key = [u64; 3];

fn key_of(upstream: usize, addr: &SocketAddr) -> Key {
    let head =
        |family: u64| ((upstream as u64 + 1) << 32) | (u64::from(addr.port()) << 16) | family;
    match addr {
        SocketAddr::V4(a) => [head(4), u64::from(u32::from(*a.ip())), 0],
        SocketAddr::V6(a) => {
            let b = a.ip().octets();
            let hi = u64::from_be_bytes(b[..8].try_into().unwrap_or_default());
            let lo = u64::from_be_bytes(b[8..].try_into().unwrap_or_default());
            [head(6), hi, lo]
        }
    }
}

impl Entry {
    fn key(&self) -> Key {
        let k0 = self.key[0].load(Ordering::Acquire);
        [
            k0,
            self.key[1].load(Ordering::Relaxed),
            self.key[2].load(Ordering::Relaxed),
        ]
    }

    fn health(&self) -> PeerHealth {
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        PeerHealth {
            down: get(&self.down) != 0,
            rise_count: get(&self.rise),
            fall_count: get(&self.fall),
            checks: get(&self.checks),
            fails: get(&self.fails),
            unhealthy: get(&self.unhealthy),
            last_passed: get(&self.last_passed) != 0,
            downstart_ms: get(&self.downstart_ms),
            downtime_ms: get(&self.downtime_ms),
        }
    }

    fn set_health(&self, h: &PeerHealth) {
        let set = |a: &AtomicU64, v: u64| a.store(v, Ordering::Relaxed);
        set(&self.rise, h.rise_count);
        set(&self.fall, h.fall_count);
        set(&self.checks, h.checks);
        set(&self.fails, h.fails);
        set(&self.unhealthy, h.unhealthy);
        set(&self.last_passed, u64::from(h.last_passed));
        set(&self.downstart_ms, h.downstart_ms);
        set(&self.downtime_ms, h.downtime_ms);
        self.down.store(u64::from(h.down), Ordering::Release);
    }

    fn name(&self) -> String {
        let len = (self.name_len.load(Ordering::Relaxed) as usize).min(NAME_WORDS * 8);
        let mut bytes = Vec::with_capacity(NAME_WORDS * 8);
        for w in &self.name {
            bytes.extend_from_slice(&w.load(Ordering::Relaxed).to_ne_bytes());
        }
        bytes.truncate(len);
        String::from_utf8_lossy(&bytes).into_owned()
    }

    fn set_name(&self, name: &str) {
        let bytes = &name.as_bytes()[..name.len().min(NAME_WORDS * 8)];
        for (i, w) in self.name.iter().enumerate() {
            let mut word = [0u8; 8];
            let part = bytes.get(i * 8..).unwrap_or(&[]);
            let n = part.len().min(8);
            word[..n].copy_from_slice(&part[..n]);
            w.store(u64::from_ne_bytes(word), Ordering::Relaxed);
        }
        self.name_len.store(bytes.len() as u64, Ordering::Relaxed);
    }
}

/// The zone's header and entries.
#[derive(Clone, Copy)]
struct Table {
    header: *const Header,
    entries: *const Entry,
    capacity: usize,
}

impl Table {
    /// # Safety
    /// `zone` is this cycle's check zone, initialised.
    unsafe fn of(zone: *mut ngx_shm_zone_t) -> Option<Table> {
        // SAFETY: per the contract: `data` is the header, followed by the
        // entries, all atomics, mapped in every process of the cycle.
        unsafe {
            let header = (*zone).data.cast::<Header>();
            if header.is_null() {
                return None;
            }
            let capacity = (*header).capacity.load(Ordering::Acquire) as usize;
            Some(Table {
                header,
                entries: header.add(1).cast::<Entry>(),
                capacity,
            })
        }
    }

    fn header(&self) -> &Header {
        // SAFETY: see `of`.
        unsafe { &*self.header }
    }

    fn entries(&self) -> &[Entry] {
        // SAFETY: see `of`: `capacity` entries follow the header.
        unsafe { std::slice::from_raw_parts(self.entries, self.capacity) }
    }

    fn flips(&self) -> u64 {
        self.header().flips.load(Ordering::Acquire)
    }

    fn bump(&self) {
        self.header().flips.fetch_add(1, Ordering::AcqRel);
    }

    /// Which servers of upstream `upstream` are down, by key.
    fn downs(&self, upstream: usize) -> HashMap<Key, bool> {
        let head = (upstream as u64 + 1) << 32;
        self.entries()
            .iter()
            .filter_map(|e| {
                let k = e.key();
                (k[0] & !0xffff_ffff == head).then(|| (k, e.down.load(Ordering::Acquire) != 0))
            })
            .collect()
    }
}

/// Declares the zone (`size`: `check_shm_size`).
///
/// # Safety
/// `cf` is the configuration being built; `tag` the module's address.
pub(crate) unsafe fn add_zone(
    cf: *mut ngx_conf_t,
    size: usize,
    tag: *mut c_void,
) -> Option<*mut ngx_shm_zone_t> {
    let mut name = ngx_str_t {
        len: ZONE_NAME.len(),
        data: ZONE_NAME.as_ptr().cast_mut(),
    };
    // SAFETY: per the contract; nginx copies the name struct, whose bytes
    // are static.
    let zone = unsafe { ngx_shared_memory_add(cf, &mut name, size, tag) };
    if zone.is_null() {
        return None;
    }
    // SAFETY: a zone nginx just declared for us; a new cycle gets a new one.
    unsafe {
        (*zone).init = Some(init_zone);
        (*zone).data = size as *mut c_void;
        (*zone).noreuse = 1;
    }
    GENERATION.fetch_add(1, Ordering::AcqRel);
    Some(zone)
}

unsafe extern "C" fn init_zone(zone: *mut ngx_shm_zone_t, _old: *mut c_void) -> ngx_int_t {
    guard(NGX_ERROR as ngx_int_t, || {
        // SAFETY: nginx calls it once per cycle in the master, with the zone
        // mapped and its slab pool set up; all-zero is a valid table.
        unsafe {
            let size = (*zone).data as usize;
            let pool = (*zone).shm.addr.cast::<ngx_slab_pool_t>();
            // The slab pool keeps pages of its own: ask for 3/4 of the zone.
            let capacity = (size * 3 / 4).saturating_sub(size_of::<Header>()) / size_of::<Entry>();
            let bytes = size_of::<Header>() + capacity.max(1) * size_of::<Entry>();
            let header = ngx_slab_calloc(pool, bytes).cast::<Header>();
            if header.is_null() {
                return NGX_ERROR as ngx_int_t;
            }
            (*header)
                .capacity
                .store(capacity.max(1) as u64, Ordering::Release);
            (*zone).data = header.cast();
        }
        NGX_OK as ngx_int_t
    })
}

/// One checked upstream.
pub(crate) struct Checked {
    uscf: *mut ngx_http_upstream_srv_conf_t,
    name: String,
    spec: CheckSpec,
    /// The `peer.init` our wrapper calls.
    original_init: ngx_http_upstream_init_peer_pt,
    /// The list and `flips` a worker's own list last took the bits at.
    seen: Cell<(usize, u64)>,
    /// Shared lists: the `config` and `flips` the prober last wrote at.
    written: (u64, u64),
}

/// A server being probed.
struct Target {
    upstream: usize,
    addr: SocketAddr,
    entry: usize,
    due_ms: u64,
    conn: Option<Box<Conn<Checks>>>,
    tick: u64,
}

/// Every checked upstream of a cycle, and the prober's state in this process.
pub(crate) struct Checks {
    zone: *mut ngx_shm_zone_t,
    upstreams: Vec<Checked>,
    targets: HashMap<usize, Target>,
    by_key: HashMap<Key, usize>,
    timer: ngx_event_t,
    prober: bool,
    ticks: u64,
    rng: u64,
    full_logged: bool,
}

impl Checks {
    pub(crate) fn new(zone: *mut ngx_shm_zone_t) -> Self {
        Checks {
            zone,
            upstreams: Vec::new(),
            targets: HashMap::new(),
            by_key: HashMap::new(),
            // SAFETY: all-zero is the initial state of an nginx event.
            timer: unsafe { std::mem::zeroed() },
            prober: false,
            ticks: 0,
            rng: 0x9e37_79b9_7f4a_7c15,
            full_logged: false,
        }
    }

    /// Checks `uscf` with `spec` from now on: its `peer.init` goes through
    /// ours. Returns its index, which its srv conf keeps.
    ///
    /// # Safety
    /// `uscf` is an initialised upstream of the configuration being built.
    pub(crate) unsafe fn add(
        &mut self,
        uscf: *mut ngx_http_upstream_srv_conf_t,
        spec: CheckSpec,
    ) -> usize {
        // SAFETY: per the contract.
        let u = unsafe { &mut *uscf };
        self.upstreams.push(Checked {
            uscf,
            name: String::from_utf8_lossy(u.host.as_bytes()).into_owned(),
            spec,
            original_init: u.peer.init,
            seen: Cell::new((0, u64::MAX)),
            written: (u64::MAX, u64::MAX),
        });
        u.peer.init = Some(init_peer);
        self.upstreams.len() - 1
    }

    fn table(&self) -> Option<Table> {
        // SAFETY: the cycle's check zone, mapped once workers run.
        unsafe { Table::of(self.zone) }
    }

    /// Starts the ticks in a worker.
    pub(crate) fn start(&mut self) {
        // SAFETY: a process-wide value.
        let pid = unsafe { ngx::ffi::ngx_pid } as u64;
        self.rng ^= pid.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ now_ms();
        let me: *mut Checks = self;
        self.timer.handler = Some(on_tick);
        self.timer.data = me.cast();
        self.timer.log = cycle_log();
        self.timer.set_cancelable(1);
        self.tick();
    }

    /// The worker exits: no probe, no tick, the lease given back.
    pub(crate) fn stop(&mut self) {
        if self.timer.timer_set() != 0 {
            // SAFETY: our own timer.
            unsafe { ngx_del_timer(&mut self.timer) };
        }
        self.targets.clear();
        self.by_key.clear();
        if std::mem::take(&mut self.prober) {
            if let Some(t) = self.table() {
                t.header().lease.resign();
            }
        }
    }

    fn random(&mut self) -> u64 {
        // xorshift64*
        self.rng ^= self.rng >> 12;
        self.rng ^= self.rng << 25;
        self.rng ^= self.rng >> 27;
        self.rng.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn tick(&mut self) {
        if super::poller::exiting() {
            return;
        }
        // SAFETY: our own event, alive as long as `self`.
        unsafe { ngx::ffi::ngx_add_timer(&mut self.timer, TICK_MS as ngx_msec_t) };
        let Some(table) = self.table() else {
            return;
        };
        if self.ticks % (ELECTION_TICK_MS / TICK_MS) == 0 {
            match table.header().lease.elect() {
                Role::Poller(new) => {
                    if new {
                        log!(
                            NGX_LOG_NOTICE,
                            cycle_log(),
                            "this worker runs the health checks for every worker"
                        );
                    }
                    self.prober = true;
                }
                Role::Follower => {
                    self.prober = false;
                    self.targets.clear();
                    self.by_key.clear();
                }
            }
        }
        self.ticks += 1;
        if !self.prober {
            return;
        }
        let fresh = self.targets.is_empty();
        self.follow_lists(table);
        if fresh {
            // A new prober: servers its predecessor left behind (removed
            // while no worker probed) are forgotten.
            for (i, e) in table.entries().iter().enumerate() {
                if e.key()[0] != 0 && !self.targets.contains_key(&i) {
                    e.key[0].store(0, Ordering::Release);
                    table.bump();
                }
            }
        }
        self.launch();
        self.write_shared(table);
    }

    /// The servers to probe: those of each checked upstream's list now.
    fn follow_lists(&mut self, table: Table) {
        let tick = self.ticks;
        let now = now_ms();
        for i in 0..self.upstreams.len() {
            // SAFETY: a live upstream of the running cycle.
            let servers = unsafe { list_addresses((*self.upstreams[i].uscf).peer.data.cast()) };
            let interval = self.upstreams[i].spec.conf.interval_ms;
            let default_down = self.upstreams[i].spec.conf.default_down;
            for addr in servers {
                let key = key_of(i, &addr);
                if let Some(&entry) = self.by_key.get(&key) {
                    if let Some(t) = self.targets.get_mut(&entry) {
                        t.tick = tick;
                    }
                    continue;
                }
                let Some(entry) = self.claim(table, key, &addr.to_string(), default_down) else {
                    continue;
                };
                let first = self.random() % interval.max(1000);
                self.by_key.insert(key, entry);
                self.targets.insert(
                    entry,
                    Target {
                        upstream: i,
                        addr,
                        entry,
                        due_ms: now + first,
                        conn: None,
                        tick,
                    },
                );
            }
        }
        let gone: Vec<usize> = self
            .targets
            .values()
            .filter(|t| t.tick != tick)
            .map(|t| t.entry)
            .collect();
        for entry in gone {
            if let Some(t) = self.targets.remove(&entry) {
                self.by_key.remove(&key_of(t.upstream, &t.addr));
                table.entries()[entry].key[0].store(0, Ordering::Release);
                table.bump();
            }
        }
    }

    /// The entry of `key`: the one a former prober left, or a free one.
    fn claim(&mut self, table: Table, key: Key, name: &str, default_down: bool) -> Option<usize> {
        let entries = table.entries();
        if let Some(i) = entries.iter().position(|e| e.key() == key) {
            return Some(i);
        }
        let Some(i) = entries.iter().position(|e| e.key()[0] == 0) else {
            if !std::mem::replace(&mut self.full_logged, true) {
                log!(
                    NGX_LOG_ERR,
                    cycle_log(),
                    "check_shm_size is too small for {} servers: the others are not checked",
                    entries.len()
                );
            }
            return None;
        };
        let e = &entries[i];
        e.set_health(&PeerHealth::new(default_down, wall_ms()));
        e.set_name(name);
        e.order.store(
            table.header().next_order.fetch_add(1, Ordering::AcqRel),
            Ordering::Relaxed,
        );
        e.key[1].store(key[1], Ordering::Relaxed);
        e.key[2].store(key[2], Ordering::Relaxed);
        e.key[0].store(key[0], Ordering::Release);
        table.bump();
        Some(i)
    }

    /// Starts the probes that are due.
    fn launch(&mut self) {
        let now = now_ms();
        let mut in_flight = self.targets.values().filter(|t| t.conn.is_some()).count();
        let due: Vec<usize> = self
            .targets
            .values()
            .filter(|t| t.conn.is_none() && t.due_ms <= now)
            .map(|t| t.entry)
            .collect();
        let me: *mut Checks = self;
        for entry in due {
            if in_flight >= MAX_IN_FLIGHT {
                break;
            }
            let Some(t) = self.targets.get_mut(&entry) else {
                continue;
            };
            let spec = &self.upstreams[t.upstream].spec;
            let interval = spec.conf.interval_ms;
            t.due_ms = if t.due_ms + interval > now {
                t.due_ms + interval
            } else {
                now + interval
            };
            let mut addr = t.addr;
            if spec.conf.port != 0 {
                addr.set_port(spec.conf.port);
            }
            // SAFETY: `self` is boxed with the cycle's configuration and
            // drops its probes before it goes.
            match unsafe { Conn::start(me, entry, addr, spec) } {
                Started::Pending(conn) => {
                    t.conn = Some(conn);
                    in_flight += 1;
                }
                Started::Done(result) => self.record(entry, result),
            }
        }
    }

    /// A probe's verdict, into the server's entry.
    fn record(&mut self, entry: usize, result: Result<(), String>) {
        let (Some(table), Some(t)) = (self.table(), self.targets.get(&entry)) else {
            return;
        };
        let checked = &self.upstreams[t.upstream];
        let e = &table.entries()[entry];
        let mut h = e.health();
        let (rise, fall) = (checked.spec.conf.rise, checked.spec.conf.fall);
        let passed = result.is_ok();
        let transition = h.record(passed, wall_ms(), rise, fall);
        e.set_health(&h);
        let name = e.name();
        if let Err(why) = &result {
            log!(
                NGX_LOG_INFO,
                cycle_log(),
                "upstream \"{}\": check of {} failed: {}",
                checked.name,
                name,
                why
            );
        }
        match transition {
            Some(Transition::Down) => log!(
                NGX_LOG_WARN,
                cycle_log(),
                "upstream \"{}\": disable check peer: {} ({} failed checks in a row: {})",
                checked.name,
                name,
                h.fall_count,
                result.err().unwrap_or_default()
            ),
            Some(Transition::Up) => log!(
                NGX_LOG_NOTICE,
                cycle_log(),
                "upstream \"{}\": enable check peer: {} ({} passed checks in a row)",
                checked.name,
                name,
                h.rise_count
            ),
            None => {}
        }
        if transition.is_some() {
            table.bump();
            self.write_shared(table);
        }
    }

    /// Shared lists take the state now (per-worker lists take it in their
    /// requests).
    fn write_shared(&mut self, table: Table) {
        let flips = table.flips();
        for (i, u) in self.upstreams.iter_mut().enumerate() {
            // SAFETY: a live upstream of the running cycle.
            let list = unsafe { (*u.uscf).peer.data.cast::<ngx_http_upstream_rr_peers_t>() };
            // SAFETY: as above.
            let Some(config) = (unsafe { shared_config(list) }) else {
                continue;
            };
            if u.written == (config, flips) {
                continue;
            }
            u.written = (config, flips);
            // SAFETY: the shared list of a live upstream, written under its
            // write locks, as nginx's own zone code does.
            unsafe { mark(list, &table.downs(i), i, true) };
        }
    }
}

impl ProbeOwner for Checks {
    fn probe_done(&mut self, slot: usize, result: Result<(), String>) {
        if let Some(t) = self.targets.get_mut(&slot) {
            t.conn = None;
        }
        self.record(slot, result);
    }
}

impl Drop for Checks {
    fn drop(&mut self) {
        self.stop();
    }
}

unsafe extern "C" fn on_tick(ev: *mut ngx_event_t) {
    guard((), || {
        // SAFETY: the timer's data is the live boxed Checks of the cycle;
        // nothing else borrows it during the handler.
        unsafe { (*(*ev).data.cast::<Checks>()).tick() }
    })
}

/// `*peers->config` of a shared list, `None` for a worker's own list.
///
/// # Safety
/// `list` is null or a live round-robin list.
unsafe fn shared_config(list: *mut ngx_http_upstream_rr_peers_t) -> Option<u64> {
    #[cfg(ngx_feature = "http_upstream_zone")]
    // SAFETY: per the contract.
    unsafe {
        if !list.is_null() && !(*list).shpool.is_null() {
            // Before 1.27.3 a shared list never changes: no counter.
            #[cfg(ngx_resolve_peers)]
            let config = (*list).config;
            #[cfg(ngx_resolve_peers)]
            return Some(if config.is_null() { 0 } else { *config as u64 });
            #[cfg(not(ngx_resolve_peers))]
            return Some(0);
        }
    }
    let _ = list;
    None
}

/// The addresses of a list's servers (primary, then backup) that are not
/// marked down by the configuration or the registry.
///
/// # Safety
/// `list` is null or a live round-robin list of the running cycle.
unsafe fn list_addresses(list: *mut ngx_http_upstream_rr_peers_t) -> Vec<SocketAddr> {
    let mut out = Vec::new();
    // SAFETY: per the contract; a shared list is read under its lock.
    unsafe {
        with_peers(list, false, |p| {
            if p.down & 1 != 0 || p.name.as_bytes() == PLACEHOLDER.as_bytes() {
                return;
            }
            out.extend(super::generation::socket_addr(p.sockaddr, p.socklen));
        })
    };
    out
}

/// Runs `f` on every peer of `list` and its backup list, under their read
/// (or, `write`, write) locks when they are shared.
///
/// # Safety
/// `list` is null or a live round-robin list.
unsafe fn with_peers(
    list: *mut ngx_http_upstream_rr_peers_t,
    write: bool,
    mut f: impl FnMut(&mut ngx_http_upstream_rr_peer_t),
) {
    if list.is_null() {
        return;
    }
    // SAFETY: per the contract; the locks are nginx's, taken and released in
    // pairs, primary before backup as nginx does.
    unsafe {
        let backup = (*list).next;
        let lists = [list, backup];
        for &l in lists.iter().filter(|l| !l.is_null()) {
            lock(l, write);
        }
        for &l in lists.iter().filter(|l| !l.is_null()) {
            let mut p = (*l).peer;
            while !p.is_null() {
                f(&mut *p);
                p = (*p).next;
            }
        }
        for &l in lists.iter().rev().filter(|l| !l.is_null()) {
            unlock(l);
        }
    }
}

#[allow(unused_variables)]
unsafe fn lock(list: *mut ngx_http_upstream_rr_peers_t, write: bool) {
    #[cfg(ngx_feature = "http_upstream_zone")]
    // SAFETY: a live list; a private one has no lock to take.
    unsafe {
        if !(*list).shpool.is_null() {
            if write {
                ngx::ffi::ngx_rwlock_wlock(&mut (*list).rwlock);
            } else {
                ngx::ffi::ngx_rwlock_rlock(&mut (*list).rwlock);
            }
        }
    }
}

#[allow(unused_variables)]
unsafe fn unlock(list: *mut ngx_http_upstream_rr_peers_t) {
    #[cfg(ngx_feature = "http_upstream_zone")]
    // SAFETY: the lock `lock` took.
    unsafe {
        if !(*list).shpool.is_null() {
            ngx::ffi::ngx_rwlock_unlock(&mut (*list).rwlock);
        }
    }
}

/// Sets the health bit of every peer of `list` from `downs`, and the
/// lists' `tries` (the servers not down) as nginx counts them.
///
/// # Safety
/// `list` is a live round-robin list; a shared one is written under its
/// write locks (`write`), a worker's own one by this worker alone.
unsafe fn mark(
    list: *mut ngx_http_upstream_rr_peers_t,
    downs: &HashMap<Key, bool>,
    upstream: usize,
    write: bool,
) {
    // SAFETY: per the contract.
    unsafe {
        with_peers(list, write, |p| {
            let down = super::generation::socket_addr(p.sockaddr, p.socklen)
                .and_then(|a| downs.get(&key_of(upstream, &a)).copied())
                .unwrap_or(false);
            if down {
                p.down |= HEALTH_DOWN;
            } else {
                p.down &= !HEALTH_DOWN;
            }
        });
        for l in [list, (*list).next] {
            if l.is_null() {
                continue;
            }
            let mut tries = 0;
            let mut p = (*l).peer;
            while !p.is_null() {
                tries += ((*p).down == 0) as ngx_uint_t;
                p = (*p).next;
            }
            (*l).tries = tries;
        }
    }
}

/// A worker's own list of a checked upstream takes the checks' state, if
/// it changed since it last did (shared lists are the prober's to write).
///
/// # Safety
/// `us` is a live upstream of the running cycle, in this worker.
pub(crate) unsafe fn refresh(us: *mut ngx_http_upstream_srv_conf_t) {
    // SAFETY: per the contract: a checked upstream's srv conf points to its
    // live Checks since postconfiguration.
    unsafe {
        let Some((checks, index)) = super::module::checked(us) else {
            return;
        };
        let checks = &*checks;
        let list = (*us).peer.data.cast::<ngx_http_upstream_rr_peers_t>();
        if list.is_null() || shared_config(list).is_some() {
            return;
        }
        let Some(table) = checks.table() else {
            return;
        };
        let checked = &checks.upstreams[index];
        let now = (list as usize, table.flips());
        if checked.seen.get() != now {
            checked.seen.set(now);
            mark(list, &table.downs(index), index, false);
        }
    }
}

/// The `peer.init` of a checked upstream: a worker's own list takes the
/// checks' state first, then the upstream's own init runs.
unsafe extern "C" fn init_peer(
    r: *mut ngx_http_request_t,
    us: *mut ngx_http_upstream_srv_conf_t,
) -> ngx_int_t {
    guard(NGX_ERROR as ngx_int_t, || {
        // SAFETY: nginx calls peer.init with a live request and upstream,
        // whose srv conf points to its live Checks since postconfiguration.
        unsafe {
            refresh(us);
            let Some((checks, index)) = super::module::checked(us) else {
                return NGX_ERROR as ngx_int_t;
            };
            match (&*checks).upstreams[index].original_init {
                Some(init) => init(r, us),
                None => NGX_ERROR as ngx_int_t,
            }
        }
    })
}

/// The health of upstream `uscf`'s servers, by address, when it is checked.
///
/// # Safety
/// `uscf` is a live upstream of the running cycle.
pub(crate) unsafe fn health_of(
    uscf: *mut ngx_http_upstream_srv_conf_t,
) -> Option<HashMap<SocketAddr, crate::status::Health>> {
    // SAFETY: per the contract.
    let (checks, index) = unsafe { super::module::checked(uscf) }?;
    // SAFETY: the cycle's Checks, only read here.
    let table = unsafe { &*checks }.table()?;
    let head = (index as u64 + 1) << 32;
    let now = wall_ms();
    let mut out = HashMap::new();
    for e in table.entries() {
        let k = e.key();
        if k[0] & !0xffff_ffff != head {
            continue;
        }
        let Ok(addr) = e.name().parse::<SocketAddr>() else {
            continue;
        };
        let h = e.health();
        out.insert(
            addr,
            crate::status::Health {
                checks: h.checks,
                fails: h.fails,
                unhealthy: h.unhealthy,
                last_passed: h.last_passed,
                downtime_ms: h.downtime_at(now),
                downstart_ms: (h.down && h.downstart_ms != 0).then_some(h.downstart_ms),
            },
        );
    }
    Some(out)
}

/// The rows of the status pages, in upstream order, then in the order the
/// servers were first checked.
fn rows(checks: &Checks) -> Vec<(String, String, bool, u64, u64, &'static str, u16)> {
    let Some(table) = checks.table() else {
        return Vec::new();
    };
    let mut found: Vec<(u64, u64, usize)> = table
        .entries()
        .iter()
        .enumerate()
        .filter_map(|(i, e)| {
            let k = e.key()[0];
            (k != 0).then(|| (k >> 32, e.order.load(Ordering::Relaxed), i))
        })
        .collect();
    found.sort_unstable();
    found
        .into_iter()
        .filter_map(|(u, _, i)| {
            let checked = checks.upstreams.get(u.checked_sub(1)? as usize)?;
            let e = &table.entries()[i];
            Some((
                checked.name.clone(),
                e.name(),
                e.down.load(Ordering::Acquire) != 0,
                e.rise.load(Ordering::Relaxed),
                e.fall.load(Ordering::Relaxed),
                checked.spec.conf.kind.name(),
                checked.spec.conf.port,
            ))
        })
        .collect()
}

/// Content handlers of `check_status [html|csv|json]`, one per default
/// format.
///
/// # Safety
/// nginx calls content handlers with a live request.
pub(crate) unsafe extern "C" fn status_html(r: *mut ngx_http_request_t) -> ngx_int_t {
    // SAFETY: per the contract.
    unsafe { status_guarded(r, Format::Html) }
}

/// # Safety
/// As for [`status_html`].
pub(crate) unsafe extern "C" fn status_csv(r: *mut ngx_http_request_t) -> ngx_int_t {
    // SAFETY: per the contract.
    unsafe { status_guarded(r, Format::Csv) }
}

/// # Safety
/// As for [`status_html`].
pub(crate) unsafe extern "C" fn status_json(r: *mut ngx_http_request_t) -> ngx_int_t {
    // SAFETY: per the contract.
    unsafe { status_guarded(r, Format::Json) }
}

/// # Safety
/// As for [`status_html`].
unsafe fn status_guarded(r: *mut ngx_http_request_t, default: Format) -> ngx_int_t {
    guard(NGX_HTTP_INTERNAL_SERVER_ERROR as ngx_int_t, || {
        // SAFETY: nginx calls content handlers with a valid request.
        let r = unsafe { Request::from_ngx_http_request(r) };
        if !matches!(r.method(), Method::GET | Method::HEAD) {
            return NGX_HTTP_NOT_ALLOWED as ngx_int_t;
        }
        let rc = r.discard_request_body();
        if !rc.is_ok() {
            return rc.into();
        }
        let query = status::parse_query(r.as_ref().args.as_bytes(), default);
        for e in &query.errors {
            log!(NGX_LOG_ERR, cycle_log(), "{}", e);
        }
        // SAFETY: a worker of the running cycle.
        let Some(checks) = (unsafe { super::module::checks() }) else {
            log!(NGX_LOG_ERR, cycle_log(), "{}", status::NO_CHECKED_PEERS);
            return NGX_HTTP_INTERNAL_SERVER_ERROR as ngx_int_t;
        };
        // SAFETY: the cycle's Checks, only read here.
        let found = rows(unsafe { &*checks });
        let rows: Vec<Row> = found
            .iter()
            .enumerate()
            .map(
                |(index, (upstream, name, down, rise, fall, type_name, port))| Row {
                    index: index as u64,
                    upstream,
                    name,
                    down: *down,
                    rise: *rise,
                    fall: *fall,
                    type_name,
                    port: *port,
                },
            )
            .collect();
        let generation = GENERATION.load(Ordering::Acquire).max(1);
        let body = status::render(query.format, generation, &rows, query.filter);
        super::show::send(r, 200, query.format.content_type(), &body)
    })
}
