//! The ledger ordered by validators who do not trust each other.
//!
//! [commonware's Simplex](commonware_consensus::simplex) decides which block
//! comes next; this crate is the application it drives ([`App`]): a leader's
//! proposal drains its pool into a block built on the parent's state
//! ([`sharegrid_ledger::Chain::propose`]), every other validator re-checks
//! that block against the same parent state ([`sharegrid_ledger::Chain::check`])
//! before voting for it, and a finalization certificate commits the block
//! (and any ancestors finalized with it) through the node's store ([`Host`]).
//! Conflicting signed votes from one validator are handed to the host as
//! evidence, which becomes a transaction that slashes the validator's stake.
//!
//! Validators vote with their node keys (ed25519, so every vote is
//! attributable); the participant set is the genesis's validators; votes sign
//! a namespace derived from the genesis hash, so a vote for one network is
//! worthless on another. Blocks travel on a fourth channel beside the
//! engine's three: the leader sends its block to all, and anyone missing a
//! block (to verify a proposal, or to commit a finalized one after a restart)
//! asks its peers for it by hash until one answers.
//!
//! Nothing here does I/O of its own: the engine runs on a `commonware-runtime`
//! (tokio in a node, the deterministic runtime in tests) and the host stores.

mod app;
mod engine;
mod host;
pub mod network;

pub use app::App;
pub use engine::{Channels, EngineConfig, Started, start};
pub use host::{Committed, Host, MemoryHost};
pub use sharegrid_ledger::consensus::*;

use commonware_cryptography::ed25519;
use sharegrid_core::{ContentId, NodeId, NodeKey};

/// p2p channel numbers: the engine's votes, certificates and resolver, and
/// the blocks this crate sends.
pub const CHANNEL_VOTES: u64 = 0;
/// See [`CHANNEL_VOTES`].
pub const CHANNEL_CERTIFICATES: u64 = 1;
/// See [`CHANNEL_VOTES`].
pub const CHANNEL_RESOLVER: u64 = 2;
/// See [`CHANNEL_VOTES`].
pub const CHANNEL_BLOCKS: u64 = 3;

/// What one peer may send on `channel`: 1,000 messages a second, in bursts
/// of at most 256 (64 on the blocks channel). The p2p layer preallocates a
/// receiving queue of `peers × burst` slots per channel, so the burst is
/// sized to real traffic — a few votes and certificates per view, one block
/// per view, catch-up answers — not to the rate: a burst of 100,000 made
/// each validator allocate and zero about 2 GB at start (seconds of CPU,
/// measured with 4 validators).
pub fn quota(channel: u64) -> commonware_runtime::Quota {
    let n = |v: u32| std::num::NonZeroU32::new(v).unwrap_or(std::num::NonZeroU32::MIN);
    let burst = if channel == CHANNEL_BLOCKS { 64 } else { 256 };
    commonware_runtime::Quota::per_second(n(1_000)).allow_burst(n(burst))
}

/// A node key as the engine's signing key.
pub fn private_key(key: &NodeKey) -> ed25519::PrivateKey {
    use commonware_codec::DecodeExt as _;
    // 32 bytes always decode to a signing key.
    match ed25519::PrivateKey::decode(commonware_codec::Copying(&key.seed()[..])) {
        Ok(k) => k,
        Err(_) => unreachable!("an ed25519 seed is any 32 bytes"),
    }
}

/// A validator's signing scheme for network `chain` (`None` if `key` is not
/// one of `validators`).
pub fn signer(chain: &ContentId, validators: &[NodeId], key: &NodeKey) -> Result<Option<Scheme>, String> {
    let set = participants(validators)?;
    Ok(Scheme::signer(&namespace(chain), set, private_key(key)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use commonware_cryptography::Signer as _;

    #[test]
    fn node_ids_and_engine_keys_are_the_same_bytes() {
        let key = NodeKey::from_seed([7; 32]);
        let pk = private_key(&key).public_key();
        assert_eq!(node_id(&pk), key.id());
        assert_eq!(public_key(&key.id()), Some(pk));
    }

    #[test]
    fn a_validator_set_with_a_duplicate_is_refused() {
        let a = NodeKey::from_seed([1; 32]).id();
        assert!(participants(&[a, a]).is_err());
        assert_eq!(participants(&[a]).map(|s| s.len()), Ok(1));
    }
}
