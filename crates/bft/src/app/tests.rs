//! The application's unit tests: a proposal on a parent never verified here, and a tampered copy of a proposal.

#![allow(clippy::unwrap_used)]

use commonware_consensus::types::{Epoch, Round, View};
use sharegrid_core::Amount;
use sharegrid_ledger::consensus::public_key;
use sharegrid_ledger::{Allocation, Genesis, Op, Params, TX_VERSION, Tx};

use super::*;

/// A genesis of four validators (seeds 1 to 4) and one funded client
/// (seed 9), and a transfer from it with `nonce`.
fn network() -> (Genesis, impl Fn(u64) -> Signed) {
    let leader = NodeKey::from_seed([1; 32]);
    let client = NodeKey::from_seed([9; 32]);
    let genesis = Genesis {
        validators: (1..=4).map(|i| NodeKey::from_seed([i; 32]).id()).collect(),
        params: Params::new(leader.id(), 0, Amount(1)),
        balances: vec![Allocation {
            account: client.id(),
            amount: Amount(1_000),
        }],
        stakes: Vec::new(),
    };
    let chain = genesis.hash();
    let pay = move |nonce| {
        let tx = Tx {
            version: TX_VERSION,
            chain,
            signer: client.id(),
            nonce,
            fee: Amount(1),
            expires_at_height: 100,
            op: Op::Transfer {
                to: leader.id(),
                amount: Amount(5),
            },
        };
        Signed::sign(&client, &tx).unwrap()
    };
    (genesis, pay)
}

fn context(view: u64, leader: &NodeKey, parent: (u64, ContentId)) -> Ctx {
    Ctx {
        round: Round::new(Epoch::zero(), View::new(view)),
        leader: public_key(&leader.id()).unwrap(),
        parent: (View::new(parent.0), digest(&parent.1)),
    }
}

#[test]
fn a_proposal_on_a_parent_this_validator_never_verified_is_verified_once_the_parent_is_here() {
    let (genesis, pay) = network();
    let (one, two) = (NodeKey::from_seed([1; 32]), NodeKey::from_seed([2; 32]));
    let chain = Chain::new(&genesis).unwrap();
    let p1 = chain.propose(&one, vec![pay(0)], 1).unwrap();
    let b1 = p1.block.clone();
    let after1 = Chain::restore(p1.state, 1, b1.hash(), 1);
    let b2 = after1.propose(&two, vec![pay(1)], 2).unwrap().block;
    let mut inner = Inner::new(chain);
    let unknown = |txs: &[Signed]| vec![false; txs.len()];
    // Block 1 was notarized while this validator was behind: it was
    // never asked to verify it, and fetches it only as block 2's parent.
    inner.receive(b2.clone());
    let ctx = context(2, &two, (1, b1.hash()));
    assert_eq!(
        inner.verify(&ctx, b2.hash(), 10, &unknown),
        None,
        "the parent is missing"
    );
    inner.receive(b1.clone());
    assert_eq!(inner.verify(&ctx, b2.hash(), 10, &unknown), Some(true));
    assert!(inner.built.contains_key(&b1.hash()), "the parent checked and kept");
}

#[test]
fn a_tampered_copy_of_a_proposal_is_dropped_and_asked_for_again_not_voted_against() {
    let (genesis, pay) = network();
    let leader = NodeKey::from_seed([1; 32]);
    let chain = Chain::new(&genesis).unwrap();
    let block = chain.propose(&leader, vec![pay(0)], 1).unwrap().block;
    let hash = block.hash();
    let mut tampered = block.clone();
    tampered.txs = vec![pay(1)];
    assert_eq!(tampered.hash(), hash, "a block's hash covers its header only");
    let ctx = context(1, &leader, (0, chain.head()));
    let mut inner = Inner::new(chain);
    let unknown = |txs: &[Signed]| vec![false; txs.len()];

    inner.receive(tampered);
    assert_eq!(inner.verify(&ctx, hash, 10, &unknown), None, "no verdict on a bad copy");
    assert!(!inner.received.contains_key(&hash));
    inner.ask(10);
    assert!(
        matches!(inner.outbox.last(), Some((Recipients::All, Gossip::Want(h, 0))) if *h == hash),
        "asked for again"
    );
    inner.receive(block);
    assert_eq!(inner.verify(&ctx, hash, 10, &unknown), Some(true));
}
