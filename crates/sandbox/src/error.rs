//! Errors of the sandbox itself (as opposed to outcomes of a task): a task
//! description the sandbox refuses to run, or a host failure.

use std::path::PathBuf;

/// Why the sandbox could not run a task at all.
#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    /// The host could not allocate the output the task's limits allowed.
    /// A failure of the provider, never the task's result (so never
    /// signed): providers bound what a task may hold by their policy.
    #[error("the host ran out of memory for the task's output")]
    HostMemory,
    /// The run was stopped by its caller ([`crate::Cancel`]).
    #[error("the run was cancelled")]
    Cancelled,
    /// The module is larger than this sandbox compiles (a provider's
    /// setting, so a refusal, never a result).
    #[error("module is {bytes} bytes, over this sandbox's limit of {limit} bytes")]
    ModuleTooLarge {
        /// Its size.
        bytes: usize,
        /// The limit.
        limit: usize,
    },
    /// A limit is outside what the sandbox supports.
    #[error("bad limit: {0}")]
    BadLimit(String),
    /// Arguments too large in total.
    #[error("arguments total {bytes} bytes, over the limit of {limit} bytes")]
    ArgsTooLarge {
        /// Total size of the arguments.
        bytes: usize,
        /// The configured limit.
        limit: usize,
    },
    /// An argument contains a NUL byte, which C strings cannot carry.
    #[error("an argument contains a NUL byte")]
    BadArg,
    /// The entry, environment or declared imports are malformed.
    #[error("bad launch: {0}")]
    BadLaunch(String),
    /// A mounted file's path is not a clean absolute path outside `/in`
    /// and `/out`.
    #[error("bad mount: {0}")]
    BadMount(String),
    /// An input path is not a clean relative path.
    #[error("bad input path: {0}")]
    BadInputPath(String),
    /// Inputs too large in total.
    #[error("inputs and stdin total {bytes} bytes, over the limit of {limit} bytes")]
    InputTooLarge {
        /// Total size of inputs plus stdin.
        bytes: u64,
        /// The configured limit.
        limit: u64,
    },
    /// Too many input files.
    #[error("{count} input files, over the limit of {limit}")]
    TooManyInputs {
        /// How many were given.
        count: usize,
        /// The configured limit.
        limit: usize,
    },
    /// The module cache directory is unusable.
    #[error("module cache {}: {source}", dir.display())]
    Cache {
        /// The cache directory.
        dir: PathBuf,
        /// What went wrong.
        source: std::io::Error,
    },
    /// wasmtime refused the engine configuration (unsupported host).
    #[error("cannot create the WebAssembly engine: {0}")]
    Engine(String),
    /// A thread could not be started.
    #[error("cannot start a sandbox thread: {0}")]
    Thread(std::io::Error),
    /// A run panicked (a bug in the sandbox, never the module's doing).
    #[error("the sandbox thread panicked")]
    Panicked,
    /// A lock was poisoned by an earlier panic.
    #[error("sandbox state poisoned by an earlier panic")]
    Poisoned,
}
