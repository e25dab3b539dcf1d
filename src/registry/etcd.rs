//! etcd v2 answers (`upsync_type=etcd`): the recursive read of the upstream's
//! directory, error bodies and watch events.

use serde_json::{Map, Value};

use super::{apply_attributes, folder, parse_address, parse_json, quote};
use super::{ParseError, Parsed};
use crate::server::Server;

/// The body as a JSON object, or why it cannot be used.
fn object(body: &[u8]) -> Result<Map<String, Value>, ParseError> {
    match parse_json(body)? {
        Value::Object(obj) => Ok(obj),
        _ => Err(ParseError("expected a JSON object".into())),
    }
}

/// `Some((errorCode, index))` when `obj` is an etcd error body.
fn error_of(obj: &Map<String, Value>) -> Option<(u64, u64)> {
    let code = obj.get("errorCode")?.as_u64()?;
    let index = obj.get("index").and_then(Value::as_u64).unwrap_or(0);
    Some((code, index))
}

/// The error body as a [`ParseError`], when it is one.
fn error_message(obj: &Map<String, Value>) -> Option<ParseError> {
    let code = match obj.get("errorCode")? {
        Value::Number(n) => n.to_string(),
        other => quote(&other.to_string()),
    };
    let message = obj.get("message").and_then(Value::as_str).unwrap_or("");
    let mut text = format!("etcd error {code}: {}", quote(message));
    if let Some(cause) = obj.get("cause").and_then(Value::as_str) {
        text.push_str(&format!(" (cause {})", quote(cause)));
    }
    Some(ParseError(text))
}

/// A JSON value for a message: strings quoted, anything else as JSON.
fn show(v: &Value) -> String {
    match v {
        Value::String(s) => quote(s),
        other => quote(&other.to_string()),
    }
}

fn is_dir(node: &Value) -> bool {
    node.get("dir").and_then(Value::as_bool).unwrap_or(false)
}

/// `GET /v2/keys/<dir>?recursive=true`: `{"action":"get","node":{"key":..,
/// "dir":true,"nodes":[{"key":"<dir>/<ip:port>","value":"<json>"},..]}}`.
///
/// The server is the last segment of each child key, its value the raw JSON
/// attributes. Nested directories are skipped with a warning; a directory
/// without `nodes` is empty. Servers are sorted by key, since etcd's
/// directory order is not stable. Error bodies, other actions and a node
/// that is not a directory are errors.
pub fn parse_v2_dir(body: &[u8]) -> Result<Parsed, ParseError> {
    let root = object(body)?;
    if let Some(e) = error_message(&root) {
        return Err(e);
    }
    match root.get("action") {
        None => {}
        Some(Value::String(a)) if a == "get" => {}
        Some(other) => {
            return Err(ParseError(format!(
                "expected a \"get\" answer, got action {}",
                show(other)
            )))
        }
    }
    let Some(dir) = root.get("node").filter(|n| n.is_object()) else {
        return Err(ParseError("the answer has no node".into()));
    };
    let dir_key = dir.get("key").and_then(Value::as_str).unwrap_or("");
    if !is_dir(dir) {
        return Err(ParseError(format!(
            "key {} is not a directory",
            quote(dir_key)
        )));
    }
    let children = match dir.get("nodes") {
        None | Some(Value::Null) => return Ok(Parsed::default()),
        Some(Value::Array(children)) => children,
        Some(_) => return Err(ParseError("\"nodes\" is not an array".into())),
    };
    // The root directory's node has no key.
    let under = folder(if dir_key.is_empty() { "/" } else { dir_key });

    let mut out = Parsed::default();
    let mut keyed = Vec::with_capacity(children.len());
    for (i, child) in children.iter().enumerate() {
        match child.get("key").and_then(Value::as_str) {
            Some(key) => keyed.push((key, child)),
            None => out.warnings.push(format!(
                "entry {i} of directory {} has no key, skipped",
                quote(dir_key)
            )),
        }
    }
    keyed.sort_by(|a, b| a.0.cmp(b.0));

    for (key, child) in keyed {
        if is_dir(child) {
            out.warnings
                .push(format!("key {} is a sub-directory, skipped", quote(key)));
            continue;
        }
        let Some(name) = key.strip_prefix(under.as_str()) else {
            out.warnings.push(format!(
                "key {} is not under the directory {}, skipped",
                quote(key),
                quote(dir_key)
            ));
            continue;
        };
        if name.contains('/') {
            out.warnings
                .push(format!("key {} is in a sub-directory, skipped", quote(key)));
            continue;
        }
        let mut server = match parse_address(name) {
            Ok(name) => Server::registry_default(name),
            Err(e) => {
                out.warnings
                    .push(format!("key {}: {e}, skipped", quote(key)));
                continue;
            }
        };
        match child.get("value") {
            None | Some(Value::Null) => {}
            Some(Value::String(value)) => {
                apply_attributes(&mut server, key, value.as_bytes(), &mut out.warnings)
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

/// An etcd v2 error body `{"errorCode":401,"message":..,"index":N}`:
/// `Some((errorCode, index))` (index 0 when absent), `None` for anything
/// else.
pub fn v2_error(body: &[u8]) -> Option<(u64, u64)> {
    match serde_json::from_slice::<Value>(body).ok()? {
        Value::Object(obj) => error_of(&obj),
        _ => None,
    }
}

/// A watch event `{"action":"set","node":{"key":..,"modifiedIndex":N,..},
/// "prevNode":..}`: its `node.modifiedIndex` (the next `waitIndex` is that
/// plus one). Anything else, an error body included, is an error.
pub fn v2_event_index(body: &[u8]) -> Result<u64, ParseError> {
    let root = object(body)?;
    if let Some(e) = error_message(&root) {
        return Err(e);
    }
    match root.get("action").and_then(Value::as_str) {
        None => return Err(ParseError("not a watch event: no action".into())),
        Some("get") => return Err(ParseError("not a watch event: a \"get\" answer".into())),
        Some(_) => {}
    }
    root.get("node")
        .and_then(|n| n.get("modifiedIndex"))
        .and_then(Value::as_u64)
        .ok_or_else(|| ParseError("not a watch event: no node.modifiedIndex".into()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::server::Server;
    use serde_json::json;

    fn dir(nodes: Value) -> Vec<u8> {
        serde_json::to_vec(&json!({
            "action": "get",
            "node": {"key": "/upstreams/test", "dir": true, "nodes": nodes,
                     "modifiedIndex": 3, "createdIndex": 3}
        }))
        .unwrap()
    }

    fn leaf(key: &str, value: &str) -> Value {
        json!({"key": key, "value": value, "modifiedIndex": 4, "createdIndex": 4})
    }

    fn names(p: &Parsed) -> Vec<&str> {
        p.servers.iter().map(|s| s.name.as_str()).collect()
    }

    fn fields(s: &Server) -> (i64, u64, i64, bool, bool) {
        (s.weight, s.max_fails, s.fail_timeout, s.down, s.backup)
    }

    #[test]
    fn dir_nodes_are_sorted_by_key() {
        let body = dir(json!([
            leaf("/upstreams/test/127.0.0.1:8003", r#"{"weight":3}"#),
            leaf(
                "/upstreams/test/127.0.0.1:8001",
                r#"{"weight":1,"max_fails":"4","down":1}"#
            ),
            leaf("/upstreams/test/[::1]:8000", ""),
            leaf(
                "/upstreams/test/127.0.0.1:8002",
                r#"{"fail_timeout":"30","backup":true}"#
            ),
        ]));
        let p = parse_v2_dir(&body).unwrap();
        assert!(p.warnings.is_empty(), "{:?}", p.warnings);
        assert_eq!(
            names(&p),
            [
                "127.0.0.1:8001",
                "127.0.0.1:8002",
                "127.0.0.1:8003",
                "[::1]:8000"
            ]
        );
        assert_eq!(fields(&p.servers[0]), (1, 4, 10, true, false));
        assert_eq!(fields(&p.servers[1]), (1, 2, 30, false, true));
        assert_eq!(fields(&p.servers[2]), (3, 2, 10, false, false));
        assert_eq!(p.servers[3], Server::registry_default("[::1]:8000".into()));
        // The order of the answer does not matter.
        let reversed = dir(json!([
            leaf(
                "/upstreams/test/127.0.0.1:8002",
                r#"{"fail_timeout":"30","backup":true}"#
            ),
            leaf("/upstreams/test/[::1]:8000", ""),
            leaf(
                "/upstreams/test/127.0.0.1:8001",
                r#"{"weight":1,"max_fails":"4","down":1}"#
            ),
            leaf("/upstreams/test/127.0.0.1:8003", r#"{"weight":3}"#),
        ]));
        assert_eq!(parse_v2_dir(&reversed).unwrap(), p);
    }

    #[test]
    fn dir_values_missing_bad_or_invalid() {
        let body = dir(json!([
            {"key": "/upstreams/test/10.0.0.1:80", "modifiedIndex": 4},
            leaf("/upstreams/test/10.0.0.2:80", "not json"),
            leaf("/upstreams/test/10.0.0.3:80", r#"{"weight":-1,"max_fails":1}"#),
            {"key": "/upstreams/test/10.0.0.4:80", "value": 12},
        ]));
        let p = parse_v2_dir(&body).unwrap();
        assert_eq!(
            names(&p),
            ["10.0.0.1:80", "10.0.0.2:80", "10.0.0.3:80", "10.0.0.4:80"]
        );
        assert_eq!(p.servers[0], Server::registry_default("10.0.0.1:80".into()));
        assert_eq!(p.servers[1], Server::registry_default("10.0.0.2:80".into()));
        assert_eq!(fields(&p.servers[2]), (1, 1, 10, false, false));
        assert_eq!(
            p.warnings,
            [
                r#"key "/upstreams/test/10.0.0.2:80": value is not valid JSON, using the defaults"#,
                r#"key "/upstreams/test/10.0.0.3:80": invalid weight -1, using the default"#,
                r#"key "/upstreams/test/10.0.0.4:80": value is not a string, using the defaults"#,
            ]
        );
    }

    #[test]
    fn dir_without_nodes_is_empty() {
        let body = br#"{"action":"get","node":{"key":"/upstreams/test","dir":true,"modifiedIndex":3,"createdIndex":3}}"#;
        assert_eq!(parse_v2_dir(body).unwrap(), Parsed::default());
        assert_eq!(parse_v2_dir(&dir(json!([]))).unwrap(), Parsed::default());
        assert_eq!(parse_v2_dir(&dir(Value::Null)).unwrap(), Parsed::default());
    }

    #[test]
    fn nested_dirs_and_bad_keys_are_skipped_with_a_warning() {
        let body = dir(json!([
            {"key": "/upstreams/test/sub", "dir": true, "nodes": [
                leaf("/upstreams/test/sub/10.0.0.9:80", "")
            ]},
            leaf("/upstreams/test/10.0.0.1:80", ""),
            leaf("/upstreams/test/web_1.local:80", ""),
            leaf("/upstreams/test/::1:80", ""),
            leaf("/upstreams/test/10.0.0.2", ""),
            leaf("/upstreams/other/10.0.0.3:80", ""),
            leaf("/upstreams/test/[0::1]:80", ""),
            leaf("/upstreams/test/[::1]:80", r#"{"weight":5}"#),
            {"value": "{}"},
        ]));
        let p = parse_v2_dir(&body).unwrap();
        assert_eq!(names(&p), ["10.0.0.1:80", "[::1]:80"]);
        // Sorted: "[0::1]" < "[::1]", so the first of the duplicates is [0::1].
        assert_eq!(p.servers[1].weight, 1);
        assert_eq!(
            p.warnings,
            [
                r#"entry 8 of directory "/upstreams/test" has no key, skipped"#,
                r#"key "/upstreams/other/10.0.0.3:80" is not under the directory "/upstreams/test", skipped"#,
                r#"key "/upstreams/test/10.0.0.2": "10.0.0.2" has no port, skipped"#,
                r#"key "/upstreams/test/::1:80": "::1:80": an IPv6 address needs brackets, as in [::1]:80, skipped"#,
                r#"key "/upstreams/test/[::1]:80": server [::1]:80 is listed twice, the first one is used"#,
                r#"key "/upstreams/test/sub" is a sub-directory, skipped"#,
                r#"key "/upstreams/test/web_1.local:80": "web_1.local:80" is neither an IP address nor a host name, skipped"#,
            ]
        );
    }

    #[test]
    fn dir_root_directory() {
        let body = br#"{"action":"get","node":{"key":"/","dir":true,"nodes":[{"key":"/10.0.0.1:80","value":""}]}}"#;
        let p = parse_v2_dir(body).unwrap();
        assert_eq!(names(&p), ["10.0.0.1:80"]);
        assert!(p.warnings.is_empty());
    }

    #[test]
    fn unusable_dir_answers() {
        let err = |b: &[u8]| parse_v2_dir(b).unwrap_err().0;
        assert!(err(b"<html>").starts_with("invalid JSON"));
        assert!(err(b"").starts_with("invalid JSON"));
        assert_eq!(err(b"[]"), "expected a JSON object");
        assert_eq!(
            err(br#"{"errorCode":100,"message":"Key not found","cause":"/upstreams/test","index":8}"#),
            r#"etcd error 100: "Key not found" (cause "/upstreams/test")"#
        );
        assert!(err(br#"{"errorCode":"x"}"#).starts_with("etcd error"));
        assert_eq!(
            err(br#"{"action":"set","node":{"key":"/upstreams/test/1.1.1.1:1","value":""}}"#),
            r#"expected a "get" answer, got action "set""#
        );
        assert_eq!(err(br#"{"action":"get"}"#), "the answer has no node");
        assert_eq!(
            err(br#"{"action":"get","node":5}"#),
            "the answer has no node"
        );
        assert_eq!(
            err(br#"{"action":"get","node":{"key":"/upstreams/test","value":"{}"}}"#),
            r#"key "/upstreams/test" is not a directory"#
        );
        assert_eq!(
            err(br#"{"action":"get","node":{"key":"/u","dir":true,"nodes":{}}}"#),
            r#""nodes" is not an array"#
        );
    }

    #[test]
    fn error_bodies() {
        assert_eq!(
            v2_error(
                br#"{"errorCode":401,"message":"The event in requested index is outdated and cleared","cause":"the requested history has been cleared [1008/4]","index":2007}"#
            ),
            Some((401, 2007))
        );
        assert_eq!(
            v2_error(br#"{"errorCode":100,"message":"Key not found"}"#),
            Some((100, 0))
        );
        assert_eq!(v2_error(br#"{"action":"get","node":{}}"#), None);
        assert_eq!(v2_error(br#"{"errorCode":"401"}"#), None);
        assert_eq!(v2_error(b"not json"), None);
        assert_eq!(v2_error(b"[1]"), None);
        assert_eq!(v2_error(b""), None);
    }

    #[test]
    fn event_index() {
        let set = br#"{"action":"set","node":{"key":"/upstreams/test/127.0.0.1:8001","value":"{\"weight\":2}","modifiedIndex":21,"createdIndex":21},"prevNode":{"key":"/upstreams/test/127.0.0.1:8001","value":"","modifiedIndex":20,"createdIndex":20}}"#;
        assert_eq!(v2_event_index(set), Ok(21));
        let delete = br#"{"action":"delete","node":{"key":"/upstreams/test/127.0.0.1:8001","modifiedIndex":22,"createdIndex":21},"prevNode":{"key":"/upstreams/test/127.0.0.1:8001","value":"","modifiedIndex":21,"createdIndex":21}}"#;
        assert_eq!(v2_event_index(delete), Ok(22));
        let expire = br#"{"action":"expire","node":{"key":"/u/1.1.1.1:1","modifiedIndex":30,"createdIndex":29}}"#;
        assert_eq!(v2_event_index(expire), Ok(30));
    }

    #[test]
    fn not_event_bodies() {
        let err = |b: &[u8]| v2_event_index(b).unwrap_err().0;
        assert!(err(b"").starts_with("invalid JSON"));
        assert!(err(b"{").starts_with("invalid JSON"));
        assert_eq!(err(b"7"), "expected a JSON object");
        assert!(
            err(br#"{"errorCode":401,"message":"cleared","index":5}"#).starts_with("etcd error")
        );
        assert!(err(br#"{"node":{"modifiedIndex":3}}"#).contains("no action"));
        assert!(
            err(br#"{"action":"get","node":{"key":"/u","dir":true,"modifiedIndex":3}}"#)
                .contains("\"get\"")
        );
        assert!(err(br#"{"action":"set"}"#).contains("modifiedIndex"));
        assert!(err(br#"{"action":"set","node":{"modifiedIndex":-1}}"#).contains("modifiedIndex"));
        assert!(err(br#"{"action":"set","node":{"modifiedIndex":"3"}}"#).contains("modifiedIndex"));
    }
}
