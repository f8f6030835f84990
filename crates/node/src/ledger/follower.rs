//! Following the chain, as a state machine with no I/O: which peer to ask
//! for blocks, when, and what a peer's answer means. The daemon feeds it
//! what peers say (connections, gossiped headers, head answers, blocks,
//! failures) with our own head height and the time, and carries out its
//! [`FollowerAction`]s: ask a head, request blocks, apply blocks (off the
//! loop), count a peer's bad input.
//!
//! One sync at a time, from one peer: only that peer's answers feed or end
//! it, and a peer that does not answer within `sync_timeout_ms` loses the
//! slot. A gossiped header is accepted only if it is signed by a validator
//! of our genesis; a peer whose blocks do not check is counted.
//!
//! Never does: apply a block itself (the ledger checks every block), or
//! trust a height it was told beyond asking for blocks.

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
}

impl Follower {
    /// A follower of the chain of `genesis`, whose blocks `validators` sign.
    pub fn new(genesis: ContentId, validators: Vec<NodeId>, sync_timeout_ms: u64) -> Self {
        Follower {
            genesis,
            validators,
            sync_timeout_ms,
            sync: None,
            best_seen: 0,
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
        let h: Header = header.open(MAX_HEADER_BYTES).map_err(bad)?;
        if !self.validators.contains(&h.producer) {
            return Err((
                Misbehaviour::BadBlock,
                format!("produced by {}, not a validator", h.producer.short()),
            ));
        }
        let mut out = Vec::new();
        // Fetch from the producer itself where known: a relay may not have
        // the blocks yet.
        self.behind(producer, h.height, head, now_ms, &mut out);
        Ok(out)
    }

    /// Takes in `input` with our head's height at `now_ms`.
    pub fn handle(&mut self, input: FollowerInput, head: u64, now_ms: u64) -> Vec<FollowerAction> {
        let mut out = Vec::new();
        match input {
            FollowerInput::Connected(peer) => out.push(FollowerAction::AskHead(peer)),
            FollowerInput::Head { peer, genesis, height } => {
                if genesis == self.genesis {
                    self.behind(peer, height, head, now_ms, &mut out);
                } else {
                    tracing::debug!(%peer, "peer follows another ledger (genesis {})", genesis.short());
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
                }
            }
        }
        out
    }

    /// A peer has blocks up to `height`: fetch if we lack some.
    fn behind(&mut self, peer: PeerId, height: u64, head: u64, now_ms: u64, out: &mut Vec<FollowerAction>) {
        self.best_seen = self.best_seen.max(height);
        if self.sync.is_none() && height > head {
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
mod tests {
    use super::*;
    use sharegrid_core::{Amount, NodeKey, encode};
    use sharegrid_ledger::{Allocation, Chain, Genesis, Params};

    fn peer(seed: u8) -> PeerId {
        sharegrid_net::peer_id(&NodeKey::from_seed([seed; 32]).id()).unwrap()
    }

    fn genesis(v: &NodeKey) -> Genesis {
        Genesis {
            validators: vec![v.id()],
            params: Params {
                treasury: v.id(),
                network_fee_bps: 0,
                min_fee: Amount(0),
            },
            balances: vec![Allocation {
                account: v.id(),
                amount: Amount(1),
            }],
        }
    }

    fn header_bytes(signer: &NodeKey, g: &Genesis) -> (Vec<u8>, Block) {
        let chain = Chain::new(g).unwrap();
        let p = chain.propose(signer, vec![], 1).unwrap();
        (encode(&p.block.header).unwrap(), p.block)
    }

    #[test]
    fn an_announced_height_starts_one_sync_fed_only_by_its_peer() {
        let v = NodeKey::from_seed([1; 32]);
        let g = genesis(&v);
        let mut f = Follower::new(g.hash(), vec![v.id()], 5_000);
        let (bytes, block) = header_bytes(&v, &g);
        let acts = f.on_announcement(peer(7), &bytes, 0, 100).unwrap();
        assert_eq!(acts, vec![FollowerAction::RequestBlocks { peer: peer(7), from: 1 }]);
        // A second announcement while syncing starts nothing.
        assert!(f.on_announcement(peer(8), &bytes, 0, 101).unwrap().is_empty());
        // Another peer's blocks are ignored; ours are applied.
        assert!(
            f.handle(
                FollowerInput::Blocks {
                    peer: peer(8),
                    blocks: vec![block.clone()]
                },
                0,
                102
            )
            .is_empty()
        );
        let acts = f.handle(
            FollowerInput::Blocks {
                peer: peer(7),
                blocks: vec![block],
            },
            0,
            103,
        );
        assert!(matches!(&acts[..], [FollowerAction::Apply { peer: p, .. }] if *p == peer(7)));
        // Applied, caught up: the sync ends.
        assert!(
            f.handle(
                FollowerInput::Applied {
                    peer: peer(7),
                    result: Applied::Blocks(1)
                },
                1,
                104
            )
            .is_empty()
        );
        assert_eq!(f.syncing_from(), None);
    }

    #[test]
    fn a_header_not_signed_by_a_validator_is_misbehaviour() {
        let v = NodeKey::from_seed([1; 32]);
        let mallory = NodeKey::from_seed([2; 32]);
        let g = genesis(&v);
        let mut f = Follower::new(g.hash(), vec![v.id()], 5_000);
        let (bytes, _) = header_bytes(&mallory, &genesis(&mallory));
        let (what, why) = f.on_announcement(peer(7), &bytes, 0, 1).unwrap_err();
        assert_eq!(what, Misbehaviour::BadBlock);
        assert!(why.contains("not a validator"), "{why}");
        assert!(f.on_announcement(peer(7), b"garbage", 0, 1).is_err());
        assert_eq!(f.syncing_from(), None);
    }

    #[test]
    fn bad_blocks_are_counted_and_a_silent_peer_loses_the_slot() {
        let v = NodeKey::from_seed([1; 32]);
        let g = genesis(&v);
        let mut f = Follower::new(g.hash(), vec![v.id()], 5_000);
        let acts = f.handle(
            FollowerInput::Head {
                peer: peer(7),
                genesis: g.hash(),
                height: 3,
            },
            0,
            0,
        );
        assert_eq!(acts, vec![FollowerAction::RequestBlocks { peer: peer(7), from: 1 }]);
        // Another network's head is ignored.
        assert!(
            f.handle(
                FollowerInput::Head {
                    peer: peer(8),
                    genesis: ContentId::of(b"x"),
                    height: 9
                },
                0,
                1
            )
            .is_empty()
        );
        // Silent for the timeout: the slot is free, the next head is asked of another peer.
        assert!(f.handle(FollowerInput::Tick, 0, 4_999).is_empty());
        f.handle(FollowerInput::Tick, 0, 5_000);
        assert_eq!(f.syncing_from(), None);
        let acts = f.handle(
            FollowerInput::Head {
                peer: peer(9),
                genesis: g.hash(),
                height: 3,
            },
            0,
            5_001,
        );
        assert_eq!(acts, vec![FollowerAction::RequestBlocks { peer: peer(9), from: 1 }]);
        let acts = f.handle(
            FollowerInput::Blocks {
                peer: peer(9),
                blocks: vec![header_bytes(&v, &g).1],
            },
            0,
            5_002,
        );
        assert_eq!(acts.len(), 1);
        let acts = f.handle(
            FollowerInput::Applied {
                peer: peer(9),
                result: Applied::Invalid("wrong state root".into()),
            },
            0,
            5_003,
        );
        assert!(matches!(
            &acts[..],
            [FollowerAction::Misbehaved {
                what: Misbehaviour::BadBlock,
                ..
            }]
        ));
        // Still behind: the next announcement syncs again.
        assert_eq!(f.best_seen(), 3);
        assert_eq!(f.syncing_from(), None);
    }

    #[test]
    fn a_partial_sync_continues_from_the_same_peer() {
        let v = NodeKey::from_seed([1; 32]);
        let g = genesis(&v);
        let mut f = Follower::new(g.hash(), vec![v.id()], 5_000);
        f.handle(
            FollowerInput::Head {
                peer: peer(7),
                genesis: g.hash(),
                height: 500,
            },
            0,
            0,
        );
        f.handle(
            FollowerInput::Blocks {
                peer: peer(7),
                blocks: vec![header_bytes(&v, &g).1],
            },
            0,
            1,
        );
        let acts = f.handle(
            FollowerInput::Applied {
                peer: peer(7),
                result: Applied::Blocks(256),
            },
            256,
            2,
        );
        assert_eq!(
            acts,
            vec![FollowerAction::RequestBlocks {
                peer: peer(7),
                from: 257
            }]
        );
    }
}
