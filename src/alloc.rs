//! The `weir` binary's allocator policy: glibc malloc, trimmed when it holds freed
//! memory, and its figures for `/varz` (issue 9, fault 7).
//!
//! glibc keeps what the program frees in its arenas (one per thread that allocated),
//! so after 500 clients churned or a client with 200,000 subscriptions left, RSS stayed
//! at up to 1 GiB while under 1 MB was in use. A trimmer task looks at glibc's figures
//! every [`TRIM_EVERY`] and, when more than [`TRIM_OVER`] bytes are free inside the
//! heap, calls `malloc_trim(0)`, which gives every free page of every arena back to the
//! kernel. Measured against mimalloc on the same workloads (README, "Memory after load").
//!
//! Only in the normal build on glibc targets; the simulation has no allocator policy.

use serde::Serialize;
use std::time::Duration;

/// How often the trimmer looks.
pub const TRIM_EVERY: Duration = Duration::from_secs(1);
/// Free bytes held by malloc above which the trimmer trims.
pub const TRIM_OVER: usize = 1 << 20;

/// Allocator figures for `/varz` (bytes).
#[derive(Clone, Debug, Default, Serialize)]
pub struct AllocatorVarz {
    /// Which allocator and policy.
    pub name: &'static str,
    /// Bytes in use by the program (glibc's `uordblks + hblkhd`).
    pub allocated: u64,
    /// Resident set size of the process (`/proc/self/statm`).
    pub resident: u64,
    /// Bytes freed by the program and kept by the allocator (glibc's `fordblks`).
    pub retained: u64,
    /// Times the trimmer gave memory back.
    pub trims: u64,
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
mod imp {
    use super::AllocatorVarz;
    use std::sync::atomic::{AtomicU64, Ordering};

    static TRIMS: AtomicU64 = AtomicU64::new(0);

    /// (in use, free inside the heap), from glibc.
    fn mallinfo() -> (usize, usize) {
        // SAFETY: mallinfo2 only reads the allocator's statistics.
        let m = unsafe { libc::mallinfo2() };
        (m.uordblks + m.hblkhd, m.fordblks)
    }

    fn resident() -> u64 {
        let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
        let pages: u64 = statm.split_whitespace().nth(1).and_then(|p| p.parse().ok()).unwrap_or(0);
        // SAFETY: sysconf has no preconditions.
        let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
        pages * page.max(0) as u64
    }

    pub fn stats() -> AllocatorVarz {
        let (allocated, retained) = mallinfo();
        AllocatorVarz {
            name: "glibc malloc + trim",
            allocated: allocated as u64,
            resident: resident(),
            retained: retained as u64,
            trims: TRIMS.load(Ordering::Relaxed),
        }
    }

    pub fn trim_if_needed() {
        if mallinfo().1 > super::TRIM_OVER {
            // SAFETY: malloc_trim only returns free memory to the kernel.
            unsafe { libc::malloc_trim(0) };
            TRIMS.fetch_add(1, Ordering::Relaxed);
        }
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
mod imp {
    use super::AllocatorVarz;

    pub fn stats() -> AllocatorVarz {
        AllocatorVarz { name: "system", ..AllocatorVarz::default() }
    }

    pub fn trim_if_needed() {}
}

/// The allocator's current figures.
pub fn stats() -> AllocatorVarz {
    imp::stats()
}

/// Trim every [`TRIM_EVERY`] while the server runs (spawn on the server's runtime).
pub async fn run_trimmer() {
    let mut tick = tokio::time::interval(TRIM_EVERY);
    loop {
        tick.tick().await;
        imp::trim_if_needed();
    }
}
