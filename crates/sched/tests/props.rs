//! Properties of the scheduler over random providers (speeds, slots, prices,
//! faults, departures) and jobs (r, q, sizes), each run to its end in the
//! simulator: every task ends accepted or failed with a reason; nothing is
//! accepted without a quorum; replicas never share a provider; no wrong
//! result is ever accepted when q ≥ 2; money stays within the budget.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{HashMap, HashSet};

use proptest::prelude::*;
use sharegrid_core::{Amount, Determinism, Fuel, GigafuelPerSec, NodeKey, Offer, ResultHash, TaskId};
use sharegrid_sched::matching::price;
use sharegrid_sched::sim::{SimProvider, simulate};
use sharegrid_sched::{Action, Constraints, Event, JobPolicy, Reputation, Scheduler, TaskSpec, Vote};

fn constraints(ceiling: u128) -> Constraints {
    Constraints {
        min_stake: Amount(0),
        price_ceiling: price(ceiling),
        arch: None,
        min_memory: 0,
        min_speed: GigafuelPerSec(0.0),
        mode: Determinism::Native,
    }
}

fn tasks(n: usize, fuel: u64) -> Vec<(TaskId, Fuel)> {
    (0..n)
        .map(|i| {
            let mut b = [0u8; 32];
            b[..8].copy_from_slice(&(i as u64 + 1).to_le_bytes());
            (TaskId::from_bytes(b), Fuel(fuel + (i as u64 % 7) * fuel / 10))
        })
        .collect()
}

fn provider() -> impl Strategy<Value = SimProvider> {
    (
        1u32..=8,
        1u32..=4,
        1u128..=20,
        prop::bool::weighted(0.2),
        prop::option::weighted(0.25, 0u64..20_000),
    )
        .prop_map(|(speed, cores, price, faulty, leaves_at_ms)| SimProvider {
            speed: f64::from(speed),
            cores,
            price,
            faulty,
            leaves_at_ms,
        })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, .. ProptestConfig::default() })]

    #[test]
    fn every_task_ends_with_a_quorum_or_a_reason(
        providers in prop::collection::vec(provider(), 0..10),
        n in 1usize..40,
        r in 1u32..=3,
        q_off in 0u32..3,
        ceiling in 1u128..=20,
        seed in any::<u64>(),
    ) {
        let q = (r - q_off.min(r - 1)).max(1);
        let mut policy = JobPolicy::new(r, q, constraints(ceiling), Amount(u128::MAX / 4));
        policy.seed = seed;
        policy.no_match_grace_ms = Some(5_000);
        let tasks = tasks(n, 4_000_000_000);
        let rep = simulate(policy, &tasks, &providers, 2, 10_000_000);

        let last = rep.actions.last().expect("the job ends");
        prop_assert!(
            matches!(last, Action::JobDone | Action::JobFailed { .. }),
            "{last:?}\nproviders {providers:?} n {n} r {r} q {q} ceiling {ceiling} seed {seed}\n{:#?}",
            rep.actions
        );
        let mut ended: HashMap<TaskId, &Action> = HashMap::new();
        let mut replicas: HashSet<(TaskId, sharegrid_core::NodeId)> = HashSet::new();
        for a in &rep.actions {
            match a {
                Action::Dispatch { task, provider, .. } => {
                    prop_assert!(replicas.insert((*task, *provider)), "two replicas of {task:?} on one provider");
                    prop_assert!(!ended.contains_key(task), "dispatched after its end");
                }
                Action::Accepted { task, agreeing, .. } => {
                    prop_assert!(agreeing.len() as u32 >= q, "accepted with {} of {q}", agreeing.len());
                    let distinct: HashSet<_> = agreeing.iter().collect();
                    prop_assert_eq!(distinct.len(), agreeing.len());
                    prop_assert!(ended.insert(*task, a).is_none(), "ended twice");
                }
                Action::TaskFailed { task, reason, .. } => {
                    prop_assert!(!reason.is_empty());
                    prop_assert!(ended.insert(*task, a).is_none(), "ended twice");
                }
                _ => {}
            }
        }
        if matches!(last, Action::JobDone) {
            prop_assert_eq!(ended.len(), n, "every task accepted or failed");
        } else if let Action::JobFailed { reason } = last {
            prop_assert!(!reason.is_empty());
        }
        if q >= 2 {
            prop_assert_eq!(rep.wrong_accepted, 0);
        }
    }
}

#[test]
fn an_impossible_job_fails_fast_with_the_reasons_when_it_asks_to() {
    let providers: Vec<SimProvider> = (0..3)
        .map(|_| SimProvider {
            speed: 4.0,
            cores: 2,
            price: 50,
            faulty: false,
            leaves_at_ms: None,
        })
        .collect();
    let mut policy = JobPolicy::new(2, 2, constraints(10), Amount(1 << 60));
    policy.no_match_grace_ms = Some(10_000);
    let rep = simulate(policy, &tasks(5, 1_000_000_000), &providers, 1, 1_000_000);
    match rep.actions.last().unwrap() {
        Action::JobFailed { reason } => {
            assert_eq!(
                reason,
                "no provider qualifies: 3 providers: 3 over price ceiling 10/Gfuel"
            );
        }
        other => panic!("{other:?}"),
    }
    assert!(rep.makespan_ms <= 10_000, "fails within the grace period");
}

fn super_price(p: u128) -> sharegrid_core::PricePerGfuel {
    price(p)
}

fn offer(seed: u8, ask: u128) -> Offer {
    Offer {
        version: sharegrid_core::WIRE_VERSION,
        provider: NodeKey::from_seed([seed; 32]).id(),
        arch: sharegrid_core::Arch::X86_64,
        cores: 2,
        memory_bytes: 1 << 40,
        free_slots: 2,
        speed: GigafuelPerSec(4.0),
        price: super_price(ask),
        stake: Amount(0),
        modes: vec![Determinism::Native],
        software: "test".into(),
        seq: 1,
        expires_at_ms: u64::MAX,
    }
}

/// [`offer`] of one slot, at `speed` Gfuel/s, asking `ask`.
fn one_slot(seed: u8, speed: f64, ask: u128) -> Offer {
    Offer {
        cores: 1,
        free_slots: 1,
        speed: GigafuelPerSec(speed),
        ..offer(seed, ask)
    }
}

fn specs(n: usize) -> Vec<TaskSpec> {
    tasks(n, 1_000_000_000)
        .into_iter()
        .map(|(id, fuel_limit)| TaskSpec {
            id,
            fuel_limit,
            timeout_ms: 60_000,
        })
        .collect()
}

fn dispatches(actions: &[Action]) -> usize {
    actions.iter().filter(|a| matches!(a, Action::Dispatch { .. })).count()
}

#[test]
fn a_job_without_providers_waits_for_them_until_its_deadline() {
    let mut policy = JobPolicy::new(1, 1, constraints(10), Amount(1 << 60));
    policy.deadline_ms = Some(1_800_000);
    let mut s = Scheduler::new(policy, specs(3), Reputation::default(), 0);
    // Minutes pass with no provider: nothing fails, and the wait says why.
    for now in (0..=600_000).step_by(250) {
        let actions = s.poll(now);
        assert!(actions.is_empty(), "at {now} ms: {actions:?}");
    }
    let w = s.waiting().expect("waiting");
    assert_eq!((w.since_ms, w.tasks), (0, 3));
    assert_eq!(w.why, "no provider qualifies: no providers seen on the network");
    // A provider over the price ceiling does not end the wait…
    s.on_event(Event::Offer(offer(1, 50)), 600_000);
    assert!(s.poll(600_250).is_empty());
    assert!(
        s.waiting().unwrap().why.contains("over price ceiling"),
        "{:?}",
        s.waiting()
    );
    // …one that qualifies does: the tasks go to it at once.
    s.on_event(Event::Offer(offer(2, 5)), 700_000);
    assert_eq!(dispatches(&s.poll(700_000)), 2, "its two free slots");
    assert_eq!(s.waiting(), None);
}

#[test]
fn a_job_still_without_providers_at_its_deadline_fails_then_with_the_reason() {
    let mut policy = JobPolicy::new(1, 1, constraints(10), Amount(1 << 60));
    policy.deadline_ms = Some(60_000);
    let mut s = Scheduler::new(policy, specs(2), Reputation::default(), 0);
    assert!(s.poll(59_999).is_empty());
    match s.poll(60_000).as_slice() {
        [Action::JobFailed { reason }] => assert_eq!(
            reason,
            "deadline passed with 0 of 2 tasks accepted; 2 tasks waited 60 s for providers: \
             no provider qualifies: no providers seen on the network"
        ),
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_task_short_of_distinct_providers_waits_for_another_to_join() {
    let mut policy = JobPolicy::new(2, 2, constraints(10), Amount(1 << 60));
    policy.deadline_ms = Some(1_800_000);
    let mut s = Scheduler::new(policy, specs(2), Reputation::default(), 0);
    let one = offer(1, 5);
    s.on_event(Event::Offer(one.clone()), 0);
    let sent = s.poll(0);
    assert_eq!(dispatches(&sent), 2, "one replica of each task");
    for a in &sent {
        if let Action::Dispatch { task, .. } = a {
            s.on_event(
                Event::Receipt {
                    task: *task,
                    vote: Vote {
                        provider: one.provider,
                        result: ResultHash::from_bytes([9; 32]),
                        fuel: Fuel(1_000_000_000),
                    },
                    charge: Amount(5),
                    deterministic: true,
                },
                1_000,
            );
        }
    }
    for now in (1_000..=120_000).step_by(250) {
        let actions = s.poll(now);
        assert!(actions.is_empty(), "at {now} ms: {actions:?}");
    }
    let w = s.waiting().expect("waiting for a second provider");
    assert_eq!((w.since_ms, w.tasks), (1_000, 2));
    assert!(
        w.why.starts_with("needs 1 more distinct providers for a quorum of 2"),
        "{}",
        w.why
    );
    s.on_event(Event::Offer(offer(2, 5)), 130_000);
    assert_eq!(dispatches(&s.poll(130_000)), 2, "the second replicas");
}

#[test]
fn a_faulty_provider_never_wins_and_is_outvoted() {
    let mut providers: Vec<SimProvider> = (0..3)
        .map(|_| SimProvider {
            speed: 4.0,
            cores: 2,
            price: 1,
            faulty: false,
            leaves_at_ms: None,
        })
        .collect();
    providers[0].faulty = true;
    providers[0].speed = 8.0; // the fastest, so it gets work first
    let policy = JobPolicy::new(2, 2, constraints(10), Amount(1 << 60));
    let rep = simulate(policy, &tasks(20, 1_000_000_000), &providers, 1, 10_000_000);
    assert!(matches!(rep.actions.last().unwrap(), Action::JobDone));
    assert_eq!(rep.wrong_accepted, 0);
    let liar = rep.ids[0];
    let dissent: usize = rep
        .actions
        .iter()
        .filter_map(|a| match a {
            Action::Accepted { dissenting, .. } => Some(dissenting.iter().filter(|v| v.provider == liar).count()),
            _ => None,
        })
        .sum();
    assert!(dissent >= 1, "the liar's receipts are kept as evidence");
}

#[test]
fn too_few_distinct_providers_fails_the_task_with_a_reason_when_the_job_asks_to_fail_early() {
    let providers = vec![SimProvider {
        speed: 1.0,
        cores: 1,
        price: 1,
        faulty: false,
        leaves_at_ms: None,
    }];
    let mut policy = JobPolicy::new(2, 2, constraints(1), Amount(1 << 60));
    policy.no_match_grace_ms = Some(10_000);
    let rep = simulate(policy, &tasks(1, 1_000_000_000), &providers, 2, 10_000_000);
    let failed = rep.actions.iter().find_map(|a| match a {
        Action::TaskFailed { reason, votes, .. } => Some((reason.clone(), votes.len())),
        _ => None,
    });
    let (reason, votes) = failed.expect("the task fails");
    assert!(reason.contains("distinct providers"), "{reason}");
    assert_eq!(votes, 1, "the one receipt is kept");
    assert!(matches!(rep.actions.last().unwrap(), Action::JobDone));
}

#[test]
fn the_budget_is_never_exceeded() {
    let providers = vec![SimProvider {
        speed: 4.0,
        cores: 2,
        price: 10,
        faulty: false,
        leaves_at_ms: None,
    }];
    // Each task's worst case is 1 Gfuel × 10 = 10 units; 35 units pay for 3.
    let policy = JobPolicy::new(1, 1, constraints(10), Amount(35));
    let rep = simulate(policy, &tasks(10, 1_000_000_000), &providers, 1, 10_000_000);
    let accepted = rep
        .actions
        .iter()
        .filter(|a| matches!(a, Action::Accepted { .. }))
        .count();
    assert!(accepted <= 3, "{accepted}");
    match rep.actions.last().unwrap() {
        Action::JobFailed { reason } => assert!(reason.starts_with("budget exhausted"), "{reason}"),
        other => panic!("{other:?}"),
    }
}

/// Credibility: a provider with a long clean record and stake bonded is
/// accepted alone, except for the spot-checked share, which gets a second
/// replica; the same record without stake is always replicated.
#[test]
fn a_credible_staked_provider_is_accepted_alone_except_for_spot_checks() {
    use sharegrid_core::Offer;
    use sharegrid_core::{Arch, NodeKey, ResultHash};
    use sharegrid_sched::{Credibility, Event, Reputation, Scheduler, TaskSpec, Vote};
    let offer = |seed: u8| Offer {
        version: sharegrid_core::WIRE_VERSION,
        provider: NodeKey::from_seed([seed; 32]).id(),
        arch: Arch::X86_64,
        cores: 1000,
        memory_bytes: 1 << 40,
        free_slots: 1000,
        speed: GigafuelPerSec(if seed == 1 { 8.0 } else { 1.0 }),
        price: price(1),
        stake: Amount(if seed == 1 { 1_000 } else { 0 }),
        modes: vec![Determinism::Native],
        software: "test".into(),
        seq: 1,
        expires_at_ms: u64::MAX,
    };
    let (veteran, newcomer) = (offer(1), offer(2));
    let mut rep = Reputation::default();
    rep.entry(veteran.provider).agreed = 100_000;
    let mut policy = JobPolicy::new(2, 2, constraints(10), Amount(1 << 100));
    policy.credibility = Some(Credibility {
        threshold: 0.999,
        spot_check_rate: 0.2,
        saboteur_fraction: 0.1,
    });
    policy.seed = 7;
    policy.max_in_flight_per_provider = 1000;
    let specs: Vec<TaskSpec> = tasks(500, 1_000_000_000)
        .into_iter()
        .map(|(id, fuel_limit)| TaskSpec {
            id,
            fuel_limit,
            timeout_ms: 60_000,
        })
        .collect();
    // Without stake, the same record carries nothing alone.
    let mut unstaked = veteran.clone();
    unstaked.stake = Amount(0);
    let mut u = Scheduler::new(policy.clone(), specs.clone(), rep.clone(), 0);
    u.on_event(Event::Offer(unstaked), 0);
    u.on_event(Event::Offer(newcomer.clone()), 0);
    let mut per_task: HashMap<TaskId, usize> = HashMap::new();
    for a in u.poll(1) {
        if let Action::Dispatch { task, .. } = a {
            *per_task.entry(task).or_default() += 1;
        }
    }
    assert!(
        per_task.values().all(|&n| n == 2),
        "an unstaked provider carried a task alone"
    );
    let mut s = Scheduler::new(policy, specs.clone(), rep, 0);
    s.on_event(Event::Offer(veteran.clone()), 0);
    s.on_event(Event::Offer(newcomer.clone()), 0);
    let mut replicas: HashMap<TaskId, usize> = HashMap::new();
    for a in s.poll(1) {
        if let Action::Dispatch { task, .. } = a {
            *replicas.entry(task).or_default() += 1;
        }
    }
    let alone = replicas.values().filter(|&&n| n == 1).count();
    // About 80% alone (the seed fixes the draw); the rest spot-checked.
    assert!((350..=450).contains(&alone), "{alone} of 500 alone");
    assert!(replicas.values().all(|&n| n == 1 || n == 2));
    // The veteran's lone answers are accepted by themselves.
    let mut accepted_alone = 0;
    for spec in &specs {
        if replicas[&spec.id] == 1 {
            s.on_event(
                Event::Receipt {
                    task: spec.id,
                    vote: Vote {
                        provider: veteran.provider,
                        result: ResultHash::from_bytes(*spec.id.as_bytes()),
                        fuel: Fuel(1),
                    },
                    charge: Amount(1),
                    deterministic: true,
                },
                2,
            );
        }
    }
    for a in s.poll(3) {
        if let Action::Accepted { agreeing, .. } = a {
            assert_eq!(agreeing, vec![veteran.provider]);
            accepted_alone += 1;
        }
    }
    assert_eq!(accepted_alone, alone);
}

/// Between equally fast providers the cheaper one gets the work first; a
/// faster one is worth a higher price.
#[test]
fn price_and_speed_are_weighed_together() {
    use sharegrid_sched::{Event, Reputation, Scheduler, TaskSpec};
    let first = |offers: &[Offer]| {
        let spec = vec![TaskSpec {
            id: tasks(1, 1)[0].0,
            fuel_limit: Fuel(1_000_000_000),
            timeout_ms: 60_000,
        }];
        let mut s = Scheduler::new(
            JobPolicy::new(1, 1, constraints(10), Amount(1 << 100)),
            spec,
            Reputation::default(),
            0,
        );
        for o in offers {
            s.on_event(Event::Offer(o.clone()), 0);
        }
        s.poll(1).into_iter().find_map(|a| match a {
            Action::Dispatch { provider, .. } => Some(provider),
            _ => None,
        })
    };
    let (cheap, dear) = (one_slot(1, 4.0, 1), one_slot(2, 4.0, 9));
    assert_eq!(first(&[dear.clone(), cheap.clone()]), Some(cheap.provider));
    let fast_dear = one_slot(3, 8.0, 9);
    assert_eq!(first(&[fast_dear.clone(), cheap.clone()]), Some(fast_dear.provider));
    // Between equals, the one with stake bonded (a lie would cost it) first.
    let mut staked = one_slot(4, 4.0, 1);
    staked.stake = Amount(1_000);
    assert_eq!(first(&[cheap, staked.clone()]), Some(staked.provider));
}

/// A provider that claims a speed far above what its receipts show loses
/// its place: the scheduler estimates from the observed speed, and the
/// false claim halves its weight.
#[test]
fn a_speed_claim_far_above_the_observed_speed_costs_its_place() {
    use sharegrid_core::ResultHash;
    let (boaster, honest) = (one_slot(1, 50.0, 1), one_slot(2, 2.0, 1));
    let specs: Vec<TaskSpec> = tasks(10, 5_000_000_000)
        .into_iter()
        .map(|(id, fuel_limit)| TaskSpec {
            id,
            fuel_limit,
            timeout_ms: 600_000,
        })
        .collect();
    let mut s = Scheduler::new(
        JobPolicy::new(1, 1, constraints(10), Amount(1 << 100)),
        specs,
        Reputation::default(),
        0,
    );
    s.on_event(Event::Offer(boaster.clone()), 0);
    s.on_event(Event::Offer(honest.clone()), 0);
    let dispatched = |actions: Vec<Action>| -> Vec<(TaskId, sharegrid_core::NodeId)> {
        actions
            .into_iter()
            .filter_map(|a| match a {
                Action::Dispatch { task, provider, .. } => Some((task, provider)),
                _ => None,
            })
            .collect()
    };
    // Untried, the claimed 50 Gfuel/s comes first.
    let first = dispatched(s.poll(1));
    assert_eq!(first.first().map(|d| d.1), Some(boaster.provider));
    // Both take 2.5 s for a task: the boaster ran 1 Gfuel (0.4 Gfuel/s
    // observed), the honest one 5 Gfuel (2 Gfuel/s, as it claims).
    for (task, provider) in &first {
        let fuel = if *provider == boaster.provider {
            1_000_000_000
        } else {
            5_000_000_000
        };
        let vote = Vote {
            provider: *provider,
            result: ResultHash::from_bytes([1; 32]),
            fuel: Fuel(fuel),
        };
        let charge = Amount(1);
        s.on_event(
            Event::Receipt {
                task: *task,
                vote,
                charge,
                deterministic: true,
            },
            2_501,
        );
    }
    let next = dispatched(s.poll(2_502));
    assert_eq!(next.first().map(|d| d.1), Some(honest.provider), "{next:?}");
}
