//! The `check` family of directives, parsed as nginx_upstream_check_module
//! parses them: the same parameters, defaults, rules and messages.
//!
//! An upstream collects its directives in a [`CheckDirectives`], in any
//! order, and [`CheckDirectives::finish`] makes the [`CheckSpec`] its
//! probes run with. Messages are ready to follow the directive name in
//! nginx's error; warnings are returned next to a success, for the nginx
//! layer to log with the file and line.

use super::probe;
use super::status::Format;

/// The check types (`type=`), with the C module's names.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum CheckType {
    /// Connect only.
    Tcp,
    /// Send `check_http_send`, judge the status line.
    Http,
    /// Send a TLS ClientHello, expect a ServerHello.
    SslHello,
    /// Expect the server's greeting.
    Mysql,
    /// Send an AJP CPING, expect a CPONG.
    Ajp,
    /// Send a FastCGI request, expect a STDOUT record.
    Fastcgi,
}

impl CheckType {
    /// The type named in `type=`; case-sensitive, as in C.
    pub fn from_name(name: &str) -> Option<Self> {
        Some(match name {
            "tcp" => Self::Tcp,
            "http" => Self::Http,
            "ssl_hello" => Self::SslHello,
            "mysql" => Self::Mysql,
            "ajp" => Self::Ajp,
            "fastcgi" => Self::Fastcgi,
            _ => return None,
        })
    }

    pub fn name(self) -> &'static str {
        match self {
            Self::Tcp => "tcp",
            Self::Http => "http",
            Self::SslHello => "ssl_hello",
            Self::Mysql => "mysql",
            Self::Ajp => "ajp",
            Self::Fastcgi => "fastcgi",
        }
    }

    /// The status classes that pass without `check_http_expect_alive`:
    /// 2xx and 3xx for http; none for fastcgi, where any STDOUT passes.
    pub fn default_expect(self) -> Expect {
        match self {
            Self::Http => Expect::HTTP_2XX.with(Expect::HTTP_3XX),
            _ => Expect::NONE,
        }
    }

    /// Whether the type judges a status code, so that
    /// `check_http_expect_alive` applies.
    pub fn reads_status(self) -> bool {
        matches!(self, Self::Http | Self::Fastcgi)
    }
}

/// The status classes `check_http_expect_alive` lets pass, as a bit set.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Expect(u8);

impl Expect {
    pub const NONE: Expect = Expect(0);
    pub const HTTP_1XX: Expect = Expect(1 << 0);
    pub const HTTP_2XX: Expect = Expect(1 << 1);
    pub const HTTP_3XX: Expect = Expect(1 << 2);
    pub const HTTP_4XX: Expect = Expect(1 << 3);
    pub const HTTP_5XX: Expect = Expect(1 << 4);

    /// `http_1xx` .. `http_5xx`, case-insensitive as in C.
    pub fn from_word(word: &str) -> Option<Expect> {
        const WORDS: [(&str, Expect); 5] = [
            ("http_1xx", Expect::HTTP_1XX),
            ("http_2xx", Expect::HTTP_2XX),
            ("http_3xx", Expect::HTTP_3XX),
            ("http_4xx", Expect::HTTP_4XX),
            ("http_5xx", Expect::HTTP_5XX),
        ];
        WORDS
            .iter()
            .find(|(w, _)| w.eq_ignore_ascii_case(word))
            .map(|&(_, e)| e)
    }

    pub fn with(self, other: Expect) -> Expect {
        Expect(self.0 | other.0)
    }

    pub fn contains(self, other: Expect) -> bool {
        self.0 & other.0 == other.0
    }

    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    pub fn bits(self) -> u8 {
        self.0
    }

    /// Whether a status code's class is in the set; codes outside
    /// 100..=599 never are.
    pub fn allows(self, code: u16) -> bool {
        (100..600).contains(&code) && self.0 & (1 << (code / 100 - 1)) != 0
    }
}

/// What the `check` directive says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CheckConf {
    /// Pause between probes of a peer (`interval=`, plain milliseconds).
    pub interval_ms: u64,
    /// Bound on one probe, connect included (`timeout=`, milliseconds).
    pub timeout_ms: u64,
    /// Consecutive passes that bring a down peer up.
    pub rise: u64,
    /// Consecutive failures that take an up peer down.
    pub fall: u64,
    /// A new peer starts down and needs `rise` passes.
    pub default_down: bool,
    pub kind: CheckType,
    /// The port probed; 0 is the server's own port.
    pub port: u16,
    /// The fork's `unique=`: one probe for the same address and probe
    /// across upstreams.
    pub unique: bool,
}

impl Default for CheckConf {
    fn default() -> Self {
        CheckConf {
            interval_ms: 30_000,
            timeout_ms: 1_000,
            rise: 2,
            fall: 5,
            default_down: true,
            kind: CheckType::Tcp,
            port: 0,
            unique: false,
        }
    }
}

/// The request of `type=http` without `check_http_send`.
pub const DEFAULT_HTTP_SEND: &[u8] = b"GET / HTTP/1.0\r\n\r\n";

/// The FastCGI parameters without `check_fastcgi_param`.
pub const DEFAULT_FASTCGI_PARAMS: [(&[u8], &[u8]); 3] = [
    (b"REQUEST_METHOD", b"GET"),
    (b"REQUEST_URI", b"/"),
    (b"SCRIPT_FILENAME", b"index.php"),
];

/// The smallest zone `check_shm_size` gives, and its default.
pub const SHM_SIZE_MIN: usize = 1024 * 1024;

/// `ngx_atoi`: decimal digits only, at most `i64::MAX`.
fn atoi(s: &str) -> Option<u64> {
    if s.is_empty() || !s.bytes().all(|c| c.is_ascii_digit()) {
        return None;
    }
    s.parse::<u64>().ok().filter(|&n| n <= i64::MAX as u64)
}

/// `true` or `false` in any case; `None` otherwise.
fn flag(s: &str) -> Option<bool> {
    if s.eq_ignore_ascii_case("true") {
        Some(true)
    } else if s.eq_ignore_ascii_case("false") {
        Some(false)
    } else {
        None
    }
}

/// Parses the `check` directive's `key=value` arguments (after the name).
/// Unknown keys and bad values get the C module's messages; counts and
/// times must be plain integers above 0. A `port=` above 65535 is refused
/// too (C silently truncated it).
pub fn parse_check(args: &[&str]) -> Result<CheckConf, String> {
    let mut conf = CheckConf::default();
    for &arg in args {
        let invalid = || format!("invalid parameter \"{arg}\"");
        let Some((key, value)) = arg.split_once('=') else {
            return Err(invalid());
        };
        let positive = || atoi(value).filter(|&n| n > 0).ok_or_else(invalid);
        match key {
            "type" => conf.kind = CheckType::from_name(value).ok_or_else(invalid)?,
            "port" => {
                conf.port = positive()?.try_into().map_err(|_| invalid())?;
            }
            "interval" => conf.interval_ms = positive()?,
            "timeout" => conf.timeout_ms = positive()?,
            "rise" => conf.rise = positive()?,
            "fall" => conf.fall = positive()?,
            "default_down" | "unique" => {
                let v = flag(value).ok_or_else(|| {
                    format!("invalid value \"{arg}\", it must be \"true\" or \"false\"")
                })?;
                if key == "unique" {
                    conf.unique = v;
                } else {
                    conf.default_down = v;
                }
            }
            _ => return Err(invalid()),
        }
    }
    Ok(conf)
}

/// The warning for a request given to a type that sends its own (or none).
fn send_ignored(kind: CheckType) -> String {
    format!(
        "check_http_send is ignored for type \"{}\": only type=http sends it",
        kind.name()
    )
}

/// The `check*` directives of one upstream, as they are read.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CheckDirectives {
    check: Option<CheckConf>,
    send: Vec<u8>,
    expect: Option<Expect>,
    keepalive_requests: Option<u64>,
    fastcgi_params: Vec<(Vec<u8>, Vec<u8>)>,
}

impl CheckDirectives {
    /// `check key=value...`. A second `check` replaces the first whole (C
    /// kept an earlier `type=` when the second had none).
    /// Returns a warning when `check_http_send` came first and this type
    /// does not send it.
    pub fn check(&mut self, args: &[&str]) -> Result<Option<String>, String> {
        let conf = parse_check(args)?;
        let warning = (!self.send.is_empty() && conf.kind != CheckType::Http)
            .then(|| send_ignored(conf.kind));
        self.check = Some(conf);
        Ok(warning)
    }

    /// `check_http_send "..."`, before or after `check` (yaoweibin's
    /// rule; the fork refused it before). An empty value means the
    /// default. Returns a warning when `check` has set a type other than
    /// http: the value is kept but not sent.
    pub fn http_send(&mut self, value: &[u8]) -> Option<String> {
        self.send = value.to_vec();
        match &self.check {
            Some(c) if !value.is_empty() && c.kind != CheckType::Http => Some(send_ignored(c.kind)),
            _ => None,
        }
    }

    /// `check_http_expect_alive http_2xx ...`: exactly the listed classes
    /// (a second directive replaces the first, as in the fork). An
    /// unknown word is an error; a repeated one gets a warning.
    pub fn http_expect_alive(&mut self, args: &[&str]) -> Result<Vec<String>, String> {
        let mut expect = Expect::NONE;
        let mut warnings = Vec::new();
        for &word in args {
            let bit = Expect::from_word(word).ok_or_else(|| format!("invalid value \"{word}\""))?;
            if expect.contains(bit) {
                warnings.push(format!("duplicate value \"{word}\""));
            }
            expect = expect.with(bit);
        }
        self.expect = Some(expect);
        Ok(warnings)
    }

    /// `check_keepalive_requests N`: probes sent on one connection, at
    /// least 1 (the default, a connection per probe).
    pub fn keepalive_requests(&mut self, value: &str) -> Result<(), String> {
        let n = atoi(value)
            .filter(|&n| n > 0)
            .ok_or_else(|| "invalid value".to_string())?;
        self.keepalive_requests = Some(n);
        Ok(())
    }

    /// `check_fastcgi_param NAME VALUE`. Once one is given, the defaults
    /// ([`DEFAULT_FASTCGI_PARAMS`]) are no longer sent, as in C.
    pub fn fastcgi_param(&mut self, name: &[u8], value: &[u8]) {
        self.fastcgi_params.push((name.to_vec(), value.to_vec()));
    }

    /// Whether the upstream has a `check`; without one its peers are not
    /// checked and the other directives have no effect.
    pub fn is_checked(&self) -> bool {
        self.check.is_some()
    }

    /// The probe definition, or `None` without `check`.
    pub fn finish(&self) -> Option<CheckSpec> {
        let conf = self.check.clone()?;
        let kind = conf.kind;
        let send = match kind {
            CheckType::Http if self.send.is_empty() => DEFAULT_HTTP_SEND,
            _ => &self.send,
        };
        let request = if kind == CheckType::Fastcgi && self.fastcgi_params.is_empty() {
            probe::request_bytes(kind, send, &DEFAULT_FASTCGI_PARAMS)
        } else {
            probe::request_bytes(kind, send, &self.fastcgi_params)
        };
        let expect = match self.expect {
            _ if !kind.reads_status() => Expect::NONE,
            Some(e) if !e.is_empty() => e,
            _ => kind.default_expect(),
        };
        Some(CheckSpec {
            conf,
            request,
            expect,
            keepalive_requests: self.keepalive_requests.unwrap_or(1),
        })
    }
}

/// Everything one upstream's probes need, directives combined.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CheckSpec {
    pub conf: CheckConf,
    /// The bytes each probe sends (empty for tcp and mysql).
    pub request: Vec<u8>,
    /// The status classes that pass (http, fastcgi; empty otherwise, and
    /// empty for fastcgi means any STDOUT passes).
    pub expect: Expect,
    /// `check_keepalive_requests`.
    pub keepalive_requests: u64,
}

impl CheckSpec {
    /// Whether a connection may carry more than one probe: http only, as
    /// the other types' servers end or change the session after one.
    pub fn keepalive(&self) -> bool {
        self.conf.kind == CheckType::Http && self.keepalive_requests > 1
    }

    /// A stable 64-bit hash (FNV-1a) of what a probe sends and accepts:
    /// type, request bytes, expected classes and port. Two upstreams with
    /// the same address and hash can share one probe (`unique=true`).
    pub fn probe_hash(&self) -> u64 {
        let mut h = Fnv1a::new();
        h.write(self.conf.kind.name().as_bytes());
        h.write(&[0]);
        h.write(&(self.request.len() as u64).to_le_bytes());
        h.write(&self.request);
        h.write(&[self.expect.bits()]);
        h.write(&self.conf.port.to_le_bytes());
        h.finish()
    }
}

/// 64-bit FNV-1a: stable across builds and processes.
struct Fnv1a(u64);

impl Fnv1a {
    fn new() -> Self {
        Fnv1a(0xcbf2_9ce4_8422_2325)
    }

    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 ^= u64::from(b);
            self.0 = self.0.wrapping_mul(0x0000_0100_0000_01b3);
        }
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

/// nginx's `ngx_parse_size`: digits with an optional `k`/`K` or `m`/`M`.
pub fn parse_size(s: &str) -> Option<usize> {
    let (digits, scale) = match s.as_bytes().last()? {
        b'k' | b'K' => (&s[..s.len() - 1], 1024),
        b'm' | b'M' => (&s[..s.len() - 1], 1024 * 1024),
        _ => (s, 1),
    };
    if digits.is_empty() || !digits.bytes().all(|c| c.is_ascii_digit()) {
        return None;
    }
    let n: usize = digits.parse().ok()?;
    (n <= isize::MAX as usize / scale).then(|| n * scale)
}

/// `check_shm_size SIZE`: the zone's size, never below 1M. The nginx
/// layer answers a second one with `"is duplicate"`.
pub fn parse_shm_size(value: &str) -> Result<usize, String> {
    parse_size(value)
        .map(|n| n.max(SHM_SIZE_MIN))
        .ok_or_else(|| "invalid value".to_string())
}

/// `check_status [html|csv|json]` (case-sensitive). `None` without an
/// argument: the format is then inherited from the enclosing level, and
/// html at the top (`child.or(parent).unwrap_or(Format::Html)`).
pub fn parse_check_status(args: &[&str]) -> Result<Option<Format>, String> {
    match args {
        [] => Ok(None),
        [name] => Format::from_name(name.as_bytes())
            .map(Some)
            .ok_or_else(|| format!("invalid check format \"{name}\"")),
        _ => Err("invalid number of arguments".to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn check_defaults() {
        let c = parse_check(&[]).unwrap();
        assert_eq!(
            c,
            CheckConf {
                interval_ms: 30_000,
                timeout_ms: 1_000,
                rise: 2,
                fall: 5,
                default_down: true,
                kind: CheckType::Tcp,
                port: 0,
                unique: false,
            }
        );
    }

    #[test]
    fn check_all_parameters() {
        let c = parse_check(&[
            "interval=5000",
            "rise=1",
            "fall=3",
            "timeout=4000",
            "type=http",
            "port=80",
            "default_down=FALSE",
            "unique=True",
        ])
        .unwrap();
        assert_eq!(
            c,
            CheckConf {
                interval_ms: 5000,
                timeout_ms: 4000,
                rise: 1,
                fall: 3,
                default_down: false,
                kind: CheckType::Http,
                port: 80,
                unique: true,
            }
        );
        for (name, kind) in [
            ("tcp", CheckType::Tcp),
            ("http", CheckType::Http),
            ("ssl_hello", CheckType::SslHello),
            ("mysql", CheckType::Mysql),
            ("ajp", CheckType::Ajp),
            ("fastcgi", CheckType::Fastcgi),
        ] {
            let arg = format!("type={name}");
            assert_eq!(parse_check(&[&arg]).unwrap().kind, kind);
            assert_eq!(kind.name(), name);
        }
    }

    #[test]
    fn check_refusals_have_the_c_messages() {
        for arg in [
            "interval=0",
            "interval=5s",
            "interval=",
            "interval=-1",
            "interval=+5",
            "timeout=0",
            "rise=0",
            "fall=0",
            "fall=x",
            "port=0",
            "port=65536",
            "rise=9223372036854775808",
            "type=HTTP",
            "type=",
            "type=udp",
            "kind=tcp",
            "rise",
            "Interval=1000",
            "=1",
        ] {
            assert_eq!(
                parse_check(&[arg]),
                Err(format!("invalid parameter \"{arg}\"")),
                "{arg}"
            );
        }
        assert_eq!(
            parse_check(&["rise=9223372036854775807"]).unwrap().rise,
            i64::MAX as u64
        );
        assert_eq!(
            parse_check(&["default_down=yes"]),
            Err("invalid value \"default_down=yes\", it must be \"true\" or \"false\"".into())
        );
        assert_eq!(
            parse_check(&["unique=1"]),
            Err("invalid value \"unique=1\", it must be \"true\" or \"false\"".into())
        );
        // The first bad argument is the one named.
        assert_eq!(
            parse_check(&["rise=1", "fall=0", "x=1"]),
            Err("invalid parameter \"fall=0\"".into())
        );
    }

    #[test]
    fn expect_words_and_classes() {
        assert_eq!(Expect::from_word("HTTP_2xx"), Some(Expect::HTTP_2XX));
        assert_eq!(Expect::from_word("http_1xx"), Some(Expect::HTTP_1XX));
        assert_eq!(Expect::from_word("http_6xx"), None);
        let e = Expect::HTTP_2XX.with(Expect::HTTP_5XX);
        assert!(e.allows(200) && e.allows(299) && e.allows(503));
        assert!(!e.allows(300) && !e.allows(404) && !e.allows(600) && !e.allows(99));
        assert!(!Expect::NONE.allows(200));
        assert!(Expect::HTTP_1XX.allows(101));
        assert_eq!(
            Expect::HTTP_2XX.with(Expect::HTTP_3XX).bits(),
            0x06,
            "2xx and 3xx have the C module's bits"
        );
    }

    fn directives(check: &[&str]) -> CheckDirectives {
        let mut d = CheckDirectives::default();
        assert_eq!(d.check(check), Ok(None));
        d
    }

    #[test]
    fn http_defaults_and_send() {
        let spec = directives(&["type=http"]).finish().unwrap();
        assert_eq!(spec.request, b"GET / HTTP/1.0\r\n\r\n");
        assert_eq!(spec.expect, Expect::HTTP_2XX.with(Expect::HTTP_3XX));
        assert_eq!(spec.keepalive_requests, 1);
        assert!(!spec.keepalive());

        let mut d = directives(&["type=http"]);
        assert_eq!(d.http_send(b"HEAD / HTTP/1.0\r\n\r\n"), None);
        assert_eq!(d.finish().unwrap().request, b"HEAD / HTTP/1.0\r\n\r\n");
        // An empty value is the default.
        assert_eq!(d.http_send(b""), None);
        assert_eq!(d.finish().unwrap().request, DEFAULT_HTTP_SEND);
    }

    #[test]
    fn http_send_before_check() {
        let mut d = CheckDirectives::default();
        assert_eq!(d.http_send(b"HEAD /health HTTP/1.0\r\n\r\n"), None);
        assert!(!d.is_checked());
        assert_eq!(d.finish(), None);
        assert_eq!(d.check(&["type=http"]), Ok(None));
        assert_eq!(
            d.finish().unwrap().request,
            b"HEAD /health HTTP/1.0\r\n\r\n"
        );
    }

    #[test]
    fn http_send_for_other_types_warns() {
        let warning = "check_http_send is ignored for type \"mysql\": only type=http sends it";
        let mut d = directives(&["type=mysql"]);
        assert_eq!(d.http_send(b"x"), Some(warning.into()));
        assert_eq!(d.http_send(b""), None);
        let mut d = CheckDirectives::default();
        d.http_send(b"x");
        assert_eq!(d.check(&["type=mysql"]), Ok(Some(warning.into())));
        let spec = d.finish().unwrap();
        assert!(spec.request.is_empty());
        // Without type= the check is tcp.
        let mut d = CheckDirectives::default();
        d.http_send(b"GET / HTTP/1.0\r\n\r\n");
        assert!(d
            .check(&["interval=1000"])
            .unwrap()
            .unwrap()
            .contains("\"tcp\""));
        // The default requests of the other types stay.
        let mut d = directives(&["type=ajp"]);
        d.http_send(b"junk");
        assert_eq!(d.finish().unwrap().request, probe::AJP_CPING);
    }

    #[test]
    fn expect_alive() {
        let mut d = directives(&["type=http"]);
        assert_eq!(d.http_expect_alive(&["http_2xx"]), Ok(vec![]));
        assert_eq!(d.finish().unwrap().expect, Expect::HTTP_2XX);
        // A second directive replaces the first.
        assert_eq!(d.http_expect_alive(&["http_4xx", "HTTP_5XX"]), Ok(vec![]));
        assert_eq!(
            d.finish().unwrap().expect,
            Expect::HTTP_4XX.with(Expect::HTTP_5XX)
        );
        assert_eq!(
            d.http_expect_alive(&["http_2xx", "http_3xx", "http_2xx"]),
            Ok(vec!["duplicate value \"http_2xx\"".to_string()])
        );
        assert_eq!(
            d.finish().unwrap().expect,
            Expect::HTTP_2XX.with(Expect::HTTP_3XX)
        );
        assert_eq!(
            d.http_expect_alive(&["http_2xx", "http_200"]),
            Err("invalid value \"http_200\"".into())
        );
        // The refused directive changed nothing.
        assert_eq!(
            d.finish().unwrap().expect,
            Expect::HTTP_2XX.with(Expect::HTTP_3XX)
        );
    }

    #[test]
    fn expect_alive_only_for_types_that_read_a_status() {
        let spec = directives(&["type=fastcgi"]).finish().unwrap();
        assert_eq!(spec.expect, Expect::NONE);
        let mut d = directives(&["type=fastcgi"]);
        d.http_expect_alive(&["http_2xx"]).unwrap();
        assert_eq!(d.finish().unwrap().expect, Expect::HTTP_2XX);
        let mut d = directives(&["type=tcp"]);
        d.http_expect_alive(&["http_2xx"]).unwrap();
        assert_eq!(d.finish().unwrap().expect, Expect::NONE);
    }

    #[test]
    fn keepalive_requests() {
        let mut d = directives(&["type=http"]);
        assert_eq!(d.keepalive_requests("0"), Err("invalid value".into()));
        assert_eq!(d.keepalive_requests("x"), Err("invalid value".into()));
        assert_eq!(d.keepalive_requests("100"), Ok(()));
        let spec = d.finish().unwrap();
        assert_eq!(spec.keepalive_requests, 100);
        assert!(spec.keepalive());
        let mut d = directives(&["type=tcp"]);
        d.keepalive_requests("100").unwrap();
        assert!(!d.finish().unwrap().keepalive());
    }

    #[test]
    fn fastcgi_params_replace_the_defaults() {
        let default = directives(&["type=fastcgi"]).finish().unwrap();
        assert_eq!(
            default.request,
            probe::fastcgi_request(&DEFAULT_FASTCGI_PARAMS)
        );
        let mut d = directives(&["type=fastcgi"]);
        d.fastcgi_param(b"REQUEST_METHOD", b"GET");
        d.fastcgi_param(b"SCRIPT_FILENAME", b"/srv/ping.php");
        let spec = d.finish().unwrap();
        assert_eq!(
            spec.request,
            probe::fastcgi_request(&[
                (&b"REQUEST_METHOD"[..], &b"GET"[..]),
                (b"SCRIPT_FILENAME", b"/srv/ping.php"),
            ])
        );
        assert_ne!(spec.probe_hash(), default.probe_hash());
    }

    #[test]
    fn a_second_check_replaces_the_first() {
        let mut d = directives(&["type=http", "rise=7"]);
        d.check(&["fall=1"]).unwrap();
        let spec = d.finish().unwrap();
        assert_eq!(spec.conf.kind, CheckType::Tcp);
        assert_eq!(spec.conf.rise, 2);
        assert_eq!(spec.conf.fall, 1);
    }

    #[test]
    fn probe_hash_covers_the_probe_only() {
        let hash = |check: &[&str], send: &[u8], expect: &[&str]| {
            let mut d = directives(check);
            d.http_send(send);
            if !expect.is_empty() {
                d.http_expect_alive(expect).unwrap();
            }
            d.finish().unwrap().probe_hash()
        };
        let base = hash(&["type=http"], b"", &[]);
        assert_eq!(base, hash(&["type=http"], b"", &[]));
        // Timing and counts are not part of the probe.
        assert_eq!(
            base,
            hash(
                &["type=http", "interval=1000", "rise=9", "unique=true"],
                b"",
                &[]
            )
        );
        // The default send and expect written out are the same probe.
        assert_eq!(
            base,
            hash(
                &["type=http"],
                b"GET / HTTP/1.0\r\n\r\n",
                &["http_3xx", "http_2xx"]
            )
        );
        assert_ne!(base, hash(&["type=http", "port=81"], b"", &[]));
        assert_ne!(base, hash(&["type=http"], b"HEAD / HTTP/1.0\r\n\r\n", &[]));
        assert_ne!(base, hash(&["type=http"], b"", &["http_2xx"]));
        assert_ne!(base, hash(&["type=tcp"], b"", &[]));
        assert_ne!(
            hash(&["type=tcp"], b"", &[]),
            hash(&["type=mysql"], b"", &[])
        );
        // FNV-1a itself, on its published test vectors.
        let fnv = |s: &[u8]| {
            let mut h = Fnv1a::new();
            h.write(s);
            h.finish()
        };
        assert_eq!(fnv(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv(b"a"), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(fnv(b"foobar"), 0x8594_4171_f739_67e8);
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_size("1m"), Some(1 << 20));
        assert_eq!(parse_size("2M"), Some(2 << 20));
        assert_eq!(parse_size("512k"), Some(512 << 10));
        assert_eq!(parse_size("512K"), Some(512 << 10));
        assert_eq!(parse_size("4096"), Some(4096));
        assert_eq!(parse_size("0"), Some(0));
        for bad in [
            "",
            "m",
            "1g",
            "1 m",
            "-1",
            "1.5m",
            "1mb",
            "99999999999999999999",
        ] {
            assert_eq!(parse_size(bad), None, "{bad}");
        }
        assert_eq!(parse_shm_size("512k"), Ok(SHM_SIZE_MIN));
        assert_eq!(parse_shm_size("10m"), Ok(10 << 20));
        assert_eq!(parse_shm_size("lots"), Err("invalid value".into()));
    }

    #[test]
    fn check_status_directive() {
        assert_eq!(parse_check_status(&[]), Ok(None));
        assert_eq!(parse_check_status(&["json"]), Ok(Some(Format::Json)));
        assert_eq!(parse_check_status(&["csv"]), Ok(Some(Format::Csv)));
        assert_eq!(parse_check_status(&["html"]), Ok(Some(Format::Html)));
        assert_eq!(
            parse_check_status(&["JSON"]),
            Err("invalid check format \"JSON\"".into())
        );
    }
}
