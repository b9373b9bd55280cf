//! The `weir` binary's allocator policy: glibc malloc, trimmed when it holds freed
//! memory, and its figures for `/varz` (issue 9, fault 7).
//!
//! glibc keeps what the program frees in its arenas (one per thread that allocated),
//! so after 500 clients churned or a client with 200,000 subscriptions left, RSS stayed
//! at up to 1 GiB while under 1 MB was in use. A trimmer task looks at glibc's figures
//! every [`TRIM_EVERY`] and, when more than [`TRIM_OVER`] bytes are free inside the
//! heap and either the memory in use fell by as much since the last trim or anonymous
//! resident memory exceeds what is in use by as much more than right after it
//! ([`should_trim`]),
//! calls `malloc_trim(0)`, which gives every free page of every arena back to the
//! kernel. Measured against jemalloc 5.3 and mimalloc 2.0.9 on the same workloads
//! (README, "Server faults of issue 9"): 30 s after a 200,000-subscription client or
//! 500 churning connections left, glibc with the trim was at 8-10 MiB of RSS, the others
//! (and glibc without the trim) at 159-374 MiB, so glibc with the trim stays.
//!
//! The allocator is found at run time, so that the comparison can run the same binary
//! with jemalloc or mimalloc put in front of glibc by `LD_PRELOAD`: when the process has
//! jemalloc's `mallctl`, `/varz` shows jemalloc's own figures; when it has mimalloc's
//! `mi_process_info`, mimalloc's; the trimmer only trims glibc. `WEIR_MALLOC_TRIM=off`
//! in the environment turns the trimmer off (the "before" of the comparison).
//!
//! **No per-thread cache.** glibc's per-thread cache (tcache: up to 7 freed chunks of
//! each size up to 1 KiB, per thread) keeps chunks the program freed as if in use, and
//! nothing but the thread's exit empties it. After 500 churning connections, the two
//! worker threads' caches held chunks scattered over their arenas, and every page
//! holding one (and the header page of each free chunk between them) stayed resident:
//! 3.2 MiB of anonymous memory where 0.8 MiB was idle, with 0.2 MiB of the program's
//! own allocations live (heaptrack). With the cache off, the same load ends at 0.9 MiB.
//! The cache is a glibc tunable read only when the process starts, so `weir serve`
//! re-executes itself once with `glibc.malloc.tcache_count=0` added to
//! `GLIBC_TUNABLES` ([`disable_thread_cache`]); `WEIR_MALLOC_TCACHE=on` (or
//! `WEIR_MALLOC_TRIM=off`, or a `tcache_count` already in `GLIBC_TUNABLES`) keeps it.
//!
//! **Fixed thresholds.** glibc raises its mmap threshold to the size of each large
//! block the program frees (up to 32 MiB) and its trim threshold to twice that, so after
//! one 8 MB message had been read, later 8 MB buffers came from a worker thread's arena
//! instead of their own mappings, and the top of that arena (which `malloc_trim` does
//! not shrink outside the main arena) stayed resident: 40 connections that each sent
//! one 8 MB message and left kept 14 MiB of anonymous memory with 0.13 MiB in use. The
//! trimmer's task pins both thresholds to glibc's defaults ([`PINNED_THRESHOLD`]) when
//! the server starts ([`pin_thresholds`]), so a large buffer is always a mapping of its
//! own, returned when freed. `MALLOC_MMAP_THRESHOLD_`, `MALLOC_TRIM_THRESHOLD_` or the
//! matching `GLIBC_TUNABLES` keep an operator's choice.
//!
//! **No fastbins.** `malloc_trim` gives back the free pages inside every arena but
//! shrinks only the main arena's top; a worker thread's arena gives back its top only
//! when a free of at least 64 KiB merges into it (glibc's `heap_trim`). Small chunks
//! freed into glibc's fastbins are not merged at all until a later consolidation (a
//! trim, or a larger `malloc`), which merges them into the top without trimming it:
//! after 500 churning connections, one run in three kept 12-24 MiB of anonymous
//! memory in a worker arena's top with 0.1 MiB in use, and a forced `malloc_trim`
//! changed nothing. With fastbins off (`M_MXFAST` 0, pinned with the thresholds), a
//! small free merges with its neighbours at once, so a free next to the top shrinks
//! the top as any large free does, and other free chunks sit in bins whose pages
//! `malloc_trim` gives back: the same load ended at 1.0 MiB in 7 runs of 7.
//!
//! Only in the normal build on glibc targets; the simulation has no allocator policy.

use serde::Serialize;
use std::time::Duration;

/// How often the trimmer looks.
pub const TRIM_EVERY: Duration = Duration::from_secs(1);
/// Free bytes held by malloc above which the trimmer trims.
pub const TRIM_OVER: usize = 1 << 20;

/// glibc's mmap and trim thresholds once pinned (bytes; glibc's own defaults, which it
/// otherwise raises as large blocks are freed): an allocation of at least this size is a
/// mapping of its own, and an arena's free top above it is given back on `free`.
pub const PINNED_THRESHOLD: usize = 128 << 10;

/// Whether to trim now: malloc holds over [`TRIM_OVER`] free bytes (glibc's `fordblks`),
/// and either the bytes in use fell by over [`TRIM_OVER`] from `high`, the most in use
/// seen since the last trim (the load that freed them may have left their pages
/// resident), or the process's anonymous resident memory (`anon`) exceeds what is in
/// use (`allocated`) by over [`TRIM_OVER`] more than `floor`, the excess right after the
/// last trim (or less, if it dropped since): pages a trim cannot give back, such as
/// stacks and pages holding a live allocation (a load freed memory between two looks).
///
/// `fordblks` alone cannot say: it still counts the free bytes whose pages a trim gave
/// back, so after one large load it stayed high and the trimmer trimmed every second
/// for nothing. The excess alone cannot say either: a trim in the middle of a load
/// leaves much resident that is free but fragmented between live allocations, so the
/// floor is high, and when the load then frees the rest the excess barely moves; with
/// the excess alone, 500 churning connections left 10 MiB (earlier 500 MiB) resident.
pub fn should_trim(anon: u64, allocated: u64, floor: u64, high: u64, free: u64) -> bool {
    let over = TRIM_OVER as u64;
    free > over
        && (high.saturating_sub(allocated) > over || anon.saturating_sub(allocated) > floor.saturating_add(over))
}

/// Allocator figures for `/varz` (bytes; 0 where the allocator does not tell).
#[derive(Clone, Debug, Default, Serialize)]
pub struct AllocatorVarz {
    /// Which allocator and policy: `glibc malloc + trim, no thread cache` (the default),
    /// `glibc malloc + trim`, `glibc malloc`, `jemalloc`, `mimalloc` or `system`.
    pub name: &'static str,
    /// Bytes in use by the program (glibc's `uordblks + hblkhd`; jemalloc's
    /// `stats.allocated`; 0 for mimalloc, which does not count it cheaply).
    pub allocated: u64,
    /// Resident set size of the process (`/proc/self/statm`).
    pub resident: u64,
    /// Bytes freed by the program and kept by the allocator, resident (glibc's
    /// `fordblks`; jemalloc's `stats.resident - stats.allocated`; 0 for mimalloc).
    pub retained: u64,
    /// Times the trimmer gave memory back.
    pub trims: u64,
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
mod imp {
    use super::AllocatorVarz;
    use std::ffi::{CStr, c_char, c_int, c_void};
    use std::sync::OnceLock;
    use std::sync::atomic::{AtomicU64, Ordering};

    static TRIMS: AtomicU64 = AtomicU64::new(0);

    /// jemalloc's `mallctl(name, oldp, oldlenp, newp, newlen)`.
    type Mallctl = unsafe extern "C" fn(*const c_char, *mut c_void, *mut usize, *mut c_void, usize) -> c_int;

    /// The allocator behind `malloc` in this process.
    #[derive(Clone, Copy)]
    enum Kind {
        Glibc { trim: bool },
        Jemalloc(Mallctl),
        Mimalloc,
    }

    fn kind() -> Kind {
        static KIND: OnceLock<Kind> = OnceLock::new();
        *KIND.get_or_init(|| {
            // SAFETY: dlsym only looks a name up among the loaded objects.
            let sym = |name: &CStr| unsafe { libc::dlsym(libc::RTLD_DEFAULT, name.as_ptr()) };
            let mallctl = sym(c"mallctl");
            if !mallctl.is_null() {
                // SAFETY: jemalloc exports `mallctl` with this signature.
                return Kind::Jemalloc(unsafe { std::mem::transmute::<*mut c_void, Mallctl>(mallctl) });
            }
            if !sym(c"mi_process_info").is_null() {
                return Kind::Mimalloc;
            }
            Kind::Glibc { trim: std::env::var("WEIR_MALLOC_TRIM").map_or(true, |v| v != "off") }
        })
    }

    /// Whether glibc's per-thread cache was turned off when the process started.
    fn thread_cache_off() -> bool {
        std::env::var("GLIBC_TUNABLES").is_ok_and(|t| t.contains("glibc.malloc.tcache_count=0"))
    }

    /// (in use, free inside the heap), from glibc.
    fn mallinfo() -> (usize, usize) {
        // SAFETY: mallinfo2 only reads the allocator's statistics.
        let m = unsafe { libc::mallinfo2() };
        (m.uordblks + m.hblkhd, m.fordblks)
    }

    /// A `size_t` statistic of jemalloc's.
    fn je_stat(mallctl: Mallctl, name: &CStr) -> u64 {
        let mut v: usize = 0;
        let mut len = std::mem::size_of::<usize>();
        // SAFETY: `v` and `len` are a valid out-buffer for a size_t statistic.
        let rc = unsafe { mallctl(name.as_ptr(), (&raw mut v).cast(), &raw mut len, std::ptr::null_mut(), 0) };
        if rc == 0 { v as u64 } else { 0 }
    }

    /// (resident, resident and not file-backed) of the process, in bytes, from
    /// `/proc/self/statm` (its `resident` and `shared` fields).
    fn statm() -> (u64, u64) {
        let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
        let field = |i| statm.split_whitespace().nth(i).and_then(|p| p.parse::<u64>().ok()).unwrap_or(0);
        let (resident, shared) = (field(1), field(2));
        // SAFETY: sysconf has no preconditions.
        let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) }.max(0) as u64;
        (resident * page, resident.saturating_sub(shared) * page)
    }

    fn resident() -> u64 {
        statm().0
    }

    pub fn stats() -> AllocatorVarz {
        let trims = TRIMS.load(Ordering::Relaxed);
        match kind() {
            Kind::Glibc { trim } => {
                let (allocated, retained) = mallinfo();
                AllocatorVarz {
                    name: match (trim, thread_cache_off()) {
                        (true, true) => "glibc malloc + trim, no thread cache",
                        (true, false) => "glibc malloc + trim",
                        (false, _) => "glibc malloc",
                    },
                    allocated: allocated as u64,
                    resident: resident(),
                    retained: retained as u64,
                    trims,
                }
            }
            Kind::Jemalloc(mallctl) => {
                // jemalloc's statistics are a snapshot taken when "epoch" is written.
                let mut epoch: u64 = 1;
                let mut len = std::mem::size_of::<u64>();
                let p = (&raw mut epoch).cast();
                // SAFETY: "epoch" reads and writes a u64; the buffers are valid.
                unsafe { mallctl(c"epoch".as_ptr(), p, &raw mut len, p, len) };
                let allocated = je_stat(mallctl, c"stats.allocated");
                let je_resident = je_stat(mallctl, c"stats.resident");
                AllocatorVarz {
                    name: "jemalloc",
                    allocated,
                    resident: resident(),
                    retained: je_resident.saturating_sub(allocated),
                    trims,
                }
            }
            Kind::Mimalloc => {
                AllocatorVarz { name: "mimalloc", resident: resident(), trims, ..AllocatorVarz::default() }
            }
        }
    }

    /// Anonymous resident bytes beyond those in use right after the last trim, lowered
    /// whenever the excess is smaller (see [`super::should_trim`]).
    static FLOOR: AtomicU64 = AtomicU64::new(0);

    /// (anonymous resident, in use, free inside the heap) bytes, from the kernel and glibc.
    fn excess() -> (u64, u64, u64) {
        let anon = statm().1;
        let (allocated, free) = mallinfo();
        (anon, allocated as u64, free as u64)
    }

    pub fn disable_thread_cache() {
        use std::os::unix::process::CommandExt;
        if !matches!(kind(), Kind::Glibc { trim: true }) || std::env::var("WEIR_MALLOC_TCACHE").is_ok_and(|v| v == "on")
        {
            return;
        }
        let tunables = std::env::var("GLIBC_TUNABLES").unwrap_or_default();
        let Some(tunables) = super::without_thread_cache(&tunables) else { return };
        let mut args = std::env::args_os();
        let arg0 = args.next().unwrap_or_default();
        let args: Vec<_> = args.collect();
        // The executable by its path, so that the process keeps its name (`/proc/PID/comm`
        // is the exec'd file's name: `ps -C weir`, `pgrep weir` and `weir --signal` find
        // it); `/proc/self/exe` if that path is gone (the binary was replaced meanwhile).
        // `exec` only returns if it failed; then the server runs with the cache.
        let mut err = None;
        for exe in std::env::current_exe().into_iter().chain([std::path::PathBuf::from("/proc/self/exe")]) {
            let e = std::process::Command::new(exe).arg0(&arg0).args(&args).env("GLIBC_TUNABLES", &tunables).exec();
            err = Some(e);
        }
        let err = err.map(|e| e.to_string()).unwrap_or_default();
        eprintln!("weir: could not re-execute without glibc's thread cache ({err}); going on with it");
    }

    /// The most bytes in use seen since the last trim (see [`super::should_trim`]).
    static HIGH: AtomicU64 = AtomicU64::new(0);

    pub fn pin_thresholds() -> bool {
        if !matches!(kind(), Kind::Glibc { trim: true }) {
            return false;
        }
        let tunables = std::env::var("GLIBC_TUNABLES").unwrap_or_default();
        let chosen = |env: &str, tunable: &str| std::env::var_os(env).is_some() || tunables.contains(tunable);
        let mut pinned = false;
        for (param, value, env, tunable) in [
            (libc::M_MMAP_THRESHOLD, super::PINNED_THRESHOLD, "MALLOC_MMAP_THRESHOLD_", "glibc.malloc.mmap_threshold"),
            (libc::M_TRIM_THRESHOLD, super::PINNED_THRESHOLD, "MALLOC_TRIM_THRESHOLD_", "glibc.malloc.trim_threshold"),
            (libc::M_MXFAST, 0, "MALLOC_MXFAST_", "glibc.malloc.mxfast"),
        ] {
            if !chosen(env, tunable) {
                // SAFETY: mallopt only sets an allocator parameter; a set threshold
                // also turns glibc's dynamic adjustment of it off, and setting
                // M_MXFAST first consolidates the fastbins it empties.
                pinned |= unsafe { libc::mallopt(param, value as c_int) } == 1;
            }
        }
        pinned
    }

    pub fn trim_if_needed() {
        if !matches!(kind(), Kind::Glibc { trim: true }) {
            return;
        }
        let (anon, allocated, free) = excess();
        let floor = FLOOR.load(Ordering::Relaxed).min(anon.saturating_sub(allocated));
        let high = HIGH.load(Ordering::Relaxed).max(allocated);
        if super::should_trim(anon, allocated, floor, high, free) {
            // SAFETY: malloc_trim only returns free memory to the kernel.
            unsafe { libc::malloc_trim(0) };
            TRIMS.fetch_add(1, Ordering::Relaxed);
            let (anon, allocated, _) = excess();
            FLOOR.store(anon.saturating_sub(allocated), Ordering::Relaxed);
            HIGH.store(allocated, Ordering::Relaxed);
        } else {
            FLOOR.store(floor, Ordering::Relaxed);
            HIGH.store(high, Ordering::Relaxed);
        }
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
mod imp {
    use super::AllocatorVarz;

    pub fn disable_thread_cache() {}

    pub fn pin_thresholds() -> bool {
        false
    }

    pub fn stats() -> AllocatorVarz {
        AllocatorVarz { name: "system", ..AllocatorVarz::default() }
    }

    pub fn trim_if_needed() {}
}

/// `GLIBC_TUNABLES` with glibc's per-thread cache turned off, or `None` if `tunables`
/// already sets the cache's size (the process was re-executed, or the operator chose).
pub fn without_thread_cache(tunables: &str) -> Option<String> {
    if tunables.contains("glibc.malloc.tcache_count") {
        return None;
    }
    const OFF: &str = "glibc.malloc.tcache_count=0";
    Some(if tunables.is_empty() { OFF.to_owned() } else { format!("{tunables}:{OFF}") })
}

/// Turn glibc's per-thread cache off (see the module docs) by re-executing the process
/// with it off, unless it is already off or chosen otherwise. Call first thing in
/// `weir serve`, before anything else happened that would be done twice.
pub fn disable_thread_cache() {
    imp::disable_thread_cache();
}

/// Pin glibc's mmap and trim thresholds at [`PINNED_THRESHOLD`] and turn its fastbins
/// off (`M_MXFAST` 0; see the module docs),
/// unless the allocator is not glibc with the trimmer, or the operator set them. Returns
/// whether a threshold was pinned.
pub fn pin_thresholds() -> bool {
    imp::pin_thresholds()
}

/// The allocator's current figures.
pub fn stats() -> AllocatorVarz {
    imp::stats()
}

/// Pin the thresholds ([`pin_thresholds`]), then trim every [`TRIM_EVERY`] while the
/// server runs (spawn on the server's runtime).
pub async fn run_trimmer() {
    pin_thresholds();
    let mut tick = tokio::time::interval(TRIM_EVERY);
    loop {
        tick.tick().await;
        imp::trim_if_needed();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: u64 = 1 << 20;

    #[test]
    fn trims_once_per_growth_not_every_tick() {
        // Idle: nothing free, nothing grown (1 MiB resident, 0.2 MiB of it in use).
        assert!(!should_trim(MIB, MIB / 5, 0, MIB / 5, 0));
        // A load freed 260 MiB that stayed resident (between two looks): trim.
        assert!(should_trim(261 * MIB, MIB / 2, MIB, MIB / 2, 260 * MIB));
        // After the trim 2 MiB are resident; glibc still counts 260 MiB free: no more trims.
        let floor = 2 * MIB - MIB / 2;
        assert!(!should_trim(2 * MIB, MIB / 2, floor, MIB / 2, 260 * MIB));
        assert!(!should_trim(2 * MIB + MIB / 2, MIB / 2, floor, MIB / 2, 260 * MIB));
        // A later burst made 50 MiB of the trimmed pages resident again and freed them.
        assert!(should_trim(52 * MIB, MIB / 2, floor, MIB / 2, 260 * MIB));
        // Growth that is memory in use is not trimmed, however much glibc counts free.
        assert!(!should_trim(52 * MIB, 51 * MIB, floor, 51 * MIB, 260 * MIB));
        // Nothing free, nothing to trim.
        assert!(!should_trim(52 * MIB, MIB / 2, 0, 51 * MIB, MIB / 2));
    }

    /// The churn of 500 connections (issue 9, fault 7): a trim at the load's peak must
    /// not keep what the load frees afterwards resident, however fragmented the heap
    /// was at that trim.
    #[test]
    fn a_trim_during_the_load_does_not_keep_what_the_load_frees_later() {
        // Mid-load: 900 MiB resident, 880 MiB of them in use, 300 MiB free: trim.
        assert!(should_trim(900 * MIB, 880 * MIB, 0, 0, 300 * MIB));
        // Right after it: 885 MiB resident, so the floor is 5 MiB of excess, and 880 MiB
        // in use is the high mark. The load ends: 500 MiB stay resident with 0.5 MiB in
        // use: trim again.
        assert!(should_trim(500 * MIB, MIB / 2, 5 * MIB, 880 * MIB, 499 * MIB));
        // Measured: a trim mid-load left 10 MiB of fragments (the floor); the load ended
        // with 10 MiB resident and 0.1 MiB in use: the fall from the high mark trims.
        assert!(should_trim(10 * MIB, MIB / 10, 10 * MIB, 90 * MIB, 19 * MIB));
        // And then not again while nothing more is freed.
        assert!(!should_trim(MIB, MIB / 10, MIB - MIB / 10, MIB / 10, 19 * MIB));
    }

    /// The churn load (issue 9, fault 7): small chunks a thread frees must not wait in
    /// glibc's fastbins, whence a later consolidation merges them into an arena's top
    /// that no trim shrinks; with fastbins off they merge at once (into the top, which
    /// the free then trims, or into binned chunks whose pages a trim gives back).
    #[test]
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    fn small_chunks_a_thread_frees_do_not_wait_in_fastbins() {
        const CHUNKS: usize = 300_000;
        // (The test runs on a thread of the test harness: its arena is a worker one.)
        assert!(pin_thresholds(), "glibc with the trimmer pins its parameters");
        // ~33 MB of small chunks from this thread's arena, all freed.
        let chunks: Vec<Box<[u8; 96]>> = (0..CHUNKS).map(|i| Box::new([i as u8; 96])).collect();
        drop(std::hint::black_box(chunks));
        // SAFETY: mallinfo2 only reads the allocator's statistics.
        let in_fastbins = unsafe { libc::mallinfo2() }.fsmblks;
        assert!(in_fastbins < MIB as usize, "{in_fastbins} bytes of freed chunks wait in fastbins");
    }

    /// The 40 × 8 MB load (issue 9, fault 4): once an 8 MB buffer has been freed, the
    /// next one must still be a mapping of its own (glibc's dynamic threshold would have
    /// put it in an arena whose top stays resident).
    #[test]
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    fn a_large_buffer_stays_a_mapping_of_its_own_after_one_was_freed() {
        const BIG: usize = 8_000_000;
        assert!(pin_thresholds(), "glibc with the trimmer pins its thresholds");
        let first = std::hint::black_box(vec![1u8; BIG]);
        drop(first);
        let second = std::hint::black_box(vec![2u8; BIG]);
        // SAFETY: mallinfo2 only reads the allocator's statistics.
        let mapped = unsafe { libc::mallinfo2() }.hblkhd;
        assert!(mapped >= BIG, "the second 8 MB buffer came from an arena: {mapped} bytes mapped");
        drop(second);
    }

    #[test]
    fn the_thread_cache_is_turned_off_once_and_an_operator_choice_kept() {
        assert_eq!(without_thread_cache("").as_deref(), Some("glibc.malloc.tcache_count=0"));
        assert_eq!(
            without_thread_cache("glibc.malloc.arena_max=2").as_deref(),
            Some("glibc.malloc.arena_max=2:glibc.malloc.tcache_count=0")
        );
        assert_eq!(without_thread_cache("glibc.malloc.arena_max=2:glibc.malloc.tcache_count=0"), None);
        assert_eq!(without_thread_cache("glibc.malloc.tcache_count=3"), None);
    }
}
