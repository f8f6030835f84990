//! Throughput of trivial tasks through the whole stack: 4 provider nodes and
//! a requestor (engine, scheduler, SQLite job store) on 127.0.0.1, one job
//! of N tasks whose module does nothing, with r = 1 and then r = 2. Prints
//! tasks per second from submission to the job's end (bench/throughput.sh
//! runs it beside Dask).
//!
//! `cargo run --release -p sharegrid-node --example throughput -- [N]`

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Instant;

use sharegrid_core::{Amount, Determinism, Fuel, Limits};
use sharegrid_node::testnet::{ProviderSpec, Testnet};
use sharegrid_node::{JobSubmission, State};

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let n: usize = std::env::args().nth(1).map_or(10_000, |s| s.parse().expect("N"));
    let slots: u32 = std::env::var("SLOTS").ok().map_or(8, |s| s.parse().expect("SLOTS"));
    let dir = tempfile::tempdir().unwrap();
    let mut net = Testnet::builder(dir.path());
    for i in 0..4 {
        let mut spec = ProviderSpec::new(&format!("p{i}"), 10.0, slots);
        spec.memory_bytes = 1 << 34;
        spec.policy.offer_interval_secs = 30;
        net = net.provider(spec);
    }
    let net = net.start().await.unwrap();
    let (engine, store, blobs) = (&net.requestor.engine, &net.requestor.store, &net.requestor.node.blobs);
    let module = wat::parse_str(r#"(module (memory (export "memory") 1) (func (export "_start")))"#).unwrap();
    let job = |r: u32| JobSubmission {
        min_stake: Amount(0),
        launch: Default::default(),
        mounts: Vec::new(),
        name: format!("trivial-r{r}"),
        module: blobs.put(&module).unwrap(),
        stdin: blobs.put(b"").unwrap(),
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
        wait_for_providers_secs: None,
        arch: None,
        min_memory: 0,
        min_speed: 0.0,
        credibility: None,
        tasks: (0..n).map(|i| vec![i.to_string()]).collect(),
    };
    for r in [1, 2] {
        let t = Instant::now();
        let id = engine.submit(job(r)).await.unwrap();
        let row = engine.wait(&id).await.unwrap().unwrap();
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
    net.shutdown().await;
}
