//! Read access to an upstream's round-robin peer lists.

use std::slice;

use ngx::ffi::{
    ngx_http_upstream_main_conf_t, ngx_http_upstream_rr_peer_t, ngx_http_upstream_rr_peers_t,
    ngx_http_upstream_srv_conf_t, ngx_str_t,
};

use crate::server::Server;
use crate::show::UpstreamView;

/// The bytes of an `ngx_str_t`.
///
/// # Safety
/// `s.data` must point to `s.len` readable bytes (or `len` be 0) for `'a`.
pub(crate) unsafe fn str_bytes<'a>(s: &ngx_str_t) -> &'a [u8] {
    if s.len == 0 || s.data.is_null() {
        &[]
    } else {
        // SAFETY: guaranteed by the caller.
        unsafe { slice::from_raw_parts(s.data, s.len) }
    }
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

/// A snapshot of one upstream for `upstream_show`.
///
/// # Safety
/// `uscf` must be a live upstream of the running cycle whose `peer.data`, when
/// set, is a round-robin peer list (every stock balancer builds on it).
pub(crate) unsafe fn view(uscf: &ngx_http_upstream_srv_conf_t) -> UpstreamView {
    // SAFETY: the host string lives as long as the cycle.
    let name = String::from_utf8_lossy(unsafe { str_bytes(&uscf.host) }).into_owned();
    let peers = uscf.peer.data as *mut ngx_http_upstream_rr_peers_t;
    let servers = if peers.is_null() {
        None
    } else {
        // SAFETY: per the contract above, a non-null peer.data is the list.
        Some(unsafe { with_rlock(peers, |p| collect(p)) })
    };
    UpstreamView { name, servers }
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
            unsafe { ngx::ffi::ngx_rwlock_rlock(&mut (*peers).rwlock) };
            // SAFETY: the read lock keeps writers out while `f` reads.
            let out = f(unsafe { &*peers });
            unsafe { ngx::ffi::ngx_rwlock_unlock(&mut (*peers).rwlock) };
            return out;
        }
    }
    // SAFETY: a private list is only changed by this process, not now.
    f(unsafe { &*peers })
}

fn collect(peers: &ngx_http_upstream_rr_peers_t) -> Vec<Server> {
    let mut out = Vec::with_capacity(peers.number);
    let mut peer: *const ngx_http_upstream_rr_peer_t = peers.peer;
    while !peer.is_null() {
        // SAFETY: `peer` walks the list's `next` chain, which holds live peers
        // while the caller keeps the list from changing.
        let p = unsafe { &*peer };
        out.push(Server {
            // SAFETY: a peer's name lives as long as the peer.
            name: String::from_utf8_lossy(unsafe { str_bytes(&p.name) }).into_owned(),
            weight: p.weight as i64,
            max_fails: p.max_fails as u64,
            fail_timeout: p.fail_timeout as i64,
            down: p.down != 0,
            backup: false,
        });
        peer = p.next;
    }
    out
}
