//! A seeded, deterministic simulation of whole nodes (after commonware's
//! deterministic runtime and turmoil): a validator, a requestor running
//! jobs and many providers, each driving the node's own role machines —
//! the provider [`crate::Agent`], the [`crate::JobDriver`], the ledger's
//! [`crate::Follower`] and [`crate::Producer`], the payment plans — over a
//! simulated network and clock: every message delayed, some lost,
//! providers crashing and coming back, some lying. Only the I/O around the
//! machines (the sandbox, SQLite, sockets) is simulated; signatures,
//! receipts, the ledger's state machine and its blocks are the real ones.
//!
//! The same seed replays the same run exactly: every event is folded into
//! a trace hash, which [`run`] returns with the invariants it checked —
//! every task accepted or failed with a reason, every accepted result the
//! right one, no (task, provider) paid twice, every escrow settled, token
//! supply conserved, every node's chain agreeing with the validator's.

mod ledger;
mod net;
mod provider;
mod requestor;
pub mod saboteurs;
mod wallet;
mod world;

use std::collections::BTreeMap;
use std::sync::Arc;

use sharegrid_core::{Amount, Arch, ContentId, Determinism, Fuel, GigafuelPerSec, JobId, Limits, NodeKey, TaskId};
use sharegrid_ledger::{Allocation, Genesis, Op, Params, Tx};

use self::ledger::{Follows, Validator, Wallet};
use self::net::{Ev, REQUESTOR, VALIDATOR};
use self::world::{World, honest};
use crate::job::{JobSubmission, State};
use crate::ledger::{Follower, FollowerInput, Producer};
use crate::machine::MachineInfo;
use crate::provider::{AgentSettings, ProviderPolicy};

/// What to simulate.
#[derive(Clone, Debug)]
pub struct SimConfig {
    /// The seed: the same seed, the same run.
    pub seed: u64,
    /// Providers.
    pub providers: usize,
    /// Of them, how many return wrong results.
    pub liars: usize,
    /// Whether the liars collude: all return the same wrong result for a
    /// task (else each lies differently, as independent faults do).
    pub collude: bool,
    /// Jobs the requestor submits.
    pub jobs: usize,
    /// Tasks per job.
    pub tasks: usize,
    /// Replicas per task (`r`, and `q`).
    pub replication: u32,
    /// Each message's delay, ms, drawn in this range.
    pub delay_ms: (u64, u64),
    /// The chance that a message is lost.
    pub loss: f64,
    /// Provider crashes over the run.
    pub crashes: usize,
    /// How long a crashed provider stays down, ms, drawn in this range.
    pub down_ms: (u64, u64),
    /// Crashes happen within this long from the start, ms.
    pub crash_window_ms: u64,
    /// How long a peer takes to notice a crashed provider gone, ms.
    pub departure_ms: u64,
    /// The validator's block interval, ms.
    pub block_interval_ms: u64,
    /// Accepted tasks paid per settlement transaction.
    pub settle_batch: usize,
    /// Blocks after an escrow opens before providers may claim.
    pub claim_after_blocks: u64,
    /// The simulation gives up at this time, ms.
    pub horizon_ms: u64,
}

impl SimConfig {
    /// A network of `providers` (a tenth of them liars) running `jobs` jobs
    /// of `tasks` tasks at r = 2 over a lossy, slow network with crashes.
    pub fn churn(seed: u64, providers: usize, jobs: usize, tasks: usize) -> SimConfig {
        SimConfig {
            seed,
            providers,
            liars: providers / 10,
            collude: false,
            jobs,
            tasks,
            replication: 2,
            delay_ms: (2, 120),
            loss: 0.02,
            crashes: providers / 2,
            down_ms: (1_000, 20_000),
            crash_window_ms: 30_000,
            departure_ms: 2_000,
            block_interval_ms: 100,
            settle_batch: 8,
            claim_after_blocks: 3_000,
            horizon_ms: 30 * 60_000,
        }
    }
}

/// Counts of what happened.
#[derive(Clone, Debug, Default)]
pub struct Stats {
    /// Events processed.
    pub events: u64,
    /// Messages sent.
    pub messages: u64,
    /// Messages lost (or sent to or from a node that was down).
    pub lost: u64,
    /// Provider crashes.
    pub crashes: u64,
    /// Broken invariants, each in one line (empty: none).
    pub violations: Vec<String>,
}

/// What a simulated run did.
#[derive(Clone, Debug)]
pub struct SimReport {
    /// The hash of every event, in order: equal for equal seeds.
    pub trace: ContentId,
    /// When the last job was settled, ms from the start (or the horizon).
    pub ended_ms: u64,
    /// Tasks accepted, over all jobs.
    pub accepted: usize,
    /// Tasks failed.
    pub failed: usize,
    /// Why each failed task failed.
    pub failures: Vec<String>,
    /// (task, provider) pairs paid.
    pub paid: usize,
    /// The ledger's height at the end.
    pub height: u64,
    /// Counts, and the broken invariants.
    pub stats: Stats,
}

/// The simulated clock starts here (ms since the epoch), so assignments
/// and offers carry ordinary times.
const START_MS: u64 = 1_800_000_000_000;

fn key(seed: u64, i: u64) -> Arc<NodeKey> {
    let mut s = [0u8; 32];
    s[..8].copy_from_slice(&seed.to_le_bytes());
    s[8..16].copy_from_slice(&i.to_le_bytes());
    Arc::new(NodeKey::from_seed(s))
}

/// Runs the simulation `cfg` describes.
pub fn run(cfg: &SimConfig) -> SimReport {
    let vkey = key(cfg.seed, 0);
    let rkey = key(cfg.seed, 1);
    let supply = 1_000_000_000_000_000u128;
    let genesis = Genesis {
        validators: vec![vkey.id()],
        params: Params::new(vkey.id(), 100, Amount(1)),
        balances: vec![Allocation {
            account: rkey.id(),
            amount: Amount(supply),
        }],
        stakes: Vec::new(),
    };
    let follower = || Follower::new(genesis.hash(), genesis.validators.clone(), 3_000);
    let built = (|| -> Result<World, String> {
        let validator = Validator::new(vkey.clone(), &genesis, Producer::new(cfg.block_interval_ms, START_MS))?;
        let requestor = (Follows::new(&genesis, follower())?, Wallet::new(rkey.clone()));
        let mut providers = Vec::new();
        for i in 0..cfg.providers {
            let k = key(cfg.seed, 2 + i as u64);
            let speed = 0.5 + (i % 8) as f64 * 0.5;
            let slots = 1 + (i % 3) as u32;
            let settings = AgentSettings {
                policy: ProviderPolicy {
                    enabled: true,
                    slots,
                    offer_interval_secs: 5,
                    // Escrow checks are not simulated: the simulated
                    // requestor funds every job before assigning, and the
                    // check itself is tested against real nodes.
                    require_escrow: false,
                    ..ProviderPolicy::default()
                },
                machine: MachineInfo {
                    arch: Arch::X86_64,
                    cores: slots,
                    memory_bytes: 8 << 30,
                },
                speed: GigafuelPerSec(speed),
                software: "sim".into(),
            };
            providers.push((k, speed, i < cfg.liars, settings, Follows::new(&genesis, follower())?));
        }
        let jobs = (0..cfg.jobs)
            .map(|j| (JobId::new(&rkey.id(), START_MS, cfg.seed ^ j as u64), job(j, cfg)))
            .collect();
        Ok(World::new(
            cfg.clone(),
            genesis.clone(),
            validator,
            requestor,
            providers,
            jobs,
            START_MS,
        ))
    })();
    let mut w = match built {
        Ok(w) => w,
        Err(e) => {
            let mut stats = Stats::default();
            stats.violations.push(format!("the simulation could not start: {e}"));
            return SimReport {
                trace: ContentId::of(b""),
                ended_ms: 0,
                accepted: 0,
                failed: 0,
                failures: Vec::new(),
                paid: 0,
                height: 0,
                stats,
            };
        }
    };
    // Everyone connects to the validator and starts ticking; crashes are
    // drawn up front.
    let v = w.peers[VALIDATOR];
    for node in 0..w.ids.len() {
        w.q.at(START_MS + node as u64, Ev::Tick { node });
        if node != VALIDATOR {
            w.follow(node, FollowerInput::Connected(v));
        }
    }
    for _ in 0..cfg.crashes.min(cfg.providers.saturating_mul(4)) {
        let node = 2 + (w.rng.next() % cfg.providers as u64) as usize;
        let at = START_MS + w.rng.range(1_000, cfg.crash_window_ms.max(1_001));
        let down_ms = w.rng.range(cfg.down_ms.0, cfg.down_ms.1);
        w.q.at(at, Ev::Crash { node, down_ms });
    }
    w.submit_jobs();
    let horizon = START_MS + cfg.horizon_ms;
    let mut ended_ms = cfg.horizon_ms;
    let mut settle_time = None;
    while let Some(ev) = w.q.pop() {
        if w.q.now > horizon {
            break;
        }
        w.handle(ev);
        let all_settled = w.requestor.jobs.iter().all(|j| j.state.is_some() && j.settled);
        match (all_settled, settle_time) {
            (true, None) => {
                ended_ms = w.q.now - START_MS;
                settle_time = Some(w.q.now);
            }
            // A little longer, for the followers to catch up.
            (true, Some(t)) if w.q.now > t + 10_000 => break,
            _ => {}
        }
    }
    check(&mut w, supply);
    let paid = paid_pairs(&w).len();
    let failures = w
        .requestor
        .jobs
        .iter()
        .enumerate()
        .flat_map(|(j, job)| {
            job.ended.iter().filter_map(move |(task, e)| match e {
                Err(why) => Some(format!(
                    "job {j} task {}: {why}",
                    task.to_string().get(..12).unwrap_or("")
                )),
                Ok(_) => None,
            })
        })
        .collect();
    SimReport {
        trace: ContentId::from_bytes(*w.trace.finalize().as_bytes()),
        ended_ms,
        accepted: w.requestor.jobs.iter().map(|j| j.results.len()).sum(),
        failed: w
            .requestor
            .jobs
            .iter()
            .map(|j| j.ended.values().filter(|e| e.is_err()).count())
            .sum(),
        failures,
        paid,
        height: w.validator.chain.height(),
        stats: w.stats.clone(),
    }
}

/// Job `j`: `tasks` tasks, r = q, paid through escrow.
fn job(j: usize, cfg: &SimConfig) -> JobSubmission {
    JobSubmission {
        min_stake: Amount(0),
        launch: Default::default(),
        mounts: Vec::new(),
        name: format!("sim-{j}"),
        module: ContentId::of(b"module"),
        stdin: ContentId::of(b""),
        inputs: vec![],
        limits: Limits {
            fuel: Fuel(5_000_000_000),
            ..Limits::default()
        },
        mode: Determinism::Native,
        replication: cfg.replication,
        quorum: cfg.replication,
        price_ceiling: Amount(1_000),
        budget: Amount(10_000_000_000),
        deadline_secs: Some(cfg.horizon_ms / 1000),
        wait_for_providers_secs: None,
        arch: None,
        min_memory: 0,
        min_speed: 0.0,
        credibility: None,
        tasks: (0..cfg.tasks).map(|t| vec![format!("{j}-{t}")]).collect(),
    }
}

/// Every (task, provider) paid in the validator's blocks, with how often.
fn paid_pairs(w: &World) -> BTreeMap<(TaskId, sharegrid_core::NodeId), usize> {
    let mut paid = BTreeMap::new();
    for b in &w.validator.blocks {
        for t in &b.txs {
            let Ok(tx) = t.open::<Tx>(sharegrid_ledger::MAX_TX_BYTES) else {
                continue;
            };
            let proofs = match tx.op {
                Op::Settle { paid, .. } => paid,
                Op::Claim { paid, .. } => vec![paid],
                _ => continue,
            };
            for p in proofs {
                if let Ok(r) = p.receipt.open::<sharegrid_core::Receipt>(1 << 20) {
                    *paid.entry((r.task, r.provider)).or_insert(0) += 1;
                }
            }
        }
    }
    paid
}

/// Checks the invariants; what breaks goes into the violations.
fn check(w: &mut World, supply: u128) {
    let mut bad = Vec::new();
    for (j, job) in w.requestor.jobs.iter().enumerate() {
        match &job.state {
            None => bad.push(format!("job {j} never ended")),
            Some((State::Failed, reason)) => bad.push(format!("job {j} failed: {reason:?}")),
            Some(_) => {}
        }
        if !job.settled {
            bad.push(format!("job {j} was never settled"));
        }
        for t in 0..job.sub.tasks.len() {
            let task = job.id.task(t);
            match job.ended.get(&task) {
                None => bad.push(format!("job {j} task {t} neither accepted nor failed")),
                Some(Err(why)) if why.is_empty() => bad.push(format!("job {j} task {t} failed without a reason")),
                Some(Ok(r)) if *r != honest(&task) => bad.push(format!("job {j} task {t}: a wrong result accepted")),
                _ => {}
            }
        }
        if w.validator.chain.state().escrows.contains_key(&job.escrow) {
            bad.push(format!("job {j}: its escrow is still open"));
        }
    }
    for ((task, provider), n) in paid_pairs(w) {
        if n > 1 {
            bad.push(format!("task {task} paid {n} times to {}", provider.short()));
        }
    }
    let state = w.validator.chain.state();
    if state.supply() != supply {
        bad.push(format!("supply {} is not the genesis's {supply}", state.supply()));
    }
    // Every node's chain agrees with the validator's at its height.
    let roots: Vec<ContentId> = w
        .validator
        .blocks
        .iter()
        .filter_map(|b| b.open_header().ok())
        .map(|h| h.state_root)
        .collect();
    let mut nodes: Vec<(usize, &Follows)> = vec![(REQUESTOR, &w.requestor.node)];
    nodes.extend(w.providers.iter().enumerate().map(|(i, p)| (i + 2, &p.node)));
    for (ix, f) in nodes {
        let h = f.height() as usize;
        if h > 0 && roots.get(h - 1) != Some(&f.chain.state().root()) {
            bad.push(format!(
                "node {ix}: state root at height {h} differs from the validator's"
            ));
        }
    }
    w.stats.violations.extend(bad);
}

#[cfg(test)]
mod tests;
