//! The provider agent as a state machine: what a provider does with the
//! assignments it receives, with no I/O and no clock. The daemon (or the
//! simulation) feeds it [`AgentInput`]s with the time and the host's state,
//! and carries out the [`AgentAction`]s it returns: answer a request, fetch
//! a blob, run a task, deliver a receipt, publish an offer, drop an output.
//!
//! An assignment's life here: opened (signature, signer = the sending peer,
//! size) → admitted by the owner's [`ProviderPolicy`] → a [`RunId`] and a
//! slot → its blobs fetched (the shell skips those it holds) → run → a
//! receipt made and signed ([`Receipt::for_run`]) → delivered, after the
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
    Assignment, ContentId, Fuel, GigafuelPerSec, NodeId, NodeKey, Offer, Outcome, PricePerGfuel, Receipt, ResultHash,
    Signed, TaskId, WIRE_VERSION,
};
use sharegrid_net::{MAX_ASSIGNMENT_BYTES, Misbehaviour, PeerId, peer_id};

use super::policy::{MachineState, ProviderPolicy, Refusal};
use crate::machine::MachineInfo;

/// A provider's name for one admitted assignment while it is in flight.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RunId(pub u64);

impl std::fmt::Display for RunId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "run-{}", self.0)
    }
}

/// The host's state, sampled by the shell: what the owner's idle and hours
/// rules read.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct HostSample {
    /// CPU load not caused by sharegrid, percent of all cores.
    pub host_load_percent: u8,
    /// Local time of day, minutes after midnight.
    pub minute_of_day: u16,
}

/// What a run produced, as the sandbox reported it.
#[derive(Clone, Debug, PartialEq)]
pub struct RunOutput {
    /// How it ended.
    pub outcome: Outcome,
    /// The result hash (of the canonical encoding, kept as an output blob).
    pub result: ResultHash,
    /// Fuel used.
    pub fuel: Fuel,
}

/// A receipt for escrowed work, with the assignment it answers: what the
/// provider keeps to claim its pay should the requestor not settle.
#[derive(Clone, Debug, PartialEq)]
pub struct Proof {
    /// The escrow that pays.
    pub escrow: ContentId,
    /// The task.
    pub task: TaskId,
    /// The requestor's signed assignment.
    pub assignment: Signed,
    /// This provider's signed receipt.
    pub receipt: Signed,
}

/// An admitted assignment, ready to run once its blobs are held.
#[derive(Clone, Debug)]
pub struct Prepared {
    /// The signed assignment (its body hash goes into the receipt).
    pub signed: Signed,
    /// The assignment.
    pub assignment: Assignment,
}

impl Prepared {
    /// Every blob the run reads: module, stdin, inputs, each once.
    pub fn blobs(&self) -> Vec<ContentId> {
        let a = &self.assignment;
        let mut needed = vec![a.module, a.stdin];
        needed.extend(a.inputs.iter().map(|(_, id)| *id));
        needed.sort();
        needed.dedup();
        needed
    }
}

/// What happened, told to the agent.
#[derive(Debug)]
pub enum AgentInput {
    /// An assignment arrived from `peer` (its bytes within the protocol's
    /// cap). `backed_off`: the peer sent too much bad input lately.
    Assignment {
        /// The sending peer.
        peer: PeerId,
        /// The signed assignment.
        signed: Signed,
        /// Whether the node is backing off from this peer.
        backed_off: bool,
    },
    /// A blob a run needs is in the blob store.
    BlobReady {
        /// The run.
        run: RunId,
    },
    /// A blob a run needs could not be had.
    BlobFailed {
        /// The run.
        run: RunId,
        /// Why, for the requestor.
        why: String,
    },
    /// A run ended (its outputs are kept under the result hash), or could
    /// not be carried out.
    Ran {
        /// The run.
        run: RunId,
        /// What it produced.
        result: Result<RunOutput, String>,
    },
    /// The proof of work of a run was kept (or keeping it failed, which the
    /// shell has logged): its receipt may leave.
    ProofKept {
        /// The run.
        run: RunId,
    },
    /// A requestor fetched the last chunk of an output.
    OutputFetched {
        /// Who fetched.
        peer: PeerId,
        /// The output blob.
        output: ContentId,
    },
    /// An offer could not be published (no peer yet): try again soon.
    PublishFailed,
    /// Time passed.
    Tick,
    /// Shutdown began: accept nothing more.
    BeginShutdown,
    /// The grace period ended: refuse what still runs.
    Stop,
}

/// Which request an answer goes to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reply {
    /// The assignment just given to the agent.
    Incoming,
    /// An admitted run's.
    Run(RunId),
}

/// What the agent wants done.
#[derive(Debug)]
pub enum AgentAction {
    /// Refuse the request, saying why.
    Refuse {
        /// Which request.
        reply: Reply,
        /// The reason, for the requestor.
        reason: String,
        /// The requestor.
        peer: PeerId,
    },
    /// The assignment just given was admitted as `run`: keep its reply
    /// channel under that id.
    Admitted {
        /// The run.
        run: RunId,
        /// The task.
        task: TaskId,
        /// The requestor.
        peer: PeerId,
    },
    /// Have `blob` in the blob store (fetch it from `peer` if missing, at
    /// most the agent's fetch bound), then say [`AgentInput::BlobReady`].
    Fetch {
        /// The run.
        run: RunId,
        /// From whom.
        peer: PeerId,
        /// The blob.
        blob: ContentId,
    },
    /// Run the task in the sandbox (off the event loop), keep its outputs,
    /// then say [`AgentInput::Ran`].
    Execute {
        /// The run.
        run: RunId,
        /// What to run.
        prepared: Box<Prepared>,
    },
    /// Keep this proof of work on disk, then say [`AgentInput::ProofKept`].
    KeepProof {
        /// The run.
        run: RunId,
        /// The proof.
        proof: Box<Proof>,
    },
    /// Answer the run's request with its signed receipt.
    Deliver {
        /// The run.
        run: RunId,
        /// The receipt.
        receipt: Signed,
        /// The task, for events.
        task: TaskId,
        /// How it ended, for events.
        outcome: Outcome,
        /// Fuel used, for metrics.
        fuel: Fuel,
    },
    /// Delete an output blob nobody will fetch any more.
    DropOutput(ContentId),
    /// Gossip this signed offer.
    Publish(Signed),
    /// Count bad input against a peer.
    Misbehaved {
        /// The peer.
        peer: PeerId,
        /// What kind.
        what: Misbehaviour,
        /// The specific reason.
        why: String,
    },
}

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

    /// Slots in use (fetching, running or delivering).
    pub fn busy(&self) -> u32 {
        self.runs.len() as u32
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

    /// This provider's offer now.
    pub fn offer(&mut self, host: HostSample, now_ms: u64) -> Offer {
        let p = &self.settings.policy;
        let slots = self.slots();
        let memory = p.memory_per_task.saturating_mul(u64::from(slots));
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
            AgentInput::PublishFailed => self.published = None,
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
                out.push(AgentAction::Publish(signed));
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
        let run = RunId(self.next_run);
        self.next_run += 1;
        let prepared = Prepared { signed, assignment };
        let blobs = prepared.blobs();
        let task = prepared.assignment.task;
        out.push(AgentAction::Admitted { run, task, peer });
        self.runs.insert(
            run,
            Run {
                peer,
                prepared,
                waiting: blobs.len(),
                receipt: None,
            },
        );
        for blob in blobs {
            out.push(AgentAction::Fetch { run, peer, blob });
        }
    }

    fn on_ran(&mut self, run: RunId, result: Result<RunOutput, String>, now_ms: u64, out: &mut Vec<AgentAction>) {
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
mod tests {
    use super::*;
    use sharegrid_core::{Amount, Arch, Determinism, Limits, Program, Terms, check_receipt};

    fn agent(slots: u32) -> (Agent, Arc<NodeKey>) {
        let key = Arc::new(NodeKey::from_seed([1; 32]));
        let settings = AgentSettings {
            policy: ProviderPolicy {
                enabled: true,
                slots,
                price_floor: Amount(10),
                offer_interval_secs: 1,
                output_retention_secs: 60,
                ..ProviderPolicy::default()
            },
            machine: MachineInfo {
                arch: Arch::X86_64,
                cores: 8,
                memory_bytes: 8 << 30,
            },
            speed: GigafuelPerSec(2.0),
            software: "test".into(),
        };
        (Agent::new(key.clone(), settings), key)
    }

    fn requestor() -> NodeKey {
        NodeKey::from_seed([2; 32])
    }

    fn signed(provider: NodeId, price: u128, escrow: Option<ContentId>, task: u8) -> Signed {
        let program = Program {
            module: ContentId::of(b"module"),
            stdin: ContentId::of(b""),
            inputs: vec![("a".into(), ContentId::of(b"a")), ("b".into(), ContentId::of(b"a"))],
            limits: Limits::default(),
            mode: Determinism::Native,
        };
        let terms = Terms {
            requestor: requestor().id(),
            provider,
            price: PricePerGfuel(Amount(price)),
            escrow,
        };
        let a = Assignment::new(TaskId::from_bytes([task; 32]), vec![], &program, terms, 0);
        Signed::sign(&requestor(), &a).unwrap()
    }

    fn peer() -> PeerId {
        peer_id(&requestor().id()).unwrap()
    }

    fn output() -> RunOutput {
        RunOutput {
            outcome: Outcome::Completed { exit_code: 0 },
            result: ResultHash::from_bytes([5; 32]),
            fuel: Fuel(3_000_000_000),
        }
    }

    fn assign(a: &mut Agent, s: Signed) -> Vec<AgentAction> {
        a.handle(
            AgentInput::Assignment {
                peer: peer(),
                signed: s,
                backed_off: false,
            },
            HostSample::default(),
            10,
        )
    }

    fn run_of(actions: &[AgentAction]) -> RunId {
        actions
            .iter()
            .find_map(|a| match a {
                AgentAction::Admitted { run, .. } => Some(*run),
                _ => None,
            })
            .expect("admitted")
    }

    #[test]
    fn an_assignment_is_fetched_run_and_answered_with_a_receipt_that_checks() {
        let (mut a, key) = agent(2);
        let s = signed(key.id(), 100, None, 1);
        let actions = assign(&mut a, s.clone());
        let run = run_of(&actions);
        // Module, stdin and one input (two paths share a blob): three fetches.
        let fetches = actions
            .iter()
            .filter(|x| matches!(x, AgentAction::Fetch { .. }))
            .count();
        assert_eq!(fetches, 3);
        assert_eq!(a.busy(), 1);
        for _ in 0..2 {
            let acts = a.handle(AgentInput::BlobReady { run }, HostSample::default(), 11);
            assert!(!acts.iter().any(|x| matches!(x, AgentAction::Execute { .. })));
        }
        let acts = a.handle(AgentInput::BlobReady { run }, HostSample::default(), 12);
        assert!(acts.iter().any(|x| matches!(x, AgentAction::Execute { .. })));
        let acts = a.handle(
            AgentInput::Ran {
                run,
                result: Ok(output()),
            },
            HostSample::default(),
            13,
        );
        let receipt = acts
            .iter()
            .find_map(|x| match x {
                AgentAction::Deliver { receipt, .. } => Some(receipt.clone()),
                _ => None,
            })
            .expect("delivered");
        let r: Receipt = receipt.open(1 << 16).unwrap();
        let assignment: Assignment = s.open(1 << 16).unwrap();
        assert_eq!(check_receipt(&assignment, &s.id(), &r), Ok(()));
        assert_eq!(r.charge, Amount(300));
        assert_eq!((a.busy(), a.tasks_run(), a.outputs_retained()), (0, 1, 1));
        // Only its requestor may fetch the output; once it has, it goes.
        let out = ContentId::from_bytes([5; 32]);
        assert!(a.keeps_output_for(&out, &peer()));
        let acts = a.handle(
            AgentInput::OutputFetched {
                peer: peer(),
                output: out,
            },
            HostSample::default(),
            14,
        );
        assert!(
            acts.iter()
                .any(|x| matches!(x, AgentAction::DropOutput(id) if *id == out))
        );
    }

    #[test]
    fn escrowed_work_keeps_its_proof_before_the_receipt_leaves() {
        let (mut a, key) = agent(1);
        let escrow = ContentId::of(b"escrow");
        let run = run_of(&assign(&mut a, signed(key.id(), 100, Some(escrow), 1)));
        for _ in 0..3 {
            a.handle(AgentInput::BlobReady { run }, HostSample::default(), 11);
        }
        let acts = a.handle(
            AgentInput::Ran {
                run,
                result: Ok(output()),
            },
            HostSample::default(),
            12,
        );
        assert!(
            acts.iter()
                .any(|x| matches!(x, AgentAction::KeepProof { proof, .. } if proof.escrow == escrow))
        );
        assert!(!acts.iter().any(|x| matches!(x, AgentAction::Deliver { .. })));
        assert_eq!(a.busy(), 1, "the slot is held until the receipt leaves");
        let acts = a.handle(AgentInput::ProofKept { run }, HostSample::default(), 13);
        assert!(acts.iter().any(|x| matches!(x, AgentAction::Deliver { .. })));
        assert_eq!(a.busy(), 0);
    }

    #[test]
    fn refusals_name_their_reason_and_change_nothing() {
        let (mut a, key) = agent(1);
        let other = NodeKey::from_seed([9; 32]).id();
        let reason = |acts: &[AgentAction]| {
            acts.iter()
                .find_map(|x| match x {
                    AgentAction::Refuse { reason, .. } => Some(reason.clone()),
                    _ => None,
                })
                .unwrap_or_default()
        };
        assert!(reason(&assign(&mut a, signed(key.id(), 1, None, 1))).contains("below this provider's floor"));
        assert!(reason(&assign(&mut a, signed(other, 100, None, 1))).contains("another provider"));
        // A forged signature is refused and counted as misbehaviour.
        let mut forged = signed(key.id(), 100, None, 1);
        forged.body.push(0);
        let acts = assign(&mut a, forged);
        assert!(reason(&acts).contains("invalid assignment"));
        assert!(acts.iter().any(|x| matches!(x, AgentAction::Misbehaved { .. })));
        // From another peer than its signer.
        let acts = a.handle(
            AgentInput::Assignment {
                peer: peer_id(&other).unwrap(),
                signed: signed(key.id(), 100, None, 1),
                backed_off: false,
            },
            HostSample::default(),
            10,
        );
        assert!(reason(&acts).contains("signed by another node"));
        assert_eq!(a.busy(), 0);
        // One slot: the second is busy.
        run_of(&assign(&mut a, signed(key.id(), 100, None, 1)));
        assert!(reason(&assign(&mut a, signed(key.id(), 100, None, 2))).contains("busy"));
        // Shutting down: nothing new, and what runs is refused at the end.
        a.handle(AgentInput::BeginShutdown, HostSample::default(), 20);
        assert!(reason(&assign(&mut a, signed(key.id(), 100, None, 3))).contains("shutting down"));
        let acts = a.handle(AgentInput::Stop, HostSample::default(), 21);
        assert!(reason(&acts).contains("shut down before the task finished"));
        assert_eq!(a.busy(), 0);
    }

    #[test]
    fn offers_follow_free_slots_and_the_interval() {
        let (mut a, key) = agent(2);
        let published = |acts: &[AgentAction]| -> Option<Offer> {
            acts.iter().find_map(|x| match x {
                AgentAction::Publish(s) => Some(s.open(1 << 16).unwrap()),
                _ => None,
            })
        };
        let first = published(&a.handle(AgentInput::Tick, HostSample::default(), 1_000)).expect("first offer");
        assert_eq!((first.free_slots, first.cores), (2, 2));
        assert!(published(&a.handle(AgentInput::Tick, HostSample::default(), 1_500)).is_none());
        // A slot taken: re-published at once.
        let acts = assign(&mut a, signed(key.id(), 100, None, 1));
        let _ = run_of(&acts);
        let second = published(&a.handle(AgentInput::Tick, HostSample::default(), 1_600)).expect("changed");
        assert_eq!(second.free_slots, 1);
        assert!(second.seq > first.seq);
        // The interval passed: again.
        assert!(published(&a.handle(AgentInput::Tick, HostSample::default(), 2_700)).is_some());
        // No peer to publish to: tried again on the next tick.
        a.handle(AgentInput::PublishFailed, HostSample::default(), 2_701);
        assert!(published(&a.handle(AgentInput::Tick, HostSample::default(), 2_800)).is_some());
    }

    #[test]
    fn outputs_expire_after_their_retention_time() {
        let (mut a, key) = agent(1);
        let run = run_of(&assign(&mut a, signed(key.id(), 100, None, 1)));
        for _ in 0..3 {
            a.handle(AgentInput::BlobReady { run }, HostSample::default(), 11);
        }
        a.handle(
            AgentInput::Ran {
                run,
                result: Ok(output()),
            },
            HostSample::default(),
            1_000,
        );
        assert!(
            a.handle(AgentInput::Tick, HostSample::default(), 60_999)
                .iter()
                .all(|x| !matches!(x, AgentAction::DropOutput(_)))
        );
        let acts = a.handle(AgentInput::Tick, HostSample::default(), 61_000);
        assert!(acts.iter().any(|x| matches!(x, AgentAction::DropOutput(_))));
        assert_eq!(a.outputs_retained(), 0);
    }
}
