//! The balancer hooks of synced upstreams: nginx calls them for every
//! proxied request. They wrap the upstream's own balancer (`peer.init`, and
//! per request `peer.get` and `peer.free`), whatever it is.
//!
//! Per-worker lists: a request holds the generation it started on until it
//! ends; before each call into the balancer, the balancer's tables are those
//! of that generation; and every connection it opens and closes is counted
//! for the server in the current list as well
//! ([`Lineage`](super::generation::Lineage)).
//!
//! Zone mode: a request that meets a list change between its init and its
//! first peer starts again on the new list.

use std::cell::RefCell;
use std::collections::HashMap;
use std::ffi::c_void;
use std::ptr;
use std::thread::LocalKey;

use ngx::ffi::{
    ngx_event_free_peer_pt, ngx_event_get_peer_pt, ngx_http_request_t,
    ngx_http_upstream_srv_conf_t, ngx_int_t, ngx_peer_connection_t, ngx_pool_cleanup_add,
    ngx_str_t, ngx_uint_t, NGX_DONE, NGX_ERROR, NGX_OK,
};

use super::generation::Generation;
use super::guard;
use super::poller::Poller;

/// A synced upstream's runtime and the balancer's own `peer.init`.
///
/// # Safety
/// `us` is an upstream of the running cycle.
unsafe fn balancer_init(us: *mut ngx_http_upstream_srv_conf_t) -> Option<(*mut Poller, InitPeer)> {
    // SAFETY: per the contract; ours has a Poller since postconfiguration.
    let up = unsafe { super::module::runtime(us) }?;
    // SAFETY: `up` is this process's live boxed upstream.
    Some((up, unsafe { (*up).original_init_peer }?))
}

/// A balancer's `peer.init`.
type InitPeer =
    unsafe extern "C" fn(*mut ngx_http_request_t, *mut ngx_http_upstream_srv_conf_t) -> ngx_int_t;

/// Per-request state of a hook, kept in the request's pool until the pool is
/// destroyed, and found again from the request's peer connection (the
/// balancer's `get` and `free` receive nothing else of ours).
struct Attached<T> {
    /// The address of the request's peer connection: its key in the map.
    key: usize,
    state: T,
}

type ByPeer<T> = RefCell<HashMap<usize, *mut Attached<T>>>;

/// A kind of per-request state, with this worker's map of the live ones.
trait PerRequest: Sized + 'static {
    fn map() -> &'static LocalKey<ByPeer<Self>>;
}

/// Keeps `state` for the life of `r`, found by its peer connection; dropped
/// with the request's pool. `None` (and `state` dropped) without memory.
///
/// # Safety
/// `r` is a live request with an upstream.
unsafe fn attach<T: PerRequest>(r: *mut ngx_http_request_t, state: T) -> Option<*mut T> {
    // SAFETY: per the contract; the cleanup's data is fresh memory of the
    // request's pool, sized and aligned (nginx aligns pool allocations to
    // pointers) for an Attached<T>.
    unsafe {
        let cln = ngx_pool_cleanup_add((*r).pool, size_of::<Attached<T>>());
        if cln.is_null() {
            return None;
        }
        let key = ptr::addr_of_mut!((*(*r).upstream).peer) as usize;
        let a = (*cln).data.cast::<Attached<T>>();
        a.write(Attached { key, state });
        T::map().with(|m| m.borrow_mut().insert(key, a));
        (*cln).handler = Some(detach::<T>);
        Some(ptr::addr_of_mut!((*a).state))
    }
}

/// The state attached to the request of this peer connection.
fn find<T: PerRequest>(pc: *mut ngx_peer_connection_t) -> Option<*mut T> {
    T::map().with(|m| {
        m.borrow()
            .get(&(pc as usize))
            // SAFETY: a registered Attached lives until its cleanup, which
            // unregisters it first.
            .map(|&a| unsafe { ptr::addr_of_mut!((*a).state) })
    })
}

/// Pool cleanup of a request: forgets its state and drops it.
///
/// # Safety
/// nginx calls it once, when the request's pool is destroyed, with the
/// Attached `attach` wrote.
unsafe extern "C" fn detach<T: PerRequest>(data: *mut c_void) {
    super::guard((), || {
        let a = data.cast::<Attached<T>>();
        // SAFETY: per the contract.
        let key = unsafe { (*a).key };
        T::map().with(|m| {
            let mut m = m.borrow_mut();
            // A second init on the same peer connection replaced this one.
            if m.get(&key) == Some(&a) {
                m.remove(&key);
            }
        });
        // SAFETY: written by `attach`, dropped once, here.
        unsafe { ptr::drop_in_place(a) };
    })
}

/// A request on a per-worker list: the generation it holds (released when
/// the request ends), and the balancer's own `peer.get` and `peer.free`,
/// which ours wrap.
struct Held {
    gen: *mut Generation,
    get: ngx_event_get_peer_pt,
    free: ngx_event_free_peer_pt,
    /// The name of the server it is connected to now (empty: none).
    peer: ngx_str_t,
}

impl Drop for Held {
    fn drop(&mut self) {
        // SAFETY: `init_peer` held this generation for this request.
        unsafe { Generation::release(self.gen) };
    }
}

std::thread_local! {
    static HELD: ByPeer<Held> = RefCell::new(HashMap::new());
}

impl PerRequest for Held {
    fn map() -> &'static LocalKey<ByPeer<Self>> {
        &HELD
    }
}

/// `peer.init` of a synced upstream with per-worker lists: the balancer's
/// own init on the current generation, which the request holds until its
/// pool is destroyed.
///
/// # Safety
/// nginx calls it with a live request and the upstream being balanced.
pub(crate) unsafe extern "C" fn init_peer(
    r: *mut ngx_http_request_t,
    us: *mut ngx_http_upstream_srv_conf_t,
) -> ngx_int_t {
    guard(NGX_ERROR as ngx_int_t, || {
        // SAFETY: nginx calls peer.init with a live request and upstream;
        // ours has a Poller since postconfiguration, whose current
        // generation is live.
        unsafe {
            let Some((up, init)) = balancer_init(us) else {
                return NGX_ERROR as ngx_int_t;
            };
            let gen = (*up).lineage().current();
            if gen.is_null() {
                return NGX_ERROR as ngx_int_t;
            }
            (*gen).select();
            let rc = init(r, us);
            if rc != NGX_OK as ngx_int_t {
                return rc;
            }
            let pc = &mut (*(*r).upstream).peer;
            Generation::hold(gen);
            let held = Held {
                gen,
                get: pc.get,
                free: pc.free,
                peer: ngx_str_t {
                    len: 0,
                    data: ptr::null_mut(),
                },
            };
            if attach(r, held).is_none() {
                return NGX_ERROR as ngx_int_t;
            }
            pc.get = Some(get_peer);
            pc.free = Some(free_peer);
            NGX_OK as ngx_int_t
        }
    })
}

/// `peer.get` of a request on a per-worker list.
///
/// # Safety
/// nginx calls it with the request's live peer connection and the data the
/// balancer's init put there.
unsafe extern "C" fn get_peer(pc: *mut ngx_peer_connection_t, data: *mut c_void) -> ngx_int_t {
    guard(NGX_ERROR as ngx_int_t, || {
        let Some(h) = find::<Held>(pc) else {
            return NGX_ERROR as ngx_int_t;
        };
        // SAFETY: the Held lives in the request's pool until its cleanup,
        // and its generation as long as it holds it; `pc` is live.
        unsafe {
            let h = &mut *h;
            let Some(get) = h.get else {
                return NGX_ERROR as ngx_int_t;
            };
            (*h.gen).select();
            let rc = get(pc, data);
            let got = rc == NGX_OK as ngx_int_t || rc == NGX_DONE as ngx_int_t;
            if got && !(*pc).name.is_null() {
                // Every stock balancer points `name` at the chosen peer's.
                h.peer = *(*pc).name;
                (*h.gen).lineage().opened(h.peer.as_bytes(), h.gen);
            }
            rc
        }
    })
}

/// `peer.free` of a request on a per-worker list.
///
/// # Safety
/// nginx calls it with the request's live peer connection, after a `get`.
unsafe extern "C" fn free_peer(
    pc: *mut ngx_peer_connection_t,
    data: *mut c_void,
    state: ngx_uint_t,
) {
    guard((), || {
        let Some(h) = find::<Held>(pc) else {
            return;
        };
        // SAFETY: as in `get_peer`. Freeing a peer reads no balancer table.
        unsafe {
            let h = &mut *h;
            if let Some(free) = h.free {
                free(pc, data, state);
            }
            if h.peer.len != 0 {
                (*h.gen).lineage().closed(h.peer.as_bytes(), h.gen);
                h.peer.len = 0;
            }
        }
    })
}

/// Zone mode: what a request needs to start again on a list the poller
/// changed between its `peer.init` and its first `peer.get`.
#[cfg(ngx_resolve_peers)]
struct Restart {
    r: *mut ngx_http_request_t,
    us: *mut ngx_http_upstream_srv_conf_t,
    init: InitPeer,
    /// The balancer's `peer.get`, which ours wraps.
    get: ngx::ffi::ngx_event_get_peer_pt,
    /// The list's generation counter, read before the balancer's init.
    config: ngx::ffi::ngx_uint_t,
    /// A first `peer.get` was made: later ones are retries of nginx's own.
    got: bool,
    restarts_left: u8,
}

#[cfg(ngx_resolve_peers)]
std::thread_local! {
    static RESTARTS: ByPeer<Restart> = RefCell::new(HashMap::new());
}

#[cfg(ngx_resolve_peers)]
impl PerRequest for Restart {
    fn map() -> &'static LocalKey<ByPeer<Self>> {
        &RESTARTS
    }
}

/// The generation counter of a shared list.
///
/// # Safety
/// `us` is a zone upstream of the running cycle (its list is in the zone).
#[cfg(ngx_resolve_peers)]
unsafe fn shared_config(us: *mut ngx_http_upstream_srv_conf_t) -> ngx::ffi::ngx_uint_t {
    // SAFETY: per the contract; the counter is an aligned word in the zone,
    // only the poller writes it (under the list's write lock), and it is
    // read here as the atomic it is used as.
    unsafe {
        let peers = (*us)
            .peer
            .data
            .cast::<ngx::ffi::ngx_http_upstream_rr_peers_t>();
        std::sync::atomic::AtomicUsize::from_ptr((*peers).config.cast())
            .load(std::sync::atomic::Ordering::Acquire) as ngx::ffi::ngx_uint_t
    }
}

/// `peer.init` of a zone upstream: the balancer's own init, with its
/// `peer.get` wrapped. nginx's balancers refuse a peer (NGX_BUSY, "no live
/// upstreams") when the list changed since the request's init; when the
/// poller changed it in that instant, the request starts again on the new
/// list instead of failing.
///
/// # Safety
/// nginx calls it with a live request and the upstream being balanced.
#[cfg(ngx_resolve_peers)]
pub(crate) unsafe extern "C" fn init_peer_shared(
    r: *mut ngx_http_request_t,
    us: *mut ngx_http_upstream_srv_conf_t,
) -> ngx_int_t {
    guard(NGX_ERROR as ngx_int_t, || {
        // SAFETY: nginx calls peer.init with a live request and upstream;
        // ours has a Poller since postconfiguration.
        unsafe {
            let Some((_, init)) = balancer_init(us) else {
                return NGX_ERROR as ngx_int_t;
            };
            let config = shared_config(us);
            let rc = init(r, us);
            if rc != NGX_OK as ngx_int_t {
                return rc;
            }
            let pc = &mut (*(*r).upstream).peer;
            let restart = Restart {
                r,
                us,
                init,
                get: pc.get,
                config,
                got: false,
                restarts_left: 3,
            };
            if attach(r, restart).is_none() {
                return NGX_ERROR as ngx_int_t;
            }
            pc.get = Some(get_peer_shared);
            NGX_OK as ngx_int_t
        }
    })
}

/// `peer.get` of a request on a zone upstream; see [`init_peer_shared`].
///
/// # Safety
/// nginx calls it with the request's live peer connection.
#[cfg(ngx_resolve_peers)]
unsafe extern "C" fn get_peer_shared(
    pc: *mut ngx_peer_connection_t,
    _data: *mut c_void,
) -> ngx_int_t {
    let busy = ngx::ffi::NGX_BUSY as ngx_int_t;
    guard(NGX_ERROR as ngx_int_t, || {
        let Some(restart) = find::<Restart>(pc) else {
            return NGX_ERROR as ngx_int_t;
        };
        // SAFETY: the Restart lives in the request's pool, registered until
        // the pool's cleanup; `pc` is the request's peer connection, whose
        // data is whatever the balancer's init put there last.
        unsafe {
            let rs = &mut *restart;
            loop {
                let Some(get) = rs.get else {
                    return NGX_ERROR as ngx_int_t;
                };
                let rc = get(pc, (*pc).data);
                if rc != busy || rs.got || rs.restarts_left == 0 {
                    rs.got = true;
                    return rc;
                }
                let now = shared_config(rs.us);
                if now == rs.config {
                    // The same list: nothing could be had from it.
                    rs.got = true;
                    return rc;
                }
                // The list changed since the init: start on the new one.
                rs.restarts_left -= 1;
                rs.config = now;
                let tries = (*pc).tries;
                (*pc).data = ptr::null_mut();
                if (rs.init)(rs.r, rs.us) != NGX_OK as ngx_int_t {
                    return NGX_ERROR as ngx_int_t;
                }
                (*pc).tries = (*pc).tries.min(tries);
                rs.get = (*pc).get;
                (*pc).get = Some(get_peer_shared);
            }
        }
    })
}
