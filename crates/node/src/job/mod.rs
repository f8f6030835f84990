//! Jobs, the requestor's side: the submission and what is derived from it
//! ([`submission`]; [`request`]: a job file and uploaded blobs, as the HTTP
//! API takes a job), the job store in `node.db` ([`store`]: jobs and tasks;
//! [`evidence`]: receipts, escrow records, provider records), one job's
//! driver as a state machine with no I/O ([`driver`]), and the engine that
//! runs drivers against the node ([`engine`]).

pub(crate) mod driver;
pub(crate) mod engine;
pub(crate) mod evidence;
pub(crate) mod request;
pub(crate) mod store;
pub(crate) mod submission;

pub use driver::{CANCELLED, Funding, JobAction, JobDriver, JobInput, KeepError};
pub use engine::{CancelError, JobEvent, LiveJob, Requestor, SubmitError};
pub use evidence::{EscrowRecord, KeptReceipt};
pub use request::{JobRequest, module_bytes};
pub use store::{JobRow, JobStore, State, StoreError, TaskRow};
pub use submission::{Estimate, JobSubmission};
