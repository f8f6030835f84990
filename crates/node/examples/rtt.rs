//! Round-trip time of a trivial task between two nodes on loopback: a
//! requestor assigns a task whose module does nothing to a provider and
//! waits for the signed receipt (the full path: request, signature checks,
//! policy, sandbox run from the module cache, receipt signing, response),
//! N times in sequence, then prints the median and p99. A second series
//! also fetches the result blob, as a requestor must to use the outputs.
//!
//! `cargo run --release -p sharegrid-node --example rtt -- [N]` (bench/net.sh).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use sharegrid_core::{Amount, Arch, Assignment, Determinism, GigafuelPerSec, Limits, NodeKey, PricePerGfuel, TaskId};
use sharegrid_net::NetConfig;
use sharegrid_node::{
    AgentOptions, Assigned, BlobStore, FixedProbe, MachineInfo, NodeOptions, Provider, ProviderPolicy,
};
use sharegrid_sandbox::{Sandbox, SandboxConfig};

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let n: usize = std::env::args().nth(1).map_or(1000, |s| s.parse().expect("N"));
    let dir = tempfile::tempdir().unwrap();
    let net = || NetConfig {
        listen: vec!["/ip4/127.0.0.1/tcp/0".parse().unwrap()],
        ..NetConfig::default()
    };
    let pk = Arc::new(NodeKey::from_seed([1; 32]));
    let rk = Arc::new(NodeKey::from_seed([2; 32]));
    let p_blobs = BlobStore::open(dir.path().join("p"), 1 << 30).unwrap();
    let sandbox = Arc::new(Sandbox::new(SandboxConfig::default()).unwrap());
    let policy = ProviderPolicy {
        enabled: true,
        slots: 1,
        ..ProviderPolicy::default()
    };
    let provider = sharegrid_node::start(NodeOptions {
        key: pk.clone(),
        net: net(),
        blobs: p_blobs.clone(),
        outputs: BlobStore::open(dir.path().join("po"), 1 << 30).unwrap(),
        agent: Some(AgentOptions {
            provider: Provider::new(pk.clone(), policy, sandbox, p_blobs),
            machine: MachineInfo {
                arch: Arch::host(),
                cores: 1,
                memory_bytes: 1 << 33,
            },
            speed: GigafuelPerSec(1.0),
            probe: Arc::new(FixedProbe::default()),
            max_fetch_bytes: 1 << 30,
            earnings: None,
        }),
        ledger: None,
    })
    .await
    .unwrap();
    let r_blobs = BlobStore::open(dir.path().join("r"), 1 << 30).unwrap();
    let requestor = sharegrid_node::start(NodeOptions {
        key: rk.clone(),
        net: net(),
        blobs: r_blobs.clone(),
        outputs: BlobStore::open(dir.path().join("ro"), 1 << 30).unwrap(),
        agent: None,
        ledger: None,
    })
    .await
    .unwrap();
    let addr = provider.listen_addrs().await[0]
        .clone()
        .with_p2p(provider.peer_id())
        .unwrap();
    requestor.dial(addr).await.unwrap();

    let module = wat::parse_str(r#"(module (memory (export "memory") 1) (func (export "_start")))"#).unwrap();
    let module_id = r_blobs.put(&module).unwrap();
    let stdin = r_blobs.put(b"").unwrap();
    let assignment = |i: u64| Assignment {
        version: sharegrid_core::WIRE_VERSION,
        task: TaskId::from_bytes(*blake3::hash(&i.to_le_bytes()).as_bytes()),
        requestor: rk.id(),
        provider: pk.id(),
        module: module_id,
        args: vec![],
        stdin,
        inputs: vec![],
        limits: Limits::default(),
        mode: Determinism::Native,
        price: PricePerGfuel(Amount(1)),
        expires_at_ms: u64::MAX,
        escrow: None,
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
    provider.shutdown().await;
}
