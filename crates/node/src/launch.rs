//! From a node home to a running node: identity, configuration, sandbox,
//! the cached benchmark, machine detection, the ledger, the daemon and its
//! control API.
//! `sharegrid node` is this plus waiting for Ctrl-C.

use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use sharegrid_core::GigafuelPerSec;
use sharegrid_sandbox::{Sandbox, node_benchmark};

use crate::api;
use crate::blobs::BlobStore;
use crate::daemon::{AgentOptions, LedgerOptions, NodeHandle, NodeOptions, start};
use crate::home::NodeHome;
use crate::jobstore::JobStore;
use crate::ledger::{Ledger, LedgerClient};
use crate::machine::{MachineInfo, SystemProbe};
use crate::provider::Provider;
use crate::requestor::Requestor;

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
    _probe: Option<Arc<SystemProbe>>,
    api: tokio::task::JoinHandle<()>,
    claims: tokio::task::JoinHandle<()>,
    socket: std::path::PathBuf,
}

impl Launched {
    /// Stops the node gracefully and removes its socket.
    pub async fn shutdown(self) {
        self.api.abort();
        self.claims.abort();
        let _ = std::fs::remove_file(&self.socket);
        self.handle.shutdown().await;
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

/// Starts the node of `home` with its configuration (plus `env` overrides):
/// creates the home if needed, serves the control API on `api.sock`.
pub async fn launch(home: &NodeHome, env: Vec<(String, String)>) -> anyhow::Result<Launched> {
    home.init()?;
    let config = home.config(env)?;
    let key = Arc::new(home.identity()?);
    let net = config.network.net_config().map_err(anyhow::Error::msg)?;
    // Bind the socket first: a second node on the same home stops here.
    let listener = api::bind(&home.api_socket())?;
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
    if config.provider.enabled {
        let sandbox = Arc::new(Sandbox::new(config.sandbox.sandbox_config(Some(home.cache_dir())))?);
        let (s, fresh) = tokio::task::block_in_place(|| benchmark(home, &sandbox))?;
        let p = Arc::new(SystemProbe::start(Duration::from_secs(1)));
        agent = Some(AgentOptions {
            provider: Provider::new(key.clone(), config.provider.clone(), sandbox, blobs.clone()),
            machine,
            speed: s,
            probe: p.clone(),
            max_fetch_bytes: config.sandbox.max_input_bytes,
            earnings: Some(store.clone()),
        });
        (speed, benchmarked, probe) = (Some(s), fresh, Some(p));
    }
    let genesis = home.genesis()?;
    let ledger = Ledger::open(&home.ledger_path(), genesis, key.clone())?;
    let ledger_opts = LedgerOptions {
        ledger: ledger.clone(),
        block_interval: Duration::from_millis(config.ledger.block_interval_ms),
        idle_block: Duration::from_secs(config.ledger.idle_block_secs.max(1)),
    };
    let handle = start(NodeOptions {
        key,
        net,
        blobs: blobs.clone(),
        outputs,
        agent,
        ledger: Some(ledger_opts),
    })
    .await?;
    let client = LedgerClient::new(ledger.clone(), handle.clone());
    let claims = tokio::spawn(claimer(
        store.clone(),
        client.clone(),
        Duration::from_secs(config.ledger.idle_block_secs.max(1)),
    ));
    let requestor = Requestor::new(handle.clone(), blobs.clone(), store).with_ledger(client, config.ledger.clone());
    let resumed = requestor.resume_all()?;
    if resumed > 0 {
        tracing::info!(resumed, "unfinished jobs resumed");
    }
    let api = tokio::spawn(api::serve(listener, handle.clone(), blobs, requestor));
    Ok(Launched {
        handle,
        machine,
        speed,
        benchmarked,
        ledger,
        _probe: probe,
        api,
        claims,
        socket: home.api_socket(),
    })
}

/// Every `every`: as a provider, claims the pay for work whose requestor
/// has not settled by its escrow's claim height, and forgets proofs that
/// are paid or whose escrow has closed; as a requestor, closes its own
/// escrows past their close height. Runs until aborted.
pub async fn claimer(store: JobStore, client: LedgerClient, every: Duration) {
    let me = client.ledger().me();
    loop {
        tokio::time::sleep(every).await;
        let height = client.ledger().head().height;
        // This node's own escrows past their close height (a job whose
        // record was lost, or never settled): return what is left.
        let expired: Vec<_> = client.ledger().with_state(|s| {
            s.escrows
                .iter()
                .filter(|(_, e)| e.requestor == me && height + 1 >= e.close_height)
                .map(|(job, _)| *job)
                .collect()
        });
        for job in expired {
            match client
                .send_and_wait(sharegrid_ledger::Op::CloseExpired { job }, Duration::from_secs(60))
                .await
            {
                Ok((tx, h)) => {
                    tracing::info!(escrow = %job.short(), tx = %tx.short(), height = h, "expired escrow closed")
                }
                Err(err) => tracing::warn!(escrow = %job.short(), "closing an expired escrow failed: {err}"),
            }
        }
        let Ok(earnings) = store.earnings() else { continue };
        for e in earnings {
            let (escrow, task) = (e.escrow, e.task);
            match client.ledger().escrow(&escrow) {
                // Not on this node's copy of the ledger: lagging (keep), or
                // closed after it was seen open: settled or expired (forget).
                None => {
                    if e.seen {
                        let _ = store.forget_earning(&escrow, &task);
                    }
                }
                Some(open) => {
                    if !e.seen {
                        let _ = store.earning_seen(&escrow);
                    }
                    if open.paid.contains(&(task, me)) {
                        let _ = store.forget_earning(&escrow, &task);
                    } else if height + 1 >= open.claim_height {
                        let op = sharegrid_ledger::Op::Claim {
                            job: escrow,
                            paid: sharegrid_ledger::Paid {
                                assignment: e.assignment,
                                receipt: e.receipt,
                            },
                        };
                        match client.send_and_wait(op, Duration::from_secs(60)).await {
                            Ok((tx, h)) => {
                                tracing::info!(%task, tx = %tx.short(), height = h, "claimed pay from an unsettled escrow");
                                let _ = store.forget_earning(&escrow, &task);
                            }
                            Err(err) => tracing::warn!(%task, "claim failed: {err}"),
                        }
                    }
                }
            }
        }
    }
}
