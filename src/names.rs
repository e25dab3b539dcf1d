//! Host names from the registry: what list an upstream gets once its names
//! have addresses, and back.
//!
//! The registry's list (its *view*) may name servers by `host.name:port`.
//! The upstream's list has one server per address of each name, each with
//! the entry's attributes and `host` set to the name, as nginx makes one
//! peer per address of a `server` line. Names without an address yet are
//! left out until the resolver answers.

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;

use crate::registry::is_host_name;
use crate::server::Server;

/// The most addresses one name contributes, in address order.
pub const MAX_ADDRESSES: usize = 64;

/// The port of `name:port` (a canonical registry name).
pub fn port_of(name: &str) -> Option<u16> {
    name.rsplit_once(':')?.1.parse().ok()
}

/// `addrs` as the addresses of one name: the name's port, sorted, each once,
/// at most [`MAX_ADDRESSES`]. The resolver's order rotates between answers;
/// the sorted list changes only when the answer does.
pub fn normalise(mut addrs: Vec<SocketAddr>, port: u16) -> Vec<SocketAddr> {
    for a in &mut addrs {
        a.set_port(port);
    }
    addrs.sort();
    addrs.dedup();
    addrs.truncate(MAX_ADDRESSES);
    addrs
}

/// The upstream's list for the registry's `view`: an address entry as it
/// is, a host name as one server per address that `addresses_of` knows
/// (none when it knows none). An address that two entries give (a name and
/// an IP key, two names) is listed once, by the first.
pub fn expand<'a>(
    view: &[Server],
    addresses_of: impl Fn(&str) -> Option<&'a [SocketAddr]>,
) -> Vec<Server> {
    let mut out = Vec::with_capacity(view.len());
    let mut seen = HashSet::with_capacity(view.len());
    for entry in view {
        if !is_host_name(&entry.name) {
            if seen.insert(entry.name.clone()) {
                out.push(entry.clone());
            }
            continue;
        }
        for addr in addresses_of(&entry.name).unwrap_or_default() {
            let name = addr.to_string();
            if seen.insert(name.clone()) {
                out.push(Server {
                    name,
                    host: Some(entry.name.clone()),
                    ..entry.clone()
                });
            }
        }
    }
    out
}

/// The registry's entries that an upstream's `servers` stand for: the
/// addresses of one host name become that name once (with the attributes of
/// its first address), other servers stay as they are.
pub fn collapse(servers: &[Server]) -> Vec<Server> {
    let mut out = Vec::with_capacity(servers.len());
    let mut names = HashSet::new();
    for s in servers {
        match &s.host {
            Some(host) => {
                if names.insert(host.as_str()) {
                    out.push(Server {
                        name: host.clone(),
                        host: None,
                        ..s.clone()
                    });
                }
            }
            None => out.push(s.clone()),
        }
    }
    out
}

/// The addresses that `servers` hold for each host name: what a name starts
/// with before the resolver first answers (from the dump file, or from the
/// shared list another worker filled).
pub fn known_addresses(servers: &[Server]) -> HashMap<String, Vec<SocketAddr>> {
    let mut out: HashMap<String, Vec<SocketAddr>> = HashMap::new();
    for s in servers {
        if let (Some(host), Ok(addr)) = (&s.host, s.name.parse::<SocketAddr>()) {
            out.entry(host.clone()).or_default().push(addr);
        }
    }
    for (name, addrs) in out.iter_mut() {
        let port = port_of(name).unwrap_or(0);
        *addrs = normalise(std::mem::take(addrs), port);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(name: &str, weight: i64) -> Server {
        Server {
            weight,
            ..Server::registry_default(name.into())
        }
    }

    fn addrs(list: &[&str]) -> Vec<SocketAddr> {
        list.iter().map(|a| a.parse().unwrap()).collect()
    }

    #[test]
    fn a_name_becomes_one_server_per_address_with_its_attributes() {
        let view = [entry("api.test:8080", 3), entry("10.0.0.9:80", 1)];
        let known = addrs(&["10.0.0.1:8080", "10.0.0.2:8080"]);
        let list = expand(&view, |n| (n == "api.test:8080").then_some(&known[..]));
        let names: Vec<_> = list.iter().map(|s| (s.name.as_str(), s.weight)).collect();
        assert_eq!(
            names,
            [
                ("10.0.0.1:8080", 3),
                ("10.0.0.2:8080", 3),
                ("10.0.0.9:80", 1)
            ]
        );
        assert_eq!(list[0].host.as_deref(), Some("api.test:8080"));
        assert_eq!(list[2].host, None);
        assert_eq!(collapse(&list), view);
    }

    #[test]
    fn a_name_without_addresses_is_left_out() {
        let view = [entry("api.test:8080", 1)];
        assert!(expand(&view, |_| None).is_empty());
    }

    #[test]
    fn an_address_two_entries_give_is_listed_once_by_the_first() {
        let view = [entry("10.0.0.1:80", 7), entry("api.test:80", 1)];
        let known = addrs(&["10.0.0.1:80", "10.0.0.2:80"]);
        let list = expand(&view, |_| Some(&known[..]));
        let names: Vec<_> = list.iter().map(|s| (s.name.as_str(), s.weight)).collect();
        assert_eq!(names, [("10.0.0.1:80", 7), ("10.0.0.2:80", 1)]);
        assert_eq!(list[0].host, None, "the IP key came first");
    }

    #[test]
    fn answers_are_normalised() {
        let a = normalise(
            addrs(&["10.0.0.2:0", "10.0.0.1:0", "10.0.0.2:0", "[::1]:0"]),
            8080,
        );
        assert_eq!(a, addrs(&["10.0.0.1:8080", "10.0.0.2:8080", "[::1]:8080"]));
        let many: Vec<SocketAddr> = (0..100u8)
            .map(|i| SocketAddr::from(([10, 0, 1, i], 0)))
            .collect();
        assert_eq!(normalise(many, 1).len(), MAX_ADDRESSES);
    }

    #[test]
    fn the_addresses_a_list_already_holds() {
        let mut a = entry("10.0.0.2:80", 1);
        a.host = Some("api.test:80".into());
        let mut b = entry("10.0.0.1:80", 1);
        b.host = Some("api.test:80".into());
        let c = entry("10.0.0.3:80", 1);
        let known = known_addresses(&[a, c, b]);
        assert_eq!(known.len(), 1);
        assert_eq!(known["api.test:80"], addrs(&["10.0.0.1:80", "10.0.0.2:80"]));
    }
}
