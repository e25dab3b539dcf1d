//! The ring of nginx's `hash ... consistent` balancer, computed the way
//! nginx computes it (`ngx_http_upstream_update_chash`, the same in 1.22 and
//! 1.28), so that a per-worker list rebuilt for each new set of servers maps
//! every key exactly as nginx would map it for that set, and as a shared
//! zone does.
//!
//! Each server contributes `weight * 160` points: CRC32 of
//! `HOST \0 PORT PREV_HASH` (compatible with Cache::Memcached::Fast), with
//! PREV_HASH the previous point's hash in little-endian bytes, starting at 0.
//! Points are sorted by hash and equal hashes kept once.

/// One point of the ring: its hash and the index of its server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Point {
    pub hash: u32,
    pub server: usize,
}

/// The ring for `servers`, each a server name (`host:port`, as in a `server`
/// line, or `unix:path`) and its weight, in list order.
pub fn ring<'a>(servers: impl IntoIterator<Item = (&'a [u8], usize)>) -> Vec<Point> {
    let mut points = Vec::new();
    for (index, (name, weight)) in servers.into_iter().enumerate() {
        let (host, port) = split(name);
        let base = Crc32::new().update(host).update(b"\0").update(port);
        let mut prev = 0u32;
        for _ in 0..weight * 160 {
            let hash = base.update(&prev.to_le_bytes()).finish();
            points.push(Point {
                hash,
                server: index,
            });
            prev = hash;
        }
    }
    points.sort_by_key(|p| p.hash);
    points.dedup_by_key(|p| p.hash);
    points
}

/// nginx's split of a server name into the host and port it hashes: a
/// `unix:` prefix is dropped; else the port is the digits after the last
/// `:` when every character after it is a digit.
fn split(name: &[u8]) -> (&[u8], &[u8]) {
    if name.len() >= 5 && name[..5].eq_ignore_ascii_case(b"unix:") {
        return (&name[5..], b"");
    }
    for (j, &c) in name.iter().rev().enumerate() {
        if c == b':' {
            let at = name.len() - j - 1;
            return (&name[..at], &name[at + 1..]);
        }
        if !c.is_ascii_digit() {
            break;
        }
    }
    (name, b"")
}

/// CRC-32 (IEEE 802.3, reflected), as `ngx_crc32_*`: `new`, `update`, `finish`.
#[derive(Clone, Copy)]
struct Crc32(u32);

impl Crc32 {
    fn new() -> Self {
        Crc32(0xffff_ffff)
    }

    fn update(self, data: &[u8]) -> Self {
        let mut c = self.0;
        for &b in data {
            c = CRC32_TABLE[((c ^ b as u32) & 0xff) as usize] ^ (c >> 8);
        }
        Crc32(c)
    }

    fn finish(self) -> u32 {
        self.0 ^ 0xffff_ffff
    }
}

const CRC32_TABLE: [u32; 256] = {
    let mut table = [0u32; 256];
    let mut i = 0;
    while i < 256 {
        let mut c = i as u32;
        let mut k = 0;
        while k < 8 {
            c = if c & 1 != 0 {
                0xedb8_8320 ^ (c >> 1)
            } else {
                c >> 1
            };
            k += 1;
        }
        table[i] = c;
        i += 1;
    }
    table
};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc32_check_value() {
        assert_eq!(Crc32::new().update(b"123456789").finish(), 0xcbf4_3926);
        assert_eq!(
            Crc32::new().update(b"1234").update(b"56789").finish(),
            0xcbf4_3926
        );
    }

    #[test]
    fn names_split_as_nginx_splits_them() {
        assert_eq!(split(b"10.0.0.1:8080"), (&b"10.0.0.1"[..], &b"8080"[..]));
        assert_eq!(split(b"[::1]:80"), (&b"[::1]"[..], &b"80"[..]));
        assert_eq!(split(b"unix:/tmp/s"), (&b"/tmp/s"[..], &b""[..]));
        assert_eq!(split(b"UNIX:/tmp/s"), (&b"/tmp/s"[..], &b""[..]));
        assert_eq!(split(b"backend"), (&b"backend"[..], &b""[..]));
        assert_eq!(split(b"[::1]"), (&b"[::1]"[..], &b""[..]));
    }

    #[test]
    fn first_point_is_crc_of_host_nul_port_and_zero() {
        let ring = ring([(&b"10.0.0.1:80"[..], 1)]);
        let first = Crc32::new()
            .update(b"10.0.0.1\0")
            .update(b"80")
            .update(&[0, 0, 0, 0])
            .finish();
        assert_eq!(ring.len(), 160);
        assert!(ring.iter().any(|p| p.hash == first && p.server == 0));
        assert!(ring.windows(2).all(|w| w[0].hash < w[1].hash));
    }

    #[test]
    fn weight_multiplies_points_and_order_does_not_matter() {
        let a = ring([(&b"10.0.0.1:80"[..], 2), (&b"10.0.0.2:80"[..], 1)]);
        assert_eq!(a.iter().filter(|p| p.server == 0).count(), 320);
        let b = ring([(&b"10.0.0.2:80"[..], 1), (&b"10.0.0.1:80"[..], 2)]);
        fn names<'a>(r: &[Point], order: [&'a str; 2]) -> Vec<(u32, &'a str)> {
            r.iter().map(|p| (p.hash, order[p.server])).collect()
        }
        assert_eq!(
            names(&a, ["10.0.0.1:80", "10.0.0.2:80"]),
            names(&b, ["10.0.0.2:80", "10.0.0.1:80"])
        );
    }

    #[test]
    fn adding_a_server_only_adds_its_points() {
        let before = ring([(&b"10.0.0.1:80"[..], 1), (&b"10.0.0.2:80"[..], 1)]);
        let after = ring([
            (&b"10.0.0.1:80"[..], 1),
            (&b"10.0.0.2:80"[..], 1),
            (&b"10.0.0.3:80"[..], 1),
        ]);
        let kept: Vec<Point> = after.iter().copied().filter(|p| p.server < 2).collect();
        assert_eq!(kept, before);
    }
}
