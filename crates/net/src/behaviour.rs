//! The libp2p behaviour and swarm construction.

use std::time::Duration;

use libp2p::identity::{self, Keypair};
use libp2p::request_response::{self, ProtocolSupport};
use libp2p::swarm::NetworkBehaviour;
use libp2p::swarm::behaviour::toggle::Toggle;
use libp2p::{
    Multiaddr, PeerId, StreamProtocol, Swarm, connection_limits, gossipsub, identify, kad, mdns, noise, ping, tcp,
    yamux,
};
use sharegrid_core::{NodeId, NodeKey};

use crate::codec::CappedCbor;
use crate::protocol::{
    BLOB_PROTOCOL, BLOCKS_TOPIC, BlobRequest, BlobResponse, LEDGER_PROTOCOL, LedgerRequest, LedgerResponse,
    MAX_BLOB_REQUEST_BYTES, MAX_BLOB_RESPONSE_BYTES, MAX_HEADER_BYTES, MAX_LEDGER_REQUEST_BYTES,
    MAX_LEDGER_RESPONSE_BYTES, MAX_OFFER_BYTES, MAX_TASK_REQUEST_BYTES, MAX_TASK_RESPONSE_BYTES, OFFERS_TOPIC,
    TASK_PROTOCOL, TaskRequest, TaskResponse,
};
use crate::traffic::{Counted, Traffic};

/// Network settings of a node.
#[derive(Clone, Debug)]
pub struct NetConfig {
    /// Addresses to listen on, e.g. `/ip4/0.0.0.0/tcp/4001` (tests: `/ip4/127.0.0.1/tcp/0`).
    pub listen: Vec<Multiaddr>,
    /// Bootstrap peers, each an address ending in `/p2p/<peer id>`.
    pub bootstrap: Vec<Multiaddr>,
    /// Discover peers on the local network by mDNS (on for `sharegrid node`, off in tests).
    pub mdns: bool,
    /// How long an idle connection stays open.
    pub idle_timeout: Duration,
    /// How long a blob request may wait for its response.
    pub request_timeout: Duration,
    /// How long a task request may wait for its receipt: the provider
    /// answers after running the task, so this bounds fetch + run.
    pub task_timeout: Duration,
    /// A connected peer that answers no ping for this long is gone. Pings go
    /// out every quarter of it; the node closes connections to peers silent
    /// for longer (libp2p's ping alone forgives a first failure and waits
    /// out a stream-upgrade timeout, so it cannot keep this bound).
    pub departure_timeout: Duration,
    /// Offers a node keeps at most (the offer book's bound).
    pub max_offers: usize,
    /// When a TCP listen port is taken (another node on this machine, most
    /// often), try the next ones, up to this many; 0 refuses to start.
    /// libp2p binds its listeners with `SO_REUSEPORT`, so without this
    /// check a second node would silently share the first one's port and
    /// the kernel would split incoming connections between them.
    pub port_fallback: u16,
    /// Inbound connections established at once, at most.
    pub max_inbound: u32,
    /// Inbound connections still handshaking at once, at most.
    pub max_pending_incoming: u32,
}

/// Connections to one peer at once (two may cross when both dial).
pub const MAX_CONNECTIONS_PER_PEER: u32 = 2;

impl Default for NetConfig {
    fn default() -> Self {
        NetConfig {
            listen: Vec::new(),
            bootstrap: Vec::new(),
            mdns: false,
            idle_timeout: Duration::from_secs(60),
            request_timeout: Duration::from_secs(30),
            task_timeout: Duration::from_secs(30 * 60),
            departure_timeout: Duration::from_secs(20),
            max_offers: 100_000,
            port_fallback: 0,
            max_inbound: 512,
            max_pending_incoming: 64,
        }
    }
}

/// Why the network could not start.
#[derive(Debug, thiserror::Error)]
pub enum NetError {
    /// The transport could not be built.
    #[error("transport: {0}")]
    Transport(String),
    /// A behaviour could not be built (mDNS socket, gossipsub settings).
    #[error("behaviour: {0}")]
    Behaviour(String),
    /// A listen address could not be used.
    #[error("cannot listen on {addr}: {message}")]
    Listen {
        /// The address.
        addr: Multiaddr,
        /// Why.
        message: String,
    },
    /// A bootstrap address lacks its `/p2p/<peer id>`.
    #[error("bootstrap address {0} must end in /p2p/<peer id>")]
    Bootstrap(Multiaddr),
}

/// Everything a sharegrid node speaks.
#[allow(missing_debug_implementations)] // libp2p's behaviours implement no Debug
#[derive(NetworkBehaviour)]
pub struct Behaviour {
    /// Peers exchange their addresses and protocols.
    pub identify: identify::Behaviour,
    /// Liveness.
    pub ping: ping::Behaviour,
    /// Peer discovery from bootstrap peers.
    pub kad: kad::Behaviour<kad::store::MemoryStore>,
    /// Local-network discovery (switchable).
    pub mdns: Toggle<mdns::tokio::Behaviour>,
    /// Broadcast: offers.
    pub gossipsub: gossipsub::Behaviour,
    /// Point to point: task assignment.
    pub task: request_response::Behaviour<CappedCbor<TaskRequest, TaskResponse>>,
    /// Point to point: content-addressed blobs in chunks.
    pub blob: request_response::Behaviour<CappedCbor<BlobRequest, BlobResponse>>,
    /// Point to point: ledger transactions and blocks.
    pub ledger: request_response::Behaviour<CappedCbor<LedgerRequest, LedgerResponse>>,
    /// Bounds on connections: a peer cannot open thousands.
    pub limits: connection_limits::Behaviour,
}

/// The libp2p keypair of a node key (the same ed25519 key).
pub fn keypair(key: &NodeKey) -> Keypair {
    // A 32-byte seed is always a valid ed25519 secret key.
    Keypair::ed25519_from_bytes(key.seed()).unwrap_or_else(|_| unreachable!("32-byte ed25519 seed"))
}

/// The libp2p peer id of a node id, if it is a valid ed25519 key.
pub fn peer_id(id: &NodeId) -> Option<PeerId> {
    let pk = identity::ed25519::PublicKey::try_from_bytes(id.as_bytes()).ok()?;
    Some(PeerId::from_public_key(&identity::PublicKey::from(pk)))
}

/// The node id of a libp2p peer id, when it carries an ed25519 key (every
/// sharegrid node's does: [`peer_id`] backwards, without a search).
pub fn node_id(peer: &PeerId) -> Option<NodeId> {
    let key = identity::PublicKey::try_decode_protobuf(peer.as_ref().digest()).ok()?;
    Some(NodeId::from_bytes(key.try_into_ed25519().ok()?.to_bytes()))
}

fn behaviour(key: &Keypair, cfg: &NetConfig) -> Result<Behaviour, NetError> {
    let me = key.public().to_peer_id();
    let gossip_config = gossipsub::ConfigBuilder::default()
        .validation_mode(gossipsub::ValidationMode::Strict)
        // Offers and block headers are small; the envelope adds little.
        .max_transmit_size(MAX_OFFER_BYTES.max(MAX_HEADER_BYTES) + 1024)
        // With few peers the mesh is under-filled; flood publishing still
        // delivers (measured, shared/FACTS.md).
        .flood_publish(true)
        .heartbeat_interval(Duration::from_millis(500))
        // The node checks each offer and tells gossipsub whether to forward
        // it, so invalid offers stop at the first honest node.
        .validate_messages()
        .build()
        .map_err(|e| NetError::Behaviour(e.to_string()))?;
    let mut gossipsub = gossipsub::Behaviour::new(gossipsub::MessageAuthenticity::Signed(key.clone()), gossip_config)
        .map_err(|e| NetError::Behaviour(e.to_string()))?;
    gossipsub
        .subscribe(&gossipsub::IdentTopic::new(OFFERS_TOPIC))
        .map_err(|e| NetError::Behaviour(e.to_string()))?;
    gossipsub
        .subscribe(&gossipsub::IdentTopic::new(BLOCKS_TOPIC))
        .map_err(|e| NetError::Behaviour(e.to_string()))?;
    let mdns = if cfg.mdns {
        Some(mdns::tokio::Behaviour::new(mdns::Config::default(), me).map_err(|e| NetError::Behaviour(e.to_string()))?)
    } else {
        None
    };
    let task = request_response::Behaviour::with_codec(
        CappedCbor::new(MAX_TASK_REQUEST_BYTES, MAX_TASK_RESPONSE_BYTES),
        [(StreamProtocol::new(TASK_PROTOCOL), ProtocolSupport::Full)],
        request_response::Config::default()
            .with_request_timeout(cfg.task_timeout)
            .with_max_concurrent_streams(1024),
    );
    let blob = request_response::Behaviour::with_codec(
        CappedCbor::new(MAX_BLOB_REQUEST_BYTES, MAX_BLOB_RESPONSE_BYTES),
        [(StreamProtocol::new(BLOB_PROTOCOL), ProtocolSupport::Full)],
        request_response::Config::default().with_request_timeout(cfg.request_timeout),
    );
    let ledger = request_response::Behaviour::with_codec(
        CappedCbor::new(MAX_LEDGER_REQUEST_BYTES, MAX_LEDGER_RESPONSE_BYTES),
        [(StreamProtocol::new(LEDGER_PROTOCOL), ProtocolSupport::Full)],
        request_response::Config::default().with_request_timeout(cfg.request_timeout),
    );
    let kad = kad::Behaviour::with_config(
        me,
        kad::store::MemoryStore::new(me),
        kad::Config::new(StreamProtocol::new("/sharegrid/kad/1")),
    );
    Ok(Behaviour {
        identify: identify::Behaviour::new(identify::Config::new("/sharegrid/id/1".into(), key.public())),
        ping: ping::Behaviour::new(
            ping::Config::new()
                .with_interval(cfg.departure_timeout / 4)
                .with_timeout(cfg.departure_timeout / 2),
        ),
        kad,
        mdns: Toggle::from(mdns),
        gossipsub,
        task,
        blob,
        ledger,
        limits: connection_limits::Behaviour::new(
            connection_limits::ConnectionLimits::default()
                .with_max_pending_incoming(Some(cfg.max_pending_incoming))
                .with_max_established_incoming(Some(cfg.max_inbound))
                .with_max_established_per_peer(Some(MAX_CONNECTIONS_PER_PEER)),
        ),
    })
}

/// `addr`, or — when its TCP port is taken — the same address on the first
/// of the next `fallback` ports that is free. Probed by binding a plain
/// socket (without `SO_REUSEPORT`, which every libp2p listener sets and
/// which a port shared on purpose would need), so a port another process
/// listens on is never shared. Addresses without a fixed TCP port pass.
fn unshared(addr: &Multiaddr, fallback: u16) -> Result<Multiaddr, NetError> {
    use libp2p::multiaddr::Protocol;
    let mut ip = None;
    let mut port = None;
    for p in addr.iter() {
        match p {
            Protocol::Ip4(a) => ip = Some(std::net::IpAddr::V4(a)),
            Protocol::Ip6(a) => ip = Some(std::net::IpAddr::V6(a)),
            Protocol::Tcp(p) => port = Some(p),
            _ => {}
        }
    }
    let (Some(ip), Some(first)) = (ip, port) else {
        return Ok(addr.clone());
    };
    if first == 0 {
        return Ok(addr.clone());
    }
    let with_port = |port: u16| -> Multiaddr {
        addr.iter()
            .map(|p| match p {
                Protocol::Tcp(_) => Protocol::Tcp(port),
                other => other,
            })
            .collect()
    };
    let last = first.saturating_add(fallback);
    for port in first..=last {
        match std::net::TcpListener::bind((ip, port)) {
            Ok(_) => return Ok(with_port(port)),
            Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => continue,
            Err(e) => {
                return Err(NetError::Listen {
                    addr: with_port(port),
                    message: e.to_string(),
                });
            }
        }
    }
    let message = if fallback == 0 {
        format!("TCP port {first} is in use (another node on this machine?); choose another in [network] listen")
    } else {
        format!(
            "TCP ports {first} to {last} are all in use (other nodes on this machine?); choose a port in [network] listen"
        )
    };
    Err(NetError::Listen {
        addr: addr.clone(),
        message,
    })
}

/// A swarm for `key` with `cfg`: listening, bootstrap peers added to
/// Kademlia and dialed. Must be called inside a tokio runtime.
pub fn build_swarm(key: &NodeKey, cfg: &NetConfig) -> Result<Swarm<Behaviour>, NetError> {
    build_counted_swarm(key, cfg, &Traffic::default())
}

/// [`build_swarm`], counting the bytes of its connections into `traffic`.
pub fn build_counted_swarm(key: &NodeKey, cfg: &NetConfig, traffic: &Traffic) -> Result<Swarm<Behaviour>, NetError> {
    let keypair = keypair(key);
    let mut built = None;
    let traffic = traffic.clone();
    // TCP + Noise + Yamux, as the builder's `with_tcp` makes it, with each
    // TCP stream counted under the upgrades.
    let transport = move |key: &libp2p::identity::Keypair| -> Result<_, Box<dyn std::error::Error + Send + Sync>> {
        use libp2p::Transport as _;
        Ok(tcp::tokio::Transport::new(tcp::Config::default().nodelay(true))
            .map(move |stream, _| Counted::new(stream, traffic.clone()))
            .upgrade(libp2p::core::upgrade::Version::V1Lazy)
            .authenticate(noise::Config::new(key)?)
            .multiplex(yamux::Config::default())
            .map(|(peer, muxer), _| (peer, libp2p::core::muxing::StreamMuxerBox::new(muxer))))
    };
    let mut swarm = libp2p::SwarmBuilder::with_existing_identity(keypair)
        .with_tokio()
        .with_other_transport(transport)
        .map_err(|e| NetError::Transport(e.to_string()))?
        .with_behaviour(|key| match behaviour(key, cfg) {
            Ok(b) => Ok(b),
            Err(e) => {
                built = Some(e.to_string());
                Err(std::io::Error::other("behaviour").into())
            }
        })
        .map_err(|e| NetError::Behaviour(built.take().unwrap_or_else(|| e.to_string())))?
        .with_swarm_config(|c| c.with_idle_connection_timeout(cfg.idle_timeout))
        .build();
    for configured in &cfg.listen {
        let addr = unshared(configured, cfg.port_fallback)?;
        if addr != *configured {
            tracing::warn!(%configured, %addr, "listen port in use (another node on this machine?); took the next free one");
        }
        swarm.listen_on(addr.clone()).map_err(|e| NetError::Listen {
            addr,
            message: e.to_string(),
        })?;
    }
    for addr in &cfg.bootstrap {
        let Some(libp2p::multiaddr::Protocol::P2p(peer)) = addr.iter().last() else {
            return Err(NetError::Bootstrap(addr.clone()));
        };
        swarm.behaviour_mut().kad.add_address(&peer, addr.clone());
        if let Err(e) = swarm.dial(addr.clone()) {
            tracing::warn!(%addr, error = %e, "cannot dial bootstrap peer");
        }
    }
    if !cfg.bootstrap.is_empty() {
        // Ask the bootstrap peers for the peers near us, to join the wider network.
        let _ = swarm.behaviour_mut().kad.bootstrap();
    }
    Ok(swarm)
}
