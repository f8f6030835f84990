//! The HTTP API's own request and answer shapes: what the JSON-lines
//! socket never carried (uploads, task outputs, the ledger explorer). Each
//! derives its OpenAPI schema.

use serde::{Deserialize, Serialize};
use sharegrid_core::{Amount, ContentId, JobId, NodeId, Signed, TaskId, TaskResult};
use sharegrid_ledger::{MAX_TX_BYTES, Tx};
use utoipa::ToSchema;

use crate::ledger::FoundTx;

/// An error: what went wrong, said for a person.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct ErrorBody {
    /// Why.
    pub error: String,
}

/// A job named in a path: its id, or a unique prefix of it.
#[derive(Debug)]
pub struct JobRef;

impl utoipa::PartialSchema for JobRef {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        utoipa::openapi::ObjectBuilder::new()
            .schema_type(utoipa::openapi::schema::Type::String)
            .pattern(Some("^[0-9a-f]{1,16}$"))
            .description(Some("A job's id (16 hex digits), or a unique prefix of it."))
            .into()
    }
}

impl ToSchema for JobRef {}

/// The answer to an upload.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct Uploaded {
    /// The blob's id (its BLAKE3 hash): name it in a job's `files`.
    pub id: ContentId,
    /// Its size.
    pub bytes: u64,
}

/// The answer to a submitted job.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct Submitted {
    /// The job's id.
    pub id: JobId,
}

/// One file a task left in `/out`.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct OutputFile {
    /// Its path under `/out`.
    pub path: String,
    /// Its size.
    pub bytes: u64,
}

/// An accepted task's result: how it ended and what it wrote (the bytes
/// are at `…/stdout`, `…/stderr` and `…/files/{path}`).
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct TaskOutputs {
    /// The task's index in its job.
    pub index: usize,
    /// The task.
    pub task: TaskId,
    /// How the run ended, said for a person.
    pub outcome: String,
    /// The exit code, when the module ran to its end.
    pub exit_code: Option<i32>,
    /// Bytes on stdout.
    pub stdout_bytes: u64,
    /// Bytes on stderr.
    pub stderr_bytes: u64,
    /// Files left in `/out`.
    pub files: Vec<OutputFile>,
}

impl TaskOutputs {
    /// The view of task `index` (`task`) that produced `r`.
    pub fn of(index: usize, task: TaskId, r: &TaskResult) -> TaskOutputs {
        TaskOutputs {
            index,
            task,
            outcome: r.outcome.to_string(),
            exit_code: match r.outcome {
                sharegrid_core::Outcome::Completed { exit_code } => Some(exit_code),
                _ => None,
            },
            stdout_bytes: r.stdout.len() as u64,
            stderr_bytes: r.stderr.len() as u64,
            files: r
                .files
                .iter()
                .map(|f| OutputFile {
                    path: f.path.clone(),
                    bytes: f.data.len() as u64,
                })
                .collect(),
        }
    }
}

/// Where this node's copy of the ledger stands.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct LedgerView {
    /// The network: its genesis hash.
    pub genesis: ContentId,
    /// Height of the last block.
    pub height: u64,
    /// Its hash.
    pub hash: ContentId,
    /// Its time, ms since the epoch.
    pub time_ms: u64,
    /// Whether this node is one of the validators.
    pub validator: bool,
    /// The validators.
    pub validators: Vec<NodeId>,
}

/// A block, for the explorer.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct BlockView {
    /// Its height.
    pub height: u64,
    /// Its hash.
    pub hash: ContentId,
    /// Who produced it.
    pub producer: NodeId,
    /// The producer's clock, ms since the epoch.
    pub time_ms: u64,
    /// Its transactions, in order.
    pub txs: Vec<TxView>,
}

/// A transaction in a block.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct TxView {
    /// Its id.
    pub id: ContentId,
    /// The block's height.
    pub height: u64,
    /// The block's time.
    pub time_ms: u64,
    /// Who signed it.
    pub signer: Option<NodeId>,
    /// What it does, said for a person.
    pub what: String,
    /// The operation's kind (`transfer`, `open_escrow`, `settle`, …).
    pub kind: String,
    /// Tokens it moves from its signer, for transfers, escrows and bonds.
    pub amount: Option<Amount>,
}

impl TxView {
    /// The view of a stored transaction.
    pub fn of(f: &FoundTx) -> TxView {
        TxView::in_block(&f.signed, f.height, f.time_ms)
    }

    /// The view of `signed`, in the block at `height` made at `time_ms`.
    pub fn in_block(signed: &Signed, height: u64, time_ms: u64) -> TxView {
        let (signer, what, kind, amount) = match sharegrid_core::decode_capped::<Tx>(&signed.body, MAX_TX_BYTES) {
            Ok(t) => (Some(t.signer), t.op.describe(), t.op.kind().to_owned(), t.op.amount()),
            Err(e) => (None, format!("undecodable: {e}"), "undecodable".to_owned(), None),
        };
        TxView {
            id: signed.id(),
            height,
            time_ms,
            signer,
            what,
            kind,
            amount,
        }
    }
}

/// An account on the ledger.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct AccountView {
    /// The account (a node id).
    pub id: NodeId,
    /// Tokens held.
    pub balance: Amount,
    /// Stake bonded.
    pub bonded: Amount,
    /// Stake unbonding.
    pub unbonding: Amount,
    /// The next transaction's nonce.
    pub nonce: u64,
    /// As of this block.
    pub height: u64,
    /// Its transactions, newest first.
    pub history: Vec<TxView>,
    /// Its balance and stake after each of the latest blocks that touched
    /// it, oldest first: earnings over time.
    pub balances: Vec<crate::ledger::BalancePoint>,
}

/// A provider as this node sees it: its live offer, the stake the ledger
/// holds for it (an offer only states it), and this node's record of its
/// work.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct ProviderView {
    /// The live offer.
    pub offer: sharegrid_core::Offer,
    /// Stake bonded on this node's copy of the ledger, if it keeps one.
    pub bonded: Option<Amount>,
    /// Results of it that agreed with an accepted quorum, in this node's jobs.
    pub agreed: u64,
    /// Results that disagreed with an accepted quorum.
    pub disagreed: u64,
    /// Attempts that failed (refused, timed out, left mid-task).
    pub failed: u64,
}

/// A transfer from this node's account.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TransferBody {
    /// To whom.
    pub to: NodeId,
    /// How much.
    pub amount: Amount,
    /// Wait until the transaction is in a block.
    #[serde(default)]
    pub wait: bool,
}
