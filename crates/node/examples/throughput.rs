//! Throughput of trivial tasks through the whole stack: 4 provider nodes and
//! a requestor (engine, scheduler, SQLite job store) on 127.0.0.1, one job
//! of N tasks whose module does nothing, with r = 1 and then r = 2. Prints
//! tasks per second from submission to the job's end (bench/throughput.sh
//! runs it beside Dask).
//!
//! `cargo run --release -p sharegrid-node --example throughput -- [N]`

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use sharegrid_core::{Amount, Arch, Determinism, Fuel, GigafuelPerSec, Limits, NodeKey};
use sharegrid_net::NetConfig;
use sharegrid_node::{
    AgentOptions, BlobStore, FixedProbe, JobStore, JobSubmission, MachineInfo, NodeOptions, Provider, ProviderPolicy,
    Requestor, State,
};
use sharegrid_sandbox::{Sandbox, SandboxConfig};

fn net() -> NetConfig {
    NetConfig {
        listen: vec!["/ip4/127.0.0.1/tcp/0".parse().unwrap()],
        ..NetConfig::default()
    }
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let n: usize = std::env::args().nth(1).map_or(10_000, |s| s.parse().expect("N"));
    let slots: u32 = std::env::var("SLOTS").ok().map_or(8, |s| s.parse().expect("SLOTS"));
    let dir = tempfile::tempdir().unwrap();
    let sandbox = Arc::new(Sandbox::new(SandboxConfig::default()).unwrap());
    let mut providers = Vec::new();
    for i in 0..4u8 {
        let key = Arc::new(NodeKey::from_seed([i + 1; 32]));
        let home = dir.path().join(format!("p{i}"));
        let blobs = BlobStore::open(home.join("blobs"), 1 << 30).unwrap();
        let policy = ProviderPolicy {
            enabled: true,
            slots,
            ..ProviderPolicy::default()
        };
        providers.push(
            sharegrid_node::start(NodeOptions {
                key: key.clone(),
                net: net(),
                blobs: blobs.clone(),
                outputs: BlobStore::open(home.join("outputs"), 1 << 30).unwrap(),
                agent: Some(AgentOptions {
                    provider: Provider::new(key, policy, sandbox.clone(), blobs),
                    machine: MachineInfo {
                        arch: Arch::host(),
                        cores: slots,
                        memory_bytes: 1 << 34,
                    },
                    speed: GigafuelPerSec(10.0),
                    probe: Arc::new(FixedProbe::default()),
                    max_fetch_bytes: 1 << 30,
                    earnings: None,
                }),
                ledger: None,
            })
            .await
            .unwrap(),
        );
    }
    let rblobs = BlobStore::open(dir.path().join("r/blobs"), 1 << 30).unwrap();
    let node = sharegrid_node::start(NodeOptions {
        key: Arc::new(NodeKey::from_seed([99; 32])),
        net: net(),
        blobs: rblobs.clone(),
        outputs: BlobStore::open(dir.path().join("r/outputs"), 1 << 30).unwrap(),
        agent: None,
        ledger: None,
    })
    .await
    .unwrap();
    for p in &providers {
        node.dial(p.listen_addrs().await[0].clone().with_p2p(p.peer_id()).unwrap())
            .await
            .unwrap();
    }
    while node.offers().await.len() < providers.len() {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let store = JobStore::open(&dir.path().join("r/node.db")).unwrap();
    let engine = Requestor::new(node.clone(), rblobs.clone(), store.clone());
    let module = wat::parse_str(r#"(module (memory (export "memory") 1) (func (export "_start")))"#).unwrap();
    let job = |r: u32| JobSubmission {
        name: format!("trivial-r{r}"),
        module: rblobs.put(&module).unwrap(),
        stdin: rblobs.put(b"").unwrap(),
        inputs: vec![],
        limits: Limits {
            fuel: Fuel(1_000_000),
            ..Limits::default()
        },
        mode: Determinism::Native,
        replication: r,
        quorum: r,
        price_ceiling: Amount(1_000),
        budget: Amount(u128::MAX / 4),
        deadline_secs: None,
        arch: None,
        min_memory: 0,
        min_speed: 0.0,
        credibility: None,
        tasks: (0..n).map(|i| vec![i.to_string()]).collect(),
    };
    for r in [1, 2] {
        let t = Instant::now();
        let id = engine.submit(job(r)).await.unwrap();
        let row = loop {
            let j = store.job(&id).unwrap().unwrap();
            if j.state != State::Running {
                break j;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        let secs = t.elapsed().as_secs_f64();
        for t in store
            .tasks(&id)
            .unwrap()
            .iter()
            .filter(|t| t.state == State::Failed)
            .take(3)
        {
            eprintln!("task {} failed: {:?}", t.index, t.reason);
        }
        assert_eq!((row.state, row.accepted), (State::Done, n));
        println!(
            "sharegrid r={r}: {n} trivial tasks on 4 providers in {secs:.2} s = {:.0} tasks/s",
            n as f64 / secs
        );
    }
}
