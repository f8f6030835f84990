//! The README's tour, run as written: every `sh` block between the README's
//! `<!-- tour` and `<!-- /tour -->` markers, in order, in one bash script,
//! against real node processes on 127.0.0.1. Changing a tour command
//! without changing the product breaks this test.
//!
//! Every job file in `examples/` must be submitted in the tour, so each
//! completes, as it is, on a local network here.
//!
//! What the test changes around the script, and only that: `cargo build
//! --release` is skipped (this test's own build of `sharegrid` stands at
//! `target/release/sharegrid` in a scratch directory beside `guests/` and
//! `examples/`); `HOME` is a scratch directory; nodes listen on 127.0.0.1
//! with mDNS off (as every network test here), on a free port that stands
//! in for 4001 in the commands.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::process::Command;

fn repo() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../.."))
}

/// The tour's commands: its `sh` blocks, joined.
fn tour_script() -> String {
    let readme = std::fs::read_to_string(repo().join("README.md")).unwrap();
    let start = readme.find("<!-- tour").expect("the README marks its tour");
    let end = readme.find("<!-- /tour -->").expect("the README marks the tour's end");
    readme[start..end]
        .split("```sh\n")
        .skip(1)
        .map(|block| block.split("```").next().unwrap_or_default())
        .collect::<Vec<_>>()
        .join("\n")
}

/// Kills the nodes a failed tour left running.
struct Nodes(Vec<std::path::PathBuf>);

impl Drop for Nodes {
    fn drop(&mut self) {
        for home in &self.0 {
            if let Ok(pid) = std::fs::read_to_string(home.join("node.pid")) {
                let _ = Command::new("kill").arg("-9").arg(pid.trim()).status();
            }
        }
    }
}

#[test]
fn the_readme_tour_runs_as_written() {
    let dir = tempfile::tempdir().unwrap();
    let (work, home) = (dir.path().join("work"), dir.path().join("home"));
    std::fs::create_dir_all(work.join("target/release")).unwrap();
    std::fs::create_dir_all(&home).unwrap();
    for d in ["guests", "examples"] {
        std::os::unix::fs::symlink(repo().join(d), work.join(d)).unwrap();
    }
    std::os::unix::fs::symlink(env!("CARGO_BIN_EXE_sharegrid"), work.join("target/release/sharegrid")).unwrap();
    let _nodes = Nodes(vec![home.join(".sharegrid"), home.join(".sharegrid-b")]);

    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let tour = tour_script();
    assert!(
        tour.contains("init --join 127.0.0.1:4001"),
        "the tour joins a second node:\n{tour}"
    );
    // Every example job file is submitted in the tour, and so completes
    // as it is (each submit below must end with its tasks accepted).
    let mut examples = 0;
    for entry in std::fs::read_dir(repo().join("examples")).unwrap() {
        let name = entry.unwrap().file_name().into_string().unwrap();
        if name.ends_with(".toml") {
            examples += 1;
            assert!(
                tour.contains(&format!("submit examples/{name}")),
                "examples/{name} is not submitted in the README's tour"
            );
        }
    }
    assert!(examples >= 2);
    let script = format!(
        "set -euo pipefail\nshopt -s expand_aliases\ncargo() {{ [ \"$*\" = \"build --release\" ]; }}\n{}",
        tour.replace("127.0.0.1:4001", &format!("127.0.0.1:{port}"))
    );
    let out = Command::new("bash")
        .arg("-c")
        .arg(&script)
        .current_dir(&work)
        .env("HOME", &home)
        .env_remove("SHAREGRID_HOME")
        .env("SHAREGRID_NETWORK__LISTEN", format!(r#"["/ip4/127.0.0.1/tcp/{port}"]"#))
        .env("SHAREGRID_NETWORK__MDNS", "false")
        .output()
        .unwrap();
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert!(
        out.status.success(),
        "the tour failed ({})\n--- stdout\n{stdout}\n--- stderr\n{stderr}",
        out.status
    );
    // What the tour promises, seen in its output.
    for expected in [
        "exit status 124",
        "TCP port",                         // the second node took the next port
        "test tokens received",             // the faucet
        "bonded     100000",                // stake
        "10 accepted, 0 failed, 10 in all", // examples/pi.toml
        "48 accepted, 0 failed, 48 in all", // examples/mandelbrot.toml
        "48 of 48 tasks' outputs written",  // results last
        "ok: ",                             // ledger verify
        "stopped",
    ] {
        assert!(
            stdout.contains(expected),
            "the tour's output lacks {expected:?}\n--- stdout\n{stdout}\n--- stderr\n{stderr}"
        );
    }
}
