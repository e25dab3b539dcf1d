//! The `ngx_module_t` of `ngx_http_upsync_module`: directives, configuration,
//! and the process hooks that start and stop the pollers.

use std::ffi::{c_char, c_void};
use std::net::{SocketAddr, ToSocketAddrs};
use std::ptr;

use ngx::ffi::{
    ngx_array_push, ngx_command_t, ngx_conf_t, ngx_cycle_t, ngx_http_module_t,
    ngx_http_upstream_server_t, ngx_http_upstream_srv_conf_t, ngx_int_t, ngx_module_t, ngx_str_t,
    ngx_uint_t, NGX_CONF_1MORE, NGX_CONF_NOARGS, NGX_CONF_TAKE1, NGX_CONF_TAKE2, NGX_ERROR,
    NGX_HTTP_LOC_CONF, NGX_HTTP_LOC_CONF_OFFSET, NGX_HTTP_MAIN_CONF, NGX_HTTP_MODULE,
    NGX_HTTP_SRV_CONF, NGX_HTTP_SRV_CONF_OFFSET, NGX_HTTP_UPS_CONF, NGX_LOG_EMERG, NGX_LOG_ERR,
    NGX_LOG_NOTICE, NGX_LOG_WARN, NGX_OK, NGX_PROCESS_SINGLE, NGX_PROCESS_WORKER,
};
use ngx::http::{
    HttpModule, HttpModuleLocationConf, HttpModuleMainConf, HttpModuleServerConf,
    NgxHttpCoreModule, NgxHttpUpstreamModule,
};
use ngx::{ngx_conf_log_error, ngx_string};

use super::balancer::init_peer;
use super::check::Checks;
use super::generation::{PeerSource, SockAddr, PLACEHOLDER};
use super::peers::upstreams;
use super::poller::{Address, Poller};
use super::resolve::Resolver;
use super::show::{show_json, show_prometheus, show_text};
use super::{guard, log};
use crate::conf::{parse_upsync, valid_lb, ConfError, UpsyncConf};
use crate::dump;
use crate::server::Server;
use crate::status::Format;

/// What `upsync*` directives say about one upstream, and, once configured,
/// the upstream's runtime state in this process.
#[derive(Default)]
pub(crate) struct SrvConf {
    upsync: Option<UpsyncConf>,
    registry: Vec<Address>,
    dump_path: Option<String>,
    lb: Option<String>,
    /// `upsync_ssl_*` of this upstream (or, in the `http` block's own
    /// server conf, the defaults every upstream inherits).
    ssl: crate::conf::TlsConf,
    /// Made from a box once (`Box::into_raw`), so the pointers nginx keeps
    /// into it (timers, the exchange) stay valid; freed with the conf.
    runtime: Option<std::ptr::NonNull<Poller>>,
    /// The `check*` directives of this upstream.
    check: crate::check::conf::CheckDirectives,
    /// `check_shm_size` (in the `http` block's own server conf).
    check_shm_size: Option<usize>,
    /// The `http` block's: every checked upstream of the cycle, made from a
    /// box once, like `runtime`, and freed with the conf.
    checks: Option<std::ptr::NonNull<Checks>>,
    /// A checked upstream's: its place in them.
    checked: Option<(std::ptr::NonNull<Checks>, usize)>,
}

impl Drop for SrvConf {
    fn drop(&mut self) {
        if let Some(poller) = self.runtime.take() {
            // SAFETY: made by Box::into_raw in `take_over`, freed only here.
            drop(unsafe { Box::from_raw(poller.as_ptr()) });
        }
        if let Some(checks) = self.checks.take() {
            // SAFETY: made by Box::into_raw in `add_checks`, freed only here.
            drop(unsafe { Box::from_raw(checks.as_ptr()) });
        }
    }
}

pub(crate) struct Module;

impl HttpModule for Module {
    fn module() -> &'static ngx_module_t {
        // SAFETY: the module table is a static nginx only reads after load.
        unsafe { &*ptr::addr_of!(ngx_http_upsync_module) }
    }
}

// SAFETY: `SrvConf` is the type `create_srv_conf` allocates for this module.
unsafe impl HttpModuleServerConf for Module {
    type ServerConf = SrvConf;
}

static NGX_HTTP_UPSYNC_MODULE_CTX: ngx_http_module_t = ngx_http_module_t {
    preconfiguration: None,
    postconfiguration: Some(postconfiguration),
    create_main_conf: None,
    init_main_conf: None,
    create_srv_conf: Some(Module::create_srv_conf),
    merge_srv_conf: None,
    create_loc_conf: None,
    merge_loc_conf: None,
};

/// An `upsync_ssl_*` directive: in `http` or `upstream`.
const fn ssl_command(name: ngx_str_t, args: u32) -> ngx_command_t {
    ngx_command_t {
        name,
        type_: (NGX_HTTP_MAIN_CONF | NGX_HTTP_UPS_CONF | args) as ngx_uint_t,
        set: Some(set_ssl),
        conf: NGX_HTTP_SRV_CONF_OFFSET,
        offset: 0,
        post: ptr::null_mut(),
    }
}

/// A `check*` directive of an upstream.
const fn check_command(name: ngx_str_t, args: u32) -> ngx_command_t {
    ngx_command_t {
        name,
        type_: (NGX_HTTP_UPS_CONF | args) as ngx_uint_t,
        set: Some(set_check),
        conf: NGX_HTTP_SRV_CONF_OFFSET,
        offset: 0,
        post: ptr::null_mut(),
    }
}

static mut NGX_HTTP_UPSYNC_COMMANDS: [ngx_command_t; 21] = [
    ngx_command_t {
        name: ngx_string!("upsync"),
        type_: (NGX_HTTP_UPS_CONF | NGX_CONF_1MORE) as ngx_uint_t,
        set: Some(set_upsync),
        conf: NGX_HTTP_SRV_CONF_OFFSET,
        offset: 0,
        post: ptr::null_mut(),
    },
    ngx_command_t {
        name: ngx_string!("upsync_dump_path"),
        type_: (NGX_HTTP_UPS_CONF | NGX_CONF_TAKE1) as ngx_uint_t,
        set: Some(set_dump_path),
        conf: NGX_HTTP_SRV_CONF_OFFSET,
        offset: 0,
        post: ptr::null_mut(),
    },
    ngx_command_t {
        name: ngx_string!("upsync_lb"),
        type_: (NGX_HTTP_UPS_CONF | NGX_CONF_TAKE1) as ngx_uint_t,
        set: Some(set_lb),
        conf: NGX_HTTP_SRV_CONF_OFFSET,
        offset: 0,
        post: ptr::null_mut(),
    },
    ngx_command_t {
        name: ngx_string!("upstream_show"),
        type_: (NGX_HTTP_LOC_CONF | NGX_CONF_NOARGS | NGX_CONF_TAKE1) as ngx_uint_t,
        set: Some(set_upstream_show),
        conf: NGX_HTTP_LOC_CONF_OFFSET,
        offset: 0,
        post: ptr::null_mut(),
    },
    ssl_command(
        ngx_string!("upsync_ssl_trusted_certificate"),
        NGX_CONF_TAKE1,
    ),
    ssl_command(ngx_string!("upsync_ssl_certificate"), NGX_CONF_TAKE1),
    ssl_command(ngx_string!("upsync_ssl_certificate_key"), NGX_CONF_TAKE1),
    ssl_command(ngx_string!("upsync_ssl_password_file"), NGX_CONF_TAKE1),
    ssl_command(ngx_string!("upsync_ssl_verify"), NGX_CONF_TAKE1),
    ssl_command(ngx_string!("upsync_ssl_verify_depth"), NGX_CONF_TAKE1),
    ssl_command(ngx_string!("upsync_ssl_name"), NGX_CONF_TAKE1),
    ssl_command(ngx_string!("upsync_ssl_server_name"), NGX_CONF_TAKE1),
    ssl_command(ngx_string!("upsync_ssl_protocols"), NGX_CONF_1MORE),
    check_command(ngx_string!("check"), NGX_CONF_1MORE),
    check_command(ngx_string!("check_http_send"), NGX_CONF_TAKE1),
    check_command(ngx_string!("check_http_expect_alive"), NGX_CONF_1MORE),
    check_command(ngx_string!("check_keepalive_requests"), NGX_CONF_TAKE1),
    check_command(ngx_string!("check_fastcgi_param"), NGX_CONF_TAKE2),
    ngx_command_t {
        name: ngx_string!("check_shm_size"),
        type_: (NGX_HTTP_MAIN_CONF | NGX_CONF_TAKE1) as ngx_uint_t,
        set: Some(set_check_shm_size),
        conf: NGX_HTTP_SRV_CONF_OFFSET,
        offset: 0,
        post: ptr::null_mut(),
    },
    ngx_command_t {
        name: ngx_string!("check_status"),
        type_: (NGX_HTTP_SRV_CONF | NGX_HTTP_LOC_CONF | NGX_CONF_NOARGS | NGX_CONF_TAKE1)
            as ngx_uint_t,
        set: Some(set_check_status),
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
    init_process: Some(init_process),
    exit_process: Some(exit_process),
    ..ngx_module_t::default()
};

use ngx::core::{NGX_CONF_ERROR as CONF_ERROR, NGX_CONF_OK as CONF_OK};

/// The directive's arguments after its name.
///
/// # Safety
/// `cf` must be the configuration being parsed.
unsafe fn args(cf: &ngx_conf_t) -> Vec<String> {
    // SAFETY: `cf->args` is an array of ngx_str_t while a directive is parsed.
    let all: &[ngx_str_t] = unsafe { (*cf.args).as_slice() };
    all.iter()
        .skip(1)
        .map(|a| String::from_utf8_lossy(a.as_bytes()).into_owned())
        .collect()
}

/// `upsync host[:port]/path upsync_type=... [upsync_interval=...] ...`
extern "C" fn set_upsync(
    cf: *mut ngx_conf_t,
    _cmd: *mut ngx_command_t,
    conf: *mut c_void,
) -> *mut c_char {
    guard(CONF_ERROR, || {
        // SAFETY: nginx calls directive handlers with a valid `cf` and our srv
        // conf of the upstream being parsed.
        let (cfr, sc) = unsafe { (&*cf, &mut *conf.cast::<SrvConf>()) };
        if sc.upsync.is_some() {
            return c"is duplicate".as_ptr().cast_mut();
        }
        // SAFETY: as above.
        let args = unsafe { args(cfr) };
        let argv: Vec<&str> = args.iter().map(String::as_str).collect();
        let parsed = match parse_upsync(&argv) {
            Ok(c) => c,
            Err(e) => {
                ngx_conf_log_error!(NGX_LOG_EMERG, cf, "\"upsync\" directive: {}", e);
                return CONF_ERROR;
            }
        };
        if parsed.tls && parsed.strong_dependency {
            ngx_conf_log_error!(
                NGX_LOG_EMERG,
                cf,
                "\"upsync\" directive: strong_dependency=on cannot be used with an https:// \
                 registry: the read before the worker serves is plain HTTP; use \
                 strong_dependency=off (the dump file or the server lines serve meanwhile)"
            );
            return CONF_ERROR;
        }
        // The registry's addresses are resolved here, at configuration time,
        // as nginx resolves upstream servers: workers never resolve names. A
        // name with several addresses gives an endpoint for each.
        let mut registry = Vec::new();
        for endpoint in &parsed.endpoints {
            let host = endpoint.host.trim_start_matches('[').trim_end_matches(']');
            let addrs: Vec<SocketAddr> = match (host, endpoint.port).to_socket_addrs() {
                Ok(addrs) => addrs.collect(),
                Err(_) => Vec::new(),
            };
            if addrs.is_empty() {
                ngx_conf_log_error!(
                    NGX_LOG_EMERG,
                    cf,
                    "\"upsync\" directive: host not found in \"{}\"",
                    endpoint.authority
                );
                return CONF_ERROR;
            }
            let several = addrs.len() > 1;
            for addr in addrs {
                if registry.iter().any(|a: &Address| a.addr == addr) {
                    continue;
                }
                registry.push(Address {
                    addr,
                    authority: endpoint.authority.clone(),
                    host: endpoint.host.clone(),
                    label: if several {
                        format!("{} ({addr})", endpoint.authority)
                    } else {
                        endpoint.authority.clone()
                    },
                });
            }
        }
        let Some(uscf) = NgxHttpUpstreamModule::server_conf_mut(cfr) else {
            return c"is not allowed here".as_ptr().cast_mut();
        };
        // SAFETY: `uscf` is the upstream being parsed; `cf->pool` outlives it.
        if let Err(e) = unsafe { add_placeholder(cfr, uscf) } {
            ngx_conf_log_error!(NGX_LOG_EMERG, cf, "\"upsync\" directive: {}", e);
            return CONF_ERROR;
        }
        sc.upsync = Some(parsed);
        sc.registry = registry;
        CONF_OK
    })
}

/// An upstream with `upsync` needs no `server` line: nginx still requires
/// one, so `upsync` adds a stand-in that is `down`. It is dropped from the
/// list when the upstream has other servers or a dump file.
///
/// # Safety
/// `uscf` is the upstream being parsed in `cf`.
unsafe fn add_placeholder(
    cf: &ngx_conf_t,
    uscf: &mut ngx_http_upstream_srv_conf_t,
) -> Result<(), ConfError> {
    if uscf.servers.is_null() {
        return Err(ConfError("the upstream has no server list".into()));
    }
    // SAFETY: the configuration's pool, live while it is parsed.
    let pool = unsafe { ngx::core::Pool::from_ngx_pool(cf.pool) };
    // SAFETY: allocations from the configuration pool, filled before use.
    unsafe {
        let s = ngx_array_push(uscf.servers).cast::<ngx_http_upstream_server_t>();
        let addr = pool.calloc_type::<ngx::ffi::ngx_addr_t>();
        let sa = pool.calloc_type::<SockAddr>();
        let name = pool.alloc_unaligned(PLACEHOLDER.len()).cast::<u8>();
        if s.is_null() || addr.is_null() || sa.is_null() || name.is_null() {
            return Err(ConfError("out of memory".into()));
        }
        ptr::copy_nonoverlapping(PLACEHOLDER.as_ptr(), name, PLACEHOLDER.len());
        sa.write(SockAddr::from_socket_addr(SocketAddr::from((
            [127, 0, 0, 1],
            1,
        ))));
        let name = ngx_str_t {
            len: PLACEHOLDER.len(),
            data: name,
        };
        (*addr).sockaddr = (*sa).as_ptr();
        (*addr).socklen = (*sa).len();
        (*addr).name = name;
        ptr::write_bytes(s, 0, 1);
        (*s).name = name;
        (*s).addrs = addr;
        (*s).naddrs = 1;
        let d = Server::nginx_default(String::new());
        (*s).weight = d.weight as ngx_uint_t;
        (*s).max_fails = d.max_fails as ngx_uint_t;
        (*s).fail_timeout = d.fail_timeout as _;
        (*s).down = 1;
    }
    Ok(())
}

/// `upsync_dump_path /path/file.conf`
extern "C" fn set_dump_path(
    cf: *mut ngx_conf_t,
    _cmd: *mut ngx_command_t,
    conf: *mut c_void,
) -> *mut c_char {
    guard(CONF_ERROR, || {
        // SAFETY: as in `set_upsync`.
        let (cfr, sc) = unsafe { (&*cf, &mut *conf.cast::<SrvConf>()) };
        if sc.dump_path.is_some() {
            return c"is duplicate".as_ptr().cast_mut();
        }
        // SAFETY: as above.
        let path = unsafe { args(cfr) }.pop().unwrap_or_default();
        if path.is_empty() {
            return c"needs a file path".as_ptr().cast_mut();
        }
        // Relative to the prefix, as nginx's own file paths are.
        // SAFETY: the cycle being configured and its prefix.
        let path = unsafe { full_name(cfr, &path) };
        let dir = std::path::Path::new(&path).parent();
        if dir.is_some_and(|d| !d.is_dir()) {
            ngx_conf_log_error!(
                NGX_LOG_WARN,
                cf,
                "\"upsync_dump_path\": the directory of \"{}\" does not exist: \
                 the dump file cannot be written until it is created",
                path
            );
        }
        sc.dump_path = Some(path);
        CONF_OK
    })
}

/// `name` relative to the cycle's prefix, unless it is absolute.
///
/// # Safety
/// `cf` is the configuration being parsed.
unsafe fn full_name(cf: &ngx_conf_t, name: &str) -> String {
    if name.starts_with('/') {
        return name.to_string();
    }
    // SAFETY: per the contract, the cycle is live; its prefix ends with '/'.
    let prefix = String::from_utf8_lossy(unsafe { (*cf.cycle).prefix.as_bytes() });
    format!("{prefix}{name}")
}

/// The directory of the dump files of upstreams without
/// `upsync_dump_path`, under the prefix. nginx creates it at start, owned by
/// the workers' user, mode 0700, as it creates its temporary directories: a
/// world-writable directory such as `/tmp` (the C module's default) would
/// let another user plant the list an upstream starts with.
const DEFAULT_DUMP_DIR: &str = "upsync";

/// Has nginx create [`DEFAULT_DUMP_DIR`] (once per configuration), and
/// gives its full name.
///
/// # Safety
/// `cf` is the configuration being built.
unsafe fn default_dump_dir(cf: &ngx_conf_t) -> Result<String, ConfError> {
    // SAFETY: per the contract.
    let dir = unsafe { full_name(cf, DEFAULT_DUMP_DIR) };
    let failed = || ConfError(format!("cannot add the directory \"{dir}\""));
    // SAFETY: the configuration's pool, live while it is parsed.
    let pool = unsafe { ngx::core::Pool::from_ngx_pool(cf.pool) };
    // SAFETY: a path in the configuration's pool, filled before nginx sees
    // it; `ngx_add_path` keeps one entry per name (the tag is the module).
    unsafe {
        let path = pool.calloc_type::<ngx::ffi::ngx_path_t>();
        let name = pool.alloc_unaligned(dir.len() + 1).cast::<u8>();
        if path.is_null() || name.is_null() {
            return Err(failed());
        }
        ptr::copy_nonoverlapping(dir.as_ptr(), name, dir.len());
        *name.add(dir.len()) = 0;
        (*path).name = ngx_str_t {
            len: dir.len(),
            data: name,
        };
        (*path).data = ptr::addr_of_mut!(ngx_http_upsync_module).cast();
        let mut slot = path;
        if ngx::ffi::ngx_add_path(ptr::from_ref(cf).cast_mut(), &mut slot) != NGX_OK as ngx_int_t {
            return Err(failed());
        }
    }
    Ok(dir)
}

/// `upsync_lb roundrobin|ip_hash|least_conn|hash_modula|hash_ketama`:
/// accepted for configuration compatibility; the balancer is nginx's own.
extern "C" fn set_lb(
    cf: *mut ngx_conf_t,
    _cmd: *mut ngx_command_t,
    conf: *mut c_void,
) -> *mut c_char {
    guard(CONF_ERROR, || {
        // SAFETY: as in `set_upsync`.
        let (cfr, sc) = unsafe { (&*cf, &mut *conf.cast::<SrvConf>()) };
        if sc.lb.is_some() {
            return c"is duplicate".as_ptr().cast_mut();
        }
        // SAFETY: as above.
        let value = unsafe { args(cfr) }.pop().unwrap_or_default();
        if !valid_lb(&value) {
            ngx_conf_log_error!(
                NGX_LOG_EMERG,
                cf,
                "\"upsync_lb\" directive: unknown method \"{}\" (expected roundrobin, ip_hash, \
                 least_conn, hash_modula or hash_ketama)",
                value
            );
            return CONF_ERROR;
        }
        sc.lb = Some(value);
        CONF_OK
    })
}

/// `upsync_ssl_* value...` in `http` or `upstream`.
extern "C" fn set_ssl(
    cf: *mut ngx_conf_t,
    cmd: *mut ngx_command_t,
    conf: *mut c_void,
) -> *mut c_char {
    guard(CONF_ERROR, || {
        // SAFETY: nginx calls directive handlers with a valid `cf`, the
        // command, and our srv conf of the level being parsed.
        let (cfr, sc, name) = unsafe {
            (
                &*cf,
                &mut *conf.cast::<SrvConf>(),
                String::from_utf8_lossy((*cmd).name.as_bytes()).into_owned(),
            )
        };
        // SAFETY: as above.
        let args = unsafe { args(cfr) };
        let argv: Vec<&str> = args.iter().map(String::as_str).collect();
        if let Err(e) = sc.ssl.set(&name, &argv) {
            ngx_conf_log_error!(NGX_LOG_EMERG, cf, "\"{}\" {}", name, e);
            return CONF_ERROR;
        }
        CONF_OK
    })
}

/// The arguments of the directive being parsed, as nginx's lexer left them
/// (`\r\n` in a quoted value is already two bytes).
///
/// # Safety
/// As for [`args`].
unsafe fn raw_args(cf: &ngx_conf_t) -> Vec<Vec<u8>> {
    // SAFETY: `cf->args` is an array of ngx_str_t while a directive is parsed.
    let all: &[ngx_str_t] = unsafe { (*cf.args).as_slice() };
    all.iter().skip(1).map(|a| a.as_bytes().to_vec()).collect()
}

/// `check ...`, `check_http_send`, `check_http_expect_alive`,
/// `check_keepalive_requests`, `check_fastcgi_param`: nginx_upstream_check_module's
/// rules and messages.
extern "C" fn set_check(
    cf: *mut ngx_conf_t,
    cmd: *mut ngx_command_t,
    conf: *mut c_void,
) -> *mut c_char {
    guard(CONF_ERROR, || {
        // SAFETY: nginx calls directive handlers with a valid `cf`, the
        // command, and our srv conf of the upstream being parsed.
        let (cfr, sc, name) = unsafe {
            (
                &*cf,
                &mut *conf.cast::<SrvConf>(),
                String::from_utf8_lossy((*cmd).name.as_bytes()).into_owned(),
            )
        };
        // SAFETY: as above.
        let (args, raw) = unsafe { (args(cfr), raw_args(cfr)) };
        let argv: Vec<&str> = args.iter().map(String::as_str).collect();
        let d = &mut sc.check;
        let warnings: Result<Vec<String>, String> = match name.as_str() {
            "check" => d.check(&argv).map(|w| w.into_iter().collect()),
            "check_http_send" => Ok(d.http_send(&raw[0]).into_iter().collect()),
            "check_http_expect_alive" => d.http_expect_alive(&argv),
            "check_keepalive_requests" => d.keepalive_requests(argv[0]).map(|()| Vec::new()),
            _ => {
                d.fastcgi_param(&raw[0], &raw[1]);
                Ok(Vec::new())
            }
        };
        match warnings {
            Ok(warnings) => {
                for w in warnings {
                    ngx_conf_log_error!(NGX_LOG_WARN, cf, "\"{}\": {}", name, w);
                }
                CONF_OK
            }
            Err(e) => {
                ngx_conf_log_error!(NGX_LOG_EMERG, cf, "\"{}\": {}", name, e);
                CONF_ERROR
            }
        }
    })
}

/// `check_shm_size SIZE` (in `http`).
extern "C" fn set_check_shm_size(
    cf: *mut ngx_conf_t,
    _cmd: *mut ngx_command_t,
    conf: *mut c_void,
) -> *mut c_char {
    guard(CONF_ERROR, || {
        // SAFETY: as in `set_check`, with the `http` block's srv conf.
        let (cfr, sc) = unsafe { (&*cf, &mut *conf.cast::<SrvConf>()) };
        if sc.check_shm_size.is_some() {
            return c"is duplicate".as_ptr().cast_mut();
        }
        // SAFETY: as above.
        let args = unsafe { args(cfr) };
        match crate::check::conf::parse_shm_size(&args[0]) {
            Ok(size) => {
                sc.check_shm_size = Some(size);
                CONF_OK
            }
            Err(e) => {
                ngx_conf_log_error!(NGX_LOG_EMERG, cf, "\"check_shm_size\": {}", e);
                CONF_ERROR
            }
        }
    })
}

/// `check_status [html|csv|json];` installs the status page's content
/// handler, for its default format.
extern "C" fn set_check_status(
    cf: *mut ngx_conf_t,
    _cmd: *mut ngx_command_t,
    _conf: *mut c_void,
) -> *mut c_char {
    use crate::check::status::Format as CheckFormat;
    guard(CONF_ERROR, || {
        // SAFETY: nginx calls directive handlers with a valid `cf` while
        // parsing a server or location.
        let cfr = unsafe { &*cf };
        // SAFETY: as above.
        let args = unsafe { args(cfr) };
        let argv: Vec<&str> = args.iter().map(String::as_str).collect();
        let format = match crate::check::conf::parse_check_status(&argv) {
            Ok(f) => f.unwrap_or(CheckFormat::Html),
            Err(e) => {
                ngx_conf_log_error!(NGX_LOG_EMERG, cf, "\"check_status\": {}", e);
                return CONF_ERROR;
            }
        };
        set_content_handler(
            cfr,
            match format {
                CheckFormat::Html => super::check::status_html,
                CheckFormat::Csv => super::check::status_csv,
                CheckFormat::Json => super::check::status_json,
            },
        )
    })
}

/// Makes `handler` the content handler of the location being parsed.
fn set_content_handler(
    cf: &ngx_conf_t,
    handler: unsafe extern "C" fn(*mut ngx::ffi::ngx_http_request_t) -> ngx_int_t,
) -> *mut c_char {
    match NgxHttpCoreModule::location_conf_mut(cf) {
        Some(clcf) => {
            clcf.handler = Some(handler);
            CONF_OK
        }
        None => c"has no location configuration".as_ptr().cast_mut(),
    }
}

/// `upstream_show [text|json|prometheus];` installs the content handler of
/// the location, for its default format.
extern "C" fn set_upstream_show(
    cf: *mut ngx_conf_t,
    _cmd: *mut ngx_command_t,
    _conf: *mut c_void,
) -> *mut c_char {
    guard(CONF_ERROR, || {
        // SAFETY: nginx calls directive handlers with a valid `cf` while parsing a
        // location, where the core module's location configuration exists.
        let cfr = unsafe { &*cf };
        // SAFETY: as above.
        let args = unsafe { args(cfr) };
        let Some(format) = args
            .first()
            .map_or(Some(Format::Text), |a| Format::parse(a.as_bytes()))
        else {
            ngx_conf_log_error!(
                NGX_LOG_EMERG,
                cf,
                "\"upstream_show\": unknown format \"{}\": use text, json or prometheus",
                args[0]
            );
            return CONF_ERROR;
        };
        set_content_handler(
            cfr,
            match format {
                Format::Text => show_text,
                Format::Json => show_json,
                Format::Prometheus => show_prometheus,
            },
        )
    })
}

/// The checks of the cycle: the zone, and each upstream with `check`,
/// whose `peer.init` goes through the checks' wrapper.
///
/// # Safety
/// `cf` is the configuration at postconfiguration, `all` its upstreams.
unsafe fn add_checks(
    cf: *mut ngx_conf_t,
    all: &[*mut ngx_http_upstream_srv_conf_t],
) -> Result<(), String> {
    let mut specs = Vec::new();
    for &uscf in all {
        // SAFETY: per the contract.
        if let Some(spec) = unsafe { srv_conf(uscf) }.and_then(|sc| sc.check.finish()) {
            specs.push((uscf, spec));
        }
    }
    if specs.is_empty() {
        return Ok(());
    }
    // SAFETY: per the contract.
    let cfr = unsafe { &*cf };
    let Some(http) = Module::server_conf_mut(cfr) else {
        return Err("no http configuration for the health checks".into());
    };
    let size = http
        .check_shm_size
        .unwrap_or(crate::check::conf::SHM_SIZE_MIN);
    // SAFETY: per the contract; the module's address is its zones' tag.
    let zone = unsafe {
        super::check::add_zone(cf, size, ptr::addr_of_mut!(ngx_http_upsync_module).cast())
    }
    .ok_or("cannot declare the shared memory zone of the health checks")?;
    let checks = Box::into_raw(Box::new(Checks::new(zone)));
    // SAFETY: fresh from Box::into_raw.
    let checks = unsafe { std::ptr::NonNull::new_unchecked(checks) };
    http.checks = Some(checks);
    for (uscf, spec) in specs {
        // SAFETY: per the contract; `checks` lives as long as the http conf.
        let index = unsafe { (*checks.as_ptr()).add(uscf, spec) };
        // SAFETY: as above.
        if let Some(sc) = unsafe { srv_conf(uscf) } {
            sc.checked = Some((checks, index));
        }
    }
    Ok(())
}

/// A checked upstream's checks and its place in them.
///
/// # Safety
/// `uscf` is a live upstream of the running cycle.
pub(crate) unsafe fn checked(
    uscf: *mut ngx_http_upstream_srv_conf_t,
) -> Option<(*mut Checks, usize)> {
    // SAFETY: per the contract.
    unsafe { srv_conf(uscf) }?
        .checked
        .map(|(c, i)| (c.as_ptr(), i))
}

/// The checks of `cycle` (the running one when null), if it has any.
///
/// # Safety
/// `cycle` is null or a live cycle whose configuration loaded the module.
pub(crate) unsafe fn checks_of(cycle: *mut ngx_cycle_t) -> Option<*mut Checks> {
    // SAFETY: per the contract; the http block's contexts live as long as
    // the cycle.
    unsafe {
        let cycle = if cycle.is_null() {
            ngx::ffi::ngx_cycle
        } else {
            cycle
        };
        let ctx = *(*cycle).conf_ctx.add(ngx::ffi::ngx_http_module.index);
        if ctx.is_null() {
            return None;
        }
        let ctx = &*ctx.cast::<ngx::ffi::ngx_http_conf_ctx_t>();
        Module::server_conf(ctx)?.checks.map(|c| c.as_ptr())
    }
}

/// The running cycle's checks.
///
/// # Safety
/// Runs in a process of the running cycle.
pub(crate) unsafe fn checks() -> Option<*mut Checks> {
    // SAFETY: per the contract.
    unsafe { checks_of(ptr::null_mut()) }
}

/// Our configuration of an upstream, if it has one.
///
/// # Safety
/// `uscf` must be a live upstream of a configuration that loaded this module.
pub(crate) unsafe fn srv_conf<'a>(
    uscf: *mut ngx_http_upstream_srv_conf_t,
) -> Option<&'a mut SrvConf> {
    // SAFETY: per the contract; `srv_conf` is null for implicit upstreams.
    unsafe {
        if uscf.is_null() || (*uscf).srv_conf.is_null() {
            return None;
        }
        Module::server_conf_mut(&*uscf)
    }
}

/// The runtime state of a synced upstream.
///
/// # Safety
/// As for [`srv_conf`].
pub(crate) unsafe fn runtime(uscf: *mut ngx_http_upstream_srv_conf_t) -> Option<*mut Poller> {
    // SAFETY: per the contract.
    unsafe { srv_conf(uscf) }
        .and_then(|sc| sc.runtime)
        .map(std::ptr::NonNull::as_ptr)
}

/// After every upstream is initialised: take over the synced ones.
extern "C" fn postconfiguration(cf: *mut ngx_conf_t) -> ngx_int_t {
    guard(NGX_ERROR as ngx_int_t, || {
        // SAFETY: nginx calls postconfiguration with the configuration in `cf`,
        // after the upstream module initialised every upstream.
        let cfr = unsafe { &*cf };
        if let Some(msg) = check_module_compiled_in() {
            log!(NGX_LOG_EMERG, cfr.log, "{}", msg);
            return NGX_ERROR as ngx_int_t;
        }
        let Some(umcf) = NgxHttpUpstreamModule::main_conf(cfr) else {
            return NGX_OK as ngx_int_t;
        };
        // SAFETY: the upstreams of the configuration being built.
        let all = unsafe { upstreams(umcf) };
        let mut seats = Seats::new(cf, all);
        // SAFETY: as above.
        let mut cells = unsafe { status_cells(cf, all) };
        // The `http` level's upsync_ssl_* settings, and one TLS context for
        // each distinct set of settings the upstreams end up with.
        let http_ssl = Module::server_conf(cfr)
            .map(|sc| sc.ssl.clone())
            .unwrap_or_default();
        let mut contexts = Contexts {
            cf,
            http: http_ssl,
            built: Vec::new(),
        };
        // SAFETY: as above.
        if let Err(msg) = unsafe { dump_paths(cfr, all) } {
            log!(NGX_LOG_EMERG, cfr.log, "{}", msg);
            return NGX_ERROR as ngx_int_t;
        }
        for &uscf in all {
            // SAFETY: as above.
            let taken = unsafe { take_over(cfr, uscf, &mut seats, cells.as_mut(), &mut contexts) };
            if let Err(msg) = taken {
                log!(NGX_LOG_EMERG, cfr.log, "{}", msg);
                return NGX_ERROR as ngx_int_t;
            }
        }
        // SAFETY: as above; after take_over, so that a synced upstream's
        // peer.init is the one our check wrapper calls.
        if let Err(msg) = unsafe { add_checks(cf, all) } {
            log!(NGX_LOG_EMERG, cfr.log, "{}", msg);
            return NGX_ERROR as ngx_int_t;
        }
        NGX_OK as ngx_int_t
    })
}

/// Gives each synced upstream its dump path: the default one (under the
/// prefix) unless it has `upsync_dump_path`. Two upstreams with one file are
/// refused: after a restart each would start with the other's servers.
///
/// # Safety
/// `all` are the upstreams of the configuration in `cf`.
unsafe fn dump_paths(
    cf: &ngx_conf_t,
    all: &[*mut ngx_http_upstream_srv_conf_t],
) -> Result<(), ConfError> {
    let mut seen: std::collections::HashMap<String, String> = Default::default();
    let mut default_dir = None;
    for &uscf in all {
        // SAFETY: per the contract.
        let Some(sc) = (unsafe { srv_conf(uscf) }).filter(|sc| sc.upsync.is_some()) else {
            continue;
        };
        // SAFETY: per the contract, `uscf` is a live upstream.
        let name = String::from_utf8_lossy(unsafe { (*uscf).host.as_bytes() }).into_owned();
        if sc.dump_path.is_none() {
            if default_dir.is_none() {
                // SAFETY: per the contract.
                default_dir = Some(unsafe { default_dump_dir(cf) }?);
            }
            let dir = default_dir.as_deref().unwrap_or_default();
            sc.dump_path = Some(format!("{dir}/servers_{name}.conf"));
        }
        let path = sc.dump_path.clone().unwrap_or_default();
        if let Some(other) = seen.insert(path.clone(), name.clone()) {
            return Err(ConfError(format!(
                "upstreams \"{other}\" and \"{name}\" have the same dump file \"{path}\": \
                 give each its own \"upsync_dump_path\""
            )));
        }
    }
    Ok(())
}

/// The cells of every synced upstream's sync figures (one for a zone
/// upstream, one per worker slot for the others), in one zone.
///
/// # Safety
/// `all` are the upstreams of the configuration in `cf`.
unsafe fn status_cells(
    cf: *mut ngx_conf_t,
    all: &[*mut ngx_http_upstream_srv_conf_t],
) -> Option<super::stats::Plan> {
    let slots = worker_slots(cf);
    let total: usize = all
        .iter()
        // SAFETY: per the contract.
        .filter(|&&u| unsafe { srv_conf(u).is_some_and(|sc| sc.upsync.is_some()) })
        .map(|&u| {
            // SAFETY: as above.
            if unsafe { (*u).shm_zone.is_null() } {
                slots
            } else {
                1
            }
        })
        .sum();
    if total == 0 {
        return None;
    }
    // SAFETY: `cf` is the configuration being built; the tag is the
    // module's address, as nginx modules do.
    unsafe {
        super::stats::Plan::new(
            cf,
            total,
            slots,
            ptr::addr_of_mut!(ngx_http_upsync_module).cast(),
        )
    }
}

/// How many workers to keep figures for: `worker_processes` when it came
/// before the `http` block (as configs write it), else the number of CPUs
/// (what `auto` gives). Workers beyond it are not counted.
fn worker_slots(cf: *mut ngx_conf_t) -> usize {
    // SAFETY: the core module's configuration exists from the start of the
    // cycle's parse; `worker_processes` is set by its directive, or unset.
    let set = unsafe {
        let ctx = (*(*cf).cycle).conf_ctx;
        let ccf = *ctx.add(ngx::ffi::ngx_core_module.index) as *const ngx::ffi::ngx_core_conf_t;
        (*ccf).worker_processes
    };
    if set > 0 {
        set as usize
    } else {
        // SAFETY: nginx sets it at start, before reading the configuration.
        (unsafe { ngx::ffi::ngx_ncpu }).max(1) as usize
    }
}

/// The TLS contexts of the https:// registries, shared by the upstreams
/// whose settings are the same.
struct Contexts {
    cf: *mut ngx_conf_t,
    http: crate::conf::TlsConf,
    built: Vec<(crate::conf::TlsConf, super::net::tls::Ctx)>,
}

impl Contexts {
    /// The context of an upstream's own settings merged with `http`'s.
    ///
    /// # Safety
    /// During postconfiguration, with `cf` the configuration being built.
    unsafe fn get(
        &mut self,
        own: &crate::conf::TlsConf,
    ) -> Result<(super::net::tls::Ctx, crate::conf::TlsConf), ConfError> {
        let merged = own.merged(&self.http);
        if let Some((_, ctx)) = self.built.iter().find(|(c, _)| *c == merged) {
            return Ok((*ctx, merged));
        }
        // SAFETY: per the contract.
        let ctx = unsafe { super::net::tls::context(self.cf, &merged) }?;
        self.built.push((merged.clone(), ctx));
        Ok((ctx, merged))
    }
}

/// Election slots of the synced upstreams that have a `zone`.
struct Seats {
    #[cfg(ngx_resolve_peers)]
    zone: Option<*mut ngx::ffi::ngx_shm_zone_t>,
    #[cfg(ngx_resolve_peers)]
    next: usize,
}

impl Seats {
    #[cfg_attr(not(ngx_resolve_peers), allow(unused_variables))]
    fn new(cf: *mut ngx_conf_t, all: &[*mut ngx_http_upstream_srv_conf_t]) -> Seats {
        #[cfg(ngx_resolve_peers)]
        {
            let count = all
                .iter()
                // SAFETY: the upstreams of the configuration being built.
                .filter(|&&u| unsafe {
                    !(*u).shm_zone.is_null() && srv_conf(u).is_some_and(|sc| sc.upsync.is_some())
                })
                .count();
            let zone = (count > 0).then(|| {
                // SAFETY: `cf` is the configuration being built; the tag is
                // the module's address, as nginx modules do.
                unsafe {
                    super::zone::add_election_zone(
                        cf,
                        count,
                        ptr::addr_of_mut!(ngx_http_upsync_module).cast(),
                    )
                }
                .unwrap_or(ptr::null_mut())
            });
            Seats { zone, next: 0 }
        }
        #[cfg(not(ngx_resolve_peers))]
        Seats {}
    }
}

/// # Safety
/// `uscf` is an initialised upstream of the configuration in `cf`.
unsafe fn take_over(
    cf: &ngx_conf_t,
    uscf: *mut ngx_http_upstream_srv_conf_t,
    #[cfg_attr(not(ngx_resolve_peers), allow(unused_variables))] seats: &mut Seats,
    cells: Option<&mut super::stats::Plan>,
    contexts: &mut Contexts,
) -> Result<(), ConfError> {
    // SAFETY: per the contract.
    let Some(sc) = (unsafe { srv_conf(uscf) }) else {
        return Ok(());
    };
    let Some(conf) = sc.upsync.clone() else {
        return Ok(());
    };
    let tls = conf.tls;
    // SAFETY: per the contract.
    let u = unsafe { &mut *uscf };
    // SAFETY: the upstream's name and file name live as long as the cycle.
    let (name, file) = unsafe {
        (
            String::from_utf8_lossy(u.host.as_bytes()).into_owned(),
            if u.file_name.is_null() {
                String::new()
            } else {
                std::ffi::CStr::from_ptr(u.file_name.cast())
                    .to_string_lossy()
                    .into_owned()
            },
        )
    };
    let at = format!("in {}:{}", file, u.line);
    // SAFETY: per the contract.
    if let Some(why) = unsafe { unsupported(u, &name) } {
        return Err(ConfError(format!("{why} {at}")));
    }
    #[cfg(ngx_resolve_peers)]
    let zoned = !u.shm_zone.is_null();
    #[cfg(ngx_resolve_peers)]
    let shared = match (zoned, seats.zone) {
        (false, _) => None,
        (true, Some(election)) if !election.is_null() => {
            seats.next += 1;
            Some(super::poller::Shared {
                election,
                index: seats.next - 1,
                // SAFETY: all-zero is the initial state of an nginx event.
                timer: unsafe { std::mem::zeroed() },
                seated: false,
            })
        }
        (true, _) => {
            return Err(ConfError(format!(
                "upstream \"{name}\": cannot declare the shared memory zone of upsync {at}"
            )))
        }
    };

    // SAFETY: nginx's list of the upstream, live for the cycle.
    let source = unsafe { PeerSource::from_list(u.peer.data.cast()) };
    // SAFETY: as above.
    let primary = unsafe { (*u.peer.data.cast::<ngx::ffi::ngx_http_upstream_rr_peers_t>()).number };
    let configured: Vec<Server> = source
        .servers(primary)
        .into_iter()
        .filter(|s| s.name != PLACEHOLDER)
        .collect();
    let dump_path = sc
        .dump_path
        .clone()
        .ok_or_else(|| ConfError("no dump path".into()))?;
    let (initial, view) = initial_servers(cf, &name, &dump_path, configured);
    // SAFETY: per the contract.
    let resolver = unsafe { resolver_of(cf, u) };

    let mut problems = Vec::new();
    if sc.registry.is_empty() {
        return Err(ConfError("no registry address".into()));
    }
    let registry = sc.registry.clone();
    // SAFETY: per the contract.
    let mut up = unsafe {
        Poller::install(
            uscf,
            conf,
            dump_path,
            registry,
            &initial,
            view,
            resolver,
            #[cfg(ngx_resolve_peers)]
            shared,
            &mut problems,
        )
    };
    for p in problems {
        log!(NGX_LOG_ERR, cf.log, "upstream \"{}\": {}", name, p);
    }
    // A per-worker list is replaced as a whole: requests hold the one they
    // started on. A shared list is changed in place with nginx's own
    // reference counts (the zone copies the first list at start); requests
    // that meet a change between their init and their first peer start again.
    u.peer.init = Some(init_peer);
    #[cfg(ngx_resolve_peers)]
    if zoned {
        u.peer.init = Some(super::balancer::init_peer_shared);
    }
    up.set_cells(cells.map(|plan| plan.take(!u.shm_zone.is_null())));
    if tls {
        // SAFETY: postconfiguration, per the contract.
        let (ctx, merged) = unsafe { contexts.get(&sc.ssl) }
            .map_err(|e| ConfError(format!("upstream \"{name}\": {e} {at}")))?;
        up.set_tls(ctx, merged);
    }
    sc.runtime = std::ptr::NonNull::new(Box::into_raw(up));
    Ok(())
}

/// Why this nginx cannot run the module: yaoweibin's
/// nginx_upstream_check_module (or a fork) compiled in. Its patch inserts a
/// field before `down` in every round-robin peer, so the peers of such an
/// nginx have another layout than the one the module was built for, and
/// both would mark the same peers down.
fn check_module_compiled_in() -> Option<String> {
    // SAFETY: RTLD_DEFAULT searches the process's global symbols (nginx
    // exports its own for modules); the name is NUL-terminated.
    let found = unsafe {
        libc::dlsym(
            libc::RTLD_DEFAULT,
            c"ngx_http_upstream_check_module".as_ptr(),
        )
    };
    (!found.is_null()).then(|| {
        "this nginx has nginx_upstream_check_module compiled in: its patch changes the \
         layout of every upstream peer, which ngx_http_upsync_module reads and writes, so \
         the two cannot run together; use an nginx built without that module and its patch"
            .to_string()
    })
}

/// What a synced upstream may not have, each with what to do instead: the
/// one table of configurations the module refuses. Every balancer works in
/// both modes, so none is refused.
///
/// # Safety
/// `u` is an initialised upstream of the configuration being built.
unsafe fn unsupported(u: &ngx_http_upstream_srv_conf_t, name: &str) -> Option<String> {
    #[cfg(not(ngx_resolve_peers))]
    if !u.shm_zone.is_null() {
        return Some(format!(
            "upstream \"{name}\" has a \"zone\": syncing a shared-memory upstream \
             needs nginx 1.27.3 or newer; remove \"zone\" to keep a list per worker"
        ));
    }
    // SAFETY: per the contract.
    if let Some(server) = unsafe { resolved_server(u) } {
        return Some(format!(
            "upstream \"{name}\": \"server {server} ... resolve\" cannot be used with \"upsync\": \
             the registry decides the upstream's servers; list the name in the registry, \
             or move the server to an upstream without \"upsync\""
        ));
    }
    if u.peer.data.is_null() {
        return Some(format!("upstream \"{name}\" has no round-robin peer list"));
    }
    None
}

/// A `server name ... resolve` line of the upstream (nginx 1.27.3 and newer
/// re-resolve such names at run time, in a shared zone), by its name.
///
/// # Safety
/// `u` is an upstream of the configuration being built.
unsafe fn resolved_server(u: &ngx_http_upstream_srv_conf_t) -> Option<String> {
    #[cfg(all(ngx_resolve_peers, ngx_feature = "http_upstream_zone"))]
    {
        if u.servers.is_null() {
            return None;
        }
        // SAFETY: `servers` is the upstream's array of server lines.
        let servers: &[ngx_http_upstream_server_t] = unsafe { (*u.servers).as_slice() };
        servers
            .iter()
            .find(|s| s.host.len != 0)
            .map(|s| String::from_utf8_lossy(s.name.as_bytes()).into_owned())
    }
    #[cfg(not(all(ngx_resolve_peers, ngx_feature = "http_upstream_zone")))]
    {
        let _ = u;
        None
    }
}

/// The resolver of an upstream's host names: the upstream's own `resolver`
/// (nginx 1.27.3 and newer), else the `http` block's; none when neither
/// names a server.
///
/// # Safety
/// `cf` is the `http` block's configuration at postconfiguration, and `u`
/// an upstream of it.
unsafe fn resolver_of(cf: &ngx_conf_t, u: &ngx_http_upstream_srv_conf_t) -> Option<Resolver> {
    let clcf = NgxHttpCoreModule::location_conf(cf)?;
    // The `http` level is not merged: an unset timeout is nginx's default.
    let http_timeout = if clcf.resolver_timeout == ngx::ffi::ngx_msec_t::MAX {
        30_000
    } else {
        clcf.resolver_timeout
    };
    #[cfg(all(ngx_resolve_peers, ngx_feature = "http_upstream_zone"))]
    {
        let timeout = if u.resolver_timeout == ngx::ffi::ngx_msec_t::MAX {
            http_timeout
        } else {
            u.resolver_timeout
        };
        // SAFETY: the upstream's resolver, when set, is the configuration's.
        if let Some(r) = unsafe { Resolver::configured(u.resolver, timeout) } {
            return Some(r);
        }
    }
    #[cfg(not(all(ngx_resolve_peers, ngx_feature = "http_upstream_zone")))]
    let _ = u;
    // SAFETY: the http block's resolver, when set, is the configuration's.
    unsafe { Resolver::configured(clcf.resolver, http_timeout) }
}

/// The list an upstream starts with: the dump file's when there is a usable
/// one (so a restart works while the registry is down), else the configured
/// servers, else the down stand-in until the registry answers. Also what
/// stands for the registry's list until it answers: the dump file's entries
/// (host names whose addresses are in the list, and those that had none
/// yet), else the list.
fn initial_servers(
    cf: &ngx_conf_t,
    name: &str,
    dump_path: &str,
    configured: Vec<Server>,
) -> (Vec<Server>, Vec<Server>) {
    // SAFETY: the core module's configuration exists while the
    // configuration is parsed; geteuid has no preconditions.
    let owners = [0, unsafe { libc::geteuid() }, unsafe { workers_uid(cf) }];
    match dump::load(dump_path, &owners) {
        Ok(Some(loaded)) => {
            for name in &loaded.left_out {
                log!(
                    NGX_LOG_WARN,
                    cf.log,
                    "the dump file \"{}\": server {} is neither an address nor a host name, \
                     left out",
                    dump_path,
                    crate::registry::quote(name)
                );
            }
            if loaded.servers.iter().any(|s| !s.backup) {
                log!(
                    NGX_LOG_NOTICE,
                    cf.log,
                    "upstream \"{}\" starts with the {} servers of \"{}\"",
                    name,
                    loaded.servers.len(),
                    dump_path
                );
                let mut view = crate::names::collapse(&loaded.servers);
                view.extend(loaded.unresolved);
                return (loaded.servers, view);
            }
            if !loaded.unresolved.is_empty() {
                // Names only: the configured servers serve until they resolve.
                return (unstarted(configured), loaded.unresolved);
            }
            // An empty file (pre-created for an `include`) is no news.
            if !loaded.servers.is_empty() || !loaded.left_out.is_empty() {
                log!(
                    NGX_LOG_WARN,
                    cf.log,
                    "upstream \"{}\": the dump file \"{}\" has no usable primary server, \
                     starting with the configured servers",
                    name,
                    dump_path
                );
            }
        }
        Ok(None) => {}
        Err(e) => log!(
            NGX_LOG_ERR,
            cf.log,
            "upstream \"{}\": ignoring the dump file \"{}\": {}",
            name,
            dump_path,
            e
        ),
    }
    let initial = unstarted(configured);
    let view = crate::names::collapse(&initial);
    (initial, view)
}

/// The configured servers, else the down stand-in until the registry answers.
fn unstarted(configured: Vec<Server>) -> Vec<Server> {
    if !configured.is_empty() {
        return configured;
    }
    vec![Server {
        down: true,
        ..Server::nginx_default(PLACEHOLDER.into())
    }]
}

/// The user nginx's workers run as: the `user` directive's, else (when
/// the master runs as root) nginx's default, "nobody".
///
/// # Safety
/// `cf` is the configuration being parsed.
unsafe fn workers_uid(cf: &ngx_conf_t) -> u32 {
    // SAFETY: per the contract: the core module's conf is created before
    // any directive is parsed.
    let ccf = unsafe {
        let ctx = (*cf.cycle).conf_ctx;
        (*ctx.add(ngx::ffi::ngx_core_module.index)).cast::<ngx::ffi::ngx_core_conf_t>()
    };
    // SAFETY: as above. `user` is NGX_CONF_UNSET_UINT (all ones) unless set.
    let user = unsafe { (*ccf).user };
    if user != ngx::ffi::ngx_uid_t::MAX {
        return user;
    }
    // SAFETY: a NUL-terminated name; getpwnam's result is read at once.
    unsafe {
        let pw = libc::getpwnam(c"nobody".as_ptr());
        if pw.is_null() {
            0
        } else {
            (*pw).pw_uid
        }
    }
}

/// Calls `f` on every synced upstream of the running cycle.
///
/// # Safety
/// `cycle` must be the running cycle.
unsafe fn for_each_synced(cycle: *mut ngx_cycle_t, mut f: impl FnMut(&mut Poller)) {
    // SAFETY: per the contract.
    let Some(umcf) = NgxHttpUpstreamModule::main_conf(unsafe { &*cycle }) else {
        return;
    };
    // SAFETY: the running cycle's upstreams.
    for &uscf in unsafe { upstreams(umcf) } {
        // SAFETY: as above.
        if let Some(up) = unsafe { runtime(uscf) } {
            // SAFETY: a boxed upstream of this process; no other borrow.
            f(unsafe { &mut *up });
        }
    }
}

/// Workers (or the single process) poll; the master, the cache manager and
/// the cache loader never do.
extern "C" fn init_process(cycle: *mut ngx_cycle_t) -> ngx_int_t {
    // SAFETY: nginx sets these process-wide values before init_process.
    let (process, worker) = unsafe { (ngx::ffi::ngx_process, ngx::ffi::ngx_worker) };
    if process != NGX_PROCESS_WORKER as ngx_uint_t && process != NGX_PROCESS_SINGLE as ngx_uint_t {
        return NGX_OK as ngx_int_t;
    }
    let writes_dump = worker == 0;
    guard(NGX_ERROR as ngx_int_t, || {
        // SAFETY: the running cycle.
        unsafe { for_each_synced(cycle, |up| up.start(writes_dump)) };
        // SAFETY: the running cycle's checks, boxed with its configuration.
        if let Some(checks) = unsafe { checks_of(cycle) } {
            // SAFETY: as above; no other borrow.
            unsafe { (*checks).start() };
        }
        NGX_OK as ngx_int_t
    })
}

extern "C" fn exit_process(cycle: *mut ngx_cycle_t) {
    guard((), || {
        // SAFETY: the running cycle.
        unsafe { for_each_synced(cycle, Poller::stop) };
        // SAFETY: as in init_process.
        if let Some(checks) = unsafe { checks_of(cycle) } {
            // SAFETY: as above.
            unsafe { (*checks).stop() };
        }
    })
}
