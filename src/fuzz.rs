//! A fuzz driver over everything that reads untrusted text: the registry
//! parsers, the HTTP response parser, the dump reader and the `upsync`
//! directive. Stable Rust, no extra crate: inputs are the seed corpus in
//! `fuzz/corpus/<target>/`, mutated, plus generated registry answers.
//!
//! It checks, on every input:
//! - no panic;
//! - every server name is a canonical address with nothing that could
//!   change an nginx configuration line (`;`, braces, quotes, spaces,
//!   control characters ...), names are unique, numbers within nginx's
//!   bounds;
//! - the dump file of the list reads back as the same list;
//! - messages are escaped and short;
//! - no call on an input under 1 MiB takes more than 100 ms (the fastest of
//!   three tries, so that a busy machine does not count).
//!
//! `scripts/test` runs it for a few seconds, optimised but with overflow
//! checks. By hand, for as long as you like:
//!
//! ```text
//! UPSYNC_FUZZ_SECS=600 UPSYNC_FUZZ_SEED=7 CARGO_PROFILE_RELEASE_OVERFLOW_CHECKS=true \
//!     cargo test --release --no-default-features --lib fuzz -- --nocapture
//! ```
//!
//! A finding names the target and writes the input to
//! `target/fuzz-findings/`, to be added to the corpus once fixed.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::time::{Duration, Instant};

use crate::dump;
use crate::registry::{consul, etcd, etcdv3, is_address, is_host_name, Parsed};
use crate::server::{Server, MAX_FAILS, MAX_FAIL_TIMEOUT, MAX_WEIGHT};

/// A call slower than this, on an input under [`SLOW_INPUT_MAX`], is a finding.
const SLOW: Duration = Duration::from_millis(100);
const SLOW_INPUT_MAX: usize = 1 << 20;
/// Longest message a parser may produce.
const MESSAGE_MAX: usize = 4096;

/// xorshift64*: reproducible from the seed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }
}

/// Pieces that tend to break parsers: numbers at the edges of their types,
/// syntax of nginx and JSON, escapes and invalid UTF-8.
const TOKENS: &[&str] = &[
    "0",
    "-1",
    "1",
    "9223372036854775807",
    "9223372036854775808",
    "18446744073709551615",
    "18446744073709551616",
    "1e400",
    "99999999999999999999999999999",
    ";",
    "{",
    "}",
    "#",
    "\"",
    "'",
    "\\",
    "$",
    " ",
    "\n",
    "\r\n",
    "\0",
    "\u{1b}[31m",
    "\u{ff}",
    ";server 10.6.6.6:80",
    "127.0.0.1:80",
    "[::1]:80",
    "[::ffff:1.2.3.4]:80",
    ":",
    "/",
    "null",
    "true",
    "[]",
    "{}",
    "\"Key\":",
    "\"Value\":",
    "\"ServiceTags\":[\"max_fails=18446744073709551615\"]",
    "eyJ3ZWlnaHQiOjB9",
    "Transfer-Encoding: chunked\r\n",
    "Content-Length: 5\r\n",
];

fn mutate(rng: &mut Rng, input: &[u8], other: &[u8]) -> Vec<u8> {
    let mut out = input.to_vec();
    for _ in 0..1 + rng.below(4) {
        let len = out.len();
        let at = rng.below(len + 1);
        match rng.below(8) {
            0 if len > 0 => {
                let i = rng.below(len);
                out[i] ^= 1 << rng.below(8);
            }
            1 => {
                let t = rng.pick(TOKENS).as_bytes();
                out.splice(at..at, t.iter().copied());
            }
            2 if len > 0 => {
                let end = (at + 1 + rng.below(16)).min(len);
                out.drain(at.min(end)..end);
            }
            3 if len > 0 => {
                let start = rng.below(len);
                let end = (start + 1 + rng.below(64)).min(len);
                let piece = out[start..end].to_vec();
                out.splice(at..at, piece);
            }
            4 => out.truncate(at),
            5 if !other.is_empty() => {
                let from = rng.below(other.len());
                out.truncate(at);
                out.extend_from_slice(&other[from..]);
            }
            6 if len > 0 => {
                // A run: long lines, many keys, deep nesting.
                let start = rng.below(len);
                let end = (start + 1 + rng.below(32)).min(len);
                let piece = out[start..end].to_vec();
                let times = 1 + rng.below(2000);
                let run: Vec<u8> = piece
                    .iter()
                    .copied()
                    .cycle()
                    .take(piece.len() * times)
                    .collect();
                out.splice(at..at, run);
            }
            _ => {
                let b = rng.next() as u8;
                out.insert(at, b);
            }
        }
    }
    out
}

/// A Consul KV answer of `n` keys under `upstreams/app/`, some hostile.
fn generated_kv(rng: &mut Rng) -> Vec<u8> {
    use base64::Engine as _;
    let names = [
        "10.0.0.1:80",
        "10.0.0.1:0080",
        "[0:0::1]:8080",
        "127.0.0.1:80;}\nupstream evil {\nserver 10.6.6.6:80;",
        "127.0.0.1:80 backup",
        "host.name:80",
        "[fe80::1%eth0]:80",
        "1.2.3.4:65536",
        "sub/1.2.3.4:80",
    ];
    let values = [
        "",
        r#"{"weight":2,"max_fails":3,"fail_timeout":10}"#,
        r#"{"weight":"1; server 10.6.6.6:80"}"#,
        r#"{"fail_timeout":18446744073709552,"max_fails":18446744073709551615}"#,
        r#"{"weight":9223372036854775807,"backup":1}"#,
        r#"{"down":"0 backup"}"#,
        "not json",
    ];
    let n = 1 + rng.below(50);
    let entries: Vec<String> = (0..n)
        .map(|i| {
            let name = if rng.below(3) == 0 {
                rng.pick(&names).to_string()
            } else {
                format!(
                    "10.{}.{}.{}:{}",
                    i >> 16,
                    (i >> 8) & 255,
                    i & 255,
                    1 + rng.below(65535)
                )
            };
            let value = base64::engine::general_purpose::STANDARD.encode(rng.pick(&values));
            serde_json::json!({"Key": format!("upstreams/app/{name}"), "Value": value}).to_string()
        })
        .collect();
    format!("[{}]", entries.join(",")).into_bytes()
}

/// A registry answer's list and messages, checked.
fn check_list(p: &Parsed) -> Result<(), String> {
    check_servers(&p.servers)?;
    check_messages(&p.warnings)
}

fn check_messages(messages: &[String]) -> Result<(), String> {
    for m in messages {
        if m.chars().any(char::is_control) || m.len() > MESSAGE_MAX {
            return Err(format!("unescaped or long message: {m:?}"));
        }
    }
    Ok(())
}

fn check_servers(servers: &[Server]) -> Result<(), String> {
    let mut names = std::collections::HashSet::new();
    for s in servers {
        if !is_address(&s.name) && !is_host_name(&s.name) {
            return Err(format!(
                "server name {:?} is not a canonical address or host name",
                s.name
            ));
        }
        if s.name
            .chars()
            .any(|c| c.is_whitespace() || ";{}#\"'\\$".contains(c))
        {
            return Err(format!(
                "server name {:?} could change a config line",
                s.name
            ));
        }
        if !names.insert(&s.name) {
            return Err(format!("server {:?} listed twice", s.name));
        }
        if !(1..=MAX_WEIGHT).contains(&s.weight)
            || s.max_fails > MAX_FAILS
            || !(0..=MAX_FAIL_TIMEOUT).contains(&s.fail_timeout)
        {
            return Err(format!("numbers out of nginx's bounds: {s:?}"));
        }
    }
    // The dump file reads back as the same list, primaries first.
    let text = dump::render(servers, &[], true);
    let back = dump::parse(&text).map_err(|e| format!("the dump does not read back: {e}"))?;
    let mut expected: Vec<Server> = servers.iter().filter(|s| !s.backup).cloned().collect();
    expected.extend(servers.iter().filter(|s| s.backup).cloned());
    if back != expected {
        return Err(format!("the dump reads back differently:\n{text}"));
    }
    Ok(())
}

type Check = fn(&[u8]) -> Result<(), String>;

/// The targets: a name (the corpus folder) and what to run on an input.
const TARGETS: &[(&str, Check)] = &[
    ("consul_kv", |b| {
        check_list(
            &consul::parse_kv("upstreams/app/", b)
                .map_err(|e| e.0)
                .or_else(empty)?,
        )
    }),
    ("consul_catalog", |b| {
        check_list(&consul::parse_catalog(b).map_err(|e| e.0).or_else(empty)?)
    }),
    ("consul_health", |b| {
        check_list(&consul::parse_health(b).map_err(|e| e.0).or_else(empty)?)
    }),
    ("etcd_v2", |b| {
        let _ = etcd::v2_error(b);
        if let Err(e) = etcd::v2_event_index(b) {
            check_messages(&[e.0])?;
        }
        check_list(&etcd::parse_v2_dir(b).map_err(|e| e.0).or_else(empty)?)
    }),
    ("etcd_v3", |b| {
        match etcdv3::parse_range(b) {
            Ok((_, keys)) => check_list(&etcdv3::servers("/upstreams/app/", &keys))?,
            Err(e) => check_messages(&[e.0])?,
        }
        for line in b.split(|&c| c == b'\n') {
            match etcdv3::parse_watch_line(line) {
                Ok(etcdv3::WatchMessage::Ended(why)) => check_messages(&[why])?,
                Ok(_) => {}
                Err(e) => check_messages(&[e.0])?,
            }
        }
        if let Err(e) = etcdv3::parse_auth(b) {
            check_messages(&[e.0])?;
        }
        Ok(())
    }),
    ("http", check_http),
    ("dump", |b| {
        let text = String::from_utf8_lossy(b);
        if let Ok(servers) = dump::parse(&text) {
            // A file written by hand may hold any name; what the module
            // keeps of it (addresses and host names) must read back.
            let kept: Vec<Server> = servers
                .into_iter()
                .filter(|s| is_address(&s.name) || is_host_name(&s.name))
                .collect();
            check_servers(&kept)?;
        }
        Ok(())
    }),
    ("conf", |b| {
        let text = String::from_utf8_lossy(b);
        let args: Vec<&str> = text.split(' ').collect();
        if let Ok(c) = crate::conf::parse_upsync(&args) {
            let token = c.token.as_deref().unwrap_or("");
            let user = c.user.as_deref().unwrap_or("");
            let headers = [("X-Consul-Token", token), ("X-User", user)];
            let request = crate::http::build_request(
                "GET",
                &c.endpoints[0].authority,
                &c.path,
                &headers,
                b"",
            );
            let head = String::from_utf8_lossy(&request);
            let lines = head.matches("\r\n").count();
            let line_breaks = head.matches(['\r', '\n']).count();
            let request_line = head.split("\r\n").next().unwrap_or("");
            if lines != 8 || line_breaks != 16 || request_line.split(' ').count() != 3 {
                return Err(format!("the directive injects into the request: {head:?}"));
            }
        }
        Ok(())
    }),
];

fn empty(_: String) -> Result<Parsed, String> {
    Ok(Parsed::default())
}

/// One feed, byte by byte (or in small pieces) and in random pieces give
/// the same answer. Over-long lines may be judged by how they were split
/// (nginx reads 16 KiB at a time), so only inputs under 4 KiB compare.
fn check_http(b: &[u8]) -> Result<(), String> {
    use crate::http::ResponseParser;
    fn run(b: &[u8], piece: usize) -> String {
        let mut p = ResponseParser::new(1 << 20, false);
        let mut done = Ok(false);
        for chunk in b.chunks(piece.max(1)) {
            done = p.feed(chunk);
            if !matches!(done, Ok(false)) {
                break;
            }
        }
        if matches!(done, Ok(false)) {
            done = p.finish().map(|()| true);
        }
        match done {
            Ok(_) => format!("{:?} {:?}", p.status(), p.body()),
            Err(e) => format!("error {e:?}").chars().take(32).collect(),
        }
    }
    let whole = run(b, b.len());
    if b.len() < 4096 {
        for piece in [1, 7] {
            let split = run(b, piece);
            // Errors may differ in kind between feedings; acceptance may not.
            if whole.starts_with("error") != split.starts_with("error")
                || (!whole.starts_with("error") && whole != split)
            {
                return Err(format!(
                    "feeding {piece} bytes at a time: {split} vs {whole}"
                ));
            }
        }
    }
    Ok(())
}

/// Runs `check` on `input`: a panic, a broken oracle or a slow call is a
/// finding.
fn run_one(check: Check, input: &[u8]) -> Result<(), String> {
    let mut fastest = Duration::MAX;
    for _ in 0..3 {
        let start = Instant::now();
        match catch_unwind(AssertUnwindSafe(|| check(input))) {
            Ok(Ok(())) => {}
            Ok(Err(e)) => return Err(e),
            Err(_) => return Err("panic".into()),
        }
        fastest = fastest.min(start.elapsed());
        if fastest <= SLOW || input.len() >= SLOW_INPUT_MAX || cfg!(debug_assertions) {
            return Ok(());
        }
    }
    Err(format!(
        "{} ms on {} bytes",
        fastest.as_millis(),
        input.len()
    ))
}

fn corpus(target: &str) -> Vec<Vec<u8>> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz/corpus")
        .join(target);
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .map(|d| d.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    files.sort();
    let mut seeds: Vec<Vec<u8>> = files.iter().filter_map(|f| std::fs::read(f).ok()).collect();
    if seeds.is_empty() {
        seeds.push(Vec::new());
    }
    seeds
}

fn save_finding(target: &str, n: usize, input: &[u8]) -> String {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target/fuzz-findings");
    let _ = std::fs::create_dir_all(&dir);
    let path = dir.join(format!("{target}-{n}.bin"));
    let _ = std::fs::write(&path, input);
    path.display().to_string()
}

#[test]
fn fuzz() {
    // An unoptimised build (plain `cargo test`) runs the seeds only: its
    // times say nothing.
    let default_secs = if cfg!(debug_assertions) { 0 } else { 3 };
    let secs: u64 = std::env::var("UPSYNC_FUZZ_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(default_secs);
    let seed: u64 = std::env::var("UPSYNC_FUZZ_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1);
    let per_target =
        Duration::from_millis(secs * 1000 / TARGETS.len() as u64).max(Duration::from_millis(50));
    let mut findings = Vec::new();
    // A silent hook while panics are expected and caught.
    let hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    for (i, &(name, check)) in TARGETS.iter().enumerate() {
        let mut rng = Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ (i as u64 + 1));
        let seeds = corpus(name);
        let mut runs = 0usize;
        // The seeds as they are, then mutations until the time is up.
        for s in &seeds {
            if let Err(e) = run_one(check, s) {
                findings.push(format!(
                    "{name} (seed): {e} [{}]",
                    save_finding(name, findings.len(), s)
                ));
            }
        }
        let start = Instant::now();
        while secs > 0 && start.elapsed() < per_target && findings.len() < 20 {
            let base = if name == "consul_kv" && rng.below(4) == 0 {
                generated_kv(&mut rng)
            } else {
                rng.pick(&seeds).clone()
            };
            let other = rng.pick(&seeds).clone();
            let input = mutate(&mut rng, &base, &other);
            runs += 1;
            if let Err(e) = run_one(check, &input) {
                let e: String = e.chars().take(300).collect();
                findings.push(format!(
                    "{name}: {e} [{}]",
                    save_finding(name, findings.len(), &input)
                ));
            }
        }
        eprintln!("fuzz {name}: {} seeds, {runs} mutated inputs", seeds.len());
    }
    std::panic::set_hook(hook);
    assert!(
        findings.is_empty(),
        "fuzz findings (seed {seed}):\n{}",
        findings.join("\n")
    );
}
