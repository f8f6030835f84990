//! The provider's handling of one assignment, split where the network
//! comes in: [`Provider::prepare`] checks the signed assignment and the
//! owner's policy and lists the blobs to fetch from the requestor;
//! [`Provider::execute`] runs the task in the sandbox from the blob store and
//! signs the receipt. The daemon's event loop moves the bytes in between;
//! tests drive both halves directly or over loopback.

use std::collections::BTreeMap;
use std::sync::Arc;

use sharegrid_core::{Assignment, ContentId, NodeKey, Receipt, Signed, WIRE_VERSION};
use sharegrid_sandbox::{RunReport, Sandbox, SandboxError, Task};

use crate::blobs::{BlobError, BlobStore};
use crate::policy::{MachineState, ProviderPolicy, Refusal};

/// Largest signed assignment a provider reads.
pub const MAX_ASSIGNMENT_BYTES: usize = 256 * 1024;

/// An assignment that passed the checks, with the blobs still missing.
#[derive(Debug, Clone)]
pub struct Prepared {
    /// The signed assignment (its body hash goes into the receipt).
    pub signed: Signed,
    /// The assignment.
    pub assignment: Assignment,
    /// Blobs to fetch from the requestor before running.
    pub missing: Vec<ContentId>,
}

/// A task run: the signed receipt and the sandbox's report (with the
/// outputs, to keep for the requestor).
#[derive(Debug)]
pub struct Executed {
    /// The signed [`Receipt`].
    pub receipt: Signed,
    /// What the sandbox reported.
    pub report: RunReport,
}

/// Why an accepted assignment could not produce a receipt.
#[derive(Debug, thiserror::Error)]
pub enum ExecuteError {
    /// A blob the run needs is not in the store.
    #[error("blob {0} is missing")]
    MissingBlob(ContentId),
    /// The blob store failed.
    #[error(transparent)]
    Blob(#[from] BlobError),
    /// The sandbox refused the task description.
    #[error(transparent)]
    Sandbox(#[from] SandboxError),
    /// The receipt could not be encoded.
    #[error("cannot sign the receipt: {0}")]
    Sign(String),
    /// The charge overflowed.
    #[error("charge overflows at the agreed price")]
    Overflow,
}

/// One provider: its key, policy, sandbox and blob store.
#[derive(Debug, Clone)]
pub struct Provider {
    key: Arc<NodeKey>,
    policy: ProviderPolicy,
    sandbox: Arc<Sandbox>,
    blobs: BlobStore,
    emulated_speed: Option<f64>,
    faulty: bool,
}

impl Provider {
    /// A provider.
    pub fn new(key: Arc<NodeKey>, policy: ProviderPolicy, sandbox: Arc<Sandbox>, blobs: BlobStore) -> Self {
        Provider {
            key,
            policy,
            sandbox,
            blobs,
            emulated_speed: None,
            faulty: false,
        }
    }

    /// Emulates a slower machine: each run takes at least fuel ÷ `speed`
    /// of wall time. For the demo's and the tests' networks on one host.
    pub fn emulating_speed(mut self, speed: sharegrid_core::GigafuelPerSec) -> Self {
        self.emulated_speed = Some(speed.0);
        self
    }

    /// Test-only: a provider that lies, returning a wrong result (its
    /// stdout altered) with a receipt that is otherwise valid and signed.
    pub fn faulty(mut self) -> Self {
        self.faulty = true;
        self
    }

    /// The owner's policy.
    pub fn policy(&self) -> &ProviderPolicy {
        &self.policy
    }

    /// Checks a signed assignment (size, signature, version, signer) and the
    /// owner's policy against `machine`; lists the blobs not yet held.
    pub fn prepare(&self, signed: &Signed, machine: &MachineState) -> Result<Prepared, Refusal> {
        let assignment: Assignment = signed
            .open(MAX_ASSIGNMENT_BYTES)
            .map_err(|e| Refusal::Invalid { why: e.to_string() })?;
        self.prepare_opened(signed, assignment, machine)
    }

    /// [`Provider::prepare`] for an assignment already opened (verified) by
    /// the caller, which wants the [`sharegrid_core::WireError`] itself.
    pub fn prepare_opened(
        &self,
        signed: &Signed,
        assignment: Assignment,
        machine: &MachineState,
    ) -> Result<Prepared, Refusal> {
        self.policy.admit(&assignment, machine)?;
        let mut needed = vec![assignment.module, assignment.stdin];
        needed.extend(assignment.inputs.iter().map(|(_, id)| *id));
        needed.sort();
        needed.dedup();
        let missing = needed.into_iter().filter(|id| !self.blobs.has(id)).collect();
        Ok(Prepared {
            signed: signed.clone(),
            assignment,
            missing,
        })
    }

    /// Runs a prepared assignment (blocking: call it off the async runtime)
    /// and signs the receipt.
    pub fn execute(&self, p: &Prepared) -> Result<Executed, ExecuteError> {
        let a = &p.assignment;
        let load = |id: &ContentId| -> Result<Arc<[u8]>, ExecuteError> {
            Ok(Arc::from(self.blobs.get(id)?.ok_or(ExecuteError::MissingBlob(*id))?))
        };
        let mut inputs = BTreeMap::new();
        for (path, id) in &a.inputs {
            inputs.insert(path.clone(), load(id)?);
        }
        let task = Task {
            id: a.task,
            module: load(&a.module)?,
            args: a.args.clone(),
            stdin: load(&a.stdin)?,
            inputs,
            limits: a.limits,
            mode: a.mode,
        };
        let started = std::time::Instant::now();
        let mut report = self.sandbox.run(&task)?;
        if self.faulty {
            report.result.stdout.extend_from_slice(b"\n(a lie)\n");
            report.result_hash = report.result.hash();
        }
        if let Some(speed) = self.emulated_speed {
            let want = std::time::Duration::from_secs_f64(report.fuel.0 as f64 / (speed.max(1e-3) * 1e9));
            if let Some(rest) = want.checked_sub(started.elapsed()) {
                std::thread::sleep(rest);
            }
        }
        let receipt = Receipt {
            version: WIRE_VERSION,
            task: a.task,
            provider: self.key.id(),
            assignment: p.signed.id(),
            outcome: report.result.outcome.clone(),
            result: report.result_hash,
            fuel: report.fuel,
            price: a.price,
            charge: a.price.cost(report.fuel).ok_or(ExecuteError::Overflow)?,
        };
        let signed = Signed::sign(&self.key, &receipt).map_err(|e| ExecuteError::Sign(e.to_string()))?;
        Ok(Executed {
            receipt: signed,
            report,
        })
    }
}
