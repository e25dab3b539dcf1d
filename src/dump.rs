//! The dump file: the C module's format, one `server` line per server, so
//! that nginx can `include` it in the upstream block and so that the module
//! can start from it when the registry is down.

use std::collections::HashSet;
use std::fmt;

use crate::server::{Server, MAX_FAILS, MAX_FAIL_TIMEOUT, MAX_WEIGHT};

/// The file's text: primary servers in list order (byte-compatible with the
/// C module), then backup servers, marked ` backup` (which the C module never
/// wrote, as it never kept backups apart). `backups`: the upstream's balancer
/// accepts `backup` (nginx refuses the word with `ip_hash`, `hash` and
/// `random`, so a dump that `include`s it would break `nginx -t`); without
/// it backup servers are left out, as such a balancer never uses them.
///
/// An address of a host name ends with the comment `# resolved from
/// NAME:PORT`; `unresolved` host names (no answer yet) are written as
/// comments, `# server NAME:PORT ...; # not resolved yet`. nginx, which
/// `include`s the file, reads addresses only (a name would make it resolve
/// at start, and not start while DNS is down); the module reads the names
/// back and resolves them again.
pub fn render(servers: &[Server], unresolved: &[Server], backups: bool) -> String {
    let mut out = String::new();
    for backup in [false, true] {
        if backup && !backups {
            break;
        }
        for s in servers.iter().filter(|s| s.backup == backup) {
            push_line(&mut out, s, backup);
            if let Some(host) = &s.host {
                out.push_str(" # ");
                out.push_str(RESOLVED_FROM);
                out.push_str(host);
            }
            out.push('\n');
        }
        for s in unresolved.iter().filter(|s| s.backup == backup) {
            out.push_str("# ");
            push_line(&mut out, s, backup);
            out.push_str(" # ");
            out.push_str(NOT_RESOLVED);
            out.push('\n');
        }
    }
    out
}

/// The comment after an address of a host name, before the name.
const RESOLVED_FROM: &str = "resolved from ";
/// The comment after a host name that has no address yet.
const NOT_RESOLVED: &str = "not resolved yet";

/// `server ...;` (` backup;` for a backup server), without the newline.
fn push_line(out: &mut String, s: &Server, backup: bool) {
    let mut line = String::new();
    s.write_line(&mut line);
    let line = line.trim_end_matches('\n');
    if backup {
        out.push_str(line.trim_end_matches(';'));
        out.push_str(" backup;");
    } else {
        out.push_str(line);
    }
}

/// What is wrong with a line, in nginx's words.
type Problem = String;

/// Why a dump file cannot be used.
#[derive(Debug)]
pub enum DumpError {
    /// A line nginx would refuse too.
    Line { line: usize, problem: String },
    /// The file cannot be read.
    Read(std::io::Error),
    /// Another user may have written it (see [`untrusted`]).
    Untrusted(String),
}

impl fmt::Display for DumpError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Line { line, problem } => write!(f, "line {line}: {problem}"),
            Self::Read(e) => write!(f, "cannot read it: {e}"),
            Self::Untrusted(why) => f.write_str(why),
        }
    }
}

impl std::error::Error for DumpError {}

/// Reads a dump file (or any file of `server` lines as nginx accepts them in
/// an upstream: `weight=`, `max_fails=`, `fail_timeout=`, `down`, `backup`).
/// Attributes that a line leaves out take nginx's defaults. Blank lines and
/// `#` comments are skipped. The first bad line is an error: `line N: ...`.
pub fn parse(text: &str) -> Result<Vec<Server>, DumpError> {
    let mut out: Vec<Server> = Vec::new();
    let mut names = HashSet::new();
    for (n, raw) in text.lines().enumerate() {
        let (line, comment) = raw.split_once('#').unwrap_or((raw, ""));
        let (line, comment) = (line.trim(), comment.trim());
        let at = |problem| DumpError::Line {
            line: n + 1,
            problem,
        };
        let server = if line.is_empty() {
            // A host name the module wrote before it had an address; any
            // other comment is skipped.
            let Some(name) = comment
                .strip_suffix(NOT_RESOLVED)
                .and_then(|c| c.trim_end().strip_suffix('#'))
                .and_then(|c| parse_line(c.trim()).ok())
                .filter(|s| crate::registry::is_host_name(&s.name))
            else {
                continue;
            };
            name
        } else {
            let mut server = parse_line(line).map_err(at)?;
            server.host = comment
                .strip_prefix(RESOLVED_FROM)
                .map(str::trim)
                .filter(|h| crate::registry::is_host_name(h))
                .map(str::to_string);
            server
        };
        if !names.insert(server.name.clone()) {
            return Err(at(format!("duplicate server \"{}\"", server.name)));
        }
        out.push(server);
    }
    Ok(out)
}

/// One line; the error is the problem, for [`DumpError::Line`].
fn parse_line(line: &str) -> Result<Server, Problem> {
    let Some(body) = line.strip_suffix(';') else {
        return Err("missing \";\"".into());
    };
    let mut words = body.split_whitespace();
    if words.next() != Some("server") {
        return Err("expected \"server\"".into());
    }
    let name = words.next().ok_or("missing address")?;
    let mut s = Server::nginx_default(name.to_string());
    for word in words {
        let bad = || format!("invalid parameter \"{word}\"");
        // What nginx accepts, with the module's caps (see `server`).
        match word.split_once('=') {
            Some(("weight", v)) => {
                let w: i64 = v.parse().ok().filter(|w| *w > 0).ok_or_else(bad)?;
                s.weight = w.min(MAX_WEIGHT);
            }
            Some(("max_fails", v)) => {
                s.max_fails = v.parse().ok().filter(|n| *n <= MAX_FAILS).ok_or_else(bad)?
            }
            Some(("fail_timeout", v)) => {
                let secs = crate::conf::parse_time_secs(v).ok_or_else(bad)?;
                s.fail_timeout = secs.min(MAX_FAIL_TIMEOUT);
            }
            None if word == "down" => s.down = true,
            None if word == "backup" => s.backup = true,
            _ => return Err(bad()),
        }
    }
    Ok(s)
}

/// Why a dump file found at start must not be trusted, if it must not: a
/// file another user may have planted or may change. `owners` are the users
/// that may own it (root, the master's user, the workers' user).
pub fn untrusted(meta: &std::fs::Metadata, owners: &[u32]) -> Option<String> {
    use std::os::unix::fs::MetadataExt;
    if !owners.contains(&meta.uid()) {
        return Some(format!(
            "it is owned by uid {}, not by root or nginx's user",
            meta.uid()
        ));
    }
    if meta.mode() & 0o002 != 0 {
        return Some("anyone may write to it".into());
    }
    None
}

/// A dump file read at start: the servers to start with, the host names
/// to resolve (with no address yet), and the names left out because they
/// are neither (a file edited by hand).
#[derive(Debug)]
pub struct Loaded {
    pub servers: Vec<Server>,
    pub unresolved: Vec<Server>,
    pub left_out: Vec<String>,
}

/// Reads the dump file at `path` for a start: `None` when there is none,
/// an error when it cannot be read, is not to be trusted (see
/// [`untrusted`]; `owners` may own it) or holds a line nginx refuses.
pub fn load(path: &str, owners: &[u32]) -> Result<Option<Loaded>, DumpError> {
    let mut file = match std::fs::File::open(path) {
        Ok(file) => file,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(DumpError::Read(e)),
    };
    let meta = file.metadata().map_err(DumpError::Read)?;
    if let Some(why) = untrusted(&meta, owners) {
        return Err(DumpError::Untrusted(why));
    }
    let mut text = String::new();
    std::io::Read::read_to_string(&mut file, &mut text).map_err(DumpError::Read)?;
    let (servers, others) = parse(&text)?
        .into_iter()
        .partition::<Vec<_>, _>(|s| crate::registry::is_address(&s.name));
    let (unresolved, left_out) = others
        .into_iter()
        .partition::<Vec<_>, _>(|s| crate::registry::is_host_name(&s.name));
    Ok(Some(Loaded {
        servers,
        unresolved,
        left_out: left_out.into_iter().map(|s| s.name).collect(),
    }))
}

/// Replaces the file at `path` with `text` atomically: a new file of mode
/// 0644 under an unpredictable name in the same directory, created
/// exclusively and never through a symbolic link, then renamed over the old
/// one. A reader (or nginx after a crash) sees the old file or the new one,
/// never half, and nothing planted in the directory is written through.
pub fn write_atomic(path: &str, text: &str) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};

    let tmp = format!("{path}.tmp.{:016x}", unpredictable());
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .mode(0o644)
        .open(&tmp)?;
    let result = (|| {
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

/// 64 bits from the kernel's random source (a temporary file's name must
/// not be guessable); the clock and the pid if it cannot be read.
fn unpredictable() -> u64 {
    use std::io::Read;
    let mut bytes = [0u8; 8];
    match std::fs::File::open("/dev/urandom").and_then(|mut f| f.read_exact(&mut bytes)) {
        Ok(()) => u64::from_ne_bytes(bytes),
        Err(_) => {
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos() as u64);
            now ^ u64::from(std::process::id()).rotate_left(32)
        }
    }
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
        assert_eq!(render(&servers, &[], true), text);
    }

    #[test]
    fn backups_come_last_and_are_marked() {
        let text = "server [::1]:1 backup;\nserver 10.0.0.1:80;\n";
        let servers = parse(text).unwrap();
        assert!(servers[0].backup);
        assert_eq!(
            render(&servers, &[], true),
            "server 10.0.0.1:80 weight=1 max_fails=1 fail_timeout=10s;\n\
             server [::1]:1 weight=1 max_fails=1 fail_timeout=10s backup;\n"
        );
        assert_eq!(
            render(&servers, &[], false),
            "server 10.0.0.1:80 weight=1 max_fails=1 fail_timeout=10s;\n",
            "no backup line where the balancer refuses the word"
        );
    }

    #[test]
    fn nginx_defaults_comments_and_errors() {
        let servers = parse("# dumped\n\n  server 10.0.0.1:80 fail_timeout=1m;  # x\n").unwrap();
        assert_eq!(servers[0].max_fails, 1);
        assert_eq!(servers[0].fail_timeout, 60);
        assert_eq!(
            parse("server 10.0.0.1:80").unwrap_err().to_string(),
            "line 1: missing \";\""
        );
        assert_eq!(
            parse("\nserver 10.0.0.1:80 weight=0;")
                .unwrap_err()
                .to_string(),
            "line 2: invalid parameter \"weight=0\""
        );
        assert_eq!(
            parse("upstream x;").unwrap_err().to_string(),
            "line 1: expected \"server\""
        );
        assert_eq!(
            parse("server a:1;\nserver a:1;").unwrap_err().to_string(),
            "line 2: duplicate server \"a:1\""
        );
        assert!(parse("").unwrap().is_empty());
    }

    #[test]
    fn host_names_keep_their_addresses_and_come_back() {
        let mut a = Server::registry_default("10.0.0.1:80".into());
        a.host = Some("api.test:80".into());
        let mut b = Server::registry_default("10.0.0.2:80".into());
        b.host = Some("api.test:80".into());
        let ip = Server::registry_default("10.0.0.3:80".into());
        let mut pending = Server::registry_default("new.test:81".into());
        pending.weight = 5;
        let mut pending_backup = Server::registry_default("spare.test:82".into());
        pending_backup.backup = true;
        let text = render(
            &[a.clone(), ip.clone(), b.clone()],
            &[pending.clone(), pending_backup.clone()],
            true,
        );
        assert_eq!(
            text,
            "server 10.0.0.1:80 weight=1 max_fails=2 fail_timeout=10s; # resolved from api.test:80\n\
             server 10.0.0.3:80 weight=1 max_fails=2 fail_timeout=10s;\n\
             server 10.0.0.2:80 weight=1 max_fails=2 fail_timeout=10s; # resolved from api.test:80\n\
             # server new.test:81 weight=5 max_fails=2 fail_timeout=10s; # not resolved yet\n\
             # server spare.test:82 weight=1 max_fails=2 fail_timeout=10s backup; # not resolved yet\n"
        );
        assert_eq!(parse(&text).unwrap(), [a, ip, b, pending, pending_backup]);
        // Other comments stay comments; a tag naming no host name is ignored.
        let odd = "# server x.test:1; # not resolved\n# server 10.0.0.9:1; # not resolved yet\n\
                   server 10.0.0.4:80; # resolved from 10.0.0.5:80\n";
        assert_eq!(
            parse(odd).unwrap(),
            [Server::nginx_default("10.0.0.4:80".into())]
        );
    }

    #[test]
    fn what_the_module_writes_it_reads_back() {
        let big = Server {
            name: "10.0.0.1:80".into(),
            weight: MAX_WEIGHT,
            max_fails: MAX_FAILS,
            fail_timeout: MAX_FAIL_TIMEOUT,
            down: true,
            backup: false,
            host: None,
        };
        let text = render(std::slice::from_ref(&big), &[], true);
        assert_eq!(parse(&text).unwrap(), vec![big]);
        // nginx's own bounds: what it accepts is read, capped; what it
        // refuses is refused.
        let s = parse("server a:1 weight=9223372036854775807 fail_timeout=9223372036854775807s;")
            .unwrap();
        assert_eq!(
            (s[0].weight, s[0].fail_timeout),
            (MAX_WEIGHT, MAX_FAIL_TIMEOUT)
        );
        assert!(parse("server a:1 max_fails=9223372036854775808;").is_err());
        assert!(parse("server a:1 fail_timeout=-1s;").is_err());
    }

    #[test]
    fn a_planted_link_is_never_written_through() {
        let dir = std::env::temp_dir().join(format!("upsync-dump-link-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let victim = dir.join("victim");
        std::fs::write(&victim, "kept\n").unwrap();
        let path = dir.join("servers.conf");
        let path = path.to_str().unwrap();
        // The names the C module and earlier versions used, planted.
        std::os::unix::fs::symlink(&victim, format!("{path}.tmp.{}", std::process::id())).unwrap();
        write_atomic(path, "new\n").unwrap();
        assert_eq!(std::fs::read_to_string(&victim).unwrap(), "kept\n");
        assert_eq!(std::fs::read_to_string(path).unwrap(), "new\n");
        assert!(!std::fs::symlink_metadata(path)
            .unwrap()
            .file_type()
            .is_symlink());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn load_keeps_the_addresses_of_a_trusted_file() {
        let dir = std::env::temp_dir().join(format!("upsync-dump-load-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("servers.conf");
        let path = path.to_str().unwrap();
        assert!(load(path, &[]).unwrap().is_none(), "no file, no list");
        std::fs::write(
            path,
            "server backend.example.com:80;\nserver 10.0.0.1:80;\nserver bad_name:80;\n",
        )
        .unwrap();
        let me = std::os::unix::fs::MetadataExt::uid(&std::fs::metadata(path).unwrap());
        let loaded = load(path, &[me]).unwrap().unwrap();
        assert_eq!(
            loaded.servers,
            [Server::nginx_default("10.0.0.1:80".into())]
        );
        assert_eq!(
            loaded.unresolved,
            [Server::nginx_default("backend.example.com:80".into())]
        );
        assert_eq!(loaded.left_out, ["bad_name:80"]);
        assert!(matches!(
            load(path, &[me + 1]),
            Err(DumpError::Untrusted(_))
        ));
        std::fs::write(path, "server 10.0.0.1:80 weight=0;\n").unwrap();
        assert_eq!(
            load(path, &[me]).unwrap_err().to_string(),
            "line 1: invalid parameter \"weight=0\""
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn files_others_may_write_are_not_trusted() {
        use std::os::unix::fs::PermissionsExt;
        let dir = std::env::temp_dir().join(format!("upsync-dump-owner-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("servers.conf");
        std::fs::write(&path, "").unwrap();
        let meta = std::fs::metadata(&path).unwrap();
        let me = std::os::unix::fs::MetadataExt::uid(&meta);
        assert_eq!(untrusted(&meta, &[me]), None);
        assert!(untrusted(&meta, &[me + 1])
            .unwrap()
            .contains("owned by uid"));
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o646)).unwrap();
        let meta = std::fs::metadata(&path).unwrap();
        assert_eq!(untrusted(&meta, &[me]).unwrap(), "anyone may write to it");
        std::fs::remove_dir_all(&dir).unwrap();
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
