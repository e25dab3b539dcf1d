//! The health of one peer: nginx_upstream_check_module's rise/fall rule
//! and NGINX Plus's counters, in plain integers and booleans that the
//! nginx layer mirrors into shared memory.
//!
//! The rule (C: `ngx_http_upstream_check_status_update`):
//!
//! - a pass: `rise_count += 1`, `fall_count = 0`; a down peer with
//!   `rise_count >= rise` comes up;
//! - a failure: `rise_count = 0`, `fall_count += 1`; an up peer with
//!   `fall_count >= fall` goes down.
//!
//! The counts are consecutive and keep growing after a transition (the
//! status page shows `rise 58`).

/// A change of state that [`PeerHealth::record`] made, for the log
/// (`enable check peer` / `disable check peer`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Transition {
    Up,
    Down,
}

/// One peer's health and counters.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PeerHealth {
    /// Marked down by the checks; balancers skip it.
    pub down: bool,
    /// Consecutive passes.
    pub rise_count: u64,
    /// Consecutive failures.
    pub fall_count: u64,
    /// Probes recorded.
    pub checks: u64,
    /// Probes that failed.
    pub fails: u64,
    /// Times the peer went from up to down (a start down is not one).
    pub unhealthy: u64,
    /// Whether the last probe passed (false before the first).
    pub last_passed: bool,
    /// When the current down stretch began, in ms; 0 while up.
    pub downstart_ms: u64,
    /// Time spent down in finished stretches, in ms; see
    /// [`PeerHealth::downtime_at`] for the running total.
    pub downtime_ms: u64,
}

impl PeerHealth {
    /// A new peer: down when `default_down` (it then needs `rise` passes),
    /// its down time counted from `now_ms`.
    pub fn new(default_down: bool, now_ms: u64) -> PeerHealth {
        PeerHealth {
            down: default_down,
            downstart_ms: if default_down { now_ms } else { 0 },
            ..PeerHealth::default()
        }
    }

    /// Records one probe's result; returns the transition it caused.
    pub fn record(
        &mut self,
        passed: bool,
        now_ms: u64,
        rise: u64,
        fall: u64,
    ) -> Option<Transition> {
        self.checks = self.checks.saturating_add(1);
        self.last_passed = passed;
        if passed {
            self.rise_count = self.rise_count.saturating_add(1);
            self.fall_count = 0;
            if self.down && self.rise_count >= rise {
                self.downtime_ms = self.downtime_at(now_ms);
                self.down = false;
                self.downstart_ms = 0;
                return Some(Transition::Up);
            }
        } else {
            self.fails = self.fails.saturating_add(1);
            self.rise_count = 0;
            self.fall_count = self.fall_count.saturating_add(1);
            if !self.down && self.fall_count >= fall {
                self.down = true;
                self.unhealthy = self.unhealthy.saturating_add(1);
                self.downstart_ms = now_ms;
                return Some(Transition::Down);
            }
        }
        None
    }

    /// Total time down until `now_ms`, the current stretch included.
    pub fn downtime_at(&self, now_ms: u64) -> u64 {
        if self.down {
            self.downtime_ms
                .saturating_add(now_ms.saturating_sub(self.downstart_ms))
        } else {
            self.downtime_ms
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_down_needs_rise_passes() {
        let mut h = PeerHealth::new(true, 1_000);
        assert!(h.down);
        assert_eq!(h.downstart_ms, 1_000);
        assert_eq!(h.record(true, 2_000, 2, 5), None);
        assert!(h.down);
        assert_eq!(h.record(true, 3_000, 2, 5), Some(Transition::Up));
        assert!(!h.down);
        assert_eq!(h.rise_count, 2);
        assert_eq!(h.downtime_ms, 2_000);
        assert_eq!(h.downstart_ms, 0);
        // Starting down is not an up-to-down transition.
        assert_eq!(h.unhealthy, 0);
        assert_eq!((h.checks, h.fails), (2, 0));
        assert!(h.last_passed);
    }

    #[test]
    fn default_up_goes_down_after_fall_failures() {
        let mut h = PeerHealth::new(false, 0);
        assert!(!h.down);
        assert_eq!(h.downstart_ms, 0);
        for t in 1..5 {
            assert_eq!(h.record(false, t * 100, 2, 5), None);
        }
        assert_eq!(h.fall_count, 4);
        assert_eq!(h.record(false, 500, 2, 5), Some(Transition::Down));
        assert!(h.down && !h.last_passed);
        assert_eq!((h.unhealthy, h.downstart_ms), (1, 500));
        assert_eq!(h.downtime_at(800), 300);
        // Counts keep growing, without a second transition.
        for t in 6..60 {
            assert_eq!(h.record(false, t * 100, 2, 5), None);
        }
        assert_eq!(h.fall_count, 59);
        assert_eq!((h.checks, h.fails), (59, 59));
    }

    #[test]
    fn counts_are_consecutive() {
        let mut h = PeerHealth::new(false, 0);
        h.record(false, 1, 2, 3);
        h.record(false, 2, 2, 3);
        h.record(true, 3, 2, 3);
        assert_eq!((h.rise_count, h.fall_count), (1, 0));
        h.record(false, 4, 2, 3);
        h.record(false, 5, 2, 3);
        assert_eq!((h.rise_count, h.fall_count, h.down), (0, 2, false));
        assert_eq!(h.record(false, 6, 2, 3), Some(Transition::Down));
        // One pass is not enough with rise=2; a failure starts over.
        h.record(true, 7, 2, 3);
        h.record(false, 8, 2, 3);
        assert_eq!(h.record(true, 9, 2, 3), None);
        assert_eq!(h.record(true, 10, 2, 3), Some(Transition::Up));
        assert_eq!(h.downtime_ms, 4);
        for t in 11..69 {
            h.record(true, t, 2, 3);
        }
        assert_eq!(h.rise_count, 60);
    }

    #[test]
    fn rise_and_fall_of_one() {
        let mut h = PeerHealth::new(true, 0);
        assert_eq!(h.record(true, 10, 1, 1), Some(Transition::Up));
        assert_eq!(h.record(false, 20, 1, 1), Some(Transition::Down));
        assert_eq!(h.record(false, 30, 1, 1), None);
        assert_eq!(h.record(true, 50, 1, 1), Some(Transition::Up));
        assert_eq!(h.downtime_ms, 10 + 30);
        assert_eq!(h.downtime_at(1_000), 40);
        assert_eq!(h.unhealthy, 1);
    }

    #[test]
    fn a_clock_going_back_does_not_underflow() {
        let mut h = PeerHealth::new(true, 1_000);
        assert_eq!(h.downtime_at(500), 0);
        assert_eq!(h.record(true, 500, 1, 1), Some(Transition::Up));
        assert_eq!(h.downtime_ms, 0);
    }
}
