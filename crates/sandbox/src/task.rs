//! One task as the sandbox runs it, and the checks a task passes before
//! anything of it is compiled or run.

use std::collections::BTreeMap;
use std::sync::Arc;

use sharegrid_core::{ContentId, Determinism, Launch, Limits, TaskId, validate_mount_path, validate_out_path};

use crate::error::SandboxError;
use crate::run::Sandbox;

/// One task: a module, what it reads, and what it may use.
#[derive(Clone, Debug)]
pub struct Task {
    /// Seeds the deterministic clock and random stream.
    pub id: TaskId,
    /// The module's bytes (binary WebAssembly).
    pub module: Arc<[u8]>,
    /// Arguments after `argv[0]` (which is always `task`).
    pub args: Vec<String>,
    /// Bytes on stdin.
    pub stdin: Arc<[u8]>,
    /// Files under `/in`, by clean relative path (`a/b.txt`).
    pub inputs: BTreeMap<String, Arc<[u8]>>,
    /// Limits on fuel, memory, output, stack and wall-clock time.
    pub limits: Limits,
    /// Determinism mode.
    pub mode: Determinism,
    /// The export called, the environment and the host imports declared
    /// (the default: a WASI command's `_start`, nothing else).
    pub launch: Launch,
    /// Read-only files at absolute guest paths outside `/in` and `/out`
    /// (a runtime's library); each file's directory is preopened.
    pub mounts: BTreeMap<String, Arc<[u8]>>,
}

impl Task {
    /// A task with no arguments, stdin or inputs, default limits and mode,
    /// and a task id derived from the module.
    pub fn new(module: impl Into<Arc<[u8]>>) -> Self {
        Self::local(module, Vec::new(), Vec::new(), BTreeMap::new())
    }

    /// A task run locally (as `sharegrid run` does): default limits and
    /// mode, and the task id [`TaskId::local`] derives from the module,
    /// arguments and stdin.
    pub fn local(
        module: impl Into<Arc<[u8]>>,
        args: Vec<String>,
        stdin: impl Into<Arc<[u8]>>,
        inputs: BTreeMap<String, Arc<[u8]>>,
    ) -> Self {
        let module = module.into();
        let stdin = stdin.into();
        let id = TaskId::local(&ContentId::of(&module), &args, &stdin);
        Task {
            id,
            module,
            args,
            stdin,
            inputs,
            limits: Limits::default(),
            mode: Determinism::Native,
            launch: Launch::default(),
            mounts: BTreeMap::new(),
        }
    }
}

impl Sandbox {
    /// Checks `task` against the sandbox's bounds: limits in range, the
    /// module, arguments and inputs bounded, paths clean, the launch sane.
    pub(crate) fn check_task(&self, task: &Task) -> Result<(), SandboxError> {
        let l = &task.limits;
        if l.stack_bytes == 0 || l.stack_bytes > Limits::MAX_STACK_BYTES {
            return Err(SandboxError::BadLimit(format!(
                "stack limit {} bytes is outside 1..={} bytes",
                l.stack_bytes,
                Limits::MAX_STACK_BYTES
            )));
        }
        if l.memory_bytes == 0 || l.memory_bytes > 4 << 30 {
            return Err(SandboxError::BadLimit(format!(
                "memory limit {} bytes is outside 1..=4 GiB (32-bit linear memory)",
                l.memory_bytes
            )));
        }
        if l.timeout_ms == 0 {
            return Err(SandboxError::BadLimit("timeout must be positive".into()));
        }
        if task.module.len() > self.config().max_module_bytes {
            return Err(SandboxError::ModuleTooLarge {
                bytes: task.module.len(),
                limit: self.config().max_module_bytes,
            });
        }
        let args: usize = task.args.iter().map(|a| a.len() + 1).sum();
        if args > self.config().max_args_bytes {
            return Err(SandboxError::ArgsTooLarge {
                bytes: args,
                limit: self.config().max_args_bytes,
            });
        }
        if task.args.iter().any(|a| a.contains('\0')) {
            return Err(SandboxError::BadArg);
        }
        task.launch.check().map_err(SandboxError::BadLaunch)?;
        if task.inputs.len() + task.mounts.len() > self.config().max_input_files {
            return Err(SandboxError::TooManyInputs {
                count: task.inputs.len() + task.mounts.len(),
                limit: self.config().max_input_files,
            });
        }
        let mut total = task.stdin.len() as u64;
        for (path, data) in &task.mounts {
            validate_mount_path(path).map_err(SandboxError::BadMount)?;
            // A file cannot also be a directory: nothing may sort under
            // `path/`.
            let under = format!("{path}/");
            if task
                .mounts
                .range(under.clone()..)
                .next()
                .is_some_and(|(p, _)| p.starts_with(&under))
            {
                return Err(SandboxError::BadMount(format!(
                    "mount `{path}` is both a file and a directory"
                )));
            }
            total += data.len() as u64;
        }
        let mut prev: Option<&str> = None;
        for (path, data) in &task.inputs {
            validate_out_path(path).map_err(|e| SandboxError::BadInputPath(e.to_string()))?;
            // Sorted order puts "a" right before "a/b": a file cannot also be
            // a directory.
            if let Some(p) = prev
                && path.starts_with(p)
                && path.as_bytes().get(p.len()) == Some(&b'/')
            {
                return Err(SandboxError::BadInputPath(format!(
                    "input {p:?} is both a file and a directory"
                )));
            }
            prev = Some(path);
            total += data.len() as u64;
        }
        if total > self.config().max_input_bytes {
            return Err(SandboxError::InputTooLarge {
                bytes: total,
                limit: self.config().max_input_bytes,
            });
        }
        Ok(())
    }
}
