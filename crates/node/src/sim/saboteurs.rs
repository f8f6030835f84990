//! The saboteur simulation: hundreds of simulated providers, seeded, some
//! of them cheating, under a verification policy. The real [`Scheduler`]
//! places, verifies and accepts; the real ledger [`State`] holds the money:
//! every escrow, settlement, stake, dispute and verdict is a signed
//! transaction it applies, with its own rules (slashing included). Only the
//! runs are simulated: each provider answers by its strategy.
//!
//! Strategies: honest; a saboteur (a wrong result at rate `s`, each wrong
//! result different, as independent faults are); a lazy provider (never
//! computes: guesses, and claims the fuel limit); a colluding group (lies
//! on the same tasks, with the same wrong result, to win a quorum); a
//! rejoiner (a saboteur that, once slashed or shunned, comes back under a
//! fresh identity — bonding anew where stake is required). Computing costs
//! a provider `cost` per gigafuel; a requestor reports every disagreement
//! as a dispute, which the validator judges against the true result.
//!
//! [`run`] reports, per policy: the accepted-error rate beside its bound
//! (m-first voting, Sarmenta 2002: a group holding a share `g` of the
//! providers and lying at rate `s` wins a task when its q votes come before
//! q honest ones, `s · Σ_{k<q} C(q−1+k, k) g^q (1−g)^k`; a credible
//! provider accepted alone is wrong with probability at most 1 −
//! threshold), the redundancy (runs per accepted task),
//! each strategy's net profit per provider slot, and false slashes (stake
//! taken from a provider that never lied: must be zero).

use std::collections::{BTreeMap, HashMap};

use sharegrid_core::{
    Amount, Arch, Assignment, ContentId, Determinism, Fuel, GigafuelPerSec, Limits, NodeId, NodeKey, Offer, Outcome,
    PricePerGfuel, Program, Receipt, ResultHash, Signed, TaskId, Terms, WIRE_VERSION,
};
use sharegrid_ledger::{Allocation, Genesis, Op, Paid, Params, State, TX_VERSION, Tx};
use sharegrid_sched::{Action, Constraints, Credibility, Event, JobPolicy, Reputation, Scheduler, TaskSpec, Vote};

use super::net::Rng;

/// How a provider behaves.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Strategy {
    /// Always the true result.
    Honest,
    /// A wrong result at this rate, each one different.
    Saboteur(f64),
    /// Never computes: a guess, claiming the fuel limit.
    Lazy,
    /// A member of colluding group `group`, lying at this rate on the
    /// same tasks with the same wrong result.
    Colluder(u8, f64),
    /// A saboteur at this rate that comes back under a fresh identity
    /// once slashed or shunned.
    Rejoiner(f64),
}

impl Strategy {
    /// The strategy's name in reports.
    pub fn name(&self) -> &'static str {
        match self {
            Strategy::Honest => "honest",
            Strategy::Saboteur(_) => "saboteur",
            Strategy::Lazy => "lazy guesser",
            Strategy::Colluder(..) => "colluder",
            Strategy::Rejoiner(_) => "rejoiner",
        }
    }
}

/// A verification policy.
#[derive(Clone, Debug)]
pub struct Policy {
    /// Its name in reports.
    pub name: &'static str,
    /// Replicas per task.
    pub replication: u32,
    /// Agreeing results needed.
    pub quorum: u32,
    /// Stake every provider bonds, and the job requires (0: none).
    pub stake: u128,
    /// Accept a credible staked provider alone, spot-checking this share.
    pub spot_check: Option<f64>,
}

/// What to simulate.
#[derive(Clone, Debug)]
pub struct SaboteurConfig {
    /// One strategy per provider slot.
    pub providers: Vec<Strategy>,
    /// Jobs run one after another.
    pub jobs: usize,
    /// Tasks per job.
    pub tasks: usize,
    /// Price per gigafuel every provider asks.
    pub price: u128,
    /// What computing a gigafuel costs a provider.
    pub cost: u128,
    /// Seed.
    pub seed: u64,
}

/// One strategy's outcome.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct StrategyOutcome {
    /// Provider slots with this strategy.
    pub slots: usize,
    /// Identities used (a rejoiner uses several).
    pub identities: usize,
    /// Runs made.
    pub runs: u64,
    /// Paid by escrows.
    pub earned: u128,
    /// Lost to slashes.
    pub slashed: u128,
    /// Spent computing, on fees and on bonds lost.
    pub costs: u128,
    /// Net profit per provider slot.
    pub profit_per_slot: f64,
}

/// One policy's outcome.
#[derive(Clone, Debug, Default)]
pub struct PolicyOutcome {
    /// The policy.
    pub policy: String,
    /// Tasks accepted.
    pub accepted: u64,
    /// Accepted with a wrong result.
    pub wrong: u64,
    /// Tasks failed.
    pub failed: u64,
    /// Runs dispatched per accepted task.
    pub redundancy: f64,
    /// The accepted-error bound for this policy and population.
    pub bound: f64,
    /// Per strategy.
    pub strategies: BTreeMap<&'static str, StrategyOutcome>,
    /// Slashes of providers that never lied (must be zero).
    pub false_slashes: u64,
    /// Slashes in all.
    pub slashes: u64,
    /// Token supply conserved to the unit.
    pub supply_exact: bool,
}

impl PolicyOutcome {
    /// Accepted results that were wrong, as a share of those accepted.
    pub fn error_rate(&self) -> f64 {
        self.wrong as f64 / self.accepted.max(1) as f64
    }
}

/// A uniform draw in [0, 1) fixed by the inputs.
fn coin(seed: u64, a: &[u8], b: u64) -> f64 {
    let mut h = blake3::Hasher::new();
    h.update(&seed.to_le_bytes());
    h.update(a);
    h.update(&b.to_le_bytes());
    let bytes = h.finalize();
    let mut x = [0u8; 8];
    x.copy_from_slice(&bytes.as_bytes()[..8]);
    (u64::from_le_bytes(x) >> 11) as f64 / (1u64 << 53) as f64
}

const FUNDS: u128 = 100_000_000;
const FUEL_LIMIT: u64 = 5_000_000_000;

struct Identity {
    key: NodeKey,
    slot: usize,
    speed: f64,
    retired: bool,
}

struct World {
    state: State,
    height: u64,
    validator: NodeKey,
    ids: Vec<Identity>,
    by_node: HashMap<NodeId, usize>,
    slots: Vec<Strategy>,
    out: PolicyOutcome,
    rng: Rng,
    cfg: SaboteurConfig,
}

impl World {
    fn apply(&mut self, key: &NodeKey, op: Op) -> bool {
        let nonce = self.state.accounts.get(&key.id()).map_or(0, |a| a.nonce);
        let tx = Tx {
            version: TX_VERSION,
            chain: self.state.chain,
            signer: key.id(),
            nonce,
            fee: self.state.params.min_fee,
            expires_at_height: u64::MAX,
            op,
        };
        self.height += 1;
        let Ok(signed) = Signed::sign(key, &tx) else {
            return false;
        };
        self.state.apply(&signed, self.height).is_ok()
    }

    /// A fresh identity for `slot`, funded from `from` (a rejoiner's old
    /// balance) or at genesis, bonding the policy's stake.
    fn join(&mut self, slot: usize, n: usize, stake: u128) {
        let mut seed = [0u8; 32];
        seed[..8].copy_from_slice(&(slot as u64).to_le_bytes());
        seed[8..16].copy_from_slice(&(n as u64).to_le_bytes());
        seed[16..24].copy_from_slice(&self.cfg.seed.to_le_bytes());
        let key = NodeKey::from_seed(seed);
        if let Some(old) = self.ids.iter().rposition(|i| i.slot == slot) {
            // The rejoiner moves what it has left to its new identity.
            let old_key = NodeKey::from_seed(self.ids[old].key.seed());
            let left = self.state.balance(&old_key.id()).0.saturating_sub(1);
            self.apply(
                &old_key,
                Op::Transfer {
                    to: key.id(),
                    amount: Amount(left),
                },
            );
            self.ids[old].retired = true;
        }
        if stake > 0 {
            self.apply(&key, Op::Bond { amount: Amount(stake) });
        }
        let speed = 0.5 + 3.5 * self.rng.unit();
        self.by_node.insert(key.id(), self.ids.len());
        self.ids.push(Identity {
            key,
            slot,
            speed,
            retired: false,
        });
        self.out
            .strategies
            .entry(self.slots[slot].name())
            .or_default()
            .identities += 1;
    }
}

/// Runs `cfg` under `policy`.
pub fn run(cfg: &SaboteurConfig, policy: &Policy) -> PolicyOutcome {
    let validator = NodeKey::from_seed([0xee; 32]);
    let requestor = NodeKey::from_seed([0xdd; 32]);
    let treasury = NodeKey::from_seed([0xcc; 32]).id();
    let mut balances = vec![Allocation {
        account: requestor.id(),
        amount: Amount(FUNDS * 1_000_000),
    }];
    balances.push(Allocation {
        account: validator.id(),
        amount: Amount(FUNDS),
    });
    let first_keys: Vec<NodeId> = (0..cfg.providers.len())
        .map(|slot| {
            let mut seed = [0u8; 32];
            seed[..8].copy_from_slice(&(slot as u64).to_le_bytes());
            seed[16..24].copy_from_slice(&cfg.seed.to_le_bytes());
            NodeKey::from_seed(seed).id()
        })
        .collect();
    balances.extend(first_keys.iter().map(|k| Allocation {
        account: *k,
        amount: Amount(FUNDS),
    }));
    let genesis = Genesis {
        validators: vec![validator.id()],
        params: Params::new(treasury, 100, Amount(1)),
        balances,
        stakes: Vec::new(),
    };
    let Ok(state) = State::genesis(&genesis) else {
        return PolicyOutcome::default();
    };
    let supply = state.supply();
    let mut w = World {
        state,
        height: 0,
        validator,
        ids: Vec::new(),
        by_node: HashMap::new(),
        slots: cfg.providers.clone(),
        out: PolicyOutcome {
            policy: policy.name.to_string(),
            ..PolicyOutcome::default()
        },
        rng: Rng::new(cfg.seed),
        cfg: cfg.clone(),
    };
    for (slot, s) in cfg.providers.iter().enumerate() {
        w.out.strategies.entry(s.name()).or_default().slots += 1;
        w.join(slot, 0, policy.stake);
    }
    let mut reputation = Reputation::default();
    let mut runs_total = 0u64;
    let mut costs: HashMap<usize, u128> = HashMap::new();
    let mut runs_by_slot: HashMap<usize, u64> = HashMap::new();
    for job in 0..cfg.jobs {
        runs_total += run_job(
            &mut w,
            &requestor,
            policy,
            job,
            &mut reputation,
            &mut costs,
            &mut runs_by_slot,
        );
        // Rejoiners that were slashed or shunned come back fresh.
        let leaving: Vec<usize> = w
            .ids
            .iter()
            .filter(|i| !i.retired && matches!(w.slots[i.slot], Strategy::Rejoiner(_)))
            .filter(|i| {
                let caught = reputation.get(&i.key.id()).disagreed > 0;
                let slashed = policy.stake > 0 && w.state.stake(&i.key.id()).0 < policy.stake;
                caught || slashed
            })
            .map(|i| i.slot)
            .collect();
        for slot in leaving {
            let n = w.ids.iter().filter(|i| i.slot == slot).count();
            w.join(slot, n, policy.stake);
        }
    }
    // Profit: what each slot's identities hold (balance and stake), less
    // what they started with and what computing cost them.
    let mut held: HashMap<usize, u128> = HashMap::new();
    for i in &w.ids {
        let id = i.key.id();
        let stake = w.state.slashable(&id);
        *held.entry(i.slot).or_default() += w.state.balance(&id).0 + stake;
    }
    for (slot, s) in cfg.providers.iter().enumerate() {
        let o = w.out.strategies.entry(s.name()).or_default();
        let h = held.get(&slot).copied().unwrap_or(0) as f64;
        let c = costs.get(&slot).copied().unwrap_or(0);
        o.costs += c;
        o.runs += runs_by_slot.get(&slot).copied().unwrap_or(0);
        o.profit_per_slot += h - FUNDS as f64 - c as f64;
    }
    for o in w.out.strategies.values_mut() {
        o.profit_per_slot /= o.slots.max(1) as f64;
    }
    w.out.redundancy = runs_total as f64 / w.out.accepted.max(1) as f64;
    w.out.bound = bound(cfg, policy);
    w.out.supply_exact = w.state.supply() == supply;
    w.out
}

/// The accepted-error bound of `policy` for the population of `cfg`.
fn bound(cfg: &SaboteurConfig, policy: &Policy) -> f64 {
    let n = cfg.providers.len() as f64;
    if policy.quorum <= 1 && policy.spot_check.is_none() {
        // No verification: every lie is accepted.
        return cfg.providers.iter().map(lie_rate).sum::<f64>() / n;
    }
    let mut groups: BTreeMap<u8, (f64, f64)> = BTreeMap::new();
    for s in &cfg.providers {
        if let Strategy::Colluder(g, rate) = s {
            let e = groups.entry(*g).or_insert((0.0, *rate));
            e.0 += 1.0 / n;
        }
    }
    // m-first voting (Sarmenta 2002): replicas are drawn until q agree; a
    // group holding a share g wins a task it lies on when its q votes come
    // before q honest ones: the negative binomial sum over the honest votes
    // k < q drawn first, C(q-1+k, k) g^q (1-g)^k.
    let q = policy.quorum.max(1) as i32;
    let first_to_q = |g: f64| -> f64 {
        (0..q)
            .map(|k| binomial(q - 1 + k, k) * g.powi(q) * (1.0 - g).powi(k))
            .sum()
    };
    let voted: f64 = groups.values().map(|(g, s)| first_to_q(*g) * s).sum();
    match policy.spot_check {
        Some(_) => voted + (1.0 - CREDIBILITY),
        None => voted,
    }
}

fn binomial(n: i32, k: i32) -> f64 {
    (0..k).fold(1.0, |acc, i| acc * f64::from(n - i) / f64::from(i + 1))
}

fn lie_rate(s: &Strategy) -> f64 {
    match s {
        Strategy::Honest => 0.0,
        Strategy::Lazy => 1.0,
        Strategy::Saboteur(r) | Strategy::Colluder(_, r) | Strategy::Rejoiner(r) => *r,
    }
}

/// The credibility a provider needs to be accepted alone (with an assumed
/// saboteur fraction of 0.2: about 25 clean results).
const CREDIBILITY: f64 = 0.99;

/// What a provider's run returns: result, fuel, and whether it computed.
fn answer(
    cfg: &SaboteurConfig,
    s: Strategy,
    task: &TaskId,
    fuel: Fuel,
    who: &NodeId,
    draw: f64,
) -> (ResultHash, Fuel, bool) {
    let truth = ResultHash::from_bytes(*task.as_bytes());
    let unique = || {
        let mut h = blake3::Hasher::new();
        h.update(task.as_bytes());
        h.update(who.as_bytes());
        ResultHash::from_bytes(*h.finalize().as_bytes())
    };
    match s {
        Strategy::Honest => (truth, fuel, true),
        Strategy::Saboteur(r) | Strategy::Rejoiner(r) => {
            if draw < r {
                (unique(), fuel, true)
            } else {
                (truth, fuel, true)
            }
        }
        Strategy::Lazy => (unique(), Fuel(FUEL_LIMIT), false),
        Strategy::Colluder(g, r) => {
            if coin(cfg.seed, task.as_bytes(), u64::from(g)) < r {
                let mut h = blake3::Hasher::new();
                h.update(task.as_bytes());
                h.update(&[g]);
                (ResultHash::from_bytes(*h.finalize().as_bytes()), fuel, false)
            } else {
                (truth, fuel, true)
            }
        }
    }
}

struct Run {
    paid: Paid,
    vote: Vote,
}

fn run_job(
    w: &mut World,
    requestor: &NodeKey,
    policy: &Policy,
    job: usize,
    reputation: &mut Reputation,
    costs: &mut HashMap<usize, u128>,
    runs_by_slot: &mut HashMap<usize, u64>,
) -> u64 {
    let cfg = w.cfg.clone();
    let escrow = ContentId::of(&[b"job".as_slice(), &(job as u64).to_le_bytes()].concat());
    let tasks: Vec<(TaskId, Fuel)> = (0..cfg.tasks)
        .map(|i| {
            let id = ContentId::of(&[escrow.as_bytes().as_slice(), &(i as u64).to_le_bytes()].concat());
            (
                TaskId::from_bytes(*id.as_bytes()),
                Fuel(1_000_000_000 + w.rng.next() % 4_000_000_000),
            )
        })
        .collect();
    let fuel_of: HashMap<TaskId, Fuel> = tasks.iter().copied().collect();
    let price = PricePerGfuel(Amount(cfg.price));
    let budget = price.cost(Fuel(FUEL_LIMIT)).map_or(0, |c| c.0) * cfg.tasks as u128 * 8;
    let open = Op::OpenEscrow {
        escrow,
        budget: Amount(budget),
        tasks: tasks.iter().map(|t| t.0).collect(),
        claim_height: w.height + 1_000_000,
        close_height: w.height + 2_000_000,
        quorum: policy.quorum,
        min_stake: Amount(policy.stake),
    };
    w.apply(requestor, open);
    let constraints = Constraints {
        price_ceiling: price,
        arch: None,
        min_memory: 0,
        min_speed: GigafuelPerSec(0.0),
        mode: Determinism::Native,
        min_stake: Amount(policy.stake),
    };
    let mut jp = JobPolicy::new(policy.replication, policy.quorum, constraints, Amount(budget));
    jp.seed = cfg.seed ^ job as u64;
    jp.max_in_flight_per_provider = 1;
    jp.credibility = policy.spot_check.map(|rate| Credibility {
        threshold: CREDIBILITY,
        spot_check_rate: rate,
        saboteur_fraction: 0.2,
    });
    let specs = tasks
        .iter()
        .map(|(id, _)| TaskSpec {
            id: *id,
            fuel_limit: Fuel(FUEL_LIMIT),
            timeout_ms: 3_600_000,
        })
        .collect();
    let mut s = Scheduler::new(jp, specs, reputation.clone(), 0);
    for i in w.ids.iter().filter(|i| !i.retired) {
        let offer = Offer {
            version: WIRE_VERSION,
            provider: i.key.id(),
            arch: Arch::X86_64,
            cores: 1,
            memory_bytes: 1 << 40,
            free_slots: 1,
            speed: GigafuelPerSec(i.speed),
            price,
            stake: w.state.stake(&i.key.id()),
            modes: vec![Determinism::Native],
            software: "sim".into(),
            seq: 1,
            expires_at_ms: u64::MAX,
        };
        s.on_event(Event::Offer(offer), 0);
    }
    let program = Program {
        module: ContentId::of(b"module"),
        stdin: ContentId::of(b""),
        inputs: vec![],
        limits: Limits {
            fuel: Fuel(FUEL_LIMIT),
            ..Limits::default()
        },
        mode: Determinism::Native,
        launch: Default::default(),
        mounts: Vec::new(),
    };
    let mut runs: HashMap<(TaskId, NodeId), Run> = HashMap::new();
    let mut settle: Vec<Paid> = Vec::new();
    let mut disputes: Vec<(TaskId, Vec<Paid>)> = Vec::new();
    let mut dispatched = 0u64;
    let mut now = 1u64;
    'job: for _ in 0..(cfg.tasks * 20 + 100) {
        let mut receipts = Vec::new();
        for a in s.poll(now) {
            match a {
                Action::Dispatch { task, provider, .. } => {
                    dispatched += 1;
                    let ix = w.by_node[&provider];
                    let (slot, strategy) = (w.ids[ix].slot, w.slots[w.ids[ix].slot]);
                    let draw = w.rng.unit();
                    let (result, fuel, computed) = answer(&cfg, strategy, &task, fuel_of[&task], &provider, draw);
                    if computed {
                        *costs.entry(slot).or_default() += fuel_of[&task].0 as u128 * cfg.cost / 1_000_000_000;
                    }
                    *runs_by_slot.entry(slot).or_default() += 1;
                    let terms = Terms {
                        chain: w.state.chain,
                        requestor: requestor.id(),
                        provider,
                        price,
                        escrow: Some(escrow),
                    };
                    let a = Assignment::new(task, vec![], &program, terms, 0);
                    let Ok(sa) = Signed::sign(requestor, &a) else { continue };
                    let Ok(r) = Receipt::for_run(&a, sa.id(), Outcome::Completed { exit_code: 0 }, result, fuel) else {
                        continue;
                    };
                    let Ok(sr) = Signed::sign(&w.ids[ix].key, &r) else {
                        continue;
                    };
                    let vote = Vote { provider, result, fuel };
                    receipts.push(Event::Receipt {
                        task,
                        vote: vote.clone(),
                        charge: r.charge,
                        deterministic: true,
                    });
                    runs.insert(
                        (task, provider),
                        Run {
                            paid: Paid {
                                assignment: sa,
                                receipt: sr,
                            },
                            vote,
                        },
                    );
                }
                Action::Accepted {
                    task,
                    result,
                    agreeing,
                    dissenting,
                    ..
                } => {
                    w.out.accepted += 1;
                    if result != ResultHash::from_bytes(*task.as_bytes()) {
                        w.out.wrong += 1;
                    }
                    let pairs: Vec<Paid> = agreeing
                        .iter()
                        .filter_map(|p| runs.get(&(task, *p)).map(|r| r.paid.clone()))
                        .collect();
                    if !dissenting.is_empty()
                        && let Some(first) = pairs.first()
                    {
                        let mut evidence = vec![first.clone()];
                        evidence.extend(
                            dissenting
                                .iter()
                                .filter_map(|v| runs.get(&(task, v.provider)))
                                .filter(|r| r.vote.result != result || r.vote.fuel != first_fuel(first))
                                .map(|r| r.paid.clone())
                                .take(sharegrid_ledger::MAX_EVIDENCE - 1),
                        );
                        disputes.push((task, evidence));
                    }
                    for p in &agreeing {
                        if let (Some(r), Some(&ix)) = (runs.get(&(task, *p)), w.by_node.get(p)) {
                            let name = w.slots[w.ids[ix].slot].name();
                            let charge = price.cost(r.vote.fuel).map_or(0, |c| c.0);
                            w.out.strategies.entry(name).or_default().earned += charge;
                        }
                    }
                    settle.extend(pairs);
                }
                Action::TaskFailed { .. } => w.out.failed += 1,
                Action::JobDone | Action::JobFailed { .. } => break 'job,
            }
        }
        now += 1;
        for e in receipts {
            s.on_event(e, now);
        }
    }
    *reputation = s.reputation().clone();
    for chunk in settle.chunks(256) {
        w.apply(
            requestor,
            Op::Settle {
                escrow,
                paid: chunk.to_vec(),
                last: false,
            },
        );
    }
    w.apply(
        requestor,
        Op::Settle {
            escrow,
            paid: vec![],
            last: true,
        },
    );
    for (task, evidence) in disputes {
        judge(w, requestor, escrow, task, evidence, fuel_of[&task]);
    }
    dispatched
}

fn first_fuel(p: &Paid) -> Fuel {
    sharegrid_core::decode_capped::<Receipt>(&p.receipt.body, 1 << 20).map_or(Fuel(0), |r| r.fuel)
}

/// The requestor's dispute and the validator's verdict on it, with the
/// slashes counted (and any of a provider that never lied, as false).
fn judge(w: &mut World, requestor: &NodeKey, escrow: ContentId, task: TaskId, evidence: Vec<Paid>, fuel: Fuel) {
    let before: Vec<(usize, u128)> = w
        .ids
        .iter()
        .enumerate()
        .map(|(ix, i)| (ix, w.state.slashable(&i.key.id())))
        .collect();
    if !w.apply(requestor, Op::Dispute { escrow, task, evidence }) {
        return;
    }
    let verdict = Op::Verdict {
        escrow,
        task,
        result: ResultHash::from_bytes(*task.as_bytes()),
        fuel,
    };
    let validator = NodeKey::from_seed(w.validator.seed());
    w.apply(&validator, verdict);
    for (ix, was) in before {
        let id = w.ids[ix].key.id();
        let now = w.state.slashable(&id);
        if now < was {
            w.out.slashes += 1;
            let strategy = w.slots[w.ids[ix].slot];
            w.out.strategies.entry(strategy.name()).or_default().slashed += was - now;
            if strategy == Strategy::Honest {
                w.out.false_slashes += 1;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn population(n: usize, colluders: usize) -> Vec<Strategy> {
        let mut v = Vec::new();
        for i in 0..n {
            v.push(match i {
                i if i < colluders => Strategy::Colluder(1, 0.5),
                i if i < colluders + n / 20 => Strategy::Saboteur(0.3),
                i if i < colluders + n / 10 => Strategy::Lazy,
                i if i < colluders + 3 * n / 20 => Strategy::Rejoiner(0.5),
                _ => Strategy::Honest,
            });
        }
        v
    }

    #[test]
    fn with_stake_every_cheat_loses_money_the_honest_earn_and_no_one_honest_is_slashed() {
        let cfg = SaboteurConfig {
            providers: population(60, 12),
            jobs: 6,
            tasks: 60,
            price: 1_000,
            cost: 400,
            seed: 3,
        };
        let staked = Policy {
            name: "r=2 q=2, stake",
            replication: 2,
            quorum: 2,
            stake: 2_000_000,
            spot_check: None,
        };
        let o = run(&cfg, &staked);
        assert!(o.supply_exact);
        assert_eq!(o.false_slashes, 0);
        assert!(o.slashes > 0);
        for (name, s) in &o.strategies {
            if *name == "honest" {
                assert!(s.profit_per_slot > 0.0, "{name}: {s:?}");
            } else {
                assert!(s.profit_per_slot < 0.0, "{name}: {s:?}");
            }
        }
        // The same seed, the same outcome.
        let again = run(&cfg, &staked);
        assert_eq!(again.wrong, o.wrong);
        assert_eq!(again.strategies, o.strategies);
    }
}
