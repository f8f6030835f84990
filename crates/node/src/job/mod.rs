//! Jobs, the requestor's side: the submission and what is derived from it
//! ([`submission`]), the job store in `node.db` ([`store`]), one job's
//! driver as a state machine with no I/O ([`driver`]), and the engine that
//! runs drivers against the node ([`engine`]).

pub(crate) mod driver;
pub(crate) mod engine;
pub(crate) mod store;
pub(crate) mod submission;

pub use driver::{JobAction, JobDriver, JobInput};
pub use engine::{JobEvent, LiveJob, Requestor, SubmitError};
pub use store::{EscrowRecord, JobRow, JobStore, KeptReceipt, State, StoreError, TaskRow};
pub use submission::{Estimate, JobSubmission};
