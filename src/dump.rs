//! The dump file: the C module's format, one `server` line per server, so
//! that nginx can `include` it in the upstream block and so that the module
//! can start from it when the registry is down.

use crate::server::Server;

/// The file's text: primary servers in list order (byte-compatible with the
/// C module), then backup servers, marked ` backup` (which the C module never
/// wrote, as it never kept backups apart).
pub fn render(servers: &[Server]) -> String {
    let mut out = String::new();
    for s in servers.iter().filter(|s| !s.backup) {
        s.write_line(&mut out);
    }
    for s in servers.iter().filter(|s| s.backup) {
        let mut line = String::new();
        s.write_line(&mut line);
        out.push_str(line.trim_end_matches(";\n"));
        out.push_str(" backup;\n");
    }
    out
}

/// Reads a dump file (or any file of `server` lines as nginx accepts them in
/// an upstream: `weight=`, `max_fails=`, `fail_timeout=`, `down`, `backup`).
/// Attributes that a line leaves out take nginx's defaults. Blank lines and
/// `#` comments are skipped. The first bad line is an error: `line N: ...`.
pub fn parse(text: &str) -> Result<Vec<Server>, String> {
    let mut out: Vec<Server> = Vec::new();
    for (n, raw) in text.lines().enumerate() {
        let line = raw.split('#').next().unwrap_or("").trim();
        if line.is_empty() {
            continue;
        }
        let server = parse_line(line).map_err(|e| format!("line {}: {e}", n + 1))?;
        if out.iter().any(|s| s.name == server.name) {
            return Err(format!(
                "line {}: duplicate server \"{}\"",
                n + 1,
                server.name
            ));
        }
        out.push(server);
    }
    Ok(out)
}

fn parse_line(line: &str) -> Result<Server, String> {
    let Some(body) = line.strip_suffix(';') else {
        return Err("missing \";\"".into());
    };
    let mut words = body.split_whitespace();
    if words.next() != Some("server") {
        return Err("expected \"server\"".into());
    }
    let name = words.next().ok_or("missing address")?;
    let mut s = Server {
        name: name.to_string(),
        weight: 1,
        max_fails: 1,
        fail_timeout: 10,
        down: false,
        backup: false,
    };
    for word in words {
        let bad = || format!("invalid parameter \"{word}\"");
        match word.split_once('=') {
            Some(("weight", v)) => s.weight = v.parse().ok().filter(|w| *w > 0).ok_or_else(bad)?,
            Some(("max_fails", v)) => s.max_fails = v.parse().map_err(|_| bad())?,
            Some(("fail_timeout", v)) => {
                let ms = crate::conf::parse_time_ms(v).ok_or_else(bad)?;
                s.fail_timeout = i64::try_from(ms / 1000).map_err(|_| bad())?;
            }
            None if word == "down" => s.down = true,
            None if word == "backup" => s.backup = true,
            _ => return Err(bad()),
        }
    }
    Ok(s)
}

/// Replaces the file at `path` with `text` atomically: a temporary file in
/// the same directory, mode 0644, renamed over the old one, so that a reader
/// (or nginx after a crash) sees the old file or the new one, never half.
pub fn write_atomic(path: &str, text: &str) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};

    let tmp = format!("{path}.tmp.{}", std::process::id());
    let result = (|| {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o644)
            .open(&tmp)?;
        f.write_all(text.as_bytes())?;
        // The mode given at creation is subject to the umask: set it exactly.
        f.set_permissions(std::fs::Permissions::from_mode(0o644))?;
        f.sync_data()?;
        std::fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_in_the_c_format() {
        let text = "server 127.0.0.1:8088 weight=40 max_fails=3 fail_timeout=20s down;\n\
                    server 127.0.0.1:8089 weight=1 max_fails=2 fail_timeout=10s;\n";
        let servers = parse(text).unwrap();
        assert_eq!(servers.len(), 2);
        assert!(servers[0].down);
        assert_eq!(render(&servers), text);
    }

    #[test]
    fn backups_come_last_and_are_marked() {
        let text = "server [::1]:1 backup;\nserver 10.0.0.1:80;\n";
        let servers = parse(text).unwrap();
        assert!(servers[0].backup);
        assert_eq!(
            render(&servers),
            "server 10.0.0.1:80 weight=1 max_fails=1 fail_timeout=10s;\n\
             server [::1]:1 weight=1 max_fails=1 fail_timeout=10s backup;\n"
        );
    }

    #[test]
    fn nginx_defaults_comments_and_errors() {
        let servers = parse("# dumped\n\n  server 10.0.0.1:80 fail_timeout=1m;  # x\n").unwrap();
        assert_eq!(servers[0].max_fails, 1);
        assert_eq!(servers[0].fail_timeout, 60);
        assert_eq!(
            parse("server 10.0.0.1:80").unwrap_err(),
            "line 1: missing \";\""
        );
        assert_eq!(
            parse("\nserver 10.0.0.1:80 weight=0;").unwrap_err(),
            "line 2: invalid parameter \"weight=0\""
        );
        assert_eq!(
            parse("upstream x;").unwrap_err(),
            "line 1: expected \"server\""
        );
        assert_eq!(
            parse("server a:1;\nserver a:1;").unwrap_err(),
            "line 2: duplicate server \"a:1\""
        );
        assert_eq!(parse("").unwrap(), vec![]);
    }

    #[test]
    fn atomic_write_replaces_with_mode_0644() {
        use std::os::unix::fs::PermissionsExt;
        let dir = std::env::temp_dir().join(format!("upsync-dump-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("servers.conf");
        let path = path.to_str().unwrap();
        write_atomic(path, "old\n").unwrap();
        write_atomic(path, "new\n").unwrap();
        assert_eq!(std::fs::read_to_string(path).unwrap(), "new\n");
        let mode = std::fs::metadata(path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o644);
        assert_eq!(
            std::fs::read_dir(&dir).unwrap().count(),
            1,
            "no temporary file is left"
        );
        assert!(write_atomic(dir.join("no/such/dir").to_str().unwrap(), "x").is_err());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
