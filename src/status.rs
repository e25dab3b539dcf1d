//! `upstream_show` for machines: the query that selects a format, and the
//! JSON (NGINX Plus API field names) and Prometheus (text format 0.0.4)
//! views of the upstreams and their sync. The text view stays in
//! [`crate::show`], byte-compatible with the C module.

use std::fmt::Write as _;

use serde_json::{json, Map, Value};

use crate::registry::session::{Reason, REASONS};
use crate::server::Server;

/// The formats `upstream_show` answers in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    Text,
    Json,
    Prometheus,
}

impl Format {
    pub fn parse(s: &[u8]) -> Option<Format> {
        match s {
            b"text" => Some(Format::Text),
            b"json" => Some(Format::Json),
            b"prometheus" => Some(Format::Prometheus),
            _ => None,
        }
    }

    pub fn content_type(self) -> &'static str {
        match self {
            Format::Text => "text/plain",
            Format::Json => "application/json",
            Format::Prometheus => "text/plain; version=0.0.4; charset=utf-8",
        }
    }
}

/// What a query string asks for.
#[derive(Debug, PartialEq, Eq)]
pub struct Query {
    pub format: Format,
    /// One upstream (matched case-insensitively), or all of them.
    pub upstream: Option<Vec<u8>>,
}

/// Reads the query string. Without `=` it is the C module's: the whole
/// string names the upstream. With `=` it is `key=value` pairs joined by
/// `&`: `format=text|json|prometheus`, `upstream=NAME`; anything else is a
/// mistake, said in the error.
pub fn parse_query(args: &[u8], default: Format) -> Result<Query, String> {
    let mut query = Query {
        format: default,
        upstream: None,
    };
    if !args.contains(&b'=') {
        query.upstream = (!args.is_empty()).then(|| args.to_vec());
        return Ok(query);
    }
    for pair in args.split(|&c| c == b'&').filter(|p| !p.is_empty()) {
        let Some(at) = pair.iter().position(|&c| c == b'=') else {
            return Err(format!(
                "\"{}\" is not an option: use key=value",
                shown(pair)
            ));
        };
        let (key, value) = (&pair[..at], unescape(&pair[at + 1..]));
        match key {
            b"format" => {
                query.format = Format::parse(&value).ok_or_else(|| {
                    format!(
                        "unknown format \"{}\": use text, json or prometheus",
                        shown(&value)
                    )
                })?
            }
            b"upstream" => query.upstream = Some(value),
            _ => {
                return Err(format!(
                    "unknown option \"{}\": the options are format and upstream",
                    shown(key)
                ))
            }
        }
    }
    Ok(query)
}

/// `%XX` and `+` decoded, as a browser encodes a query.
fn unescape(s: &[u8]) -> Vec<u8> {
    let hex = |c: u8| (c as char).to_digit(16).map(|d| d as u8);
    let mut out = Vec::with_capacity(s.len());
    let mut i = 0;
    while i < s.len() {
        match s[i] {
            b'%' if i + 2 < s.len() => match (hex(s[i + 1]), hex(s[i + 2])) {
                (Some(h), Some(l)) => {
                    out.push(h << 4 | l);
                    i += 3;
                    continue;
                }
                _ => out.push(b'%'),
            },
            b'+' => out.push(b' '),
            c => out.push(c),
        }
        i += 1;
    }
    out
}

/// Bytes of a query for a message: printable ASCII, the rest escaped.
fn shown(s: &[u8]) -> String {
    s.escape_ascii().to_string()
}

/// A peer's state, in NGINX Plus's words.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum State {
    Up,
    Down,
    /// `max_fails` reached within `fail_timeout`.
    Unavail,
    /// The active health checks have not probed it yet (it starts down).
    Checking,
    /// The active health checks mark it down.
    Unhealthy,
}

impl State {
    fn name(self) -> &'static str {
        match self {
            State::Up => "up",
            State::Down => "down",
            State::Unavail => "unavail",
            State::Checking => "checking",
            State::Unhealthy => "unhealthy",
        }
    }

    /// nginx-prometheus-exporter's encoding.
    fn code(self) -> u8 {
        match self {
            State::Up => 1,
            State::Down => 3,
            State::Unavail => 4,
            State::Checking => 5,
            State::Unhealthy => 6,
        }
    }
}

/// One peer of an upstream's list.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Peer {
    pub server: Server,
    pub state: State,
    /// Open connections (the answering worker's, in per-worker mode).
    pub active: u64,
    pub max_conns: u64,
    /// Its active health checks, when the upstream has `check`.
    pub health: Option<Health>,
}

/// A server's active health checks, as NGINX Plus reports them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Health {
    pub checks: u64,
    pub fails: u64,
    /// Times it went from up to down.
    pub unhealthy: u64,
    pub last_passed: bool,
    /// Milliseconds down in all, the current stretch included.
    pub downtime_ms: u64,
    /// When the current down stretch began (Unix ms), while down.
    pub downstart_ms: Option<u64>,
}

/// How a synced upstream is polled.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Every worker polls and keeps its own lists.
    Worker,
    /// One worker polls for all, into the upstream's shared zone.
    Zone,
}

/// The sync figures of one poller: a worker slot (per-worker mode) or the
/// upstream's poller (zone mode). Times are Unix milliseconds.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Record {
    pub worker: usize,
    /// The process that last wrote the record; 0: none yet.
    pub pid: u64,
    pub position: Option<u64>,
    pub syncs: u64,
    pub changes: u64,
    /// By reason, in the order of `Reason::ALL`.
    pub errors: [u64; REASONS],
    pub last_ok: bool,
    pub last_sync_ms: Option<u64>,
    pub last_change_ms: Option<u64>,
    pub last_error: Option<(u64, String)>,
    pub dump_written_ms: Option<u64>,
}

/// What a synced upstream shows of its registry; never a secret.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Sync {
    pub kind: &'static str,
    /// `host:port/path`, without the path's query.
    pub registry: String,
    pub mode: Mode,
    pub interval_ms: u64,
    pub timeout_ms: u64,
    pub dump_path: String,
    /// Zone mode: one; per-worker mode: one per worker slot.
    pub records: Vec<Record>,
}

/// One upstream, as every format shows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Upstream {
    /// The name as written in the config.
    pub name: String,
    /// Primary peers then backups; empty when the upstream has no
    /// round-robin list.
    pub peers: Vec<Peer>,
    /// The shared zone's name, when it has one.
    pub zone: Option<String>,
    pub sync: Option<Sync>,
}

impl Upstream {
    /// The primary servers, which the text view lists.
    pub fn primaries(&self) -> impl Iterator<Item = &Server> {
        self.peers.iter().map(|p| &p.server).filter(|s| !s.backup)
    }
}

/// The upstream `name` selects, case-insensitively.
pub fn find<'a>(upstreams: &'a [Upstream], name: &[u8]) -> Option<&'a Upstream> {
    upstreams
        .iter()
        .find(|u| u.name.as_bytes().eq_ignore_ascii_case(name))
}

/// `5s`, `500ms`: a duration as nginx writes it.
fn duration(ms: u64) -> String {
    if ms % 1000 == 0 {
        format!("{}s", ms / 1000)
    } else {
        format!("{ms}ms")
    }
}

/// Unix milliseconds as ISO 8601 in UTC with milliseconds, as NGINX Plus
/// writes times: `2026-12-01T19:05:45.123Z`.
pub fn iso8601(ms: u64) -> String {
    let (days, rest) = ((ms / 86_400_000) as i64, ms % 86_400_000);
    // Howard Hinnant's days-to-civil.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        rest / 3_600_000,
        rest / 60_000 % 60,
        rest / 1000 % 60,
        rest % 1000
    )
}

fn time_value(ms: Option<u64>) -> Value {
    ms.map_or(Value::Null, |ms| Value::String(iso8601(ms)))
}

fn peer_json(id: usize, peer: &Peer) -> Value {
    let s = &peer.server;
    let mut v = json!({
        "id": id,
        "server": s.entry(),
        "name": s.name,
        "backup": s.backup,
        "weight": s.weight,
        "state": peer.state.name(),
        "active": peer.active,
        "max_conns": peer.max_conns,
        "max_fails": s.max_fails,
        "fail_timeout": format!("{}s", s.fail_timeout),
        "down": s.down,
    });
    if let (Some(h), Value::Object(map)) = (&peer.health, &mut v) {
        map.insert(
            "health_checks".into(),
            json!({
                "checks": h.checks,
                "fails": h.fails,
                "unhealthy": h.unhealthy,
                "last_passed": h.last_passed,
            }),
        );
        map.insert("downtime".into(), json!(h.downtime_ms));
        if let Some(t) = h.downstart_ms {
            map.insert("downstart".into(), Value::String(iso8601(t)));
        }
    }
    v
}

fn errors_json(errors: &[u64; REASONS]) -> Value {
    Value::Object(
        Reason::ALL
            .iter()
            .map(|r| (r.name().to_string(), json!(errors[*r as usize])))
            .collect(),
    )
}

fn record_json(r: &Record) -> Map<String, Value> {
    let mut m = Map::new();
    m.insert("index".into(), json!(r.position));
    m.insert("last_sync".into(), time_value(r.last_sync_ms));
    m.insert("last_sync_successful".into(), json!(r.last_ok));
    m.insert("last_change".into(), time_value(r.last_change_ms));
    m.insert(
        "last_error".into(),
        r.last_error.as_ref().map_or(
            Value::Null,
            |(ms, text)| json!({"time": iso8601(*ms), "text": text}),
        ),
    );
    m.insert("syncs".into(), json!(r.syncs));
    m.insert("errors".into(), json!(r.errors.iter().sum::<u64>()));
    m.insert("errors_by_reason".into(), errors_json(&r.errors));
    m.insert("changes".into(), json!(r.changes));
    m.insert("dump_written".into(), time_value(r.dump_written_ms));
    m
}

/// The figures of all a sync's records together: sums of the counters,
/// the latest times, the highest position, the latest error.
fn combined(records: &[Record]) -> Record {
    let mut all = Record::default();
    // Whether the registry answers: the most recent poll of any worker says.
    let mut latest = None;
    for r in records {
        all.syncs += r.syncs;
        all.changes += r.changes;
        for (a, b) in all.errors.iter_mut().zip(r.errors) {
            *a += b;
        }
        all.position = all.position.max(r.position);
        all.last_change_ms = all.last_change_ms.max(r.last_change_ms);
        all.dump_written_ms = all.dump_written_ms.max(r.dump_written_ms);
        all.last_sync_ms = all.last_sync_ms.max(r.last_sync_ms);
        if all.last_error.as_ref().map(|e| e.0) < r.last_error.as_ref().map(|e| e.0) {
            all.last_error = r.last_error.clone();
        }
        let last = r.last_sync_ms.max(r.last_error.as_ref().map(|e| e.0));
        if last.is_some() && last >= latest {
            latest = last;
            all.last_ok = r.last_ok;
        }
    }
    all
}

fn sync_json(sync: &Sync) -> Value {
    let mut m = Map::new();
    m.insert("type".into(), json!(sync.kind));
    m.insert("registry".into(), json!(sync.registry));
    m.insert(
        "mode".into(),
        json!(match sync.mode {
            Mode::Worker => "worker",
            Mode::Zone => "zone",
        }),
    );
    m.insert("interval".into(), json!(duration(sync.interval_ms)));
    m.insert("timeout".into(), json!(duration(sync.timeout_ms)));
    m.extend(record_json(&combined(&sync.records)));
    m.insert("dump_path".into(), json!(sync.dump_path));
    match sync.mode {
        Mode::Zone => {
            let pid = sync.records.first().map_or(0, |r| r.pid);
            m.insert("poller_pid".into(), json!(pid));
        }
        Mode::Worker => {
            let workers: Vec<Value> = sync
                .records
                .iter()
                .map(|r| {
                    let mut w = Map::new();
                    w.insert("worker".into(), json!(r.worker));
                    w.insert("pid".into(), json!(r.pid));
                    w.extend(record_json(r));
                    Value::Object(w)
                })
                .collect();
            m.insert("workers".into(), Value::Array(workers));
        }
    }
    Value::Object(m)
}

fn upstream_json(u: &Upstream) -> Value {
    let mut m = Map::new();
    let peers = u
        .peers
        .iter()
        .enumerate()
        .map(|(i, p)| peer_json(i, p))
        .collect();
    m.insert("peers".into(), Value::Array(peers));
    if let Some(zone) = &u.zone {
        m.insert("zone".into(), json!(zone));
    }
    if let Some(sync) = &u.sync {
        m.insert("upsync".into(), sync_json(sync));
    }
    Value::Object(m)
}

/// The JSON view: an object keyed by upstream name, as NGINX Plus's
/// `/api/9/http/upstreams`, or one upstream's object.
pub fn json(upstreams: &[Upstream], one: Option<&Upstream>) -> String {
    let value = match one {
        Some(u) => upstream_json(u),
        None => Value::Object(
            upstreams
                .iter()
                .map(|u| (u.name.clone(), upstream_json(u)))
                .collect(),
        ),
    };
    let mut out = value.to_string();
    out.push('\n');
    out
}

/// The JSON error of an unknown upstream, NGINX Plus's error object.
pub fn json_error(status: u16, text: &str, code: &str) -> String {
    let mut out = json!({"error": {"status": status, "text": text, "code": code}}).to_string();
    out.push('\n');
    out
}

/// A label value, escaped as the text format wants.
fn label(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// One metric family being written: HELP and TYPE once, then its samples.
struct Family<'a> {
    out: &'a mut String,
}

impl Family<'_> {
    fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: impl std::fmt::Display) {
        self.out.push_str(name);
        if !labels.is_empty() {
            self.out.push('{');
            for (i, (k, v)) in labels.iter().enumerate() {
                if i > 0 {
                    self.out.push(',');
                }
                let _ = write!(self.out, "{k}=\"{}\"", label(v));
            }
            self.out.push('}');
        }
        let _ = writeln!(self.out, " {value}");
    }
}

fn family<'a>(out: &'a mut String, name: &str, kind: &str, help: &str) -> Family<'a> {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
    Family { out }
}

/// Seconds from Unix milliseconds, as Prometheus writes them.
fn seconds(ms: u64) -> String {
    format!("{}.{:03}", ms / 1000, ms % 1000)
}

/// The Prometheus view (text format 0.0.4): per-server gauges for every
/// upstream, sync figures for the synced ones (by worker slot in
/// per-worker mode).
pub fn prometheus(upstreams: &[&Upstream]) -> String {
    let mut out = String::new();
    // A server listed twice in one upstream (two equal `server` lines)
    // shows once: a series is named by its labels.
    let peers: Vec<(&str, Vec<&Peer>)> = upstreams
        .iter()
        .map(|u| {
            let mut seen = std::collections::HashSet::new();
            let peers = u
                .peers
                .iter()
                .filter(|p| seen.insert(p.server.name.as_str()))
                .collect();
            (u.name.as_str(), peers)
        })
        .collect();

    let mut f = family(
        &mut out,
        "nginx_upsync_upstream_servers",
        "gauge",
        "Servers in the upstream's list, backups included.",
    );
    for u in upstreams {
        f.sample(
            "nginx_upsync_upstream_servers",
            &[("upstream", &u.name)],
            u.peers.len(),
        );
    }
    type PeerValue = fn(&Peer) -> String;
    let per_server: [(&str, &str, PeerValue); 7] = [
        (
            "state",
            "Current state: 1 up, 3 down, 4 unavail, 5 checking, 6 unhealthy \
             (nginx-prometheus-exporter's encoding).",
            |p| p.state.code().to_string(),
        ),
        ("weight", "Weight.", |p| p.server.weight.to_string()),
        ("backup", "1 for a backup server, else 0.", |p| {
            u8::from(p.server.backup).to_string()
        }),
        (
            "active",
            "Active connections (the answering worker's own without a zone).",
            |p| p.active.to_string(),
        ),
        ("limit", "max_conns, 0 for no limit.", |p| {
            p.max_conns.to_string()
        }),
        ("max_fails", "max_fails.", |p| {
            p.server.max_fails.to_string()
        }),
        ("fail_timeout_seconds", "fail_timeout in seconds.", |p| {
            p.server.fail_timeout.to_string()
        }),
    ];
    for (suffix, help, value) in per_server {
        let name = format!("nginx_upsync_upstream_server_{suffix}");
        let mut f = family(&mut out, &name, "gauge", help);
        for (upstream, peers) in &peers {
            for p in peers {
                f.sample(
                    &name,
                    &[("upstream", upstream), ("server", &p.server.name)],
                    value(p),
                );
            }
        }
    }

    type HealthValue = fn(&Health) -> u64;
    let per_check: [(&str, &str, HealthValue); 3] = [
        ("health_checks_total", "Active health checks made.", |h| {
            h.checks
        }),
        (
            "health_check_fails_total",
            "Active health checks failed.",
            |h| h.fails,
        ),
        (
            "unhealthy_total",
            "Times the active health checks marked the server down.",
            |h| h.unhealthy,
        ),
    ];
    for (suffix, help, value) in per_check {
        let name = format!("nginx_upsync_upstream_server_{suffix}");
        let checked = peers
            .iter()
            .any(|(_, ps)| ps.iter().any(|p| p.health.is_some()));
        if !checked {
            break;
        }
        let mut f = family(&mut out, &name, "counter", help);
        for (upstream, peers) in &peers {
            for p in peers {
                if let Some(h) = &p.health {
                    f.sample(
                        &name,
                        &[("upstream", upstream), ("server", &p.server.name)],
                        value(h),
                    );
                }
            }
        }
    }

    let synced: Vec<(&Upstream, &Sync)> = upstreams
        .iter()
        .filter_map(|u| u.sync.as_ref().map(|s| (*u, s)))
        .collect();
    if synced.is_empty() {
        return out;
    }
    let mut f = family(
        &mut out,
        "nginx_upsync_upstream_info",
        "gauge",
        "A synced upstream: its registry type and mode.",
    );
    for (u, s) in &synced {
        let mode = match s.mode {
            Mode::Worker => "worker",
            Mode::Zone => "zone",
        };
        f.sample(
            "nginx_upsync_upstream_info",
            &[("upstream", &u.name), ("type", s.kind), ("mode", mode)],
            1,
        );
    }
    // Per record: (upstream, worker slot label when per-worker, record).
    let records: Vec<(&str, Option<String>, &Record)> = synced
        .iter()
        .flat_map(|(u, s)| {
            s.records.iter().map(move |r| {
                let worker = (s.mode == Mode::Worker).then(|| r.worker.to_string());
                (u.name.as_str(), worker, r)
            })
        })
        .collect();
    type RecordValue = fn(&Record) -> Option<String>;
    let per_record: [(&str, &str, &str, RecordValue); 7] = [
        (
            "nginx_upsync_last_sync_successful",
            "gauge",
            "1 if the last poll of the registry gave a usable answer, else 0.",
            |r| Some(u8::from(r.last_ok).to_string()),
        ),
        (
            "nginx_upsync_last_sync_success_timestamp_seconds",
            "gauge",
            "Unix time of the last usable answer of the registry.",
            |r| r.last_sync_ms.map(seconds),
        ),
        (
            "nginx_upsync_last_change_timestamp_seconds",
            "gauge",
            "Unix time of the last change of the server list.",
            |r| r.last_change_ms.map(seconds),
        ),
        (
            "nginx_upsync_registry_index",
            "gauge",
            "Consul's index or etcd's index or revision of the last answer.",
            |r| r.position.map(|p| p.to_string()),
        ),
        (
            "nginx_upsync_syncs_total",
            "counter",
            "Polls that gave a usable answer, changed or not.",
            |r| Some(r.syncs.to_string()),
        ),
        (
            "nginx_upsync_changes_total",
            "counter",
            "Changes of the server list applied.",
            |r| Some(r.changes.to_string()),
        ),
        (
            "nginx_upsync_dump_last_write_timestamp_seconds",
            "gauge",
            "Unix time of the last write of the dump file.",
            |r| r.dump_written_ms.map(seconds),
        ),
    ];
    for (name, kind, help, value) in per_record {
        let mut f = family(&mut out, name, kind, help);
        for (upstream, worker, r) in &records {
            let Some(v) = value(r) else { continue };
            match worker {
                Some(w) => f.sample(name, &[("upstream", upstream), ("worker", w)], v),
                None => f.sample(name, &[("upstream", upstream)], v),
            }
        }
    }
    let name = "nginx_upsync_sync_errors_total";
    let mut f = family(
        &mut out,
        name,
        "counter",
        "Polls that failed, by reason: connect, timeout, http, parse, refused, tls.",
    );
    for (upstream, worker, r) in &records {
        for reason in Reason::ALL {
            let n = r.errors[reason as usize];
            match worker {
                Some(w) => f.sample(
                    name,
                    &[
                        ("upstream", upstream),
                        ("worker", w),
                        ("reason", reason.name()),
                    ],
                    n,
                ),
                None => f.sample(
                    name,
                    &[("upstream", upstream), ("reason", reason.name())],
                    n,
                ),
            }
        }
    }
    let name = "nginx_upsync_poller_pid";
    let mut f = family(
        &mut out,
        name,
        "gauge",
        "Zone mode: the pid of the worker that polls the registry, 0 if none.",
    );
    for (u, s) in &synced {
        if s.mode == Mode::Zone {
            f.sample(
                name,
                &[("upstream", &u.name)],
                s.records.first().map_or(0, |r| r.pid),
            );
        }
    }
    out
}

#[cfg(test)]
mod tests;
