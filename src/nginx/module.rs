//! The `ngx_module_t` of `ngx_http_upsync_module` and its directive table.

use std::ffi::{c_char, c_void};
use std::ptr;

use ngx::ffi::{
    ngx_command_t, ngx_conf_t, ngx_http_module_t, ngx_module_t, ngx_uint_t, NGX_CONF_NOARGS,
    NGX_HTTP_LOC_CONF, NGX_HTTP_LOC_CONF_OFFSET, NGX_HTTP_MODULE,
};
use ngx::http::{HttpModuleLocationConf, NgxHttpCoreModule};
use ngx::ngx_string;

use super::show::upstream_show_handler;

static NGX_HTTP_UPSYNC_MODULE_CTX: ngx_http_module_t = ngx_http_module_t {
    preconfiguration: None,
    postconfiguration: None,
    create_main_conf: None,
    init_main_conf: None,
    create_srv_conf: None,
    merge_srv_conf: None,
    create_loc_conf: None,
    merge_loc_conf: None,
};

static mut NGX_HTTP_UPSYNC_COMMANDS: [ngx_command_t; 2] = [
    ngx_command_t {
        name: ngx_string!("upstream_show"),
        type_: (NGX_HTTP_LOC_CONF | NGX_CONF_NOARGS) as ngx_uint_t,
        set: Some(set_upstream_show),
        conf: NGX_HTTP_LOC_CONF_OFFSET,
        offset: 0,
        post: ptr::null_mut(),
    },
    ngx_command_t::empty(),
];

// The `ngx_modules` table a cdylib needs to be loadable by `load_module`.
// nginx's own build (`--add-dynamic-module`) generates it instead.
#[cfg(feature = "export-modules")]
ngx::ngx_modules!(ngx_http_upsync_module);

#[used]
#[allow(non_upper_case_globals)]
#[cfg_attr(not(feature = "export-modules"), no_mangle)]
pub static mut ngx_http_upsync_module: ngx_module_t = ngx_module_t {
    ctx: ptr::addr_of!(NGX_HTTP_UPSYNC_MODULE_CTX) as _,
    // SAFETY: only the address of the command table is taken; nginx reads it
    // while parsing the configuration, on one thread.
    commands: unsafe { ptr::addr_of_mut!(NGX_HTTP_UPSYNC_COMMANDS[0]) },
    type_: NGX_HTTP_MODULE as _,
    ..ngx_module_t::default()
};

/// `upstream_show;` installs the content handler of the location.
extern "C" fn set_upstream_show(
    cf: *mut ngx_conf_t,
    _cmd: *mut ngx_command_t,
    _conf: *mut c_void,
) -> *mut c_char {
    // SAFETY: nginx calls directive handlers with a valid `cf` while parsing a
    // location, where the core module's location configuration exists.
    let cf = unsafe { &*cf };
    match NgxHttpCoreModule::location_conf_mut(cf) {
        Some(clcf) => {
            clcf.handler = Some(upstream_show_handler);
            ptr::null_mut() // NGX_CONF_OK
        }
        None => c"has no location configuration".as_ptr().cast_mut(),
    }
}
