//! sharegrid-node: the daemon side of sharegrid (`shared/DESIGN.md` §1, §4,
//! §10), in the manner of quinn-proto under quinn: each role is a state
//! machine with no I/O — the provider [`Agent`], one job's [`JobDriver`],
//! the ledger's [`Follower`] and [`Producer`], the payment plans
//! ([`plan_settlement`], [`plan_claims`]) — and thin tokio shells move
//! bytes and time between them and the world:
//!
//! - [`start`] → [`NodeHandle`]: the task that owns the libp2p swarm
//!   (`daemon/`, one file per protocol), feeding the agent and the ledger
//!   machines;
//! - [`Requestor`]: runs job drivers against the node, with the [`JobStore`];
//! - [`Payments`]: the payment task (escrow, settlement, claims);
//! - [`Ledger`]: the chain in `ledger.db`, the validator's pool;
//! - [`launch`]: a running node from its home, with the control socket.
//!
//! [`Lifecycle`] stops them all in order; [`Metrics`] counts what they do;
//! [`testnet`] builds networks of real nodes on loopback and [`sim`] drives
//! the role machines of many nodes over a simulated network and clock.

mod api;
mod blobs;
mod clock;
mod config;
mod daemon;
mod faucet;
mod home;
pub mod http;
mod job;
mod join;
mod judge;
mod launch;
mod ledger;
mod lifecycle;
mod machine;
mod metrics;
mod payment;
mod provider;
pub mod runtime;
pub mod sim;
pub mod testnet;

pub use api::{ApiClient, ApiError, ApiRequest, JobView, PaymentView, RemoteRun, RemoteTask, StakeAction, Transferred};
pub use blobs::{BlobError, BlobStore};
pub use clock::now_ms;
pub use config::{ConfigError, LedgerSettings, NetworkSettings, NetworkSettingsError, NodeConfig, SandboxSettings};
pub use daemon::{
    AgentOptions, AgentStatus, AssignError, Assigned, DialError, Discovery, FetchFailure, LedgerOptions, LedgerStatus,
    MisbehaviourCount, NodeEvent, NodeHandle, NodeOptions, NodeStatus, PeerView, RequestFailure, discovery_hint, start,
};
pub use faucet::{FaucetOrder, FaucetRules, GRANTS_PER_MINUTE, start_faucet};
pub use home::{HomeError, InitReport, NodeHome, SOLO_FAUCET, SOLO_SUPPLY, solo_genesis};
pub use job::{
    CANCELLED, CancelError, EscrowRecord, Estimate, Funding, JobAction, JobDriver, JobEvent, JobInput, JobRequest,
    JobRow, JobStore, JobSubmission, KeepError, KeptReceipt, LiveJob, Requestor, State, StoreError, SubmitError,
    TaskRow, module_bytes,
};
pub use join::{JoinError, check_genesis, fetch_genesis, parse_join_address};
pub use judge::{JudgeOptions, start_judge};
pub use launch::{CachedBenchmark, Launched, benchmark, launch};
pub use ledger::{
    AcceptError, Applied, ApplyError, BalancePoint, Consensus, Follower, FollowerAction, FollowerInput, FoundTx, Head,
    Ledger, LedgerClient, LedgerError, LedgerStore, LedgerStoreError, Produce, Producer, parse_peers,
};
pub use lifecycle::Lifecycle;
pub use machine::{FixedProbe, HostProbe, MachineInfo, SystemProbe, local_minute_of_day};
pub use metrics::Metrics;
pub use payment::{
    Batch, ClaimStep, FundError, Funded, KeptProof, PayError, PaymentEvent, Payments, ProofStore, SettlementPlan,
    Unpaid, expired_escrows, plan_claims, plan_settlement,
};
pub use provider::{
    Agent, AgentAction, AgentInput, AgentSettings, ExecuteError, HostSample, HoursWindow, MachineState, Prepared,
    Proof, Provider, ProviderPolicy, Refusal, Reply, RunId, RunOutput,
};
