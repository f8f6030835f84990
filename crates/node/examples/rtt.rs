//! Round-trip time of a trivial task between two nodes on loopback: a
//! requestor assigns a task whose module does nothing to a provider and
//! waits for the signed receipt (the full path: request, signature checks,
//! policy, sandbox run from the module cache, receipt signing, response),
//! N times in sequence, then prints the median and p99. A second series
//! also fetches the result blob, as a requestor must to use the outputs.
//!
//! `cargo run --release -p sharegrid-node --example rtt -- [N]` (bench/net.sh).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use sharegrid_core::{Amount, Assignment, PricePerGfuel, TaskId, Terms};
use sharegrid_node::Assigned;
use sharegrid_node::testnet;

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let n: usize = std::env::args().nth(1).map_or(1000, |s| s.parse().expect("N"));
    let dir = tempfile::tempdir().unwrap();
    let pair = testnet::bench_pair(dir.path()).await.unwrap();
    let (provider, r, program) = (&pair.provider, &pair.requestor, &pair.program);
    let requestor = &r.handle;
    let terms = Terms {
        chain: requestor.chain(),
        requestor: r.key.id(),
        provider: provider.key.id(),
        price: PricePerGfuel(Amount(1)),
        escrow: None,
    };
    let assignment = |i: u64| {
        let task = TaskId::from_bytes(*blake3::hash(&i.to_le_bytes()).as_bytes());
        Assignment::new(task, vec![], program, terms, sharegrid_node::now_ms())
    };
    // Warm up: connection, blob fetch of the module, compilation.
    for i in 0..20 {
        assert!(matches!(
            requestor.assign(&assignment(i)).await.unwrap(),
            Assigned::Receipt { .. }
        ));
    }
    let series = |name: &'static str| (name, Vec::with_capacity(n));
    let (mut plain, mut fetched) = (
        series("assign -> receipt"),
        series("assign -> receipt -> result fetched"),
    );
    for i in 0..n as u64 {
        let t = Instant::now();
        let Assigned::Receipt { receipt, .. } = requestor.assign(&assignment(1000 + i)).await.unwrap() else {
            panic!("refused")
        };
        plain.1.push(t.elapsed());
        let t = Instant::now();
        let Assigned::Receipt { receipt: r2, .. } = requestor.assign(&assignment(1_000_000 + i)).await.unwrap() else {
            panic!("refused")
        };
        requestor.fetch_result(&r2, 1 << 20).await.unwrap();
        fetched.1.push(t.elapsed());
        assert_eq!(receipt.outcome, r2.outcome);
    }
    println!("{n} sequential trivial tasks, two nodes on 127.0.0.1");
    for (name, mut v) in [plain, fetched] {
        v.sort();
        println!(
            "{name:<38} median {:>7.3} ms   p99 {:>7.3} ms   max {:>7.3} ms",
            percentile(&v, 0.5).as_secs_f64() * 1e3,
            percentile(&v, 0.99).as_secs_f64() * 1e3,
            v[v.len() - 1].as_secs_f64() * 1e3
        );
    }
    requestor.shutdown().await;
    provider.handle.shutdown().await;
}
