//! [`NodeHandle`]: how the rest of the program talks to the task that owns
//! the swarm — a bounded command channel with a `oneshot` for each reply,
//! and a broadcast of [`NodeEvent`]s.

use std::sync::Arc;

use sharegrid_core::{Assignment, ContentId, NodeId, NodeKey, Offer, Receipt, Signed, TaskResult, check_receipt};
use sharegrid_net::{LedgerRequest, LedgerResponse, MAX_RECEIPT_BYTES, Multiaddr, PeerId, TaskResponse, peer_id};
use tokio::sync::{broadcast, mpsc, oneshot};

use super::events::{AssignError, Assigned, FetchFailure, NodeEvent, RequestFailure};
use super::status::NodeStatus;
use crate::blobs::BlobStore;
use crate::lifecycle::Lifecycle;
use crate::metrics::Metrics;

pub(super) enum Command {
    ListenAddrs(oneshot::Sender<Vec<Multiaddr>>),
    Dial(Multiaddr, oneshot::Sender<Result<(), String>>),
    Offers(oneshot::Sender<Vec<Offer>>),
    Assign {
        provider: PeerId,
        signed: Signed,
        /// The blobs it names, which the provider may then fetch from us…
        blobs: Vec<ContentId>,
        /// …around its expiry.
        expires_at_ms: u64,
        reply: oneshot::Sender<Result<TaskResponse, RequestFailure>>,
    },
    Fetch {
        peer: PeerId,
        id: ContentId,
        max: u64,
        reply: oneshot::Sender<Result<Vec<u8>, FetchFailure>>,
    },
    Status(oneshot::Sender<NodeStatus>),
    Ledger {
        peer: PeerId,
        request: LedgerRequest,
        reply: oneshot::Sender<Result<LedgerResponse, RequestFailure>>,
    },
    /// Hand peers' faucet requests to this task.
    ServeFaucet(mpsc::Sender<crate::faucet::FaucetOrder>),
    /// Stop at once, as a crash would.
    Kill,
}

impl std::fmt::Debug for Command {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Command")
    }
}

/// Why a dial could not start.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("cannot dial: {0}")]
pub struct DialError(pub String);

/// Talks to a running node. Cheap to clone.
#[derive(Clone, Debug)]
pub struct NodeHandle {
    pub(super) key: Arc<NodeKey>,
    pub(super) peer: PeerId,
    pub(super) commands: mpsc::Sender<Command>,
    pub(super) events: broadcast::Sender<NodeEvent>,
    pub(super) lifecycle: Lifecycle,
    pub(super) metrics: Metrics,
    pub(super) chain: ContentId,
}

impl NodeHandle {
    /// This node's id.
    pub fn id(&self) -> NodeId {
        self.key.id()
    }

    /// The network this node's ledger keeps (its genesis hash), signed into
    /// every assignment it makes; all zeros for a node without a ledger.
    pub fn chain(&self) -> ContentId {
        self.chain
    }

    /// This node's peer id.
    pub fn peer_id(&self) -> PeerId {
        self.peer
    }

    /// The node's stop signal and task set: tasks that use the node run
    /// in it, so that stopping the node waits for them.
    pub fn lifecycle(&self) -> &Lifecycle {
        &self.lifecycle
    }

    /// The node's metrics.
    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// Whether the node is still running (cheap: no round trip).
    pub fn is_running(&self) -> bool {
        !self.commands.is_closed() && !self.lifecycle.is_stopping()
    }

    /// Events from now on (a slow listener misses old ones, never blocks the node).
    pub fn subscribe(&self) -> broadcast::Receiver<NodeEvent> {
        self.events.subscribe()
    }

    async fn ask<T>(&self, make: impl FnOnce(oneshot::Sender<T>) -> Command) -> Option<T> {
        let (tx, rx) = oneshot::channel();
        self.commands.send(make(tx)).await.ok()?;
        rx.await.ok()
    }

    /// Addresses the node listens on (empty until the first is bound).
    pub async fn listen_addrs(&self) -> Vec<Multiaddr> {
        self.ask(Command::ListenAddrs).await.unwrap_or_default()
    }

    /// Dials a peer address.
    pub async fn dial(&self, addr: Multiaddr) -> Result<(), DialError> {
        self.ask(|tx| Command::Dial(addr, tx))
            .await
            .unwrap_or_else(|| Err("node stopped".into()))
            .map_err(DialError)
    }

    /// Live offers, by provider id.
    pub async fn offers(&self) -> Vec<Offer> {
        self.ask(Command::Offers).await.unwrap_or_default()
    }

    /// Waits until at least `n` live offers are known (an event, not a
    /// poll), or the node stops; returns the offers.
    pub async fn wait_for_offers(&self, n: usize) -> Vec<Offer> {
        let mut events = self.subscribe();
        loop {
            let offers = self.offers().await;
            if offers.len() >= n || !self.is_running() {
                return offers;
            }
            loop {
                match events.recv().await {
                    Ok(NodeEvent::OfferSeen(_)) | Err(broadcast::error::RecvError::Lagged(_)) => break,
                    Ok(_) => {}
                    Err(broadcast::error::RecvError::Closed) => return offers,
                }
            }
        }
    }

    /// A snapshot of the node's state, or `None` if it stopped.
    pub async fn status(&self) -> Option<NodeStatus> {
        self.ask(Command::Status).await
    }

    /// Signs `assignment` as this node, sends it to its provider and waits
    /// for the answer. A receipt is checked: signed by the provider, and
    /// answering this exact assignment by [`check_receipt`] (the rule the
    /// ledger pays by).
    pub async fn assign(&self, assignment: &Assignment) -> Result<Assigned, AssignError> {
        let signed = Signed::sign(&self.key, assignment).map_err(|e| AssignError::Unreachable(e.to_string()))?;
        let provider = peer_id(&assignment.provider)
            .ok_or_else(|| AssignError::Unreachable(format!("{} is not a valid node id", assignment.provider)))?;
        let sent = signed.clone();
        let response = self
            .ask(|reply| Command::Assign {
                provider,
                signed,
                blobs: assignment.blobs(),
                expires_at_ms: assignment.expires_at_ms,
                reply,
            })
            .await
            .ok_or(AssignError::Stopped)??;
        match response {
            TaskResponse::Refused { reason } => Ok(Assigned::Refused(reason)),
            TaskResponse::Receipt(signed) => {
                let receipt: Receipt = signed
                    .open(MAX_RECEIPT_BYTES)
                    .map_err(|e| AssignError::BadReceipt(e.to_string()))?;
                check_receipt(assignment, &sent.id(), &receipt).map_err(|e| AssignError::BadReceipt(e.to_string()))?;
                Ok(Assigned::Receipt {
                    receipt: Box::new(receipt),
                    signed,
                    assignment: Box::new(sent),
                })
            }
        }
    }

    /// Fetches blob `id` from `peer`, verified, at most `max` bytes.
    pub async fn fetch_blob(&self, peer: PeerId, id: ContentId, max: u64) -> Result<Vec<u8>, FetchFailure> {
        self.ask(|reply| Command::Fetch { peer, id, max, reply })
            .await
            .unwrap_or(Err(FetchFailure::Stopped))
    }

    /// Fetches and decodes the result a receipt names from its provider. The
    /// bytes are verified against the receipt's result hash.
    pub async fn fetch_result(&self, receipt: &Receipt, max: u64) -> Result<TaskResult, FetchFailure> {
        let peer = peer_id(&receipt.provider).ok_or(FetchFailure::InvalidPeer)?;
        let bytes = self
            .fetch_blob(peer, ContentId::from_bytes(*receipt.result.as_bytes()), max)
            .await?;
        TaskResult::decode(&bytes).map_err(|e| FetchFailure::Undecodable(e.to_string()))
    }

    /// Fetches blob `id` from `provider` into `store`, verified; nothing to
    /// do when the store holds it already.
    pub async fn fetch_into(
        &self,
        provider: &NodeId,
        id: ContentId,
        max: u64,
        store: &BlobStore,
    ) -> Result<(), FetchFailure> {
        if store.has(&id) {
            return Ok(());
        }
        let peer = peer_id(provider).ok_or(FetchFailure::InvalidPeer)?;
        let bytes = self.fetch_blob(peer, id, max).await?;
        let store = store.clone();
        tokio::task::spawn_blocking(move || store.put(&bytes))
            .await
            .map_err(|_| FetchFailure::Stopped)?
            .map_err(|e| FetchFailure::Store(e.to_string()))?;
        Ok(())
    }

    /// Hands peers' requests for test tokens to `faucet` (see
    /// [`crate::faucet`]); without one they are refused.
    pub async fn serve_faucet(&self, faucet: mpsc::Sender<crate::faucet::FaucetOrder>) {
        let _ = self.commands.send(Command::ServeFaucet(faucet)).await;
    }

    /// Sends a request to `peer`'s ledger.
    pub async fn ledger_request(&self, peer: PeerId, request: LedgerRequest) -> Result<LedgerResponse, RequestFailure> {
        self.ask(|reply| Command::Ledger { peer, request, reply })
            .await
            .unwrap_or(Err(RequestFailure::Stopped))
    }

    /// Stops the node and every task running in its [`Lifecycle`]: no new
    /// work accepted, running tasks finish within the grace period,
    /// connections close. Returns when all have stopped.
    pub async fn shutdown(&self) {
        self.lifecycle.stop_and_wait().await;
    }

    /// Stops the node's network loop at once, as a crash would: no grace
    /// period, no goodbyes; its connections drop. For tests of churn.
    pub async fn kill(&self) {
        let _ = self.commands.send(Command::Kill).await;
        self.commands.closed().await;
    }
}
