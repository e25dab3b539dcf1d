//! The `upstream_show` body, byte-compatible with the C module.

use crate::server::Server;

/// What `upstream_show` knows of one upstream.
pub struct UpstreamView {
    /// The upstream's name as written in the config.
    pub name: String,
    /// Primary servers in list order, or `None` when the upstream has no
    /// round-robin list (the C module then prints a count of 0).
    pub servers: Option<Vec<Server>>,
}

const NOT_FOUND: &str = "The upstream you requested does not exist. Please double-check the name";
const NO_UPSTREAMS: &str = "No upstreams defined";

/// Builds the response body for the query string `args` (the upstream name,
/// matched case-insensitively; empty means every upstream).
pub fn render(args: &[u8], upstreams: &[UpstreamView]) -> String {
    let mut out = String::new();
    if args.is_empty() {
        if upstreams.is_empty() {
            out.push_str(NO_UPSTREAMS);
        }
        for upstream in upstreams {
            render_one(upstream, &mut out);
            out.push('\n');
        }
        return out;
    }
    match upstreams
        .iter()
        .find(|u| u.name.as_bytes().eq_ignore_ascii_case(args))
    {
        Some(upstream) => render_one(upstream, &mut out),
        None => out.push_str(NOT_FOUND),
    }
    out
}

fn render_one(upstream: &UpstreamView, out: &mut String) {
    out.push_str("Upstream name: ");
    out.push_str(&upstream.name);
    out.push_str("; Backend server count: ");
    let servers = upstream.servers.as_deref().unwrap_or(&[]);
    out.push_str(&servers.len().to_string());
    out.push('\n');
    for server in servers {
        out.push_str("        ");
        server.write_line(out);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn view(name: &str, ports: &[u16]) -> UpstreamView {
        UpstreamView {
            name: name.into(),
            servers: Some(
                ports
                    .iter()
                    .map(|p| Server {
                        name: format!("127.0.0.1:{p}"),
                        weight: 1,
                        max_fails: 2,
                        fail_timeout: 10,
                        down: false,
                        backup: false,
                    })
                    .collect(),
            ),
        }
    }

    #[test]
    fn one_upstream_case_insensitive() {
        let ups = [view("test", &[8088, 8089]), view("backend", &[8090])];
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
        let no_list = UpstreamView {
            name: "x".into(),
            servers: None,
        };
        assert_eq!(
            render(b"x", &[no_list]),
            "Upstream name: x; Backend server count: 0\n"
        );
    }
}
