//! What the provider [`super::Agent`] is told ([`AgentInput`]) and what it
//! asks its shell to do ([`AgentAction`]), with the values they carry: a
//! run's id, the host's state, a run's output, an admitted assignment and a
//! proof of work.

use sharegrid_core::{Assignment, ContentId, Fuel, Offer, Outcome, ResultHash, Signed, TaskId};
use sharegrid_net::{Misbehaviour, PeerId};

use super::run::ExecuteError;

/// A provider's name for one admitted assignment while it is in flight.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RunId(pub u64);

impl std::fmt::Display for RunId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "run-{}", self.0)
    }
}

/// The host's state, sampled by the shell: what the owner's idle and hours
/// rules read.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct HostSample {
    /// CPU load not caused by sharegrid, percent of all cores.
    pub host_load_percent: u8,
    /// Local time of day, minutes after midnight.
    pub minute_of_day: u16,
}

/// What a run produced, as the sandbox reported it.
#[derive(Clone, Debug, PartialEq)]
pub struct RunOutput {
    /// How it ended.
    pub outcome: Outcome,
    /// The result hash (of the canonical encoding, kept as an output blob).
    pub result: ResultHash,
    /// Fuel used.
    pub fuel: Fuel,
}

/// A receipt for escrowed work, with the assignment it answers: what the
/// provider keeps to claim its pay should the requestor not settle.
#[derive(Clone, Debug, PartialEq)]
pub struct Proof {
    /// The escrow that pays.
    pub escrow: ContentId,
    /// The task.
    pub task: TaskId,
    /// The requestor's signed assignment.
    pub assignment: Signed,
    /// This provider's signed receipt.
    pub receipt: Signed,
}

/// An admitted assignment, ready to run once its blobs are held.
#[derive(Clone, Debug)]
pub struct Prepared {
    /// The signed assignment (its body hash goes into the receipt).
    pub signed: Signed,
    /// The assignment.
    pub assignment: Assignment,
}

impl Prepared {
    /// Every blob the run reads: module, stdin, inputs, each once.
    pub fn blobs(&self) -> Vec<ContentId> {
        self.assignment.blobs()
    }
}

/// What happened, told to the agent.
#[derive(Debug)]
pub enum AgentInput {
    /// An assignment arrived from `peer` (its bytes within the protocol's
    /// cap). `backed_off`: the peer sent too much bad input lately.
    Assignment {
        /// The sending peer.
        peer: PeerId,
        /// The signed assignment.
        signed: Signed,
        /// Whether the node is backing off from this peer.
        backed_off: bool,
    },
    /// The ledger says whether the escrow of a run's assignment can pay
    /// for it (asked by [`AgentAction::CheckEscrow`]).
    EscrowChecked {
        /// The run.
        run: RunId,
        /// Whether it can, or why not.
        result: Result<(), String>,
    },
    /// The escrow of a run in flight can no longer pay for it (closed,
    /// drained, or the task paid already): the run is cancelled.
    Unpayable {
        /// The run.
        run: RunId,
        /// Why, for the requestor.
        why: String,
    },
    /// A blob a run needs is in the blob store.
    BlobReady {
        /// The run.
        run: RunId,
    },
    /// A blob a run needs could not be had.
    BlobFailed {
        /// The run.
        run: RunId,
        /// Why, for the requestor.
        why: String,
    },
    /// A run ended (its outputs are kept under the result hash), or could
    /// not be carried out.
    Ran {
        /// The run.
        run: RunId,
        /// What it produced.
        result: Result<RunOutput, ExecuteError>,
    },
    /// The proof of work of a run was kept (or keeping it failed, which the
    /// shell has logged): its receipt may leave.
    ProofKept {
        /// The run.
        run: RunId,
    },
    /// A requestor fetched the last chunk of an output.
    OutputFetched {
        /// Who fetched.
        peer: PeerId,
        /// The output blob.
        output: ContentId,
    },
    /// An offer could not be published (no peer yet): try again soon.
    PublishFailed,
    /// A peer began listening for offers: publish again at the next tick,
    /// so a newcomer learns this provider in a second, not an interval.
    PeerListening,
    /// Time passed.
    Tick,
    /// Shutdown began: accept nothing more.
    BeginShutdown,
    /// The grace period ended: refuse what still runs.
    Stop,
}

/// Which request an answer goes to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reply {
    /// The assignment just given to the agent.
    Incoming,
    /// An admitted run's.
    Run(RunId),
}

/// What the agent wants done.
#[derive(Debug)]
pub enum AgentAction {
    /// Refuse the request, saying why.
    Refuse {
        /// Which request.
        reply: Reply,
        /// The reason, for the requestor.
        reason: String,
        /// The requestor.
        peer: PeerId,
    },
    /// The assignment just given was admitted as `run`: keep its reply
    /// channel under that id.
    Admitted {
        /// The run.
        run: RunId,
        /// The task.
        task: TaskId,
        /// The requestor.
        peer: PeerId,
    },
    /// Ask the ledger whether the assignment's escrow can pay for a run of
    /// it; answer with [`AgentInput::EscrowChecked`]. Nothing is fetched
    /// before the answer.
    CheckEscrow {
        /// The run.
        run: RunId,
        /// Its assignment.
        assignment: Box<Assignment>,
    },
    /// Stop a run in the sandbox: its answer went out already.
    Cancel {
        /// The run.
        run: RunId,
    },
    /// Have `blob` in the blob store (fetch it from `peer` if missing, at
    /// most the agent's fetch bound), then say [`AgentInput::BlobReady`].
    Fetch {
        /// The run.
        run: RunId,
        /// From whom.
        peer: PeerId,
        /// The blob.
        blob: ContentId,
    },
    /// Run the task in the sandbox (off the event loop), keep its outputs,
    /// then say [`AgentInput::Ran`].
    Execute {
        /// The run.
        run: RunId,
        /// What to run.
        prepared: Box<Prepared>,
    },
    /// Keep this proof of work on disk, then say [`AgentInput::ProofKept`].
    KeepProof {
        /// The run.
        run: RunId,
        /// The proof.
        proof: Box<Proof>,
    },
    /// Answer the run's request with its signed receipt.
    Deliver {
        /// The run.
        run: RunId,
        /// The receipt.
        receipt: Signed,
        /// The task, for events.
        task: TaskId,
        /// How it ended, for events.
        outcome: Outcome,
        /// Fuel used, for metrics.
        fuel: Fuel,
    },
    /// Delete an output blob nobody will fetch any more.
    DropOutput(ContentId),
    /// Gossip this signed offer (`offer` is what it signs).
    Publish {
        /// The offer.
        offer: Box<Offer>,
        /// It, signed.
        signed: Signed,
    },
    /// Count bad input against a peer.
    Misbehaved {
        /// The peer.
        peer: PeerId,
        /// What kind.
        what: Misbehaviour,
        /// The specific reason.
        why: String,
    },
}
