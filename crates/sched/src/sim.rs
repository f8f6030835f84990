//! A discrete-event simulation of a job on simulated providers, driving the
//! real [`Scheduler`]: for property tests and the makespan benchmark.
//! Providers run each task in `fuel ÷ speed` (plus a fixed latency) on each
//! of their slots, may leave at a given time (their running tasks never
//! answer), and may be faulty (each wrong answer a different hash, as
//! independent faults are).

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};

use sharegrid_core::{Amount, Arch, Determinism, Fuel, GigafuelPerSec, NodeId, NodeKey, ResultHash, TaskId};

use crate::reputation::Reputation;
use crate::scheduler::{Action, Event, JobPolicy, Scheduler, TaskSpec, Vote};
use sharegrid_core::Offer;

/// A simulated provider.
#[derive(Clone, Debug)]
pub struct SimProvider {
    /// Speed, gigafuel per second.
    pub speed: f64,
    /// Slots.
    pub cores: u32,
    /// Price per gigafuel.
    pub price: u128,
    /// Returns wrong results.
    pub faulty: bool,
    /// Leaves at this time (ms), if ever.
    pub leaves_at_ms: Option<u64>,
}

/// What happened in a simulated job.
#[derive(Clone, Debug, Default)]
pub struct SimReport {
    /// Time of the job's end, ms.
    pub makespan_ms: u64,
    /// Every action the scheduler took, in order.
    pub actions: Vec<Action>,
    /// Accepted results that were wrong.
    pub wrong_accepted: usize,
    /// The providers' ids, by index.
    pub ids: Vec<NodeId>,
}

fn id_of(i: usize) -> NodeId {
    let mut seed = [7u8; 32];
    seed[..8].copy_from_slice(&(i as u64).to_le_bytes());
    NodeKey::from_seed(seed).id()
}

/// The right result of a task (any fixed function of its id).
pub fn right_result(task: &TaskId) -> ResultHash {
    ResultHash::from_bytes(*task.as_bytes())
}

/// Runs `tasks` (id, actual fuel) under `policy` on `providers`; gives up at `limit_ms`.
pub fn simulate(
    policy: JobPolicy,
    tasks: &[(TaskId, Fuel)],
    providers: &[SimProvider],
    latency_ms: u64,
    limit_ms: u64,
) -> SimReport {
    let specs: Vec<TaskSpec> = tasks
        .iter()
        .map(|(id, fuel)| TaskSpec {
            id: *id,
            fuel_limit: *fuel,
            timeout_ms: 3_600_000,
        })
        .collect();
    let actual: HashMap<TaskId, Fuel> = tasks.iter().copied().collect();
    let ids: Vec<NodeId> = (0..providers.len()).map(id_of).collect();
    let by_id: HashMap<NodeId, usize> = ids.iter().enumerate().map(|(i, id)| (*id, i)).collect();
    let mut s = Scheduler::new(policy, specs, Reputation::default(), 0);
    // (time, sequence, event)
    let mut queue: BinaryHeap<Reverse<(u64, u64, usize)>> = BinaryHeap::new();
    let mut events: Vec<Event> = Vec::new();
    let mut seq = 0u64;
    let mut push = |q: &mut BinaryHeap<Reverse<(u64, u64, usize)>>, at: u64, ev: Event, events: &mut Vec<Event>| {
        events.push(ev);
        q.push(Reverse((at, seq, events.len() - 1)));
        seq += 1;
    };
    for (i, p) in providers.iter().enumerate() {
        let offer = Offer {
            version: sharegrid_core::WIRE_VERSION,
            provider: ids[i],
            arch: Arch::X86_64,
            cores: p.cores,
            memory_bytes: 1 << 40,
            free_slots: p.cores,
            speed: GigafuelPerSec(p.speed),
            price: sharegrid_core::PricePerGfuel(Amount(p.price)),
            stake: Amount(0),
            modes: vec![Determinism::Native, Determinism::Portable],
            software: "test".into(),
            seq: 1,
            expires_at_ms: u64::MAX,
        };
        push(&mut queue, 0, Event::Offer(offer), &mut events);
        if let Some(at) = p.leaves_at_ms {
            push(&mut queue, at, Event::Gone(ids[i]), &mut events);
        }
    }
    let mut report = SimReport {
        ids: ids.clone(),
        ..SimReport::default()
    };
    let mut now = 0u64;
    let mut wrong_seq = 0u64;
    loop {
        // Apply every event due now, then ask for decisions.
        while let Some(Reverse((at, _, ix))) = queue.peek().copied() {
            if at > now {
                break;
            }
            queue.pop();
            s.on_event(events[ix].clone(), now);
        }
        for a in s.poll(now) {
            match &a {
                Action::Dispatch {
                    task, provider, price, ..
                } => {
                    let p = by_id[provider];
                    let sp = &providers[p];
                    let fuel = actual[task];
                    let done = now + latency_ms + (fuel.0 as f64 / (sp.speed * 1e9) * 1000.0).ceil() as u64;
                    if sp.leaves_at_ms.is_some_and(|l| l <= done) {
                        continue; // never answers; the Gone event covers it
                    }
                    let result = if sp.faulty {
                        wrong_seq += 1;
                        let mut b = [0xffu8; 32];
                        b[..8].copy_from_slice(&wrong_seq.to_le_bytes());
                        ResultHash::from_bytes(b)
                    } else {
                        right_result(task)
                    };
                    let ev = Event::Receipt {
                        task: *task,
                        vote: Vote {
                            provider: *provider,
                            result,
                            fuel,
                        },
                        charge: price.cost(fuel).unwrap_or(Amount(0)),
                        deterministic: true,
                    };
                    push(&mut queue, done, ev, &mut events);
                }
                Action::Accepted { task, result, .. } if *result != right_result(task) => {
                    report.wrong_accepted += 1;
                }
                _ => {}
            }
            let end = matches!(a, Action::JobDone | Action::JobFailed { .. });
            report.actions.push(a);
            if end {
                report.makespan_ms = now;
                return report;
            }
        }
        // Advance to the next event, or let timers fire.
        now = match queue.peek() {
            Some(Reverse((at, _, _))) => (*at).max(now + 1),
            None => now + 1_000,
        };
        if now > limit_ms {
            report.makespan_ms = now;
            return report;
        }
    }
}
