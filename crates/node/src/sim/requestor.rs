//! The simulated requestor: its jobs' drivers ([`crate::JobDriver`]),
//! assignments out and receipts in (checked with the real
//! [`sharegrid_core::check_receipt`]), accepted results fetched, and the
//! provider departures it notices.

use std::collections::BTreeMap;

use sharegrid_core::{ContentId, JobId, NodeId, Receipt, ResultHash, Signed, TaskId, check_receipt, encode};
use sharegrid_net::{MAX_RECEIPT_BYTES, OfferBook, TaskResponse};

use super::ledger::{Follows, Intent, Wallet};
use super::net::{Ix, Msg, REQUESTOR};
use super::world::{Fetching, REQUEST_TIMEOUT_MS, TASK_TIMEOUT_MS, Waiting, World, request_of};
use crate::job::{Funding, JobAction, JobDriver, JobInput, JobSubmission, KeepError, State, TaskRow};
use crate::ledger::FollowerInput;

/// A job of the requestor.
pub(crate) struct SimJob {
    pub(crate) id: JobId,
    pub(crate) sub: JobSubmission,
    pub(crate) escrow: ContentId,
    pub(crate) driver: Option<JobDriver>,
    /// Receipts kept: (task, provider) → (assignment, receipt, agreed, paid).
    pub(crate) receipts: BTreeMap<(TaskId, NodeId), (Signed, Signed, bool, bool)>,
    /// Tasks ended: accepted with a result, or failed with a reason.
    pub(crate) ended: BTreeMap<TaskId, Result<ResultHash, String>>,
    pub(crate) results: BTreeMap<TaskId, ResultHash>,
    pub(crate) state: Option<(State, Option<String>)>,
    pub(crate) settled: bool,
}

pub(crate) struct RequestorNode {
    pub(crate) node: Follows,
    pub(crate) wallet: Wallet,
    pub(super) book: OfferBook,
    pub(crate) jobs: Vec<SimJob>,
    pub(super) waiting: BTreeMap<u64, (Ix, Waiting)>,
}

impl World {
    // ----- the requestor -----

    pub(crate) fn submit_jobs(&mut self) {
        for j in 0..self.requestor.jobs.len() {
            self.requestor.wallet.queue.push_back(Intent::Fund(j));
        }
    }

    pub(super) fn start_job(&mut self, j: usize) {
        let now = self.q.now;
        let rkey = self.requestor.wallet.key.id();
        let job = &mut self.requestor.jobs[j];
        if job.driver.is_some() {
            return;
        }
        let rows: Vec<TaskRow> = job
            .sub
            .tasks
            .iter()
            .enumerate()
            .map(|(i, args)| TaskRow {
                index: i,
                id: job.id.task(i),
                args: args.clone(),
                state: State::Running,
                result: None,
                fuel: None,
                reason: None,
            })
            .collect();
        job.driver = Some(JobDriver::new(
            job.id,
            rkey,
            &job.sub,
            now,
            &rows,
            Funding {
                chain: self.validator.chain.genesis_hash(),
                escrow: Some(job.escrow),
            },
            Some(self.cfg.settle_batch),
            Default::default(),
            now,
        ));
        self.note(format_args!("job {j} starts"));
        let offers: Vec<_> = self.requestor.book.live(now).into_iter().cloned().collect();
        for o in offers {
            self.drive(j, JobInput::Offer(Box::new(o)));
        }
    }

    pub(super) fn drive(&mut self, j: usize, input: JobInput) {
        let now = self.q.now;
        let Some(d) = &mut self.requestor.jobs[j].driver else {
            return;
        };
        let actions = d.handle(input, now);
        for a in actions {
            self.job_action(j, a);
        }
    }

    pub(super) fn job_action(&mut self, j: usize, action: JobAction) {
        match action {
            JobAction::Assign(a) => {
                let Some(to) = self.ix_of_id(&a.provider) else { return };
                let Ok(signed) = Signed::sign(&self.requestor.wallet.key, &*a) else {
                    return;
                };
                let s = signed.clone();
                let req = self.request(REQUESTOR, to, TASK_TIMEOUT_MS, |req| Msg::Assign { req, signed: s });
                self.requestor
                    .waiting
                    .insert(req, (to, Waiting::Assign { job: j, a, signed }));
            }
            JobAction::Keep {
                task, result, agreeing, ..
            } => self.fetch(Fetching {
                job: j,
                task,
                result,
                rest: agreeing.clone(),
                agreeing,
            }),
            JobAction::FailTask { task, reason } => {
                self.requestor.jobs[j].ended.insert(task, Err(reason));
            }
            JobAction::Settle { last } => {
                self.requestor.wallet.queue.push_back(Intent::Settle { job: j, last });
            }
            JobAction::Finish { state, reason, .. } => {
                self.note(format_args!("job {j} ends {state:?}"));
                self.requestor.jobs[j].state = Some((state, reason));
            }
        }
    }

    /// Fetches the accepted result from the next agreeing provider not yet asked.
    pub(super) fn fetch(&mut self, mut f: Fetching) {
        if f.rest.is_empty() {
            let why = KeepError::Fetch {
                result: ContentId::from_bytes(*f.result.as_bytes()),
                last: "no agreeing provider had it".into(),
            };
            return self.drive(
                f.job,
                JobInput::Kept {
                    task: f.task,
                    result: Err(why),
                },
            );
        }
        let first = f.rest.remove(0);
        let Some(to) = self.ix_of_id(&first) else { return };
        let id = ContentId::from_bytes(*f.result.as_bytes());
        let req = self.request(REQUESTOR, to, REQUEST_TIMEOUT_MS, |req| Msg::Fetch { req, id });
        self.requestor.waiting.insert(req, (to, Waiting::Fetch(f)));
    }

    pub(super) fn requestor_msg(&mut self, from: Ix, msg: Msg) {
        let now = self.q.now;
        match msg {
            Msg::Offer(signed) => {
                let Ok(bytes) = encode(&signed) else { return };
                if let Ok(offer) = self.requestor.book.accept(&bytes, Some(self.peers[from]), now) {
                    for j in 0..self.requestor.jobs.len() {
                        self.drive(j, JobInput::Offer(Box::new(offer.clone())));
                    }
                }
            }
            Msg::Answer { req, response } => {
                let Some((_, Waiting::Assign { job, a, signed })) = self.requestor.waiting.remove(&req) else {
                    return;
                };
                let input = match response {
                    TaskResponse::Refused { reason } => JobInput::Failed {
                        task: a.task,
                        provider: a.provider,
                        why: reason,
                    },
                    TaskResponse::Receipt(r) => match r.open::<Receipt>(MAX_RECEIPT_BYTES) {
                        Ok(receipt) if check_receipt(&a, &signed.id(), &receipt).is_ok() => {
                            self.requestor.jobs[job]
                                .receipts
                                .insert((a.task, a.provider), (signed, r, false, false));
                            JobInput::Receipt(Box::new(receipt))
                        }
                        _ => JobInput::Failed {
                            task: a.task,
                            provider: a.provider,
                            why: "invalid receipt".into(),
                        },
                    },
                };
                self.drive(job, input);
            }
            Msg::Fetched { req, found } => {
                let Some((_, Waiting::Fetch(f))) = self.requestor.waiting.remove(&req) else {
                    return;
                };
                if found {
                    self.kept(&f);
                } else {
                    self.fetch(f);
                }
            }
            other => {
                if let Some(req) = request_of(&other) {
                    self.requestor.waiting.remove(&req);
                }
                self.ledger_answer(REQUESTOR, other);
            }
        }
    }

    /// An accepted result is held: the task is done, its agreeing receipts
    /// are marked agreed (payable), as the job store does.
    pub(super) fn kept(&mut self, f: &Fetching) {
        let job = &mut self.requestor.jobs[f.job];
        for ((t, p), (_, _, agreed, _)) in job.receipts.iter_mut() {
            if *t == f.task && f.agreeing.contains(p) {
                *agreed = true;
            }
        }
        job.results.insert(f.task, f.result);
        job.ended.insert(f.task, Ok(f.result));
        self.drive(
            f.job,
            JobInput::Kept {
                task: f.task,
                result: Ok(()),
            },
        );
    }

    pub(super) fn requestor_failed(&mut self, to: Ix, w: Waiting, why: &str) {
        match w {
            Waiting::Assign { job, a, .. } => {
                let input = JobInput::Failed {
                    task: a.task,
                    provider: a.provider,
                    why: why.into(),
                };
                self.drive(job, input);
            }
            Waiting::Fetch(f) => self.fetch(f),
            Waiting::Ledger => {
                let peer = self.peers[to];
                self.follow(REQUESTOR, FollowerInput::Failed { peer, why: why.into() });
            }
        }
    }

    pub(super) fn requestor_gone(&mut self, peer: Ix) {
        let id = self.ids[peer];
        let reqs: Vec<u64> = self
            .requestor
            .waiting
            .iter()
            .filter(|(_, (to, _))| *to == peer)
            .map(|(r, _)| *r)
            .collect();
        for req in reqs {
            if let Some((to, w)) = self.requestor.waiting.remove(&req) {
                self.requestor_failed(to, w, "provider left before answering");
            }
        }
        for j in 0..self.requestor.jobs.len() {
            self.drive(j, JobInput::Gone(id));
        }
    }
}
