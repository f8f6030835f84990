//! The same module, inputs and arguments give the same result hash and the
//! same fuel: across repeated runs, fresh engines, cached and uncached
//! modules. (Separate processes: see the CLI tests.)

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use sharegrid_core::{Determinism, TaskId};
use sharegrid_sandbox::{Sandbox, SandboxConfig, Task};

fn example_tasks() -> Vec<(&'static str, Task)> {
    vec![
        ("mandelbrot", task(&guest("mandelbrot"), &["3", "2"], &[])),
        ("pi", task(&guest("pi"), &["7", "100000"], &[])),
        (
            "wordcount",
            task(
                &guest("wordcount"),
                &[],
                &[("a.txt", b"one two\nthree\n"), ("d/b.txt", b"x y z")],
            ),
        ),
        ("hashchain", task(&guest("hashchain"), &["1000"], &[])),
        ("probe", task(&guest("probe"), &[], &[("data.txt", b"hello input\n")])),
    ]
}

#[test]
fn repeated_runs_and_fresh_engines_agree_bit_for_bit() {
    let first = sandbox();
    let cache = tempfile::tempdir().unwrap();
    for (name, t) in example_tasks() {
        let a = first.run(&t).unwrap();
        assert_completed(&a);
        assert!(a.fuel.0 > 0, "{name}: no fuel used");
        for _ in 0..2 {
            let again = first.run(&t).unwrap();
            assert_eq!(
                (again.result_hash, again.fuel),
                (a.result_hash, a.fuel),
                "{name}: repeated run differs"
            );
        }
        // A fresh sandbox: new engine, nothing shared, with a disk cache.
        for _ in 0..2 {
            let fresh = Sandbox::new(SandboxConfig {
                cache_dir: Some(cache.path().into()),
                ..Default::default()
            })
            .unwrap();
            let b = fresh.run(&t).unwrap();
            assert_eq!(
                (b.result_hash, b.fuel),
                (a.result_hash, a.fuel),
                "{name}: fresh engine differs"
            );
            assert_eq!(b.result, a.result);
        }
    }
}

#[test]
fn guests_compute_the_same_answers_as_native_builds() {
    let sb = sandbox();
    // Expected outputs come from the native builds (`guests/build.sh native`).
    let r = sb.run(&task(&guest("hashchain"), &["1000"], &[])).unwrap();
    assert_eq!(
        stdout(&r),
        "038b92067c05df48a7734a895f94aab65065601bb13ee85c245c65b95a5b4c53\n"
    );
    let r = sb.run(&task(&guest("pi"), &["7", "100000"], &[])).unwrap();
    assert_eq!(stdout(&r), "inside 78612 of 100000\npi 3.144480000\n");
    let r = sb.run(&task(&guest("mandelbrot"), &["3", "2"], &[])).unwrap();
    assert_eq!(
        stdout(&r),
        "tile-3-2.ppm 100x75 at (300,150) checksum 3806b14f5458c37f\n"
    );
    let tile = &r.result.files[0];
    assert_eq!(tile.path, "tile-3-2.ppm");
    assert!(tile.data.starts_with(b"P6\n100 75\n255\n"));
    assert_eq!(tile.data.len(), "P6\n100 75\n255\n".len() + 100 * 75 * 3);
}

#[test]
fn clock_and_random_are_seeded_by_the_task_id_only() {
    let sb = sandbox();
    let mut t = task(&guest("probe"), &[], &[("data.txt", b"hello input\n")]);
    let a = stdout(&sb.run(&t).unwrap());
    assert!(a.contains("realtime: 946684800\n"), "{a}");
    t.id = TaskId::from_bytes([9; 32]);
    let b = stdout(&sb.run(&t).unwrap());
    let random = |s: &str| s.lines().find(|l| l.starts_with("random:")).unwrap().to_string();
    assert_ne!(
        random(&a),
        random(&b),
        "a different task id must give a different random stream"
    );
    let rest = |s: &str| {
        s.lines()
            .filter(|l| !l.starts_with("random:"))
            .collect::<Vec<_>>()
            .join("\n")
    };
    assert_eq!(rest(&a), rest(&b));
    assert_eq!(b, stdout(&sb.run(&t).unwrap()), "same id, same stream");
}

#[test]
fn the_clock_advances_so_busy_waits_end() {
    // Reads the monotonic clock until it has moved 1 ms: terminates because
    // every read advances the virtual clock.
    let m = wat(r#"(module
      (import "wasi_snapshot_preview1" "clock_time_get" (func $now (param i32 i64 i32) (result i32)))
      (memory (export "memory") 1)
      (func (export "_start") (local $start i64)
        (drop (call $now (i32.const 1) (i64.const 0) (i32.const 0)))
        (local.set $start (i64.load (i32.const 0)))
        (loop $spin
          (drop (call $now (i32.const 1) (i64.const 0) (i32.const 0)))
          (br_if $spin (i64.lt_u (i64.sub (i64.load (i32.const 0)) (local.get $start)) (i64.const 1000000))))))"#);
    let r = sandbox().run(&Task::new(m)).unwrap();
    assert_completed(&r);
}

/// 0.0 / 0.0 stored as raw bits: CPUs differ in the NaN they produce,
/// `portable` mode must give the canonical one everywhere.
#[test]
fn portable_mode_canonicalizes_nans() {
    let m = wasi_module(
        r#"(f64.store (i32.const 64) (f64.div (f64.const 0) (f64.load (i32.const 200))))
           (drop (call $w (i32.const 1) (i32.const 64) (i32.const 8)))"#,
        "",
    );
    let sb = sandbox();
    let mut t = Task::new(m);
    t.mode = Determinism::Portable;
    let portable = sb.run(&t).unwrap();
    assert_eq!(portable.result.stdout, 0x7ff8_0000_0000_0000u64.to_le_bytes());
    t.mode = Determinism::Native;
    let native = sb.run(&t).unwrap();
    #[cfg(target_arch = "x86_64")]
    assert_eq!(
        native.result.stdout,
        0xfff8_0000_0000_0000u64.to_le_bytes(),
        "x86-64's default NaN"
    );
    // Fuel counts WebAssembly operators, so it is the same in both modes.
    assert_eq!(native.fuel, portable.fuel);
}

/// The benchmark-only metering strategies change how work is counted, never
/// what a task computes. (Instrumented gas, deterministic too, is checked on
/// an MVP module in `instrumented_gas_runs_out_like_fuel`.)
#[test]
fn other_meterings_compute_the_same_results() {
    use sharegrid_sandbox::Metering;
    let reference = sandbox();
    for metering in [Metering::WasmtimeFuel, Metering::Instrumented, Metering::Off] {
        let sb = Sandbox::new(SandboxConfig {
            metering,
            ..Default::default()
        })
        .unwrap();
        for (name, t) in example_tasks() {
            let want = reference.run(&t).unwrap();
            let a = sb.run(&t).unwrap();
            let b = sb.run(&t).unwrap();
            if metering == Metering::Instrumented {
                // wasm-instrument 0.4 (parity-wasm) reads only MVP modules:
                // the guests, built by a current LLVM (bulk memory,
                // reference types), are refused, and say why.
                match &a.result.outcome {
                    sharegrid_core::Outcome::InvalidModule { reason } => {
                        assert!(reason.contains("cannot parse for gas instrumentation"), "{reason}");
                        continue;
                    }
                    other => panic!("{name} under {metering}: {other:?}"),
                }
            }
            assert_eq!(a.result_hash, want.result_hash, "{name} under {metering}");
            assert_eq!(a.fuel, b.fuel, "{name} under {metering}: gas must repeat");
            match metering {
                Metering::Off => assert_eq!(a.fuel.0, 0),
                _ => assert!(a.fuel.0 > 0),
            }
        }
    }
}

#[test]
fn instrumented_gas_runs_out_like_fuel() {
    use sharegrid_core::{Fuel, Outcome};
    use sharegrid_sandbox::Metering;
    let sb = Sandbox::new(SandboxConfig {
        metering: Metering::Instrumented,
        ..Default::default()
    })
    .unwrap();
    let mut t = Task::new(wat(LOOP));
    t.limits.fuel = Fuel(1_000_000);
    let r = sb.run(&t).unwrap();
    assert_eq!(r.result.outcome, Outcome::OutOfFuel);
    assert_eq!(r.fuel, Fuel(1_000_000));
}

/// The worked example of `docs/fuel.md`: fuel is defined by the module's
/// operators alone, so this count is the same on every engine and machine.
#[test]
fn gas_follows_the_documented_definition() {
    let m = wat(r#"(module (memory (export "memory") 1)
      (func (export "_start") (local $i i32)
        (loop $l
          (local.set $i (i32.add (local.get $i) (i32.const 1)))
          (br_if $l (i32.lt_u (local.get $i) (i32.const 10))))))"#);
    let r = sandbox().run(&Task::new(m)).unwrap();
    assert_completed(&r);
    // entry segment: `loop` + 1 declared local = 2; the loop body (8
    // operators up to `br_if`) 10 times = 80; `end` of the loop = 1; `end`
    // of the function = 1.
    assert_eq!(r.fuel.0, 84);
    // A WASI call costs 100 plus 1 per 16 bytes moved: args_sizes_get
    // moves nothing.
    let m = wat(r#"(module
      (import "wasi_snapshot_preview1" "args_sizes_get" (func $a (param i32 i32) (result i32)))
      (memory (export "memory") 1)
      (func (export "_start") (drop (call $a (i32.const 0) (i32.const 4)))))"#);
    let r = sandbox().run(&Task::new(m)).unwrap();
    assert_completed(&r);
    // i32.const, i32.const, call, drop, end = 5, plus the call's 100.
    assert_eq!(r.fuel.0, 105);
}

#[test]
fn bulk_memory_is_charged_by_its_length() {
    // memory.fill and memory.copy of 64 KiB: each operator counts 1 like
    // any other, plus 1 per 4 bytes it fills or copies. Before, a loop of
    // them billed 7.7 s of CPU as 34,010 fuel.
    let m = wat(r#"(module (memory (export "memory") 2)
      (func (export "_start")
        (memory.fill (i32.const 0) (i32.const 7) (i32.const 65536))
        (memory.copy (i32.const 65536) (i32.const 0) (i32.const 65536))))"#);
    let r = sandbox().run(&Task::new(m)).unwrap();
    assert_completed(&r);
    // 3 + fill + 3 + copy + end = 9 operators, plus 2 × 65536 / 4.
    assert_eq!(r.fuel.0, 9 + 2 * 16384);
    // A loop of large fills runs out of fuel in proportion to the bytes.
    let m = wat(r#"(module (memory (export "memory") 16)
      (func (export "_start")
        (loop $l (memory.fill (i32.const 0) (i32.const 1) (i32.const 1048576)) (br $l))))"#);
    let mut t = Task::new(m);
    t.limits.fuel = sharegrid_core::Fuel(10_000_000);
    let r = sandbox().run(&t).unwrap();
    assert_eq!(r.result.outcome, sharegrid_core::Outcome::OutOfFuel);
}

#[test]
fn gas_that_passes_zero_between_checks_is_out_of_fuel() {
    // Only function entry and loop heads check; the straight-line code after
    // the block runs past a budget of 3, and the run still ends out of fuel.
    let m = wat(r#"(module (memory (export "memory") 1)
      (func (export "_start") (block) (drop (i32.add (i32.const 1) (i32.const 2)))
        (drop (i32.add (i32.const 1) (i32.const 2))) (drop (i32.add (i32.const 1) (i32.const 2)))))"#);
    let mut t = Task::new(m);
    t.limits.fuel = sharegrid_core::Fuel(3);
    let r = sandbox().run(&t).unwrap();
    assert_eq!(r.result.outcome, sharegrid_core::Outcome::OutOfFuel);
    assert_eq!(r.fuel.0, 3);
    t.limits.fuel = sharegrid_core::Fuel(1_000);
    assert_completed(&sandbox().run(&t).unwrap());
}

#[test]
fn start_functions_run_and_are_metered() {
    let m = wat(r#"(module
      (import "wasi_snapshot_preview1" "fd_write" (func $w (param i32 i32 i32 i32) (result i32)))
      (memory (export "memory") 1)
      (func $init (i32.store8 (i32.const 64) (i32.const 33)))
      (start $init)
      (func (export "_start")
        (i32.store (i32.const 0) (i32.const 64)) (i32.store (i32.const 4) (i32.const 1))
        (drop (call $w (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 8)))))"#);
    let r = sandbox().run(&Task::new(m)).unwrap();
    assert_completed(&r);
    assert_eq!(r.result.stdout, b"!");
    // _start: 13 operators and fd_write's 100 (one byte moved rounds to
    // nothing); $init: i32.const, i32.const, i32.store8, end = 4, counted too.
    assert_eq!(r.fuel.0, 13 + 100 + 4);
}

#[test]
fn wasmtime_fuel_strategy_still_times_out_by_epochs() {
    use sharegrid_core::{Fuel, Outcome};
    use sharegrid_sandbox::Metering;
    let sb = Sandbox::new(SandboxConfig {
        metering: Metering::WasmtimeFuel,
        ..Default::default()
    })
    .unwrap();
    let mut t = Task::new(wat(LOOP));
    t.limits.fuel = Fuel(u64::MAX / 2);
    t.limits.timeout_ms = 100;
    assert_eq!(sb.run(&t).unwrap().result.outcome, Outcome::Timeout);
}
