//! The requestor engine: runs jobs on the network. For each job a task
//! drives a [`Scheduler`] with what the node hears (offers, departures,
//! receipts, refusals) and carries out its decisions (assign, fetch the
//! accepted result, record verdicts), persisting every step in the
//! [`JobStore`] so that a restarted node resumes its jobs without re-running
//! an accepted task.
//!
//! Payment: with a ledger, a job starts only once its escrow is in a block
//! (the budget plus the network fee on it, locked from the requestor's
//! balance); a job the requestor cannot fund is refused before anything
//! runs. Each accepted task's agreeing receipts are paid from the escrow in
//! settlement batches (`settle_batch` tasks per transaction), and the last
//! batch closes the escrow, refunding the rest. Dissenting receipts are
//! never paid. Every assignment names the escrow, so providers can claim
//! from it themselves if this node vanishes.
//!
//! Never does: accept a result the scheduler did not accept, or mark a task
//! accepted before its result's bytes are in the blob store.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use sharegrid_core::{Amount, Assignment, ContentId, NodeId, PricePerGfuel, TaskId, WIRE_VERSION};
use sharegrid_ledger::{Op, Paid};
use sharegrid_net::{PeerId, peer_id};
use sharegrid_sched::{
    Action, Constraints, Credibility, Event, JobPolicy, Progress, ProviderOffer, Scheduler, TaskSpec, Vote,
};
use tokio::sync::{broadcast, mpsc};

use crate::blobs::BlobStore;
use crate::config::LedgerSettings;
use crate::daemon::{Assigned, NodeEvent, NodeHandle, now_ms};
use crate::jobstore::{JobId, JobStore, JobSubmission, State, StoreError, task_id};
use crate::ledger::LedgerClient;

/// Largest result fetched.
const MAX_RESULT_BYTES: u64 = 1 << 30;
/// How long a ledger transaction may take to land in a block.
const LEDGER_WAIT: Duration = Duration::from_secs(60);
/// Proofs per settlement transaction stay under this many bytes (the
/// ledger takes up to 1 MiB).
const SETTLE_BYTES: usize = 768 * 1024;

/// What a running job looks like now.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct LiveJob {
    /// Counts.
    pub progress: Progress,
    /// Why no provider can take the job's work, while that is so.
    pub why_no_match: Option<String>,
}

/// Why a job could not be submitted.
#[derive(Debug, thiserror::Error)]
pub enum SubmitError {
    /// A blob the job needs is not in the store.
    #[error("blob {0} is not in the node's blob store")]
    MissingBlob(ContentId),
    /// The job has no tasks.
    #[error("the job has no tasks")]
    Empty,
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The job cannot be paid for.
    #[error("cannot fund the job: {0}")]
    Unfunded(String),
}

/// The ledger's escrow id for a job of `requestor`.
pub fn escrow_id(requestor: &NodeId, job: &str) -> ContentId {
    let mut h = blake3::Hasher::new_derive_key("sharegrid job escrow v1");
    h.update(requestor.as_bytes());
    h.update(job.as_bytes());
    ContentId::from_bytes(*h.finalize().as_bytes())
}

/// What a job's escrow must hold at most: its budget, or if that is
/// unbounded, every task's most replicas at the fuel limit and the price
/// ceiling. `None` when both are unbounded.
pub fn worst_case_cost(sub: &JobSubmission) -> Option<Amount> {
    // The scheduler adds replicas up to r + 2 on disagreement.
    let runs = (sub.tasks.len() as u128).saturating_mul(u128::from(sub.replication) + 2);
    let worst = PricePerGfuel(sub.price_ceiling)
        .cost(sub.limits.fuel)
        .and_then(|per_run| per_run.0.checked_mul(runs));
    let bound = worst.map_or(sub.budget.0, |w| w.min(sub.budget.0));
    (bound < u128::MAX).then_some(Amount(bound))
}

/// The engine. Cheap to clone.
#[derive(Clone, Debug)]
pub struct Requestor {
    node: NodeHandle,
    blobs: BlobStore,
    store: JobStore,
    live: Arc<Mutex<HashMap<JobId, LiveJob>>>,
    ledger: Option<(LedgerClient, LedgerSettings)>,
}

impl Requestor {
    /// An engine over a running node, its blob store and job store.
    pub fn new(node: NodeHandle, blobs: BlobStore, store: JobStore) -> Self {
        Requestor {
            node,
            blobs,
            store,
            live: Arc::default(),
            ledger: None,
        }
    }

    /// Pays for jobs through `ledger`: escrow before a job starts,
    /// settlement as its tasks are accepted.
    pub fn with_ledger(mut self, ledger: LedgerClient, settings: LedgerSettings) -> Self {
        self.ledger = Some((ledger, settings));
        self
    }

    /// The job store.
    pub fn store(&self) -> &JobStore {
        &self.store
    }

    /// The ledger jobs are paid through, if any.
    pub fn ledger(&self) -> Option<&LedgerClient> {
        self.ledger.as_ref().map(|(c, _)| c)
    }

    /// Funds a job's escrow (with a ledger), records the job and starts it;
    /// returns its id.
    pub async fn submit(&self, mut sub: JobSubmission) -> Result<JobId, SubmitError> {
        if sub.tasks.is_empty() {
            return Err(SubmitError::Empty);
        }
        for id in std::iter::once(&sub.module)
            .chain(std::iter::once(&sub.stdin))
            .chain(sub.inputs.iter().map(|(_, id)| id))
        {
            if !self.blobs.has(id) {
                return Err(SubmitError::MissingBlob(*id));
            }
        }
        let now = now_ms();
        let mut h = blake3::Hasher::new_derive_key("sharegrid job id v1");
        h.update(self.node.id().as_bytes());
        h.update(&now.to_le_bytes());
        h.update(&getrandom_u64().to_le_bytes());
        let id: JobId = hex::encode(&h.finalize().as_bytes()[..8]);
        let escrow = match &self.ledger {
            Some((client, settings)) => {
                let (escrow, amount, budget) = self.fund(client, settings, &id, &sub).await?;
                // The scheduler keeps the job within what the escrow covers.
                sub.budget = budget;
                Some((escrow, amount))
            }
            None => None,
        };
        self.store.create(&id, &sub, now)?;
        if let Some((escrow, amount)) = escrow {
            self.store.set_escrow(&id, &escrow, amount)?;
        }
        self.spawn(id.clone(), sub, now);
        Ok(id)
    }

    /// Opens the job's escrow and waits for it to be in a block. Returns the
    /// escrow id, the amount locked and the budget it covers.
    async fn fund(
        &self,
        client: &LedgerClient,
        settings: &LedgerSettings,
        id: &str,
        sub: &JobSubmission,
    ) -> Result<(ContentId, Amount, Amount), SubmitError> {
        let unfunded = SubmitError::Unfunded;
        let budget = worst_case_cost(sub).ok_or_else(|| {
            unfunded("job.budget and job.price_ceiling are both unset, so no escrow can cover it; set one".into())
        })?;
        let ledger = client.ledger();
        let amount = ledger
            .escrow_for(budget)
            .ok_or_else(|| unfunded(format!("the budget {budget} overflows")))?;
        let balance = ledger.account(&self.node.id()).balance;
        if balance < amount {
            return Err(unfunded(format!(
                "its escrow is {amount} (budget {budget} plus the network fee) but the balance of {} is {balance}",
                self.node.id().short()
            )));
        }
        let escrow = escrow_id(&self.node.id(), id);
        let height = ledger.head().height;
        let op = Op::OpenEscrow {
            job: escrow,
            budget: amount,
            tasks: (0..sub.tasks.len()).map(|i| task_id(id, i)).collect(),
            claim_height: height + settings.claim_after_blocks.max(1),
            close_height: height + settings.claim_after_blocks.max(1) + settings.close_after_blocks,
        };
        let (tx, at) = client.send_and_wait(op, LEDGER_WAIT).await.map_err(unfunded)?;
        tracing::info!(job = %id, escrow = %escrow.short(), %amount, tx = %tx.short(), height = at, "escrow open");
        Ok((escrow, amount, budget))
    }

    /// Pays the job's unpaid agreeing receipts, in batches; `last` closes
    /// the escrow (refunding the rest) after the final batch. Returns
    /// whether everything went through.
    async fn settle(&self, job: &str, last: bool) -> Result<bool, StoreError> {
        let Some((client, settings)) = &self.ledger else {
            return Ok(true);
        };
        let Some((escrow, _, settled)) = self.store.escrow(job)? else {
            return Ok(true);
        };
        if settled {
            return Ok(true);
        }
        // What the ledger already shows (a settlement that landed before a
        // crash, or providers' claims) is not paid again.
        let Some(on_ledger) = client.ledger().escrow(&escrow) else {
            // Closed: the last settlement landed (or the escrow expired).
            if last {
                self.store.set_settled(job)?;
            }
            return Ok(true);
        };
        let (done, unpaid): (Vec<_>, Vec<_>) = self
            .store
            .unpaid(job)?
            .into_iter()
            .partition(|(task, provider, _, _)| on_ledger.paid.contains(&(*task, *provider)));
        if !done.is_empty() {
            let pairs: Vec<(TaskId, NodeId)> = done.iter().map(|(t, p, _, _)| (*t, *p)).collect();
            self.store.mark_paid(job, &pairs)?;
        }
        let mut batches: Vec<Vec<(TaskId, NodeId, Paid)>> = vec![vec![]];
        let mut bytes = 0;
        for (task, provider, assignment, receipt) in unpaid {
            let size = assignment.body.len() + receipt.body.len() + 256;
            let current = batches.last().map_or(0, Vec::len);
            if current >= settings.settle_batch.max(1) || (current > 0 && bytes + size > SETTLE_BYTES) {
                batches.push(vec![]);
                bytes = 0;
            }
            bytes += size;
            if let Some(b) = batches.last_mut() {
                b.push((task, provider, Paid { assignment, receipt }));
            }
        }
        let n = batches.len();
        for (i, batch) in batches.into_iter().enumerate() {
            let is_last = last && i + 1 == n;
            if batch.is_empty() && !is_last {
                continue;
            }
            if !last && batch.len() < settings.settle_batch.max(1) {
                break;
            }
            let pairs: Vec<(TaskId, NodeId)> = batch.iter().map(|(t, p, _)| (*t, *p)).collect();
            let op = Op::Settle {
                job: escrow,
                paid: batch.into_iter().map(|(_, _, p)| p).collect(),
                last: is_last,
            };
            match client.send_and_wait(op, LEDGER_WAIT).await {
                Ok((tx, height)) => {
                    self.store.mark_paid(job, &pairs)?;
                    tracing::info!(job, tasks = pairs.len(), tx = %tx.short(), height, last = is_last, "settled");
                }
                Err(e) => {
                    tracing::warn!(job, "settlement failed: {e}");
                    return Ok(false);
                }
            }
        }
        if last {
            self.store.set_settled(job)?;
        }
        Ok(true)
    }

    /// Resumes every unfinished job in the store (call once at start).
    pub fn resume_all(&self) -> Result<usize, StoreError> {
        let jobs = self.store.unfinished()?;
        for (id, created) in &jobs {
            if let Some(sub) = self.store.submission(id)? {
                tracing::info!(job = %id, "resuming job");
                self.spawn(id.clone(), sub, *created);
            }
        }
        // Jobs that ended while the ledger was out of reach: pay and close now.
        for id in self.store.unsettled()? {
            let me = self.clone();
            tokio::spawn(async move {
                match me.settle(&id, true).await {
                    Ok(true) => tracing::info!(job = %id, "settled after restart"),
                    Ok(false) => tracing::warn!(job = %id, "still unsettled; retried at the next start"),
                    Err(e) => tracing::error!(job = %id, "settlement: {e}"),
                }
            });
        }
        Ok(jobs.len())
    }

    /// A running job's live state.
    pub fn live(&self, id: &str) -> Option<LiveJob> {
        self.live.lock().unwrap_or_else(|p| p.into_inner()).get(id).cloned()
    }

    fn spawn(&self, id: JobId, sub: JobSubmission, created_ms: u64) {
        let me = self.clone();
        tokio::spawn(async move {
            if let Err(e) = me.run(&id, sub, created_ms).await {
                tracing::error!(job = %id, error = %e, "job stopped on a store error; it resumes on restart");
            }
            me.live.lock().unwrap_or_else(|p| p.into_inner()).remove(&id);
        });
    }

    async fn run(&self, id: &str, sub: JobSubmission, created_ms: u64) -> Result<(), StoreError> {
        let rows = self.store.tasks(id)?;
        let specs: Vec<TaskSpec> = rows
            .iter()
            .map(|t| TaskSpec {
                id: t.id,
                fuel_limit: sub.limits.fuel,
                timeout_ms: sub.limits.timeout_ms,
            })
            .collect();
        let args: HashMap<TaskId, Vec<String>> = rows.iter().map(|t| (t.id, t.args.clone())).collect();
        let escrow = self.store.escrow(id)?.map(|(e, _, _)| e);
        let mut accepted_since_settle = 0usize;
        let mut policy = JobPolicy::new(
            sub.replication,
            sub.quorum,
            Constraints {
                price_ceiling: PricePerGfuel(sub.price_ceiling),
                arch: sub.arch,
                min_memory: sub.min_memory,
                min_speed: sharegrid_core::GigafuelPerSec(sub.min_speed),
                mode: sub.mode,
            },
            sub.budget,
        );
        policy.deadline_ms = sub.deadline_secs.map(|s| created_ms + s * 1000);
        policy.credibility = sub.credibility.map(|threshold| Credibility {
            threshold,
            ..Credibility::default()
        });
        policy.seed = u64::from_le_bytes(blake3::hash(id.as_bytes()).as_bytes()[..8].try_into().unwrap_or([0; 8]));
        let mut sched = Scheduler::new(policy, specs, self.store.reputation()?, now_ms());
        for t in &rows {
            // Accepted or failed: ended, never run again.
            if t.state != State::Running {
                sched.preaccept(&t.id);
            }
        }
        let mut events = self.node.subscribe();
        let mut peers: HashMap<PeerId, NodeId> = HashMap::new();
        let mut offers_known = false;
        let (tx, mut rx) = mpsc::channel::<Outcome>(4096);
        let mut fetching = 0usize;
        let mut ended: Option<(State, Option<String>)> = None;
        let mut last_live = std::time::Instant::now() - Duration::from_secs(1);
        loop {
            if !offers_known {
                for o in self.node.offers().await {
                    if let Some(p) = peer_id(&o.provider) {
                        peers.insert(p, o.provider);
                    }
                    sched.on_event(Event::Offer(ProviderOffer::from(&o)), now_ms());
                }
                offers_known = true;
            }
            for action in sched.poll(now_ms()) {
                match action {
                    Action::Dispatch {
                        task, provider, price, ..
                    } => {
                        let a = Assignment {
                            version: WIRE_VERSION,
                            task,
                            requestor: self.node.id(),
                            provider,
                            module: sub.module,
                            args: args.get(&task).cloned().unwrap_or_default(),
                            stdin: sub.stdin,
                            inputs: sub.inputs.clone(),
                            limits: sub.limits,
                            mode: sub.mode,
                            price,
                            expires_at_ms: now_ms() + 600_000,
                            escrow,
                        };
                        let (node, tx) = (self.node.clone(), tx.clone());
                        tokio::spawn(async move {
                            let r = node.assign(&a).await;
                            let _ = tx.send(Outcome::Answer(task, provider, Box::new(r))).await;
                        });
                    }
                    Action::Accepted {
                        task,
                        result,
                        fuel,
                        agreeing,
                        dissenting,
                    } => {
                        fetching += 1;
                        let (me, tx, job) = (self.clone(), tx.clone(), id.to_string());
                        // Only the records this verdict touched.
                        let rep = sched.reputation();
                        let records: Vec<_> = agreeing
                            .iter()
                            .chain(dissenting.iter().map(|v| &v.provider))
                            .map(|p| (*p, rep.get(p)))
                            .collect();
                        tokio::spawn(async move {
                            let r = me
                                .keep_result(&job, task, result, fuel, &agreeing, &dissenting, &records)
                                .await;
                            let _ = tx.send(Outcome::Kept(task, r)).await;
                        });
                    }
                    Action::TaskFailed { task, reason, votes } => {
                        tracing::warn!(job = %id, %task, "task failed: {reason} ({} receipts kept)", votes.len());
                        self.store.fail_task(id, &task, &reason)?;
                    }
                    Action::JobDone => ended = Some((State::Done, None)),
                    Action::JobFailed { reason } => {
                        tracing::warn!(job = %id, "job failed: {reason}");
                        ended = Some((State::Failed, Some(reason)));
                    }
                }
            }
            if last_live.elapsed() >= Duration::from_millis(200) || ended.is_some() {
                last_live = std::time::Instant::now();
                let progress = sched.progress();
                let live = LiveJob {
                    why_no_match: (progress.providers_in_use == 0).then(|| sched.no_match().to_string()),
                    progress,
                };
                self.live
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .insert(id.to_string(), live);
            }
            if let Some((state, reason)) = &ended
                && fetching == 0
            {
                self.store.save_reputation(sched.reputation())?;
                // Pay for the work, close the escrow. If the ledger is out of
                // reach the job still ends; the rest is settled on restart.
                if !self.settle(id, true).await? {
                    tracing::warn!(job = %id, "job ended unsettled; settlement is retried when the node restarts");
                }
                self.store.finish(id, *state, reason.as_deref(), now_ms())?;
                return Ok(());
            }
            tokio::select! {
                ev = events.recv() => match ev {
                    Ok(NodeEvent::OfferSeen(o)) => {
                        if let Some(p) = peer_id(&o.provider) {
                            peers.insert(p, o.provider);
                        }
                        sched.on_event(Event::Offer(ProviderOffer::from(&*o)), now_ms());
                    }
                    Ok(NodeEvent::PeerGone { peer, .. }) => {
                        if let Some(p) = peers.get(&peer) {
                            sched.on_event(Event::Gone(*p), now_ms());
                        }
                    }
                    Ok(_) => {}
                    Err(broadcast::error::RecvError::Lagged(_)) => offers_known = false,
                    // The node stopped: the job stays recorded as running and resumes.
                    Err(broadcast::error::RecvError::Closed) => return Ok(()),
                },
                Some(out) = rx.recv() => match out {
                    Outcome::Answer(task, provider, r) => self.on_answer(id, &mut sched, task, provider, *r)?,
                    Outcome::Kept(task, r) => {
                        fetching -= 1;
                        if r.is_err() && !self.node.is_running() {
                            // Not the result's fault: the task stays open in
                            // the store and runs again when the job resumes.
                            return Ok(());
                        }
                        match r {
                            Err(why) => {
                                tracing::warn!(job = %id, %task, "{why}");
                                self.store.fail_task(id, &task, &why)?;
                            }
                            Ok(()) => {
                                accepted_since_settle += 1;
                                let batch = self.ledger.as_ref().map_or(usize::MAX, |(_, s)| s.settle_batch.max(1));
                                if accepted_since_settle >= batch {
                                    accepted_since_settle = 0;
                                    self.settle(id, false).await?;
                                }
                            }
                        }
                    }
                },
                _ = tokio::time::sleep(Duration::from_millis(250)) => {}
            }
            if !self.node.is_running() {
                return Ok(()); // the node stopped: the job resumes with it
            }
        }
    }

    fn on_answer(
        &self,
        job: &str,
        sched: &mut Scheduler,
        task: TaskId,
        provider: NodeId,
        r: Result<Assigned, crate::daemon::AssignError>,
    ) -> Result<(), StoreError> {
        let now = now_ms();
        match r {
            Ok(Assigned::Receipt {
                receipt,
                signed,
                assignment,
            }) => {
                self.store.receipt(job, &receipt, &signed, &assignment)?;
                sched.on_event(
                    Event::Receipt {
                        task,
                        vote: Vote {
                            provider,
                            result: receipt.result,
                            fuel: receipt.fuel,
                        },
                        charge: receipt.charge,
                        deterministic: receipt.outcome.is_deterministic(),
                    },
                    now,
                );
            }
            Ok(Assigned::Refused(why)) => sched.on_event(Event::Failed { task, provider, why }, now),
            Err(e) => sched.on_event(
                Event::Failed {
                    task,
                    provider,
                    why: e.to_string(),
                },
                now,
            ),
        }
        Ok(())
    }

    #[allow(clippy::too_many_arguments)]
    async fn keep_result(
        &self,
        job: &str,
        task: TaskId,
        result: sharegrid_core::ResultHash,
        fuel: sharegrid_core::Fuel,
        agreeing: &[NodeId],
        dissenting: &[Vote],
        records: &[(NodeId, sharegrid_sched::Record)],
    ) -> Result<(), String> {
        let id = ContentId::from_bytes(*result.as_bytes());
        let mut last = String::from("no provider to fetch from");
        let mut got = false;
        for p in agreeing {
            match self.node.fetch_into(p, id, MAX_RESULT_BYTES, &self.blobs).await {
                Ok(()) => {
                    got = true;
                    break;
                }
                Err(e) => last = e.to_string(),
            }
        }
        if !got {
            return Err(format!("accepted result {id} could not be fetched: {last}"));
        }
        let dissent: Vec<NodeId> = dissenting.iter().map(|v| v.provider).collect();
        self.store
            .accept(job, &task, &id, fuel, &dissent, records)
            .map_err(|e| e.to_string())
    }
}

enum Outcome {
    Answer(TaskId, NodeId, Box<Result<Assigned, crate::daemon::AssignError>>),
    Kept(TaskId, Result<(), String>),
}

fn getrandom_u64() -> u64 {
    let mut b = [0u8; 8];
    let _ = getrandom::fill(&mut b);
    u64::from_le_bytes(b)
}
