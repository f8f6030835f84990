//! The follower's unit tests: no sockets, no clock; time passed in.

use super::*;
use sharegrid_core::{Amount, NodeKey, encode};
use sharegrid_ledger::{Allocation, Chain, Genesis, Params};

fn peer(seed: u8) -> PeerId {
    sharegrid_net::peer_id(&NodeKey::from_seed([seed; 32]).id()).unwrap()
}

fn genesis(v: &NodeKey) -> Genesis {
    Genesis {
        validators: vec![v.id()],
        params: Params::new(v.id(), 0, Amount(0)),
        balances: vec![Allocation {
            account: v.id(),
            amount: Amount(1),
        }],
        stakes: Vec::new(),
    }
}

/// A validator's signed header for `height` (its other fields do not
/// matter to the follower).
fn head_at(v: &NodeKey, height: u64) -> Option<Signed> {
    let h = Header {
        version: sharegrid_ledger::BLOCK_VERSION,
        height,
        prev: ContentId::of(b"prev"),
        txs: ContentId::of(b"txs"),
        state_root: ContentId::of(b"root"),
        producer: v.id(),
        time_ms: 0,
    };
    Some(Signed::sign(v, &h).unwrap())
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
            header: head_at(&v, 3),
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
                height: 9,
                header: None
            },
            0,
            1
        )
        .is_empty()
    );
    // Silent for the timeout: the slot is free, the next head is asked of another peer.
    assert!(f.handle(FollowerInput::Tick, 0, 4_999).is_empty());
    let acts = f.handle(FollowerInput::Tick, 0, 5_000);
    assert!(
        matches!(&acts[..], [FollowerAction::Misbehaved { peer: p, what: Misbehaviour::Stalled, .. }] if *p == peer(7)),
        "{acts:?}"
    );
    assert_eq!(f.syncing_from(), None);
    let acts = f.handle(
        FollowerInput::Head {
            peer: peer(9),
            genesis: g.hash(),
            height: 3,
            header: head_at(&v, 3),
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
            header: head_at(&v, 500),
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

mod signed_heads {
    use super::*;

    fn setup() -> (NodeKey, Follower, ContentId) {
        let v = NodeKey::from_seed([1; 32]);
        let g = genesis(&v);
        let f = Follower::new(g.hash(), vec![v.id()], 5_000);
        (v, f, g.hash())
    }

    fn header(signer: &NodeKey, height: u64) -> Signed {
        head_at(signer, height).unwrap()
    }

    fn head(peer: PeerId, genesis: ContentId, height: u64, header: Option<Signed>) -> FollowerInput {
        FollowerInput::Head {
            peer,
            genesis,
            height,
            header,
        }
    }

    #[test]
    fn a_height_no_validator_signed_steers_nothing() {
        let (v, mut f, g) = setup();
        let mallory = NodeKey::from_seed([2; 32]);
        let cases = [
            (None, "without a signed header"),
            (Some(header(&mallory, 1_000_000)), "not a validator"),
            (Some(header(&v, 3)), "with a header for height 3"),
        ];
        for (signed, why) in cases {
            let acts = f.handle(head(peer(7), g, 1_000_000, signed), 0, 0);
            assert!(
                matches!(&acts[..], [FollowerAction::Misbehaved { what: Misbehaviour::BadBlock, why: w, .. }] if w.contains(why)),
                "{why}: {acts:?}"
            );
            assert_eq!(f.syncing_from(), None);
            assert_eq!(f.best_seen(), 0, "the claimed height is not believed");
        }
        // A height at or below ours needs no proof: nothing to fetch.
        assert!(f.handle(head(peer(7), g, 0, None), 0, 0).is_empty());
    }

    #[test]
    fn a_stalled_peer_hands_the_sync_to_the_next_that_proved_a_height() {
        let (v, mut f, g) = setup();
        let acts = f.handle(head(peer(7), g, 9, Some(header(&v, 9))), 0, 0);
        assert_eq!(acts, vec![FollowerAction::RequestBlocks { peer: peer(7), from: 1 }]);
        // Another peer proves a height meanwhile; peer 7 never answers.
        assert!(f.handle(head(peer(8), g, 8, Some(header(&v, 8))), 0, 10).is_empty());
        let acts = f.handle(FollowerInput::Tick, 0, 5_000);
        assert!(
            matches!(&acts[..], [
                FollowerAction::Misbehaved { peer: p, what: Misbehaviour::Stalled, .. },
                FollowerAction::RequestBlocks { peer: q, from: 1 },
            ] if *p == peer(7) && *q == peer(8)),
            "{acts:?}"
        );
        // A refusal from peer 8 hands it on again: to nobody, since peer 7
        // was dropped as a source.
        let acts = f.handle(
            FollowerInput::Failed {
                peer: peer(8),
                why: "refused".into(),
            },
            0,
            5_001,
        );
        assert!(acts.is_empty(), "{acts:?}");
        assert_eq!(f.syncing_from(), None);
    }
}
