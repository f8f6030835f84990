//! sharegrid-sandbox: runs one task — a WebAssembly module with its
//! arguments, stdin and input files — as a pure, bounded function of those
//! inputs, and reports how it ended, the fuel it used and the hash of its
//! result.
//!
//! - [`Sandbox::run`] is the whole API for running; it never panics or hangs
//!   on a hostile module: every run ends in an [`Outcome`](sharegrid_core::Outcome)
//!   within the task's [`Limits`](sharegrid_core::Limits).
//! - The guest sees WASI preview 1 implemented in memory ([`wasi`]): `/in`
//!   read-only, `/out` collected, deterministic clocks and randomness, no
//!   environment, no sockets, no host files.
//! - Work is counted as *gas*: each module is rewritten to count its own
//!   operators (`gas.rs`, the protocol's fuel, `docs/fuel.md`), which also
//!   carries the wall-clock timeout's interrupt check. [`Metering`] selects
//!   other strategies for benchmarks.
//! - [`ModuleCache`] keeps compiled modules on disk across runs and processes.
//! - [`node_benchmark`] measures this machine's speed in gigafuel per second.
//!
//! What this crate must never do: give a guest any view of the host, or let a
//! guest's behaviour depend on anything but its task.

mod benchmark;
mod cache;
mod engine;
mod error;
mod gas;
mod hostdir;
mod metering;
mod run;
mod task;
mod vfs;
pub mod wasi;

pub use benchmark::{BENCH_ITERATIONS, BenchReport, benchmark_kernel_wat, node_benchmark};
pub use cache::ModuleCache;
pub use error::SandboxError;
pub use hostdir::{HostDirError, load_inputs, save_outputs};
pub use metering::Metering;
pub use run::{Cancel, MAX_ENGINES, ModuleSource, RunReport, Sandbox, SandboxConfig};
pub use task::Task;

/// Entry points for the fuzz targets in `fuzz/`; built only with the
/// `fuzzing` feature.
#[cfg(feature = "fuzzing")]
#[doc(hidden)]
pub mod fuzzing {
    pub use crate::wasi::fuzz::calls as wasi_calls;

    /// Rewrites a module the validator accepted to meter itself, and checks
    /// the rewrite is itself valid: what the sandbox compiles from a
    /// stranger's module. An input the validator refuses is `Err`, with why.
    /// Validated by wasmparser with the engine's proposals (what
    /// `Module::validate` runs first), which is many times faster.
    pub fn gas_rewrite(wasm: &[u8]) -> Result<(), String> {
        use crate::engine::{FEATURES_OFF, FEATURES_ON};
        let given = (wasmparser::WasmFeatures::default() | FEATURES_ON).difference(FEATURES_OFF);
        let validate = |bytes: &[u8], features| {
            wasmparser::Validator::new_with_features(features)
                .validate_all(bytes)
                .map(|_| ())
                .map_err(|e| e.to_string())
        };
        validate(wasm, given)?;
        if let Ok(out) = crate::gas::instrument_inline(wasm) {
            // The rewrite adds a memory for the interrupt flag.
            let with_flag = given | wasmparser::WasmFeatures::MULTI_MEMORY;
            if let Err(e) = validate(&out, with_flag) {
                panic!("the metered rewrite of a valid module is invalid: {e}");
            }
        }
        Ok(())
    }
}
