//! Reactor modules, the task's environment, declared host imports and
//! mounted read-only files.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::Arc;

use common::*;
use sharegrid_core::{Launch, Outcome};
use sharegrid_sandbox::{SandboxError, Task};

fn invalid(r: &sharegrid_sandbox::RunReport) -> String {
    match &r.result.outcome {
        Outcome::InvalidModule { reason } => reason.clone(),
        other => panic!("expected an invalid module, got {other:?}"),
    }
}

/// A reactor: `_initialize` stores 40 at address 100; `run` prints its
/// environment (`environ_get`) and returns the stored value plus 2.
const REACTOR: &str = r#"(module
  (import "wasi_snapshot_preview1" "fd_write" (func $w (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "environ_sizes_get" (func $es (param i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "environ_get" (func $eg (param i32 i32) (result i32)))
  (memory (export "memory") 1)
  (func (export "_initialize") (i32.store (i32.const 100) (i32.const 40)))
  (func (export "run") (result i32)
    (drop (call $es (i32.const 200) (i32.const 204)))
    (drop (call $eg (i32.const 300) (i32.const 1000)))
    (i32.store (i32.const 0) (i32.const 1000))
    (i32.store (i32.const 4) (i32.load (i32.const 204)))
    (drop (call $w (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 8)))
    (i32.add (i32.load (i32.const 100)) (i32.const 2))))"#;

fn reactor_task(entry: Option<&str>) -> Task {
    let mut t = Task::new(wat(REACTOR));
    t.launch = Launch {
        entry: entry.map(str::to_owned),
        env: vec![("PYTHONHOME".into(), "/usr/local".into()), ("TZ".into(), "UTC".into())],
        imports: Vec::new(),
    };
    t
}

#[test]
fn a_reactor_is_initialized_then_entered_and_its_result_is_the_exit_code() {
    let r = sandbox().run(&reactor_task(Some("run"))).unwrap();
    assert_eq!(r.result.outcome, Outcome::Completed { exit_code: 42 });
    assert_eq!(r.result.stdout, b"PYTHONHOME=/usr/local\0TZ=UTC\0");
    // Without the entry named, the reactor is refused with the reason.
    let r = sandbox().run(&reactor_task(None)).unwrap();
    assert!(invalid(&r).contains("a WASI reactor"), "{}", invalid(&r));
    let r = sandbox().run(&reactor_task(Some("missing"))).unwrap();
    assert!(invalid(&r).contains("no `missing` export"), "{}", invalid(&r));
    // The environment is part of the task: another value, another output.
    let mut t = reactor_task(Some("run"));
    t.launch.env[1].1 = "Europe/Paris".into();
    assert_ne!(sandbox().run(&t).unwrap().result_hash, r.result_hash);
}

#[test]
fn a_malformed_launch_is_refused_before_anything_runs() {
    let mut t = reactor_task(Some("run"));
    t.launch.env.push(("BAD=NAME".into(), "x".into()));
    assert!(matches!(sandbox().run(&t), Err(SandboxError::BadLaunch(m)) if m.contains("`=`")));
    let mut t = reactor_task(Some("run"));
    t.launch.imports.push("env.system".into());
    assert!(matches!(sandbox().run(&t), Err(SandboxError::BadLaunch(m)) if m.contains("env.system")));
}

#[test]
fn imports_the_network_does_not_provide_are_named_and_a_declared_door_answers_no() {
    let src = r#"(module
      (import "env" "system" (func (param i32) (result i32)))
      (import "host" "call" (func $door (param i32 i32 i32 i32) (result i32)))
      (import "env" "table" (table 1 funcref))
      (memory (export "memory") 1)
      (func (export "_start")))"#;
    let r = sandbox().run(&Task::new(wat(src))).unwrap();
    let reason = invalid(&r);
    assert!(
        reason.contains("env.system, host.call, env.table"),
        "every missing import is named: {reason}"
    );
    // Declared by a runtime, the door links and answers -1: "no host".
    let door = wat(r#"(module
      (import "host" "call" (func $door (param i32 i32 i32 i32) (result i32)))
      (memory (export "memory") 1)
      (func (export "_start")
        (if (i32.ne (call $door (i32.const 0) (i32.const 0) (i32.const 0) (i32.const 0)) (i32.const -1))
          (then unreachable))))"#);
    let mut t = Task::new(door);
    assert!(invalid(&sandbox().run(&t).unwrap()).contains("host.call"));
    t.launch.imports = vec!["host.call".into()];
    assert_completed(&sandbox().run(&t).unwrap());
}

/// Prints the name of preopen fd 5 and the file `data.txt` under it, then
/// tries to open that file for writing and exits with the errno it got.
const MOUNT_READER: &str = r#"(module
  (import "wasi_snapshot_preview1" "fd_write" (func $w (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_read" (func $r (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_prestat_dir_name" (func $pn (param i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "path_open"
    (func $open (param i32 i32 i32 i32 i32 i64 i64 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "proc_exit" (func $exit (param i32)))
  (memory (export "memory") 1)
  (data (i32.const 400) "data.txt")
  (func $print (param $ptr i32) (param $len i32)
    (i32.store (i32.const 0) (local.get $ptr))
    (i32.store (i32.const 4) (local.get $len))
    (drop (call $w (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 8))))
  (func (export "_start")
    (drop (call $pn (i32.const 5) (i32.const 500) (i32.const 14)))
    (call $print (i32.const 500) (i32.const 14))
    (drop (call $open (i32.const 5) (i32.const 0) (i32.const 400) (i32.const 8) (i32.const 0)
      (i64.const 2) (i64.const 0) (i32.const 0) (i32.const 600)))
    (i32.store (i32.const 0) (i32.const 1000))
    (i32.store (i32.const 4) (i32.const 100))
    (drop (call $r (i32.load (i32.const 600)) (i32.const 0) (i32.const 1) (i32.const 700)))
    (call $print (i32.const 1000) (i32.load (i32.const 700)))
    (call $exit (call $open (i32.const 5) (i32.const 0) (i32.const 400) (i32.const 8) (i32.const 0)
      (i64.const 64) (i64.const 0) (i32.const 0) (i32.const 600)))))"#;

#[test]
fn mounted_files_are_readable_at_their_absolute_paths_and_never_writable() {
    let mut t = Task::new(wat(MOUNT_READER));
    t.mounts
        .insert("/usr/local/lib/data.txt".into(), Arc::from(&b"mounted\n"[..]));
    let r = sandbox().run(&t).unwrap();
    assert_eq!(stdout(&r), "/usr/local/libmounted\n");
    // errno 69: EROFS, a read-only file system.
    assert_eq!(r.result.outcome, Outcome::Completed { exit_code: 69 });
    // Paths that are not clean, absolute and outside /in and /out are refused.
    for bad in ["relative/x", "/in/x", "/out/y", "/x", "/a/../b/c"] {
        let mut b = t.clone();
        b.mounts = [(bad.to_string(), Arc::from(&b""[..]))].into();
        assert!(matches!(sandbox().run(&b), Err(SandboxError::BadMount(_))), "{bad}");
    }
    // A file cannot also be the directory of another mounted file (names
    // that sort between them included).
    let mut b = t.clone();
    b.mounts.insert("/usr/local/lib".into(), Arc::from(&b""[..]));
    b.mounts.insert("/usr/local/lib-x".into(), Arc::from(&b""[..]));
    assert!(matches!(sandbox().run(&b), Err(SandboxError::BadMount(m)) if m.contains("both")));
    // A tree of mounted files is one preopened directory: `/usr/local/lib`
    // (fd 5), holding `data.txt` and `deep/er/x`.
    let mut tree = Task::new(wat(&MOUNT_READER
        .replace(r#""data.txt""#, r#""deep/er/x""#)
        .replace("(i32.const 400) (i32.const 8)", "(i32.const 400) (i32.const 9)")));
    tree.mounts = t.mounts.clone();
    tree.mounts
        .insert("/usr/local/lib/deep/er/x".into(), Arc::from(&b"x"[..]));
    let r = sandbox().run(&tree).unwrap();
    assert_eq!(stdout(&r), "/usr/local/libx");
    assert_eq!(r.result.outcome, Outcome::Completed { exit_code: 69 });
}
