//! What a validator's consensus needs from its node: the finalized chain,
//! the pool to propose from, and a store to commit finalized blocks to.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use sharegrid_core::{ContentId, NodeId, Signed};
use sharegrid_ledger::{Block, Chain, Genesis, Header, State};

/// A finalized block, checked, as the host commits it.
#[derive(Debug)]
pub struct Committed<'a> {
    /// The block.
    pub block: &'a Block,
    /// Its opened header.
    pub header: &'a Header,
    /// The state after it.
    pub state: &'a State,
    /// The encoded finalization certificate for this block, when it has its
    /// own (an ancestor finalized with a descendant has none: the
    /// descendant's certificate and the hash links prove it).
    pub certificate: Option<&'a [u8]>,
}

/// The node's side of consensus. Calls come from the engine's tasks; each
/// must be quick (no waiting on the network).
pub trait Host: Send + Sync + 'static {
    /// The finalized chain: the last committed block's state and hash.
    fn finalized(&self) -> Chain;
    /// A finalized block by hash, for a peer catching up.
    fn block(&self, hash: &ContentId) -> Option<Block>;
    /// Transactions waiting for a block, oldest first, at most `max`, each
    /// with its signature verified when the host admitted it (they are not
    /// verified again before they are proposed).
    fn candidates(&self, max: usize) -> Vec<Signed>;
    /// Whether anything on the ledger waits on a height (an escrow, a held
    /// claim, a dispute, unbonding stake): then empty blocks come at the
    /// fastest pace, so heights keep time.
    fn waiting(&self) -> bool {
        false
    }
    /// Commits a finalized block (the next after the finalized head),
    /// durably, before returning. An error stops the validator: it cannot
    /// go on without what it acknowledged on disk.
    fn commit(&self, committed: Committed<'_>) -> Result<(), String>;
    /// The last stored finalization certificate (encoded), for restarting
    /// from the finalized head.
    fn last_certificate(&self) -> Option<Vec<u8>>;
    /// Evidence that `offender` signed conflicting votes (the bytes
    /// [`sharegrid_ledger::consensus::check_evidence`] accepts).
    fn equivocation(&self, offender: NodeId, evidence: Vec<u8>);
    /// Transactions this host acknowledged since the last call, for the
    /// other validators: a leader proposes only what its pool holds, so a
    /// transaction only its acknowledger held would wait for that
    /// validator's turn to lead (and for ever if it went down).
    fn relay(&self) -> Vec<Signed> {
        Vec::new()
    }
    /// Transactions another validator acknowledged: checked (signatures
    /// included) and pooled if they apply, to propose when this validator
    /// leads. They are not this host's to acknowledge or store.
    fn relayed(&self, _txs: Vec<Signed>) {}
    /// For each of `txs`, whether it is exactly (body, signer and
    /// signature) one this host verified and holds: a block's check does
    /// not verify those again.
    fn verified(&self, txs: &[Signed]) -> Vec<bool> {
        vec![false; txs.len()]
    }
}

#[derive(Debug)]
struct Memory {
    chain: Chain,
    blocks: HashMap<ContentId, Block>,
    /// Committed block hashes by height (index 0: height 1).
    order: Vec<ContentId>,
    certificates: Vec<Vec<u8>>,
    pool: Vec<Signed>,
    /// The finalized state with the pool applied: what a new transaction
    /// is checked against.
    pending: State,
    evidence: Vec<(NodeId, Vec<u8>)>,
}

/// A host that keeps everything in memory: the real chain and state, no
/// disk. The deterministic simulations use it (the "disk" of a validator
/// that crashes is this object, which the restarted one gets back).
#[derive(Clone, Debug)]
pub struct MemoryHost {
    inner: Arc<Mutex<Memory>>,
}

impl MemoryHost {
    /// A host at genesis.
    pub fn new(genesis: &Genesis) -> Result<MemoryHost, String> {
        let chain = Chain::new(genesis)?;
        Ok(MemoryHost {
            inner: Arc::new(Mutex::new(Memory {
                pending: chain.state().clone(),
                chain,
                blocks: HashMap::new(),
                order: Vec::new(),
                certificates: Vec::new(),
                pool: Vec::new(),
                evidence: Vec::new(),
            })),
        })
    }

    fn lock(&self) -> MutexGuard<'_, Memory> {
        self.inner.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// A client's submission: checked against the pool's state and, if it
    /// applies, acknowledged (added to the pool), as a validator's node does.
    pub fn submit(&self, tx: Signed) -> Result<ContentId, sharegrid_ledger::Rejection> {
        let mut m = self.lock();
        let height = m.chain.height() + 1;
        m.pending.apply(&tx, height)?;
        let id = tx.id();
        m.pool.push(tx);
        Ok(id)
    }

    /// The committed block hashes, in order.
    pub fn committed(&self) -> Vec<ContentId> {
        self.lock().order.clone()
    }

    /// Whether transaction `id` is in a committed block.
    pub fn includes(&self, id: &ContentId) -> bool {
        let m = self.lock();
        m.order
            .iter()
            .filter_map(|h| m.blocks.get(h))
            .any(|b| b.txs.iter().any(|t| t.id() == *id))
    }

    /// Equivocation evidence reported so far.
    pub fn evidence(&self) -> Vec<(NodeId, Vec<u8>)> {
        self.lock().evidence.clone()
    }

    /// The certificates stored, one per directly finalized block.
    pub fn certificates(&self) -> usize {
        self.lock().certificates.len()
    }
}

impl Host for MemoryHost {
    fn finalized(&self) -> Chain {
        self.lock().chain.clone()
    }

    fn block(&self, hash: &ContentId) -> Option<Block> {
        self.lock().blocks.get(hash).cloned()
    }

    fn candidates(&self, max: usize) -> Vec<Signed> {
        self.lock().pool.iter().take(max).cloned().collect()
    }

    fn commit(&self, c: Committed<'_>) -> Result<(), String> {
        let mut m = self.lock();
        if c.header.height != m.chain.height() + 1 || c.header.prev != m.chain.head() {
            return Err(format!("block at height {} does not follow the head", c.header.height));
        }
        m.chain.advance(c.block, c.header, c.state.clone());
        let hash = c.block.hash();
        m.blocks.insert(hash, c.block.clone());
        m.order.push(hash);
        if let Some(cert) = c.certificate {
            m.certificates.push(cert.to_vec());
        }
        let included: std::collections::HashSet<ContentId> = c.block.txs.iter().map(Signed::id).collect();
        // What the block included, or what can no longer apply, leaves the pool.
        let mut state = m.chain.state().clone();
        let next = c.header.height + 1;
        m.pool
            .retain(|t| !included.contains(&t.id()) && state.apply(t, next).is_ok());
        m.pending = state;
        Ok(())
    }

    fn last_certificate(&self) -> Option<Vec<u8>> {
        self.lock().certificates.last().cloned()
    }

    fn equivocation(&self, offender: NodeId, evidence: Vec<u8>) {
        self.lock().evidence.push((offender, evidence));
    }
}
