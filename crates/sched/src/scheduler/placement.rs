//! Placement: which free provider takes a task's next replica (earliest
//! estimated finish, see the scheduler's docs), dispatching within the
//! budget, the queue of tasks waiting for a provider, and speculative
//! copies of stragglers near the end.

use std::cmp::Reverse;

use super::{Action, Running, Scheduler, add, excluded};

impl Scheduler {
    /// The best free provider for task `t`, if it should take it now.
    fn choose(&self, t: usize) -> Option<usize> {
        let task = &self.tasks[t];
        let holders: Vec<usize> = self.holders(t).collect();
        let native = self.policy.constraints.mode == sharegrid_core::Determinism::Native;
        for &(_, p) in &self.free {
            if holders.contains(&p) || excluded(task, p) {
                continue;
            }
            let pr = &self.provs[p];
            if native && task.arch.is_some_and(|a| a != pr.offer.arch) {
                continue;
            }
            return Some(p);
        }
        None
    }

    fn dispatch(&mut self, t: usize, p: usize, now: u64) -> bool {
        let pr = &self.provs[p];
        let price = pr.offer.price;
        let Some(worst) = price.cost(self.tasks[t].spec.fuel_limit) else {
            return false;
        };
        if add(add(self.spent, self.committed), worst).0 > self.policy.budget.0 {
            return false;
        }
        self.tasks[t].stuck_since = None;
        let spec = &self.tasks[t].spec;
        let compute_ms = spec.fuel_limit.0 as f64 / (pr.offer.speed.0.max(1e-9) * 1e9) * 1000.0;
        let timeout_ms = ((compute_ms * 2.0) as u64 + 10_000).min(spec.timeout_ms.saturating_add(30_000));
        let id = spec.id;
        let provider = pr.offer.provider;
        let arch = pr.offer.arch;
        let task = &mut self.tasks[t];
        task.worst = worst;
        task.arch.get_or_insert(arch);
        if task.votes.is_empty() && task.running.is_empty() && self.policy.credibility.is_some() {
            // A credible provider may carry the task alone, unless this one is spot-checked.
            let spot = self.policy.credibility.map_or(0.0, |c| c.spot_check_rate);
            if self.credible(&provider) && self.next_random() >= spot {
                self.tasks[t].target = 1;
            }
        }
        let task = &mut self.tasks[t];
        task.running.push(Running {
            provider: p,
            deadline_ms: now + timeout_ms,
            started_ms: now,
        });
        self.deadlines.push(Reverse((now + timeout_ms, t, p)));
        self.committed = add(self.committed, worst);
        self.provs[p].in_flight += 1;
        self.refresh(p, now);
        self.out.push(Action::Dispatch {
            task: id,
            provider,
            price,
            timeout_ms,
        });
        true
    }

    pub(super) fn dispatch_pending(&mut self, now: u64) {
        let mut stuck = 0;
        while stuck < self.queue.len() && !self.free.is_empty() {
            let Some(t) = self.queue.pop_front() else { break };
            self.tasks[t].queued = false;
            if self.hopeless(t) {
                let n = self.tasks[t].votes.len();
                self.fail_task(t, format!("no quorum: {n} receipts disagree"));
                continue;
            }
            let need = self.need(t);
            if need == 0 {
                continue;
            }
            match self.choose(t) {
                Some(p) if self.dispatch(t, p, now) => {
                    stuck = 0;
                    if need > 1 {
                        self.tasks[t].queued = true;
                        self.queue.push_front(t);
                    }
                }
                _ => {
                    stuck += 1;
                    if self.out_of_providers(t, now) {
                        continue;
                    }
                    self.tasks[t].queued = true;
                    self.queue.push_back(t);
                }
            }
        }
        // Tasks that can never reach a quorum end even when no provider is free.
        let hopeless: Vec<usize> = self.open.iter().copied().filter(|&t| self.hopeless(t)).collect();
        for t in hopeless {
            let n = self.tasks[t].votes.len();
            self.fail_task(t, format!("no quorum: {n} receipts disagree"));
        }
    }

    /// Whether task `t` has been unable, for the grace period (when the
    /// job sets one), to find any qualifying provider it has not already
    /// used; if so it fails. It notes since when it waits either way.
    fn out_of_providers(&mut self, t: usize, now: u64) -> bool {
        let task = &self.tasks[t];
        let failed_out = task.excluded.iter().copied().filter(|&p| excluded(task, p));
        let mut used: Vec<usize> = self.holders(t).chain(failed_out).collect();
        used.sort_unstable();
        used.dedup();
        let used_live = used.iter().filter(|&&p| self.provs[p].live).count();
        if self.live > used_live || !task.running.is_empty() {
            self.tasks[t].stuck_since = None;
            return false;
        }
        let since = *self.tasks[t].stuck_since.get_or_insert(now);
        match self.policy.no_match_grace_ms {
            Some(grace) if now.saturating_sub(since) >= grace => {}
            _ => return false,
        }
        let reason = self.lacking(t);
        self.fail_task(t, reason);
        true
    }

    /// Near the end: copy a straggler to a free provider that would finish
    /// it sooner than its slowest running replica is expected to (within
    /// the job's replica cap; the quorum then forms from whichever answer).
    pub(super) fn speculate(&mut self, now: u64) {
        if self.free.is_empty() || self.queue.iter().any(|&t| self.need(t) > 0) {
            return;
        }
        if self.open.len() > self.free.len() {
            return;
        }
        let candidates: Vec<usize> = self.open.iter().copied().collect();
        for t in candidates {
            if self.free.is_empty() {
                break;
            }
            let task = &self.tasks[t];
            let replicas = (task.running.len() + task.votes.len()) as u32;
            if task.running.is_empty() || replicas >= self.policy.max_replicas.max(task.target) {
                continue;
            }
            // The replica expected to answer last is the straggler.
            let fuel = task.spec.fuel_limit.0 as f64 / 1e9;
            let expected_end = task
                .running
                .iter()
                .map(|r| r.started_ms as f64 + fuel / self.provs[r.provider].offer.speed.0.max(1e-9) * 1000.0)
                .fold(0.0, f64::max);
            let Some(p) = self.choose(t) else { continue };
            let would_end = now as f64 + fuel / self.provs[p].offer.speed.0.max(1e-9) * 1000.0;
            if would_end < expected_end {
                self.dispatch(t, p, now);
            }
        }
    }
}
