//! Hostile modules end in their typed outcome, within their limits, and
//! leave the sandbox healthy for the next task.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Instant;

use common::*;
use sharegrid_core::{Fuel, Outcome, TrapKind};
use sharegrid_sandbox::{Sandbox, SandboxConfig, SandboxError, Task};

#[test]
fn infinite_loop_runs_out_of_fuel_exactly() {
    let mut t = Task::new(wat(LOOP));
    t.limits.fuel = Fuel(50_000_000);
    let r = sandbox().run(&t).unwrap();
    assert_eq!(r.result.outcome, Outcome::OutOfFuel);
    assert_eq!(r.fuel, Fuel(50_000_000));
    assert!(r.result.outcome.is_deterministic());
}

#[test]
fn infinite_loop_with_ample_fuel_times_out() {
    let mut t = Task::new(wat(LOOP));
    t.limits.fuel = Fuel(u64::MAX / 2);
    t.limits.timeout_ms = 200;
    let started = Instant::now();
    let r = sandbox().run(&t).unwrap();
    assert_eq!(r.result.outcome, Outcome::Timeout);
    assert!(!r.result.outcome.is_deterministic());
    // Liveness, not performance: the run must end, long before this.
    assert!(started.elapsed().as_secs() < 30);
}

#[test]
fn memory_bomb_hits_the_memory_limit() {
    // Grows memory one page at a time forever.
    let m = wat(r#"(module (memory (export "memory") 1)
        (func (export "_start") (loop $l (drop (memory.grow (i32.const 1))) (br $l))))"#);
    let mut t = Task::new(m);
    t.limits.memory_bytes = 16 << 20;
    let r = sandbox().run(&t).unwrap();
    assert_eq!(r.result.outcome, Outcome::MemoryLimit);
    // Deterministic: the same number of grows, the same fuel, every time.
    assert_eq!(sandbox().run(&t).unwrap().fuel, r.fuel);
}

#[test]
fn declared_memory_over_the_limit_fails_at_instantiation() {
    let m = wat(r#"(module (memory (export "memory") 1000) (func (export "_start")))"#);
    let mut t = Task::new(m);
    t.limits.memory_bytes = 16 << 20;
    let r = sandbox().run(&t).unwrap();
    assert_eq!(r.result.outcome, Outcome::MemoryLimit);
    assert_eq!(r.fuel, Fuel(0));
}

#[test]
fn stdout_bomb_hits_the_output_limit() {
    let m = wasi_module(
        r#"(loop $l (drop (call $w (i32.const 1) (i32.const 64) (i32.const 4096))) (br $l))"#,
        "",
    );
    let mut t = Task::new(m);
    t.limits.output_bytes = 1 << 20;
    let r = sandbox().run(&t).unwrap();
    assert_eq!(r.result.outcome, Outcome::OutputLimit);
    assert!(r.result.output_bytes() <= 1 << 20);
    assert_eq!(r.result.stdout.len(), 256 * 4096, "every write that fit was kept");
}

/// Opens /out/big (path_open on fd 4) and then runs `body` with the new fd
/// at address 300.
fn out_file_module(body: &str) -> Vec<u8> {
    wasi_module(
        &format!(
            r#"(drop (call $open (i32.const 4) (i32.const 0) (i32.const 100) (i32.const 3)
                 (i32.const 1) (i64.const 0x42) (i64.const 0) (i32.const 0) (i32.const 300)))
               {body}"#
        ),
        r#"(import "wasi_snapshot_preview1" "path_open"
             (func $open (param i32 i32 i32 i32 i32 i64 i64 i32 i32) (result i32)))
           (import "wasi_snapshot_preview1" "fd_seek" (func $seek (param i32 i64 i32 i32) (result i32)))
           (data (i32.const 100) "big")"#,
    )
}

#[test]
fn out_file_bomb_hits_the_output_limit() {
    let m = out_file_module(
        r#"(loop $l (drop (call $w (i32.load (i32.const 300)) (i32.const 1024) (i32.const 8192))) (br $l))"#,
    );
    let mut t = Task::new(m);
    t.limits.output_bytes = 4 << 20;
    let r = sandbox().run(&t).unwrap();
    assert_eq!(r.result.outcome, Outcome::OutputLimit);
    assert!(r.result.output_bytes() <= 4 << 20);
}

#[test]
fn sparse_file_bomb_is_charged_for_its_size() {
    // Seek to 1 TiB and write one byte: the file would be 1 TiB.
    let m = out_file_module(
        r#"(drop (call $seek (i32.load (i32.const 300)) (i64.const 0x10000000000) (i32.const 0) (i32.const 400)))
           (drop (call $w (i32.load (i32.const 300)) (i32.const 1024) (i32.const 1)))"#,
    );
    let r = sandbox().run(&Task::new(m)).unwrap();
    assert_eq!(r.result.outcome, Outcome::OutputLimit);
}

#[test]
fn an_output_the_host_cannot_hold_ends_the_run_as_a_host_failure_not_an_abort() {
    // The requestor allowed a huge output and the guest sizes a file to it
    // (a pwrite far past the end does the same): the host cannot allocate
    // that and must not abort. The run is the provider's failure — an
    // error, never a signed result — and the sandbox serves the next task.
    let sizing = |size: u64| {
        wasi_module(
            &format!(
                r#"(drop (call $open (i32.const 4) (i32.const 0) (i32.const 100) (i32.const 3)
                     (i32.const 1) (i64.const 0x42) (i64.const 0) (i32.const 0) (i32.const 300)))
                   (drop (call $setsize (i32.load (i32.const 300)) (i64.const {size})))"#
            ),
            r#"(import "wasi_snapshot_preview1" "path_open"
                 (func $open (param i32 i32 i32 i32 i32 i64 i64 i32 i32) (result i32)))
               (import "wasi_snapshot_preview1" "fd_filestat_set_size" (func $setsize (param i32 i64) (result i32)))
               (data (i32.const 100) "big")"#,
        )
    };
    let sb = sandbox();
    // Past what any allocator can give (over isize::MAX bytes)…
    let mut sizes = vec![1u64 << 63];
    // …and 15 TiB, which a machine that does not overcommit blindly refuses
    // (with vm.overcommit_memory = 1 it would be granted, then touched).
    if std::fs::read_to_string("/proc/sys/vm/overcommit_memory").is_ok_and(|m| m.trim() != "1") {
        sizes.push(15 << 40);
    }
    for size in sizes {
        let mut t = Task::new(sizing(size));
        t.limits.output_bytes = u64::MAX;
        let r = sb.run(&t);
        assert!(matches!(r, Err(SandboxError::HostMemory)), "{size}: {r:?}");
        // Within an output limit it is the task's own, deterministic outcome.
        t.limits.output_bytes = 1 << 20;
        assert_eq!(sb.run(&t).unwrap().result.outcome, Outcome::OutputLimit);
    }
    let next = Task::new(wat(r#"(module (memory (export "memory") 1) (func (export "_start")))"#));
    assert_eq!(
        sb.run(&next).unwrap().result.outcome,
        Outcome::Completed { exit_code: 0 }
    );
}

#[test]
fn file_creation_bomb_hits_the_output_limit() {
    // Creates /out/aaaa, /out/aaab, ... by bumping the name's last bytes.
    let m = wasi_module(
        r#"(loop $l
             (i32.store (i32.const 100) (i32.add (i32.load (i32.const 100)) (i32.const 1)))
             (drop (call $mkdir (i32.const 4) (i32.const 100) (i32.const 4)))
             (br $l))"#,
        r#"(import "wasi_snapshot_preview1" "path_create_directory" (func $mkdir (param i32 i32 i32) (result i32)))
           (data (i32.const 100) "aaaa")"#,
    );
    let mut t = Task::new(m);
    t.limits.output_bytes = 1 << 20;
    let r = sandbox().run(&t).unwrap();
    assert_eq!(r.result.outcome, Outcome::OutputLimit);
}

#[test]
fn deep_recursion_overflows_the_stack_limit() {
    let m = wat(r#"(module (memory (export "memory") 1)
        (func $f (param i64) (result i64) (i64.add (call $f (i64.add (local.get 0) (i64.const 1))) (i64.const 1)))
        (func (export "_start") (drop (call $f (i64.const 0)))))"#);
    let mut t = Task::new(m);
    t.limits.stack_bytes = 256 << 10;
    let r = sandbox().run(&t).unwrap();
    assert_eq!(
        r.result.outcome,
        Outcome::Trap {
            trap: TrapKind::StackOverflow
        }
    );
}

#[test]
fn traps_are_typed() {
    let cases = [
        ("(unreachable)", TrapKind::Unreachable),
        (
            "(drop (i32.div_u (i32.const 1) (i32.const 0)))",
            TrapKind::IntegerDivisionByZero,
        ),
        ("(drop (i32.load (i32.const 70000)))", TrapKind::MemoryOutOfBounds),
        (
            "(drop (i32.trunc_f64_s (f64.const nan)))",
            TrapKind::BadConversionToInteger,
        ),
    ];
    let sb = sandbox();
    for (body, kind) in cases {
        let m = wat(&format!(
            r#"(module (memory (export "memory") 1) (func (export "_start") {body}))"#
        ));
        assert_eq!(
            sb.run(&Task::new(m)).unwrap().result.outcome,
            Outcome::Trap { trap: kind },
            "{body}"
        );
    }
}

fn invalid_reason(sb: &Sandbox, bytes: &[u8]) -> String {
    match sb.run(&Task::new(bytes.to_vec())).unwrap().result.outcome {
        Outcome::InvalidModule { reason } => reason,
        other => panic!("expected invalid module, got {other:?}"),
    }
}

#[test]
fn invalid_modules_are_rejected_with_the_reason() {
    let sb = sandbox();
    let r = invalid_reason(&sb, b"#!/bin/sh\necho this is not WebAssembly\n");
    assert!(r.contains("magic"), "{r}");
    let r = invalid_reason(&sb, b"\x7fELF\x02\x01\x01\0");
    assert!(r.contains("magic"), "{r}");
    // A type error, i32.add on an i64: `wat` assembles it without
    // validating, so these are well-formed bytes of an invalid module.
    let bad = wat(r#"(module (func (export "_start") (drop (i32.add (i64.const 1) (i32.const 2)))))"#);
    let r = invalid_reason(&sb, &bad);
    assert!(r.contains("type mismatch"), "{r}");
    // Truncated: a valid module cut in half.
    let good = guest("hashchain");
    let r = invalid_reason(&sb, &good[..good.len() / 2]);
    assert!(!r.is_empty());
    // Imports something the sandbox does not provide.
    let r = invalid_reason(
        &sb,
        &wat(r#"(module (import "env" "socket" (func)) (func (export "_start")))"#),
    );
    assert!(r.contains("env") && r.contains("socket"), "{r}");
    // No entry point.
    let r = invalid_reason(&sb, &wat(r#"(module (func (export "main")))"#));
    assert!(r.contains("_start"), "{r}");
    // Threads are off: shared memory does not validate.
    let r = invalid_reason(&sb, &wat(r#"(module (memory 1 1 shared) (func (export "_start")))"#));
    assert!(r.contains("thread"), "{r}");
    // Names the metered rewrite exports are reserved (found by the
    // `module` fuzz target: the rewrite exported them twice).
    for name in ["sharegrid_interrupt", "sharegrid_gas_left"] {
        let m = wat(&format!(
            r#"(module (memory (export "{name}") 1) (func (export "_start")))"#
        ));
        let r = invalid_reason(&sb, &m);
        assert!(r.contains("reserved") && r.contains(name), "{r}");
    }
}

#[test]
fn a_100_mb_input_is_read_in_full() {
    // 100 MiB of "word word\n" lines: known line, word and byte counts.
    let line = b"word word\n";
    let n = (100 << 20) / line.len();
    let data = line.repeat(n);
    let sb = sandbox();
    let r = sb.run(&task(&guest("wordcount"), &[], &[("big.txt", &data)])).unwrap();
    assert_completed(&r);
    assert_eq!(
        stdout(&r).lines().next().unwrap(),
        format!("{n} {} {} big.txt", 2 * n, data.len())
    );
}

#[test]
fn oversized_inputs_and_bad_limits_are_refused_before_running() {
    let sb = Sandbox::new(SandboxConfig {
        max_input_bytes: 1000,
        ..Default::default()
    })
    .unwrap();
    let err = sb
        .run(&task(&guest("wordcount"), &[], &[("big.txt", &[b'x'; 1001])]))
        .unwrap_err();
    assert!(
        matches!(
            err,
            SandboxError::InputTooLarge {
                bytes: 1001,
                limit: 1000
            }
        ),
        "{err}"
    );
    let err = sb
        .run(&task(&guest("wordcount"), &[], &[("../escape", b"x")]))
        .unwrap_err();
    assert!(err.to_string().contains("../escape"), "{err}");
    let err = sb
        .run(&task(&guest("wordcount"), &[], &[("a", b"x"), ("a/b", b"y")]))
        .unwrap_err();
    assert!(err.to_string().contains("both a file and a directory"), "{err}");
    let mut t = Task::new(guest("hashchain"));
    t.limits.stack_bytes = 1 << 40;
    assert!(matches!(sb.run(&t).unwrap_err(), SandboxError::BadLimit(_)));
}

#[test]
fn the_sandbox_stays_healthy_after_hostile_runs() {
    let sb = sandbox();
    let healthy = task(&guest("hashchain"), &["1000"], &[]);
    let before = sb.run(&healthy).unwrap();
    let mut hostile = vec![Task::new(wat(LOOP)), Task::new(b"not wasm".to_vec())];
    hostile[0].limits.fuel = Fuel(1_000_000);
    let mut bomb = Task::new(wat(r#"(module (memory (export "memory") 1)
        (func (export "_start") (loop $l (drop (memory.grow (i32.const 1))) (br $l))))"#));
    bomb.limits.memory_bytes = 8 << 20;
    hostile.push(bomb);
    for t in &hostile {
        assert!(!sb.run(t).unwrap().result.outcome.is_success());
    }
    let after = sb.run(&healthy).unwrap();
    assert_eq!((after.result_hash, after.fuel), (before.result_hash, before.fuel));
}

#[test]
fn many_iovecs_over_one_region_cannot_amplify_host_memory() {
    // 1024 iovecs, each naming the whole 64 KiB memory: one call asks for
    // 64 MiB of output. It is charged iovec by iovec and ends the run at the
    // limit instead of being gathered first.
    let m = wat(r#"(module
      (import "wasi_snapshot_preview1" "fd_write" (func $w (param i32 i32 i32 i32) (result i32)))
      (memory (export "memory") 1)
      (func (export "_start") (local $i i32)
        (loop $l
          (i32.store (i32.mul (local.get $i) (i32.const 8)) (i32.const 0))
          (i32.store (i32.add (i32.mul (local.get $i) (i32.const 8)) (i32.const 4)) (i32.const 65536))
          (local.set $i (i32.add (local.get $i) (i32.const 1)))
          (br_if $l (i32.lt_u (local.get $i) (i32.const 1024))))
        (drop (call $w (i32.const 1) (i32.const 0) (i32.const 1024) (i32.const 8200)))))"#);
    let mut t = Task::new(m);
    t.limits.output_bytes = 1 << 20;
    let r = sandbox().run(&t).unwrap();
    assert_eq!(r.result.outcome, Outcome::OutputLimit);
    assert_eq!(r.result.stdout.len(), 16 * 65536, "the iovecs that fit were written");
}

#[test]
fn structures_at_the_end_of_memory_fault_instead_of_wrapping() {
    // poll_oneoff with its subscription array straddling the end of memory.
    let m = wat(r#"(module
      (import "wasi_snapshot_preview1" "poll_oneoff" (func $p (param i32 i32 i32 i32) (result i32)))
      (import "wasi_snapshot_preview1" "proc_exit" (func $exit (param i32)))
      (memory (export "memory") 1)
      (func (export "_start")
        (call $exit (call $p (i32.const 65520) (i32.const 0) (i32.const 1) (i32.const 100)))))"#);
    let r = sandbox().run(&Task::new(m)).unwrap();
    assert_eq!(r.result.outcome, Outcome::Completed { exit_code: 21 }, "EFAULT");
}

#[test]
fn a_module_over_the_size_limit_is_refused_before_compiling() {
    let sb = Sandbox::new(SandboxConfig {
        max_module_bytes: 64,
        ..SandboxConfig::default()
    })
    .unwrap();
    let big = wasi_module("", "");
    assert!(big.len() > 64);
    let r = sb.run(&Task::new(big.clone()));
    assert!(
        matches!(r, Err(SandboxError::ModuleTooLarge { bytes, limit: 64 }) if bytes == big.len()),
        "{r:?}"
    );
}

#[test]
fn requestors_picking_many_stack_limits_cannot_grow_the_engines_without_bound() {
    // Each stack limit needs its own engine; a requestor picks the limit.
    let sb = Sandbox::new(SandboxConfig::default()).unwrap();
    let m = wat(r#"(module (memory (export "memory") 1) (func (export "_start")))"#);
    for i in 0..(3 * sharegrid_sandbox::MAX_ENGINES as u64) {
        let mut t = Task::new(m.clone());
        t.limits.stack_bytes = (256 << 10) + i * 4096;
        assert_eq!(sb.run(&t).unwrap().result.outcome, Outcome::Completed { exit_code: 0 });
        assert!(sb.engines_held() <= sharegrid_sandbox::MAX_ENGINES);
    }
    // A limit seen before, its engine since dropped, runs as well again.
    let mut t = Task::new(m);
    t.limits.stack_bytes = 256 << 10;
    assert_eq!(sb.run(&t).unwrap().result.outcome, Outcome::Completed { exit_code: 0 });
}

/// A module that takes long to compile and nothing to run: 3,000
/// functions, `_start` empty.
fn slow_to_compile() -> Vec<u8> {
    let mut src = String::from("(module (memory (export \"memory\") 1) (func (export \"_start\"))");
    for i in 0..3_000 {
        src.push_str(&format!(
            "(func (param i64) (result i64) local.get 0 i64.const {i} i64.mul i64.const 7 i64.rem_u local.get 0 i64.add)"
        ));
    }
    src.push(')');
    wat(&src)
}

#[test]
fn compiling_counts_against_the_timeout() {
    let module = slow_to_compile();
    // Compiling it takes far more than a millisecond: the run is over
    // before its empty `_start` is called.
    let mut t = Task::new(module.clone());
    t.limits.timeout_ms = 1;
    let r = sandbox().run(&t).unwrap();
    assert_eq!(r.result.outcome, Outcome::Timeout);
    assert_eq!(r.fuel, Fuel(0));
    // With time to compile, the same module completes.
    t.limits.timeout_ms = 60_000;
    assert_completed(&sandbox().run(&t).unwrap());
}

#[test]
fn a_cancelled_run_stops_long_before_its_timeout() {
    let s = sandbox();
    let mut t = Task::new(wat(LOOP));
    t.limits.fuel = Fuel(u64::MAX / 2);
    // Ten minutes: without the cancel the run ends in `Timeout` then.
    t.limits.timeout_ms = 600_000;
    let cancel = sharegrid_sandbox::Cancel::default();
    std::thread::scope(|scope| {
        let run = scope.spawn(|| s.run_cancellable(&t, &cancel));
        // Once the loop spins, the cancel stops it, never as a result.
        cancel.wait_running();
        cancel.cancel();
        let ended = run.join().unwrap();
        assert!(matches!(ended, Err(SandboxError::Cancelled)), "{ended:?}");
    });
    // The sandbox runs the next task as before.
    let mut ok = Task::new(wat(LOOP));
    ok.limits.fuel = Fuel(1_000);
    assert_eq!(s.run(&ok).unwrap().result.outcome, Outcome::OutOfFuel);
}

/// A sleep to the end of time, then an absolute deadline: the clock
/// saturates instead of overflowing (found by the `wasi` fuzz target; a
/// debug build panicked, a release build wrapped).
#[test]
fn a_clock_pushed_to_its_end_saturates() {
    let m = wat(r#"(module
        (import "wasi_snapshot_preview1" "poll_oneoff" (func $poll (param i32 i32 i32 i32) (result i32)))
        (memory (export "memory") 1)
        (func (export "_start")
          (i64.store (i32.const 24) (i64.const -1))
          (drop (call $poll (i32.const 0) (i32.const 100) (i32.const 1) (i32.const 200)))
          (i32.store16 (i32.const 40) (i32.const 1))
          (drop (call $poll (i32.const 0) (i32.const 100) (i32.const 1) (i32.const 200)))))"#);
    assert_completed(&sandbox().run(&Task::new(m)).unwrap());
}

/// The fuzz targets' entry points (`fuzz/`) build with the workspace and
/// hold on hand-made hostile input: every WASI call with arguments from
/// each class the driver draws (small, at the end of memory, anywhere in
/// it, anything), and the gas rewrite of a module that throws and catches.
#[test]
fn the_fuzz_entry_points_hold_on_hostile_input() {
    use sharegrid_sandbox::fuzzing::{gas_rewrite, wasi_calls};
    for fill in [0x00u8, 0x3f, 0x7f, 0xbf, 0xff] {
        for op in 0..33u8 {
            // No memory image, the call, its arguments (and then more
            // calls) from `fill`.
            let mut input = vec![0u8, op];
            input.extend([fill; 40]);
            wasi_calls(&input);
        }
    }
    let throws = wat(r#"(module
        (tag $t (param i32))
        (func (export "_start")
          (block $h (result i32)
            (try_table (catch $t $h) (throw $t (i32.const 7)))
            (i32.const 0))
          drop))"#);
    gas_rewrite(&throws).unwrap();
    assert!(gas_rewrite(b"\0asm\x01\0\0\0\x05").is_err());
}

/// Modules generated by wasm-smith (the `module` fuzz target's other half)
/// from a fixed stream of bytes: every one the validator accepts is
/// rewritten into a valid module (`gas_rewrite` panics otherwise), and most
/// of them are accepted, so the rewriter is really exercised.
#[test]
fn generated_modules_are_rewritten_into_valid_ones() {
    use sharegrid_sandbox::fuzzing::{gas_rewrite, smith_module};
    let (mut made, mut valid) = (0, 0);
    for seed in 0..300u64 {
        // Bytes from a seed: BLAKE3 in counter mode, 4 KiB a module.
        let mut bytes = vec![0u8; 4096];
        blake3::Hasher::new()
            .update(&seed.to_le_bytes())
            .finalize_xof()
            .fill(&mut bytes);
        let Some(wasm) = smith_module(&bytes) else { continue };
        made += 1;
        valid += usize::from(gas_rewrite(&wasm).is_ok());
    }
    assert!(made >= 290 && valid >= 270, "{made} modules made, {valid} valid");
}
