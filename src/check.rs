//! Active health checks, a drop-in for nginx_upstream_check_module
//! (yaoweibin's, and xiaokai-wang's fork that upsync's users run).
//!
//! The pure logic only, without nginx or sockets, so it is unit tested:
//!
//! - [`conf`]: the `check*` directives as the C module parses them, and the
//!   finished [`conf::CheckSpec`] of one upstream;
//! - [`probe`]: what each check type sends and how its answer is judged, a
//!   sans-IO state machine the nginx layer feeds with the bytes it reads;
//! - [`state`]: the rise/fall rule and the counters of one peer, plain
//!   integers the nginx layer mirrors into shared memory;
//! - [`status`]: the `check_status` page in html, csv and json, byte for
//!   byte the C module's, and its query string.

pub mod conf;
pub mod probe;
pub mod state;
pub mod status;
