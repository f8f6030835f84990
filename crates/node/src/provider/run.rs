//! Running one admitted assignment: its blobs from the blob store into the
//! sandbox, the run, and its outputs kept (the canonical result encoding,
//! a blob named by the result hash) for the requestor to fetch. Blocking:
//! the daemon calls it on tokio's blocking pool. The decisions around it
//! (admission, receipts, retention) are the [`super::Agent`]'s.

use std::collections::BTreeMap;
use std::sync::Arc;

use sharegrid_core::{ContentId, Outcome};
use sharegrid_sandbox::{Cancel, RunReport, Sandbox, SandboxError, Task};

use super::vocab::{Prepared, RunOutput};
use crate::blobs::{BlobError, BlobStore};

/// Why an admitted assignment could not run.
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
    /// The outputs could not be kept.
    #[error("cannot keep the outputs: {0}")]
    Outputs(BlobError),
}

/// Runs admitted assignments: the sandbox, the blob store the inputs come
/// from, and the store the outputs go to.
#[derive(Debug, Clone)]
pub struct Provider {
    sandbox: Arc<Sandbox>,
    blobs: BlobStore,
    outputs: BlobStore,
    emulated_speed: Option<f64>,
    faulty: bool,
}

impl Provider {
    /// A provider running tasks in `sandbox`, reading inputs from `blobs`
    /// and keeping outputs in `outputs`.
    pub fn new(sandbox: Arc<Sandbox>, blobs: BlobStore, outputs: BlobStore) -> Self {
        Provider {
            sandbox,
            blobs,
            outputs,
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

    /// For demos and tests: a provider that lies, returning a wrong result
    /// (its stdout altered); its receipt is otherwise valid and signed.
    pub fn faulty(mut self) -> Self {
        self.faulty = true;
        self
    }

    /// The blob store inputs are read from.
    pub fn blobs(&self) -> &BlobStore {
        &self.blobs
    }

    /// The store outputs are kept in.
    pub fn outputs(&self) -> &BlobStore {
        &self.outputs
    }

    /// Runs a prepared assignment (blocking: call it off the async runtime)
    /// and keeps its outputs. An invalid module's outcome keeps nothing.
    pub fn execute(&self, p: &Prepared, cancel: &Cancel) -> Result<RunOutput, ExecuteError> {
        let report = self.run(p, cancel)?;
        if !matches!(report.result.outcome, Outcome::InvalidModule { .. }) {
            // Kept for the requestor, named by the result hash.
            self.outputs
                .put(&report.result.encode())
                .map_err(ExecuteError::Outputs)?;
        }
        Ok(RunOutput {
            outcome: report.result.outcome,
            result: report.result_hash,
            fuel: report.fuel,
        })
    }

    fn run(&self, p: &Prepared, cancel: &Cancel) -> Result<RunReport, ExecuteError> {
        let a = &p.assignment;
        let load = |id: &ContentId| -> Result<Arc<[u8]>, ExecuteError> {
            Ok(Arc::from(self.blobs.get(id)?.ok_or(ExecuteError::MissingBlob(*id))?))
        };
        // Sizes first, from the files: inputs over the sandbox's bound are
        // refused before any is read into memory.
        let mut total = 0u64;
        for id in std::iter::once(&a.stdin).chain(a.inputs.iter().chain(&a.mounts).map(|(_, id)| id)) {
            total = total.saturating_add(self.blobs.len(id).ok_or(ExecuteError::MissingBlob(*id))?);
        }
        let limit = self.sandbox.config().max_input_bytes;
        if total > limit {
            return Err(ExecuteError::Sandbox(SandboxError::InputTooLarge {
                bytes: total,
                limit,
            }));
        }
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
            launch: a.launch.clone(),
            mounts: a
                .mounts
                .iter()
                .map(|(path, id)| Ok((path.clone(), load(id)?)))
                .collect::<Result<_, ExecuteError>>()?,
        };
        let started = std::time::Instant::now();
        let mut report = self.sandbox.run_cancellable(&task, cancel)?;
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
        Ok(report)
    }
}
