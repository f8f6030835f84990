//! From a node home to a running node: identity, configuration, sandbox,
//! the cached benchmark, machine detection, the ledger, the daemon, the
//! payment task, the requestor engine (resuming unfinished jobs) and the
//! control API, all in one [`crate::Lifecycle`].
//! `sharegrid node` is this plus waiting for Ctrl-C.

use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use sharegrid_core::GigafuelPerSec;
use sharegrid_sandbox::{Sandbox, node_benchmark};

use crate::blobs::BlobStore;
use crate::daemon::{AgentOptions, LedgerOptions, NodeHandle, NodeOptions, start};
use crate::home::NodeHome;
use crate::job::{JobStore, Requestor};
use crate::judge::{JudgeOptions, start_judge};
use crate::ledger::{Ledger, LedgerClient};
use crate::machine::{MachineInfo, SystemProbe};
use crate::payment::{Payments, ProofStore};
use crate::provider::Provider;

/// The benchmark as cached in `benchmark.json`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct CachedBenchmark {
    /// Measured speed.
    pub gfuel_per_sec: f64,
    /// The software that measured it (a new version measures again).
    pub software: String,
}

/// A node started from its home.
#[derive(Debug)]
pub struct Launched {
    /// The node.
    pub handle: NodeHandle,
    /// The machine, as detected.
    pub machine: MachineInfo,
    /// The speed offered (None when not providing).
    pub speed: Option<GigafuelPerSec>,
    /// Whether the benchmark was measured now (false: read from the cache).
    pub benchmarked: bool,
    /// The ledger.
    pub ledger: Arc<Ledger>,
    /// The requestor engine.
    pub requestor: Requestor,
    _probe: Option<Arc<SystemProbe>>,
    /// The home's lock, held while the node runs.
    _lock: std::fs::File,
    /// Where the HTTP API listens.
    pub api: std::net::SocketAddr,
    addr_file: std::path::PathBuf,
    /// This validator's consensus, on a network of several validators.
    consensus: Option<crate::ledger::Consensus>,
}

impl Launched {
    /// Stops the node and every task of it (the control API, the job
    /// drivers, the payment task) in order, and removes `api.addr`.
    pub async fn shutdown(mut self) {
        self.handle.shutdown().await;
        // Its thread joins: off the async runtime.
        if let Some(c) = self.consensus.take() {
            let _ = tokio::task::spawn_blocking(move || drop(c)).await;
        }
        let _ = std::fs::remove_file(&self.addr_file);
    }
}

/// The cached benchmark, or a fresh measurement (3 rounds, about a second)
/// saved for next time.
pub fn benchmark(home: &NodeHome, sandbox: &Sandbox) -> anyhow::Result<(GigafuelPerSec, bool)> {
    let software = concat!("sharegrid ", env!("CARGO_PKG_VERSION"));
    let path = home.benchmark_path();
    if let Ok(text) = std::fs::read_to_string(&path)
        && let Ok(c) = serde_json::from_str::<CachedBenchmark>(&text)
        && c.software == software
        && c.gfuel_per_sec.is_finite()
        && c.gfuel_per_sec > 0.0
    {
        return Ok((GigafuelPerSec(c.gfuel_per_sec), false));
    }
    let r = node_benchmark(sandbox, 3)?;
    let c = CachedBenchmark {
        gfuel_per_sec: r.speed.0,
        software: software.into(),
    };
    let tmp = path.with_extension("json.tmp");
    std::fs::write(&tmp, serde_json::to_vec_pretty(&c)?)?;
    std::fs::rename(&tmp, &path)?;
    Ok((r.speed, true))
}

/// Holds `<home>/node.lock` for as long as the file is open: one node per
/// home. The operating system lets the lock go when the process ends, so a
/// killed node leaves nothing to clean up.
fn lock_home(home: &NodeHome) -> anyhow::Result<std::fs::File> {
    let path = home.root().join("node.lock");
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(std::fs::TryLockError::WouldBlock) => {
            anyhow::bail!("a node is already running with this home ({})", home.root().display())
        }
        Err(std::fs::TryLockError::Error(e)) => anyhow::bail!("{}: {e}", path.display()),
    }
}

/// Starts the node of `home` with its configuration (plus `env` overrides):
/// creates the home if needed, serves the HTTP API on `[api] listen`.
pub async fn launch(home: &NodeHome, env: Vec<(String, String)>) -> anyhow::Result<Launched> {
    home.init()?;
    let config = home.config(env)?;
    let key = Arc::new(home.identity()?);
    let net = config.network.net_config()?;
    // Lock the home first: a second node on the same home stops here.
    let lock = lock_home(home)?;
    if !config.api.remote && !config.api.listen.ip().is_loopback() {
        anyhow::bail!(
            "[api] listen = {}: not a loopback address; set [api] remote = true to serve the API to other machines",
            config.api.listen
        );
    }
    let http = crate::http::bind(config.api.listen, config.api.port_fallback)
        .await
        .map_err(|e| anyhow::anyhow!("[api] listen = {}: {e}", config.api.listen))?;
    let api_addr = http.local_addr()?;
    let token = home.api_token()?;
    let blobs = BlobStore::open(home.blobs_dir(), config.sandbox.max_input_bytes)?;
    let outputs = BlobStore::open(home.outputs_dir(), 1 << 40)?;
    let retention = Duration::from_secs(config.provider.output_retention_secs);
    let swept = outputs.remove_older_than(retention);
    if swept > 0 {
        tracing::info!(swept, "outputs past their retention time removed");
    }
    let store = JobStore::open(&home.root().join("node.db"))?;
    let machine = MachineInfo::detect();
    let (mut agent, mut speed, mut benchmarked, mut probe) = (None, None, false, None);
    let genesis = home.genesis()?;
    let validator = genesis.validators.contains(&key.id());
    let inputs = BlobStore::open(home.inputs_dir(), config.sandbox.max_input_bytes)?;
    // Providers run tasks in it, validators re-run tasks under judgement.
    let sandbox = if config.provider.enabled || validator {
        Some(Arc::new(Sandbox::new(
            config.sandbox.sandbox_config(Some(home.cache_dir())),
        )?))
    } else {
        None
    };
    if let (true, Some(sandbox)) = (config.provider.enabled, sandbox.clone()) {
        let (s, fresh) = tokio::task::block_in_place(|| benchmark(home, &sandbox))?;
        let p = Arc::new(SystemProbe::start(Duration::from_secs(1)));
        agent = Some(AgentOptions {
            policy: config.provider.clone(),
            // Fetched inputs apart from this node's own blobs: a cache the
            // provider shrinks, never the requestor's modules and inputs.
            provider: Provider::new(sandbox, inputs.clone(), outputs),
            machine,
            speed: s,
            probe: p.clone(),
            max_fetch_bytes: config.sandbox.max_input_bytes,
            proofs: Some(ProofStore::of(&store)),
        });
        (speed, benchmarked, probe) = (Some(s), fresh, Some(p));
    }
    let ledger = Ledger::open(&home.ledger_path(), genesis, key.clone())?;
    let handle_key = key.clone();
    let handle = start(NodeOptions {
        key,
        net,
        blobs: blobs.clone(),
        agent,
        ledger: Some(LedgerOptions::new(ledger.clone(), &config.ledger)),
    })
    .await?;
    let consensus = {
        let (l, k, settings, dir) = (
            ledger.clone(),
            handle_key.clone(),
            config.ledger.clone(),
            home.root().join("consensus"),
        );
        tokio::task::spawn_blocking(move || crate::ledger::Consensus::start(&l, k, &settings, dir))
            .await
            .map_err(|e| anyhow::anyhow!("consensus: {e}"))?
            .map_err(|e| anyhow::anyhow!("consensus: {e}"))?
    };
    let client = LedgerClient::new(ledger.clone(), handle.clone());
    if config.ledger.faucet > 0 {
        crate::faucet::start_faucet(
            &handle,
            client.clone(),
            sharegrid_core::Amount(u128::from(config.ledger.faucet)),
        )
        .await;
    }
    if let Some(sandbox) = sandbox {
        let judge = JudgeOptions {
            sandbox,
            blobs: blobs.clone(),
            fetched: inputs,
            max_fetch_bytes: config.sandbox.max_input_bytes,
        };
        start_judge(&handle, client.clone(), judge);
    }
    let payments = Payments::start(&handle, client, store.clone(), config.ledger.clone());
    let requestor = Requestor::new(handle.clone(), blobs.clone(), store).with_payments(payments);
    let resumed = requestor.resume_all()?;
    if resumed > 0 {
        tracing::info!(resumed, "unfinished jobs resumed");
    }
    let life = handle.lifecycle().clone();
    let served = crate::http::Served {
        node: handle.clone(),
        blobs,
        requestor: requestor.clone(),
        home: home.root().to_path_buf(),
        max_upload: config.sandbox.max_input_bytes,
    };
    life.spawn(async move {
        if let Err(e) = crate::http::serve(http, &token, served).await {
            tracing::error!("the HTTP API stopped: {e}");
        }
    });
    let addr_file = home.api_addr_path();
    std::fs::write(&addr_file, format!("http://{api_addr}\n"))?;
    Ok(Launched {
        handle,
        machine,
        speed,
        benchmarked,
        ledger,
        requestor,
        _probe: probe,
        _lock: lock,
        api: api_addr,
        addr_file,
        consensus,
    })
}
