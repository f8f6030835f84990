//! The ledger on the wire (`/sharegrid/ledger/1`, `sharegrid/blocks/1`):
//! answering transaction submissions and block requests (off the loop),
//! producing blocks when the [`Producer`] says so and announcing them, and
//! carrying out the [`Follower`]'s decisions about whom to sync from.

use std::sync::Arc;
use std::time::Duration;

use sharegrid_core::encode;
use sharegrid_ledger::Block;
use sharegrid_net::{
    BLOCKS_TOPIC, Incoming, LedgerRequest, LedgerResponse, MAX_LEDGER_RESPONSE_BYTES, MAX_SYNC_BLOCKS, Misbehaviour,
    PeerId, gossipsub, request_response,
};
use tokio::sync::oneshot;

use super::{Daemon, Internal, NodeEvent, RequestFailure, now_ms};
use crate::config::LedgerSettings;
use crate::ledger::{Applied, ApplyError, Follower, FollowerAction, FollowerInput, Ledger, Producer};

/// The ledger's part of a node.
#[derive(Clone, Debug)]
pub struct LedgerOptions {
    /// The ledger.
    pub ledger: Arc<Ledger>,
    /// Validator: the shortest time between blocks.
    pub block_interval: Duration,
    /// Follower: a peer that does not answer a sync request within this
    /// long loses the sync slot.
    pub sync_timeout: Duration,
}

impl LedgerOptions {
    /// The options `settings` give for `ledger`.
    pub fn new(ledger: Arc<Ledger>, settings: &LedgerSettings) -> Self {
        LedgerOptions {
            ledger,
            block_interval: Duration::from_millis(settings.block_interval_ms),
            sync_timeout: Duration::from_secs(settings.sync_timeout_secs.max(1)),
        }
    }
}

/// Who waits for an outbound ledger request.
pub(super) enum LedgerWaiter {
    Client(oneshot::Sender<Result<LedgerResponse, RequestFailure>>),
    /// A sync request (head or blocks) to this peer.
    Sync(PeerId),
}

pub(super) struct LedgerPart {
    pub(super) ledger: Arc<Ledger>,
    block_interval: Duration,
    producer: Producer,
    follower: Follower,
    last_height: u64,
}

impl LedgerPart {
    pub(super) fn new(opts: LedgerOptions) -> Self {
        let l = &opts.ledger;
        let head = l.head();
        LedgerPart {
            producer: Producer::new(opts.block_interval.as_millis() as u64, now_ms()),
            follower: Follower::new(
                head.genesis,
                l.genesis().validators.clone(),
                opts.sync_timeout.as_millis() as u64,
            ),
            block_interval: opts.block_interval,
            last_height: head.height,
            ledger: opts.ledger,
        }
    }

    /// How often the producer is asked.
    pub(super) fn tick(&self) -> Duration {
        self.block_interval.max(Duration::from_millis(10))
    }
}

impl Daemon {
    /// Validator: a block when the producer says so, made off the loop.
    pub(super) fn maybe_produce(&mut self) {
        let Some(part) = &mut self.ledger else { return };
        let l = part.ledger.clone();
        if !l.is_validator() {
            return;
        }
        if l.is_bft() {
            // Several validators: their consensus makes the blocks.
            self.consensus_committed();
            return;
        }
        let Some(order) = part.producer.tick(now_ms(), l.pending(), l.has_waiting()) else {
            return;
        };
        self.blocking(move || {
            let result = l.produce(now_ms(), order.empty_ok).map_err(|e| e.to_string());
            Internal::Produced(result.map(|b| b.map(Box::new)))
        });
    }

    pub(super) fn on_produced(&mut self, result: Result<Option<Box<Block>>, String>) {
        let Some(part) = &mut self.ledger else { return };
        part.producer.produced(now_ms(), matches!(result, Ok(Some(_))));
        match result {
            Ok(Some(block)) => {
                self.announce(&block.header);
                self.head_moved();
            }
            Ok(None) => {}
            Err(e) => tracing::error!("cannot produce a block: {e}"),
        }
    }

    fn announce(&mut self, header: &sharegrid_core::Signed) {
        match encode(header) {
            Ok(bytes) => {
                if let Err(e) = self
                    .swarm
                    .behaviour_mut()
                    .gossipsub
                    .publish(gossipsub::IdentTopic::new(BLOCKS_TOPIC), bytes)
                {
                    // No peers: they catch up by sync when they connect.
                    tracing::debug!(error = %e, "block not announced");
                }
            }
            Err(e) => tracing::error!(error = %e, "cannot encode a header"),
        }
    }

    /// Tells listeners and metrics when the head moved.
    fn head_moved(&mut self) {
        let Some(part) = &mut self.ledger else { return };
        let height = part.ledger.head().height;
        if height != part.last_height {
            part.last_height = height;
            let me = self.key.id();
            let stake = part.ledger.with_state(|s| s.stake(&me));
            self.metrics.block_height.set(height as i64);
            self.emit(NodeEvent::Block { height });
            self.recheck_escrows();
            // Offers state the stake bonded now.
            if let Some(a) = self.agent.as_mut() {
                a.agent.set_stake(stake);
            }
        }
    }

    /// A gossiped header: accepted (and maybe synced to) when a validator
    /// signed it; else counted against the peer that relayed it.
    pub(super) fn on_block_announced(
        &mut self,
        from: PeerId,
        producer: PeerId,
        data: &[u8],
    ) -> gossipsub::MessageAcceptance {
        let Some(part) = &mut self.ledger else {
            return gossipsub::MessageAcceptance::Ignore;
        };
        let head = part.ledger.head().height;
        match part.follower.on_announcement(producer, data, head, now_ms()) {
            Ok(actions) => {
                self.follower_actions(actions);
                gossipsub::MessageAcceptance::Accept
            }
            Err((what, why)) => {
                self.misbehaved(from, what, format!("block announcement: {why}"));
                gossipsub::MessageAcceptance::Reject
            }
        }
    }

    fn follower_input(&mut self, input: FollowerInput) {
        let Some(part) = &mut self.ledger else { return };
        let head = part.ledger.head().height;
        let actions = part.follower.handle(input, head, now_ms());
        self.follower_actions(actions);
    }

    /// On connecting: the follower asks the peer's head, to catch up.
    pub(super) fn follower_connected(&mut self, peer: PeerId) {
        self.follower_input(FollowerInput::Connected(peer));
    }

    pub(super) fn ledger_tick(&mut self) {
        self.follower_input(FollowerInput::Tick);
    }

    /// A validator of several: its consensus commits blocks off this loop;
    /// each new head is announced to followers.
    fn consensus_committed(&mut self) {
        let Some(part) = &self.ledger else { return };
        if part.ledger.head().height != part.last_height {
            if let Some(header) = part.ledger.head_header() {
                self.announce(&header);
            }
            self.head_moved();
        }
    }

    fn follower_actions(&mut self, actions: Vec<FollowerAction>) {
        for action in actions {
            match action {
                FollowerAction::AskHead(peer) => self.sync_request(peer, LedgerRequest::Head),
                FollowerAction::RequestBlocks { peer, from } => {
                    self.sync_request(peer, LedgerRequest::Blocks { from });
                }
                FollowerAction::Apply { peer, blocks } => {
                    let Some(part) = &self.ledger else { return };
                    let l = part.ledger.clone();
                    self.blocking(move || {
                        let result = match l.apply_blocks(&blocks) {
                            Ok(n) => Applied::Blocks(n),
                            Err(ApplyError::Invalid(e)) => Applied::Invalid(e.to_string()),
                            Err(ApplyError::Store(e)) => Applied::StoreFailed(e.to_string()),
                        };
                        Internal::Applied { peer, result }
                    });
                }
                FollowerAction::Misbehaved { peer, what, why } => self.misbehaved(peer, what, why),
            }
        }
    }

    pub(super) fn on_applied(&mut self, peer: PeerId, result: Applied) {
        self.head_moved();
        self.follower_input(FollowerInput::Applied { peer, result });
    }

    fn sync_request(&mut self, peer: PeerId, request: LedgerRequest) {
        let id = self.swarm.behaviour_mut().ledger.send_request(&peer, request.into());
        self.ledger_waiters.insert(id, LedgerWaiter::Sync(peer));
    }

    pub(super) fn on_ledger(&mut self, ev: request_response::Event<Incoming<LedgerRequest>, LedgerResponse>) {
        use request_response::{Event, Message};
        match ev {
            Event::Message {
                peer,
                message: Message::Request { request, channel, .. },
                ..
            } => self.on_ledger_request(peer, request, channel),
            Event::Message {
                peer,
                message: Message::Response { request_id, response },
                ..
            } => match self.ledger_waiters.remove(&request_id) {
                Some(LedgerWaiter::Client(reply)) => {
                    let _ = reply.send(Ok(response));
                }
                Some(LedgerWaiter::Sync(_)) => {
                    let input = match response {
                        LedgerResponse::Head {
                            genesis,
                            height,
                            header,
                        } => FollowerInput::Head {
                            peer,
                            genesis,
                            height,
                            header,
                        },
                        LedgerResponse::Blocks(blocks) => FollowerInput::Blocks { peer, blocks },
                        LedgerResponse::Refused { reason } => FollowerInput::Failed { peer, why: reason },
                        LedgerResponse::Accepted { .. } | LedgerResponse::Genesis(_) => FollowerInput::Failed {
                            peer,
                            why: "answered a sync request with something else".into(),
                        },
                    };
                    self.follower_input(input);
                }
                None => {}
            },
            Event::OutboundFailure {
                peer,
                request_id,
                error,
                ..
            } => {
                let failure = self.outbound_failed("ledger", peer, &error);
                match self.ledger_waiters.remove(&request_id) {
                    Some(LedgerWaiter::Client(reply)) => {
                        let _ = reply.send(Err(failure));
                    }
                    Some(LedgerWaiter::Sync(p)) => self.follower_input(FollowerInput::Failed {
                        peer: p,
                        why: failure.to_string(),
                    }),
                    None => {}
                }
            }
            Event::InboundFailure { peer, error, .. } => self.inbound_failure(peer, "ledger", error),
            Event::ResponseSent { .. } => {}
        }
    }

    fn on_ledger_request(
        &mut self,
        peer: PeerId,
        request: Incoming<LedgerRequest>,
        channel: request_response::ResponseChannel<LedgerResponse>,
    ) {
        let refuse = |d: &mut Daemon, channel, reason: String| {
            let _ = d
                .swarm
                .behaviour_mut()
                .ledger
                .send_response(channel, LedgerResponse::Refused { reason });
        };
        let request = match request {
            Incoming::Request(_) if !self.within_rate(peer, sharegrid_net::Protocol::Ledger) => {
                let (_, per_sec) = sharegrid_net::Protocol::Ledger.rate();
                let reason = format!("rate limited: over {per_sec} ledger requests a second from this peer");
                return refuse(self, channel, reason);
            }
            Incoming::Request(r) => r,
            Incoming::Refused(e) => {
                self.misbehaved(peer, Misbehaviour::of_wire(&e), format!("ledger request: {e}"));
                return refuse(self, channel, e.to_string());
            }
        };
        let Some(part) = &self.ledger else {
            return refuse(self, channel, "this node keeps no ledger".into());
        };
        let l = part.ledger.clone();
        match request {
            LedgerRequest::Head => {
                let head = l.head();
                let response = LedgerResponse::Head {
                    genesis: head.genesis,
                    height: head.height,
                    header: l.head_header(),
                };
                let _ = self.swarm.behaviour_mut().ledger.send_response(channel, response);
            }
            LedgerRequest::Submit(t) => self.blocking(move || {
                let response = match l.accept(t) {
                    Ok(id) => LedgerResponse::Accepted { id },
                    Err(e) => LedgerResponse::Refused { reason: e.to_string() },
                };
                Internal::LedgerAnswer { channel, response }
            }),
            LedgerRequest::Genesis => {
                let response = LedgerResponse::Genesis(Box::new(l.genesis().clone()));
                let _ = self.swarm.behaviour_mut().ledger.send_response(channel, response);
            }
            LedgerRequest::Faucet { account } => self.faucet_request(account, channel),
            LedgerRequest::Blocks { from } => self.blocking(move || {
                // Room for the framing beside the blocks.
                let room = MAX_LEDGER_RESPONSE_BYTES as usize - 64 * 1024;
                let response = match l.blocks(from, MAX_SYNC_BLOCKS as usize, room) {
                    Ok(b) => LedgerResponse::Blocks(b),
                    Err(e) => LedgerResponse::Refused { reason: e.to_string() },
                };
                Internal::LedgerAnswer { channel, response }
            }),
        }
    }

    /// A peer asks for test tokens: handed to the faucet task, whose answer
    /// comes back to the loop to be sent.
    fn faucet_request(
        &mut self,
        account: sharegrid_core::NodeId,
        channel: request_response::ResponseChannel<LedgerResponse>,
    ) {
        let (reply, answer) = tokio::sync::oneshot::channel();
        let order = crate::faucet::FaucetOrder { account, reply };
        let refused = match &self.faucet {
            None => Some("this node runs no faucet ([ledger] faucet = 0)".to_string()),
            Some(f) => f
                .try_send(order)
                .err()
                .map(|_| "the faucet is busy; try again shortly".to_string()),
        };
        if let Some(reason) = refused {
            let _ = self
                .swarm
                .behaviour_mut()
                .ledger
                .send_response(channel, LedgerResponse::Refused { reason });
            return;
        }
        let internal = self.internal.clone();
        tokio::spawn(async move {
            let response = match answer.await {
                Ok(Ok(id)) => LedgerResponse::Accepted { id },
                Ok(Err(reason)) => LedgerResponse::Refused { reason },
                Err(_) => LedgerResponse::Refused {
                    reason: "the faucet stopped".into(),
                },
            };
            let _ = internal.send(Internal::LedgerAnswer { channel, response }).await;
        });
    }

    /// Sends a caller's request to `peer`'s ledger.
    pub(super) fn ledger_request(
        &mut self,
        peer: PeerId,
        request: LedgerRequest,
        reply: oneshot::Sender<Result<LedgerResponse, RequestFailure>>,
    ) {
        let id = self.swarm.behaviour_mut().ledger.send_request(&peer, request.into());
        self.ledger_waiters.insert(id, LedgerWaiter::Client(reply));
    }
}
