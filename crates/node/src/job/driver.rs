//! One job's driver, as a state machine with no I/O: around the job's
//! [`Scheduler`], it turns what the node hears (offers, departures,
//! receipts, refusals, kept results) into what to do (send an assignment,
//! keep an accepted result, record a failed task, settle, finish). The
//! engine (`job/engine.rs`) or the simulation carries the actions out and
//! feeds the answers back.
//!
//! Assignments are made with [`Assignment::new`] (the one copy of that
//! rule); a receipt reaches the driver only after the node checked it
//! against its assignment. Settlement is asked for every `settle_batch`
//! accepted tasks and once more, last, when the job has ended; the payment
//! task does it, so the driver never waits on the ledger.
//!
//! Never does: accept a result the scheduler did not accept, or finish a
//! job while an accepted result is still being kept.

use std::collections::HashMap;

use sharegrid_core::{Assignment, ContentId, Fuel, JobId, NodeId, Offer, Program, Receipt, ResultHash, TaskId, Terms};
use sharegrid_sched::{Action, Event, Record, Reputation, Scheduler, TaskSpec, Vote};

use super::engine::LiveJob;
use super::store::{State, TaskRow};
use super::submission::JobSubmission;

/// What happened, told to the driver.
#[derive(Debug)]
pub enum JobInput {
    /// A live offer (new or updated).
    Offer(Box<Offer>),
    /// A provider left.
    Gone(NodeId),
    /// A checked receipt for a dispatched task (already kept as evidence).
    Receipt(Box<Receipt>),
    /// An attempt produced no receipt: refused, unreachable, gone.
    Failed {
        /// The task.
        task: TaskId,
        /// The provider.
        provider: NodeId,
        /// Why.
        why: String,
    },
    /// An accepted result was kept (its bytes in the blob store, the task
    /// recorded accepted), or could not be.
    Kept {
        /// The task.
        task: TaskId,
        /// How it went.
        result: Result<(), KeepError>,
    },
    /// Time passed.
    Tick,
    /// The requestor cancelled the job: nothing more is assigned, results
    /// already accepted are kept and paid, and the job ends failed.
    Cancel,
}

/// The reason a cancelled job ends with.
pub const CANCELLED: &str = "cancelled by the requestor";

/// Why an accepted result could not be kept.
#[derive(Debug, thiserror::Error)]
pub enum KeepError {
    /// No agreeing provider gave its bytes.
    #[error("accepted result {result} could not be fetched: {last}")]
    Fetch {
        /// The result.
        result: ContentId,
        /// The last provider's failure.
        last: String,
    },
    /// Recording it failed.
    #[error(transparent)]
    Store(#[from] super::store::StoreError),
    /// The node stopped.
    #[error("the node has stopped")]
    Stopped,
}

/// What the driver wants done.
#[derive(Debug, PartialEq)]
pub enum JobAction {
    /// Sign and send this assignment; answer with [`JobInput::Receipt`] or
    /// [`JobInput::Failed`].
    Assign(Box<Assignment>),
    /// Fetch the accepted result from one of the agreeing providers, record
    /// the task accepted with the verdicts, then say [`JobInput::Kept`].
    Keep {
        /// The task.
        task: TaskId,
        /// The accepted result.
        result: ResultHash,
        /// Its fuel.
        fuel: Fuel,
        /// Providers that agreed (fetch from one of them).
        agreeing: Vec<NodeId>,
        /// Providers whose votes disagreed.
        dissenting: Vec<NodeId>,
        /// The records of every provider the verdict touched.
        records: Vec<(NodeId, Record)>,
    },
    /// Record a task failed, with why.
    FailTask {
        /// The task.
        task: TaskId,
        /// Why.
        reason: String,
    },
    /// Pay the agreeing receipts kept so far; `last` closes the escrow.
    Settle {
        /// Whether the job has ended.
        last: bool,
    },
    /// The job ended: record it, and the providers' records.
    Finish {
        /// Done or failed.
        state: State,
        /// Why it failed.
        reason: Option<String>,
        /// Every provider record.
        reputation: Reputation,
    },
}

/// Where a job's pay comes from: the network (its genesis hash, signed into
/// every assignment) and the job's escrow there, if it has one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Funding {
    /// The network.
    pub chain: ContentId,
    /// The job's escrow.
    pub escrow: Option<ContentId>,
}

/// One job's driver. See the module docs.
#[derive(Debug)]
pub struct JobDriver {
    requestor: NodeId,
    program: Program,
    args: HashMap<TaskId, Vec<String>>,
    funding: Funding,
    sched: Scheduler,
    /// Accepted results being kept.
    keeping: usize,
    ended: Option<(State, Option<String>)>,
    finished: bool,
    /// Cancelled: the scheduler is asked nothing more.
    cancelled: bool,
    /// Accepted tasks per settlement while the job runs (None: no ledger).
    settle_batch: Option<usize>,
    accepted_since_settle: usize,
}

impl JobDriver {
    /// The driver of job `id` as submitted (`sub`) at `created_ms`, with its
    /// task rows as stored (tasks already accepted or failed are never run
    /// again), paid by `funding` in batches of `settle_batch`, knowing
    /// `reputation`, starting at `now_ms`.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        id: JobId,
        requestor: NodeId,
        sub: &JobSubmission,
        created_ms: u64,
        rows: &[TaskRow],
        funding: Funding,
        settle_batch: Option<usize>,
        reputation: Reputation,
        now_ms: u64,
    ) -> Self {
        let specs = rows
            .iter()
            .map(|t| TaskSpec {
                id: t.id,
                fuel_limit: sub.limits.fuel,
                timeout_ms: sub.limits.timeout_ms,
            })
            .collect();
        let mut sched = Scheduler::new(sub.policy(id, created_ms), specs, reputation, now_ms);
        for t in rows {
            // Accepted or failed: ended, never run again.
            if t.state != State::Running {
                sched.preaccept(&t.id);
            }
        }
        JobDriver {
            requestor,
            program: sub.program(),
            args: rows.iter().map(|t| (t.id, t.args.clone())).collect(),
            funding,
            sched,
            keeping: 0,
            ended: None,
            finished: false,
            cancelled: false,
            settle_batch: settle_batch.map(|b| b.max(1)),
            accepted_since_settle: 0,
        }
    }

    /// Whether the job has ended and been recorded.
    pub fn is_finished(&self) -> bool {
        self.finished
    }

    /// What the job looks like now.
    pub fn live(&self) -> LiveJob {
        let progress = self.sched.progress();
        LiveJob {
            why_no_match: (progress.providers_in_use == 0 && !self.finished).then(|| self.sched.no_match().to_string()),
            waiting: self.sched.waiting(),
            deadline_ms: self.sched.deadline_ms(),
            progress,
        }
    }

    /// Takes in `input` at `now_ms`; returns what to do.
    pub fn handle(&mut self, input: JobInput, now_ms: u64) -> Vec<JobAction> {
        let mut out = Vec::new();
        if self.finished {
            return out;
        }
        match input {
            JobInput::Offer(o) => self.sched.on_event(Event::Offer(*o), now_ms),
            JobInput::Gone(p) => self.sched.on_event(Event::Gone(p), now_ms),
            JobInput::Receipt(r) => self.sched.on_event(
                Event::Receipt {
                    task: r.task,
                    vote: Vote {
                        provider: r.provider,
                        result: r.result,
                        fuel: r.fuel,
                    },
                    charge: r.charge,
                    deterministic: r.outcome.is_deterministic(),
                },
                now_ms,
            ),
            JobInput::Failed { task, provider, why } => {
                self.sched.on_event(Event::Failed { task, provider, why }, now_ms);
            }
            JobInput::Kept { task, result } => {
                self.keeping = self.keeping.saturating_sub(1);
                match result {
                    Err(why) => out.push(JobAction::FailTask {
                        task,
                        reason: why.to_string(),
                    }),
                    Ok(()) => {
                        self.accepted_since_settle += 1;
                        if let Some(batch) = self.settle_batch
                            && self.accepted_since_settle >= batch
                        {
                            self.accepted_since_settle = 0;
                            out.push(JobAction::Settle { last: false });
                        }
                    }
                }
            }
            JobInput::Tick => {}
            JobInput::Cancel => {
                self.cancelled = true;
                self.ended = Some((State::Failed, Some(CANCELLED.to_owned())));
            }
        }
        self.poll(now_ms, &mut out);
        out
    }

    fn poll(&mut self, now_ms: u64, out: &mut Vec<JobAction>) {
        let actions = if self.cancelled {
            Vec::new()
        } else {
            self.sched.poll(now_ms)
        };
        for action in actions {
            match action {
                Action::Dispatch {
                    task, provider, price, ..
                } => {
                    let terms = Terms {
                        chain: self.funding.chain,
                        requestor: self.requestor,
                        provider,
                        price,
                        escrow: self.funding.escrow,
                    };
                    let args = self.args.get(&task).cloned().unwrap_or_default();
                    out.push(JobAction::Assign(Box::new(Assignment::new(
                        task,
                        args,
                        &self.program,
                        terms,
                        now_ms,
                    ))));
                }
                Action::Accepted {
                    task,
                    result,
                    fuel,
                    agreeing,
                    dissenting,
                } => {
                    self.keeping += 1;
                    // Only the records this verdict touched.
                    let rep = self.sched.reputation();
                    let records = agreeing
                        .iter()
                        .chain(dissenting.iter().map(|v| &v.provider))
                        .map(|p| (*p, rep.get(p)))
                        .collect();
                    out.push(JobAction::Keep {
                        task,
                        result,
                        fuel,
                        agreeing,
                        dissenting: dissenting.into_iter().map(|v| v.provider).collect(),
                        records,
                    });
                }
                Action::TaskFailed { task, reason, votes } => {
                    tracing::warn!(%task, "task failed: {reason} ({} receipts kept)", votes.len());
                    out.push(JobAction::FailTask { task, reason });
                }
                Action::JobDone => self.ended = Some((State::Done, None)),
                Action::JobFailed { reason } => {
                    tracing::warn!("job failed: {reason}");
                    self.ended = Some((State::Failed, Some(reason)));
                }
            }
        }
        if self.keeping == 0
            && let Some((state, reason)) = self.ended.take()
        {
            self.finished = true;
            out.push(JobAction::Finish {
                state,
                reason,
                reputation: self.sched.reputation().clone(),
            });
            if self.settle_batch.is_some() {
                out.push(JobAction::Settle { last: true });
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sharegrid_core::{Amount, Arch, Determinism, GigafuelPerSec, NodeKey, Outcome, PricePerGfuel, WIRE_VERSION};

    fn sub(tasks: usize, r: u32) -> JobSubmission {
        JobSubmission::sample(tasks, r)
    }

    fn rows(id: JobId, s: &JobSubmission) -> Vec<TaskRow> {
        s.tasks
            .iter()
            .enumerate()
            .map(|(i, a)| TaskRow {
                index: i,
                id: id.task(i),
                args: a.clone(),
                state: State::Running,
                result: None,
                fuel: None,
                reason: None,
            })
            .collect()
    }

    fn offer(seed: u8) -> Box<Offer> {
        Box::new(Offer {
            version: WIRE_VERSION,
            provider: NodeKey::from_seed([seed; 32]).id(),
            arch: Arch::X86_64,
            cores: 2,
            memory_bytes: 8 << 30,
            free_slots: 2,
            speed: GigafuelPerSec(1.0),
            price: PricePerGfuel(Amount(10)),
            stake: Amount(0),
            modes: vec![Determinism::Native],
            software: "t".into(),
            seq: 1,
            expires_at_ms: u64::MAX,
        })
    }

    fn receipt(a: &Assignment, result: u8) -> Box<Receipt> {
        Box::new(
            Receipt::for_run(
                a,
                ContentId::of(b"signed"),
                Outcome::Completed { exit_code: 0 },
                ResultHash::from_bytes([result; 32]),
                Fuel(500_000_000),
            )
            .unwrap(),
        )
    }

    /// The driver of job `id` (`s`, its task rows `rows`) for the
    /// requestor of seed 9, from time 0, paid from `escrow` in batches of
    /// `settle`.
    fn driver(
        id: JobId,
        s: &JobSubmission,
        rows: &[TaskRow],
        escrow: Option<ContentId>,
        settle: Option<usize>,
    ) -> JobDriver {
        let funding = Funding {
            chain: ContentId::of(b"network"),
            escrow,
        };
        let requestor = NodeKey::from_seed([9; 32]).id();
        JobDriver::new(id, requestor, s, 0, rows, funding, settle, Reputation::default(), 0)
    }

    fn assignments(actions: &[JobAction]) -> Vec<Assignment> {
        actions
            .iter()
            .filter_map(|a| match a {
                JobAction::Assign(a) => Some((**a).clone()),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn replicas_that_agree_are_kept_settled_and_the_job_finishes() {
        let id = JobId::from_bytes([1; 8]);
        let requestor = NodeKey::from_seed([9; 32]).id();
        let s = sub(2, 2);
        let escrow = Some(ContentId::of(b"escrow"));
        let mut d = driver(id, &s, &rows(id, &s), escrow, Some(1));
        let mut sent = assignments(&d.handle(JobInput::Offer(offer(1)), 1));
        sent.extend(assignments(&d.handle(JobInput::Offer(offer(2)), 2)));
        assert_eq!(sent.len(), 4, "two replicas of two tasks");
        for a in &sent {
            assert_eq!(a.requestor, requestor);
            assert_eq!(a.escrow, escrow);
            assert_eq!(a.args, s.tasks[if a.task == id.task(0) { 0 } else { 1 }]);
        }
        let mut keeps = Vec::new();
        for a in &sent {
            for act in d.handle(JobInput::Receipt(receipt(a, 7)), 3) {
                if let JobAction::Keep { task, agreeing, .. } = act {
                    assert_eq!(agreeing.len(), 2);
                    keeps.push(task);
                }
            }
        }
        assert_eq!(keeps.len(), 2);
        let acts = d.handle(
            JobInput::Kept {
                task: keeps[0],
                result: Ok(()),
            },
            4,
        );
        assert_eq!(acts, vec![JobAction::Settle { last: false }]);
        assert!(!d.is_finished(), "a result is still being kept");
        let acts = d.handle(
            JobInput::Kept {
                task: keeps[1],
                result: Ok(()),
            },
            5,
        );
        assert!(
            matches!(acts[1], JobAction::Finish { state: State::Done, .. }),
            "{acts:?}"
        );
        assert_eq!(acts.last(), Some(&JobAction::Settle { last: true }));
        assert!(d.is_finished());
        assert!(d.handle(JobInput::Tick, 6).is_empty());
    }

    #[test]
    fn a_cancelled_job_assigns_nothing_more_keeps_what_was_accepted_and_ends_failed() {
        let id = JobId::from_bytes([3; 8]);
        let s = sub(3, 2);
        let mut d = driver(id, &s, &rows(id, &s), Some(ContentId::of(b"escrow")), Some(16));
        let mut sent = assignments(&d.handle(JobInput::Offer(offer(1)), 1));
        sent.extend(assignments(&d.handle(JobInput::Offer(offer(2)), 2)));
        assert_eq!(sent.len(), 4, "two slots each: two tasks, two replicas");
        // A task with both replicas out: they agree, it is accepted, being kept.
        let both = sent
            .iter()
            .map(|a| a.task)
            .find(|t| sent.iter().filter(|a| a.task == *t).count() == 2)
            .unwrap();
        let mut keep = None;
        for a in sent.iter().filter(|a| a.task == both) {
            for act in d.handle(JobInput::Receipt(receipt(a, 7)), 3) {
                if let JobAction::Keep { task, .. } = act {
                    keep = Some(task);
                }
            }
        }
        let kept = keep.unwrap();
        let acts = d.handle(JobInput::Cancel, 4);
        assert!(
            assignments(&acts).is_empty() && !d.is_finished(),
            "waits for the keep: {acts:?}"
        );
        // Free slots and receipts change nothing now.
        let other = sent.iter().find(|a| a.task != kept).unwrap();
        assert!(assignments(&d.handle(JobInput::Offer(offer(3)), 5)).is_empty());
        assert!(d.handle(JobInput::Receipt(receipt(other, 7)), 6).is_empty());
        let acts = d.handle(
            JobInput::Kept {
                task: kept,
                result: Ok(()),
            },
            7,
        );
        assert!(
            matches!(&acts[0], JobAction::Finish { state: State::Failed, reason: Some(r), .. } if r == CANCELLED),
            "{acts:?}"
        );
        assert_eq!(
            acts.last(),
            Some(&JobAction::Settle { last: true }),
            "what was accepted is paid"
        );
        assert!(d.is_finished());
    }

    #[test]
    fn a_dissenting_replica_is_outvoted_and_tasks_already_ended_never_run() {
        let id = JobId::from_bytes([2; 8]);
        let s = sub(2, 2);
        let mut r = rows(id, &s);
        r[0].state = State::Done;
        let mut d = driver(id, &s, &r, None, None);
        let mut sent = Vec::new();
        for seed in 1..=3 {
            sent.extend(assignments(&d.handle(JobInput::Offer(offer(seed)), 1)));
        }
        assert!(sent.iter().all(|a| a.task == id.task(1)), "task 0 was accepted before");
        assert_eq!(sent.len(), 2);
        // One lies: the scheduler sends a third replica, which agrees with the honest one.
        let mut out = d.handle(JobInput::Receipt(receipt(&sent[0], 7)), 3);
        out.extend(d.handle(JobInput::Receipt(receipt(&sent[1], 8)), 3));
        let third = assignments(&out);
        assert_eq!(third.len(), 1);
        let acts = d.handle(JobInput::Receipt(receipt(&third[0], 7)), 4);
        let keep = acts.iter().find_map(|a| match a {
            JobAction::Keep { dissenting, .. } => Some(dissenting.clone()),
            _ => None,
        });
        assert_eq!(keep, Some(vec![sent[1].provider]));
    }

    #[test]
    fn a_result_that_cannot_be_kept_fails_its_task_and_no_ledger_means_no_settlement() {
        let id = JobId::from_bytes([3; 8]);
        let s = sub(1, 1);
        let mut d = driver(id, &s, &rows(id, &s), None, None);
        let sent = assignments(&d.handle(JobInput::Offer(offer(1)), 1));
        let acts = d.handle(JobInput::Receipt(receipt(&sent[0], 7)), 2);
        assert!(matches!(acts[..], [JobAction::Keep { .. }]));
        let acts = d.handle(
            JobInput::Kept {
                task: id.task(0),
                result: Err(KeepError::Fetch {
                    result: ContentId::of(b"r"),
                    last: "gone".into(),
                }),
            },
            3,
        );
        assert_eq!(
            acts[0],
            JobAction::FailTask {
                task: id.task(0),
                reason: format!("accepted result {} could not be fetched: gone", ContentId::of(b"r"))
            }
        );
        assert!(matches!(acts[1], JobAction::Finish { .. }));
        assert_eq!(acts.len(), 2, "no settlement without a ledger");
    }
}
