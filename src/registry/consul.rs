//! Consul: KV (`upsync_type=consul`), catalog (`consul_services`) and health
//! (`consul_health`) answers, and the blocking-query index rules.

use base64::Engine as _;
use serde_json::Value;

use super::{apply_attributes, apply_tags, json, parse_address, server_with_defaults};
use super::{ParseError, Parsed};
use crate::server::Server;

/// Which Consul endpoint an upstream polls.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Kv,
    Catalog,
    Health,
}

/// The request target of a poll: the configured path, `recurse` for KV, and
/// `index`/`wait` for a blocking query (never with index 0).
pub fn poll_target(base: &str, kind: Kind, index: u64, wait_secs: u64) -> String {
    let mut target = base.to_string();
    let mut sep = if base.contains('?') { '&' } else { '?' };
    let mut add = |param: &str| {
        target.push(sep);
        target.push_str(param);
        sep = '&';
    };
    if kind == Kind::Kv {
        add("recurse");
    }
    if index > 0 {
        add(&format!("index={index}"));
        add(&format!("wait={wait_secs}s"));
    }
    target
}

fn array(body: &[u8]) -> Result<Vec<Value>, ParseError> {
    match json(body)? {
        Value::Array(items) => Ok(items),
        _ => Err(ParseError("expected a JSON array".into())),
    }
}

/// Adds `server` unless its address is already listed (the first wins).
fn push_unique(out: &mut Parsed, server: Server) {
    if out.servers.iter().any(|s| s.name == server.name) {
        out.warnings.push(format!(
            "server \"{}\" is listed twice, the first one is used",
            server.name
        ));
    } else {
        out.servers.push(server);
    }
}

/// `GET /v1/kv/<prefix>?recurse`: one key per server, `<prefix>/<ip:port>`,
/// with an optional base64 JSON value.
pub fn parse_kv(prefix: &str, body: &[u8]) -> Result<Parsed, ParseError> {
    let mut out = Parsed::default();
    for item in array(body)? {
        let Some(key) = item.get("Key").and_then(Value::as_str) else {
            out.warnings
                .push("an entry without a Key was skipped".into());
            continue;
        };
        let rest = key.strip_prefix(prefix).unwrap_or(key);
        let rest = rest.strip_prefix('/').unwrap_or(rest);
        if rest.is_empty() || rest.ends_with('/') {
            continue; // the folder itself
        }
        if rest.contains('/') {
            out.warnings.push(format!(
                "key \"{key}\" is in a sub-folder of the prefix, skipped"
            ));
            continue;
        }
        let name = match parse_address(rest) {
            Ok(n) => n,
            Err(e) => {
                out.warnings.push(format!("key \"{key}\": {e}, skipped"));
                continue;
            }
        };
        let mut server = server_with_defaults(name);
        match item.get("Value") {
            None | Some(Value::Null) => {}
            Some(Value::String(b64)) => {
                match base64::engine::general_purpose::STANDARD.decode(b64) {
                    Ok(value) => apply_attributes(&mut server, key, &value, &mut out.warnings),
                    Err(_) => out.warnings.push(format!(
                        "key \"{key}\": value is not base64, using defaults"
                    )),
                }
            }
            Some(_) => out.warnings.push(format!(
                "key \"{key}\": value is not a string, using defaults"
            )),
        }
        push_unique(&mut out, server);
    }
    Ok(out)
}

fn str_field<'a>(v: &'a Value, name: &str) -> &'a str {
    v.get(name).and_then(Value::as_str).unwrap_or("")
}

fn tags(v: &Value) -> Vec<String> {
    v.as_array()
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(String::from)
                .collect()
        })
        .unwrap_or_default()
}

/// One service instance: address (or the node's), port and tags.
fn instance(
    out: &mut Parsed,
    id: &str,
    address: &str,
    node_address: &str,
    port: Option<u64>,
    tag_list: &[String],
) -> Option<Server> {
    let host = if address.is_empty() {
        node_address
    } else {
        address
    };
    let Some(port) = port.filter(|p| (1..=65535).contains(p)) else {
        out.warnings.push(format!(
            "service instance \"{id}\" has no valid port, skipped"
        ));
        return None;
    };
    let text = if host.contains(':') && !host.starts_with('[') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    };
    match parse_address(&text) {
        Ok(name) => {
            let mut server = server_with_defaults(name);
            apply_tags(&mut server, tag_list, &mut out.warnings);
            Some(server)
        }
        Err(e) => {
            out.warnings
                .push(format!("service instance \"{id}\": {e}, skipped"));
            None
        }
    }
}

/// `GET /v1/catalog/service/<name>`.
pub fn parse_catalog(body: &[u8]) -> Result<Parsed, ParseError> {
    let mut out = Parsed::default();
    for item in array(body)? {
        let server = instance(
            &mut out,
            str_field(&item, "ServiceID"),
            str_field(&item, "ServiceAddress"),
            str_field(&item, "Address"),
            item.get("ServicePort").and_then(Value::as_u64),
            &tags(item.get("ServiceTags").unwrap_or(&Value::Null)),
        );
        if let Some(s) = server {
            push_unique(&mut out, s);
        }
    }
    Ok(out)
}

/// `GET /v1/health/service/<name>`: an instance with any check not passing
/// (node checks included) is kept, `down`.
pub fn parse_health(body: &[u8]) -> Result<Parsed, ParseError> {
    let mut out = Parsed::default();
    for item in array(body)? {
        let service = item.get("Service").unwrap_or(&Value::Null);
        let node = item.get("Node").unwrap_or(&Value::Null);
        let server = instance(
            &mut out,
            str_field(service, "ID"),
            str_field(service, "Address"),
            str_field(node, "Address"),
            service.get("Port").and_then(Value::as_u64),
            &tags(service.get("Tags").unwrap_or(&Value::Null)),
        );
        let Some(mut server) = server else {
            continue;
        };
        let failing = item
            .get("Checks")
            .and_then(Value::as_array)
            .is_some_and(|checks| checks.iter().any(|c| str_field(c, "Status") != "passing"));
        if failing {
            server.down = true;
        }
        push_unique(&mut out, server);
    }
    Ok(out)
}

/// Blocking-query bookkeeping, by Consul's documented rules: a lower index
/// than before resets to a full read; never block on 0; an error resets.
#[derive(Debug, Default, Clone)]
pub struct IndexState {
    last: Option<u64>,
}

impl IndexState {
    /// The index of the next request; 0 means a plain read.
    pub fn next_request_index(&self) -> u64 {
        match self.last {
            None => 0,
            Some(0) => 1,
            Some(n) => n,
        }
    }

    /// Records an answer's `X-Consul-Index`; true when the answer may carry
    /// a change (first answer, index moved, or no index to compare).
    pub fn observe(&mut self, header: Option<u64>) -> bool {
        let Some(index) = header else {
            self.last = None;
            return true;
        };
        let changed = self.last != Some(index);
        self.last = match self.last {
            // Gone backwards (a restored or new cluster): read it all again.
            Some(prev) if index < prev => None,
            _ => Some(index),
        };
        changed
    }

    /// After an error, the next request is a full read.
    pub fn reset(&mut self) {
        self.last = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b64(s: &str) -> String {
        base64::engine::general_purpose::STANDARD.encode(s)
    }

    fn kv(entries: &[(&str, Option<&str>)]) -> Vec<u8> {
        let items: Vec<Value> = entries
            .iter()
            .map(|(k, v)| {
                serde_json::json!({
                    "CreateIndex": 1, "ModifyIndex": 2, "LockIndex": 0, "Flags": 0,
                    "Key": k, "Value": v.map(b64),
                })
            })
            .collect();
        serde_json::to_vec(&items).unwrap()
    }

    fn names(p: &Parsed) -> Vec<&str> {
        p.servers.iter().map(|s| s.name.as_str()).collect()
    }

    #[test]
    fn kv_keys_values_and_skips() {
        let body = kv(&[
            ("upstreams/test/", None),
            (
                "upstreams/test/127.0.0.1:8088",
                Some(r#"{"weight":"40","down":1}"#),
            ),
            ("upstreams/test/127.0.0.1:8089", Some("")),
            ("upstreams/test/[::1]:8090", None),
            ("upstreams/test/::1:8091", None),
            ("upstreams/test/web.local:80", None),
            ("upstreams/test/127.0.0.1", None),
            ("upstreams/test/sub/127.0.0.1:1", None),
            ("upstreams/test/127.0.0.1:8092", Some("nope")),
            ("upstreams/test/127.0.0.1:8088", None),
        ]);
        let p = parse_kv("upstreams/test", &body).unwrap();
        assert_eq!(
            names(&p),
            [
                "127.0.0.1:8088",
                "127.0.0.1:8089",
                "[::1]:8090",
                "127.0.0.1:8092"
            ]
        );
        assert_eq!((p.servers[0].weight, p.servers[0].down), (40, true));
        assert_eq!(p.servers[1], server_with_defaults("127.0.0.1:8089".into()));
        assert_eq!(p.warnings.len(), 6, "{:?}", p.warnings);
        let p2 = parse_kv("upstreams/test/", &body).unwrap();
        assert_eq!(p2.servers, p.servers);
    }

    #[test]
    fn kv_bodies_that_cannot_be_used() {
        assert!(parse_kv("x", b"<html>")
            .unwrap_err()
            .0
            .starts_with("invalid JSON"));
        assert_eq!(parse_kv("x", b"{}").unwrap_err().0, "expected a JSON array");
        assert_eq!(parse_kv("x", b"[]").unwrap(), Parsed::default());
    }

    #[test]
    fn catalog_addresses_and_tags() {
        let body = br#"[
            {"Node":"n1","Address":"10.0.0.1","ServiceID":"a","ServiceAddress":"","ServicePort":80,
             "ServiceTags":["weight=3","backup"]},
            {"Node":"n2","Address":"10.0.0.2","ServiceID":"b","ServiceAddress":"10.0.0.9","ServicePort":81,
             "ServiceTags":null},
            {"Node":"n3","Address":"10.0.0.3","ServiceID":"c","ServiceAddress":"","ServicePort":0}
        ]"#;
        let p = parse_catalog(body).unwrap();
        assert_eq!(names(&p), ["10.0.0.1:80", "10.0.0.9:81"]);
        assert_eq!((p.servers[0].weight, p.servers[0].backup), (3, true));
        assert_eq!(p.warnings.len(), 1);
    }

    #[test]
    fn health_failing_checks_mean_down() {
        let body = br#"[
            {"Node":{"Node":"n1","Address":"10.0.0.1"},"Service":{"ID":"a","Address":"","Port":80,"Tags":[]},
             "Checks":[{"Status":"passing"},{"Status":"passing"}]},
            {"Node":{"Node":"n2","Address":"10.0.0.2"},"Service":{"ID":"b","Address":"::1","Port":80},
             "Checks":[{"Status":"passing"},{"Status":"warning"}]}
        ]"#;
        let p = parse_health(body).unwrap();
        assert_eq!(names(&p), ["10.0.0.1:80", "[::1]:80"]);
        assert!(!p.servers[0].down);
        assert!(p.servers[1].down);
    }

    #[test]
    fn index_rules() {
        let mut i = IndexState::default();
        assert_eq!(i.next_request_index(), 0);
        assert!(i.observe(Some(10)));
        assert_eq!(i.next_request_index(), 10);
        assert!(!i.observe(Some(10)));
        assert!(i.observe(Some(12)));
        // backwards: process it, and read everything again next time
        assert!(i.observe(Some(3)));
        assert_eq!(i.next_request_index(), 0);
        assert!(i.observe(Some(3)));
        assert_eq!(i.next_request_index(), 3);
        // never block on 0
        i.reset();
        assert!(i.observe(Some(0)));
        assert_eq!(i.next_request_index(), 1);
        assert!(i.observe(None));
        assert_eq!(i.next_request_index(), 0);
        i.observe(Some(5));
        i.reset();
        assert_eq!(i.next_request_index(), 0);
    }

    #[test]
    fn targets() {
        assert_eq!(
            poll_target("/v1/kv/up/", Kind::Kv, 0, 60),
            "/v1/kv/up/?recurse"
        );
        assert_eq!(
            poll_target("/v1/kv/up/?dc=b", Kind::Kv, 7, 60),
            "/v1/kv/up/?dc=b&recurse&index=7&wait=60s"
        );
        assert_eq!(
            poll_target("/v1/catalog/service/w", Kind::Catalog, 0, 5),
            "/v1/catalog/service/w"
        );
        assert_eq!(
            poll_target("/v1/health/service/w?passing", Kind::Health, 9, 5),
            "/v1/health/service/w?passing&index=9&wait=5s"
        );
    }
}
