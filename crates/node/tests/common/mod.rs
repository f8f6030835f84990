//! What the node network tests share: a node builder on 127.0.0.1 with a
//! short departure timeout, guests, assignments, waiting on events.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use sharegrid_core::{Amount, Assignment, Determinism, Fuel, Limits, NodeKey, PricePerGfuel, Program, TaskId, Terms};
use sharegrid_net::{Multiaddr, NetConfig};
use sharegrid_node::testnet::{self, ProviderSpec, wait_for};
use sharegrid_node::{
    AssignError, Assigned, BlobStore, FixedProbe, JobSubmission, NodeEvent, NodeHandle, ProviderPolicy,
};
use sharegrid_sandbox::{Sandbox, SandboxConfig};
use tokio::sync::broadcast;

pub(crate) const DEPARTURE: Duration = Duration::from_secs(2);

pub(crate) fn sandbox() -> Arc<Sandbox> {
    static S: OnceLock<Arc<Sandbox>> = OnceLock::new();
    S.get_or_init(|| Arc::new(Sandbox::new(SandboxConfig::default()).unwrap()))
        .clone()
}

pub(crate) fn guest(name: &str) -> Vec<u8> {
    std::fs::read(format!("{}/../../guests/wasm/{name}.wasm", env!("CARGO_MANIFEST_DIR"))).unwrap()
}

/// A job of Mandelbrot tiles, one task per argument list in `tasks`:
/// r = q = 1, 5 Gfuel each, at most 2,000/Gfuel, within a budget of 10^6.
pub(crate) fn tile_job(blobs: &BlobStore, tasks: Vec<Vec<String>>) -> JobSubmission {
    JobSubmission {
        name: "tiles".into(),
        module: blobs.put(&guest("mandelbrot")).unwrap(),
        stdin: blobs.put(b"").unwrap(),
        inputs: vec![],
        limits: Limits {
            fuel: Fuel(5_000_000_000),
            ..Limits::default()
        },
        mode: Determinism::Native,
        replication: 1,
        quorum: 1,
        price_ceiling: Amount(2_000),
        budget: Amount(1_000_000),
        deadline_secs: None,
        wait_for_providers_secs: None,
        arch: None,
        min_memory: 0,
        min_speed: 0.0,
        credibility: None,
        min_stake: Amount(0),
        launch: Default::default(),
        mounts: Vec::new(),
        tasks,
    }
}

pub(crate) fn spin_module() -> Vec<u8> {
    wat::parse_str(r#"(module (memory (export "memory") 1) (func (export "_start") (loop (br 0))))"#).unwrap()
}

pub(crate) struct Node {
    pub handle: NodeHandle,
    pub key: Arc<NodeKey>,
    pub blobs: BlobStore,
    pub probe: Arc<FixedProbe>,
    pub _dir: tempfile::TempDir,
}

impl Node {
    pub(crate) async fn addr(&self) -> Multiaddr {
        let a = self.handle.listen_addrs().await[0].clone();
        a.with_p2p(self.handle.peer_id()).unwrap()
    }
}

pub(crate) fn net() -> NetConfig {
    NetConfig {
        departure_timeout: DEPARTURE,
        ..testnet::loopback()
    }
}

/// A node with key seed `seed`: a provider of 2 slots at 10 Gfuel/s with
/// `policy`, or a plain node without.
pub(crate) async fn node(seed: u8, policy: Option<ProviderPolicy>) -> Node {
    let dir = tempfile::tempdir().unwrap();
    let key = Arc::new(NodeKey::from_seed([seed; 32]));
    let spec = ProviderSpec::new("p", 10.0, 2);
    let probe = spec.probe.clone();
    let started = match policy {
        Some(policy) => {
            let spec = ProviderSpec { policy, ..spec };
            testnet::start_provider(dir.path(), key.clone(), &spec, sandbox(), net(), None).await
        }
        None => testnet::start_plain(dir.path(), "r", key.clone(), net(), None).await,
    }
    .unwrap();
    Node {
        handle: started.handle,
        key,
        blobs: started.blobs,
        probe,
        _dir: dir,
    }
}

pub(crate) fn providing(price_floor: u128) -> ProviderPolicy {
    ProviderPolicy {
        enabled: true,
        price_floor: Amount(price_floor),
        offer_interval_secs: 1,
        // These nodes keep no ledger: their assignments name no escrow.
        require_escrow: false,
        ..ProviderPolicy::default()
    }
}

/// Waits for the node event `want` picks out.
pub(crate) async fn event<T>(
    node: &mut broadcast::Receiver<NodeEvent>,
    what: &str,
    want: impl FnMut(&NodeEvent) -> Option<T>,
) -> T {
    wait_for(node, what, want).await.unwrap()
}

/// An assignment of `module` (put in `requestor`'s blob store) to `provider`.
pub(crate) fn assignment(
    requestor: &Node,
    provider: sharegrid_core::NodeId,
    module: &[u8],
    args: &[&str],
    price: u128,
) -> Assignment {
    let program = Program::new(requestor.blobs.put(module).unwrap(), requestor.blobs.put(b"").unwrap());
    let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
    let terms = Terms {
        chain: requestor.handle.chain(),
        requestor: requestor.key.id(),
        provider,
        price: PricePerGfuel(Amount(price)),
        escrow: None,
    };
    let task = TaskId::local(&program.module, &args, b"");
    Assignment::new(task, args, &program, terms, sharegrid_node::now_ms())
}

pub(crate) fn refused(r: Result<Assigned, AssignError>) -> String {
    match r.unwrap() {
        Assigned::Refused(reason) => reason,
        Assigned::Receipt { receipt, .. } => panic!("expected a refusal, got a receipt for {}", receipt.task),
    }
}

/// Two providers (2 slots each) and a requestor on its ledger, the
/// requestor serving its HTTP API on 127.0.0.1: → the network, where the
/// API listens, and its token.
pub(crate) async fn served(dir: &std::path::Path) -> (testnet::Testnet, std::net::SocketAddr, String) {
    let net = testnet::Testnet::builder(dir)
        .provider(ProviderSpec::new("a", 1.0, 2))
        .provider(ProviderSpec::new("b", 1.0, 2))
        .ledger(testnet::LedgerSpec::default())
        .start()
        .await
        .unwrap();
    let (at, token) = net
        .requestor
        .serve_http(std::net::SocketAddr::from(([127, 0, 0, 1], 0)))
        .await
        .unwrap();
    (net, at, token)
}
