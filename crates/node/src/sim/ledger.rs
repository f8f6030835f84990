//! The ledger side of the simulated nodes: the validator (its chain, its
//! pool of acknowledged transactions, the real [`Producer`]), every other
//! node's copy of the chain kept up by the real [`Follower`], and a wallet
//! that sends one transaction at a time and knows when it landed.

use std::collections::{BTreeSet, VecDeque};
use std::sync::Arc;

use sharegrid_core::{ContentId, NodeKey, Signed};
use sharegrid_ledger::{Block, Chain, Genesis, Op, State, TX_VERSION, Tx};

use crate::ledger::{Applied, Follower, Producer};

/// A transaction's life in blocks from its signing.
const TX_LIFETIME_BLOCKS: u64 = 10_000;

/// The validator: the chain, every block (to serve), the pool.
pub(crate) struct Validator {
    pub(crate) key: Arc<NodeKey>,
    pub(crate) chain: Chain,
    pub(crate) blocks: Vec<Block>,
    pool: Vec<Signed>,
    pool_ids: BTreeSet<ContentId>,
    pool_state: State,
    included: BTreeSet<ContentId>,
    pub(crate) producer: Producer,
}

impl Validator {
    pub(crate) fn new(key: Arc<NodeKey>, genesis: &Genesis, producer: Producer) -> Result<Self, String> {
        let chain = Chain::new(genesis)?;
        Ok(Validator {
            key,
            pool_state: chain.state().clone(),
            chain,
            blocks: Vec::new(),
            pool: Vec::new(),
            pool_ids: BTreeSet::new(),
            included: BTreeSet::new(),
            producer,
        })
    }

    pub(crate) fn pending(&self) -> usize {
        self.pool.len()
    }

    /// Acknowledges `tx` if it applies to the pool's state (or is known).
    pub(crate) fn accept(&mut self, tx: Signed) -> Result<(), String> {
        let id = tx.id();
        if self.pool_ids.contains(&id) || self.included.contains(&id) {
            return Ok(());
        }
        self.pool_state
            .apply(&tx, self.chain.height() + 1)
            .map_err(|r| r.to_string())?;
        self.pool_ids.insert(id);
        self.pool.push(tx);
        Ok(())
    }

    /// Makes a block of the pool; returns it.
    pub(crate) fn produce(&mut self, now_ms: u64, empty_ok: bool) -> Option<Block> {
        if self.pool.is_empty() && !empty_ok {
            return None;
        }
        let p = self.chain.propose(&self.key, self.pool.clone(), now_ms).ok()?;
        let block = p.block.clone();
        self.included.extend(block.txs.iter().map(Signed::id));
        self.chain.commit(p);
        self.blocks.push(block.clone());
        // What is left is re-checked against the new state.
        let rest: Vec<Signed> = std::mem::take(&mut self.pool)
            .into_iter()
            .filter(|t| !self.included.contains(&t.id()))
            .collect();
        self.pool_state = self.chain.state().clone();
        self.pool_ids.clear();
        let height = self.chain.height() + 1;
        for tx in rest {
            if self.pool_state.apply(&tx, height).is_ok() {
                self.pool_ids.insert(tx.id());
                self.pool.push(tx);
            }
        }
        Some(block)
    }

    /// Blocks from `from`, at most `max`.
    pub(crate) fn blocks_from(&self, from: u64, max: usize) -> Vec<Block> {
        let start = from.saturating_sub(1) as usize;
        self.blocks.iter().skip(start).take(max).cloned().collect()
    }
}

/// A follower's copy of the chain.
pub(crate) struct Follows {
    pub(crate) chain: Chain,
    pub(crate) follower: Follower,
    included: BTreeSet<ContentId>,
}

impl Follows {
    pub(crate) fn new(genesis: &Genesis, follower: Follower) -> Result<Self, String> {
        Ok(Follows {
            chain: Chain::new(genesis)?,
            follower,
            included: BTreeSet::new(),
        })
    }

    pub(crate) fn height(&self) -> u64 {
        self.chain.height()
    }

    /// Checks and applies `blocks` in order (as the node's ledger does).
    pub(crate) fn apply(&mut self, blocks: &[Block]) -> Applied {
        let mut n = 0;
        for b in blocks {
            let Ok(h) = b.open_header() else {
                return Applied::Invalid("unreadable header".into());
            };
            if h.height <= self.chain.height() {
                continue;
            }
            match self.chain.check(b) {
                Ok((header, state)) => {
                    self.chain.advance(b, &header, state);
                    self.included.extend(b.txs.iter().map(Signed::id));
                    n += 1;
                }
                Err(e) => return Applied::Invalid(e.to_string()),
            }
        }
        Applied::Blocks(n)
    }

    pub(crate) fn includes(&self, tx: &ContentId) -> bool {
        self.included.contains(tx)
    }
}

/// What a wallet's transaction is for.
#[derive(Debug, Clone)]
pub(crate) enum Intent {
    /// Open job `job`'s escrow.
    Fund(usize),
    /// Settle job `job` (`last`: it has ended).
    Settle { job: usize, last: bool },
    /// A provider's claim.
    Claim(Box<Op>),
}

/// A transaction sent, not yet seen in a block.
pub(crate) struct InFlight {
    pub(crate) tx: Signed,
    pub(crate) intent: Intent,
    /// What the transaction pays, to record when it lands (settlement).
    pub(crate) pairs: Vec<(sharegrid_core::TaskId, sharegrid_core::NodeId)>,
    /// When to give up waiting and send again.
    pub(crate) resend_at: u64,
}

/// One account's transactions: one in flight at a time, the rest queued.
pub(crate) struct Wallet {
    pub(crate) key: Arc<NodeKey>,
    pub(crate) inflight: Option<InFlight>,
    pub(crate) queue: VecDeque<Intent>,
}

impl Wallet {
    pub(crate) fn new(key: Arc<NodeKey>) -> Self {
        Wallet {
            key,
            inflight: None,
            queue: VecDeque::new(),
        }
    }

    /// Signs `op` with the account's next nonce as `chain` has it.
    pub(crate) fn sign(&self, chain: &Chain, op: Op) -> Option<Signed> {
        let me = self.key.id();
        let tx = Tx {
            version: TX_VERSION,
            chain: chain.state().chain,
            signer: me,
            nonce: chain.state().accounts.get(&me).map_or(0, |a| a.nonce),
            fee: chain.state().params.min_fee,
            expires_at_height: chain.height() + TX_LIFETIME_BLOCKS,
            op,
        };
        Signed::sign(&self.key, &tx).ok()
    }
}
