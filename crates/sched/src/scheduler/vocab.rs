//! The scheduler's vocabulary: a job's policy and tasks, what happened
//! (events), what to do (actions), and what a job looks like (progress,
//! what it waits for).

use serde::{Deserialize, Serialize};
use sharegrid_core::{Amount, Fuel, NodeId, Offer, PricePerGfuel, ResultHash, TaskId};

use crate::matching::Constraints;
use crate::reputation::Credibility;

/// A job's scheduling and verification settings.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct JobPolicy {
    /// Replicas dispatched per task (`r`).
    pub replication: u32,
    /// Agreeing votes needed to accept (`q`, at most `r`).
    pub quorum: u32,
    /// Most replicas per task, counting those added after disagreement.
    pub max_replicas: u32,
    /// What a provider must offer.
    pub constraints: Constraints,
    /// Total the job may spend.
    pub budget: Amount,
    /// Milliseconds since the epoch by which the job must be done.
    pub deadline_ms: Option<u64>,
    /// Most tasks in flight on one provider.
    pub max_in_flight_per_provider: u32,
    /// Accept credible providers alone (None: always a quorum).
    pub credibility: Option<Credibility>,
    /// Fail early when no provider qualifies — or a task lacks enough
    /// distinct ones — for this long. None (the default): wait, taking new
    /// offers as they arrive, until the deadline.
    pub no_match_grace_ms: Option<u64>,
    /// Failed attempts (refusals, timeouts, departures) before a task fails.
    pub max_failures_per_task: u32,
    /// Copy stragglers to idle providers near the end.
    pub speculate: bool,
    /// Seed for spot-check draws.
    pub seed: u64,
}

impl JobPolicy {
    /// Defaults for `r`, `q` and the given constraints and budget.
    pub fn new(replication: u32, quorum: u32, constraints: Constraints, budget: Amount) -> Self {
        JobPolicy {
            replication,
            quorum,
            max_replicas: replication + 2,
            constraints,
            budget,
            deadline_ms: None,
            max_in_flight_per_provider: 64,
            credibility: None,
            no_match_grace_ms: None,
            max_failures_per_task: 8,
            speculate: true,
            seed: 0,
        }
    }
}

/// What a job is waiting for, while it cannot place work it needs.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Waiting {
    /// Since when (milliseconds since the epoch).
    pub since_ms: u64,
    /// Tasks that wait.
    pub tasks: usize,
    /// For what: the providers it lacks.
    pub why: String,
}

/// One task of the job.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TaskSpec {
    /// Its id.
    pub id: TaskId,
    /// Its fuel limit (the worst case billed and waited for).
    pub fuel_limit: Fuel,
    /// Its wall-clock limit on the provider, milliseconds.
    pub timeout_ms: u64,
}

/// A provider's answer for a task: what it computed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Vote {
    /// Who.
    pub provider: NodeId,
    /// Result hash.
    pub result: ResultHash,
    /// Fuel used.
    pub fuel: Fuel,
}

/// What happened, told to the scheduler.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum Event {
    /// A live offer (new or updated).
    Offer(Offer),
    /// A provider left (its connections closed or it stopped answering).
    Gone(NodeId),
    /// A verified receipt for a dispatched task.
    Receipt {
        /// The task.
        task: TaskId,
        /// Its vote.
        vote: Vote,
        /// The receipt's charge.
        charge: Amount,
        /// False for an outcome replicas need not reproduce (a timeout).
        deterministic: bool,
    },
    /// An attempt produced no receipt: refused, unreachable, gone.
    Failed {
        /// The task.
        task: TaskId,
        /// The provider.
        provider: NodeId,
        /// Why.
        why: String,
    },
}

/// What the scheduler decided.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum Action {
    /// Send this task to this provider at this price; give up after `timeout_ms`.
    Dispatch {
        /// The task.
        task: TaskId,
        /// The provider.
        provider: NodeId,
        /// The price to agree (the provider's asking price).
        price: PricePerGfuel,
        /// How long to wait for its receipt.
        timeout_ms: u64,
    },
    /// A quorum agreed.
    Accepted {
        /// The task.
        task: TaskId,
        /// The agreed result.
        result: ResultHash,
        /// The agreed fuel.
        fuel: Fuel,
        /// Providers that agreed.
        agreeing: Vec<NodeId>,
        /// Votes that disagreed: evidence.
        dissenting: Vec<Vote>,
    },
    /// A task could not be completed.
    TaskFailed {
        /// The task.
        task: TaskId,
        /// Why.
        reason: String,
        /// Votes received: evidence.
        votes: Vec<Vote>,
    },
    /// Every task is accepted or failed.
    JobDone,
    /// The job cannot go on (no provider, deadline, budget).
    JobFailed {
        /// Why.
        reason: String,
    },
}

/// Counts for a progress display.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Progress {
    /// Tasks in the job.
    pub total: usize,
    /// Accepted.
    pub accepted: usize,
    /// Failed.
    pub failed: usize,
    /// With at least one replica in flight.
    pub running: usize,
    /// Providers with work in flight.
    pub providers_in_use: usize,
    /// Charged so far.
    pub spent: Amount,
}
