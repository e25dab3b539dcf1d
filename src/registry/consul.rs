//! Consul answers: KV (`upsync_type=consul`), catalog (`consul_services`)
//! and health (`consul_health`), plus the blocking-query index rules and the
//! request target of a poll.

use base64::Engine as _;
use serde_json::Value;

use super::{apply_attributes, apply_tags, folder, key_address, parse_address, parse_json, quote};
use super::{ParseError, Parsed};
use crate::server::Server;

/// Which Consul endpoint an upstream polls.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// `/v1/kv/<prefix>?recurse`
    Kv,
    /// `/v1/catalog/service/<name>`
    Catalog,
    /// `/v1/health/service/<name>`
    Health,
}

/// The request target for a poll: the configured path (which may carry its
/// own query, e.g. `?dc=dc1` or `?passing`), `recurse` for KV, and
/// `index=N&wait=Ws` only when `index > 0` (a blocking query; 0 means a plain
/// read).
pub fn poll_target(base: &str, kind: Kind, index: u64, wait_secs: u64) -> String {
    let query = base.split_once('?').map_or("", |(_, q)| q);
    let mut params = Vec::new();
    let has_recurse = query
        .split('&')
        .any(|p| p == "recurse" || p.starts_with("recurse="));
    if kind == Kind::Kv && !has_recurse {
        params.push("recurse".to_string());
    }
    if index > 0 {
        params.push(format!("index={index}"));
        params.push(format!("wait={wait_secs}s"));
    }
    let mut target = base.to_string();
    for param in params {
        if !target.contains('?') {
            target.push('?');
        } else if !target.ends_with('?') && !target.ends_with('&') {
            target.push('&');
        }
        target.push_str(&param);
    }
    target
}

/// The body as a JSON array, or why it cannot be used.
fn array(body: &[u8]) -> Result<Vec<Value>, ParseError> {
    match parse_json(body)? {
        Value::Array(items) => Ok(items),
        _ => Err(ParseError("expected a JSON array".into())),
    }
}

/// `GET /v1/kv/<prefix>?recurse`: a JSON array of `{Key, Value, ...}`, one key
/// per server, `<prefix>/<ip:port>`, the value an optional base64 JSON object
/// of attributes.
///
/// The prefix folder itself and any key ending in '/' are skipped silently;
/// keys in deeper folders, keys outside the prefix and keys that are not an
/// address are skipped with a warning. A duplicate address keeps the first
/// entry. Servers come in the order of the array.
pub fn parse_kv(prefix: &str, body: &[u8]) -> Result<Parsed, ParseError> {
    // As Consul spells keys: no leading '/'.
    let prefix = folder(prefix.trim_start_matches('/'));
    let mut out = Parsed::default();
    for (i, item) in array(body)?.iter().enumerate() {
        let Some(key) = item.get("Key").and_then(Value::as_str) else {
            out.warnings
                .push(format!("entry {i} of the kv answer has no key, skipped"));
            continue;
        };
        let mut server = match key_address(&prefix, key) {
            Ok(Some(name)) => Server::registry_default(name),
            Ok(None) => continue,
            Err(e) => {
                out.warnings.push(e.0);
                continue;
            }
        };
        match item.get("Value") {
            None | Some(Value::Null) => {}
            Some(Value::String(b64)) => {
                match base64::engine::general_purpose::STANDARD.decode(b64) {
                    Ok(value) => apply_attributes(&mut server, key, &value, &mut out.warnings),
                    Err(_) => out.warnings.push(format!(
                        "key {}: value is not valid base64, using the defaults",
                        quote(key)
                    )),
                }
            }
            Some(_) => out.warnings.push(format!(
                "key {}: value is not a string, using the defaults",
                quote(key)
            )),
        }
        out.push_unique(server, || format!("key {}", quote(key)));
    }
    Ok(out)
}

/// A string field, "" when missing or not a string.
fn str_field<'a>(v: &'a Value, name: &str) -> &'a str {
    v.get(name).and_then(Value::as_str).unwrap_or("")
}

/// A list of string tags; other elements and a missing list are ignored.
fn tag_list(v: Option<&Value>) -> Vec<String> {
    v.and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(String::from)
                .collect()
        })
        .unwrap_or_default()
}

/// How an entry of a catalog or health answer is named in messages.
fn origin(i: usize, id: &str) -> String {
    if id.is_empty() {
        format!("entry {i}")
    } else {
        format!("service instance {}", quote(id))
    }
}

/// One service instance: its address (the node's when its own is empty), its
/// port and its tags. `None` (with a warning) when it has no usable address.
fn instance(
    out: &mut Parsed,
    origin: &str,
    address: &str,
    node_address: &str,
    port: Option<&Value>,
    tags: &[String],
    weight: Option<i64>,
) -> Option<Server> {
    let host = if address.is_empty() {
        node_address
    } else {
        address
    };
    if host.is_empty() {
        out.warnings
            .push(format!("{origin} has no address, skipped"));
        return None;
    }
    let Some(port) = port
        .and_then(Value::as_u64)
        .filter(|p| (1..=65535).contains(p))
    else {
        out.warnings
            .push(format!("{origin} has no valid port, skipped"));
        return None;
    };
    let text = if host.contains(':') && !host.starts_with('[') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    };
    match parse_address(&text) {
        Ok(name) => {
            let mut server = Server::registry_default(name);
            if let Some(w) = weight {
                server.weight = w;
            }
            apply_tags(&mut server, tags, &mut out.warnings);
            Some(server)
        }
        Err(e) => {
            out.warnings.push(format!("{origin}: {e}, skipped"));
            None
        }
    }
}

/// A service's `Weights` (`{"Passing": 10, "Warning": 1}`): the weights
/// while its checks pass and while one warns; `None` for a missing or
/// invalid value (the default then applies). A warning weight may be 0.
fn weights(v: Option<&Value>) -> (Option<i64>, Option<i64>) {
    let get = |name: &str, min: i64| {
        v.and_then(|w| w.get(name))
            .and_then(Value::as_i64)
            .filter(|&w| w >= min)
            .map(|w| w.min(crate::server::MAX_WEIGHT))
    };
    (get("Passing", 1), get("Warning", 0))
}

/// `GET /v1/catalog/service/<name>`: an array of `{Address, ServiceAddress,
/// ServicePort, ServiceTags, ServiceWeights, ...}`. The address is
/// `ServiceAddress`, or the node's `Address` when that is empty; the weight
/// is `ServiceWeights.Passing`; attributes come from the tags (a `weight=`
/// tag wins).
pub fn parse_catalog(body: &[u8]) -> Result<Parsed, ParseError> {
    let mut out = Parsed::default();
    for (i, item) in array(body)?.iter().enumerate() {
        let origin = origin(i, str_field(item, "ServiceID"));
        let server = instance(
            &mut out,
            &origin,
            str_field(item, "ServiceAddress"),
            str_field(item, "Address"),
            item.get("ServicePort"),
            &tag_list(item.get("ServiceTags")),
            weights(item.get("ServiceWeights")).0,
        );
        if let Some(server) = server {
            out.push_unique(server, || origin);
        }
    }
    Ok(out)
}

/// `GET /v1/health/service/<name>`: an array of `{Node:{Address},
/// Service:{ID, Address, Port, Tags, Weights}, Checks:[{Status}]}`. The
/// address is `Service.Address`, or `Node.Address` when that is empty; the
/// weight `Service.Weights.Passing` (a `weight=` tag wins). An instance with
/// a check (node checks included) neither `passing` nor `warning` is kept,
/// marked down; one with a `warning` check takes `Weights.Warning` (down
/// when that is 0), as Consul's DNS interface weighs it.
pub fn parse_health(body: &[u8]) -> Result<Parsed, ParseError> {
    let mut out = Parsed::default();
    for (i, item) in array(body)?.iter().enumerate() {
        let service = item.get("Service").unwrap_or(&Value::Null);
        let node = item.get("Node").unwrap_or(&Value::Null);
        let origin = origin(i, str_field(service, "ID"));
        let server = instance(
            &mut out,
            &origin,
            str_field(service, "Address"),
            str_field(node, "Address"),
            service.get("Port"),
            &tag_list(service.get("Tags")),
            weights(service.get("Weights")).0,
        );
        let Some(mut server) = server else {
            continue;
        };
        let statuses: Vec<&str> = item
            .get("Checks")
            .and_then(Value::as_array)
            .map(|checks| checks.iter().map(|c| str_field(c, "Status")).collect())
            .unwrap_or_default();
        if statuses.iter().any(|s| *s != "passing" && *s != "warning") {
            server.down = true;
        } else if statuses.contains(&"warning") {
            match weights(service.get("Weights")).1 {
                Some(0) => server.down = true,
                Some(w) => server.weight = w,
                None => {}
            }
        }
        out.push_unique(server, || origin);
    }
    Ok(out)
}

/// Blocking-query index bookkeeping, by Consul's documented rules: an index
/// lower than the previous one resets to a full read; never block on index
/// 0; a missing index or an error means a full read next.
#[derive(Debug, Default, Clone)]
pub struct IndexState {
    /// The `X-Consul-Index` of the last successful answer, `None` before the
    /// first one and after a reset.
    last: Option<u64>,
}

impl IndexState {
    /// The index to send with the next request: 0 means no index parameter
    /// at all (a plain read, never a blocking one).
    pub fn next_request_index(&self) -> u64 {
        match self.last {
            None => 0,
            Some(0) => 1,
            Some(n) => n,
        }
    }

    /// Records the `X-Consul-Index` of a successful answer (`None` when
    /// missing or unparseable). Returns whether the answer must be processed
    /// as possibly changed: on the first answer, when the index moved either
    /// way, or without an index; not when the index is the previous one.
    pub fn observe(&mut self, header: Option<u64>) -> bool {
        let Some(index) = header else {
            self.last = None;
            return true;
        };
        let changed = self.last != Some(index);
        self.last = match self.last {
            // Gone backwards (a restored or rebuilt cluster): read it all
            // again, and block on whatever that full read reports.
            Some(prev) if index < prev => None,
            _ => Some(index),
        };
        changed
    }

    /// An error happened (status not 200, unusable body, transport error):
    /// the next request is a full read without index.
    pub fn reset(&mut self) {
        self.last = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn b64(s: &str) -> String {
        base64::engine::general_purpose::STANDARD.encode(s)
    }

    /// A KV answer: (key, Some(raw value) | None for a null Value).
    fn kv(entries: &[(&str, Option<&str>)]) -> Vec<u8> {
        let items: Vec<Value> = entries
            .iter()
            .map(|(k, v)| {
                json!({
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

    fn fields(s: &Server) -> (i64, u64, i64, bool, bool) {
        (s.weight, s.max_fails, s.fail_timeout, s.down, s.backup)
    }

    fn one_warning_containing(p: &Parsed, text: &str) {
        assert_eq!(p.warnings.len(), 1, "{:?}", p.warnings);
        assert!(p.warnings[0].contains(text), "{:?}", p.warnings);
    }

    #[test]
    fn kv_values() {
        let body = kv(&[
            (
                "upstreams/test/127.0.0.1:8088",
                Some(r#"{"weight":40,"max_fails":3,"fail_timeout":20,"down":1,"backup":0}"#),
            ),
            (
                "upstreams/test/127.0.0.1:8089",
                Some(
                    r#"{"weight":"5","max_fails":"0","fail_timeout":"30","down":"0","backup":"1"}"#,
                ),
            ),
            ("upstreams/test/127.0.0.1:8090", None),
            ("upstreams/test/127.0.0.1:8091", Some("")),
            ("upstreams/test/127.0.0.1:8092", Some(r#"{"weight":7}"#)),
        ]);
        let p = parse_kv("upstreams/test/", &body).unwrap();
        assert!(p.warnings.is_empty(), "{:?}", p.warnings);
        assert_eq!(
            names(&p),
            [
                "127.0.0.1:8088",
                "127.0.0.1:8089",
                "127.0.0.1:8090",
                "127.0.0.1:8091",
                "127.0.0.1:8092"
            ]
        );
        assert_eq!(fields(&p.servers[0]), (40, 3, 20, true, false));
        assert_eq!(fields(&p.servers[1]), (5, 0, 30, false, true));
        assert_eq!(
            p.servers[2],
            Server::registry_default("127.0.0.1:8090".into())
        );
        assert_eq!(
            p.servers[3],
            Server::registry_default("127.0.0.1:8091".into())
        );
        assert_eq!(fields(&p.servers[4]), (7, 2, 10, false, false));
    }

    #[test]
    fn kv_missing_value_field_is_defaults() {
        let body = br#"[{"Key":"up/10.0.0.1:80","Flags":0}]"#;
        let p = parse_kv("up/", body).unwrap();
        assert_eq!(p.servers, [Server::registry_default("10.0.0.1:80".into())]);
        assert!(p.warnings.is_empty());
    }

    #[test]
    fn kv_non_json_value_warns_and_keeps_defaults() {
        let p = parse_kv("up/", &kv(&[("up/10.0.0.1:80", Some("weight=3"))])).unwrap();
        assert_eq!(p.servers, [Server::registry_default("10.0.0.1:80".into())]);
        assert_eq!(
            p.warnings,
            [r#"key "up/10.0.0.1:80": value is not valid JSON, using the defaults"#]
        );
    }

    #[test]
    fn kv_invalid_weight_warns_and_keeps_default() {
        let body = kv(&[("up/10.0.0.1:80", Some(r#"{"weight":0,"max_fails":4}"#))]);
        let p = parse_kv("up/", &body).unwrap();
        assert_eq!(fields(&p.servers[0]), (1, 4, 10, false, false));
        assert_eq!(
            p.warnings,
            [r#"key "up/10.0.0.1:80": invalid weight 0, using the default"#]
        );
    }

    #[test]
    fn kv_bad_base64_or_non_string_value() {
        let body =
            br#"[{"Key":"up/10.0.0.1:80","Value":"%%%"},{"Key":"up/10.0.0.1:81","Value":5}]"#;
        let p = parse_kv("up/", body).unwrap();
        assert_eq!(names(&p), ["10.0.0.1:80", "10.0.0.1:81"]);
        assert_eq!(p.servers[0], Server::registry_default("10.0.0.1:80".into()));
        assert_eq!(p.warnings.len(), 2, "{:?}", p.warnings);
        assert!(p.warnings[0].contains("not valid base64"));
        assert!(p.warnings[1].contains("not a string"));
    }

    #[test]
    fn kv_folder_keys_are_skipped_silently() {
        let body = kv(&[
            ("upstreams/test/", None),
            ("upstreams/test/10.0.0.1:80", None),
            ("upstreams/test/sub/", None),
        ]);
        for prefix in ["upstreams/test/", "upstreams/test", "/upstreams/test/"] {
            let p = parse_kv(prefix, &body).unwrap();
            assert_eq!(names(&p), ["10.0.0.1:80"], "{prefix}");
            assert!(p.warnings.is_empty(), "{prefix}: {:?}", p.warnings);
        }
        // The folder key without its slash (a plain key named like the folder).
        let p = parse_kv("upstreams/test/", &kv(&[("upstreams/test", None)])).unwrap();
        assert_eq!(p, Parsed::default());
    }

    #[test]
    fn kv_sub_folder_key_warns() {
        let body = kv(&[
            ("upstreams/test/a/10.0.0.1:80", Some(r#"{"weight":2}"#)),
            ("upstreams/test/10.0.0.2:80", None),
        ]);
        let p = parse_kv("upstreams/test/", &body).unwrap();
        assert_eq!(names(&p), ["10.0.0.2:80"]);
        assert_eq!(
            p.warnings,
            [r#"key "upstreams/test/a/10.0.0.1:80" is in a sub-folder of the prefix, skipped"#]
        );
    }

    #[test]
    fn kv_key_outside_the_prefix_warns() {
        // A prefix without its '/' also matches upstreams/test01/... in Consul.
        let body = kv(&[
            ("upstreams/test01/10.0.0.1:80", None),
            ("upstreams/test/10.0.0.2:80", None),
        ]);
        let p = parse_kv("upstreams/test", &body).unwrap();
        assert_eq!(names(&p), ["10.0.0.2:80"]);
        one_warning_containing(&p, "is not under the prefix");
    }

    #[test]
    fn kv_empty_prefix_is_the_whole_store() {
        let p = parse_kv("", &kv(&[("10.0.0.1:80", None), ("a/10.0.0.2:80", None)])).unwrap();
        assert_eq!(names(&p), ["10.0.0.1:80"]);
        one_warning_containing(&p, "sub-folder");
    }

    #[test]
    fn kv_host_name_keys() {
        let body = kv(&[
            ("up/Backend.Local:80", Some(r#"{"weight":3}"#)),
            ("up/bad_name.local:80", None),
        ]);
        let p = parse_kv("up/", &body).unwrap();
        assert_eq!(names(&p), ["backend.local:80"]);
        assert_eq!(p.servers[0].weight, 3);
        assert_eq!(
            p.warnings,
            [
                r#"key "up/bad_name.local:80": "bad_name.local:80" is neither an IP address nor a host name, skipped"#
            ]
        );
    }

    #[test]
    fn kv_ipv6_keys() {
        let body = kv(&[
            ("up/[::1]:8080", Some(r#"{"weight":2}"#)),
            ("up/[0:0:0:0:0:0:0:2]:8080", None),
            ("up/::1:8081", None),
        ]);
        let p = parse_kv("up/", &body).unwrap();
        assert_eq!(names(&p), ["[::1]:8080", "[::2]:8080"]);
        assert_eq!(p.servers[0].weight, 2);
        one_warning_containing(&p, "needs brackets");
    }

    #[test]
    fn kv_missing_or_bad_port_warns() {
        let body = kv(&[
            ("up/10.0.0.1", None),
            ("up/10.0.0.1:0", None),
            ("up/10.0.0.1:70000", None),
        ]);
        let p = parse_kv("up/", &body).unwrap();
        assert!(p.servers.is_empty());
        assert_eq!(p.warnings.len(), 3, "{:?}", p.warnings);
        assert!(p.warnings[0].contains("has no port"));
        assert!(p.warnings[1].contains("invalid port"));
        assert!(p.warnings[2].contains("invalid port"));
    }

    #[test]
    fn kv_duplicates_keep_the_first() {
        let body = kv(&[
            ("up/[::1]:80", Some(r#"{"weight":3}"#)),
            ("up/10.0.0.1:80", None),
            ("up/[0::1]:80", Some(r#"{"weight":9}"#)),
        ]);
        let p = parse_kv("up/", &body).unwrap();
        assert_eq!(names(&p), ["[::1]:80", "10.0.0.1:80"]);
        assert_eq!(p.servers[0].weight, 3);
        assert_eq!(
            p.warnings,
            [r#"key "up/[0::1]:80": server [::1]:80 is listed twice, the first one is used"#]
        );
    }

    #[test]
    fn kv_entries_without_a_key_warn() {
        let p = parse_kv(
            "up/",
            br#"[5, {"Value":null}, {"Key":7}, {"Key":"up/1.1.1.1:1"}]"#,
        )
        .unwrap();
        assert_eq!(names(&p), ["1.1.1.1:1"]);
        assert_eq!(p.warnings.len(), 3, "{:?}", p.warnings);
        assert!(p.warnings[0].starts_with("entry 0 "));
    }

    #[test]
    fn bodies_that_cannot_be_used() {
        type Parser = fn(&[u8]) -> Result<Parsed, ParseError>;
        let parsers: [Parser; 3] = [|b| parse_kv("up/", b), parse_catalog, parse_health];
        for parse in parsers {
            for body in [&b"<html>"[..], b"", b"[", b"[1,]", &[0xff, 0xfe][..]] {
                let e = parse(body).unwrap_err();
                assert!(e.0.starts_with("invalid JSON"), "{e}");
            }
            for body in [&br#"{"Key":"up/1.1.1.1:1"}"#[..], b"null", b"\"x\"", b"1"] {
                assert_eq!(
                    parse(body).unwrap_err().to_string(),
                    "expected a JSON array"
                );
            }
            assert_eq!(parse(b"[]").unwrap(), Parsed::default());
            assert_eq!(parse(b" [ ] \n").unwrap(), Parsed::default());
        }
    }

    #[test]
    fn catalog_addresses_and_tags() {
        let body = br#"[
            {"Node":"n1","Address":"10.0.0.1","ServiceID":"web1","ServiceName":"web",
             "ServiceAddress":"","ServicePort":8080,
             "ServiceTags":["weight=3","down","backup","fail_timeout=1m","v1"],
             "ServiceMeta":{},"ServiceWeights":{"Passing":1,"Warning":1}},
            {"Node":"n2","Address":"10.0.0.2","ServiceID":"web2","ServiceAddress":"10.0.0.9",
             "ServicePort":8081,"ServiceTags":null},
            {"Node":"n3","Address":"10.0.0.3","ServiceID":"web3","ServicePort":8082,
             "ServiceTags":["max_fails=5",7]},
            {"Node":"n4","Address":"::1","ServiceID":"web4","ServiceAddress":"","ServicePort":8083}
        ]"#;
        let p = parse_catalog(body).unwrap();
        assert!(p.warnings.is_empty(), "{:?}", p.warnings);
        assert_eq!(
            names(&p),
            [
                "10.0.0.1:8080",
                "10.0.0.9:8081",
                "10.0.0.3:8082",
                "[::1]:8083"
            ]
        );
        assert_eq!(fields(&p.servers[0]), (3, 2, 60, true, true));
        assert_eq!(
            p.servers[1],
            Server::registry_default("10.0.0.9:8081".into())
        );
        assert_eq!(fields(&p.servers[2]), (1, 5, 10, false, false));
    }

    #[test]
    fn catalog_unusable_entries_warn() {
        let body = br#"[
            {"Node":"n1","Address":"10.0.0.1","ServiceID":"a","ServiceAddress":"","ServicePort":0},
            {"Node":"n2","Address":"10.0.0.2","ServiceID":"b","ServicePort":70000},
            {"Node":"n3","Address":"10.0.0.3","ServiceID":"c","ServicePort":"80"},
            {"Node":"n4","Address":"","ServiceID":"d","ServiceAddress":"","ServicePort":80},
            {"Node":"n5","Address":"10.0.0.5","ServiceID":"e","ServiceAddress":"web_1.local","ServicePort":80},
            {"Node":"n6","Address":"10.0.0.6","ServiceAddress":"","ServicePort":80,"ServiceTags":["weight=0"]},
            {"Node":"n7","Address":"10.0.0.6","ServiceID":"g","ServicePort":80},
            "junk"
        ]"#;
        let p = parse_catalog(body).unwrap();
        assert_eq!(names(&p), ["10.0.0.6:80"]);
        assert_eq!(p.servers[0].weight, 1);
        let expected = [
            r#"service instance "a" has no valid port, skipped"#,
            r#"service instance "b" has no valid port, skipped"#,
            r#"service instance "c" has no valid port, skipped"#,
            r#"service instance "d" has no address, skipped"#,
            r#"service instance "e": "web_1.local:80" is neither an IP address nor a host name, skipped"#,
            r#"server 10.0.0.6:80: invalid tag "weight=0", using the default"#,
            r#"service instance "g": server 10.0.0.6:80 is listed twice, the first one is used"#,
            r#"entry 7 has no address, skipped"#,
        ];
        assert_eq!(p.warnings, expected);
    }

    #[test]
    fn health_checks_and_addresses() {
        let body = br#"[
            {"Node":{"Node":"n1","Address":"10.0.0.1"},
             "Service":{"ID":"a","Service":"web","Address":"","Port":80,"Tags":["weight=2"]},
             "Checks":[{"CheckID":"serfHealth","Status":"passing"},{"CheckID":"c","Status":"passing"}]},
            {"Node":{"Node":"n2","Address":"10.0.0.2"},
             "Service":{"ID":"b","Address":"10.0.0.22","Port":81},
             "Checks":[{"Status":"passing"},{"Status":"warning"}]},
            {"Node":{"Node":"n3","Address":"10.0.0.3"},
             "Service":{"ID":"c","Address":"","Port":82,"Tags":["backup"]},
             "Checks":[{"Status":"critical"},{"Status":"passing"}]},
            {"Node":{"Node":"n4","Address":"10.0.0.4"},"Service":{"ID":"d","Port":83},"Checks":[]},
            {"Node":{"Node":"n5","Address":"10.0.0.5"},"Service":{"ID":"e","Port":84}},
            {"Node":{"Node":"n6","Address":"10.0.0.6"},"Service":{"ID":"f","Port":85},
             "Checks":[{"CheckID":"no-status"}]},
            {"Node":{"Node":"n7","Address":"fe80::1"},"Service":{"ID":"g","Address":"","Port":86},
             "Checks":[{"Status":"passing"}]}
        ]"#;
        let p = parse_health(body).unwrap();
        assert!(p.warnings.is_empty(), "{:?}", p.warnings);
        assert_eq!(
            names(&p),
            [
                "10.0.0.1:80",
                "10.0.0.22:81",
                "10.0.0.3:82",
                "10.0.0.4:83",
                "10.0.0.5:84",
                "10.0.0.6:85",
                "[fe80::1]:86"
            ]
        );
        // A warning check is not a failing one.
        let down: Vec<bool> = p.servers.iter().map(|s| s.down).collect();
        assert_eq!(down, [false, false, true, false, false, true, false]);
        assert_eq!(fields(&p.servers[0]), (2, 2, 10, false, false));
        assert_eq!(fields(&p.servers[2]), (1, 2, 10, true, true));
    }

    #[test]
    fn service_weights() {
        let health = br#"[
            {"Node":{"Address":"10.0.0.1"},"Service":{"ID":"a","Port":80,"Weights":{"Passing":10,"Warning":1}},
             "Checks":[{"Status":"passing"}]},
            {"Node":{"Address":"10.0.0.2"},"Service":{"ID":"b","Port":80,"Weights":{"Passing":10,"Warning":3}},
             "Checks":[{"Status":"passing"},{"Status":"warning"}]},
            {"Node":{"Address":"10.0.0.3"},"Service":{"ID":"c","Port":80,"Tags":["weight=7"],"Weights":{"Passing":10,"Warning":1}},
             "Checks":[{"Status":"passing"}]},
            {"Node":{"Address":"10.0.0.4"},"Service":{"ID":"d","Port":80,"Weights":{"Passing":10,"Warning":0}},
             "Checks":[{"Status":"warning"}]},
            {"Node":{"Address":"10.0.0.5"},"Service":{"ID":"e","Port":80,"Weights":{"Passing":0,"Warning":"x"}},
             "Checks":[{"Status":"warning"}]},
            {"Node":{"Address":"10.0.0.6"},"Service":{"ID":"f","Port":80,"Weights":{"Passing":5000000}},
             "Checks":[]}
        ]"#;
        let p = parse_health(health).unwrap();
        let got: Vec<(i64, bool)> = p.servers.iter().map(|s| (s.weight, s.down)).collect();
        assert_eq!(
            got,
            [
                (10, false),
                (3, false),
                (7, false),
                (10, true),
                (1, false),
                (1_000_000, false)
            ]
        );
        let catalog = br#"[
            {"Address":"10.0.0.1","ServicePort":80,"ServiceWeights":{"Passing":4,"Warning":1}},
            {"Address":"10.0.0.2","ServicePort":80,"ServiceTags":["weight=2"],"ServiceWeights":{"Passing":4,"Warning":1}},
            {"Address":"10.0.0.3","ServicePort":80}
        ]"#;
        let p = parse_catalog(catalog).unwrap();
        let weights: Vec<i64> = p.servers.iter().map(|s| s.weight).collect();
        assert_eq!(weights, [4, 2, 1]);
    }

    #[test]
    fn health_down_tag_and_unusable_entries() {
        let body = br#"[
            {"Node":{"Address":"10.0.0.1"},"Service":{"ID":"a","Port":80,"Tags":["down"]},
             "Checks":[{"Status":"passing"}]},
            {"Node":{"Address":"10.0.0.2"},"Service":{"ID":"b"},"Checks":[]},
            {"Node":{"Address":"10.0.0.3"}},
            {}
        ]"#;
        let p = parse_health(body).unwrap();
        assert_eq!(names(&p), ["10.0.0.1:80"]);
        assert!(p.servers[0].down);
        assert_eq!(
            p.warnings,
            [
                r#"service instance "b" has no valid port, skipped"#,
                "entry 2 has no valid port, skipped",
                "entry 3 has no address, skipped",
            ]
        );
    }

    #[test]
    fn index_first_answer_and_unchanged() {
        let mut i = IndexState::default();
        assert_eq!(i.next_request_index(), 0);
        assert!(i.observe(Some(10)));
        assert_eq!(i.next_request_index(), 10);
        assert!(!i.observe(Some(10)));
        assert_eq!(i.next_request_index(), 10);
        assert!(!i.observe(Some(10)));
    }

    #[test]
    fn index_moved_up() {
        let mut i = IndexState::default();
        i.observe(Some(10));
        assert!(i.observe(Some(12)));
        assert_eq!(i.next_request_index(), 12);
        assert!(!i.observe(Some(12)));
    }

    #[test]
    fn index_went_backwards_resets_then_full_read() {
        let mut i = IndexState::default();
        i.observe(Some(100));
        // Processed, and the next request is a full read without index.
        assert!(i.observe(Some(7)));
        assert_eq!(i.next_request_index(), 0);
        // The full read's answer sets the index to block on.
        assert!(i.observe(Some(7)));
        assert_eq!(i.next_request_index(), 7);
        assert!(!i.observe(Some(7)));
        assert!(i.observe(Some(8)));
        assert_eq!(i.next_request_index(), 8);
    }

    #[test]
    fn index_zero_blocks_on_one() {
        let mut i = IndexState::default();
        assert!(i.observe(Some(0)));
        assert_eq!(i.next_request_index(), 1);
        assert!(!i.observe(Some(0)));
        assert_eq!(i.next_request_index(), 1);
        assert!(i.observe(Some(1)));
        assert_eq!(i.next_request_index(), 1);
        // Backwards to 0: reset, full read, then block on 1.
        i.observe(Some(5));
        assert!(i.observe(Some(0)));
        assert_eq!(i.next_request_index(), 0);
        assert!(i.observe(Some(0)));
        assert_eq!(i.next_request_index(), 1);
    }

    #[test]
    fn index_missing_header() {
        let mut i = IndexState::default();
        assert!(i.observe(None));
        assert_eq!(i.next_request_index(), 0);
        i.observe(Some(9));
        assert!(i.observe(None));
        assert_eq!(i.next_request_index(), 0);
        assert!(i.observe(Some(9)));
        assert_eq!(i.next_request_index(), 9);
    }

    #[test]
    fn index_reset_after_error() {
        let mut i = IndexState::default();
        i.observe(Some(42));
        i.reset();
        assert_eq!(i.next_request_index(), 0);
        // The answer after an error is processed even with the same index.
        assert!(i.observe(Some(42)));
        assert_eq!(i.next_request_index(), 42);
        let mut fresh = IndexState::default();
        fresh.reset();
        assert_eq!(fresh.next_request_index(), 0);
    }

    #[test]
    fn targets_kv() {
        assert_eq!(
            poll_target("/v1/kv/upstreams/test/", Kind::Kv, 0, 60),
            "/v1/kv/upstreams/test/?recurse"
        );
        assert_eq!(
            poll_target("/v1/kv/upstreams/test/", Kind::Kv, 7, 60),
            "/v1/kv/upstreams/test/?recurse&index=7&wait=60s"
        );
        assert_eq!(
            poll_target("/v1/kv/up/?dc=dc1", Kind::Kv, 0, 60),
            "/v1/kv/up/?dc=dc1&recurse"
        );
        assert_eq!(
            poll_target("/v1/kv/up/?dc=dc1", Kind::Kv, 7, 300),
            "/v1/kv/up/?dc=dc1&recurse&index=7&wait=300s"
        );
        // Already recursive: not repeated; a dangling separator is reused.
        assert_eq!(
            poll_target("/v1/kv/up/?recurse", Kind::Kv, 3, 5),
            "/v1/kv/up/?recurse&index=3&wait=5s"
        );
        assert_eq!(
            poll_target("/v1/kv/up/?", Kind::Kv, 0, 5),
            "/v1/kv/up/?recurse"
        );
        assert_eq!(
            poll_target("/v1/kv/up/?stale&", Kind::Kv, 0, 5),
            "/v1/kv/up/?stale&recurse"
        );
    }

    #[test]
    fn targets_catalog_and_health() {
        assert_eq!(
            poll_target("/v1/catalog/service/web", Kind::Catalog, 0, 5),
            "/v1/catalog/service/web"
        );
        assert_eq!(
            poll_target("/v1/catalog/service/web", Kind::Catalog, 9, 5),
            "/v1/catalog/service/web?index=9&wait=5s"
        );
        assert_eq!(
            poll_target("/v1/catalog/service/web?dc=dc1", Kind::Catalog, 9, 5),
            "/v1/catalog/service/web?dc=dc1&index=9&wait=5s"
        );
        assert_eq!(
            poll_target("/v1/health/service/web", Kind::Health, 0, 60),
            "/v1/health/service/web"
        );
        assert_eq!(
            poll_target("/v1/health/service/web", Kind::Health, 1, 60),
            "/v1/health/service/web?index=1&wait=60s"
        );
        assert_eq!(
            poll_target("/v1/health/service/web?passing", Kind::Health, 0, 60),
            "/v1/health/service/web?passing"
        );
        assert_eq!(
            poll_target("/v1/health/service/web?passing", Kind::Health, 9, 60),
            "/v1/health/service/web?passing&index=9&wait=60s"
        );
    }
}
