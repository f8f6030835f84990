//! Blocks and the chain of them.
//!
//! A block is a signed [`Header`] and its transactions. The header binds the
//! height, the previous block's hash, the transactions (by their ids) and the
//! state root after applying them, and is signed by the producer; the
//! block's hash is the hash of the header. Height 0 is the genesis, whose
//! hash is the hash of the [`Genesis`] itself, so two chains from different
//! geneses never link.
//!
//! [`Chain`] is the pure core of ordering: [`Chain::propose`] builds the
//! next block from candidate transactions (dropping those the state rejects:
//! rejected transactions never enter a block), and [`Chain::apply`] checks a
//! block from elsewhere — every check before any change. Who may produce a
//! block, and when, is the ordering layer's business (one validator in the
//! node today; a BFT engine later): it hands the chain finalized blocks, and
//! nothing here changes.

use serde::{Deserialize, Serialize};
use sharegrid_core::{ContentId, Domain, NodeId, NodeKey, Signed, SignedMessage, WireError, verify_batch};

use crate::state::{Genesis, State};
use crate::tx::Rejection;

/// Version of [`Header`].
pub const BLOCK_VERSION: u16 = 2;
/// Most transactions in one block.
pub const MAX_BLOCK_TXS: usize = 10_000;
/// Most bytes of transaction bodies in one block, so that any block fits in
/// one sync response.
pub const MAX_BLOCK_BYTES: usize = 8 << 20;
/// Largest header accepted.
const MAX_HEADER_BYTES: usize = 4 * 1024;

/// A block's header, signed by its producer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Header {
    /// [`BLOCK_VERSION`].
    pub version: u16,
    /// 1 for the first block after genesis.
    pub height: u64,
    /// The previous block's hash (the genesis hash for height 1).
    pub prev: ContentId,
    /// Commitment to the transactions: [`txs_root`] of their ids, in order.
    pub txs: ContentId,
    /// [`State::root`] after applying them.
    pub state_root: ContentId,
    /// Who produced and signed it.
    pub producer: NodeId,
    /// The producer's clock when it made the block (ms since the epoch); for
    /// people reading history, never used by the state machine. Never
    /// before the previous block's.
    pub time_ms: u64,
}

impl SignedMessage for Header {
    const DOMAIN: Domain = Domain::Block;
    const KIND: &'static str = "block header";
    fn signer(&self) -> NodeId {
        self.producer
    }
    fn version(&self) -> u16 {
        self.version
    }
}

/// A block: its signed header and its transactions.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Block {
    /// The signed [`Header`].
    pub header: Signed,
    /// The transactions, in order.
    pub txs: Vec<Signed>,
    /// On a network of several validators: the encoded finalization
    /// certificate of this block (a quorum of the validators' signatures,
    /// [`crate::consensus::check_finalization`]), when it has its own;
    /// empty for a block finalized with a descendant, and on a network of
    /// one validator. Not part of the block's hash.
    #[serde(default, skip_serializing_if = "Vec::is_empty", with = "sharegrid_core::bytes_serde")]
    pub certificate: Vec<u8>,
}

impl Block {
    /// The block's hash: the hash of its header.
    pub fn hash(&self) -> ContentId {
        self.header.id()
    }

    /// The header, checked against its signature.
    pub fn open_header(&self) -> Result<Header, WireError> {
        self.header.open(MAX_HEADER_BYTES)
    }

    /// The header without checking its signature: to route a block by its
    /// height and parent, never to accept it (that is [`Chain::check`],
    /// which checks the signature).
    pub fn peek_header(&self) -> Result<Header, WireError> {
        self.header.open_verified(MAX_HEADER_BYTES)
    }
}

/// The commitment to a block's transactions: BLAKE3 over their ids in order.
pub fn txs_root(txs: &[Signed]) -> ContentId {
    let mut h = blake3::Hasher::new();
    for t in txs {
        h.update(t.id().as_bytes());
    }
    ContentId::from_bytes(*h.finalize().as_bytes())
}

/// Why a block was refused. The chain is unchanged.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum BlockError {
    /// On a network of several validators: no valid finalization
    /// certificate covers it.
    #[error("not finalized: {0}")]
    Certificate(String),
    /// The header does not open (signature, version, size).
    #[error("bad header: {0}")]
    Header(#[from] WireError),
    /// Not the next height.
    #[error("block at height {got}, expected {want}")]
    Height {
        /// The block's.
        got: u64,
        /// The next height.
        want: u64,
    },
    /// `prev` is not the head's hash.
    #[error("broken hash link at height {height}: prev {got}, head is {want}")]
    Link {
        /// The block's height.
        height: u64,
        /// The block's prev.
        got: ContentId,
        /// The head's hash.
        want: ContentId,
    },
    /// Signed by someone who is not a validator.
    #[error("block {height} produced by {producer}, not a validator")]
    NotValidator {
        /// The block's height.
        height: u64,
        /// Its producer.
        producer: NodeId,
    },
    /// The transactions do not match the header.
    #[error("block {height}: transactions do not match the header's commitment")]
    Txs {
        /// The block's height.
        height: u64,
    },
    /// Too many transactions, or too many bytes of them.
    #[error(
        "block {height}: {count} transactions of {bytes} bytes, at most {MAX_BLOCK_TXS} and {MAX_BLOCK_BYTES} bytes"
    )]
    TooMany {
        /// The block's height.
        height: u64,
        /// How many.
        count: usize,
        /// Bytes of their bodies.
        bytes: usize,
    },
    /// Time going backwards.
    #[error("block {height}: time {time_ms} before the previous block's {prev_ms}")]
    Time {
        /// The block's height.
        height: u64,
        /// Its time.
        time_ms: u64,
        /// The previous block's.
        prev_ms: u64,
    },
    /// A transaction the state rejects: rejected transactions never enter a block.
    #[error("block {height}: transaction {index} ({id}) is rejected: {rejection}")]
    Tx {
        /// The block's height.
        height: u64,
        /// Its position.
        index: usize,
        /// Its id.
        id: ContentId,
        /// Why.
        rejection: Box<Rejection>,
    },
    /// The state root differs from the one computed.
    #[error("block {height}: wrong state root: header says {claimed}, replay gives {computed}")]
    StateRoot {
        /// The block's height.
        height: u64,
        /// In the header.
        claimed: ContentId,
        /// Computed.
        computed: ContentId,
    },
}

/// A block the chain built, with the state after it, ready to commit.
#[derive(Debug)]
pub struct Proposal {
    /// The block.
    pub block: Block,
    /// Its header.
    pub header: Header,
    /// The state after it.
    pub state: State,
    /// Candidates left out, and why.
    pub rejected: Vec<(ContentId, Rejection)>,
}

/// The chain's head: a state and where it stands.
#[derive(Clone, Debug)]
pub struct Chain {
    state: State,
    height: u64,
    head: ContentId,
    time_ms: u64,
}

impl Chain {
    /// The chain at its genesis.
    pub fn new(genesis: &Genesis) -> Result<Chain, String> {
        let state = State::genesis(genesis)?;
        Ok(Chain {
            head: state.chain,
            state,
            height: 0,
            time_ms: 0,
        })
    }

    /// The chain restored at a stored head (the state after block `height`,
    /// whose hash is `head` and time `time_ms`). The state names its network
    /// and validators.
    pub fn restore(state: State, height: u64, head: ContentId, time_ms: u64) -> Chain {
        Chain {
            state,
            height,
            head,
            time_ms,
        }
    }

    /// The current state.
    pub fn state(&self) -> &State {
        &self.state
    }

    /// Height of the last block (0: only the genesis).
    pub fn height(&self) -> u64 {
        self.height
    }

    /// Hash of the last block (the genesis hash at height 0).
    pub fn head(&self) -> ContentId {
        self.head
    }

    /// Hash of the genesis: which network this chain is.
    pub fn genesis_hash(&self) -> ContentId {
        self.state.chain
    }

    /// Time of the last block.
    pub fn time_ms(&self) -> u64 {
        self.time_ms
    }

    /// Whether `id` may produce blocks.
    pub fn is_validator(&self, id: &NodeId) -> bool {
        self.state.validators.contains(id)
    }

    /// Builds the next block from `candidates`, in order, leaving out those
    /// the state rejects (and any beyond [`MAX_BLOCK_TXS`] or
    /// [`MAX_BLOCK_BYTES`]: they wait for the next block). The chain is
    /// unchanged until [`Chain::commit`].
    pub fn propose(
        &self,
        key: &NodeKey,
        candidates: impl IntoIterator<Item = Signed>,
        time_ms: u64,
    ) -> Result<Proposal, WireError> {
        self.build(key, candidates, time_ms, false)
    }

    /// [`Chain::propose`] from candidates whose signatures were verified
    /// when they were admitted (a validator's pool): they are not verified
    /// again. A candidate with a bad signature would make a block every
    /// other node refuses, so only a pool that verified each entry may call
    /// this.
    pub fn propose_verified(
        &self,
        key: &NodeKey,
        candidates: impl IntoIterator<Item = Signed>,
        time_ms: u64,
    ) -> Result<Proposal, WireError> {
        self.build(key, candidates, time_ms, true)
    }

    fn build(
        &self,
        key: &NodeKey,
        candidates: impl IntoIterator<Item = Signed>,
        time_ms: u64,
        verified: bool,
    ) -> Result<Proposal, WireError> {
        let height = self.height + 1;
        let mut state = self.state.clone();
        let mut txs = Vec::new();
        let mut rejected = Vec::new();
        let mut bytes = 0;
        let candidates: Vec<Signed> = candidates
            .into_iter()
            .take(MAX_BLOCK_TXS)
            .take_while(|t| {
                bytes += t.body.len();
                bytes <= MAX_BLOCK_BYTES
            })
            .collect();
        let batch_ok = verified || signatures_verify(&candidates);
        for tx in candidates {
            let applied = if batch_ok {
                state.apply_verified(&tx, height)
            } else {
                state.apply(&tx, height)
            };
            match applied {
                Ok(()) => txs.push(tx),
                Err(why) => rejected.push((tx.id(), why)),
            }
        }
        let header = Header {
            version: BLOCK_VERSION,
            height,
            prev: self.head,
            txs: txs_root(&txs),
            state_root: state.root(),
            producer: key.id(),
            time_ms: time_ms.max(self.time_ms),
        };
        let block = Block {
            header: Signed::sign(key, &header)?,
            txs,
            certificate: Vec::new(),
        };
        Ok(Proposal {
            block,
            header,
            state,
            rejected,
        })
    }

    /// Makes a proposal (built from this chain's head) the head.
    pub fn commit(&mut self, p: Proposal) {
        self.height = p.header.height;
        self.head = p.block.hash();
        self.time_ms = p.header.time_ms;
        self.state = p.state;
    }

    /// Checks `block` as the next one — header signature, producer, height,
    /// hash link, transactions, every transaction applying, state root — and
    /// makes it the head, or says what is wrong and changes nothing.
    pub fn apply(&mut self, block: &Block) -> Result<Header, BlockError> {
        let (header, state) = self.check(block)?;
        self.advance(block, &header, state);
        Ok(header)
    }

    /// Makes a block that [`Chain::check`] passed, with the state it
    /// returned, the head (for callers that store the block in between).
    pub fn advance(&mut self, block: &Block, header: &Header, state: State) {
        self.height = header.height;
        self.head = block.hash();
        self.time_ms = header.time_ms;
        self.state = state;
    }

    /// What [`Chain::apply`] checks; returns the header and the state after.
    pub fn check(&self, block: &Block) -> Result<(Header, State), BlockError> {
        self.check_with(block, &[])
    }

    /// [`Chain::check`], taking the signature of transaction `i` as
    /// verified where `known[i]` (missing entries are false): a validator's
    /// pool holds transactions whose signatures it verified, and a block
    /// from a peer mostly repeats them. The caller must answer for each
    /// transaction exactly (body, signer and signature), not for its id,
    /// which covers only the body.
    pub fn check_with(&self, block: &Block, known: &[bool]) -> Result<(Header, State), BlockError> {
        let header = block.open_header()?;
        let height = header.height;
        if height != self.height + 1 {
            return Err(BlockError::Height {
                got: height,
                want: self.height + 1,
            });
        }
        if header.prev != self.head {
            return Err(BlockError::Link {
                height,
                got: header.prev,
                want: self.head,
            });
        }
        if !self.is_validator(&header.producer) {
            return Err(BlockError::NotValidator {
                height,
                producer: header.producer,
            });
        }
        let bytes: usize = block.txs.iter().map(|t| t.body.len()).sum();
        if block.txs.len() > MAX_BLOCK_TXS || bytes > MAX_BLOCK_BYTES {
            return Err(BlockError::TooMany {
                height,
                count: block.txs.len(),
                bytes,
            });
        }
        if txs_root(&block.txs) != header.txs {
            return Err(BlockError::Txs { height });
        }
        if header.time_ms < self.time_ms {
            return Err(BlockError::Time {
                height,
                time_ms: header.time_ms,
                prev_ms: self.time_ms,
            });
        }
        // Cloning is O(state) per block, as is the root below; blocks carry
        // many transactions, so this is small beside verifying them.
        let mut state = self.state.clone();
        // Every signature not known in one batch; if the batch fails, one
        // by one, so the error names the transaction.
        let known = |i: usize| known.get(i).copied().unwrap_or(false);
        let unknown = block.txs.iter().enumerate().filter(|(i, _)| !known(*i)).map(|(_, t)| t);
        let batch_ok = signatures_verify(unknown);
        for (index, tx) in block.txs.iter().enumerate() {
            let applied = if batch_ok || known(index) {
                state.apply_verified(tx, height)
            } else {
                state.apply(tx, height)
            };
            applied.map_err(|rejection| BlockError::Tx {
                height,
                index,
                id: tx.id(),
                rejection: Box::new(rejection),
            })?;
        }
        let computed = state.root();
        if computed != header.state_root {
            return Err(BlockError::StateRoot {
                height,
                claimed: header.state_root,
                computed,
            });
        }
        Ok((header, state))
    }
}

/// Whether every transaction's signature verifies, checked in one batch:
/// the check every validator applies to a block's transactions.
pub fn signatures_verify<'a>(txs: impl IntoIterator<Item = &'a Signed>) -> bool {
    let items: Vec<_> = txs
        .into_iter()
        .map(|t| (t.signer, Domain::Transaction, t.body.as_slice(), t.signature))
        .collect();
    verify_batch(&items).is_ok()
}
