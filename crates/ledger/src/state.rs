//! The ledger's state and the one function that changes it.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};
use sharegrid_core::{Amount, Assignment, ContentId, NodeId, Receipt, ReceiptMismatch, Signed, TaskId, check_receipt};

use crate::tx::{Op, Paid, Rejection, Tx};

/// Largest transaction accepted, in bytes (a settlement batch).
pub const MAX_TX_BYTES: usize = 1 << 20;
/// Largest assignment or receipt inside a proof.
const MAX_PROOF_BYTES: usize = 256 * 1024;

/// One account.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Account {
    /// Tokens held.
    pub balance: Amount,
    /// The next transaction's nonce.
    pub nonce: u64,
}

/// A job's locked budget.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Escrow {
    /// Who locked it (and gets the rest back).
    pub requestor: NodeId,
    /// Still locked.
    pub left: Amount,
    /// The job's tasks.
    pub tasks: BTreeSet<TaskId>,
    /// Tasks paid, with the provider paid: each replica's provider is paid
    /// once per task.
    pub paid: BTreeSet<(TaskId, NodeId)>,
    /// From here providers may claim.
    pub claim_height: u64,
    /// From here anyone may close it.
    pub close_height: u64,
}

/// Network parameters, fixed at genesis.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Params {
    /// Receives fees.
    pub treasury: NodeId,
    /// Network fee on each payment for work, in basis points (1/10,000).
    pub network_fee_bps: u32,
    /// Lowest transaction fee.
    pub min_fee: Amount,
}

/// The first state: parameters, validators and initial balances. Read from
/// a TOML file (`genesis.toml` in the node home, see [`Genesis::from_toml`]).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Genesis {
    /// Who may produce blocks.
    pub validators: Vec<NodeId>,
    /// Parameters.
    pub params: Params,
    /// Initial balances.
    pub balances: Vec<Allocation>,
}

/// One initial balance.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Allocation {
    /// The account.
    pub account: NodeId,
    /// Its tokens.
    pub amount: Amount,
}

impl Genesis {
    /// Parses and checks a genesis file's text.
    pub fn from_toml(text: &str) -> Result<Genesis, String> {
        let g: Genesis = toml::from_str(text).map_err(|e| e.to_string())?;
        State::genesis(&g)?;
        Ok(g)
    }

    /// The genesis as TOML, as [`Genesis::from_toml`] reads it.
    pub fn to_toml(&self) -> String {
        toml::to_string(self).unwrap_or_default()
    }

    /// The genesis hash: BLAKE3 of its CBOR. The chain's block 0, and which
    /// network a chain belongs to.
    pub fn hash(&self) -> ContentId {
        ContentId::of(&cbor4ii::serde::to_vec(Vec::new(), self).unwrap_or_default())
    }
}

/// The whole ledger state.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct State {
    /// Parameters.
    pub params: Params,
    /// Accounts by key.
    pub accounts: BTreeMap<NodeId, Account>,
    /// Open escrows by escrow id.
    pub escrows: BTreeMap<ContentId, Escrow>,
}

/// One payment for one task's work, from escrow.
struct Payout {
    task: TaskId,
    provider: NodeId,
    charge: Amount,
    /// The network's fee on it, to the treasury.
    fee: Amount,
}

fn add(a: Amount, b: Amount) -> Result<Amount, Rejection> {
    a.0.checked_add(b.0).map(Amount).ok_or(Rejection::Overflow)
}

impl State {
    /// The state a genesis describes.
    pub fn genesis(g: &Genesis) -> Result<State, String> {
        if g.params.network_fee_bps > 10_000 {
            return Err("params.network_fee_bps must be at most 10000".into());
        }
        if g.validators.is_empty() {
            return Err("validators: at least one is needed to produce blocks".into());
        }
        let mut accounts = BTreeMap::new();
        let mut supply: u128 = 0;
        for Allocation { account: id, amount } in &g.balances {
            if accounts
                .insert(
                    *id,
                    Account {
                        balance: *amount,
                        nonce: 0,
                    },
                )
                .is_some()
            {
                return Err(format!("balances: account {id} appears twice"));
            }
            supply = supply.checked_add(amount.0).ok_or("balances: total supply overflows")?;
        }
        Ok(State {
            params: g.params.clone(),
            accounts,
            escrows: BTreeMap::new(),
        })
    }

    /// A commitment to the whole state: BLAKE3 of its canonical CBOR (maps
    /// are ordered), so two nodes compare state in one hash.
    pub fn root(&self) -> ContentId {
        let bytes = cbor4ii::serde::to_vec(Vec::new(), self).unwrap_or_default();
        ContentId::of(&bytes)
    }

    /// Every token: balances plus what escrows hold.
    pub fn supply(&self) -> u128 {
        let held: u128 = self.accounts.values().map(|a| a.balance.0).sum();
        let locked: u128 = self.escrows.values().map(|e| e.left.0).sum();
        held + locked
    }

    /// The balance of `id`.
    pub fn balance(&self, id: &NodeId) -> Amount {
        self.accounts.get(id).map_or(Amount(0), |a| a.balance)
    }

    /// Applies `signed` in the block at `height`, or says why not and
    /// changes nothing. Every check runs before the first change.
    pub fn apply(&mut self, signed: &Signed, height: u64) -> Result<(), Rejection> {
        let tx: Tx = signed.open(MAX_TX_BYTES)?;
        self.apply_tx(tx, height)
    }

    /// [`State::apply`] for a transaction whose signature the caller has
    /// verified already (a block's, in one batch).
    pub(crate) fn apply_verified(&mut self, signed: &Signed, height: u64) -> Result<(), Rejection> {
        let tx: Tx = signed.open_verified(MAX_TX_BYTES)?;
        self.apply_tx(tx, height)
    }

    fn apply_tx(&mut self, tx: Tx, height: u64) -> Result<(), Rejection> {
        if height > tx.expires_at_height {
            return Err(Rejection::Expired {
                expired_at: tx.expires_at_height,
                height,
            });
        }
        let account = self.accounts.get(&tx.signer).copied().unwrap_or_default();
        if tx.nonce != account.nonce {
            return Err(Rejection::Nonce {
                got: tx.nonce,
                want: account.nonce,
            });
        }
        if tx.fee < self.params.min_fee {
            return Err(Rejection::Malformed(format!(
                "fee {} is below the minimum {}",
                tx.fee, self.params.min_fee
            )));
        }
        // What the signer pays from its balance, and the payments from escrow.
        let (spend, payouts) = self.plan(&tx, height)?;
        let need = add(tx.fee, spend)?;
        // What the transaction pays the signer itself (a provider's claim):
        // a provider with nothing yet can pay a claim's fee from the claim.
        let incoming = payouts
            .iter()
            .filter(|p| p.provider == tx.signer)
            .try_fold(Amount(0), |sum, p| add(sum, p.charge))?;
        if add(account.balance, incoming)? < need {
            return Err(Rejection::InsufficientFunds {
                need,
                has: account.balance,
            });
        }
        // Commit: nothing below can fail. Credits first, so that the
        // signer's debit never dips below zero.
        let treasury = self.params.treasury;
        self.accounts.entry(tx.signer).or_default().nonce += 1;
        self.credit(treasury, tx.fee);
        match tx.op {
            Op::Transfer { to, amount } => self.credit(to, amount),
            Op::OpenEscrow {
                escrow,
                budget,
                tasks,
                claim_height,
                close_height,
            } => {
                self.escrows.insert(
                    escrow,
                    Escrow {
                        requestor: tx.signer,
                        left: budget,
                        tasks: tasks.into_iter().collect(),
                        paid: BTreeSet::new(),
                        claim_height,
                        close_height,
                    },
                );
            }
            Op::Settle { escrow, last, .. } => {
                self.pay(&escrow, &payouts);
                if last {
                    self.close(&escrow);
                }
            }
            Op::Claim { escrow, .. } => self.pay(&escrow, &payouts),
            Op::CloseExpired { escrow } => self.close(&escrow),
        }
        let signer = self.accounts.entry(tx.signer).or_default();
        // Cannot underflow: balance + incoming >= need was checked, and the
        // incoming payments were credited above.
        signer.balance = Amount(signer.balance.0 - need.0);
        Ok(())
    }

    fn credit(&mut self, to: NodeId, amount: Amount) {
        if amount.0 == 0 {
            return;
        }
        let a = self.accounts.entry(to).or_default();
        // Cannot overflow: the total supply fits (checked at genesis and conserved).
        a.balance = Amount(a.balance.0.saturating_add(amount.0));
    }

    fn pay(&mut self, escrow: &ContentId, payouts: &[Payout]) {
        let treasury = self.params.treasury;
        for p in payouts {
            if let Some(e) = self.escrows.get_mut(escrow) {
                // Cannot underflow: `payouts` checked the total against `left`.
                e.left = Amount(e.left.0 - p.charge.0 - p.fee.0);
                e.paid.insert((p.task, p.provider));
            }
            self.credit(p.provider, p.charge);
            self.credit(treasury, p.fee);
        }
    }

    fn close(&mut self, escrow: &ContentId) {
        if let Some(e) = self.escrows.remove(escrow) {
            self.credit(e.requestor, e.left);
        }
    }

    /// Checks the operation; returns what the signer spends beyond the fee
    /// and the payments (task, provider, charge, network fee) from escrow.
    fn plan(&self, tx: &Tx, height: u64) -> Result<(Amount, Vec<Payout>), Rejection> {
        match &tx.op {
            Op::Transfer { amount, .. } => Ok((*amount, vec![])),
            Op::OpenEscrow {
                escrow,
                budget,
                tasks,
                claim_height,
                close_height,
            } => {
                if self.escrows.contains_key(escrow) {
                    return Err(Rejection::EscrowExists(*escrow));
                }
                if tasks.is_empty() {
                    return Err(Rejection::Malformed("an escrow needs at least one task".into()));
                }
                if claim_height > close_height || *claim_height < height {
                    return Err(Rejection::Malformed(
                        "claim height must be ahead, and not after the close height".into(),
                    ));
                }
                Ok((*budget, vec![]))
            }
            Op::Settle { escrow, paid, .. } => {
                let e = self.escrow_open(escrow)?;
                if e.requestor != tx.signer {
                    return Err(Rejection::NotOwner {
                        escrow: *escrow,
                        owner: e.requestor.to_string(),
                        signer: tx.signer.to_string(),
                    });
                }
                Ok((Amount(0), self.payouts(escrow, e, paid)?))
            }
            Op::Claim { escrow, paid } => {
                let e = self.escrow_open(escrow)?;
                if height < e.claim_height {
                    return Err(Rejection::TooEarly {
                        from: e.claim_height,
                        height,
                    });
                }
                let payouts = self.payouts(escrow, e, std::slice::from_ref(paid))?;
                if payouts.iter().any(|p| p.provider != tx.signer) {
                    return Err(Rejection::BadProof("a provider claims only its own receipts".into()));
                }
                Ok((Amount(0), payouts))
            }
            Op::CloseExpired { escrow } => {
                let e = self.escrow_open(escrow)?;
                if height < e.close_height {
                    return Err(Rejection::TooEarly {
                        from: e.close_height,
                        height,
                    });
                }
                Ok((Amount(0), vec![]))
            }
        }
    }

    fn escrow_open(&self, escrow: &ContentId) -> Result<&Escrow, Rejection> {
        self.escrows.get(escrow).ok_or(Rejection::NoEscrow(*escrow))
    }

    fn payouts(&self, escrow: &ContentId, e: &Escrow, paid: &[Paid]) -> Result<Vec<Payout>, Rejection> {
        let mut out = Vec::with_capacity(paid.len());
        let mut seen = BTreeSet::new();
        let mut total: u128 = 0;
        for p in paid {
            let (task, provider, charge) = check_proof(escrow, e, p)?;
            if e.paid.contains(&(task, provider)) || !seen.insert((task, provider)) {
                return Err(Rejection::AlreadyPaid(task));
            }
            let fee = Amount(
                charge
                    .0
                    .checked_mul(u128::from(self.params.network_fee_bps))
                    .ok_or(Rejection::Overflow)?
                    / 10_000,
            );
            total = total
                .checked_add(charge.0)
                .and_then(|t| t.checked_add(fee.0))
                .ok_or(Rejection::Overflow)?;
            out.push(Payout {
                task,
                provider,
                charge,
                fee,
            });
        }
        if total > e.left.0 {
            return Err(Rejection::EscrowExhausted {
                need: Amount(total),
                left: e.left,
            });
        }
        Ok(out)
    }
}

/// Checks that a pair proves one task's work for this escrow; returns the
/// task, the provider and the charge.
fn check_proof(escrow: &ContentId, e: &Escrow, p: &Paid) -> Result<(TaskId, NodeId, Amount), Rejection> {
    let bad = |why: &str| Rejection::BadProof(why.to_string());
    let a: Assignment = p
        .assignment
        .open(MAX_PROOF_BYTES)
        .map_err(|err| Rejection::BadProof(format!("assignment: {err}")))?;
    let r: Receipt = p
        .receipt
        .open(MAX_PROOF_BYTES)
        .map_err(|err| Rejection::BadProof(format!("receipt: {err}")))?;
    if a.requestor != e.requestor {
        return Err(bad("the assignment is not signed by the job's requestor"));
    }
    if a.escrow != Some(*escrow) {
        return Err(bad("the assignment names another escrow"));
    }
    if !e.tasks.contains(&a.task) {
        return Err(Rejection::TaskNotInJob(a.task));
    }
    // The same check the requestor made on receiving the receipt.
    check_receipt(&a, &p.assignment.id(), &r).map_err(|m| match m {
        ReceiptMismatch::Price { price, agreed, charged } => Rejection::OverPrice { price, agreed, charged },
        other => Rejection::BadProof(other.to_string()),
    })?;
    Ok((a.task, a.provider, r.charge))
}
