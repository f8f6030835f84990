//! A snapshot of the node for `sharegrid status` and the control API.

use serde::{Deserialize, Serialize};
use sharegrid_core::{ContentId, NodeId};

use super::{Daemon, now_ms};

/// The provider side of [`NodeStatus`].
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct AgentStatus {
    /// Task slots.
    pub slots: u32,
    /// Slots in use (fetching or running).
    pub busy: u32,
    /// Whether new work is accepted (false while shutting down).
    pub accepting: bool,
    /// Measured speed, gigafuel per second.
    pub speed_gfuel_per_sec: f64,
    /// Tasks run since start.
    pub tasks_run: u64,
    /// Outputs kept for requestors.
    pub outputs_retained: usize,
}

/// One line of the misbehaviour table.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct MisbehaviourCount {
    /// The peer.
    pub peer: String,
    /// What kind.
    pub kind: String,
    /// How many times.
    pub count: u32,
}

/// A snapshot of the node.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct NodeStatus {
    /// Node id (public key).
    pub id: NodeId,
    /// libp2p peer id.
    pub peer_id: String,
    /// Listen addresses.
    pub listen: Vec<String>,
    /// Connected peers.
    pub peers: usize,
    /// Live offers known.
    pub offers: usize,
    /// The provider agent, if on.
    pub provider: Option<AgentStatus>,
    /// Bad input counted, per peer and kind.
    pub misbehaviour: Vec<MisbehaviourCount>,
    /// The ledger, if kept.
    pub ledger: Option<LedgerStatus>,
}

/// Where a node's ledger stands.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct LedgerStatus {
    /// Whether this node produces blocks.
    pub validator: bool,
    /// Height of the last block.
    pub height: u64,
    /// Its hash.
    pub head: ContentId,
    /// Transactions waiting for a block (validator).
    pub pending: usize,
}

impl Daemon {
    pub(super) fn status(&self) -> NodeStatus {
        NodeStatus {
            id: self.key.id(),
            peer_id: self.swarm.local_peer_id().to_string(),
            listen: self.listen.iter().map(|a| a.to_string()).collect(),
            peers: self.swarm.connected_peers().count(),
            offers: self.book.live(now_ms()).len(),
            provider: self.agent.as_ref().map(|p| {
                let a = &p.agent;
                AgentStatus {
                    slots: a.slots(),
                    busy: a.busy(),
                    accepting: a.accepting(),
                    speed_gfuel_per_sec: a.speed().0,
                    tasks_run: a.tasks_run(),
                    outputs_retained: a.outputs_retained(),
                }
            }),
            misbehaviour: self
                .scores
                .report()
                .into_iter()
                .map(|(p, k, n)| MisbehaviourCount {
                    peer: p.to_string(),
                    kind: k.as_str().to_string(),
                    count: n,
                })
                .collect(),
            ledger: self.ledger.as_ref().map(|p| {
                let l = &p.ledger;
                let head = l.head();
                LedgerStatus {
                    validator: l.is_validator(),
                    height: head.height,
                    head: head.hash,
                    pending: l.pending(),
                }
            }),
        }
    }
}
