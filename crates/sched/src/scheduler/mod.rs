//! The scheduler of one job.
//!
//! Choice: among qualifying providers with a free slot (bounded by the
//! provider's cores, the slots it reported free, and the job's per-provider
//! cap), the one with the earliest estimated finish — task fuel ÷ speed
//! (the speed its receipts showed once timed, else the one it claims),
//! divided by its weight (its record; halved for a speed claim far above
//! the observed one; 0.8 without stake), stretched by up to 2× as its
//! price nears the job's ceiling — kept in an ordered set so a
//! decision costs O(log providers). Near the end of a job idle providers
//! take speculative copies of stragglers they would finish sooner. (Holding
//! slow providers back at the tail was tried and measured worse: 1.05× ideal
//! against 1.025× with speculation alone, bench/RESULTS.md.)
//!
//! Verification: a task is accepted when `q` votes agree on (result hash,
//! fuel). Replicas run on distinct providers, of one architecture class in
//! `native` mode. On disagreement more replicas are dispatched, up to the
//! job's cap; without a quorum the task fails with every vote kept as
//! evidence. A credible provider (see [`crate::reputation`]) may be accepted
//! alone when the job allows it, except for a seeded random share of spot
//! checks.
//!
//! Money: the worst-case cost of everything in flight (fuel limit × price)
//! plus what receipts charged never exceeds the budget.
//!
//! Here: the state, events and verdicts; `placement.rs`: choosing and
//! dispatching, the queue of waiting tasks, speculation; `vocab.rs`: the
//! public policy, events, actions and progress.

use std::cmp::Reverse;
use std::collections::{BTreeSet, BinaryHeap, HashMap, VecDeque};

use sharegrid_core::{Amount, Arch, Fuel, NodeId, Offer, ResultHash, TaskId};

use crate::matching::NoMatch;
use crate::reputation::Reputation;

mod placement;
mod vocab;

pub use vocab::{Action, Event, JobPolicy, Progress, TaskSpec, Vote, Waiting};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    Open,
    Accepted,
    Failed,
}

#[derive(Debug)]
struct Running {
    provider: usize,
    deadline_ms: u64,
    started_ms: u64,
}

#[derive(Debug)]
struct TaskState {
    spec: TaskSpec,
    worst: Amount,
    votes: Vec<Vote>,
    running: Vec<Running>,
    /// Providers that failed this task, once per failure. A provider that
    /// failed it twice is not tried again for it; once may be a passing
    /// refusal (busy with another requestor's work).
    excluded: Vec<usize>,
    failures: u32,
    /// Replicas wanted before any vote (r, or 1 when a credible provider took it).
    target: u32,
    arch: Option<Arch>,
    state: State,
    queued: bool,
    /// Since when no qualifying provider could take a replica it needs.
    stuck_since: Option<u64>,
}

#[derive(Debug)]
struct Prov {
    offer: Offer,
    usable: bool,
    gone: bool,
    cap: u32,
    in_flight: u32,
    blocked_until: u64,
    free_key: Option<u64>,
    /// Counted in `Scheduler::live`: qualifies and has not left.
    live: bool,
}

/// The weight of a provider with no stake bonded, against 1 for one with
/// stake: among equals, work goes to those a lie would cost.
const UNSTAKED_WEIGHT: f64 = 0.8;

/// The scheduler of one job. See the module docs.
#[derive(Debug)]
pub struct Scheduler {
    policy: JobPolicy,
    tasks: Vec<TaskState>,
    index: HashMap<TaskId, usize>,
    provs: Vec<Prov>,
    prov_ix: HashMap<NodeId, usize>,
    free: BTreeSet<(u64, usize)>,
    queue: VecDeque<usize>,
    open: BTreeSet<usize>,
    reputation: Reputation,
    rng: u64,
    out: Vec<Action>,
    committed: Amount,
    spent: Amount,
    /// Since when no provider could take work (from the start until one can).
    no_usable_since: Option<u64>,
    finished: bool,
    accepted: usize,
    failed: usize,
    /// Attempt deadlines, earliest first (entries may be stale: checked on pop).
    deadlines: BinaryHeap<Reverse<(u64, usize, usize)>>,
    /// Providers that qualify and have not left.
    live: usize,
    /// Providers blocked for a moment after a failed attempt.
    blocked: Vec<usize>,
    now: u64,
}

/// Whether provider `p` failed task `task` often enough not to be tried again.
fn excluded(task: &TaskState, p: usize) -> bool {
    task.excluded.iter().filter(|&&x| x == p).count() >= 2
}

fn add(a: Amount, b: Amount) -> Amount {
    Amount(a.0.saturating_add(b.0))
}

fn sub(a: Amount, b: Amount) -> Amount {
    Amount(a.0.saturating_sub(b.0))
}

impl Scheduler {
    /// A scheduler for `tasks` under `policy`, remembering `reputation`, starting at `now_ms`.
    pub fn new(policy: JobPolicy, tasks: Vec<TaskSpec>, reputation: Reputation, now_ms: u64) -> Self {
        let mut s = Scheduler {
            rng: policy.seed ^ 0x9e37_79b9_7f4a_7c15,
            policy,
            tasks: Vec::with_capacity(tasks.len()),
            index: HashMap::with_capacity(tasks.len()),
            provs: Vec::new(),
            prov_ix: HashMap::new(),
            free: BTreeSet::new(),
            queue: VecDeque::new(),
            open: BTreeSet::new(),
            reputation,
            out: Vec::new(),
            committed: Amount(0),
            spent: Amount(0),
            no_usable_since: Some(now_ms),
            finished: false,
            accepted: 0,
            failed: 0,
            deadlines: BinaryHeap::new(),
            live: 0,
            blocked: Vec::new(),
            now: now_ms,
        };
        for spec in tasks {
            if s.index.contains_key(&spec.id) {
                continue;
            }
            let i = s.tasks.len();
            s.index.insert(spec.id, i);
            s.tasks.push(TaskState {
                worst: Amount(0),
                votes: Vec::new(),
                running: Vec::new(),
                excluded: Vec::new(),
                failures: 0,
                target: s.policy.replication.max(1),
                arch: None,
                state: State::Open,
                queued: true,
                stuck_since: None,
                spec,
            });
            s.queue.push_back(i);
            s.open.insert(i);
        }
        s
    }

    /// Marks a task accepted before the job (re)starts: a restarted
    /// requestor never runs an accepted task again.
    pub fn preaccept(&mut self, task: &TaskId) {
        if let Some(&i) = self.index.get(task)
            && self.tasks[i].state == State::Open
        {
            self.tasks[i].state = State::Accepted;
            self.open.remove(&i);
            self.accepted += 1;
        }
    }

    /// Provider records, updated by every verdict.
    pub fn reputation(&self) -> &Reputation {
        &self.reputation
    }

    /// Counts for display.
    pub fn progress(&self) -> Progress {
        Progress {
            total: self.tasks.len(),
            accepted: self.accepted,
            failed: self.failed,
            running: self.open.iter().filter(|i| !self.tasks[**i].running.is_empty()).count(),
            providers_in_use: self.provs.iter().filter(|p| p.in_flight > 0).count(),
            spent: self.spent,
        }
    }

    /// The why-no-match report over every offer seen.
    pub fn no_match(&self) -> NoMatch {
        NoMatch::of(
            &self.policy.constraints,
            self.provs.iter().filter(|p| !p.gone).map(|p| &p.offer),
        )
    }

    /// What the job waits for, while it lacks providers: none qualifies,
    /// or tasks need more distinct ones than there are. Offers arriving
    /// end the wait; without [`JobPolicy::no_match_grace_ms`] it lasts
    /// until the deadline.
    pub fn waiting(&self) -> Option<Waiting> {
        if self.finished || self.open.is_empty() {
            return None;
        }
        if self.live == 0 {
            return Some(Waiting {
                since_ms: self.no_usable_since.unwrap_or(self.now),
                tasks: self.open.len(),
                why: format!("no provider qualifies: {}", self.no_match()),
            });
        }
        let stuck: Vec<usize> = self
            .open
            .iter()
            .copied()
            .filter(|&t| self.tasks[t].stuck_since.is_some())
            .collect();
        let first = stuck.iter().copied().min_by_key(|&t| self.tasks[t].stuck_since)?;
        Some(Waiting {
            since_ms: self.tasks[first].stuck_since.unwrap_or(self.now),
            tasks: stuck.len(),
            why: self.lacking(first),
        })
    }

    /// Why task `t` cannot get the replicas it needs.
    fn lacking(&self, t: usize) -> String {
        format!(
            "needs {} more distinct providers for a quorum of {}, but all {} qualifying providers were used",
            self.need(t),
            self.policy.quorum,
            self.live
        )
    }

    /// When the job fails if it has not finished, ms since the epoch.
    pub fn deadline_ms(&self) -> Option<u64> {
        self.policy.deadline_ms
    }

    /// Whether the job has ended (done or failed).
    pub fn is_finished(&self) -> bool {
        self.finished
    }

    fn next_random(&mut self) -> f64 {
        // splitmix64: a fixed algorithm, so a seed replays the same spot
        // checks whatever version of a random-number crate is around.
        self.rng = self.rng.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.rng;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        (z ^ (z >> 31)) as f64 / u64::MAX as f64
    }

    fn refresh(&mut self, p: usize, now: u64) {
        let pr = &mut self.provs[p];
        if let Some(k) = pr.free_key.take() {
            self.free.remove(&(k, p));
        }
        let record = self.reputation.get(&pr.offer.provider);
        // Live: may still get work from this job (qualifies, here, not shunned).
        let live = pr.usable && !pr.gone && !record.shunned();
        if live != pr.live {
            pr.live = live;
            if live {
                self.live += 1;
            } else {
                self.live -= 1;
            }
        }
        if live && pr.in_flight < pr.cap && pr.blocked_until <= now {
            // Estimated time per task, stretched by a poor record and by a
            // price near the job's ceiling (at the ceiling: counted as half
            // as fast as a free provider of the same speed).
            // A speed claim far above what its receipts show costs half its
            // weight; the estimate uses the observed speed once known. Stake
            // bonded (what a lie would cost it) counts for it.
            let claimed = pr.offer.speed.0;
            let overclaim = if record.overclaims(claimed) { 0.5 } else { 1.0 };
            let stake = if pr.offer.stake.0 > 0 { 1.0 } else { UNSTAKED_WEIGHT };
            let weight = record.weight() * overclaim * stake;
            let speed = record.observed_speed().unwrap_or(claimed);
            let ceiling = self.policy.constraints.price_ceiling.0.0;
            let price_share = if ceiling == 0 || ceiling >= u128::MAX / 2 {
                0.0
            } else {
                pr.offer.price.0.0 as f64 / ceiling as f64
            };
            let key = (1e12 * (1.0 + price_share) / (speed.max(1e-9) * weight)).min(u64::MAX as f64 / 2.0) as u64;
            pr.free_key = Some(key);
            self.free.insert((key, p));
        }
    }

    fn enqueue(&mut self, t: usize) {
        let task = &mut self.tasks[t];
        if task.state == State::Open && !task.queued {
            task.queued = true;
            self.queue.push_back(t);
        }
    }

    /// Takes in an event at `now_ms`.
    pub fn on_event(&mut self, ev: Event, now_ms: u64) {
        self.now = now_ms;
        match ev {
            Event::Offer(o) => self.on_offer(o, now_ms),
            Event::Gone(id) => {
                let Some(&p) = self.prov_ix.get(&id) else { return };
                self.provs[p].gone = true;

                let tasks: Vec<usize> = self.open.iter().copied().collect();
                for t in tasks {
                    if self.tasks[t].running.iter().any(|r| r.provider == p) {
                        self.attempt_failed(t, p, "provider left", now_ms);
                    }
                }
                self.refresh(p, now_ms);
            }
            Event::Receipt {
                task,
                vote,
                charge,
                deterministic,
            } => self.on_receipt(task, vote, charge, deterministic, now_ms),
            Event::Failed { task, provider, why } => {
                let (Some(&t), Some(&p)) = (self.index.get(&task), self.prov_ix.get(&provider)) else {
                    return;
                };
                // A refusal or an unreachable peer: try others for a moment.
                if self.provs[p].blocked_until == 0 {
                    self.blocked.push(p);
                }
                self.provs[p].blocked_until = now_ms + 1_000;
                self.attempt_failed(t, p, &why, now_ms);
            }
        }
    }

    fn on_offer(&mut self, o: Offer, now: u64) {
        let usable = self.policy.constraints.check(&o).is_ok();
        let p = match self.prov_ix.get(&o.provider) {
            Some(&p) => p,
            None => {
                let p = self.provs.len();
                self.prov_ix.insert(o.provider, p);
                self.provs.push(Prov {
                    offer: o.clone(),
                    usable,
                    gone: false,
                    cap: 0,
                    in_flight: 0,
                    blocked_until: 0,
                    free_key: None,
                    live: false,
                });
                p
            }
        };
        let pr = &mut self.provs[p];
        // Slots it has free now, plus ours it already counts as busy.
        pr.cap = o
            .cores
            .min(pr.in_flight + o.free_slots)
            .min(self.policy.max_in_flight_per_provider);
        pr.offer = o;
        pr.usable = usable;
        pr.gone = false;
        self.refresh(p, now);
    }

    /// Ends attempt `p` of task `t`; returns when it started, or `None` if
    /// no such attempt was in flight.
    fn release(&mut self, t: usize, p: usize, now: u64) -> Option<u64> {
        let task = &mut self.tasks[t];
        let pos = task.running.iter().position(|r| r.provider == p)?;
        let started = task.running.swap_remove(pos).started_ms;
        self.committed = sub(self.committed, task.worst);
        self.provs[p].in_flight = self.provs[p].in_flight.saturating_sub(1);
        self.refresh(p, now);
        Some(started)
    }

    fn attempt_failed(&mut self, t: usize, p: usize, why: &str, now: u64) {
        if self.release(t, p, now).is_none() {
            return;
        }
        let id = self.provs[p].offer.provider;
        self.reputation.entry(id).failed += 1;
        let task = &mut self.tasks[t];
        if task.state != State::Open {
            return;
        }
        task.excluded.push(p);
        task.failures += 1;
        if task.failures >= self.policy.max_failures_per_task {
            let reason = format!("{} attempts failed; the last: {why}", task.failures);
            self.fail_task(t, reason);
        } else {
            self.enqueue(t);
        }
    }

    fn fail_task(&mut self, t: usize, reason: String) {
        let task = &mut self.tasks[t];
        task.state = State::Failed;
        self.open.remove(&t);
        self.failed += 1;
        let votes = task.votes.clone();
        let id = task.spec.id;
        let running: Vec<usize> = task.running.drain(..).map(|r| r.provider).collect();
        for p in running {
            self.committed = sub(self.committed, self.tasks[t].worst);
            self.provs[p].in_flight = self.provs[p].in_flight.saturating_sub(1);
            self.refresh(p, self.now);
        }
        self.out.push(Action::TaskFailed {
            task: id,
            reason,
            votes,
        });
    }

    /// Whether `id` may carry a task alone: credible by its record, and
    /// with stake bonded (an identity that costs nothing is always
    /// replicated or spot-checked, never trusted alone).
    fn credible(&self, id: &NodeId) -> bool {
        let staked = self.prov_ix.get(id).is_some_and(|&p| self.provs[p].offer.stake.0 > 0);
        staked
            && self
                .policy
                .credibility
                .is_some_and(|c| self.reputation.get(id).credibility(c.saboteur_fraction) >= c.threshold)
    }

    fn on_receipt(&mut self, task: TaskId, vote: Vote, charge: Amount, deterministic: bool, now: u64) {
        let (Some(&t), Some(&p)) = (self.index.get(&task), self.prov_ix.get(&vote.provider)) else {
            return;
        };
        // Only answers to attempts in flight count: an unsolicited or
        // duplicate receipt, or one for an attempt already given up, is ignored.
        let Some(started) = self.release(t, p, now) else {
            return;
        };
        if deterministic {
            // Its speed as observed: fuel over the time from dispatch.
            self.reputation
                .entry(vote.provider)
                .timed(vote.fuel.0, now.saturating_sub(started));
            self.refresh(p, now);
        }
        self.spent = add(self.spent, charge);
        match self.tasks[t].state {
            State::Failed => return,
            State::Accepted => {
                // A late replica (a speculative copy): still checked.
                // Judged only against a real quorum: against a single
                // accepted vote (q = 1) a disagreement shows that one of the
                // two lied, not which.
                let Some((r, f, n)) = self.best_group(t) else { return };
                if n >= 2 || (r, f) == (vote.result, vote.fuel) {
                    let rec = self.reputation.entry(vote.provider);
                    if (r, f) == (vote.result, vote.fuel) {
                        rec.agreed += 1;
                    } else {
                        rec.disagreed += 1;
                    }
                    self.refresh(p, now);
                }
                return;
            }
            State::Open => {}
        }
        if !deterministic {
            // A timeout is no evidence either way: retry elsewhere.
            let task = &mut self.tasks[t];
            task.excluded.push(p);
            task.failures += 1;
            self.enqueue(t);
            return;
        }
        let alone = self.tasks[t].target == 1 && self.credible(&vote.provider);
        self.tasks[t].votes.push(vote);
        let need = if alone { 1 } else { self.policy.quorum.max(1) };
        if let Some((result, fuel, n)) = self.best_group(t)
            && n >= need
        {
            self.accept(t, result, fuel);
            return;
        }
        if self.tasks[t].target == 1 {
            // The lone vote was not enough after all: go to a quorum.
            self.tasks[t].target = self.policy.replication.max(self.policy.quorum);
        }
        self.enqueue(t);
    }

    fn best_group(&self, t: usize) -> Option<(ResultHash, Fuel, u32)> {
        let votes = &self.tasks[t].votes;
        let mut best: Option<(ResultHash, Fuel, u32)> = None;
        for v in votes {
            let n = votes
                .iter()
                .filter(|w| w.result == v.result && w.fuel == v.fuel)
                .count() as u32;
            if best.is_none_or(|b| n > b.2) {
                best = Some((v.result, v.fuel, n));
            }
        }
        best
    }

    fn accept(&mut self, t: usize, result: ResultHash, fuel: Fuel) {
        let task = &mut self.tasks[t];
        task.state = State::Accepted;
        self.open.remove(&t);
        self.accepted += 1;
        let (agree, dissent): (Vec<Vote>, Vec<Vote>) = task
            .votes
            .iter()
            .cloned()
            .partition(|v| v.result == result && v.fuel == fuel);
        for v in &agree {
            self.reputation.entry(v.provider).agreed += 1;
        }
        for v in &dissent {
            self.reputation.entry(v.provider).disagreed += 1;
            if let Some(&p) = self.prov_ix.get(&v.provider) {
                // A shunned provider leaves the free set.
                self.refresh(p, self.now);
            }
        }
        self.out.push(Action::Accepted {
            task: self.tasks[t].spec.id,
            result,
            fuel,
            agreeing: agree.into_iter().map(|v| v.provider).collect(),
            dissenting: dissent,
        });
    }

    /// Replicas task `t` still needs dispatched.
    fn need(&self, t: usize) -> u32 {
        let task = &self.tasks[t];
        if task.state != State::Open {
            return 0;
        }
        let running = task.running.len() as u32;
        let votes = task.votes.len() as u32;
        let best = self.best_group(t).map_or(0, |b| b.2);
        let q = self.policy.quorum.max(1);
        let initial = task.target.saturating_sub(votes + running);
        let quorum_gap = if votes > 0 { q.saturating_sub(best + running) } else { 0 };
        let want = initial.max(quorum_gap);
        let room = self
            .policy
            .max_replicas
            .max(task.target)
            .saturating_sub(votes + running);
        want.min(room)
    }

    /// Whether task `t` can never reach a quorum: every replica allowed has
    /// answered and none is running.
    fn hopeless(&self, t: usize) -> bool {
        let task = &self.tasks[t];
        let votes = task.votes.len() as u32;
        task.state == State::Open
            && task.running.is_empty()
            && votes >= self.policy.max_replicas.max(task.target)
            && self.best_group(t).map_or(0, |b| b.2) < self.policy.quorum.max(1)
    }

    fn holders(&self, t: usize) -> impl Iterator<Item = usize> + '_ {
        let task = &self.tasks[t];
        task.running
            .iter()
            .map(|r| r.provider)
            .chain(task.votes.iter().filter_map(|v| self.prov_ix.get(&v.provider).copied()))
    }

    fn expire(&mut self, now: u64) {
        while let Some(Reverse((deadline, t, p))) = self.deadlines.peek().copied() {
            if deadline > now {
                break;
            }
            self.deadlines.pop();
            let live = self.tasks[t]
                .running
                .iter()
                .any(|r| r.provider == p && r.deadline_ms == deadline);
            if live {
                self.attempt_failed(t, p, "no receipt before the timeout", now);
            }
        }
        // Providers blocked after a failure become free again.
        let mut i = 0;
        while i < self.blocked.len() {
            let p = self.blocked[i];
            if self.provs[p].blocked_until <= now {
                self.blocked.swap_remove(i);
                self.provs[p].blocked_until = 0;
                self.refresh(p, now);
            } else {
                i += 1;
            }
        }
    }

    /// Decides what to do at `now_ms`: dispatches, verdicts, the job's end.
    pub fn poll(&mut self, now_ms: u64) -> Vec<Action> {
        self.now = now_ms;
        if self.finished {
            return std::mem::take(&mut self.out);
        }
        self.expire(now_ms);
        if let Some(d) = self.policy.deadline_ms
            && now_ms >= d
            && !self.open.is_empty()
        {
            let waited = self
                .waiting()
                .map(|w| {
                    let secs = now_ms.saturating_sub(w.since_ms) / 1000;
                    format!("; {} tasks waited {secs} s for providers: {}", w.tasks, w.why)
                })
                .unwrap_or_default();
            return self.end(format!(
                "deadline passed with {} of {} tasks accepted{waited}",
                self.accepted,
                self.tasks.len()
            ));
        }
        let usable = self.live > 0;
        if !usable && !self.open.is_empty() {
            let since = *self.no_usable_since.get_or_insert(now_ms);
            if let Some(grace) = self.policy.no_match_grace_ms
                && now_ms.saturating_sub(since) >= grace
            {
                return self.end(format!("no provider qualifies: {}", self.no_match()));
            }
        } else {
            self.no_usable_since = None;
        }
        self.dispatch_pending(now_ms);
        if self.policy.speculate {
            self.speculate(now_ms);
        }
        // Budget: nothing running, work left, and nothing could be sent.
        if !self.open.is_empty()
            && self.open.iter().all(|&t| self.tasks[t].running.is_empty())
            && self.out.iter().all(|a| !matches!(a, Action::Dispatch { .. }))
            && usable
        {
            let fuel = self
                .open
                .iter()
                .next()
                .map_or(Fuel(0), |&t| self.tasks[t].spec.fuel_limit);
            let cheapest = self
                .provs
                .iter()
                .filter(|p| p.live)
                .filter_map(|p| p.offer.price.cost(fuel))
                .min();
            if let Some(c) = cheapest
                && add(self.spent, c).0 > self.policy.budget.0
            {
                return self.end(format!(
                    "budget exhausted: {} spent of {}, the next task could cost up to {}",
                    self.spent, self.policy.budget, c
                ));
            }
        }
        if self.open.is_empty() {
            self.finished = true;
            self.out.push(Action::JobDone);
        }
        std::mem::take(&mut self.out)
    }

    fn end(&mut self, reason: String) -> Vec<Action> {
        self.finished = true;
        self.out.push(Action::JobFailed { reason });
        std::mem::take(&mut self.out)
    }
}
