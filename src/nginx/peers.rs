//! Read access to an upstream's round-robin peer lists.

use std::ffi::{c_void, CStr};
use std::ptr;
use std::slice;

use ngx::ffi::{
    ngx_http_complex_value_t, ngx_http_upstream_main_conf_t, ngx_http_upstream_rr_peers_t,
    ngx_http_upstream_srv_conf_t, ngx_module_t,
};

use super::generation::{PeerSource, PLACEHOLDER};
use crate::server::Server;
use crate::status::{Health, Peer, State, Upstream};

/// What applying a registry's list to an upstream's peer lists did; both
/// backends (per-worker generations, the shared zone) answer with it.
pub(crate) enum ApplyOutcome {
    /// The servers now in the lists.
    Changed(Vec<Server>),
    Unchanged,
    /// The registry's list is empty: nginx never empties an upstream.
    RefusedEmpty,
    /// No server of the list can be a primary peer.
    NoPrimary,
    /// The zone has no room for this many new servers.
    #[cfg_attr(not(ngx_resolve_peers), allow(dead_code))]
    ZoneFull(usize),
}

/// Every upstream of the http block, in config order.
///
/// # Safety
/// `umcf` must be the upstream module's main conf of the running cycle.
pub(crate) unsafe fn upstreams(
    umcf: &ngx_http_upstream_main_conf_t,
) -> &[*mut ngx_http_upstream_srv_conf_t] {
    if umcf.upstreams.nelts == 0 || umcf.upstreams.elts.is_null() {
        return &[];
    }
    // SAFETY: `upstreams` is an ngx_array_t of `nelts` srv conf pointers,
    // alive as long as the cycle.
    unsafe { slice::from_raw_parts(umcf.upstreams.elts.cast(), umcf.upstreams.nelts) }
}

/// A snapshot of one upstream for `upstream_show`: its peers, its zone,
/// and its sync when the module keeps it.
///
/// # Safety
/// `uscf` must be a live upstream of the running cycle whose `peer.data`, when
/// set, is a round-robin peer list (every stock balancer builds on it).
pub(crate) unsafe fn view(uscf: &ngx_http_upstream_srv_conf_t) -> Upstream {
    // SAFETY: per the contract; the health checks' state first.
    unsafe { super::check::refresh(ptr::from_ref(uscf).cast_mut()) };
    let name = String::from_utf8_lossy(uscf.host.as_bytes()).into_owned();
    let list = uscf.peer.data as *mut ngx_http_upstream_rr_peers_t;
    let peers = if list.is_null() {
        Vec::new()
    } else {
        // SAFETY: per the contract.
        let health = unsafe { super::check::health_of(ptr::from_ref(uscf).cast_mut()) };
        // SAFETY: per the contract above, a non-null peer.data is the list.
        unsafe { with_rlock(list, |l| peers_of(l, health.as_ref())) }
    };
    let zone = (!uscf.shm_zone.is_null()).then(|| {
        // SAFETY: a live upstream's zone, named in its config.
        String::from_utf8_lossy(unsafe { (*uscf.shm_zone).shm.name.as_bytes() }).into_owned()
    });
    // SAFETY: per the contract; the poller lives as long as the cycle's
    // configuration, and is only read here.
    let sync = unsafe { super::module::runtime(ptr::from_ref(uscf).cast_mut()) }
        // SAFETY: as above.
        .map(|poller| unsafe { (*poller).sync_view() });
    Upstream {
        name,
        peers,
        zone,
        sync,
    }
}
/// Runs `f` on the list, under its read lock when it lives in a shared zone.
///
/// # Safety
/// `peers` must point to a live round-robin peer list.
unsafe fn with_rlock<T>(
    peers: *mut ngx_http_upstream_rr_peers_t,
    f: impl FnOnce(&ngx_http_upstream_rr_peers_t) -> T,
) -> T {
    #[cfg(ngx_feature = "http_upstream_zone")]
    {
        // SAFETY: `peers` is live; the lock word is only touched through the
        // nginx lock functions, shared with every other process.
        let shared = unsafe { !(*peers).shpool.is_null() };
        if shared {
            // SAFETY: as above; the lock is taken and released here, in pairs.
            unsafe { ngx::ffi::ngx_rwlock_rlock(&mut (*peers).rwlock) };
            // SAFETY: the read lock keeps writers out while `f` reads.
            let out = f(unsafe { &*peers });
            // SAFETY: the lock this function took.
            unsafe { ngx::ffi::ngx_rwlock_unlock(&mut (*peers).rwlock) };
            return out;
        }
    }
    // SAFETY: a private list is only changed by this process, not now.
    f(unsafe { &*peers })
}

/// The peers of a list, primaries then backups, without the stand-in of an
/// empty upstream, with their state as nginx's round robin sees it now.
fn peers_of(
    list: &ngx_http_upstream_rr_peers_t,
    health: Option<&std::collections::HashMap<std::net::SocketAddr, Health>>,
) -> Vec<Peer> {
    // SAFETY: the caller keeps the list alive and unchanged while we read.
    let source = unsafe { PeerSource::from_list(list) };
    // SAFETY: nginx's cached clock, updated by this process's event loop.
    let now = unsafe { (*ngx::ffi::ngx_cached_time).sec };
    source
        .servers(list.number)
        .into_iter()
        .zip(source.peers())
        .filter(|(s, _)| s.name != PLACEHOLDER)
        .map(|(server, p)| {
            let health = health.and_then(|h| h.get(&server.name.parse().ok()?).copied());
            (server, p, health)
        })
        .map(|(server, p, health)| Peer {
            state: if server.down {
                State::Down
            } else if p.down & super::check::HEALTH_DOWN != 0 {
                match health {
                    Some(h) if h.checks == 0 => State::Checking,
                    _ => State::Unhealthy,
                }
            } else if p.max_fails != 0
                && p.fails >= p.max_fails
                && now - p.checked <= p.fail_timeout
            {
                State::Unavail
            } else {
                State::Up
            },
            server,
            active: p.conns as u64,
            max_conns: p.max_conns as u64,
            health,
        })
        .collect()
}

/// The head of `ngx_http_upstream_hash_srv_conf_t`, private to nginx's hash
/// module: `points` is the ring of `hash ... consistent`.
#[repr(C)]
pub(crate) struct HashSrvConf {
    key: ngx_http_complex_value_t,
    #[cfg(all(ngx_resolve_peers, ngx_feature = "http_upstream_zone"))]
    config: ngx::ffi::ngx_uint_t,
    pub(crate) points: *mut c_void,
}

/// `ngx_http_upstream_random_srv_conf_t`, private to nginx's random module.
#[repr(C)]
pub(crate) struct RandomSrvConf {
    two: ngx::ffi::ngx_uint_t,
    #[cfg(all(ngx_resolve_peers, ngx_feature = "http_upstream_zone"))]
    config: ngx::ffi::ngx_uint_t,
    pub(crate) ranges: *mut c_void,
}

/// The tables a balancer derived from an upstream's list when nginx
/// initialised it, and reads on every request: `random`'s ranges, the ring
/// of `hash ... consistent`. Null where the upstream has none. A shared
/// (zone) list has none at that point: nginx builds them at run time, and
/// again after each change of the list's generation counter.
#[derive(Clone, Copy)]
pub(crate) struct Tables {
    pub(crate) random: *mut RandomSrvConf,
    pub(crate) chash: *mut HashSrvConf,
}

/// The srv conf of the module named `module` in `uscf`, if nginx has it.
///
/// # Safety
/// `uscf` must be an upstream of the configuration being built.
unsafe fn module_conf(uscf: &ngx_http_upstream_srv_conf_t, module: &CStr) -> *mut c_void {
    // Looked up at run time: an nginx built without the module has none.
    // SAFETY: RTLD_DEFAULT searches the process's global symbols; the name
    // is NUL-terminated.
    let module = unsafe { libc::dlsym(libc::RTLD_DEFAULT, module.as_ptr()) }.cast::<ngx_module_t>();
    if module.is_null() || uscf.srv_conf.is_null() {
        return std::ptr::null_mut();
    }
    // SAFETY: every http module has a srv conf slot in every upstream.
    unsafe { *uscf.srv_conf.add((*module).ctx_index) }
}

/// The tables of the upstream's balancer, once nginx initialised it.
///
/// # Safety
/// `uscf` must be an initialised upstream of the configuration being built;
/// the structs above mirror the modules' srv confs for this nginx version.
pub(crate) unsafe fn balancer_tables(uscf: &ngx_http_upstream_srv_conf_t) -> Tables {
    // SAFETY: per the contract; a module's srv conf is its own struct.
    unsafe {
        let random = module_conf(uscf, c"ngx_http_upstream_random_module").cast::<RandomSrvConf>();
        let chash = module_conf(uscf, c"ngx_http_upstream_hash_module").cast::<HashSrvConf>();
        Tables {
            random: if !random.is_null() && !(*random).ranges.is_null() {
                random
            } else {
                std::ptr::null_mut()
            },
            chash: if !chash.is_null() && !(*chash).points.is_null() {
                chash
            } else {
                std::ptr::null_mut()
            },
        }
    }
}
