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
mod vfs;
pub mod wasi;

pub use benchmark::{BENCH_ITERATIONS, BenchReport, benchmark_kernel_wat, node_benchmark};
pub use cache::ModuleCache;
pub use error::SandboxError;
pub use hostdir::{HostDirError, load_inputs, save_outputs};
pub use metering::Metering;
pub use run::{MAX_ENGINES, ModuleSource, RunReport, Sandbox, SandboxConfig, Task};
