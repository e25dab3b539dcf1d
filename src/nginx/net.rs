//! The transport to a registry: one HTTP/1.1 exchange on the worker's event
//! loop (`exchange`), and the bounded blocking one `strong_dependency=on`
//! makes before the worker serves (`blocking`). Both only carry requests
//! and parse responses; the protocol is the session's.

pub(crate) mod blocking;
pub(crate) mod exchange;
pub(crate) mod tls;
