//! sharegrid-net: the rust-libp2p shell.
//!
//! - [`build_swarm`] makes a swarm from a node key: TCP, Noise, Yamux,
//!   identify, ping, Kademlia (bootstrap peers from config), mDNS (a switch,
//!   off in tests), gossipsub (`offers`, `blocks`), request-response
//!   (`task`, `blob`, `ledger`).
//! - [`CappedCbor`] is the request-response codec: a size cap per message,
//!   checked while reading; a request that is over it or malformed arrives
//!   as [`Incoming::Refused`] with the reason, so the node can count it and
//!   answer (libp2p would drop a failed read silently).
//! - [`PeerScores`] decides, in one place, what each kind of bad input from
//!   a peer means: ignore, back off or ban.
//! - [`BlobFetch`] fetches a content-addressed blob in chunks and releases
//!   the bytes only once they hash to the id asked for; [`serve`] answers.
//! - [`OfferBook`] is the decision logic for gossiped offers, pure and
//!   tested without sockets: size cap, signature, the gossip source being the
//!   signer, expiry, staleness.
//!
//! Never does: decide anything about money or results itself. It moves
//! signed messages and hands them to the node's logic.

mod behaviour;
mod blobs;
mod codec;
mod offers;
mod peers;
mod protocol;
mod traffic;

pub use behaviour::{
    Behaviour, BehaviourEvent, MAX_CONNECTIONS_PER_PEER, NetConfig, NetError, build_counted_swarm, build_swarm,
    keypair, node_id, peer_id,
};
pub use blobs::{BlobFetch, FetchError, FetchStep, serve};
pub use codec::{CappedCbor, Incoming, wire_error};
pub use offers::{
    MAX_OFFER_CORES, MAX_OFFER_LIFETIME_MS, MAX_OFFER_MEMORY, MAX_OFFER_SPEED, OfferBook, OfferRejection,
};
pub use peers::{Misbehaviour, PeerAction, PeerScores, Protocol, RateLimits};
pub use protocol::{
    BLOB_PROTOCOL, BLOCKS_TOPIC, BlobRequest, BlobResponse, LEDGER_PROTOCOL, LedgerRequest, LedgerResponse,
    MAX_ASSIGNMENT_BYTES, MAX_BLOB_REQUEST_BYTES, MAX_BLOB_RESPONSE_BYTES, MAX_CHUNK_BYTES, MAX_HEADER_BYTES,
    MAX_LEDGER_REQUEST_BYTES, MAX_LEDGER_RESPONSE_BYTES, MAX_OFFER_BYTES, MAX_RECEIPT_BYTES, MAX_RESULT_BYTES,
    MAX_SYNC_BLOCKS, MAX_TASK_REQUEST_BYTES, MAX_TASK_RESPONSE_BYTES, OFFERS_TOPIC, TASK_PROTOCOL, TaskRequest,
    TaskResponse,
};
pub use traffic::Traffic;

/// Re-exported so users of this crate need no direct libp2p dependency for
/// the common types.
pub use libp2p::{
    Multiaddr, PeerId, Swarm, gossipsub, identify, mdns, multiaddr, ping, request_response,
    swarm::{ConnectionId, SwarmEvent},
};
