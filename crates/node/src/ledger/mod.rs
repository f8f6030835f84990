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
mod pool;
pub(crate) mod producer;
mod store;
mod verifier;

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
use pool::{Outcome, Pool, PoolWriter};
pub use producer::{Produce, Producer};
pub use store::{BalancePoint, FoundTx, LedgerStore, LedgerStoreError};
use verifier::Verifier;

/// Most acknowledged transactions waiting to be relayed to the other
/// validators.
const MAX_RELAY: usize = 65_536;
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
    /// Acknowledged, not yet in a block (a validator's).
    pool: Pool,
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
    /// A third connection, the pool's group-commit writer.
    writer: Mutex<PoolWriter>,
    /// Concurrent submissions' signatures, checked in batches.
    verifier: Verifier,
    /// Acknowledged transactions not yet relayed to the other validators
    /// (`Host::relay`); kept only where there are others.
    relay: Mutex<Vec<Signed>>,
    /// Held around every write to `ledger.db` (the chain's or the pool's),
    /// always last: the two writing connections take turns here at once,
    /// not in SQLite's busy handler, which sleeps for milliseconds.
    gate: Mutex<()>,
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
        let writer = Mutex::new(PoolWriter::new(LedgerStore::open(path, &genesis)?));
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
                pool: Pool::new(&chain),
                store,
                chain,
                own_next,
                head_header,
            }),
            reader,
            writer,
            verifier: Verifier::default(),
            relay: Mutex::new(Vec::new()),
            gate: Mutex::new(()),
            key,
            genesis,
            heads,
            sending: tokio::sync::Mutex::new(()),
        };
        {
            let mut inner = ledger.lock();
            let Inner { pool, chain, store, .. } = &mut *inner;
            let stale = pool.restore(chain, pooled);
            store.pool_remove(&stale)?;
            // The others may never have had them (this validator stopped
            // before relaying them).
            let restored: Vec<Signed> = pool.durable().cloned().collect();
            drop(inner);
            ledger.to_relay(restored);
        }
        Ok(Arc::new(ledger))
    }

    fn gate(&self) -> MutexGuard<'_, ()> {
        self.gate.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
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
        self.lock().pool.len()
    }

    /// Validator: checks `tx` against the pool's state and, if it applies,
    /// writes it to the pool and acknowledges it with its id. Concurrent
    /// callers share one write (the `pool` module says how).
    pub fn accept(&self, tx: Signed) -> Result<ContentId, AcceptError> {
        if !self.is_validator() {
            return Err(AcceptError::NotValidator);
        }
        let id = tx.id();
        let pooled = self.lock().pool.adopt(&id);
        let seq = match pooled {
            Some(seq) => seq,
            None => {
                // The signature is checked before the chain's lock is taken
                // (the costliest check, and it needs no state), in a batch
                // with other callers', after the cheap checks of the body.
                tx.open_verified::<Tx>(sharegrid_ledger::MAX_TX_BYTES)
                    .map_err(sharegrid_ledger::Rejection::from)?;
                if !self.verifier.verify(&tx) {
                    let bad = sharegrid_core::WireError::BadSignature {
                        kind: <Tx as sharegrid_core::SignedMessage>::KIND,
                    };
                    return Err(sharegrid_ledger::Rejection::from(bad).into());
                }
                let mut inner = self.lock();
                match inner.pool.adopt(&id) {
                    Some(seq) => seq,
                    None => {
                        let height = inner.chain.height() + 1;
                        inner.pool.admit_verified(tx, height)?
                    }
                }
            }
        };
        self.write_pool(seq)?;
        Ok(id)
    }

    /// Returns once the pooled transaction `seq` is on disk: written by an
    /// earlier caller, or by this one with everything queued since.
    fn write_pool(&self, seq: u64) -> Result<(), AcceptError> {
        let mut writer = self.writer.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let queue = {
            let mut inner = self.lock();
            match writer.outcome(&inner.pool, seq) {
                Outcome::Written => return Ok(()),
                Outcome::Failed(e) => return Err(AcceptError::Store(LedgerStoreError::Shared(e))),
                Outcome::Pending => inner.pool.take_unwritten(),
            }
        };
        let written = {
            let _gate = self.gate();
            writer.write(&queue)
        };
        match written {
            Ok(()) => {
                self.lock().pool.written(&queue);
                self.to_relay(queue.into_iter().map(|(_, t)| t));
                Ok(())
            }
            Err(e) => {
                // Not on disk: not acknowledged. Out of the pool and its state.
                let mut inner = self.lock();
                let Inner { pool, chain, store, .. } = &mut *inner;
                let stale = pool.write_failed(chain, &queue);
                let _gate = self.gate();
                let _ = store.pool_remove(&stale);
                Err(AcceptError::Store(e))
            }
        }
    }

    /// Queues acknowledged transactions for the other validators, if there
    /// are any; at most [`MAX_RELAY`] wait (relaying is best effort: what
    /// is dropped stays in this validator's pool, for its turn to lead).
    fn to_relay(&self, txs: impl IntoIterator<Item = Signed>) {
        if !self.is_bft() {
            return;
        }
        let mut relay = self.relay.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        relay.extend(txs);
        if relay.len() > MAX_RELAY {
            let over = relay.len() - MAX_RELAY;
            relay.drain(..over);
        }
    }

    /// Validator: makes a block of the pool, stores it and makes it the
    /// head. `None` when nothing is pending and `empty_ok` is false.
    pub fn produce(&self, now_ms: u64, empty_ok: bool) -> Result<Option<Block>, LedgerStoreError> {
        let mut inner = self.lock();
        if !inner.pool.has_durable() && !empty_ok {
            return Ok(None);
        }
        let candidates: Vec<Signed> = inner.pool.durable().cloned().collect();
        let p = inner
            .chain
            .propose_verified(&self.key, candidates, now_ms)
            .map_err(|e| LedgerStoreError::Damaged(e.to_string()))?;
        for (id, why) in &p.rejected {
            // Acknowledged transactions apply to the pool's state in order;
            // one fails here only by expiring while a full block waited.
            tracing::warn!(tx = %id.short(), %why, "pooled transaction dropped");
        }
        let gate = self.gate();
        inner.store.commit(&p.block, &p.header, &p.state)?;
        let dropped: Vec<ContentId> = p.rejected.iter().map(|(id, _)| *id).collect();
        inner.store.pool_remove(&dropped)?;
        let block = p.block.clone();
        let mut gone: HashSet<ContentId> = block.txs.iter().map(Signed::id).collect();
        gone.extend(dropped);
        inner.chain.commit(p);
        inner.head_header = Some(block.header.clone());
        let Inner { pool, chain, store, .. } = &mut *inner;
        let stale = pool.recheck(chain, &gone);
        store.pool_remove(&stale)?;
        drop(gate);
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
        let gate = self.gate();
        inner.store.commit(block, header, &state)?;
        inner.chain.advance(block, header, state);
        inner.head_header = Some(block.header.clone());
        // This node's own transactions in this block are no longer in flight.
        let chain_nonce = inner.chain.state().accounts.get(&self.key.id()).map_or(0, |a| a.nonce);
        inner.own_next = inner.own_next.max(chain_nonce);
        // The pool (and its state) is a validator's alone; a follower has none.
        if self.is_validator() {
            let included: HashSet<ContentId> = block.txs.iter().map(Signed::id).collect();
            let Inner { pool, chain, store, .. } = &mut *inner;
            let stale = pool.recheck(chain, &included);
            store.pool_remove(&stale)?;
        }
        drop(gate);
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
            inner.pool.state().accounts.get(&self.key.id()).map_or(0, |a| a.nonce)
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

    /// `account`'s balance after each of the latest blocks that touched it.
    pub fn balances(&self, account: &NodeId, limit: usize) -> Result<Vec<BalancePoint>, LedgerStoreError> {
        self.read().balances(account, limit)
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

    /// A validator and `n` funded clients.
    pub(super) fn funded(dir: &Path, n: usize) -> (Arc<Ledger>, Vec<NodeKey>, Genesis) {
        let key = Arc::new(NodeKey::from_seed([1; 32]));
        let clients: Vec<NodeKey> = (0..n).map(|i| NodeKey::from_seed([10 + i as u8; 32])).collect();
        let genesis = Genesis {
            validators: vec![key.id()],
            params: sharegrid_ledger::Params::new(key.id(), 0, Amount(1)),
            balances: clients
                .iter()
                .map(|c| sharegrid_ledger::Allocation {
                    account: c.id(),
                    amount: Amount(1_000_000),
                })
                .collect(),
            stakes: Vec::new(),
        };
        let ledger = Ledger::open(&dir.join("ledger.db"), genesis.clone(), key).unwrap();
        (ledger, clients, genesis)
    }

    pub(super) fn transfer(ledger: &Ledger, from: &NodeKey, nonce: u64) -> Signed {
        let tx = Tx {
            version: TX_VERSION,
            chain: ledger.genesis().hash(),
            signer: from.id(),
            nonce,
            fee: Amount(1),
            expires_at_height: 1_000,
            op: Op::Transfer {
                to: ledger.me(),
                amount: Amount(1),
            },
        };
        Signed::sign(from, &tx).unwrap()
    }

    #[test]
    fn concurrent_acknowledgements_are_all_on_disk_and_in_order_after_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let (ledger, clients, genesis) = funded(dir.path(), 8);
        let per_client = 40;
        let threads: Vec<_> = clients
            .iter()
            .map(|c| {
                let (ledger, c) = (ledger.clone(), NodeKey::from_seed(c.seed()));
                std::thread::spawn(move || {
                    let mut acknowledged = 0;
                    for n in 0..per_client {
                        let tx = transfer(&ledger, &c, n);
                        assert_eq!(ledger.accept(tx.clone()).unwrap(), tx.id());
                        acknowledged += 1;
                    }
                    acknowledged
                })
            })
            .collect();
        let acknowledged: usize = threads.into_iter().map(|t| t.join().unwrap()).sum();
        assert_eq!(acknowledged, 8 * per_client as usize);
        // A killed validator comes back with every acknowledged transaction,
        // each client's in nonce order (they apply again from the head).
        drop(ledger);
        let ledger = Ledger::open(
            &dir.path().join("ledger.db"),
            genesis,
            Arc::new(NodeKey::from_seed([1; 32])),
        )
        .unwrap();
        assert_eq!(ledger.pending(), acknowledged);
        let block = ledger.produce(1, false).unwrap().unwrap();
        assert_eq!(block.txs.len(), acknowledged);
        assert_eq!(ledger.pending(), 0);
        for c in &clients {
            assert_eq!(ledger.account(&c.id()).nonce, per_client);
        }
    }

    #[test]
    fn a_failed_pool_write_acknowledges_nothing_and_changes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let (ledger, clients, _) = funded(dir.path(), 1);
        // The disk refuses the pool's write (a trigger stands in for a full
        // disk: the same error path, from SQLite itself).
        let other = rusqlite::Connection::open(dir.path().join("ledger.db")).unwrap();
        other
            .execute_batch("CREATE TRIGGER refuse BEFORE INSERT ON pool BEGIN SELECT RAISE(ABORT, 'disk full'); END;")
            .unwrap();
        let first = transfer(&ledger, &clients[0], 0);
        let err = ledger.accept(first.clone()).unwrap_err();
        assert!(matches!(err, AcceptError::Store(_)), "{err}");
        assert!(err.to_string().contains("disk full"), "{err}");
        assert_eq!(ledger.pending(), 0);
        // The pool's state did not keep the refused transaction: the same
        // nonce is taken once the disk is back, and the next follows it.
        other.execute_batch("DROP TRIGGER refuse;").unwrap();
        assert_eq!(ledger.accept(first.clone()).unwrap(), first.id());
        ledger.accept(transfer(&ledger, &clients[0], 1)).unwrap();
        assert_eq!(ledger.pending(), 2);
        assert_eq!(ledger.produce(1, false).unwrap().unwrap().txs.len(), 2);
    }
}
