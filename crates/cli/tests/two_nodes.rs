//! Two separate `sharegrid node` processes on 127.0.0.1, one providing: the
//! requestor's node finds the provider's offer, `sharegrid run --on` sends a
//! task across, and what comes back equals a local run byte for byte. Both
//! stop cleanly on Ctrl-C (SIGINT). Both are on the requestor's ledger: the
//! job is paid from its escrow, the provider's node follows the blocks and
//! its wallet shows the earnings, a transfer crosses, and `ledger verify`
//! passes on both copies.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

fn bin() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_sharegrid"));
    c.env_remove("SHAREGRID_HOME");
    c.env("SHAREGRID_NETWORK__LISTEN", r#"["/ip4/127.0.0.1/tcp/0"]"#);
    c.env("SHAREGRID_NETWORK__MDNS", "false");
    c.env("SHAREGRID_API__LISTEN", "127.0.0.1:0");
    c
}

/// One HTTP/1.1 request to `home`'s node API (its address from
/// `api.addr`), with `headers`: the status code and body.
fn http(home: &Path, path: &str, headers: &[(&str, &str)]) -> (u16, String) {
    let url = std::fs::read_to_string(home.join("api.addr")).unwrap();
    let addr = url.trim().strip_prefix("http://").unwrap().to_string();
    common::request(&addr, "GET", path, headers, b"")
}

/// `home`'s node API with its token.
fn api(home: &Path, path: &str) -> (u16, String) {
    let token = std::fs::read_to_string(home.join("api.token")).unwrap();
    http(home, path, &[("Authorization", &format!("Bearer {}", token.trim()))])
}

/// A counter's value in `home`'s node metrics (0 when not yet counted).
fn counter(home: &Path, series: &str) -> u64 {
    let (code, text) = api(home, "/metrics");
    assert_eq!(code, 200, "{text}");
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or(0)
}

fn guest(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../guests/wasm")
        .join(format!("{name}.wasm"))
}

/// A node process, killed if the test fails before stopping it.
struct NodeProc {
    child: Child,
    id: String,
    addr: String,
}

impl Drop for NodeProc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_node(home: &Path, env: &[(&str, &str)]) -> NodeProc {
    let mut cmd = bin();
    cmd.arg("--home").arg(home).arg("node");
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd.stdout(Stdio::piped()).stderr(Stdio::null()).spawn().unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let (mut id, mut addr) = (String::new(), String::new());
    while addr.is_empty() {
        let line = lines.next().expect("node exited before listening").unwrap();
        if let Some(v) = line.strip_prefix("node") {
            id = v.trim().to_string();
        }
        if let Some(v) = line.strip_prefix("listening") {
            addr = v.trim().to_string();
        }
    }
    // Keep draining stdout so the node never blocks on a full pipe.
    std::thread::spawn(move || for _ in lines {});
    NodeProc { child, id, addr }
}

fn json(home: &Path, args: &[&str]) -> serde_json::Value {
    let out = bin().arg("--home").arg(home).args(args).output().unwrap();
    assert!(
        out.status.success(),
        "sharegrid {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// Sends SIGINT and waits for the process to exit (its exit, not time,
/// ends the wait; a guard fails the test if it never comes).
fn stop(mut node: NodeProc) {
    let pid = node.child.id().to_string();
    assert!(Command::new("kill").args(["-INT", &pid]).status().unwrap().success());
    let (tx, rx) = std::sync::mpsc::sync_channel(1);
    let mut child = std::mem::replace(&mut node.child, Command::new("true").spawn().unwrap());
    std::thread::spawn(move || {
        let _ = tx.send(child.wait());
    });
    let status = rx
        .recv_timeout(Duration::from_secs(60))
        .expect("node did not stop on SIGINT")
        .unwrap();
    assert!(status.success(), "node exited with {status}");
}

/// Waits (in the node, on its ledger's head) until `home`'s node is at `height`.
fn wait_height(home: &Path, height: u64) {
    let h = height.to_string();
    let out = bin()
        .arg("--home")
        .arg(home)
        .args(["ledger", "wait", &h, "--timeout", "60s"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
}

#[test]
fn a_task_crosses_between_two_node_processes() {
    let (a_home, b_home) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    // The provider joins the requestor's network: its genesis.
    for h in [a_home.path(), b_home.path()] {
        assert!(
            bin()
                .arg("--home")
                .arg(h)
                .arg("init")
                .output()
                .unwrap()
                .status
                .success()
        );
    }
    std::fs::copy(b_home.path().join("genesis.toml"), a_home.path().join("genesis.toml")).unwrap();
    let provider = start_node(
        a_home.path(),
        &[
            ("SHAREGRID_PROVIDER__ENABLED", "true"),
            ("SHAREGRID_PROVIDER__OFFER_INTERVAL_SECS", "1"),
            ("SHAREGRID_PROVIDER__PRICE_FLOOR", r#""1000""#),
            // `run --on` below pays through no escrow: this owner opts out
            // of requiring one (the job further down is escrowed anyway).
            ("SHAREGRID_PROVIDER__REQUIRE_ESCROW", "false"),
        ],
    );
    let bootstrap = format!(r#"["{}"]"#, provider.addr);
    let requestor = start_node(
        b_home.path(),
        &[
            ("SHAREGRID_NETWORK__BOOTSTRAP", &bootstrap),
            ("SHAREGRID_LEDGER__BLOCK_INTERVAL_MS", "50"),
        ],
    );

    // A second node on the same home is refused.
    let again = bin().arg("--home").arg(a_home.path()).arg("node").output().unwrap();
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("already running"));

    // The node waits for the offer (an event), not the test.
    let offers = json(b_home.path(), &["offers", "--json", "--wait", "1", "--timeout", "60s"]);
    let offer = offers
        .as_array()
        .unwrap()
        .iter()
        .find(|o| o["provider"] == provider.id)
        .expect("the provider's offer")
        .clone();
    assert!(offer["speed"].as_f64().unwrap() > 0.0, "{offer}");
    assert!(offer["free_slots"].as_u64().unwrap() >= 1);

    // The HTTP API: the token, and nothing from another origin or host.
    let a = a_home.path();
    let (code, body) = http(a, "/api/status", &[]);
    assert_eq!(code, 401, "{body}");
    let (code, _) = http(a, "/metrics", &[("Authorization", "Bearer 00")]);
    assert_eq!(code, 401);
    let token = std::fs::read_to_string(a.join("api.token")).unwrap();
    let bearer = format!("Bearer {}", token.trim());
    let (code, body) = http(
        a,
        "/api/status",
        &[("Authorization", &bearer), ("Origin", "http://evil.example")],
    );
    assert_eq!(code, 403, "{body}");
    let port = std::fs::read_to_string(a.join("api.addr")).unwrap();
    let port = port.trim().rsplit_once(':').unwrap().1.to_string();
    let rebound = format!("evil.example:{port}");
    let (code, _) = http(a, "/api/status", &[("Authorization", &bearer), ("Host", &rebound)]);
    assert_eq!(code, 403);
    let (code, body) = api(a, "/api/status");
    assert_eq!(code, 200, "{body}");
    let status: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(status["id"], provider.id, "{status}");
    assert_eq!(api(a, "/api/nothing").0, 404);
    // `sharegrid dashboard` gives the page's address with the token.
    let out = bin().arg("--home").arg(a).arg("dashboard").output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let url = String::from_utf8_lossy(&out.stdout).trim().to_string();
    let addr = std::fs::read_to_string(a.join("api.addr")).unwrap();
    assert_eq!(url, format!("{}/#token={}", addr.trim(), token.trim()));
    let (code, page) = http(a, "/", &[]);
    assert_eq!(code, 200);
    assert!(page.contains("<script src=\"/app.js\""), "{page}");
    let ran = "sharegrid_tasks_run_total{kind=\"completed\"}";
    let (ran_before, fuel_before) = (counter(a, ran), counter(a, "sharegrid_fuel_executed_total"));
    let (bytes_in, bytes_out) = (
        counter(a, "sharegrid_network_bytes_in_total"),
        counter(a, "sharegrid_network_bytes_out_total"),
    );
    assert!(bytes_in > 0 && bytes_out > 0, "offers and pings crossed already");
    assert_eq!(ran_before, 0);

    // The same task remotely and locally: same result, same fuel, same file.
    let g = guest("mandelbrot");
    let (remote_out, local_out) = (b_home.path().join("remote"), b_home.path().join("local"));
    let remote = json(
        b_home.path(),
        &[
            "run",
            g.to_str().unwrap(),
            "--on",
            &provider.id,
            "--json",
            "--out",
            remote_out.to_str().unwrap(),
            "--",
            "1",
            "2",
        ],
    );
    let local = json(
        b_home.path(),
        &[
            "run",
            g.to_str().unwrap(),
            "--json",
            "--out",
            local_out.to_str().unwrap(),
            "--",
            "1",
            "2",
        ],
    );
    assert_eq!(remote["provider"], provider.id);
    assert_eq!(remote["result_hash"], local["result_hash"]);
    assert_eq!(remote["fuel"], local["fuel"]);
    let tile = "tile-1-2.ppm";
    assert_eq!(
        std::fs::read(remote_out.join(tile)).unwrap(),
        std::fs::read(local_out.join(tile)).unwrap()
    );

    let status = json(a_home.path(), &["status", "--json"]);
    assert_eq!(status["provider"]["tasks_run"], 1);
    // The provider's metrics counted the run and its fuel.
    assert_eq!(counter(a, ran), 1);
    let fuel = remote["fuel"].as_u64().unwrap();
    assert_eq!(counter(a, "sharegrid_fuel_executed_total"), fuel_before + fuel);
    // The module came in and the result went out over the provider's connection.
    let module_bytes = std::fs::metadata(&g).unwrap().len();
    assert!(counter(a, "sharegrid_network_bytes_in_total") >= bytes_in + module_bytes);
    assert!(counter(a, "sharegrid_network_bytes_out_total") > bytes_out);
    assert_eq!(status["peers"], 1);

    // A job file, submitted from the command line: 4 tiles, r = 1 (one provider).
    let job = b_home.path().join("tiles.toml");
    std::fs::write(
        &job,
        format!(
            "[job]\nname = \"tiles\"\nmodule = {:?}\nargs = [\"{{c}}\", \"0\", \"4\", \"1\", \"64\", \"16\"]\n\
             replication = 1\nprice_ceiling = 2000\n[job.limits]\nfuel = \"2G\"\n[job.sweep]\nc = {{ range = [0, 4] }}\n",
            g.to_str().unwrap()
        ),
    )
    .unwrap();
    // `submit` returns once the job ended and its settlement landed.
    let done = json(b_home.path(), &["submit", job.to_str().unwrap(), "--json"]);
    assert_eq!(done["job"]["state"], "done", "{done}");
    assert_eq!(done["payment"]["settled"], true, "{done}");
    assert_eq!(done["job"]["accepted"], 4);
    let id = done["job"]["id"].as_str().unwrap().to_string();
    let listed = json(b_home.path(), &["jobs", "--json"]);
    assert_eq!(listed[0]["id"], id);
    // The same through the HTTP API, and the provider's counters moved on.
    let (code, body) = api(b_home.path(), "/api/jobs");
    assert_eq!(code, 200, "{body}");
    assert_eq!(serde_json::from_str::<serde_json::Value>(&body).unwrap(), listed);
    let (code, body) = api(b_home.path(), &format!("/api/jobs/{}", &id[..6]));
    assert_eq!(code, 200, "{body}");
    let view: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(view["job"]["id"], id);
    assert_eq!(view["tasks"].as_array().unwrap().len(), 4);
    assert_eq!(api(b_home.path(), "/api/jobs/ffffffffffff").0, 404);
    assert_eq!(counter(a, ran), 5);
    let results = b_home.path().join("results");
    let out = bin()
        .arg("--home")
        .arg(b_home.path())
        .args(["results", &id[..6], results.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    for c in 0..4 {
        assert!(results.join(c.to_string()).join(format!("tile-{c}-0.ppm")).exists());
    }
    // A malformed job file is refused with its line, and nothing is submitted.
    std::fs::write(&job, "[job]\nmodule = \"x.wasm\"\nreplication = 0\n").unwrap();
    let bad = bin()
        .arg("--home")
        .arg(b_home.path())
        .args(["submit", job.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("tiles.toml:3: job.replication"));
    assert_eq!(json(b_home.path(), &["jobs", "--json"]).as_array().unwrap().len(), 1);

    // The job was paid from its escrow: the provider's own copy of the
    // ledger, once it follows the requestor's blocks to the settlement,
    // shows the earnings.
    let settled_at = json(b_home.path(), &["status", "--json"])["ledger"]["height"]
        .as_u64()
        .unwrap();
    wait_height(a_home.path(), settled_at);
    let w = json(a_home.path(), &["wallet", "--json"]);
    let earned: u128 = w["balance"].as_str().unwrap().parse().unwrap();
    let paid: u128 = done["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| (t["fuel"].as_u64().unwrap() as u128 * 1000).div_ceil(1_000_000_000))
        .sum();
    assert_eq!(earned, paid, "4 tasks at 1000/Gfuel");
    // A transfer from the requestor reaches the provider's copy too.
    let out = bin()
        .arg("--home")
        .arg(b_home.path())
        .args(["transfer", &provider.id, "12345"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let said = String::from_utf8_lossy(&out.stdout).to_string();
    let block: u64 = said
        .split("in block ")
        .nth(1)
        .and_then(|r| r.split(|c: char| !c.is_ascii_digit()).next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no block in {said:?}"));
    wait_height(a_home.path(), block);
    assert_eq!(
        json(a_home.path(), &["wallet", "--json"])["balance"],
        (earned + 12345).to_string()
    );
    for h in [a_home.path(), b_home.path()] {
        let out = bin().arg("--home").arg(h).args(["ledger", "verify"]).output().unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success() && stdout.starts_with("ok: "), "{stdout}");
    }

    // A job no provider can take, cancelled from the command line.
    let stuck = b_home.path().join("stuck.toml");
    std::fs::write(
        &stuck,
        format!(
            "[job]\nname = \"stuck\"\nmodule = {:?}\nprice_ceiling = 2000\n[job.constraints]\narch = \"riscv64\"\n",
            g.to_str().unwrap()
        ),
    )
    .unwrap();
    let id = json(
        b_home.path(),
        &["submit", stuck.to_str().unwrap(), "--detach", "--json"],
    )["id"]
        .as_str()
        .unwrap()
        .to_string();
    let cancel = |id: &str| {
        bin()
            .arg("--home")
            .arg(b_home.path())
            .args(["cancel", id])
            .output()
            .unwrap()
    };
    let addr = std::fs::read_to_string(b_home.path().join("api.addr")).unwrap();
    let token = std::fs::read_to_string(b_home.path().join("api.token")).unwrap();
    let live = common::events(
        addr.trim().trim_start_matches("http://"),
        &format!("Bearer {}", token.trim()),
    );
    let out = cancel(&id);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    // The node says when the job has ended.
    loop {
        let e = live.recv_timeout(Duration::from_secs(60)).expect("no ended event");
        if e["type"] == "ended" && e["job"] == id.as_str() {
            break;
        }
    }
    let ended = json(b_home.path(), &["job", &id, "--json"]);
    assert_eq!(ended["job"]["state"], "failed", "{ended}");
    assert_eq!(ended["job"]["reason"], sharegrid_node::CANCELLED, "{ended}");
    let again = cancel(&id);
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("has ended already"));

    stop(requestor);
    stop(provider);
    assert!(
        !a_home.path().join("api.addr").exists(),
        "the address is removed on exit"
    );
    // Without a node, commands say so.
    let out = bin()
        .arg("--home")
        .arg(a_home.path())
        .args(["offers"])
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&out.stderr).contains("no node is running"));
}

/// `init --join` checks before it writes: an address where no node
/// answers, or a network whose genesis is not the hash the user gave, is
/// refused with the reason and leaves the new home without a genesis;
/// the right hash (a prefix) joins.
#[test]
fn init_join_refuses_an_unreachable_peer_or_the_wrong_network_and_changes_nothing() {
    let (a_home, b_home) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let a = start_node(a_home.path(), &[]);
    let network = std::fs::read_to_string(a_home.path().join("genesis.toml")).unwrap();
    let hash = sharegrid_ledger::Genesis::from_toml(&network)
        .unwrap()
        .hash()
        .to_string();
    let join = |args: &[&str]| {
        bin()
            .arg("--home")
            .arg(b_home.path())
            .args(["init", "--join"])
            .args(args)
            .output()
            .unwrap()
    };

    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let out = join(&[&closed.to_string()]); // the listener is gone: nothing answers
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!("cannot reach /ip4/127.0.0.1/tcp/{}", closed.port())),
        "{err}"
    );
    assert!(!b_home.path().join("genesis.toml").exists());

    let out = join(&[&a.addr, "--genesis-hash", "00000000"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!("has genesis {hash}, not 00000000: nothing was changed")),
        "{err}"
    );
    assert!(!b_home.path().join("genesis.toml").exists());

    let out = join(&[&a.addr, "--genesis-hash", &hash[..12], "--json"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["genesis"], hash);
    assert_eq!(v["bootstrap"], a.addr);
    assert_eq!(
        std::fs::read_to_string(b_home.path().join("genesis.toml")).unwrap(),
        network
    );
    stop(a);
}
