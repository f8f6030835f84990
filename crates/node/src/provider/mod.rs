//! The provider: what the owner lets the network use ([`policy`]), the
//! agent that decides what to do with each assignment as a state machine
//! with no I/O ([`agent`], its inputs and actions in [`vocab`]), and the blocking run of one admitted assignment
//! in the sandbox ([`run`]). The daemon's task protocol
//! (`daemon/task.rs`) connects them to the network.

pub(crate) mod agent;
pub(crate) mod policy;
pub(crate) mod run;
pub(crate) mod vocab;

pub use agent::{Agent, AgentSettings};
pub use policy::{HoursWindow, MachineState, ProviderPolicy, Refusal};
pub use run::{ExecuteError, Provider};
pub use vocab::{AgentAction, AgentInput, HostSample, Prepared, Proof, Reply, RunId, RunOutput};
