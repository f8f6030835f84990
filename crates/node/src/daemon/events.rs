//! What a running node tells its listeners ([`NodeEvent`]), and the typed
//! answers and failures of the requests a [`super::NodeHandle`] makes.

use sharegrid_core::{ContentId, Offer, Outcome, Receipt, Signed, TaskId};
use sharegrid_net::{FetchError, Misbehaviour, Multiaddr, PeerAction, PeerId, request_response::OutboundFailure};

/// Something that happened on the node, for whoever listens.
#[derive(Clone, Debug)]
pub enum NodeEvent {
    /// Listening on an address.
    Listening(Multiaddr),
    /// A first connection to a peer.
    Connected(PeerId),
    /// A peer's last connection closed (it left, crashed, or stopped answering pings).
    PeerGone {
        /// The peer.
        peer: PeerId,
        /// Why, as far as known.
        why: String,
    },
    /// A new or updated offer was accepted.
    OfferSeen(Box<Offer>),
    /// Bad input from a peer was rejected and counted.
    Misbehaved {
        /// The peer.
        peer: PeerId,
        /// What kind.
        what: Misbehaviour,
        /// The specific reason.
        why: String,
        /// What the node does about the peer now.
        action: PeerAction,
    },
    /// This provider refused an assignment.
    Refused {
        /// The requestor's peer.
        peer: PeerId,
        /// Why.
        reason: String,
    },
    /// This provider admitted an assignment: it holds a slot for it, or,
    /// for a stranger's task, will once the ledger shows its escrow can pay
    /// ([`NodeEvent::Funded`]).
    Admitted {
        /// The task.
        task: TaskId,
    },
    /// The ledger showed that the escrow of an admitted assignment can pay
    /// for its run: it takes a slot and its blobs are fetched.
    Funded {
        /// The task.
        task: TaskId,
    },
    /// This provider ran a task and returned its receipt.
    Ran {
        /// The task.
        task: TaskId,
        /// How it ended.
        outcome: Outcome,
    },
    /// An output this provider kept was let go (fetched by its requestor,
    /// or past its retention time).
    OutputDropped(ContentId),
    /// The store of fetched inputs was brought within its bound after a
    /// run: how many blobs went, and the bytes it holds now.
    InputsShrunk {
        /// Blobs removed.
        removed: usize,
        /// Bytes held after.
        held_bytes: u64,
    },
    /// The node's ledger has a new head.
    Block {
        /// Its height.
        height: u64,
    },
    /// Shutdown began: no new work is accepted.
    Stopping,
}

/// A provider's answer to an assignment, checked.
#[derive(Clone, Debug)]
pub enum Assigned {
    /// The task ran: the receipt (signature, signer and assignment checked).
    Receipt {
        /// The receipt.
        receipt: Box<Receipt>,
        /// As signed, to keep as evidence.
        signed: Signed,
        /// The assignment as signed and sent: with the receipt, the proof
        /// of work the ledger pays on.
        assignment: Box<Signed>,
    },
    /// The provider refused it.
    Refused(String),
}

/// Why an assignment got no answer.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum AssignError {
    /// The connection to the provider closed before it answered.
    #[error("provider left before answering: {0}")]
    PeerGone(String),
    /// The provider could not be reached.
    #[error("cannot reach the provider: {0}")]
    Unreachable(String),
    /// No answer in time.
    #[error("the provider did not answer in time")]
    Timeout,
    /// An answer that is not a valid receipt for this assignment.
    #[error("invalid receipt: {0}")]
    BadReceipt(String),
    /// The node is shutting down.
    #[error("the node has stopped")]
    Stopped,
}

impl From<RequestFailure> for AssignError {
    fn from(f: RequestFailure) -> Self {
        match f {
            RequestFailure::PeerGone(why) => AssignError::PeerGone(why),
            RequestFailure::Unreachable(why) => AssignError::Unreachable(why),
            RequestFailure::Timeout => AssignError::Timeout,
            RequestFailure::BadResponse(why) => AssignError::BadReceipt(why),
            RequestFailure::Stopped => AssignError::Stopped,
        }
    }
}

/// Why a request to a peer got no (valid) answer.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum RequestFailure {
    /// The connection closed before the peer answered.
    #[error("peer left before answering: {0}")]
    PeerGone(String),
    /// The peer could not be reached.
    #[error("cannot reach the peer: {0}")]
    Unreachable(String),
    /// No answer in time.
    #[error("the peer did not answer in time")]
    Timeout,
    /// An answer that breaks the protocol (over its cap, malformed).
    #[error("bad answer: {0}")]
    BadResponse(String),
    /// The node is shutting down.
    #[error("the node has stopped")]
    Stopped,
}

impl RequestFailure {
    /// The failure of an outbound request, given why the peer's connection
    /// closed when known (a ping failure), and whether it is the peer's
    /// fault (a response that broke the protocol).
    pub(crate) fn of(
        error: &OutboundFailure,
        peer: &PeerId,
        closed_why: Option<&str>,
    ) -> (RequestFailure, Option<Misbehaviour>) {
        match error {
            OutboundFailure::Timeout => (RequestFailure::Timeout, None),
            OutboundFailure::DialFailure => (RequestFailure::Unreachable(format!("cannot dial {peer}")), None),
            OutboundFailure::ConnectionClosed => (
                RequestFailure::PeerGone(closed_why.unwrap_or("connection closed").to_string()),
                None,
            ),
            OutboundFailure::UnsupportedProtocols => (
                RequestFailure::Unreachable("peer does not speak the protocol".into()),
                None,
            ),
            OutboundFailure::Io(e) => match sharegrid_net::wire_error(e) {
                Some(w) => (
                    RequestFailure::BadResponse(w.to_string()),
                    Some(Misbehaviour::of_wire(w)),
                ),
                None => (RequestFailure::PeerGone(e.to_string()), None),
            },
        }
    }
}

/// Why a blob fetch failed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum FetchFailure {
    /// The peer's answer was refused.
    #[error(transparent)]
    Bad(#[from] FetchError),
    /// The request failed.
    #[error("blob request failed: {0}")]
    Request(#[from] RequestFailure),
    /// The provider's id is not a valid key.
    #[error("invalid provider id")]
    InvalidPeer,
    /// The fetched bytes are not a result encoding.
    #[error("the fetched result does not decode: {0}")]
    Undecodable(String),
    /// The fetched bytes could not be stored.
    #[error("cannot store the blob: {0}")]
    Store(String),
    /// The node is shutting down.
    #[error("the node has stopped")]
    Stopped,
}
