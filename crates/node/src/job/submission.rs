//! A job as submitted to a node, and everything derived from it in one
//! place: the program its tasks run, the constraints a provider must meet,
//! the scheduler's policy, the worst case its escrow must cover, and the
//! estimate shown before it starts. The CLI, the requestor engine and the
//! payment task all ask this module; none derives these again.

use serde::{Deserialize, Serialize};
use sharegrid_core::job::{JobFile, JobTerms, MAX_TASKS, TermError};
use sharegrid_core::{
    Amount, ContentId, Determinism, GigafuelPerSec, JobId, Launch, Limits, Offer, PricePerGfuel, Program,
    validate_mount_path,
};
use sharegrid_sched::{Constraints, Credibility, JobPolicy};

/// A job as submitted: everything needed to run (or resume) it. Stored as
/// JSON in `node.db`, so its shape is kept stable.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct JobSubmission {
    /// Name for listings.
    pub name: String,
    /// Module blob.
    pub module: ContentId,
    /// Stdin blob (every task).
    pub stdin: ContentId,
    /// Input blobs by path (every task).
    pub inputs: Vec<(String, ContentId)>,
    /// Each task's limits.
    pub limits: Limits,
    /// Mode.
    pub mode: Determinism,
    /// `r`.
    pub replication: u32,
    /// `q`.
    pub quorum: u32,
    /// Price ceiling per gigafuel.
    pub price_ceiling: Amount,
    /// Budget.
    pub budget: Amount,
    /// Seconds from submission to the deadline.
    pub deadline_secs: Option<u64>,
    /// Fail early after waiting this long for providers it lacks (None:
    /// wait until the deadline). Absent in rows stored before it existed.
    #[serde(default)]
    pub wait_for_providers_secs: Option<u64>,
    /// Architecture constraint.
    pub arch: Option<sharegrid_core::Arch>,
    /// Memory a provider must give a task.
    pub min_memory: u64,
    /// Lowest provider speed.
    pub min_speed: f64,
    /// Credibility threshold for accepting a result alone.
    pub credibility: Option<f64>,
    /// The least stake a provider must have bonded. Absent in rows stored
    /// before it existed.
    #[serde(default)]
    pub min_stake: Amount,
    /// Each task's arguments.
    pub tasks: Vec<Vec<String>>,
    /// The entry, environment and declared host imports (every task).
    /// Absent in rows stored before it existed.
    #[serde(default)]
    pub launch: Launch,
    /// Read-only files at absolute guest paths (a runtime's library), by
    /// path. Absent in rows stored before it existed.
    #[serde(default)]
    pub mounts: Vec<(String, ContentId)>,
}

/// What the node can tell of a job before it starts, from the live offers:
/// worst cases from the fuel limit (the real fuel is known only after
/// running).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Estimate {
    /// Tasks in the job.
    pub tasks: usize,
    /// Replicas per task.
    pub replication: u32,
    /// Providers whose offers qualify.
    pub qualifying: usize,
    /// Whether this node's own provider is one of them.
    #[serde(default)]
    pub own: bool,
    /// Their speed in all, gigafuel per second.
    pub speed: f64,
    /// The most the job can cost if every replica uses its whole fuel
    /// limit at the dearest qualifying price (within the budget).
    pub worst_cost: Amount,
    /// How long that much fuel takes at their speed, in seconds.
    pub worst_secs: u64,
}

impl JobSubmission {
    /// The submission of a parsed job file whose module, stdin and inputs
    /// are in the blob store under these ids.
    pub fn from_job_file(
        job: &JobFile,
        module: ContentId,
        stdin: ContentId,
        inputs: Vec<(String, ContentId)>,
    ) -> JobSubmission {
        JobSubmission {
            name: job.name.clone(),
            module,
            stdin,
            inputs,
            limits: job.limits,
            mode: job.mode,
            replication: job.replication,
            quorum: job.quorum,
            price_ceiling: job.price_ceiling.0,
            budget: job.budget,
            deadline_secs: job.deadline_secs,
            wait_for_providers_secs: job.wait_for_providers_secs,
            arch: job.arch,
            min_memory: job.min_memory,
            min_speed: job.min_speed.0,
            credibility: job.credibility,
            min_stake: job.min_stake,
            tasks: job.expand(),
            launch: Launch {
                entry: job.entry.clone(),
                env: job.env.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
                imports: Vec::new(),
            },
            mounts: Vec::new(),
        }
    }

    /// This job run by `runtime`: the runtime's module, mounts and launch
    /// (with the job's own variables over the runtime's), and the script
    /// (blob `script`, named `name`) given to every task as `/in/<name>`,
    /// its path first among the arguments.
    pub fn with_runtime(mut self, runtime: &crate::runtime::Runtime, name: &str, script: ContentId) -> JobSubmission {
        let at = format!("/in/{name}");
        self.module = runtime.module;
        self.mounts = runtime.mounts.clone();
        self.launch = runtime.launch_with(&self.launch.env);
        self.inputs.retain(|(p, _)| p != name);
        self.inputs.push((name.to_owned(), script));
        self.inputs.sort();
        for args in &mut self.tasks {
            args.insert(0, at.clone());
        }
        self
    }

    /// The rules every job meets, as a job file's are checked
    /// ([`JobTerms::check`]): a job submitted through the API is held to
    /// them as one read from a file is.
    pub fn check(&self) -> Result<(), TermError> {
        if self.tasks.len() > MAX_TASKS {
            return Err(TermError {
                field: "sweep",
                message: format!("{} tasks, over the limit of {MAX_TASKS}", self.tasks.len()),
            });
        }
        self.launch
            .check()
            .map_err(|message| TermError { field: "env", message })?;
        for (path, _) in &self.mounts {
            validate_mount_path(path).map_err(|message| TermError {
                field: "mounts",
                message,
            })?;
        }
        JobTerms {
            limits: &self.limits,
            replication: self.replication,
            quorum: self.quorum,
            deadline_secs: self.deadline_secs,
            wait_for_providers_secs: self.wait_for_providers_secs,
            credibility: self.credibility,
            inputs: self.inputs.iter().map(|(p, _)| p.as_str()).collect(),
            min_speed: self.min_speed,
        }
        .check()
    }

    /// What every task runs, apart from its arguments.
    pub fn program(&self) -> Program {
        Program {
            module: self.module,
            stdin: self.stdin,
            inputs: self.inputs.clone(),
            limits: self.limits,
            mode: self.mode,
            launch: self.launch.clone(),
            mounts: self.mounts.clone(),
        }
    }

    /// What a provider must offer to take the job's tasks.
    pub fn constraints(&self) -> Constraints {
        Constraints {
            price_ceiling: PricePerGfuel(self.price_ceiling),
            arch: self.arch,
            min_memory: self.min_memory,
            min_speed: GigafuelPerSec(self.min_speed),
            mode: self.mode,
            min_stake: self.min_stake,
        }
    }

    /// The scheduler's policy for job `id` submitted at `created_ms`.
    pub fn policy(&self, id: JobId, created_ms: u64) -> JobPolicy {
        let mut policy = JobPolicy::new(self.replication, self.quorum, self.constraints(), self.budget);
        policy.deadline_ms = self
            .deadline_secs
            .map(|s| created_ms.saturating_add(s.saturating_mul(1000)));
        policy.no_match_grace_ms = self.wait_for_providers_secs.map(|s| s.saturating_mul(1000));
        policy.credibility = self.credibility.map(|threshold| Credibility {
            threshold,
            ..Credibility::default()
        });
        policy.seed = id.seed();
        policy
    }

    /// The most the job can spend, which its escrow must hold: its budget,
    /// or — bounded by it — every task's most replicas (as the scheduler's
    /// policy allows them) at the fuel limit and the price ceiling. `None`
    /// when both are unbounded.
    pub fn escrow_budget(&self) -> Option<Amount> {
        let max_replicas = self.policy(JobId::from_bytes([0; 8]), 0).max_replicas;
        let runs = (self.tasks.len() as u128).saturating_mul(u128::from(max_replicas));
        let worst = PricePerGfuel(self.price_ceiling)
            .cost(self.limits.fuel)
            .and_then(|per_run| per_run.0.checked_mul(runs));
        let bound = worst.map_or(self.budget.0, |w| w.min(self.budget.0));
        (bound < u128::MAX).then_some(Amount(bound))
    }

    /// The estimate from the live `offers`, as seen by node `me`.
    pub fn estimate(&self, offers: &[Offer], me: Option<&sharegrid_core::NodeId>) -> Estimate {
        let c = self.constraints();
        let ok: Vec<&Offer> = offers.iter().filter(|o| c.check(o).is_ok()).collect();
        let own = me.is_some_and(|me| ok.iter().any(|o| o.provider == *me));
        let replicas = self.tasks.len() as u128 * u128::from(self.replication);
        let worst_fuel = u128::from(self.limits.fuel.0).saturating_mul(replicas);
        let max_price = ok.iter().map(|o| o.price.0.0).max().unwrap_or(0);
        let worst_cost = Amount(worst_fuel.div_ceil(1_000_000_000).saturating_mul(max_price)).min(self.budget);
        let speed: f64 = ok.iter().map(|o| o.speed.0 * f64::from(o.cores)).sum();
        let secs = worst_fuel as f64 / 1e9 / speed.max(1e-9);
        Estimate {
            tasks: self.tasks.len(),
            replication: self.replication,
            qualifying: ok.len(),
            own,
            speed,
            worst_cost,
            worst_secs: if ok.is_empty() {
                0
            } else {
                secs.ceil().min(u64::MAX as f64) as u64
            },
        }
    }
}

#[cfg(test)]
impl JobSubmission {
    /// For tests: `tasks` tasks (arguments `["0"]`, `["1"]`, …) at r = q =
    /// `r`, 1 Gfuel each, a price ceiling of 100 and a budget of 1,000,000.
    pub(crate) fn sample(tasks: usize, r: u32) -> JobSubmission {
        JobSubmission {
            min_stake: Amount(0),
            launch: Default::default(),
            mounts: Vec::new(),
            name: "t".into(),
            module: ContentId::of(b"m"),
            stdin: ContentId::of(b""),
            inputs: vec![],
            limits: Limits {
                fuel: sharegrid_core::Fuel(1_000_000_000),
                ..Limits::default()
            },
            mode: Determinism::Native,
            replication: r,
            quorum: r,
            price_ceiling: Amount(100),
            budget: Amount(1_000_000),
            deadline_secs: Some(600),
            wait_for_providers_secs: None,
            arch: None,
            min_memory: 0,
            min_speed: 0.0,
            credibility: None,
            tasks: (0..tasks).map(|i| vec![i.to_string()]).collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sharegrid_core::Fuel;

    fn sub(tasks: usize, r: u32, budget: u128, ceiling: u128) -> JobSubmission {
        let mut s = JobSubmission::sample(tasks, r);
        s.limits.fuel = Fuel(2_000_000_000);
        s.budget = Amount(budget);
        s.price_ceiling = Amount(ceiling);
        s.deadline_secs = Some(60);
        s
    }

    #[test]
    fn the_escrow_covers_every_replica_the_scheduler_may_run() {
        let s = sub(10, 2, u128::MAX, 1_000);
        let policy = s.policy(JobId::from_bytes([1; 8]), 0);
        // Per run: 2 Gfuel × 1000 = 2000; runs: tasks × the policy's cap.
        assert_eq!(
            s.escrow_budget(),
            Some(Amount(2_000 * 10 * u128::from(policy.max_replicas)))
        );
        assert_eq!(sub(10, 2, 5_000, 1_000).escrow_budget(), Some(Amount(5_000)));
        assert_eq!(sub(10, 2, u128::MAX, u128::MAX).escrow_budget(), None);
    }

    #[test]
    fn the_policy_carries_the_jobs_terms() {
        let s = sub(3, 3, 100, 7);
        let p = s.policy(JobId::from_bytes([2; 8]), 1_000);
        assert_eq!((p.replication, p.quorum), (3, 3));
        assert_eq!(p.deadline_ms, Some(61_000));
        assert_eq!(p.constraints, s.constraints());
        assert_eq!(p.seed, JobId::from_bytes([2; 8]).seed());
    }
}
