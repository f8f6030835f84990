//! The node benchmark: how many gigafuel per second this machine burns on the
//! standard kernel. Offers carry the figure; schedulers divide a task's fuel
//! estimate by it to estimate run time.
//!
//! The kernel is fixed (its bytes are part of the protocol, so every node
//! measures the same work): an integer hash chain (xor-shift-multiply, the
//! splitmix64 finalizer) that also reads and writes a 64 KiB ring in linear
//! memory, like typical integer code does.

use std::time::{Duration, Instant};

use serde::Serialize;
use sharegrid_core::{Fuel, GigafuelPerSec, Outcome};

use crate::error::SandboxError;
use crate::run::Sandbox;
use crate::task::Task;

/// Iterations of the kernel loop in one benchmark round.
pub const BENCH_ITERATIONS: u64 = 100_000_000;

/// The standard kernel in WebAssembly text.
pub fn benchmark_kernel_wat() -> String {
    format!(
        r#"(module
  (memory (export "memory") 1)
  (func (export "_start")
    (local $i i64) (local $h i64) (local $p i32)
    (local.set $h (i64.const 0x9E3779B97F4A7C15))
    (loop $loop
      (local.set $h (i64.mul (i64.xor (local.get $h) (i64.shr_u (local.get $h) (i64.const 30)))
                             (i64.const 0xBF58476D1CE4E5B9)))
      (local.set $h (i64.mul (i64.xor (local.get $h) (i64.shr_u (local.get $h) (i64.const 27)))
                             (i64.const 0x94D049BB133111EB)))
      (local.set $p (i32.and (i32.add (local.get $p) (i32.const 8)) (i32.const 0xFFF8)))
      (i64.store (local.get $p) (i64.xor (i64.load (local.get $p)) (local.get $h)))
      (local.set $i (i64.add (local.get $i) (i64.const 1)))
      (br_if $loop (i64.lt_u (local.get $i) (i64.const {BENCH_ITERATIONS}))))))"#
    )
}

/// The result of a benchmark.
#[derive(Clone, Debug, Serialize)]
pub struct BenchReport {
    /// Fuel one round burns (deterministic).
    pub fuel_per_round: Fuel,
    /// Wall time of each round.
    pub round_times: Vec<Duration>,
    /// Speed computed from the median round.
    pub speed: GigafuelPerSec,
}

/// Runs the kernel `rounds` times (at least one) and reports the speed of the
/// median round. The module is compiled before the first timed round.
pub fn node_benchmark(sandbox: &Sandbox, rounds: usize) -> Result<BenchReport, SandboxError> {
    let wasm = wat::parse_str(benchmark_kernel_wat())
        .map_err(|e| SandboxError::Engine(format!("benchmark kernel does not assemble: {e}")))?;
    let task = Task::new(wasm);
    let mut times = Vec::new();
    let mut fuel = Fuel(0);
    // The first run compiles (or loads) the module; it is not timed.
    for i in 0..=rounds.max(1) {
        let started = Instant::now();
        let report = sandbox.run(&task)?;
        let elapsed = started.elapsed();
        if report.result.outcome != (Outcome::Completed { exit_code: 0 }) {
            return Err(SandboxError::Engine(format!(
                "benchmark kernel ended with {}",
                report.result.outcome
            )));
        }
        fuel = report.fuel;
        if i > 0 {
            times.push(report.run_time.min(elapsed));
        }
    }
    let mut sorted = times.clone();
    sorted.sort();
    let median = sorted[sorted.len() / 2].as_secs_f64().max(1e-9);
    Ok(BenchReport {
        fuel_per_round: fuel,
        round_times: times,
        speed: GigafuelPerSec(fuel.as_giga_f64() / median),
    })
}
