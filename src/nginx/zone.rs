//! Shared-zone mode (nginx 1.27.3 and newer): one worker polls an upstream's
//! registry for all workers and changes the upstream's lists in its shared
//! zone, with the machinery nginx's own `server ... resolve` uses.
//!
//! Election: a small shared memory zone of this module holds one [`Slot`] per
//! zone upstream, whose [`Lease`] says which worker polls it (see
//! `election`). Every worker looks at the slot each second, so exactly one
//! worker polls.
//!
//! Changes: under the list's write lock, servers that stay are updated in
//! place, new ones are allocated in the zone's slab, and removed ones are
//! freed or, while requests still hold them (`refs`), marked `zombie` for the
//! last of those requests to free. Then the counters are recomputed and the
//! generation counter (`*peers.config`) is bumped: balancers rebuild what
//! they derived from the list (consistent-hash ring, random ranges), and a
//! request that started on the old list takes no further peer from it, so
//! its `tried` bitmap is never overrun.

use std::collections::{HashMap, HashSet};
use std::ffi::c_void;
use std::net::SocketAddr;
use std::ptr;
use std::sync::atomic::{AtomicBool, Ordering};

use ngx::ffi::{
    ngx_conf_t, ngx_http_upstream_rr_peer_t, ngx_http_upstream_rr_peers_t, ngx_int_t,
    ngx_rwlock_unlock, ngx_rwlock_wlock, ngx_shared_memory_add, ngx_shm_zone_t, ngx_shmtx_lock,
    ngx_shmtx_unlock, ngx_slab_calloc, ngx_slab_calloc_locked, ngx_slab_free_locked,
    ngx_slab_pool_t, ngx_str_t, time_t, NGX_ERROR, NGX_OK,
};

use super::election::Lease;
use super::generation::{PeerSource, SockAddr, PLACEHOLDER};
use super::peers::ApplyOutcome;
use crate::apply::{merge, Outcome};
use crate::server::Server;

/// One zone upstream's election record, in shared memory.
#[repr(C)]
pub(crate) struct Slot {
    /// Which worker polls.
    pub(crate) lease: Lease,
    /// The C module's "first change reverses the list" state, kept here so
    /// that a worker taking over continues it.
    pub(crate) reversed: AtomicBool,
}

const ZONE_NAME: &[u8] = b"ngx_http_upsync_module";

/// Declares the module's election zone, with `count` slots.
///
/// # Safety
/// `cf` must be the configuration being built; `tag` the module's address.
pub(crate) unsafe fn add_election_zone(
    cf: *mut ngx_conf_t,
    count: usize,
    tag: *mut c_void,
) -> Option<*mut ngx_shm_zone_t> {
    let mut name = ngx_str_t {
        len: ZONE_NAME.len(),
        data: ZONE_NAME.as_ptr().cast_mut(),
    };
    // The slab pool needs a few pages of its own; then 64 bytes a slot.
    let size = (8 * 4096 + count * 64).div_ceil(4096) * 4096;
    // SAFETY: per the contract; nginx copies the name struct, whose bytes are
    // static.
    let zone = unsafe { ngx_shared_memory_add(cf, &mut name, size, tag) };
    if zone.is_null() {
        return None;
    }
    // SAFETY: a zone nginx just declared for us, not initialised yet. Its
    // data carries the slot count to the init callback. A new cycle gets a
    // new zone (`noreuse`): its upstreams' lists are new too.
    unsafe {
        (*zone).init = Some(init_election_zone);
        (*zone).data = count as *mut c_void;
        (*zone).noreuse = 1;
    }
    Some(zone)
}

/// Allocates the slots, all free, in the new zone.
///
/// # Safety
/// nginx calls it once per cycle in the master, with our zone mapped and its
/// slab pool initialised.
unsafe extern "C" fn init_election_zone(zone: *mut ngx_shm_zone_t, _old: *mut c_void) -> ngx_int_t {
    super::guard(NGX_ERROR as ngx_int_t, || {
        // SAFETY: per the contract; `data` holds the count add_election_zone set.
        unsafe {
            let count = (*zone).data as usize;
            let pool = (*zone).shm.addr.cast::<ngx_slab_pool_t>();
            let slots = ngx_slab_calloc(pool, count.max(1) * size_of::<Slot>());
            if slots.is_null() {
                return NGX_ERROR as ngx_int_t;
            }
            (*zone).data = slots;
        }
        NGX_OK as ngx_int_t
    })
}

/// The election slot of the `index`-th zone upstream.
///
/// # Safety
/// `zone` must be the running cycle's election zone, `index` below its count.
pub(crate) unsafe fn slot<'a>(zone: *mut ngx_shm_zone_t, index: usize) -> &'a Slot {
    // SAFETY: per the contract: the zone's data is its slot array, mapped in
    // every process of the cycle; all-zero is a valid (free) slot and every
    // field is an atomic.
    unsafe { &*(*zone).data.cast::<Slot>().add(index) }
}

/// The servers of a shared list (primary, then backup), read under its lock.
///
/// # Safety
/// `peers` must be a live shared list of the running cycle.
pub(crate) unsafe fn servers(peers: *mut ngx_http_upstream_rr_peers_t) -> Vec<Server> {
    // SAFETY: per the contract; the read locks keep the poller's changes out
    // while we read (only the poller, this process, changes the lists).
    unsafe {
        let backup = (*peers).next;
        rlock_both(peers, backup);
        let out = PeerSource::from_list(peers).servers((*peers).number);
        unlock_both(peers, backup);
        out
    }
}

unsafe fn rlock_both(
    peers: *mut ngx_http_upstream_rr_peers_t,
    backup: *mut ngx_http_upstream_rr_peers_t,
) {
    // SAFETY: live lists; the lock words are only used through nginx's
    // lock functions. Primary before backup, as nginx never holds a backup
    // lock while it waits for the primary's.
    unsafe {
        ngx::ffi::ngx_rwlock_rlock(&mut (*peers).rwlock);
        if !backup.is_null() {
            ngx::ffi::ngx_rwlock_rlock(&mut (*backup).rwlock);
        }
    }
}

unsafe fn unlock_both(
    peers: *mut ngx_http_upstream_rr_peers_t,
    backup: *mut ngx_http_upstream_rr_peers_t,
) {
    // SAFETY: the locks the caller took.
    unsafe {
        if !backup.is_null() {
            ngx_rwlock_unlock(&mut (*backup).rwlock);
        }
        ngx_rwlock_unlock(&mut (*peers).rwlock);
    }
}

/// The shared-zone backend: `desired` merged into the shared list's
/// servers and applied in place; the list's reversal state lives in the
/// upstream's election slot, shared by whichever worker polls.
///
/// # Safety
/// As for [`apply`].
pub(crate) unsafe fn apply_registry_list(
    peers: *mut ngx_http_upstream_rr_peers_t,
    slot: &Slot,
    desired: &[Server],
    problems: &mut Vec<String>,
) -> ApplyOutcome {
    // SAFETY: per the contract.
    let current = unsafe { servers(peers) };
    let mut reversed = slot.reversed.load(Ordering::Acquire);
    let list = match merge(&current, desired, &mut reversed) {
        Outcome::Unchanged => return ApplyOutcome::Unchanged,
        Outcome::RefusedEmpty => return ApplyOutcome::RefusedEmpty,
        Outcome::Changed(list) => list,
    };
    // SAFETY: per the contract.
    match unsafe { apply(peers, &list, problems) } {
        Ok(servers) => {
            slot.reversed.store(reversed, Ordering::Release);
            ApplyOutcome::Changed(servers)
        }
        Err(ApplyError::NoPrimary) => ApplyOutcome::NoPrimary,
        Err(ApplyError::ZoneFull(n)) => ApplyOutcome::ZoneFull(n),
    }
}

/// The slab pool's mutex, held until dropped, so that no early return
/// leaves it locked (ngx's `LockedSlabPool` does the same, but needs the
/// zone; a list only knows its pool).
struct SlabLock(*mut ngx_slab_pool_t);

impl SlabLock {
    /// # Safety
    /// `pool` is a live slab pool that this process has not locked.
    unsafe fn new(pool: *mut ngx_slab_pool_t) -> SlabLock {
        // SAFETY: per the contract.
        unsafe { ngx_shmtx_lock(&mut (*pool).mutex) };
        SlabLock(pool)
    }
}

impl Drop for SlabLock {
    fn drop(&mut self) {
        // SAFETY: locked by `new`, on a pool that outlives the lock.
        unsafe { ngx_shmtx_unlock(&mut (*self.0).mutex) };
    }
}

/// Why a list was not applied.
pub(crate) enum ApplyError {
    NoPrimary,
    ZoneFull(usize),
}

/// A server of the new list and the peer that will carry it.
struct Placed<'a> {
    server: &'a Server,
    /// An existing peer (updated in place) or a new one (already allocated).
    peer: *mut ngx_http_upstream_rr_peer_t,
}

/// Makes the shared lists of an upstream hold `list` (primary and backup, in
/// order). Returns the servers actually applied; `problems` gets the servers
/// left out. On an error nothing changed.
///
/// # Safety
/// `peers` must be the live shared primary list of an upstream of the
/// running cycle; only this process (the poller) changes it.
pub(crate) unsafe fn apply(
    peers: *mut ngx_http_upstream_rr_peers_t,
    list: &[Server],
    problems: &mut Vec<String>,
) -> Result<Vec<Server>, ApplyError> {
    // SAFETY: per the contract.
    let pool = unsafe { (*peers).shpool };
    // Existing peers by name. Only this process changes the lists, so the
    // set read here is still the set when we lock for writing below.
    let mut all = Vec::new();
    let existing: HashMap<Vec<u8>, *mut ngx_http_upstream_rr_peer_t> = {
        let mut m = HashMap::new();
        let mut l = peers;
        while !l.is_null() {
            // SAFETY: live lists and peers, not changed by anyone else.
            let mut p = unsafe { (*l).peer };
            while !p.is_null() {
                // SAFETY: as above.
                unsafe {
                    m.entry((*p).name.as_bytes().to_vec()).or_insert(p);
                    all.push(p);
                    p = (*p).next;
                }
            }
            // SAFETY: as above.
            l = unsafe { (*l).next };
        }
        m
    };

    // Addresses first: a server without one is left out.
    let mut wanted: Vec<(
        &Server,
        Result<*mut ngx_http_upstream_rr_peer_t, SocketAddr>,
    )> = Vec::with_capacity(list.len());
    let mut seen = HashSet::with_capacity(list.len());
    for s in list {
        // A peer is linked once: a name listed twice (two catalog entries
        // for one address) keeps its first place.
        if !seen.insert(s.name.as_str()) {
            continue;
        }
        // A peer's `server` (its host name) is fixed: an address that
        // moves to another name, or to none, is a new peer.
        let same = existing.get(s.name.as_bytes()).copied().filter(|&p| {
            // SAFETY: a live peer of the list, as above.
            unsafe { (*p).server.as_bytes() == s.entry().as_bytes() }
        });
        if let Some(p) = same {
            wanted.push((s, Ok(p)));
        } else if let Ok(addr) = s.name.parse::<SocketAddr>() {
            wanted.push((s, Err(addr)));
        } else if s.name != PLACEHOLDER {
            problems.push(format!("server \"{}\" is not an address, skipped", s.name));
        }
    }
    if !wanted.iter().any(|(s, _)| !s.backup) {
        return Err(ApplyError::NoPrimary);
    }

    // New peers and, when backups appear, the backup list: all or nothing.
    // SAFETY: `peers` is live.
    let need_backup = unsafe { (*peers).next.is_null() } && wanted.iter().any(|(s, _)| s.backup);
    let mut placed: Vec<Placed<'_>> = Vec::with_capacity(wanted.len());
    let mut fresh = Vec::new();
    let mut new_backup: *mut ngx_http_upstream_rr_peers_t = ptr::null_mut();
    // SAFETY: the zone's slab pool, shared: its mutex guards allocations.
    let lock = unsafe { SlabLock::new(pool) };
    let mut failed = 0;
    for (s, p) in &wanted {
        let peer = match *p {
            Ok(existing) => existing,
            // SAFETY: the pool is locked.
            Err(addr) => match unsafe { new_peer(pool, s, addr) } {
                Some(p) => {
                    fresh.push(p);
                    p
                }
                None => {
                    failed += 1;
                    continue;
                }
            },
        };
        placed.push(Placed { server: s, peer });
    }
    if need_backup && failed == 0 {
        // SAFETY: the pool is locked; `peers` is live.
        new_backup = unsafe { new_list(pool, peers) };
        if new_backup.is_null() {
            failed += 1;
        }
    }
    if failed > 0 {
        for p in fresh {
            // SAFETY: our own peers, in no list yet; the pool is locked.
            unsafe { free_peer_locked(pool, p) };
        }
        return Err(ApplyError::ZoneFull(failed));
    }
    drop(lock);

    // SAFETY: live lists; the write locks keep every request out while the
    // lists are relinked (nginx's balancers read them under the read lock or
    // the write lock).
    unsafe {
        ngx_rwlock_wlock(&mut (*peers).rwlock);
        if !new_backup.is_null() {
            (*peers).next = new_backup;
        }
        let backup = (*peers).next;
        if !backup.is_null() {
            ngx_rwlock_wlock(&mut (*backup).rwlock);
        }

        let mut kept = HashSet::with_capacity(placed.len());
        for pl in &placed {
            kept.insert(pl.peer);
            set_attributes(&mut *pl.peer, pl.server);
        }
        relink(peers, placed.iter().filter(|pl| !pl.server.backup));
        if !backup.is_null() {
            relink(backup, placed.iter().filter(|pl| pl.server.backup));
        }
        (*peers)
            .set_single(((*peers).number == 1 && (backup.is_null() || (*backup).number == 0)) as _);
        *(*peers).config += 1;

        // Removed peers: freed now, or by the last request holding them.
        // The write locks guarantee `refs` is stable while we look at it.
        let lock = SlabLock::new(pool);
        for &p in &all {
            if !kept.contains(&p) {
                if (*p).refs > 0 {
                    (*p).set_zombie(1);
                } else {
                    free_peer_locked(pool, p);
                }
            }
        }
        drop(lock);

        unlock_both(peers, backup);
    }
    Ok(placed.iter().map(|pl| pl.server.clone()).collect())
}

/// Puts `placed` in `list`, in order, and sets the counters nginx's
/// round-robin init computes.
///
/// # Safety
/// `list` is write-locked; the peers are live and in no other list.
unsafe fn relink<'a>(
    list: *mut ngx_http_upstream_rr_peers_t,
    placed: impl Iterator<Item = &'a Placed<'a>>,
) {
    let (mut number, mut weight, mut tries) = (0usize, 0usize, 0usize);
    // SAFETY: per the contract.
    unsafe {
        let mut link: *mut *mut ngx_http_upstream_rr_peer_t = &mut (*list).peer;
        for pl in placed {
            *link = pl.peer;
            link = &mut (*pl.peer).next;
            number += 1;
            weight += (*pl.peer).weight as usize;
            tries += ((*pl.peer).down == 0) as usize;
        }
        *link = ptr::null_mut();
        (*list).number = number;
        (*list).total_weight = weight;
        (*list).tries = tries;
        (*list).set_weighted((weight != number) as _);
        (*list).set_single(0);
    }
}

/// The registry's attributes on a peer; runtime state (fails, conns) stays.
fn set_attributes(peer: &mut ngx_http_upstream_rr_peer_t, s: &Server) {
    let weight = s.weight as ngx::ffi::ngx_int_t;
    if peer.weight != weight {
        peer.weight = weight;
        peer.effective_weight = weight;
        peer.current_weight = 0;
    }
    peer.max_fails = s.max_fails as _;
    peer.fail_timeout = s.fail_timeout as time_t;
    // The health checks' bit stays.
    peer.down = (peer.down & super::check::HEALTH_DOWN) | s.down as ngx::ffi::ngx_uint_t;
}

/// A new peer in the zone for `s` at `addr`, in no list yet.
///
/// # Safety
/// `pool` is the zone's slab pool, locked by the caller.
unsafe fn new_peer(
    pool: *mut ngx_slab_pool_t,
    s: &Server,
    addr: SocketAddr,
) -> Option<*mut ngx_http_upstream_rr_peer_t> {
    let mut sa = SockAddr::from_socket_addr(addr);
    let name = s.name.as_bytes();
    let server = s.entry().as_bytes();
    // SAFETY: per the contract. calloc gives all-zero memory, a valid peer
    // (null pointers, zero counters) as nginx's own zone code relies on.
    unsafe {
        let peer = ngx_slab_calloc_locked(pool, size_of::<ngx_http_upstream_rr_peer_t>())
            .cast::<ngx_http_upstream_rr_peer_t>();
        if peer.is_null() {
            return None;
        }
        let sockaddr = ngx_slab_calloc_locked(pool, sa.len() as usize);
        let name_data = ngx_slab_calloc_locked(pool, name.len().max(1));
        let server_data = ngx_slab_calloc_locked(pool, server.len().max(1));
        (*peer).sockaddr = sockaddr.cast();
        (*peer).name.data = name_data.cast();
        (*peer).server.data = server_data.cast();
        if sockaddr.is_null() || name_data.is_null() || server_data.is_null() {
            free_peer_locked(pool, peer);
            return None;
        }
        ptr::copy_nonoverlapping(
            sa.as_ptr().cast::<u8>(),
            sockaddr.cast::<u8>(),
            sa.len() as usize,
        );
        (*peer).socklen = sa.len();
        ptr::copy_nonoverlapping(name.as_ptr(), name_data.cast::<u8>(), name.len());
        ptr::copy_nonoverlapping(server.as_ptr(), server_data.cast::<u8>(), server.len());
        (*peer).name.len = name.len();
        (*peer).server.len = server.len();
        (*peer).weight = s.weight as _;
        (*peer).effective_weight = (*peer).weight;
        (*peer).max_fails = s.max_fails as _;
        (*peer).fail_timeout = s.fail_timeout as time_t;
        (*peer).down = s.down as _;
        Some(peer)
    }
}

/// An empty backup list in the zone, sharing the primary's name, pool and
/// generation counter.
///
/// # Safety
/// `pool` is the zone's slab pool, locked by the caller; `peers` is live.
unsafe fn new_list(
    pool: *mut ngx_slab_pool_t,
    peers: *mut ngx_http_upstream_rr_peers_t,
) -> *mut ngx_http_upstream_rr_peers_t {
    // SAFETY: per the contract; all-zero is an empty list and an unlocked
    // rwlock.
    unsafe {
        let list = ngx_slab_calloc_locked(pool, size_of::<ngx_http_upstream_rr_peers_t>())
            .cast::<ngx_http_upstream_rr_peers_t>();
        if !list.is_null() {
            (*list).shpool = pool;
            (*list).config = (*peers).config;
            (*list).name = (*peers).name;
        }
        list
    }
}

/// Frees a peer and what it points to, as nginx's
/// `ngx_http_upstream_rr_peer_free_locked` does for a peer no request holds.
///
/// # Safety
/// `pool` is locked; `peer` was allocated in it and nothing refers to it.
unsafe fn free_peer_locked(pool: *mut ngx_slab_pool_t, peer: *mut ngx_http_upstream_rr_peer_t) {
    // SAFETY: per the contract.
    unsafe {
        for p in [
            (*peer).sockaddr.cast::<c_void>(),
            (*peer).name.data.cast(),
            (*peer).server.data.cast(),
            #[cfg(ngx_feature = "http_ssl")]
            (*peer).ssl_session,
        ] {
            if !p.is_null() {
                ngx_slab_free_locked(pool, p);
            }
        }
        ngx_slab_free_locked(pool, peer.cast());
    }
}
