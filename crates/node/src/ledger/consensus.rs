//! A ledger ordered by several validators: this node's [`Ledger`] as the
//! host of `sharegrid-bft`'s Simplex engine (proposals from its pool,
//! finalized blocks committed through its store with their certificates),
//! the engine's thread, and what a follower of such a network checks: a
//! finalization certificate for the blocks it applies, not one signature.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use sharegrid_bft::{Committed, EngineConfig, Host, network::NetworkConfig};
use sharegrid_core::{ContentId, NodeId, NodeKey, Signed};
use sharegrid_ledger::consensus::check_finalization;
use sharegrid_ledger::{Block, BlockError, Chain, Op};

use super::{ApplyError, Ledger};
use crate::config::LedgerSettings;

impl Ledger {
    /// Whether several validators order this network (by BFT consensus)
    /// rather than one.
    pub fn is_bft(&self) -> bool {
        self.genesis().validators.len() > 1
    }

    /// Follower: applies `blocks` (consecutive, from the head on). On a
    /// network of several validators only blocks a finalization
    /// certificate covers are applied: those up to the last one in the batch
    /// that carries a certificate of a quorum of the genesis's validators,
    /// linked to it by their hashes; the rest wait for a later batch.
    /// Returns how many became the head's.
    pub fn apply_blocks(&self, blocks: &[Block]) -> Result<usize, ApplyError> {
        let covered = if self.is_bft() {
            let chain = self.genesis().hash();
            let validators = &self.genesis().validators;
            let Some(last) = blocks.iter().rposition(|b| !b.certificate.is_empty()) else {
                return Ok(0);
            };
            check_finalization(&chain, validators, &blocks[last].hash(), &blocks[last].certificate)
                .map_err(|e| ApplyError::Invalid(BlockError::Certificate(e)))?;
            for pair in blocks[..=last].windows(2) {
                let next = pair[1].open_header().map_err(BlockError::from)?;
                if next.prev != pair[0].hash() {
                    return Err(ApplyError::Invalid(BlockError::Certificate(
                        "blocks before a certified one do not link to it".into(),
                    )));
                }
            }
            last + 1
        } else {
            blocks.len()
        };
        let mut n = 0;
        for b in &blocks[..covered] {
            if self.apply_block(b)? {
                n += 1;
            }
        }
        Ok(n)
    }
}

impl Host for Ledger {
    fn finalized(&self) -> Chain {
        self.lock().chain.clone()
    }

    fn block(&self, hash: &ContentId) -> Option<Block> {
        self.read().block_by_hash(hash).ok().flatten()
    }

    fn candidates(&self, max: usize) -> Vec<Signed> {
        self.lock().pool.durable().take(max).cloned().collect()
    }

    fn waiting(&self) -> bool {
        let inner = self.lock();
        inner.pool.has_durable() || inner.chain.state().has_waiting()
    }

    fn commit(&self, c: Committed<'_>) -> Result<(), String> {
        let mut block = c.block.clone();
        block.certificate = c.certificate.map(<[u8]>::to_vec).unwrap_or_default();
        let inner = self.lock();
        if c.header.height <= inner.chain.height() {
            // This node's follower applied it already (a validator follows
            // the others' announcements too): the same block, or a fork.
            let stored = self.read().block(c.header.height).map_err(|e| e.to_string())?;
            return match stored {
                Some(b) if b.hash() == block.hash() => Ok(()),
                _ => Err(format!(
                    "finalized block {} differs from the one stored",
                    c.header.height
                )),
            };
        }
        if c.header.height != inner.chain.height() + 1 || c.header.prev != inner.chain.head() {
            return Err(format!("block {} does not follow the head", c.header.height));
        }
        self.advance(inner, &block, c.header, c.state.clone())
            .map_err(|e| e.to_string())
    }

    fn last_certificate(&self) -> Option<Vec<u8>> {
        self.read().last_certificate().ok().flatten()
    }

    fn relay(&self) -> Vec<Signed> {
        std::mem::take(&mut *self.relay.lock().unwrap_or_else(std::sync::PoisonError::into_inner))
    }

    fn relayed(&self, txs: Vec<Signed>) {
        let ok = super::verifier::verdicts(txs.iter());
        let mut inner = self.lock();
        let height = inner.chain.height() + 1;
        for (tx, ok) in txs.into_iter().zip(ok) {
            if !ok {
                tracing::debug!(tx = %tx.id().short(), "relayed transaction with a bad signature");
                continue;
            }
            if let Err(why) = inner.pool.admit_relayed(tx, height) {
                // Already in a block, or not yet applicable here (an
                // account's earlier transaction still on its way).
                tracing::trace!(%why, "relayed transaction not pooled");
            }
        }
    }

    fn verified(&self, txs: &[Signed]) -> Vec<bool> {
        self.lock().pool.holds(txs)
    }

    fn equivocation(&self, offender: NodeId, evidence: Vec<u8>) {
        let tx = self.sign(Op::Equivocation { evidence });
        match self.accept(tx.clone()) {
            Ok(id) => {
                tracing::warn!(validator = %offender.short(), tx = %id.short(), "reported a validator's conflicting votes")
            }
            Err(e) => {
                self.release_nonce(&tx);
                tracing::debug!(validator = %offender.short(), %e, "equivocation not reported");
            }
        }
    }
}

/// A validator's consensus, on a thread of its own (commonware's tokio
/// runtime); stopped when dropped.
#[derive(Debug)]
pub struct Consensus {
    stop: Option<futures::channel::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Consensus {
    /// Starts this node's consensus if it is one of several validators
    /// (`None` otherwise): listens on `consensus_listen`, finds the others
    /// at `consensus_peers`, keeps its journal under `dir`.
    pub fn start(
        ledger: &Arc<Ledger>,
        key: Arc<NodeKey>,
        settings: &LedgerSettings,
        dir: PathBuf,
    ) -> Result<Option<Consensus>, String> {
        if !ledger.is_bft() || !ledger.is_validator() {
            return Ok(None);
        }
        let listen = settings.consensus_listen.ok_or(
            "this node is one of the network's validators: set [ledger] consensus_listen (and consensus_peers)",
        )?;
        let peers = parse_peers(&settings.consensus_peers)?;
        let genesis = ledger.genesis();
        for v in &genesis.validators {
            if *v != key.id() && !peers.iter().any(|(id, _)| id == v) {
                return Err(format!("[ledger] consensus_peers has no address for validator {v}"));
            }
        }
        let mut cfg = EngineConfig::new(genesis.hash(), genesis.validators.clone(), key);
        cfg.leader_timeout = Duration::from_millis(settings.leader_timeout_ms.max(50));
        cfg.min_block_ms = settings.block_interval_ms;
        // Empty blocks while nothing waits: often enough that a leader
        // never times out for want of something to propose.
        cfg.idle_block_ms = (settings.leader_timeout_ms / 2).max(settings.block_interval_ms);
        cfg.partition = "sharegrid-consensus".into();
        let net = NetworkConfig {
            listen,
            peers,
            storage: dir,
            threads: 2,
        };
        let host = ledger.clone();
        let (stop, stopped) = futures::channel::oneshot::channel();
        let (started_tx, started_rx) = std::sync::mpsc::sync_channel(1);
        let thread = std::thread::Builder::new()
            .name("consensus".into())
            .spawn(move || sharegrid_bft::network::run(cfg, net, host, stopped, started_tx))
            .map_err(|e| format!("cannot start the consensus thread: {e}"))?;
        match started_rx.recv_timeout(Duration::from_secs(30)) {
            Ok(Ok(())) => Ok(Some(Consensus {
                stop: Some(stop),
                thread: Some(thread),
            })),
            Ok(Err(e)) => Err(e),
            Err(_) => Err("consensus did not start within 30 s".into()),
        }
    }
}

impl Drop for Consensus {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Parses `"<node id>@<ip>:<port>"` entries.
pub fn parse_peers(entries: &[String]) -> Result<Vec<(NodeId, SocketAddr)>, String> {
    entries
        .iter()
        .map(|e| {
            let (id, addr) = e
                .split_once('@')
                .ok_or_else(|| format!("consensus peer {e:?}: expected <node id>@<ip>:<port>"))?;
            let id: NodeId = id
                .parse()
                .map_err(|err| format!("consensus peer {e:?}: bad node id: {err}"))?;
            let addr: SocketAddr = addr
                .parse()
                .map_err(|err| format!("consensus peer {e:?}: bad address: {err}"))?;
            Ok((id, addr))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use commonware_consensus::simplex::types::{Finalization, Finalize, Proposal};
    use commonware_consensus::types::{Epoch, Round, View};
    use sharegrid_ledger::Genesis;
    use sharegrid_ledger::consensus::{Digest, Scheme, digest, verifier};

    fn network() -> (Genesis, Vec<NodeKey>) {
        let keys: Vec<NodeKey> = (1..=4).map(|i| NodeKey::from_seed([i; 32])).collect();
        let mut g = crate::home::solo_genesis(keys[0].id());
        g.validators = keys.iter().map(NodeKey::id).collect();
        (g, keys)
    }

    /// A finalization of `block` signed by the first `signers` validators
    /// of `g` (fewer than a quorum do not assemble one).
    fn certificate(g: &Genesis, keys: &[NodeKey], signers: usize, block: &Block) -> Vec<u8> {
        use commonware_codec::Encode as _;
        let round = Round::new(Epoch::zero(), View::new(1));
        let proposal = Proposal::new(round, View::zero(), digest(&block.hash()));
        let votes: Vec<Finalize<Scheme, Digest>> = keys[..signers]
            .iter()
            .map(|k| {
                let scheme = sharegrid_bft::signer(&g.hash(), &g.validators, k).unwrap().unwrap();
                Finalize::sign(&scheme, proposal.clone()).unwrap()
            })
            .collect();
        let scheme = verifier(&g.hash(), &g.validators).unwrap();
        let votes = commonware_utils::iter::NonEmpty::try_new(votes.iter()).unwrap();
        Finalization::from_finalizes(&scheme, votes, &commonware_parallel::Sequential)
            .unwrap()
            .encode()
            .to_vec()
    }

    #[test]
    fn a_follower_applies_a_block_only_under_a_quorums_finalization() {
        let (g, keys) = network();
        let dir = tempfile::tempdir().unwrap();
        let follower = Arc::new(NodeKey::from_seed([9; 32]));
        let ledger = Ledger::open(&dir.path().join("ledger.db"), g.clone(), follower).unwrap();
        // A block a validator signed, as the single-validator chain would take it.
        let mut block = Chain::new(&g).unwrap().propose(&keys[0], Vec::new(), 1).unwrap().block;
        assert_eq!(
            ledger.apply_blocks(std::slice::from_ref(&block)).unwrap(),
            0,
            "one signature is not enough"
        );
        block.certificate = vec![7; 100];
        assert!(
            ledger.apply_blocks(std::slice::from_ref(&block)).is_err(),
            "garbage taken for a certificate"
        );
        // The same validators' quorum, signed for another network.
        let mut elsewhere = g.clone();
        elsewhere.params.min_fee = sharegrid_core::Amount(2);
        block.certificate = certificate(&elsewhere, &keys, 3, &block);
        assert!(
            ledger.apply_blocks(std::slice::from_ref(&block)).is_err(),
            "another network's certificate taken"
        );
        // Another block's certificate does not cover this one.
        let other = Chain::new(&g).unwrap().propose(&keys[1], Vec::new(), 2).unwrap().block;
        block.certificate = certificate(&g, &keys, 3, &other);
        assert!(
            ledger.apply_blocks(std::slice::from_ref(&block)).is_err(),
            "another block's certificate taken"
        );
        assert_eq!(ledger.head().height, 0);
        block.certificate = certificate(&g, &keys, 3, &block);
        assert_eq!(ledger.apply_blocks(std::slice::from_ref(&block)).unwrap(), 1);
        assert_eq!(ledger.head().hash, block.hash());
    }

    #[test]
    fn a_relayed_transaction_is_pooled_unwritten_until_a_client_submits_it_here() {
        use crate::ledger::tests::{funded, transfer};
        let dir = tempfile::tempdir().unwrap();
        let (ledger, clients, genesis) = funded(dir.path(), 2);
        let tx = transfer(&ledger, &clients[0], 0);
        let mut forged = transfer(&ledger, &clients[1], 0);
        forged.signature = transfer(&ledger, &clients[0], 1).signature;
        Host::relayed(&*ledger, vec![tx.clone(), forged.clone()]);
        // Pooled (and proposable), the forged one not.
        assert_eq!(ledger.pending(), 1);
        assert_eq!(ledger.candidates(10), vec![tx.clone()]);
        assert_eq!(
            Host::verified(&*ledger, &[tx.clone(), forged.clone()]),
            vec![true, false]
        );
        let mut resigned = tx.clone();
        resigned.signature = forged.signature;
        assert_eq!(
            Host::verified(&*ledger, &[resigned]),
            vec![false],
            "the same body, another signature"
        );
        // Not this validator's to keep: gone after a restart...
        drop(ledger);
        let key = Arc::new(NodeKey::from_seed([1; 32]));
        let ledger = Ledger::open(&dir.path().join("ledger.db"), genesis.clone(), key.clone()).unwrap();
        assert_eq!(ledger.pending(), 0);
        // ...unless a client submits it here: then it is acknowledged on disk.
        Host::relayed(&*ledger, vec![tx.clone()]);
        assert_eq!(ledger.accept(tx.clone()).unwrap(), tx.id());
        drop(ledger);
        let ledger = Ledger::open(&dir.path().join("ledger.db"), genesis, key).unwrap();
        assert_eq!(ledger.candidates(10), vec![tx]);
    }

    #[test]
    fn what_a_validator_acknowledges_is_relayed_only_where_there_are_other_validators() {
        use crate::ledger::tests::{funded, transfer};
        let dir = tempfile::tempdir().unwrap();
        let (solo, clients, _) = funded(dir.path(), 1);
        solo.accept(transfer(&solo, &clients[0], 0)).unwrap();
        assert!(Host::relay(&*solo).is_empty());

        let (genesis, keys) = network();
        let client = NodeKey::from_seed([1; 32]);
        let key = Arc::new(NodeKey::from_seed([2; 32]));
        assert_eq!(key.id(), keys[1].id());
        let many = Ledger::open(&dir.path().join("many.db"), genesis, key).unwrap();
        let tx = transfer(&many, &client, 0);
        many.accept(tx.clone()).unwrap();
        assert_eq!(Host::relay(&*many), vec![tx]);
        assert!(Host::relay(&*many).is_empty(), "relayed once");
    }
}
