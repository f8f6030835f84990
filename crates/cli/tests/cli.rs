//! The `sharegrid` binary, run as a user would: separate processes agree
//! with each other and with the library; bad command lines get clear errors.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn bin() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_sharegrid"));
    c.env_remove("SHAREGRID_HOME");
    c
}

/// Runs `sharegrid --home HOME ARGS...` to completion.
fn sharegrid(home: &Path, args: &[&str]) -> Output {
    bin().arg("--home").arg(home).args(args).output().unwrap()
}

fn guest(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../guests/wasm")
        .join(format!("{name}.wasm"))
}

fn run_json(home: &Path, args: &[&str]) -> (serde_json::Value, Output) {
    let out = bin()
        .arg("--home")
        .arg(home)
        .arg("run")
        .arg("--json")
        .args(args)
        .output()
        .unwrap();
    let v =
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stderr)));
    (v, out)
}

#[test]
fn separate_processes_agree_on_hash_and_fuel() {
    let home = tempfile::tempdir().unwrap();
    let g = guest("mandelbrot");
    let args = [g.to_str().unwrap(), "--", "2", "5"];
    let (a, out) = run_json(home.path(), &args);
    assert!(out.status.success());
    assert_eq!(a["outcome"]["kind"], "completed");
    assert_eq!(a["module_source"], "compiled");
    // Second process: same answer, module loaded from the cache.
    let (b, _) = run_json(home.path(), &args);
    assert_eq!(b["module_source"], "disk_cache");
    // Third process without the cache.
    let (c, _) = run_json(home.path(), &[g.to_str().unwrap(), "--no-cache", "--", "2", "5"]);
    for v in [&b, &c] {
        assert_eq!(v["result_hash"], a["result_hash"]);
        assert_eq!(v["fuel"], a["fuel"]);
    }
    assert_eq!(a["outputs"][0]["path"], "tile-2-5.ppm");
}

#[test]
fn inputs_outputs_and_stdin_move_through_directories() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in");
    std::fs::create_dir_all(input.join("sub")).unwrap();
    std::fs::write(input.join("a.txt"), "alpha beta\n").unwrap();
    std::fs::write(input.join("sub/b.txt"), "gamma\n").unwrap();
    let out_dir = dir.path().join("results");
    let out = bin()
        .arg("--home")
        .arg(dir.path().join("home"))
        .args(["run", guest("wordcount").to_str().unwrap(), "--in"])
        .arg(&input)
        .arg("--out")
        .arg(&out_dir)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let report = "1 2 11 a.txt\n1 1 6 sub/b.txt\n2 3 17 total (2 files)\n";
    assert_eq!(String::from_utf8_lossy(&out.stdout), report);
    assert_eq!(std::fs::read_to_string(out_dir.join("wordcount.txt")).unwrap(), report);
    let summary = String::from_utf8_lossy(&out.stderr);
    assert!(summary.contains("outcome  completed with exit code 0"), "{summary}");
    assert!(summary.contains("result   "), "{summary}");
}

#[test]
fn outcomes_set_the_exit_status() {
    let dir = tempfile::tempdir().unwrap();
    // Guest exit code passes through.
    let out = sharegrid(dir.path(), &["run", guest("pi").to_str().unwrap()]);
    assert_eq!(
        out.status.code(),
        Some(2),
        "pi without arguments prints usage and exits 2"
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("usage: pi SEED SAMPLES"));
    // A limit: 124 and a one-line message naming it.
    let out = sharegrid(
        dir.path(),
        &[
            "run",
            guest("hashchain").to_str().unwrap(),
            "--fuel",
            "1M",
            "--",
            "1000000",
        ],
    );
    assert_eq!(out.status.code(), Some(124));
    assert!(String::from_utf8_lossy(&out.stderr).contains("outcome  out of fuel"));
    // Not WebAssembly: an outcome too, with the reason.
    let junk = dir.path().join("junk.wasm");
    std::fs::write(&junk, "hello").unwrap();
    let (v, out) = run_json(dir.path(), &[junk.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(124));
    assert_eq!(v["outcome"]["kind"], "invalid_module");
    assert!(v["message"].as_str().unwrap().contains("magic"));
}

#[test]
fn bad_command_lines_get_clear_errors() {
    let cases: &[(&[&str], &str)] = &[
        (&["run"], "MODULE"),
        (&["run", "x.wasm", "--memory", "lots"], "not a size"),
        (&["run", "x.wasm", "--timeout", "soon"], "not a duration"),
        (&["run", "x.wasm", "--fuel", "many"], "not an amount of fuel"),
        (&["run", "x.wasm", "--task-id", "abc"], "64 hex digits"),
        (&["frobnicate"], "unrecognized subcommand"),
    ];
    for (args, needle) in cases {
        let out = bin().args(*args).output().unwrap();
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(needle), "{args:?}: {err}");
        assert!(!err.contains("panicked"), "{args:?}: {err}");
    }
    let dir = tempfile::tempdir().unwrap();
    let out = sharegrid(dir.path(), &["run", "/nonexistent/x.wasm"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot read module /nonexistent/x.wasm"));
    let out = sharegrid(
        dir.path(),
        &["run", guest("pi").to_str().unwrap(), "--in", "/nonexistent-dir"],
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("/nonexistent-dir"));
    let out = sharegrid(dir.path(), &["run", guest("pi").to_str().unwrap(), "--stack", "1TiB"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("stack limit"));
}

#[test]
fn wat_modules_run_directly() {
    let dir = tempfile::tempdir().unwrap();
    let m = dir.path().join("exit.wat");
    std::fs::write(
        &m,
        r#"(module (import "wasi_snapshot_preview1" "proc_exit" (func $exit (param i32)))
           (memory (export "memory") 1) (func (export "_start") (call $exit (i32.const 3))))"#,
    )
    .unwrap();
    let (v, out) = run_json(dir.path(), &[m.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(3));
    assert_eq!(v["outcome"]["exit_code"], 3);
}

#[test]
fn demo_and_bench_run() {
    let dir = tempfile::tempdir().unwrap();
    let png = dir.path().join("m.png");
    let out = bin()
        .args([
            "demo", "--width", "320", "--height", "240", "--cols", "4", "--rows", "3", "--out",
        ])
        .arg(&png)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let report = String::from_utf8_lossy(&out.stdout);
    assert!(
        report.contains("12 accepted of 12, each by 2 agreeing providers"),
        "{report}"
    );
    assert!(report.contains("none accepted"), "{report}");
    // Each wrong result is disputed, re-run by the validator and slashed;
    // the honest keep their stake; the money adds up to the unit.
    assert!(report.contains("judged: the validator re-ran each task"), "{report}");
    assert!(report.contains("honest providers' stake untouched"), "{report}");
    if !report.contains("disputes   0 reported") {
        // The liar got work (it almost always does: it is fast and cheap).
        assert!(report.contains("liar     stake"), "{report}");
        assert!(report.contains("verdict on task"), "{report}");
    }
    assert!(report.contains("supply") && report.contains(": exact"), "{report}");
    assert!(std::fs::read(&png).unwrap().starts_with(b"\x89PNG\r\n\x1a\n"));
    let out = bin().args(["bench", "--rounds", "1", "--json"]).output().unwrap();
    assert!(out.status.success());
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(v["speed"].as_f64().unwrap() > 0.0);
    assert!(v["fuel_per_round"].as_u64().unwrap() > 0);
}

#[test]
fn init_creates_the_home_and_config_drives_the_sandbox() {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("node");
    let out = sharegrid(&home, &["init", "--json"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["new_identity"], true);
    let id = v["node_id"].as_str().unwrap().to_string();
    assert_eq!(id.len(), 64);
    // A second init keeps the identity.
    let out = sharegrid(&home, &["init", "--json"]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        (v["new_identity"].as_bool(), v["node_id"].as_str()),
        (Some(false), Some(id.as_str()))
    );
    // Configuration, with an environment override, bounds the sandbox.
    let out = bin()
        .arg("--home")
        .arg(&home)
        .args(["config", "show"])
        .env("SHAREGRID_SANDBOX__MAX_INPUT_BYTES", "10")
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&out.stdout).contains("max_input_bytes = 10"));
    let input = dir.path().join("in");
    std::fs::create_dir_all(&input).unwrap();
    std::fs::write(input.join("big.txt"), "more than ten bytes").unwrap();
    let out = bin()
        .arg("--home")
        .arg(&home)
        .args(["run", guest("wordcount").to_str().unwrap(), "--in"])
        .arg(&input)
        .env("SHAREGRID_SANDBOX__MAX_INPUT_BYTES", "10")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("inputs exceed 10 bytes"));
    // A typo in config.toml is named, with the file.
    std::fs::write(home.join("config.toml"), "[sandbox]\nmax_input_byts = 1\n").unwrap();
    let out = sharegrid(&home, &["config", "show"]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("config.toml") && err.contains("max_input_byts"), "{err}");
}

/// A job file someone else wrote cannot make `submit` ship the node's key,
/// or any file outside the job's directory, to strangers: refused before
/// anything reaches the node (none runs here).
#[test]
fn a_job_file_cannot_ship_the_nodes_key_or_files_outside_its_directory() {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("home");
    assert!(sharegrid(&home, &["init"]).status.success());
    let jobs = dir.path().join("jobs");
    std::fs::create_dir_all(&jobs).unwrap();
    std::fs::write(jobs.join("data.txt"), "fine\n").unwrap();
    std::fs::write(dir.path().join("secret.txt"), "not yours\n").unwrap();
    let pi = guest("pi");
    let job = |extra: &str, module: &str| {
        let path = jobs.join("job.toml");
        std::fs::write(
            &path,
            format!("[job]\nmodule = {module:?}\nargs = [\"1\", \"10\"]\nreplication = 1\nprice_ceiling = 1\n{extra}"),
        )
        .unwrap();
        let out = sharegrid(&home, &["submit", path.to_str().unwrap()]);
        assert!(!out.status.success());
        String::from_utf8_lossy(&out.stderr).to_string()
    };
    let pi = pi.to_str().unwrap();
    let key = job("inputs = { \"k\" = \"../home/identity.key\" }\n", pi);
    assert!(
        key.contains("job.inputs: \"../home/identity.key\" is inside the node's home"),
        "{key}"
    );
    let out = job("stdin = \"../secret.txt\"\n", pi);
    assert!(
        out.contains("job.stdin: \"../secret.txt\" is outside the job file's directory"),
        "{out}"
    );
    let abs = job(
        &format!("inputs = {{ \"s\" = {:?} }}\n", dir.path().join("secret.txt")),
        pi,
    );
    assert!(abs.contains("is outside the job file's directory"), "{abs}");
    let module = job("", "../home/identity.key");
    assert!(
        module.contains("job.module: \"../home/identity.key\" is inside the node's home"),
        "{module}"
    );
    let text = job("", "data.txt");
    assert!(
        text.contains("job.module: \"data.txt\" is not a WebAssembly module"),
        "{text}"
    );
    // Beside the job file, an input is fine (the node is not running, so
    // that is where this one stops).
    let ok = job("inputs = { \"d\" = \"data.txt\" }\n", pi);
    assert!(ok.contains("no node is running"), "{ok}");
}

#[test]
fn run_refuses_a_module_over_the_size_limit_before_reading_it() {
    let home = tempfile::tempdir().unwrap();
    let out = bin()
        .arg("--home")
        .arg(home.path())
        .env("SHAREGRID_SANDBOX__MAX_MODULE_BYTES", "1000")
        .args(["run", guest("pi").to_str().unwrap(), "--", "1", "10"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("bytes, over the limit of 1000 bytes ([sandbox] max_module_bytes)"),
        "{err}"
    );
}

#[test]
fn dashboard_without_a_running_node_says_how_to_start_one() {
    let home = tempfile::tempdir().unwrap();
    let out = bin().arg("--home").arg(home.path()).arg("dashboard").output().unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("no node is running") && err.contains("sharegrid node"),
        "{err}"
    );
    assert!(!home.path().join("api.token").exists(), "asking made no token");
}
