//! The host names of a synced upstream, resolved with nginx's own resolver
//! on the worker's event loop (never a blocking lookup).
//!
//! Each name of the registry's list has a [`Name`]: its last addresses and a
//! timer. The timer asks the resolver again when the answer's TTL ends
//! (`resolver ... valid=` overrides it), as nginx's `server ... resolve`
//! does. A failed answer (NXDOMAIN, SERVFAIL, a timeout) keeps the last
//! addresses, unlike nginx, which empties the server on NXDOMAIN: the
//! registry decides which servers exist, DNS only where they are. When an
//! answer changes the addresses, the upstream's event runs, and the poller
//! applies its list again through the same path as a registry change.

use std::collections::HashMap;
use std::ffi::{c_void, CStr};
use std::net::SocketAddr;
use std::ptr;

use ngx::ffi::{
    ngx_del_timer, ngx_event_t, ngx_msec_t, ngx_resolve_name, ngx_resolve_name_done,
    ngx_resolve_start, ngx_resolver_ctx_t, ngx_resolver_strerror, ngx_resolver_t, ngx_str_t,
    time_t, NGX_LOG_ERR, NGX_LOG_INFO, NGX_LOG_NOTICE, NGX_LOG_WARN, NGX_OK, NGX_RESOLVE_NXDOMAIN,
};

use super::{cycle_log, guard, log};
use crate::names::{normalise, port_of};
use crate::registry::is_host_name;
use crate::server::Server;

/// `NGX_NO_RESOLVER`: what `ngx_resolve_start` returns when the resolver
/// has no name server (nginx's stand-in when none is configured).
const NO_RESOLVER: *mut ngx_resolver_ctx_t = usize::MAX as *mut ngx_resolver_ctx_t;

/// A resolver of the configuration and the timeout of its queries.
#[derive(Clone, Copy)]
pub(crate) struct Resolver {
    r: *mut ngx_resolver_t,
    timeout_ms: ngx_msec_t,
}

impl Resolver {
    /// `r` when it has name servers (the `resolver` directive made it).
    ///
    /// # Safety
    /// `r` is null or a resolver of the configuration being built.
    pub(crate) unsafe fn configured(
        r: *mut ngx_resolver_t,
        timeout_ms: ngx_msec_t,
    ) -> Option<Self> {
        // SAFETY: per the contract.
        (!r.is_null() && unsafe { (*r).connections.nelts } > 0)
            .then_some(Resolver { r, timeout_ms })
    }

    /// How long a failed query waits to be asked again: nginx's rule for
    /// `server ... resolve`.
    fn retry_ms(&self) -> ngx_msec_t {
        self.timeout_ms.max(1000)
    }
}

/// The names of one upstream's registry list.
pub(crate) struct Names {
    upstream: String,
    resolver: Option<Resolver>,
    names: HashMap<String, Box<Name>>,
    /// The upstream's event, run when an answer changed some addresses.
    changed: *mut ngx_event_t,
}

/// One `name:port` and what the resolver last said of it.
struct Name {
    /// `name:port`, as the registry gives it: how messages name it.
    key: String,
    /// The name alone, which the resolver is asked (the context points to it).
    host: Box<[u8]>,
    port: u16,
    addrs: Vec<SocketAddr>,
    /// The last answer's state (0: addresses), to log a repeated failure
    /// quietly; `None` before the first answer.
    last_state: Option<isize>,
    upstream: String,
    resolver: Option<Resolver>,
    /// The query in flight, if any.
    ctx: *mut ngx_resolver_ctx_t,
    timer: ngx_event_t,
    changed: *mut ngx_event_t,
}

impl Names {
    pub(crate) fn new(upstream: &str, resolver: Option<Resolver>) -> Self {
        Names {
            upstream: upstream.to_string(),
            resolver,
            names: HashMap::new(),
            changed: ptr::null_mut(),
        }
    }

    /// The event an answer that changes addresses runs (the poller's).
    pub(crate) fn notify(&mut self, ev: *mut ngx_event_t) {
        self.changed = ev;
    }

    /// Follows the registry's `view`: a new name starts with the addresses
    /// `known` has for it (the list the upstream serves) and is resolved at
    /// once; a name no longer listed is forgotten (its query cancelled).
    /// Returns what to say of names that cannot be resolved.
    pub(crate) fn follow(
        &mut self,
        view: &[Server],
        known: &HashMap<String, Vec<SocketAddr>>,
    ) -> Vec<String> {
        let mut problems = Vec::new();
        let listed: std::collections::HashSet<&str> = view
            .iter()
            .map(|s| s.name.as_str())
            .filter(|n| is_host_name(n))
            .collect();
        self.names.retain(|key, _| listed.contains(key.as_str()));
        for key in listed {
            if self.names.contains_key(key) {
                continue;
            }
            let addrs = known.get(key).cloned().unwrap_or_default();
            if self.resolver.is_none() {
                problems.push(format!(
                    "server \"{key}\" is a host name, and no \"resolver\" is configured \
                     (in http{{}}, or in the upstream on nginx 1.27.3 and newer): {}",
                    if addrs.is_empty() {
                        "skipped".to_string()
                    } else {
                        format!("keeping its last {} addresses", addrs.len())
                    }
                ));
            }
            let (host, _) = key.rsplit_once(':').unwrap_or((key, ""));
            let mut name = Box::new(Name {
                key: key.to_string(),
                host: host.as_bytes().into(),
                port: port_of(key).unwrap_or(0),
                addrs,
                last_state: None,
                upstream: self.upstream.clone(),
                resolver: self.resolver,
                ctx: ptr::null_mut(),
                // SAFETY: all-zero is the initial state of an nginx event.
                timer: unsafe { std::mem::zeroed() },
                changed: self.changed,
            });
            let at: *mut Name = &mut *name;
            name.timer.handler = Some(on_timer);
            name.timer.data = at.cast::<c_void>();
            name.timer.log = cycle_log();
            name.timer.set_cancelable(1);
            if name.resolver.is_some() {
                name.arm(1);
            }
            self.names.insert(key.to_string(), name);
        }
        problems
    }

    /// A resolver is configured: names get addresses in time.
    pub(crate) fn can_resolve(&self) -> bool {
        self.resolver.is_some()
    }

    /// The addresses `name:port` has now (none before its first answer).
    pub(crate) fn addresses(&self, key: &str) -> Option<&[SocketAddr]> {
        self.names.get(key).map(|n| n.addrs.as_slice())
    }

    /// Forgets every name: the worker stops polling, or exits.
    pub(crate) fn clear(&mut self) {
        self.names.clear();
    }
}

impl Name {
    fn arm(&mut self, delay_ms: ngx_msec_t) {
        if self.timer.timer_set() != 0 {
            // SAFETY: our own timer.
            unsafe { ngx_del_timer(&mut self.timer) };
        }
        // SAFETY: our own event, alive as long as the boxed name.
        unsafe { ngx::ffi::ngx_add_timer(&mut self.timer, delay_ms) };
    }

    /// Asks the resolver. Its answer may come before this returns (a cached
    /// name): `on_answer` then ran already, through `me`, and armed the
    /// next query; so this holds no reference to the name across the call.
    ///
    /// # Safety
    /// `me` is a live boxed name with no reference to it held elsewhere.
    unsafe fn query(me: *mut Name) {
        // SAFETY: per the contract; this reference ends before the call.
        let name = unsafe { &mut *me };
        let Some(resolver) = name.resolver else {
            return;
        };
        // SAFETY: the configuration's resolver lives as long as the cycle.
        let ctx = unsafe { ngx_resolve_start(resolver.r, ptr::null_mut()) };
        if ctx.is_null() || ctx == NO_RESOLVER {
            log!(
                NGX_LOG_ERR,
                cycle_log(),
                "upstream \"{}\": cannot resolve \"{}\": {}",
                name.upstream,
                name.key,
                if ctx.is_null() {
                    "out of memory"
                } else {
                    "the resolver has no name server"
                }
            );
            if ctx.is_null() {
                name.arm(resolver.retry_ms());
            }
            return;
        }
        // SAFETY: a fresh context from the resolver; the name it points to
        // is this boxed name's, which outlives the query (dropping the name
        // cancels it).
        unsafe {
            (*ctx).name = ngx_str_t {
                len: name.host.len(),
                data: name.host.as_ptr().cast_mut(),
            };
            (*ctx).handler = Some(on_answer);
            (*ctx).data = me.cast::<c_void>();
            (*ctx).timeout = resolver.timeout_ms;
            (*ctx).set_cancelable(1);
        }
        name.ctx = ctx;
        // SAFETY: a context set up as nginx's own callers do.
        if unsafe { ngx_resolve_name(ctx) } != NGX_OK as isize {
            // SAFETY: the handler did not run (nginx freed the context
            // instead): `me` is as before the call.
            let name = unsafe { &mut *me };
            name.ctx = ptr::null_mut();
            log!(
                NGX_LOG_ERR,
                cycle_log(),
                "upstream \"{}\": cannot resolve \"{}\"",
                name.upstream,
                name.key
            );
            name.arm(resolver.retry_ms());
        }
    }

    /// The resolver's answer: new addresses, or a failure that keeps the
    /// last ones; then the next query.
    fn answered(&mut self, state: isize, addrs: Vec<SocketAddr>, valid: time_t) {
        let Some(resolver) = self.resolver else {
            return;
        };
        // SAFETY: nginx's cached clock, updated by this worker's loop.
        let now: time_t = unsafe { (*ngx::ffi::ngx_cached_time).sec };
        let repeated = self.last_state == Some(state);
        self.last_state = Some(state);
        let delay_ms = if state == 0 {
            let addrs = normalise(addrs, self.port);
            if addrs != self.addrs {
                let list: Vec<String> = addrs.iter().map(|a| a.ip().to_string()).collect();
                log!(
                    NGX_LOG_NOTICE,
                    cycle_log(),
                    "upstream \"{}\": \"{}\" resolved to {}",
                    self.upstream,
                    self.key,
                    list.join(", ")
                );
                self.addrs = addrs;
                if !self.changed.is_null() {
                    // SAFETY: the poller's event, alive as long as the poller
                    // that owns these names.
                    unsafe {
                        if (*self.changed).timer_set() == 0 {
                            ngx::ffi::ngx_add_timer(self.changed, 1);
                        }
                    }
                }
            }
            // Ask again once the answer expired, at least a second later.
            1000 * (valid - now + 1).max(1) as ngx_msec_t
        } else {
            // SAFETY: nginx's static error strings.
            let why = unsafe { CStr::from_ptr(ngx_resolver_strerror(state)) }.to_string_lossy();
            let kept = if self.addrs.is_empty() {
                "it has no address yet".to_string()
            } else {
                format!("keeping its last {} addresses", self.addrs.len())
            };
            log!(
                if repeated {
                    NGX_LOG_INFO
                } else if self.addrs.is_empty() {
                    NGX_LOG_ERR
                } else {
                    NGX_LOG_WARN
                },
                cycle_log(),
                "upstream \"{}\": \"{}\" could not be resolved ({}: {}), {}",
                self.upstream,
                self.key,
                state,
                why,
                kept
            );
            if state == NGX_RESOLVE_NXDOMAIN as isize {
                // The negative answer is cached until `valid`.
                1000 * (valid - now).max(1) as ngx_msec_t
            } else {
                resolver.retry_ms()
            }
        };
        self.arm(delay_ms);
    }
}

impl Drop for Name {
    fn drop(&mut self) {
        if !self.ctx.is_null() {
            // SAFETY: our query in flight: done cancels it, and the handler
            // is not called after.
            unsafe { ngx_resolve_name_done(self.ctx) };
        }
        if self.timer.timer_set() != 0 {
            // SAFETY: our own timer.
            unsafe { ngx_del_timer(&mut self.timer) };
        }
    }
}

unsafe extern "C" fn on_timer(ev: *mut ngx_event_t) {
    guard((), || {
        if super::poller::exiting() {
            return;
        }
        // SAFETY: `data` is the boxed name that owns this timer; it deletes
        // the timer when dropped, so the name is alive here, and nothing
        // else refers to it while the event loop runs this handler.
        unsafe { Name::query((*ev).data.cast::<Name>()) };
    })
}

unsafe extern "C" fn on_answer(ctx: *mut ngx_resolver_ctx_t) {
    guard((), || {
        // SAFETY: the resolver calls the handler once with the context we
        // set up; `data` is its boxed name, which cancels the query when it
        // is dropped, so it is alive here. The addresses are read before
        // `done` frees them.
        let (name, state, addrs, valid) = unsafe {
            let c = &*ctx;
            let mut addrs = Vec::with_capacity(c.naddrs);
            if c.state == 0 && !c.addrs.is_null() {
                for a in std::slice::from_raw_parts(c.addrs, c.naddrs) {
                    addrs.extend(super::generation::socket_addr(a.sockaddr, a.socklen));
                }
            }
            let out = (c.data.cast::<Name>(), c.state, addrs, c.valid);
            ngx_resolve_name_done(ctx);
            out
        };
        // SAFETY: as above; no other reference to the name is live (the
        // answer may come inside `query`, which touches nothing after it).
        let name = unsafe { &mut *name };
        name.ctx = ptr::null_mut();
        name.answered(state, addrs, valid);
    })
}
