//! The web dashboard in a real browser: `sharegrid demo --serve` runs the
//! demo network with the dashboard open on a loopback port, and headless
//! Chromium (Debian's, driven by npm's playwright-core:
//! `tests/browser/dashboard.mjs`) opens the address it printed, submits a
//! job from the page with a module picked from disk, watches it complete
//! through live updates, and keeps a screenshot
//! (`target/tmp/dashboard.png`). `tests/browser/setup` installs the browser
//! and playwright-core when they are missing.

mod common;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

/// The demo process, stopped when the test ends however it ends.
struct Demo(Child);

impl Drop for Demo {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

#[test]
fn the_dashboard_submits_a_job_and_watches_it_complete_in_chromium() {
    let setup = Command::new(root().join("tests/browser/setup"))
        .status()
        .unwrap_or_else(|e| panic!("tests/browser/setup: {e}"));
    assert!(setup.success(), "tests/browser/setup failed: see its message above");

    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let child = Command::new(env!("CARGO_BIN_EXE_sharegrid"))
        .args(["demo", "--serve", "--api", "127.0.0.1:0"])
        .args(["--width", "96", "--height", "64", "--cols", "2", "--rows", "2", "--out"])
        .arg(dir.path().join("m.png"))
        .current_dir(dir.path())
        .env("RUST_LOG", "error")
        .stdout(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("starting the demo: {e}"));
    let mut demo = Demo(child);
    let stdout = demo.0.stdout.take().unwrap_or_else(|| panic!("no stdout"));
    // The demo prints a few dozen lines; the reader never waits long.
    let (tx, lines) = mpsc::sync_channel(256);
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    // The address comes first; the demo's own job ends before the page's.
    let (mut url, mut printed) = (None, Vec::new());
    loop {
        let line = lines
            .recv_timeout(Duration::from_secs(300))
            .unwrap_or_else(|_| panic!("the demo stopped or stalled; it printed:\n{}", printed.join("\n")));
        if let Some(at) = line.trim().strip_prefix("dashboard  ") {
            url = Some(at.to_owned());
        }
        let done = line.contains("Ctrl-C stops it");
        printed.push(line);
        if done {
            break;
        }
    }
    let url = url.unwrap_or_else(|| panic!("the demo printed no dashboard address:\n{}", printed.join("\n")));
    assert!(
        url.starts_with("http://127.0.0.1:") && url.contains("/#token="),
        "{url}"
    );
    let host = url["http://".len()..].split('/').next().unwrap_or_default().to_owned();

    // Without the token, the API refuses; the page itself needs none.
    let (code, body) = common::request(&host, "GET", "/api/jobs", &[], b"");
    assert_eq!(code, 401, "{body}");

    let shot = Path::new(env!("CARGO_TARGET_TMPDIR")).join("dashboard.png");
    let _ = std::fs::remove_file(&shot);
    let out = Command::new("node")
        .arg(root().join("tests/browser/dashboard.mjs"))
        .arg(&url)
        .arg(root().join("guests/wasm/mandelbrot.wasm"))
        .arg(&shot)
        .output()
        .unwrap_or_else(|e| panic!("node: {e}"));
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "the browser test failed:\n{said}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let seen: serde_json::Value = serde_json::from_str(said.trim()).unwrap_or_else(|e| panic!("{e}: {said}"));
    assert_eq!(
        seen["token_hidden"], true,
        "the token stayed in the address bar: {seen}"
    );
    assert_eq!(
        seen["providers"], 5,
        "the network page lists the demo's providers: {seen}"
    );
    assert_eq!(seen["tasks"], 4, "{seen}");
    assert_eq!(seen["tiles"], 4, "every tile drawn: {seen}");
    assert!(
        seen["colours"].as_u64().unwrap_or(0) > 8,
        "the mosaic is an image: {seen}"
    );
    assert!(
        seen["blocks"].as_u64().unwrap_or(0) > 0,
        "the ledger page lists blocks: {seen}"
    );
    assert_eq!(
        seen["hosts"],
        serde_json::json!([host]),
        "no request left the node: {seen}"
    );
    assert_eq!(seen["page_errors"], serde_json::json!([]), "{seen}");
    let png = std::fs::read(&shot).unwrap_or_default();
    assert!(png.starts_with(b"\x89PNG"), "no screenshot at {}", shot.display());
    eprintln!("screenshot: {}", shot.display());

    // The job the page submitted is the node's, done, with its tiles.
    let job = seen["job"].as_str().unwrap_or_default();
    let token = url.rsplit_once("#token=").map(|(_, t)| t).unwrap_or_default();
    let bearer = format!("Bearer {token}");
    let (code, body) = common::request(
        &host,
        "GET",
        &format!("/api/jobs/{job}"),
        &[("Authorization", &bearer)],
        b"",
    );
    assert_eq!(code, 200, "{body}");
    let view: serde_json::Value = serde_json::from_str(&body).unwrap_or_else(|e| panic!("{e}: {body}"));
    assert_eq!(view["job"]["state"], "done", "{view}");
    assert_eq!(view["job"]["name"], "browser-mandelbrot", "{view}");

    // Ctrl-C stops the demo network.
    let pid = demo.0.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-INT", &pid])
            .status()
            .is_ok_and(|s| s.success())
    );
    let status = demo.0.wait().unwrap_or_else(|e| panic!("{e}"));
    assert!(status.success(), "the demo ended with {status}");
}
