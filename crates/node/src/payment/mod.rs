//! Payment, in one place: a job's escrow (funded before it runs, sized from
//! its own replication policy), its settlement (agreeing receipts paid in
//! batches, the last batch closing the escrow), a provider's claims for
//! work its requestor left unsettled, and the closing of a requestor's
//! expired escrows.
//!
//! What to send is decided without I/O in [`plan`]; this module carries the
//! plans out as the node's payment task: one task with a bounded queue of
//! settlement requests, so that settling never holds up a job's dispatch.
//! A job's settlements run one at a time (requests that arrive meanwhile
//! are merged); ledger errors are typed, retryable ones are retried with
//! exponential backoff, refusals are recorded with the job and reported —
//! nothing is swallowed. Every few seconds the task also runs a claims
//! pass over the provider's kept proofs ([`ProofStore`]).
//!
//! Never does: pay a (task, provider) pair the ledger shows paid, or send a
//! claim before the escrow's claim height.

pub(crate) mod plan;
pub(crate) mod proofs;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use sharegrid_core::{Amount, ContentId, JobId, TaskId};
use sharegrid_ledger::Op;
use tokio::sync::{broadcast, mpsc};

pub use plan::{Batch, ClaimStep, KeptProof, SettlementPlan, Unpaid, expired_escrows, plan_claims, plan_settlement};
pub use proofs::ProofStore;

use crate::config::LedgerSettings;
use crate::daemon::NodeHandle;
use crate::job::{JobStore, JobSubmission, StoreError};
use crate::ledger::{LedgerClient, LedgerError};
use crate::lifecycle::Lifecycle;
use crate::metrics::Metrics;

/// How long a transaction may take to land in a block before the attempt
/// counts as failed (and is retried).
const LEDGER_WAIT: Duration = Duration::from_secs(60);
/// Settlement requests waiting for the payment task at most.
const QUEUE: usize = 1024;
/// First retry delay; doubled per attempt up to [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_millis(500);
/// Longest retry delay.
const MAX_BACKOFF: Duration = Duration::from_secs(60);

/// A job's escrow, open in a block.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Funded {
    /// The escrow's id.
    pub escrow: ContentId,
    /// What it locked: the budget plus the network fee.
    pub amount: Amount,
    /// The budget it covers (the scheduler keeps the job within it).
    pub budget: Amount,
}

/// Why a job's escrow could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum FundError {
    /// Neither a budget nor a price ceiling bounds the job.
    #[error("job.budget and job.price_ceiling are both unset, so no escrow can cover it; set one")]
    Unbounded,
    /// The amounts overflow.
    #[error("the budget {0} overflows")]
    Overflow(Amount),
    /// The requestor's balance does not cover the escrow.
    #[error("its escrow is {amount} (budget {budget} plus the network fee) but the balance of {account} is {balance}")]
    Insufficient {
        /// The escrow.
        amount: Amount,
        /// The budget.
        budget: Amount,
        /// The requestor (short).
        account: String,
        /// Its balance.
        balance: Amount,
    },
    /// The ledger did not take the escrow.
    #[error(transparent)]
    Ledger(#[from] LedgerError),
}

/// Why a settlement or claim did not go through.
#[derive(Debug, thiserror::Error)]
pub enum PayError {
    /// The ledger.
    #[error(transparent)]
    Ledger(#[from] LedgerError),
    /// The job store.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The node is stopping.
    #[error("the node is stopping")]
    Stopping,
}

impl PayError {
    /// Whether trying again later may succeed.
    pub fn is_retryable(&self) -> bool {
        match self {
            PayError::Ledger(e) => e.is_retryable(),
            // A store that failed (a busy or full disk) may recover; a
            // row that does not decode will not.
            PayError::Store(StoreError::Sql(_)) => true,
            PayError::Store(StoreError::Corrupt(..)) => false,
            PayError::Stopping => false,
        }
    }
}

/// What the payment task did, for whoever listens.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PaymentEvent {
    /// A job's escrow is open in a block.
    Funded {
        /// The job.
        job: JobId,
        /// Its escrow.
        escrow: ContentId,
    },
    /// A job is settled: its agreeing receipts paid, its escrow closed.
    Settled {
        /// The job.
        job: JobId,
    },
    /// A settlement attempt failed.
    SettleFailed {
        /// The job.
        job: JobId,
        /// Why.
        why: String,
        /// Whether it will be tried again (else: at the next start).
        retrying: bool,
    },
    /// This provider claimed its pay for a task (paid at once, or held
    /// for the challenge window).
    Claimed {
        /// The escrow.
        escrow: ContentId,
        /// The task.
        task: TaskId,
    },
    /// This provider collected a held claim.
    Collected {
        /// The escrow.
        escrow: ContentId,
        /// The task.
        task: TaskId,
    },
    /// This node disputed receipts or a claim for a task (as a provider
    /// whose receipt disagrees, or a requestor that saw replicas disagree).
    Disputed {
        /// The escrow.
        escrow: ContentId,
        /// The task.
        task: TaskId,
    },
    /// One of this requestor's expired escrows was closed.
    EscrowClosed {
        /// The escrow.
        escrow: ContentId,
    },
}

#[derive(Debug)]
struct Request {
    job: JobId,
    last: bool,
    attempt: u32,
    since: Instant,
}

/// The payment task's handle. Cheap to clone.
#[derive(Clone, Debug)]
pub struct Payments {
    requests: mpsc::Sender<Request>,
    events: broadcast::Sender<PaymentEvent>,
    client: LedgerClient,
    settings: LedgerSettings,
    lifecycle: Lifecycle,
    metrics: Metrics,
}

impl Payments {
    /// Starts the payment task of `node`, paying through `client`, with
    /// `store` (jobs, receipts, proofs) and the `[ledger]` settings.
    pub fn start(node: &NodeHandle, client: LedgerClient, store: JobStore, settings: LedgerSettings) -> Payments {
        let (requests, rx) = mpsc::channel(QUEUE);
        let (done_tx, done_rx) = mpsc::channel(QUEUE);
        let payments = Payments {
            requests,
            events: broadcast::channel(1024).0,
            client,
            settings,
            lifecycle: node.lifecycle().clone(),
            metrics: node.metrics().clone(),
        };
        let task = Task {
            payments: payments.clone(),
            proofs: ProofStore::of(&store),
            store,
            settling: HashMap::new(),
            done: done_tx,
        };
        payments.lifecycle.spawn(task.run(rx, done_rx));
        payments
    }

    /// The ledger client payments go through.
    pub fn client(&self) -> &LedgerClient {
        &self.client
    }

    /// The ledger payments go through.
    pub fn ledger(&self) -> &std::sync::Arc<crate::ledger::Ledger> {
        self.client.ledger()
    }

    /// Accepted tasks paid per settlement while a job runs.
    pub fn settle_batch(&self) -> usize {
        self.settings.settle_batch.max(1)
    }

    /// Payment events from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<PaymentEvent> {
        self.events.subscribe()
    }

    /// Opens job `job`'s escrow for `sub` and waits for it to be in a block.
    pub async fn fund(&self, job: &JobId, sub: &JobSubmission) -> Result<Funded, FundError> {
        let budget = sub.escrow_budget().ok_or(FundError::Unbounded)?;
        let ledger = self.client.ledger();
        let amount = ledger.escrow_for(budget).ok_or(FundError::Overflow(budget))?;
        let me = ledger.me();
        let balance = ledger.account(&me).balance;
        if balance < amount {
            return Err(FundError::Insufficient {
                amount,
                budget,
                account: me.short(),
                balance,
            });
        }
        let escrow = job.escrow(&me);
        let height = ledger.head().height;
        let claim_after = self.settings.claim_after_blocks.max(1);
        let op = Op::OpenEscrow {
            // A provider's claim is paid at once with the job's quorum of
            // agreeing receipts (at least 2), otherwise it is held.
            quorum: sub.quorum,
            min_stake: sub.min_stake,
            escrow,
            budget: amount,
            tasks: (0..sub.tasks.len()).map(|i| job.task(i)).collect(),
            claim_height: height + claim_after,
            close_height: height + claim_after + self.settings.close_after_blocks,
        };
        let (tx, at) = self.client.send_and_wait(op, LEDGER_WAIT).await?;
        tracing::info!(%job, escrow = %escrow.short(), %amount, tx = %tx.short(), height = at, "escrow open");
        let _ = self.events.send(PaymentEvent::Funded { job: *job, escrow });
        Ok(Funded { escrow, amount, budget })
    }

    /// Queues the settlement of job `job` (`last`: it has ended, so the
    /// escrow closes). Returns at once; the payment task does the rest.
    pub fn request_settlement(&self, job: JobId, last: bool) {
        self.enqueue(Request {
            job,
            last,
            attempt: 0,
            since: Instant::now(),
        });
    }

    fn enqueue(&self, r: Request) {
        self.metrics.payment_queue.inc();
        match self.requests.try_send(r) {
            Ok(()) => {}
            Err(mpsc::error::TrySendError::Full(r)) => {
                // Backpressure without blocking the caller: the request
                // waits for room in a task of its own.
                let (tx, life) = (self.requests.clone(), self.lifecycle.clone());
                self.lifecycle.spawn(async move {
                    tokio::select! {
                        _ = tx.send(r) => {}
                        () = life.stopping() => {}
                    }
                });
            }
            Err(mpsc::error::TrySendError::Closed(_)) => {
                self.metrics.payment_queue.dec();
            }
        }
    }

    fn emit(&self, ev: PaymentEvent) {
        let _ = self.events.send(ev);
    }
}

/// The outcome of one settlement attempt, back to the task.
struct Done {
    request: Request,
    result: Result<(), PayError>,
}

#[derive(Debug, Default)]
struct Settling {
    /// A request that came while one ran: whether it was `last`.
    queued: Option<bool>,
}

struct Task {
    payments: Payments,
    store: JobStore,
    proofs: ProofStore,
    /// Jobs being settled.
    settling: HashMap<JobId, Settling>,
    done: mpsc::Sender<Done>,
}

impl Task {
    async fn run(mut self, mut requests: mpsc::Receiver<Request>, mut done: mpsc::Receiver<Done>) {
        let life = self.payments.lifecycle.clone();
        let every = Duration::from_secs(self.payments.settings.idle_block_secs.max(1));
        let mut claims = tokio::time::interval(every);
        claims.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        claims.tick().await;
        let (claims_done_tx, mut claims_done) = mpsc::channel::<()>(1);
        let mut claiming = false;
        loop {
            tokio::select! {
                () = life.stopping() => break,
                Some(r) = requests.recv() => {
                    self.payments.metrics.payment_queue.dec();
                    self.on_request(r);
                }
                Some(d) = done.recv() => self.on_done(d),
                _ = claims.tick(), if !claiming => {
                    claiming = true;
                    let (p, proofs, tx) = (self.payments.clone(), self.proofs.clone(), claims_done_tx.clone());
                    life.spawn(async move {
                        claims_pass(&p, &proofs).await;
                        let _ = tx.send(()).await;
                    });
                }
                Some(()) = claims_done.recv() => claiming = false,
            }
        }
    }

    fn on_request(&mut self, r: Request) {
        if let Some(s) = self.settling.get_mut(&r.job) {
            s.queued = Some(s.queued.unwrap_or(false) || r.last);
            return;
        }
        self.settling.insert(r.job, Settling::default());
        let (p, store, tx) = (self.payments.clone(), self.store.clone(), self.done.clone());
        let span = tracing::info_span!("settle", job = %r.job);
        let life = p.lifecycle.clone();
        life.spawn(tracing::Instrument::instrument(
            async move {
                let result = tokio::select! {
                    r = settle(&p, &store, r.job, r.last) => r,
                    () = p.lifecycle.stopping() => Err(PayError::Stopping),
                };
                let _ = tx.send(Done { request: r, result }).await;
            },
            span,
        ));
    }

    fn on_done(&mut self, d: Done) {
        let Done { request: r, result } = d;
        let queued = self.settling.remove(&r.job).and_then(|s| s.queued);
        let p = &self.payments;
        match result {
            Ok(()) => {
                if r.last {
                    p.metrics.settlement_latency.observe(r.since.elapsed().as_secs_f64());
                    p.emit(PaymentEvent::Settled { job: r.job });
                }
            }
            Err(PayError::Stopping) => return,
            Err(e) => {
                let retrying = e.is_retryable();
                p.metrics.payment_failed(retrying);
                let why = e.to_string();
                if retrying {
                    let delay = backoff(r.attempt);
                    tracing::warn!(job = %r.job, "settlement failed: {why}; retrying in {delay:?}");
                    let again = Request {
                        job: r.job,
                        last: r.last || queued.unwrap_or(false),
                        attempt: r.attempt + 1,
                        since: r.since,
                    };
                    let (payments, life) = (p.clone(), p.lifecycle.clone());
                    life.spawn(async move {
                        tokio::select! {
                            () = tokio::time::sleep(delay) => payments.enqueue(again),
                            () = payments.lifecycle.stopping() => {}
                        }
                    });
                    p.emit(PaymentEvent::SettleFailed {
                        job: r.job,
                        why,
                        retrying,
                    });
                    return;
                }
                tracing::error!(job = %r.job, "settlement refused: {why}; it is tried again at the next start");
                if let Err(e) = self.store.set_settle_error(&r.job, &why) {
                    tracing::error!(job = %r.job, "cannot record the settlement's failure: {e}");
                }
                p.emit(PaymentEvent::SettleFailed {
                    job: r.job,
                    why,
                    retrying,
                });
            }
        }
        if let Some(last) = queued {
            self.on_request(Request {
                job: r.job,
                last,
                attempt: 0,
                since: r.since,
            });
        }
    }
}

/// The delay before retry number `attempt + 1`.
fn backoff(attempt: u32) -> Duration {
    FIRST_BACKOFF
        .saturating_mul(2u32.saturating_pow(attempt.min(16)))
        .min(MAX_BACKOFF)
}

/// Pays job `job`'s unpaid agreeing receipts, in batches; `last` closes the
/// escrow (refunding the rest) after the final batch.
async fn settle(p: &Payments, store: &JobStore, job: JobId, last: bool) -> Result<(), PayError> {
    let Some(rec) = store.escrow(&job)? else {
        return Ok(());
    };
    if rec.settled {
        return Ok(());
    }
    let on_ledger = p.client.ledger().escrow(&rec.escrow);
    let plan = plan_settlement(
        rec.escrow,
        on_ledger.as_ref(),
        store.unpaid(&job)?,
        p.settle_batch(),
        last,
    );
    if !plan.already_paid.is_empty() {
        store.mark_paid(&job, &plan.already_paid)?;
    }
    if plan.closed {
        // Closed: the last settlement landed (or the escrow expired).
        if last {
            store.set_settled(&job)?;
        }
        return Ok(());
    }
    for batch in plan.batches {
        let closing = matches!(batch.op, Op::Settle { last: true, .. });
        let (tx, height) = p.client.send_and_wait(batch.op, LEDGER_WAIT).await?;
        store.mark_paid(&job, &batch.pairs)?;
        tracing::info!(tasks = batch.pairs.len(), tx = %tx.short(), height, last = closing, "settled");
    }
    if last {
        report(p, store, job, rec.escrow).await?;
    }
    if last {
        store.set_settled(&job)?;
    }
    Ok(())
}

/// Reports the job's tasks whose replicas disagreed: a dispute each, with
/// one agreeing receipt and the dissenting ones, for the validators to
/// re-run; whoever lied is slashed and this node, the reporter, rewarded.
async fn report(p: &Payments, store: &JobStore, job: JobId, escrow: ContentId) -> Result<(), PayError> {
    for (task, evidence) in store.disputable(&job)? {
        let op = Op::Dispute { escrow, task, evidence };
        match p.client.send_and_wait(op, LEDGER_WAIT).await {
            Ok((tx, height)) => {
                tracing::info!(%task, tx = %tx.short(), height, "reported replicas that disagreed");
                p.emit(PaymentEvent::Disputed { escrow, task });
            }
            // Someone reported it first, or the ledger refuses the evidence:
            // either way there is nothing more to send.
            Err(LedgerError::Rejected(why)) => {
                tracing::info!(%task, "no dispute sent: {why}");
            }
            Err(e) => return Err(e.into()),
        }
        store.mark_reported(&job, &task)?;
    }
    Ok(())
}

/// A claims pass: as a requestor, close this node's escrows past their
/// close height; as a provider, claim the pay for work whose requestor has
/// not settled by its escrow's claim height, collect held claims whose
/// window passed, dispute other providers' claims that contradict its
/// receipts, and forget proofs that are paid or whose escrow has closed.
/// Failures are logged and met again at the next pass.
async fn claims_pass(p: &Payments, proofs: &ProofStore) {
    let ledger = p.client.ledger().clone();
    let me = ledger.me();
    let height = ledger.head().height;
    for escrow in ledger.with_state(|s| expired_escrows(s, me, height)) {
        match p.client.send_and_wait(Op::CloseExpired { escrow }, LEDGER_WAIT).await {
            Ok((tx, h)) => {
                tracing::info!(escrow = %escrow.short(), tx = %tx.short(), height = h, "expired escrow closed");
                p.emit(PaymentEvent::EscrowClosed { escrow });
            }
            Err(e) => {
                p.metrics.payment_failed(e.is_retryable());
                tracing::warn!(escrow = %escrow.short(), "closing an expired escrow failed: {e}");
            }
        }
    }
    let kept = match proofs.all() {
        Ok(k) => k,
        Err(e) => {
            tracing::error!("cannot read the kept proofs of work: {e}");
            return;
        }
    };
    let steps = ledger.with_state(|s| plan_claims(kept, s, me, height));
    for step in steps {
        let result = match step {
            ClaimStep::Seen(escrow) => proofs.seen(&escrow).map_err(PayError::from),
            ClaimStep::Forget { escrow, task } => proofs.forget(&escrow, &task).map_err(PayError::from),
            // Paid at once (agreeing receipts), or held for the challenge
            // window: the proof stays until it is paid.
            ClaimStep::Claim { escrow, task, op } => send_step(p, *op, task, "claimed pay from an unsettled escrow")
                .await
                .map(|()| p.emit(PaymentEvent::Claimed { escrow, task })),
            // Forgotten before it is announced: a listener that hears of the
            // payment finds the proof gone.
            ClaimStep::Collect { escrow, task, op } => {
                send_step(p, *op, task, "collected a held claim").await.and_then(|()| {
                    let forgotten = proofs.forget(&escrow, &task).map_err(PayError::from);
                    p.emit(PaymentEvent::Collected { escrow, task });
                    forgotten
                })
            }
            ClaimStep::Dispute { escrow, task, op } => send_step(
                p,
                *op,
                task,
                "disputed another provider's claim that contradicts our receipt",
            )
            .await
            .map(|()| p.emit(PaymentEvent::Disputed { escrow, task })),
        };
        if let Err(e) = result {
            p.metrics.payment_failed(e.is_retryable());
            tracing::warn!("claims pass: {e}");
        }
    }
}

/// Sends `op` for `task` and waits for its block; logs it as `what`.
async fn send_step(p: &Payments, op: Op, task: TaskId, what: &str) -> Result<(), PayError> {
    let (tx, height) = p.client.send_and_wait(op, LEDGER_WAIT).await?;
    tracing::info!(%task, tx = %tx.short(), height, "{what}");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_its_bound() {
        assert_eq!(backoff(0), Duration::from_millis(500));
        assert_eq!(backoff(1), Duration::from_secs(1));
        assert_eq!(backoff(3), Duration::from_secs(4));
        assert_eq!(backoff(20), MAX_BACKOFF);
        assert_eq!(backoff(u32::MAX), MAX_BACKOFF);
    }

    #[test]
    fn store_troubles_are_retried_and_stopping_is_not() {
        let busy = rusqlite::Error::SqliteFailure(rusqlite::ffi::Error::new(5), None);
        assert!(PayError::Store(StoreError::Sql(busy)).is_retryable());
        assert!(!PayError::Store(StoreError::Corrupt("x".into(), "y".into())).is_retryable());
        assert!(!PayError::Stopping.is_retryable());
        assert!(!PayError::Ledger(LedgerError::Rejected("no".into())).is_retryable());
        // A settlement that raced a provider's claim is planned again.
        let raced = sharegrid_ledger::Rejection::AlreadyPaid(sharegrid_core::TaskId::from_bytes([1; 32]));
        assert!(PayError::Ledger(LedgerError::Rejected(format!("rejected: {raced}"))).is_retryable());
    }
}
