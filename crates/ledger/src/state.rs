//! The ledger's state and the one function that changes it.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};
use sharegrid_core::{
    Amount, Assignment, ContentId, NodeId, Outcome, Receipt, ReceiptMismatch, Signed, TaskId, check_receipt,
};

use crate::fault::{Dispute, HeldClaim};
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
    /// Agreeing staked receipts that pay a claim at once (at least 2).
    pub quorum: u32,
    /// The least stake an agreeing receipt counts with.
    pub min_stake: Amount,
}

/// A provider's stake: bonded, and unbonding until a height. Both can be
/// slashed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stake {
    /// Bonded.
    pub bonded: Amount,
    /// Leaving: withdrawable from `release_height`.
    pub unbonding: Amount,
    /// When the unbonding stake may be withdrawn.
    pub release_height: u64,
}

impl Stake {
    /// Everything a slash can reach.
    pub fn slashable(&self) -> u128 {
        self.bonded.0.saturating_add(self.unbonding.0)
    }
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
    /// Blocks unbonding stake stays slashable before it can be withdrawn.
    #[serde(default = "defaults::unbonding_blocks")]
    pub unbonding_blocks: u64,
    /// Blocks a claim without a quorum of agreeing receipts is held,
    /// open to dispute, before it can be collected.
    #[serde(default = "defaults::challenge_blocks")]
    pub challenge_blocks: u64,
    /// Blocks the validators have to judge a dispute before it lapses.
    #[serde(default = "defaults::verdict_blocks")]
    pub verdict_blocks: u64,
    /// Share of a faulty provider's stake slashed, in basis points.
    #[serde(default = "defaults::slash_bps")]
    pub slash_bps: u32,
    /// Share of a slash (after the re-execution's cost) that goes to the
    /// reporter, in basis points; the rest goes to the treasury.
    #[serde(default = "defaults::reporter_bps")]
    pub reporter_bps: u32,
    /// What a dispute locks; lost if no one it accuses was at fault.
    #[serde(default = "defaults::dispute_bond")]
    pub dispute_bond: Amount,
}

impl Params {
    /// Parameters with this treasury, network fee and minimum fee, and the
    /// default stake and dispute parameters.
    pub fn new(treasury: NodeId, network_fee_bps: u32, min_fee: Amount) -> Params {
        Params {
            treasury,
            network_fee_bps,
            min_fee,
            unbonding_blocks: defaults::unbonding_blocks(),
            challenge_blocks: defaults::challenge_blocks(),
            verdict_blocks: defaults::verdict_blocks(),
            slash_bps: defaults::slash_bps(),
            reporter_bps: defaults::reporter_bps(),
            dispute_bond: defaults::dispute_bond(),
        }
    }
}

/// Defaults of the fault parameters, for genesis files that predate them.
pub(crate) mod defaults {
    use sharegrid_core::Amount;

    pub(crate) fn unbonding_blocks() -> u64 {
        600
    }
    pub(crate) fn challenge_blocks() -> u64 {
        60
    }
    pub(crate) fn verdict_blocks() -> u64 {
        120
    }
    pub(crate) fn slash_bps() -> u32 {
        5_000
    }
    pub(crate) fn reporter_bps() -> u32 {
        5_000
    }
    pub(crate) fn dispute_bond() -> Amount {
        Amount(1_000)
    }
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
    /// Stake bonded at genesis (validators' stake, which their
    /// equivocation forfeits).
    #[serde(default)]
    pub stakes: Vec<Allocation>,
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
    /// The network: its genesis hash, signed into every transaction.
    pub chain: ContentId,
    /// Who may produce blocks and judge disputes.
    pub validators: BTreeSet<NodeId>,
    /// Parameters.
    pub params: Params,
    /// Accounts by key.
    pub accounts: BTreeMap<NodeId, Account>,
    /// Open escrows by escrow id.
    pub escrows: BTreeMap<ContentId, Escrow>,
    /// Stakes by provider.
    pub stakes: BTreeMap<NodeId, Stake>,
    /// Claims held through their challenge window, by (escrow, task, provider).
    pub claims: BTreeMap<(ContentId, TaskId, NodeId), HeldClaim>,
    /// Open disputes, by (escrow, task).
    pub disputes: BTreeMap<(ContentId, TaskId), Dispute>,
    /// Validators' equivocations punished, by (validator, view).
    #[serde(default)]
    pub equivocations: BTreeSet<(NodeId, u64)>,
    /// Receipts a verdict found wrong, by (escrow, task, provider): one
    /// wrong result is slashed once, however many claims and disputes name
    /// it, and is no evidence after.
    #[serde(default)]
    pub faults: BTreeSet<(ContentId, TaskId, NodeId)>,
}

/// One payment for one task's work, from escrow.
pub(crate) struct Payout {
    pub(crate) task: TaskId,
    pub(crate) provider: NodeId,
    pub(crate) charge: Amount,
    /// The network's fee on it, to the treasury.
    pub(crate) fee: Amount,
}

/// What a checked transaction will do: the signer's spending beyond the
/// fee, what it pays the signer, and the change itself.
pub(crate) struct Planned {
    pub(crate) spend: Amount,
    pub(crate) incoming: Amount,
    pub(crate) effect: Effect,
}

/// A checked change; applying it cannot fail.
pub(crate) enum Effect {
    Credit(NodeId, Amount),
    Open(ContentId, Escrow),
    Pay {
        escrow: ContentId,
        payouts: Vec<Payout>,
        close: bool,
    },
    Close(ContentId),
    Hold {
        key: (ContentId, TaskId, NodeId),
        claim: HeldClaim,
    },
    Collect((ContentId, TaskId, NodeId)),
    Bond(Amount),
    Unbond(Amount),
    Withdraw(Amount),
    Dispute((ContentId, TaskId), Dispute),
    Moves(Vec<Move>),
}

/// One movement of tokens in a verdict or a lapse; the moves of one
/// transaction sum to zero.
pub(crate) enum Move {
    /// To an account.
    Credit(NodeId, Amount),
    /// Back into an open escrow.
    Refund(ContentId, Amount),
    /// Out of a provider's stake.
    Slash(NodeId, Amount),
    /// Out of an escrow (a re-execution's cost).
    Charge(ContentId, Amount),
    /// A held claim ends (its tokens move by other moves).
    Release((ContentId, TaskId, NodeId)),
    /// A dispute ends (its bond moves by other moves).
    Close((ContentId, TaskId)),
    /// A validator's equivocation is recorded as punished.
    Record((NodeId, u64)),
    /// A provider's receipt for a task is recorded as judged wrong.
    Fault((ContentId, TaskId, NodeId)),
}

pub(crate) fn add(a: Amount, b: Amount) -> Result<Amount, Rejection> {
    a.0.checked_add(b.0).map(Amount).ok_or(Rejection::Overflow)
}

/// `amount × bps / 10,000`, rounded down.
pub(crate) fn share(amount: u128, bps: u32) -> Result<u128, Rejection> {
    amount
        .checked_mul(u128::from(bps))
        .map(|x| x / 10_000)
        .ok_or(Rejection::Overflow)
}

impl State {
    /// The state a genesis describes.
    pub fn genesis(g: &Genesis) -> Result<State, String> {
        for (name, bps) in [
            ("network_fee_bps", g.params.network_fee_bps),
            ("slash_bps", g.params.slash_bps),
            ("reporter_bps", g.params.reporter_bps),
        ] {
            if bps > 10_000 {
                return Err(format!("params.{name} must be at most 10000"));
            }
        }
        if g.validators.is_empty() {
            return Err("validators: at least one is needed to produce blocks".into());
        }
        crate::consensus::participants(&g.validators).map_err(|e| format!("validators: {e}"))?;
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
        let mut stakes = BTreeMap::new();
        for Allocation { account: id, amount } in &g.stakes {
            let stake = Stake {
                bonded: *amount,
                unbonding: Amount(0),
                release_height: 0,
            };
            if amount.0 == 0 || stakes.insert(*id, stake).is_some() {
                return Err(format!("stakes: account {id} appears twice, or with nothing bonded"));
            }
            supply = supply.checked_add(amount.0).ok_or("stakes: total supply overflows")?;
        }
        Ok(State {
            chain: g.hash(),
            validators: g.validators.iter().copied().collect(),
            params: g.params.clone(),
            accounts,
            escrows: BTreeMap::new(),
            stakes,
            claims: BTreeMap::new(),
            disputes: BTreeMap::new(),
            equivocations: BTreeSet::new(),
            faults: BTreeSet::new(),
        })
    }

    /// A commitment to the whole state: BLAKE3 of its canonical CBOR (maps
    /// are ordered), so two nodes compare state in one hash.
    pub fn root(&self) -> ContentId {
        let bytes = cbor4ii::serde::to_vec(Vec::new(), self).unwrap_or_default();
        ContentId::of(&bytes)
    }

    /// Every token: balances, what escrows hold, stakes, held claims and
    /// dispute bonds.
    pub fn supply(&self) -> u128 {
        let held: u128 = self.accounts.values().map(|a| a.balance.0).sum();
        let locked: u128 = self.escrows.values().map(|e| e.left.0).sum();
        let staked: u128 = self.stakes.values().map(Stake::slashable).sum();
        let claimed: u128 = self.claims.values().map(|c| c.charge.0 + c.fee.0).sum();
        let bonds: u128 = self.disputes.values().map(|d| d.bond.0).sum();
        held + locked + staked + claimed + bonds
    }

    /// The bonded stake of `id`.
    pub fn stake(&self, id: &NodeId) -> Amount {
        self.stakes.get(id).map_or(Amount(0), |s| s.bonded)
    }

    /// All of `id`'s stake a slash can reach: bonded and unbonding.
    pub fn slashable(&self, id: &NodeId) -> u128 {
        self.stakes.get(id).map_or(0, Stake::slashable)
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
    /// verified already: a block's, in one batch, or a validator's pooled
    /// transaction, verified when [`State::apply`] admitted it and applied
    /// again to each new head. The signature is not checked here: never
    /// call this with bytes that have not passed [`State::apply`] or a batch
    /// verification.
    pub fn apply_verified(&mut self, signed: &Signed, height: u64) -> Result<(), Rejection> {
        let tx: Tx = signed.open_verified(MAX_TX_BYTES)?;
        self.apply_tx(tx, height)
    }

    fn apply_tx(&mut self, tx: Tx, height: u64) -> Result<(), Rejection> {
        if tx.chain != self.chain {
            return Err(Rejection::WrongChain {
                got: tx.chain,
                want: self.chain,
            });
        }
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
        let Planned {
            spend,
            incoming,
            effect,
        } = self.plan(&tx, height)?;
        let need = add(tx.fee, spend)?;
        // What the transaction pays the signer itself (a provider's claim,
        // a withdrawal): a signer with nothing yet can pay its fee from it.
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
        // What the signer's balance lacks, taken from what the transaction
        // pays it (a held claim's fee comes out of the claim).
        let short = Amount(need.0.saturating_sub(account.balance.0));
        self.commit(tx.signer, height, effect, short);
        let signer = self.accounts.entry(tx.signer).or_default();
        // Cannot underflow: balance + incoming >= need was checked, and the
        // incoming payments were credited above.
        signer.balance = Amount(signer.balance.0 - need.0);
        Ok(())
    }

    fn commit(&mut self, signer: NodeId, height: u64, effect: Effect, short: Amount) {
        match effect {
            Effect::Credit(to, amount) => self.credit(to, amount),
            Effect::Open(id, escrow) => {
                self.escrows.insert(id, escrow);
            }
            Effect::Pay { escrow, payouts, close } => {
                self.pay(&escrow, &payouts);
                if close {
                    self.close(&escrow);
                }
            }
            Effect::Close(escrow) => self.close(&escrow),
            Effect::Hold { key, mut claim } => {
                if let Some(e) = self.escrows.get_mut(&key.0) {
                    // Cannot underflow: checked against `left` in the plan.
                    e.left = Amount(e.left.0 - claim.charge.0 - claim.fee.0);
                    e.paid.insert((key.1, key.2));
                }
                // Cannot underflow: the plan counted the charge as incoming.
                claim.charge = Amount(claim.charge.0 - short.0);
                self.credit(signer, short);
                self.claims.insert(key, claim);
            }
            Effect::Collect(key) => {
                if let Some(c) = self.claims.remove(&key) {
                    self.credit(key.2, c.charge);
                    self.credit(self.params.treasury, c.fee);
                }
            }
            Effect::Bond(amount) => {
                let s = self.stakes.entry(signer).or_default();
                s.bonded = Amount(s.bonded.0.saturating_add(amount.0));
            }
            Effect::Unbond(amount) => {
                let s = self.stakes.entry(signer).or_default();
                s.bonded = Amount(s.bonded.0 - amount.0);
                s.unbonding = Amount(s.unbonding.0.saturating_add(amount.0));
                s.release_height = height.saturating_add(self.params.unbonding_blocks);
            }
            Effect::Withdraw(amount) => {
                if let Some(s) = self.stakes.get_mut(&signer) {
                    s.unbonding = Amount(s.unbonding.0 - amount.0);
                }
                self.credit(signer, amount);
                self.forget_empty_stake(&signer);
            }
            Effect::Dispute(key, d) => {
                self.disputes.insert(key, d);
            }
            Effect::Moves(moves) => self.apply_moves(moves),
        }
    }

    fn apply_moves(&mut self, moves: Vec<Move>) {
        for m in moves {
            match m {
                Move::Credit(to, amount) => self.credit(to, amount),
                Move::Refund(escrow, amount) => {
                    if let Some(e) = self.escrows.get_mut(&escrow) {
                        e.left = Amount(e.left.0.saturating_add(amount.0));
                    }
                }
                Move::Slash(who, amount) => {
                    if let Some(s) = self.stakes.get_mut(&who) {
                        // Bonded first, then unbonding; the plan capped the
                        // amount at both together.
                        let from_bonded = amount.0.min(s.bonded.0);
                        s.bonded = Amount(s.bonded.0 - from_bonded);
                        s.unbonding = Amount(s.unbonding.0.saturating_sub(amount.0 - from_bonded));
                    }
                    self.forget_empty_stake(&who);
                }
                Move::Charge(escrow, amount) => {
                    if let Some(e) = self.escrows.get_mut(&escrow) {
                        e.left = Amount(e.left.0.saturating_sub(amount.0));
                    }
                }
                Move::Release(key) => {
                    self.claims.remove(&key);
                }
                Move::Close(key) => {
                    self.disputes.remove(&key);
                }
                Move::Record(key) => {
                    self.equivocations.insert(key);
                }
                Move::Fault(key) => {
                    self.faults.insert(key);
                }
            }
        }
    }

    fn forget_empty_stake(&mut self, who: &NodeId) {
        if self.stakes.get(who).is_some_and(|s| s.slashable() == 0) {
            self.stakes.remove(who);
        }
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

    /// Checks the operation; returns what it will do.
    fn plan(&self, tx: &Tx, height: u64) -> Result<Planned, Rejection> {
        let spending = |spend: Amount, effect: Effect| Planned {
            spend,
            incoming: Amount(0),
            effect,
        };
        match &tx.op {
            Op::Transfer { to, amount } => Ok(spending(*amount, Effect::Credit(*to, *amount))),
            Op::OpenEscrow {
                escrow,
                budget,
                tasks,
                claim_height,
                close_height,
                quorum,
                min_stake,
            } => {
                if self.escrows.contains_key(escrow) || self.escrow_in_use(escrow) {
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
                let e = Escrow {
                    requestor: tx.signer,
                    left: *budget,
                    tasks: tasks.iter().copied().collect(),
                    paid: BTreeSet::new(),
                    claim_height: *claim_height,
                    close_height: *close_height,
                    quorum: (*quorum).max(2),
                    min_stake: *min_stake,
                };
                Ok(spending(*budget, Effect::Open(*escrow, e)))
            }
            Op::Settle { escrow, paid, last } => {
                let e = self.escrow_open(escrow)?;
                if e.requestor != tx.signer {
                    return Err(Rejection::NotOwner {
                        escrow: *escrow,
                        owner: e.requestor.to_string(),
                        signer: tx.signer.to_string(),
                    });
                }
                let payouts = self.payouts(escrow, e, paid)?;
                let incoming = payouts
                    .iter()
                    .filter(|p| p.provider == tx.signer)
                    .try_fold(Amount(0), |sum, p| add(sum, p.charge))?;
                Ok(Planned {
                    spend: Amount(0),
                    incoming,
                    effect: Effect::Pay {
                        escrow: *escrow,
                        payouts,
                        close: *last,
                    },
                })
            }
            Op::Claim { escrow, paid, agreeing } => self.plan_claim(tx.signer, escrow, paid, agreeing, height),
            Op::Collect { escrow, task } => self.plan_collect(tx.signer, escrow, task, height),
            Op::Bond { amount } => self.plan_bond(*amount),
            Op::Unbond { amount } => self.plan_unbond(tx.signer, *amount),
            Op::Withdraw => self.plan_withdraw(tx.signer, height),
            Op::Dispute { escrow, task, evidence } => self.plan_dispute(tx.signer, escrow, task, evidence, height),
            Op::Verdict {
                escrow,
                task,
                result,
                fuel,
            } => self.plan_verdict(tx.signer, escrow, task, *result, *fuel),
            Op::Lapse { escrow, task } => self.plan_lapse(escrow, task, height),
            Op::Equivocation { evidence } => self.plan_equivocation(tx.signer, evidence),
            Op::CloseExpired { escrow } => {
                let e = self.escrow_open(escrow)?;
                if height < e.close_height {
                    return Err(Rejection::TooEarly {
                        from: e.close_height,
                        height,
                    });
                }
                Ok(spending(Amount(0), Effect::Close(*escrow)))
            }
        }
    }

    pub(crate) fn escrow_open(&self, escrow: &ContentId) -> Result<&Escrow, Rejection> {
        self.escrows.get(escrow).ok_or(Rejection::NoEscrow(*escrow))
    }

    /// The network's fee on a charge (`params.network_fee_bps`, rounded
    /// down): what the ledger adds to every payment from escrow.
    pub fn network_fee(&self, charge: Amount) -> Result<Amount, Rejection> {
        share(charge.0, self.params.network_fee_bps).map(Amount)
    }

    fn payouts(&self, escrow: &ContentId, e: &Escrow, paid: &[Paid]) -> Result<Vec<Payout>, Rejection> {
        let mut out = Vec::with_capacity(paid.len());
        let mut seen = BTreeSet::new();
        let mut total: u128 = 0;
        for p in paid {
            let proof = check_proof(&self.chain, escrow, e, p)?;
            let (task, provider, charge) = (proof.assignment.task, proof.assignment.provider, proof.receipt.charge);
            if e.paid.contains(&(task, provider)) || !seen.insert((task, provider)) {
                return Err(Rejection::AlreadyPaid(task));
            }
            let fee = self.network_fee(charge)?;
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

/// A proof of work, opened and checked.
pub(crate) struct Proof {
    pub(crate) assignment: Assignment,
    pub(crate) receipt: Receipt,
}

impl Proof {
    /// Whether the run hit the wall clock: not deterministic, so never
    /// evidence, never slashed, and not claimable.
    pub(crate) fn timed_out(&self) -> bool {
        matches!(self.receipt.outcome, Outcome::Timeout)
    }
}

/// Checks that a pair proves one task's work for this escrow.
pub(crate) fn check_proof(chain: &ContentId, escrow: &ContentId, e: &Escrow, p: &Paid) -> Result<Proof, Rejection> {
    let proof = open_proof(chain, escrow, p)?;
    if proof.assignment.requestor != e.requestor {
        return Err(Rejection::BadProof(
            "the assignment is not signed by the job's requestor".into(),
        ));
    }
    if !e.tasks.contains(&proof.assignment.task) {
        return Err(Rejection::TaskNotInJob(proof.assignment.task));
    }
    Ok(proof)
}

/// Opens a pair and checks that its receipt answers its assignment, made
/// for `escrow`: what holds of a proof whether or not the escrow is open.
pub(crate) fn open_proof(chain: &ContentId, escrow: &ContentId, p: &Paid) -> Result<Proof, Rejection> {
    let bad = |why: &str| Rejection::BadProof(why.to_string());
    let a: Assignment = p
        .assignment
        .open(MAX_PROOF_BYTES)
        .map_err(|err| Rejection::BadProof(format!("assignment: {err}")))?;
    let r: Receipt = p
        .receipt
        .open(MAX_PROOF_BYTES)
        .map_err(|err| Rejection::BadProof(format!("receipt: {err}")))?;
    if a.chain != *chain {
        return Err(bad("the assignment was made for another network"));
    }
    if a.escrow != Some(*escrow) {
        return Err(bad("the assignment names another escrow"));
    }
    // The same check the requestor made on receiving the receipt.
    check_receipt(&a, &p.assignment.id(), &r).map_err(|m| match m {
        ReceiptMismatch::Price { price, agreed, charged } => Rejection::OverPrice { price, agreed, charged },
        other => Rejection::BadProof(other.to_string()),
    })?;
    Ok(Proof {
        assignment: a,
        receipt: r,
    })
}
