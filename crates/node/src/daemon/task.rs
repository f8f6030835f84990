//! The task protocol (`/sharegrid/task/1`) and the provider agent's shell.
//!
//! Inbound: an assignment goes to the [`Agent`] machine, which decides;
//! this file carries out its actions — answers on the request's channel,
//! blob fetches, runs on the blocking pool, proofs of work kept before the
//! receipt leaves, offers gossiped. Outbound: a requestor's signed
//! assignment goes out and its answer (or the failure) back to the caller.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

use sharegrid_core::{GigafuelPerSec, NodeKey, Signed};
use sharegrid_net::{
    Incoming, Misbehaviour, PeerAction, PeerId, Protocol, TaskRequest, TaskResponse, request_response,
};
use sharegrid_sandbox::Cancel;
use tokio::sync::oneshot;

use super::{Daemon, FetchOwner, Internal, NodeEvent, RequestFailure, now_ms};
use crate::machine::{HostProbe, MachineInfo};
use crate::payment::ProofStore;
use crate::provider::{
    Agent, AgentAction, AgentInput, AgentSettings, HostSample, Provider, ProviderPolicy, Refusal, Reply, RunId,
};

/// How long after an assignment's expiry its provider may still fetch the
/// blobs it names (a slow fetch of large inputs).
const BLOB_GRANT_MS: u64 = 30 * 60 * 1000;

/// The provider agent's setup.
#[derive(Debug)]
pub struct AgentOptions {
    /// The owner's policy.
    pub policy: ProviderPolicy,
    /// Runs admitted tasks (sandbox, input and output stores).
    pub provider: Provider,
    /// The machine, detected at start.
    pub machine: MachineInfo,
    /// Measured speed (the cached node benchmark).
    pub speed: GigafuelPerSec,
    /// Host load and local time.
    pub probe: Arc<dyn HostProbe>,
    /// Largest blob fetched for a task.
    pub max_fetch_bytes: u64,
    /// Where to keep the proof of each task run for an escrowed job, to
    /// claim the pay if its requestor does not settle. None: not kept.
    pub proofs: Option<ProofStore>,
}

pub(super) struct AgentPart {
    pub(super) agent: Agent,
    provider: Provider,
    probe: Arc<dyn HostProbe>,
    max_fetch_bytes: u64,
    proofs: Option<ProofStore>,
    /// The reply channel of each admitted run.
    channels: HashMap<RunId, (PeerId, Answer)>,
    /// How to stop each run in the sandbox.
    cancels: HashMap<RunId, Cancel>,
}

/// Where an assignment's answer goes: back over the network, or — for an
/// assignment from this node's own requestor — straight to its caller.
pub(super) enum Answer {
    Net(request_response::ResponseChannel<TaskResponse>),
    Local(oneshot::Sender<Result<TaskResponse, RequestFailure>>),
}

impl AgentPart {
    pub(super) fn new(a: AgentOptions, key: Arc<NodeKey>) -> Self {
        let settings = AgentSettings {
            policy: a.policy,
            machine: a.machine,
            speed: a.speed,
            software: concat!("sharegrid ", env!("CARGO_PKG_VERSION")).into(),
        };
        AgentPart {
            agent: Agent::new(key, settings),
            provider: a.provider,
            probe: a.probe,
            max_fetch_bytes: a.max_fetch_bytes,
            proofs: a.proofs,
            channels: HashMap::new(),
            cancels: HashMap::new(),
        }
    }

    fn host(&self) -> HostSample {
        HostSample {
            host_load_percent: self.probe.host_load_percent(),
            minute_of_day: self.probe.minute_of_day(),
        }
    }

    /// The store a run's inputs are read from.
    pub(super) fn provider_blobs(&self) -> &crate::blobs::BlobStore {
        self.provider.blobs()
    }

    /// The store outputs are kept in (served to requestors).
    pub(super) fn outputs(&self) -> &crate::blobs::BlobStore {
        self.provider.outputs()
    }
}

impl Daemon {
    pub(super) fn on_task(&mut self, ev: request_response::Event<Incoming<TaskRequest>, TaskResponse>) {
        use request_response::{Event, Message};
        match ev {
            Event::Message {
                peer,
                message: Message::Request { request, channel, .. },
                ..
            } => match request {
                Incoming::Request(_) if !self.within_rate(peer, Protocol::Task) => {
                    let (_, per_sec) = Protocol::Task.rate();
                    let reason = format!("rate limited: over {per_sec} task requests a second from this peer");
                    self.answer(peer, Answer::Net(channel), TaskResponse::Refused { reason });
                }
                Incoming::Request(r) => self.on_assignment(peer, r.assignment, Answer::Net(channel)),
                Incoming::Refused(e) => {
                    self.misbehaved(peer, Misbehaviour::of_wire(&e), format!("task request: {e}"));
                    let reason = Refusal::Invalid { why: e.to_string() }.to_string();
                    self.answer(peer, Answer::Net(channel), TaskResponse::Refused { reason });
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
                let failure = self.outbound_failed("task", peer, &error);
                if let Some(reply) = self.assigns.remove(&request_id) {
                    let _ = reply.send(Err(failure));
                }
            }
            Event::InboundFailure { peer, error, .. } => self.inbound_failure(peer, "task", error),
            Event::ResponseSent { .. } => {}
        }
    }

    /// Sends a requestor's signed assignment to `provider`; to this node's
    /// own agent without the network when `provider` is this node.
    pub(super) fn send_assignment(
        &mut self,
        provider: PeerId,
        signed: Signed,
        (blobs, expires_at_ms): (Vec<sharegrid_core::ContentId>, u64),
        reply: oneshot::Sender<Result<TaskResponse, RequestFailure>>,
    ) {
        let me = *self.swarm.local_peer_id();
        if provider == me {
            return self.on_assignment(me, signed, Answer::Local(reply));
        }
        // The provider may fetch this assignment's blobs from us — and no
        // one else may fetch ours.
        let until = expires_at_ms.saturating_add(BLOB_GRANT_MS);
        for blob in blobs {
            let t = self.grants.entry((provider, blob)).or_insert(until);
            *t = (*t).max(until);
        }
        let id = self
            .swarm
            .behaviour_mut()
            .task
            .send_request(&provider, TaskRequest { assignment: signed }.into());
        self.assigns.insert(id, reply);
    }

    fn answer(&mut self, peer: PeerId, answer: Answer, r: TaskResponse) {
        if let TaskResponse::Refused { reason } = &r {
            tracing::info!(%peer, "assignment refused: {reason}");
            self.metrics.assignments_refused.inc();
            self.emit(NodeEvent::Refused {
                peer,
                reason: reason.clone(),
            });
        }
        match answer {
            Answer::Net(channel) => {
                let _ = self.swarm.behaviour_mut().task.send_response(channel, r);
            }
            Answer::Local(reply) => {
                let _ = reply.send(Ok(r));
            }
        }
    }

    fn on_assignment(&mut self, peer: PeerId, signed: Signed, channel: Answer) {
        if self.agent.is_none() {
            let reason = Refusal::NotProviding.to_string();
            return self.answer(peer, channel, TaskResponse::Refused { reason });
        }
        let backed_off = peer != *self.swarm.local_peer_id() && self.scores.action(&peer) != PeerAction::Ignore;
        let input = AgentInput::Assignment {
            peer,
            signed,
            backed_off,
        };
        self.agent_input(input, Some((peer, channel)));
    }

    /// Feeds the agent `first`, and carries out its actions (and the inputs
    /// they give back at once, in order). `incoming` is the reply channel
    /// of the assignment in `first`, if that is one.
    pub(super) fn agent_input(&mut self, first: AgentInput, mut incoming: Option<(PeerId, Answer)>) {
        let mut inputs = VecDeque::from([first]);
        while let Some(input) = inputs.pop_front() {
            let Some(part) = &mut self.agent else { return };
            if let AgentInput::Ran { run, .. } = &input {
                part.cancels.remove(run);
            }
            let host = part.host();
            let actions = part.agent.handle(input, host, now_ms());
            for action in actions {
                self.agent_action(action, &mut incoming, &mut inputs);
            }
            if let Some(part) = &self.agent {
                self.metrics.runs_in_flight.set(i64::from(part.agent.busy()));
            }
        }
    }

    fn agent_action(
        &mut self,
        action: AgentAction,
        incoming: &mut Option<(PeerId, Answer)>,
        inputs: &mut VecDeque<AgentInput>,
    ) {
        let Some(part) = &mut self.agent else { return };
        match action {
            AgentAction::Refuse { reply, reason, peer } => {
                let channel = match reply {
                    Reply::Incoming => incoming.take().map(|(_, c)| c),
                    Reply::Run(run) => part.channels.remove(&run).map(|(_, c)| c),
                };
                if let Some(channel) = channel {
                    self.answer(peer, channel, TaskResponse::Refused { reason });
                }
            }
            AgentAction::Admitted { run, task, peer } => {
                tracing::info!(%peer, %task, %run, "assignment accepted");
                if let Some((p, channel)) = incoming.take() {
                    part.channels.insert(run, (p, channel));
                }
                self.emit(NodeEvent::Admitted { task });
            }
            AgentAction::Fetch { run, peer, blob } => {
                if part.provider.blobs().has(&blob) {
                    part.provider.blobs().touch(&blob);
                    inputs.push_back(AgentInput::BlobReady { run });
                } else {
                    let max = part.max_fetch_bytes;
                    self.fetch(peer, blob, max, FetchOwner::Run(run));
                }
            }
            AgentAction::CheckEscrow { run, assignment } => self.check_escrow(run, assignment),
            AgentAction::Cancel { run } => {
                if let Some(cancel) = part.cancels.remove(&run) {
                    cancel.cancel();
                }
            }
            AgentAction::Execute { run, prepared } => {
                let provider = part.provider.clone();
                let cancel = Cancel::default();
                part.cancels.insert(run, cancel.clone());
                let span = tracing::info_span!("run", %run, task = %prepared.assignment.task);
                self.blocking(move || {
                    let _span = span.entered();
                    let result = provider.execute(&prepared, &cancel);
                    Internal::Agent(AgentInput::Ran { run, result })
                });
            }
            AgentAction::KeepProof { run, proof } => match part.proofs.clone() {
                Some(store) => self.blocking(move || {
                    if let Err(e) = store.keep(&proof) {
                        // The receipt still leaves: the requestor settles;
                        // only a claim without it is lost.
                        tracing::error!(task = %proof.task, "cannot keep the proof of work for a claim: {e}");
                    }
                    Internal::Agent(AgentInput::ProofKept { run })
                }),
                None => inputs.push_back(AgentInput::ProofKept { run }),
            },
            AgentAction::Deliver {
                run,
                receipt,
                task,
                outcome,
                fuel,
            } => {
                if let Some((peer, channel)) = part.channels.remove(&run) {
                    self.metrics.task_run(&outcome, fuel);
                    self.answer(peer, channel, TaskResponse::Receipt(receipt));
                }
                self.emit(NodeEvent::Ran { task, outcome });
                self.shrink_inputs();
            }
            AgentAction::DropOutput(id) => {
                let outputs = part.outputs().clone();
                tokio::task::spawn_blocking(move || outputs.remove(&id));
                self.emit(NodeEvent::OutputDropped(id));
            }
            AgentAction::Publish { offer, signed } => {
                // This node's own jobs may run here: they see it as any offer.
                self.own_offer = Some((*offer).clone());
                self.emit(NodeEvent::OfferSeen(offer));
                if !self.publish_offer(&signed) {
                    inputs.push_back(AgentInput::PublishFailed);
                }
            }
            AgentAction::Misbehaved { peer, what, why } => self.misbehaved(peer, what, why),
        }
    }

    /// Keeps the store of fetched inputs within the owner's bound, off the
    /// loop: the least recently used go, never a running task's.
    fn shrink_inputs(&mut self) {
        let Some(part) = &self.agent else { return };
        let (store, keep) = (part.provider_blobs().clone(), part.agent.blobs_in_use());
        let max = part.agent.policy().max_input_store_bytes;
        self.blocking(move || {
            let (removed, held_bytes) = store.shrink_to(max, &keep);
            if removed > 0 {
                tracing::info!(removed, held_bytes, "least recently used inputs removed");
            }
            Internal::InputsShrunk { removed, held_bytes }
        });
    }
}
