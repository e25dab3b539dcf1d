//! TLS to the registry with nginx's own OpenSSL layer: an `SSL_CTX` built
//! from the `upsync_ssl_*` directives at configuration time, and for each
//! exchange a client connection whose certificate is checked against the
//! registry's name or IP address (nginx's own check knows names only).

use std::ffi::{c_void, CString};
use std::net::IpAddr;
use std::ptr;

use ngx::ffi::{
    ngx_conf_t, ngx_connection_t, ngx_create_pool, ngx_destroy_pool, ngx_int_t, ngx_pcalloc,
    ngx_pool_cleanup_add, ngx_pool_t, ngx_ssl_certificate, ngx_ssl_cleanup_ctx,
    ngx_ssl_client_session_cache, ngx_ssl_create, ngx_ssl_create_connection, ngx_ssl_get_session,
    ngx_ssl_handshake, ngx_ssl_read_password_file, ngx_ssl_set_session, ngx_ssl_shutdown,
    ngx_ssl_t, ngx_ssl_trusted_certificate, ngx_str_t, NGX_SSL_TLSv1, NGX_SSL_TLSv1_1,
    NGX_SSL_TLSv1_2, NGX_SSL_TLSv1_3, SSL_CTX_set_default_verify_paths, SSL_CTX_set_verify,
    SSL_SESSION_free, SSL_ctrl, SSL_get0_param, SSL_get_verify_result, X509_VERIFY_PARAM_set1_host,
    X509_VERIFY_PARAM_set1_ip, X509_verify_cert_error_string, NGX_AGAIN, NGX_OK, NGX_SSL_BUFFER,
    NGX_SSL_CLIENT, SSL_SESSION,
};

use crate::conf::{ConfError, TlsConf};
use crate::registry::session::{Failure, Phase};

/// A client TLS context, built at configuration time.
pub(crate) type Ctx = *mut ngx_ssl_t;

/// `SSL_CTRL_SET_TLSEXT_HOSTNAME` and `TLSEXT_NAMETYPE_host_name`: what the
/// `SSL_set_tlsext_host_name` macro passes to `SSL_ctrl`.
const SET_TLSEXT_HOSTNAME: i32 = 55;
const NAMETYPE_HOST_NAME: i64 = 0;
/// `SSL_VERIFY_PEER`, `X509_V_OK`.
const VERIFY_PEER: i32 = 1;
const X509_V_OK: i64 = 0;

/// An nginx string over the bytes of a configured path, which must outlive
/// its use. A NUL is added after them: nginx hands `data` to OpenSSL as a C
/// string.
fn ngx_str(s: &mut Vec<u8>) -> ngx_str_t {
    s.push(0);
    ngx_str_t {
        len: s.len() - 1,
        data: s.as_mut_ptr(),
    }
}

/// Builds the client `SSL_CTX` of `conf`, in `cf`'s pool (freed with it).
///
/// # Safety
/// `cf` is the configuration being built.
pub(crate) unsafe fn context(
    cf: *mut ngx_conf_t,
    conf: &TlsConf,
) -> Result<*mut ngx_ssl_t, ConfError> {
    conf.check()?;
    let protocols = conf.protocol_list().iter().fold(0, |mask, p| {
        mask | match p.as_str() {
            "TLSv1" => NGX_SSL_TLSv1,
            "TLSv1.1" => NGX_SSL_TLSv1_1,
            "TLSv1.2" => NGX_SSL_TLSv1_2,
            _ => NGX_SSL_TLSv1_3,
        }
    });
    let failed = |what: &str| ConfError(format!("{what} failed (see the lines above)"));
    // SAFETY: per the contract; the struct is zeroed in the pool, as nginx's
    // modules allocate theirs, and lives as long as the configuration.
    unsafe {
        let ssl = ngx_pcalloc((*cf).pool, size_of::<ngx_ssl_t>()).cast::<ngx_ssl_t>();
        if ssl.is_null() {
            return Err(ConfError("out of memory".into()));
        }
        (*ssl).log = (*cf).log;
        if ngx_ssl_create(ssl, protocols as _, ptr::null_mut()) != NGX_OK as ngx_int_t {
            return Err(failed("creating the TLS context"));
        }
        let cln = ngx_pool_cleanup_add((*cf).pool, 0);
        if cln.is_null() {
            return Err(ConfError("out of memory".into()));
        }
        (*cln).handler = Some(ngx_ssl_cleanup_ctx);
        (*cln).data = ssl.cast::<c_void>();

        if let (Some(cert), Some(key)) = (&conf.certificate, &conf.certificate_key) {
            let mut passwords = ptr::null_mut();
            if let Some(file) = &conf.password_file {
                let mut file = file.clone().into_bytes();
                passwords = ngx_ssl_read_password_file(cf, &mut ngx_str(&mut file));
                if passwords.is_null() {
                    return Err(failed("reading \"upsync_ssl_password_file\""));
                }
            }
            let (mut cert, mut key) = (cert.clone().into_bytes(), key.clone().into_bytes());
            if ngx_ssl_certificate(
                cf,
                ssl,
                &mut ngx_str(&mut cert),
                &mut ngx_str(&mut key),
                passwords,
            ) != NGX_OK as ngx_int_t
            {
                return Err(failed("loading \"upsync_ssl_certificate\""));
            }
        }
        if conf.verifies() {
            // nginx's callback lets every handshake finish; the result is
            // checked once it has (see `verified`).
            SSL_CTX_set_verify((*ssl).ctx, VERIFY_PEER, None);
            let mut trusted = conf
                .trusted_certificate
                .clone()
                .unwrap_or_default()
                .into_bytes();
            if ngx_ssl_trusted_certificate(cf, ssl, &mut ngx_str(&mut trusted), conf.depth() as _)
                != NGX_OK as ngx_int_t
            {
                return Err(failed("loading \"upsync_ssl_trusted_certificate\""));
            }
            if conf.trusted_certificate.is_none()
                && SSL_CTX_set_default_verify_paths((*ssl).ctx) != 1
            {
                return Err(failed("loading the system's trusted certificates"));
            }
        }
        if ngx_ssl_client_session_cache(cf, ssl, 1) != NGX_OK as ngx_int_t {
            return Err(failed("the TLS session cache"));
        }
        Ok(ssl)
    }
}

/// What a connection to one registry endpoint verifies and sends.
pub(crate) struct Peer {
    pub(crate) ctx: Ctx,
    pub(crate) verify: bool,
    /// The name the certificate must have (and SNI, for a host name).
    pub(crate) name: CString,
    pub(crate) ip: Option<IpAddr>,
    pub(crate) sni: bool,
}

impl Peer {
    /// For an endpoint `host` (brackets kept for IPv6), or the configured
    /// `upsync_ssl_name`.
    pub(crate) fn new(ctx: Ctx, conf: &TlsConf, host: &str) -> Peer {
        let name = conf.name.clone().unwrap_or_else(|| {
            host.trim_start_matches('[')
                .trim_end_matches(']')
                .to_string()
        });
        let ip = name.parse::<IpAddr>().ok();
        Peer {
            ctx,
            verify: conf.verifies(),
            sni: conf.sends_server_name() && ip.is_none(),
            // A name from a configuration line has no NUL byte.
            name: CString::new(name).unwrap_or_default(),
            ip,
        }
    }
}

/// The TLS state of one exchange: the connection's own pool and the session
/// kept for the next one.
pub(crate) struct Link {
    pub(crate) peer: Peer,
    pool: *mut ngx_pool_t,
    session: *mut SSL_SESSION,
}

impl Link {
    pub(crate) fn new(peer: Peer) -> Link {
        Link {
            peer,
            pool: ptr::null_mut(),
            session: ptr::null_mut(),
        }
    }

    /// A new endpoint: its own session from now on.
    pub(crate) fn set_peer(&mut self, peer: Peer) {
        self.forget_session();
        self.peer = peer;
    }

    fn forget_session(&mut self) {
        if !self.session.is_null() {
            // SAFETY: a session `ngx_ssl_get_session` gave us a reference to.
            unsafe { SSL_SESSION_free(self.session) };
            self.session = ptr::null_mut();
        }
    }

    /// Starts the handshake on the connected `c`: `Ok(true)` when it is
    /// done, `Ok(false)` when it waits for the network (the caller sets
    /// `c->ssl->handler`). `save` keeps the sessions the registry gives
    /// (TLS 1.3 sends them after the handshake): it calls [`Link::keep`].
    ///
    /// # Safety
    /// `c` is a live connection of this exchange, connected, without TLS yet.
    pub(crate) unsafe fn start(
        &mut self,
        c: *mut ngx_connection_t,
        save: ngx::ffi::ngx_connection_handler_pt,
    ) -> Result<bool, Failure> {
        let tls = |what: &str| Failure::Tls(format!("TLS {what} failed"));
        // SAFETY: per the contract; every pointer is nginx's or ours, live.
        unsafe {
            if (*c).pool.is_null() {
                self.pool = ngx_create_pool(1024, (*c).log);
                if self.pool.is_null() {
                    return Err(tls("setup"));
                }
                (*c).pool = self.pool;
            }
            if ngx_ssl_create_connection(self.peer.ctx, c, (NGX_SSL_CLIENT | NGX_SSL_BUFFER) as _)
                != NGX_OK as ngx_int_t
            {
                return Err(tls("setup"));
            }
            (*(*c).ssl).save_session = save;
            let ssl = (*(*c).ssl).connection.cast();
            if self.peer.sni
                && SSL_ctrl(
                    ssl,
                    SET_TLSEXT_HOSTNAME,
                    NAMETYPE_HOST_NAME as _,
                    self.peer.name.as_ptr().cast_mut().cast(),
                ) != 1
            {
                return Err(tls("server name"));
            }
            if self.peer.verify {
                let param = SSL_get0_param(ssl);
                let ok = match self.peer.ip {
                    Some(IpAddr::V4(ip)) => {
                        X509_VERIFY_PARAM_set1_ip(param, ip.octets().as_ptr(), 4)
                    }
                    Some(IpAddr::V6(ip)) => {
                        X509_VERIFY_PARAM_set1_ip(param, ip.octets().as_ptr(), 16)
                    }
                    None => X509_VERIFY_PARAM_set1_host(
                        param,
                        self.peer.name.as_ptr(),
                        self.peer.name.as_bytes().len(),
                    ),
                };
                if ok != 1 {
                    return Err(tls("verification setup"));
                }
            }
            if !self.session.is_null()
                && ngx_ssl_set_session(c, self.session) != NGX_OK as ngx_int_t
            {
                return Err(tls("session reuse"));
            }
            match ngx_ssl_handshake(c) {
                rc if rc == NGX_AGAIN as ngx_int_t => Ok(false),
                _ => self.finished(c).map(|()| true),
            }
        }
    }

    /// The handshake ended (or timed out): whether the connection can carry
    /// the request.
    ///
    /// # Safety
    /// `c` is a live connection of this exchange on which [`Link::start`] ran.
    pub(crate) unsafe fn finished(&mut self, c: *mut ngx_connection_t) -> Result<(), Failure> {
        // SAFETY: per the contract.
        unsafe {
            if (*(*c).read).timedout() != 0 || (*(*c).write).timedout() != 0 {
                return Err(Failure::TimedOut(Phase::Connect));
            }
            if (*c).ssl.is_null() || (*(*c).ssl).handshaked() == 0 {
                return Err(Failure::Tls("TLS handshake failed".into()));
            }
            let ssl = (*(*c).ssl).connection.cast();
            if self.peer.verify {
                let rc = SSL_get_verify_result(ssl);
                if rc != X509_V_OK {
                    let text = std::ffi::CStr::from_ptr(X509_verify_cert_error_string(rc));
                    return Err(Failure::Tls(format!(
                        "TLS certificate verify error: ({rc}:{})",
                        text.to_string_lossy()
                    )));
                }
            }
        }
        Ok(())
    }

    /// The registry gave `c` a session: the next exchange resumes it.
    ///
    /// # Safety
    /// `c` is a live TLS connection of this exchange.
    pub(crate) unsafe fn keep(&mut self, c: *mut ngx_connection_t) {
        // SAFETY: per the contract; the reference it returns is ours.
        let session = unsafe { ngx_ssl_get_session(c) };
        if !session.is_null() {
            self.forget_session();
            self.session = session;
        }
    }

    /// Ends TLS on `c` before nginx closes it, then frees its pool.
    ///
    /// # Safety
    /// `c` is a live connection of this exchange, about to be closed; the
    /// returned pool must be destroyed after the connection is closed.
    pub(crate) unsafe fn shutdown(&mut self, c: *mut ngx_connection_t) -> *mut ngx_pool_t {
        // SAFETY: per the contract.
        unsafe {
            if !(*c).ssl.is_null() {
                (*(*c).ssl).set_no_wait_shutdown(1);
                (*(*c).ssl).set_no_send_shutdown(1);
                let _ = ngx_ssl_shutdown(c);
            }
            if (*c).pool == self.pool {
                (*c).pool = ptr::null_mut();
            }
        }
        std::mem::replace(&mut self.pool, ptr::null_mut())
    }
}

impl Drop for Link {
    fn drop(&mut self) {
        self.forget_session();
    }
}

/// The handshake under way on `c` waits for the network: `handler` is
/// called when it ends.
///
/// # Safety
/// `c` is a live connection on which [`Link::start`] returned `Ok(false)`.
pub(crate) unsafe fn on_done(
    c: *mut ngx_connection_t,
    handler: unsafe extern "C" fn(*mut ngx_connection_t),
) {
    // SAFETY: per the contract, `c->ssl` is the connection's TLS state.
    unsafe { (*(*c).ssl).handler = Some(handler) };
}

/// Destroys a pool [`Link::shutdown`] gave back.
///
/// # Safety
/// `pool` is null or a pool of this module no connection uses any more.
pub(crate) unsafe fn destroy(pool: *mut ngx_pool_t) {
    if !pool.is_null() {
        // SAFETY: per the contract.
        unsafe { ngx_destroy_pool(pool) };
    }
}
