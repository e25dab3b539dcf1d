//! etcd v3 over its JSON gateway (`upsync_type=etcdv3`): a range read of the
//! prefix, then a streaming watch from the read's revision + 1.
//!
//! Every bytes field is base64 and every int64 a JSON string; fields at their
//! default value are left out.

use std::collections::BTreeMap;

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use serde_json::{json, Value};

use super::{apply_attributes, key_address, parse_json, quote};
use super::{ParseError, Parsed};
use crate::server::Server;

/// The keys under a prefix and their values, ordered by key.
pub type Keys = BTreeMap<String, Vec<u8>>;

/// The end of the range of keys starting with `prefix`: its last byte + 1
/// (trailing 0xff bytes dropped); "\0" (every key) when there is none.
fn range_end(prefix: &[u8]) -> Vec<u8> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return end;
        }
    }
    vec![0]
}

/// `POST /v3/kv/range` body for every key under `prefix`.
pub fn range_request(prefix: &str) -> String {
    json!({
        "key": B64.encode(prefix),
        "range_end": B64.encode(range_end(prefix.as_bytes())),
    })
    .to_string()
}

/// `POST /v3/watch` body: the prefix from `start_revision`, with progress
/// notifications so that an idle watch shows it is alive.
pub fn watch_request(prefix: &str, start_revision: u64) -> String {
    json!({"create_request": {
        "key": B64.encode(prefix),
        "range_end": B64.encode(range_end(prefix.as_bytes())),
        "start_revision": start_revision.to_string(),
        "progress_notify": true,
    }})
    .to_string()
}

/// `POST /v3/auth/authenticate` body.
pub fn auth_request(name: &str, password: &str) -> String {
    json!({"name": name, "password": password}).to_string()
}

/// The token of an authenticate answer.
pub fn parse_auth(body: &[u8]) -> Result<String, ParseError> {
    let root = parse_json(body)?;
    if let Some(e) = gateway_error(&root) {
        return Err(e);
    }
    root.get("token")
        .and_then(Value::as_str)
        .filter(|t| !t.is_empty())
        .map(String::from)
        .ok_or_else(|| ParseError("authenticate answer without a token".into()))
}

/// Whether etcd refused a request for want of a (valid) token.
pub fn needs_auth(status: u16, body: &[u8]) -> bool {
    let text = String::from_utf8_lossy(body);
    status == 401 || text.contains("invalid auth token") || text.contains("user name is empty")
}

/// An int64 as the gateway writes it (a string), or a plain number.
fn int(v: Option<&Value>) -> Option<u64> {
    match v? {
        Value::String(s) => s.parse().ok(),
        Value::Number(n) => n.as_u64(),
        _ => None,
    }
}

fn bytes(v: Option<&Value>) -> Result<Vec<u8>, ParseError> {
    match v {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::String(s)) => B64
            .decode(s)
            .map_err(|_| ParseError("a bytes field is not base64".into())),
        Some(_) => Err(ParseError("a bytes field is not a string".into())),
    }
}

fn text(b: Vec<u8>) -> Result<String, ParseError> {
    String::from_utf8(b).map_err(|_| ParseError("a key is not UTF-8".into()))
}

/// A range answer: the revision it was read at, and the keys.
pub fn parse_range(body: &[u8]) -> Result<(u64, Keys), ParseError> {
    let root = parse_json(body)?;
    if let Some(e) = gateway_error(&root) {
        return Err(e);
    }
    let revision = int(root.get("header").and_then(|h| h.get("revision")))
        .ok_or_else(|| ParseError("range answer without a header revision".into()))?;
    let mut keys = Keys::new();
    if let Some(kvs) = root.get("kvs") {
        let kvs = kvs
            .as_array()
            .ok_or_else(|| ParseError("\"kvs\" is not an array".into()))?;
        for kv in kvs {
            keys.insert(text(bytes(kv.get("key"))?)?, bytes(kv.get("value"))?);
        }
    }
    Ok((revision, keys))
}

/// `{"error": "...", "code": N}` from the gateway.
fn gateway_error(root: &Value) -> Option<ParseError> {
    let message = root.get("error").or_else(|| root.get("message"))?;
    Some(ParseError(format!(
        "etcd error: {}",
        quote(message.as_str().unwrap_or("unknown"))
    )))
}

/// One change a watch reports.
#[derive(Debug, PartialEq, Eq)]
pub enum Event {
    Put(String, Vec<u8>),
    Delete(String),
}

/// One message of the watch stream.
#[derive(Debug, PartialEq, Eq)]
pub enum WatchMessage {
    Created,
    /// Events (possibly none: a progress notification) up to `revision`.
    Events {
        revision: u64,
        events: Vec<Event>,
    },
    /// The watch ended: compaction, cancellation or an error. Read again.
    Ended(String),
}

/// Parses one line of the watch stream: `{"result": {...}}` or an error.
pub fn parse_watch_line(line: &[u8]) -> Result<WatchMessage, ParseError> {
    let root = parse_json(line)?;
    if let Some(e) = root.get("error") {
        let text = e.as_str().map_or_else(|| e.to_string(), str::to_owned);
        return Ok(WatchMessage::Ended(format!(
            "watch error: {}",
            quote(&text)
        )));
    }
    let result = root
        .get("result")
        .ok_or_else(|| ParseError("a watch message without a result".into()))?;
    if result.get("canceled").and_then(Value::as_bool) == Some(true) {
        let why = match int(result.get("compact_revision")) {
            Some(c) if c > 0 => format!("compacted at revision {c}"),
            _ => match result.get("cancel_reason").and_then(Value::as_str) {
                Some(reason) => format!("canceled: {}", quote(reason)),
                None => "canceled: no reason given".to_owned(),
            },
        };
        return Ok(WatchMessage::Ended(why));
    }
    if result.get("created").and_then(Value::as_bool) == Some(true) {
        return Ok(WatchMessage::Created);
    }
    let revision = int(result.get("header").and_then(|h| h.get("revision")))
        .ok_or_else(|| ParseError("a watch message without a header revision".into()))?;
    let mut events = Vec::new();
    for ev in result
        .get("events")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or(&[])
    {
        let kv = ev
            .get("kv")
            .ok_or_else(|| ParseError("a watch event without a kv".into()))?;
        let key = text(bytes(kv.get("key"))?)?;
        events.push(match ev.get("type").and_then(Value::as_str) {
            Some("DELETE") => Event::Delete(key),
            _ => Event::Put(key, bytes(kv.get("value"))?),
        });
    }
    Ok(WatchMessage::Events { revision, events })
}

/// What one key under the prefix gives: a server (or none, for a folder
/// key) and the problems found in its name and value.
struct Entry {
    server: Option<Server>,
    warnings: Vec<String>,
}

/// The keys under a prefix, each parsed once, when it is read or changes: a
/// watch event on a list of 10,000 keys parses one key, not 10,000.
pub struct KeyList {
    folder: String,
    entries: BTreeMap<String, Entry>,
}

impl KeyList {
    pub fn new(prefix: &str) -> Self {
        KeyList {
            folder: super::folder(prefix),
            entries: BTreeMap::new(),
        }
    }

    /// Every key, as a range read gives them.
    pub fn replace(&mut self, keys: Keys) {
        self.entries.clear();
        for (key, value) in keys {
            self.put(key, &value);
        }
    }

    pub fn put(&mut self, key: String, value: &[u8]) {
        let mut warnings = Vec::new();
        let server = match key_address(&self.folder, &key) {
            Ok(Some(name)) => {
                let mut server = Server::registry_default(name);
                apply_attributes(&mut server, &key, value, &mut warnings);
                Some(server)
            }
            Ok(None) => None,
            Err(e) => {
                warnings.push(e.0);
                None
            }
        };
        self.entries.insert(key, Entry { server, warnings });
    }

    pub fn remove(&mut self, key: &str) {
        self.entries.remove(key);
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The servers the keys describe, in key order.
    pub fn servers(&self) -> Parsed {
        let mut out = Parsed::default();
        for (key, entry) in &self.entries {
            out.warnings.extend(entry.warnings.iter().cloned());
            if let Some(server) = &entry.server {
                out.push_unique(server.clone(), || format!("key {}", quote(key)));
            }
        }
        out
    }
}

/// The servers the keys under `prefix` describe, in key order.
pub fn servers(prefix: &str, keys: &Keys) -> Parsed {
    let mut list = KeyList::new(prefix);
    list.replace(keys.clone());
    list.servers()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b64(s: &str) -> String {
        B64.encode(s)
    }

    #[test]
    fn requests() {
        assert_eq!(range_end(b"/up/"), b"/up0");
        assert_eq!(range_end(b"a\xff"), b"b");
        assert_eq!(range_end(b"\xff\xff"), b"\0");
        let r: Value = serde_json::from_str(&range_request("/up/")).unwrap();
        assert_eq!(r["key"], b64("/up/"));
        assert_eq!(r["range_end"], b64("/up0"));
        let w: Value = serde_json::from_str(&watch_request("/up/", 8)).unwrap();
        assert_eq!(w["create_request"]["start_revision"], "8");
        assert_eq!(w["create_request"]["progress_notify"], true);
    }

    #[test]
    fn range_answers() {
        let body = format!(
            r#"{{"header":{{"revision":"12"}},"kvs":[
                {{"key":"{}","value":"{}","mod_revision":"5"}},
                {{"key":"{}"}}],"count":"2"}}"#,
            b64("/up/127.0.0.1:8080"),
            b64(r#"{"weight":3}"#),
            b64("/up/127.0.0.1:8081")
        );
        let (rev, keys) = parse_range(body.as_bytes()).unwrap();
        assert_eq!(rev, 12);
        assert_eq!(keys.len(), 2);
        let p = servers("/up/", &keys);
        assert_eq!(p.servers.len(), 2);
        assert_eq!(p.servers[0].weight, 3);
        let (rev, keys) = parse_range(br#"{"header":{"revision":"3"}}"#).unwrap();
        assert_eq!((rev, keys.len()), (3, 0));
        assert!(parse_range(b"{}").is_err());
        assert!(parse_range(br#"{"error":"etcdserver: user name is empty","code":3}"#).is_err());
        assert!(parse_range(b"nope").is_err());
    }

    #[test]
    fn watch_messages() {
        assert_eq!(
            parse_watch_line(br#"{"result":{"header":{"revision":"5"},"created":true}}"#).unwrap(),
            WatchMessage::Created
        );
        let line = format!(
            r#"{{"result":{{"header":{{"revision":"9"}},"events":[
                {{"kv":{{"key":"{}","value":"{}"}}}},
                {{"type":"DELETE","kv":{{"key":"{}"}}}}]}}}}"#,
            b64("/up/a:1"),
            b64("{}"),
            b64("/up/b:2")
        );
        assert_eq!(
            parse_watch_line(line.as_bytes()).unwrap(),
            WatchMessage::Events {
                revision: 9,
                events: vec![
                    Event::Put("/up/a:1".into(), b"{}".to_vec()),
                    Event::Delete("/up/b:2".into())
                ]
            }
        );
        assert_eq!(
            parse_watch_line(br#"{"result":{"header":{"revision":"10"}}}"#).unwrap(),
            WatchMessage::Events {
                revision: 10,
                events: vec![]
            }
        );
        assert_eq!(
            parse_watch_line(br#"{"result":{"header":{},"canceled":true,"compact_revision":"7"}}"#)
                .unwrap(),
            WatchMessage::Ended("compacted at revision 7".into())
        );
        assert!(matches!(
            parse_watch_line(br#"{"error":{"grpc_code":14}}"#).unwrap(),
            WatchMessage::Ended(_)
        ));
        assert!(parse_watch_line(b"garbage").is_err());
    }

    #[test]
    fn registry_text_in_watch_endings_is_quoted() {
        let forged = "x\n2026/01/01 00:00:00 [emerg] 1#1: forged";
        let line = json!({"result": {"header": {}, "canceled": true, "cancel_reason": forged}});
        let WatchMessage::Ended(why) = parse_watch_line(line.to_string().as_bytes()).unwrap()
        else {
            panic!("not an end");
        };
        assert!(!why.contains('\n'), "{why}");
        assert_eq!(why, format!("canceled: {}", quote(forged)));
        let line = json!({"error": {"message": forged, "grpc_code": 2}});
        let WatchMessage::Ended(why) = parse_watch_line(line.to_string().as_bytes()).unwrap()
        else {
            panic!("not an end");
        };
        assert!(
            !why.contains('\n') && why.starts_with("watch error: "),
            "{why}"
        );
        let line = json!({"error": "e".repeat(10_000)});
        let WatchMessage::Ended(why) = parse_watch_line(line.to_string().as_bytes()).unwrap()
        else {
            panic!("not an end");
        };
        assert!(why.len() < 200, "{}", why.len());
    }

    #[test]
    fn auth() {
        assert_eq!(
            parse_auth(br#"{"header":{},"token":"abc.1"}"#).unwrap(),
            "abc.1"
        );
        let failed = br#"{"error":"etcdserver: authentication failed, invalid user ID or password","code":3}"#;
        assert!(parse_auth(failed)
            .unwrap_err()
            .0
            .contains("authentication failed"));
        assert!(needs_auth(401, b""));
        assert!(needs_auth(
            400,
            br#"{"error":"etcdserver: user name is empty"}"#
        ));
        assert!(!needs_auth(400, failed));
        let r: Value = serde_json::from_str(&auth_request("u", "p")).unwrap();
        assert_eq!(
            (r["name"].as_str(), r["password"].as_str()),
            (Some("u"), Some("p"))
        );
    }

    #[test]
    fn servers_skip_what_is_not_an_address() {
        let mut keys = Keys::new();
        keys.insert("/up/".into(), vec![]);
        keys.insert("/up/host_1.example:80".into(), vec![]);
        keys.insert("/up/Host.Example:80".into(), vec![]);
        keys.insert("/up/10.0.0.1:80".into(), b"not json".to_vec());
        let p = servers("/up", &keys);
        let names: Vec<_> = p.servers.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(names, ["10.0.0.1:80", "host.example:80"]);
        assert_eq!(p.warnings.len(), 2);
    }

    #[test]
    fn a_key_list_follows_puts_and_deletes() {
        let mut list = KeyList::new("/up/");
        let mut keys = Keys::new();
        keys.insert("/up/10.0.0.1:80".into(), br#"{"weight":2}"#.to_vec());
        keys.insert("/up/10.0.0.2:80".into(), b"not json".to_vec());
        list.replace(keys);
        let p = list.servers();
        assert_eq!((p.servers.len(), p.warnings.len()), (2, 1));
        list.put("/up/10.0.0.2:80".into(), br#"{"weight":5}"#);
        list.put("/up/10.0.0.3:80".into(), b"");
        list.remove("/up/10.0.0.1:80");
        let p = list.servers();
        assert!(p.warnings.is_empty());
        let names: Vec<_> = p
            .servers
            .iter()
            .map(|s| (s.name.as_str(), s.weight))
            .collect();
        assert_eq!(names, [("10.0.0.2:80", 5), ("10.0.0.3:80", 1)]);
        list.replace(Keys::new());
        assert!(list.is_empty());
    }
}
