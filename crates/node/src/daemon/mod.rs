//! The running node: one task owns the libp2p swarm and every piece of
//! network state; the rest of the program talks to it through a
//! [`NodeHandle`] (a bounded command channel) and hears from it through a
//! broadcast of [`NodeEvent`]s.
//!
//! The loop decides nothing itself: offers go to the [`OfferBook`], bad input
//! to [`PeerScores`], assignments to [`Provider`] and its policy, blob bytes
//! to [`BlobFetch`]. What blocks — running a task, reading or writing blobs —
//! goes to tokio's blocking pool and comes back as an internal message, so
//! the loop keeps answering pings and requests while tasks run. The number
//! of tasks running at once is bounded by the policy's slots (an assignment
//! over them is refused as busy).
//!
//! The provider agent (when configured) re-publishes its signed offer every
//! `offer_interval_secs` and within a second of its free slots changing,
//! keeps each task's outputs (the canonical result encoding, a blob named by
//! the result hash) until its requestor has fetched them or the retention
//! time passes, and on shutdown stops accepting, withdraws its free slots and
//! gives running tasks a grace period before refusing them.
//!
//! The ledger's network side lives in [`ledger`]: a validator produces
//! blocks from its pool and announces them by gossip; every node answers
//! transaction submissions and block requests, and follows the chain by
//! fetching and checking the blocks it lacks.
//!
//! A peer is gone when its last connection closes; a peer that stops
//! answering without closing is caught by ping within the configured
//! departure timeout, and its connection closed.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use futures::StreamExt;
use serde::{Deserialize, Serialize};
use sharegrid_core::{
    Assignment, ContentId, GigafuelPerSec, NodeId, NodeKey, Offer, Outcome, Receipt, Signed, TaskId, TaskResult,
    WIRE_VERSION, encode,
};
use sharegrid_net::{
    Behaviour, BehaviourEvent, BlobFetch, BlobRequest, BlobResponse, FetchError, FetchStep, Incoming, Misbehaviour,
    Multiaddr, NetConfig, NetError, OFFERS_TOPIC, OfferBook, OfferRejection, PeerAction, PeerId, PeerScores, Swarm,
    SwarmEvent, TaskRequest, TaskResponse, build_swarm, gossipsub, peer_id, ping, request_response, wire_error,
};
use tokio::sync::{broadcast, mpsc, oneshot};

mod ledger;

pub use ledger::LedgerOptions;
use ledger::{LedgerPart, LedgerWaiter};
use sharegrid_net::{BLOCKS_TOPIC, LedgerRequest, LedgerResponse};

use crate::blobs::BlobStore;
use crate::machine::{HostProbe, MachineInfo};
use crate::policy::{MachineState, Refusal};
use crate::provider::{Executed, MAX_ASSIGNMENT_BYTES, Prepared, Provider};

/// Largest receipt a requestor reads.
pub const MAX_RECEIPT_BYTES: usize = 16 * 1024;
/// Offers a node keeps at most.
pub const MAX_OFFERS: usize = 100_000;

/// Everything a node needs to run.
#[derive(Debug)]
pub struct NodeOptions {
    /// The node's identity.
    pub key: Arc<NodeKey>,
    /// Network settings.
    pub net: NetConfig,
    /// Modules and inputs (this node's own, and those fetched to run).
    pub blobs: BlobStore,
    /// Outputs of tasks run here, kept for their requestors.
    pub outputs: BlobStore,
    /// The provider agent, if this node provides compute.
    pub agent: Option<AgentOptions>,
    /// The ledger, if this node keeps one.
    pub ledger: Option<LedgerOptions>,
}

/// The provider agent's setup.
#[derive(Debug)]
pub struct AgentOptions {
    /// Policy, sandbox, key and blob store.
    pub provider: Provider,
    /// The machine, detected at start.
    pub machine: MachineInfo,
    /// Measured speed (the cached node benchmark).
    pub speed: GigafuelPerSec,
    /// Host load and local time.
    pub probe: Arc<dyn HostProbe>,
    /// Largest blob fetched for a task.
    pub max_fetch_bytes: u64,
    /// Where to keep the proof of each task run for an escrowed job
    /// (assignment and receipt), to claim the pay if its requestor does not
    /// settle. None: not kept.
    pub earnings: Option<crate::jobstore::JobStore>,
}

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
    /// This provider ran a task and returned its receipt.
    Ran {
        /// The task.
        task: TaskId,
        /// How it ended.
        outcome: Outcome,
    },
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

/// Why a blob fetch failed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum FetchFailure {
    /// The peer's answer was refused.
    #[error(transparent)]
    Bad(#[from] FetchError),
    /// The request failed.
    #[error("blob request failed: {0}")]
    Request(String),
    /// The node is shutting down.
    #[error("the node has stopped")]
    Stopped,
}

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

enum Command {
    ListenAddrs(oneshot::Sender<Vec<Multiaddr>>),
    Dial(Multiaddr, oneshot::Sender<Result<(), String>>),
    Offers(oneshot::Sender<Vec<Offer>>),
    Assign {
        provider: PeerId,
        signed: Signed,
        reply: oneshot::Sender<Result<TaskResponse, AssignError>>,
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
        reply: oneshot::Sender<Result<LedgerResponse, String>>,
    },
    Shutdown(oneshot::Sender<()>),
}

/// Talks to a running node. Cheap to clone.
#[derive(Clone, Debug)]
pub struct NodeHandle {
    key: Arc<NodeKey>,
    peer: PeerId,
    commands: mpsc::Sender<Command>,
    events: broadcast::Sender<NodeEvent>,
}

impl std::fmt::Debug for Command {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Command")
    }
}

impl NodeHandle {
    /// This node's id.
    pub fn id(&self) -> NodeId {
        self.key.id()
    }

    /// This node's peer id.
    pub fn peer_id(&self) -> PeerId {
        self.peer
    }

    /// Whether the node is still running (cheap: no round trip).
    pub fn is_running(&self) -> bool {
        !self.commands.is_closed()
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
    pub async fn dial(&self, addr: Multiaddr) -> Result<(), String> {
        self.ask(|tx| Command::Dial(addr, tx))
            .await
            .unwrap_or_else(|| Err("node stopped".into()))
    }

    /// Live offers, by provider id.
    pub async fn offers(&self) -> Vec<Offer> {
        self.ask(Command::Offers).await.unwrap_or_default()
    }

    /// A snapshot of the node's state, or `None` if it stopped.
    pub async fn status(&self) -> Option<NodeStatus> {
        self.ask(Command::Status).await
    }

    /// Signs `assignment` as this node, sends it to its provider and waits
    /// for the answer. A receipt is checked: signed by the provider, for this
    /// task and this exact assignment, at the agreed price.
    pub async fn assign(&self, assignment: &Assignment) -> Result<Assigned, AssignError> {
        let signed = Signed::sign(&self.key, assignment).map_err(|e| AssignError::Unreachable(e.to_string()))?;
        let provider = peer_id(&assignment.provider)
            .ok_or_else(|| AssignError::Unreachable(format!("{} is not a valid node id", assignment.provider)))?;
        let sent_id = signed.id();
        let sent = signed.clone();
        let response = self
            .ask(|reply| Command::Assign {
                provider,
                signed,
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
                let bad = |why: &str| Err(AssignError::BadReceipt(why.to_string()));
                if receipt.provider != assignment.provider {
                    return bad("signed by another provider");
                }
                if receipt.task != assignment.task || receipt.assignment != sent_id {
                    return bad("answers another assignment");
                }
                if receipt.price != assignment.price || assignment.price.cost(receipt.fuel) != Some(receipt.charge) {
                    return bad("charge is not fuel × the agreed price");
                }
                if receipt.fuel > assignment.limits.fuel {
                    return bad("fuel used exceeds the task's limit");
                }
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
        let peer = peer_id(&receipt.provider).ok_or(FetchFailure::Request("invalid provider id".into()))?;
        let bytes = self
            .fetch_blob(peer, ContentId::from_bytes(*receipt.result.as_bytes()), max)
            .await?;
        TaskResult::decode(&bytes).map_err(|e| FetchFailure::Request(e.to_string()))
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
        let peer = peer_id(provider).ok_or(FetchFailure::Request("invalid provider id".into()))?;
        let bytes = self.fetch_blob(peer, id, max).await?;
        let store = store.clone();
        tokio::task::spawn_blocking(move || store.put(&bytes))
            .await
            .map_err(|e| FetchFailure::Request(e.to_string()))?
            .map_err(|e| FetchFailure::Request(format!("cannot store the blob: {e}")))?;
        Ok(())
    }

    /// Sends a request to `peer`'s ledger.
    pub async fn ledger_request(&self, peer: PeerId, request: LedgerRequest) -> Result<LedgerResponse, String> {
        self.ask(|reply| Command::Ledger { peer, request, reply })
            .await
            .unwrap_or_else(|| Err("the node has stopped".into()))
    }

    /// Stops the node: refuses new work, lets running tasks finish within
    /// the grace period, closes connections. Returns when it has stopped.
    pub async fn shutdown(&self) {
        let _ = self.ask(Command::Shutdown).await;
    }
}

/// Starts a node on the current tokio runtime. Returns once it listens.
pub async fn start(opts: NodeOptions) -> Result<NodeHandle, NetError> {
    let swarm = build_swarm(&opts.key, &opts.net)?;
    let (commands, rx) = mpsc::channel(1024);
    let (events, _) = broadcast::channel(4096);
    let (internal_tx, internal_rx) = mpsc::channel(1024);
    let handle = NodeHandle {
        key: opts.key.clone(),
        peer: *swarm.local_peer_id(),
        commands,
        events: events.clone(),
    };
    let agent = opts.agent.map(|a| Agent::new(a, internal_tx.clone()));
    let mut daemon = Daemon {
        swarm,
        key: opts.key.clone(),
        me: opts.key.id(),
        blobs: opts.blobs,
        outputs: opts.outputs,
        book: OfferBook::new(MAX_OFFERS),
        offer_peers: HashMap::new(),
        scores: PeerScores::default(),
        banned: HashSet::new(),
        events,
        assigns: HashMap::new(),
        fetches: HashMap::new(),
        ping_failures: HashMap::new(),
        last_heard: HashMap::new(),
        departure_timeout: opts.net.departure_timeout,
        listen: Vec::new(),
        internal: internal_tx,
        agent,
        ledger: opts.ledger.map(LedgerPart::new),
        ledger_waiters: HashMap::new(),
    };
    let wants_listen = !opts.net.listen.is_empty();
    // Wait for the first listen address so callers can hand it out.
    while wants_listen && daemon.listen.is_empty() {
        let ev = daemon.swarm.select_next_some().await;
        daemon.on_swarm(ev);
    }
    tokio::spawn(daemon.run(rx, internal_rx));
    Ok(handle)
}

/// Milliseconds since the Unix epoch (the wire's time unit).
pub(crate) fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// Messages from blocking work back to the loop.
enum Internal {
    BlobServed {
        channel: request_response::ResponseChannel<BlobResponse>,
        response: BlobResponse,
        peer: PeerId,
        id: ContentId,
        complete: bool,
    },
    BlobStored {
        job: u64,
        result: Result<(), String>,
    },
    Executed {
        job: u64,
        result: Result<Box<Executed>, String>,
    },
    Produced(Result<Option<Box<sharegrid_ledger::Block>>, String>),
    LedgerAnswer {
        channel: request_response::ResponseChannel<LedgerResponse>,
        response: LedgerResponse,
    },
    Synced {
        peer: PeerId,
        result: Result<usize, crate::ledger::ApplyError>,
    },
}

enum FetchOwner {
    Job(u64),
    Client(oneshot::Sender<Result<Vec<u8>, FetchFailure>>),
}

struct Job {
    peer: PeerId,
    prepared: Prepared,
    channel: request_response::ResponseChannel<TaskResponse>,
    /// Blobs still being fetched; the task runs when this reaches 0.
    waiting: usize,
}

struct Agent {
    provider: Provider,
    machine: MachineInfo,
    speed: GigafuelPerSec,
    probe: Arc<dyn HostProbe>,
    max_fetch_bytes: u64,
    earnings: Option<crate::jobstore::JobStore>,
    jobs: HashMap<u64, Job>,
    next_job: u64,
    accepting: bool,
    seq: u64,
    published: Option<(Instant, u32)>,
    /// Outputs kept: requestor, until when, and how many tasks produced
    /// them (equal outputs share one blob; it goes when the last is fetched).
    retained: HashMap<ContentId, (PeerId, Instant, u32)>,
    tasks_run: u64,
    internal: mpsc::Sender<Internal>,
}

impl Agent {
    fn new(a: AgentOptions, internal: mpsc::Sender<Internal>) -> Self {
        Agent {
            provider: a.provider,
            machine: a.machine,
            speed: a.speed,
            probe: a.probe,
            max_fetch_bytes: a.max_fetch_bytes,
            earnings: a.earnings,
            jobs: HashMap::new(),
            next_job: 0,
            accepting: true,
            seq: 0,
            published: None,
            retained: HashMap::new(),
            tasks_run: 0,
            internal,
        }
    }

    fn slots(&self) -> u32 {
        self.provider.policy().effective_slots(self.machine.cores)
    }

    fn busy(&self) -> u32 {
        self.jobs.len() as u32
    }

    fn machine_state(&self, me: NodeId) -> MachineState {
        MachineState {
            me,
            busy_slots: self.busy(),
            cores: self.machine.cores,
            host_load_percent: self.probe.host_load_percent(),
            minute_of_day: self.probe.minute_of_day(),
            now_ms: now_ms(),
        }
    }

    /// Free slots to advertise: none while the owner's policy would refuse
    /// everything (not accepting, outside hours, machine busy).
    fn free_slots(&self, me: NodeId) -> u32 {
        let policy = self.provider.policy();
        if !self.accepting || !policy.enabled || policy.paused(&self.machine_state(me)).is_err() {
            return 0;
        }
        self.slots().saturating_sub(self.busy())
    }

    fn offer(&mut self, me: NodeId) -> Offer {
        let p = self.provider.policy();
        let slots = self.slots();
        let memory = p.memory_per_task.saturating_mul(u64::from(slots));
        self.seq = (self.seq + 1).max(now_ms());
        Offer {
            version: WIRE_VERSION,
            provider: me,
            arch: self.machine.arch,
            cores: slots,
            memory_bytes: if self.machine.memory_bytes > 0 {
                memory.min(self.machine.memory_bytes)
            } else {
                memory
            },
            free_slots: self.free_slots(me),
            speed: self.speed,
            price: sharegrid_core::PricePerGfuel(p.price_floor),
            modes: p.modes.clone(),
            software: concat!("sharegrid ", env!("CARGO_PKG_VERSION")).into(),
            seq: self.seq,
            expires_at_ms: now_ms().saturating_add(3 * 1000 * p.offer_interval_secs.max(1)),
        }
    }
}

struct Daemon {
    swarm: Swarm<Behaviour>,
    key: Arc<NodeKey>,
    me: NodeId,
    blobs: BlobStore,
    outputs: BlobStore,
    book: OfferBook,
    offer_peers: HashMap<PeerId, NodeId>,
    scores: PeerScores,
    banned: HashSet<PeerId>,
    events: broadcast::Sender<NodeEvent>,
    assigns: HashMap<request_response::OutboundRequestId, oneshot::Sender<Result<TaskResponse, AssignError>>>,
    fetches: HashMap<request_response::OutboundRequestId, (PeerId, BlobFetch, FetchOwner)>,
    /// Why a peer's connection was closed (ping), kept a while so the
    /// requests that fail with it can say so; purged after a minute.
    ping_failures: HashMap<PeerId, (String, Instant)>,
    /// When each connected peer last answered a ping.
    last_heard: HashMap<PeerId, Instant>,
    departure_timeout: Duration,
    listen: Vec<Multiaddr>,
    internal: mpsc::Sender<Internal>,
    agent: Option<Agent>,
    ledger: Option<LedgerPart>,
    ledger_waiters: HashMap<request_response::OutboundRequestId, LedgerWaiter>,
}

impl Daemon {
    async fn run(mut self, mut commands: mpsc::Receiver<Command>, mut internal: mpsc::Receiver<Internal>) {
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut liveness = tokio::time::interval((self.departure_timeout / 8).max(Duration::from_millis(50)));
        liveness.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let block_tick = self
            .ledger
            .as_ref()
            .map_or(Duration::from_secs(1), |l| l.opts.block_interval)
            .max(Duration::from_millis(10));
        let mut blocks = tokio::time::interval(block_tick);
        blocks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        // Set once shutdown begins: the deadline for running tasks.
        let mut stopping: Option<Instant> = None;
        let mut waiters: Vec<oneshot::Sender<()>> = Vec::new();
        let mut handles_alive = true;
        loop {
            tokio::select! {
                ev = self.swarm.select_next_some() => self.on_swarm(ev),
                cmd = commands.recv(), if handles_alive => match cmd {
                    Some(Command::Shutdown(done)) => {
                        waiters.push(done);
                        if stopping.is_none() {
                            stopping = Some(Instant::now() + self.begin_shutdown());
                        }
                    }
                    Some(cmd) => self.on_command(cmd),
                    // Every handle dropped: nobody can use the node any more.
                    None => {
                        handles_alive = false;
                        if stopping.is_none() {
                            stopping = Some(Instant::now() + self.begin_shutdown());
                        }
                    }
                },
                Some(msg) = internal.recv() => self.on_internal(msg),
                _ = tick.tick() => self.on_tick(),
                _ = liveness.tick() => self.check_liveness(),
                _ = blocks.tick() => self.maybe_produce(),
            }
            if let Some(deadline) = stopping {
                let idle = self.agent.as_ref().is_none_or(|a| a.jobs.is_empty());
                if idle || Instant::now() >= deadline {
                    break;
                }
            }
        }
        if let Some(agent) = &mut self.agent {
            for (_, job) in agent.jobs.drain() {
                let reason = "provider shut down before the task finished".to_string();
                let _ = self
                    .swarm
                    .behaviour_mut()
                    .task
                    .send_response(job.channel, TaskResponse::Refused { reason });
            }
        }
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
        for done in waiters {
            let _ = done.send(());
        }
    }

    fn emit(&self, ev: NodeEvent) {
        let _ = self.events.send(ev);
    }

    fn begin_shutdown(&mut self) -> Duration {
        let Some(agent) = &mut self.agent else {
            return Duration::ZERO;
        };
        agent.accepting = false;
        let grace = Duration::from_secs(agent.provider.policy().shutdown_grace_secs);
        tracing::info!(
            running = agent.jobs.len(),
            ?grace,
            "shutting down: no new work accepted"
        );
        self.publish_offer();
        grace
    }

    fn misbehaved(&mut self, peer: PeerId, what: Misbehaviour, why: String) {
        let action = self.scores.record(peer, what);
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
                let offers = self.book.live(now_ms()).into_iter().cloned().collect();
                let _ = tx.send(offers);
            }
            Command::Assign {
                provider,
                signed,
                reply,
            } => {
                let id = self
                    .swarm
                    .behaviour_mut()
                    .task
                    .send_request(&provider, TaskRequest { assignment: signed }.into());
                self.assigns.insert(id, reply);
            }
            Command::Fetch { peer, id, max, reply } => {
                let f = BlobFetch::new(id, max);
                let req = self.swarm.behaviour_mut().blob.send_request(&peer, f.first().into());
                self.fetches.insert(req, (peer, f, FetchOwner::Client(reply)));
            }
            Command::Status(tx) => {
                let _ = tx.send(self.status());
            }
            Command::Ledger { peer, request, reply } => self.ledger_request(peer, request, reply),
            Command::Shutdown(_) => unreachable!("handled in the loop"),
        }
    }

    fn status(&self) -> NodeStatus {
        NodeStatus {
            id: self.me,
            peer_id: self.swarm.local_peer_id().to_string(),
            listen: self.listen.iter().map(|a| a.to_string()).collect(),
            peers: self.swarm.connected_peers().count(),
            offers: self.book.live(now_ms()).len(),
            provider: self.agent.as_ref().map(|a| AgentStatus {
                slots: a.slots(),
                busy: a.busy(),
                accepting: a.accepting,
                speed_gfuel_per_sec: a.speed.0,
                tasks_run: a.tasks_run,
                outputs_retained: a.retained.len(),
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
                let l = &p.opts.ledger;
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

    fn on_tick(&mut self) {
        let now = Instant::now();
        self.book.expire(now_ms());
        self.ping_failures
            .retain(|_, (_, at)| now.duration_since(*at) < Duration::from_secs(60));
        let me = self.me;
        let Some(agent) = &mut self.agent else { return };
        let interval = Duration::from_secs(agent.provider.policy().offer_interval_secs.max(1));
        let due = match agent.published {
            None => true,
            Some((at, free)) => now >= at + interval || free != agent.free_slots(me),
        };
        // Outputs past their retention time.
        let expired: Vec<ContentId> = agent
            .retained
            .iter()
            .filter(|(_, (_, until, _))| *until <= now)
            .map(|(id, _)| *id)
            .collect();
        for id in expired {
            agent.retained.remove(&id);
            let outputs = self.outputs.clone();
            tokio::task::spawn_blocking(move || outputs.remove(&id));
        }
        if due {
            self.publish_offer();
        }
    }

    /// Closes connections to peers that answered no ping within the
    /// departure timeout.
    fn check_liveness(&mut self) {
        let now = Instant::now();
        let silent: Vec<PeerId> = self
            .last_heard
            .iter()
            .filter(|(_, at)| now.duration_since(**at) > self.departure_timeout)
            .map(|(p, _)| *p)
            .collect();
        for peer in silent {
            self.last_heard.remove(&peer);
            let why = format!("no answer to ping for {:?} (departure timeout)", self.departure_timeout);
            tracing::info!(%peer, "{why}: closing its connections");
            self.ping_failures.insert(peer, (why, now));
            let _ = self.swarm.disconnect_peer_id(peer);
        }
    }

    fn publish_offer(&mut self) {
        let me = self.me;
        let Some(agent) = &mut self.agent else { return };
        if !agent.provider.policy().enabled {
            return;
        }
        let offer = agent.offer(me);
        let bytes = match Signed::sign(&self.key, &offer).and_then(|s| encode(&s)) {
            Ok(b) => b,
            Err(e) => {
                tracing::error!(error = %e, "cannot sign the offer");
                return;
            }
        };
        match self
            .swarm
            .behaviour_mut()
            .gossipsub
            .publish(gossipsub::IdentTopic::new(OFFERS_TOPIC), bytes)
        {
            Ok(_) => {
                agent.published = Some((Instant::now(), offer.free_slots));
                tracing::debug!(free = offer.free_slots, seq = offer.seq, "offer published");
            }
            // No peer yet: the next tick tries again.
            Err(e) => tracing::debug!(error = %e, "offer not published"),
        }
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
            } => {
                self.ping_failures.remove(&peer_id);
                self.last_heard.entry(peer_id).or_insert_with(Instant::now);
                if self.banned.contains(&peer_id) {
                    self.swarm.close_connection(connection_id);
                } else if num_established.get() == 1 {
                    tracing::debug!(%peer_id, "connected");
                    self.emit(NodeEvent::Connected(peer_id));
                    self.ask_head(peer_id);
                }
            }
            SwarmEvent::ConnectionClosed {
                peer_id,
                num_established: 0,
                cause,
                ..
            } => {
                // Kept until the peer reconnects: requests failing with this
                // connection are reported after this event.
                let why = self
                    .ping_failures
                    .get(&peer_id)
                    .map(|(why, _)| why.clone())
                    .or_else(|| cause.map(|c| c.to_string()))
                    .unwrap_or_else(|| "connection closed".into());
                self.last_heard.remove(&peer_id);
                tracing::info!(%peer_id, %why, "peer gone");
                if let Some(node) = self.offer_peers.remove(&peer_id) {
                    self.book.remove(&node);
                }
                self.emit(NodeEvent::PeerGone { peer: peer_id, why });
            }
            SwarmEvent::Behaviour(ev) => self.on_behaviour(ev),
            _ => {}
        }
    }

    fn on_behaviour(&mut self, ev: BehaviourEvent) {
        match ev {
            BehaviourEvent::Gossipsub(gossipsub::Event::Message {
                propagation_source,
                message_id,
                message,
            }) => {
                if message.topic == gossipsub::IdentTopic::new(BLOCKS_TOPIC).hash() {
                    // Fetch from the producer itself where known: a relay
                    // may not have the blocks yet.
                    let from = message.source.unwrap_or(propagation_source);
                    self.on_block_announced(propagation_source, from, message_id, &message.data);
                } else {
                    self.on_offer(propagation_source, message_id, message);
                }
            }
            BehaviourEvent::Ping(ping::Event {
                peer, result: Ok(_), ..
            }) if self.swarm.is_connected(&peer) => {
                self.last_heard.insert(peer, Instant::now());
            }
            BehaviourEvent::Ping(ping::Event {
                peer,
                connection,
                result: Err(e),
            }) => {
                tracing::info!(%peer, error = %e, "ping failed: closing the connection");
                self.ping_failures
                    .insert(peer, (format!("ping failed ({e})"), Instant::now()));
                self.swarm.close_connection(connection);
            }
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

    fn on_offer(&mut self, from: PeerId, id: gossipsub::MessageId, message: gossipsub::Message) {
        let verdict = match self.book.accept(&message.data, message.source, now_ms()) {
            Ok(offer) => {
                if let Some(p) = peer_id(&offer.provider) {
                    self.offer_peers.insert(p, offer.provider);
                }
                self.emit(NodeEvent::OfferSeen(Box::new(offer)));
                gossipsub::MessageAcceptance::Accept
            }
            Err(rejection) if rejection.is_misbehaviour() => {
                let what = match &rejection {
                    OfferRejection::Invalid(e) => Misbehaviour::of_wire(e),
                    _ => Misbehaviour::BadSignature,
                };
                self.misbehaved(from, what, rejection.to_string());
                gossipsub::MessageAcceptance::Reject
            }
            Err(rejection) => {
                tracing::debug!(%from, "offer ignored: {rejection}");
                gossipsub::MessageAcceptance::Ignore
            }
        };
        self.swarm
            .behaviour_mut()
            .gossipsub
            .report_message_validation_result(&id, &from, verdict);
    }

    /// An inbound request that failed after it was read. Bad bytes never
    /// end here (the codec turns them into `Incoming::Refused`, counted
    /// where they are answered): this is the connection failing, no one's
    /// misbehaviour.
    fn inbound_failure(&mut self, peer: PeerId, protocol: &str, error: request_response::InboundFailure) {
        tracing::debug!(%peer, %protocol, "inbound request failed: {error}");
    }

    fn on_task(&mut self, ev: request_response::Event<Incoming<TaskRequest>, TaskResponse>) {
        use request_response::{Event, Message, OutboundFailure};
        match ev {
            Event::Message {
                peer,
                message: Message::Request { request, channel, .. },
                ..
            } => match request {
                Incoming::Request(r) => self.on_assignment(peer, r.assignment, channel),
                Incoming::Refused(e) => {
                    self.misbehaved(peer, Misbehaviour::of_wire(&e), format!("task request: {e}"));
                    self.refuse(peer, channel, Refusal::Invalid { why: e.to_string() }.to_string());
                }
            },
            Event::Message {
                message: Message::Response { request_id, response },
                ..
            } => {
                if let Some(reply) = self.assigns.remove(&request_id) {
                    let _ = reply.send(Ok(response));
                }
            }
            Event::OutboundFailure {
                peer,
                request_id,
                error,
                ..
            } => {
                let mut bad_response = None;
                let err = match &error {
                    OutboundFailure::Timeout => AssignError::Timeout,
                    OutboundFailure::DialFailure => AssignError::Unreachable(format!("cannot dial {peer}")),
                    OutboundFailure::ConnectionClosed => AssignError::PeerGone(
                        self.ping_failures
                            .get(&peer)
                            .map_or_else(|| "connection closed".into(), |(why, _)| why.clone()),
                    ),
                    OutboundFailure::UnsupportedProtocols => {
                        AssignError::Unreachable("peer does not speak the task protocol".into())
                    }
                    OutboundFailure::Io(e) => match wire_error(e) {
                        Some(w) => {
                            bad_response = Some(Misbehaviour::of_wire(w));
                            AssignError::BadReceipt(w.to_string())
                        }
                        None => AssignError::PeerGone(e.to_string()),
                    },
                };
                if let Some(what) = bad_response {
                    self.misbehaved(peer, what, format!("task response: {err}"));
                }
                if let Some(reply) = self.assigns.remove(&request_id) {
                    let _ = reply.send(Err(err));
                }
            }
            Event::InboundFailure { peer, error, .. } => self.inbound_failure(peer, "task", error),
            Event::ResponseSent { .. } => {}
        }
    }

    fn refuse(&mut self, peer: PeerId, channel: request_response::ResponseChannel<TaskResponse>, reason: String) {
        tracing::info!(%peer, "assignment refused: {reason}");
        let _ = self
            .swarm
            .behaviour_mut()
            .task
            .send_response(channel, TaskResponse::Refused { reason: reason.clone() });
        self.emit(NodeEvent::Refused { peer, reason });
    }

    fn on_assignment(
        &mut self,
        peer: PeerId,
        signed: Signed,
        channel: request_response::ResponseChannel<TaskResponse>,
    ) {
        // Every bad assignment is counted, even from a peer already backed off from.
        let assignment: Assignment = match signed.open(MAX_ASSIGNMENT_BYTES) {
            Ok(a) => a,
            Err(e) => {
                self.misbehaved(peer, Misbehaviour::of_wire(&e), format!("assignment: {e}"));
                return self.refuse(peer, channel, Refusal::Invalid { why: e.to_string() }.to_string());
            }
        };
        if peer_id(&assignment.requestor) != Some(peer) {
            let why = "assignment is signed by another node than the one sending it".to_string();
            self.misbehaved(peer, Misbehaviour::BadSignature, why.clone());
            return self.refuse(peer, channel, Refusal::Invalid { why }.to_string());
        }
        if self.scores.action(&peer) != PeerAction::Ignore {
            return self.refuse(
                peer,
                channel,
                "too much invalid input from this peer; backing off".into(),
            );
        }
        let me = self.me;
        let Some(agent) = &mut self.agent else {
            return self.refuse(peer, channel, Refusal::NotProviding.to_string());
        };
        if !agent.accepting {
            return self.refuse(peer, channel, "provider is shutting down".into());
        }
        let machine = agent.machine_state(me);
        let prepared = match agent.provider.prepare_opened(&signed, assignment, &machine) {
            Ok(p) => p,
            Err(refusal) => return self.refuse(peer, channel, refusal.to_string()),
        };
        let job = agent.next_job;
        agent.next_job += 1;
        let missing = prepared.missing.clone();
        tracing::info!(%peer, task = %prepared.assignment.task, fetch = missing.len(), "assignment accepted");
        agent.jobs.insert(
            job,
            Job {
                peer,
                prepared,
                channel,
                waiting: missing.len(),
            },
        );
        let max = agent.max_fetch_bytes;
        if missing.is_empty() {
            self.execute(job);
        }
        for id in missing {
            let f = BlobFetch::new(id, max);
            let req = self.swarm.behaviour_mut().blob.send_request(&peer, f.first().into());
            self.fetches.insert(req, (peer, f, FetchOwner::Job(job)));
        }
    }

    fn execute(&mut self, job: u64) {
        let Some(agent) = &mut self.agent else { return };
        let Some(j) = agent.jobs.get(&job) else { return };
        let (provider, prepared, outputs, tx) = (
            agent.provider.clone(),
            j.prepared.clone(),
            self.outputs.clone(),
            agent.internal.clone(),
        );
        tokio::task::spawn_blocking(move || {
            let result = provider.execute(&prepared).map_err(|e| e.to_string()).and_then(|ex| {
                if !matches!(ex.report.result.outcome, Outcome::InvalidModule { .. }) {
                    // Kept for the requestor, named by the result hash.
                    outputs
                        .put(&ex.report.result.encode())
                        .map_err(|e| format!("cannot keep the outputs: {e}"))?;
                }
                Ok(Box::new(ex))
            });
            let _ = tx.blocking_send(Internal::Executed { job, result });
        });
    }

    fn fail_job(&mut self, job: u64, reason: String) {
        let Some(agent) = &mut self.agent else { return };
        if let Some(j) = agent.jobs.remove(&job) {
            self.refuse(j.peer, j.channel, reason);
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
            } => {
                let _ = self.swarm.behaviour_mut().blob.send_response(channel, response);
                // Outputs go once their requestor has all of them.
                if let Some(agent) = &mut self.agent
                    && complete
                    && let Some((p, _, count)) = agent.retained.get_mut(&id)
                    && *p == peer
                {
                    *count -= 1;
                    if *count == 0 {
                        agent.retained.remove(&id);
                        let outputs = self.outputs.clone();
                        tokio::task::spawn_blocking(move || outputs.remove(&id));
                    }
                }
            }
            Internal::BlobStored { job, result } => match result {
                Err(e) => self.fail_job(job, format!("provider cannot store an input: {e}")),
                Ok(()) => {
                    let Some(agent) = &mut self.agent else { return };
                    let Some(j) = agent.jobs.get_mut(&job) else { return };
                    j.waiting -= 1;
                    if j.waiting == 0 {
                        self.execute(job);
                    }
                }
            },
            Internal::Executed { job, result } => {
                let Some(agent) = &mut self.agent else { return };
                let Some(j) = agent.jobs.remove(&job) else { return };
                let channel = j.channel;
                match result {
                    Err(e) => self.refuse(j.peer, channel, format!("provider failed to run the task: {e}")),
                    Ok(ex) => {
                        if let Outcome::InvalidModule { reason } = &ex.report.result.outcome {
                            let why = format!("invalid module {}: {reason}", j.prepared.assignment.module);
                            self.misbehaved(j.peer, Misbehaviour::InvalidModule, why.clone());
                            return self.refuse(j.peer, channel, why);
                        }
                        let retention = Duration::from_secs(agent.provider.policy().output_retention_secs);
                        let id = ContentId::from_bytes(*ex.report.result_hash.as_bytes());
                        let entry = agent.retained.entry(id).or_insert((j.peer, Instant::now(), 0));
                        *entry = (j.peer, Instant::now() + retention, entry.2 + 1);
                        agent.tasks_run += 1;
                        if let (Some(store), Some(escrow)) = (&agent.earnings, &j.prepared.assignment.escrow) {
                            // On disk before the receipt leaves: one small
                            // SQLite write, only for escrowed work.
                            let task = j.prepared.assignment.task;
                            if let Err(e) = store.earned(escrow, &task, &j.prepared.signed, &ex.receipt) {
                                tracing::error!(%task, "cannot keep the proof of work for a claim: {e}");
                            }
                        }
                        let _ = self
                            .swarm
                            .behaviour_mut()
                            .task
                            .send_response(channel, TaskResponse::Receipt(ex.receipt));
                        self.emit(NodeEvent::Ran {
                            task: j.prepared.assignment.task,
                            outcome: ex.report.result.outcome,
                        });
                    }
                }
            }
            Internal::Produced(result) => self.on_produced(result),
            Internal::LedgerAnswer { channel, response } => {
                let _ = self.swarm.behaviour_mut().ledger.send_response(channel, response);
            }
            Internal::Synced { peer, result } => self.on_synced(peer, result),
        }
    }

    fn on_blob(&mut self, ev: request_response::Event<Incoming<BlobRequest>, BlobResponse>) {
        use request_response::{Event, Message};
        match ev {
            Event::Message {
                peer,
                message: Message::Request { request, channel, .. },
                ..
            } => {
                let request = match request {
                    Incoming::Request(r) => r,
                    Incoming::Refused(e) => {
                        self.misbehaved(peer, Misbehaviour::of_wire(&e), format!("blob request: {e}"));
                        let _ = self
                            .swarm
                            .behaviour_mut()
                            .blob
                            .send_response(channel, BlobResponse::NotFound);
                        return;
                    }
                };
                let (outputs, blobs, tx) = (self.outputs.clone(), self.blobs.clone(), self.internal.clone());
                tokio::task::spawn_blocking(move || {
                    let len = request.len.min(sharegrid_net::MAX_CHUNK_BYTES);
                    let read = |s: &BlobStore| s.read_chunk(&request.id, request.offset, len).ok().flatten();
                    let (response, complete) = match read(&outputs).or_else(|| read(&blobs)) {
                        Some((data, total)) => {
                            let complete = request.offset + data.len() as u64 >= total;
                            (BlobResponse::Chunk { data, total }, complete)
                        }
                        None => (BlobResponse::NotFound, false),
                    };
                    let _ = tx.blocking_send(Internal::BlobServed {
                        channel,
                        response,
                        peer,
                        id: request.id,
                        complete,
                    });
                });
            }
            Event::Message {
                message: Message::Response { request_id, response },
                ..
            } => {
                let Some((peer, mut fetch, owner)) = self.fetches.remove(&request_id) else {
                    return;
                };
                match fetch.on_response(response) {
                    Ok(FetchStep::Next(req)) => {
                        let id = self.swarm.behaviour_mut().blob.send_request(&peer, req.into());
                        self.fetches.insert(id, (peer, fetch, owner));
                    }
                    Ok(FetchStep::Done(bytes)) => self.fetched(owner, Ok(bytes)),
                    Err(e) => {
                        if e.is_misbehaviour() {
                            let what = match e {
                                FetchError::TooLarge { .. } => Misbehaviour::Oversized,
                                _ => Misbehaviour::BadBlob,
                            };
                            self.misbehaved(peer, what, format!("blob: {e}"));
                        }
                        self.fetched(owner, Err(FetchFailure::Bad(e)));
                    }
                }
            }
            Event::OutboundFailure {
                peer,
                request_id,
                error,
                ..
            } => {
                if let request_response::OutboundFailure::Io(e) = &error
                    && let Some(w) = wire_error(e)
                {
                    self.misbehaved(peer, Misbehaviour::of_wire(w), format!("blob response: {w}"));
                }
                if let Some((_, _, owner)) = self.fetches.remove(&request_id) {
                    self.fetched(owner, Err(FetchFailure::Request(error.to_string())));
                }
            }
            Event::InboundFailure { peer, error, .. } => self.inbound_failure(peer, "blob", error),
            Event::ResponseSent { .. } => {}
        }
    }

    fn fetched(&mut self, owner: FetchOwner, result: Result<Vec<u8>, FetchFailure>) {
        match owner {
            FetchOwner::Client(reply) => {
                let _ = reply.send(result);
            }
            FetchOwner::Job(job) => match result {
                Err(e) => self.fail_job(job, format!("could not fetch an input from the requestor: {e}")),
                Ok(bytes) => {
                    let (blobs, tx) = (self.blobs.clone(), self.internal.clone());
                    tokio::task::spawn_blocking(move || {
                        let result = blobs.put(&bytes).map(|_| ()).map_err(|e| e.to_string());
                        let _ = tx.blocking_send(Internal::BlobStored { job, result });
                    });
                }
            },
        }
    }
}
