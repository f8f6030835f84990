//! sharegrid-node: the daemon side of sharegrid (`shared/DESIGN.md` §1, §4,
//! §10). The node's home (directory, identity key, configuration); the
//! provider's admission policy as a pure decision; the provider's handling
//! of one assignment; the event loop that owns the libp2p swarm and wires
//! these to the network ([`start`] → [`NodeHandle`]); the local control
//! socket; and [`launch`], which builds a running node from its home.
//! The requestor engine, and the ledger ([`Ledger`]: the chain in
//! `ledger.db`, the validator's pool, following blocks).

mod api;
mod blobs;
mod config;
mod daemon;
mod home;
mod jobstore;
mod launch;
mod ledger;
mod machine;
mod policy;
mod provider;
mod requestor;

pub use api::{ApiClient, ApiError, ApiRequest, JobView, RemoteRun, RemoteTask, Transferred};
pub use blobs::{BlobError, BlobStore};
pub use config::{ConfigError, LedgerSettings, NetworkSettings, NodeConfig, SandboxSettings};
pub use daemon::{
    AgentOptions, AgentStatus, AssignError, Assigned, FetchFailure, LedgerOptions, LedgerStatus, MAX_OFFERS,
    MAX_RECEIPT_BYTES, MisbehaviourCount, NodeEvent, NodeHandle, NodeOptions, NodeStatus, start,
};
pub use home::{HomeError, InitReport, NodeHome, SOLO_SUPPLY, solo_genesis};
pub use jobstore::{Earning, JobId, JobRow, JobStore, JobSubmission, KeptReceipt, State, StoreError, TaskRow, task_id};
pub use launch::{CachedBenchmark, Launched, benchmark, claimer, launch};
pub use ledger::{ApplyError, FoundTx, Head, Ledger, LedgerClient, LedgerStore, LedgerStoreError};
pub use machine::{FixedProbe, HostProbe, MachineInfo, SystemProbe, local_minute_of_day};
pub use policy::{HoursWindow, MachineState, ProviderPolicy, Refusal};
pub use provider::{ExecuteError, Executed, MAX_ASSIGNMENT_BYTES, Prepared, Provider};
pub use requestor::{LiveJob, Requestor, SubmitError, escrow_id, worst_case_cost};
