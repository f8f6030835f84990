//! Several validators for a test network (or a demo): their keys, a free
//! loopback port each for consensus, and each one's `[ledger]` settings
//! naming the others.

use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::path::Path;
use std::sync::Arc;

use sharegrid_core::{NodeId, NodeKey};
use sharegrid_ledger::Genesis;

use super::{TestNode, TestnetError};
use crate::config::LedgerSettings;
use crate::ledger::{Consensus, Ledger};

/// The seed of the `i`th validator-only node's key (`i` from 1).
pub const VALIDATOR_SEED: u8 = 150;

/// A validator set on loopback.
#[derive(Clone, Debug)]
pub struct ValidatorSet {
    /// Their keys; the first is the requestor's (it takes transactions).
    pub keys: Vec<Arc<NodeKey>>,
    /// Each one's consensus address.
    pub addrs: Vec<SocketAddr>,
}

impl ValidatorSet {
    /// `first` and `n - 1` more, each with a free port on 127.0.0.1.
    pub fn new(first: Arc<NodeKey>, n: usize) -> Result<ValidatorSet, TestnetError> {
        let mut keys = vec![first];
        for i in 1..n {
            let seed = VALIDATOR_SEED.saturating_add(u8::try_from(i).unwrap_or(u8::MAX));
            keys.push(Arc::new(NodeKey::from_seed([seed; 32])));
        }
        let addrs = (0..n).map(|_| free_port()).collect::<Result<_, _>>()?;
        Ok(ValidatorSet { keys, addrs })
    }

    /// A ledger for each validator, in `dir/v{i}`, on `genesis`, each
    /// ordering by consensus with `base`'s settings (and its own address):
    /// the ledgers, and their consensus, which stops when dropped.
    pub fn start_ledgers(
        &self,
        dir: &Path,
        genesis: &Genesis,
        base: &LedgerSettings,
    ) -> Result<(Vec<Arc<Ledger>>, Vec<Consensus>), TestnetError> {
        let mut ledgers = Vec::new();
        let mut running = Vec::new();
        for (i, key) in self.keys.iter().enumerate() {
            let home = dir.join(format!("v{i}"));
            std::fs::create_dir_all(&home).map_err(|e| TestnetError::Start(e.to_string()))?;
            let ledger = Ledger::open(&home.join("ledger.db"), genesis.clone(), key.clone())
                .map_err(|e| TestnetError::Start(e.to_string()))?;
            let consensus = Consensus::start(&ledger, key.clone(), &self.settings(i, base), home.join("consensus"))
                .map_err(TestnetError::Start)?
                .ok_or_else(|| TestnetError::Start(format!("validator {i} is not in the genesis")))?;
            ledgers.push(ledger);
            running.push(consensus);
        }
        Ok((ledgers, running))
    }

    /// Their node ids, in order.
    pub fn ids(&self) -> Vec<NodeId> {
        self.keys.iter().map(|k| k.id()).collect()
    }

    /// The `[ledger]` settings of validator `i`: `base` with its consensus
    /// address and everyone's.
    pub fn settings(&self, i: usize, base: &LedgerSettings) -> LedgerSettings {
        LedgerSettings {
            consensus_listen: Some(self.addrs[i]),
            consensus_peers: self
                .keys
                .iter()
                .zip(&self.addrs)
                .map(|(k, a)| format!("{}@{a}", k.id()))
                .collect(),
            ..base.clone()
        }
    }
}

/// A port on 127.0.0.1 free now (the OS picks it; a moment later another
/// process could take it, which a test on one machine does not see).
pub fn free_port() -> Result<SocketAddr, TestnetError> {
    let l = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).map_err(|e| TestnetError::Start(e.to_string()))?;
    l.local_addr().map_err(|e| TestnetError::Start(e.to_string()))
}

/// Starts `node`'s consensus with `settings` (its journal under its home).
pub async fn start_consensus(node: &TestNode, settings: &LedgerSettings) -> Result<Consensus, TestnetError> {
    let Some(ledger) = node.ledger.clone() else {
        return Err(TestnetError::Start(format!("{} keeps no ledger", node.name)));
    };
    let (key, settings, dir) = (node.key.clone(), settings.clone(), node.home.join("consensus"));
    let name = node.name.clone();
    tokio::task::spawn_blocking(move || Consensus::start(&ledger, key, &settings, dir))
        .await
        .map_err(|e| TestnetError::Start(e.to_string()))?
        .map_err(|e| TestnetError::Start(format!("{name}: consensus: {e}")))?
        .ok_or_else(|| TestnetError::Start(format!("{name} is not a validator")))
}
