//! ngx_http_upsync_module: keeps nginx upstreams in sync with a service registry.
//!
//! The pure logic (server model, formatters, registry parsers) lives in the
//! top-level modules and builds without nginx, so `cargo test
//! --no-default-features` links and tests it. Everything that touches nginx,
//! and all the unsafe code, is in [`nginx`], behind the `nginx` feature.

pub mod apply;
pub mod chash;
pub mod check;
pub mod conf;
pub mod dump;
pub mod endpoints;
#[cfg(test)]
mod fuzz;
pub mod http;
pub mod names;
pub mod pace;
pub mod registry;
pub mod server;
pub mod show;
pub mod status;

// The one place unsafe code is allowed (Cargo.toml's lints deny it elsewhere).
#[cfg(feature = "nginx")]
#[allow(unsafe_code)]
mod nginx;
