//! A network of real nodes in one process, over real loopback sockets: the
//! one harness the tests, the demo and the benchmarks build networks with
//! (after reth's `Testnet`). Providers run the real sandbox and may emulate
//! a slower machine or lie; a requestor runs the real engine with its
//! SQLite job store; with a ledger, the requestor is the validator, the
//! providers follow its blocks and keep their proofs of work, and jobs are
//! paid through escrow. Keys come from fixed seeds, so a network is the
//! same every time. mDNS stays off; everything binds to 127.0.0.1.
//!
//! Everything waits on events (offers seen, jobs ended, blocks), never on
//! time.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use sharegrid_core::{Amount, Arch, GigafuelPerSec, NodeKey};
use sharegrid_ledger::{Allocation, Genesis, Op, Params};
use sharegrid_net::NetConfig;
use sharegrid_sandbox::{Sandbox, SandboxConfig};

use crate::blobs::BlobStore;
use crate::config::LedgerSettings;
use crate::daemon::{AgentOptions, LedgerOptions, NodeHandle, NodeOptions, start};
use crate::job::{JobStore, Requestor};
use crate::judge::{JudgeOptions, start_judge};
use crate::ledger::{Ledger, LedgerClient};
use crate::machine::{FixedProbe, MachineInfo};
use crate::payment::{Payments, ProofStore};
use crate::provider::{Provider, ProviderPolicy};

/// The seed of the requestor's key; provider `i` (from 0) has `i + 1`.
pub const REQUESTOR_SEED: u8 = 100;

mod http;
mod validators;
pub use http::http_request;
pub use validators::{VALIDATOR_SEED, ValidatorSet, free_port, start_consensus};

/// Why a test network could not be built.
#[derive(Debug, thiserror::Error)]
pub enum TestnetError {
    /// A node could not start.
    #[error("a node could not start: {0}")]
    Start(String),
    /// A store could not be opened.
    #[error("a store could not be opened: {0}")]
    Store(String),
    /// The nodes could not connect.
    #[error("the nodes could not connect: {0}")]
    Connect(String),
    /// What was waited for did not happen.
    #[error("{0}")]
    Wait(String),
}

fn store_err(e: impl std::fmt::Display) -> TestnetError {
    TestnetError::Store(e.to_string())
}

/// A provider of a test network.
#[derive(Clone, Debug)]
pub struct ProviderSpec {
    /// A name, for reports.
    pub name: String,
    /// The speed it emulates and advertises, gigafuel per second.
    pub speed: f64,
    /// Task slots (and cores).
    pub slots: u32,
    /// Whether it returns wrong results.
    pub faulty: bool,
    /// Its policy (enabled, with the slots above; offers every second).
    pub policy: ProviderPolicy,
    /// Memory it offers.
    pub memory_bytes: u64,
    /// Largest input blob it fetches.
    pub max_fetch_bytes: u64,
    /// Its owner's machine: host load and time of day, set by hand (noon
    /// and idle unless a test says otherwise).
    pub probe: Arc<FixedProbe>,
}

impl ProviderSpec {
    /// An honest provider of `slots` slots emulating `speed` Gfuel/s.
    pub fn new(name: &str, speed: f64, slots: u32) -> Self {
        ProviderSpec {
            name: name.into(),
            speed,
            slots,
            faulty: false,
            policy: ProviderPolicy {
                enabled: true,
                slots,
                offer_interval_secs: 1,
                shutdown_grace_secs: 0,
                ..ProviderPolicy::default()
            },
            memory_bytes: 8 << 30,
            max_fetch_bytes: 1 << 30,
            probe: {
                let p = FixedProbe::default();
                p.minute.store(12 * 60, std::sync::atomic::Ordering::Relaxed);
                Arc::new(p)
            },
        }
    }

    /// The same provider, with this policy (its slots and `enabled` kept).
    pub fn policy(mut self, policy: ProviderPolicy) -> Self {
        self.policy = ProviderPolicy {
            enabled: true,
            slots: self.slots,
            ..policy
        };
        self
    }

    /// The same provider, returning wrong results.
    pub fn faulty(mut self) -> Self {
        self.faulty = true;
        self
    }

    /// The same provider, asking `floor` per gigafuel at least.
    pub fn price_floor(mut self, floor: u128) -> Self {
        self.policy.price_floor = Amount(floor);
        self
    }
}

/// The network's ledger: the requestor validates and holds `funds`.
#[derive(Clone, Debug)]
pub struct LedgerSpec {
    /// The requestor's balance at genesis.
    pub funds: u128,
    /// The network fee, in basis points.
    pub fee_bps: u32,
    /// Who takes the fees (default: the validator).
    pub treasury: Option<sharegrid_core::NodeId>,
    /// Each provider's balance at genesis.
    pub provider_funds: u128,
    /// What each provider bonds as stake once the network is up (at most
    /// its funds less a fee).
    pub provider_stake: u128,
    /// Validators ordering the ledger: 1, the requestor alone; more, the
    /// requestor and validator-only nodes, by BFT consensus (each on its
    /// own loopback port).
    pub validators: usize,
    /// The nodes' `[ledger]` settings.
    pub settings: LedgerSettings,
}

impl Default for LedgerSpec {
    fn default() -> Self {
        LedgerSpec {
            funds: 1_000_000_000_000,
            fee_bps: 100,
            treasury: None,
            provider_funds: 0,
            provider_stake: 0,
            validators: 1,
            settings: LedgerSettings {
                block_interval_ms: 20,
                idle_block_secs: 1,
                settle_batch: 16,
                ..LedgerSettings::default()
            },
        }
    }
}

/// One node of a test network.
#[derive(Clone, Debug)]
pub struct TestNode {
    /// Its name.
    pub name: String,
    /// Its key.
    pub key: Arc<NodeKey>,
    /// The running node.
    pub handle: NodeHandle,
    /// Its blob store (inputs; a requestor's modules and results).
    pub blobs: BlobStore,
    /// Its ledger, if it keeps one.
    pub ledger: Option<Arc<Ledger>>,
    /// A provider's payment task (its claims), when it follows a ledger.
    pub payments: Option<Payments>,
    /// Its home directory.
    pub home: PathBuf,
}

impl TestNode {
    /// Its address, with its peer id, to dial.
    pub async fn addr(&self) -> Result<sharegrid_net::Multiaddr, TestnetError> {
        let addr = self
            .handle
            .listen_addrs()
            .await
            .into_iter()
            .next()
            .ok_or_else(|| TestnetError::Connect(format!("{} listens nowhere", self.name)))?;
        addr.with_p2p(self.handle.peer_id())
            .map_err(|a| TestnetError::Connect(format!("bad address {a}")))
    }
}

/// The requestor of a test network.
#[derive(Clone, Debug)]
pub struct TestRequestor {
    /// The node.
    pub node: TestNode,
    /// Its engine.
    pub engine: Requestor,
    /// Its job store.
    pub store: JobStore,
    /// Its payment task, with a ledger.
    pub payments: Option<Payments>,
}

/// A network of providers and a requestor. See the module docs.
#[derive(Debug)]
pub struct Testnet {
    /// The providers, in the order given.
    pub providers: Vec<TestNode>,
    /// The requestor.
    pub requestor: TestRequestor,
    /// The genesis, with a ledger.
    pub genesis: Option<Genesis>,
    /// Validator-only nodes (when the ledger has several validators).
    pub validators: Vec<TestNode>,
    /// The validators' consensus, stopped at shutdown.
    consensus: std::sync::Mutex<Vec<crate::ledger::Consensus>>,
}

/// Builds a [`Testnet`].
#[derive(Debug)]
pub struct TestnetBuilder {
    dir: PathBuf,
    providers: Vec<ProviderSpec>,
    ledger: Option<LedgerSpec>,
    net: NetConfig,
    sandbox: Option<Arc<Sandbox>>,
}

/// Network settings for tests: 127.0.0.1, an ephemeral port, no mDNS.
pub fn loopback() -> NetConfig {
    NetConfig {
        listen: vec![
            sharegrid_net::Multiaddr::from(std::net::Ipv4Addr::LOCALHOST)
                .with(sharegrid_net::multiaddr::Protocol::Tcp(0)),
        ],
        mdns: false,
        departure_timeout: Duration::from_secs(2),
        ..NetConfig::default()
    }
}

/// The genesis of a test network: `validator` validates and takes the
/// fees; `funded` holds `funds`.
pub fn genesis(validator: &NodeKey, funded: &NodeKey, funds: u128, fee_bps: u32) -> Genesis {
    Genesis {
        validators: vec![validator.id()],
        params: Params::new(validator.id(), fee_bps, Amount(1)),
        balances: vec![Allocation {
            account: funded.id(),
            amount: Amount(funds),
        }],
        stakes: Vec::new(),
    }
}

/// How long [`wait_for`] waits before it gives up: a guard against a test
/// hanging, far above what any wait takes.
pub const WAIT_GUARD: Duration = Duration::from_secs(120);

/// Waits for the first event from `events` that `want` picks out (an
/// event, not a poll); `what` names it in the error. Gives up after
/// [`WAIT_GUARD`] or when the node stops.
pub async fn wait_for<E: Clone, T>(
    events: &mut tokio::sync::broadcast::Receiver<E>,
    what: &str,
    mut want: impl FnMut(&E) -> Option<T>,
) -> Result<T, TestnetError> {
    let wait = async {
        loop {
            match events.recv().await {
                Ok(ev) => {
                    if let Some(t) = want(&ev) {
                        return Ok(t);
                    }
                }
                Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
                Err(tokio::sync::broadcast::error::RecvError::Closed) => {
                    return Err(TestnetError::Wait(format!("stopped before {what}")));
                }
            }
        }
    };
    tokio::time::timeout(WAIT_GUARD, wait)
        .await
        .map_err(|_| TestnetError::Wait(format!("no {what} within {WAIT_GUARD:?}")))?
}

/// Dials `b` from `a`.
pub async fn connect(a: &NodeHandle, b: &TestNode) -> Result<(), TestnetError> {
    a.dial(b.addr().await?)
        .await
        .map_err(|e| TestnetError::Connect(e.to_string()))
}

/// Opens the ledger of a node in `home` for `genesis`.
pub fn open_ledger(home: &Path, genesis: &Genesis, key: &Arc<NodeKey>) -> Result<Arc<Ledger>, TestnetError> {
    std::fs::create_dir_all(home).map_err(store_err)?;
    Ledger::open(&home.join("ledger.db"), genesis.clone(), key.clone()).map_err(store_err)
}

/// Starts a provider node from `spec` in `home`, signing as `key`, running
/// tasks in `sandbox`; when `ledger` is given it follows it, keeps its
/// proofs of work in its `node.db` and runs its payment task (claims).
pub async fn start_provider(
    home: &Path,
    key: Arc<NodeKey>,
    spec: &ProviderSpec,
    sandbox: Arc<Sandbox>,
    net: NetConfig,
    ledger: Option<(Arc<Ledger>, &LedgerSettings)>,
) -> Result<TestNode, TestnetError> {
    let blobs = BlobStore::open(home.join("blobs"), 1 << 30).map_err(store_err)?;
    let outputs = BlobStore::open(home.join("outputs"), 1 << 30).map_err(store_err)?;
    let mut provider = Provider::new(sandbox, blobs.clone(), outputs).emulating_speed(GigafuelPerSec(spec.speed));
    if spec.faulty {
        provider = provider.faulty();
    }
    let store = match &ledger {
        Some(_) => Some(JobStore::open(&home.join("node.db")).map_err(store_err)?),
        None => None,
    };
    let proofs = store.as_ref().map(ProofStore::of);
    let handle = start(NodeOptions {
        key: key.clone(),
        net,
        blobs: blobs.clone(),
        agent: Some(AgentOptions {
            // Without a ledger there is no escrow to require.
            policy: ProviderPolicy {
                require_escrow: spec.policy.require_escrow && ledger.is_some(),
                ..spec.policy.clone()
            },
            provider,
            machine: MachineInfo {
                arch: Arch::host(),
                cores: spec.slots,
                memory_bytes: spec.memory_bytes,
            },
            speed: GigafuelPerSec(spec.speed),
            probe: spec.probe.clone(),
            max_fetch_bytes: spec.max_fetch_bytes,
            proofs,
        }),
        ledger: ledger.as_ref().map(|(l, s)| LedgerOptions::new(l.clone(), s)),
    })
    .await
    .map_err(|e| TestnetError::Start(e.to_string()))?;
    // A provider that follows a ledger claims what its requestors leave unsettled.
    let payments = match (&ledger, store) {
        (Some((l, settings)), Some(store)) => {
            let client = LedgerClient::new(l.clone(), handle.clone());
            Some(Payments::start(&handle, client, store, (*settings).clone()))
        }
        _ => None,
    };
    Ok(TestNode {
        name: spec.name.clone(),
        key,
        handle,
        blobs,
        ledger: ledger.map(|(l, _)| l),
        payments,
        home: home.to_path_buf(),
    })
}

/// Starts a node in `home` that provides nothing (a requestor, a validator,
/// a follower), keeping `ledger` if given.
pub async fn start_plain(
    home: &Path,
    name: &str,
    key: Arc<NodeKey>,
    net: NetConfig,
    ledger: Option<(Arc<Ledger>, &LedgerSettings)>,
) -> Result<TestNode, TestnetError> {
    let blobs = BlobStore::open(home.join("blobs"), 1 << 30).map_err(store_err)?;
    let handle = start(NodeOptions {
        key: key.clone(),
        net,
        blobs: blobs.clone(),
        agent: None,
        ledger: ledger.as_ref().map(|(l, s)| LedgerOptions::new(l.clone(), s)),
    })
    .await
    .map_err(|e| TestnetError::Start(e.to_string()))?;
    Ok(TestNode {
        name: name.into(),
        key,
        handle,
        blobs,
        ledger: ledger.map(|(l, _)| l),
        payments: None,
        home: home.to_path_buf(),
    })
}

/// Starts `node`'s judge: as a validator it re-runs, in `sandbox`, every
/// task under dispute or claimed alone, and sends the verdict.
pub fn judge(node: &TestNode, sandbox: Arc<Sandbox>) -> Result<(), TestnetError> {
    let Some(ledger) = &node.ledger else {
        return Ok(());
    };
    let client = LedgerClient::new(ledger.clone(), node.handle.clone());
    let opts = JudgeOptions {
        sandbox,
        blobs: node.blobs.clone(),
        fetched: BlobStore::open(node.home.join("judged"), 1 << 30).map_err(store_err)?,
        max_fetch_bytes: 1 << 30,
    };
    start_judge(&node.handle, client, opts);
    Ok(())
}

/// Two nodes for the round-trip benchmarks: a one-slot provider (seed 1)
/// and a plain requestor (seed 2) connected to it, under `dir`, with the
/// requestor holding a module that does nothing (`program`).
#[derive(Debug)]
pub struct BenchPair {
    /// The provider.
    pub provider: TestNode,
    /// The requestor.
    pub requestor: TestNode,
    /// A trivial program, its blobs in the requestor's store.
    pub program: sharegrid_core::Program,
}

/// Starts a [`BenchPair`] under `dir`.
pub async fn bench_pair(dir: &Path) -> Result<BenchPair, TestnetError> {
    let sandbox = Arc::new(Sandbox::new(SandboxConfig::default()).map_err(|e| TestnetError::Start(e.to_string()))?);
    let mut spec = ProviderSpec::new("p", 1.0, 1);
    spec.memory_bytes = 1 << 33;
    let pk = Arc::new(NodeKey::from_seed([1; 32]));
    let provider = start_provider(&dir.join("p"), pk, &spec, sandbox, loopback(), None).await?;
    let rk = Arc::new(NodeKey::from_seed([2; 32]));
    let requestor = start_plain(&dir.join("r"), "r", rk, loopback(), None).await?;
    connect(&requestor.handle, &provider).await?;
    let module = wat::parse_str(r#"(module (memory (export "memory") 1) (func (export "_start")))"#)
        .map_err(|e| TestnetError::Start(e.to_string()))?;
    let program = sharegrid_core::Program::new(
        requestor.blobs.put(&module).map_err(store_err)?,
        requestor.blobs.put(b"").map_err(store_err)?,
    );
    Ok(BenchPair {
        provider,
        requestor,
        program,
    })
}

/// Makes `node` a requestor: its job store in its home, its engine, and
/// with a ledger its payment task.
pub fn requestor(node: TestNode, settings: Option<&LedgerSettings>) -> Result<TestRequestor, TestnetError> {
    let store = JobStore::open(&node.home.join("node.db")).map_err(store_err)?;
    let mut engine = Requestor::new(node.handle.clone(), node.blobs.clone(), store.clone());
    let payments = match (&node.ledger, settings) {
        (Some(l), Some(s)) => {
            let client = LedgerClient::new(l.clone(), node.handle.clone());
            let p = Payments::start(&node.handle, client, store.clone(), s.clone());
            engine = engine.with_payments(p.clone());
            Some(p)
        }
        _ => None,
    };
    Ok(TestRequestor {
        node,
        engine,
        store,
        payments,
    })
}

impl Testnet {
    /// A builder for a network whose homes are under `dir`.
    pub fn builder(dir: &Path) -> TestnetBuilder {
        TestnetBuilder {
            dir: dir.to_path_buf(),
            providers: Vec::new(),
            ledger: None,
            net: loopback(),
            sandbox: None,
        }
    }

    /// The provider named `name`.
    pub fn provider(&self, name: &str) -> Option<&TestNode> {
        self.providers.iter().find(|p| p.name == name)
    }

    /// Stops every node, each with its tasks, in order.
    pub async fn shutdown(&self) {
        self.requestor.node.handle.shutdown().await;
        for p in self.providers.iter().chain(&self.validators) {
            p.handle.shutdown().await;
        }
        let consensus = std::mem::take(&mut *self.consensus.lock().unwrap_or_else(std::sync::PoisonError::into_inner));
        // Each joins its thread: off the async runtime.
        let _ = tokio::task::spawn_blocking(move || drop(consensus)).await;
    }
}

impl TestnetBuilder {
    /// Adds a provider.
    pub fn provider(mut self, spec: ProviderSpec) -> Self {
        self.providers.push(spec);
        self
    }

    /// Pays for jobs through a ledger the requestor validates.
    pub fn ledger(mut self, spec: LedgerSpec) -> Self {
        self.ledger = Some(spec);
        self
    }

    /// Uses these network settings (still on loopback) for every node.
    pub fn net(mut self, net: NetConfig) -> Self {
        self.net = net;
        self
    }

    /// Runs tasks in this sandbox (default: a fresh one, its module cache
    /// under the network's directory).
    pub fn sandbox(mut self, sandbox: Arc<Sandbox>) -> Self {
        self.sandbox = Some(sandbox);
        self
    }

    /// Starts every node, connects the requestor to each provider, and
    /// returns once the requestor has seen every provider's offer.
    pub async fn start(self) -> Result<Testnet, TestnetError> {
        let sandbox = match self.sandbox {
            Some(s) => s,
            None => Arc::new(
                Sandbox::new(SandboxConfig {
                    cache_dir: Some(self.dir.join("cache")),
                    ..SandboxConfig::default()
                })
                .map_err(|e| TestnetError::Start(e.to_string()))?,
            ),
        };
        let rkey = Arc::new(NodeKey::from_seed([REQUESTOR_SEED; 32]));
        let pkey = |i: usize| Arc::new(NodeKey::from_seed([i as u8 + 1; 32]));
        let vset = match &self.ledger {
            Some(l) if l.validators > 1 => Some(ValidatorSet::new(rkey.clone(), l.validators)?),
            _ => None,
        };
        let genesis = self.ledger.as_ref().map(|l| {
            let mut g = genesis(&rkey, &rkey, l.funds, l.fee_bps);
            if let Some(v) = &vset {
                g.validators = v.ids();
            }
            if let Some(t) = l.treasury {
                g.params.treasury = t;
            }
            if l.provider_funds > 0 {
                g.balances.extend((0..self.providers.len()).map(|i| Allocation {
                    account: pkey(i).id(),
                    amount: Amount(l.provider_funds),
                }));
            }
            g
        });
        let settings = self.ledger.as_ref().map(|l| &l.settings);
        let mut providers = Vec::new();
        for (i, spec) in self.providers.iter().enumerate() {
            let key = pkey(i);
            let home = self.dir.join(&spec.name);
            let ledger = match (&genesis, settings) {
                (Some(g), Some(s)) => Some((open_ledger(&home, g, &key)?, s)),
                _ => None,
            };
            providers.push(start_provider(&home, key, spec, sandbox.clone(), self.net.clone(), ledger).await?);
        }
        let home = self.dir.join("requestor");
        let ledger = match (&genesis, settings) {
            (Some(g), Some(s)) => Some((open_ledger(&home, g, &rkey)?, s)),
            _ => None,
        };
        let node = start_plain(&home, "requestor", rkey, self.net.clone(), ledger).await?;
        // The requestor validates: it judges disputes and lone claims.
        judge(&node, sandbox.clone())?;
        let mut validators = Vec::new();
        let mut consensus = Vec::new();
        if let (Some(v), Some(g), Some(s)) = (&vset, &genesis, settings) {
            consensus.push(start_consensus(&node, &v.settings(0, s)).await?);
            for (i, key) in v.keys.iter().enumerate().skip(1) {
                let name = format!("validator-{i}");
                let home = self.dir.join(&name);
                let l = open_ledger(&home, g, key)?;
                // Verdicts stay the requestor's (the first validator's): the
                // money of a test network adds up from one judge's fees.
                let vnode = start_plain(&home, &name, key.clone(), self.net.clone(), Some((l, s))).await?;
                consensus.push(start_consensus(&vnode, &v.settings(i, s)).await?);
                connect(&node.handle, &vnode).await?;
                validators.push(vnode);
            }
        }
        let requestor = requestor(node, settings)?;
        for p in &providers {
            connect(&requestor.node.handle, p).await?;
        }
        // Providers bond their stake, once they reach the validator.
        let stake = self.ledger.as_ref().map_or(0, |l| l.provider_stake);
        if stake > 0 {
            for p in &providers {
                let Some(l) = &p.ledger else { continue };
                // The provider's own dial: it returns once the provider's
                // node has the connection (the requestor's dial returns once
                // the requestor's has it, which may be earlier).
                connect(&p.handle, &requestor.node).await?;
                LedgerClient::new(l.clone(), p.handle.clone())
                    .send_and_wait(Op::Bond { amount: Amount(stake) }, WAIT_GUARD)
                    .await
                    .map_err(|e| TestnetError::Start(format!("{} cannot bond its stake: {e}", p.name)))?;
            }
        }
        let seen = requestor.node.handle.wait_for_offers(providers.len()).await;
        if seen.len() < providers.len() {
            return Err(TestnetError::Connect(format!(
                "the requestor saw {} of {} offers before stopping",
                seen.len(),
                providers.len()
            )));
        }
        Ok(Testnet {
            providers,
            requestor,
            genesis,
            validators,
            consensus: std::sync::Mutex::new(consensus),
        })
    }
}
