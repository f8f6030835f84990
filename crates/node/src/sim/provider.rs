//! The simulated providers: each runs the real provider [`crate::Agent`];
//! a run takes its fuel over the provider's speed and yields the right
//! result, or a lie; proofs of work and outputs stay on "disk" across
//! crashes, and a claims pass plans with the real [`crate::plan_claims`].

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use sharegrid_core::{ContentId, Fuel, NodeId, NodeKey, Outcome, ResultHash, TaskId};
use sharegrid_net::TaskResponse;

use super::ledger::{Follows, Intent, Wallet};
use super::net::{Ev, Ix, Msg, REQUESTOR};
use super::world::{Waiting, World, honest, request_of};
use crate::payment::{ClaimStep, KeptProof, plan_claims};
use crate::provider::{Agent, AgentAction, AgentInput, AgentSettings, HostSample, Reply, RunId, RunOutput};

/// A liar's result: its own, or the colluders' shared one.
fn lie(task: &TaskId, liar: &NodeId, collude: bool) -> ResultHash {
    let mut h = blake3::Hasher::new_derive_key("sharegrid sim lie");
    h.update(task.as_bytes());
    if !collude {
        h.update(liar.as_bytes());
    }
    ResultHash::from_bytes(*h.finalize().as_bytes())
}

/// A task's fuel: a fixed function of its id, 0.5–3 Gfuel.
pub(crate) fn fuel_of(task: &TaskId) -> Fuel {
    let b = task.as_bytes();
    Fuel(500_000_000 + u64::from(u16::from_le_bytes([b[0], b[1]])) * 38_000)
}

pub(crate) struct ProviderNode {
    pub(crate) key: Arc<NodeKey>,
    pub(super) speed: f64,
    pub(crate) faulty: bool,
    pub(crate) up: bool,
    pub(super) life: u32,
    pub(super) agent: Agent,
    pub(super) settings: AgentSettings,
    pub(crate) node: Follows,
    pub(crate) wallet: Wallet,
    /// On disk: proofs of work and outputs kept.
    pub(crate) proofs: Vec<KeptProof>,
    pub(super) outputs: BTreeSet<ContentId>,
    /// Admitted runs: the request they answer.
    pub(super) runs: BTreeMap<RunId, u64>,
    pub(super) waiting: BTreeMap<u64, Waiting>,
    pub(super) next_claims: u64,
}

impl World {
    // ----- providers -----

    pub(super) fn provider_msg(&mut self, p: Ix, from: Ix, msg: Msg) {
        match msg {
            Msg::Assign { req, signed } => {
                let peer = self.peers[from];
                let input = AgentInput::Assignment {
                    peer,
                    signed,
                    backed_off: false,
                };
                self.agent_with(p, input, Some((req, from)));
            }
            Msg::Fetch { req, id } => {
                let found = self.providers[p - 2].outputs.contains(&id);
                self.send(p, from, Msg::Fetched { req, found });
                if found {
                    let peer = self.peers[from];
                    self.agent(p, AgentInput::OutputFetched { peer, output: id });
                }
            }
            other => {
                if let Some(req) = request_of(&other) {
                    self.providers[p - 2].waiting.remove(&req);
                }
                self.ledger_answer(p, other);
            }
        }
    }

    pub(super) fn agent(&mut self, p: Ix, input: AgentInput) {
        self.agent_with(p, input, None);
    }

    pub(super) fn agent_with(&mut self, p: Ix, first: AgentInput, mut incoming: Option<(u64, Ix)>) {
        let mut inputs = std::collections::VecDeque::from([first]);
        while let Some(input) = inputs.pop_front() {
            let now = self.q.now;
            let actions = self.providers[p - 2].agent.handle(input, HostSample::default(), now);
            for a in actions {
                match a {
                    AgentAction::Refuse { reply, reason, .. } => {
                        let req = match reply {
                            Reply::Incoming => incoming.take(),
                            Reply::Run(run) => self.providers[p - 2].runs.remove(&run).map(|r| (r, REQUESTOR)),
                        };
                        if let Some((req, to)) = req {
                            self.send(
                                p,
                                to,
                                Msg::Answer {
                                    req,
                                    response: TaskResponse::Refused { reason },
                                },
                            );
                        }
                    }
                    AgentAction::Admitted { run, .. } => {
                        if let Some((req, _)) = incoming.take() {
                            self.providers[p - 2].runs.insert(run, req);
                        }
                    }
                    // Not asked for: simulated providers do not require escrows.
                    AgentAction::CheckEscrow { run, .. } => {
                        inputs.push_back(AgentInput::EscrowChecked { run, result: Ok(()) })
                    }
                    AgentAction::Cancel { .. } => {}
                    // The blobs are taken as held: their transfer is not simulated.
                    AgentAction::Fetch { run, .. } => inputs.push_back(AgentInput::BlobReady { run }),
                    AgentAction::Execute { run, prepared } => {
                        let pr = &self.providers[p - 2];
                        let task = prepared.assignment.task;
                        let fuel = fuel_of(&task);
                        let result = if pr.faulty {
                            lie(&task, &pr.key.id(), self.cfg.collude)
                        } else {
                            honest(&task)
                        };
                        let ms = (fuel.0 as f64 / (pr.speed * 1e6)) as u64 + 1;
                        let output = RunOutput {
                            outcome: Outcome::Completed { exit_code: 0 },
                            result,
                            fuel,
                        };
                        self.providers[p - 2]
                            .outputs
                            .insert(ContentId::from_bytes(*result.as_bytes()));
                        let life = self.providers[p - 2].life;
                        self.q.after(
                            ms,
                            Ev::RunDone {
                                node: p,
                                life,
                                run,
                                output,
                            },
                        );
                    }
                    AgentAction::KeepProof { run, proof } => {
                        self.providers[p - 2].proofs.push(KeptProof {
                            escrow: proof.escrow,
                            task: proof.task,
                            assignment: proof.assignment,
                            receipt: proof.receipt,
                            seen: false,
                        });
                        inputs.push_back(AgentInput::ProofKept { run });
                    }
                    AgentAction::Deliver { run, receipt, .. } => {
                        if let Some(req) = self.providers[p - 2].runs.remove(&run) {
                            self.send(
                                p,
                                REQUESTOR,
                                Msg::Answer {
                                    req,
                                    response: TaskResponse::Receipt(receipt),
                                },
                            );
                        }
                    }
                    AgentAction::DropOutput(id) => {
                        self.providers[p - 2].outputs.remove(&id);
                    }
                    AgentAction::Publish { signed, .. } => self.send(p, REQUESTOR, Msg::Offer(signed)),
                    AgentAction::Misbehaved { why, .. } => {
                        self.stats
                            .violations
                            .push(format!("provider {p} saw misbehaviour: {why}"));
                    }
                }
            }
        }
    }

    /// A provider's claims pass over its kept proofs.
    pub(super) fn claims(&mut self, p: Ix) {
        let pr = &mut self.providers[p - 2];
        let me = pr.key.id();
        let height = pr.node.height();
        let state = pr.node.chain.state().clone();
        let proofs = std::mem::take(&mut pr.proofs);
        let steps = plan_claims(proofs.clone(), &state, me, height);
        let mut kept = proofs;
        for step in steps {
            match step {
                ClaimStep::Seen(e) => kept.iter_mut().filter(|k| k.escrow == e).for_each(|k| k.seen = true),
                ClaimStep::Forget { escrow, task } => kept.retain(|k| !(k.escrow == escrow && k.task == task)),
                ClaimStep::Claim { op, .. } | ClaimStep::Collect { op, .. } | ClaimStep::Dispute { op, .. } => {
                    let already = pr
                        .wallet
                        .queue
                        .iter()
                        .any(|i| matches!(i, Intent::Claim(o) if **o == *op))
                        || pr
                            .wallet
                            .inflight
                            .as_ref()
                            .is_some_and(|f| matches!(&f.intent, Intent::Claim(o) if **o == *op));
                    if !already {
                        pr.wallet.queue.push_back(Intent::Claim(op));
                    }
                }
            }
        }
        pr.proofs = kept;
    }
}
