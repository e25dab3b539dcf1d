//! The thin layer that touches nginx: module and directive tables, handlers,
//! and access to the upstreams' round-robin peer lists.

mod module;
mod peers;
mod show;
