//! Scheduler benchmarks (bench/sched.sh):
//! 1. makespan ÷ ideal for 1,000 tasks on providers whose speeds span 1×–8×,
//!    simulated through the real scheduler; ideal = total fuel ÷ total speed;
//! 2. the same with 30% of the providers leaving halfway through the ideal time;
//! 3. decision time per task with 100,000 live offers.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Instant;

use sharegrid_core::Offer;
use sharegrid_core::{Amount, Determinism, Fuel, GigafuelPerSec, NodeKey, PricePerGfuel, TaskId};
use sharegrid_sched::sim::{SimProvider, simulate};
use sharegrid_sched::{Action, Constraints, JobPolicy, Reputation, Scheduler, TaskSpec};

fn constraints() -> Constraints {
    Constraints {
        min_stake: Amount(0),
        price_ceiling: PricePerGfuel(Amount(100)),
        arch: None,
        min_memory: 0,
        min_speed: GigafuelPerSec(0.0),
        mode: Determinism::Native,
    }
}

fn task(i: u64) -> TaskId {
    let mut b = [0u8; 32];
    b[..8].copy_from_slice(&(i + 1).to_le_bytes());
    TaskId::from_bytes(b)
}

fn makespan(leave: bool, seed: u64) -> f64 {
    // 32 single-slot providers, speeds 1..8 Gfuel/s spread evenly.
    let n = 32;
    let mut providers: Vec<SimProvider> = (0..n)
        .map(|i| SimProvider {
            speed: 1.0 + 7.0 * i as f64 / (n - 1) as f64,
            cores: 1,
            price: 1,
            faulty: false,
            leaves_at_ms: None,
        })
        .collect();
    // Tasks of 20–40 Gfuel (a few seconds each), deterministic mix.
    let tasks: Vec<(TaskId, Fuel)> = (0..1000u64)
        .map(|i| (task(i), Fuel(20_000_000_000 + (i * 7919 + seed) % 20 * 1_000_000_000)))
        .collect();
    let total_fuel: f64 = tasks.iter().map(|t| t.1.0 as f64 / 1e9).sum();
    let total_speed: f64 = providers.iter().map(|p| p.speed).sum();
    let ideal_ms = total_fuel / total_speed * 1000.0;
    if leave {
        // 30% of the providers, across all speeds, leave halfway.
        let mut order: Vec<usize> = (0..n).collect();
        order.sort_by_key(|&i| (i as u64 * 2654435761 + seed * 97) % 1009);
        for &i in order.iter().take(n * 3 / 10) {
            providers[i].leaves_at_ms = Some((ideal_ms / 2.0) as u64);
        }
    }
    let policy = JobPolicy::new(1, 1, constraints(), Amount(u128::MAX / 4));
    let rep = simulate(policy, &tasks, &providers, 5, (ideal_ms * 5.0) as u64);
    if !matches!(rep.actions.last(), Some(Action::JobDone)) {
        let p = rep
            .actions
            .iter()
            .filter(|a| matches!(a, Action::Accepted { .. }))
            .count();
        panic!("job did not finish: {p} accepted, last {:?}", rep.actions.last());
    }
    rep.makespan_ms as f64 / ideal_ms
}

fn decision_time(offers: usize, tasks: usize) -> f64 {
    let t: Vec<TaskSpec> = (0..tasks as u64)
        .map(|i| TaskSpec {
            id: task(i),
            fuel_limit: Fuel(10_000_000_000),
            timeout_ms: 600_000,
        })
        .collect();
    let mut s = Scheduler::new(
        JobPolicy::new(1, 1, constraints(), Amount(u128::MAX / 4)),
        t,
        Reputation::default(),
        0,
    );
    for i in 0..offers {
        let mut seed = [3u8; 32];
        seed[..8].copy_from_slice(&(i as u64).to_le_bytes());
        s.on_event(
            sharegrid_sched::Event::Offer(Offer {
                version: sharegrid_core::WIRE_VERSION,
                provider: NodeKey::from_seed(seed).id(),
                arch: sharegrid_core::Arch::X86_64,
                cores: 1,
                memory_bytes: 1 << 33,
                free_slots: 1,
                speed: GigafuelPerSec(1.0 + (i % 97) as f64 / 13.0),
                price: PricePerGfuel(Amount(1 + (i % 5) as u128)),
                stake: Amount(0),
                modes: vec![Determinism::Native],
                software: "test".into(),
                seq: 1,
                expires_at_ms: u64::MAX,
            }),
            0,
        );
    }
    let start = Instant::now();
    let actions = s.poll(1);
    let el = start.elapsed();
    let n = actions.iter().filter(|a| matches!(a, Action::Dispatch { .. })).count();
    assert_eq!(n, tasks.min(offers));
    el.as_secs_f64() * 1e6 / n as f64
}

fn main() {
    let runs: Vec<f64> = (0..5).map(|s| makespan(false, s)).collect();
    println!(
        "makespan / ideal, 1,000 tasks, 32 providers 1x-8x:            {}",
        runs.iter().map(|r| format!("{r:.3}")).collect::<Vec<_>>().join(" ")
    );
    let runs: Vec<f64> = (0..5).map(|s| makespan(true, s)).collect();
    println!(
        "makespan / ideal, same, 30% of providers leave halfway:       {}",
        runs.iter().map(|r| format!("{r:.3}")).collect::<Vec<_>>().join(" ")
    );
    for (offers, tasks) in [(100_000, 10_000), (100_000, 100_000)] {
        let us = decision_time(offers, tasks);
        println!("decision time, {offers} live offers, {tasks} tasks dispatched: {us:.2} us/task");
    }
}
