//! The running node: one task owns the libp2p swarm and every piece of
//! network state; the rest of the program talks to it through a
//! [`NodeHandle`] and hears from it through a broadcast of [`NodeEvent`]s.
//!
//! The loop routes, it decides nothing: each protocol has a file that moves
//! its bytes between the swarm and the piece that decides —
//!
//! - `offers.rs`: gossiped offers into the [`sharegrid_net::OfferBook`];
//! - `task.rs`: assignments to the provider [`crate::provider::Agent`] (a
//!   state machine) and its actions back out; a requestor's assignments out;
//! - `blob.rs`: blobs served from the stores, fetched by
//!   [`sharegrid_net::BlobFetch`];
//! - `ledger.rs`: transactions and blocks, the [`crate::ledger::Follower`]
//!   and [`crate::ledger::Producer`] machines;
//! - `liveness.rs`: connections, pings and the departure timeout;
//! - `status.rs`: the snapshot `sharegrid status` shows.
//!
//! Bad input goes to [`PeerScores`] (ignore, back off or ban) in one place.
//! What blocks — running a task, reading or writing blobs, the ledger's
//! SQLite — runs on tokio's blocking pool and comes back as an internal
//! message, so the loop keeps answering while tasks run.
//!
//! Shutdown: the node's [`Lifecycle`] signals stop; the loop stops
//! accepting work, re-publishes zero free slots, lets running tasks finish
//! within the grace period, refuses the rest and lets the refusals leave.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use sharegrid_core::{ContentId, NodeKey};
use sharegrid_net::{
    Behaviour, BehaviourEvent, BlobFetch, BlobResponse, LedgerResponse, Misbehaviour, Multiaddr, NetConfig, NetError,
    OfferBook, PeerAction, PeerId, PeerScores, Swarm, SwarmEvent, TaskResponse, build_counted_swarm, request_response,
};
use tokio::sync::{broadcast, mpsc, oneshot};

mod blob;
mod escrow;
mod events;
mod handle;
mod ledger;
mod liveness;
mod offers;
mod status;
mod task;

pub use events::{AssignError, Assigned, FetchFailure, NodeEvent, RequestFailure};
pub use handle::{DialError, NodeHandle};
pub use ledger::LedgerOptions;
pub use status::{AgentStatus, Discovery, LedgerStatus, MisbehaviourCount, NodeStatus, PeerView, discovery_hint};
pub use task::AgentOptions;

use crate::blobs::BlobStore;
pub(crate) use crate::clock::now_ms;
use crate::lifecycle::Lifecycle;
use crate::metrics::Metrics;
use handle::Command;
use ledger::{LedgerPart, LedgerWaiter};
use task::AgentPart;

/// Everything a node needs to run.
#[derive(Debug)]
pub struct NodeOptions {
    /// The node's identity.
    pub key: Arc<NodeKey>,
    /// Network settings.
    pub net: NetConfig,
    /// Modules and inputs (this node's own, and those fetched to run).
    pub blobs: BlobStore,
    /// The provider agent, if this node provides compute.
    pub agent: Option<AgentOptions>,
    /// The ledger, if this node keeps one.
    pub ledger: Option<LedgerOptions>,
}

/// Starts a node on the current tokio runtime. Returns once it listens.
pub async fn start(opts: NodeOptions) -> Result<NodeHandle, NetError> {
    let metrics = Metrics::new();
    let swarm = build_counted_swarm(&opts.key, &opts.net, metrics.traffic())?;
    let (commands, rx) = mpsc::channel(1024);
    let (events, _) = broadcast::channel(4096);
    let (internal_tx, internal_rx) = mpsc::channel(1024);
    let lifecycle = Lifecycle::new();
    let handle = NodeHandle {
        key: opts.key.clone(),
        peer: *swarm.local_peer_id(),
        commands,
        events: events.clone(),
        lifecycle: lifecycle.clone(),
        metrics: metrics.clone(),
        chain: opts
            .ledger
            .as_ref()
            .map_or(ContentId::from_bytes([0; 32]), |l| l.ledger.with_state(|s| s.chain)),
    };
    let agent = opts.agent.map(|a| AgentPart::new(a, opts.key.clone()));
    let mut daemon = Daemon {
        swarm,
        key: opts.key.clone(),
        blobs: opts.blobs,
        book: OfferBook::new(opts.net.max_offers),
        own_offer: None,
        scores: PeerScores::default(),
        rates: sharegrid_net::RateLimits::default(),
        banned: HashSet::new(),
        events,
        assigns: HashMap::new(),
        fetches: HashMap::new(),
        next_fetch: 0,
        peer_fetches: HashMap::new(),
        ping_failures: HashMap::new(),
        last_heard: HashMap::new(),
        departure_timeout: opts.net.departure_timeout,
        listen: Vec::new(),
        mdns: opts.net.mdns,
        bootstrap: opts.net.bootstrap.clone(),
        dial_error: None,
        internal: internal_tx,
        agent,
        ledger: opts.ledger.map(LedgerPart::new),
        parked_escrows: Vec::new(),
        ledger_waiters: HashMap::new(),
        grants: HashMap::new(),
        faucet: None,
        metrics,
    };
    let wants_listen = !opts.net.listen.is_empty();
    // Wait for the first listen address so callers can hand it out.
    while wants_listen && daemon.listen.is_empty() {
        let ev = daemon.swarm.select_next_some().await;
        daemon.on_swarm(ev);
    }
    let life = lifecycle.clone();
    lifecycle.spawn(daemon.run(rx, internal_rx, life));
    Ok(handle)
}

/// Messages from blocking work back to the loop.
pub(super) enum Internal {
    BlobServed {
        channel: request_response::ResponseChannel<BlobResponse>,
        response: BlobResponse,
        peer: PeerId,
        id: ContentId,
        complete: bool,
    },
    Agent(crate::provider::AgentInput),
    InputsShrunk {
        removed: usize,
        held_bytes: u64,
    },
    FetchedLocally {
        owner: FetchOwner,
        id: ContentId,
        output: bool,
        result: Result<Vec<u8>, FetchFailure>,
    },
    Produced(Result<Option<Box<sharegrid_ledger::Block>>, String>),
    LedgerAnswer {
        channel: request_response::ResponseChannel<LedgerResponse>,
        response: LedgerResponse,
    },
    Applied {
        peer: PeerId,
        result: crate::ledger::Applied,
    },
    EscrowStanding(Vec<escrow::Standing>),
    /// A chunk of a fetch streamed to disk: written (ask for the next), or
    /// not (the fetch ends, the run is told).
    ChunkWritten(
        Box<Fetching>,
        Result<sharegrid_net::BlobRequest, crate::provider::AgentInput>,
    ),
}

/// A blob fetch in flight: from whom, its state, who waits, and its
/// number (for its part file, when streamed to disk).
pub(super) struct Fetching {
    peer: PeerId,
    fetch: BlobFetch,
    owner: FetchOwner,
    number: u64,
}

/// Who waits for a blob being fetched.
pub(super) enum FetchOwner {
    /// A provider run's input.
    Run(crate::provider::RunId),
    /// A caller of [`NodeHandle::fetch_blob`].
    Client(oneshot::Sender<Result<Vec<u8>, FetchFailure>>),
}

pub(super) struct Daemon {
    swarm: Swarm<Behaviour>,
    key: Arc<NodeKey>,
    blobs: BlobStore,
    book: OfferBook,
    /// This node's own provider's latest offer: its jobs may run on it.
    own_offer: Option<sharegrid_core::Offer>,
    scores: PeerScores,
    rates: sharegrid_net::RateLimits,
    banned: HashSet<PeerId>,
    events: broadcast::Sender<NodeEvent>,
    assigns: HashMap<request_response::OutboundRequestId, oneshot::Sender<Result<TaskResponse, RequestFailure>>>,
    fetches: HashMap<request_response::OutboundRequestId, Fetching>,
    /// Numbers fetches streamed to disk (each its own part file).
    next_fetch: u64,
    /// Fetches from each peer: how many run, and those waiting their turn.
    peer_fetches: HashMap<PeerId, blob::PeerFetches>,
    /// Why a peer's connection was closed (ping), kept a while so the
    /// requests that fail with it can say so.
    ping_failures: HashMap<PeerId, (String, std::time::Instant)>,
    /// When each connected peer last answered a ping.
    last_heard: HashMap<PeerId, std::time::Instant>,
    departure_timeout: Duration,
    listen: Vec<Multiaddr>,
    /// How peers are found (for status).
    mdns: bool,
    bootstrap: Vec<Multiaddr>,
    /// The last failed dial, for status.
    dial_error: Option<String>,
    internal: mpsc::Sender<Internal>,
    agent: Option<AgentPart>,
    ledger: Option<LedgerPart>,
    /// Assignments waiting for their escrow to appear on the ledger.
    parked_escrows: Vec<escrow::Parked>,
    ledger_waiters: HashMap<request_response::OutboundRequestId, LedgerWaiter>,
    /// Which peer may fetch which of our blobs, until when (ms): the
    /// providers of our assignments, for the blobs those name.
    grants: HashMap<(PeerId, ContentId), u64>,
    /// The faucet task, on a test network's node that runs one.
    faucet: Option<mpsc::Sender<crate::faucet::FaucetOrder>>,
    metrics: Metrics,
}

impl Daemon {
    async fn run(
        mut self,
        mut commands: mpsc::Receiver<Command>,
        mut internal: mpsc::Receiver<Internal>,
        life: Lifecycle,
    ) {
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut liveness = tokio::time::interval((self.departure_timeout / 8).max(Duration::from_millis(50)));
        liveness.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut blocks = tokio::time::interval(self.ledger.as_ref().map_or(Duration::from_secs(1), |l| l.tick()));
        blocks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        // Set once shutdown begins: the deadline for running tasks.
        let mut stopping: Option<tokio::time::Instant> = None;
        let mut handles_alive = true;
        loop {
            tokio::select! {
                ev = self.swarm.select_next_some() => self.on_swarm(ev),
                cmd = commands.recv(), if handles_alive => match cmd {
                    Some(Command::Kill) => {
                        tracing::info!("node killed");
                        life.stop();
                        return;
                    }
                    Some(cmd) => self.on_command(cmd),
                    // Every handle dropped: nobody can use the node any more.
                    None => {
                        handles_alive = false;
                        life.stop();
                    }
                },
                Some(msg) = internal.recv() => self.on_internal(msg),
                _ = tick.tick() => self.on_tick(),
                _ = liveness.tick() => self.check_liveness(),
                _ = blocks.tick() => self.maybe_produce(),
                () = life.stopping(), if stopping.is_none() => {
                    stopping = Some(tokio::time::Instant::now() + self.begin_shutdown());
                }
            }
            if let Some(deadline) = stopping {
                let idle = self.agent.as_ref().is_none_or(|a| a.agent.busy() == 0);
                if idle || tokio::time::Instant::now() >= deadline {
                    break;
                }
            }
        }
        self.agent_input(crate::provider::AgentInput::Stop, None);
        // Let the refusals leave before the connections close.
        let flush = tokio::time::sleep(Duration::from_millis(200));
        tokio::pin!(flush);
        loop {
            tokio::select! {
                _ = &mut flush => break,
                ev = self.swarm.select_next_some() => self.on_swarm(ev),
            }
        }
        tracing::info!("node stopped");
    }

    fn emit(&self, ev: NodeEvent) {
        let _ = self.events.send(ev);
    }

    /// Begins shutdown; returns the grace period for running tasks.
    fn begin_shutdown(&mut self) -> Duration {
        self.emit(NodeEvent::Stopping);
        let Some(part) = &self.agent else {
            return Duration::ZERO;
        };
        let grace = Duration::from_secs(part.agent.policy().shutdown_grace_secs);
        tracing::info!(
            running = part.agent.busy(),
            ?grace,
            "shutting down: no new work accepted"
        );
        self.agent_input(crate::provider::AgentInput::BeginShutdown, None);
        grace
    }

    /// Counts bad input from `peer` and does what its score says.
    /// Whether `peer` is within its rate for `protocol` (see
    /// [`sharegrid_net::RateLimits`]); a request over it is counted as
    /// flooding, so a peer that keeps on is banned.
    fn within_rate(&mut self, peer: PeerId, protocol: sharegrid_net::Protocol) -> bool {
        if self.rates.allow(peer, protocol, now_ms()) {
            return true;
        }
        let (_, per_sec) = protocol.rate();
        self.misbehaved(
            peer,
            Misbehaviour::Flooding,
            format!("{protocol:?} requests over {per_sec} a second"),
        );
        false
    }

    fn misbehaved(&mut self, peer: PeerId, what: Misbehaviour, why: String) {
        let action = self.scores.record(peer, what);
        self.metrics.misbehaved(what.as_str());
        tracing::warn!(%peer, kind = what.as_str(), ?action, "rejected: {why}");
        if action == PeerAction::Ban && self.banned.insert(peer) {
            let _ = self.swarm.disconnect_peer_id(peer);
        }
        self.emit(NodeEvent::Misbehaved {
            peer,
            what,
            why,
            action,
        });
    }

    fn on_command(&mut self, cmd: Command) {
        match cmd {
            Command::ListenAddrs(tx) => {
                let _ = tx.send(self.listen.clone());
            }
            Command::Dial(addr, tx) => {
                let _ = tx.send(self.swarm.dial(addr).map_err(|e| e.to_string()));
            }
            Command::Offers(tx) => {
                let now = now_ms();
                let mut offers: Vec<_> = self.book.live(now).into_iter().cloned().collect();
                offers.extend(self.own_offer.iter().filter(|o| o.expires_at_ms > now).cloned());
                let _ = tx.send(offers);
            }
            Command::Assign {
                provider,
                signed,
                blobs,
                expires_at_ms,
                reply,
            } => self.send_assignment(provider, signed, (blobs, expires_at_ms), reply),
            Command::Fetch { peer, id, max, reply } => self.fetch(peer, id, max, FetchOwner::Client(reply)),
            Command::Status(tx) => {
                let _ = tx.send(self.status());
            }
            Command::Ledger { peer, request, reply } => self.ledger_request(peer, request, reply),
            Command::ServeFaucet(faucet) => self.faucet = Some(faucet),
            // Handled in the loop.
            Command::Kill => {}
        }
    }

    fn on_internal(&mut self, msg: Internal) {
        match msg {
            Internal::BlobServed {
                channel,
                response,
                peer,
                id,
                complete,
            } => self.blob_served(channel, response, peer, id, complete),
            Internal::Agent(input) => self.agent_input(input, None),
            Internal::FetchedLocally {
                owner,
                id,
                output,
                result,
            } => self.fetched_locally(owner, id, output, result),
            Internal::Produced(result) => self.on_produced(result),
            Internal::LedgerAnswer { channel, response } => {
                let _ = self.swarm.behaviour_mut().ledger.send_response(channel, response);
            }
            Internal::Applied { peer, result } => self.on_applied(peer, result),
            Internal::EscrowStanding(checks) => self.on_escrow_standing(checks),
            Internal::ChunkWritten(f, Ok(next)) => self.next_chunk(*f, next),
            Internal::ChunkWritten(f, Err(input)) => {
                self.fetch_over(f.peer);
                self.agent_input(input, None);
            }
            Internal::InputsShrunk { removed, held_bytes } => {
                self.emit(NodeEvent::InputsShrunk { removed, held_bytes });
            }
        }
    }

    fn on_tick(&mut self) {
        let now = now_ms();
        self.grants.retain(|_, until| *until > now);
        self.book.expire(now_ms());
        self.metrics.offers.set(self.book.live(now_ms()).len() as i64);
        self.forget_old_ping_failures();
        self.agent_input(crate::provider::AgentInput::Tick, None);
        self.expire_parked_escrows();
        self.ledger_tick();
    }

    fn on_swarm(&mut self, ev: SwarmEvent<BehaviourEvent>) {
        match ev {
            SwarmEvent::NewListenAddr { address, .. } => {
                tracing::info!(%address, "listening");
                self.listen.push(address.clone());
                self.emit(NodeEvent::Listening(address));
            }
            SwarmEvent::ConnectionEstablished {
                peer_id,
                connection_id,
                num_established,
                ..
            } => self.on_connected(peer_id, connection_id, num_established.get()),
            SwarmEvent::ConnectionClosed {
                peer_id,
                num_established: 0,
                cause,
                ..
            } => self.on_disconnected(peer_id, cause.map(|c| c.to_string())),
            SwarmEvent::Behaviour(ev) => self.on_behaviour(ev),
            SwarmEvent::OutgoingConnectionError { peer_id, error, .. } => {
                let mut why = error.to_string();
                why.truncate(300);
                tracing::debug!(peer = ?peer_id, "dial failed: {why}");
                self.dial_error = Some(why);
            }
            _ => {}
        }
    }

    fn on_behaviour(&mut self, ev: BehaviourEvent) {
        match ev {
            BehaviourEvent::Gossipsub(ev) => self.on_gossip(ev),
            BehaviourEvent::Ping(ev) => self.on_ping(ev),
            BehaviourEvent::Identify(sharegrid_net::identify::Event::Received { peer_id, info, .. }) => {
                for addr in info.listen_addrs {
                    self.swarm.behaviour_mut().kad.add_address(&peer_id, addr);
                }
            }
            BehaviourEvent::Mdns(sharegrid_net::mdns::Event::Discovered(found)) => {
                for (peer, addr) in found {
                    self.swarm.behaviour_mut().kad.add_address(&peer, addr.clone());
                    if !self.swarm.is_connected(&peer) {
                        let _ = self.swarm.dial(addr);
                    }
                }
            }
            BehaviourEvent::Task(ev) => self.on_task(ev),
            BehaviourEvent::Blob(ev) => self.on_blob(ev),
            BehaviourEvent::Ledger(ev) => self.on_ledger(ev),
            _ => {}
        }
    }

    /// An inbound request that failed after it was read. Bad bytes never
    /// end here (the codec turns them into `Incoming::Refused`, counted
    /// where they are answered): this is the connection failing, no one's
    /// misbehaviour.
    fn inbound_failure(&mut self, peer: PeerId, protocol: &str, error: request_response::InboundFailure) {
        tracing::debug!(%peer, %protocol, "inbound request failed: {error}");
    }

    /// What an outbound request's failure means, counting it against the
    /// peer when its answer broke the protocol.
    fn outbound_failed(
        &mut self,
        protocol: &str,
        peer: PeerId,
        error: &request_response::OutboundFailure,
    ) -> RequestFailure {
        let (failure, bad) = RequestFailure::of(error, &peer, self.closed_why(&peer));
        if let Some(what) = bad {
            self.misbehaved(peer, what, format!("{protocol} response: {failure}"));
        }
        failure
    }

    /// Runs `work` on the blocking pool and sends its result back to the
    /// loop, counting it while it waits or runs.
    fn blocking(&self, work: impl FnOnce() -> Internal + Send + 'static) {
        let (tx, gauge) = (self.internal.clone(), self.metrics.blocking_in_flight.clone());
        gauge.inc();
        tokio::task::spawn_blocking(move || {
            let msg = work();
            gauge.dec();
            let _ = tx.blocking_send(msg);
        });
    }
}
