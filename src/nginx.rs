//! The thin layer that touches nginx: module and directive tables, handlers,
//! the registry client on nginx's event loop, and the upstreams' peer lists.
//! All the crate's unsafe code is here.

mod balancer;
mod check;
mod election;
mod generation;
mod module;
mod net;
mod peers;
mod poller;
mod resolve;
mod show;
mod stats;
#[cfg(ngx_resolve_peers)]
mod zone;

/// Logs through nginx's log at `$level` (an `NGX_LOG_*` constant), prefixed
/// with the module's name.
macro_rules! log {
    ($level:expr, $log:expr, $($arg:tt)+) => {
        { ::ngx::ngx_log_error!($level, $log, "upsync: {}", format_args!($($arg)+)); }
    };
}
pub(crate) use log;

/// The running cycle's log, for messages that belong to no request.
pub(crate) fn cycle_log() -> *mut ngx::ffi::ngx_log_t {
    ngx::log::ngx_cycle_log().as_ptr()
}

/// Runs `f`, which nginx called into, and gives `on_panic` if it panics:
/// no panic may unwind into nginx. Every `extern "C"` entry point of the
/// module runs behind it.
pub(crate) fn guard<R>(on_panic: R, f: impl FnOnce() -> R) -> R {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).unwrap_or(on_panic)
}
