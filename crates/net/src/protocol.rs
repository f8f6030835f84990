//! Protocol names, message caps and the request-response messages.

use serde::{Deserialize, Serialize};
use sharegrid_core::{ContentId, Signed};

/// Gossipsub topic for provider offers.
pub const OFFERS_TOPIC: &str = "sharegrid/offers/1";
/// Request-response protocol for task assignment.
pub const TASK_PROTOCOL: &str = "/sharegrid/task/1";

/// Largest gossiped offer, in bytes.
pub const MAX_OFFER_BYTES: usize = 4 * 1024;
/// Largest task request (a signed assignment: args and input names, not
/// input data, which moves as blobs), in bytes.
pub const MAX_TASK_REQUEST_BYTES: u64 = 256 * 1024;
/// Largest task response (a signed receipt or a refusal), in bytes.
pub const MAX_TASK_RESPONSE_BYTES: u64 = 64 * 1024;
/// Largest signed assignment body a provider reads (the whole request's cap).
pub const MAX_ASSIGNMENT_BYTES: usize = MAX_TASK_REQUEST_BYTES as usize;
/// Largest signed receipt body a requestor reads.
pub const MAX_RECEIPT_BYTES: usize = 16 * 1024;

/// A requestor asks a provider to run a task.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TaskRequest {
    /// The signed [`Assignment`](sharegrid_core::Assignment).
    pub assignment: Signed,
}

/// A provider's answer.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum TaskResponse {
    /// The task ran: its signed [`Receipt`](sharegrid_core::Receipt).
    Receipt(Signed),
    /// The provider will not run it, and why.
    Refused {
        /// One line, for the requestor's why-no-match report.
        reason: String,
    },
}

/// Request-response protocol for content-addressed blobs.
pub const BLOB_PROTOCOL: &str = "/sharegrid/blob/1";
/// Largest chunk a blob response carries, in bytes.
pub const MAX_CHUNK_BYTES: u32 = 1 << 20;
/// Largest blob request, in bytes.
pub const MAX_BLOB_REQUEST_BYTES: u64 = 256;
/// Largest blob response: one chunk plus framing.
pub const MAX_BLOB_RESPONSE_BYTES: u64 = MAX_CHUNK_BYTES as u64 + 1024;

/// Largest task result (its canonical encoding, fetched as a blob) a
/// requestor takes.
pub const MAX_RESULT_BYTES: u64 = 1 << 30;

/// Asks for bytes `offset..offset+len` of the blob `id`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlobRequest {
    /// The blob.
    pub id: ContentId,
    /// First byte wanted.
    pub offset: u64,
    /// Bytes wanted (at most [`MAX_CHUNK_BYTES`]).
    pub len: u32,
}

/// A chunk of a blob, or why there is none.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum BlobResponse {
    /// Bytes from the requested offset, and the blob's total size.
    Chunk {
        /// The bytes.
        #[serde(with = "sharegrid_core::bytes_serde")]
        data: Vec<u8>,
        /// The whole blob's size.
        total: u64,
    },
    /// This peer does not have the blob.
    NotFound,
}

/// Gossipsub topic for new blocks: a producer announces each block's signed
/// header; followers fetch what they lack over [`LEDGER_PROTOCOL`].
pub const BLOCKS_TOPIC: &str = "sharegrid/blocks/1";
/// Request-response protocol for the ledger: submitting transactions and
/// fetching blocks.
pub const LEDGER_PROTOCOL: &str = "/sharegrid/ledger/1";
/// Largest gossiped block header, in bytes.
pub const MAX_HEADER_BYTES: usize = 4 * 1024;
/// Largest ledger request: one transaction (a settlement batch) plus framing.
pub const MAX_LEDGER_REQUEST_BYTES: u64 = sharegrid_ledger::MAX_TX_BYTES as u64 + 4 * 1024;
/// Largest ledger response: a run of blocks.
pub const MAX_LEDGER_RESPONSE_BYTES: u64 = 16 << 20;
/// Blocks a sync response carries at most.
pub const MAX_SYNC_BLOCKS: u32 = 256;

/// A request to a peer's ledger.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum LedgerRequest {
    /// Add a signed transaction to the validator's pool.
    Submit(Signed),
    /// Blocks from this height on (at most [`MAX_SYNC_BLOCKS`], and what
    /// fits in a response).
    Blocks {
        /// First height wanted.
        from: u64,
    },
    /// The peer's head.
    Head,
    /// The genesis of the peer's network (to join it).
    Genesis,
    /// Test tokens for `account` from the peer's faucet, if it runs one.
    Faucet {
        /// Who gets them.
        account: sharegrid_core::NodeId,
    },
}

/// A peer ledger's answer.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum LedgerResponse {
    /// The transaction is in the pool, on disk: it will be in a block.
    Accepted {
        /// Its id.
        id: ContentId,
    },
    /// Not accepted, and why (the ledger's rejection, or "not a validator").
    Refused {
        /// One line.
        reason: String,
    },
    /// Blocks, in order from the height asked for (empty: none yet).
    Blocks(Vec<sharegrid_ledger::Block>),
    /// The peer's head.
    Head {
        /// Its genesis: which network.
        genesis: ContentId,
        /// Height of its last block.
        height: u64,
        /// That block's signed header (none at height 0): a follower syncs
        /// only to a height a validator signed.
        header: Option<Signed>,
    },
    /// The genesis of the peer's network.
    Genesis(Box<sharegrid_ledger::Genesis>),
}
