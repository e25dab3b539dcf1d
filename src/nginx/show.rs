//! The `upstream_show` content handler.

use std::ptr;

use ngx::core::Buffer;
use ngx::ffi::{
    ngx_chain_t, ngx_cycle, ngx_http_request_t, ngx_int_t, NGX_ERROR,
    NGX_HTTP_INTERNAL_SERVER_ERROR, NGX_HTTP_NOT_ALLOWED, NGX_OK,
};
use ngx::http::{HTTPStatus, HttpModuleMainConf, Method, NgxHttpUpstreamModule, Request};
use ngx::ngx_string;

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
        handle(unsafe { Request::from_ngx_http_request(r) })
    })
}

fn handle(r: &mut Request) -> ngx_int_t {
    if !matches!(r.method(), Method::GET | Method::HEAD) {
        return NGX_HTTP_NOT_ALLOWED as ngx_int_t;
    }
    let rc = r.discard_request_body();
    if !rc.is_ok() {
        return rc.into();
    }

    // SAFETY: a request handler runs in a worker of the running cycle.
    let upstreams = unsafe { snapshot() };
    let body = render(r.as_ref().args.as_bytes(), &upstreams);

    r.set_status(HTTPStatus(200));
    let headers = &mut r.as_mut().headers_out;
    headers.content_type = ngx_string!("text/plain");
    headers.content_type_len = headers.content_type.len;
    r.set_content_length_n(body.len());

    let rc: ngx_int_t = r.send_header().into();
    if rc == NGX_ERROR as ngx_int_t || rc > NGX_OK as ngx_int_t || r.header_only() {
        return rc;
    }
    let Some(mut buf) = r.pool().create_buffer_from_str(&body) else {
        return NGX_ERROR as ngx_int_t;
    };
    buf.set_last_buf(r.is_main());
    buf.set_last_in_chain(true);
    let mut out = ngx_chain_t {
        buf: buf.as_ngx_buf_mut(),
        next: ptr::null_mut(),
    };
    // `out` outlives the call; nginx copies the chain link it keeps.
    r.output_filter(&mut out).into()
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
