//! The simulated accounts' transactions: one in flight per account, sent
//! to the validator and followed into a block; what to send is planned
//! with the real payment plans ([`crate::plan_settlement`]) from the
//! node's own copy of the chain.

use sharegrid_core::{Amount, NodeId, TaskId};
use sharegrid_ledger::Op;

use super::ledger::{Follows, InFlight, Intent, Wallet};
use super::net::{Ix, Msg, REQUESTOR};
use super::world::{LAND_TIMEOUT_MS, World};
use crate::payment::{Unpaid, plan_settlement};

impl World {
    // ----- wallets: one transaction at a time -----

    pub(super) fn wallet(&mut self, node: Ix) -> &mut Wallet {
        if node == REQUESTOR {
            &mut self.requestor.wallet
        } else {
            &mut self.providers[node - 2].wallet
        }
    }

    /// A node's wallet and its copy of the chain.
    pub(super) fn parts(&mut self, node: Ix) -> (&mut Wallet, &Follows) {
        if node == REQUESTOR {
            (&mut self.requestor.wallet, &self.requestor.node)
        } else {
            let p = &mut self.providers[node - 2];
            (&mut p.wallet, &p.node)
        }
    }

    /// Sends the next transaction, or sends the one in flight again.
    pub(super) fn wallet_step(&mut self, node: Ix) {
        let now = self.q.now;
        let inflight = self.wallet(node).inflight.as_ref().map(|f| (f.tx.id(), f.resend_at));
        if let Some((id, resend_at)) = inflight {
            if now < resend_at {
                return;
            }
            if self.follows(node).includes(&id) {
                return self.landed(node);
            }
            // Not landed in time: plan it again (a lost message, or a
            // transaction the pool dropped).
            if let Some(f) = self.wallet(node).inflight.take() {
                self.wallet(node).queue.push_front(f.intent);
            }
        }
        while let Some(intent) = self.wallet(node).queue.pop_front() {
            let Some((op, pairs)) = self.plan(node, &intent) else {
                continue;
            };
            let (wallet, follows) = self.parts(node);
            let Some(tx) = wallet.sign(&follows.chain, op) else {
                continue;
            };
            self.note(format_args!("tx {node} {}", tx.id().short()));
            let sent = tx.clone();
            self.wallet(node).inflight = Some(InFlight {
                tx,
                intent,
                pairs,
                resend_at: now + LAND_TIMEOUT_MS,
            });
            self.ledger_request(node, |req| Msg::Submit { req, tx: sent });
            return;
        }
    }

    /// The transaction `intent` calls for now, and the pairs it pays.
    pub(super) fn plan(&mut self, node: Ix, intent: &Intent) -> Option<(Op, Vec<(TaskId, NodeId)>)> {
        match intent {
            Intent::Fund(j) => {
                let chain = &self.requestor.node.chain;
                let job = &self.requestor.jobs[*j];
                if chain.state().escrows.contains_key(&job.escrow) {
                    return None;
                }
                let budget = job.sub.escrow_budget()?;
                let fee = budget.0 * u128::from(chain.state().params.network_fee_bps) / 10_000 + 1;
                let height = chain.height();
                Some((
                    Op::OpenEscrow {
                        quorum: 2,
                        min_stake: Amount(0),
                        escrow: job.escrow,
                        budget: sharegrid_core::Amount(budget.0 + fee),
                        tasks: (0..job.sub.tasks.len()).map(|i| job.id.task(i)).collect(),
                        claim_height: height + self.cfg.claim_after_blocks,
                        close_height: height + self.cfg.claim_after_blocks + 100_000,
                    },
                    vec![],
                ))
            }
            Intent::Settle { job: j, last } => {
                let chain = &self.requestor.node.chain;
                let job = &mut self.requestor.jobs[*j];
                let unpaid = job
                    .receipts
                    .iter()
                    .filter(|(_, (_, _, agreed, paid))| *agreed && !*paid)
                    .map(|((task, provider), (a, r, _, _))| Unpaid {
                        task: *task,
                        provider: *provider,
                        assignment: a.clone(),
                        receipt: r.clone(),
                    })
                    .collect();
                let plan = plan_settlement(
                    job.escrow,
                    chain.state().escrows.get(&job.escrow),
                    unpaid,
                    self.cfg.settle_batch,
                    *last,
                );
                for pair in &plan.already_paid {
                    if let Some(r) = job.receipts.get_mut(pair) {
                        r.3 = true;
                    }
                }
                if plan.closed {
                    job.settled |= *last;
                    return None;
                }
                let batch = plan.batches.into_iter().next()?;
                Some((batch.op, batch.pairs))
            }
            Intent::Claim(op) => {
                let _ = node;
                Some(((**op).clone(), vec![]))
            }
        }
    }

    /// After new blocks: does the transaction in flight appear in them?
    pub(super) fn landed(&mut self, node: Ix) {
        let Some(id) = self.wallet(node).inflight.as_ref().map(|f| f.tx.id()) else {
            return;
        };
        if !self.follows(node).includes(&id) {
            return;
        }
        let Some(f) = self.wallet(node).inflight.take() else {
            return;
        };
        self.note(format_args!("landed {node} {}", f.tx.id().short()));
        match f.intent {
            Intent::Fund(j) => self.start_job(j),
            Intent::Settle { job, last } => {
                let j = &mut self.requestor.jobs[job];
                for pair in &f.pairs {
                    if let Some(r) = j.receipts.get_mut(pair) {
                        r.3 = true;
                    }
                }
                // Plan again: more batches, or the closing one.
                self.requestor.wallet.queue.push_front(Intent::Settle { job, last });
            }
            Intent::Claim(_) => {}
        }
        self.wallet_step(node);
    }

    /// The validator refused the transaction in flight: plan again later.
    pub(super) fn refused(&mut self, node: Ix, why: String) {
        self.note(format_args!("refused {node}: {why}"));
        if let Some(f) = self.wallet(node).inflight.take()
            && !matches!(f.intent, Intent::Claim(_))
        {
            self.wallet(node).queue.push_back(f.intent);
        }
    }
}
