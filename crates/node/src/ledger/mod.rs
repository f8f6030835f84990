//! The node's ledger: the chain (the pure state machine of
//! `sharegrid-ledger`) kept in `ledger.db`, and its role in ordering.
//!
//! Ordering sits behind one narrow boundary: a validator turns its pool of
//! acknowledged transactions into blocks ([`Ledger::produce`]); every other
//! node checks and applies blocks it receives ([`Ledger::apply_block`]).
//! The embedded default is one validator inside a node, producing a block
//! when transactions are pending, at most every `block_interval`. A BFT
//! engine (commonware Simplex) would replace only [`Ledger::produce`]'s
//! caller: it hands finalized blocks to the same checks, and nothing in the
//! state machine changes.
//!
//! A transaction is acknowledged ([`Ledger::accept`] returns its id) only
//! once it applies to the pool's state and is on disk in the pool: a killed
//! validator restarts with it and puts it in a block.

mod client;
mod consensus;
pub(crate) mod follower;
pub(crate) mod producer;
mod store;

use std::collections::HashSet;
use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard};

use sharegrid_core::{Amount, ContentId, NodeId, NodeKey, Signed};
use sharegrid_ledger::{
    Account, Block, BlockError, Chain, Escrow, Genesis, MAX_BLOCK_BYTES, Op, State, TX_VERSION, Tx,
};
use tokio::sync::watch;

pub use client::{LedgerClient, LedgerError};
pub use consensus::{Consensus, parse_peers};

pub use follower::{Applied, Follower, FollowerAction, FollowerInput};
pub use producer::{Produce, Producer};
pub use store::{FoundTx, LedgerStore, LedgerStoreError};

/// A transaction's expiry, in blocks from now, when the node signs it.
const TX_LIFETIME_BLOCKS: u64 = 10_000;

/// Why a transaction was not acknowledged.
#[derive(Debug, thiserror::Error)]
pub enum AcceptError {
    /// This node does not order transactions.
    #[error("this node is not a validator")]
    NotValidator,
    /// The transaction does not apply: the ledger's reason.
    #[error(transparent)]
    Rejected(#[from] sharegrid_ledger::Rejection),
    /// It could not be written to the pool (our problem; try again).
    #[error("cannot store the transaction: {0}")]
    Store(#[from] LedgerStoreError),
}

/// Why a block from a peer was not applied.
#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    /// The block is invalid (the peer sent something wrong).
    #[error(transparent)]
    Invalid(#[from] BlockError),
    /// Storing it failed (our problem).
    #[error(transparent)]
    Store(#[from] LedgerStoreError),
}

/// Where the ledger stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Head {
    /// Which network.
    pub genesis: ContentId,
    /// Height of the last block.
    pub height: u64,
    /// Its hash.
    pub hash: ContentId,
    /// Its time.
    pub time_ms: u64,
}

struct Inner {
    store: LedgerStore,
    chain: Chain,
    /// Acknowledged, not yet in a block, in order.
    pending: Vec<Signed>,
    /// Their ids.
    pending_ids: HashSet<ContentId>,
    /// The chain's state with `pending` applied: what a new transaction is
    /// checked against.
    pending_state: State,
    /// The next nonce for this node's own transactions (a follower's may be
    /// ahead of the chain while its transactions travel).
    own_next: u64,
    /// The head block's signed header (none at height 0): what this node
    /// shows a peer asking for its head.
    head_header: Option<Signed>,
}

/// A node's ledger.
pub struct Ledger {
    inner: Mutex<Inner>,
    /// A second connection to `ledger.db` for what peers and commands read
    /// (blocks, transactions, history): WAL lets it read committed blocks
    /// while the chain is written, so a peer's `Blocks` request never holds
    /// the lock blocks and transactions are applied under.
    reader: Mutex<LedgerStore>,
    key: Arc<NodeKey>,
    genesis: Genesis,
    heads: watch::Sender<u64>,
    /// One own transaction signed and submitted at a time, whichever task
    /// sends it (payments, the judge, the faucet), so nonces go out in order.
    pub(crate) sending: tokio::sync::Mutex<()>,
}

impl std::fmt::Debug for Ledger {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Ledger({})", self.head().height)
    }
}

impl Ledger {
    /// Opens `ledger.db` at `path` for `genesis`: the stored head, and the
    /// pool re-checked against it.
    pub fn open(path: &Path, genesis: Genesis, key: Arc<NodeKey>) -> Result<Arc<Ledger>, LedgerStoreError> {
        let store = LedgerStore::open(path, &genesis)?;
        let reader = Mutex::new(LedgerStore::open(path, &genesis)?);
        let chain = store.chain(&genesis)?;
        let pooled = store.pool()?;
        let (heads, _) = watch::channel(chain.height());
        let own_next = chain.state().accounts.get(&key.id()).map_or(0, |a| a.nonce);
        let head_header = match chain.height() {
            0 => None,
            h => store.blocks(h, 1, MAX_BLOCK_BYTES)?.pop().map(|b| b.header),
        };
        let ledger = Ledger {
            inner: Mutex::new(Inner {
                pending_state: chain.state().clone(),
                store,
                chain,
                pending: Vec::new(),
                pending_ids: HashSet::new(),
                own_next,
                head_header,
            }),
            reader,
            key,
            genesis,
            heads,
            sending: tokio::sync::Mutex::new(()),
        };
        {
            let mut inner = ledger.lock();
            let stale = inner.repool(pooled);
            inner.store.pool_remove(&stale)?;
        }
        Ok(Arc::new(ledger))
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic while holding the lock cannot leave the chain half-changed
        // (every change is a swap after all checks), so a poisoned lock is usable.
        self.inner.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The genesis.
    pub fn genesis(&self) -> &Genesis {
        &self.genesis
    }

    /// This node's account.
    pub fn me(&self) -> NodeId {
        self.key.id()
    }

    /// Whether this node produces blocks.
    pub fn is_validator(&self) -> bool {
        self.genesis.validators.contains(&self.key.id())
    }

    /// The validator transactions go to.
    pub fn validator(&self) -> Option<NodeId> {
        self.genesis.validators.first().copied()
    }

    /// The head.
    pub fn head(&self) -> Head {
        let inner = self.lock();
        Head {
            genesis: inner.chain.genesis_hash(),
            height: inner.chain.height(),
            hash: inner.chain.head(),
            time_ms: inner.chain.time_ms(),
        }
    }

    /// The head block's signed header (none at height 0).
    pub fn head_header(&self) -> Option<Signed> {
        self.lock().head_header.clone()
    }

    /// Watches the head's height.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.heads.subscribe()
    }

    /// Reads the current state.
    pub fn with_state<R>(&self, f: impl FnOnce(&State) -> R) -> R {
        f(self.lock().chain.state())
    }

    /// An account as of the last block.
    pub fn account(&self, id: &NodeId) -> Account {
        self.with_state(|s| s.accounts.get(id).copied().unwrap_or_default())
    }

    /// An open escrow.
    pub fn escrow(&self, escrow: &ContentId) -> Option<Escrow> {
        self.with_state(|s| s.escrows.get(escrow).cloned())
    }

    /// Transactions waiting for a block.
    pub fn pending(&self) -> usize {
        self.lock().pending.len()
    }

    /// Validator: checks `tx` against the pool's state and, if it applies,
    /// writes it to the pool and acknowledges it with its id.
    pub fn accept(&self, tx: Signed) -> Result<ContentId, AcceptError> {
        if !self.is_validator() {
            return Err(AcceptError::NotValidator);
        }
        let mut inner = self.lock();
        let id = tx.id();
        if inner.pending_ids.contains(&id) {
            return Ok(id);
        }
        let height = inner.chain.height() + 1;
        inner.pending_state.apply(&tx, height)?;
        if let Err(e) = inner.store.pool_add(&tx) {
            // Not on disk: not acknowledged. Undo the check's effect.
            let pending = std::mem::take(&mut inner.pending);
            inner.repool(pending);
            return Err(AcceptError::Store(e));
        }
        inner.pending.push(tx);
        inner.pending_ids.insert(id);
        Ok(id)
    }

    /// Validator: makes a block of the pool, stores it and makes it the
    /// head. `None` when nothing is pending and `empty_ok` is false.
    pub fn produce(&self, now_ms: u64, empty_ok: bool) -> Result<Option<Block>, LedgerStoreError> {
        let mut inner = self.lock();
        if inner.pending.is_empty() && !empty_ok {
            return Ok(None);
        }
        let candidates = inner.pending.clone();
        let p = inner
            .chain
            .propose(&self.key, candidates, now_ms)
            .map_err(|e| LedgerStoreError::Damaged(e.to_string()))?;
        for (id, why) in &p.rejected {
            // Acknowledged transactions apply to the pool's state in order;
            // one fails here only by expiring while a full block waited.
            tracing::warn!(tx = %id.short(), %why, "pooled transaction dropped");
        }
        inner.store.commit(&p.block, &p.header, &p.state)?;
        let dropped: Vec<ContentId> = p.rejected.iter().map(|(id, _)| *id).collect();
        inner.store.pool_remove(&dropped)?;
        let block = p.block.clone();
        let included: HashSet<ContentId> = block.txs.iter().map(Signed::id).collect();
        inner.chain.commit(p);
        inner.head_header = Some(block.header.clone());
        let rest: Vec<Signed> = std::mem::take(&mut inner.pending)
            .into_iter()
            .filter(|t| !included.contains(&t.id()) && !dropped.contains(&t.id()))
            .collect();
        let stale = inner.repool(rest);
        inner.store.pool_remove(&stale)?;
        let height = inner.chain.height();
        drop(inner);
        self.heads.send_replace(height);
        Ok(Some(block))
    }

    /// Follower: checks `block` as the next one, stores it and makes it the
    /// head. `Ok(false)` for a block at or below the head (already have it).
    pub fn apply_block(&self, block: &Block) -> Result<bool, ApplyError> {
        let inner = self.lock();
        let header = block.open_header().map_err(BlockError::from)?;
        if header.height <= inner.chain.height() {
            return Ok(false);
        }
        let (header, state) = inner.chain.check(block)?;
        self.advance(inner, block, &header, state)?;
        Ok(true)
    }

    /// Makes a checked block the head: stored with the state after it (one
    /// SQLite transaction), this node's own nonce caught up, a validator's
    /// pool re-checked against the new head, listeners told.
    fn advance(
        &self,
        mut inner: MutexGuard<'_, Inner>,
        block: &Block,
        header: &sharegrid_ledger::Header,
        state: State,
    ) -> Result<(), LedgerStoreError> {
        inner.store.commit(block, header, &state)?;
        inner.chain.advance(block, header, state);
        inner.head_header = Some(block.header.clone());
        // This node's own transactions in this block are no longer in flight.
        let chain_nonce = inner.chain.state().accounts.get(&self.key.id()).map_or(0, |a| a.nonce);
        inner.own_next = inner.own_next.max(chain_nonce);
        // The pool (and its state) is a validator's alone; a follower has none.
        if self.is_validator() {
            let included: HashSet<ContentId> = block.txs.iter().map(Signed::id).collect();
            let rest: Vec<Signed> = std::mem::take(&mut inner.pending)
                .into_iter()
                .filter(|t| !included.contains(&t.id()))
                .collect();
            let stale = inner.repool(rest);
            inner.store.pool_remove(&stale)?;
        }
        let height = inner.chain.height();
        drop(inner);
        self.heads.send_replace(height);
        Ok(())
    }

    /// Signs `op` as this node's next transaction (fee: the minimum). The
    /// nonce is taken: call [`Ledger::release_nonce`] if it is not sent.
    pub fn sign(&self, op: Op) -> Signed {
        let mut inner = self.lock();
        let nonce = if self.is_validator() {
            inner.pending_state.accounts.get(&self.key.id()).map_or(0, |a| a.nonce)
        } else {
            let chain = inner.chain.state().accounts.get(&self.key.id()).map_or(0, |a| a.nonce);
            inner.own_next.max(chain)
        };
        inner.own_next = nonce + 1;
        let tx = Tx {
            version: TX_VERSION,
            chain: inner.chain.state().chain,
            signer: self.key.id(),
            nonce,
            fee: inner.chain.state().params.min_fee,
            expires_at_height: inner.chain.height() + TX_LIFETIME_BLOCKS,
            op,
        };
        // Our own message always encodes.
        Signed::sign(&self.key, &tx).unwrap_or_else(|e| unreachable!("a transaction encodes: {e}"))
    }

    /// Gives back the nonce of a transaction that was not accepted.
    pub fn release_nonce(&self, tx: &Signed) {
        if let Ok(t) = sharegrid_core::decode_capped::<Tx>(&tx.body, sharegrid_ledger::MAX_TX_BYTES) {
            let mut inner = self.lock();
            if inner.own_next == t.nonce + 1 {
                inner.own_next = t.nonce;
            }
        }
    }

    /// What a job's escrow must lock: the budget plus the network's fee on it.
    pub fn escrow_for(&self, budget: Amount) -> Option<Amount> {
        let bps = self.with_state(|s| s.params.network_fee_bps);
        let fee = budget.0.checked_mul(u128::from(bps))?.div_ceil(10_000);
        budget.0.checked_add(fee).map(Amount)
    }

    /// Blocks from `from` (a sync answer).
    pub fn blocks(&self, from: u64, max: usize, max_bytes: usize) -> Result<Vec<Block>, LedgerStoreError> {
        self.read().blocks(from, max, max_bytes)
    }

    /// A transaction in a block.
    pub fn tx(&self, id: &ContentId) -> Result<Option<FoundTx>, LedgerStoreError> {
        self.read().tx(id)
    }

    /// The height of the block holding transaction `id`.
    pub fn tx_height(&self, id: &ContentId) -> Result<Option<u64>, LedgerStoreError> {
        self.read().tx_height(id)
    }

    /// The latest transactions touching `account`.
    pub fn history(&self, account: &NodeId, limit: usize) -> Result<Vec<FoundTx>, LedgerStoreError> {
        self.read().history(account, limit)
    }

    /// The reading connection (never the chain's lock).
    fn read(&self) -> MutexGuard<'_, LedgerStore> {
        self.reader.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Whether anything on the ledger waits on a height — an open escrow, a
    /// held claim, a dispute, unbonding stake — so the validator keeps
    /// heights moving at one per block interval.
    pub fn has_waiting(&self) -> bool {
        self.with_state(State::has_waiting)
    }
}

impl Inner {
    /// Makes `txs` the pending list, re-checked in order against the chain;
    /// returns the ids of those that no longer apply.
    fn repool(&mut self, txs: Vec<Signed>) -> Vec<ContentId> {
        let height = self.chain.height() + 1;
        let mut state = self.chain.state().clone();
        let mut kept = Vec::new();
        let mut stale = Vec::new();
        for tx in txs {
            match state.apply(&tx, height) {
                Ok(()) => kept.push(tx),
                Err(why) => {
                    tracing::warn!(tx = %tx.id().short(), %why, "pooled transaction no longer applies");
                    stale.push(tx.id());
                }
            }
        }
        self.pending_ids = kept.iter().map(Signed::id).collect();
        self.pending = kept;
        self.pending_state = state;
        stale
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_peers_block_read_never_waits_for_the_chains_lock() {
        let dir = tempfile::tempdir().unwrap();
        let key = Arc::new(NodeKey::from_seed([1; 32]));
        let genesis = crate::home::solo_genesis(key.id());
        let ledger = Ledger::open(&dir.path().join("ledger.db"), genesis, key).unwrap();
        // The chain's lock is held (as while a block is applied)…
        let held = ledger.lock();
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        let reader = ledger.clone();
        std::thread::spawn(move || {
            let _ = tx.send(reader.blocks(0, 256, 16 << 20).map(|b| b.len()));
        });
        // …and a peer's read is answered meanwhile (a guard against a hang,
        // not a measure of speed).
        let got = rx.recv_timeout(std::time::Duration::from_secs(30));
        drop(held);
        assert!(matches!(got, Ok(Ok(_))), "{got:?}");
    }
}
