//! The provider: what the owner lets the network use ([`policy`]), the
//! agent that decides what to do with each assignment as a state machine
//! with no I/O ([`agent`]), and the blocking run of one admitted assignment
//! in the sandbox ([`run`]). The daemon's task protocol
//! (`daemon/task.rs`) connects them to the network.

pub(crate) mod agent;
pub(crate) mod policy;
pub(crate) mod run;

pub use agent::{Agent, AgentAction, AgentInput, AgentSettings, HostSample, Prepared, Proof, Reply, RunId, RunOutput};
pub use policy::{HoursWindow, MachineState, ProviderPolicy, Refusal};
pub use run::{ExecuteError, Provider};
