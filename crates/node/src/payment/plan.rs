//! What to send to the ledger, decided without I/O: the settlement batches
//! that pay a job's agreeing receipts (skipping what the ledger shows paid
//! already), the claims a provider makes for work its requestor left
//! unsettled, and the escrows a requestor may close. The payment task
//! (`payment/mod.rs`) and the simulation both carry these plans out.

use sharegrid_core::{ContentId, NodeId, Outcome, Receipt, Signed, TaskId, decode_capped};
use sharegrid_ledger::{Escrow, Op, Paid, State};
use sharegrid_net::MAX_RECEIPT_BYTES;

/// Proofs per settlement transaction stay under this many bytes (the
/// ledger takes up to 1 MiB per transaction).
pub(crate) const SETTLE_BYTES: usize = 768 * 1024;

/// An agreeing receipt of an accepted task, not yet recorded paid, with
/// the assignment it answers.
#[derive(Clone, Debug, PartialEq)]
pub struct Unpaid {
    /// The task.
    pub task: TaskId,
    /// The provider to pay.
    pub provider: NodeId,
    /// The signed assignment.
    pub assignment: Signed,
    /// The signed receipt.
    pub receipt: Signed,
}

/// One settlement transaction to send.
#[derive(Clone, Debug, PartialEq)]
pub struct Batch {
    /// The `Settle` operation.
    pub op: Op,
    /// The (task, provider) pairs it pays, to record once it lands.
    pub pairs: Vec<(TaskId, NodeId)>,
}

/// What settling a job takes.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct SettlementPlan {
    /// Pairs the ledger already paid (a settlement that landed before a
    /// crash, or providers' claims): record them paid, send nothing.
    pub already_paid: Vec<(TaskId, NodeId)>,
    /// Transactions to send, in order; the last closes the escrow when the
    /// job ended.
    pub batches: Vec<Batch>,
    /// The escrow is no longer open on the ledger (the last settlement
    /// landed, or it expired): nothing can be sent.
    pub closed: bool,
}

/// Plans the settlement of `escrow`, open on the ledger as `on_ledger`
/// (`None`: closed), for the receipts `unpaid`, at most `batch_size` per
/// transaction. `last`: the job ended, so everything goes and the last
/// batch closes the escrow; otherwise only full batches go.
pub fn plan_settlement(
    escrow: ContentId,
    on_ledger: Option<&Escrow>,
    unpaid: Vec<Unpaid>,
    batch_size: usize,
    last: bool,
) -> SettlementPlan {
    let Some(open) = on_ledger else {
        return SettlementPlan {
            closed: true,
            ..SettlementPlan::default()
        };
    };
    let batch_size = batch_size.max(1);
    let (done, unpaid): (Vec<_>, Vec<_>) = unpaid
        .into_iter()
        .partition(|u| open.paid.contains(&(u.task, u.provider)));
    let mut groups: Vec<Vec<Unpaid>> = vec![vec![]];
    let mut bytes = 0;
    for u in unpaid {
        let size = u.assignment.body.len() + u.receipt.body.len() + 256;
        let current = groups.last().map_or(0, Vec::len);
        if current >= batch_size || (current > 0 && bytes + size > SETTLE_BYTES) {
            groups.push(vec![]);
            bytes = 0;
        }
        bytes += size;
        if let Some(g) = groups.last_mut() {
            g.push(u);
        }
    }
    let n = groups.len();
    let mut batches = Vec::new();
    for (i, group) in groups.into_iter().enumerate() {
        let is_last = last && i + 1 == n;
        if group.is_empty() && !is_last {
            continue;
        }
        if !last && group.len() < batch_size {
            break;
        }
        let pairs = group.iter().map(|u| (u.task, u.provider)).collect();
        let paid = group
            .into_iter()
            .map(|u| Paid {
                assignment: u.assignment,
                receipt: u.receipt,
            })
            .collect();
        batches.push(Batch {
            op: Op::Settle {
                escrow,
                paid,
                last: is_last,
            },
            pairs,
        });
    }
    SettlementPlan {
        already_paid: done.iter().map(|u| (u.task, u.provider)).collect(),
        batches,
        closed: false,
    }
}

/// A provider's kept proof of work, as the claim planner sees it.
#[derive(Clone, Debug, PartialEq)]
pub struct KeptProof {
    /// The escrow that pays.
    pub escrow: ContentId,
    /// The task.
    pub task: TaskId,
    /// The requestor's signed assignment.
    pub assignment: Signed,
    /// The provider's signed receipt.
    pub receipt: Signed,
    /// Whether the escrow was once seen open on this node's ledger.
    pub seen: bool,
}

/// One step of a provider's claims pass.
#[derive(Clone, Debug, PartialEq)]
pub enum ClaimStep {
    /// Note that the escrow was seen open (its disappearance later means
    /// it closed, not that this node lags).
    Seen(ContentId),
    /// The proof is no longer needed: paid, or its escrow closed.
    Forget {
        /// The escrow.
        escrow: ContentId,
        /// The task.
        task: TaskId,
    },
    /// Collect a held claim: its window passed, no dispute is open.
    Collect {
        /// The escrow.
        escrow: ContentId,
        /// The task.
        task: TaskId,
        /// The `Collect` operation.
        op: Box<Op>,
    },
    /// Dispute another provider's held claim that disagrees with this
    /// provider's receipt for the same task.
    Dispute {
        /// The escrow.
        escrow: ContentId,
        /// The task.
        task: TaskId,
        /// The `Dispute` operation.
        op: Box<Op>,
    },
    /// Claim the pay: the claim height has come and the task is unpaid.
    Claim {
        /// The escrow.
        escrow: ContentId,
        /// The task.
        task: TaskId,
        /// The `Claim` operation.
        op: Box<Op>,
    },
}

/// Plans a claims pass of provider `me` over its kept `proofs`, against
/// the ledger's `state` at head `height`: claim what the requestor left
/// unsettled past the claim height; collect a held claim once its window
/// passed with no dispute open; dispute another provider's held claim for
/// a task this provider ran that says another result or fuel than its own
/// receipt; forget proofs that are paid, judged, or whose escrow closed.
pub fn plan_claims(proofs: Vec<KeptProof>, state: &State, me: NodeId, height: u64) -> Vec<ClaimStep> {
    let mut steps = Vec::new();
    let mut seen_noted = std::collections::BTreeSet::new();
    let next = height + 1;
    for p in proofs {
        let (escrow, task) = (p.escrow, p.task);
        let disputed = state.disputes.contains_key(&(escrow, task));
        if let Some(held) = state.claims.get(&(escrow, task, me)) {
            if next >= held.payable_from && !disputed {
                steps.push(ClaimStep::Collect {
                    escrow,
                    task,
                    op: Box::new(Op::Collect { escrow, task }),
                });
            }
            if let Some(op) = dispute_of(state, &p, me, disputed) {
                steps.push(ClaimStep::Dispute { escrow, task, op });
            }
            continue;
        }
        match state.escrows.get(&escrow) {
            // Not on this node's copy of the ledger: lagging (keep), or
            // closed after it was seen open: settled or expired (forget).
            None => {
                if p.seen {
                    steps.push(ClaimStep::Forget { escrow, task });
                }
            }
            Some(open) => {
                if !p.seen && seen_noted.insert(escrow) {
                    steps.push(ClaimStep::Seen(escrow));
                }
                if let Some(op) = dispute_of(state, &p, me, disputed) {
                    steps.push(ClaimStep::Dispute { escrow, task, op });
                }
                if open.paid.contains(&(task, me)) {
                    steps.push(ClaimStep::Forget { escrow, task });
                } else if next >= open.claim_height {
                    steps.push(ClaimStep::Claim {
                        escrow,
                        task,
                        op: Box::new(Op::Claim {
                            escrow,
                            paid: Paid {
                                assignment: p.assignment,
                                receipt: p.receipt,
                            },
                            agreeing: vec![],
                        }),
                    });
                }
            }
        }
    }
    steps
}

/// A dispute of another provider's held claim for `p`'s task that differs
/// from `p`'s receipt (result or fuel), with `p` as the evidence; none if a
/// dispute is open, or `p`'s own run timed out (no evidence).
fn dispute_of(state: &State, p: &KeptProof, me: NodeId, disputed: bool) -> Option<Box<Op>> {
    let mut others = state
        .held_claims(&p.escrow, &p.task)
        .filter(|(who, _)| *who != me)
        .peekable();
    // Most passes find no other claim: the receipt is decoded only when one is held.
    if disputed || others.peek().is_none() {
        return None;
    }
    let mine: Receipt = decode_capped(&p.receipt.body, MAX_RECEIPT_BYTES).ok()?;
    if matches!(mine.outcome, Outcome::Timeout) {
        return None;
    }
    let differs = others.any(|(_, c)| c.said.differs(mine.result, mine.fuel));
    differs.then(|| {
        Box::new(Op::Dispute {
            escrow: p.escrow,
            task: p.task,
            evidence: vec![Paid {
                assignment: p.assignment.clone(),
                receipt: p.receipt.clone(),
            }],
        })
    })
}

/// The escrows requestor `me` opened that may be closed at the next block
/// after `height` (their close height has come): what is left returns to
/// `me`. A job whose record was lost, or never settled, is so refunded.
pub fn expired_escrows(state: &State, me: NodeId, height: u64) -> Vec<ContentId> {
    state
        .escrows
        .iter()
        .filter(|(_, e)| e.requestor == me && height + 1 >= e.close_height)
        .map(|(id, _)| *id)
        .collect()
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use sharegrid_core::{Amount, NodeKey};

    use super::*;

    fn unpaid(task: u8, provider: &NodeKey, body: usize) -> Unpaid {
        let sign = |k: &NodeKey| Signed {
            body: vec![task; body],
            signer: k.id(),
            signature: k.sign(sharegrid_core::Domain::Receipt, b"x"),
        };
        Unpaid {
            task: TaskId::from_bytes([task; 32]),
            provider: provider.id(),
            assignment: sign(provider),
            receipt: sign(provider),
        }
    }

    fn escrow(paid: &[(u8, &NodeKey)], claim_height: u64) -> Escrow {
        Escrow {
            quorum: 2,
            min_stake: Amount(0),
            requestor: NodeKey::from_seed([9; 32]).id(),
            left: Amount(1_000),
            tasks: BTreeSet::new(),
            paid: paid
                .iter()
                .map(|(t, k)| (TaskId::from_bytes([*t; 32]), k.id()))
                .collect(),
            claim_height,
            close_height: claim_height + 10,
        }
    }

    /// A state with `me` as the only validator and treasury, no fee.
    fn genesis_of(me: &NodeKey) -> State {
        let genesis = sharegrid_ledger::Genesis {
            validators: vec![me.id()],
            params: sharegrid_ledger::Params::new(me.id(), 0, Amount(1)),
            balances: vec![],
            stakes: Vec::new(),
        };
        State::genesis(&genesis).unwrap()
    }

    fn settled_pairs(plan: &SettlementPlan) -> Vec<Vec<u8>> {
        plan.batches
            .iter()
            .map(|b| b.pairs.iter().map(|(t, _)| t.as_bytes()[0]).collect())
            .collect()
    }

    #[test]
    fn full_batches_go_while_the_job_runs_and_everything_at_its_end() {
        let p = NodeKey::from_seed([1; 32]);
        let e = escrow(&[], 100);
        let id = ContentId::of(b"escrow");
        let work: Vec<Unpaid> = (1..=5).map(|t| unpaid(t, &p, 10)).collect();
        let running = plan_settlement(id, Some(&e), work.clone(), 2, false);
        assert_eq!(settled_pairs(&running), vec![vec![1, 2], vec![3, 4]]);
        assert!(
            running
                .batches
                .iter()
                .all(|b| matches!(b.op, Op::Settle { last: false, .. }))
        );
        let ended = plan_settlement(id, Some(&e), work, 2, true);
        assert_eq!(settled_pairs(&ended), vec![vec![1, 2], vec![3, 4], vec![5]]);
        assert!(matches!(ended.batches[2].op, Op::Settle { last: true, .. }));
        // Nothing left to pay: one empty batch still closes the escrow.
        let empty = plan_settlement(id, Some(&e), vec![], 2, true);
        assert_eq!(settled_pairs(&empty), vec![Vec::<u8>::new()]);
        assert!(plan_settlement(id, Some(&e), vec![], 2, false).batches.is_empty());
    }

    #[test]
    fn what_the_ledger_paid_is_recorded_not_paid_again_and_a_closed_escrow_sends_nothing() {
        let p = NodeKey::from_seed([1; 32]);
        let e = escrow(&[(2, &p)], 100);
        let id = ContentId::of(b"escrow");
        let plan = plan_settlement(id, Some(&e), (1..=3).map(|t| unpaid(t, &p, 10)).collect(), 10, true);
        assert_eq!(plan.already_paid, vec![(TaskId::from_bytes([2; 32]), p.id())]);
        assert_eq!(settled_pairs(&plan), vec![vec![1, 3]]);
        let closed = plan_settlement(id, None, vec![unpaid(1, &p, 10)], 10, true);
        assert!(closed.closed && closed.batches.is_empty());
    }

    #[test]
    fn batches_stay_under_the_byte_cap() {
        let p = NodeKey::from_seed([1; 32]);
        let e = escrow(&[], 100);
        let big = SETTLE_BYTES / 5;
        let plan = plan_settlement(
            ContentId::of(b"e"),
            Some(&e),
            (1..=6).map(|t| unpaid(t, &p, big)).collect(),
            100,
            true,
        );
        assert_eq!(settled_pairs(&plan), vec![vec![1, 2], vec![3, 4], vec![5, 6]]);
    }

    #[test]
    fn claims_wait_for_the_claim_height_and_forget_what_is_paid_or_closed() {
        let me = NodeKey::from_seed([1; 32]);
        let other = ContentId::of(b"closed");
        let open_id = ContentId::of(b"open");
        let proof = |escrow, task: u8, seen| KeptProof {
            escrow,
            task: TaskId::from_bytes([task; 32]),
            assignment: unpaid(task, &me, 1).assignment,
            receipt: unpaid(task, &me, 1).receipt,
            seen,
        };
        let proofs = vec![
            proof(open_id, 1, false),
            proof(open_id, 2, true),
            proof(other, 3, true),
            proof(other, 4, false),
        ];
        let mut state = genesis_of(&me);
        state.escrows.insert(open_id, escrow(&[(2, &me)], 10));
        let early = plan_claims(proofs.clone(), &state, me.id(), 5);
        assert_eq!(
            early,
            vec![
                ClaimStep::Seen(open_id),
                ClaimStep::Forget {
                    escrow: open_id,
                    task: TaskId::from_bytes([2; 32])
                },
                ClaimStep::Forget {
                    escrow: other,
                    task: TaskId::from_bytes([3; 32])
                },
            ]
        );
        let due = plan_claims(proofs, &state, me.id(), 9);
        assert!(
            due.iter()
                .any(|s| matches!(s, ClaimStep::Claim { task, .. } if *task == TaskId::from_bytes([1; 32])))
        );
        assert!(
            !due.iter()
                .any(|s| matches!(s, ClaimStep::Claim { task, .. } if *task == TaskId::from_bytes([4; 32])))
        );
    }

    #[test]
    fn a_held_claim_is_collected_after_its_window_and_a_contradicting_one_disputed() {
        use sharegrid_core::{Fuel, Outcome, Program, ResultHash, WIRE_VERSION};
        use sharegrid_ledger::{HeldClaim, Rerun, Said};
        let (me, other) = (NodeKey::from_seed([1; 32]), NodeKey::from_seed([2; 32]));
        let id = ContentId::of(b"open");
        let task = TaskId::from_bytes([1; 32]);
        let mut state = genesis_of(&me);
        state.escrows.insert(id, escrow(&[(1, &me), (1, &other)], 10));
        // My proof: a real receipt saying result [7; 32] for 2 Gfuel.
        let receipt = sharegrid_core::Receipt {
            version: WIRE_VERSION,
            task,
            provider: me.id(),
            assignment: ContentId::of(b"a"),
            outcome: Outcome::Completed { exit_code: 0 },
            result: ResultHash::from_bytes([7; 32]),
            fuel: Fuel(2_000_000_000),
            price: sharegrid_core::PricePerGfuel(Amount(1)),
            charge: Amount(2),
        };
        let proof = KeptProof {
            escrow: id,
            task,
            assignment: unpaid(1, &me, 1).assignment,
            receipt: Signed::sign(&me, &receipt).unwrap(),
            seen: true,
        };
        let held = |result: u8, fuel: u64, payable_from: u64| HeldClaim {
            requestor: NodeKey::from_seed([9; 32]).id(),
            said: Said {
                result: ResultHash::from_bytes([result; 32]),
                fuel: Fuel(fuel),
            },
            rerun: Rerun {
                program: Program::new(ContentId::of(b"m"), ContentId::of(b"")),
                args: vec![],
                price: sharegrid_core::PricePerGfuel(Amount(1)),
            },
            charge: Amount(2),
            fee: Amount(0),
            payable_from,
        };
        let plan = |state: &State, height| plan_claims(vec![proof.clone()], state, me.id(), height);
        let disputes = |steps: &[ClaimStep]| steps.iter().filter(|s| matches!(s, ClaimStep::Dispute { .. })).count();
        let collects = |steps: &[ClaimStep]| steps.iter().filter(|s| matches!(s, ClaimStep::Collect { .. })).count();
        // Mine held: collected from the block its window ends, not before.
        state.claims.insert((id, task, me.id()), held(7, 2_000_000_000, 20));
        assert_eq!(collects(&plan(&state, 18)), 0);
        assert_eq!(collects(&plan(&state, 19)), 1);
        // Another provider's claim that agrees: nothing to dispute.
        state.claims.insert((id, task, other.id()), held(7, 2_000_000_000, 20));
        assert_eq!(disputes(&plan(&state, 19)), 0);
        // One that says another result, or more fuel: disputed with my proof.
        for (result, fuel) in [(8, 2_000_000_000), (7, 5_000_000_000)] {
            state.claims.insert((id, task, other.id()), held(result, fuel, 20));
            let steps = plan(&state, 19);
            assert_eq!(disputes(&steps), 1, "{steps:?}");
            assert!(steps.iter().any(|s| matches!(s, ClaimStep::Dispute { op, .. }
                if matches!(&**op, Op::Dispute { evidence, .. } if evidence[0].receipt == proof.receipt))));
        }
        // A dispute open: neither disputed again nor collected until it ends.
        state.disputes.insert(
            (id, task),
            sharegrid_ledger::Dispute {
                reporter: me.id(),
                bond: Amount(0),
                rerun: held(7, 0, 0).rerun,
                accused: Default::default(),
                deadline: 100,
            },
        );
        let steps = plan(&state, 19);
        assert_eq!((disputes(&steps), collects(&steps)), (0, 0), "{steps:?}");
    }
}
