//! The ledger on the wire: serving transactions and blocks, producing
//! blocks (validator), announcing them by gossip, and following (fetching
//! and checking the blocks a node lacks).

use std::sync::Arc;
use std::time::{Duration, Instant};

use sharegrid_core::{Signed, decode_capped, encode};
use sharegrid_ledger::{Block, Header};
use sharegrid_net::{
    BLOCKS_TOPIC, Incoming, LedgerRequest, LedgerResponse, MAX_HEADER_BYTES, MAX_LEDGER_RESPONSE_BYTES,
    MAX_SYNC_BLOCKS, Misbehaviour, PeerId, gossipsub, request_response,
};
use tokio::sync::oneshot;

use super::{Daemon, Internal, now_ms};
use crate::ledger::{ApplyError, Ledger};

/// The ledger's part of a node.
#[derive(Clone, Debug)]
pub struct LedgerOptions {
    /// The ledger.
    pub ledger: Arc<Ledger>,
    /// Validator: the shortest time between blocks.
    pub block_interval: Duration,
    /// Validator: while escrows are open, an empty block at least this
    /// often, so claim and close heights arrive.
    pub idle_block: Duration,
}

/// Who waits for an outbound ledger request.
pub(super) enum LedgerWaiter {
    Client(oneshot::Sender<Result<LedgerResponse, String>>),
    /// A sync request to this peer.
    Sync(PeerId),
}

pub(super) struct LedgerPart {
    pub(super) opts: LedgerOptions,
    last_block: Instant,
    producing: bool,
    /// The peer we are fetching blocks from, if any.
    syncing: Option<PeerId>,
    /// The highest height any peer announced.
    best_seen: u64,
    applying: bool,
}

impl LedgerPart {
    pub(super) fn new(opts: LedgerOptions) -> Self {
        LedgerPart {
            opts,
            last_block: Instant::now(),
            producing: false,
            syncing: None,
            best_seen: 0,
            applying: false,
        }
    }
}

impl Daemon {
    /// Validator: a block when transactions wait and the interval passed,
    /// or an empty one when escrows are open and the chain was idle long.
    pub(super) fn maybe_produce(&mut self) {
        let Some(part) = &mut self.ledger else { return };
        let l = part.opts.ledger.clone();
        if part.producing || !l.is_validator() || part.last_block.elapsed() < part.opts.block_interval {
            return;
        }
        let empty_ok = part.last_block.elapsed() >= part.opts.idle_block && l.has_open_escrows();
        if l.pending() == 0 && !empty_ok {
            return;
        }
        part.producing = true;
        let tx = self.internal.clone();
        tokio::task::spawn_blocking(move || {
            let result = l.produce(now_ms(), empty_ok).map_err(|e| e.to_string());
            let _ = tx.blocking_send(Internal::Produced(result.map(|b| b.map(Box::new))));
        });
    }

    pub(super) fn on_produced(&mut self, result: Result<Option<Box<Block>>, String>) {
        let Some(part) = &mut self.ledger else { return };
        part.producing = false;
        match result {
            Ok(Some(block)) => {
                part.last_block = Instant::now();
                self.announce(&block);
            }
            Ok(None) => {}
            Err(e) => tracing::error!("cannot produce a block: {e}"),
        }
    }

    fn announce(&mut self, block: &Block) {
        match encode(&block.header) {
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

    /// A gossiped header: checked for its signature and producer; a node
    /// behind fetches the blocks it lacks from the announcing peer.
    pub(super) fn on_block_announced(&mut self, from: PeerId, producer: PeerId, id: gossipsub::MessageId, data: &[u8]) {
        let verdict = match self.check_announcement(data) {
            Ok(height) => {
                self.behind(producer, height);
                gossipsub::MessageAcceptance::Accept
            }
            Err((what, why)) => {
                self.misbehaved(from, what, format!("block announcement: {why}"));
                gossipsub::MessageAcceptance::Reject
            }
        };
        self.swarm
            .behaviour_mut()
            .gossipsub
            .report_message_validation_result(&id, &from, verdict);
    }

    fn check_announcement(&self, data: &[u8]) -> Result<u64, (Misbehaviour, String)> {
        let bad = |e: sharegrid_core::WireError| (Misbehaviour::of_wire(&e), e.to_string());
        let header: Signed = decode_capped(data, MAX_HEADER_BYTES).map_err(bad)?;
        let h: Header = header.open(MAX_HEADER_BYTES).map_err(bad)?;
        let Some(part) = &self.ledger else {
            return Ok(h.height);
        };
        if !part.opts.ledger.genesis().validators.contains(&h.producer) {
            return Err((
                Misbehaviour::BadBlock,
                format!("produced by {}, not a validator", h.producer.short()),
            ));
        }
        Ok(h.height)
    }

    /// A peer has blocks up to `height`: fetch if we lack some.
    pub(super) fn behind(&mut self, peer: PeerId, height: u64) {
        let Some(part) = &mut self.ledger else { return };
        part.best_seen = part.best_seen.max(height);
        if part.syncing.is_none() && !part.applying && height > part.opts.ledger.head().height {
            self.request_blocks(peer);
        }
    }

    fn request_blocks(&mut self, peer: PeerId) {
        let Some(part) = &mut self.ledger else { return };
        let from = part.opts.ledger.head().height + 1;
        part.syncing = Some(peer);
        let id = self
            .swarm
            .behaviour_mut()
            .ledger
            .send_request(&peer, LedgerRequest::Blocks { from }.into());
        self.ledger_waiters.insert(id, LedgerWaiter::Sync(peer));
    }

    /// On connecting: ask the peer's head, to catch up.
    pub(super) fn ask_head(&mut self, peer: PeerId) {
        if self.ledger.is_none() {
            return;
        }
        let id = self
            .swarm
            .behaviour_mut()
            .ledger
            .send_request(&peer, LedgerRequest::Head.into());
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
                Some(LedgerWaiter::Sync(_)) => self.on_sync_response(peer, response),
                None => {}
            },
            Event::OutboundFailure { request_id, error, .. } => match self.ledger_waiters.remove(&request_id) {
                Some(LedgerWaiter::Client(reply)) => {
                    let _ = reply.send(Err(format!("ledger request failed: {error}")));
                }
                Some(LedgerWaiter::Sync(p)) => {
                    tracing::debug!(peer = %p, "ledger sync request failed: {error}");
                    if let Some(part) = &mut self.ledger
                        && part.syncing == Some(p)
                    {
                        part.syncing = None;
                    }
                }
                None => {}
            },
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
        let request = match request {
            Incoming::Request(r) => r,
            Incoming::Refused(e) => {
                self.misbehaved(peer, Misbehaviour::of_wire(&e), format!("ledger request: {e}"));
                let reason = e.to_string();
                let _ = self
                    .swarm
                    .behaviour_mut()
                    .ledger
                    .send_response(channel, LedgerResponse::Refused { reason });
                return;
            }
        };
        let Some(part) = &self.ledger else {
            let reason = "this node keeps no ledger".to_string();
            let _ = self
                .swarm
                .behaviour_mut()
                .ledger
                .send_response(channel, LedgerResponse::Refused { reason });
            return;
        };
        let l = part.opts.ledger.clone();
        if let LedgerRequest::Head = request {
            let head = l.head();
            let _ = self.swarm.behaviour_mut().ledger.send_response(
                channel,
                LedgerResponse::Head {
                    genesis: head.genesis,
                    height: head.height,
                },
            );
            return;
        }
        let tx = self.internal.clone();
        tokio::task::spawn_blocking(move || {
            let response = match request {
                LedgerRequest::Submit(t) => match l.accept(t) {
                    Ok(id) => LedgerResponse::Accepted { id },
                    Err(reason) => LedgerResponse::Refused { reason },
                },
                LedgerRequest::Blocks { from } => {
                    // Room for the framing beside the blocks.
                    let room = MAX_LEDGER_RESPONSE_BYTES as usize - 64 * 1024;
                    match l.blocks(from, MAX_SYNC_BLOCKS as usize, room) {
                        Ok(b) => LedgerResponse::Blocks(b),
                        Err(e) => LedgerResponse::Refused { reason: e.to_string() },
                    }
                }
                LedgerRequest::Head => unreachable!("answered above"),
            };
            let _ = tx.blocking_send(Internal::LedgerAnswer { channel, response });
        });
    }

    fn on_sync_response(&mut self, peer: PeerId, response: LedgerResponse) {
        let Some(part) = &mut self.ledger else { return };
        // Only the peer being synced from may end or feed the sync (a head
        // answer or refusal from another peer must not start a second one).
        let ours = part.syncing == Some(peer);
        match response {
            LedgerResponse::Head { genesis, height } => {
                if genesis != part.opts.ledger.head().genesis {
                    tracing::debug!(%peer, "peer follows another ledger (genesis {})", genesis.short());
                    return;
                }
                self.behind(peer, height);
            }
            LedgerResponse::Blocks(blocks) => {
                if !ours || part.applying {
                    return;
                }
                if blocks.is_empty() {
                    part.syncing = None;
                    return;
                }
                part.applying = true;
                let (l, tx) = (part.opts.ledger.clone(), self.internal.clone());
                tokio::task::spawn_blocking(move || {
                    let mut result = Ok(0usize);
                    for b in &blocks {
                        match l.apply_block(b) {
                            Ok(_) => result = result.map(|n| n + 1),
                            Err(e) => {
                                result = Err(e);
                                break;
                            }
                        }
                    }
                    let _ = tx.blocking_send(Internal::Synced { peer, result });
                });
            }
            LedgerResponse::Refused { reason } => {
                tracing::debug!(%peer, "ledger request refused: {reason}");
                if ours {
                    part.syncing = None;
                }
            }
            LedgerResponse::Accepted { .. } => {
                if ours {
                    part.syncing = None;
                }
            }
        }
    }

    pub(super) fn on_synced(&mut self, peer: PeerId, result: Result<usize, ApplyError>) {
        let Some(part) = &mut self.ledger else { return };
        part.applying = false;
        part.syncing = None;
        match result {
            Ok(n) => {
                tracing::debug!(%peer, blocks = n, height = part.opts.ledger.head().height, "synced");
                if part.opts.ledger.head().height < part.best_seen && n > 0 {
                    self.request_blocks(peer);
                }
            }
            Err(ApplyError::Invalid(e)) => {
                tracing::warn!(%peer, "block refused: {e}");
                self.misbehaved(peer, Misbehaviour::BadBlock, e.to_string());
            }
            Err(ApplyError::Store(e)) => tracing::error!("cannot store a block: {e}"),
        }
    }

    pub(super) fn ledger_request(
        &mut self,
        peer: PeerId,
        request: LedgerRequest,
        reply: oneshot::Sender<Result<LedgerResponse, String>>,
    ) {
        let id = self.swarm.behaviour_mut().ledger.send_request(&peer, request.into());
        self.ledger_waiters.insert(id, LedgerWaiter::Client(reply));
    }
}
