//! The addresses of one registry cluster (`upsync a:8500,b:8500/path`):
//! which one a poll uses, failover when it fails, and the backoff when they
//! all do.
//!
//! A poll uses the first endpoint, in the configured order, that is not
//! marked down, so the module comes back to the first one once its down
//! period ends. A failure marks the endpoint in use down for [`DOWN_MS`] and
//! moves to the next one at once. When every endpoint is down, polls back
//! off exponentially from `upsync_interval` to [`BACKOFF_CAP_MS`], with
//! jitter so that many workers do not come back at the same moment; an
//! answer resets it.

/// How long a failed endpoint is left alone (nginx's `fail_timeout` default).
pub const DOWN_MS: u64 = 10_000;
/// The longest wait between two polls of a failing registry.
pub const BACKOFF_CAP_MS: u64 = 30_000;

pub struct Endpoints {
    names: Vec<String>,
    /// When each endpoint's down period ends (0: not down).
    down_until: Vec<u64>,
    current: usize,
    /// Failures in a row with every endpoint down.
    rounds: u32,
    rng: u64,
}

/// What to do after a failure.
#[derive(Debug, PartialEq, Eq)]
pub struct After {
    pub delay_ms: u64,
    /// What follows the failure in its log line: ", trying B next" or
    /// ", retrying in N ms".
    pub note: String,
}

impl Endpoints {
    /// `names` in the configured order (at least one); `seed` for the
    /// jitter (the pid, say).
    pub fn new(names: Vec<String>, seed: u64) -> Self {
        assert!(!names.is_empty(), "a registry has an endpoint");
        Endpoints {
            down_until: vec![0; names.len()],
            names,
            current: 0,
            rounds: 0,
            rng: seed | 1,
        }
    }

    /// A seed of this process's own for the jitter (the worker's pid).
    pub fn seed(&mut self, seed: u64) {
        self.rng = seed | 1;
    }

    pub fn current(&self) -> usize {
        self.current
    }

    pub fn name(&self, i: usize) -> &str {
        &self.names[i]
    }

    /// At the start of a poll, at `now_ms`: the endpoint to use. When it is
    /// another than the last one, the line to log says why.
    pub fn pick(&mut self, now_ms: u64) -> Option<String> {
        let up = (0..self.names.len()).find(|&i| self.down_until[i] <= now_ms);
        // Every one down: the one whose down period ends first.
        let next = up.unwrap_or_else(|| {
            (0..self.names.len())
                .min_by_key(|&i| self.down_until[i])
                .unwrap_or(0)
        });
        if next == self.current {
            return None;
        }
        let old = self.current;
        self.current = next;
        Some(if next < old {
            format!(
                "using registry {} again, its down period is over",
                self.names[next]
            )
        } else {
            format!(
                "using registry {}, registry {} is down",
                self.names[next], self.names[old]
            )
        })
    }

    /// The endpoint in use failed at `now_ms`: it is marked down, and the
    /// next poll goes to another endpoint at once, or backs off.
    pub fn failed(&mut self, now_ms: u64, interval_ms: u64) -> After {
        self.down_until[self.current] = now_ms + DOWN_MS;
        let n = self.names.len();
        let other = (1..n)
            .map(|k| (self.current + k) % n)
            .find(|&i| self.down_until[i] <= now_ms);
        if let Some(i) = other {
            return After {
                delay_ms: 0,
                note: format!(", trying {} next", self.names[i]),
            };
        }
        self.rounds = self.rounds.saturating_add(1);
        let delay_ms = self.backoff(interval_ms);
        After {
            delay_ms,
            note: format!(", retrying in {delay_ms} ms"),
        }
    }

    /// An answer came: the backoff starts again from the interval.
    pub fn succeeded(&mut self) {
        self.rounds = 0;
        self.down_until[self.current] = 0;
    }

    /// The wait after the `rounds`-th failure in a row: the interval (at
    /// least the 100 ms every failure waits), doubled each time, capped;
    /// from the second on, a random half to whole of it.
    fn backoff(&mut self, interval_ms: u64) -> u64 {
        let base = interval_ms.max(crate::pace::MIN_PAUSE_MS);
        let shift = (self.rounds - 1).min(20);
        let full = base
            .saturating_mul(1 << shift)
            .min(BACKOFF_CAP_MS.max(base));
        if self.rounds == 1 {
            return full;
        }
        full / 2 + self.random() % (full / 2 + 1)
    }

    /// xorshift64: enough to spread workers apart.
    fn random(&mut self) -> u64 {
        let mut x = self.rng;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.rng = x;
        x
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn three() -> Endpoints {
        Endpoints::new(vec!["a:1".into(), "b:1".into(), "c:1".into()], 42)
    }

    #[test]
    fn failover_then_back_to_the_first() {
        let mut e = three();
        assert_eq!(e.pick(0), None);
        assert_eq!(
            e.failed(1000, 500),
            After {
                delay_ms: 0,
                note: ", trying b:1 next".into()
            }
        );
        assert_eq!(
            e.pick(1000).as_deref(),
            Some("using registry b:1, registry a:1 is down")
        );
        e.succeeded();
        // Still down: b stays in use.
        assert_eq!(e.pick(5000), None);
        assert_eq!(e.current(), 1);
        assert_eq!(
            e.pick(1000 + DOWN_MS).as_deref(),
            Some("using registry a:1 again, its down period is over")
        );
        assert_eq!(e.current(), 0);
    }

    #[test]
    fn every_endpoint_down_backs_off_to_the_cap() {
        let mut e = three();
        let mut now = 0;
        // Three failures walk the list.
        assert_eq!(e.failed(now, 100).delay_ms, 0);
        e.pick(now);
        assert_eq!(e.failed(now, 100).delay_ms, 0);
        e.pick(now);
        let after = e.failed(now, 100);
        assert_eq!(
            after,
            After {
                delay_ms: 100,
                note: ", retrying in 100 ms".into()
            }
        );
        let mut delays = Vec::new();
        for _ in 0..12 {
            now += 20_000;
            e.pick(now);
            // The picked endpoint is down no more; fail it and the others.
            let mut d = e.failed(now, 100).delay_ms;
            while d == 0 {
                e.pick(now);
                d = e.failed(now, 100).delay_ms;
            }
            delays.push(d);
        }
        // Doubling with jitter (each in its [half, whole] range), then capped.
        for (k, d) in delays.iter().enumerate() {
            let full = (100u64 << (k + 1)).min(BACKOFF_CAP_MS);
            assert!(
                *d >= full / 2 && *d <= full,
                "round {k}: {d} not in {full}/2..={full}"
            );
        }
        assert!(delays[11] >= BACKOFF_CAP_MS / 2);
        // An answer starts it again.
        e.succeeded();
        now += 40_000;
        e.pick(now);
        let _ = e.failed(now, 100);
        e.pick(now);
        let _ = e.failed(now, 100);
        e.pick(now);
        assert_eq!(e.failed(now, 100).delay_ms, 100);
    }

    #[test]
    fn one_endpoint_backs_off() {
        let mut e = Endpoints::new(vec!["a:1".into()], 7);
        assert_eq!(e.failed(0, 1000).note, ", retrying in 1000 ms");
        assert_eq!(e.pick(10), None);
        let d = e.failed(10, 1000).delay_ms;
        assert!((1000..=2000).contains(&d));
        // A long interval is never cut by the cap.
        let mut slow = Endpoints::new(vec!["a:1".into()], 7);
        assert_eq!(slow.failed(0, 60_000).delay_ms, 60_000);
    }

    #[test]
    fn jitter_differs_between_workers() {
        let run = |seed| {
            let mut e = Endpoints::new(vec!["a:1".into()], seed);
            (0..8)
                .map(|i| e.failed(i, 100).delay_ms)
                .collect::<Vec<_>>()
        };
        assert_ne!(run(1001), run(1002));
    }
}
