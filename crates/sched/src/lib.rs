//! sharegrid-sched: the requestor's scheduler and verification policy,
//! sans-io (`shared/DESIGN.md` §5, §6).
//!
//! A [`Scheduler`] holds one job: its tasks, the live offers that qualify,
//! what is in flight where. It is driven by [`Event`]s (an offer, a provider
//! gone, a receipt, a failed attempt) and asked for [`Action`]s at a given
//! `now` (dispatch this task to that provider; this task is accepted with
//! this result; this task failed and why; the job is done or failed). It
//! never reads a clock, never does I/O and draws randomness from a seed, so
//! a run replays exactly: tests and the simulator drive it at thousands of
//! providers in milliseconds.
//!
//! - [`matching`]: which offers a job can use, and the why-no-match report.
//! - [`reputation`]: per-provider records and Sarmenta-style credibility.
//! - [`scheduler`]: choice by estimated finish time, replicas on distinct
//!   providers, bounded work per provider, timeouts, re-dispatch, stragglers
//!   copied speculatively near the end, quorum verification, budget and
//!   deadline.
//!
//! Never does: trust a receipt's content beyond comparing it with others
//! (signatures are checked before events are made), or let money be a float.

pub mod matching;
pub mod reputation;
pub mod scheduler;
pub mod sim;

pub use matching::{Constraints, NoMatch};
pub use reputation::{Credibility, Record, Reputation};
pub use scheduler::{Action, Event, JobPolicy, Progress, Scheduler, TaskSpec, Vote, Waiting};
