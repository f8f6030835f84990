//! Shared test helpers: the committed example guests and task builders.
#![allow(dead_code, unreachable_pub)]
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::sync::Arc;

use sharegrid_core::Outcome;
use sharegrid_sandbox::{RunReport, Sandbox, SandboxConfig, Task};

/// The committed `.wasm` of an example guest.
pub fn guest(name: &str) -> Vec<u8> {
    let path = format!("{}/../../guests/wasm/{name}.wasm", env!("CARGO_MANIFEST_DIR"));
    std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// A module that loops forever.
pub const LOOP: &str = r#"(module (memory (export "memory") 1) (func (export "_start") (loop $l (br $l))))"#;

/// Assembles inline WAT.
pub fn wat(src: &str) -> Vec<u8> {
    wat::parse_str(src).unwrap_or_else(|e| panic!("test WAT does not assemble: {e}"))
}

pub fn sandbox() -> Sandbox {
    Sandbox::new(SandboxConfig::default()).unwrap()
}

/// A task for `module` with `args` and inputs, with its id derived as
/// `sharegrid run` derives it.
pub fn task(module: &[u8], args: &[&str], inputs: &[(&str, &[u8])]) -> Task {
    let args = args.iter().map(|s| s.to_string()).collect();
    let inputs = inputs
        .iter()
        .map(|(p, d)| (p.to_string(), Arc::<[u8]>::from(*d)))
        .collect::<BTreeMap<_, _>>();
    Task::local(module.to_vec(), args, Vec::new(), inputs)
}

pub fn stdout(r: &RunReport) -> String {
    String::from_utf8_lossy(&r.result.stdout).into_owned()
}

pub fn assert_completed(r: &RunReport) {
    assert_eq!(
        r.result.outcome,
        Outcome::Completed { exit_code: 0 },
        "stderr: {}",
        String::from_utf8_lossy(&r.result.stderr)
    );
}

/// A WAT module importing `fd_write` with a data segment and a `_start`
/// body; `$w` writes `len` bytes at `ptr` to `fd` via an iovec at 0.
pub fn wasi_module(body: &str, extra: &str) -> Vec<u8> {
    wat(&format!(
        r#"(module
  (import "wasi_snapshot_preview1" "fd_write" (func $fd_write (param i32 i32 i32 i32) (result i32)))
  {extra}
  (memory (export "memory") 1)
  (func $w (param $fd i32) (param $ptr i32) (param $len i32) (result i32)
    (i32.store (i32.const 0) (local.get $ptr))
    (i32.store (i32.const 4) (local.get $len))
    (call $fd_write (local.get $fd) (i32.const 0) (i32.const 1) (i32.const 8)))
  (func (export "_start") {body}))"#
    ))
}
