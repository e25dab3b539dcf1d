//! The `upsync` directive's arguments, parsed without nginx.

use std::fmt;

/// Which registry API an upstream follows (`upsync_type=`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RegistryKind {
    /// Consul KV, one key per server under a prefix.
    Consul,
    /// Consul catalog: `/v1/catalog/service/<name>`.
    ConsulServices,
    /// Consul health: `/v1/health/service/<name>`; failing checks mean `down`.
    ConsulHealth,
    /// etcd v2 keys API.
    Etcd,
    /// etcd v3 over its JSON gateway: the path is the key prefix.
    EtcdV3,
}

impl RegistryKind {
    fn from_name(name: &str) -> Option<Self> {
        Some(match name {
            "consul" => Self::Consul,
            "consul_services" => Self::ConsulServices,
            "consul_health" => Self::ConsulHealth,
            "etcd" => Self::Etcd,
            "etcdv3" => Self::EtcdV3,
            _ => return None,
        })
    }

    pub fn name(self) -> &'static str {
        match self {
            Self::Consul => "consul",
            Self::ConsulServices => "consul_services",
            Self::ConsulHealth => "consul_health",
            Self::Etcd => "etcd",
            Self::EtcdV3 => "etcdv3",
        }
    }

    /// How the path of this kind starts (etcd v3's path is a key prefix,
    /// any prefix).
    pub fn path_prefix(self) -> Option<&'static str> {
        match self {
            Self::Consul => Some("/v1/kv/"),
            Self::ConsulServices => Some("/v1/catalog/service/"),
            Self::ConsulHealth => Some("/v1/health/service/"),
            Self::Etcd => Some("/v2/keys/"),
            Self::EtcdV3 => None,
        }
    }

    pub fn is_consul(self) -> bool {
        matches!(
            self,
            Self::Consul | Self::ConsulServices | Self::ConsulHealth
        )
    }
}

/// One address of the registry, as written.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Endpoint {
    /// `host` or `host:port` as written, for the `Host` header and messages.
    pub authority: String,
    /// The host part (brackets kept for IPv6: `[::1]`).
    pub host: String,
    pub port: u16,
}

/// Everything `upsync [scheme://]host[:port][,host[:port]...]/path
/// name=value...` says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UpsyncConf {
    /// The registry's addresses, in the order written: one cluster, used
    /// for failover.
    pub endpoints: Vec<Endpoint>,
    /// `https://`: the registry speaks TLS.
    pub tls: bool,
    /// The request path, from the first `/`.
    pub path: String,
    pub kind: RegistryKind,
    /// Pause between the end of one poll and the next, in milliseconds.
    pub interval_ms: u64,
    /// Bound on one whole poll, in milliseconds.
    pub timeout_ms: u64,
    pub strong_dependency: bool,
    /// Consul ACL token, sent as `X-Consul-Token`; never logged.
    pub token: Option<String>,
    /// etcd user and password (v2: basic auth; v3: authenticate, then the
    /// token); the password is never logged.
    pub user: Option<String>,
    pub password: Option<String>,
}

/// Default `upsync_interval`: 5s.
pub const DEFAULT_INTERVAL_MS: u64 = 5_000;
/// Default `upsync_timeout`: 6m.
pub const DEFAULT_TIMEOUT_MS: u64 = 360_000;

/// A mistake in the directive's arguments; the text goes after `upsync: `.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfError(pub String);

impl fmt::Display for ConfError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ConfError {}

fn err<T>(msg: impl Into<String>) -> Result<T, ConfError> {
    Err(ConfError(msg.into()))
}

/// Parses the arguments after the directive name.
pub fn parse_upsync(args: &[&str]) -> Result<UpsyncConf, ConfError> {
    let Some((first, params)) = args.split_first() else {
        return err("needs the registry address and path");
    };
    // They would end up in the request's head (a header injection) or in
    // log lines.
    if let Some(bad) = args.iter().find(|a| a.chars().any(char::is_control)) {
        return err(format!("control characters in {bad:?}"));
    }
    if first.chars().any(char::is_whitespace) {
        return err(format!("spaces in {first:?}"));
    }
    let (tls, address) = match first.split_once("://") {
        Some(("https", rest)) => (true, rest),
        Some(("http", rest)) => (false, rest),
        Some((scheme, _)) if !scheme.contains('/') => {
            return err(format!(
                "unknown scheme \"{scheme}://\": use http:// or https://"
            ))
        }
        _ => (false, *first),
    };
    let (authorities, path) = match address.find('/') {
        Some(i) => (&address[..i], &address[i..]),
        None => return err(format!("missing path in \"{first}\"")),
    };
    let default_port = if tls { 443 } else { 80 };
    let mut endpoints = Vec::new();
    for authority in authorities.split(',') {
        let (host, port) = split_host_port(authority, default_port)?;
        let endpoint = Endpoint {
            authority: authority.to_string(),
            host,
            port,
        };
        if endpoints.contains(&endpoint) {
            return err(format!("registry address \"{authority}\" is listed twice"));
        }
        endpoints.push(endpoint);
    }

    let mut kind = None;
    let mut interval_ms = DEFAULT_INTERVAL_MS;
    let mut timeout_ms = DEFAULT_TIMEOUT_MS;
    let mut strong_dependency = false;
    let mut token = None;
    let mut user = None;
    let mut password = None;
    let mut seen: Vec<&str> = Vec::new();

    for param in params {
        let Some((name, value)) = param.split_once('=') else {
            return err(format!("invalid parameter \"{param}\""));
        };
        if seen.contains(&name) {
            return err(format!("duplicate parameter \"{name}\""));
        }
        seen.push(name);
        match name {
            "upsync_type" => match RegistryKind::from_name(value) {
                Some(k) => kind = Some(k),
                None => {
                    return err(format!(
                        "unknown upsync_type \"{value}\" (expected consul, consul_services, \
                         consul_health, etcd or etcdv3)"
                    ))
                }
            },
            "upsync_interval" => interval_ms = time_param(name, value)?,
            "upsync_timeout" => {
                timeout_ms = time_param(name, value)?;
                if timeout_ms < 1000 {
                    return err(format!("upsync_timeout \"{value}\" is shorter than 1s"));
                }
            }
            "strong_dependency" => {
                strong_dependency = match value {
                    "on" => true,
                    "off" => false,
                    _ => {
                        return err(format!(
                            "strong_dependency must be on or off, not \"{value}\""
                        ))
                    }
                }
            }
            "upsync_token" => {
                if value.is_empty() {
                    return err("empty upsync_token");
                }
                token = Some(value.to_string());
            }
            "upsync_user" if !value.is_empty() => user = Some(value.to_string()),
            "upsync_password" if !value.is_empty() => password = Some(value.to_string()),
            "upsync_user" | "upsync_password" => return err(format!("empty {name}")),
            // Never echo the value: it may be a secret.
            _ => return err(format!("unknown parameter \"{name}\"")),
        }
    }

    let Some(kind) = kind else {
        return err("upsync_type is required");
    };
    if token.is_some() && !kind.is_consul() {
        return err("upsync_token is for the consul types only");
    }
    if (user.is_some() || password.is_some()) && kind.is_consul() {
        return err("upsync_user and upsync_password are for the etcd types only");
    }
    if user.is_some() != password.is_some() {
        return err("upsync_user and upsync_password go together");
    }
    Ok(UpsyncConf {
        endpoints,
        tls,
        path: path.to_string(),
        kind,
        interval_ms,
        timeout_ms,
        strong_dependency,
        token,
        user,
        password,
    })
}

/// The `upsync_ssl_*` directives of one level (`http` or `upstream`); an
/// upstream inherits from `http` what it does not set.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct TlsConf {
    pub trusted_certificate: Option<String>,
    pub certificate: Option<String>,
    pub certificate_key: Option<String>,
    pub password_file: Option<String>,
    pub verify: Option<bool>,
    pub verify_depth: Option<u32>,
    pub name: Option<String>,
    pub server_name: Option<bool>,
    pub protocols: Option<Vec<String>>,
}

/// The protocols `upsync_ssl_protocols` accepts.
pub const TLS_PROTOCOLS: [&str; 4] = ["TLSv1", "TLSv1.1", "TLSv1.2", "TLSv1.3"];

impl TlsConf {
    /// Applies `directive args...`; the message goes after the directive's
    /// name.
    pub fn set(&mut self, directive: &str, args: &[&str]) -> Result<(), ConfError> {
        let one = || match args {
            [v] if !v.is_empty() => Ok(v.to_string()),
            _ => err("needs one value"),
        };
        let flag = || match args {
            ["on"] => Ok(true),
            ["off"] => Ok(false),
            _ => err("must be on or off"),
        };
        fn put<T>(slot: &mut Option<T>, v: T) -> Result<(), ConfError> {
            if slot.is_some() {
                return err("is duplicate");
            }
            *slot = Some(v);
            Ok(())
        }
        match directive {
            "upsync_ssl_trusted_certificate" => put(&mut self.trusted_certificate, one()?),
            "upsync_ssl_certificate" => put(&mut self.certificate, one()?),
            "upsync_ssl_certificate_key" => put(&mut self.certificate_key, one()?),
            "upsync_ssl_password_file" => put(&mut self.password_file, one()?),
            "upsync_ssl_verify" => put(&mut self.verify, flag()?),
            "upsync_ssl_server_name" => put(&mut self.server_name, flag()?),
            "upsync_ssl_name" => put(&mut self.name, one()?),
            "upsync_ssl_verify_depth" => {
                match parse_digits(&one()?).and_then(|d| u32::try_from(d).ok()) {
                    Some(d) if d <= 100 => put(&mut self.verify_depth, d),
                    _ => err("must be a number from 0 to 100"),
                }
            }
            "upsync_ssl_protocols" => {
                if args.is_empty() {
                    return err("needs at least one protocol");
                }
                if let Some(bad) = args.iter().find(|a| !TLS_PROTOCOLS.contains(a)) {
                    return err(format!(
                        "unknown protocol \"{bad}\": use {}",
                        TLS_PROTOCOLS.join(", ")
                    ));
                }
                put(
                    &mut self.protocols,
                    args.iter().map(|a| a.to_string()).collect(),
                )
            }
            _ => err("is not an upsync_ssl directive"),
        }
    }

    /// This level's settings, with `parent`'s where this one has none.
    pub fn merged(&self, parent: &TlsConf) -> TlsConf {
        fn or<T: Clone>(a: &Option<T>, b: &Option<T>) -> Option<T> {
            a.clone().or_else(|| b.clone())
        }
        TlsConf {
            trusted_certificate: or(&self.trusted_certificate, &parent.trusted_certificate),
            certificate: or(&self.certificate, &parent.certificate),
            certificate_key: or(&self.certificate_key, &parent.certificate_key),
            password_file: or(&self.password_file, &parent.password_file),
            verify: or(&self.verify, &parent.verify),
            verify_depth: or(&self.verify_depth, &parent.verify_depth),
            name: or(&self.name, &parent.name),
            server_name: or(&self.server_name, &parent.server_name),
            protocols: or(&self.protocols, &parent.protocols),
        }
    }

    /// A mistake in the merged settings of an upstream, said as nginx would.
    pub fn check(&self) -> Result<(), ConfError> {
        match (&self.certificate, &self.certificate_key) {
            (Some(c), None) => err(format!(
                "no \"upsync_ssl_certificate_key\" is defined for certificate \"{c}\""
            )),
            (None, Some(_)) => {
                err("\"upsync_ssl_certificate_key\" needs \"upsync_ssl_certificate\"")
            }
            _ => Ok(()),
        }
    }

    /// Certificates are verified unless `upsync_ssl_verify off`.
    pub fn verifies(&self) -> bool {
        self.verify.unwrap_or(true)
    }

    /// The intermediate certificates allowed (nginx's default: 1).
    pub fn depth(&self) -> u32 {
        self.verify_depth.unwrap_or(1)
    }

    /// SNI is sent (for host names) unless `upsync_ssl_server_name off`.
    pub fn sends_server_name(&self) -> bool {
        self.server_name.unwrap_or(true)
    }

    /// The protocols enabled: TLSv1.2 and TLSv1.3 by default.
    pub fn protocol_list(&self) -> Vec<String> {
        self.protocols
            .clone()
            .unwrap_or_else(|| vec!["TLSv1.2".into(), "TLSv1.3".into()])
    }
}

fn time_param(name: &str, value: &str) -> Result<u64, ConfError> {
    match parse_time_ms(value) {
        Some(ms) => Ok(ms),
        None => err(format!("invalid {name} \"{value}\"")),
    }
}

/// `host`, `host:port`, `[v6]` or `[v6]:port`, with `default_port`.
fn split_host_port(authority: &str, default_port: u16) -> Result<(String, u16), ConfError> {
    if authority.is_empty() {
        return err("missing registry host");
    }
    let (host, port) = if let Some(rest) = authority.strip_prefix('[') {
        let Some(end) = rest.find(']') else {
            return err(format!("invalid registry address \"{authority}\""));
        };
        let after = &rest[end + 1..];
        let port = match after.strip_prefix(':') {
            Some(p) => Some(p),
            None if after.is_empty() => None,
            None => return err(format!("invalid registry address \"{authority}\"")),
        };
        (&authority[..end + 2], port)
    } else {
        match authority.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (authority, None),
        }
    };
    if host.is_empty() || host == "[]" {
        return err(format!("missing registry host in \"{authority}\""));
    }
    let port = match port {
        None => default_port,
        Some(p) => match p.parse::<u16>() {
            Ok(n) if n > 0 && p.bytes().all(|b| b.is_ascii_digit()) => n,
            _ => return err(format!("invalid port in \"{authority}\"")),
        },
    };
    Ok((host.to_string(), port))
}

/// An nginx time in milliseconds, as nginx's msec directives read it
/// (`ngx_parse_time(s, 0)`): parts with units in decreasing order, `w`,
/// `d`, `h`, `m`, `s`, `ms` (not `y` or `M`), optionally space separated;
/// a last number without unit is seconds (`1m30` is 90 s, `5` is 5 s).
/// Overflow and anything else is `None`.
pub fn parse_time_ms(s: &str) -> Option<u64> {
    parse_time(s, false).and_then(|ms| u64::try_from(ms).ok())
}

/// An nginx time in seconds, as nginx reads `fail_timeout=`
/// (`ngx_parse_time(s, 1)`): `y` (365 days) and `M` (30 days) allowed,
/// `ms` not.
pub fn parse_time_secs(s: &str) -> Option<i64> {
    parse_time(s, true)
}

/// nginx's `ngx_parse_time`, step by step (src/core/ngx_parse.c).
fn parse_time(s: &str, is_sec: bool) -> Option<i64> {
    // The units in the order they may come; a unit may only follow a
    // larger one. In msec mode the parse starts past `y` and `M`.
    #[derive(Clone, Copy, PartialEq, PartialOrd)]
    enum Step {
        Start,
        Year,
        Month,
        Week,
        Day,
        Hour,
        Min,
        Sec,
        Msec,
        Last,
    }
    const MAX: i64 = i64::MAX;
    let bytes = s.as_bytes();
    let mut step = if is_sec { Step::Start } else { Step::Month };
    let (mut value, mut total, mut valid) = (0i64, 0i64, false);
    let mut p = 0;
    while p < bytes.len() {
        let c = bytes[p];
        p += 1;
        if c.is_ascii_digit() {
            value = value.checked_mul(10)?.checked_add(i64::from(c - b'0'))?;
            valid = true;
            continue;
        }
        let (next, scale): (Step, i64) = match c {
            b'y' if step <= Step::Start => (Step::Year, 365 * 86_400),
            b'M' if step < Step::Month => (Step::Month, 30 * 86_400),
            b'w' if step < Step::Week => (Step::Week, 7 * 86_400),
            b'd' if step < Step::Day => (Step::Day, 86_400),
            b'h' if step < Step::Hour => (Step::Hour, 3_600),
            b'm' if bytes.get(p) == Some(&b's') => {
                if is_sec || step >= Step::Msec {
                    return None;
                }
                p += 1;
                (Step::Msec, 1)
            }
            b'm' if step < Step::Min => (Step::Min, 60),
            b's' if step < Step::Sec => (Step::Sec, 1),
            b' ' if step < Step::Sec => (Step::Last, 1),
            _ => return None,
        };
        step = next;
        let (mut max, mut scale) = (MAX / scale, scale);
        if step != Step::Msec && !is_sec {
            scale *= 1000;
            max /= 1000;
        }
        if value > max {
            return None;
        }
        total = total.checked_add(value * scale)?;
        value = 0;
        while bytes.get(p) == Some(&b' ') {
            p += 1;
        }
    }
    if !valid {
        return None;
    }
    if !is_sec {
        value = value.checked_mul(1000)?;
    }
    total.checked_add(value)
}

pub(crate) fn parse_digits(s: &str) -> Option<u64> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

/// `upsync_lb`: accepted for compatibility with the C module's configs.
pub fn valid_lb(value: &str) -> bool {
    matches!(
        value,
        "roundrobin" | "ip_hash" | "least_conn" | "hash_modula" | "hash_ketama"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> Result<UpsyncConf, ConfError> {
        parse_upsync(&s.split_whitespace().collect::<Vec<_>>())
    }

    #[test]
    fn defaults_of_the_c_module() {
        let c = parse("127.0.0.1:8500/v1/kv/upstreams/test/ upsync_type=consul").unwrap();
        assert_eq!(
            c.endpoints,
            [Endpoint {
                authority: "127.0.0.1:8500".into(),
                host: "127.0.0.1".into(),
                port: 8500
            }]
        );
        assert!(!c.tls);
        assert_eq!(c.path, "/v1/kv/upstreams/test/");
        assert_eq!(c.kind, RegistryKind::Consul);
        assert_eq!(c.interval_ms, 5_000);
        assert_eq!(c.timeout_ms, 360_000);
        assert!(!c.strong_dependency);
        assert_eq!(c.token, None);
    }

    #[test]
    fn several_endpoints_and_schemes() {
        let c =
            parse("10.0.0.1:8500,[::1],consul.internal:8501/v1/kv/up/ upsync_type=consul").unwrap();
        let got: Vec<_> = c
            .endpoints
            .iter()
            .map(|e| (e.authority.as_str(), e.host.as_str(), e.port))
            .collect();
        assert_eq!(
            got,
            [
                ("10.0.0.1:8500", "10.0.0.1", 8500),
                ("[::1]", "[::1]", 80),
                ("consul.internal:8501", "consul.internal", 8501)
            ]
        );
        let c = parse("https://10.0.0.1/v1/kv/up/ upsync_type=consul").unwrap();
        assert!(c.tls);
        assert_eq!(c.endpoints[0].port, 443);
        let c = parse("http://10.0.0.1/v1/kv/up/ upsync_type=consul").unwrap();
        assert!(!c.tls);
        assert_eq!(c.endpoints[0].port, 80);
        for (bad, why) in [
            ("10.0.0.1:8500,/v1/kv/up/", "missing registry host"),
            ("a:1,a:1/v1/kv/up/", "listed twice"),
            ("https:///v1/kv/up/", "missing registry host"),
            ("ftp://a/v1/kv/up/", "unknown scheme \"ftp://\""),
        ] {
            let e = parse(&format!("{bad} upsync_type=consul")).unwrap_err();
            assert!(e.0.contains(why), "{bad}: {e}");
        }
    }

    #[test]
    fn tls_directives_merge_and_check() {
        let mut http = TlsConf::default();
        http.set("upsync_ssl_trusted_certificate", &["/etc/ca.pem"])
            .unwrap();
        http.set("upsync_ssl_verify_depth", &["2"]).unwrap();
        http.set("upsync_ssl_protocols", &["TLSv1.3"]).unwrap();
        let mut up = TlsConf::default();
        up.set("upsync_ssl_name", &["consul.internal"]).unwrap();
        up.set("upsync_ssl_verify", &["off"]).unwrap();
        assert_eq!(
            up.set("upsync_ssl_verify", &["on"]).unwrap_err().0,
            "is duplicate"
        );
        assert!(up.set("upsync_ssl_server_name", &["yes"]).is_err());
        assert!(up.set("upsync_ssl_verify_depth", &["x"]).is_err());
        assert!(up
            .set("upsync_ssl_protocols", &["SSLv3"])
            .unwrap_err()
            .0
            .contains("unknown protocol \"SSLv3\""));
        let m = up.merged(&http);
        assert_eq!(m.trusted_certificate.as_deref(), Some("/etc/ca.pem"));
        assert_eq!(
            (m.verifies(), m.depth(), m.sends_server_name()),
            (false, 2, true)
        );
        assert_eq!(m.name.as_deref(), Some("consul.internal"));
        assert_eq!(m.protocol_list(), ["TLSv1.3"]);
        assert_eq!(TlsConf::default().protocol_list(), ["TLSv1.2", "TLSv1.3"]);
        assert!(TlsConf::default().verifies());
        let mut cert_only = TlsConf::default();
        cert_only.set("upsync_ssl_certificate", &["c.pem"]).unwrap();
        assert!(cert_only
            .check()
            .unwrap_err()
            .0
            .contains("upsync_ssl_certificate_key"));
        assert!(m.check().is_ok());
    }

    #[test]
    fn every_parameter() {
        let c = parse(
            "consul.local/v1/health/service/web?passing upsync_type=consul_health \
             upsync_interval=500ms upsync_timeout=1m30s strong_dependency=on upsync_token=s3",
        )
        .unwrap();
        assert_eq!(
            (c.endpoints[0].host.as_str(), c.endpoints[0].port),
            ("consul.local", 80)
        );
        assert_eq!(c.path, "/v1/health/service/web?passing");
        assert_eq!(c.kind, RegistryKind::ConsulHealth);
        assert_eq!((c.interval_ms, c.timeout_ms), (500, 90_000));
        assert!(c.strong_dependency);
        assert_eq!(c.token.as_deref(), Some("s3"));
    }

    #[test]
    fn ipv6_registry() {
        let c = parse("[::1]:2379/v2/keys/upstreams/test upsync_type=etcd").unwrap();
        assert_eq!(
            (c.endpoints[0].host.as_str(), c.endpoints[0].port),
            ("[::1]", 2379)
        );
        let c = parse("[::1]/v2/keys/x upsync_type=etcd").unwrap();
        assert_eq!(
            (c.endpoints[0].host.as_str(), c.endpoints[0].port),
            ("[::1]", 80)
        );
    }

    #[test]
    fn mistakes_are_named() {
        let e = |s: &str| parse(s).unwrap_err().0;
        assert_eq!(
            e("127.0.0.1:8500 upsync_type=consul"),
            "missing path in \"127.0.0.1:8500\""
        );
        assert_eq!(
            e("127.0.0.1:99999/v1/kv/x upsync_type=consul"),
            "invalid port in \"127.0.0.1:99999\""
        );
        assert_eq!(
            e("127.0.0.1:/v1/kv/x upsync_type=consul"),
            "invalid port in \"127.0.0.1:\""
        );
        assert_eq!(e("/v1/kv/x upsync_type=consul"), "missing registry host");
        assert!(e("h/p upsync_type=zk").starts_with("unknown upsync_type \"zk\""));
        assert_eq!(e("h/p"), "upsync_type is required");
        assert_eq!(
            e("h/p upsync_type=consul foo=bar"),
            "unknown parameter \"foo\""
        );
        assert_eq!(e("h/p upsync_type=consul foo"), "invalid parameter \"foo\"");
        assert_eq!(
            e("h/p upsync_type=consul upsync_interval=5x"),
            "invalid upsync_interval \"5x\""
        );
        assert_eq!(
            e("h/p upsync_type=consul upsync_timeout=soon"),
            "invalid upsync_timeout \"soon\""
        );
        assert_eq!(
            e("h/p upsync_type=consul upsync_timeout=500ms"),
            "upsync_timeout \"500ms\" is shorter than 1s"
        );
        assert_eq!(
            e("h/p upsync_type=consul upsync_type=etcd"),
            "duplicate parameter \"upsync_type\""
        );
        assert_eq!(
            e("h/p upsync_type=consul strong_dependency=yes"),
            "strong_dependency must be on or off, not \"yes\""
        );
        assert_eq!(
            e("h/p upsync_type=etcd upsync_token=x"),
            "upsync_token is for the consul types only"
        );
        assert_eq!(e(""), "needs the registry address and path");
        assert_eq!(
            e("h/p upsync_type=consul upsync_user=a upsync_password=b"),
            "upsync_user and upsync_password are for the etcd types only"
        );
        assert_eq!(
            e("h/p upsync_type=etcdv3 upsync_user=a"),
            "upsync_user and upsync_password go together"
        );
        let c = parse("h/p upsync_type=etcdv3 upsync_user=a upsync_password=b").unwrap();
        assert_eq!(
            (c.user.as_deref(), c.password.as_deref()),
            (Some("a"), Some("b"))
        );
    }

    #[test]
    fn nginx_time_syntax() {
        assert_eq!(parse_time_ms("500ms"), Some(500));
        assert_eq!(parse_time_ms("5s"), Some(5_000));
        assert_eq!(parse_time_ms("5"), Some(5_000));
        assert_eq!(parse_time_ms("6m"), Some(360_000));
        assert_eq!(parse_time_ms("1h"), Some(3_600_000));
        assert_eq!(parse_time_ms("1m30s"), Some(90_000));
        // As nginx: a last number without unit is seconds.
        assert_eq!(parse_time_ms("1m30"), Some(90_000));
        // Not in msec mode, as nginx.
        assert_eq!(parse_time_ms("1y"), None);
        assert_eq!(parse_time_ms("1M"), None);
        assert_eq!(parse_time_secs("1y"), Some(365 * 86_400));
        assert_eq!(parse_time_secs("1M2w"), Some(44 * 86_400));
        assert_eq!(parse_time_secs("500ms"), None);
        assert_eq!(parse_time_secs("9223372036854775807s"), Some(i64::MAX));
        assert_eq!(parse_time_secs("9223372036854775808s"), None);
        assert_eq!(
            parse_time_ms("9223372036854775ms"),
            Some(9_223_372_036_854_775)
        );
        assert_eq!(parse_time_ms("9223372036854776s"), None);
        assert_eq!(parse_time_ms(""), None);
        assert_eq!(parse_time_ms("s"), None);
        assert_eq!(parse_time_ms("-1s"), None);
        assert_eq!(parse_time_ms("99999999999999999999d"), None);
        assert_eq!(parse_time_ms("1m 30s"), Some(90_000));
        assert_eq!(parse_time_ms("1h1m1s1ms"), Some(3_661_001));
        assert_eq!(parse_time_ms("1s1m"), None);
    }

    #[test]
    fn nginx_time_rejects() {
        for bad in [
            "",
            "s",
            "-1",
            "1x",
            "30s1m",
            "1s1s",
            "1.5s",
            "1y",
            "ms",
            "+5",
            " ",
            "99999999999999999999y",
            "18446744073709551615y",
        ] {
            assert_eq!(parse_time_ms(bad), None, "{bad:?}");
        }
        // What nginx accepts that looks odd.
        assert_eq!(parse_time_ms("10 "), Some(10_000));
        assert_eq!(parse_time_ms("1m30"), Some(90_000));
    }

    #[test]
    fn lb_values() {
        assert!(valid_lb("hash_ketama"));
        assert!(!valid_lb("random"));
    }
}
