//! Whether an escrow can pay for a run of an assignment: what a provider
//! asks of the ledger before it fetches or runs anything for a stranger,
//! and again at every block while the run goes on.

use sharegrid_core::{Amount, Assignment, ContentId, TaskId};

use crate::state::State;

/// Why an escrow cannot pay for a run of an assignment.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Unpayable {
    /// The assignment names no escrow.
    #[error("the assignment names no escrow; this provider works only against a funded one")]
    NoEscrow,
    /// No open escrow with that id: not funded yet, or closed.
    #[error("escrow {0} is not open on the ledger (not funded yet, or closed)")]
    NotOpen(ContentId),
    /// The escrow is another requestor's.
    #[error("escrow {0} belongs to another requestor")]
    OtherRequestor(ContentId),
    /// The escrow does not pay for this task.
    #[error("task {task} is not one of escrow {escrow}'s tasks")]
    NotItsTask {
        /// The escrow.
        escrow: ContentId,
        /// The task.
        task: TaskId,
    },
    /// This provider was paid for this task already.
    #[error("task {0} was paid to this provider already")]
    AlreadyPaid(TaskId),
    /// Less is left than the run may cost (its fuel limit at the price,
    /// plus the network fee on it).
    #[error("escrow {escrow} holds {left}, less than the {need} this run may cost")]
    Short {
        /// The escrow.
        escrow: ContentId,
        /// What it holds.
        left: Amount,
        /// What the run may cost.
        need: Amount,
    },
    /// The escrow may be closed (its rest refunded) from a height the
    /// ledger has reached.
    #[error("escrow {escrow} may be closed from height {close_height}, and the ledger is at {height}")]
    Closing {
        /// The escrow.
        escrow: ContentId,
        /// From when anyone may close it.
        close_height: u64,
        /// The ledger's height.
        height: u64,
    },
    /// The most the run may cost does not fit in an amount.
    #[error("the most this run may cost overflows")]
    Overflow,
}

impl State {
    /// The most a run of `a` may cost its escrow: its fuel limit at its
    /// price, plus the network fee on that.
    pub fn most_a_run_costs(&self, a: &Assignment) -> Option<Amount> {
        let charge = a.price.cost(a.limits.fuel)?;
        let fee = self.network_fee(charge).ok()?;
        charge.0.checked_add(fee.0).map(Amount)
    }

    /// Whether the escrow `a` names can pay for a run of it at `height`:
    /// open, the requestor's, for this task, not yet paid to this provider,
    /// holding the most the run may cost, and not yet closable. Returns
    /// that most.
    pub fn can_pay(&self, a: &Assignment, height: u64) -> Result<Amount, Unpayable> {
        let id = a.escrow.ok_or(Unpayable::NoEscrow)?;
        let e = self.escrows.get(&id).ok_or(Unpayable::NotOpen(id))?;
        if e.requestor != a.requestor {
            return Err(Unpayable::OtherRequestor(id));
        }
        if !e.tasks.contains(&a.task) {
            return Err(Unpayable::NotItsTask {
                escrow: id,
                task: a.task,
            });
        }
        if e.paid.contains(&(a.task, a.provider)) {
            return Err(Unpayable::AlreadyPaid(a.task));
        }
        let need = self.most_a_run_costs(a).ok_or(Unpayable::Overflow)?;
        if need > e.left {
            return Err(Unpayable::Short {
                escrow: id,
                left: e.left,
                need,
            });
        }
        if height >= e.close_height {
            return Err(Unpayable::Closing {
                escrow: id,
                close_height: e.close_height,
                height,
            });
        }
        Ok(need)
    }
}
