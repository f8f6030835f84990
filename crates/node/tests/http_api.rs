//! The HTTP API end to end on a real network (two providers, the requestor
//! on its ledger): a module uploaded, a job file submitted that names it,
//! the job followed by server-sent events to its end, its tasks' outputs
//! downloaded and equal to the accepted results; the ledger explorer and
//! the wallet; and every kind of bad request answered with a JSON error
//! that says what is wrong, changing nothing.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::BufRead;
use std::sync::mpsc;
use std::time::Duration;

use serde_json::{Value, json};
use sharegrid_core::TaskResult;
use sharegrid_node::testnet::http_request;

const MANDELBROT: &[u8] = include_bytes!("../../../guests/wasm/mandelbrot.wasm");

struct Api {
    addr: String,
    bearer: String,
}

impl Api {
    fn call(&self, method: &str, path: &str, body: &[u8]) -> (u16, Vec<u8>) {
        let auth = [("Authorization", self.bearer.as_str())];
        http_request(&self.addr, method, path, &auth, body).unwrap()
    }

    fn json(&self, method: &str, path: &str, body: &[u8]) -> (u16, Value) {
        let (code, body) = self.call(method, path, body);
        let v = serde_json::from_slice(&body)
            .unwrap_or_else(|e| panic!("{method} {path}: {e}: {}", String::from_utf8_lossy(&body)));
        (code, v)
    }

    fn ok(&self, method: &str, path: &str, body: &[u8]) -> Value {
        let (code, v) = self.json(method, path, body);
        assert!((200..300).contains(&code), "{method} {path}: {code} {v}");
        v
    }

    /// A bad request: `code` and a JSON error containing `says`.
    fn refused(&self, method: &str, path: &str, body: &[u8], code: u16, says: &str) {
        let (got, v) = self.json(method, path, body);
        assert_eq!(got, code, "{method} {path}: {v}");
        let why = v["error"].as_str().unwrap_or_default();
        assert!(why.contains(says), "{method} {path}: {why:?} does not say {says:?}");
    }
}

/// The events of `/api/events`, read on a thread: `(name, data)`.
fn events(addr: &str, bearer: &str) -> mpsc::Receiver<(String, Value)> {
    let (tx, rx) = mpsc::sync_channel(1024);
    let agent: ureq::Agent = ureq::Agent::config_builder().build().into();
    let res = agent
        .get(&format!("http://{addr}/api/events"))
        .header("Authorization", bearer)
        .call()
        .unwrap();
    assert_eq!(
        res.headers().get("content-type").and_then(|v| v.to_str().ok()),
        Some("text/event-stream")
    );
    std::thread::spawn(move || {
        let reader = std::io::BufReader::new(res.into_body().into_reader());
        let mut name = String::new();
        for line in reader.lines().map_while(Result::ok) {
            if let Some(n) = line.strip_prefix("event: ") {
                name = n.to_owned();
            } else if let Some(d) = line.strip_prefix("data: ") {
                let v = serde_json::from_str(d).unwrap_or(Value::Null);
                if tx.send((name.clone(), v)).is_err() {
                    return;
                }
            }
        }
    });
    rx
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_job_goes_through_the_http_api_from_upload_to_results() {
    let dir = tempfile::tempdir().unwrap();
    let (net, at, token) = common::served(dir.path()).await;
    let api = Api {
        addr: at.to_string(),
        bearer: format!("Bearer {token}"),
    };
    let provider = net.providers[0].handle.id().to_string();
    tokio::task::spawn_blocking(move || drive(&api, &provider))
        .await
        .unwrap();
    net.shutdown().await;
}

fn drive(api: &Api, provider: &str) {
    let live = events(&api.addr, &api.bearer);
    let up = api.ok("POST", "/api/blobs", MANDELBROT);
    let module = up["id"].as_str().unwrap().to_owned();
    assert_eq!(up["bytes"], MANDELBROT.len());
    let job = r#"
[job]
name = "tiles"
module = "m.wasm"
args = ["{col}", "0", "3", "1", "48", "16", "32"]
replication = 2
quorum = 2
budget = "100000000"
[job.limits]
fuel = "1G"
[job.sweep]
col = ["0", "1", "2"]
"#;
    let req = json!({ "job": job, "files": { "m.wasm": module } });
    let (code, v) = api.json("POST", "/api/jobs", req.to_string().as_bytes());
    assert_eq!(code, 201, "{v}");
    let id = v["id"].as_str().unwrap().to_owned();

    // Followed by events to its end: a task event for each task.
    let (mut tasks, mut ended) = (0, None);
    while ended.is_none() {
        let (name, data) = live.recv_timeout(Duration::from_secs(120)).expect("no event");
        assert_eq!(Some(name.as_str()), data["type"].as_str(), "{data}");
        if data["job"] == id.as_str() {
            match name.as_str() {
                "task" => tasks += usize::from(data["accepted"] == true),
                "ended" => ended = Some(data["state"].clone()),
                _ => {}
            }
        }
    }
    assert_eq!(ended, Some(json!("done")));
    assert_eq!(tasks, 3, "one accepted-task event per task");

    let view = api.ok("GET", &format!("/api/jobs/{id}"), b"");
    assert_eq!(view["job"]["state"], "done");
    assert_eq!(view["tasks"].as_array().unwrap().len(), 3);
    let prefix = &id[..6];
    assert_eq!(
        api.ok("GET", &format!("/api/jobs/{prefix}"), b"")["job"]["id"],
        id.as_str()
    );
    let jobs = api.ok("GET", "/api/jobs", b"");
    assert!(jobs.as_array().unwrap().iter().any(|j| j["id"] == id.as_str()));

    // Each task's outputs, equal to its accepted result.
    for t in view["tasks"].as_array().unwrap() {
        let i = t["index"].as_u64().unwrap();
        let (code, raw) = api.call("GET", &format!("/api/blobs/{}", t["result"].as_str().unwrap()), b"");
        assert_eq!(code, 200);
        let result = TaskResult::decode(&raw).unwrap();
        let out = api.ok("GET", &format!("/api/jobs/{id}/tasks/{i}"), b"");
        assert_eq!(out["exit_code"], 0, "{out}");
        let name = format!("tile-{i}-0.ppm");
        assert_eq!(
            out["files"],
            json!([{ "path": name, "bytes": result.files[0].data.len() }])
        );
        let (code, bytes) = api.call("GET", &format!("/api/jobs/{id}/tasks/{i}/files/{name}"), b"");
        assert_eq!(code, 200);
        assert_eq!(bytes, result.files[0].data);
        assert!(bytes.starts_with(b"P6"));
        let (code, stdout) = api.call("GET", &format!("/api/jobs/{id}/tasks/{i}/stdout"), b"");
        assert_eq!((code, stdout), (200, result.stdout));
    }

    // The providers that did the work, with their stake and this node's
    // record of them; the peers.
    let providers = api.ok("GET", "/api/providers", b"");
    let providers = providers.as_array().unwrap();
    assert_eq!(providers.len(), 2, "{providers:?}");
    let agreed: u64 = providers.iter().map(|p| p["agreed"].as_u64().unwrap()).sum();
    assert_eq!(agreed, 6, "3 tasks, 2 agreeing replicas each: {providers:?}");
    assert!(providers.iter().all(|p| p["bonded"].is_string()), "{providers:?}");
    let peers = api.ok("GET", "/api/peers", b"");
    let peers = peers.as_array().unwrap();
    assert!(peers.iter().any(|p| p["node"] == provider), "{peers:?}");

    // The ledger: the job's escrow is in a block, and the explorer shows it.
    let head = api.ok("GET", "/api/ledger", b"");
    let height = head["height"].as_u64().unwrap();
    assert!(height > 0 && head["validator"] == true, "{head}");
    let blocks = api.ok("GET", "/api/ledger/blocks?limit=100", b"");
    let blocks = blocks.as_array().unwrap();
    assert_eq!(blocks[0]["height"], height, "newest first");
    let escrow = blocks
        .iter()
        .flat_map(|b| b["txs"].as_array().unwrap())
        .find(|t| t["kind"] == "open_escrow")
        .expect("the job's escrow is in a block")
        .clone();
    let found = api.ok(
        "GET",
        &format!("/api/ledger/txs/{}", escrow["id"].as_str().unwrap()),
        b"",
    );
    assert_eq!(found["what"], escrow["what"]);
    let older = api.ok("GET", &format!("/api/ledger/blocks?before={height}&limit=2"), b"");
    assert_eq!(older[0]["height"], height - 1);

    // The wallet: a transfer to a provider, waited for, shows on its account.
    let before = api.ok("GET", &format!("/api/ledger/accounts/{provider}"), b"")["balance"]
        .as_str()
        .unwrap()
        .parse::<u128>()
        .unwrap();
    let sent = api.ok(
        "POST",
        "/api/wallet/transfer",
        json!({ "to": provider, "amount": "1234", "wait": true })
            .to_string()
            .as_bytes(),
    );
    assert!(sent["height"].as_u64().unwrap() > height, "{sent}");
    let after = api.ok("GET", &format!("/api/ledger/accounts/{provider}?history=5"), b"");
    assert_eq!(
        after["balance"].as_str().unwrap().parse::<u128>().unwrap(),
        before + 1234
    );
    assert_eq!(after["history"][0]["kind"], "transfer", "{after}");
    // Its balance over time: after each block that touched it, the last
    // one the transfer's.
    let points = after["balances"].as_array().unwrap();
    assert!(points.len() >= 2, "{after}");
    let last = &points[points.len() - 1];
    assert_eq!(last["balance"], after["balance"]);
    assert_eq!(last["height"], sent["height"]);
    assert_eq!(points[points.len() - 2]["balance"], before.to_string());
    let mine = api.ok("GET", "/api/wallet", b"");
    assert_eq!(mine["history"][0]["id"], sent["tx"]);

    // A job no provider can take waits; cancelled, it ends failed, its
    // escrow settled; cancelled again, it has ended already.
    let stuck =
        "[job]\nname = \"stuck\"\nmodule = \"m.wasm\"\nbudget = \"1000000\"\n[job.constraints]\narch = \"riscv64\"\n";
    let req = json!({ "job": stuck, "files": { "m.wasm": module } });
    let (code, v) = api.json("POST", "/api/jobs", req.to_string().as_bytes());
    assert_eq!(code, 201, "{v}");
    let stuck = v["id"].as_str().unwrap().to_owned();
    let cancelled = api.ok("POST", &format!("/api/jobs/{}/cancel", &stuck[..8]), b"");
    assert_eq!(cancelled["id"], stuck.as_str());
    loop {
        let (name, data) = live.recv_timeout(Duration::from_secs(60)).expect("no ended event");
        if name == "ended" && data["job"] == stuck.as_str() {
            assert_eq!(data["state"], "failed", "{data}");
            break;
        }
    }
    let view = api.ok("GET", &format!("/api/jobs/{stuck}"), b"");
    assert_eq!(view["job"]["reason"], sharegrid_node::CANCELLED, "{view}");
    // Its escrow is settled (nothing was accepted: all refunded) by the
    // payment task, a block or two later: an event says so.
    loop {
        let (name, data) = live.recv_timeout(Duration::from_secs(60)).expect("no settled event");
        if data["job"] != stuck.as_str() {
            continue;
        }
        match name.as_str() {
            "settled" => break,
            "settle_failed" => assert_eq!(data["retrying"], true, "{data}"),
            _ => {}
        }
    }
    assert_eq!(
        api.ok("GET", &format!("/api/jobs/{stuck}"), b"")["payment"]["settled"],
        true
    );
    api.refused(
        "POST",
        &format!("/api/jobs/{stuck}/cancel"),
        b"",
        409,
        "has ended already",
    );
    api.refused("POST", "/api/jobs/ffffffffffffffff/cancel", b"", 404, "no job");
    let jobs = api.ok("GET", "/api/jobs", b"");

    refusals(api, &module, &id);
    let after_refusals = api.ok("GET", "/api/jobs", b"");
    assert_eq!(after_refusals, jobs, "refused requests changed nothing");
}

/// Every kind of bad request: a JSON error naming what is wrong.
fn refusals(api: &Api, module: &str, job: &str) {
    let submit = |job: &str, files: Value| json!({ "job": job, "files": files }).to_string();
    let ok_file = json!({ "m.wasm": module });
    api.refused("POST", "/api/jobs", b"{not json", 400, "not this request's JSON");
    api.refused(
        "POST",
        "/api/jobs",
        br#"{"job": "[job]", "extra": 1}"#,
        400,
        "unknown field",
    );
    let unparsable = submit("[job\nname = 1", ok_file.clone());
    api.refused("POST", "/api/jobs", unparsable.as_bytes(), 400, "job");
    let unnamed = submit("[job]\nmodule = \"other.wasm\"\n", ok_file.clone());
    api.refused(
        "POST",
        "/api/jobs",
        unnamed.as_bytes(),
        400,
        "job.module: \"other.wasm\" is not among",
    );
    let absent = submit("[job]\nmodule = \"m.wasm\"\n", json!({ "m.wasm": "ab".repeat(32) }));
    api.refused(
        "POST",
        "/api/jobs",
        absent.as_bytes(),
        400,
        "is not in the node's blob store",
    );
    let text = api.ok("POST", "/api/blobs", b"not a module")["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let not_wasm = submit("[job]\nmodule = \"m.bin\"\n", json!({ "m.bin": text }));
    api.refused(
        "POST",
        "/api/jobs",
        not_wasm.as_bytes(),
        400,
        "is not a WebAssembly module",
    );
    let bad_terms = submit("[job]\nmodule = \"m.wasm\"\nreplication = 2\nquorum = 3\n", ok_file);
    api.refused("POST", "/api/jobs", bad_terms.as_bytes(), 400, "quorum");
    api.refused("GET", "/api/jobs/ffffffffffffffff", b"", 404, "no job");
    api.refused("GET", &format!("/api/jobs/{job}/tasks/x"), b"", 400, "index");
    api.refused("GET", &format!("/api/jobs/{job}/tasks/99"), b"", 404, "no task 99");
    api.refused(
        "GET",
        &format!("/api/jobs/{job}/tasks/0/files/nope.ppm"),
        b"",
        404,
        "no file",
    );
    api.refused("GET", "/api/blobs/xyz", b"", 400, "id");
    api.refused(
        "GET",
        &format!("/api/blobs/{}", "cd".repeat(32)),
        b"",
        404,
        "not in this node's blob store",
    );
    api.refused("GET", "/api/ledger/blocks?limit=lots", b"", 400, "limit");
    api.refused("GET", "/api/ledger/accounts/me", b"", 400, "id");
    api.refused(
        "GET",
        &format!("/api/ledger/txs/{}", "ef".repeat(32)),
        b"",
        404,
        "in no block",
    );
    let broke = json!({ "to": "ab".repeat(32), "amount": "1000000000000000000000" }).to_string();
    api.refused("POST", "/api/wallet/transfer", broke.as_bytes(), 400, "");
    api.refused(
        "POST",
        "/api/wallet/transfer",
        br#"{"to": "ab", "amount": "1"}"#,
        400,
        "to",
    );
    api.refused("POST", "/api/wallet/faucet", b"", 400, "validator");
    api.refused("GET", "/api/nothing", b"", 404, "no such endpoint");
    // Without the token, with a wrong one, across origins, by a foreign Host.
    let (code, _) = http_request(&api.addr, "GET", "/api/jobs", &[], b"").unwrap();
    assert_eq!(code, 401);
    let (code, _) = http_request(&api.addr, "GET", "/api/jobs", &[("Authorization", "Bearer nope")], b"").unwrap();
    assert_eq!(code, 401);
    let cross = [
        ("Authorization", api.bearer.as_str()),
        ("Origin", "http://evil.example"),
    ];
    let (code, _) = http_request(&api.addr, "POST", "/api/wallet/faucet", &cross, b"").unwrap();
    assert_eq!(code, 403);
    let rebound = [("Authorization", api.bearer.as_str()), ("Host", "evil.example")];
    let (code, _) = http_request(&api.addr, "GET", "/api/jobs", &rebound, b"").unwrap();
    assert_eq!(code, 403);
    // The dashboard needs no token; the document neither.
    let (code, page) = http_request(&api.addr, "GET", "/", &[], b"").unwrap();
    assert_eq!(code, 200);
    assert!(String::from_utf8_lossy(&page).contains("/app.js"));
    let (code, doc) = http_request(&api.addr, "GET", "/api/openapi.json", &[], b"").unwrap();
    assert_eq!(code, 200);
    let doc: Value = serde_json::from_slice(&doc).unwrap();
    assert_eq!(doc, serde_json::to_value(sharegrid_node::http::document()).unwrap());
}

/// The Python client (`clients/python`, standard library only) against a
/// real node: it names every operation of the document, and its example
/// submits a job, waits for it and downloads every tile.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_python_client_covers_the_document_and_its_example_gets_results() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let client = root.join("clients/python");
    let check = std::process::Command::new("python3")
        .arg(client.join("check_openapi.py"))
        .arg(root.join("docs/openapi.json"))
        .output()
        .unwrap();
    assert!(
        check.status.success(),
        "the client and the document differ:\n{}{}",
        String::from_utf8_lossy(&check.stdout),
        String::from_utf8_lossy(&check.stderr)
    );

    let dir = tempfile::tempdir().unwrap();
    let (net, at, token) = common::served(dir.path()).await;
    let out = dir.path().join("tiles");
    let (module, tiles) = (root.join("guests/wasm/mandelbrot.wasm"), out.clone());
    let run = tokio::task::spawn_blocking(move || {
        std::process::Command::new("python3")
            .arg(client.join("example.py"))
            .args(["--url", &format!("http://{at}"), "--token", &token])
            .arg("--module")
            .arg(module)
            .arg("--out")
            .arg(tiles)
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let said = String::from_utf8_lossy(&run.stdout);
    assert!(
        run.status.success(),
        "the example failed:\n{said}\n{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let v: Value = serde_json::from_str(said.trim()).unwrap();
    assert_eq!(v["state"], "done", "{v}");
    assert_eq!(v["tasks"], 4, "{v}");
    // Each tile it wrote is the accepted result's file, byte for byte.
    let store = &net.requestor.store;
    let id = v["job"].as_str().unwrap();
    let rows = store.tasks(&id.parse().unwrap()).unwrap();
    assert_eq!(rows.len(), 4);
    for t in rows {
        let raw = net.requestor.node.blobs.get(&t.result.unwrap()).unwrap().unwrap();
        let result = TaskResult::decode(&raw).unwrap();
        let f = &result.files[0];
        assert_eq!(std::fs::read(out.join(&f.path)).unwrap(), f.data, "{}", f.path);
    }
    net.shutdown().await;
}
