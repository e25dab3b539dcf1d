//! Per-worker round-robin peer lists that can be replaced while requests are
//! in flight.
//!
//! A change never edits a list that requests may hold. It builds a new list
//! (a [`Generation`]) and points `uscf->peer.data` at it; requests that started
//! on an older generation keep using theirs until they end. Each request
//! counts a reference on the generation it started on (our wrapper of the
//! upstream's `peer.init` takes it, a cleanup of the request's pool drops it),
//! and a retired generation is freed when its last request ends. So no peer a
//! request holds is ever freed, and every request's `tried` bitmap was sized
//! from the very list it walks, however much the list grows or shrinks.
//!
//! What a balancer derives from the list when nginx initialises the upstream
//! is built again for each generation: the ranges of `random` and the ring of
//! `hash ... consistent`. nginx keeps them in the balancer's configuration,
//! which [`Generation::select`] points at the generation a request walks
//! before each call into the balancer. And the connections a worker has open
//! to each server are counted across generations ([`Lineage`]), so that
//! `least_conn`, `random two least_conn` and `max_conns` see the requests
//! that started on an older list.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::mem;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV6};
use std::ptr;
use std::rc::Rc;

use ngx::ffi::{
    ngx_http_upstream_rr_peer_t, ngx_http_upstream_rr_peers_t, ngx_int_t, ngx_str_t, ngx_uint_t,
    sockaddr, socklen_t, time_t,
};

use super::peers::{ApplyOutcome, Tables};
use crate::apply::{merge, Outcome};
use crate::chash;
use crate::server::Server;

/// The name of the stand-in peer of an upstream that has no server yet: it
/// is `down`, so requests get 502 until the registry answers, and it is not
/// an address, so it never matches a registry server.
pub(crate) const PLACEHOLDER: &str = "upsync:no-servers-yet";

/// An address in the form nginx keeps in a peer.
#[derive(Clone, Copy)]
pub(crate) struct SockAddr {
    storage: libc::sockaddr_storage,
    len: socklen_t,
}

impl SockAddr {
    fn zeroed() -> libc::sockaddr_storage {
        // SAFETY: a plain C struct of integers: all-zero is a valid value.
        unsafe { std::mem::zeroed() }
    }

    pub(crate) fn from_socket_addr(addr: SocketAddr) -> Self {
        let mut storage = Self::zeroed();
        let at = ptr::addr_of_mut!(storage);
        let len = match addr {
            SocketAddr::V4(a) => {
                // SAFETY: sockaddr_storage is large and aligned enough for
                // any address family; the other fields stay zero.
                let sin = unsafe { &mut *at.cast::<libc::sockaddr_in>() };
                sin.sin_family = libc::AF_INET as libc::sa_family_t;
                sin.sin_port = a.port().to_be();
                sin.sin_addr.s_addr = u32::from_ne_bytes(a.ip().octets());
                size_of::<libc::sockaddr_in>()
            }
            SocketAddr::V6(a) => {
                // SAFETY: as above.
                let sin6 = unsafe { &mut *at.cast::<libc::sockaddr_in6>() };
                sin6.sin6_family = libc::AF_INET6 as libc::sa_family_t;
                sin6.sin6_port = a.port().to_be();
                sin6.sin6_flowinfo = a.flowinfo().to_be();
                sin6.sin6_addr.s6_addr = a.ip().octets();
                sin6.sin6_scope_id = a.scope_id();
                size_of::<libc::sockaddr_in6>()
            }
        };
        SockAddr {
            storage,
            len: len as socklen_t,
        }
    }

    /// Copies an address nginx resolved (any family, unix sockets included).
    ///
    /// # Safety
    /// `sa` must point to `len` readable bytes.
    pub(crate) unsafe fn copy_from(sa: *const sockaddr, len: socklen_t) -> Option<Self> {
        let n = len as usize;
        if sa.is_null() || n > size_of::<libc::sockaddr_storage>() {
            return None;
        }
        let mut storage = Self::zeroed();
        // SAFETY: the caller guarantees `len` readable bytes, no more than
        // the storage holds.
        unsafe {
            ptr::copy_nonoverlapping(sa.cast::<u8>(), ptr::addr_of_mut!(storage).cast::<u8>(), n)
        };
        Some(SockAddr { storage, len })
    }

    pub(crate) fn as_ptr(&mut self) -> *mut sockaddr {
        ptr::addr_of_mut!(self.storage).cast()
    }

    pub(crate) fn len(&self) -> socklen_t {
        self.len
    }
}

/// An IPv4 or IPv6 socket address nginx holds (the inverse of
/// [`SockAddr::from_socket_addr`]).
///
/// # Safety
/// `sa` is null or points to `len` readable bytes.
pub(crate) unsafe fn socket_addr(sa: *const sockaddr, len: socklen_t) -> Option<SocketAddr> {
    if sa.is_null() {
        return None;
    }
    // SAFETY: per the contract, with the length checked for each family.
    unsafe {
        match i32::from((*sa).sa_family) {
            libc::AF_INET if len as usize >= size_of::<libc::sockaddr_in>() => {
                let sin = &*sa.cast::<libc::sockaddr_in>();
                Some(SocketAddr::from((
                    Ipv4Addr::from(u32::from_be(sin.sin_addr.s_addr)),
                    u16::from_be(sin.sin_port),
                )))
            }
            libc::AF_INET6 if len as usize >= size_of::<libc::sockaddr_in6>() => {
                let sin6 = &*sa.cast::<libc::sockaddr_in6>();
                Some(SocketAddr::V6(SocketAddrV6::new(
                    Ipv6Addr::from(sin6.sin6_addr.s6_addr),
                    u16::from_be(sin6.sin6_port),
                    0,
                    sin6.sin6_scope_id,
                )))
            }
            _ => None,
        }
    }
}

/// One peer's backing storage: the address, and the name and server (its
/// host name, or its name again) the peer points to.
struct PeerStore {
    addr: SockAddr,
    name: Box<[u8]>,
    server: Box<[u8]>,
}

/// `ngx_http_upstream_random_range_t`: a primary peer and the total weight
/// of the peers before it.
#[repr(C)]
struct RandomRange {
    peer: *mut ngx_http_upstream_rr_peer_t,
    range: ngx_uint_t,
}

/// `ngx_http_upstream_chash_point_t`. The ring (`..._chash_points_t`) is a
/// count followed by its points: [`Generation::ring`] holds it as words.
#[repr(C)]
struct ChashPoint {
    hash: u32,
    server: *const ngx_str_t,
}

/// A complete peer list: primary and backup round-robin lists, the storage
/// they point into, and the model they were built from.
pub(crate) struct Generation {
    primary: ngx_http_upstream_rr_peers_t,
    backup: ngx_http_upstream_rr_peers_t,
    peers: Vec<ngx_http_upstream_rr_peer_t>,
    store: Vec<PeerStore>,
    /// Peer indices sorted by name, to find a server's peer.
    by_name: Vec<usize>,
    /// `random`: the ranges of the primary peers (empty for other balancers).
    ranges: Vec<RandomRange>,
    /// `hash ... consistent`: the ring, as nginx lays it out: the number of
    /// points, then the points, two words each (empty for other balancers).
    ring: Vec<usize>,
    /// The upstream's generations in this worker.
    lineage: Rc<Lineage>,
    /// The servers of this list, primary and backup, in list order.
    pub(crate) servers: Vec<Server>,
    /// Requests that started on this generation and have not ended.
    refs: usize,
    /// No longer the upstream's current list: free it when `refs` is 0.
    retired: bool,
}

/// One upstream's generations in one worker: which one is current, the
/// balancer tables each must provide, and the connections open to each
/// server from requests of any generation.
pub(crate) struct Lineage {
    tables: Tables,
    current: Cell<*mut Generation>,
    open: RefCell<HashMap<Box<[u8]>, ngx_uint_t>>,
}

impl Lineage {
    pub(crate) fn new(tables: Tables) -> Rc<Lineage> {
        Rc::new(Lineage {
            tables,
            current: Cell::new(ptr::null_mut()),
            open: RefCell::new(HashMap::new()),
        })
    }

    /// The generation requests start on now (null once the upstream is gone).
    pub(crate) fn current(&self) -> *mut Generation {
        self.current.get()
    }

    /// Makes `gen` the current list (null: the upstream is gone). Servers
    /// with no connection open are forgotten then, not on every close: a
    /// request's connection then costs no allocation.
    pub(crate) fn set_current(&self, gen: *mut Generation) {
        self.current.set(gen);
        self.open.borrow_mut().retain(|_, n| *n > 0);
    }

    /// A request of generation `on` connected to the server `name`: the
    /// balancer counted it in `on`; count it in the current list too.
    pub(crate) fn opened(&self, name: &[u8], on: *mut Generation) {
        let mut open = self.open.borrow_mut();
        match open.get_mut(name) {
            Some(n) => *n += 1,
            None => {
                open.insert(name.into(), 1);
            }
        }
        drop(open);
        if let Some(peer) = self.current_peer(name, on) {
            // SAFETY: a peer of the live current generation; one thread.
            unsafe { (*peer).conns += 1 };
        }
    }

    /// That connection ended (the balancer uncounted it in `on`).
    pub(crate) fn closed(&self, name: &[u8], on: *mut Generation) {
        if let Some(n) = self.open.borrow_mut().get_mut(name) {
            *n = n.saturating_sub(1);
        }
        if let Some(peer) = self.current_peer(name, on) {
            // SAFETY: as in `opened`.
            unsafe { (*peer).conns = (*peer).conns.saturating_sub(1) };
        }
    }

    /// The current list's peer for `name`, when the current list is not `on`.
    fn current_peer(
        &self,
        name: &[u8],
        on: *mut Generation,
    ) -> Option<*mut ngx_http_upstream_rr_peer_t> {
        let current = self.current.get();
        if current.is_null() || current == on {
            return None;
        }
        // SAFETY: the current generation is live (it is freed only after it
        // was replaced, or set to null); one thread, no other borrow.
        unsafe { (*current).find(name) }.map(|p| p as *mut _)
    }

    fn open_to(&self, name: &[u8]) -> ngx_uint_t {
        self.open.borrow().get(name).copied().unwrap_or(0)
    }
}

/// What a new list copies from the list it replaces, for a server of the
/// same name: the address nginx resolved and the peer's runtime state.
pub(crate) struct PeerSource<'a> {
    peers: Vec<&'a ngx_http_upstream_rr_peer_t>,
    /// Peer names to their position in `peers` (the first of a name wins).
    by_name: HashMap<&'a [u8], usize>,
}

impl<'a> PeerSource<'a> {
    /// # Safety
    /// `list` must point to a live round-robin list (with its backup list in
    /// `next`) that outlives the returned value.
    pub(crate) unsafe fn from_list(list: *const ngx_http_upstream_rr_peers_t) -> Self {
        let mut peers = Vec::new();
        let mut l = list;
        while !l.is_null() {
            // SAFETY: per the contract, `l` and its peers are live.
            let mut p = unsafe { (*l).peer } as *const ngx_http_upstream_rr_peer_t;
            while !p.is_null() {
                // SAFETY: as above.
                let peer = unsafe { &*p };
                peers.push(peer);
                p = peer.next;
            }
            // SAFETY: as above.
            l = unsafe { (*l).next };
        }
        let mut by_name = HashMap::with_capacity(peers.len());
        for (i, p) in peers.iter().enumerate() {
            by_name.entry(p.name.as_bytes()).or_insert(i);
        }
        PeerSource { peers, by_name }
    }

    fn find(&self, name: &str) -> Option<&'a ngx_http_upstream_rr_peer_t> {
        self.by_name.get(name.as_bytes()).map(|&i| self.peers[i])
    }

    /// Every peer, in list order (primary then backup).
    pub(crate) fn peers(&self) -> &[&'a ngx_http_upstream_rr_peer_t] {
        &self.peers
    }

    /// Every server of the list, in list order (primary then backup).
    pub(crate) fn servers(&self, primary_count: usize) -> Vec<Server> {
        self.peers
            .iter()
            .enumerate()
            .map(|(i, p)| Server {
                name: String::from_utf8_lossy(p.name.as_bytes()).into_owned(),
                weight: p.weight as i64,
                max_fails: p.max_fails as u64,
                fail_timeout: p.fail_timeout,
                // Bit 0 only: the health checks' bit is theirs.
                down: p.down & 1 != 0,
                backup: i >= primary_count,
                host: host_of(p),
            })
            .collect()
    }
}

/// The host name a peer is an address of: its `server` when that is one
/// (nginx's own `server name:port` lines, and the module's peers of a
/// registry's host name).
pub(crate) fn host_of(p: &ngx_http_upstream_rr_peer_t) -> Option<String> {
    let server = p.server.as_bytes();
    if server == p.name.as_bytes() {
        return None;
    }
    std::str::from_utf8(server)
        .ok()
        .filter(|s| crate::registry::is_host_name(s))
        .map(str::to_string)
}

impl Generation {
    /// Builds the lists for `servers`. Addresses and runtime state come from
    /// `from` for the servers it has; others must be `ip:port` names.
    /// A server whose address cannot be had is left out and reported.
    pub(crate) fn build(
        servers: &[Server],
        from: &PeerSource<'_>,
        upstream_name: *mut ngx_str_t,
        lineage: &Rc<Lineage>,
        problems: &mut Vec<String>,
    ) -> Box<Generation> {
        let mut kept: Vec<Server> = Vec::with_capacity(servers.len());
        let mut store: Vec<PeerStore> = Vec::with_capacity(servers.len());
        let mut sources: Vec<Option<&ngx_http_upstream_rr_peer_t>> = Vec::new();
        // Primary servers first, then backups: each list is contiguous.
        for server in servers
            .iter()
            .filter(|s| !s.backup)
            .chain(servers.iter().filter(|s| s.backup))
        {
            let source = from.find(&server.name);
            let addr = match source {
                // SAFETY: a live peer's sockaddr has socklen readable bytes.
                Some(p) => unsafe { SockAddr::copy_from(p.sockaddr, p.socklen) },
                None if server.name == PLACEHOLDER => Some(SockAddr::from_socket_addr(
                    SocketAddr::from(([127, 0, 0, 1], 1)),
                )),
                None => server
                    .name
                    .parse::<SocketAddr>()
                    .ok()
                    .map(SockAddr::from_socket_addr),
            };
            let Some(addr) = addr else {
                problems.push(format!(
                    "server \"{}\" is not an address, skipped",
                    server.name
                ));
                continue;
            };
            store.push(PeerStore {
                addr,
                name: server.name.as_bytes().into(),
                server: server.entry().as_bytes().into(),
            });
            sources.push(source);
            kept.push(server.clone());
        }

        let mut gen = Box::new(Generation {
            // SAFETY: all-zero is a valid value of these C structs (null
            // pointers, zero counters), as nginx's own pcalloc relies on.
            primary: unsafe { mem::zeroed() },
            // SAFETY: as above.
            backup: unsafe { mem::zeroed() },
            peers: Vec::with_capacity(kept.len()),
            store,
            by_name: Vec::new(),
            ranges: Vec::new(),
            ring: Vec::new(),
            lineage: Rc::clone(lineage),
            servers: kept,
            refs: 0,
            retired: false,
        });

        let g = &mut *gen;
        for ((server, st), source) in g.servers.iter().zip(g.store.iter_mut()).zip(&sources) {
            // SAFETY: as above, all-zero is a valid peer.
            let mut peer: ngx_http_upstream_rr_peer_t = unsafe { mem::zeroed() };
            peer.sockaddr = st.addr.as_ptr();
            peer.socklen = st.addr.len();
            peer.name = ngx_str_t {
                len: st.name.len(),
                data: st.name.as_ptr().cast_mut(),
            };
            peer.server = ngx_str_t {
                len: st.server.len(),
                data: st.server.as_ptr().cast_mut(),
            };
            peer.weight = server.weight as ngx_int_t;
            peer.effective_weight = peer.weight;
            peer.max_fails = server.max_fails as _;
            peer.fail_timeout = server.fail_timeout as time_t;
            peer.down = server.down as _;
            // Connections open from older lists count here too.
            peer.conns = lineage.open_to(server.name.as_bytes());
            if let Some(old) = source {
                // Failure accounting and limits carry over.
                peer.fails = old.fails;
                peer.accessed = old.accessed;
                peer.checked = old.checked;
                peer.max_conns = old.max_conns;
                peer.slow_start = old.slow_start;
                peer.start_time = old.start_time;
            }
            // Smooth weighted round robin restarts from zero on every list:
            // carried-over current weights would no longer sum to zero.
            g.peers.push(peer);
        }

        let n_primary = g.servers.iter().filter(|s| !s.backup).count();
        // Link the peers: the Vec is at its final capacity, so these pointers
        // stay valid as long as the generation.
        let base = g.peers.as_mut_ptr();
        let total = g.peers.len();
        for i in 0..total {
            let next = if i + 1 == n_primary || i + 1 == total {
                ptr::null_mut()
            } else {
                // SAFETY: i + 1 < total: inside the Vec.
                unsafe { base.add(i + 1) }
            };
            g.peers[i].next = next;
        }
        let (primary, backup) = g.peers.split_at_mut(n_primary);
        fill_list(&mut g.primary, primary, upstream_name);
        fill_list(&mut g.backup, backup, upstream_name);
        if !backup.is_empty() {
            g.primary.next = &mut g.backup;
        }
        let mut by_name: Vec<usize> = (0..total).collect();
        by_name.sort_by(|&a, &b| g.store[a].name.cmp(&g.store[b].name));
        g.by_name = by_name;
        if !lineage.tables.random.is_null() {
            g.build_ranges(n_primary);
        }
        if !lineage.tables.chash.is_null() {
            g.build_ring(n_primary);
        }
        gen
    }

    /// `random`'s ranges, as `ngx_http_upstream_update_random` makes them.
    fn build_ranges(&mut self, n_primary: usize) {
        let mut total = 0;
        let base = self.peers.as_mut_ptr();
        self.ranges = (0..n_primary)
            .map(|i| {
                let range = total;
                total += self.peers[i].weight as ngx_uint_t;
                RandomRange {
                    // SAFETY: i < n_primary <= peers.len().
                    peer: unsafe { base.add(i) },
                    range,
                }
            })
            .collect();
    }

    /// `hash ... consistent`'s ring of the primary peers (see [`chash`]).
    fn build_ring(&mut self, n_primary: usize) {
        let points = chash::ring(self.peers[..n_primary].iter().map(|p| {
            // `server` points to the peer's name in `store`.
            (p.server.as_bytes(), p.weight as usize)
        }));
        const WORDS: usize = size_of::<ChashPoint>() / size_of::<usize>();
        let mut ring = vec![0usize; 1 + points.len() * WORDS];
        ring[0] = points.len();
        // SAFETY: the buffer holds `points.len()` ChashPoints after its first
        // word, aligned as words are (a ChashPoint is two words, aligned to
        // one); each `server` points to a peer of this generation.
        unsafe {
            let out = ring.as_mut_ptr().add(1).cast::<ChashPoint>();
            for (i, p) in points.iter().enumerate() {
                out.add(i).write(ChashPoint {
                    hash: p.hash,
                    server: &self.peers[p.server].server,
                });
            }
        }
        self.ring = ring;
    }

    /// Points the balancer's tables at this generation's, for a call into
    /// the balancer on behalf of a request that walks this list.
    pub(crate) fn select(&mut self) {
        let tables = self.lineage.tables;
        // SAFETY: the tables are the live srv confs of the balancer of this
        // generation's upstream, which this worker alone uses; nginx reads
        // them only inside the calls this precedes, on this thread. Each
        // table lives as long as this generation, which the request holds.
        unsafe {
            if !tables.random.is_null() {
                (*tables.random).ranges = self.ranges.as_mut_ptr().cast();
            }
            if !tables.chash.is_null() {
                (*tables.chash).points = self.ring.as_mut_ptr().cast();
            }
        }
    }

    /// This list's peer for the server `name`.
    fn find(&mut self, name: &[u8]) -> Option<&mut ngx_http_upstream_rr_peer_t> {
        let store = &self.store;
        let at = self
            .by_name
            .binary_search_by(|&i| (*store[i].name).cmp(name))
            .ok()?;
        Some(&mut self.peers[self.by_name[at]])
    }

    pub(crate) fn lineage(&self) -> &Rc<Lineage> {
        &self.lineage
    }

    /// The pointer that goes into `uscf->peer.data`.
    pub(crate) fn list(&mut self) -> *mut ngx_http_upstream_rr_peers_t {
        &mut self.primary
    }

    pub(crate) fn primary_count(&self) -> usize {
        self.primary.number
    }

    /// Marks a replaced generation; frees it now if no request holds it.
    ///
    /// # Safety
    /// `gen` must come from `Box::into_raw` and not be used by the caller
    /// afterwards.
    pub(crate) unsafe fn retire(gen: *mut Generation) {
        // SAFETY: per the contract, `gen` is a live boxed generation.
        unsafe {
            (*gen).retired = true;
            if (*gen).refs == 0 {
                drop(Box::from_raw(gen));
            }
        }
    }

    /// Counts a request on `gen`; [`Generation::release`] uncounts it.
    ///
    /// # Safety
    /// `gen` must be a live boxed generation.
    pub(crate) unsafe fn hold(gen: *mut Generation) {
        // SAFETY: per the contract; one thread.
        unsafe { (*gen).refs += 1 };
    }

    /// A request that held `gen` ended: free a retired generation with it.
    ///
    /// # Safety
    /// `gen` must be a generation `hold` counted this request on.
    pub(crate) unsafe fn release(gen: *mut Generation) {
        // SAFETY: `gen` is alive while refs > 0, and only this process
        // touches it.
        unsafe {
            (*gen).refs -= 1;
            if (*gen).refs == 0 && (*gen).retired {
                drop(Box::from_raw(gen));
            }
        }
    }
}

impl Drop for Generation {
    fn drop(&mut self) {
        #[cfg(ngx_feature = "http_ssl")]
        for peer in &self.peers {
            if !peer.ssl_session.is_null() {
                // SAFETY: in a private (non-zone) list, `ssl_session` is an
                // SSL_SESSION this peer owns; nginx frees the one it replaces
                // the same way (ngx_ssl_free_session is SSL_SESSION_free).
                unsafe { ngx::ffi::SSL_SESSION_free(peer.ssl_session.cast()) };
            }
        }
    }
}

/// Fills a list header for `peers`, with the counters nginx's round-robin
/// init computes: number, total weight, tries (servers not down), weighted,
/// single.
fn fill_list(
    list: &mut ngx_http_upstream_rr_peers_t,
    peers: &mut [ngx_http_upstream_rr_peer_t],
    name: *mut ngx_str_t,
) {
    let n = peers.len();
    let w: usize = peers.iter().map(|p| p.weight as usize).sum();
    let t = peers.iter().filter(|p| p.down == 0).count();
    list.number = n;
    list.total_weight = w;
    list.tries = t;
    list.set_weighted((w != n) as _);
    list.set_single((n == 1) as _);
    list.name = name;
    list.peer = peers.first_mut().map_or(ptr::null_mut(), |p| p as *mut _);
}

/// The per-worker backend: `desired` merged into the current generation's
/// servers (the C module's semantics), built as a new generation that
/// requests start on from now; the old one lives until its last request.
///
/// # Safety
/// `uscf` is a live upstream whose `peer.data` is `lineage`'s current
/// generation's list.
pub(crate) unsafe fn apply_registry_list(
    uscf: *mut ngx::ffi::ngx_http_upstream_srv_conf_t,
    lineage: &Rc<Lineage>,
    reversed: &mut bool,
    desired: &[Server],
    problems: &mut Vec<String>,
) -> ApplyOutcome {
    let current = lineage.current();
    // SAFETY: the current generation is live while it is current.
    let current = unsafe { &*current };
    let mut now_reversed = *reversed;
    let list = match merge(&current.servers, desired, &mut now_reversed) {
        Outcome::Unchanged => return ApplyOutcome::Unchanged,
        Outcome::RefusedEmpty => return ApplyOutcome::RefusedEmpty,
        Outcome::Changed(list) => list,
    };
    *reversed = now_reversed;
    // SAFETY: the current generation's lists are live.
    let source = unsafe { PeerSource::from_list((*lineage.current()).list()) };
    // SAFETY: per the contract; the upstream's name lives as long as it.
    let gen = Generation::build(
        &list,
        &source,
        unsafe { &mut (*uscf).host },
        lineage,
        problems,
    );
    if gen.primary_count() == 0 {
        return ApplyOutcome::NoPrimary;
    }
    let gen = Box::into_raw(gen);
    let old = lineage.current();
    lineage.set_current(gen);
    // SAFETY: `gen` is live; requests from now on start on it. `old` came
    // from Box::into_raw and is not used here again.
    unsafe {
        (*uscf).peer.data = (*gen).list().cast();
        Generation::retire(old);
    }
    // SAFETY: `gen` is the live current generation.
    ApplyOutcome::Changed(unsafe { (*gen).servers.clone() })
}
