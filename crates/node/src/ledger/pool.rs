//! A validator's pool: the transactions it acknowledged, waiting for a
//! block, in the order it accepted them, and the chain's state with them
//! applied (what the next one is checked against).
//!
//! Acknowledged means on disk. Writing each transaction with an fsync of
//! its own capped a validator at one transaction per fsync (3,402 a second
//! from one client on this kind of machine, `bench/RESULTS.md`), so
//! the pool commits in groups: [`Ledger::accept`](super::Ledger::accept)
//! checks a transaction under the chain's lock and queues it here; then
//! whichever caller takes the writer first writes everything queued in one
//! SQLite transaction, and the callers whose transactions it wrote return
//! without writing. Concurrent submissions share an fsync; none returns
//! before its own is on disk. Only transactions on disk are proposed for a
//! block ([`Pool::durable`]).
//!
//! A pooled transaction's signature was verified when it was admitted (or
//! read back from disk at start); when the head moves the pool is applied
//! again to the new state without verifying it again.
//!
//! With several validators, a leader proposes only what its own pool
//! holds, so each validator relays what it acknowledged to the others
//! (`Host::relay`); they pool those as *relayed*: verified and applied like
//! their own, proposable at once, but neither written nor acknowledged by
//! them (the validator that acknowledged one has it on disk). A client that
//! then submits a relayed transaction here gets it written here too.

use std::collections::{BTreeMap, HashMap, HashSet};

use sharegrid_core::{ContentId, Signed};
use sharegrid_ledger::{Chain, Rejection, State};

use super::store::{LedgerStore, LedgerStoreError};

/// How many failed writes' outcomes are remembered for their callers.
const MAX_FAILED: usize = 65_536;

struct Pooled {
    seq: u64,
    id: ContentId,
    tx: Signed,
    /// Another validator's acknowledged transaction, not written here.
    relayed: bool,
}

/// Acknowledged transactions waiting for a block.
pub(super) struct Pool {
    entries: Vec<Pooled>,
    /// Each entry's index in `entries`.
    index: HashMap<ContentId, usize>,
    state: State,
    next_seq: u64,
    /// Every entry up to this sequence number is on disk.
    durable: u64,
    /// Admitted, not yet written.
    unwritten: Vec<(u64, Signed)>,
}

impl Pool {
    /// An empty pool on `chain`'s head.
    pub(super) fn new(chain: &Chain) -> Pool {
        Pool {
            entries: Vec::new(),
            index: HashMap::new(),
            state: chain.state().clone(),
            next_seq: 1,
            durable: 0,
            unwritten: Vec::new(),
        }
    }

    /// Read back from disk at start: each transaction verified and applied
    /// in order; returns the ids of those that no longer apply.
    pub(super) fn restore(&mut self, chain: &Chain, txs: Vec<Signed>) -> Vec<ContentId> {
        let height = chain.height() + 1;
        let mut state = chain.state().clone();
        let mut stale = Vec::new();
        for tx in txs {
            match state.apply(&tx, height) {
                Ok(()) => self.durable = self.push(tx, false),
                Err(why) => {
                    tracing::warn!(tx = %tx.id().short(), %why, "pooled transaction no longer applies");
                    stale.push(tx.id());
                }
            }
        }
        self.state = state;
        stale
    }

    /// Appends an entry (already applied to the state); returns its
    /// sequence number.
    fn push(&mut self, tx: Signed, relayed: bool) -> u64 {
        let seq = self.next_seq;
        self.next_seq += 1;
        let id = tx.id();
        self.index.insert(id, self.entries.len());
        self.entries.push(Pooled { seq, id, tx, relayed });
        seq
    }

    /// The state with every pooled transaction applied.
    pub(super) fn state(&self) -> &State {
        &self.state
    }

    /// How many transactions wait.
    pub(super) fn len(&self) -> usize {
        self.entries.len()
    }

    /// The sequence number of a pooled transaction, to wait on with
    /// [`PoolWriter::outcome`]; a relayed one becomes this validator's own,
    /// queued for writing.
    pub(super) fn adopt(&mut self, id: &ContentId) -> Option<u64> {
        let i = *self.index.get(id)?;
        let p = &mut self.entries[i];
        if p.relayed {
            p.relayed = false;
            p.seq = self.next_seq;
            self.next_seq += 1;
            self.unwritten.push((p.seq, p.tx.clone()));
        }
        Some(p.seq)
    }

    /// For each of `txs`, whether the pool holds exactly it (body, signer
    /// and signature): its signature was verified.
    pub(super) fn holds(&self, txs: &[Signed]) -> Vec<bool> {
        txs.iter()
            .map(|t| self.index.get(&t.id()).is_some_and(|&i| self.entries[i].tx == *t))
            .collect()
    }

    /// Pools `tx`, acknowledged by another validator, whose signature the
    /// caller verified, if it is new here and applies to the pool's state.
    pub(super) fn admit_relayed(&mut self, tx: Signed, height: u64) -> Result<(), Rejection> {
        let id = tx.id();
        if self.index.contains_key(&id) {
            return Ok(());
        }
        self.state.apply_verified(&tx, height)?;
        self.push(tx, true);
        Ok(())
    }

    /// Checks `tx`, whose signature the caller verified, against the
    /// pool's state and, if it applies, pools it and queues it for writing;
    /// returns its sequence number, to wait on with [`PoolWriter::outcome`].
    pub(super) fn admit_verified(&mut self, tx: Signed, height: u64) -> Result<u64, Rejection> {
        self.state.apply_verified(&tx, height)?;
        self.unwritten.push((self.next_seq, tx.clone()));
        Ok(self.push(tx, false))
    }

    /// The transactions on disk (here, or relayed from the validator that
    /// has them on disk), oldest first: what a block may take.
    pub(super) fn durable(&self) -> impl Iterator<Item = &Signed> {
        let upto = self.durable;
        self.entries
            .iter()
            .take_while(move |p| p.relayed || p.seq <= upto)
            .map(|p| &p.tx)
    }

    /// Whether any transaction on disk waits.
    pub(super) fn has_durable(&self) -> bool {
        self.durable().next().is_some()
    }

    /// Applies the pool again on `chain`'s new head, leaving out `gone`
    /// (in a block now); returns the ids of those that no longer apply.
    pub(super) fn recheck(&mut self, chain: &Chain, gone: &HashSet<ContentId>) -> Vec<ContentId> {
        let height = chain.height() + 1;
        let mut state = chain.state().clone();
        let mut stale = Vec::new();
        let entries = std::mem::take(&mut self.entries);
        self.entries = entries
            .into_iter()
            .filter(|p| !gone.contains(&p.id))
            .filter(|p| match state.apply_verified(&p.tx, height) {
                Ok(()) => true,
                Err(why) => {
                    tracing::warn!(tx = %p.id.short(), %why, "pooled transaction no longer applies");
                    stale.push(p.id);
                    false
                }
            })
            .collect();
        self.index = self.entries.iter().enumerate().map(|(i, p)| (p.id, i)).collect();
        self.state = state;
        stale
    }

    /// The queue of admitted transactions not yet written, oldest first.
    pub(super) fn take_unwritten(&mut self) -> Vec<(u64, Signed)> {
        std::mem::take(&mut self.unwritten)
    }

    /// A queue taken with [`Pool::take_unwritten`] is on disk.
    pub(super) fn written(&mut self, queue: &[(u64, Signed)]) {
        if let Some(&(last, _)) = queue.last() {
            self.durable = self.durable.max(last);
        }
    }

    /// A queue's write failed: its transactions leave the pool (they were
    /// not acknowledged), the rest is applied again on `chain`; returns the
    /// ids of those that no longer apply.
    pub(super) fn write_failed(&mut self, chain: &Chain, queue: &[(u64, Signed)]) -> Vec<ContentId> {
        let ids: HashSet<ContentId> = queue.iter().map(|(_, t)| t.id()).collect();
        self.recheck(chain, &ids)
    }
}

/// What became of a queued transaction's write.
#[derive(Debug)]
pub(super) enum Outcome {
    /// On disk.
    Written,
    /// Its write failed.
    Failed(String),
    /// Not written yet: this caller writes the queue.
    Pending,
}

/// The pool's writer: its own connection to `ledger.db`, held by one
/// caller at a time, and the failed writes' errors for the other callers
/// whose transactions were in them.
pub(super) struct PoolWriter {
    store: LedgerStore,
    failed: BTreeMap<u64, String>,
}

impl PoolWriter {
    pub(super) fn new(store: LedgerStore) -> PoolWriter {
        PoolWriter {
            store,
            failed: BTreeMap::new(),
        }
    }

    /// What became of `seq`, as far as `pool` knows.
    pub(super) fn outcome(&self, pool: &Pool, seq: u64) -> Outcome {
        if let Some(e) = self.failed.get(&seq) {
            Outcome::Failed(e.clone())
        } else if pool.durable >= seq {
            Outcome::Written
        } else {
            Outcome::Pending
        }
    }

    /// Writes a queue in one transaction; on failure remembers the error
    /// for each of its callers.
    pub(super) fn write(&mut self, queue: &[(u64, Signed)]) -> Result<(), LedgerStoreError> {
        self.store.pool_add(queue.iter().map(|(_, t)| t)).inspect_err(|e| {
            let text = e.to_string();
            for (seq, _) in queue {
                self.failed.insert(*seq, text.clone());
            }
            while self.failed.len() > MAX_FAILED {
                self.failed.pop_first();
            }
        })
    }
}
