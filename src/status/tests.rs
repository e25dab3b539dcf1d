use super::*;
use crate::registry::session::REASONS;

fn server(name: &str, backup: bool) -> Server {
    Server {
        name: name.into(),
        weight: 2,
        max_fails: 1,
        fail_timeout: 10,
        down: false,
        backup,
        host: None,
    }
}

fn peer(name: &str, backup: bool, state: State) -> Peer {
    Peer {
        server: server(name, backup),
        state,
        active: 3,
        max_conns: 0,
        health: None,
    }
}

fn synced(mode: Mode, records: Vec<Record>) -> Upstream {
    Upstream {
        name: "backend".into(),
        peers: vec![
            peer("10.0.0.1:80", false, State::Up),
            peer("10.0.0.2:80", false, State::Down),
            peer("10.0.0.3:80", true, State::Unavail),
        ],
        zone: (mode == Mode::Zone).then(|| "backend".to_string()),
        sync: Some(Sync {
            kind: "consul",
            registry: "127.0.0.1:8500/v1/kv/upstreams/backend/".into(),
            mode,
            interval_ms: 500,
            timeout_ms: 360_000,
            dump_path: "/var/lib/upsync/backend.conf".into(),
            records,
        }),
    }
}

fn record(worker: usize, pid: u64, syncs: u64) -> Record {
    Record {
        worker,
        pid,
        position: Some(40 + worker as u64),
        syncs,
        changes: 1,
        errors: [1, 0, 2, 0, 0, 0],
        last_ok: true,
        last_sync_ms: Some(1_764_612_345_123 + worker as u64),
        last_change_ms: Some(1_764_612_000_000),
        last_error: Some((1_764_611_000_000, format!("worker {worker} failed"))),
        dump_written_ms: None,
    }
}

#[test]
fn queries() {
    let q = |s: &[u8]| parse_query(s, Format::Text);
    // The C module's form: the whole string is the name.
    assert_eq!(
        q(b"Backend").unwrap(),
        Query {
            format: Format::Text,
            upstream: Some(b"Backend".to_vec())
        }
    );
    assert_eq!(q(b"").unwrap().upstream, None);
    assert_eq!(
        parse_query(b"", Format::Prometheus).unwrap().format,
        Format::Prometheus
    );
    assert_eq!(
        q(b"format=json&upstream=my%20app").unwrap(),
        Query {
            format: Format::Json,
            upstream: Some(b"my app".to_vec())
        }
    );
    assert_eq!(q(b"upstream=a+b&").unwrap().upstream, Some(b"a b".to_vec()));
    assert_eq!(
        q(b"upstream=100%").unwrap().upstream,
        Some(b"100%".to_vec())
    );
    assert_eq!(
        q(b"format=xml").unwrap_err(),
        "unknown format \"xml\": use text, json or prometheus"
    );
    assert_eq!(
        q(b"format=json&verbose=1").unwrap_err(),
        "unknown option \"verbose\": the options are format and upstream"
    );
    assert_eq!(
        q(b"format=json&backend").unwrap_err(),
        "\"backend\" is not an option: use key=value"
    );
    assert!(q(b"format=\x01").unwrap_err().contains("\\x01"));
}

#[test]
fn times() {
    assert_eq!(iso8601(0), "1970-01-01T00:00:00.000Z");
    assert_eq!(iso8601(1_764_612_345_123), "2025-12-01T18:05:45.123Z");
    assert_eq!(iso8601(951_782_400_000), "2000-02-29T00:00:00.000Z");
    assert_eq!(iso8601(4_107_542_399_999), "2100-02-28T23:59:59.999Z");
    assert_eq!(duration(500), "500ms");
    assert_eq!(duration(360_000), "360s");
}

#[test]
fn json_zone() {
    let u = synced(Mode::Zone, vec![record(0, 4242, 7)]);
    let v: Value = serde_json::from_str(&json(std::slice::from_ref(&u), None)).unwrap();
    let b = &v["backend"];
    assert_eq!(b["zone"], "backend");
    assert_eq!(b["peers"].as_array().unwrap().len(), 3);
    assert_eq!(
        b["peers"][2],
        json!({"id": 2, "server": "10.0.0.3:80", "name": "10.0.0.3:80", "backup": true,
               "weight": 2, "state": "unavail", "active": 3, "max_conns": 0,
               "max_fails": 1, "fail_timeout": "10s", "down": false})
    );
    let s = &b["upsync"];
    assert_eq!(s["mode"], "zone");
    assert_eq!(s["poller_pid"], 4242);
    assert_eq!(s["interval"], "500ms");
    assert_eq!(s["index"], 40);
    assert_eq!(s["syncs"], 7);
    assert_eq!(s["errors"], 3);
    assert_eq!(s["errors_by_reason"]["http"], 2);
    assert_eq!(s["last_sync"], "2025-12-01T18:05:45.123Z");
    assert_eq!(s["last_error"]["text"], "worker 0 failed");
    assert_eq!(s["dump_written"], Value::Null);
    assert!(s.get("workers").is_none());
    // One upstream: its bare object.
    let one: Value = serde_json::from_str(&json(&[], Some(&u))).unwrap();
    assert_eq!(&one, b);
}

#[test]
fn json_per_worker_sums_the_workers() {
    let mut idle = Record {
        worker: 2,
        ..Record::default()
    };
    idle.errors = [0; REASONS];
    let u = synced(
        Mode::Worker,
        vec![record(0, 100, 5), record(1, 101, 6), idle],
    );
    let v: Value = serde_json::from_str(&json(&[u], None)).unwrap();
    let s = &v["backend"]["upsync"];
    assert_eq!(
        (s["syncs"].clone(), s["errors"].clone()),
        (json!(11), json!(6))
    );
    assert_eq!(s["index"], 41);
    assert_eq!(s["last_sync"], "2025-12-01T18:05:45.124Z");
    assert_eq!(s["last_sync_successful"], true);
    assert!(s.get("poller_pid").is_none());
    let workers = s["workers"].as_array().unwrap();
    assert_eq!(workers.len(), 3);
    assert_eq!(
        (workers[1]["worker"].clone(), workers[1]["pid"].clone()),
        (json!(1), json!(101))
    );
    assert_eq!(workers[2]["last_sync"], Value::Null);
    assert!(v["backend"].get("zone").is_none());
}

#[test]
fn prometheus_text() {
    let mut zone = synced(Mode::Zone, vec![record(0, 4242, 7)]);
    zone.name = "a\"b".into();
    let worker = synced(Mode::Worker, vec![record(0, 100, 5), record(1, 101, 6)]);
    let plain = Upstream {
        name: "static".into(),
        peers: vec![
            peer("127.0.0.1:81", false, State::Up),
            peer("127.0.0.1:81", false, State::Up),
        ],
        zone: None,
        sync: None,
    };
    let out = prometheus(&[&zone, &worker, &plain]);
    for line in [
        "nginx_upsync_upstream_servers{upstream=\"static\"} 2",
        "nginx_upsync_upstream_server_state{upstream=\"backend\",server=\"10.0.0.2:80\"} 3",
        "nginx_upsync_upstream_server_state{upstream=\"backend\",server=\"10.0.0.3:80\"} 4",
        "nginx_upsync_upstream_server_backup{upstream=\"backend\",server=\"10.0.0.3:80\"} 1",
        "nginx_upsync_upstream_server_state{upstream=\"a\\\"b\",server=\"10.0.0.1:80\"} 1",
        "nginx_upsync_syncs_total{upstream=\"a\\\"b\"} 7",
        "nginx_upsync_syncs_total{upstream=\"backend\",worker=\"1\"} 6",
        "nginx_upsync_sync_errors_total{upstream=\"backend\",worker=\"0\",reason=\"connect\"} 1",
        "nginx_upsync_sync_errors_total{upstream=\"a\\\"b\",reason=\"refused\"} 0",
        "nginx_upsync_last_sync_success_timestamp_seconds{upstream=\"a\\\"b\"} 1764612345.123",
        "nginx_upsync_registry_index{upstream=\"backend\",worker=\"1\"} 41",
        "nginx_upsync_poller_pid{upstream=\"a\\\"b\"} 4242",
        "nginx_upsync_upstream_info{upstream=\"backend\",type=\"consul\",mode=\"worker\"} 1",
        "# TYPE nginx_upsync_changes_total counter",
    ] {
        assert!(out.lines().any(|l| l == line), "{line} missing from\n{out}");
    }
    // A server listed twice shows once; no dump written yet, no sample.
    assert_eq!(
        out.matches("nginx_upsync_upstream_server_weight{upstream=\"static\"")
            .count(),
        1
    );
    assert!(!out.contains("nginx_upsync_dump_last_write_timestamp_seconds{"));
    // Each family once, contiguous.
    let mut names: Vec<&str> = out
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .map(|l| l.split(' ').next().unwrap())
        .collect();
    let n = names.len();
    names.dedup();
    assert_eq!(names.len(), n);
    // Static upstreams only: no sync families.
    assert!(!prometheus(&[&plain]).contains("syncs_total"));
}

#[test]
fn health_checks_as_nginx_plus_reports_them() {
    let mut p = peer("10.0.0.9:80", false, State::Unhealthy);
    p.health = Some(Health {
        checks: 12,
        fails: 4,
        unhealthy: 1,
        last_passed: false,
        downtime_ms: 1500,
        downstart_ms: Some(1_700_000_000_000),
    });
    let u = Upstream {
        name: "checked".into(),
        peers: vec![p, peer("10.0.0.8:80", false, State::Checking)],
        zone: None,
        sync: None,
    };
    let v: serde_json::Value = serde_json::from_str(&json(std::slice::from_ref(&u), None)).unwrap();
    let peer = &v["checked"]["peers"][0];
    assert_eq!(peer["state"], "unhealthy");
    assert_eq!(
        peer["health_checks"],
        serde_json::json!({"checks": 12, "fails": 4, "unhealthy": 1, "last_passed": false})
    );
    assert_eq!(peer["downtime"], 1500);
    assert_eq!(peer["downstart"], "2023-11-14T22:13:20.000Z");
    assert_eq!(v["checked"]["peers"][1]["state"], "checking");
    assert!(v["checked"]["peers"][1].get("health_checks").is_none());
    let text = prometheus(&[&u]);
    assert!(text.contains(
        "nginx_upsync_upstream_server_health_checks_total{upstream=\"checked\",server=\"10.0.0.9:80\"} 12\n"
    ));
    assert!(text.contains("# TYPE nginx_upsync_upstream_server_unhealthy_total counter\n"));
    assert!(text.contains(
        "nginx_upsync_upstream_server_state{upstream=\"checked\",server=\"10.0.0.9:80\"} 6\n"
    ));
    assert!(!text.contains("health_checks_total{upstream=\"checked\",server=\"10.0.0.8:80\"}"));
}
