//! A validator's judge: every task the ledger has under judgement — a
//! dispute, or a claim held for its challenge window — is re-run here, in
//! the sandbox, bounded by the task's own limits, and the true result hash
//! and fuel go to the ledger as a [`Op::Verdict`]. Runs are deterministic,
//! so the verdict is what every honest provider reported; the ledger
//! slashes the receipts that differ (`sharegrid_ledger` `fault.rs`).
//!
//! The program's blobs come from this node's stores or from the parties
//! (providers, reporter, requestor), which serve them to validators while
//! the task is under judgement. A run that hits the wall clock is no
//! verdict (not deterministic); the claim then waits out its window. A
//! `native`-mode task (NaN bits left to the CPU) is judged only when every
//! provider it judges offers this validator's architecture: another
//! architecture's honest result may differ, and an honest provider must
//! never be slashed. Until their offers are seen, the task waits.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use sharegrid_core::{Arch, ContentId, Determinism, NodeId, TaskId};
use sharegrid_ledger::{Op, Rerun};
use sharegrid_net::peer_id;
use sharegrid_sandbox::{Sandbox, Task};

use crate::blobs::BlobStore;
use crate::daemon::NodeHandle;
use crate::ledger::{LedgerClient, LedgerError};

/// Tries per task before the judge leaves it to its window.
const MAX_TRIES: u32 = 5;
/// How long a verdict may take to land.
const VERDICT_WAIT: Duration = Duration::from_secs(60);

/// What the judge runs with.
#[derive(Clone, Debug)]
pub struct JudgeOptions {
    /// The sandbox (the network's settings: fuel is part of the protocol).
    pub sandbox: Arc<Sandbox>,
    /// This node's blobs (a requestor's own programs).
    pub blobs: BlobStore,
    /// Where fetched program blobs go.
    pub fetched: BlobStore,
    /// Largest blob fetched.
    pub max_fetch_bytes: u64,
}

/// Why one task could not be judged (this time).
#[derive(Debug, thiserror::Error)]
enum JudgeError {
    #[error("no party serves blob {0}")]
    Unavailable(ContentId),
    #[error("blob store: {0}")]
    Blob(#[from] crate::blobs::BlobError),
    #[error("sandbox: {0}")]
    Sandbox(#[from] sharegrid_sandbox::SandboxError),
    #[error("the re-execution stopped: {0}")]
    Stopped(String),
    #[error("the re-execution timed out: no verdict (not deterministic)")]
    TimedOut,
    #[error("ledger: {0}")]
    Ledger(#[from] LedgerError),
}

/// Starts the judge if this node is a validator; it runs until the node stops.
pub fn start_judge(node: &NodeHandle, client: LedgerClient, opts: JudgeOptions) {
    if !client.ledger().is_validator() {
        return;
    }
    let (node, life) = (node.clone(), node.lifecycle().clone());
    life.clone().spawn(async move {
        let mut heads = client.ledger().subscribe();
        let mut tries: HashMap<(ContentId, TaskId), u32> = HashMap::new();
        loop {
            type Open = BTreeMap<(ContentId, TaskId), (Rerun, Vec<NodeId>, Vec<NodeId>)>;
            let open: Open = client.ledger().with_state(|s| {
                s.to_judge()
                    .into_iter()
                    .map(|(e, t, r)| ((e, t), (r, s.parties(&e, &t), s.accused(&e, &t))))
                    .collect()
            });
            tries.retain(|k, _| open.contains_key(k));
            for ((escrow, task), (rerun, parties, accused)) in open {
                let n = tries.entry((escrow, task)).or_default();
                if *n >= MAX_TRIES {
                    continue;
                }
                if rerun.program.mode == Determinism::Native && !same_arch(&node, &accused).await {
                    // Not a try: its providers' offers may not have come yet.
                    tracing::debug!(%task, "native-mode task: not every judged provider is seen offering this architecture");
                    continue;
                }
                *n += 1;
                match judge(&node, &client, &opts, escrow, task, &rerun, &parties).await {
                    Ok(()) => {}
                    Err(e) if *n >= MAX_TRIES => {
                        tracing::warn!(%task, "cannot judge the task; its claims wait out their window: {e}");
                    }
                    Err(e) => tracing::info!(%task, "cannot judge the task yet: {e}"),
                }
            }
            tokio::select! {
                changed = heads.changed() => if changed.is_err() { return },
                () = life.stopping() => return,
            }
        }
    });
}

async fn judge(
    node: &NodeHandle,
    client: &LedgerClient,
    opts: &JudgeOptions,
    escrow: ContentId,
    task: TaskId,
    rerun: &Rerun,
    parties: &[NodeId],
) -> Result<(), JudgeError> {
    let p = &rerun.program;
    let mut bytes: HashMap<ContentId, Arc<[u8]>> = HashMap::new();
    for id in p.blobs() {
        let b = fetch(node, opts, parties, id).await?;
        bytes.insert(id, Arc::from(b));
    }
    let get = |id: &ContentId| bytes.get(id).cloned().ok_or(JudgeError::Unavailable(*id));
    let t = Task {
        id: task,
        module: get(&p.module)?,
        args: rerun.args.clone(),
        stdin: get(&p.stdin)?,
        inputs: p
            .inputs
            .iter()
            .map(|(path, id)| Ok((path.clone(), get(id)?)))
            .collect::<Result<_, JudgeError>>()?,
        limits: p.limits,
        mode: p.mode,
        launch: p.launch.clone(),
        mounts: p
            .mounts
            .iter()
            .map(|(path, id)| Ok((path.clone(), get(id)?)))
            .collect::<Result<_, JudgeError>>()?,
    };
    let sandbox = opts.sandbox.clone();
    let report = tokio::task::spawn_blocking(move || sandbox.run(&t))
        .await
        .map_err(|e| JudgeError::Stopped(e.to_string()))??;
    if matches!(report.result.outcome, sharegrid_core::Outcome::Timeout) {
        return Err(JudgeError::TimedOut);
    }
    let op = Op::Verdict {
        escrow,
        task,
        result: report.result_hash,
        fuel: report.fuel,
    };
    let (tx, height) = client.send_and_wait(op, VERDICT_WAIT).await?;
    tracing::info!(%task, result = %report.result_hash, fuel = %report.fuel, tx = %tx.short(), height,
        "verdict: the task re-run; receipts that differ are slashed");
    Ok(())
}

/// Whether every provider in `accused` offers this machine's architecture.
async fn same_arch(node: &NodeHandle, accused: &[NodeId]) -> bool {
    let offers = node.offers().await;
    let here = Arch::host();
    accused
        .iter()
        .all(|a| offers.iter().any(|o| o.provider == *a && o.arch == here))
}

/// Blob `id` from this node's stores, else from the first party that serves it.
async fn fetch(
    node: &NodeHandle,
    opts: &JudgeOptions,
    parties: &[NodeId],
    id: ContentId,
) -> Result<Vec<u8>, JudgeError> {
    for store in [&opts.blobs, &opts.fetched] {
        if let Some(b) = store.get(&id)? {
            return Ok(b);
        }
    }
    for party in parties {
        if *party == node.id() {
            continue;
        }
        let Some(peer) = peer_id(party) else { continue };
        match node.fetch_blob(peer, id, opts.max_fetch_bytes).await {
            Ok(b) => {
                opts.fetched.put(&b)?;
                return Ok(b);
            }
            Err(e) => tracing::debug!(party = %party.short(), blob = %id.short(), "not served: {e}"),
        }
    }
    Err(JudgeError::Unavailable(id))
}
