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

mod common;

use std::path::Path;
use std::process::Command;

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
    let (net, at, token) = common::served(dir.path()).await;
    // A finished job, so that listings and the ledger hold something.
    let r = &net.requestor;
    let tasks = (0..2)
        .map(|c| [c, 0, 2, 1, 32, 16, 16].iter().map(u32::to_string).collect())
        .collect();
    let id = r.engine.submit(common::tile_job(&r.node.blobs, tasks)).await.unwrap();
    r.engine.wait(&id).await.unwrap();

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
