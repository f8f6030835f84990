//! sharegrid-node: the daemon side of sharegrid. For now, the node's home
//! (its directory, identity key and configuration, `shared/DESIGN.md` §10)
//! and the provider's admission policy as a pure decision function.
//! The provider agent, requestor engine and validator will live here too,
//! wiring the pure crates to I/O.

mod api;
mod blobs;
mod config;
mod daemon;
mod home;
mod launch;
mod machine;
mod policy;
mod provider;

pub use api::{ApiClient, ApiError, ApiRequest, RemoteRun, RemoteTask};
pub use blobs::{BlobError, BlobStore};
pub use config::{ConfigError, NetworkSettings, NodeConfig, SandboxSettings};
pub use daemon::{
    AgentOptions, AgentStatus, AssignError, Assigned, FetchFailure, MAX_OFFERS, MAX_RECEIPT_BYTES, MisbehaviourCount,
    NodeEvent, NodeHandle, NodeOptions, NodeStatus, start,
};
pub use home::{HomeError, InitReport, NodeHome};
pub use launch::{CachedBenchmark, Launched, benchmark, launch};
pub use machine::{FixedProbe, HostProbe, MachineInfo, SystemProbe, local_minute_of_day};
pub use policy::{HoursWindow, MachineState, ProviderPolicy, Refusal};
pub use provider::{ExecuteError, Executed, MAX_ASSIGNMENT_BYTES, Prepared, Provider};
