//! Protocol names, message caps and the request-response messages.

use serde::{Deserialize, Serialize};
use sharegrid_core::Signed;

/// Gossipsub topic for provider offers.
pub const OFFERS_TOPIC: &str = "sharegrid/offers/1";
/// Request-response protocol for task assignment.
pub const TASK_PROTOCOL: &str = "/sharegrid/task/1";

/// Largest gossiped offer, in bytes.
pub const MAX_OFFER_BYTES: usize = 4 * 1024;
/// Largest task request (a signed assignment: args and input names, not
/// input data, which moves as blobs), in bytes.
pub const MAX_TASK_REQUEST_BYTES: u64 = 256 * 1024;
/// Largest task response (a signed receipt or a refusal), in bytes.
pub const MAX_TASK_RESPONSE_BYTES: u64 = 64 * 1024;

/// A requestor asks a provider to run a task.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TaskRequest {
    /// The signed [`Assignment`](sharegrid_core::Assignment).
    pub assignment: Signed,
}

/// A provider's answer.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum TaskResponse {
    /// The task ran: its signed [`Receipt`](sharegrid_core::Receipt).
    Receipt(Signed),
    /// The provider will not run it, and why.
    Refused {
        /// One line, for the requestor's why-no-match report.
        reason: String,
    },
}
