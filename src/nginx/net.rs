//! The transport to a registry: one HTTP/1.1 exchange on the worker's event
//! loop (`exchange`), and the bounded blocking one `strong_dependency=on`
//! makes before the worker serves (`blocking`). Both only carry requests
//! and parse responses; the protocol is the session's.

pub(crate) mod blocking;
pub(crate) mod exchange;
#[cfg(ngx_feature = "ssl")]
pub(crate) mod tls;
// An nginx without OpenSSL: https:// is refused at configuration time.
#[cfg(not(ngx_feature = "ssl"))]
#[path = "net/tls_none.rs"]
pub(crate) mod tls;
