//! Which worker does a job that one worker does for all (polling a zone
//! upstream's registry): a [`Lease`] in shared memory holds the pid of the
//! worker that has the job and when that worker last said it is alive.
//! Every worker looks at the lease each tick; a free lease, an owner that no
//! longer exists or one silent for [`STALE_S`] seconds is taken over with a
//! compare-and-swap, so exactly one worker has the job.

use std::sync::atomic::{AtomicU64, Ordering};

use ngx::ffi::{ngx_current_msec, ngx_pid};

/// How often every worker looks at the leases.
pub(crate) const ELECTION_TICK_MS: u64 = 1000;
/// An owner that has not refreshed its lease for this long, in seconds, is
/// replaced (a safety net: an owner that exits frees its lease, and a dead
/// owner's pid is noticed at the next tick).
const STALE_S: u64 = 5;

/// A lease in shared memory; all-zero is a free one.
#[repr(C)]
pub(crate) struct Lease {
    /// The owner's pid (high 32 bits, 0 when none) and when it last
    /// refreshed the lease (low 32 bits: seconds of `ngx_current_msec`, a
    /// monotonic clock all processes share). One word, so that a claim sets
    /// both at once.
    owner: AtomicU64,
}

/// What the election said to this worker.
#[derive(PartialEq, Eq)]
pub(crate) enum Role {
    /// This worker has the job (`true`: it has just taken it).
    Poller(bool),
    /// Another live worker has it.
    Follower,
}

impl Lease {
    /// Claims, keeps or leaves the job for this worker.
    pub(crate) fn elect(&self) -> Role {
        // SAFETY: process-wide values nginx keeps up to date.
        let (me, now) = unsafe { (ngx_pid as u32 as u64, ngx_current_msec as u64 / 1000) };
        let mine = me << 32 | (now & 0xffff_ffff);
        let word = self.owner.load(Ordering::Acquire);
        let (owner, beat) = (word >> 32, word & 0xffff_ffff);
        let fresh = (now & 0xffff_ffff).wrapping_sub(beat) & 0xffff_ffff <= STALE_S;
        if owner == me {
            return match self.owner.compare_exchange(
                word,
                mine,
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => Role::Poller(false),
                // Taken over meanwhile.
                Err(_) => Role::Follower,
            };
        }
        if owner != 0 && fresh && process_exists(owner) {
            return Role::Follower;
        }
        match self
            .owner
            .compare_exchange(word, mine, Ordering::AcqRel, Ordering::Acquire)
        {
            Ok(_) => Role::Poller(true),
            Err(_) => Role::Follower,
        }
    }

    /// The pid of the worker that has the job, 0 when none does (shown for
    /// zone upstreams' pollers).
    #[cfg(ngx_resolve_peers)]
    pub(crate) fn owner_pid(&self) -> u64 {
        self.owner.load(Ordering::Acquire) >> 32
    }

    /// Frees the lease if this worker holds it.
    pub(crate) fn resign(&self) {
        // SAFETY: as in elect.
        let me = unsafe { ngx_pid as u32 as u64 };
        let word = self.owner.load(Ordering::Acquire);
        if word >> 32 == me {
            let _ = self
                .owner
                .compare_exchange(word, 0, Ordering::AcqRel, Ordering::Acquire);
        }
    }
}

fn process_exists(pid: u64) -> bool {
    // SAFETY: signal 0 only checks that the process exists; it sends nothing.
    let rc = unsafe { ngx::ffi::kill(pid as ngx::ffi::pid_t, 0) };
    // EPERM: it exists, as someone else's.
    rc == 0 || std::io::Error::last_os_error().raw_os_error() == Some(1)
}
