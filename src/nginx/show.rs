//! The `upstream_show` content handlers: the C module's text, JSON and
//! Prometheus.

use std::ptr;

use ngx::core::Buffer;
use ngx::ffi::{
    ngx_chain_t, ngx_cycle, ngx_http_request_t, ngx_int_t, ngx_str_t, NGX_ERROR,
    NGX_HTTP_INTERNAL_SERVER_ERROR, NGX_HTTP_NOT_ALLOWED, NGX_OK,
};
use ngx::http::{HTTPStatus, HttpModuleMainConf, Method, NgxHttpUpstreamModule, Request};

use super::guard;
use super::peers;
use crate::show::render;
use crate::status::{self, find, parse_query, Format, Upstream};

/// Content handlers of `upstream_show [text|json|prometheus]`, one per
/// default format: `GET|HEAD /location?<upstream name>` or `?key=value&...`.
///
/// # Safety
/// nginx calls content handlers with a live request.
pub(crate) unsafe extern "C" fn show_text(r: *mut ngx_http_request_t) -> ngx_int_t {
    // SAFETY: per the contract.
    unsafe { guarded(r, Format::Text) }
}

/// # Safety
/// As for [`show_text`].
pub(crate) unsafe extern "C" fn show_json(r: *mut ngx_http_request_t) -> ngx_int_t {
    // SAFETY: per the contract.
    unsafe { guarded(r, Format::Json) }
}

/// # Safety
/// As for [`show_text`].
pub(crate) unsafe extern "C" fn show_prometheus(r: *mut ngx_http_request_t) -> ngx_int_t {
    // SAFETY: per the contract.
    unsafe { guarded(r, Format::Prometheus) }
}

/// # Safety
/// As for [`show_text`].
unsafe fn guarded(r: *mut ngx_http_request_t, default: Format) -> ngx_int_t {
    // No panic may unwind into nginx: turn one into a 500.
    guard(NGX_HTTP_INTERNAL_SERVER_ERROR as ngx_int_t, || {
        // SAFETY: nginx calls content handlers with a valid request.
        handle(unsafe { Request::from_ngx_http_request(r) }, default)
    })
}

fn handle(r: &mut Request, default: Format) -> ngx_int_t {
    if !matches!(r.method(), Method::GET | Method::HEAD) {
        return NGX_HTTP_NOT_ALLOWED as ngx_int_t;
    }
    let rc = r.discard_request_body();
    if !rc.is_ok() {
        return rc.into();
    }
    let (status, format, body) = answer(r.as_ref().args.as_bytes(), default);
    send(r, status, format.content_type(), &body)
}

/// The status, format and body for the query `args`.
fn answer(args: &[u8], default: Format) -> (u16, Format, String) {
    let query = match parse_query(args, default) {
        Ok(query) => query,
        Err(e) => {
            return match default {
                Format::Json => (400, Format::Json, status::json_error(400, &e, "BadQuery")),
                _ => (400, Format::Text, format!("{e}\n")),
            }
        }
    };
    // SAFETY: a request handler runs in a worker of the running cycle.
    let upstreams = unsafe { snapshot() };
    let name = query.upstream.as_deref();
    let one = name.map(|n| find(&upstreams, n));
    match (query.format, one) {
        // The C module's text, its 200 for an unknown name included.
        (Format::Text, _) => (200, Format::Text, render(name.unwrap_or(b""), &upstreams)),
        (format, Some(None)) => {
            let text = format!(
                "upstream \"{}\" not found",
                name.unwrap_or_default().escape_ascii()
            );
            match format {
                Format::Json => (
                    404,
                    format,
                    status::json_error(404, &text, "UpstreamNotFound"),
                ),
                _ => (404, Format::Text, text + "\n"),
            }
        }
        (Format::Json, one) => (200, Format::Json, status::json(&upstreams, one.flatten())),
        (Format::Prometheus, one) => {
            let chosen: Vec<&Upstream> = match one.flatten() {
                Some(u) => vec![u],
                None => upstreams.iter().collect(),
            };
            (200, Format::Prometheus, status::prometheus(&chosen))
        }
    }
}

pub(crate) fn send(
    r: &mut Request,
    status: u16,
    content_type: &'static str,
    body: &str,
) -> ngx_int_t {
    r.set_status(HTTPStatus(status as usize));
    let headers = &mut r.as_mut().headers_out;
    headers.content_type = ngx_str_t {
        len: content_type.len(),
        data: content_type.as_ptr().cast_mut(),
    };
    headers.content_type_len = headers.content_type.len;
    r.set_content_length_n(body.len());

    let rc: ngx_int_t = r.send_header().into();
    if rc == NGX_ERROR as ngx_int_t || rc > NGX_OK as ngx_int_t || r.header_only() {
        return rc;
    }
    if body.is_empty() {
        // No zero-size buffer: the end of the response alone.
        // SAFETY: a live request whose header went out.
        return unsafe {
            ngx::ffi::ngx_http_send_special(
                r.as_mut(),
                ngx::ffi::NGX_HTTP_LAST as ngx::ffi::ngx_uint_t,
            )
        };
    }
    let Some(mut buf) = r.pool().create_buffer_from_str(body) else {
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
unsafe fn snapshot() -> Vec<Upstream> {
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
