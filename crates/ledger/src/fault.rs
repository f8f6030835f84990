//! Stake, claims that wait out a challenge window, disputes and the
//! validators' verdicts that settle them by re-execution (issue
//! "Trustless payment").
//!
//! - A provider **bonds** stake; **unbonding** keeps it slashable for
//!   `unbonding_blocks` before it can be **withdrawn**.
//! - A **claim** (a provider paid by a requestor that did not settle) pays
//!   at once only with the escrow's quorum (at least 2) of agreeing
//!   receipts from distinct staked providers, and then for the least fuel
//!   any of them reported. Otherwise its charge is **held** for
//!   `challenge_blocks` and **collected** after, if no dispute is open.
//! - A **dispute** is evidence: receipts for one task that disagree, or a
//!   held claim challenged. It locks `dispute_bond`.
//! - A **verdict** is a validator's re-execution of the task (deterministic,
//!   so the true result hash and fuel are known). Every receipt under
//!   judgement that differs from it is faulty: its provider's stake is
//!   slashed by `slash_bps`, once (the fault is recorded; the receipt is no
//!   claim and no evidence after); the slash pays the re-execution's cost to the
//!   validator, `reporter_bps` of the rest to the reporter, the rest to the
//!   treasury; a faulty held claim goes back to the escrow. Receipts that
//!   match are honest: never slashed, held claims paid. A dispute in which
//!   no one was at fault costs the reporter its bond. A run that timed out
//!   (wall clock: not deterministic) is never evidence and never slashed.
//! - A dispute no validator judged by `verdict_blocks` **lapses**: the bond
//!   goes back.
//!
//! Every token moved here is accounted for: [`State::supply`] counts stakes,
//! held claims and bonds, and the moves of one verdict sum to zero.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use sharegrid_core::{Amount, ContentId, Fuel, NodeId, PricePerGfuel, Program, ResultHash, TaskId};

use crate::state::{Effect, Escrow, Move, Planned, Proof, State, add, check_proof, open_proof, share};
use crate::tx::{Paid, Rejection};

/// Most proofs in one dispute.
pub const MAX_EVIDENCE: usize = 16;

/// What a validator re-runs to judge a task: the program, its arguments and
/// the price its cost is charged at.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rerun {
    /// Module, stdin, inputs, limits, mode, launch and mounted files.
    pub program: Program,
    /// Arguments.
    pub args: Vec<String>,
    /// The agreed price: the re-execution's cost is its fuel at this price.
    pub price: PricePerGfuel,
}

impl Rerun {
    fn of(p: &Proof) -> Rerun {
        let a = &p.assignment;
        Rerun {
            program: Program {
                module: a.module,
                stdin: a.stdin,
                inputs: a.inputs.clone(),
                limits: a.limits,
                mode: a.mode,
                launch: a.launch.clone(),
                mounts: a.mounts.clone(),
            },
            args: a.args.clone(),
            price: a.price,
        }
    }

    /// Whether two reruns run the same thing (prices may differ).
    fn same_work(&self, other: &Rerun) -> bool {
        self.program == other.program && self.args == other.args
    }
}

/// What one receipt under judgement says. Never a timed-out run's: those
/// are refused as claims and as evidence.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Said {
    /// Its result hash.
    pub result: ResultHash,
    /// Its fuel.
    pub fuel: Fuel,
}

impl Said {
    fn of(p: &Proof) -> Said {
        Said {
            result: p.receipt.result,
            fuel: p.receipt.fuel,
        }
    }

    /// Whether it says another result or fuel than these (against a
    /// verdict's: faulty).
    pub fn differs(&self, result: ResultHash, fuel: Fuel) -> bool {
        self.result != result || self.fuel != fuel
    }
}

/// A claim held through its challenge window.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct HeldClaim {
    /// The escrow's requestor (gets the charge back if the claim is faulty
    /// and the escrow closed).
    pub requestor: NodeId,
    /// What the receipt says.
    pub said: Said,
    /// What the validators re-run to judge it.
    pub rerun: Rerun,
    /// Held for the provider.
    pub charge: Amount,
    /// Held for the treasury.
    pub fee: Amount,
    /// From this height it may be collected, if no dispute is open.
    pub payable_from: u64,
}

/// An open dispute over one task.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Dispute {
    /// Who reported it (gets a share of any slash).
    pub reporter: NodeId,
    /// Locked from the reporter.
    pub bond: Amount,
    /// What the validators re-run.
    pub rerun: Rerun,
    /// The receipts in the evidence, by provider.
    pub accused: BTreeMap<NodeId, Said>,
    /// After this height, with no verdict, it lapses.
    pub deadline: u64,
}

impl State {
    /// The work a validator should judge: every task with an open dispute
    /// or a held claim, with what to re-run.
    pub fn to_judge(&self) -> Vec<(ContentId, TaskId, Rerun)> {
        let mut out: BTreeMap<(ContentId, TaskId), Rerun> = BTreeMap::new();
        for ((escrow, task), d) in &self.disputes {
            out.insert((*escrow, *task), d.rerun.clone());
        }
        for ((escrow, task, _), c) in &self.claims {
            out.entry((*escrow, *task)).or_insert_with(|| c.rerun.clone());
        }
        out.into_iter().map(|((e, t), r)| (e, t, r)).collect()
    }

    /// Whether anything waits on a height: an open escrow, a held claim, a
    /// dispute, unbonding stake.
    pub fn has_waiting(&self) -> bool {
        !self.escrows.is_empty()
            || !self.claims.is_empty()
            || !self.disputes.is_empty()
            || self.stakes.values().any(|s| s.unbonding.0 > 0)
    }

    /// Who can serve the blobs of a task under judgement: the providers
    /// with held claims or accused, the reporter, the requestor.
    pub fn parties(&self, escrow: &ContentId, task: &TaskId) -> Vec<NodeId> {
        let mut out: Vec<NodeId> = Vec::new();
        for (p, c) in self.held_claims(escrow, task) {
            out.push(p);
            out.push(c.requestor);
        }
        if let Some(d) = self.disputes.get(&(*escrow, *task)) {
            out.extend(d.accused.keys().copied());
            out.push(d.reporter);
        }
        if let Some(e) = self.escrows.get(escrow) {
            out.push(e.requestor);
        }
        let mut seen = std::collections::BTreeSet::new();
        out.retain(|p| seen.insert(*p));
        out
    }

    /// The providers whose receipts a verdict on this task judges: its held
    /// claims' and its dispute's.
    pub fn accused(&self, escrow: &ContentId, task: &TaskId) -> Vec<NodeId> {
        let mut out: Vec<NodeId> = self.held_claims(escrow, task).map(|(p, _)| p).collect();
        if let Some(d) = self.disputes.get(&(*escrow, *task)) {
            out.extend(d.accused.keys().copied());
        }
        out.sort();
        out.dedup();
        out
    }

    /// Whether held claims or disputes still name escrow `id` (it cannot
    /// be opened again until they end).
    pub(crate) fn escrow_in_use(&self, id: &ContentId) -> bool {
        self.claims.keys().any(|(e, _, _)| e == id) || self.disputes.keys().any(|(e, _)| e == id)
    }

    /// Whether blob `id` is part of a task under judgement (validators
    /// fetch it from the parties).
    pub fn judges_blob(&self, id: &ContentId) -> bool {
        let names = |r: &Rerun| r.program.blobs().contains(id);
        self.disputes.values().any(|d| names(&d.rerun)) || self.claims.values().any(|c| names(&c.rerun))
    }

    fn is_staked(&self, who: &NodeId, e: &Escrow) -> bool {
        let s = self.stake(who);
        s.0 > 0 && s >= e.min_stake
    }

    pub(crate) fn plan_claim(
        &self,
        signer: NodeId,
        escrow: &ContentId,
        paid: &Paid,
        agreeing: &[Paid],
        height: u64,
    ) -> Result<Planned, Rejection> {
        let e = self.escrow_open(escrow)?;
        if height < e.claim_height {
            return Err(Rejection::TooEarly {
                from: e.claim_height,
                height,
            });
        }
        let own = check_proof(&self.chain, escrow, e, paid)?;
        let (task, provider) = (own.assignment.task, own.assignment.provider);
        if provider != signer {
            return Err(Rejection::BadProof("a provider claims only its own receipts".into()));
        }
        // Paid or held (a held claim is marked paid in its escrow, whose id
        // cannot be reused while the claim is held: `escrow_in_use`).
        if e.paid.contains(&(task, provider)) {
            return Err(Rejection::AlreadyPaid(task));
        }
        if self.faults.contains(&(*escrow, task, provider)) {
            return Err(Rejection::BadProof(format!(
                "the receipt for task {task} was judged wrong: it is not paid"
            )));
        }
        if own.timed_out() {
            return Err(Rejection::BadProof(
                "a run that timed out is not deterministic: it cannot be claimed, only settled by its requestor".into(),
            ));
        }
        if agreeing.len() > MAX_EVIDENCE {
            return Err(Rejection::Malformed(format!("at most {MAX_EVIDENCE} agreeing proofs")));
        }
        // Agreeing receipts from distinct staked providers, the claimant's own
        // counted if it is staked too; the least fuel among them is paid.
        let mut seen = vec![provider];
        let mut counted = u32::from(self.is_staked(&provider, e));
        let mut least = own.receipt.fuel;
        for p in agreeing {
            let other = check_proof(&self.chain, escrow, e, p)?;
            let who = other.assignment.provider;
            if other.assignment.task != task {
                return Err(Rejection::BadProof("an agreeing proof is for another task".into()));
            }
            if seen.contains(&who) {
                return Err(Rejection::BadProof(format!(
                    "provider {} appears twice among the agreeing proofs",
                    who.short()
                )));
            }
            seen.push(who);
            if other.receipt.result != own.receipt.result || other.timed_out() {
                return Err(Rejection::BadProof(format!(
                    "provider {}'s receipt does not agree with the claim",
                    who.short()
                )));
            }
            if self.is_staked(&who, e) {
                counted += 1;
                least = least.min(other.receipt.fuel);
            }
        }
        let verified = counted >= e.quorum && self.is_staked(&provider, e);
        let charge = if verified {
            own.assignment.price.cost(least).ok_or(Rejection::Overflow)?
        } else {
            own.receipt.charge
        };
        let fee = self.network_fee(charge)?;
        let need = add(charge, fee)?;
        if need > e.left {
            return Err(Rejection::EscrowExhausted { need, left: e.left });
        }
        let effect = if verified {
            Effect::Pay {
                escrow: *escrow,
                payouts: vec![crate::state::Payout {
                    task,
                    provider,
                    charge,
                    fee,
                }],
                close: false,
            }
        } else {
            Effect::Hold {
                key: (*escrow, task, provider),
                claim: HeldClaim {
                    requestor: e.requestor,
                    said: Said::of(&own),
                    rerun: Rerun::of(&own),
                    charge,
                    fee,
                    payable_from: height.saturating_add(self.params.challenge_blocks),
                },
            }
        };
        // Paid to the claimant at once, or held for it: either way a
        // claimant with no balance pays the fee from the charge.
        Ok(Planned {
            spend: Amount(0),
            incoming: charge,
            effect,
        })
    }

    pub(crate) fn plan_collect(
        &self,
        signer: NodeId,
        escrow: &ContentId,
        task: &TaskId,
        height: u64,
    ) -> Result<Planned, Rejection> {
        let key = (*escrow, *task, signer);
        let c = self.claims.get(&key).ok_or(Rejection::NoClaim(*task))?;
        if height < c.payable_from {
            return Err(Rejection::TooEarly {
                from: c.payable_from,
                height,
            });
        }
        if self.disputes.contains_key(&(*escrow, *task)) {
            return Err(Rejection::Dispute(format!(
                "task {task} is under dispute: the claim waits for the verdict"
            )));
        }
        Ok(Planned {
            spend: Amount(0),
            incoming: c.charge,
            effect: Effect::Collect(key),
        })
    }

    pub(crate) fn plan_bond(&self, amount: Amount) -> Result<Planned, Rejection> {
        if amount.0 == 0 {
            return Err(Rejection::Stake("bond a positive amount".into()));
        }
        Ok(Planned {
            spend: amount,
            incoming: Amount(0),
            effect: Effect::Bond(amount),
        })
    }

    pub(crate) fn plan_unbond(&self, signer: NodeId, amount: Amount) -> Result<Planned, Rejection> {
        let bonded = self.stake(&signer);
        if amount.0 == 0 || amount > bonded {
            return Err(Rejection::Stake(format!("cannot unbond {amount}: {bonded} is bonded")));
        }
        Ok(Planned {
            spend: Amount(0),
            incoming: Amount(0),
            effect: Effect::Unbond(amount),
        })
    }

    pub(crate) fn plan_withdraw(&self, signer: NodeId, height: u64) -> Result<Planned, Rejection> {
        let s = self.stakes.get(&signer).copied().unwrap_or_default();
        if s.unbonding.0 == 0 {
            return Err(Rejection::Stake("nothing is unbonding".into()));
        }
        if height < s.release_height {
            return Err(Rejection::TooEarly {
                from: s.release_height,
                height,
            });
        }
        Ok(Planned {
            spend: Amount(0),
            incoming: s.unbonding,
            effect: Effect::Withdraw(s.unbonding),
        })
    }

    pub(crate) fn plan_dispute(
        &self,
        signer: NodeId,
        escrow: &ContentId,
        task: &TaskId,
        evidence: &[Paid],
        height: u64,
    ) -> Result<Planned, Rejection> {
        if self.disputes.contains_key(&(*escrow, *task)) {
            return Err(Rejection::Dispute(format!(
                "a dispute over task {task} is open already"
            )));
        }
        if evidence.len() > MAX_EVIDENCE {
            return Err(Rejection::Malformed(format!(
                "at most {MAX_EVIDENCE} proofs in a dispute"
            )));
        }
        let held: Vec<_> = self.held_claims(escrow, task).collect();
        let mut accused: BTreeMap<NodeId, Said> = BTreeMap::new();
        let mut rerun: Option<Rerun> = held.first().map(|(_, c)| c.rerun.clone());
        let mut requestor = held.first().map(|(_, c)| c.requestor);
        for p in evidence {
            let proof = open_proof(&self.chain, escrow, p)?;
            let a = &proof.assignment;
            if a.task != *task {
                return Err(Rejection::BadProof("a proof is for another task".into()));
            }
            if *requestor.get_or_insert(a.requestor) != a.requestor {
                return Err(Rejection::BadProof("the proofs name different requestors".into()));
            }
            if let Some(e) = self.escrows.get(escrow)
                && e.requestor != a.requestor
            {
                return Err(Rejection::BadProof(
                    "the assignment is not signed by the job's requestor".into(),
                ));
            }
            let this = Rerun::of(&proof);
            if !rerun.get_or_insert_with(|| this.clone()).same_work(&this) {
                return Err(Rejection::BadProof(
                    "the proofs assign different work (module, arguments, inputs or limits) under one task".into(),
                ));
            }
            if proof.timed_out() {
                return Err(Rejection::BadProof(
                    "a run that timed out is not deterministic: it is no evidence".into(),
                ));
            }
            if self.faults.contains(&(*escrow, *task, a.provider)) {
                return Err(Rejection::Dispute(format!(
                    "provider {}'s receipt for task {task} was judged wrong and slashed already",
                    a.provider.short()
                )));
            }
            if accused.insert(a.provider, Said::of(&proof)).is_some() {
                return Err(Rejection::BadProof(format!(
                    "provider {} appears twice in the evidence",
                    a.provider.short()
                )));
            }
        }
        let Some(rerun) = rerun else {
            return Err(Rejection::Dispute(format!(
                "nothing to dispute over task {task}: no held claim and no evidence"
            )));
        };
        if held.is_empty() {
            let mut says = accused.values().map(|s| (s.result, s.fuel));
            let first = says.next();
            if says.all(|s| Some(s) == first) {
                return Err(Rejection::Dispute(
                    "the receipts agree: a dispute needs receipts that differ, or a held claim".into(),
                ));
            }
        }
        let bond = self.params.dispute_bond;
        let d = Dispute {
            reporter: signer,
            bond,
            rerun,
            accused,
            deadline: height.saturating_add(self.params.verdict_blocks),
        };
        Ok(Planned {
            spend: bond,
            incoming: Amount(0),
            effect: Effect::Dispute((*escrow, *task), d),
        })
    }

    /// The claims held for a task, by provider.
    pub fn held_claims<'a>(
        &'a self,
        escrow: &ContentId,
        task: &TaskId,
    ) -> impl Iterator<Item = (NodeId, &'a HeldClaim)> + 'a {
        let (escrow, task) = (*escrow, *task);
        self.claims
            .range((escrow, task, NodeId::from_bytes([0; 32]))..=(escrow, task, NodeId::from_bytes([0xff; 32])))
            .map(|((_, _, p), c)| (*p, c))
    }

    pub(crate) fn plan_verdict(
        &self,
        signer: NodeId,
        escrow: &ContentId,
        task: &TaskId,
        result: ResultHash,
        fuel: Fuel,
    ) -> Result<Planned, Rejection> {
        if !self.validators.contains(&signer) {
            return Err(Rejection::NotValidator(signer.to_string()));
        }
        let key = (*escrow, *task);
        let dispute = self.disputes.get(&key);
        let held: Vec<_> = self.held_claims(escrow, task).collect();
        let Some(rerun) = dispute.map(|d| &d.rerun).or(held.first().map(|(_, c)| &c.rerun)) else {
            return Err(Rejection::Dispute(format!(
                "nothing to judge for task {task}: no dispute and no held claim"
            )));
        };
        if fuel > rerun.program.limits.fuel {
            return Err(Rejection::Malformed("a verdict's fuel exceeds the task's limit".into()));
        }
        let treasury = self.params.treasury;
        let open = self.escrows.contains_key(escrow);
        let mut moves = Vec::new();
        // Held claims (never of a timed-out run): honest ones paid, faulty
        // ones returned.
        for (provider, c) in &held {
            moves.push(Move::Release((*escrow, *task, *provider)));
            if c.said.differs(result, fuel) {
                let back = add(c.charge, c.fee)?;
                moves.push(if open {
                    Move::Refund(*escrow, back)
                } else {
                    Move::Credit(c.requestor, back)
                });
            } else {
                moves.push(Move::Credit(*provider, c.charge));
                moves.push(Move::Credit(treasury, c.fee));
            }
        }
        // Who was at fault, among the held claims and the evidence.
        let mut faulty: Vec<NodeId> = held
            .iter()
            .filter(|(_, c)| c.said.differs(result, fuel))
            .map(|(p, _)| *p)
            .collect();
        if let Some(d) = dispute {
            faulty.extend(
                d.accused
                    .iter()
                    .filter(|(_, s)| s.differs(result, fuel))
                    .map(|(p, _)| *p),
            );
        }
        faulty.sort();
        faulty.dedup();
        let cost = rerun.price.cost(fuel).ok_or(Rejection::Overflow)?;
        let mut slashed: u128 = 0;
        // None of them was judged before: a judged receipt is refused as a
        // claim and as evidence, and a verdict ends every held claim and the
        // dispute of its task.
        for p in &faulty {
            let cut = share(self.slashable(p), self.params.slash_bps)?;
            if cut > 0 {
                moves.push(Move::Slash(*p, Amount(cut)));
                slashed += cut;
            }
            moves.push(Move::Fault((*escrow, *task, *p)));
        }
        let reporter = dispute.map(|d| (d.reporter, d.bond));
        if !faulty.is_empty() {
            // The losers pay: the re-execution first, then the reporter's
            // share, then the treasury.
            let to_validator = slashed.min(cost.0);
            let rest = slashed - to_validator;
            let mut to_reporter = 0;
            if let Some((who, bond)) = reporter {
                moves.push(Move::Credit(who, bond));
                if !faulty.contains(&who) {
                    to_reporter = share(rest, self.params.reporter_bps)?;
                    moves.push(Move::Credit(who, Amount(to_reporter)));
                }
            }
            moves.push(Move::Credit(signer, Amount(to_validator)));
            moves.push(Move::Credit(treasury, Amount(rest - to_reporter)));
        } else if let Some((_, bond)) = reporter {
            // A false report: its bond pays the re-execution, the rest goes
            // to the treasury.
            let to_validator = bond.0.min(cost.0);
            moves.push(Move::Credit(signer, Amount(to_validator)));
            moves.push(Move::Credit(treasury, Amount(bond.0 - to_validator)));
        } else if let Some(e) = self.escrows.get(escrow) {
            // An audit of a lone claim that was honest: the requestor, who
            // did not settle, pays the re-execution from what is left.
            let to_validator = Amount(e.left.0.min(cost.0));
            moves.push(Move::Charge(*escrow, to_validator));
            moves.push(Move::Credit(signer, to_validator));
        }
        if dispute.is_some() {
            moves.push(Move::Close(key));
        }
        let incoming = moves
            .iter()
            .filter_map(|m| match m {
                Move::Credit(to, a) if *to == signer => Some(*a),
                _ => None,
            })
            .try_fold(Amount(0), add)?;
        Ok(Planned {
            spend: Amount(0),
            incoming,
            effect: Effect::Moves(moves),
        })
    }

    pub(crate) fn plan_lapse(&self, escrow: &ContentId, task: &TaskId, height: u64) -> Result<Planned, Rejection> {
        let key = (*escrow, *task);
        let d = self
            .disputes
            .get(&key)
            .ok_or_else(|| Rejection::Dispute(format!("no dispute over task {task} is open")))?;
        if height <= d.deadline {
            return Err(Rejection::TooEarly {
                from: d.deadline.saturating_add(1),
                height,
            });
        }
        Ok(Planned {
            spend: Amount(0),
            incoming: Amount(0),
            effect: Effect::Moves(vec![Move::Credit(d.reporter, d.bond), Move::Close(key)]),
        })
    }
}
