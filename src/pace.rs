//! Pacing of the poll loop: no registry answer, however quick or broken,
//! makes the loop poll again at once more than a few times in a row.
//!
//! Some answers call for the next poll at once: an etcd watch to start after
//! a read, a read after an etcd event, a watch that ended. A registry (or a
//! proxy in front of it) that answers those at once, forever, would have the
//! worker connect thousands of times a second. So a poll asked for at once
//! after an exchange that lasted less than [`QUICK_MS`] counts as quick; after
//! [`QUICK_IN_ROW`] quick ones in a row the next waits the interval, at least
//! [`MIN_PAUSE_MS`] and at most [`MAX_PAUSE_MS`]. An exchange that was held
//! (a long poll, a watch that waited for its event) resets the count.

/// An exchange shorter than this, followed by a poll at once, is quick.
pub const QUICK_MS: u64 = 100;
/// Quick polls allowed in a row before a pause.
pub const QUICK_IN_ROW: u32 = 3;
/// The pause after them: the interval, within these bounds.
pub const MIN_PAUSE_MS: u64 = 100;
pub const MAX_PAUSE_MS: u64 = 1000;

#[derive(Debug, Default)]
pub struct Pacer {
    started_ms: Option<u64>,
    quick_in_row: u32,
}

impl Pacer {
    /// An exchange starts at `now_ms`.
    pub fn started(&mut self, now_ms: u64) {
        self.started_ms = Some(now_ms);
    }

    /// The delay before the next poll, for one asked after `delay_ms`.
    pub fn delay(&mut self, now_ms: u64, delay_ms: u64, interval_ms: u64) -> u64 {
        let held = self
            .started_ms
            .map_or(true, |s| now_ms.saturating_sub(s) >= QUICK_MS);
        if delay_ms > 0 || held {
            self.quick_in_row = 0;
            return delay_ms;
        }
        self.quick_in_row += 1;
        if self.quick_in_row <= QUICK_IN_ROW {
            return 0;
        }
        self.quick_in_row = 0;
        interval_ms.clamp(MIN_PAUSE_MS, MAX_PAUSE_MS)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quick_answers_at_once_are_paced() {
        let mut p = Pacer::default();
        let mut now = 1000;
        let mut delays = Vec::new();
        for _ in 0..8 {
            p.started(now);
            now += 1;
            let d = p.delay(now, 0, 5000);
            delays.push(d);
            now += d;
        }
        assert_eq!(delays, [0, 0, 0, 1000, 0, 0, 0, 1000]);
        // A short interval still pauses at least MIN_PAUSE_MS.
        let mut p = Pacer::default();
        let d: Vec<u64> = (0..4)
            .map(|i| {
                p.started(i * 2);
                p.delay(i * 2 + 1, 0, 0)
            })
            .collect();
        assert_eq!(d, [0, 0, 0, MIN_PAUSE_MS]);
    }

    #[test]
    fn held_exchanges_and_delays_reset_the_count() {
        let mut p = Pacer::default();
        // The first poll (nothing started yet) goes at once.
        assert_eq!(p.delay(0, 0, 5000), 0);
        for round in 0..10u64 {
            let t = round * 10_000;
            p.started(t);
            assert_eq!(p.delay(t + 1, 0, 5000), 0); // a quick read, then a watch
            p.started(t + 1);
            assert_eq!(p.delay(t + 5000, 0, 5000), 0); // the watch waited for its event
        }
        p.started(0);
        assert_eq!(p.delay(1, 0, 5000), 0);
        assert_eq!(p.delay(1, 250, 5000), 250);
        p.started(2);
        assert_eq!(p.delay(3, 0, 5000), 0);
    }
}
