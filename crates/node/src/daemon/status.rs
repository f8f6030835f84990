//! A snapshot of the node for `sharegrid status` and the control API.

use serde::{Deserialize, Serialize};
use sharegrid_core::{ContentId, NodeId};

use super::{Daemon, now_ms};

/// The provider side of [`NodeStatus`].
#[derive(Clone, Debug, Serialize, Deserialize, utoipa::ToSchema)]
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
#[derive(Clone, Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct MisbehaviourCount {
    /// The peer.
    pub peer: String,
    /// What kind.
    pub kind: String,
    /// How many times.
    pub count: u32,
}

/// A snapshot of the node.
#[derive(Clone, Debug, Serialize, Deserialize, utoipa::ToSchema)]
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
    /// How peers are found, and why none are when that is so.
    #[serde(default)]
    pub discovery: Discovery,
    /// The connected peers. Absent in answers of older nodes.
    #[serde(default)]
    pub connected: Vec<PeerView>,
}

/// A connected peer (in [`NodeStatus`]).
#[derive(Clone, Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct PeerView {
    /// Its libp2p peer id.
    pub peer_id: String,
    /// Its node id (its ed25519 key), when the peer id carries one.
    pub node: Option<NodeId>,
}

/// How a node finds peers (in [`NodeStatus`]).
#[derive(Clone, Debug, Default, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Discovery {
    /// mDNS on the local network.
    pub mdns: bool,
    /// The bootstrap peers configured.
    pub bootstrap: Vec<String>,
    /// The last failed dial, if any.
    pub dial_error: Option<String>,
    /// While no peer is connected: why, and what to set.
    pub hint: Option<String>,
}

/// Why a node with no peers has none, and what to do; `None` with peers.
pub fn discovery_hint(peers: usize, mdns: bool, bootstrap: usize, dial_error: Option<&str>) -> Option<String> {
    if peers > 0 {
        return None;
    }
    let join = "to join a node you know, run `sharegrid init --join ADDRESS` for a new home, or add \
                its address (the `listening` line of `sharegrid status` on it) to [network] bootstrap";
    Some(match (bootstrap, mdns) {
        (0, true) => format!(
            "no peers yet: mDNS is on but has found no node on the local network (it needs \
             multicast between the machines, which many networks and containers block); {join}"
        ),
        (0, false) => {
            format!("no peers: mDNS is off and [network] bootstrap is empty, so this node looks for no one; {join}")
        }
        (n, _) => format!(
            "no peers: none of the {n} bootstrap peer(s) in [network] bootstrap is connected{}; \
             check that they run and that the addresses (with /p2p/<peer id>) are right",
            dial_error.map(|e| format!(" (last dial: {e})")).unwrap_or_default()
        ),
    })
}

/// Where a node's ledger stands.
#[derive(Clone, Debug, Serialize, Deserialize, utoipa::ToSchema)]
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
            connected: self
                .swarm
                .connected_peers()
                .map(|p| PeerView {
                    peer_id: p.to_string(),
                    node: sharegrid_net::node_id(p),
                })
                .collect(),
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
            discovery: Discovery {
                mdns: self.mdns,
                bootstrap: self.bootstrap.iter().map(|a| a.to_string()).collect(),
                dial_error: self.dial_error.clone(),
                hint: discovery_hint(
                    self.swarm.connected_peers().count(),
                    self.mdns,
                    self.bootstrap.len(),
                    self.dial_error.as_deref(),
                ),
            },
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

#[cfg(test)]
mod tests {
    use super::discovery_hint;

    #[test]
    fn a_node_without_peers_says_why_and_what_to_set() {
        assert_eq!(discovery_hint(1, true, 0, None), None);
        let h = discovery_hint(0, true, 0, None).unwrap();
        assert!(h.starts_with("no peers yet: mDNS is on but has found no node"), "{h}");
        assert!(h.contains("sharegrid init --join ADDRESS"), "{h}");
        let h = discovery_hint(0, false, 0, None).unwrap();
        assert!(
            h.starts_with("no peers: mDNS is off and [network] bootstrap is empty"),
            "{h}"
        );
        let h = discovery_hint(0, false, 2, Some("connection refused")).unwrap();
        assert!(
            h.starts_with("no peers: none of the 2 bootstrap peer(s) in [network] bootstrap is connected (last dial: connection refused)"),
            "{h}"
        );
    }
}
