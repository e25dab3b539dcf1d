//! The `upstream_show` body, byte-compatible with the C module.

use crate::server::Server;
use crate::status::{find, Upstream};

const NOT_FOUND: &str = "The upstream you requested does not exist. Please double-check the name";
const NO_UPSTREAMS: &str = "No upstreams defined";

/// Builds the response body for the upstream `name` (matched
/// case-insensitively; empty means every upstream).
pub fn render(name: &[u8], upstreams: &[Upstream]) -> String {
    let mut out = String::new();
    if name.is_empty() {
        if upstreams.is_empty() {
            out.push_str(NO_UPSTREAMS);
        }
        for upstream in upstreams {
            render_one(upstream, &mut out);
            out.push('\n');
        }
        return out;
    }
    match find(upstreams, name) {
        Some(upstream) => render_one(upstream, &mut out),
        None => out.push_str(NOT_FOUND),
    }
    out
}

fn render_one(upstream: &Upstream, out: &mut String) {
    out.push_str("Upstream name: ");
    out.push_str(&upstream.name);
    out.push_str("; Backend server count: ");
    let servers: Vec<Server> = upstream.primaries().cloned().collect();
    // A synced upstream shows the registry's entries: a host name once, not
    // each of its addresses.
    let servers = match upstream.sync {
        Some(_) => crate::names::collapse(&servers),
        None => servers,
    };
    out.push_str(&servers.len().to_string());
    out.push('\n');
    for server in &servers {
        out.push_str("        ");
        server.write_line(out);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::status::{Peer, State};

    fn view(name: &str, ports: &[u16]) -> Upstream {
        Upstream {
            name: name.into(),
            peers: ports
                .iter()
                .map(|p| Peer {
                    server: Server {
                        name: format!("127.0.0.1:{p}"),
                        weight: 1,
                        max_fails: 2,
                        fail_timeout: 10,
                        down: false,
                        backup: *p == 9999,
                        host: None,
                    },
                    state: State::Up,
                    health: None,
                    active: 0,
                    max_conns: 0,
                })
                .collect(),
            zone: None,
            sync: None,
        }
    }

    #[test]
    fn one_upstream_case_insensitive() {
        // The backup (port 9999) is not listed, as in the C module.
        let ups = [view("test", &[8088, 8089, 9999]), view("backend", &[8090])];
        assert_eq!(
            render(b"TeSt", &ups),
            "Upstream name: test; Backend server count: 2\n\
             \x20       server 127.0.0.1:8088 weight=1 max_fails=2 fail_timeout=10s;\n\
             \x20       server 127.0.0.1:8089 weight=1 max_fails=2 fail_timeout=10s;\n"
        );
    }

    #[test]
    fn all_upstreams_each_followed_by_a_blank_line() {
        let ups = [view("test", &[8089]), view("backend", &[])];
        assert_eq!(
            render(b"", &ups),
            "Upstream name: test; Backend server count: 1\n\
             \x20       server 127.0.0.1:8089 weight=1 max_fails=2 fail_timeout=10s;\n\
             \n\
             Upstream name: backend; Backend server count: 0\n\
             \n"
        );
    }

    #[test]
    fn unknown_and_none() {
        let ups = [view("test", &[8089])];
        assert_eq!(render(b"nope", &ups), NOT_FOUND);
        assert_eq!(render(b"", &[]), NO_UPSTREAMS);
        assert_eq!(render(b"x", &[]), NOT_FOUND);
        let no_list = view("x", &[]);
        assert_eq!(
            render(b"x", &[no_list]),
            "Upstream name: x; Backend server count: 0\n"
        );
    }
}
