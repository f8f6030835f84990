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

/// Builds the engine for `mode` with a wasm stack of `stack_bytes`, metered
/// by `metering`.
pub(crate) fn build_engine(mode: Determinism, stack_bytes: usize, metering: Metering) -> wasmtime::Result<Engine> {
    let mut c = Config::new();
    if metering == Metering::Instrumented {
        // Inlining removes most of the cost of the per-block gas function.
        c.compiler_inlining(Inlining::Yes);
    }
    c.strategy(Strategy::Cranelift)
        .cranelift_opt_level(OptLevel::Speed)
        // `portable` canonicalizes NaN bit patterns so every architecture
        // agrees; `native` leaves them to the CPU (same-arch replicas only).
        .cranelift_nan_canonicalization(mode == Determinism::Portable)
        .consume_fuel(metering == Metering::WasmtimeFuel)
        // The wall-clock timeout. Measured: with fuel on it costs nothing
        // more (both checks sit at the same loop headers). The benchmark-only
        // strategies run without it, so they show their own cost alone.
        .epoch_interruption(metering == Metering::WasmtimeFuel)
        .max_wasm_stack(stack_bytes)
        // Proposals with non-deterministic or unbounded behaviour stay off.
        // (set through the feature mask: some have no setter in a build
        // without wasmtime's `threads` and `gc` features).
        .wasm_features(
            WasmFeatures::THREADS
                | WasmFeatures::SHARED_EVERYTHING_THREADS
                | WasmFeatures::EXCEPTIONS
                | WasmFeatures::LEGACY_EXCEPTIONS
                | WasmFeatures::GC
                | WasmFeatures::FUNCTION_REFERENCES
                | WasmFeatures::STACK_SWITCHING
                | WasmFeatures::MEMORY64
                | WasmFeatures::MULTI_MEMORY
                | WasmFeatures::CUSTOM_PAGE_SIZES
                | WasmFeatures::WIDE_ARITHMETIC,
            false,
        )
        .wasm_relaxed_simd(false)
        .relaxed_simd_deterministic(true)
        // Deterministic proposals that compilers emit today stay on.
        .wasm_features(
            WasmFeatures::SIMD
                | WasmFeatures::BULK_MEMORY
                | WasmFeatures::MULTI_VALUE
                | WasmFeatures::REFERENCE_TYPES
                | WasmFeatures::TAIL_CALL
                | WasmFeatures::EXTENDED_CONST
                | WasmFeatures::SIGN_EXTENSION
                | WasmFeatures::SATURATING_FLOAT_TO_INT,
            true,
        )
        // Backtraces cost time on every trap and say nothing a result needs.
        .wasm_backtrace_max_frames(None);
    Engine::new(&c)
}

/// A thread that advances the epoch of every registered engine each
/// [`EPOCH_TICK`]; stops when dropped.
#[derive(Debug)]
pub(crate) struct Ticker {
    engines: Arc<Mutex<Vec<Engine>>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Ticker {
    pub(crate) fn start() -> std::io::Result<Self> {
        let engines: Arc<Mutex<Vec<Engine>>> = Arc::default();
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let (engines, stop) = (engines.clone(), stop.clone());
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
                    }
                })?
        };
        Ok(Ticker {
            engines,
            stop,
            thread: Some(thread),
        })
    }

    pub(crate) fn register(&self, engine: &Engine) {
        if let Ok(mut list) = self.engines.lock() {
            list.push(engine.clone());
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
