//! The WebAssembly proposals toolchains emit today run, and inline gas
//! meters them by the definition in `docs/fuel.md`: exception handling
//! (the standard `exnref` form; the legacy one is refused), tail calls,
//! SIMD.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use sharegrid_core::{Determinism, Fuel, Outcome, TrapKind};
use sharegrid_sandbox::Task;

/// `$burn n`: a loop of `n` turns, then `throw $e 7`. Its gas: `loop` 1,
/// 6 per turn, the loop's `end` 1, `i32.const` + `throw` 2: 6n + 4.
const BURN: &str = r#"
  (tag $e (param i32))
  (memory (export "memory") 1)
  (func $burn (param $n i32)
    (loop $l
      (local.set $n (i32.sub (local.get $n) (i32.const 1)))
      (br_if $l (local.get $n)))
    (throw $e (i32.const 7)))"#;

fn run(src: &str, fuel: Option<u64>) -> sharegrid_sandbox::RunReport {
    let mut t = Task::new(wat(&format!("(module {BURN} {src})")));
    if let Some(f) = fuel {
        t.limits.fuel = Fuel(f);
    }
    let r = sandbox().run(&t).unwrap();
    let again = sandbox().run(&t).unwrap();
    assert_eq!(
        (r.result_hash, r.fuel),
        (again.result_hash, again.fuel),
        "a rerun differs"
    );
    r
}

#[test]
fn a_caught_exception_carries_the_gas_its_thrower_used() {
    // The handler lands in `_start` with the count the callee left: the
    // callee's 6,004 are charged, not forgotten with its frame.
    let r = run(
        r#"(func (export "_start") (local $got i32)
             (block $h (result i32)
               (try_table (catch $e $h) (call $burn (i32.const 1000)))
               (i32.const 0))
             (local.set $got))"#,
        None,
    );
    assert_completed(&r);
    // `_start`: block, try_table, i32.const, call, end + 1 local = 6;
    // `$burn` 6,004; after the landing: local.set, end = 2.
    assert_eq!(r.fuel.0, 6 + 6_004 + 2);
}

#[test]
fn the_legacy_exception_form_is_refused_by_name() {
    // `try`/`catch`: wasmtime 48 does not compile it; toolchains emit the
    // standard form when asked (`-mllvm -wasm-use-legacy-eh=false`).
    let r = sandbox()
        .run(&Task::new(wat(&format!(
            r#"(module {BURN} (func (export "_start") try i32.const 10 call $burn catch $e drop end))"#
        ))))
        .unwrap();
    match r.result.outcome {
        Outcome::InvalidModule { reason } => assert!(reason.contains("legacy_exceptions feature required"), "{reason}"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn an_uncaught_exception_is_a_typed_trap() {
    let r = run(r#"(func (export "_start") (call $burn (i32.const 10)))"#, None);
    assert_eq!(
        r.result.outcome,
        Outcome::Trap {
            trap: TrapKind::UncaughtException
        }
    );
    assert_eq!(r.fuel.0, 3 + 64);
}

#[test]
fn loops_that_throw_and_catch_run_out_of_fuel_exactly() {
    // A handler that lands on a loop head, and a loop around a handler:
    // both are checked every turn, so both stop at the budget.
    for src in [
        r#"(func (export "_start")
             (loop $again (try_table (catch_all $again) (call $burn (i32.const 50)))))"#,
        r#"(func (export "_start")
             (loop $again
               (block $h (result i32)
                 (try_table (catch $e $h) (call $burn (i32.const 50)))
                 (i32.const 0))
               (drop)
               (br $again)))"#,
        r#"(func (export "_start") (local $x exnref)
             (loop $again
               (block $h (result exnref)
                 (try_table (catch_all_ref $h) (call $burn (i32.const 50)))
                 (unreachable))
               (local.set $x)
               (block $h2 (result i32)
                 (try_table (catch $e $h2) (throw_ref (local.get $x)))
                 (unreachable))
               (drop)
               (br $again)))"#,
    ] {
        let r = run(src, Some(1_000_000));
        assert_eq!(r.result.outcome, Outcome::OutOfFuel, "{src}");
        assert_eq!(r.fuel, Fuel(1_000_000));
    }
}

#[test]
fn tail_calls_run_in_constant_stack_and_are_metered() {
    // A million tail calls: a plain call would overflow the stack.
    let r = run(
        r#"(func $down (param $n i32)
             (if (local.get $n)
               (then (return_call $down (i32.sub (local.get $n) (i32.const 1))))))
           (func (export "_start") (call $down (i32.const 1000000)))"#,
        None,
    );
    assert_completed(&r);
    // Each turn: local.get, if = 2; the arm: local.get, i32.const,
    // i32.sub, return_call, end = 5. The last turn: local.get, if = 2, and
    // the function's end = 1. `_start`: i32.const, call, end = 3.
    assert_eq!(r.fuel.0, 1_000_000 * 7 + 3 + 3);
}

#[test]
fn extended_constants_multi_value_and_reference_types_run_and_count_one_each() {
    let r = sandbox()
        .run(&Task::new(wat(r#"(module
          (type $r (func (result i32)))
          (memory (export "memory") 1)
          (global $base i32 (i32.add (i32.const 40) (i32.const 2)))
          (table $t 2 funcref)
          (elem declare func $seven)
          (func $seven (result i32) (i32.const 7))
          (func $pair (result i32 i32) (i32.const 1) (i32.const 2))
          (func (export "_start") (local $unused i32)
            (table.set $t (i32.const 1) (ref.func $seven))
            (call $pair)
            (block (param i32 i32) (result i32) (i32.add))
            (global.get $base)
            (i32.add)
            (call_indirect $t (type $r) (i32.const 1))
            (i32.add)
            (if (i32.ne (i32.const 52)) (then unreachable))))"#)))
        .unwrap();
    assert_completed(&r);
    // `_start`: i32.const, ref.func, table.set, call, block, i32.add, end
    // = 7 + 1 local; global.get, i32.add, i32.const, call_indirect,
    // i32.add, i32.const, i32.ne, if = 8; the function's end = 1. `$pair`
    // 3, `$seven` 2. The constant expression runs no operator.
    assert_eq!(r.fuel.0, 8 + 8 + 1 + 3 + 2);
}

#[test]
fn simd_nans_are_canonical_in_portable_mode() {
    // 0/0 in each lane: x86 makes a NaN with the sign bit set; portable
    // mode writes the canonical quiet NaN, as every other machine would.
    let m = wat(r#"(module
      (import "wasi_snapshot_preview1" "fd_write" (func $w (param i32 i32 i32 i32) (result i32)))
      (memory (export "memory") 1)
      (func (export "_start")
        (v128.store (i32.const 16) (f32x4.div (v128.const f32x4 0 0 0 0) (v128.const f32x4 0 0 0 0)))
        (i32.store (i32.const 0) (i32.const 16))
        (i32.store (i32.const 4) (i32.const 16))
        (drop (call $w (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 8)))))"#);
    let mut t = Task::new(m);
    t.mode = Determinism::Portable;
    let r = sandbox().run(&t).unwrap();
    assert_completed(&r);
    assert_eq!(r.result.stdout, [0x00, 0x00, 0xc0, 0x7f].repeat(4));
}

#[test]
fn threads_and_relaxed_simd_stay_off() {
    let sb = sandbox();
    for (src, says) in [
        (r#"(module (memory 1 1 shared) (func (export "_start")))"#, "threads"),
        (
            r#"(module (func (export "_start") (drop (f32x4.relaxed_madd (v128.const i64x2 0 0) (v128.const i64x2 0 0) (v128.const i64x2 0 0)))))"#,
            "relaxed SIMD",
        ),
    ] {
        let r = sb.run(&Task::new(wat(src))).unwrap();
        match r.result.outcome {
            Outcome::InvalidModule { reason } => assert!(reason.contains(says), "{reason}"),
            other => panic!("{src}: {other:?}"),
        }
    }
}
