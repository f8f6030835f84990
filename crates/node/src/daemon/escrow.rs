//! The provider's escrow checks, the shell of the agent's
//! [`AgentAction::CheckEscrow`](crate::provider::AgentAction): whether the
//! ledger shows that an assignment's escrow can pay for a run
//! ([`State::can_pay`](sharegrid_ledger::State::can_pay)), asked off the
//! event loop (the ledger's lock is held while a block is written).
//!
//! An escrow not open yet may be in a block this node has not seen: the
//! check waits up to [`ESCROW_WAIT_BLOCKS`] new blocks or
//! [`ESCROW_WAIT_MS`], whichever comes first, fetching nothing and holding
//! no slot, at most [`MAX_PARKED`] assignments at once. Every new block
//! checks again the escrows of the runs in flight; one that can no longer
//! pay cancels its run.

use sharegrid_core::Assignment;
use sharegrid_ledger::Unpayable;

use super::{Daemon, Internal, now_ms};
use crate::provider::{AgentInput, RunId};

/// New blocks an assignment waits for its escrow to appear.
pub(super) const ESCROW_WAIT_BLOCKS: u32 = 3;
/// Longest an assignment waits for its escrow to appear, in milliseconds.
pub(super) const ESCROW_WAIT_MS: u64 = 30_000;
/// Assignments waiting for their escrow at once, at most. They hold no
/// slot; past this, one whose escrow is not open is refused at once, so
/// assignments naming escrows that never come cost a bounded amount.
pub(super) const MAX_PARKED: usize = 64;

/// An assignment whose escrow is not open yet.
pub(super) struct Parked {
    run: RunId,
    assignment: Box<Assignment>,
    blocks_left: u32,
    until_ms: u64,
}

/// One run's escrow, checked.
pub(crate) struct Standing {
    run: RunId,
    assignment: Box<Assignment>,
    /// Waiting to be funded (`None`: funded already, running).
    parked: Option<(u32, u64)>,
    result: Result<(), Unpayable>,
}

impl Daemon {
    /// The agent asks whether `assignment`'s escrow can pay for `run`.
    pub(super) fn check_escrow(&mut self, run: RunId, assignment: Box<Assignment>) {
        let parked = Parked {
            run,
            assignment,
            blocks_left: ESCROW_WAIT_BLOCKS,
            until_ms: now_ms().saturating_add(ESCROW_WAIT_MS),
        };
        self.check_standing(vec![parked], Vec::new());
    }

    /// A block arrived: the parked assignments and the runs in flight are
    /// checked again.
    pub(super) fn recheck_escrows(&mut self) {
        let parked: Vec<Parked> = std::mem::take(&mut self.parked_escrows)
            .into_iter()
            .map(|p| Parked {
                blocks_left: p.blocks_left.saturating_sub(1),
                ..p
            })
            .collect();
        let running = self.agent.as_ref().map(|a| a.agent.escrowed_runs()).unwrap_or_default();
        if !parked.is_empty() || !running.is_empty() {
            self.check_standing(parked, running);
        }
    }

    /// Once a second: parked assignments past their wait are refused.
    pub(super) fn expire_parked_escrows(&mut self) {
        let now = now_ms();
        let (late, keep): (Vec<Parked>, Vec<Parked>) = std::mem::take(&mut self.parked_escrows)
            .into_iter()
            .partition(|p| p.until_ms <= now);
        self.parked_escrows = keep;
        for p in late {
            let why = match p.assignment.escrow {
                Some(id) => Unpayable::NotOpen(id),
                None => Unpayable::NoEscrow,
            };
            self.escrow_refused(p.run, &why);
        }
    }

    fn check_standing(&mut self, parked: Vec<Parked>, running: Vec<(RunId, Assignment)>) {
        let Some(ledger) = self.ledger.as_ref().map(|l| l.ledger.clone()) else {
            for p in parked {
                self.unfunded(p.run, "this node keeps no ledger to check escrows against".into());
            }
            return;
        };
        self.blocking(move || {
            let height = ledger.head().height;
            let checks = ledger.with_state(|state| {
                let waiting = parked.into_iter().map(|p| {
                    let result = state.can_pay(&p.assignment, height).map(|_| ());
                    (p.run, p.assignment, Some((p.blocks_left, p.until_ms)), result)
                });
                let running = running.into_iter().map(|(run, a)| {
                    let result = state.can_pay(&a, height).map(|_| ());
                    (run, Box::new(a), None, result)
                });
                waiting
                    .chain(running)
                    .map(|(run, assignment, parked, result)| Standing {
                        run,
                        assignment,
                        parked,
                        result,
                    })
                    .collect()
            });
            Internal::EscrowStanding(checks)
        });
    }

    pub(super) fn on_escrow_standing(&mut self, checks: Vec<Standing>) {
        let now = now_ms();
        for c in checks {
            match (c.parked, c.result) {
                (Some(_), Ok(())) => {
                    self.emit(super::NodeEvent::Funded {
                        task: c.assignment.task,
                    });
                    let input = AgentInput::EscrowChecked {
                        run: c.run,
                        result: Ok(()),
                    };
                    self.agent_input(input, None);
                }
                (Some((blocks_left, until_ms)), Err(Unpayable::NotOpen(_)))
                    if blocks_left > 0 && until_ms > now && self.parked_escrows.len() < MAX_PARKED =>
                {
                    self.parked_escrows.push(Parked {
                        run: c.run,
                        assignment: c.assignment,
                        blocks_left,
                        until_ms,
                    });
                }
                (Some(_), Err(why @ Unpayable::NotOpen(_))) if self.parked_escrows.len() >= MAX_PARKED => {
                    self.unfunded(
                        c.run,
                        format!("{why}; {MAX_PARKED} assignments already wait for theirs here"),
                    );
                }
                (Some(_), Err(why)) => self.escrow_refused(c.run, &why),
                (None, Ok(())) => {}
                (None, Err(why)) => {
                    tracing::info!(run = %c.run, task = %c.assignment.task, "run cancelled: {why}");
                    self.agent_input(
                        AgentInput::Unpayable {
                            run: c.run,
                            why: why.to_string(),
                        },
                        None,
                    );
                }
            }
        }
    }

    fn escrow_refused(&mut self, run: RunId, why: &Unpayable) {
        let why = match why {
            Unpayable::NotOpen(_) => format!(
                "{why}; waited {ESCROW_WAIT_BLOCKS} blocks or {} s for it",
                ESCROW_WAIT_MS / 1000
            ),
            other => other.to_string(),
        };
        self.unfunded(run, why);
    }

    /// Tells the agent the ledger shows no escrow that can pay for `run`.
    fn unfunded(&mut self, run: RunId, why: String) {
        self.agent_input(AgentInput::EscrowChecked { run, result: Err(why) }, None);
    }
}
