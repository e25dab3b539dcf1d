//! TLS on an nginx built without OpenSSL: the same interface as `tls.rs`,
//! whose context cannot be built, so that an `https://` registry is refused
//! when nginx reads its configuration and no connection ever asks for TLS.

use std::ffi::c_void;
use std::ptr;

use ngx::ffi::{ngx_conf_t, ngx_connection_t, ngx_pool_t};

use crate::conf::{ConfError, TlsConf};
use crate::registry::session::Failure;

pub(crate) type Ctx = *mut c_void;

const NO_TLS: &str = "an https:// registry needs nginx built with OpenSSL \
                      (./configure --with-http_ssl_module); this nginx has none";

/// # Safety
/// Nothing: it always refuses.
pub(crate) unsafe fn context(_cf: *mut ngx_conf_t, _conf: &TlsConf) -> Result<Ctx, ConfError> {
    Err(ConfError(NO_TLS.into()))
}

pub(crate) struct Peer;

impl Peer {
    pub(crate) fn new(_ctx: Ctx, _conf: &TlsConf, _host: &str) -> Peer {
        Peer
    }
}

pub(crate) struct Link;

impl Link {
    pub(crate) fn new(_peer: Peer) -> Link {
        Link
    }

    pub(crate) fn set_peer(&mut self, _peer: Peer) {}

    /// # Safety
    /// Nothing is touched.
    pub(crate) unsafe fn start(
        &mut self,
        _c: *mut ngx_connection_t,
        _save: ngx::ffi::ngx_connection_handler_pt,
    ) -> Result<bool, Failure> {
        Err(Failure::Tls(NO_TLS.into()))
    }

    /// # Safety
    /// Nothing is touched.
    pub(crate) unsafe fn finished(&mut self, _c: *mut ngx_connection_t) -> Result<(), Failure> {
        Err(Failure::Tls(NO_TLS.into()))
    }

    /// # Safety
    /// Nothing is touched.
    pub(crate) unsafe fn keep(&mut self, _c: *mut ngx_connection_t) {}

    /// # Safety
    /// Nothing is touched.
    pub(crate) unsafe fn shutdown(&mut self, _c: *mut ngx_connection_t) -> *mut ngx_pool_t {
        ptr::null_mut()
    }
}

/// # Safety
/// Nothing is touched.
pub(crate) unsafe fn on_done(
    _c: *mut ngx_connection_t,
    _handler: unsafe extern "C" fn(*mut ngx_connection_t),
) {
}

/// # Safety
/// Nothing is touched.
pub(crate) unsafe fn destroy(_pool: *mut ngx_pool_t) {}
