//! Per-node heap counting: the simulation build's global allocator and how it knows
//! which simulated node an allocation belongs to.
//!
//! The ledger (`weir_core::mem`) only sees memory that code charges; memory no code
//! charges is invisible to it. So every binary that links this crate under `--cfg
//! madsim` (the `weir-sim` CLI and the simulation test binaries; never the real
//! `weir` build) allocates through [`Counting`], which wraps mimalloc and keeps, per
//! run, the live bytes of each simulated node. The memory checker
//! ([`crate::check::uncharged_memory`]) compares each node's count with its ledger.
//!
//! How:
//! - **Attribution.** madsim polls every task inside its node's tracing span ("node",
//!   field `id`, the parent of each "task" span). [`NodeSpans`], a tracing subscriber
//!   interested in those two spans only, sets a thread-local "current bucket" when a
//!   task's span is entered and resets it to the run's simulator bucket on exit. The
//!   harness maps madsim node ids to cluster nodes ([`RunHeap::attach`]); every other
//!   allocation (the harness, client machines, madsim itself) goes to the simulator
//!   bucket, and allocations outside any run are not counted.
//! - **Deallocation credits the allocator.** Each allocation carries a header word
//!   (8 bytes, or the alignment when it is larger) holding a pointer to the counter it
//!   was charged to; freeing subtracts from that counter, whatever thread or node
//!   frees it. Counters live in blocks that are never freed and are reused only once
//!   every counter of the block is back to zero (no live allocation points at it).
//! - **Cost.** One thread-local read, one relaxed atomic add and the header per
//!   allocation; nothing here allocates. It only observes: no decision of the code
//!   under test depends on it, so traces are the same with or without it.
//! - **Memory that is not the node's.** Bytes a node hands to the simulated world
//!   (trace events, the simulated disk's contents, bytes on a simulated wire) are
//!   allocated under [`outside`] or [`Outside`], so they count as the simulator's.

use std::alloc::{GlobalAlloc, Layout};
use std::cell::Cell;
use std::fmt::Write as _;
use std::future::Future;
use std::pin::Pin;
use std::ptr;
use std::sync::Mutex;
use std::sync::atomic::{AtomicI64, Ordering};
use std::task::{Context, Poll};

/// Buckets per run: the simulator (index 0) and cluster nodes 1..=15.
pub const BUCKETS: usize = 16;
/// madsim node ids a run can map (madsim numbers nodes from 0 in creation order).
const MADSIM_IDS: usize = 64;

/// One run's counters: live bytes per bucket.
struct Block {
    live: [AtomicI64; BUCKETS],
}

impl Block {
    fn idle(&self) -> bool {
        self.live.iter().all(|c| c.load(Ordering::Relaxed) == 0)
    }
}

/// Blocks of finished runs, for reuse once idle. Blocks are never freed: an allocation
/// that outlives its run still points at one.
static POOL: Mutex<Vec<&'static Block>> = Mutex::new(Vec::new());

type Counter = *const AtomicI64;

thread_local! {
    /// The counter new allocations on this thread are charged to (null: not counted).
    static CURRENT: Cell<Counter> = const { Cell::new(ptr::null()) };
    /// The running run's simulator bucket (null outside a run).
    static SIMULATOR: Cell<Counter> = const { Cell::new(ptr::null()) };
    /// The running run's bucket for each madsim node id (null: the simulator's).
    static BY_MADSIM_ID: [Cell<Counter>; MADSIM_IDS] = const { [const { Cell::new(ptr::null()) }; MADSIM_IDS] };
    /// The cluster node of each madsim node id (0: the simulator's), for log lines.
    static NODE_BY_MADSIM_ID: [Cell<u16>; MADSIM_IDS] = const { [const { Cell::new(0) }; MADSIM_IDS] };
    /// The cluster node whose task runs now (0: none), for log lines.
    static CURRENT_NODE: Cell<u16> = const { Cell::new(0) };
}

/// The global allocator of the simulation build: `A` (mimalloc there) with per-node
/// live-byte counting (see the module doc).
pub struct Counting<A>(pub A);

/// The inner layout of an allocation of `layout` and the header's size (where the
/// caller's pointer starts): at least a word, and a multiple of the alignment.
#[inline]
fn outer(layout: Layout) -> Option<(Layout, usize)> {
    let head = layout.align().max(8);
    let size = layout.size().checked_add(head)?;
    Some((Layout::from_size_align(size, head).ok()?, head))
}

#[inline]
fn current() -> Counter {
    CURRENT.with(Cell::get)
}

#[inline]
fn add(counter: Counter, bytes: usize) {
    if !counter.is_null() {
        // SAFETY: counters live in leaked blocks, valid for the program's life.
        unsafe { &*counter }.fetch_add(bytes as i64, Ordering::Relaxed);
    }
}

#[inline]
fn sub(counter: Counter, bytes: usize) {
    if !counter.is_null() {
        // SAFETY: as in `add`.
        unsafe { &*counter }.fetch_sub(bytes as i64, Ordering::Relaxed);
    }
}

// SAFETY: every block handed out comes from `A` with the layout `outer` gives, and
// is given back to `A` with the same layout; the caller's pointer is `head` bytes in,
// which keeps its alignment (`head` is a multiple of it).
unsafe impl<A: GlobalAlloc> GlobalAlloc for Counting<A> {
    #[inline]
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let Some((o, head)) = outer(layout) else { return ptr::null_mut() };
        // SAFETY: `o` has a non-zero size.
        unsafe { self.finish(self.0.alloc(o), head, layout.size()) }
    }

    #[inline]
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        let Some((o, head)) = outer(layout) else { return ptr::null_mut() };
        // SAFETY: as in `alloc`.
        unsafe { self.finish(self.0.alloc_zeroed(o), head, layout.size()) }
    }

    #[inline]
    unsafe fn dealloc(&self, p: *mut u8, layout: Layout) {
        let (o, head) = outer(layout).expect("a layout we allocated");
        // SAFETY: `p` came from `alloc` with this layout: its header is the word before it.
        unsafe {
            sub((p as *const Counter).sub(1).read(), layout.size());
            self.0.dealloc(p.sub(head), o);
        }
    }

    #[inline]
    unsafe fn realloc(&self, p: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let (o, head) = outer(layout).expect("a layout we allocated");
        let Some(new_outer) = new_size.checked_add(head) else { return ptr::null_mut() };
        // SAFETY: as in `dealloc`; the header moves with the block (same offset).
        unsafe {
            let old = (p as *const Counter).sub(1).read();
            let base = self.0.realloc(p.sub(head), o, new_outer);
            if base.is_null() {
                return base;
            }
            sub(old, layout.size());
            self.finish(base, head, new_size)
        }
    }
}

impl<A> Counting<A> {
    /// Write the header of a fresh block `base` and count `size` bytes.
    #[inline]
    unsafe fn finish(&self, base: *mut u8, head: usize, size: usize) -> *mut u8 {
        if base.is_null() {
            return base;
        }
        let counter = current();
        // SAFETY: the block has `head >= 8` bytes before the caller's part, word-aligned.
        unsafe {
            let p = base.add(head);
            (p as *mut Counter).sub(1).write(counter);
            add(counter, size);
            p
        }
    }
}

/// Run `f` with its allocations charged to the simulator, not the current node: for
/// what a node hands to the simulated world (trace events, disk contents, bytes on a
/// wire).
pub fn outside<R>(f: impl FnOnce() -> R) -> R {
    struct Restore(Counter);
    impl Drop for Restore {
        fn drop(&mut self) {
            CURRENT.with(|c| c.set(self.0));
        }
    }
    let _restore = Restore(current());
    CURRENT.with(|c| c.set(SIMULATOR.with(Cell::get)));
    f()
}

/// A future whose polls allocate as [`outside`] does (e.g. a simulated link's task).
pub struct Outside<F>(pub F);

impl<F: Future> Future for Outside<F> {
    type Output = F::Output;
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        // SAFETY: structural pinning of the only field; it is never moved out.
        let inner = unsafe { self.map_unchecked_mut(|s| &mut s.0) };
        outside(|| inner.poll(cx))
    }
}

/// One run's heap counting, claimed by the harness on the thread that runs the
/// simulation; dropping it ends counting on that thread.
pub struct RunHeap {
    heap: Heap,
}

/// The counters of one run (a copyable view of its [`RunHeap`]).
#[derive(Clone, Copy)]
pub struct Heap {
    block: &'static Block,
}

impl RunHeap {
    /// Start counting on this thread: the simulator bucket is current, no node is
    /// mapped. Panics if the node-span tracker cannot be installed (another tracing
    /// subscriber holds the global default), since the memory checker would be blind.
    pub fn start() -> RunHeap {
        install_tracker();
        let block = {
            let mut pool = POOL.lock().unwrap_or_else(|p| p.into_inner());
            match pool.iter().position(|b| b.idle()) {
                Some(i) => pool.swap_remove(i),
                None => Box::leak(Box::new(Block { live: std::array::from_fn(|_| AtomicI64::new(0)) })),
            }
        };
        let sim: Counter = &block.live[0];
        BY_MADSIM_ID.with(|m| m.iter().for_each(|c| c.set(ptr::null())));
        NODE_BY_MADSIM_ID.with(|m| m.iter().for_each(|c| c.set(0)));
        SIMULATOR.with(|c| c.set(sim));
        CURRENT.with(|c| c.set(sim));
        RunHeap { heap: Heap { block } }
    }

    /// The run's counters.
    pub fn heap(&self) -> Heap {
        self.heap
    }
}

impl Heap {
    /// Count the tasks of madsim node `madsim_id` as cluster node `no` (1..BUCKETS).
    /// Call on the thread that runs the simulation.
    pub fn attach(&self, madsim_id: u64, no: u16) {
        let no = usize::from(no);
        assert!((1..BUCKETS).contains(&no), "heap counting covers nodes 1..{BUCKETS}");
        if let Ok(i) = usize::try_from(madsim_id)
            && i < MADSIM_IDS
        {
            BY_MADSIM_ID.with(|m| m[i].set(&self.block.live[no]));
            NODE_BY_MADSIM_ID.with(|m| m[i].set(no as u16));
        }
    }

    /// Live bytes allocated by cluster node `no`'s tasks and not yet freed.
    pub fn live(&self, no: u16) -> i64 {
        self.block.live[usize::from(no)].load(Ordering::Relaxed)
    }

    /// Live bytes allocated outside every cluster node during this run.
    pub fn simulator(&self) -> i64 {
        self.block.live[0].load(Ordering::Relaxed)
    }
}

impl Drop for RunHeap {
    fn drop(&mut self) {
        SIMULATOR.with(|c| c.set(ptr::null()));
        CURRENT.with(|c| c.set(ptr::null()));
        BY_MADSIM_ID.with(|m| m.iter().for_each(|c| c.set(ptr::null())));
        POOL.lock().unwrap_or_else(|p| p.into_inner()).push(self.heap.block);
    }
}

/// The number madsim gives a node (its `NodeId`'s display form).
pub fn madsim_index(id: impl std::fmt::Display) -> u64 {
    id.to_string().parse().expect("madsim node ids display as integers")
}

/// Span id of tasks whose node is unknown.
const UNKNOWN: u64 = u64::MAX;

/// The tracing subscriber that follows madsim's node spans (see the module doc).
/// A node span gets id `madsim id + 1`; a task span takes its node's id, so entering
/// it names the node.
pub struct NodeSpans;

fn is_node_span(meta: &tracing::Metadata<'_>) -> bool {
    meta.is_span() && meta.target().starts_with("madsim") && matches!(meta.name(), "node" | "task")
}

/// Reads a node span's `id` field without allocating.
struct IdField(Option<u64>);

impl tracing::field::Visit for IdField {
    fn record_u64(&mut self, field: &tracing::field::Field, value: u64) {
        if field.name() == "id" {
            self.0 = Some(value);
        }
    }

    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        if field.name() != "id" {
            return;
        }
        struct Digits(u64, bool);
        impl std::fmt::Write for Digits {
            fn write_str(&mut self, s: &str) -> std::fmt::Result {
                for b in s.bytes() {
                    match b {
                        b'0'..=b'9' => self.0 = self.0.wrapping_mul(10).wrapping_add(u64::from(b - b'0')),
                        _ => self.1 = false,
                    }
                }
                Ok(())
            }
        }
        let mut d = Digits(0, true);
        if write!(d, "{value:?}").is_ok() && d.1 {
            self.0 = Some(d.0);
        }
    }
}

impl tracing::Subscriber for NodeSpans {
    fn register_callsite(&self, meta: &'static tracing::Metadata<'static>) -> tracing::subscriber::Interest {
        if is_node_span(meta) || crate::simlog::wants(meta) {
            tracing::subscriber::Interest::always()
        } else {
            tracing::subscriber::Interest::never()
        }
    }

    fn enabled(&self, meta: &tracing::Metadata<'_>) -> bool {
        is_node_span(meta) || crate::simlog::wants(meta)
    }

    fn max_level_hint(&self) -> Option<tracing::level_filters::LevelFilter> {
        Some(crate::simlog::level().max(tracing::level_filters::LevelFilter::ERROR))
    }

    fn new_span(&self, attrs: &tracing::span::Attributes<'_>) -> tracing::span::Id {
        if attrs.metadata().name() == "node" {
            let mut id = IdField(None);
            attrs.record(&mut id);
            return tracing::span::Id::from_u64(id.0.map_or(UNKNOWN, |n| n.saturating_add(1)));
        }
        attrs.parent().cloned().unwrap_or_else(|| tracing::span::Id::from_u64(UNKNOWN))
    }

    fn record(&self, _span: &tracing::span::Id, _values: &tracing::span::Record<'_>) {}

    fn record_follows_from(&self, _span: &tracing::span::Id, _follows: &tracing::span::Id) {}

    fn event(&self, event: &tracing::Event<'_>) {
        // Only `WEIR_SIM_LOG`'s events get here (see `enabled`); the line's memory is
        // the simulator's, not the node's.
        outside(|| eprintln!("{}", crate::simlog::line(event, CURRENT_NODE.with(Cell::get))));
    }

    fn enter(&self, span: &tracing::span::Id) {
        let sim = SIMULATOR.with(Cell::get);
        let id = span.into_u64() - 1;
        let counter = match usize::try_from(id) {
            Ok(i) if i < MADSIM_IDS => BY_MADSIM_ID.with(|m| m[i].get()),
            _ => ptr::null(),
        };
        CURRENT.with(|c| c.set(if counter.is_null() { sim } else { counter }));
        let node = match usize::try_from(id) {
            Ok(i) if i < MADSIM_IDS => NODE_BY_MADSIM_ID.with(|m| m[i].get()),
            _ => 0,
        };
        CURRENT_NODE.with(|c| c.set(node));
    }

    fn exit(&self, _span: &tracing::span::Id) {
        CURRENT.with(|c| c.set(SIMULATOR.with(Cell::get)));
        CURRENT_NODE.with(|c| c.set(0));
    }
}

/// Install [`NodeSpans`] as the global tracing subscriber, once per process.
fn install_tracker() {
    static ONCE: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    let ok = *ONCE.get_or_init(|| tracing::subscriber::set_global_default(NodeSpans).is_ok());
    assert!(ok, "heap counting needs its node-span tracker as the global tracing subscriber, and another was set");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allocations_are_charged_to_the_current_bucket_and_credited_on_free() {
        let a = Counting(std::alloc::System);
        let run = RunHeap::start();
        let heap = run.heap();
        let base = heap.simulator();
        let l = Layout::from_size_align(100, 8).unwrap();
        let big = Layout::from_size_align(64, 64).unwrap();
        // SAFETY: plain use of the allocator API with matching layouts.
        unsafe {
            let p = a.alloc(l);
            assert_eq!(heap.simulator() - base, 100);
            let q = a.alloc(big);
            assert_eq!(q as usize % 64, 0, "alignment kept");
            assert_eq!(heap.simulator() - base, 164);
            let p = a.realloc(p, l, 300);
            assert_eq!(heap.simulator() - base, 364);
            a.dealloc(p, Layout::from_size_align(300, 8).unwrap());
            a.dealloc(q, big);
        }
        assert_eq!(heap.simulator() - base, 0);
    }
}
