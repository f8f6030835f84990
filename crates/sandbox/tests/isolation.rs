//! A guest sees only its task: no host files, no environment, no sockets,
//! and `/in` is read-only.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use sharegrid_core::Outcome;

#[test]
fn probe_cannot_escape() {
    let r = sandbox()
        .run(&task(&guest("probe"), &[], &[("data.txt", b"hello input\n")]))
        .unwrap();
    assert_completed(&r);
    let out = stdout(&r);
    let expected = [
        // wasi-libc finds no preopen for `/etc` and says so itself: the
        // path never reaches the sandbox.
        "read /etc/passwd: denied (No such file or directory)",
        "read /in/../etc/passwd: denied (Capabilities insufficient)",
        "read /in/../../etc/passwd: denied (Capabilities insufficient)",
        "read /out/../in/data.txt: denied (Capabilities insufficient)",
        "write /in/data.txt: denied (Read-only file system)",
        "create /in/new.txt: denied (Read-only file system)",
        "truncate /in/data.txt: denied (Read-only file system)",
        "unlink /in/data.txt: Read-only file system",
        "mkdir /in/d: Read-only file system",
        "rename /in/data.txt -> /out/x: Cross-device link",
        "environment variables: 0",
        "HOME=(unset) PATH=(unset)",
        "opendir /: No such file or directory",
        "read /in/data.txt: OPENED (read 12 bytes)",
    ];
    for line in expected {
        assert!(out.lines().any(|l| l == line), "missing {line:?} in:\n{out}");
    }
    assert!(r.result.files.is_empty(), "nothing may land in /out");
}

#[test]
fn raw_wasi_calls_cannot_reach_the_host() {
    // Calls the ABI directly, bypassing libc: each call's errno is written
    // to stdout as one byte.
    let m = wat(r#"(module
      (import "wasi_snapshot_preview1" "fd_write" (func $fd_write (param i32 i32 i32 i32) (result i32)))
      (import "wasi_snapshot_preview1" "path_open"
        (func $open (param i32 i32 i32 i32 i32 i64 i64 i32 i32) (result i32)))
      (import "wasi_snapshot_preview1" "sock_accept" (func $accept (param i32 i32 i32) (result i32)))
      (import "wasi_snapshot_preview1" "sock_send" (func $send (param i32 i32 i32 i32 i32) (result i32)))
      (import "wasi_snapshot_preview1" "environ_sizes_get" (func $env (param i32 i32) (result i32)))
      (import "wasi_snapshot_preview1" "path_symlink" (func $symlink (param i32 i32 i32 i32 i32) (result i32)))
      (memory (export "memory") 1)
      (data (i32.const 100) "/etc/passwd")
      (data (i32.const 120) "../etc/passwd")
      (data (i32.const 140) "x")
      (func $put (param $at i32) (param $errno i32)
        (i32.store8 (i32.add (i32.const 300) (local.get $at)) (local.get $errno)))
      (func (export "_start")
        ;; absolute path under the /in preopen (fd 3)
        (call $put (i32.const 0) (call $open (i32.const 3) (i32.const 0) (i32.const 100) (i32.const 11)
          (i32.const 0) (i64.const 2) (i64.const 0) (i32.const 0) (i32.const 200)))
        ;; climbing out of /out (fd 4)
        (call $put (i32.const 1) (call $open (i32.const 4) (i32.const 0) (i32.const 120) (i32.const 13)
          (i32.const 0) (i64.const 2) (i64.const 0) (i32.const 0) (i32.const 200)))
        ;; a file descriptor that does not exist
        (call $put (i32.const 2) (call $open (i32.const 99) (i32.const 0) (i32.const 140) (i32.const 1)
          (i32.const 0) (i64.const 2) (i64.const 0) (i32.const 0) (i32.const 200)))
        (call $put (i32.const 3) (call $accept (i32.const 3) (i32.const 0) (i32.const 200)))
        (call $put (i32.const 4) (call $send (i32.const 1) (i32.const 0) (i32.const 0) (i32.const 0) (i32.const 200)))
        (call $put (i32.const 5) (call $env (i32.const 200) (i32.const 204)))
        (call $put (i32.const 6) (i32.load (i32.const 200)))
        (call $put (i32.const 7) (call $symlink (i32.const 140) (i32.const 1) (i32.const 4) (i32.const 120) (i32.const 4)))
        ;; a pointer past the end of memory
        (call $put (i32.const 8) (call $fd_write (i32.const 1) (i32.const 65530) (i32.const 1) (i32.const 0)))
        (i32.store (i32.const 0) (i32.const 300))
        (i32.store (i32.const 4) (i32.const 9))
        (drop (call $fd_write (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 8)))))"#);
    let r = sandbox().run(&task(&m, &[], &[])).unwrap();
    assert_completed(&r);
    const NOTCAPABLE: u8 = 76;
    const BADF: u8 = 8;
    const NOTSUP: u8 = 58;
    const FAULT: u8 = 21;
    assert_eq!(
        r.result.stdout,
        [NOTCAPABLE, NOTCAPABLE, BADF, NOTSUP, NOTSUP, 0, 0, NOTSUP, FAULT]
    );
}

#[test]
fn out_directory_supports_ordinary_file_work() {
    let r = sandbox().run(&task(&guest("probe"), &["out"], &[])).unwrap();
    assert_completed(&r);
    let out = stdout(&r);
    for line in [
        "mkdir /out/a: ok",
        "mkdir /out/a again: File exists",
        "rename a/f.txt -> g.txt: ok",
        "rmdir /out/a: ok",
        "sparse size: 11",
        "unlink gone.txt: ok",
        "g.txt has 15 bytes: first",
        "appended",
        "g.txt mtime 946684800 ino 4",
    ] {
        assert!(out.lines().any(|l| l == line), "missing {line:?} in:\n{out}");
    }
    let files: Vec<(&str, &[u8])> = r
        .result
        .files
        .iter()
        .map(|f| (f.path.as_str(), f.data.as_slice()))
        .collect();
    assert_eq!(
        files,
        vec![
            ("g.txt", &b"first\nappended\n"[..]),
            ("sparse.bin", &b"\0\0\0\0\0\0\0\0\0\0x"[..])
        ]
    );
}

#[test]
fn exit_codes_and_partial_output_are_kept() {
    let m = wasi_module(
        r#"(drop (call $w (i32.const 1) (i32.const 64) (i32.const 5)))
           (call $exit (i32.const 7))"#,
        r#"(import "wasi_snapshot_preview1" "proc_exit" (func $exit (param i32)))
           (data (i32.const 64) "bye!\n")"#,
    );
    let r = sandbox().run(&task(&m, &[], &[])).unwrap();
    assert_eq!(r.result.outcome, Outcome::Completed { exit_code: 7 });
    assert_eq!(r.result.stdout, b"bye!\n");
}
