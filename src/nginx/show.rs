//! The `upstream_show` content handler.

use std::ptr;

use ngx::ffi::{
    ngx_chain_t, ngx_create_temp_buf, ngx_cycle, ngx_http_discard_request_body,
    ngx_http_output_filter, ngx_http_request_t, ngx_http_send_header, ngx_int_t, NGX_ERROR,
    NGX_HTTP_GET, NGX_HTTP_HEAD, NGX_HTTP_INTERNAL_SERVER_ERROR, NGX_HTTP_NOT_ALLOWED, NGX_OK,
};
use ngx::http::{HttpModuleMainConf, NgxHttpUpstreamModule};

use super::guard;
use super::peers;
use crate::show::{render, UpstreamView};

/// Content handler: `GET|HEAD /location?<upstream name>`.
///
/// # Safety
/// nginx calls content handlers with a live request.
pub(crate) unsafe extern "C" fn upstream_show_handler(r: *mut ngx_http_request_t) -> ngx_int_t {
    // No panic may unwind into nginx: turn one into a 500.
    guard(NGX_HTTP_INTERNAL_SERVER_ERROR as ngx_int_t, || {
        // SAFETY: nginx calls content handlers with a valid request.
        unsafe { handle(&mut *r) }
    })
}

/// # Safety
/// `r` must be the request nginx is running this content handler for.
unsafe fn handle(r: &mut ngx_http_request_t) -> ngx_int_t {
    if r.method & (NGX_HTTP_GET | NGX_HTTP_HEAD) as usize == 0 {
        return NGX_HTTP_NOT_ALLOWED as ngx_int_t;
    }
    // SAFETY: a valid request, in its content phase.
    let rc = unsafe { ngx_http_discard_request_body(r) };
    if rc != NGX_OK as ngx_int_t {
        return rc;
    }

    let args = r.args.as_bytes();
    // SAFETY: a request handler runs in a worker of the running cycle.
    let upstreams = unsafe { snapshot() };
    let body = render(args, &upstreams);

    r.headers_out.status = 200;
    r.headers_out.content_type.len = "text/plain".len();
    r.headers_out.content_type.data = c"text/plain".as_ptr() as *mut u8;
    r.headers_out.content_type_len = r.headers_out.content_type.len;
    r.headers_out.content_length_n = body.len() as _;

    // SAFETY: headers are filled in; the request is valid.
    let rc = unsafe { ngx_http_send_header(r) };
    if rc == NGX_ERROR as ngx_int_t || rc > NGX_OK as ngx_int_t || r.header_only() != 0 {
        return rc;
    }

    // SAFETY: the pool belongs to the request; the buffer is sized for body.
    let b = unsafe { ngx_create_temp_buf(r.pool, body.len().max(1)) };
    if b.is_null() {
        return NGX_ERROR as ngx_int_t;
    }
    // SAFETY: `b` is a fresh temp buffer with room for `body.len()` bytes.
    unsafe {
        ptr::copy_nonoverlapping(body.as_ptr(), (*b).last, body.len());
        (*b).last = (*b).last.add(body.len());
        (*b).set_last_buf(if ptr::eq(r, r.main) { 1 } else { 0 });
        (*b).set_last_in_chain(1);
    }
    let mut out = ngx_chain_t {
        buf: b,
        next: ptr::null_mut(),
    };
    // SAFETY: `out` outlives the call; nginx copies the chain link it keeps.
    unsafe { ngx_http_output_filter(r, &mut out) }
}

/// Every upstream of the running cycle, in config order.
///
/// # Safety
/// Must run in a process of the running cycle (a worker or single process).
unsafe fn snapshot() -> Vec<UpstreamView> {
    // SAFETY: `ngx_cycle` is the running cycle; it has the http upstream module.
    let Some(umcf) = NgxHttpUpstreamModule::main_conf(unsafe { &*ngx_cycle }) else {
        return Vec::new();
    };
    // SAFETY: the main conf and its upstreams belong to the running cycle.
    unsafe { peers::upstreams(umcf) }
        .iter()
        .filter(|uscf| !uscf.is_null())
        // SAFETY: every entry is a live upstream of the cycle.
        .map(|uscf| unsafe { peers::view(&**uscf) })
        .collect()
}
