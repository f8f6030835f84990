//! sharegrid-ledger: the ledger as a pure state machine (`shared/DESIGN.md`
//! §7). [`State::apply`] takes a signed transaction and the height of the
//! block it goes into, and either changes the state or rejects it with a
//! specific [`Rejection`] and changes nothing. No I/O, no clock, no
//! randomness: replaying the same transactions always gives the same
//! [`State::root`].
//!
//! Accounts are ed25519 public keys ([`NodeId`]); money is [`Amount`]
//! (integers in the smallest unit). Every transaction carries its signer's
//! nonce (no replay), a fee (to the treasury) and an expiry height.
//!
//! Escrow: a requestor locks a job's budget with the job's task ids. It
//! settles in batches with pairs of (its signed assignment, the provider's
//! signed receipt): each pays the receipt's charge (fuel × the agreed price)
//! to the provider, once per task, plus the network fee on it to the
//! treasury; the final batch refunds the rest. A provider whose requestor
//! has not settled by the claim height presents the same pair itself, so a
//! vanished requestor cannot stiff anyone. After the close height anyone
//! may return what is left to the requestor.
//!
//! Blocks ([`Block`], [`Chain`]): each binds its height, the previous
//! block's hash, its transactions and the state root after them, signed by
//! its producer. [`Chain::apply`] checks all of it; storing blocks and
//! deciding who produces the next one live in the node.

mod block;
pub mod consensus;
mod fault;
mod standing;
mod state;
mod tx;

pub use block::{
    BLOCK_VERSION, Block, BlockError, Chain, Header, MAX_BLOCK_BYTES, MAX_BLOCK_TXS, Proposal, signatures_verify,
    txs_root,
};
pub use fault::{Dispute, HeldClaim, MAX_EVIDENCE, Rerun, Said};
pub use standing::Unpayable;
pub use state::{Account, Allocation, Escrow, Genesis, MAX_TX_BYTES, Params, Stake, State};
pub use tx::{Op, Paid, Rejection, TX_VERSION, Tx, is_already_paid};
