//! One upstream server as the module sees it, and its one-line text form.
//!
//! The same line is printed by `upstream_show` (indented) and written to the
//! dump file (not indented), byte for byte as the C module does.

use std::fmt::Write as _;

/// The largest weight taken from a registry or a dump file. nginx sets no
/// bound of its own, but it sums the weights of a list, and `hash ...
/// consistent` makes 160 ring points per unit of weight.
pub const MAX_WEIGHT: i64 = 1_000_000;
/// nginx's bound for `max_fails` (`NGX_MAX_INT_T_VALUE`).
pub const MAX_FAILS: u64 = i64::MAX as u64;
/// The largest `fail_timeout`, in seconds: within nginx's bound for a time,
/// and still a valid time in milliseconds.
pub const MAX_FAIL_TIMEOUT: i64 = i64::MAX / 1000;

/// A server of an upstream: `ip:port` plus the attributes nginx keeps per peer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Server {
    /// `ip:port` (`[v6]:port` for IPv6); the identity used to match servers.
    pub name: String,
    pub weight: i64,
    pub max_fails: u64,
    /// Seconds.
    pub fail_timeout: i64,
    pub down: bool,
    pub backup: bool,
    /// For an address of a host name the registry gave: that `name:port`,
    /// the registry's entry (`upstream_show` and the dump file show it).
    pub host: Option<String>,
}

impl Server {
    /// A `server` line's defaults in nginx: weight 1, max_fails 1,
    /// fail_timeout 10 s, neither down nor backup.
    pub fn nginx_default(name: String) -> Server {
        Server {
            name,
            weight: 1,
            max_fails: 1,
            fail_timeout: 10,
            down: false,
            backup: false,
            host: None,
        }
    }

    /// A registry entry's defaults, the C module's: as nginx's, but
    /// max_fails 2.
    pub fn registry_default(name: String) -> Server {
        Server {
            max_fails: 2,
            ..Server::nginx_default(name)
        }
    }

    /// The registry's entry this server stands for: its host name, or its
    /// address.
    pub fn entry(&self) -> &str {
        self.host.as_deref().unwrap_or(&self.name)
    }

    /// Appends `server <name> weight=.. max_fails=.. fail_timeout=..s[ down];\n`.
    pub fn write_line(&self, out: &mut String) {
        // Writing to a String cannot fail.
        let _ = writeln!(
            out,
            "server {} weight={} max_fails={} fail_timeout={}s{};",
            self.name,
            self.weight,
            self.max_fails,
            self.fail_timeout,
            if self.down { " down" } else { "" }
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn server(name: &str, weight: i64, down: bool) -> Server {
        Server {
            name: name.into(),
            weight,
            max_fails: 3,
            fail_timeout: 20,
            down,
            backup: false,
            host: None,
        }
    }

    #[test]
    fn line_format_matches_the_c_module() {
        let mut out = String::new();
        server("127.0.0.1:8088", 40, true).write_line(&mut out);
        server("[::1]:8089", 1, false).write_line(&mut out);
        assert_eq!(
            out,
            "server 127.0.0.1:8088 weight=40 max_fails=3 fail_timeout=20s down;\n\
             server [::1]:8089 weight=1 max_fails=3 fail_timeout=20s;\n"
        );
    }
}
