//! The HTTP API against its own OpenAPI document, by schemathesis (PyPI,
//! pinned in `tests/api/requirements.txt`, installed by `tests/api/setup`):
//! generated requests, valid and not, for every operation of
//! `docs/openapi.json` on a real node with a ledger, providers and a
//! finished job. It must find no 5xx, no answer that breaks the document
//! (status, content type, schema), no request the document forbids that
//! the server takes, and no operation that works without the token.
//!
//! Left out: the event stream (it never ends), stopping the node (it
//! would stop the test; `sharegrid stop` is tested), and the check that every
//! schema-valid request succeeds — the document cannot say what the ledger
//! allows (a transfer over the balance) or what a job file must hold, and
//! the server rightly refuses those with 400 and a reason.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;

use sharegrid_core::{Amount, Determinism, Fuel, Limits};
use sharegrid_node::JobSubmission;
use sharegrid_node::testnet::{LedgerSpec, ProviderSpec, Testnet};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn schemathesis_finds_no_server_error_and_no_answer_off_the_document() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let setup = Command::new(root.join("tests/api/setup")).output().unwrap();
    assert!(
        setup.status.success(),
        "tests/api/setup failed:\n{}",
        String::from_utf8_lossy(&setup.stderr)
    );
    let st = String::from_utf8_lossy(&setup.stdout).trim().to_owned();

    let dir = tempfile::tempdir().unwrap();
    let net = Testnet::builder(dir.path())
        .provider(ProviderSpec::new("a", 1.0, 2))
        .provider(ProviderSpec::new("b", 1.0, 2))
        .ledger(LedgerSpec::default())
        .start()
        .await
        .unwrap();
    // A finished job, so that listings and the ledger hold something.
    let r = &net.requestor;
    let module = r
        .node
        .blobs
        .put(include_bytes!("../../../guests/wasm/mandelbrot.wasm"))
        .unwrap();
    let sub = JobSubmission {
        name: "tiles".into(),
        module,
        stdin: r.node.blobs.put(b"").unwrap(),
        inputs: vec![],
        limits: Limits {
            fuel: Fuel(1_000_000_000),
            ..Limits::default()
        },
        mode: Determinism::Native,
        replication: 2,
        quorum: 2,
        price_ceiling: Amount(100_000),
        budget: Amount(100_000_000),
        deadline_secs: Some(300),
        wait_for_providers_secs: None,
        arch: None,
        min_memory: 0,
        min_speed: 0.0,
        credibility: None,
        min_stake: Amount(0),
        tasks: (0..2)
            .map(|c| {
                vec![
                    c.to_string(),
                    "0".into(),
                    "2".into(),
                    "1".into(),
                    "32".into(),
                    "16".into(),
                    "16".into(),
                ]
            })
            .collect(),
        launch: Default::default(),
        mounts: Vec::new(),
    };
    let id = r.engine.submit(sub).await.unwrap();
    r.engine.wait(&id).await.unwrap();

    let (at, token) = r.serve_http(SocketAddr::from(([127, 0, 0, 1], 0))).await.unwrap();
    let doc = root.join("docs/openapi.json");
    let work = dir.path().to_path_buf();
    let out = tokio::task::spawn_blocking(move || {
        Command::new(st)
            // Its cache of failures goes to the working directory: not the
            // source tree.
            .current_dir(work)
            .arg("run")
            .arg(doc)
            .args(["--url", &format!("http://{at}")])
            .args(["--header", &format!("Authorization: Bearer {token}")])
            .args(["--checks", "all", "--exclude-checks", "positive_data_acceptance"])
            .args(["--exclude-path", "/api/events", "--exclude-path", "/api/stop"])
            .args(["--phases", "examples,coverage,fuzzing", "--max-examples", "25"])
            // One worker and a fixed seed: the same requests every run
            // (with -w 2, CPython 3.11's AST compiler sometimes fails inside
            // hypothesis, an error of the tool and not of the API).
            .args(["--workers", "1", "--seed", "20261201"])
            .env("NO_COLOR", "1")
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "schemathesis found problems:\n{said}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(said.contains("25 passed"), "every operation was tested:\n{said}");
    net.shutdown().await;
}
