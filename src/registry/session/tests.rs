//! The sessions' rules, one registry kind at a time: each test feeds
//! answers (as bytes through the HTTP parser), stream pieces and failures,
//! and checks the next request, when to poll, what was applied and logged.

use super::*;
use crate::conf::parse_upsync;

/// A sink that records, and answers `apply` with `applied`.
struct Record {
    applied: Applied,
    lists: Vec<Vec<String>>,
    logs: Vec<(Level, String)>,
}

impl Record {
    fn new() -> Self {
        Record {
            applied: Applied::Changed,
            lists: Vec::new(),
            logs: Vec::new(),
        }
    }

    fn take_logs(&mut self) -> Vec<(Level, String)> {
        std::mem::take(&mut self.logs)
    }
}

impl Sink for Record {
    fn apply(&mut self, servers: &[Server]) -> Applied {
        self.lists
            .push(servers.iter().map(|s| s.name.clone()).collect());
        self.applied
    }
    fn log(&mut self, level: Level, message: &str) {
        self.logs.push((level, message.to_string()));
    }
}

fn session(directive: &str) -> Session {
    let args: Vec<&str> = directive.split(' ').collect();
    Session::new(parse_upsync(&args).unwrap(), 1 << 20)
}

/// An answer as the parser reads it from the wire.
fn answer(status: u16, headers: &[(&str, &str)], body: &str) -> ResponseParser {
    let mut raw = format!("HTTP/1.1 {status} X\r\nContent-Length: {}\r\n", body.len());
    for (name, value) in headers {
        raw.push_str(&format!("{name}: {value}\r\n"));
    }
    raw.push_str("\r\n");
    raw.push_str(body);
    let mut p = ResponseParser::new(1 << 20, false);
    assert!(p.feed(raw.as_bytes()).unwrap(), "a complete answer");
    p
}

fn b64(s: &str) -> String {
    B64.encode(s)
}

fn kv(keys: &[&str]) -> String {
    let items: Vec<String> = keys
        .iter()
        .map(|k| format!(r#"{{"Key":"upstreams/app/{k}","Value":null}}"#))
        .collect();
    format!("[{}]", items.join(","))
}

const CONSUL: &str = "127.0.0.1:8500/v1/kv/upstreams/app/ upsync_type=consul upsync_interval=500ms upsync_timeout=18s";

#[test]
fn consul_blocks_on_the_index_of_the_last_answer() {
    let mut s = session(CONSUL);
    let mut r = Record::new();
    assert_eq!(s.next_request(true).target, "/v1/kv/upstreams/app/?recurse");
    let a = answer(200, &[("X-Consul-Index", "5")], &kv(&["10.0.0.1:80"]));
    assert_eq!(s.on_response(&a, 1000, &mut r), Next::Interval);
    assert_eq!(r.lists, [["10.0.0.1:80"]]);
    assert_eq!(
        s.next_request(true).target,
        "/v1/kv/upstreams/app/?recurse&index=5&wait=16s"
    );
    // The same index: nothing to apply.
    assert_eq!(s.on_response(&a, 2000, &mut r), Next::Interval);
    assert_eq!(r.lists.len(), 1);
    // A plain read (strong_dependency) never blocks.
    assert_eq!(
        s.next_request(false).target,
        "/v1/kv/upstreams/app/?recurse"
    );
    let st = s.status();
    assert_eq!(
        (
            st.position,
            st.syncs,
            st.changes,
            st.error_count(),
            st.last_ok
        ),
        (Some(5), 2, 1, 0, true)
    );
    assert_eq!(
        (st.last_sync_ms, st.last_change_ms),
        (Some(2000), Some(1000))
    );
}

#[test]
fn consul_index_rules() {
    // (answer's status, X-Consul-Index, then: the index of the next
    // request, when to poll, lists applied so far)
    let table: &[(u16, Option<&str>, &str, Next, usize)] = &[
        (200, Some("10"), "index=10", Next::Interval, 1),
        // Backwards (a rebuilt cluster): a full read next.
        (200, Some("3"), "", Next::Interval, 2),
        (200, Some("3"), "index=3", Next::Interval, 3),
        (200, Some("0"), "", Next::Interval, 4),
        // Index 0 is never blocked on.
        (200, Some("0"), "index=1", Next::Interval, 5),
        // No index: a full read next.
        (200, None, "", Next::Interval, 6),
        (200, Some("7"), "index=7", Next::Interval, 7),
        // 404: nothing under the prefix, but its return is seen at once.
        (404, Some("8"), "index=8", Next::Interval, 7),
        // An error: a full read, after a pause.
        (500, Some("9"), "", Next::Retry, 7),
    ];
    let mut s = session(CONSUL);
    let mut r = Record::new();
    for (i, &(status, index, next_index, next, lists)) in table.iter().enumerate() {
        let headers: Vec<(&str, &str)> = index.map(|i| ("X-Consul-Index", i)).into_iter().collect();
        let body = if status == 200 {
            kv(&["10.0.0.1:80"])
        } else {
            String::new()
        };
        assert_eq!(
            s.on_response(&answer(status, &headers, &body), 0, &mut r),
            next,
            "row {i}"
        );
        let target = s.next_request(true).target;
        if next_index.is_empty() {
            assert!(!target.contains("index="), "row {i}: {target}");
        } else {
            assert!(
                target.contains(&format!("&{next_index}&")),
                "row {i}: {target}"
            );
        }
        assert_eq!(r.lists.len(), lists, "row {i}");
    }
}

#[test]
fn consul_refused_lists_are_read_again() {
    let mut s = session(CONSUL);
    let mut r = Record::new();
    r.applied = Applied::Refused;
    let a = answer(200, &[("X-Consul-Index", "5")], &kv(&["10.0.0.1:80"]));
    assert_eq!(s.on_response(&a, 0, &mut r), Next::Retry);
    // Not blocking on index 5: the same answer is tried again.
    assert!(!s.next_request(true).target.contains("index="));
    assert_eq!(s.on_response(&a, 0, &mut r), Next::Retry);
    assert_eq!(r.lists.len(), 2);
    assert_eq!(s.status().errors, [0, 0, 0, 0, 2, 0]);
    assert!(!s.status().last_ok);
}

#[test]
fn consul_messages() {
    let mut s = session(
        "127.0.0.1:8500/upstreams/app/ upsync_type=consul upsync_interval=0 upsync_token=T0KEN",
    );
    let mut r = Record::new();
    let request = s.next_request(true);
    assert_eq!(request.headers, [("X-Consul-Token", "T0KEN".to_string())]);
    s.on_response(&answer(404, &[], ""), 0, &mut r);
    s.on_response(&answer(403, &[], "token T0KEN denied"), 0, &mut r);
    s.on_response(&answer(400, &[], "X-Consul-Token: T0KEN"), 0, &mut r);
    assert_eq!(
        s.on_failure(&Failure::Connect(None), 0, ", retrying in 100 ms", &mut r),
        Next::Retry
    );
    assert_eq!(
        r.take_logs(),
        [
            (
                Level::Warn,
                "registry has nothing under /upstreams/app/ (the path looks wrong: an \
                 upsync_type=consul path starts with /v1/kv/), keeping the last list"
                    .to_string()
            ),
            (
                Level::Error,
                "registry answered 403 for /upstreams/app/: token <secret> denied, keeping the last list"
                    .to_string()
            ),
            (
                Level::Error,
                "registry answered 400 for /upstreams/app/: (the body is not shown: it echoes \
                 the request's credentials), keeping the last list"
                    .to_string()
            ),
            // upsync_interval=0: a failure still waits.
            (
                Level::Error,
                "registry 127.0.0.1:8500: cannot connect, retrying in 100 ms".to_string()
            ),
        ]
    );
    assert_eq!(
        s.status().last_error.as_deref(),
        Some("registry 127.0.0.1:8500: cannot connect, retrying in 100 ms")
    );
    // Two bad statuses and a connection failure, by reason; the 404 is an
    // answer (nothing under the path).
    assert_eq!(s.status().errors, [1, 0, 2, 0, 0, 0]);
    assert_eq!((s.status().syncs, s.status().last_ok), (1, false));
}

#[test]
fn consul_many_bad_keys_make_a_few_lines() {
    let mut s = session(CONSUL);
    let mut r = Record::new();
    let bad: Vec<String> = (0..1000).map(|i| format!("bad-{i}")).collect();
    let mut keys: Vec<&str> = bad.iter().map(String::as_str).collect();
    keys.push("10.0.0.1:80");
    s.on_response(
        &answer(200, &[("X-Consul-Index", "5")], &kv(&keys)),
        0,
        &mut r,
    );
    let logs = r.take_logs();
    assert_eq!(logs.len(), 6);
    assert_eq!(
        logs[5].1,
        "995 more problems in the registry's answer, not shown"
    );
}

const ETCD2: &str = "127.0.0.1:2379/v2/keys/upstreams/app upsync_type=etcd upsync_interval=500ms upsync_user=u upsync_password=pw";

fn v2_dir(keys: &[&str]) -> String {
    let nodes: Vec<String> = keys
        .iter()
        .map(|k| format!(r#"{{"key":"/upstreams/app/{k}","value":""}}"#))
        .collect();
    format!(
        r#"{{"action":"get","node":{{"key":"/upstreams/app","dir":true,"nodes":[{}]}}}}"#,
        nodes.join(",")
    )
}

#[test]
fn etcd_v2_reads_then_watches_from_the_next_index() {
    let mut s = session(ETCD2);
    let mut r = Record::new();
    let request = s.next_request(true);
    assert_eq!(request.target, "/v2/keys/upstreams/app?recursive=true");
    assert_eq!(
        request.headers,
        [("Authorization", format!("Basic {}", b64("u:pw")))]
    );
    let read = answer(200, &[("X-Etcd-Index", "7")], &v2_dir(&["10.0.0.1:80"]));
    assert_eq!(s.on_response(&read, 0, &mut r), Next::Now);
    assert_eq!(r.lists, [["10.0.0.1:80"]]);
    assert_eq!(
        s.next_request(true).target,
        "/v2/keys/upstreams/app?wait=true&recursive=true&waitIndex=8"
    );
    // An event: a full read at once.
    let event = answer(
        200,
        &[],
        r#"{"action":"set","node":{"key":"/upstreams/app/10.0.0.2:80","modifiedIndex":9}}"#,
    );
    assert_eq!(s.on_response(&event, 0, &mut r), Next::Now);
    assert_eq!(
        s.next_request(true).target,
        "/v2/keys/upstreams/app?recursive=true"
    );
    assert_eq!(s.status().position, Some(7));
}

#[test]
fn etcd_v2_watch_rules() {
    let read = answer(200, &[("X-Etcd-Index", "7")], &v2_dir(&["10.0.0.1:80"]));
    let watch = "/v2/keys/upstreams/app?wait=true&recursive=true&waitIndex=8";
    let full = "/v2/keys/upstreams/app?recursive=true";
    // What ends the watch, then: when to poll, the next target, the log.
    let cleared = answer(
        400,
        &[],
        r#"{"errorCode":401,"message":"The event in requested index is outdated and cleared","index":20}"#,
    );
    type Case<'a> = (
        Result<ResponseParser, Failure>,
        Next,
        &'a str,
        Option<Level>,
    );
    let cases: Vec<Case> = vec![
        (Ok(cleared), Next::Now, full, Some(Level::Info)),
        (
            Ok(answer(500, &[], "boom")),
            Next::Retry,
            full,
            Some(Level::Error),
        ),
        (
            Ok(answer(200, &[], "not json")),
            Next::Retry,
            full,
            Some(Level::Error),
        ),
        // An idle watch is renewed from the same index.
        (
            Err(Failure::TimedOut(Phase::Read)),
            Next::Now,
            watch,
            Some(Level::Info),
        ),
        (Err(Failure::Recv), Next::Retry, full, Some(Level::Error)),
    ];
    for (i, (ended, next, target, level)) in cases.into_iter().enumerate() {
        let mut s = session(ETCD2);
        let mut r = Record::new();
        s.next_request(true);
        s.on_response(&read, 0, &mut r);
        assert_eq!(s.next_request(true).target, watch);
        let got = match ended {
            Ok(a) => s.on_response(&a, 0, &mut r),
            Err(f) => s.on_failure(&f, 0, "", &mut r),
        };
        assert_eq!(got, next, "case {i}");
        assert_eq!(s.next_request(true).target, target, "case {i}");
        assert_eq!(r.logs.first().map(|l| l.0), level, "case {i}: {:?}", r.logs);
    }
}

#[test]
fn etcd_v2_a_refused_list_is_read_again_without_a_watch() {
    let mut s = session(ETCD2);
    let mut r = Record::new();
    r.applied = Applied::Refused;
    let read = answer(200, &[("X-Etcd-Index", "7")], &v2_dir(&["10.0.0.1:80"]));
    assert_eq!(s.on_response(&read, 0, &mut r), Next::Retry);
    assert_eq!(
        s.next_request(true).target,
        "/v2/keys/upstreams/app?recursive=true"
    );
}

const ETCD3: &str = "127.0.0.1:2379/upstreams/app/ upsync_type=etcdv3 upsync_interval=500ms upsync_user=root upsync_password=pw";

fn range(revision: u64, keys: &[&str]) -> String {
    let kvs: Vec<String> = keys
        .iter()
        .map(|k| {
            format!(
                r#"{{"key":"{}","value":""}}"#,
                b64(&format!("/upstreams/app/{k}"))
            )
        })
        .collect();
    format!(
        r#"{{"header":{{"revision":"{revision}"}},"kvs":[{}]}}"#,
        kvs.join(",")
    )
}

fn put(revision: u64, key: &str) -> String {
    format!(
        r#"{{"result":{{"header":{{"revision":"{revision}"}},"events":[{{"kv":{{"key":"{}","value":""}}}}]}}}}"#,
        b64(&format!("/upstreams/app/{key}"))
    ) + "\n"
}

/// A v3 session past authentication and the first read, watching.
fn watching() -> (Session, Record) {
    let mut s = session(ETCD3);
    let mut r = Record::new();
    let auth = s.next_request(true);
    assert_eq!(
        (auth.target.as_str(), s.authenticating()),
        ("/v3/auth/authenticate", true)
    );
    assert_eq!(
        s.on_response(&answer(200, &[], r#"{"token":"TOK.1"}"#), 0, &mut r),
        Next::Now
    );
    let read = s.next_request(true);
    assert_eq!(read.target, "/v3/kv/range");
    assert!(read
        .headers
        .contains(&("Authorization", "TOK.1".to_string())));
    assert!(!read.streaming);
    assert_eq!(
        s.on_response(&answer(200, &[], &range(5, &["10.0.0.1:80"])), 0, &mut r),
        Next::Now
    );
    let watch = s.next_request(true);
    assert_eq!(watch.target, "/v3/watch");
    assert!(watch.streaming);
    assert!(
        String::from_utf8_lossy(&watch.body).contains("\"start_revision\":\"6\""),
        "{:?}",
        watch.body
    );
    (s, r)
}

#[test]
fn etcd_v3_authenticates_reads_and_watches() {
    let (mut s, mut r) = watching();
    assert_eq!(r.lists, [["10.0.0.1:80"]]);
    // A message in two pieces: progress only once it is whole.
    let event = put(6, "10.0.0.2:80");
    let (a, b) = event.split_at(20);
    assert_eq!(
        s.on_stream(a.as_bytes(), 0, &mut r),
        Stream::Open { progress: false }
    );
    assert_eq!(
        s.on_stream(b.as_bytes(), 0, &mut r),
        Stream::Open { progress: true }
    );
    assert_eq!(r.lists[1], ["10.0.0.1:80", "10.0.0.2:80"]);
    assert_eq!(s.status().position, Some(6));
    assert!(s.secrets().contains(&"TOK.1".to_string()));
}

#[test]
fn etcd_v3_watch_ends() {
    // (a message of the stream, then: its outcome, the next target, the log)
    let cases: &[(&str, Stream, &str, Option<Level>)] = &[
        (
            r#"{"result":{"header":{"revision":"9"},"canceled":true,"compact_revision":"8"}}"#,
            Stream::Ended(Next::Now),
            "/v3/kv/range",
            Some(Level::Info),
        ),
        (
            r#"{"result":{"canceled":true,"cancel_reason":"bye\n[emerg] forged"}}"#,
            Stream::Ended(Next::Now),
            "/v3/kv/range",
            Some(Level::Info),
        ),
        (
            r#"{"error":"boom"}"#,
            Stream::Ended(Next::Now),
            "/v3/kv/range",
            Some(Level::Info),
        ),
        (
            r#"{"nothing":1}"#,
            Stream::Ended(Next::Retry),
            "/v3/kv/range",
            Some(Level::Error),
        ),
        (
            r#"{"result":{"created":true}}"#,
            Stream::Open { progress: true },
            "/v3/watch",
            None,
        ),
        // A progress notification moves the revision, applies nothing.
        (
            r#"{"result":{"header":{"revision":"12"}}}"#,
            Stream::Open { progress: true },
            "/v3/watch",
            None,
        ),
    ];
    for (i, &(line, outcome, target, level)) in cases.iter().enumerate() {
        let (mut s, mut r) = watching();
        let got = s.on_stream(format!("{line}\n").as_bytes(), 0, &mut r);
        assert_eq!(got, outcome, "case {i}");
        assert_eq!(s.next_request(true).target, target, "case {i}");
        assert_eq!(r.logs.first().map(|l| l.0), level, "case {i}: {:?}", r.logs);
        assert!(
            r.logs.iter().all(|(_, m)| !m.contains('\n')),
            "case {i}: {:?}",
            r.logs
        );
        assert_eq!(r.lists.len(), 1, "case {i}");
    }
}

#[test]
fn etcd_v3_token_expiry_and_refusal() {
    let (mut s, mut r) = watching();
    // The token expired: authenticate again at once.
    let expired = answer(
        401,
        &[],
        r#"{"error":"etcdserver: invalid auth token","code":16}"#,
    );
    assert_eq!(s.on_response(&expired, 0, &mut r), Next::Now);
    assert_eq!(
        r.take_logs(),
        [(
            Level::Info,
            "etcd refused the token, authenticating again".to_string()
        )]
    );
    assert!(s.next_request(true).target.ends_with("/authenticate"));
    assert_eq!(
        s.on_response(&answer(200, &[], r#"{"token":"TOK.2"}"#), 0, &mut r),
        Next::Now
    );
    assert_eq!(s.next_request(true).target, "/v3/kv/range");
    // A brand new token refused: no loop, a pause.
    assert_eq!(s.on_response(&expired, 0, &mut r), Next::Retry);
    let logs = r.take_logs();
    assert_eq!(logs.len(), 1);
    assert!(
        logs[0]
            .1
            .starts_with("registry answered 401 for /upstreams/app/"),
        "{logs:?}"
    );
    // A refused authentication.
    assert!(s.next_request(true).target.ends_with("/authenticate"));
    let refused = answer(
        200,
        &[],
        r#"{"error":"etcdserver: authentication failed, invalid user ID or password","code":3}"#,
    );
    assert_eq!(s.on_response(&refused, 0, &mut r), Next::Retry);
    let logs = r.take_logs();
    assert!(
        logs[0]
            .1
            .starts_with("etcd authentication as \"root\" failed ("),
        "{logs:?}"
    );
    assert!(
        logs.iter()
            .all(|(_, m)| !m.contains("pw") && !m.contains("TOK.")),
        "{logs:?}"
    );
}

#[test]
fn etcd_v3_idle_watch_is_renewed_and_other_failures_read_again() {
    let (mut s, mut r) = watching();
    assert_eq!(
        s.on_failure(&Failure::TimedOut(Phase::Read), 0, "", &mut r),
        Next::Now
    );
    assert_eq!(
        r.take_logs(),
        [(Level::Info, "etcd watch idle, renewing it".to_string())]
    );
    assert_eq!(s.next_request(true).target, "/v3/watch");
    assert_eq!(s.on_failure(&Failure::Recv, 0, "", &mut r), Next::Retry);
    assert_eq!(s.next_request(true).target, "/v3/kv/range");
}

#[test]
fn etcd_v3_refused_lists_and_long_lines_read_again() {
    let (mut s, mut r) = watching();
    r.applied = Applied::Refused;
    assert_eq!(
        s.on_stream(put(6, "10.0.0.2:80").as_bytes(), 0, &mut r),
        Stream::Ended(Next::Retry)
    );
    assert_eq!(s.next_request(true).target, "/v3/kv/range");
    // A refused read: no watch, a pause, the range again.
    assert_eq!(
        s.on_response(&answer(200, &[], &range(7, &["10.0.0.3:80"])), 0, &mut r),
        Next::Retry
    );
    assert_eq!(s.next_request(true).target, "/v3/kv/range");

    let mut s = Session::new(
        parse_upsync(&ETCD3.split(' ').collect::<Vec<_>>()).unwrap(),
        64,
    );
    let mut r = Record::new();
    s.next_request(true);
    s.on_response(&answer(200, &[], r#"{"token":"T"}"#), 0, &mut r);
    s.next_request(true);
    s.on_response(&answer(200, &[], &range(5, &["10.0.0.1:80"])), 0, &mut r);
    s.next_request(true);
    assert_eq!(
        s.on_stream(&[b'x'; 100], 0, &mut r),
        Stream::Ended(Next::Retry)
    );
    assert_eq!(
        r.logs[0].1,
        "etcd watch: a streamed message is larger than 64 bytes, reading the list again"
    );
}

#[test]
fn which_failures_another_endpoint_may_not_have() {
    let mut s = session(
        "10.0.0.1:8500,10.0.0.2:8500/v1/kv/upstreams/app/ upsync_type=consul upsync_interval=500ms",
    );
    let mut r = Record::new();
    let ok = answer(200, &[("X-Consul-Index", "5")], &kv(&["10.0.0.1:80"]));
    let cases: [(ResponseParser, bool); 6] = [
        (answer(500, &[], "boom"), true),
        (answer(503, &[], "No cluster leader"), true),
        (answer(429, &[], "slow down"), true),
        (answer(403, &[], "ACL not found"), false),
        (answer(200, &[("X-Consul-Index", "6")], "[{"), true),
        (ok, false),
    ];
    for (i, (a, moves)) in cases.into_iter().enumerate() {
        s.on_response(&a, 0, &mut r);
        assert_eq!(s.status().endpoint_failed, moves, "case {i}");
    }
    r.applied = Applied::Refused;
    s.on_response(
        &answer(200, &[("X-Consul-Index", "7")], &kv(&["10.0.0.1:80"])),
        0,
        &mut r,
    );
    assert!(!s.status().endpoint_failed, "a refused list");
    s.set_endpoint("10.0.0.2:8500");
    s.on_failure(
        &Failure::Connect(None),
        0,
        ", trying 10.0.0.1:8500 next",
        &mut r,
    );
    assert!(s.status().endpoint_failed);
    assert_eq!(
        s.status().last_error.as_deref(),
        Some("registry 10.0.0.2:8500: cannot connect, trying 10.0.0.1:8500 next")
    );
    assert!(!s.renews(&Failure::TimedOut(Phase::Read)));
}
