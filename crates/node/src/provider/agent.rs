//! The provider agent as a state machine: what a provider does with the
//! assignments it receives, with no I/O and no clock. The daemon (or the
//! simulation) feeds it [`AgentInput`]s with the time and the host's state,
//! and carries out the [`AgentAction`]s it returns: answer a request, fetch
//! a blob, run a task, deliver a receipt, publish an offer, drop an output.
//!
//! An assignment's life here: opened (signature, signer = the sending peer,
//! size) → admitted by the owner's [`ProviderPolicy`] → a [`RunId`] and a
//! slot (for a stranger's task, only once the ledger shows its escrow holds
//! what the run may cost: nothing is fetched before, and a run whose escrow
//! can no longer pay is cancelled) → its blobs fetched (the shell skips
//! those it holds) → run → a receipt made and signed ([`Receipt::for_run`]) → delivered, after the
//! proof of work is kept when an escrow pays for it. Every refusal names
//! its reason.
//!
//! The agent also re-publishes its signed offer every `offer_interval_secs`
//! and at the first tick after its free slots change, keeps each run's outputs until its
//! requestor has fetched them (or the retention time passes), and on
//! shutdown stops accepting, withdraws its free slots and refuses what is
//! still running when the grace period ends.
//!
//! Never does: run a task that was not admitted, hold more runs than its
//! slots, or sign a receipt that does not answer its assignment.

use std::collections::BTreeMap;
use std::sync::Arc;

use sharegrid_core::{
    Amount, Assignment, ContentId, Fuel, GigafuelPerSec, NodeId, NodeKey, Offer, Outcome, PricePerGfuel, Receipt,
    Signed, WIRE_VERSION,
};
use sharegrid_net::{MAX_ASSIGNMENT_BYTES, Misbehaviour, PeerId, peer_id};

use super::policy::{MachineState, ProviderPolicy, Refusal};
use super::vocab::{AgentAction, AgentInput, HostSample, Prepared, Proof, Reply, RunId, RunOutput};
use crate::machine::MachineInfo;

/// The agent's fixed settings.
#[derive(Clone, Debug)]
pub struct AgentSettings {
    /// The owner's policy.
    pub policy: ProviderPolicy,
    /// The machine.
    pub machine: MachineInfo,
    /// Measured speed, advertised in offers.
    pub speed: GigafuelPerSec,
    /// The software version advertised in offers.
    pub software: String,
}

#[derive(Debug)]
struct Run {
    peer: PeerId,
    prepared: Prepared,
    /// Blobs not yet in the store.
    waiting: usize,
    /// Paid from an escrow the ledger must show can pay (see
    /// [`ProviderPolicy::needs_escrow`]).
    escrowed: bool,
    /// The ledger showed it can (or no escrow is needed).
    funded: bool,
    /// The receipt, once made, waiting for its proof to be kept.
    receipt: Option<(Signed, Outcome, Fuel)>,
}

#[derive(Debug)]
struct Retained {
    requestor: PeerId,
    until_ms: u64,
    /// Runs that produced this output (equal outputs share one blob; it
    /// goes when the last is fetched).
    count: u32,
}

/// The provider agent. See the module docs.
#[derive(Debug)]
pub struct Agent {
    key: Arc<NodeKey>,
    settings: AgentSettings,
    runs: BTreeMap<RunId, Run>,
    next_run: u64,
    accepting: bool,
    seq: u64,
    /// When the offer was last published, and the free slots it advertised.
    published: Option<(u64, u32)>,
    retained: BTreeMap<ContentId, Retained>,
    tasks_run: u64,
    stake: Amount,
}

impl Agent {
    /// An agent signing as `key`.
    pub fn new(key: Arc<NodeKey>, settings: AgentSettings) -> Self {
        Agent {
            key,
            settings,
            runs: BTreeMap::new(),
            next_run: 0,
            accepting: true,
            seq: 0,
            published: None,
            retained: BTreeMap::new(),
            tasks_run: 0,
            stake: Amount(0),
        }
    }

    /// The owner's policy.
    pub fn policy(&self) -> &ProviderPolicy {
        &self.settings.policy
    }

    /// Task slots.
    pub fn slots(&self) -> u32 {
        self.settings.policy.effective_slots(self.settings.machine.cores)
    }

    /// The blobs the runs in flight need (kept when the input store shrinks).
    pub fn blobs_in_use(&self) -> std::collections::HashSet<ContentId> {
        self.runs.values().flat_map(|r| r.prepared.blobs()).collect()
    }

    /// Slots in use (fetching, running or delivering). An assignment
    /// waiting for the ledger to show its escrow holds none, so assignments
    /// naming escrows that never come cannot pin the slots.
    pub fn busy(&self) -> u32 {
        self.runs.values().filter(|r| r.funded).count() as u32
    }

    /// Assignments waiting for the ledger to show their escrow.
    pub fn awaiting_escrow(&self) -> u32 {
        self.runs.values().filter(|r| !r.funded).count() as u32
    }

    /// Whether new work is accepted.
    pub fn accepting(&self) -> bool {
        self.accepting
    }

    /// Runs that ended with a receipt since start.
    pub fn tasks_run(&self) -> u64 {
        self.tasks_run
    }

    /// Outputs kept for requestors.
    pub fn outputs_retained(&self) -> usize {
        self.retained.len()
    }

    /// The advertised speed.
    pub fn speed(&self) -> GigafuelPerSec {
        self.settings.speed
    }

    /// Whether requestor `peer` may fetch output `id`: only from the
    /// provider that keeps it for them.
    pub fn keeps_output_for(&self, id: &ContentId, peer: &PeerId) -> bool {
        self.retained.get(id).is_some_and(|r| r.requestor == *peer)
    }

    fn me(&self) -> NodeId {
        self.key.id()
    }

    fn machine_state(&self, host: HostSample, now_ms: u64) -> MachineState {
        MachineState {
            me: self.me(),
            busy_slots: self.busy(),
            cores: self.settings.machine.cores,
            host_load_percent: host.host_load_percent,
            minute_of_day: host.minute_of_day,
            now_ms,
        }
    }

    /// Free slots to advertise: none while the owner's policy would refuse
    /// everything (not accepting, outside hours, machine busy).
    fn free_slots(&self, host: HostSample, now_ms: u64) -> u32 {
        let policy = &self.settings.policy;
        if !self.accepting || !policy.enabled || policy.paused(&self.machine_state(host, now_ms)).is_err() {
            return 0;
        }
        self.slots().saturating_sub(self.busy())
    }

    /// The stake bonded on the ledger, stated in offers from now on (the
    /// shell says it at every block).
    pub fn set_stake(&mut self, stake: Amount) {
        self.stake = stake;
    }

    /// This provider's offer now.
    pub fn offer(&mut self, host: HostSample, now_ms: u64) -> Offer {
        let p = &self.settings.policy;
        let slots = self.slots();
        // Per task: what one task may hold, as the scheduler matches it.
        let memory = p.memory_per_task;
        let machine_memory = self.settings.machine.memory_bytes;
        self.seq = (self.seq + 1).max(now_ms);
        Offer {
            version: WIRE_VERSION,
            provider: self.me(),
            arch: self.settings.machine.arch,
            cores: slots,
            memory_bytes: if machine_memory > 0 {
                memory.min(machine_memory)
            } else {
                memory
            },
            free_slots: self.free_slots(host, now_ms),
            speed: self.settings.speed,
            price: PricePerGfuel(p.price_floor),
            stake: self.stake,
            modes: p.modes.clone(),
            software: self.settings.software.clone(),
            seq: self.seq,
            expires_at_ms: now_ms.saturating_add(3 * 1000 * p.offer_interval_secs.max(1)),
        }
    }

    /// Takes in `input` at `now_ms` with the host's state; returns what to do.
    pub fn handle(&mut self, input: AgentInput, host: HostSample, now_ms: u64) -> Vec<AgentAction> {
        let mut out = Vec::new();
        // Offers are (re-)published on ticks, so a busy provider signs and
        // gossips at most one per tick, and a failed publication is tried
        // again on the next tick, not at once.
        let may_publish = matches!(input, AgentInput::Tick | AgentInput::BeginShutdown);
        match input {
            AgentInput::Assignment {
                peer,
                signed,
                backed_off,
            } => self.on_assignment(peer, signed, backed_off, host, now_ms, &mut out),
            AgentInput::EscrowChecked { run, result } => match result {
                Ok(()) => {
                    let slots = self.slots();
                    let full = self.busy() >= slots;
                    match self.runs.get_mut(&run) {
                        Some(r) if !r.funded && full => {
                            let peer = r.peer;
                            self.runs.remove(&run);
                            out.push(AgentAction::Refuse {
                                reply: Reply::Run(run),
                                reason: Refusal::Busy { slots }.to_string(),
                                peer,
                            });
                        }
                        Some(r) if !r.funded => {
                            r.funded = true;
                            self.fetch(run, &mut out);
                        }
                        _ => {}
                    }
                }
                Err(why) => {
                    if let Some(r) = self.runs.remove(&run) {
                        out.push(AgentAction::Refuse {
                            reply: Reply::Run(run),
                            reason: Refusal::Unfunded { why }.to_string(),
                            peer: r.peer,
                        });
                    }
                }
            },
            AgentInput::Unpayable { run, why } => {
                // A receipt already made is delivered: the work is done.
                if self.runs.get(&run).is_some_and(|r| r.receipt.is_none())
                    && let Some(r) = self.runs.remove(&run)
                {
                    out.push(AgentAction::Cancel { run });
                    out.push(AgentAction::Refuse {
                        reply: Reply::Run(run),
                        reason: format!("run cancelled: its escrow can no longer pay for it: {why}"),
                        peer: r.peer,
                    });
                }
            }
            AgentInput::BlobReady { run } => {
                if let Some(r) = self.runs.get_mut(&run) {
                    r.waiting = r.waiting.saturating_sub(1);
                    if r.waiting == 0 {
                        out.push(AgentAction::Execute {
                            run,
                            prepared: Box::new(r.prepared.clone()),
                        });
                    }
                }
            }
            AgentInput::BlobFailed { run, why } => {
                if let Some(r) = self.runs.remove(&run) {
                    out.push(AgentAction::Refuse {
                        reply: Reply::Run(run),
                        reason: why,
                        peer: r.peer,
                    });
                }
            }
            AgentInput::Ran { run, result } => self.on_ran(run, result, now_ms, &mut out),
            AgentInput::ProofKept { run } => {
                if let Some(r) = self.runs.remove(&run)
                    && let Some((receipt, outcome, fuel)) = r.receipt
                {
                    out.push(AgentAction::Deliver {
                        run,
                        receipt,
                        task: r.prepared.assignment.task,
                        outcome,
                        fuel,
                    });
                }
            }
            AgentInput::OutputFetched { peer, output } => {
                if let Some(r) = self.retained.get_mut(&output)
                    && r.requestor == peer
                {
                    r.count -= 1;
                    if r.count == 0 {
                        self.retained.remove(&output);
                        out.push(AgentAction::DropOutput(output));
                    }
                }
            }
            AgentInput::PublishFailed | AgentInput::PeerListening => self.published = None,
            AgentInput::Tick => {
                let expired: Vec<ContentId> = self
                    .retained
                    .iter()
                    .filter(|(_, r)| r.until_ms <= now_ms)
                    .map(|(id, _)| *id)
                    .collect();
                for id in expired {
                    self.retained.remove(&id);
                    out.push(AgentAction::DropOutput(id));
                }
            }
            AgentInput::BeginShutdown => {
                self.accepting = false;
                self.published = None;
            }
            AgentInput::Stop => {
                self.accepting = false;
                for (run, r) in std::mem::take(&mut self.runs) {
                    out.push(AgentAction::Refuse {
                        reply: Reply::Run(run),
                        reason: "provider shut down before the task finished".into(),
                        peer: r.peer,
                    });
                }
            }
        }
        if may_publish {
            self.maybe_publish(host, now_ms, &mut out);
        }
        out
    }

    fn maybe_publish(&mut self, host: HostSample, now_ms: u64, out: &mut Vec<AgentAction>) {
        if !self.settings.policy.enabled {
            return;
        }
        let interval = 1000 * self.settings.policy.offer_interval_secs.max(1);
        let due = match self.published {
            None => true,
            Some((at, free)) => now_ms >= at.saturating_add(interval) || free != self.free_slots(host, now_ms),
        };
        if !due {
            return;
        }
        let offer = self.offer(host, now_ms);
        match Signed::sign(&self.key, &offer) {
            Ok(signed) => {
                self.published = Some((now_ms, offer.free_slots));
                out.push(AgentAction::Publish {
                    offer: Box::new(offer),
                    signed,
                });
            }
            Err(e) => tracing::error!(error = %e, "cannot sign the offer"),
        }
    }

    fn on_assignment(
        &mut self,
        peer: PeerId,
        signed: Signed,
        backed_off: bool,
        host: HostSample,
        now_ms: u64,
        out: &mut Vec<AgentAction>,
    ) {
        let refuse = |reason: String| AgentAction::Refuse {
            reply: Reply::Incoming,
            reason,
            peer,
        };
        // Every bad assignment is counted, even from a peer already backed off from.
        let assignment: Assignment = match signed.open(MAX_ASSIGNMENT_BYTES) {
            Ok(a) => a,
            Err(e) => {
                out.push(AgentAction::Misbehaved {
                    peer,
                    what: Misbehaviour::of_wire(&e),
                    why: format!("assignment: {e}"),
                });
                out.push(refuse(Refusal::Invalid { why: e.to_string() }.to_string()));
                return;
            }
        };
        if peer_id(&assignment.requestor) != Some(peer) {
            let why = "assignment is signed by another node than the one sending it".to_string();
            out.push(AgentAction::Misbehaved {
                peer,
                what: Misbehaviour::BadSignature,
                why: why.clone(),
            });
            out.push(refuse(Refusal::Invalid { why }.to_string()));
            return;
        }
        if backed_off {
            out.push(refuse("too much invalid input from this peer; backing off".into()));
            return;
        }
        if !self.accepting {
            out.push(refuse("provider is shutting down".into()));
            return;
        }
        if let Err(refusal) = self
            .settings
            .policy
            .admit(&assignment, &self.machine_state(host, now_ms))
        {
            out.push(refuse(refusal.to_string()));
            return;
        }
        let escrowed = self.settings.policy.needs_escrow(&assignment, &self.me());
        if escrowed && assignment.escrow.is_none() {
            let why = sharegrid_ledger::Unpayable::NoEscrow.to_string();
            out.push(refuse(Refusal::Unfunded { why }.to_string()));
            return;
        }
        let run = RunId(self.next_run);
        self.next_run += 1;
        let prepared = Prepared { signed, assignment };
        let blobs = prepared.blobs();
        let task = prepared.assignment.task;
        out.push(AgentAction::Admitted { run, task, peer });
        if escrowed {
            out.push(AgentAction::CheckEscrow {
                run,
                assignment: Box::new(prepared.assignment.clone()),
            });
        }
        self.runs.insert(
            run,
            Run {
                peer,
                prepared,
                waiting: blobs.len(),
                escrowed,
                funded: !escrowed,
                receipt: None,
            },
        );
        if !escrowed {
            self.fetch(run, out);
        }
    }

    fn fetch(&self, run: RunId, out: &mut Vec<AgentAction>) {
        if let Some(r) = self.runs.get(&run) {
            for blob in r.prepared.blobs() {
                out.push(AgentAction::Fetch {
                    run,
                    peer: r.peer,
                    blob,
                });
            }
        }
    }

    /// Runs whose escrow the ledger showed could pay, not yet answered: the
    /// shell checks them again at every block.
    pub fn escrowed_runs(&self) -> Vec<(RunId, Assignment)> {
        self.runs
            .iter()
            .filter(|(_, r)| r.escrowed && r.funded && r.receipt.is_none())
            .map(|(id, r)| (*id, r.prepared.assignment.clone()))
            .collect()
    }

    fn on_ran(
        &mut self,
        run: RunId,
        result: Result<RunOutput, super::run::ExecuteError>,
        now_ms: u64,
        out: &mut Vec<AgentAction>,
    ) {
        let Some(r) = self.runs.get_mut(&run) else { return };
        let peer = r.peer;
        let output = match result {
            Ok(o) => o,
            Err(e) => {
                self.runs.remove(&run);
                out.push(AgentAction::Refuse {
                    reply: Reply::Run(run),
                    reason: format!("provider failed to run the task: {e}"),
                    peer,
                });
                return;
            }
        };
        let a = &r.prepared.assignment;
        if let Outcome::InvalidModule { reason } = &output.outcome {
            let why = format!("invalid module {}: {reason}", a.module);
            self.runs.remove(&run);
            out.push(AgentAction::Misbehaved {
                peer,
                what: Misbehaviour::InvalidModule,
                why: why.clone(),
            });
            out.push(AgentAction::Refuse {
                reply: Reply::Run(run),
                reason: why,
                peer,
            });
            return;
        }
        let receipt = Receipt::for_run(
            a,
            r.prepared.signed.id(),
            output.outcome.clone(),
            output.result,
            output.fuel,
        )
        .map_err(|e| e.to_string())
        .and_then(|receipt| Signed::sign(&self.key, &receipt).map_err(|e| e.to_string()));
        let receipt = match receipt {
            Ok(s) => s,
            Err(e) => {
                self.runs.remove(&run);
                out.push(AgentAction::Refuse {
                    reply: Reply::Run(run),
                    reason: format!("provider cannot make the receipt: {e}"),
                    peer,
                });
                return;
            }
        };
        // Kept for the requestor, named by the result hash.
        let retention_ms = 1000 * self.settings.policy.output_retention_secs;
        let id = ContentId::from_bytes(*output.result.as_bytes());
        let kept = self.retained.entry(id).or_insert(Retained {
            requestor: peer,
            until_ms: 0,
            count: 0,
        });
        kept.requestor = peer;
        kept.until_ms = now_ms.saturating_add(retention_ms);
        kept.count += 1;
        self.tasks_run += 1;
        let proof = a.escrow.map(|escrow| Proof {
            escrow,
            task: a.task,
            assignment: r.prepared.signed.clone(),
            receipt: receipt.clone(),
        });
        match proof {
            // On disk before the receipt leaves.
            Some(proof) => {
                r.receipt = Some((receipt, output.outcome, output.fuel));
                out.push(AgentAction::KeepProof {
                    run,
                    proof: Box::new(proof),
                });
            }
            None => {
                let task = a.task;
                self.runs.remove(&run);
                out.push(AgentAction::Deliver {
                    run,
                    receipt,
                    task,
                    outcome: output.outcome,
                    fuel: output.fuel,
                });
            }
        }
    }
}

#[cfg(test)]
mod tests;
