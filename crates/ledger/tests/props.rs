//! The ledger state machine under random sequences of valid and invalid
//! transactions: supply is conserved exactly, a rejected transaction changes
//! nothing, replay gives the same root; and each kind of bad transaction is
//! rejected for its own reason.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use proptest::prelude::*;
use sharegrid_core::{Amount, Assignment, ContentId, Fuel, NodeKey, PricePerGfuel, Program, Signed, TaskId, Terms};
use sharegrid_ledger::{Block, BlockError, Chain, Header, Op, Rejection, State, TX_VERSION, Tx, Unpayable, txs_root};

#[derive(Clone, Debug)]
enum Step {
    Transfer {
        from: u8,
        to: u8,
        amount: u128,
        nonce_off: u8,
        forge: bool,
    },
    Open {
        job: u8,
        budget: u128,
        tasks: u8,
    },
    Settle {
        job: u8,
        by: u8,
        tasks: Vec<(u8, u8, u64, i128)>,
        last: bool,
    },
    Claim {
        job: u8,
        provider: u8,
        t: u8,
        fuel: u64,
    },
    Close {
        job: u8,
        by: u8,
    },
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        (
            0u8..4,
            0u8..5,
            0u128..2_000,
            prop::sample::select(vec![0u8, 0, 0, 1]),
            prop::bool::weighted(0.1)
        )
            .prop_map(|(from, to, amount, nonce_off, forge)| Step::Transfer {
                from,
                to,
                amount,
                nonce_off,
                forge
            }),
        (0u8..3, 0u128..3_000, 1u8..6).prop_map(|(job, budget, tasks)| Step::Open { job, budget, tasks }),
        (
            0u8..3,
            0u8..2,
            prop::collection::vec(
                (
                    0u8..8,
                    1u8..4,
                    0u64..100_000_000_000,
                    prop::sample::select(vec![0i128, 0, 0, 1, -1])
                ),
                0..4
            ),
            any::<bool>()
        )
            .prop_map(|(job, by, tasks, last)| Step::Settle { job, by, tasks, last }),
        (0u8..3, 1u8..4, 0u8..8, 0u64..50_000_000_000).prop_map(|(job, provider, t, fuel)| Step::Claim {
            job,
            provider,
            t,
            fuel
        }),
        (0u8..3, 0u8..4).prop_map(|(job, by)| Step::Close { job, by }),
    ]
}

fn job_id(j: u8) -> ContentId {
    ContentId::of(&[j])
}

/// Runs steps from genesis; returns the state, the verdicts and the signed
/// transactions.
fn run(balances: &[u128], steps: &[Step]) -> (State, Vec<bool>, Vec<Signed>) {
    let mut s = genesis(balances);
    let supply = s.supply();
    let mut verdicts = Vec::new();
    let mut txs = Vec::new();
    for (h, st) in steps.iter().enumerate() {
        let height = h as u64 + 1;
        let nonce = |s: &State, k: &NodeKey| s.accounts.get(&k.id()).map_or(0, |a| a.nonce);
        let signed = match st {
            Step::Transfer {
                from,
                to,
                amount,
                nonce_off,
                forge,
            } => {
                let k = key(*from);
                let mut t = tx(
                    &k,
                    nonce(&s, &k) + u64::from(*nonce_off),
                    Op::Transfer {
                        to: key(*to).id(),
                        amount: Amount(*amount),
                    },
                );
                if *forge {
                    // Signed by someone else than the signer it names.
                    let other = key((*from + 1) % 4);
                    t.signature = tx(&other, 0, Op::CloseExpired { escrow: job_id(0) }).signature;
                }
                t
            }
            Step::Open { job, budget, tasks } => {
                let k = key(0);
                let op = Op::OpenEscrow {
                    quorum: 2,
                    min_stake: Amount(0),
                    escrow: job_id(*job),
                    budget: Amount(*budget),
                    tasks: (0..*tasks).map(task).collect(),
                    claim_height: height + 5,
                    close_height: height + 10,
                };
                tx(&k, nonce(&s, &k), op)
            }
            Step::Settle { job, by, tasks, last } => {
                let k = key(*by);
                let paid = tasks
                    .iter()
                    .map(|(t, p, fuel, bump)| proof(job_id(*job), &key(0), &key(*p), task(*t), *fuel, *bump))
                    .collect();
                tx(
                    &k,
                    nonce(&s, &k),
                    Op::Settle {
                        escrow: job_id(*job),
                        paid,
                        last: *last,
                    },
                )
            }
            Step::Claim { job, provider, t, fuel } => {
                let k = key(*provider);
                let paid = proof(job_id(*job), &key(0), &k, task(*t), *fuel, 0);
                tx(
                    &k,
                    nonce(&s, &k),
                    Op::Claim {
                        agreeing: vec![],
                        escrow: job_id(*job),
                        paid,
                    },
                )
            }
            Step::Close { job, by } => {
                let k = key(*by);
                tx(&k, nonce(&s, &k), Op::CloseExpired { escrow: job_id(*job) })
            }
        };
        let before = s.clone();
        let ok = s.apply(&signed, height).is_ok();
        if !ok {
            assert_eq!(s, before, "a rejected transaction changed the state");
        }
        assert_eq!(s.supply(), supply, "supply changed after {st:?}");
        verdicts.push(ok);
        txs.push(signed);
    }
    (s, verdicts, txs)
}

/// Packs `txs` into blocks of up to `per_block` candidates.
fn blocks(balances: &[u128], txs: &[Signed], per_block: usize) -> (Chain, Vec<Block>) {
    let mut chain = Chain::new(&genesis_of(balances)).unwrap();
    let mut out = Vec::new();
    for (i, group) in txs.chunks(per_block).enumerate() {
        let p = chain.propose(&key(VALIDATOR), group.to_vec(), i as u64).unwrap();
        // The block holds exactly the candidates the state accepts, in
        // order, and every other one is named as rejected with the state's
        // reason. Compared by position, not by id: the same signed
        // transaction offered twice enters once and is rejected once.
        let mut state = chain.state().clone();
        let (mut accepted, mut rejected) = (Vec::new(), Vec::new());
        for tx in group {
            match state.apply(tx, p.header.height) {
                Ok(()) => accepted.push(tx.id()),
                Err(why) => rejected.push((tx.id(), why)),
            }
        }
        let in_block: Vec<ContentId> = p.block.txs.iter().map(Signed::id).collect();
        assert_eq!(in_block, accepted, "the block is not the accepted candidates");
        assert_eq!(p.rejected, rejected, "the rejections are not the state's");
        assert_eq!(p.state, state);
        out.push(p.block.clone());
        chain.commit(p);
    }
    (chain, out)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, .. ProptestConfig::default() })]

    #[test]
    fn supply_is_conserved_rejections_change_nothing_and_replay_is_exact(
        balances in prop::collection::vec(0u128..5_000, 4),
        steps in prop::collection::vec(step(), 1..40),
    ) {
        let (a, va, txs) = run(&balances, &steps);
        let (b, vb, _) = run(&balances, &steps);
        prop_assert_eq!(a.root(), b.root());
        prop_assert_eq!(va, vb);
        // The same transactions as blocks: every replay of the blocks
        // accepts each and ends at the producer's state root.
        let (produced, chain) = blocks(&balances, &txs, 3);
        for _ in 0..2 {
            let mut follower = Chain::new(&genesis_of(&balances)).unwrap();
            for b in &chain {
                follower.apply(b).unwrap();
            }
            prop_assert_eq!(follower.state().root(), produced.state().root());
            prop_assert_eq!(follower.head(), produced.head());
            prop_assert_eq!(follower.state().supply(), genesis(&balances).supply());
        }
    }
}

#[test]
fn the_same_transaction_offered_twice_enters_a_block_once() {
    let balances = [1_000, 1_000];
    let chain = Chain::new(&genesis_of(&balances)).unwrap();
    let pay = tx(
        &key(0),
        0,
        Op::Transfer {
            to: key(1).id(),
            amount: Amount(5),
        },
    );
    let p = chain
        .propose(&key(VALIDATOR), vec![pay.clone(), pay.clone()], 0)
        .unwrap();
    assert_eq!(p.block.txs, vec![pay.clone()]);
    assert_eq!(p.rejected, vec![(pay.id(), Rejection::Nonce { got: 0, want: 1 })]);
    // The property test's check of a block holds here too.
    let (_, blocks) = blocks(&balances, &[pay.clone(), pay], 3);
    assert_eq!(blocks[0].txs.len(), 1);
}

#[test]
fn a_block_check_takes_as_verified_only_the_signatures_the_caller_names() {
    let chain = Chain::new(&genesis_of(&[1_000, 1_000])).unwrap();
    let pay = |from: u8, nonce| {
        tx(
            &key(from),
            nonce,
            Op::Transfer {
                to: key(1 - from).id(),
                amount: Amount(5),
            },
        )
    };
    let good = pay(0, 0);
    let mut forged = pay(1, 0);
    forged.signature = pay(0, 1).signature;
    // A leader that skipped verifying (as from a pool) can build it...
    let block = chain
        .propose_verified(&key(VALIDATOR), vec![good, forged], 0)
        .unwrap()
        .block;
    assert_eq!(block.txs.len(), 2);
    // ...and every check refuses it unless told the forged one is verified.
    let refused = |r: Result<_, BlockError>| matches!(r, Err(BlockError::Tx { index: 1, .. }));
    assert!(refused(chain.check(&block)));
    assert!(refused(chain.check_with(&block, &[])));
    assert!(refused(chain.check_with(&block, &[true])));
    assert!(refused(chain.check_with(&block, &[true, false])));
    assert!(chain.check_with(&block, &[true, true]).is_ok());
}

/// A header like `b`'s with `edit` applied, re-signed by `signer`.
fn reforge(b: &Block, signer: &NodeKey, edit: impl FnOnce(&mut Header)) -> Block {
    let mut h = b.open_header().unwrap();
    edit(&mut h);
    h.producer = signer.id();
    Block {
        header: Signed::sign(signer, &h).unwrap(),
        txs: b.txs.clone(),
        certificate: Vec::new(),
    }
}

#[test]
fn each_bad_block_is_refused_for_its_reason_and_changes_nothing() {
    let balances = [1_000, 1_000];
    genesis_of(&balances);
    let transfer = |nonce, amount| {
        tx(
            &key(0),
            nonce,
            Op::Transfer {
                to: key(1).id(),
                amount: Amount(amount),
            },
        )
    };
    let (_, good) = blocks(&balances, &[transfer(0, 5), transfer(1, 7)], 1);
    let v = key(VALIDATOR);
    let mut chain = Chain::new(&genesis_of(&balances)).unwrap();
    chain.apply(&good[0]).unwrap();
    let (height, head, root) = (chain.height(), chain.head(), chain.state().root());
    let next = &good[1];
    let refused = |chain: &mut Chain, b: &Block| {
        let err = chain.apply(b).unwrap_err();
        assert_eq!(
            (chain.height(), chain.head(), chain.state().root()),
            (height, head, root)
        );
        err
    };
    // A wrong state root.
    let bad = reforge(next, &v, |h| h.state_root = ContentId::of(b"not the state"));
    assert!(matches!(
        refused(&mut chain, &bad),
        BlockError::StateRoot { height: 2, .. }
    ));
    // A broken hash link.
    let bad = reforge(next, &v, |h| h.prev = ContentId::of(b"elsewhere"));
    assert!(matches!(refused(&mut chain, &bad), BlockError::Link { height: 2, .. }));
    // The wrong height: the block already applied, and one skipping ahead.
    assert!(matches!(
        refused(&mut chain, &good[0]),
        BlockError::Height { got: 1, want: 2 }
    ));
    let bad = reforge(next, &v, |h| h.height = 3);
    assert!(matches!(
        refused(&mut chain, &bad),
        BlockError::Height { got: 3, want: 2 }
    ));
    // Produced by someone who is not a validator.
    let bad = reforge(next, &key(1), |_| {});
    assert!(matches!(refused(&mut chain, &bad), BlockError::NotValidator { .. }));
    // A header whose signature does not match.
    let mut bad = next.clone();
    bad.header.signature = good[0].header.signature;
    assert!(matches!(refused(&mut chain, &bad), BlockError::Header(_)));
    // Transactions swapped under a signed header.
    let mut bad = next.clone();
    bad.txs = vec![transfer(1, 8)];
    assert!(matches!(refused(&mut chain, &bad), BlockError::Txs { height: 2 }));
    // A rejected transaction (a replay) smuggled into a block by its producer.
    let mut bad = next.clone();
    bad.txs = vec![transfer(0, 5)];
    let bad = reforge(&bad, &v, |h| h.txs = txs_root(&[transfer(0, 5)]));
    match refused(&mut chain, &bad) {
        BlockError::Tx {
            index: 0, rejection, ..
        } => {
            assert!(matches!(*rejection, Rejection::Nonce { got: 0, want: 1 }));
        }
        other => panic!("{other}"),
    }
    // A forged transaction (signed by another key than its signer) under a
    // correctly signed header: the batch fails, the one-by-one check names it.
    let mut forged = transfer(1, 7);
    forged.signature = tx(&key(1), 0, Op::CloseExpired { escrow: job_id(0) }).signature;
    let mut bad = next.clone();
    bad.txs = vec![forged.clone()];
    let bad = reforge(&bad, &v, |h| h.txs = txs_root(&[forged]));
    match refused(&mut chain, &bad) {
        BlockError::Tx {
            index: 0, rejection, ..
        } => {
            assert!(matches!(*rejection, Rejection::Invalid(_)), "{rejection}");
        }
        other => panic!("{other}"),
    }
    // More bytes of transactions than any block may carry.
    let mut big = next.clone();
    big.txs = (0..9u8)
        .map(|i| {
            let mut t = transfer(1, 7);
            t.body = vec![i; 1 << 20];
            t
        })
        .collect();
    let big_txs = big.txs.clone();
    let big = reforge(&big, &v, |h| h.txs = txs_root(&big_txs));
    assert!(matches!(
        refused(&mut chain, &big),
        BlockError::TooMany { count: 9, .. }
    ));
    // Time going backwards.
    let mut later = chain.clone();
    let p = later.propose(&v, vec![], 50).unwrap();
    later.commit(p);
    let p = later.propose(&v, vec![], 60).unwrap();
    let bad = reforge(&p.block, &v, |h| h.time_ms = 10);
    assert!(matches!(
        later.apply(&bad),
        Err(BlockError::Time {
            time_ms: 10,
            prev_ms: 50,
            ..
        })
    ));
    // The good block still applies after all that.
    chain.apply(next).unwrap();
    assert_eq!(chain.state().balance(&key(1).id()), Amount(1_000 + 5 + 7));
}

#[test]
fn each_bad_transaction_is_rejected_for_its_reason() {
    let mut s = genesis(&[10_000, 100, 100, 100]);
    let (req, p1, p2) = (key(0), key(1), key(2));
    let open = |nonce, job: u8| {
        tx(
            &req,
            nonce,
            Op::OpenEscrow {
                quorum: 2,
                min_stake: Amount(0),
                escrow: job_id(job),
                budget: Amount(5_000),
                tasks: vec![task(1), task(2)],
                claim_height: 10,
                close_height: 20,
            },
        )
    };
    s.apply(&open(0, 1), 1).unwrap();
    // Replay.
    assert!(matches!(
        s.apply(&open(0, 1), 2),
        Err(Rejection::Nonce { got: 0, want: 1 })
    ));
    // Bad signature.
    let mut forged = tx(
        &p1,
        0,
        Op::Transfer {
            to: p2.id(),
            amount: Amount(1),
        },
    );
    forged.signature = tx(
        &p2,
        0,
        Op::Transfer {
            to: p1.id(),
            amount: Amount(1),
        },
    )
    .signature;
    assert!(matches!(s.apply(&forged, 2), Err(Rejection::Invalid(_))));
    // Insufficient funds.
    let broke = tx(
        &p1,
        0,
        Op::Transfer {
            to: p2.id(),
            amount: Amount(1_000),
        },
    );
    assert!(matches!(s.apply(&broke, 2), Err(Rejection::InsufficientFunds { .. })));
    // Expired.
    let mut late = Tx {
        version: TX_VERSION,
        chain: chain_id(),
        signer: p1.id(),
        nonce: 0,
        fee: Amount(1),
        expires_at_height: 1,
        op: Op::Transfer {
            to: p2.id(),
            amount: Amount(1),
        },
    };
    assert!(matches!(
        s.apply(&Signed::sign(&p1, &late).unwrap(), 2),
        Err(Rejection::Expired { .. })
    ));
    late.expires_at_height = 5;
    // Settling someone else's escrow.
    let theirs = tx(
        &p1,
        0,
        Op::Settle {
            escrow: job_id(1),
            paid: vec![proof(job_id(1), &req, &p1, task(1), 1_000_000_000, 0)],
            last: false,
        },
    );
    assert!(matches!(s.apply(&theirs, 2), Err(Rejection::NotOwner { .. })));
    // A receipt for a task not in the job.
    let stray = tx(
        &req,
        1,
        Op::Settle {
            escrow: job_id(1),
            paid: vec![proof(job_id(1), &req, &p1, task(9), 1_000_000_000, 0)],
            last: false,
        },
    );
    assert!(matches!(s.apply(&stray, 2), Err(Rejection::TaskNotInJob(_))));
    // An assignment made for another job's escrow.
    let elsewhere = tx(
        &req,
        1,
        Op::Settle {
            escrow: job_id(1),
            paid: vec![proof(job_id(2), &req, &p1, task(1), 1_000_000_000, 0)],
            last: false,
        },
    );
    assert!(matches!(s.apply(&elsewhere, 2), Err(Rejection::BadProof(_))));
    // A receipt above the agreed price.
    let dear = tx(
        &req,
        1,
        Op::Settle {
            escrow: job_id(1),
            paid: vec![proof(job_id(1), &req, &p1, task(1), 1_000_000_000, 5)],
            last: false,
        },
    );
    assert!(matches!(s.apply(&dear, 2), Err(Rejection::OverPrice { .. })));
    // And one below it: the ledger pays exactly what was agreed, as the
    // requestor checks (one rule, `sharegrid_core::check_receipt`).
    let cheap = tx(
        &req,
        1,
        Op::Settle {
            escrow: job_id(1),
            paid: vec![proof(job_id(1), &req, &p1, task(1), 1_000_000_000, -5)],
            last: false,
        },
    );
    assert!(matches!(s.apply(&cheap, 2), Err(Rejection::OverPrice { .. })));
    // A good batch pays provider and network fee; a second payment is refused.
    let before = s.balance(&p1.id());
    let good = tx(
        &req,
        1,
        Op::Settle {
            escrow: job_id(1),
            paid: vec![proof(job_id(1), &req, &p1, task(1), 20_000_000_000, 0)],
            last: false,
        },
    );
    s.apply(&good, 3).unwrap();
    assert_eq!(s.balance(&p1.id()).0, before.0 + 200);
    // A claim before the claim height, then a double claim.
    let claim = |nonce| {
        tx(
            &p1,
            nonce,
            Op::Claim {
                agreeing: vec![],
                escrow: job_id(1),
                paid: proof(job_id(1), &req, &p1, task(1), 20_000_000_000, 0),
            },
        )
    };
    assert!(matches!(s.apply(&claim(0), 4), Err(Rejection::TooEarly { .. })));
    assert!(matches!(s.apply(&claim(0), 10), Err(Rejection::AlreadyPaid(_))));
    // The other task, claimed by its provider after the requestor vanished.
    let other = tx(
        &p2,
        0,
        Op::Claim {
            agreeing: vec![],
            escrow: job_id(1),
            paid: proof(job_id(1), &req, &p2, task(2), 10_000_000_000, 0),
        },
    );
    // Alone, with no agreeing receipt, it is held for the challenge window.
    s.apply(&other, 11).unwrap();
    assert_eq!(s.balance(&p2.id()).0, 100 - 1);
    let held = s.claims[&(job_id(1), task(2), p2.id())].clone();
    assert_eq!((held.charge, held.fee, held.payable_from), (Amount(100), Amount(2), 71));
    let collect = |nonce| {
        tx(
            &p2,
            nonce,
            Op::Collect {
                escrow: job_id(1),
                task: task(2),
            },
        )
    };
    assert!(matches!(
        s.apply(&collect(1), 70),
        Err(Rejection::TooEarly { from: 71, .. })
    ));
    // Closing: refund to the requestor, to the unit.
    let supply = s.supply();
    let req_before = s.balance(&req.id());
    let left = s.escrows[&job_id(1)].left;
    s.apply(&tx(&p1, 0, Op::CloseExpired { escrow: job_id(1) }), 20)
        .unwrap();
    assert_eq!(s.balance(&req.id()).0, req_before.0 + left.0);
    assert_eq!(s.supply(), supply);
    // Escrow: 5000 = 200 + 5 (fee) + 100 + 2 (fee, held) + refund 4693.
    assert_eq!(left.0, 5_000 - 200 - 5 - 100 - 2);
    // The held claim outlives its escrow and is collected after its window.
    s.apply(&collect(1), 71).unwrap();
    assert_eq!(s.balance(&p2.id()).0, 100 - 1 + 100 - 1);
    assert!(s.claims.is_empty());
    assert!(matches!(s.apply(&collect(2), 72), Err(Rejection::NoClaim(_))));
    assert_eq!(s.supply(), supply);
    // Signed for another network: refused whatever it does.
    let mut elsewhere = Tx {
        chain: ContentId::of(b"another network"),
        nonce: 1,
        expires_at_height: 100,
        ..late
    };
    assert!(matches!(
        s.apply(&Signed::sign(&p1, &elsewhere).unwrap(), 72),
        Err(Rejection::WrongChain { .. })
    ));
    elsewhere.chain = chain_id();
    s.apply(&Signed::sign(&p1, &elsewhere).unwrap(), 72).unwrap();
}

#[test]
fn a_provider_with_no_balance_pays_its_claims_fees_from_the_claim() {
    let mut s = genesis(&[10_000, 0]);
    let (req, p) = (key(0), key(1));
    let open = Op::OpenEscrow {
        quorum: 2,
        min_stake: Amount(0),
        escrow: job_id(1),
        budget: Amount(1_000),
        tasks: vec![task(1)],
        claim_height: 2,
        close_height: 9,
    };
    s.apply(&tx(&req, 0, open), 1).unwrap();
    let claim = tx(
        &p,
        0,
        Op::Claim {
            agreeing: vec![],
            escrow: job_id(1),
            paid: proof(job_id(1), &req, &p, task(1), 10_000_000_000, 0),
        },
    );
    // 10 Gfuel at 10/Gfuel: 100 held, less the fee of 1; then collected,
    // less another fee.
    s.apply(&claim, 2).unwrap();
    assert_eq!(s.balance(&p.id()), Amount(0));
    assert_eq!(s.claims[&(job_id(1), task(1), p.id())].charge, Amount(99));
    let collect = Op::Collect {
        escrow: job_id(1),
        task: task(1),
    };
    s.apply(&tx(&p, 1, collect), 62).unwrap();
    assert_eq!(s.balance(&p.id()), Amount(98));
    // A claim that pays nothing (already paid) still cannot run up a debt.
    let again = tx(
        &p,
        2,
        Op::Claim {
            agreeing: vec![],
            escrow: job_id(1),
            paid: proof(job_id(1), &req, &p, task(1), 10_000_000_000, 0),
        },
    );
    assert!(matches!(s.apply(&again, 63), Err(Rejection::AlreadyPaid(_))));
}

#[test]
fn an_escrow_pays_a_run_only_while_open_funded_and_for_its_own_task() {
    let (requestor, provider, other) = (key(0), key(1), key(2));
    let mut state = genesis(&[1_000_000, 1_000, 1_000_000]);
    let escrow = ContentId::of(b"job");
    let open = Op::OpenEscrow {
        quorum: 2,
        min_stake: Amount(0),
        escrow,
        budget: Amount(1_000),
        tasks: vec![task(1), task(2)],
        claim_height: 5,
        close_height: 10,
    };
    let assignment = |t: TaskId, fuel: u64, escrow: Option<ContentId>| {
        let mut program = Program::new(ContentId::of(b"m"), ContentId::of(b""));
        program.limits.fuel = Fuel(fuel);
        let terms = Terms {
            chain: chain_id(),
            requestor: requestor.id(),
            provider: provider.id(),
            price: PricePerGfuel(Amount(10)),
            escrow,
        };
        Assignment::new(t, vec![], &program, terms, 0)
    };
    let a = assignment(task(1), 50 * Fuel::GIGA.0, Some(escrow));
    assert_eq!(state.can_pay(&a, 1), Err(Unpayable::NotOpen(escrow)), "not funded yet");
    state.apply(&tx(&requestor, 0, open), 1).unwrap();
    // 50 Gfuel at 10 = 500, plus 2.5% = 512.
    assert_eq!(state.can_pay(&a, 2), Ok(Amount(512)));
    assert_eq!(state.most_a_run_costs(&a), Some(Amount(512)));
    assert_eq!(
        state.can_pay(&assignment(task(1), 0, None), 2),
        Err(Unpayable::NoEscrow)
    );
    let not_its = assignment(task(3), 1, Some(escrow));
    assert!(matches!(state.can_pay(&not_its, 2), Err(Unpayable::NotItsTask { .. })));
    let too_big = assignment(task(1), 100 * Fuel::GIGA.0, Some(escrow));
    assert!(matches!(
        state.can_pay(&too_big, 2),
        Err(Unpayable::Short { need: Amount(1025), .. })
    ));
    let mut theirs = a.clone();
    theirs.requestor = other.id();
    assert_eq!(state.can_pay(&theirs, 2), Err(Unpayable::OtherRequestor(escrow)));
    assert!(matches!(
        state.can_pay(&a, 10),
        Err(Unpayable::Closing { close_height: 10, .. })
    ));
    // Paid once for task 1: this provider's second run of it is not paid.
    let pay = Op::Settle {
        escrow,
        paid: vec![proof(escrow, &requestor, &provider, task(1), Fuel::GIGA.0, 0)],
        last: false,
    };
    state.apply(&tx(&requestor, 1, pay), 3).unwrap();
    assert_eq!(state.can_pay(&a, 3), Err(Unpayable::AlreadyPaid(task(1))));
    // Closed: nothing more is paid.
    state.apply(&tx(&other, 0, Op::CloseExpired { escrow }), 10).unwrap();
    let b = assignment(task(2), 1, Some(escrow));
    assert_eq!(state.can_pay(&b, 11), Err(Unpayable::NotOpen(escrow)));
}
