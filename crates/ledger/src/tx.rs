//! Transactions and why one is rejected.

use serde::{Deserialize, Serialize};
use sharegrid_core::{Amount, ContentId, Domain, Fuel, NodeId, ResultHash, Signed, SignedMessage, TaskId, WireError};

/// Version of [`Tx`] (2: signs the chain id; stake, claims under challenge,
/// disputes).
pub const TX_VERSION: u16 = 2;

/// A transaction, signed by `signer`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Tx {
    /// [`TX_VERSION`].
    pub version: u16,
    /// The network it is for: its genesis hash. A transaction signed for
    /// one network is refused on every other.
    pub chain: ContentId,
    /// Who signs and pays the fee.
    pub signer: NodeId,
    /// The signer's next nonce.
    pub nonce: u64,
    /// Paid to the treasury.
    pub fee: Amount,
    /// Not valid in blocks above this height.
    pub expires_at_height: u64,
    /// What it does.
    pub op: Op,
}

impl SignedMessage for Tx {
    const DOMAIN: Domain = Domain::Transaction;
    const KIND: &'static str = "transaction";
    fn signer(&self) -> NodeId {
        self.signer
    }
    fn version(&self) -> u16 {
        self.version
    }
}

/// A pair proving one task's work: the requestor's signed assignment and
/// the provider's signed receipt for it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Paid {
    /// The signed assignment.
    pub assignment: Signed,
    /// The signed receipt.
    pub receipt: Signed,
}

/// What a transaction does.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum Op {
    /// Move tokens.
    Transfer {
        /// To whom.
        to: NodeId,
        /// How much.
        amount: Amount,
    },
    /// Lock a job's budget.
    OpenEscrow {
        /// The escrow's id (derived from the requestor and its job id).
        #[serde(rename = "job")]
        escrow: ContentId,
        /// Amount locked.
        budget: Amount,
        /// The job's tasks: only these are paid.
        tasks: Vec<TaskId>,
        /// From this height providers may claim themselves.
        claim_height: u64,
        /// From this height anyone may close it, refunding the rest.
        close_height: u64,
        /// Agreeing receipts from distinct staked providers that pay a
        /// provider's claim at once (at least 2); fewer, and the claim waits
        /// out a challenge window.
        #[serde(default)]
        quorum: u32,
        /// The least stake a provider's agreeing receipt counts with.
        #[serde(default)]
        min_stake: Amount,
    },
    /// Pay accepted tasks (a batch); `last` closes the escrow and refunds the rest.
    Settle {
        /// The escrow.
        #[serde(rename = "job")]
        escrow: ContentId,
        /// The tasks paid.
        paid: Vec<Paid>,
        /// Whether this batch is the last.
        last: bool,
    },
    /// A provider claims its pay when the requestor has not settled. With
    /// the escrow's quorum of agreeing receipts it pays at once, for the
    /// least fuel any of them reported; otherwise its charge is held for
    /// the challenge window, during which anyone may dispute it.
    Claim {
        /// The escrow.
        #[serde(rename = "job")]
        escrow: ContentId,
        /// The provider's proof.
        paid: Paid,
        /// Other providers' proofs for the same task with the same result.
        #[serde(default)]
        agreeing: Vec<Paid>,
    },
    /// A provider collects a held claim once its challenge window passed
    /// with no dispute open.
    Collect {
        /// The escrow.
        #[serde(rename = "job")]
        escrow: ContentId,
        /// The task.
        task: TaskId,
    },
    /// Bond tokens as stake.
    Bond {
        /// How much.
        amount: Amount,
    },
    /// Start unbonding stake: it stays slashable for the unbonding period.
    Unbond {
        /// How much.
        amount: Amount,
    },
    /// Take back stake whose unbonding period has passed.
    Withdraw,
    /// Evidence of a fault for one task: receipts that disagree, or a held
    /// claim disputed. Locks the dispute bond until a validator's verdict.
    Dispute {
        /// The escrow the task was paid from.
        #[serde(rename = "job")]
        escrow: ContentId,
        /// The task.
        task: TaskId,
        /// Proofs for the task (any held claims for it are judged too).
        evidence: Vec<Paid>,
    },
    /// A validator's re-execution of a task under dispute or claimed alone:
    /// the true result and fuel. Receipts that differ are slashed.
    Verdict {
        /// The escrow.
        #[serde(rename = "job")]
        escrow: ContentId,
        /// The task.
        task: TaskId,
        /// The result hash of the re-execution.
        result: ResultHash,
        /// Its fuel.
        fuel: Fuel,
    },
    /// End a dispute that no validator judged by its deadline: the bond
    /// goes back, held claims wait out their windows.
    Lapse {
        /// The escrow.
        #[serde(rename = "job")]
        escrow: ContentId,
        /// The task.
        task: TaskId,
    },
    /// Evidence that a validator signed two conflicting consensus votes
    /// (checked by [`crate::consensus::check_evidence`]): its stake is
    /// slashed like a faulty provider's, the reporter gets its share, and
    /// the offence is recorded so it is punished once.
    Equivocation {
        /// The evidence bytes.
        #[serde(with = "sharegrid_core::bytes_serde")]
        evidence: Vec<u8>,
    },
    /// Return an expired escrow's rest to its requestor.
    CloseExpired {
        /// The escrow.
        #[serde(rename = "job")]
        escrow: ContentId,
    },
}

impl Op {
    /// The operation's kind in snake case (`transfer`, `open_escrow`, …).
    pub fn kind(&self) -> &'static str {
        match self {
            Op::Transfer { .. } => "transfer",
            Op::OpenEscrow { .. } => "open_escrow",
            Op::Settle { .. } => "settle",
            Op::Claim { .. } => "claim",
            Op::Collect { .. } => "collect",
            Op::Bond { .. } => "bond",
            Op::Unbond { .. } => "unbond",
            Op::Withdraw => "withdraw",
            Op::Dispute { .. } => "dispute",
            Op::Verdict { .. } => "verdict",
            Op::Lapse { .. } => "lapse",
            Op::Equivocation { .. } => "equivocation",
            Op::CloseExpired { .. } => "close_expired",
        }
    }

    /// The tokens the operation takes from its signer's balance or stake,
    /// where it names them: a transfer, an escrow's budget, a bond or an
    /// unbond.
    pub fn amount(&self) -> Option<Amount> {
        match self {
            Op::Transfer { amount, .. } | Op::Bond { amount } | Op::Unbond { amount } => Some(*amount),
            Op::OpenEscrow { budget, .. } => Some(*budget),
            _ => None,
        }
    }

    /// One line that says what the operation does, for people reading
    /// history (the CLI's wallet, the HTTP API's ledger explorer).
    pub fn describe(&self) -> String {
        match self {
            Op::Transfer { to, amount } => format!("transfer {amount} to {to}"),
            Op::OpenEscrow {
                escrow, budget, tasks, ..
            } => {
                format!("open escrow {} of {budget} for {} tasks", escrow.short(), tasks.len())
            }
            Op::Settle { escrow, paid, last } => format!(
                "settle escrow {}: {} task(s) paid{}",
                escrow.short(),
                paid.len(),
                if *last { ", closed" } else { "" }
            ),
            Op::Claim { escrow, agreeing, .. } => format!(
                "claim from escrow {} with {} agreeing receipt(s)",
                escrow.short(),
                agreeing.len()
            ),
            Op::Collect { escrow, task } => format!(
                "collect held claim for task {} from escrow {}",
                task.short(),
                escrow.short()
            ),
            Op::Bond { amount } => format!("bond {amount} as stake"),
            Op::Unbond { amount } => format!("unbond {amount} of stake"),
            Op::Withdraw => "withdraw unbonded stake".into(),
            Op::Dispute { escrow, task, evidence } => format!(
                "dispute task {} of escrow {} with {} receipt(s)",
                task.short(),
                escrow.short(),
                evidence.len()
            ),
            Op::Verdict { task, result, fuel, .. } => {
                format!("verdict on task {}: result {}, {fuel}", task.short(), result.short())
            }
            Op::Lapse { task, .. } => format!("lapse the dispute over task {}", task.short()),
            Op::Equivocation { .. } => "report a validator for signing conflicting votes".to_string(),
            Op::CloseExpired { escrow } => format!("close expired escrow {}", escrow.short()),
        }
    }
}

/// Why a transaction was rejected. Each leaves the state unchanged.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Rejection {
    /// Not a validly signed transaction.
    #[error("invalid transaction: {0}")]
    Invalid(#[from] WireError),
    /// Wrong nonce: a replay, or out of order.
    #[error("wrong nonce {got}: the account's next is {want}")]
    Nonce {
        /// In the transaction.
        got: u64,
        /// Expected.
        want: u64,
    },
    /// Past its expiry height.
    #[error("expired at height {expired_at} (block {height})")]
    Expired {
        /// Its expiry.
        expired_at: u64,
        /// The block's height.
        height: u64,
    },
    /// Not enough tokens.
    #[error("insufficient funds: needs {need}, has {has}")]
    InsufficientFunds {
        /// Needed (fee included).
        need: Amount,
        /// Balance.
        has: Amount,
    },
    /// No such open escrow.
    #[error("no open escrow {0}")]
    NoEscrow(ContentId),
    /// An escrow for this job exists already.
    #[error("escrow {0} exists already")]
    EscrowExists(ContentId),
    /// Someone else's escrow.
    #[error("escrow {escrow} belongs to {owner}, not {signer}")]
    NotOwner {
        /// The escrow.
        escrow: ContentId,
        /// Its requestor.
        owner: String,
        /// The signer.
        signer: String,
    },
    /// A receipt for a task the job does not list.
    #[error("task {0} is not in the job")]
    TaskNotInJob(TaskId),
    /// A task paid already to this provider.
    #[error("task {0} {ALREADY_PAID}")]
    AlreadyPaid(TaskId),
    /// A pair that does not prove the work (names the mismatch).
    #[error("bad proof of work: {0}")]
    BadProof(String),
    /// A receipt at another price than the agreed one.
    #[error("receipt charges {charged} at price {price}/Gfuel; the assignment agreed {agreed}/Gfuel")]
    OverPrice {
        /// The receipt's price.
        price: Amount,
        /// The assignment's price.
        agreed: Amount,
        /// The receipt's charge.
        charged: Amount,
    },
    /// More than the escrow holds.
    #[error("payments of {need} exceed the {left} left in escrow")]
    EscrowExhausted {
        /// Needed.
        need: Amount,
        /// Left.
        left: Amount,
    },
    /// Too early for this.
    #[error("not before height {from} (block {height})")]
    TooEarly {
        /// From when.
        from: u64,
        /// The block's height.
        height: u64,
    },
    /// Signed for another network.
    #[error("signed for network {got}, this is network {want}")]
    WrongChain {
        /// In the transaction.
        got: ContentId,
        /// This network's genesis hash.
        want: ContentId,
    },
    /// No held claim for this task by this provider.
    #[error("no held claim for task {0} by the signer")]
    NoClaim(TaskId),
    /// A dispute for the task is open already, or none is.
    #[error("{0}")]
    Dispute(String),
    /// Equivocation evidence that does not hold, or was reported already.
    #[error("equivocation evidence refused: {0}")]
    Evidence(String),
    /// Only a validator may do this.
    #[error("{0} is not a validator")]
    NotValidator(String),
    /// Not enough unbonded or bonded stake.
    #[error("stake: {0}")]
    Stake(String),
    /// Amounts that overflow.
    #[error("amount overflows")]
    Overflow,
    /// Something malformed in the operation itself.
    #[error("{0}")]
    Malformed(String),
}

/// The words of [`Rejection::AlreadyPaid`], which travels as text
/// (`LedgerResponse::Refused`): a settlement refused for them raced a
/// provider's claim, and goes through once re-planned.
const ALREADY_PAID: &str = "is paid already to this provider";

/// Whether a refusal's `reason` is [`Rejection::AlreadyPaid`].
pub fn is_already_paid(reason: &str) -> bool {
    reason.contains(ALREADY_PAID)
}
