//! The wasmtime engine configuration that makes a run deterministic, and the
//! epoch ticker that enforces wall-clock timeouts.
//!
//! One engine per (determinism mode, stack limit): both are engine settings in
//! wasmtime. The settings below are part of the protocol; changing any of them
//! can change fuel counts or results, so it is a protocol change.

use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use sharegrid_core::Determinism;
use wasmtime::{Config, Engine, Inlining, OptLevel, Strategy, WasmFeatures};

use crate::metering::Metering;

/// How often the epoch advances; a timeout fires within one tick of its limit.
pub(crate) const EPOCH_TICK: Duration = Duration::from_millis(10);

/// Proposals with non-deterministic or unbounded behaviour: off.
pub(crate) const FEATURES_OFF: WasmFeatures = WasmFeatures::THREADS
    .union(WasmFeatures::SHARED_EVERYTHING_THREADS)
    // The legacy exception form (`try`/`catch`/`delegate`): wasmtime 48's
    // compiler does not implement it.
    .union(WasmFeatures::LEGACY_EXCEPTIONS)
    .union(WasmFeatures::GC)
    .union(WasmFeatures::FUNCTION_REFERENCES)
    .union(WasmFeatures::STACK_SWITCHING)
    .union(WasmFeatures::MEMORY64)
    .union(WasmFeatures::MULTI_MEMORY)
    .union(WasmFeatures::CUSTOM_PAGE_SIZES)
    .union(WasmFeatures::WIDE_ARITHMETIC)
    .union(WasmFeatures::RELAXED_SIMD);

/// Deterministic proposals that compilers emit today: on.
pub(crate) const FEATURES_ON: WasmFeatures = WasmFeatures::SIMD
    .union(WasmFeatures::BULK_MEMORY)
    .union(WasmFeatures::MULTI_VALUE)
    .union(WasmFeatures::REFERENCE_TYPES)
    .union(WasmFeatures::TAIL_CALL)
    .union(WasmFeatures::EXTENDED_CONST)
    .union(WasmFeatures::SIGN_EXTENSION)
    .union(WasmFeatures::SATURATING_FLOAT_TO_INT)
    // Exception handling in the standard `exnref` form (`try_table`), which
    // current toolchains emit: unwinding is as deterministic as a branch,
    // and inline gas meters it (gas.rs: where a caught exception lands).
    .union(WasmFeatures::EXCEPTIONS);

/// Builds the engine for `mode` with a wasm stack of `stack_bytes`, metered
/// by `metering`, with or without epoch interruption for timeouts.
pub(crate) fn build_engine(
    mode: Determinism,
    stack_bytes: usize,
    metering: Metering,
    wall_clock_timeout: bool,
) -> wasmtime::Result<Engine> {
    let mut c = Config::new();
    if metering == Metering::Instrumented {
        // Inlining removes most of the cost of the per-block gas function.
        c.compiler_inlining(Inlining::Yes);
    }
    // Inline gas checks its own interrupt flag (see `gas.rs`), so it needs
    // no epoch checks; every other strategy times out by epochs.
    let epochs = wall_clock_timeout && metering != Metering::Inline;
    c.strategy(Strategy::Cranelift)
        .cranelift_opt_level(OptLevel::Speed)
        // `portable` canonicalizes NaN bit patterns so every architecture
        // agrees; `native` leaves them to the CPU (same-arch replicas only).
        .cranelift_nan_canonicalization(mode == Determinism::Portable)
        .consume_fuel(metering == Metering::WasmtimeFuel)
        // The wall-clock timeout. Measured: with wasmtime fuel on it costs
        // nothing more (both checks sit at the same loop headers).
        .epoch_interruption(epochs)
        .max_wasm_stack(stack_bytes)
        // Proposals with non-deterministic or unbounded behaviour stay off.
        // (set through the feature mask: some have no setter in a build
        // without wasmtime's `threads` and `gc` features).
        .wasm_features(FEATURES_OFF, false)
        .wasm_relaxed_simd(false)
        .relaxed_simd_deterministic(true)
        // Deterministic proposals that compilers emit today stay on.
        .wasm_features(FEATURES_ON, true)
        // Backtraces cost time on every trap and say nothing a result needs.
        .wasm_backtrace_max_frames(None);
    if metering == Metering::Inline {
        // The interrupt flag lives in a memory the rewriter adds; the
        // module's own code was checked to use at most one memory.
        c.wasm_features(WasmFeatures::MULTI_MEMORY, true);
    }
    Engine::new(&c)
}

/// A thread that advances the epoch of every registered engine each
/// [`EPOCH_TICK`]; stops when dropped.
#[derive(Debug)]
pub(crate) struct Ticker {
    engines: Arc<Mutex<Vec<Engine>>>,
    watches: Arc<Mutex<Vec<Watch>>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

/// Where an inline-gas task's interrupt flag is, while the task runs: the
/// address of the first word of its interrupt memory. `None` once the run
/// is over; the runner clears it before the memory is freed, and the ticker
/// writes only while holding the lock and seeing `Some`.
#[derive(Debug, Default)]
pub(crate) struct InterruptSlot {
    flag: Mutex<Option<usize>>,
    fired: AtomicBool,
}

impl InterruptSlot {
    /// Arms the slot with the flag's address.
    pub(crate) fn arm(&self, addr: usize) {
        if let Ok(mut f) = self.flag.lock() {
            *f = Some(addr);
        }
    }

    /// Disarms the slot; after this returns the flag is never written.
    pub(crate) fn disarm(&self) {
        if let Ok(mut f) = self.flag.lock() {
            *f = None;
        }
    }

    /// Whether the deadline passed and the flag was raised.
    pub(crate) fn fired(&self) -> bool {
        self.fired.load(Ordering::SeqCst)
    }

    fn fire(&self) {
        let Ok(f) = self.flag.lock() else { return };
        if let Some(addr) = *f {
            // SAFETY: `addr` is the base of a live, 4-byte-aligned (page
            // aligned) linear memory of exactly one page that never grows or
            // moves (min = max = 1 page, and no guest instruction can name
            // it). It stays live while the slot is armed: the runner disarms
            // (under this same lock) before the store owning the memory is
            // dropped. The guest only reads the word; the race with those
            // plain reads is benign (a delayed read just delays the trap).
            #[allow(unsafe_code)]
            let word = unsafe { std::sync::atomic::AtomicU32::from_ptr(addr as *mut u32) };
            word.store(1, Ordering::SeqCst);
            self.fired.store(true, Ordering::SeqCst);
        }
    }
}

#[derive(Debug)]
struct Watch {
    deadline: std::time::Instant,
    cancel: crate::run::Cancel,
    slot: Arc<InterruptSlot>,
}

impl Ticker {
    pub(crate) fn start() -> std::io::Result<Self> {
        let engines: Arc<Mutex<Vec<Engine>>> = Arc::default();
        let watches: Arc<Mutex<Vec<Watch>>> = Arc::default();
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let (engines, watches, stop) = (engines.clone(), watches.clone(), stop.clone());
            std::thread::Builder::new()
                .name("sandbox-epoch".into())
                .spawn(move || {
                    while !stop.load(Ordering::Relaxed) {
                        std::thread::sleep(EPOCH_TICK);
                        if let Ok(list) = engines.lock() {
                            for e in list.iter() {
                                e.increment_epoch();
                            }
                        }
                        if let Ok(mut list) = watches.lock() {
                            let now = std::time::Instant::now();
                            list.retain(|w| {
                                if Arc::strong_count(&w.slot) == 1 {
                                    return false; // the run is over
                                }
                                if now >= w.deadline || w.cancel.is_cancelled() {
                                    w.slot.fire();
                                    return false;
                                }
                                true
                            });
                        }
                    }
                })?
        };
        Ok(Ticker {
            engines,
            watches,
            stop,
            thread: Some(thread),
        })
    }

    pub(crate) fn register(&self, engine: &Engine) {
        if let Ok(mut list) = self.engines.lock() {
            list.push(engine.clone());
        }
    }

    /// Stops advancing `engine`'s epoch (it was dropped from the cache).
    pub(crate) fn unregister(&self, engine: &Engine) {
        if let Ok(mut list) = self.engines.lock() {
            list.retain(|e| !Engine::same(e, engine));
        }
    }

    /// Raises `slot`'s flag once `deadline` passes or `cancel` is raised
    /// (within one tick).
    pub(crate) fn watch(&self, deadline: std::time::Instant, cancel: crate::run::Cancel, slot: Arc<InterruptSlot>) {
        if let Ok(mut list) = self.watches.lock() {
            list.push(Watch { deadline, cancel, slot });
        }
    }

    /// Epoch ticks that cover `timeout`, rounded up, plus one for the tick
    /// already in progress.
    pub(crate) fn ticks_for(timeout: Duration) -> u64 {
        let tick = EPOCH_TICK.as_millis() as u64;
        (timeout.as_millis() as u64).div_ceil(tick) + 1
    }
}

impl Drop for Ticker {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
