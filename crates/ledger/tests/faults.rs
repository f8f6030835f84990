//! Stake, held claims, disputes and verdicts: each rule on its own, and
//! under random sequences the properties that make payment trustless —
//! supply conserved to the unit, a rejected transaction changes nothing,
//! and a slash never touches a provider whose receipts were honest.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use proptest::prelude::*;
use sharegrid_core::{Amount, ContentId, Fuel, NodeKey};
use sharegrid_ledger::{Op, Paid, Rejection, State};

const REQ: u8 = 0;
const GIGA: u64 = 1_000_000_000;

/// The requestor opens job 1's escrow for tasks 0..4 at `height`: claims
/// from 2 blocks on, closable `lasts` blocks on.
fn open_escrow(s: &mut State, min_stake: u128, height: u64, lasts: u64) -> Result<(), Rejection> {
    let op = Op::OpenEscrow {
        escrow: job_id(1),
        budget: Amount(100_000),
        tasks: (0..4).map(task).collect(),
        claim_height: height + 2,
        close_height: height + lasts,
        quorum: 2,
        min_stake: Amount(min_stake),
    };
    apply(s, &key(REQ), op, height)
}

/// [`open_escrow`] at height 1, closable from 501.
fn open(s: &mut State, min_stake: u128) {
    open_escrow(s, min_stake, 1, 500).unwrap();
}

fn job_id(j: u8) -> ContentId {
    ContentId::of(&[b'j', j])
}

fn nonce(s: &State, k: &NodeKey) -> u64 {
    s.accounts.get(&k.id()).map_or(0, |a| a.nonce)
}

fn apply(s: &mut State, k: &NodeKey, op: Op, height: u64) -> Result<(), Rejection> {
    let n = nonce(s, k);
    s.apply(&tx(k, n, op), height)
}

fn bond(s: &mut State, who: u8, amount: u128) {
    apply(s, &key(who), Op::Bond { amount: Amount(amount) }, 1).unwrap();
}

/// `who`'s proof for task `t` of job `j`: `lie` changes the result.
fn pair(j: u8, who: u8, t: u8, fuel: u64, lie: bool) -> Paid {
    let says = Said::Result(if lie { 66 } else { TRUE_RESULT });
    said(job_id(j), &key(REQ), &key(who), task(t), fuel, 0, says)
}

fn claim(s: &mut State, who: u8, paid: Paid, agreeing: Vec<Paid>, height: u64) -> Result<(), Rejection> {
    let escrow = job_id(1);
    apply(s, &key(who), Op::Claim { escrow, paid, agreeing }, height)
}

/// A dispute over task `t` of job 1.
fn dispute(t: u8, evidence: Vec<Paid>) -> Op {
    Op::Dispute {
        escrow: job_id(1),
        task: task(t),
        evidence,
    }
}

/// Collecting the held claim for task `t` of job 1.
fn collect(t: u8) -> Op {
    Op::Collect {
        escrow: job_id(1),
        task: task(t),
    }
}

/// Ending the dispute over task `t` of job 1.
fn lapse(t: u8) -> Op {
    Op::Lapse {
        escrow: job_id(1),
        task: task(t),
    }
}

/// A verdict on task `t` of job 1: result `[n; 32]`, `fuel`.
fn verdict_op(t: u8, n: u8, fuel: u64) -> Op {
    Op::Verdict {
        escrow: job_id(1),
        task: task(t),
        result: result(n),
        fuel: Fuel(fuel),
    }
}

fn verdict(s: &mut State, t: u8, fuel: u64, height: u64) -> Result<(), Rejection> {
    let op = verdict_op(t, TRUE_RESULT, fuel);
    apply(s, &key(VALIDATOR), op, height)
}

fn slashable(s: &State, who: u8) -> u128 {
    s.slashable(&key(who).id())
}

#[test]
fn stake_bonds_unbonds_after_its_period_and_stays_slashable_meanwhile() {
    let mut s = genesis(&[1_000_000, 10_000]);
    let supply = s.supply();
    let p = key(1);
    assert!(matches!(
        apply(&mut s, &p, Op::Bond { amount: Amount(20_000) }, 1),
        Err(Rejection::InsufficientFunds { .. })
    ));
    assert!(matches!(
        apply(&mut s, &p, Op::Bond { amount: Amount(0) }, 1),
        Err(Rejection::Stake(_))
    ));
    apply(&mut s, &p, Op::Bond { amount: Amount(8_000) }, 1).unwrap();
    assert_eq!((s.stake(&p.id()), s.balance(&p.id())), (Amount(8_000), Amount(1_999)));
    assert!(matches!(
        apply(&mut s, &p, Op::Unbond { amount: Amount(9_000) }, 2),
        Err(Rejection::Stake(_))
    ));
    assert!(matches!(apply(&mut s, &p, Op::Withdraw, 2), Err(Rejection::Stake(_))));
    apply(&mut s, &p, Op::Unbond { amount: Amount(3_000) }, 10).unwrap();
    let st = s.stakes[&p.id()];
    assert_eq!(
        (st.bonded, st.unbonding, st.release_height),
        (Amount(5_000), Amount(3_000), 610)
    );
    assert!(matches!(
        apply(&mut s, &p, Op::Withdraw, 609),
        Err(Rejection::TooEarly { from: 610, .. })
    ));
    apply(&mut s, &p, Op::Withdraw, 610).unwrap();
    assert_eq!(
        (s.stake(&p.id()), s.balance(&p.id())),
        (Amount(5_000), Amount(1_999 - 1 + 3_000 - 1))
    );
    assert_eq!(s.supply(), supply);
}

#[test]
fn a_claim_pays_at_once_only_with_agreeing_staked_receipts_and_for_the_least_fuel() {
    let mut s = genesis(&[1_000_000, 10_000, 10_000, 10_000]);
    bond(&mut s, 1, 5_000);
    bond(&mut s, 2, 5_000);
    open(&mut s, 1_000);
    // Provider 1 says 10 Gfuel, provider 2 (agreeing) says 8: paid for 8.
    let before = s.balance(&key(1).id());
    claim(
        &mut s,
        1,
        pair(1, 1, 0, 10 * GIGA, false),
        vec![pair(1, 2, 0, 8 * GIGA, false)],
        3,
    )
    .unwrap();
    assert_eq!(s.balance(&key(1).id()).0, before.0 - 1 + 80);
    assert!(s.claims.is_empty(), "paid at once, not held");
    // Provider 3 has no stake: its agreement does not count, and the claim is held.
    claim(
        &mut s,
        1,
        pair(1, 1, 1, 10 * GIGA, false),
        vec![pair(1, 3, 1, 10 * GIGA, false)],
        3,
    )
    .unwrap();
    assert_eq!(s.claims[&(job_id(1), task(1), key(1).id())].charge, Amount(100));
    // A receipt that does not agree is no support: refused, nothing changes.
    let before = s.clone();
    let e = claim(
        &mut s,
        2,
        pair(1, 2, 2, GIGA, false),
        vec![pair(1, 1, 2, GIGA, true)],
        3,
    );
    assert!(matches!(e, Err(Rejection::BadProof(_))), "{e:?}");
    assert_eq!(s, before);
    // The same provider twice, and the claimant as its own support.
    let e = claim(
        &mut s,
        2,
        pair(1, 2, 2, GIGA, false),
        vec![pair(1, 2, 2, GIGA, false)],
        3,
    );
    assert!(matches!(e, Err(Rejection::BadProof(_))), "{e:?}");
    // A timed-out run is never claimable: it proves nothing.
    let late = said(job_id(1), &key(REQ), &key(2), task(3), GIGA, 0, Said::Timeout);
    assert!(matches!(claim(&mut s, 2, late, vec![], 3), Err(Rejection::BadProof(_))));
    assert_eq!(s, before);
}

#[test]
fn a_lying_claim_disputed_is_slashed_the_reporter_rewarded_and_the_honest_claim_paid() {
    let mut s = genesis(&[1_000_000, 10_000, 10_000, 10_000]);
    let supply = s.supply();
    bond(&mut s, 1, 4_000);
    bond(&mut s, 2, 6_000);
    open(&mut s, 0);
    // The requestor vanished. The liar (2) and the honest provider (1) each
    // claim task 0 alone: both held.
    claim(&mut s, 2, pair(1, 2, 0, 5 * GIGA, true), vec![], 3).unwrap();
    claim(&mut s, 1, pair(1, 1, 0, 5 * GIGA, false), vec![], 3).unwrap();
    assert_eq!(s.claims.len(), 2);
    let left = s.escrows[&job_id(1)].left;
    // The honest provider disputes, with its own receipt as evidence.
    let report = dispute(0, vec![pair(1, 1, 0, 5 * GIGA, false)]);
    apply(&mut s, &key(1), report.clone(), 4).unwrap();
    assert!(matches!(apply(&mut s, &key(3), report, 4), Err(Rejection::Dispute(_))));
    // No one collects while it is open.
    let take = collect(0);
    assert!(matches!(
        apply(&mut s, &key(1), take.clone(), 100),
        Err(Rejection::Dispute(_))
    ));
    // Only a validator judges.
    let fake = verdict_op(0, 66, 5 * GIGA);
    assert!(matches!(
        apply(&mut s, &key(3), fake, 5),
        Err(Rejection::NotValidator(_))
    ));
    let (b1, b2, v, t) = (
        s.balance(&key(1).id()).0,
        s.balance(&key(2).id()).0,
        s.balance(&key(VALIDATOR).id()).0,
        s.balance(&key(TREASURY).id()).0,
    );
    verdict(&mut s, 0, 5 * GIGA, 6).unwrap();
    // The liar loses half its stake (3,000): 50 pays the re-execution (5
    // Gfuel at 10), half the rest (1,475) goes to the reporter, the rest to
    // the treasury. Its held claim (50 + 1) goes back to the escrow.
    assert_eq!(slashable(&s, 2), 3_000);
    assert_eq!(slashable(&s, 1), 4_000, "the honest provider's stake is untouched");
    assert_eq!(s.balance(&key(2).id()).0, b2);
    assert_eq!(
        s.balance(&key(1).id()).0,
        b1 + 1_000 + 1_475 + 50,
        "bond back, reward, its claim"
    );
    assert_eq!(s.balance(&key(VALIDATOR).id()).0, v + 50 - 1);
    assert_eq!(s.balance(&key(TREASURY).id()).0, t + 1 + 1_475 + 1);
    assert_eq!(s.escrows[&job_id(1)].left.0, left.0 + 51);
    assert!(s.claims.is_empty() && s.disputes.is_empty());
    assert!(matches!(verdict(&mut s, 0, 5 * GIGA, 7), Err(Rejection::Dispute(_))));
    assert!(matches!(apply(&mut s, &key(1), take, 100), Err(Rejection::NoClaim(_))));
    assert_eq!(s.supply(), supply);
}

#[test]
fn one_wrong_receipt_is_slashed_once_however_often_it_comes_before_the_ledger() {
    let mut s = genesis(&[1_000_000, 10_000, 10_000, 10_000]);
    let supply = s.supply();
    bond(&mut s, 1, 4_000);
    bond(&mut s, 2, 6_000);
    open(&mut s, 0);
    // The liar (2) claims task 0 alone; the validator's audit judges it
    // before the honest provider's claim comes in.
    let lie = pair(1, 2, 0, 5 * GIGA, true);
    claim(&mut s, 2, lie.clone(), vec![], 3).unwrap();
    verdict(&mut s, 0, 5 * GIGA, 4).unwrap();
    assert_eq!(slashable(&s, 2), 3_000);
    claim(&mut s, 1, pair(1, 1, 0, 5 * GIGA, false), vec![], 5).unwrap();
    // The liar's node disputes the honest claim with the same wrong
    // receipt, and a third party reports it too: both refused, nothing
    // changes, however the wrong receipt comes back.
    let before = s.clone();
    let again = apply(&mut s, &key(2), dispute(0, vec![lie.clone()]), 5);
    assert!(
        matches!(&again, Err(Rejection::Dispute(why)) if why.contains("already")),
        "{again:?}"
    );
    let third = dispute(0, vec![pair(1, 1, 0, 5 * GIGA, false), lie]);
    assert!(matches!(apply(&mut s, &key(3), third, 5), Err(Rejection::Dispute(_))));
    assert_eq!(s, before);
    // Task 1: the liar's wrong receipt is judged as evidence in a dispute
    // it never claimed; its claim after is refused.
    let lie1 = pair(1, 2, 1, GIGA, true);
    apply(
        &mut s,
        &key(1),
        dispute(1, vec![pair(1, 1, 1, GIGA, false), lie1.clone()]),
        6,
    )
    .unwrap();
    verdict(&mut s, 1, GIGA, 7).unwrap();
    assert_eq!(slashable(&s, 2), 1_500);
    assert!(matches!(claim(&mut s, 2, lie1, vec![], 8), Err(Rejection::BadProof(_))));
    // The honest held claim of task 0 is audited and paid; the liar's stake
    // is not touched again.
    let honest = s.balance(&key(1).id()).0;
    verdict(&mut s, 0, 5 * GIGA, 9).unwrap();
    assert_eq!(s.balance(&key(1).id()).0, honest + 50);
    assert_eq!((slashable(&s, 1), slashable(&s, 2)), (4_000, 1_500));
    assert!(s.claims.is_empty() && s.disputes.is_empty());
    assert_eq!(s.supply(), supply);
}

#[test]
fn inflated_fuel_is_a_fault_and_receipts_that_agree_are_no_evidence() {
    let mut s = genesis(&[1_000_000, 10_000, 10_000, 10_000]);
    let supply = s.supply();
    bond(&mut s, 1, 4_000);
    bond(&mut s, 2, 4_000);
    open(&mut s, 0);
    let agree = dispute(0, vec![pair(1, 1, 0, GIGA, false), pair(1, 2, 0, GIGA, false)]);
    assert!(matches!(apply(&mut s, &key(3), agree, 2), Err(Rejection::Dispute(_))));
    // Provider 2 reported 9 Gfuel for a 1 Gfuel run (the same result);
    // provider 3 reports the two receipts.
    let report = dispute(0, vec![pair(1, 1, 0, GIGA, false), pair(1, 2, 0, 9 * GIGA, false)]);
    apply(&mut s, &key(3), report, 2).unwrap();
    let (reporter, validator) = (s.balance(&key(3).id()).0, s.balance(&key(VALIDATOR).id()).0);
    verdict(&mut s, 0, GIGA, 3).unwrap();
    assert_eq!((slashable(&s, 1), slashable(&s, 2)), (4_000, 2_000));
    // 2,000 slashed: 10 for the re-execution, half of the rest to the reporter.
    assert_eq!(s.balance(&key(3).id()).0, reporter + 1_000 + 995);
    assert_eq!(s.balance(&key(VALIDATOR).id()).0, validator + 10 - 1);
    assert_eq!(s.supply(), supply);
}

#[test]
fn a_report_that_accuses_no_one_wrongly_loses_its_bond() {
    let mut s = genesis(&[1_000_000, 10_000, 10_000, 10_000]);
    let supply = s.supply();
    bond(&mut s, 1, 4_000);
    open(&mut s, 0);
    claim(&mut s, 1, pair(1, 1, 0, GIGA, false), vec![], 3).unwrap();
    // Provider 3 disputes the held claim with no evidence of its own.
    apply(&mut s, &key(3), dispute(0, vec![]), 4).unwrap();
    let (reporter, honest, treasury) = (
        s.balance(&key(3).id()).0,
        s.balance(&key(1).id()).0,
        s.balance(&key(TREASURY).id()).0,
    );
    verdict(&mut s, 0, GIGA, 5).unwrap();
    assert_eq!(s.balance(&key(3).id()).0, reporter, "the bond is gone");
    assert_eq!(s.balance(&key(1).id()).0, honest + 10, "the honest claim is paid");
    assert_eq!(slashable(&s, 1), 4_000);
    assert_eq!(s.balance(&key(TREASURY).id()).0, treasury + 1 + 990);
    assert_eq!(s.supply(), supply);
}

#[test]
fn a_lone_claim_is_audited_and_a_dispute_no_one_judges_lapses() {
    let mut s = genesis(&[1_000_000, 10_000, 10_000, 10_000]);
    let supply = s.supply();
    open(&mut s, 0);
    // An unstaked provider fabricates a receipt for work it never did.
    let lone = pair(1, 2, 0, 90 * GIGA, true);
    claim(&mut s, 2, lone.clone(), vec![], 3).unwrap();
    // The validator is asked to re-run the whole task: its entry,
    // environment and mounted files as the signed assignment names them.
    let a: sharegrid_core::Assignment = lone.assignment.open(1 << 16).unwrap();
    let judged = s.to_judge();
    let rerun = &judged.iter().find(|(_, t, _)| *t == a.task).unwrap().2;
    assert_eq!((&rerun.program.launch, &rerun.program.mounts), (&a.launch, &a.mounts));
    assert!(!a.launch.is_default() && !a.mounts.is_empty());
    let left = s.escrows[&job_id(1)].left;
    // The validator's audit finds the true result: nothing is paid, the
    // held charge goes back; there is no stake to slash.
    verdict(&mut s, 0, GIGA, 4).unwrap();
    assert_eq!(s.escrows[&job_id(1)].left.0, left.0 + 900 + 22);
    assert!(s.claims.is_empty());
    // An honest lone claim audited: paid, and the requestor that did not
    // settle pays the re-execution from its escrow.
    claim(&mut s, 1, pair(1, 1, 1, GIGA, false), vec![], 5).unwrap();
    let (left, honest) = (s.escrows[&job_id(1)].left.0, s.balance(&key(1).id()).0);
    verdict(&mut s, 1, GIGA, 6).unwrap();
    assert_eq!(s.balance(&key(1).id()).0, honest + 10);
    assert_eq!(s.escrows[&job_id(1)].left.0, left - 10);
    // A dispute no validator judges lapses after its deadline: the bond
    // goes back, and the held claim can then be collected.
    claim(&mut s, 1, pair(1, 1, 2, GIGA, false), vec![], 7).unwrap();
    apply(&mut s, &key(3), dispute(2, vec![]), 8).unwrap();
    assert!(matches!(
        apply(&mut s, &key(3), lapse(2), 128),
        Err(Rejection::TooEarly { from: 129, .. })
    ));
    let reporter = s.balance(&key(3).id()).0;
    apply(&mut s, &key(3), lapse(2), 129).unwrap();
    assert_eq!(s.balance(&key(3).id()).0, reporter + 1_000 - 1);
    apply(&mut s, &key(1), collect(2), 129).unwrap();
    assert_eq!(s.supply(), supply);
}

#[test]
fn evidence_that_does_not_prove_a_fault_is_refused_and_changes_nothing() {
    let mut s = genesis(&[1_000_000, 10_000, 10_000, 10_000]);
    open(&mut s, 0);
    let before = s.clone();
    // Nothing held, nothing shown.
    let e = apply(&mut s, &key(3), dispute(0, vec![]), 2);
    assert!(matches!(e, Err(Rejection::Dispute(_))), "{e:?}");
    // A proof for another task.
    let e = apply(
        &mut s,
        &key(3),
        dispute(0, vec![pair(1, 1, 1, GIGA, false), pair(1, 2, 0, GIGA, true)]),
        2,
    );
    assert!(matches!(e, Err(Rejection::BadProof(_))), "{e:?}");
    // A timed-out run is no evidence.
    let late = said(job_id(1), &key(REQ), &key(2), task(0), GIGA, 0, Said::Timeout);
    let e = apply(&mut s, &key(3), dispute(0, vec![pair(1, 1, 0, GIGA, false), late]), 2);
    assert!(matches!(e, Err(Rejection::BadProof(_))), "{e:?}");
    // A verdict on nothing, and a verdict above the task's limit.
    assert!(matches!(verdict(&mut s, 0, GIGA, 2), Err(Rejection::Dispute(_))));
    assert_eq!(nonce(&s, &key(3)), 0);
    assert_eq!(s, before);
}

#[derive(Clone, Debug)]
enum Step {
    Bond { who: u8, amount: u128 },
    Unbond { who: u8, amount: u128 },
    Withdraw { who: u8 },
    Claim { who: u8, t: u8, with: Vec<u8> },
    Collect { who: u8, t: u8 },
    Dispute { by: u8, t: u8, accused: Vec<u8> },
    Verdict { t: u8 },
    Lapse { by: u8, t: u8 },
}

/// Providers 1 and 2 are honest; 3 and 4 lie on odd tasks and inflate fuel
/// on even ones.
fn lies(who: u8) -> bool {
    who >= 3
}

/// Task `t`'s true fuel.
fn true_fuel(t: u8) -> u64 {
    u64::from(t + 1) * GIGA
}

fn honest_or_not(j: u8, who: u8, t: u8) -> Paid {
    if !lies(who) {
        pair(j, who, t, true_fuel(t), false)
    } else if t % 2 == 1 {
        pair(j, who, t, true_fuel(t), true)
    } else {
        pair(j, who, t, true_fuel(t) * 3, false)
    }
}

fn step() -> impl Strategy<Value = Step> {
    let who = 1u8..5;
    let t = 0u8..4;
    prop_oneof![
        (who.clone(), 0u128..6_000).prop_map(|(who, amount)| Step::Bond { who, amount }),
        (who.clone(), 0u128..4_000).prop_map(|(who, amount)| Step::Unbond { who, amount }),
        who.clone().prop_map(|who| Step::Withdraw { who }),
        (who.clone(), t.clone(), prop::collection::vec(1u8..5, 0..3)).prop_map(|(who, t, with)| Step::Claim {
            who,
            t,
            with
        }),
        (who.clone(), t.clone()).prop_map(|(who, t)| Step::Collect { who, t }),
        (0u8..5, t.clone(), prop::collection::vec(1u8..5, 0..3)).prop_map(|(by, t, accused)| Step::Dispute {
            by,
            t,
            accused
        }),
        t.clone().prop_map(|t| Step::Verdict { t }),
        (0u8..5, t).prop_map(|(by, t)| Step::Lapse { by, t }),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, .. ProptestConfig::default() })]

    #[test]
    fn supply_is_exact_rejections_change_nothing_and_honest_stake_is_never_slashed(
        steps in prop::collection::vec(step(), 1..60),
    ) {
        let mut s = genesis(&[10_000_000, 20_000, 20_000, 20_000, 20_000]);
        let supply = s.supply();
        open(&mut s, 0);
        for (i, st) in steps.iter().enumerate() {
            // Heights run fast enough for windows, deadlines and unbonding to pass.
            let height = 2 + 40 * i as u64;
            let op = |st: &Step| -> (u8, Op) {
                match st {
                    Step::Bond { who, amount } => (*who, Op::Bond { amount: Amount(*amount) }),
                    Step::Unbond { who, amount } => (*who, Op::Unbond { amount: Amount(*amount) }),
                    Step::Withdraw { who } => (*who, Op::Withdraw),
                    Step::Claim { who, t, with } => (*who, Op::Claim {
                        escrow: job_id(1),
                        paid: honest_or_not(1, *who, *t),
                        agreeing: with.iter().map(|w| honest_or_not(1, *w, *t)).collect(),
                    }),
                    Step::Collect { who, t } => (*who, collect(*t)),
                    Step::Dispute { by, t, accused } => (*by, dispute(*t, accused.iter().map(|w| honest_or_not(1, *w, *t)).collect())),
                    Step::Verdict { t } => (VALIDATOR, verdict_op(*t, TRUE_RESULT, true_fuel(*t))),
                    Step::Lapse { by, t } => (*by, lapse(*t)),
                }
            };
            let (signer, op) = op(st);
            let before = s.clone();
            let honest_before: Vec<u128> = [1, 2].iter().map(|w| slashable(&s, *w)).collect();
            let result = apply(&mut s, &key(signer), op, height);
            if result.is_err() {
                prop_assert_eq!(&s, &before, "a rejected {:?} changed the state", st);
            }
            prop_assert_eq!(s.supply(), supply, "supply changed after {:?}", st);
            for (w, was) in [1u8, 2].iter().zip(honest_before) {
                let own = matches!(st, Step::Withdraw { who } if who == w);
                prop_assert!(own || slashable(&s, *w) >= was, "honest provider {} lost stake to {:?}", w, st);
            }
        }
    }
}

#[test]
fn a_held_claim_outlives_its_escrow_and_its_id_is_not_reused_until_it_ends() {
    let mut s = genesis(&[1_000_000, 0, 10_000, 10_000]);
    let supply = s.supply();
    let reopen = |s: &mut State, height: u64| open_escrow(s, 0, height, 3);
    reopen(&mut s, 1).unwrap();
    // Provider 1, with no balance, claims alone: held, its fee from the claim.
    claim(&mut s, 1, pair(1, 1, 1, GIGA, false), vec![], 3).unwrap();
    apply(&mut s, &key(3), Op::CloseExpired { escrow: job_id(1) }, 4).unwrap();
    assert!(s.escrows.is_empty() && s.claims.len() == 1);
    // The escrow's id cannot be opened again while the claim is held, so
    // the claim can neither be overwritten nor made twice.
    assert!(matches!(reopen(&mut s, 5), Err(Rejection::EscrowExists(_))));
    assert_eq!(s.supply(), supply);
    apply(&mut s, &key(1), collect(1), 63).unwrap();
    reopen(&mut s, 64).unwrap();
    assert!(matches!(
        claim(&mut s, 1, pair(1, 1, 1, GIGA, false), vec![], 63),
        Err(Rejection::TooEarly { .. })
    ));
    claim(&mut s, 1, pair(1, 1, 1, GIGA, false), vec![], 66).unwrap();
    assert_eq!(s.supply(), supply);
}
