//! Jobs end to end on real nodes on 127.0.0.1: the requestor engine
//! (scheduler, verification, SQLite job store) against provider daemons
//! running the real sandbox.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, HashSet};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use sharegrid_core::{Amount, Arch, Determinism, Fuel, GigafuelPerSec, Limits, NodeKey, TaskResult};
use sharegrid_net::NetConfig;
use sharegrid_node::{
    AgentOptions, BlobStore, FixedProbe, JobRow, JobStore, JobSubmission, MachineInfo, NodeEvent, NodeHandle,
    NodeOptions, Provider, ProviderPolicy, Requestor, State, start, task_id,
};
use sharegrid_sandbox::{Sandbox, SandboxConfig, Task};

fn sandbox() -> Arc<Sandbox> {
    static S: OnceLock<Arc<Sandbox>> = OnceLock::new();
    S.get_or_init(|| Arc::new(Sandbox::new(SandboxConfig::default()).unwrap()))
        .clone()
}

fn mandelbrot() -> Vec<u8> {
    std::fs::read(format!(
        "{}/../../guests/wasm/mandelbrot.wasm",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap()
}

fn net() -> NetConfig {
    NetConfig {
        listen: vec!["/ip4/127.0.0.1/tcp/0".parse().unwrap()],
        departure_timeout: Duration::from_secs(2),
        ..NetConfig::default()
    }
}

/// A provider emulating `speed` Gfuel/s with `slots`, lying if `faulty`.
async fn provider(dir: &std::path::Path, seed: u8, speed: f64, slots: u32, faulty: bool) -> NodeHandle {
    let key = Arc::new(NodeKey::from_seed([seed; 32]));
    let home = dir.join(format!("p{seed}"));
    let blobs = BlobStore::open(home.join("blobs"), 1 << 30).unwrap();
    let policy = ProviderPolicy {
        enabled: true,
        slots,
        offer_interval_secs: 1,
        shutdown_grace_secs: 0,
        ..ProviderPolicy::default()
    };
    let mut p = Provider::new(key.clone(), policy, sandbox(), blobs.clone()).emulating_speed(GigafuelPerSec(speed));
    if faulty {
        p = p.faulty();
    }
    start(NodeOptions {
        key,
        net: net(),
        blobs,
        outputs: BlobStore::open(home.join("outputs"), 1 << 30).unwrap(),
        agent: Some(AgentOptions {
            provider: p,
            machine: MachineInfo {
                arch: Arch::host(),
                cores: slots,
                memory_bytes: 8 << 30,
            },
            speed: GigafuelPerSec(speed),
            probe: Arc::new(FixedProbe::default()),
            max_fetch_bytes: 1 << 30,
            earnings: None,
        }),
        ledger: None,
    })
    .await
    .unwrap()
}

struct Req {
    node: NodeHandle,
    engine: Requestor,
    blobs: BlobStore,
    store: JobStore,
}

async fn requestor(dir: &std::path::Path, providers: &[&NodeHandle]) -> Req {
    let key = Arc::new(NodeKey::from_seed([200; 32]));
    let blobs = BlobStore::open(dir.join("r/blobs"), 1 << 30).unwrap();
    let node = start(NodeOptions {
        key,
        net: net(),
        blobs: blobs.clone(),
        outputs: BlobStore::open(dir.join("r/outputs"), 1 << 30).unwrap(),
        agent: None,
        ledger: None,
    })
    .await
    .unwrap();
    for p in providers {
        let addr = p.listen_addrs().await[0].clone().with_p2p(p.peer_id()).unwrap();
        node.dial(addr).await.unwrap();
    }
    let deadline = Instant::now() + Duration::from_secs(20);
    while node.offers().await.len() < providers.len() {
        assert!(Instant::now() < deadline, "offers did not arrive");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let store = JobStore::open(&dir.join("r/node.db")).unwrap();
    let engine = Requestor::new(node.clone(), blobs.clone(), store.clone());
    Req {
        node,
        engine,
        blobs,
        store,
    }
}

/// A job of `cols × rows` small Mandelbrot tiles.
fn tiles(r: &Req, cols: u32, rows: u32, replication: u32) -> JobSubmission {
    let mut tasks = Vec::new();
    for c in 0..cols {
        for w in 0..rows {
            tasks.push([c, w, cols, rows, 320, 240, 256].iter().map(u32::to_string).collect());
        }
    }
    JobSubmission {
        name: "tiles".into(),
        module: r.blobs.put(&mandelbrot()).unwrap(),
        stdin: r.blobs.put(b"").unwrap(),
        inputs: vec![],
        limits: Limits {
            fuel: Fuel(5_000_000_000),
            ..Limits::default()
        },
        mode: Determinism::Native,
        replication,
        quorum: replication,
        price_ceiling: Amount(100),
        budget: Amount(u128::MAX / 4),
        deadline_secs: Some(300),
        arch: None,
        min_memory: 0,
        min_speed: 0.0,
        credibility: None,
        tasks,
    }
}

async fn wait_done(store: &JobStore, id: &str) -> JobRow {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let j = store.job(id).unwrap().unwrap();
        if j.state != State::Running {
            return j;
        }
        assert!(Instant::now() < deadline, "job {id} did not finish: {j:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Every accepted result is the canonical encoding of a local run of the task.
fn check_against_local(r: &Req, id: &str, sub: &JobSubmission) {
    for t in r.store.tasks(id).unwrap() {
        assert_eq!(t.state, State::Done, "task {} {:?}", t.index, t.reason);
        let bytes = r.blobs.get(&t.result.unwrap()).unwrap().unwrap();
        let local = sandbox()
            .run(&Task {
                id: task_id(id, t.index),
                module: mandelbrot().into(),
                args: sub.tasks[t.index].clone(),
                stdin: Arc::from(&b""[..]),
                inputs: BTreeMap::new(),
                limits: sub.limits,
                mode: sub.mode,
            })
            .unwrap();
        assert_eq!(TaskResult::decode(&bytes).unwrap(), local.result);
        assert_eq!(t.fuel, Some(local.fuel));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replicated_job_completes_and_a_liar_is_never_believed() {
    let dir = tempfile::tempdir().unwrap();
    let a = provider(dir.path(), 1, 2.0, 2, false).await;
    let b = provider(dir.path(), 2, 1.0, 2, false).await;
    let c = provider(dir.path(), 3, 1.0, 1, false).await;
    let liar = provider(dir.path(), 4, 8.0, 2, true).await;
    let r = requestor(dir.path(), &[&a, &b, &c, &liar]).await;
    let sub = tiles(&r, 4, 3, 2);
    let id = r.engine.submit(sub.clone()).await.unwrap();
    let job = wait_done(&r.store, &id).await;
    assert_eq!((job.state, job.accepted, job.failed), (State::Done, 12, 0));
    check_against_local(&r, &id, &sub);

    // The liar (the fastest, so it got work first) lost every vote; its
    // signed receipts are kept as evidence and it lost reputation.
    let liar_id = liar.id().to_string();
    let mut dissent = 0;
    for t in r.store.tasks(&id).unwrap() {
        for k in r.store.receipts(&t.id).unwrap() {
            let receipt: sharegrid_core::Receipt =
                sharegrid_core::decode_capped::<sharegrid_core::Signed>(&k.signed, 1 << 16)
                    .unwrap()
                    .open(1 << 16)
                    .unwrap();
            assert_eq!(receipt.provider.to_string(), k.provider);
            if k.provider == liar_id {
                assert_eq!(k.verdict, "dissent");
                dissent += 1;
            } else {
                assert_ne!(k.verdict, "dissent");
            }
        }
    }
    assert!(dissent >= 1, "the liar's receipts are kept");
    let rep = r.store.reputation().unwrap();
    assert!(rep.get(&liar.id()).disagreed >= 1);
    assert_eq!(rep.get(&a.id()).disagreed, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_impossible_job_fails_fast_saying_why() {
    let dir = tempfile::tempdir().unwrap();
    let a = provider(dir.path(), 5, 1.0, 1, false).await;
    let r = requestor(dir.path(), &[&a]).await;
    let mut sub = tiles(&r, 1, 1, 1);
    sub.min_memory = 64 << 30; // no provider gives 64 GiB
    let started = Instant::now();
    let id = r.engine.submit(sub).await.unwrap();
    let job = wait_done(&r.store, &id).await;
    assert_eq!(job.state, State::Failed);
    let reason = job.reason.unwrap();
    assert_eq!(reason, "no provider qualifies: 1 provider: 1 lack 64 GiB memory");
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "within the no-match grace period"
    );
}

/// A provider killed mid-job (its whole runtime dropped): its tasks go elsewhere.
#[test]
fn a_job_survives_a_provider_killed_mid_job() {
    let dir = tempfile::tempdir().unwrap();
    let (up_tx, up_rx) = std::sync::mpsc::sync_channel(1);
    let (kill_tx, kill_rx) = tokio::sync::oneshot::channel::<()>();
    let path = dir.path().to_path_buf();
    let victim_thread = std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let v = provider(&path, 6, 4.0, 2, false).await;
            up_tx.send(v.clone()).unwrap();
            let _ = kill_rx.await;
        });
        // Dropping the runtime drops the node mid-task: no goodbye.
        rt.shutdown_background();
    });
    let victim = up_rx.recv().unwrap();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let a = provider(dir.path(), 7, 0.5, 2, false).await;
        let b = provider(dir.path(), 8, 0.5, 2, false).await;
        let r = requestor(dir.path(), &[&a, &b, &victim]).await;
        let mut events = victim.subscribe();
        let sub = tiles(&r, 4, 3, 2);
        let id = r.engine.submit(sub.clone()).await.unwrap();
        // Kill it once it has run something and is running more.
        loop {
            if let Ok(NodeEvent::Ran { .. }) = events.recv().await {
                break;
            }
        }
        kill_tx.send(()).unwrap();
        let job = wait_done(&r.store, &id).await;
        assert_eq!((job.state, job.accepted), (State::Done, 12));
        check_against_local(&r, &id, &sub);
    });
    victim_thread.join().unwrap();
}

/// A requestor stopped mid-job resumes from its store and never runs an
/// accepted task again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_requestor_resumes_without_rerunning_accepted_tasks() {
    let dir = tempfile::tempdir().unwrap();
    let a = provider(dir.path(), 9, 0.3, 2, false).await;
    let b = provider(dir.path(), 10, 0.3, 2, false).await;
    let mut ran = (a.subscribe(), b.subscribe());
    let r = requestor(dir.path(), &[&a, &b]).await;
    let sub = tiles(&r, 4, 4, 2);
    let id = r.engine.submit(sub.clone()).await.unwrap();
    // Stop the requestor's node once a few tasks are accepted.
    loop {
        let j = r.store.job(&id).unwrap().unwrap();
        if j.accepted >= 3 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    r.node.shutdown().await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let before: HashSet<_> = r
        .store
        .tasks(&id)
        .unwrap()
        .into_iter()
        .filter(|t| t.state == State::Done)
        .map(|t| t.id)
        .collect();
    assert!(before.len() >= 3 && before.len() < 16, "{}", before.len());
    drop(r);
    // Forget what ran before the restart.
    while ran.0.try_recv().is_ok() || ran.1.try_recv().is_ok() {}

    let r2 = requestor(dir.path(), &[&a, &b]).await;
    assert_eq!(r2.engine.resume_all().unwrap(), 1);
    let job = wait_done(&r2.store, &id).await;
    let failures: Vec<_> = r2
        .store
        .tasks(&id)
        .unwrap()
        .into_iter()
        .filter_map(|t| t.reason)
        .collect();
    assert_eq!((job.state, job.accepted), (State::Done, 16), "{failures:?}");
    check_against_local(&r2, &id, &sub);
    let mut rerun = Vec::new();
    for rx in [&mut ran.0, &mut ran.1] {
        while let Ok(ev) = rx.try_recv() {
            if let NodeEvent::Ran { task, .. } = ev
                && before.contains(&task)
            {
                rerun.push(task);
            }
        }
    }
    assert!(rerun.is_empty(), "accepted tasks ran again: {rerun:?}");
}
