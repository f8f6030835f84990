use sharegrid_sandbox::*;
#[test]
fn hello() {
    let wasm = wat::parse_str(r#"(module
      (import "wasi_snapshot_preview1" "fd_write" (func $w (param i32 i32 i32 i32) (result i32)))
      (memory (export "memory") 1)
      (data (i32.const 16) "hello\n")
      (func (export "_start")
        (i32.store (i32.const 0) (i32.const 16))
        (i32.store (i32.const 4) (i32.const 6))
        (drop (call $w (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 8)))))"#).unwrap();
    let sb = Sandbox::new(SandboxConfig::default()).unwrap();
    let r = sb.run(&Task::new(wasm)).unwrap();
    println!("{:?} {:?} {:?}", r.result.outcome, String::from_utf8_lossy(&r.result.stdout), r.fuel);
    assert_eq!(r.result.stdout, b"hello\n");
}
