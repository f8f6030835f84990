//! Jobs end to end on real nodes on 127.0.0.1: the requestor engine
//! (scheduler, verification, SQLite job store) against provider daemons
//! running the real sandbox, built with the shared harness
//! (`sharegrid_node::testnet`). Every wait is on an event.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, HashSet};
use std::sync::{Arc, OnceLock};

use sharegrid_core::{Amount, Determinism, Fuel, JobId, Limits, NodeKey, TaskResult};
use sharegrid_node::testnet::{self, ProviderSpec, TestRequestor, Testnet, wait_for};
use sharegrid_node::{JobEvent, JobRow, JobSubmission, NodeEvent, State};
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

/// A job of `cols × rows` small Mandelbrot tiles.
fn tiles(r: &TestRequestor, cols: u32, rows: u32, replication: u32) -> JobSubmission {
    let mut tasks = Vec::new();
    for c in 0..cols {
        for w in 0..rows {
            tasks.push([c, w, cols, rows, 320, 240, 256].iter().map(u32::to_string).collect());
        }
    }
    JobSubmission {
        min_stake: Amount(0),
        launch: Default::default(),
        mounts: Vec::new(),
        name: "tiles".into(),
        module: r.node.blobs.put(&mandelbrot()).unwrap(),
        stdin: r.node.blobs.put(b"").unwrap(),
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
        wait_for_providers_secs: None,
        arch: None,
        min_memory: 0,
        min_speed: 0.0,
        credibility: None,
        tasks,
    }
}

async fn wait_done(r: &TestRequestor, id: &JobId) -> JobRow {
    r.engine.wait(id).await.unwrap().unwrap()
}

/// Every accepted result is the canonical encoding of a local run of the task.
fn check_against_local(r: &TestRequestor, id: &JobId, sub: &JobSubmission) {
    for t in r.store.tasks(id).unwrap() {
        assert_eq!(t.state, State::Done, "task {} {:?}", t.index, t.reason);
        let bytes = r.node.blobs.get(&t.result.unwrap()).unwrap().unwrap();
        let local = sandbox()
            .run(&Task {
                id: id.task(t.index),
                module: mandelbrot().into(),
                args: sub.tasks[t.index].clone(),
                stdin: Arc::from(&b""[..]),
                inputs: BTreeMap::new(),
                limits: sub.limits,
                mode: sub.mode,
                launch: Default::default(),
                mounts: Default::default(),
            })
            .unwrap();
        assert_eq!(TaskResult::decode(&bytes).unwrap(), local.result);
        assert_eq!(t.fuel, Some(local.fuel));
    }
}

fn net(dir: &std::path::Path) -> testnet::TestnetBuilder {
    Testnet::builder(dir).sandbox(sandbox())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replicated_job_completes_and_a_liar_is_never_believed() {
    let dir = tempfile::tempdir().unwrap();
    let net = net(dir.path())
        .provider(ProviderSpec::new("a", 2.0, 2))
        .provider(ProviderSpec::new("b", 1.0, 2))
        .provider(ProviderSpec::new("c", 1.0, 1))
        .provider(ProviderSpec::new("liar", 8.0, 2).faulty())
        .start()
        .await
        .unwrap();
    let r = &net.requestor;
    let sub = tiles(r, 4, 3, 2);
    let id = r.engine.submit(sub.clone()).await.unwrap();
    let job = wait_done(r, &id).await;
    assert_eq!((job.state, job.accepted, job.failed), (State::Done, 12, 0));
    check_against_local(r, &id, &sub);

    // The liar (the fastest, so it got work first) lost every vote; its
    // signed receipts are kept as evidence and it lost reputation.
    let liar = net.provider("liar").unwrap();
    let liar_id = liar.key.id().to_string();
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
    assert!(rep.get(&liar.key.id()).disagreed >= 1);
    assert_eq!(rep.get(&net.provider("a").unwrap().key.id()).disagreed, 0);
    // The metrics counted what happened.
    let m = r.node.handle.metrics().encode();
    assert!(m.contains("sharegrid_tasks_accepted_total 12"), "{m}");
    assert!(m.contains("sharegrid_receipts_total{kind=\"dissent\"}"), "{m}");
    net.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_impossible_job_that_asks_to_fail_fast_does_saying_why() {
    let dir = tempfile::tempdir().unwrap();
    let net = net(dir.path())
        .provider(ProviderSpec::new("a", 1.0, 1))
        .start()
        .await
        .unwrap();
    let r = &net.requestor;
    let mut sub = tiles(r, 1, 1, 1);
    sub.min_memory = 64 << 30; // no provider gives 64 GiB
    sub.wait_for_providers_secs = Some(1);
    let id = r.engine.submit(sub).await.unwrap();
    let job = wait_done(r, &id).await;
    assert_eq!(job.state, State::Failed);
    assert_eq!(
        job.reason.unwrap(),
        "no provider qualifies: 1 provider: 1 lack 64 GiB memory"
    );
    net.shutdown().await;
}

/// A job that comes through the API (not a job file) is held to the job
/// file's rules: refused with the field, and nothing is stored.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_breaking_the_job_file_rules_is_refused_wherever_it_comes_from() {
    let dir = tempfile::tempdir().unwrap();
    let net = net(dir.path()).start().await.unwrap();
    let r = &net.requestor;
    let good = tiles(r, 1, 1, 1);
    let refused = |sub: JobSubmission| async { r.engine.submit(sub).await.unwrap_err().to_string() };
    let mut q = good.clone();
    q.quorum = 3;
    assert_eq!(
        refused(q).await,
        "job.quorum: 3 must be between 1 and the replication (1)"
    );
    let mut input = good.clone();
    input.inputs = vec![("../../identity.key".into(), input.stdin)];
    assert!(refused(input).await.starts_with("job.inputs: \"../../identity.key\""));
    let mut stack = good.clone();
    stack.limits.stack_bytes = 1 << 40;
    assert!(
        refused(stack)
            .await
            .starts_with("job.stack: must be between 1 byte and")
    );
    let mut speed = good.clone();
    speed.min_speed = f64::NAN;
    assert_eq!(
        refused(speed).await,
        "job.min_speed: NaN is not a speed (Gfuel/s, 0 or more)"
    );
    assert!(r.store.jobs().unwrap().is_empty(), "nothing refused was stored");
    net.shutdown().await;
}

/// A provider's store of fetched inputs stays within its owner's bound:
/// jobs bringing new inputs push the least recently used out.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fetched_inputs_stay_within_the_providers_bound() {
    let dir = tempfile::tempdir().unwrap();
    let mut spec = ProviderSpec::new("a", 2.0, 1);
    spec.policy.max_input_store_bytes = 1 << 20;
    let net = net(dir.path()).provider(spec).start().await.unwrap();
    let r = &net.requestor;
    let provider = net.provider("a").unwrap();
    let mut events = provider.handle.subscribe();
    for i in 0..4u8 {
        let mut sub = tiles(r, 1, 1, 1);
        sub.inputs = vec![("data.bin".into(), r.node.blobs.put(&vec![i; 600 << 10]).unwrap())];
        let id = r.engine.submit(sub).await.unwrap();
        assert_eq!(wait_done(r, &id).await.state, State::Done);
    }
    // The store is brought within its bound after each of the four runs.
    let mut total = 0;
    for _ in 0..4 {
        total = wait_for(&mut events, "the input store shrunk after a run", |e| match e {
            NodeEvent::InputsShrunk { held_bytes, .. } => Some(*held_bytes),
            _ => None,
        })
        .await
        .unwrap();
    }
    assert!(total <= 1 << 20, "{total} bytes held");
    net.shutdown().await;
}

/// A job submitted while no provider is online waits (saying for what)
/// and runs once one joins.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_submitted_with_no_providers_completes_once_one_joins() {
    let dir = tempfile::tempdir().unwrap();
    let net = net(dir.path()).start().await.unwrap();
    let r = &net.requestor;
    let sub = tiles(r, 2, 1, 1);
    let mut jobs = r.engine.subscribe();
    let id = r.engine.submit(sub.clone()).await.unwrap();
    // The job says what it waits for.
    let waiting = wait_for(&mut jobs, "the job waiting for providers", |e| match e {
        JobEvent::Waiting { job, waiting } if *job == id => Some(waiting.clone()),
        _ => None,
    })
    .await
    .unwrap();
    assert_eq!(waiting.tasks, 2);
    assert_eq!(waiting.why, "no provider qualifies: no providers seen on the network");
    let key = Arc::new(NodeKey::from_seed([9; 32]));
    let late = testnet::start_provider(
        &dir.path().join("late"),
        key,
        &ProviderSpec::new("late", 2.0, 2),
        sandbox(),
        testnet::loopback(),
        None,
    )
    .await
    .unwrap();
    testnet::connect(&r.node.handle, &late).await.unwrap();
    let job = wait_done(r, &id).await;
    assert_eq!((job.state, job.accepted), (State::Done, 2), "{:?}", job.reason);
    check_against_local(r, &id, &sub);
    late.handle.shutdown().await;
    net.shutdown().await;
}

/// With no provider until its deadline, a job fails then, saying why.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_with_no_providers_until_its_deadline_fails_then_saying_why() {
    let dir = tempfile::tempdir().unwrap();
    let net = net(dir.path()).start().await.unwrap();
    let r = &net.requestor;
    let mut sub = tiles(r, 1, 1, 1);
    sub.deadline_secs = Some(2);
    let id = r.engine.submit(sub).await.unwrap();
    let job = wait_done(r, &id).await;
    assert_eq!(job.state, State::Failed);
    let reason = job.reason.unwrap();
    assert!(
        reason.starts_with("deadline passed with 0 of 1 tasks accepted; 1 tasks waited ")
            && reason.ends_with(" s for providers: no provider qualifies: no providers seen on the network"),
        "{reason}"
    );
    net.shutdown().await;
}

/// A node whose provider is on runs its own r = 1 job on itself: one
/// machine is enough to start.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_machine_runs_its_own_job_on_its_own_provider() {
    let dir = tempfile::tempdir().unwrap();
    let key = Arc::new(NodeKey::from_seed([7; 32]));
    let home = dir.path().join("solo");
    let node = testnet::start_provider(
        &home,
        key,
        &ProviderSpec::new("solo", 2.0, 2),
        sandbox(),
        testnet::loopback(),
        None,
    )
    .await
    .unwrap();
    let r = testnet::requestor(node, None).unwrap();
    // Its own offer is among those it sees, though no peer is connected.
    let offers = r.node.handle.wait_for_offers(1).await;
    assert_eq!(offers[0].provider, r.node.key.id());
    let mut ran = r.node.handle.subscribe();
    let sub = tiles(&r, 2, 2, 1);
    let id = r.engine.submit(sub.clone()).await.unwrap();
    let job = wait_done(&r, &id).await;
    assert_eq!((job.state, job.accepted), (State::Done, 4), "{:?}", job.reason);
    check_against_local(&r, &id, &sub);
    wait_for(&mut ran, "a run on the node's own provider", |e| {
        matches!(e, NodeEvent::Ran { .. }).then_some(())
    })
    .await
    .unwrap();
    // Its outputs were handed over locally and then dropped, as after a peer's fetch.
    wait_for(&mut ran, "an output dropped once fetched", |e| {
        matches!(e, NodeEvent::OutputDropped(_)).then_some(())
    })
    .await
    .unwrap();
    r.node.handle.shutdown().await;
}

/// A provider killed mid-job (its network loop gone at once, connections
/// dropped, no goodbye): its tasks go elsewhere.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_survives_a_provider_killed_mid_job() {
    let dir = tempfile::tempdir().unwrap();
    let net = net(dir.path())
        .provider(ProviderSpec::new("a", 0.5, 2))
        .provider(ProviderSpec::new("b", 0.5, 2))
        .provider(ProviderSpec::new("victim", 4.0, 2))
        .start()
        .await
        .unwrap();
    let r = &net.requestor;
    let victim = net.provider("victim").unwrap();
    let mut events = victim.handle.subscribe();
    let sub = tiles(r, 4, 3, 2);
    let id = r.engine.submit(sub.clone()).await.unwrap();
    // Kill it once it has run something and is running more.
    wait_for(&mut events, "a task run by the victim", |e| {
        matches!(e, NodeEvent::Ran { .. }).then_some(())
    })
    .await
    .unwrap();
    victim.handle.kill().await;
    let job = wait_done(r, &id).await;
    assert_eq!((job.state, job.accepted), (State::Done, 12));
    check_against_local(r, &id, &sub);
    net.shutdown().await;
}

/// A requestor stopped mid-job resumes from its store and never runs an
/// accepted task again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_requestor_resumes_without_rerunning_accepted_tasks() {
    let dir = tempfile::tempdir().unwrap();
    let net = net(dir.path())
        .provider(ProviderSpec::new("a", 0.3, 2))
        .provider(ProviderSpec::new("b", 0.3, 2))
        .start()
        .await
        .unwrap();
    let (a, b) = (&net.providers[0], &net.providers[1]);
    let mut ran = (a.handle.subscribe(), b.handle.subscribe());
    let r = &net.requestor;
    let mut jobs = r.engine.subscribe();
    let sub = tiles(r, 4, 4, 2);
    let id = r.engine.submit(sub.clone()).await.unwrap();
    // Stop the requestor's node once a few tasks are accepted.
    let mut accepted = 0;
    while accepted < 3 {
        wait_for(&mut jobs, "an accepted task", |e| {
            matches!(e, JobEvent::TaskEnded { accepted: true, .. }).then_some(())
        })
        .await
        .unwrap();
        accepted += 1;
    }
    // Returns once the node and all its tasks (the job's driver among them) stopped.
    r.node.handle.shutdown().await;
    let before: HashSet<_> = r
        .store
        .tasks(&id)
        .unwrap()
        .into_iter()
        .filter(|t| t.state == State::Done)
        .map(|t| t.id)
        .collect();
    assert!(before.len() >= 3 && before.len() < 16, "{}", before.len());
    // Forget what ran before the restart.
    while ran.0.try_recv().is_ok() || ran.1.try_recv().is_ok() {}

    // The same requestor (key and home) comes back.
    let key = Arc::new(NodeKey::from_seed([testnet::REQUESTOR_SEED; 32]));
    let node = testnet::start_plain(&r.node.home, "requestor", key, testnet::loopback(), None)
        .await
        .unwrap();
    let r2 = testnet::requestor(node, None).unwrap();
    for p in [a, b] {
        testnet::connect(&r2.node.handle, p).await.unwrap();
    }
    r2.node.handle.wait_for_offers(2).await;
    assert_eq!(r2.engine.resume_all().unwrap(), 1);
    let job = wait_done(&r2, &id).await;
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
    r2.node.handle.shutdown().await;
    net.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_cancel_acknowledged_before_a_crash_ends_the_job_after_the_restart() {
    let dir = tempfile::tempdir().unwrap();
    let net = net(dir.path())
        .provider(ProviderSpec::new("a", 1.0, 2))
        .start()
        .await
        .unwrap();
    let r = &net.requestor;
    // No provider is riscv64: the job waits.
    let mut sub = tiles(r, 2, 1, 1);
    sub.arch = Some(sharegrid_core::Arch::Riscv64);
    let id = r.engine.submit(sub).await.unwrap();
    r.node.handle.shutdown().await;
    // The cancel was recorded (what the API acknowledges), and the node
    // died before its driver heard of it.
    assert!(r.store.cancel(&id).unwrap());
    assert_eq!(r.store.job(&id.to_string()).unwrap().unwrap().state, State::Running);

    let key = Arc::new(NodeKey::from_seed([testnet::REQUESTOR_SEED; 32]));
    let node = testnet::start_plain(&r.node.home, "requestor", key, testnet::loopback(), None)
        .await
        .unwrap();
    let r2 = testnet::requestor(node, None).unwrap();
    assert_eq!(r2.engine.resume_all().unwrap(), 1);
    let job = wait_done(&r2, &id).await;
    assert_eq!(job.state, State::Failed);
    assert_eq!(job.reason.as_deref(), Some(sharegrid_node::CANCELLED));
    // Cancelling again: it has ended.
    let again = r2.engine.cancel(&id.to_string()).await;
    assert!(
        matches!(again, Err(sharegrid_node::CancelError::Ended(..))),
        "{again:?}"
    );
    r2.node.handle.shutdown().await;
    net.shutdown().await;
}

/// An assignment from `r` to `p` of pi with `inputs` (put in `r`'s
/// store), paid through no escrow (this network keeps no ledger); `salt`
/// makes its task id its own.
fn pi_with_inputs(
    r: &testnet::TestNode,
    p: &testnet::TestNode,
    inputs: &[(String, Vec<u8>)],
    salt: &[u8],
) -> sharegrid_core::Assignment {
    use sharegrid_core::{Assignment, PricePerGfuel, Program, TaskId, Terms};
    let module = std::fs::read(format!("{}/../../guests/wasm/pi.wasm", env!("CARGO_MANIFEST_DIR"))).unwrap();
    let mut program = Program::new(r.blobs.put(&module).unwrap(), r.blobs.put(b"").unwrap());
    program.inputs = inputs
        .iter()
        .map(|(path, bytes)| (path.clone(), r.blobs.put(bytes).unwrap()))
        .collect();
    let terms = Terms {
        chain: r.handle.chain(),
        requestor: r.key.id(),
        provider: p.key.id(),
        price: PricePerGfuel(Amount(1)),
        escrow: None,
    };
    let args = vec!["5".to_string(), "1000".to_string()];
    let task = TaskId::local(&program.module, &args, salt);
    Assignment::new(task, args, &program, terms, sharegrid_node::now_ms())
}

/// An input larger than the provider fetches is refused on the first
/// chunk's stated size: nothing of it is kept (no part file, no blob), and
/// the provider serves the next task as before.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_input_over_the_providers_bound_is_refused_before_it_is_kept() {
    use sharegrid_core::ContentId;
    use sharegrid_node::Assigned;

    let dir = tempfile::tempdir().unwrap();
    let mut spec = ProviderSpec::new("a", 2.0, 1);
    spec.max_fetch_bytes = 256 << 10;
    let net = net(dir.path()).provider(spec).start().await.unwrap();
    let (r, p) = (&net.requestor.node, net.provider("a").unwrap());
    let big = vec![7u8; 3 << 20];
    let a = pi_with_inputs(r, p, &[("data.bin".into(), big.clone())], b"big");
    let why = match r.handle.assign(&a).await.unwrap() {
        Assigned::Refused(why) => why,
        other => panic!("{other:?}"),
    };
    assert!(why.contains("over the 262144-byte limit"), "{why}");
    assert!(!p.blobs.has(&ContentId::of(&big)));
    let parts = std::fs::read_dir(p.home.join("blobs"))
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().ends_with(".part"))
        .count();
    assert_eq!(parts, 0, "no part of it is left");
    // A small input is fetched (to disk, in chunks) and runs.
    let small = vec![3u8; 100 << 10];
    let a = pi_with_inputs(r, p, &[("data.bin".into(), small.clone())], b"small");
    assert!(matches!(r.handle.assign(&a).await.unwrap(), Assigned::Receipt { .. }));
    assert!(p.blobs.has(&ContentId::of(&small)));
    net.shutdown().await;
}

/// A task with many input files: the provider fetches them a bounded
/// number at a time from its requestor, so the connection (which carries
/// only so many streams at once) stays up and the task runs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_task_with_hundreds_of_input_files_is_fetched_and_runs() {
    use sharegrid_node::Assigned;

    let dir = tempfile::tempdir().unwrap();
    let net = net(dir.path())
        .provider(ProviderSpec::new("a", 2.0, 1))
        .start()
        .await
        .unwrap();
    let (r, p) = (&net.requestor.node, net.provider("a").unwrap());
    let inputs: Vec<(String, Vec<u8>)> = (0..600u32)
        .map(|i| (format!("part/{i:04}"), i.to_le_bytes().repeat(64)))
        .collect();
    let answer = r.handle.assign(&pi_with_inputs(r, p, &inputs, b"many")).await.unwrap();
    assert!(matches!(answer, Assigned::Receipt { .. }), "{answer:?}");
    net.shutdown().await;
}
