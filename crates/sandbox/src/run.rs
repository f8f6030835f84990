//! Running one task: prepare (validate, compile or load) the module, build its
//! WASI world, run `_start` under its limits, classify how it ended, and hash
//! the result.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::Serialize;
use sharegrid_core::{ContentId, Determinism, Fuel, Launch, Limits, Outcome, ResultHash, TaskId, TaskResult, TrapKind};
use wasmtime::{Engine, ExternType, Linker, Memory, Module, ResourceLimiter, Store, Trap, Val, ValType};

use crate::cache::ModuleCache;
use crate::engine::{InterruptSlot, Ticker, build_engine};
use crate::error::SandboxError;
use crate::gas::instrument_inline;
use crate::metering::{GAS_GLOBAL, INTERRUPT_MEMORY, Meter, Metering, START_GAS, instrument};
use crate::task::Task;
use crate::wasi::{self, ctx::End, ctx::WasiCtx};

/// Largest table a task may grow, in elements.
const MAX_TABLE_ELEMENTS: usize = 1 << 20;
/// Host stack reserved beyond the task's wasm stack, for host calls and
/// wasmtime itself.
const HOST_STACK_MARGIN: usize = 4 << 20;

/// Stops a run from another thread: see [`Sandbox::run_cancellable`].
/// Also says when the guest's code starts running ([`Cancel::wait_running`]).
#[derive(Clone, Debug, Default)]
pub struct Cancel(Arc<CancelState>);

#[derive(Debug, Default)]
struct CancelState {
    cancelled: std::sync::atomic::AtomicBool,
    running: std::sync::Mutex<bool>,
    started: std::sync::Condvar,
}

impl Cancel {
    /// Stops the run (if it still goes on).
    pub fn cancel(&self) {
        self.0.cancelled.store(true, std::sync::atomic::Ordering::SeqCst);
    }

    /// Whether [`Cancel::cancel`] was called.
    pub fn is_cancelled(&self) -> bool {
        self.0.cancelled.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Blocks until the run's guest code has started (its module compiled
    /// and instantiated, the watchdog armed). Never returns if the run ends
    /// before that (an invalid module, a timeout while compiling).
    pub fn wait_running(&self) {
        let mut running = self.0.running.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        while !*running {
            running = self
                .0
                .started
                .wait(running)
                .unwrap_or_else(std::sync::PoisonError::into_inner);
        }
    }

    fn set_running(&self) {
        *self.0.running.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = true;
        self.0.started.notify_all();
    }
}

/// Where the compiled module came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ModuleSource {
    /// Compiled now.
    Compiled,
    /// Already compiled in this process.
    MemoryCache,
    /// Loaded from the on-disk cache.
    DiskCache,
    /// Never compiled: the module was invalid.
    Rejected,
}

/// Everything known about a finished run.
#[derive(Clone, Debug)]
pub struct RunReport {
    /// The task's id.
    pub task: TaskId,
    /// Hash of the module bytes.
    pub module: ContentId,
    /// The determinism mode it ran in.
    pub mode: Determinism,
    /// The limits it ran under.
    pub limits: Limits,
    /// Outcome and outputs.
    pub result: TaskResult,
    /// BLAKE3 of the canonical encoding of `result`.
    pub result_hash: ResultHash,
    /// Fuel used, including WASI calls. Equal across honest replicas.
    pub fuel: Fuel,
    /// Where the compiled module came from.
    pub module_source: ModuleSource,
    /// Time to validate and compile (or load) the module.
    pub prepare_time: Duration,
    /// Time from instantiation to the end of the run.
    pub run_time: Duration,
}

/// Settings of a [`Sandbox`] (not of a task).
#[derive(Clone, Debug)]
pub struct SandboxConfig {
    /// Where compiled modules are cached on disk; `None` for no disk cache.
    pub cache_dir: Option<std::path::PathBuf>,
    /// Bound on the disk cache, in bytes.
    pub cache_max_bytes: u64,
    /// Compiled modules kept in memory.
    pub memory_cache_modules: usize,
    /// Largest total of input files plus stdin a task may bring, in bytes.
    pub max_input_bytes: u64,
    /// Most input files a task may bring.
    pub max_input_files: usize,
    /// Largest total size of a task's arguments, in bytes.
    pub max_args_bytes: usize,
    /// Largest module accepted, in bytes: compiling takes time and memory
    /// in proportion to size, before any limit of the task applies.
    pub max_module_bytes: usize,
    /// How fuel is counted. Only the default ([`Metering::Inline`]) is the
    /// protocol's fuel; the others are for benchmarks.
    pub metering: Metering,
    /// Enforce each task's wall-clock timeout (epoch interruption). On by
    /// default; off only to measure what it costs.
    pub wall_clock_timeout: bool,
}

impl Default for SandboxConfig {
    fn default() -> Self {
        SandboxConfig {
            cache_dir: None,
            cache_max_bytes: 2 << 30,
            memory_cache_modules: 64,
            max_input_bytes: 1 << 30,
            max_input_files: 10_000,
            max_args_bytes: 1 << 20,
            max_module_bytes: 128 << 20,
            metering: Metering::Inline,
            wall_clock_timeout: true,
        }
    }
}

/// Per-store state: the WASI world plus the limiter and how the run ended.
pub(crate) struct Host {
    pub(crate) wasi: WasiCtx,
    pub(crate) memory: Option<Memory>,
    pub(crate) end: Option<End>,
    pub(crate) meter: Meter,
    /// The armed interrupt flag of an inline-gas run.
    interrupt: Option<Arc<InterruptSlot>>,
    limiter: Limiter,
}

struct Limiter {
    memory_bytes: usize,
    /// Memories allowed: the module's one, plus inline gas's interrupt flag.
    memories: usize,
    hit: bool,
}

/// Marks a memory or table growth refused by the task's limit.
#[derive(Debug, thiserror::Error)]
#[error("memory limit reached")]
struct MemoryLimitHit;

impl ResourceLimiter for Limiter {
    fn memory_growing(&mut self, _current: usize, desired: usize, _max: Option<usize>) -> wasmtime::Result<bool> {
        if desired > self.memory_bytes {
            self.hit = true;
            return Err(wasmtime::Error::new(MemoryLimitHit));
        }
        Ok(true)
    }

    fn table_growing(&mut self, _current: usize, desired: usize, _max: Option<usize>) -> wasmtime::Result<bool> {
        if desired > MAX_TABLE_ELEMENTS {
            self.hit = true;
            return Err(wasmtime::Error::new(MemoryLimitHit));
        }
        Ok(true)
    }

    fn instances(&self) -> usize {
        1
    }

    fn tables(&self) -> usize {
        4
    }

    fn memories(&self) -> usize {
        self.memories
    }
}

struct EngineEntry {
    engine: Engine,
    linker: Linker<Host>,
}

type ModuleKey = (ContentId, Determinism, u64);

/// Engines kept at most (one per determinism mode and stack limit in use),
/// beyond those running tasks.
pub const MAX_ENGINES: usize = 8;

/// Runs tasks. Cheap to share (`&Sandbox` is `Sync`); one per process is
/// enough. Holds the engines, the module caches and the epoch ticker.
pub struct Sandbox {
    config: SandboxConfig,
    engines: Mutex<HashMap<(Determinism, u64), Arc<EngineEntry>>>,
    modules: Mutex<(HashMap<ModuleKey, Module>, VecDeque<ModuleKey>)>,
    /// Modules being compiled now: a second run of one waits for the first
    /// compile instead of compiling it again (a runtime such as CPython
    /// takes tens of seconds), then takes it from the memory cache.
    compiling: (Mutex<std::collections::HashSet<ModuleKey>>, std::sync::Condvar),
    disk: Option<ModuleCache>,
    ticker: Ticker,
}

impl std::fmt::Debug for Sandbox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sandbox")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

fn error_chain(e: &wasmtime::Error) -> String {
    let mut parts: Vec<String> = e.chain().map(|c| c.to_string()).collect();
    parts.dedup();
    parts.join(": ")
}

impl Sandbox {
    /// A sandbox with `config`.
    pub fn new(config: SandboxConfig) -> Result<Self, SandboxError> {
        let disk = match &config.cache_dir {
            Some(dir) => {
                Some(
                    ModuleCache::open(dir, config.cache_max_bytes).map_err(|source| SandboxError::Cache {
                        dir: dir.clone(),
                        source,
                    })?,
                )
            }
            None => None,
        };
        Ok(Sandbox {
            config,
            engines: Mutex::default(),
            modules: Mutex::default(),
            compiling: Default::default(),
            disk,
            ticker: Ticker::start().map_err(SandboxError::Thread)?,
        })
    }

    /// Engines held now (for tests of the bound).
    pub fn engines_held(&self) -> usize {
        self.engines.lock().map_or(0, |e| e.len())
    }

    /// The sandbox's configuration.
    pub fn config(&self) -> &SandboxConfig {
        &self.config
    }

    fn engine(&self, mode: Determinism, stack: u64) -> Result<Arc<EngineEntry>, SandboxError> {
        let mut engines = self.engines.lock().map_err(|_| SandboxError::Poisoned)?;
        if let Some(e) = engines.get(&(mode, stack)) {
            return Ok(e.clone());
        }
        // An engine per (mode, stack limit), and a requestor picks the
        // stack limit: bounded, by dropping idle engines (no run holds
        // them) with the modules compiled for them.
        if engines.len() >= MAX_ENGINES {
            let idle: Vec<(Determinism, u64)> = engines
                .iter()
                .filter(|(_, e)| Arc::strong_count(e) == 1)
                .map(|(k, _)| *k)
                .collect();
            let mut modules = self.modules.lock().map_err(|_| SandboxError::Poisoned)?;
            for key in idle.iter().take(engines.len() + 1 - MAX_ENGINES) {
                if let Some(old) = engines.remove(key) {
                    self.ticker.unregister(&old.engine);
                    modules.0.retain(|k, _| (k.1, k.2) != *key);
                    modules.1.retain(|k| (k.1, k.2) != *key);
                }
            }
        }
        let engine = build_engine(
            mode,
            stack as usize,
            self.config.metering,
            self.config.wall_clock_timeout,
        )
        .map_err(|e| SandboxError::Engine(error_chain(&e)))?;
        let mut linker = Linker::new(&engine);
        wasi::add_to_linker(&mut linker).map_err(|e| SandboxError::Engine(error_chain(&e)))?;
        self.ticker.register(&engine);
        let entry = Arc::new(EngineEntry { engine, linker });
        engines.insert((mode, stack), entry.clone());
        Ok(entry)
    }

    /// Validates and compiles `bytes`, or finds them compiled already.
    /// `Err(reason)` means the module is invalid.
    fn module(
        &self,
        engine: &Engine,
        key: ModuleKey,
        bytes: &[u8],
    ) -> Result<Result<(Module, ModuleSource), String>, SandboxError> {
        let cached = || -> Result<Option<Module>, SandboxError> {
            let modules = self.modules.lock().map_err(|_| SandboxError::Poisoned)?;
            Ok(modules.0.get(&key).cloned())
        };
        if let Some(m) = cached()? {
            return Ok(Ok((m, ModuleSource::MemoryCache)));
        }
        if self.config.memory_cache_modules > 0 {
            let (set, done) = &self.compiling;
            let mut compiling = set.lock().map_err(|_| SandboxError::Poisoned)?;
            while compiling.contains(&key) {
                compiling = done.wait(compiling).map_err(|_| SandboxError::Poisoned)?;
            }
            if let Some(m) = cached()? {
                return Ok(Ok((m, ModuleSource::MemoryCache)));
            }
            compiling.insert(key);
            drop(compiling);
            // Taken off the set however the compile ends, a panic included.
            struct Done<'a>(
                &'a (Mutex<std::collections::HashSet<ModuleKey>>, std::sync::Condvar),
                ModuleKey,
            );
            impl Drop for Done<'_> {
                fn drop(&mut self) {
                    let mut set = self.0.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
                    set.remove(&self.1);
                    self.0.1.notify_all();
                }
            }
            let _done = Done(&self.compiling, key);
            return self.load_or_compile(engine, key, bytes);
        }
        self.load_or_compile(engine, key, bytes)
    }

    /// The module from the disk cache or compiled, kept in the memory cache.
    fn load_or_compile(
        &self,
        engine: &Engine,
        key: ModuleKey,
        bytes: &[u8],
    ) -> Result<Result<(Module, ModuleSource), String>, SandboxError> {
        if !bytes.starts_with(b"\0asm") {
            return Ok(Err(
                "not a WebAssembly binary (it does not start with the \\0asm magic bytes)".into(),
            ));
        }
        let metering = self.config.metering;
        let (module, source) = match self.disk.as_ref().and_then(|d| d.load(engine, metering, &key.0)) {
            Some(m) => (m, ModuleSource::DiskCache),
            None => match self.compile(engine, bytes) {
                Ok(m) => {
                    if let Some(d) = &self.disk {
                        d.store(engine, metering, &key.0, &m);
                    }
                    (m, ModuleSource::Compiled)
                }
                Err(reason) => return Ok(Err(reason)),
            },
        };
        let mut modules = self.modules.lock().map_err(|_| SandboxError::Poisoned)?;
        if self.config.memory_cache_modules > 0 {
            while modules.1.len() >= self.config.memory_cache_modules {
                if let Some(old) = modules.1.pop_front() {
                    modules.0.remove(&old);
                }
            }
            modules.0.insert(key, module.clone());
            modules.1.push_back(key);
        }
        Ok(Ok((module, source)))
    }

    /// Compiles (instrumenting first when metering says so).
    fn compile(&self, engine: &Engine, bytes: &[u8]) -> Result<Module, String> {
        if self.config.metering == Metering::Instrumented {
            // Validate the original first, so errors name the module's own fault.
            Module::validate(engine, bytes).map_err(|e| error_chain(&e))?;
            let instrumented = instrument(bytes)?;
            return Module::from_binary(engine, &instrumented).map_err(|e| error_chain(&e));
        }
        if self.config.metering == Metering::Inline {
            Module::validate(engine, bytes).map_err(|e| error_chain(&e))?;
            let instrumented = instrument_inline(bytes)?;
            return Module::from_binary(engine, &instrumented).map_err(|e| error_chain(&e));
        }
        Module::from_binary(engine, bytes).map_err(|e| error_chain(&e))
    }

    /// Runs `task` to its end. `Err` only for a bad task description (bad
    /// limits, oversized inputs) or a host failure; everything the module
    /// does, including being invalid, is an [`Outcome`] in the report.
    pub fn run(&self, task: &Task) -> Result<RunReport, SandboxError> {
        self.run_cancellable(task, &Cancel::default())
    }

    /// [`Sandbox::run`], stopped early when `cancel` is raised (within one
    /// ticker period, for inline gas, the default): the run ends in
    /// [`SandboxError::Cancelled`], never a result.
    pub fn run_cancellable(&self, task: &Task, cancel: &Cancel) -> Result<RunReport, SandboxError> {
        self.check_task(task)?;
        let stack = task.limits.stack_bytes as usize;
        // wasmtime runs guest code on the calling thread's stack, so each run
        // gets a thread with room for the task's stack limit.
        std::thread::scope(|s| {
            std::thread::Builder::new()
                .name("sandbox-task".into())
                .stack_size(stack + HOST_STACK_MARGIN)
                .spawn_scoped(s, || self.run_here(task, cancel))
                .map_err(SandboxError::Thread)?
                .join()
                .map_err(|_| SandboxError::Panicked)?
        })
    }

    fn run_here(&self, task: &Task, cancel: &Cancel) -> Result<RunReport, SandboxError> {
        let started = Instant::now();
        let module_id = ContentId::of(&task.module);
        let entry = self.engine(task.mode, task.limits.stack_bytes)?;
        let key = (module_id, task.mode, task.limits.stack_bytes);
        let prepared = self.module(&entry.engine, key, &task.module)?;
        let prepare_time = started.elapsed();
        if cancel.is_cancelled() {
            return Err(SandboxError::Cancelled);
        }
        // Compiling counts against the wall-clock timeout: the run gets
        // what is left of it, and a compile that used it all is a timeout.
        // (Cranelift cannot be interrupted; `max_module_bytes` bounds it.)
        let deadline = started + task.limits.timeout();
        let report = |result: TaskResult, fuel: Fuel, source: ModuleSource, run_time: Duration| RunReport {
            task: task.id,
            module: module_id,
            mode: task.mode,
            limits: task.limits,
            result_hash: result.hash(),
            result,
            fuel,
            module_source: source,
            prepare_time,
            run_time,
        };
        let (module, source) = match prepared.and_then(|(m, source)| {
            check_entry_point(&m, &task.launch)?;
            check_imports(&m, &task.launch)?;
            Ok((m, source))
        }) {
            Ok(m) => m,
            Err(reason) => {
                let result = TaskResult::empty(Outcome::InvalidModule { reason });
                return Ok(report(result, Fuel(0), ModuleSource::Rejected, Duration::ZERO));
            }
        };

        let run_started = Instant::now();
        if self.config.wall_clock_timeout && run_started >= deadline {
            let result = TaskResult::empty(Outcome::Timeout);
            return Ok(report(result, Fuel(0), source, Duration::ZERO));
        }
        let host = Host {
            wasi: WasiCtx::new(task),
            memory: None,
            end: None,
            meter: Meter::Off,
            interrupt: None,
            limiter: Limiter {
                memory_bytes: usize::try_from(task.limits.memory_bytes).unwrap_or(usize::MAX),
                memories: if self.config.metering == Metering::Inline { 2 } else { 1 },
                hit: false,
            },
        };
        let mut store = Store::new(&entry.engine, host);
        store.limiter(|h| &mut h.limiter);
        // Instrumented gas budgets stay below 2^63: u64::MAX is the out-of-gas
        // sentinel and inline gas relies on the top bit being clear.
        let fuel_limit = task.limits.fuel.0.min(i64::MAX as u64);
        let engine_err = |e: wasmtime::Error| SandboxError::Engine(error_chain(&e));
        store.data_mut().meter = match self.config.metering {
            Metering::WasmtimeFuel => {
                store.set_fuel(fuel_limit).map_err(engine_err)?;
                Meter::Fuel
            }
            Metering::Instrumented | Metering::Inline => Meter::Global(None),
            Metering::Off => Meter::Off,
        };
        store.set_epoch_deadline(Ticker::ticks_for(deadline.saturating_duration_since(run_started)));
        store.epoch_deadline_trap();

        let outcome = match entry.linker.instantiate(&mut store, &module) {
            Err(e) => match classify(store.data(), &e) {
                Some(o) => o,
                None => Outcome::InvalidModule {
                    reason: error_chain(&e),
                },
            },
            Ok(instance) => {
                store.data_mut().memory = instance.get_memory(&mut store, "memory");
                match self.start_metering(&mut store, &instance, fuel_limit, (deadline, cancel)) {
                    Err(e) => return Err(engine_err(e)),
                    Ok(Some(early)) => early,
                    Ok(None) => {
                        cancel.set_running();
                        match enter(&mut store, &instance, &task.launch) {
                            Ok(exit_code) => Outcome::Completed { exit_code },
                            Err(e) => classify(store.data(), &e).unwrap_or_else(|| {
                                tracing::warn!(task = %task.id, error = %error_chain(&e), "unclassified error ended a task");
                                Outcome::Trap { trap: TrapKind::Other }
                            }),
                        }
                    }
                }
            }
        };
        // From here on the interrupt flag is never written: the memory it
        // lives in may be freed.
        let interrupted = match store.data_mut().interrupt.take() {
            Some(slot) => {
                slot.disarm();
                slot.fired()
            }
            None => false,
        };
        if store.data().end == Some(End::HostMemory) {
            return Err(SandboxError::HostMemory);
        }
        if cancel.is_cancelled() {
            return Err(SandboxError::Cancelled);
        }
        let meter = store.data().meter;
        let left = meter.left(&mut store);
        let fuel = match (meter, left) {
            // Nothing counted, or instantiation failed before the budget was set.
            (Meter::Off | Meter::Global(None), _) => Fuel(0),
            (_, Some(left)) => Fuel(fuel_limit.saturating_sub(left)),
            (_, None) => Fuel(fuel_limit),
        };
        // Instrumented gas runs out by leaving a negative count: either it
        // trapped on the check, or (inline gas) the run ended between two
        // checks after passing zero. Either way the count says out of fuel,
        // deterministically. An inline-gas interrupt traps with `unreachable`.
        let exhausted = matches!(meter, Meter::Global(Some(_))) && left.is_none();
        let outcome = match outcome {
            _ if exhausted => Outcome::OutOfFuel,
            Outcome::Trap {
                trap: TrapKind::Unreachable,
            } if interrupted => Outcome::Timeout,
            other => other,
        };
        let result = store.data_mut().wasi.take_result(outcome);
        Ok(report(result, fuel, source, run_started.elapsed()))
    }
}

impl Sandbox {
    /// Hands the task its fuel budget in an instrumented module's gas global
    /// and, for inline gas, arms the interrupt flag for the timeout. Returns
    /// an outcome when the run is already over (the start function used the
    /// whole budget).
    fn start_metering(
        &self,
        store: &mut Store<Host>,
        instance: &wasmtime::Instance,
        fuel_limit: u64,
        (deadline, cancel): (Instant, &Cancel),
    ) -> wasmtime::Result<Option<Outcome>> {
        let Meter::Global(None) = store.data().meter else {
            return Ok(None);
        };
        let Some(g) = instance.get_global(&mut *store, GAS_GLOBAL) else {
            return Ok(None);
        };
        store.data_mut().meter = Meter::Global(Some(g));
        let budget = if self.config.metering == Metering::Inline {
            // The global started at START_GAS for the start function; a
            // negative count means the start function overran its budget
            // between two checks.
            let left = g.get(&mut *store).i64().unwrap_or(-1);
            let used = u64::try_from(left)
                .map(|l| START_GAS.saturating_sub(l))
                .unwrap_or(u64::MAX);
            if used > fuel_limit {
                g.set(&mut *store, Val::I64(-1))?;
                return Ok(Some(Outcome::OutOfFuel));
            }
            fuel_limit - used
        } else {
            fuel_limit
        };
        g.set(&mut *store, Val::I64(budget as i64))?;
        if self.config.metering == Metering::Inline
            && self.config.wall_clock_timeout
            && let Some(mem) = instance.get_memory(&mut *store, INTERRUPT_MEMORY)
        {
            let slot = Arc::new(InterruptSlot::default());
            slot.arm(mem.data_ptr(&*store) as usize);
            self.ticker.watch(deadline, cancel.clone(), slot.clone());
            store.data_mut().interrupt = Some(slot);
        }
        Ok(None)
    }
}

/// A module must export `_start: [] -> []`, the WASI command entry point.
/// A reactor's entry (`launch.entry`) must take nothing and return nothing
/// or an `i32` exit code; its `_initialize`, if any, nothing at all.
fn check_entry_point(module: &Module, launch: &Launch) -> Result<(), String> {
    let Some(entry) = &launch.entry else {
        return match module.get_export("_start") {
            Some(ExternType::Func(f)) if f.params().len() == 0 && f.results().len() == 0 => Ok(()),
            Some(_) => Err("the `_start` export is not a function taking and returning nothing".into()),
            None if module.get_export("_initialize").is_some() => {
                Err("no `_start` export: a WASI reactor (it exports `_initialize`); name its entry export".into())
            }
            None => Err("no `_start` export: not a WASI command module".into()),
        };
    };
    if let Some(init) = module.get_export("_initialize") {
        match init {
            ExternType::Func(f) if f.params().len() == 0 && f.results().len() == 0 => {}
            _ => return Err("the `_initialize` export is not a function taking and returning nothing".into()),
        }
    }
    match module.get_export(entry) {
        Some(ExternType::Func(f))
            if f.params().len() == 0
                && (f.results().len() == 0
                    || (f.results().len() == 1 && f.results().all(|r| matches!(r, ValType::I32)))) =>
        {
            Ok(())
        }
        Some(_) => Err(format!(
            "the entry export `{entry}` is not a function taking nothing and returning nothing or an i32"
        )),
        None => Err(format!("no `{entry}` export: the entry the task names")),
    }
}

/// Every import is a WASI preview 1 function or one the task's runtime
/// declares; the others are named, all of them, in one refusal.
fn check_imports(module: &Module, launch: &Launch) -> Result<(), String> {
    let missing: Vec<String> = module
        .imports()
        .filter(|i| i.module() != wasi::MODULE)
        .map(|i| format!("{}.{}", i.module(), i.name()))
        .filter(|name| !launch.imports.contains(name))
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    Err(format!(
        "the module imports what the network does not provide: {} (a task may use WASI preview 1, and the host imports its runtime declares)",
        missing.join(", ")
    ))
}

/// Calls the task's entry: `_start`, or `_initialize` (when exported) and
/// then the reactor's named entry, whose `i32` result is the exit code.
fn enter(store: &mut Store<Host>, instance: &wasmtime::Instance, launch: &Launch) -> wasmtime::Result<i32> {
    let Some(entry) = &launch.entry else {
        let start = instance.get_typed_func::<(), ()>(&mut *store, "_start")?;
        return start.call(&mut *store, ()).map(|()| 0);
    };
    if let Ok(init) = instance.get_typed_func::<(), ()>(&mut *store, "_initialize") {
        init.call(&mut *store, ())?;
    }
    match instance.get_typed_func::<(), i32>(&mut *store, entry) {
        Ok(f) => f.call(&mut *store, ()),
        Err(_) => instance
            .get_typed_func::<(), ()>(&mut *store, entry)?
            .call(&mut *store, ())
            .map(|()| 0),
    }
}

/// How an error ended the run, if it is one the sandbox knows. The host state
/// is consulted first: the sandbox's own reasons are recorded there before the
/// error is raised, whatever wrapping the error then gets.
fn classify(host: &Host, e: &wasmtime::Error) -> Option<Outcome> {
    if let Some(end) = host.end {
        return Some(match end {
            End::Exit(exit_code) => Outcome::Completed { exit_code },
            End::OutputLimit => Outcome::OutputLimit,
            // Never reported as an outcome: the run returns an error.
            End::HostMemory => Outcome::Trap { trap: TrapKind::Other },
        });
    }
    if host.limiter.hit {
        return Some(Outcome::MemoryLimit);
    }
    if e.is::<wasmtime::ThrownException>() {
        return Some(Outcome::Trap {
            trap: TrapKind::UncaughtException,
        });
    }
    let trap = e.downcast_ref::<Trap>()?;
    Some(match trap {
        Trap::OutOfFuel => Outcome::OutOfFuel,
        Trap::Interrupt => Outcome::Timeout,
        other => Outcome::Trap {
            trap: trap_kind(*other),
        },
    })
}

fn trap_kind(t: Trap) -> TrapKind {
    match t {
        Trap::StackOverflow => TrapKind::StackOverflow,
        Trap::MemoryOutOfBounds | Trap::HeapMisaligned => TrapKind::MemoryOutOfBounds,
        Trap::TableOutOfBounds => TrapKind::TableOutOfBounds,
        Trap::IndirectCallToNull => TrapKind::IndirectCallToNull,
        Trap::BadSignature => TrapKind::BadSignature,
        Trap::IntegerOverflow => TrapKind::IntegerOverflow,
        Trap::IntegerDivisionByZero => TrapKind::IntegerDivisionByZero,
        Trap::BadConversionToInteger => TrapKind::BadConversionToInteger,
        Trap::UnreachableCodeReached => TrapKind::Unreachable,
        _ => TrapKind::Other,
    }
}
