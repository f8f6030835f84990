//! The simulated nodes and what happens to them: a validator, a requestor
//! running job drivers, and providers running agents, each following the
//! chain; messages between them cross the simulated network. The role
//! machines are the node's own ([`Agent`], [`JobDriver`], [`Follower`],
//! [`Producer`], the payment plans); only the I/O around them — the
//! sandbox, SQLite, sockets — is simulated.
//!
//! This file holds the world and its clockwork (messages, timeouts, ticks,
//! crashes), the validator and the followers; `requestor.rs`, `provider.rs`
//! and `wallet.rs` hold the requestor's, the providers' and the accounts'
//! parts of it.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use sharegrid_core::{Assignment, ContentId, JobId, NodeId, NodeKey, ResultHash, Signed, TaskId, encode};
use sharegrid_ledger::Genesis;
use sharegrid_net::{OfferBook, PeerId, TaskResponse, peer_id};

use super::ledger::{Follows, Validator, Wallet};
use super::net::{Ev, Ix, Msg, Queue, REQUESTOR, Rng, VALIDATOR};
use super::provider::ProviderNode;
use super::requestor::{RequestorNode, SimJob};
use super::{SimConfig, Stats};
use crate::job::{JobInput, JobSubmission};
use crate::ledger::{FollowerAction, FollowerInput};
use crate::provider::{Agent, AgentInput, AgentSettings};

/// How long a node waits for a ledger or blob answer.
pub(super) const REQUEST_TIMEOUT_MS: u64 = 3_000;
/// How long a requestor waits for a receipt.
pub(super) const TASK_TIMEOUT_MS: u64 = 60_000;
/// How long a wallet waits for its transaction in a block before sending again.
pub(super) const LAND_TIMEOUT_MS: u64 = 5_000;

/// The right result of a task, and a liar's.
pub(crate) fn honest(task: &TaskId) -> ResultHash {
    ResultHash::from_bytes(*blake3::hash(task.as_bytes()).as_bytes())
}

/// An accepted result being fetched from the agreeing providers in turn.
pub(super) struct Fetching {
    pub(super) job: usize,
    pub(super) task: TaskId,
    pub(super) result: ResultHash,
    pub(super) agreeing: Vec<NodeId>,
    /// Those not yet asked.
    pub(super) rest: Vec<NodeId>,
}

/// A request a node waits on.
pub(super) enum Waiting {
    Assign {
        job: usize,
        a: Box<Assignment>,
        signed: Signed,
    },
    Fetch(Fetching),
    Ledger,
}

/// The whole simulated network.
pub(crate) struct World {
    pub(crate) cfg: SimConfig,
    pub(crate) rng: Rng,
    pub(crate) q: Queue,
    pub(crate) trace: blake3::Hasher,
    pub(crate) stats: Stats,
    pub(crate) genesis: Genesis,
    pub(crate) validator: Validator,
    pub(crate) requestor: RequestorNode,
    pub(crate) providers: Vec<ProviderNode>,
    pub(crate) peers: Vec<PeerId>,
    pub(crate) ids: Vec<NodeId>,
    pub(super) next_req: u64,
}

impl World {
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new(
        cfg: SimConfig,
        genesis: Genesis,
        validator: Validator,
        requestor: (Follows, Wallet),
        providers: Vec<(Arc<NodeKey>, f64, bool, AgentSettings, Follows)>,
        jobs: Vec<(JobId, JobSubmission)>,
        now: u64,
    ) -> World {
        let mut ids = vec![validator.key.id(), requestor.1.key.id()];
        let mut nodes = Vec::new();
        for (key, speed, faulty, settings, node) in providers {
            ids.push(key.id());
            nodes.push(ProviderNode {
                agent: Agent::new(key.clone(), settings.clone()),
                settings,
                wallet: Wallet::new(key.clone()),
                key,
                speed,
                faulty,
                up: true,
                life: 0,
                node,
                proofs: Vec::new(),
                outputs: BTreeSet::new(),
                runs: BTreeMap::new(),
                waiting: BTreeMap::new(),
                next_claims: 0,
            });
        }
        let rkey = requestor.1.key.id();
        let jobs = jobs
            .into_iter()
            .map(|(id, sub)| SimJob {
                escrow: id.escrow(&rkey),
                id,
                sub,
                driver: None,
                receipts: BTreeMap::new(),
                ended: BTreeMap::new(),
                results: BTreeMap::new(),
                state: None,
                settled: false,
            })
            .collect();
        let peers = ids.iter().map(|id| peer_id(id).unwrap_or(PeerId::random())).collect();
        let mut q = Queue::default();
        q.now = now;
        World {
            rng: Rng::new(cfg.seed),
            cfg,
            q,
            trace: blake3::Hasher::new(),
            stats: Stats::default(),
            genesis,
            validator,
            requestor: RequestorNode {
                node: requestor.0,
                wallet: requestor.1,
                book: OfferBook::new(100_000),
                jobs,
                waiting: BTreeMap::new(),
            },
            providers: nodes,
            peers,
            ids,
            next_req: 0,
        }
    }

    pub(super) fn ix_of_id(&self, id: &NodeId) -> Option<Ix> {
        self.ids.iter().position(|i| i == id)
    }

    pub(super) fn is_up(&self, ix: Ix) -> bool {
        ix < 2 || self.providers[ix - 2].up
    }

    /// Sends `msg`, delayed, or loses it.
    pub(crate) fn send(&mut self, from: Ix, to: Ix, msg: Msg) {
        self.stats.messages += 1;
        if self.rng.chance(self.cfg.loss) {
            self.stats.lost += 1;
            return;
        }
        let (lo, hi) = self.cfg.delay_ms;
        let delay = self.rng.range(lo, hi);
        self.q.after(delay, Ev::Deliver { to, from, msg });
    }

    /// Sends request `msg` (built with its id) and arms its timeout.
    pub(super) fn request(&mut self, from: Ix, to: Ix, timeout: u64, make: impl FnOnce(u64) -> Msg) -> u64 {
        self.next_req += 1;
        let req = self.next_req;
        let msg = make(req);
        self.send(from, to, msg);
        self.q.after(timeout, Ev::Timeout { node: from, req });
        req
    }

    /// Records an event in the trace.
    pub(crate) fn note(&mut self, what: std::fmt::Arguments<'_>) {
        self.stats.events += 1;
        let line = format!("{} {what}\n", self.q.now);
        self.trace.update(line.as_bytes());
    }

    pub(crate) fn handle(&mut self, ev: Ev) {
        match ev {
            Ev::Deliver { to, from, msg } => {
                if !self.is_up(to) || !self.is_up(from) {
                    self.stats.lost += 1;
                    return;
                }
                self.note(format_args!("deliver {from}->{to} {}", describe(&msg)));
                match to {
                    VALIDATOR => self.validator_msg(from, msg),
                    REQUESTOR => self.requestor_msg(from, msg),
                    p => self.provider_msg(p, from, msg),
                }
            }
            Ev::Timeout { node, req } => self.timeout(node, req),
            Ev::RunDone {
                node,
                life,
                run,
                output,
            } => {
                let p = &self.providers[node - 2];
                if p.up && p.life == life {
                    self.note(format_args!("ran {node} {run}"));
                    self.agent(
                        node,
                        AgentInput::Ran {
                            run,
                            result: Ok(output),
                        },
                    );
                }
            }
            Ev::Tick { node } => self.tick(node),
            Ev::Crash { node, down_ms } => self.crash(node, down_ms),
            Ev::Restart { node } => self.restart(node),
            Ev::Gone { observer, peer, life } => {
                if self.providers[peer - 2].life == life && !self.providers[peer - 2].up {
                    self.note(format_args!("gone {peer} seen by {observer}"));
                    self.requestor_gone(peer);
                }
            }
        }
    }

    pub(super) fn tick(&mut self, node: Ix) {
        let now = self.q.now;
        match node {
            VALIDATOR => {
                let v = &mut self.validator;
                let open = v.chain.state().has_waiting();
                if let Some(order) = v.producer.tick(now, v.pending(), open) {
                    let block = v.produce(now, order.empty_ok);
                    v.producer.produced(now, block.is_some());
                    if let Some(b) = block {
                        self.note(format_args!(
                            "block {} txs {}",
                            self.validator.chain.height(),
                            b.txs.len()
                        ));
                        if let Ok(header) = encode(&b.header) {
                            for to in 1..self.ids.len() {
                                self.send(VALIDATOR, to, Msg::Announce(header.clone()));
                            }
                        }
                    }
                }
                self.q.after(self.cfg.block_interval_ms, Ev::Tick { node });
            }
            REQUESTOR => {
                for j in 0..self.requestor.jobs.len() {
                    self.drive(j, JobInput::Tick);
                }
                self.follow(REQUESTOR, FollowerInput::Tick);
                self.wallet_step(REQUESTOR);
                self.q.after(250, Ev::Tick { node });
            }
            p => {
                if self.providers[p - 2].up {
                    self.agent(p, AgentInput::Tick);
                    self.follow(p, FollowerInput::Tick);
                    if now >= self.providers[p - 2].next_claims {
                        self.providers[p - 2].next_claims = now + 3_000;
                        self.claims(p);
                    }
                    self.wallet_step(p);
                }
                self.q.after(1_000, Ev::Tick { node });
            }
        }
    }

    pub(super) fn crash(&mut self, node: Ix, down_ms: u64) {
        let p = &mut self.providers[node - 2];
        if !p.up {
            return;
        }
        p.up = false;
        p.life += 1;
        p.runs.clear();
        p.waiting.clear();
        // What was in memory is gone; the disk (chain, proofs, outputs) stays.
        p.wallet.inflight = None;
        p.wallet.queue.clear();
        let life = p.life;
        self.stats.crashes += 1;
        self.note(format_args!("crash {node} for {down_ms} ms"));
        let departure = self.cfg.departure_ms;
        self.q.after(
            departure,
            Ev::Gone {
                observer: REQUESTOR,
                peer: node,
                life,
            },
        );
        self.q.after(down_ms, Ev::Restart { node });
    }

    pub(super) fn restart(&mut self, node: Ix) {
        let genesis_hash = self.genesis.hash();
        let validators = self.genesis.validators.clone();
        let p = &mut self.providers[node - 2];
        p.up = true;
        p.agent = Agent::new(p.key.clone(), p.settings.clone());
        p.node.follower = crate::ledger::Follower::new(genesis_hash, validators, REQUEST_TIMEOUT_MS);
        self.note(format_args!("restart {node}"));
        // Connected again: the follower asks the validator's head.
        self.follow(node, FollowerInput::Connected(self.peers[VALIDATOR]));
    }

    pub(super) fn timeout(&mut self, node: Ix, req: u64) {
        if node == REQUESTOR {
            let Some((to, w)) = self.requestor.waiting.remove(&req) else {
                return;
            };
            self.note(format_args!("timeout {node} req {req}"));
            self.requestor_failed(to, w, "the peer did not answer in time");
        } else if node >= 2 && self.providers[node - 2].waiting.remove(&req).is_some() {
            self.note(format_args!("timeout {node} req {req}"));
            let peer = self.peers[VALIDATOR];
            self.follow(
                node,
                FollowerInput::Failed {
                    peer,
                    why: "timeout".into(),
                },
            );
        }
    }

    // ----- the validator -----

    pub(super) fn validator_msg(&mut self, from: Ix, msg: Msg) {
        match msg {
            Msg::Submit { req, tx } => {
                let refused = self.validator.accept(tx).err();
                self.send(VALIDATOR, from, Msg::Submitted { req, refused });
            }
            Msg::Head { req } => {
                let (genesis, height) = (self.validator.chain.genesis_hash(), self.validator.chain.height());
                let header = match height {
                    0 => None,
                    h => self.validator.blocks_from(h, 1).pop().map(|b| b.header),
                };
                self.send(
                    VALIDATOR,
                    from,
                    Msg::HeadIs {
                        req,
                        genesis,
                        height,
                        header,
                    },
                );
            }
            Msg::Blocks { req, from: h } => {
                let blocks = self.validator.blocks_from(h, 64);
                self.send(VALIDATOR, from, Msg::BlocksAre { req, blocks });
            }
            _ => {}
        }
    }

    // ----- following the chain (requestor and providers) -----

    pub(super) fn follows(&mut self, node: Ix) -> &mut Follows {
        if node == REQUESTOR {
            &mut self.requestor.node
        } else {
            &mut self.providers[node - 2].node
        }
    }

    pub(crate) fn follow(&mut self, node: Ix, input: FollowerInput) {
        let now = self.q.now;
        let f = self.follows(node);
        let head = f.height();
        let actions = f.follower.handle(input, head, now);
        self.follower_actions(node, actions);
    }

    pub(super) fn follower_actions(&mut self, node: Ix, actions: Vec<FollowerAction>) {
        for a in actions {
            match a {
                FollowerAction::AskHead(_) => self.ledger_request(node, |req| Msg::Head { req }),
                FollowerAction::RequestBlocks { from, .. } => {
                    self.ledger_request(node, |req| Msg::Blocks { req, from });
                }
                FollowerAction::Apply { peer, blocks } => {
                    let result = self.follows(node).apply(&blocks);
                    self.follow(node, FollowerInput::Applied { peer, result });
                    self.landed(node);
                }
                FollowerAction::Misbehaved { why, .. } => self.stats.violations.push(format!("node {node}: {why}")),
            }
        }
    }

    pub(super) fn ledger_request(&mut self, node: Ix, make: impl FnOnce(u64) -> Msg) {
        let req = self.request(node, VALIDATOR, REQUEST_TIMEOUT_MS, make);
        if node == REQUESTOR {
            self.requestor.waiting.insert(req, (VALIDATOR, Waiting::Ledger));
        } else {
            self.providers[node - 2].waiting.insert(req, Waiting::Ledger);
        }
    }

    /// A ledger answer for a follower.
    pub(super) fn ledger_answer(&mut self, node: Ix, msg: Msg) {
        let peer = self.peers[VALIDATOR];
        let now = self.q.now;
        let input = match msg {
            Msg::HeadIs {
                genesis,
                height,
                header,
                ..
            } => FollowerInput::Head {
                peer,
                genesis,
                height,
                header,
            },
            Msg::BlocksAre { blocks, .. } => FollowerInput::Blocks { peer, blocks },
            Msg::Announce(data) => {
                let f = self.follows(node);
                let head = f.height();
                match f.follower.on_announcement(peer, &data, head, now) {
                    Ok(actions) => self.follower_actions(node, actions),
                    Err((_, why)) => self.stats.violations.push(format!("announcement: {why}")),
                }
                return;
            }
            Msg::Submitted { refused, .. } => {
                if let Some(why) = refused {
                    self.refused(node, why);
                }
                return;
            }
            _ => return,
        };
        self.follow(node, input);
    }
}

/// The request id an answer carries.
pub(super) fn request_of(msg: &Msg) -> Option<u64> {
    match msg {
        Msg::Submitted { req, .. } | Msg::HeadIs { req, .. } | Msg::BlocksAre { req, .. } => Some(*req),
        _ => None,
    }
}

/// A message in one line for the trace: its kind and what identifies it.
fn describe(msg: &Msg) -> String {
    match msg {
        Msg::Offer(s) => format!("offer {}", s.id().short()),
        Msg::Assign { req, signed } => format!("assign {req} {}", signed.id().short()),
        Msg::Answer { req, response } => match response {
            TaskResponse::Receipt(s) => format!("receipt {req} {}", s.id().short()),
            TaskResponse::Refused { reason } => format!("refused {req} {reason}"),
        },
        Msg::Fetch { req, id } => format!("fetch {req} {}", id.short()),
        Msg::Fetched { req, found } => format!("fetched {req} {found}"),
        Msg::Submit { req, tx } => format!("submit {req} {}", tx.id().short()),
        Msg::Submitted { req, refused } => format!("submitted {req} {refused:?}"),
        Msg::Announce(h) => format!("announce {}", ContentId::of(h).short()),
        Msg::Head { req } => format!("head? {req}"),
        Msg::HeadIs { req, height, .. } => format!("head {req} {height}"),
        Msg::Blocks { req, from } => format!("blocks? {req} {from}"),
        Msg::BlocksAre { req, blocks } => format!("blocks {req} {}", blocks.len()),
    }
}
