//! Following the chain, as a state machine with no I/O: which peer to ask
//! for blocks, when, and what a peer's answer means. The daemon feeds it
//! what peers say (connections, gossiped headers, head answers, blocks,
//! failures) with our own head height and the time, and carries out its
//! [`FollowerAction`]s: ask a head, request blocks, apply blocks (off the
//! loop), count a peer's bad input.
//!
//! One sync at a time, from one peer: only that peer's answers feed or end
//! it. A sync starts only at a height a validator of our genesis signed: a
//! gossiped header, or a peer's head answer carrying its head block's signed
//! header (a bare height steers nothing). A peer that does not answer
//! within `sync_timeout_ms` loses the slot, is counted as stalled, and the
//! next peer that proved a height takes over at once; a peer whose blocks
//! do not check is counted.
//!
//! Never does: apply a block itself (the ledger checks every block), or
//! trust a height no validator signed.

use sharegrid_core::{ContentId, NodeId, Signed, decode_capped};
use sharegrid_ledger::{Block, Header};
use sharegrid_net::{MAX_HEADER_BYTES, Misbehaviour, PeerId};

/// How applying a run of blocks went.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Applied {
    /// This many blocks were new and applied.
    Blocks(usize),
    /// A block did not check: the peer sent something wrong.
    Invalid(String),
    /// Storing failed: our problem, not the peer's.
    StoreFailed(String),
}

/// What happened, told to the follower.
#[derive(Debug)]
pub enum FollowerInput {
    /// A first connection to a peer.
    Connected(PeerId),
    /// A peer's answer to a head request.
    Head {
        /// The peer.
        peer: PeerId,
        /// Its genesis.
        genesis: ContentId,
        /// Its head's height.
        height: u64,
        /// Its head block's signed header (none at height 0).
        header: Option<Signed>,
    },
    /// A peer's answer to a block request.
    Blocks {
        /// The peer.
        peer: PeerId,
        /// The blocks.
        blocks: Vec<Block>,
    },
    /// A peer refused or failed a sync request.
    Failed {
        /// The peer.
        peer: PeerId,
        /// Why.
        why: String,
    },
    /// Blocks from a peer were applied (or not).
    Applied {
        /// The peer that sent them.
        peer: PeerId,
        /// How it went.
        result: Applied,
    },
    /// Time passed.
    Tick,
}

/// What the follower wants done.
#[derive(Debug, PartialEq)]
pub enum FollowerAction {
    /// Ask a peer for its head.
    AskHead(PeerId),
    /// Ask a peer for blocks from height `from`.
    RequestBlocks {
        /// The peer.
        peer: PeerId,
        /// First height wanted.
        from: u64,
    },
    /// Check and apply these blocks (off the loop), then say
    /// [`FollowerInput::Applied`].
    Apply {
        /// Who sent them.
        peer: PeerId,
        /// The blocks.
        blocks: Vec<Block>,
    },
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

#[derive(Debug, Clone, Copy)]
struct Sync {
    peer: PeerId,
    since_ms: u64,
    applying: bool,
}

/// The follower. See the module docs.
#[derive(Debug)]
pub struct Follower {
    genesis: ContentId,
    validators: Vec<NodeId>,
    sync_timeout_ms: u64,
    sync: Option<Sync>,
    /// The highest height any peer announced.
    best_seen: u64,
    /// Peers that showed a validator-signed height, with it: who to sync
    /// from next when the current peer stalls (at most [`MAX_SOURCES`]).
    sources: Vec<(PeerId, u64)>,
}

/// Peers remembered as sources of blocks.
const MAX_SOURCES: usize = 16;

impl Follower {
    /// A follower of the chain of `genesis`, whose blocks `validators` sign.
    pub fn new(genesis: ContentId, validators: Vec<NodeId>, sync_timeout_ms: u64) -> Self {
        Follower {
            genesis,
            validators,
            sync_timeout_ms,
            sync: None,
            best_seen: 0,
            sources: Vec::new(),
        }
    }

    /// The highest height a peer announced.
    pub fn best_seen(&self) -> u64 {
        self.best_seen
    }

    /// The peer being synced from, if any.
    pub fn syncing_from(&self) -> Option<PeerId> {
        self.sync.map(|s| s.peer)
    }

    /// A gossiped block header from `from`, naming its `producer` peer:
    /// `Ok` (with what to do) when a validator signed it, else the peer's
    /// misbehaviour (the gossip is then rejected, not forwarded).
    pub fn on_announcement(
        &mut self,
        producer: PeerId,
        data: &[u8],
        head: u64,
        now_ms: u64,
    ) -> Result<Vec<FollowerAction>, (Misbehaviour, String)> {
        let bad = |e: sharegrid_core::WireError| (Misbehaviour::of_wire(&e), e.to_string());
        let header: Signed = decode_capped(data, MAX_HEADER_BYTES).map_err(bad)?;
        let h = self.validator_signed(&header)?;
        let mut out = Vec::new();
        // Fetch from the producer itself where known: a relay may not have
        // the blocks yet.
        self.behind(producer, h.height, head, now_ms, &mut out);
        Ok(out)
    }

    /// The header, if a validator of our genesis signed it.
    fn validator_signed(&self, header: &Signed) -> Result<Header, (Misbehaviour, String)> {
        let h: Header = header
            .open(MAX_HEADER_BYTES)
            .map_err(|e| (Misbehaviour::of_wire(&e), e.to_string()))?;
        if !self.validators.contains(&h.producer) {
            return Err((
                Misbehaviour::BadBlock,
                format!("produced by {}, not a validator", h.producer.short()),
            ));
        }
        Ok(h)
    }

    /// Takes in `input` with our head's height at `now_ms`.
    pub fn handle(&mut self, input: FollowerInput, head: u64, now_ms: u64) -> Vec<FollowerAction> {
        let mut out = Vec::new();
        match input {
            FollowerInput::Connected(peer) => out.push(FollowerAction::AskHead(peer)),
            FollowerInput::Head {
                peer,
                genesis,
                height,
                header,
            } => {
                if genesis != self.genesis {
                    tracing::debug!(%peer, "peer follows another ledger (genesis {})", genesis.short());
                } else if height > head {
                    // A height ahead of ours counts only with a validator's
                    // signed header for exactly that height.
                    let proved = match &header {
                        None => Err((Misbehaviour::BadBlock, format!("head {height} without a signed header"))),
                        Some(signed) => self.validator_signed(signed).and_then(|h| {
                            if h.height == height {
                                Ok(())
                            } else {
                                let why = format!("head {height} with a header for height {}", h.height);
                                Err((Misbehaviour::BadBlock, why))
                            }
                        }),
                    };
                    match proved {
                        Ok(()) => self.behind(peer, height, head, now_ms, &mut out),
                        Err((what, why)) => out.push(FollowerAction::Misbehaved { peer, what, why }),
                    }
                }
            }
            FollowerInput::Blocks { peer, blocks } => match &mut self.sync {
                // Only the peer being synced from may feed or end the sync.
                Some(s) if s.peer == peer && !s.applying => {
                    if blocks.is_empty() {
                        self.sync = None;
                    } else {
                        s.applying = true;
                        out.push(FollowerAction::Apply { peer, blocks });
                    }
                }
                _ => {}
            },
            FollowerInput::Failed { peer, why } => {
                tracing::debug!(%peer, "ledger sync request failed: {why}");
                if self.sync.is_some_and(|s| s.peer == peer && !s.applying) {
                    self.sync = None;
                    self.forget(peer);
                    self.next_source(head, now_ms, &mut out);
                }
            }
            FollowerInput::Applied { peer, result } => {
                self.sync = None;
                match result {
                    Applied::Blocks(n) => {
                        tracing::debug!(%peer, blocks = n, height = head, "synced");
                        if head < self.best_seen && n > 0 {
                            self.request(peer, head, now_ms, &mut out);
                        }
                    }
                    Applied::Invalid(why) => {
                        tracing::warn!(%peer, "block refused: {why}");
                        out.push(FollowerAction::Misbehaved {
                            peer,
                            what: Misbehaviour::BadBlock,
                            why,
                        });
                    }
                    Applied::StoreFailed(why) => tracing::error!("cannot store a block: {why}"),
                }
            }
            FollowerInput::Tick => {
                if let Some(s) = self.sync
                    && !s.applying
                    && now_ms.saturating_sub(s.since_ms) >= self.sync_timeout_ms
                {
                    tracing::debug!(peer = %s.peer, "sync peer did not answer in time; the slot is free");
                    self.sync = None;
                    self.forget(s.peer);
                    out.push(FollowerAction::Misbehaved {
                        peer: s.peer,
                        what: Misbehaviour::Stalled,
                        why: format!("no blocks within {} ms of asking", self.sync_timeout_ms),
                    });
                    self.next_source(head, now_ms, &mut out);
                }
            }
        }
        out
    }

    /// A peer showed a validator-signed height: fetch if we lack some.
    fn behind(&mut self, peer: PeerId, height: u64, head: u64, now_ms: u64, out: &mut Vec<FollowerAction>) {
        self.best_seen = self.best_seen.max(height);
        self.forget(peer);
        self.sources.push((peer, height));
        if self.sources.len() > MAX_SOURCES {
            // The lowest goes.
            if let Some(i) = (0..self.sources.len()).min_by_key(|&i| self.sources[i].1) {
                self.sources.remove(i);
            }
        }
        if self.sync.is_none() && height > head {
            self.request(peer, head, now_ms, out);
        }
    }

    fn forget(&mut self, peer: PeerId) {
        self.sources.retain(|(p, _)| *p != peer);
    }

    /// After a sync ended badly: the peer with the highest proved height
    /// above ours takes over.
    fn next_source(&mut self, head: u64, now_ms: u64, out: &mut Vec<FollowerAction>) {
        let best = self
            .sources
            .iter()
            .filter(|(_, h)| *h > head)
            .max_by_key(|(_, h)| *h)
            .copied();
        if let Some((peer, _)) = best {
            self.request(peer, head, now_ms, out);
        }
    }

    fn request(&mut self, peer: PeerId, head: u64, now_ms: u64, out: &mut Vec<FollowerAction>) {
        self.sync = Some(Sync {
            peer,
            since_ms: now_ms,
            applying: false,
        });
        out.push(FollowerAction::RequestBlocks { peer, from: head + 1 });
    }
}

#[cfg(test)]
mod tests;
