//! The sync figures of every synced upstream, in a shared memory zone of
//! this module, so that whichever worker answers `upstream_show` gives the
//! same figures: one [`Cell`] per upstream in zone mode (its poller writes
//! it), one per worker slot (`ngx_worker`) in per-worker mode.
//!
//! A cell has one writer at a time and any number of readers. Every field
//! is an atomic word, and a sequence number (odd while a write is under
//! way) lets a reader take a consistent copy (a seqlock).

use std::ffi::c_void;
use std::sync::atomic::{fence, AtomicU64, Ordering};

use ngx::ffi::{
    ngx_conf_t, ngx_int_t, ngx_shared_memory_add, ngx_shm_zone_t, ngx_slab_calloc, ngx_slab_pool_t,
    ngx_str_t, NGX_ERROR, NGX_OK,
};

use crate::registry::session::REASONS;
use crate::status::Record;

/// The longest error text kept, in bytes.
const TEXT_WORDS: usize = 32;

#[repr(C)]
pub(crate) struct Cell {
    seq: AtomicU64,
    pid: AtomicU64,
    /// The position + 1; 0: none.
    position: AtomicU64,
    syncs: AtomicU64,
    changes: AtomicU64,
    errors: [AtomicU64; REASONS],
    last_ok: AtomicU64,
    /// Unix milliseconds; 0: never.
    last_sync_ms: AtomicU64,
    last_change_ms: AtomicU64,
    last_error_ms: AtomicU64,
    dump_written_ms: AtomicU64,
    error_len: AtomicU64,
    error: [AtomicU64; TEXT_WORDS],
}

fn some(v: u64) -> Option<u64> {
    (v != 0).then_some(v)
}

impl Cell {
    /// Writes `r` (its `worker` is not stored: it is the cell's place).
    pub(crate) fn write(&self, r: &Record) {
        let seq = self.seq.load(Ordering::Relaxed);
        self.seq.store(seq | 1, Ordering::Relaxed);
        fence(Ordering::Release);
        let set = |cell: &AtomicU64, v: u64| cell.store(v, Ordering::Relaxed);
        set(&self.pid, r.pid);
        set(
            &self.position,
            r.position.map_or(0, |p| p.saturating_add(1)),
        );
        set(&self.syncs, r.syncs);
        set(&self.changes, r.changes);
        for (cell, v) in self.errors.iter().zip(r.errors) {
            set(cell, v);
        }
        set(&self.last_ok, u64::from(r.last_ok));
        set(&self.last_sync_ms, r.last_sync_ms.unwrap_or(0));
        set(&self.last_change_ms, r.last_change_ms.unwrap_or(0));
        set(&self.dump_written_ms, r.dump_written_ms.unwrap_or(0));
        let (at, text) = r.last_error.as_ref().map_or((0, ""), |(t, s)| (*t, s));
        set(&self.last_error_ms, at);
        let mut len = text.len().min(TEXT_WORDS * 8);
        while !text.is_char_boundary(len) {
            len -= 1;
        }
        let bytes = &text.as_bytes()[..len];
        for (i, word) in self.error.iter().enumerate() {
            let mut w = [0u8; 8];
            let part = bytes.get(i * 8..).unwrap_or(&[]);
            let n = part.len().min(8);
            w[..n].copy_from_slice(&part[..n]);
            set(word, u64::from_ne_bytes(w));
        }
        set(&self.error_len, len as u64);
        self.seq.store((seq | 1) + 1, Ordering::Release);
    }

    /// A consistent copy, unless a writer keeps it busy (then the last
    /// try's, which may mix two writes; figures are never torn words).
    pub(crate) fn read(&self, worker: usize) -> Record {
        let mut record = Record::default();
        for _ in 0..100 {
            let before = self.seq.load(Ordering::Acquire);
            if before & 1 == 1 {
                std::hint::spin_loop();
                continue;
            }
            record = self.fields(worker);
            fence(Ordering::Acquire);
            if self.seq.load(Ordering::Relaxed) == before {
                break;
            }
        }
        record
    }

    fn fields(&self, worker: usize) -> Record {
        let get = |cell: &AtomicU64| cell.load(Ordering::Relaxed);
        let len = (get(&self.error_len) as usize).min(TEXT_WORDS * 8);
        let mut text = Vec::with_capacity(TEXT_WORDS * 8);
        for word in &self.error {
            text.extend_from_slice(&get(word).to_ne_bytes());
        }
        text.truncate(len);
        let mut errors = [0; REASONS];
        for (e, cell) in errors.iter_mut().zip(&self.errors) {
            *e = get(cell);
        }
        Record {
            worker,
            pid: get(&self.pid),
            position: get(&self.position).checked_sub(1),
            syncs: get(&self.syncs),
            changes: get(&self.changes),
            errors,
            last_ok: get(&self.last_ok) != 0,
            last_sync_ms: some(get(&self.last_sync_ms)),
            last_change_ms: some(get(&self.last_change_ms)),
            last_error: some(get(&self.last_error_ms))
                .map(|t| (t, String::from_utf8_lossy(&text).into_owned())),
            dump_written_ms: some(get(&self.dump_written_ms)),
        }
    }
}

/// Where an upstream's cells are: `count` cells from `first`.
#[derive(Clone, Copy)]
pub(crate) struct Cells {
    zone: *mut ngx_shm_zone_t,
    first: usize,
    pub(crate) count: usize,
}

impl Cells {
    /// The `i`-th cell (`i < count`).
    ///
    /// # Safety
    /// Must run in a process of the cycle whose configuration declared the
    /// zone (its init callback has run: a worker, or the single process).
    pub(crate) unsafe fn cell(&self, i: usize) -> Option<&Cell> {
        if i >= self.count {
            return None;
        }
        // SAFETY: per the contract, the zone's data is its cell array,
        // mapped in every process of the cycle, of at least first + count
        // cells; all-zero is a valid cell and every field is an atomic.
        unsafe {
            let cells = (*self.zone).data.cast::<Cell>();
            (!cells.is_null()).then(|| &*cells.add(self.first + i))
        }
    }
}

/// Hands out cells while the configuration is read, then declares the zone
/// that holds them all.
pub(crate) struct Plan {
    zone: *mut ngx_shm_zone_t,
    next: usize,
    /// The cells of a per-worker upstream: one per worker slot.
    per_worker: usize,
}

const ZONE_NAME: &[u8] = b"ngx_http_upsync_module_status";

impl Plan {
    /// Declares the zone for `total` cells, `per_worker` for each upstream
    /// without a zone.
    ///
    /// # Safety
    /// `cf` must be the configuration being built; `tag` the module's address.
    pub(crate) unsafe fn new(
        cf: *mut ngx_conf_t,
        total: usize,
        per_worker: usize,
        tag: *mut c_void,
    ) -> Option<Plan> {
        let mut name = ngx_str_t {
            len: ZONE_NAME.len(),
            data: ZONE_NAME.as_ptr().cast_mut(),
        };
        // The slab pool needs a few pages of its own.
        let size = (8 * 4096 + total * size_of::<Cell>()).div_ceil(4096) * 4096;
        // SAFETY: per the contract; nginx copies the name struct, whose bytes
        // are static.
        let zone = unsafe { ngx_shared_memory_add(cf, &mut name, size, tag) };
        if zone.is_null() {
            return None;
        }
        // SAFETY: a zone nginx just declared for us, not initialised yet; its
        // data carries the cell count to the init callback. A new cycle
        // starts its figures anew (`noreuse`).
        unsafe {
            (*zone).init = Some(init_zone);
            (*zone).data = total as *mut c_void;
            (*zone).noreuse = 1;
        }
        Some(Plan {
            zone,
            next: 0,
            per_worker,
        })
    }

    /// The cells of the next upstream: one for a `zoned` one, else one per
    /// worker slot.
    pub(crate) fn take(&mut self, zoned: bool) -> Cells {
        let count = if zoned { 1 } else { self.per_worker };
        let cells = Cells {
            zone: self.zone,
            first: self.next,
            count,
        };
        self.next += count;
        cells
    }
}

/// Allocates the cells, all zero, in the new zone.
///
/// # Safety
/// nginx calls it once per cycle in the master, with the zone mapped and its
/// slab pool initialised.
unsafe extern "C" fn init_zone(zone: *mut ngx_shm_zone_t, _old: *mut c_void) -> ngx_int_t {
    super::guard(NGX_ERROR as ngx_int_t, || {
        // SAFETY: per the contract; `data` holds the count Plan::new set.
        unsafe {
            let count = (*zone).data as usize;
            let pool = (*zone).shm.addr.cast::<ngx_slab_pool_t>();
            let cells = ngx_slab_calloc(pool, count.max(1) * size_of::<Cell>());
            if cells.is_null() {
                return NGX_ERROR as ngx_int_t;
            }
            (*zone).data = cells;
        }
        NGX_OK as ngx_int_t
    })
}
