//! What registries answer, turned into server lists.
//!
//! Shared pieces live here: the defaults of a registry server, the address
//! check, the JSON attributes of a key (Consul KV, etcd) and the tags of a
//! catalog or health entry. The answers themselves are parsed in [`consul`]
//! and [`etcd`]. Nothing here panics on any input: a registry answer is
//! untrusted data.

pub mod consul;
pub mod etcd;
pub mod etcdv3;
pub mod session;

use std::collections::HashSet;
use std::fmt;
use std::net::{Ipv4Addr, Ipv6Addr};

use serde_json::Value;

use crate::conf::parse_digits;
use crate::server::{Server, MAX_FAILS, MAX_FAIL_TIMEOUT, MAX_WEIGHT};

/// The servers a registry answer describes, plus the problems found in it
/// that did not stop the parse (each a short lowercase message that names the
/// key, to be logged by the caller at error level).
#[derive(Debug, Default)]
pub struct Parsed {
    pub servers: Vec<Server>,
    pub warnings: Vec<String>,
    /// The names in `servers`, so that the duplicate check stays linear.
    names: HashSet<String>,
}

impl PartialEq for Parsed {
    fn eq(&self, other: &Self) -> bool {
        self.servers == other.servers && self.warnings == other.warnings
    }
}

impl Parsed {
    /// Adds `server` unless a server of the same address is already listed:
    /// the first one wins, the later one is reported.
    /// `origin` says where the server came from, for the warning.
    pub(crate) fn push_unique(&mut self, server: Server, origin: impl FnOnce() -> String) {
        if self.names.contains(&server.name) {
            self.warnings.push(format!(
                "{}: server {} is listed twice, the first one is used",
                origin(),
                server.name
            ));
        } else {
            self.names.insert(server.name.clone());
            self.servers.push(server);
        }
    }
}

/// Problems of one answer logged, one per line; the rest are counted.
pub const WARNINGS_SHOWN: usize = 5;

/// The lines to log for the problems of one answer: the first few, then
/// one line that counts the others (10,000 bad keys must not make 10,000
/// log lines).
pub fn summary(warnings: &[String]) -> Vec<String> {
    let mut lines: Vec<String> = warnings.iter().take(WARNINGS_SHOWN).cloned().collect();
    if warnings.len() > WARNINGS_SHOWN {
        lines.push(format!(
            "{} more problems in the registry's answer, not shown",
            warnings.len() - WARNINGS_SHOWN
        ));
    }
    lines
}

/// A registry answer that cannot be used at all (the caller keeps its last
/// list and logs this).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError(pub String);

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ParseError {}

/// Parses a whole answer body as JSON.
pub(crate) fn parse_json(body: &[u8]) -> Result<Value, ParseError> {
    serde_json::from_slice(body).map_err(|e| ParseError(format!("invalid JSON: {e}")))
}

/// Longest piece of registry-provided text quoted in a message.
const QUOTE_MAX: usize = 128;

/// `s` quoted for a log line: escaped (no control characters, no bare
/// quotes) and cut after [`QUOTE_MAX`] characters.
pub(crate) fn quote(s: &str) -> String {
    match s.char_indices().nth(QUOTE_MAX) {
        Some((cut, _)) => format!("{:?}...", s.get(..cut).unwrap_or_default()),
        None => format!("{s:?}"),
    }
}

/// Longest piece of a registry's error body shown in a message.
const EXCERPT_MAX: usize = 200;

/// The start of a registry's error body for a message: printable (control
/// characters become spaces), cut, and without the credentials of the
/// request it answers. Proxies echo requests in error pages: a body that
/// shows a credential header is not shown at all, and any secret left in
/// the rest is masked.
pub fn excerpt(body: &[u8], secrets: &[String]) -> String {
    let text = String::from_utf8_lossy(body);
    let lower = text.to_ascii_lowercase();
    let echoes = ["authorization:", "x-consul-token:", "\"password\""]
        .iter()
        .any(|h| lower.contains(h));
    if !secrets.is_empty() && echoes {
        return "(the body is not shown: it echoes the request's credentials)".into();
    }
    let mut text = text.into_owned();
    for secret in secrets.iter().filter(|s| !s.is_empty()) {
        text = text.replace(secret.as_str(), "<secret>");
    }
    let cut = text
        .char_indices()
        .nth(EXCERPT_MAX)
        .map_or(text.len(), |(i, _)| i);
    text[..cut]
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}

/// The server a key under `folder` (a prefix ending in '/') names: `None`
/// for a folder (the prefix itself included), an error that names the key
/// for a key outside the folder, in a sub-folder or that is not an address.
pub(crate) fn key_address(folder: &str, key: &str) -> Result<Option<String>, ParseError> {
    if key.ends_with('/') || key.is_empty() || folder.strip_suffix('/') == Some(key) {
        return Ok(None);
    }
    let Some(rest) = key.strip_prefix(folder) else {
        return Err(ParseError(format!(
            "key {} is not under the prefix {}, skipped",
            quote(key),
            quote(folder)
        )));
    };
    if rest.contains('/') {
        return Err(ParseError(format!(
            "key {} is in a sub-folder of the prefix, skipped",
            quote(key)
        )));
    }
    parse_address(rest)
        .map(Some)
        .map_err(|e| ParseError(format!("key {}: {e}, skipped", quote(key))))
}

/// Validates and normalises a server taken from a key or a catalog entry:
/// `a.b.c.d:port`, `[ipv6]:port` or `host.name:port`, port 1..=65535. IPv6
/// is written in its canonical form inside brackets, IPv4 as a dotted quad,
/// a host name in lower case without a trailing dot (see [`host_name`]; the
/// upstream resolves it). A missing port, a bare IPv6 literal, port 0 and
/// ports above 65535 are refused.
pub fn parse_address(s: &str) -> Result<String, ParseError> {
    if s.chars().any(forbidden) {
        return Err(ParseError(format!(
            "{} holds characters an address cannot have (spaces, control \
             characters or one of ;{{}}#\"'\\$)",
            quote(s)
        )));
    }
    let (host, port) = if let Some(rest) = s.strip_prefix('[') {
        let Some((ip, after)) = rest.split_once(']') else {
            return Err(ParseError(format!("{} has no closing ']'", quote(s))));
        };
        let Some(port) = after.strip_prefix(':') else {
            return Err(ParseError(format!("{} has no port", quote(s))));
        };
        let ip: Ipv6Addr = ip
            .parse()
            .map_err(|_| ParseError(format!("{} is not a valid IPv6 address", quote(s))))?;
        (format!("[{ip}]"), port)
    } else {
        let Some((ip, port)) = s.rsplit_once(':') else {
            return Err(ParseError(format!("{} has no port", quote(s))));
        };
        if ip.contains(':') {
            return Err(ParseError(format!(
                "{}: an IPv6 address needs brackets, as in [::1]:80",
                quote(s)
            )));
        }
        match ip.parse::<Ipv4Addr>() {
            Ok(ip) => (ip.to_string(), port),
            Err(_) => match host_name(ip) {
                Some(name) => (name, port),
                None => {
                    return Err(ParseError(format!(
                        "{} is neither an IP address nor a host name",
                        quote(s)
                    )))
                }
            },
        }
    };
    match parse_port(port) {
        Some(p) => Ok(format!("{host}:{p}")),
        None => Err(ParseError(format!("{} has an invalid port", quote(s)))),
    }
}

/// `name` is an address in its canonical form, as every registry parser
/// writes server names.
pub fn is_address(name: &str) -> bool {
    name.parse::<std::net::SocketAddr>().is_ok()
        && parse_address(name).is_ok_and(|canonical| canonical == name)
}

/// `name` is `host.name:port` in its canonical form, as every registry
/// parser writes a server given by its host name.
pub fn is_host_name(name: &str) -> bool {
    name.rsplit_once(':')
        .is_some_and(|(host, _)| host_name(host).as_deref() == Some(host))
        && parse_address(name).is_ok_and(|canonical| canonical == name)
}

/// A host name as the resolver is asked it: labels of letters, digits and
/// inner hyphens, 1 to 63 characters each, 253 in all, the last one not all
/// digits (so that a mistyped IPv4 address is not taken for a name); lower
/// case, one trailing dot dropped. `None` when `host` is not one.
pub fn host_name(host: &str) -> Option<String> {
    let host = host.strip_suffix('.').unwrap_or(host);
    if host.is_empty() || host.len() > 253 {
        return None;
    }
    let label_ok = |l: &str| {
        (1..=63).contains(&l.len())
            && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
            && !l.starts_with('-')
            && !l.ends_with('-')
    };
    let last = host.rsplit('.').next()?;
    (host.split('.').all(label_ok) && !last.bytes().all(|b| b.is_ascii_digit()))
        .then(|| host.to_ascii_lowercase())
}

/// A character that no address holds and that could change the meaning of
/// an nginx configuration line.
fn forbidden(c: char) -> bool {
    c.is_whitespace() || c.is_control() || ";{}#\"'\\$".contains(c)
}

/// Digits only, 1..=65535.
fn parse_port(s: &str) -> Option<u16> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse::<u16>().ok().filter(|&p| p > 0)
}

/// A key prefix as a folder: ending with '/', unless empty (everything).
pub(crate) fn folder(prefix: &str) -> String {
    if prefix.is_empty() || prefix.ends_with('/') {
        prefix.to_string()
    } else {
        format!("{prefix}/")
    }
}

/// A JSON integer or a string holding one (`"3"`, `"-1"`, surrounding spaces
/// allowed). Fractions and out-of-range numbers are not integers.
fn json_integer(v: &Value) -> Option<i64> {
    match v {
        Value::Number(n) => n.as_i64(),
        Value::String(s) => {
            let t = s.trim();
            let digits = t.strip_prefix('-').unwrap_or(t);
            let n = i64::try_from(parse_digits(digits)?).ok()?;
            Some(if digits.len() == t.len() { n } else { -n })
        }
        _ => None,
    }
}

/// A non-negative JSON integer, or a string holding one, up to `u64::MAX`.
fn json_unsigned(v: &Value) -> Option<u64> {
    match v {
        Value::Number(n) => n.as_u64(),
        Value::String(s) => parse_digits(s.trim()),
        _ => None,
    }
}

/// `n`, or `max` with a warning when `n` is above it.
fn capped<T: PartialOrd + fmt::Display + Copy>(
    n: T,
    max: T,
    what: impl FnOnce() -> String,
    warnings: &mut Vec<String>,
) -> T {
    if n > max {
        warnings.push(format!("{}: {n} is more than {max}, using {max}", what()));
        return max;
    }
    n
}

/// `0`/`1`, `true`/`false`, `"0"`/`"1"` (and `"true"`/`"false"`).
fn json_flag(v: &Value) -> Option<bool> {
    match v {
        Value::Bool(b) => Some(*b),
        Value::String(s) if s.trim() == "true" => Some(true),
        Value::String(s) if s.trim() == "false" => Some(false),
        other => match json_integer(other) {
            Some(0) => Some(false),
            Some(1) => Some(true),
            _ => None,
        },
    }
}

/// A JSON value for a log line, cut to a sensible length.
fn show_value(v: &Value) -> String {
    // JSON escapes the C0 controls, not DEL or the C1 ones.
    let text: String = v
        .to_string()
        .chars()
        .map(|c| match c.is_control() {
            true => format!("\\u{{{:x}}}", c as u32),
            false => c.to_string(),
        })
        .collect();
    match text.char_indices().nth(QUOTE_MAX) {
        Some((cut, _)) => format!("{}...", text.get(..cut).unwrap_or_default()),
        None => text,
    }
}

/// Applies a JSON attribute object (Consul KV value, etcd value), e.g.
/// `{"weight":1,"max_fails":2,"fail_timeout":10,"down":0,"backup":0}`.
///
/// Numbers may be JSON numbers or numeric strings; `down`/`backup` accept
/// 0/1, true/false and "0"/"1". A missing field keeps its default, an invalid
/// one keeps its default and adds a warning naming the key and the field. A
/// value that is not JSON, or not a JSON object, leaves every default and
/// warns; an empty value means all defaults, silently. Unknown fields are
/// ignored.
pub fn apply_attributes(server: &mut Server, key: &str, value: &[u8], warnings: &mut Vec<String>) {
    if value.iter().all(u8::is_ascii_whitespace) {
        return;
    }
    let obj = match serde_json::from_slice::<Value>(value) {
        Ok(Value::Object(obj)) => obj,
        Ok(_) => {
            warnings.push(format!(
                "key {}: value is not a JSON object, using the defaults",
                quote(key)
            ));
            return;
        }
        Err(_) => {
            warnings.push(format!(
                "key {}: value is not valid JSON, using the defaults",
                quote(key)
            ));
            return;
        }
    };
    let invalid = |field: &str, v: &Value| {
        format!(
            "key {}: invalid {field} {}, using the default",
            quote(key),
            show_value(v)
        )
    };
    let field = |name: &str| format!("key {}: {name}", quote(key));
    if let Some(v) = obj.get("weight") {
        match json_unsigned(v).and_then(|w| i64::try_from(w).ok()) {
            Some(w) if w > 0 => server.weight = capped(w, MAX_WEIGHT, || field("weight"), warnings),
            _ => warnings.push(invalid("weight", v)),
        }
    }
    if let Some(v) = obj.get("max_fails") {
        match json_unsigned(v) {
            Some(n) => server.max_fails = capped(n, MAX_FAILS, || field("max_fails"), warnings),
            None => warnings.push(invalid("max_fails", v)),
        }
    }
    if let Some(v) = obj.get("fail_timeout") {
        match json_unsigned(v) {
            Some(t) => {
                let t = capped(
                    t,
                    MAX_FAIL_TIMEOUT as u64,
                    || field("fail_timeout"),
                    warnings,
                );
                server.fail_timeout = t as i64;
            }
            None => warnings.push(invalid("fail_timeout", v)),
        }
    }
    if let Some(v) = obj.get("down") {
        match json_flag(v) {
            Some(b) => server.down = b,
            None => warnings.push(invalid("down", v)),
        }
    }
    if let Some(v) = obj.get("backup") {
        match json_flag(v) {
            Some(b) => server.backup = b,
            None => warnings.push(invalid("backup", v)),
        }
    }
}

/// Applies catalog/health tags: `weight=N`, `max_fails=N`, `fail_timeout=T`
/// (nginx time, rounded down to whole seconds), `down`, `backup`. Other tags
/// are ignored; an invalid value adds a warning and keeps the default.
pub fn apply_tags(server: &mut Server, tags: &[String], warnings: &mut Vec<String>) {
    for tag in tags {
        let name = server.name.clone();
        let what = || format!("server {name}: tag {}", quote(tag));
        let ok = match tag.split_once('=') {
            Some(("weight", v)) => match parse_digits(v).and_then(|w| i64::try_from(w).ok()) {
                Some(w) if w > 0 => {
                    server.weight = capped(w, MAX_WEIGHT, what, warnings);
                    true
                }
                _ => false,
            },
            Some(("max_fails", v)) => match parse_digits(v) {
                Some(n) => {
                    server.max_fails = capped(n, MAX_FAILS, what, warnings);
                    true
                }
                None => false,
            },
            Some(("fail_timeout", v)) => match crate::conf::parse_time_secs(v) {
                Some(secs) => {
                    server.fail_timeout = capped(secs, MAX_FAIL_TIMEOUT, what, warnings);
                    true
                }
                None => false,
            },
            None if tag == "down" => {
                server.down = true;
                true
            }
            None if tag == "backup" => {
                server.backup = true;
                true
            }
            _ => true,
        };
        if !ok {
            warnings.push(format!(
                "server {}: invalid tag {}, using the default",
                server.name,
                quote(tag)
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults() {
        let s = Server::registry_default("127.0.0.1:80".into());
        assert_eq!(
            (s.weight, s.max_fails, s.fail_timeout, s.down, s.backup),
            (1, 2, 10, false, false)
        );
        assert_eq!(s.name, "127.0.0.1:80");
    }

    #[test]
    fn addresses_accepted_and_normalised() {
        assert_eq!(parse_address("127.0.0.1:80").unwrap(), "127.0.0.1:80");
        assert_eq!(parse_address("10.0.0.1:65535").unwrap(), "10.0.0.1:65535");
        assert_eq!(parse_address("10.0.0.1:1").unwrap(), "10.0.0.1:1");
        assert_eq!(parse_address("10.0.0.1:0080").unwrap(), "10.0.0.1:80");
        assert_eq!(parse_address("[::1]:8080").unwrap(), "[::1]:8080");
        assert_eq!(parse_address("[0:0:0::1]:8080").unwrap(), "[::1]:8080");
        assert_eq!(
            parse_address("[2001:DB8:0:0:0:0:0:1]:443").unwrap(),
            "[2001:db8::1]:443"
        );
        assert_eq!(
            parse_address("[::ffff:1.2.3.4]:80").unwrap(),
            "[::ffff:1.2.3.4]:80"
        );
    }

    #[test]
    fn host_names_accepted_and_normalised() {
        assert_eq!(
            parse_address("API.Internal:8080").unwrap(),
            "api.internal:8080"
        );
        assert_eq!(
            parse_address("api.internal.:80").unwrap(),
            "api.internal:80"
        );
        assert_eq!(parse_address("localhost:0080").unwrap(), "localhost:80");
        assert_eq!(
            parse_address("a-1.b2.example:1").unwrap(),
            "a-1.b2.example:1"
        );
        let long = format!(
            "{}.{}.{}.{}",
            "a".repeat(63),
            "b".repeat(63),
            "c".repeat(63),
            "d".repeat(61)
        );
        assert_eq!(long.len(), 253);
        assert!(parse_address(&format!("{long}:80")).is_ok());
        assert!(parse_address(&format!("{long}x:80")).is_err());
        assert!(is_host_name("api.internal:8080"));
        assert!(!is_host_name("API.internal:8080"));
        assert!(!is_host_name("10.0.0.1:80"));
        assert!(!is_host_name("api.internal"));
        assert!(is_address("10.0.0.1:80"));
        assert!(!is_address("api.internal:8080"));
    }

    #[test]
    fn addresses_refused() {
        let err = |s: &str| parse_address(s).unwrap_err().0;
        assert!(err("::1:8080").contains("brackets"));
        assert!(err("2001:db8::1").contains("brackets"));
        assert!(err("backend.local").contains("no port"));
        assert!(err("-bad.example:80").contains("nor a host name"));
        assert!(err("a_b.example:80").contains("nor a host name"));
        assert!(err("a..b:80").contains("nor a host name"));
        assert!(err(&format!("{}.example:80", "x".repeat(64))).contains("nor a host name"));
        assert!(err("127.0.0.1").contains("no port"));
        assert!(err("[::1]").contains("no port"));
        assert!(err("[::1").contains("no closing"));
        assert!(err("[::1]80").contains("no port"));
        assert!(err("[zz::1]:80").contains("not a valid IPv6"));
        assert!(err("[fe80::1%eth0]:80").contains("not a valid IPv6"));
        assert!(err("127.0.0.1:0").contains("invalid port"));
        assert!(err("127.0.0.1:65536").contains("invalid port"));
        assert!(err("127.0.0.1:").contains("invalid port"));
        assert!(err("127.0.0.1:+80").contains("invalid port"));
        assert!(err("127.0.0.1:80 ").contains("cannot have"));
        assert!(err("[::1]:99999999999999999999").contains("invalid port"));
        assert!(err("256.0.0.1:80").contains("nor a host name"));
        assert!(err("1.2.3:80").contains("nor a host name"));
        assert!(err("").contains("no port"));
        assert!(err(":80").contains("nor a host name"));
    }

    #[test]
    fn numbers_are_capped_at_what_nginx_accepts() {
        let mut s = Server::registry_default("10.0.0.1:80".into());
        let mut w = Vec::new();
        apply_attributes(
            &mut s,
            "k",
            br#"{"weight":"9223372036854775807","max_fails":18446744073709551615,"fail_timeout":18446744073709552}"#,
            &mut w,
        );
        assert_eq!(
            (s.weight, s.max_fails, s.fail_timeout),
            (MAX_WEIGHT, MAX_FAILS, MAX_FAIL_TIMEOUT)
        );
        assert_eq!(w.len(), 3, "{w:?}");
        assert_eq!(
            w[0],
            "key \"k\": weight: 9223372036854775807 is more than 1000000, using 1000000"
        );
        let mut s = Server::registry_default("10.0.0.1:80".into());
        let mut w = Vec::new();
        let tags = [
            "max_fails=18446744073709551615",
            "weight=1000001",
            "fail_timeout=300d",
        ];
        apply_tags(&mut s, &tags.map(String::from), &mut w);
        assert_eq!(
            (s.weight, s.max_fails, s.fail_timeout),
            (MAX_WEIGHT, MAX_FAILS, 300 * 86400)
        );
        assert_eq!(w.len(), 2, "{w:?}");
        assert!(
            w[0].starts_with("server 10.0.0.1:80: tag \"max_fails="),
            "{w:?}"
        );
        let mut w = Vec::new();
        apply_attributes(
            &mut s,
            "k",
            br#"{"weight":-1,"max_fails":1.5,"fail_timeout":"-5"}"#,
            &mut w,
        );
        assert_eq!(w.len(), 3, "{w:?}");
        assert!(w.iter().all(|m| m.contains("invalid")), "{w:?}");
    }

    #[test]
    fn names_that_could_change_a_config_line_are_refused() {
        for name in [
            "127.0.0.1:80;server",
            "127.0.0.1:B1;server 10.6.6.6:80",
            "1.2.3.4:80\n",
            "a{b:1",
            "[::1]:80#",
            "$x:1",
        ] {
            let e = parse_address(name).unwrap_err().0;
            assert!(
                e.contains("characters an address cannot have"),
                "{name}: {e}"
            );
        }
    }

    #[test]
    fn many_problems_make_a_few_lines() {
        let few: Vec<String> = (0..5).map(|i| format!("key {i}: bad")).collect();
        assert_eq!(summary(&few), few);
        let many: Vec<String> = (0..10_000).map(|i| format!("key {i}: bad")).collect();
        let lines = summary(&many);
        assert_eq!(lines.len(), 6);
        assert_eq!(lines[..5], many[..5]);
        assert_eq!(
            lines[5],
            "9995 more problems in the registry's answer, not shown"
        );
    }

    #[test]
    fn the_duplicate_check_is_linear() {
        let mut p = Parsed::default();
        for i in 0..200_000u32 {
            p.push_unique(
                Server::registry_default(format!(
                    "10.{}.{}.{}:80",
                    i >> 16,
                    (i >> 8) & 255,
                    i & 255
                )),
                || "k".into(),
            );
        }
        p.push_unique(Server::registry_default("10.0.0.0:80".into()), || {
            "again".into()
        });
        assert_eq!(p.servers.len(), 200_000);
        assert_eq!(
            p.warnings,
            ["again: server 10.0.0.0:80 is listed twice, the first one is used"]
        );
    }

    #[test]
    fn messages_quote_and_cut_untrusted_text() {
        assert_eq!(quote("a\"b\n"), r#""a\"b\n""#);
        let long = "é".repeat(500);
        let q = quote(&long);
        assert!(q.ends_with("..."));
        assert_eq!(q.chars().count(), QUOTE_MAX + 2 + 3);
    }

    fn attrs(value: &str) -> (Server, Vec<String>) {
        let mut s = Server::registry_default("10.0.0.1:80".into());
        let mut w = Vec::new();
        apply_attributes(&mut s, "up/10.0.0.1:80", value.as_bytes(), &mut w);
        (s, w)
    }

    fn fields(s: &Server) -> (i64, u64, i64, bool, bool) {
        (s.weight, s.max_fails, s.fail_timeout, s.down, s.backup)
    }

    #[test]
    fn attributes_numbers_and_numeric_strings() {
        let (s, w) = attrs(r#"{"weight":5,"max_fails":0,"fail_timeout":30,"down":1,"backup":0}"#);
        assert_eq!(fields(&s), (5, 0, 30, true, false));
        assert!(w.is_empty(), "{w:?}");
        let (s, w) = attrs(
            r#"{"weight":"3","max_fails":"4","fail_timeout":" 20 ","down":"0","backup":"1"}"#,
        );
        assert_eq!(fields(&s), (3, 4, 20, false, true));
        assert!(w.is_empty(), "{w:?}");
        let (s, w) = attrs(r#"{"down":true,"backup":false}"#);
        assert_eq!(fields(&s), (1, 2, 10, true, false));
        assert!(w.is_empty(), "{w:?}");
        let (s, w) = attrs(r#"{"down":"true","backup":"false"}"#);
        assert_eq!(fields(&s), (1, 2, 10, true, false));
        assert!(w.is_empty(), "{w:?}");
    }

    #[test]
    fn attributes_missing_fields_are_defaults() {
        let (s, w) = attrs(r#"{"weight":40}"#);
        assert_eq!(fields(&s), (40, 2, 10, false, false));
        assert!(w.is_empty());
        let (s, w) = attrs(r#"{}"#);
        assert_eq!(fields(&s), (1, 2, 10, false, false));
        assert!(w.is_empty());
        let (s, w) = attrs(r#"{"unknown":"x","weight":2,"meta":{"a":1}}"#);
        assert_eq!(fields(&s), (2, 2, 10, false, false));
        assert!(w.is_empty());
    }

    #[test]
    fn attributes_empty_value_is_all_defaults_without_warning() {
        for v in ["", " \n\t"] {
            let (s, w) = attrs(v);
            assert_eq!(s, Server::registry_default("10.0.0.1:80".into()));
            assert!(w.is_empty());
        }
    }

    #[test]
    fn attributes_not_json_or_not_an_object() {
        let (s, w) = attrs("weight=3");
        assert_eq!(s, Server::registry_default("10.0.0.1:80".into()));
        assert_eq!(
            w,
            [r#"key "up/10.0.0.1:80": value is not valid JSON, using the defaults"#]
        );
        for v in ["[1,2]", "3", "\"x\"", "null"] {
            let (s, w) = attrs(v);
            assert_eq!(s, Server::registry_default("10.0.0.1:80".into()));
            assert_eq!(w.len(), 1);
            assert!(w[0].contains("not a JSON object"), "{w:?}");
        }
        let mut s = Server::registry_default("a:1".into());
        let mut w = Vec::new();
        apply_attributes(&mut s, "k", &[0xff, 0xfe, b'{'], &mut w);
        assert_eq!(w.len(), 1);
    }

    #[test]
    fn attributes_invalid_values_warn_and_keep_defaults() {
        let (s, w) =
            attrs(r#"{"weight":0,"max_fails":-1,"fail_timeout":-5,"down":2,"backup":"x"}"#);
        assert_eq!(fields(&s), (1, 2, 10, false, false));
        assert_eq!(
            w,
            [
                r#"key "up/10.0.0.1:80": invalid weight 0, using the default"#,
                r#"key "up/10.0.0.1:80": invalid max_fails -1, using the default"#,
                r#"key "up/10.0.0.1:80": invalid fail_timeout -5, using the default"#,
                r#"key "up/10.0.0.1:80": invalid down 2, using the default"#,
                r#"key "up/10.0.0.1:80": invalid backup "x", using the default"#,
            ]
        );
        // The valid fields of the same value still apply.
        let (s, w) = attrs(r#"{"weight":-3,"max_fails":"abc","fail_timeout":7}"#);
        assert_eq!(fields(&s), (1, 2, 7, false, false));
        assert_eq!(w.len(), 2);
        let (s, w) = attrs(
            r#"{"weight":1.5,"max_fails":"3.0","fail_timeout":"10s","down":null,"backup":[1]}"#,
        );
        assert_eq!(fields(&s), (1, 2, 10, false, false));
        assert_eq!(w.len(), 5, "{w:?}");
        let (s, w) = attrs(r#"{"weight":99999999999999999999,"max_fails":"-0"}"#);
        assert_eq!((s.weight, s.max_fails), (1, 2));
        assert_eq!(w.len(), 2, "{w:?}");
        let (_, w) = attrs(&format!(r#"{{"weight":"{}"}}"#, "x".repeat(1000)));
        assert!(w[0].len() < 300, "{}", w[0]);
        // Control characters JSON leaves as they are (DEL, C1) are escaped.
        let (_, w) = attrs("{\"weight\":\"1\u{7f}\u{85}2\"}");
        assert_eq!(
            w[0],
            r#"key "up/10.0.0.1:80": invalid weight "1\u{7f}\u{85}2", using the default"#
        );
    }

    fn tagged(tags: &[&str]) -> (Server, Vec<String>) {
        let mut s = Server::registry_default("10.0.0.1:80".into());
        let mut w = Vec::new();
        let tags: Vec<String> = tags.iter().map(|t| t.to_string()).collect();
        apply_tags(&mut s, &tags, &mut w);
        (s, w)
    }

    #[test]
    fn tags_set_attributes() {
        let (s, w) = tagged(&[
            "weight=3",
            "max_fails=0",
            "fail_timeout=1m",
            "down",
            "backup",
        ]);
        assert_eq!(fields(&s), (3, 0, 60, true, true));
        assert!(w.is_empty());
        // As nginx reads fail_timeout: seconds, no "ms".
        let (s, w) = tagged(&["fail_timeout=1500ms"]);
        assert_eq!((s.fail_timeout, w.len()), (10, 1));
        let (s, _) = tagged(&["fail_timeout=1y"]);
        assert_eq!(s.fail_timeout, 365 * 86_400);
        let (s, _) = tagged(&["fail_timeout=1m30s"]);
        assert_eq!(s.fail_timeout, 90);
        let (s, _) = tagged(&["fail_timeout=20"]);
        assert_eq!(s.fail_timeout, 20);
        let (s, w) = tagged(&["v2", "primary", "downstream", "backup=1", "down=yes", "x=y"]);
        assert_eq!(s, Server::registry_default("10.0.0.1:80".into()));
        assert!(w.is_empty());
        let (s, w) = tagged(&[]);
        assert_eq!(s, Server::registry_default("10.0.0.1:80".into()));
        assert!(w.is_empty());
    }

    #[test]
    fn tags_invalid_values_warn_and_keep_defaults() {
        let (s, w) = tagged(&[
            "weight=0",
            "weight=-2",
            "weight=x",
            "max_fails=-1",
            "max_fails=+1",
            "fail_timeout=soon",
            "fail_timeout=",
        ]);
        assert_eq!(fields(&s), (1, 2, 10, false, false));
        assert_eq!(w.len(), 7, "{w:?}");
        assert_eq!(
            w[0],
            r#"server 10.0.0.1:80: invalid tag "weight=0", using the default"#
        );
    }

    #[test]
    fn excerpts_never_show_credentials() {
        let secrets = vec!["tok-123".to_string(), "dXNlcjpwdw==".to_string()];
        let echo = b"<html>400 Bad Request\r\nGET /v1/kv/x HTTP/1.1\r\nX-Consul-Token: tok-123\r\n";
        let shown = excerpt(echo, &secrets);
        assert!(
            !shown.contains("tok-123") && shown.contains("not shown"),
            "{shown}"
        );
        let basic = b"denied for Authorization: Basic dXNlcjpwdw==";
        assert!(!excerpt(basic, &secrets).contains("dXNlcjpwdw=="));
        // A secret elsewhere, even past the cut, is masked first.
        let long = format!("{}tok-123 and more", "x".repeat(195));
        let shown = excerpt(long.as_bytes(), &secrets);
        assert!(!shown.contains("tok-"), "{shown}");
        // Without credentials, the body shows, printable and cut.
        assert_eq!(excerpt(b"rpc error\nline two", &[]), "rpc error line two");
        assert_eq!(
            excerpt("é".repeat(500).as_bytes(), &[]).chars().count(),
            200
        );
        assert_eq!(excerpt(b"Authorization: x", &[]), "Authorization: x");
    }
}
