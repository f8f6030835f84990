//! The requestor engine: runs jobs on the network. For each job a task
//! drives a [`JobDriver`] with what the node hears (offers, departures,
//! receipts, refusals) and carries out its actions — sends assignments,
//! keeps accepted results, records verdicts — persisting every step in the
//! [`JobStore`], so that a restarted node resumes its jobs without
//! re-running an accepted task.
//!
//! Payment goes through [`Payments`]: a job starts only once its escrow is
//! in a block (sized from the job's own replication policy), and the
//! driver's settlement requests are queued to the payment task, which
//! never holds up dispatch.
//!
//! Never does: accept a result the scheduler did not accept, or mark a task
//! accepted before its result's bytes are in the blob store.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use sharegrid_core::{Amount, Assignment, ContentId, Fuel, JobId, NodeId, Offer, ResultHash, TaskId};
use sharegrid_net::{PeerId, peer_id};
use sharegrid_sched::{Progress, Record};
use tokio::sync::{broadcast, mpsc};
use tracing::Instrument;

use super::driver::{Funding, JobAction, JobDriver, JobInput, KeepError};
use super::store::{JobRow, JobStore, State, StoreError};
use super::submission::JobSubmission;
use crate::blobs::BlobStore;
use crate::clock::now_ms;
use crate::daemon::{AssignError, Assigned, NodeEvent, NodeHandle};
use crate::payment::{FundError, Payments};

/// How often a job's driver is asked to act when nothing else happens
/// (timeouts, deadlines, blocked providers coming free).
const JOB_TICK: Duration = Duration::from_millis(250);

/// What a running job looks like now.
#[derive(Clone, Debug, Default, Serialize, Deserialize, utoipa::ToSchema)]
pub struct LiveJob {
    /// Counts.
    pub progress: Progress,
    /// Why no provider can take the job's work, while that is so.
    pub why_no_match: Option<String>,
    /// What the job waits for, and since when, while it lacks providers.
    #[serde(default)]
    pub waiting: Option<sharegrid_sched::Waiting>,
    /// When the job fails if it has not finished, ms since the epoch.
    #[serde(default)]
    pub deadline_ms: Option<u64>,
}

/// Something that happened to a job, for whoever listens.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum JobEvent {
    /// A task ended: accepted (its result kept) or failed.
    TaskEnded {
        /// The job.
        job: JobId,
        /// The task.
        task: TaskId,
        /// Accepted, or failed.
        accepted: bool,
    },
    /// The job lacks providers and waits for them (see
    /// [`sharegrid_sched::Scheduler::waiting`]): sent when it starts
    /// waiting, or waits for something else.
    Waiting {
        /// The job.
        job: JobId,
        /// For what, since when.
        waiting: sharegrid_sched::Waiting,
    },
    /// The job ended (recorded in the store).
    Ended {
        /// The job.
        job: JobId,
        /// Done or failed.
        state: State,
    },
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
    /// A term breaks the rules a job file's would be refused for.
    #[error(transparent)]
    Terms(#[from] sharegrid_core::job::TermError),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The job cannot be paid for.
    #[error("cannot fund the job: {0}")]
    Unfunded(#[from] FundError),
}

/// Why a job could not be cancelled.
#[derive(Debug, thiserror::Error)]
pub enum CancelError {
    /// No such job.
    #[error("no job {0:?} (or the prefix is ambiguous): see `sharegrid jobs`")]
    NoJob(String),
    /// It ended already.
    #[error("job {0} has ended already ({1:?})")]
    Ended(JobId, State),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The engine. Cheap to clone.
#[derive(Clone, Debug)]
pub struct Requestor {
    node: NodeHandle,
    blobs: BlobStore,
    store: JobStore,
    live: Arc<Mutex<HashMap<JobId, LiveJob>>>,
    /// Each running job's driver inputs (for cancelling it).
    drivers: Arc<Mutex<HashMap<JobId, mpsc::Sender<JobInput>>>>,
    payments: Option<Payments>,
    events: broadcast::Sender<JobEvent>,
}

impl Requestor {
    /// An engine over a running node, its blob store and job store.
    pub fn new(node: NodeHandle, blobs: BlobStore, store: JobStore) -> Self {
        Requestor {
            node,
            blobs,
            store,
            live: Arc::default(),
            drivers: Arc::default(),
            payments: None,
            events: broadcast::channel(1024).0,
        }
    }

    /// Pays for jobs through `payments`: escrow before a job starts,
    /// settlement as its tasks are accepted.
    pub fn with_payments(mut self, payments: Payments) -> Self {
        self.payments = Some(payments);
        self
    }

    /// The job store.
    pub fn store(&self) -> &JobStore {
        &self.store
    }

    /// The payment task jobs are paid through, if any.
    pub fn payments(&self) -> Option<&Payments> {
        self.payments.as_ref()
    }

    /// Job events from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<JobEvent> {
        self.events.subscribe()
    }

    /// Funds a job's escrow (with payments), records the job and starts it;
    /// returns its id.
    pub async fn submit(&self, mut sub: JobSubmission) -> Result<JobId, SubmitError> {
        if sub.tasks.is_empty() {
            return Err(SubmitError::Empty);
        }
        sub.check()?;
        for id in std::iter::once(&sub.module)
            .chain(std::iter::once(&sub.stdin))
            .chain(sub.inputs.iter().map(|(_, id)| id))
        {
            if !self.blobs.has(id) {
                return Err(SubmitError::MissingBlob(*id));
            }
        }
        let now = now_ms();
        let id = JobId::new(&self.node.id(), now, random_u64());
        let funded = match &self.payments {
            Some(p) => {
                let funded = p.fund(&id, &sub).await?;
                // The scheduler keeps the job within what the escrow covers.
                sub.budget = funded.budget;
                Some(funded)
            }
            None => None,
        };
        self.store.create(&id, &sub, now)?;
        if let Some(f) = funded {
            self.store.set_escrow(&id, &f.escrow, f.amount)?;
        }
        self.spawn(id, sub, now);
        Ok(id)
    }

    /// Resumes every unfinished job in the store, and queues the settlement
    /// of jobs that ended unsettled (call once at start).
    pub fn resume_all(&self) -> Result<usize, StoreError> {
        let jobs = self.store.unfinished()?;
        for (id, created) in &jobs {
            if let Some(sub) = self.store.submission(id)? {
                tracing::info!(job = %id, "resuming job");
                self.spawn(*id, sub, *created);
            }
        }
        if let Some(p) = &self.payments {
            for id in self.store.unsettled()? {
                tracing::info!(job = %id, "settling a job that ended unsettled");
                p.request_settlement(id, true);
            }
        }
        Ok(jobs.len())
    }

    /// Cancels running job `id` (or a unique prefix): recorded first, so a
    /// restart ends it too; then its driver assigns nothing more, keeps and
    /// pays what was accepted, and ends it failed ([`super::driver::CANCELLED`]),
    /// its escrow settled and the rest refunded. → the job's id.
    pub async fn cancel(&self, id: &str) -> Result<JobId, CancelError> {
        let row = self.store.job(id)?.ok_or_else(|| CancelError::NoJob(id.to_owned()))?;
        if row.state != State::Running || !self.store.cancel(&row.id)? {
            let state = self.store.job(&row.id.to_string())?.map_or(row.state, |r| r.state);
            return Err(CancelError::Ended(row.id, state));
        }
        let tx = self
            .drivers
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&row.id)
            .cloned();
        if let Some(tx) = tx {
            // A driver that has just ended has dropped its receiver: nothing to tell.
            let _ = tx.send(JobInput::Cancel).await;
        }
        Ok(row.id)
    }

    /// A running job's live state.
    pub fn live(&self, id: &JobId) -> Option<LiveJob> {
        self.live.lock().unwrap_or_else(|p| p.into_inner()).get(id).cloned()
    }

    /// Waits until job `id` has ended (an event, not a poll), or the node
    /// stops; returns its row.
    pub async fn wait(&self, id: &JobId) -> Result<Option<JobRow>, StoreError> {
        let mut events = self.subscribe();
        let life = self.node.lifecycle().clone();
        loop {
            // The store is read at the start and when the job may have
            // ended, never per task event (a job's row sums its tasks).
            let row = self.store.job(&id.to_string())?;
            if row.as_ref().is_none_or(|r| r.state != State::Running) {
                return Ok(row);
            }
            loop {
                tokio::select! {
                    ev = events.recv() => match ev {
                        Ok(JobEvent::Ended { job, .. }) if job == *id => break,
                        Ok(_) => {}
                        Err(broadcast::error::RecvError::Lagged(_)) => break,
                        Err(broadcast::error::RecvError::Closed) => return Ok(row),
                    },
                    () = life.stopping() => return Ok(row),
                }
            }
        }
    }

    fn spawn(&self, id: JobId, sub: JobSubmission, created_ms: u64) {
        let me = self.clone();
        let span = tracing::info_span!("job", job = %id);
        self.node.metrics().jobs_running.inc();
        self.node.lifecycle().spawn(
            async move {
                if let Err(e) = me.run(id, &sub, created_ms).await {
                    tracing::error!(error = %e, "job stopped on a store error; it resumes on restart");
                }
                me.live.lock().unwrap_or_else(|p| p.into_inner()).remove(&id);
                me.drivers.lock().unwrap_or_else(|p| p.into_inner()).remove(&id);
                me.node.metrics().jobs_running.dec();
            }
            .instrument(span),
        );
    }

    async fn run(&self, id: JobId, sub: &JobSubmission, created_ms: u64) -> Result<(), StoreError> {
        let rows = self.store.tasks(&id)?;
        let funding = Funding {
            chain: self.node.chain(),
            escrow: self.store.escrow(&id)?.map(|e| e.escrow),
        };
        let settle_batch = self.payments.as_ref().map(Payments::settle_batch);
        let mut driver = JobDriver::new(
            id,
            self.node.id(),
            sub,
            created_ms,
            &rows,
            funding,
            settle_batch,
            self.store.reputation()?,
            now_ms(),
        );
        let mut events = self.node.subscribe();
        let life = self.node.lifecycle().clone();
        let mut peers: HashMap<PeerId, NodeId> = HashMap::new();
        let (tx, mut rx) = mpsc::channel::<JobInput>(4096);
        let mut tick = tokio::time::interval(JOB_TICK);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        self.drivers
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(id, tx.clone());
        let mut inputs: Vec<JobInput> = self.offers(&mut peers).await;
        // Cancelled before a restart: it ends now.
        if self.store.is_cancelled(&id)? {
            inputs.push(JobInput::Cancel);
        }
        let mut last_live = std::time::Instant::now() - Duration::from_secs(1);
        let mut waiting_for: Option<String> = None;
        loop {
            inputs.push(JobInput::Tick);
            for input in inputs.drain(..) {
                for action in driver.handle(input, now_ms()) {
                    self.act(id, action, &tx)?;
                }
            }
            if driver.is_finished() {
                return Ok(());
            }
            if last_live.elapsed() >= Duration::from_millis(200) {
                last_live = std::time::Instant::now();
                let live = driver.live();
                // Told once each time the job starts waiting, or waits for
                // something else.
                if live.waiting.as_ref().map(|w| &w.why) != waiting_for.as_ref() {
                    waiting_for = live.waiting.as_ref().map(|w| w.why.clone());
                    if let Some(waiting) = live.waiting.clone() {
                        let _ = self.events.send(JobEvent::Waiting { job: id, waiting });
                    }
                }
                self.live.lock().unwrap_or_else(|p| p.into_inner()).insert(id, live);
            }
            tokio::select! {
                ev = events.recv() => match ev {
                    Ok(NodeEvent::OfferSeen(o)) => {
                        if let Some(p) = peer_id(&o.provider) {
                            peers.insert(p, o.provider);
                        }
                        inputs.push(JobInput::Offer(Box::new(self.checked(*o))));
                    }
                    Ok(NodeEvent::PeerGone { peer, .. }) => {
                        if let Some(p) = peers.get(&peer) {
                            inputs.push(JobInput::Gone(*p));
                        }
                    }
                    Ok(_) => {}
                    Err(broadcast::error::RecvError::Lagged(_)) => inputs = self.offers(&mut peers).await,
                    // The node stopped: the job stays recorded as running and resumes.
                    Err(broadcast::error::RecvError::Closed) => return Ok(()),
                },
                Some(input) = rx.recv() => inputs.push(input),
                _ = tick.tick() => {}
                // The node is stopping: the job resumes with it.
                () = life.stopping() => return Ok(()),
            }
        }
    }

    /// Every live offer, as inputs (after a start or a missed event).
    async fn offers(&self, peers: &mut HashMap<PeerId, NodeId>) -> Vec<JobInput> {
        self.node
            .offers()
            .await
            .into_iter()
            .map(|o| {
                if let Some(p) = peer_id(&o.provider) {
                    peers.insert(p, o.provider);
                }
                JobInput::Offer(Box::new(self.checked(o)))
            })
            .collect()
    }

    /// The offer with its stated stake checked against the ledger: the
    /// scheduler sees no more than the provider has bonded (nothing, on a
    /// node that keeps no ledger to check it by).
    fn checked(&self, mut o: Offer) -> Offer {
        let bonded = self
            .payments
            .as_ref()
            .map_or(Amount(0), |p| p.ledger().with_state(|s| s.stake(&o.provider)));
        o.stake = o.stake.min(bonded);
        o
    }

    fn act(&self, id: JobId, action: JobAction, tx: &mpsc::Sender<JobInput>) -> Result<(), StoreError> {
        match action {
            JobAction::Assign(a) => {
                let (me, tx) = (self.clone(), tx.clone());
                self.node.lifecycle().spawn(
                    async move {
                        let answer = me.node.assign(&a).await;
                        let input = me.answered(id, &a, answer);
                        let _ = tx.send(input).await;
                    }
                    .in_current_span(),
                );
            }
            JobAction::Keep {
                task,
                result,
                fuel,
                agreeing,
                dissenting,
                records,
            } => {
                let (me, tx) = (self.clone(), tx.clone());
                self.node.lifecycle().spawn(
                    async move {
                        let kept = me.keep(id, task, result, fuel, &agreeing, &dissenting, &records).await;
                        // Stopping: the task stays open and runs again on resume.
                        if kept.is_err() && !me.node.is_running() {
                            return;
                        }
                        if kept.is_ok() {
                            let _ = me.events.send(JobEvent::TaskEnded {
                                job: id,
                                task,
                                accepted: true,
                            });
                        }
                        let _ = tx.send(JobInput::Kept { task, result: kept }).await;
                    }
                    .in_current_span(),
                );
            }
            JobAction::FailTask { task, reason } => {
                tracing::warn!(%task, "{reason}");
                self.node.metrics().tasks_failed.inc();
                self.store.fail_task(&id, &task, &reason)?;
                let _ = self.events.send(JobEvent::TaskEnded {
                    job: id,
                    task,
                    accepted: false,
                });
            }
            JobAction::Settle { last } => {
                if let Some(p) = &self.payments {
                    p.request_settlement(id, last);
                }
            }
            JobAction::Finish {
                state,
                reason,
                reputation,
            } => {
                self.store.save_reputation(&reputation)?;
                self.store.finish(&id, state, reason.as_deref(), now_ms())?;
                tracing::info!(state = state.as_str(), "job ended");
                let _ = self.events.send(JobEvent::Ended { job: id, state });
            }
        }
        Ok(())
    }

    /// The driver's input for a provider's answer; a receipt is kept as
    /// evidence before the driver hears of it.
    fn answered(&self, id: JobId, a: &Assignment, answer: Result<Assigned, AssignError>) -> JobInput {
        let (task, provider) = (a.task, a.provider);
        match answer {
            Ok(Assigned::Receipt {
                receipt,
                signed,
                assignment,
            }) => {
                self.node.metrics().receipt("received");
                match self.store.receipt(&id, &receipt, &signed, &assignment) {
                    Ok(()) => JobInput::Receipt(receipt),
                    Err(e) => JobInput::Failed {
                        task,
                        provider,
                        why: format!("cannot keep the receipt: {e}"),
                    },
                }
            }
            Ok(Assigned::Refused(why)) => JobInput::Failed { task, provider, why },
            Err(e) => JobInput::Failed {
                task,
                provider,
                why: e.to_string(),
            },
        }
    }

    /// Fetches an accepted result from an agreeing provider and records the
    /// task accepted with its verdicts.
    #[allow(clippy::too_many_arguments)]
    async fn keep(
        &self,
        job: JobId,
        task: TaskId,
        result: ResultHash,
        fuel: Fuel,
        agreeing: &[NodeId],
        dissenting: &[NodeId],
        records: &[(NodeId, Record)],
    ) -> Result<(), KeepError> {
        let id = ContentId::from_bytes(*result.as_bytes());
        let mut last = String::from("no provider to fetch from");
        let mut got = false;
        for p in agreeing {
            match self
                .node
                .fetch_into(p, id, sharegrid_net::MAX_RESULT_BYTES, &self.blobs)
                .await
            {
                Ok(()) => {
                    got = true;
                    break;
                }
                Err(e) => last = e.to_string(),
            }
        }
        if !got {
            return Err(KeepError::Fetch { result: id, last });
        }
        let (store, dissent, records) = (self.store.clone(), dissenting.to_vec(), records.to_vec());
        tokio::task::spawn_blocking(move || store.accept(&job, &task, &id, fuel, &dissent, &records))
            .await
            .map_err(|_| KeepError::Stopped)??;
        let m = self.node.metrics();
        m.tasks_accepted.inc();
        for _ in agreeing {
            m.receipt("agreed");
        }
        for _ in dissenting {
            m.receipt("dissent");
        }
        Ok(())
    }
}

fn random_u64() -> u64 {
    let mut b = [0u8; 8];
    // Without entropy the id still differs by time and requestor.
    let _ = getrandom::fill(&mut b);
    u64::from_le_bytes(b)
}
