//! The compiled-module cache: a second run skips compilation, across
//! processes (fresh sandboxes over the same directory); bad entries are
//! recompiled; entries are per engine configuration; the size is bounded.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use sharegrid_core::Determinism;
use sharegrid_sandbox::{ModuleSource, Sandbox, SandboxConfig};

fn cached(dir: &std::path::Path) -> Sandbox {
    Sandbox::new(SandboxConfig {
        cache_dir: Some(dir.into()),
        ..Default::default()
    })
    .unwrap()
}

fn entries(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut v: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "cwasm"))
        .collect();
    v.sort();
    v
}

#[test]
fn second_run_loads_instead_of_compiling() {
    let dir = tempfile::tempdir().unwrap();
    let t = task(&guest("mandelbrot"), &["0", "0"], &[]);
    let first = cached(dir.path()).run(&t).unwrap();
    assert_eq!(first.module_source, ModuleSource::Compiled);
    let second = cached(dir.path()).run(&t).unwrap();
    assert_eq!(second.module_source, ModuleSource::DiskCache);
    let sb = cached(dir.path());
    sb.run(&t).unwrap();
    assert_eq!(sb.run(&t).unwrap().module_source, ModuleSource::MemoryCache);
    assert_eq!((second.result_hash, second.fuel), (first.result_hash, first.fuel));
    eprintln!(
        "compile {:?}, load from disk {:?}",
        first.prepare_time, second.prepare_time
    );
}

#[test]
fn corrupt_entries_are_recompiled() {
    let dir = tempfile::tempdir().unwrap();
    let t = task(&guest("hashchain"), &["10"], &[]);
    let good = cached(dir.path()).run(&t).unwrap();
    let [entry] = entries(dir.path()).try_into().unwrap();
    let mut bytes = std::fs::read(&entry).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0xff;
    std::fs::write(&entry, &bytes).unwrap();
    let r = cached(dir.path()).run(&t).unwrap();
    assert_eq!(r.module_source, ModuleSource::Compiled);
    assert_eq!(r.result_hash, good.result_hash);
    std::fs::write(&entry, b"SGCWASM1").unwrap();
    assert_eq!(
        cached(dir.path()).run(&t).unwrap().module_source,
        ModuleSource::Compiled
    );
    assert_eq!(
        cached(dir.path()).run(&t).unwrap().module_source,
        ModuleSource::DiskCache
    );
}

#[test]
fn modes_have_separate_entries() {
    let dir = tempfile::tempdir().unwrap();
    let mut t = task(&guest("pi"), &["1", "1000"], &[]);
    cached(dir.path()).run(&t).unwrap();
    t.mode = Determinism::Portable;
    assert_eq!(
        cached(dir.path()).run(&t).unwrap().module_source,
        ModuleSource::Compiled
    );
    assert_eq!(entries(dir.path()).len(), 2);
}

#[test]
fn cache_size_is_bounded() {
    let dir = tempfile::tempdir().unwrap();
    let one = {
        cached(dir.path()).run(&task(&guest("pi"), &["1", "10"], &[])).unwrap();
        std::fs::metadata(&entries(dir.path())[0]).unwrap().len()
    };
    // Room for about two entries of this size.
    let sb = Sandbox::new(SandboxConfig {
        cache_dir: Some(dir.path().into()),
        cache_max_bytes: one * 5 / 2,
        ..Default::default()
    })
    .unwrap();
    for g in ["hashchain", "wordcount", "mandelbrot", "probe"] {
        sb.run(&task(&guest(g), &[], &[])).unwrap();
        let total: u64 = entries(dir.path())
            .iter()
            .map(|p| std::fs::metadata(p).unwrap().len())
            .sum();
        assert!(total <= one * 5 / 2, "cache grew to {total} bytes");
    }
}
