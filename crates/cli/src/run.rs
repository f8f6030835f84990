//! `sharegrid run`: one task, locally, in the same sandbox providers use.
//!
//! Exit status: the guest's exit code when it completed (0-255); 124 when the
//! run ended any other way (limit, trap, invalid module); 1 when the run could
//! not start (unreadable file, bad limit); 2 for a bad command line.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use clap::Args;
use serde::Serialize;
use sharegrid_core::{Determinism, Fuel, Limits, Outcome, TaskId};
use sharegrid_sandbox::{Metering, ModuleSource, RunReport, Task, load_inputs, save_outputs};

use crate::units::{parse_duration, parse_fuel, parse_size};

/// Exit status for a run that ended other than by completing.
const EXIT_NOT_COMPLETED: u8 = 124;

#[derive(Args, Debug)]
pub(crate) struct RunArgs {
    /// The module: a `.wasm` binary (or `.wat` text); with `--runtime`, the
    /// script the runtime runs (given to the task as `/in/<its name>`).
    #[arg(value_name = "MODULE")]
    module: PathBuf,
    /// Run the script with this runtime (`python`: `sharegrid runtime add
    /// python` installs it).
    #[arg(long, value_name = "NAME")]
    runtime: Option<String>,
    /// A reactor module's entry export, called after its `_initialize`
    /// (default: the command's `_start`).
    #[arg(long, value_name = "EXPORT")]
    entry: Option<String>,
    /// An environment variable the task sees (repeatable).
    #[arg(long = "env", value_name = "NAME=VALUE", value_parser = parse_env)]
    env: Vec<(String, String)>,
    /// A host file, or a directory's files, the task reads, read-only, at
    /// an absolute path outside /in and /out (repeatable), e.g.
    /// /usr/local/lib/data.zip=./data.zip or /share=./share.
    #[arg(long = "mount", value_name = "GUEST=PATH", value_parser = parse_mount)]
    mounts: Vec<(String, PathBuf)>,
    /// Arguments passed to the module (after `--`).
    #[arg(last = true, value_name = "ARGS")]
    args: Vec<String>,
    /// File whose bytes are the task's stdin (`-` for this process's stdin).
    #[arg(long, value_name = "FILE")]
    stdin: Option<PathBuf>,
    /// Directory whose files the task sees, read-only, under `/in`.
    #[arg(long = "in", value_name = "DIR")]
    input: Option<PathBuf>,
    /// Directory to save the files the task left in `/out` (created if missing).
    #[arg(long, value_name = "DIR")]
    out: Option<PathBuf>,
    /// Fuel limit, e.g. 500M, 20G.
    #[arg(long, value_parser = parse_fuel, value_name = "N")]
    fuel: Option<Fuel>,
    /// Linear memory limit, e.g. 64MiB.
    #[arg(long, value_parser = parse_size, value_name = "SIZE")]
    memory: Option<u64>,
    /// Output limit (stdout + stderr + /out), e.g. 16MiB.
    #[arg(long, value_parser = parse_size, value_name = "SIZE")]
    output_limit: Option<u64>,
    /// WebAssembly stack limit, e.g. 1MiB.
    #[arg(long, value_parser = parse_size, value_name = "SIZE")]
    stack: Option<u64>,
    /// Wall-clock timeout, e.g. 30s.
    #[arg(long, value_parser = parse_duration, value_name = "DUR")]
    timeout: Option<std::time::Duration>,
    /// Canonicalize NaNs so any architecture computes the same result (slower on float code).
    #[arg(long)]
    portable: bool,
    /// Task id (64 hex digits) seeding the clock and random stream; default: derived from module, args and stdin.
    #[arg(long, value_name = "HEX")]
    task_id: Option<TaskId>,
    /// How to count fuel: `inline` (the protocol's gas). For benchmarks only:
    /// `fuel` (wasmtime's), `instrumented` (wasm-instrument) or `off`, whose
    /// counts are not comparable (`off` enforces no fuel limit).
    #[arg(long, default_value = "inline", value_name = "HOW")]
    metering: Metering,
    /// Benchmarks only: do not enforce the wall-clock timeout, to measure
    /// what enforcing it costs.
    #[arg(long)]
    no_timeout: bool,
    /// Do not use the compiled-module cache in the node home.
    #[arg(long)]
    no_cache: bool,
    /// Print one JSON object instead of the human summary.
    #[arg(long)]
    json: bool,
    /// Run on this provider (its node id) through the running node, instead
    /// of locally. The receipt's signature and charge are checked and the
    /// outputs fetched and verified against its result hash. No escrow pays
    /// for it, so providers that require one (the default) refuse: use it on
    /// your own node, or submit a job.
    #[arg(long, value_name = "NODE_ID")]
    on: Option<sharegrid_core::NodeId>,
    /// With --on: the price per gigafuel to agree (default: the provider's offer).
    #[arg(long, value_name = "AMOUNT", requires = "on")]
    price: Option<sharegrid_core::Amount>,
}

fn parse_env(v: &str) -> Result<(String, String), String> {
    let (k, v) = v.split_once('=').ok_or("expected NAME=VALUE")?;
    Ok((k.to_owned(), v.to_owned()))
}

fn parse_mount(v: &str) -> Result<(String, PathBuf), String> {
    let (guest, host) = v.split_once('=').ok_or("expected GUEST=PATH")?;
    // A directory's files land below `guest`: it must be a clean absolute
    // path (checked as one of its files would be).
    sharegrid_core::validate_mount_path(&format!("{guest}/x"))
        .or_else(|_| sharegrid_core::validate_mount_path(guest))?;
    Ok((guest.to_owned(), PathBuf::from(host)))
}

/// The module at `path`, refused before it is read when it is larger
/// than `max` bytes (`[sandbox] max_module_bytes`).
fn read_module(path: &Path, max: usize) -> anyhow::Result<Vec<u8>> {
    let len = std::fs::metadata(path)
        .with_context(|| format!("cannot read module {}", path.display()))?
        .len();
    if len > max as u64 {
        anyhow::bail!(
            "module {} is {len} bytes, over the limit of {max} bytes ([sandbox] max_module_bytes)",
            path.display()
        );
    }
    let bytes = std::fs::read(path).with_context(|| format!("cannot read module {}", path.display()))?;
    if path.extension().is_some_and(|e| e == "wat") {
        return wat::parse_bytes(&bytes)
            .map(|b| b.into_owned())
            .map_err(|e| anyhow::anyhow!("{}: not valid WebAssembly text: {e}", path.display()));
    }
    Ok(bytes)
}

fn read_stdin(arg: Option<&Path>) -> anyhow::Result<Vec<u8>> {
    match arg {
        None => Ok(Vec::new()),
        Some(p) if p == Path::new("-") => {
            let mut buf = Vec::new();
            std::io::stdin().read_to_end(&mut buf).context("cannot read stdin")?;
            Ok(buf)
        }
        Some(p) => std::fs::read(p).with_context(|| format!("cannot read --stdin file {}", p.display())),
    }
}

#[derive(Serialize)]
struct JsonOutput<'a> {
    task: String,
    module: String,
    mode: Determinism,
    outcome: &'a Outcome,
    message: String,
    fuel: u64,
    result_hash: String,
    limits: &'a Limits,
    stdout: String,
    stderr: String,
    outputs: Vec<JsonFile>,
    module_source: ModuleSource,
    metering: Metering,
    prepare_ms: f64,
    run_ms: f64,
}

#[derive(Serialize)]
struct JsonFile {
    path: String,
    bytes: usize,
    saved_to: Option<PathBuf>,
}

pub(crate) fn main(home: &Path, a: RunArgs) -> anyhow::Result<ExitCode> {
    if let Some(provider) = a.on {
        return remote(home, provider, a);
    }
    let max = sharegrid_node::NodeHome::new(home)
        .config(std::env::vars())?
        .sandbox
        .max_module_bytes;
    let stdin = read_stdin(a.stdin.as_deref())?;
    let sandbox = crate::home::sandbox(home, !a.no_cache, a.metering, !a.no_timeout)?;
    let mut inputs = match &a.input {
        Some(dir) => {
            let cfg = sandbox.config();
            load_inputs(dir, cfg.max_input_bytes, cfg.max_input_files)?
        }
        None => Default::default(),
    };
    let mut launch = sharegrid_core::Launch {
        entry: a.entry.clone(),
        env: a.env.clone(),
        imports: Vec::new(),
    };
    let mut mounts = std::collections::BTreeMap::new();
    for (guest, path) in &a.mounts {
        if path.is_dir() {
            let cfg = sandbox.config();
            for (rel, bytes) in load_inputs(path, cfg.max_input_bytes, cfg.max_input_files)? {
                mounts.insert(format!("{guest}/{rel}"), bytes);
            }
            continue;
        }
        let bytes = std::fs::read(path).with_context(|| format!("--mount {guest}: cannot read {}", path.display()))?;
        mounts.insert(guest.clone(), std::sync::Arc::<[u8]>::from(bytes));
    }
    let mut args = a.args.clone();
    let module = match &a.runtime {
        None => read_module(&a.module, max)?,
        Some(name) => {
            // The script is an input; the runtime brings module, mounts
            // and launch (the command line's variables over its own).
            anyhow::ensure!(a.entry.is_none(), "--entry: the {name} runtime brings its own entry");
            let h = sharegrid_node::NodeHome::new(home);
            let rt = sharegrid_node::runtime::Runtime::load(h.root(), name)?;
            let blobs = sharegrid_node::BlobStore::open(h.blobs_dir(), u64::MAX)?;
            let get = |id: &sharegrid_core::ContentId| -> anyhow::Result<Vec<u8>> {
                blobs.get(id)?.with_context(|| {
                    format!("the {name} runtime's blob {id} is missing: run `sharegrid runtime add {name}` again")
                })
            };
            for (path, id) in &rt.mounts {
                mounts.insert(path.clone(), get(id)?.into());
            }
            let script = a
                .module
                .file_name()
                .and_then(|n| n.to_str())
                .context("the script's name")?;
            let bytes = std::fs::read(&a.module).with_context(|| format!("cannot read {}", a.module.display()))?;
            inputs.insert(script.to_owned(), bytes.into());
            args.insert(0, format!("/in/{script}"));
            launch = rt.launch_with(&a.env);
            get(&rt.module)?
        }
    };
    let mut task = Task::local(module, args, stdin, inputs);
    let mount_ids: Vec<(String, sharegrid_core::ContentId)> = mounts
        .iter()
        .map(|(p, b)| (p.clone(), sharegrid_core::ContentId::of(b)))
        .collect();
    task.id = task.id.with_launch(&launch, &mount_ids);
    task.launch = launch;
    task.mounts = mounts;
    task.limits = limits(&a);
    task.mode = mode(&a);
    if let Some(id) = a.task_id {
        task.id = id;
    }
    let report = sandbox.run(&task)?;

    let mut saved: Vec<Option<PathBuf>> = vec![None; report.result.files.len()];
    if let Some(dir) = &a.out {
        let written = save_outputs(dir, &report.result.files)?;
        saved = written.into_iter().map(Some).collect();
    }

    if a.json {
        print_json(&report, &saved, a.metering)?;
    } else {
        print_human(&report, &saved, a.out.as_deref())?;
    }
    Ok(exit_code(&report.result.outcome))
}

fn limits(a: &RunArgs) -> Limits {
    let defaults = Limits::default();
    Limits {
        fuel: a.fuel.unwrap_or(defaults.fuel),
        memory_bytes: a.memory.unwrap_or(defaults.memory_bytes),
        output_bytes: a.output_limit.unwrap_or(defaults.output_bytes),
        stack_bytes: a.stack.unwrap_or(defaults.stack_bytes),
        timeout_ms: a.timeout.map(|d| d.as_millis() as u64).unwrap_or(defaults.timeout_ms),
    }
}

fn mode(a: &RunArgs) -> Determinism {
    if a.portable {
        Determinism::Portable
    } else {
        Determinism::Native
    }
}

/// `run --on`: the task goes to a provider through the running node.
fn remote(home: &Path, provider: sharegrid_core::NodeId, a: RunArgs) -> anyhow::Result<ExitCode> {
    if a.metering != Metering::Inline || a.no_timeout || a.no_cache {
        anyhow::bail!("--metering, --no-timeout and --no-cache apply to local runs only, not with --on");
    }
    if a.runtime.is_some() || !a.mounts.is_empty() {
        anyhow::bail!("--runtime and --mount apply to local runs; submit a job to run them on the network");
    }
    let launch = sharegrid_core::Launch {
        entry: a.entry.clone(),
        env: a.env.clone(),
        imports: Vec::new(),
    };
    let h = sharegrid_node::NodeHome::new(home);
    let mut api = sharegrid_node::ApiClient::connect(&h)?;
    let settings = h.config(std::env::vars())?.sandbox;
    let module = read_module(&a.module, settings.max_module_bytes)?;
    let stdin = read_stdin(a.stdin.as_deref())?;
    let inputs = match &a.input {
        Some(dir) => load_inputs(dir, settings.max_input_bytes, settings.max_input_files)?,
        None => Default::default(),
    };
    // The node serves the blobs to the provider from its store.
    let module_id = api.upload(&module)?;
    let stdin_id = api.upload(&stdin)?;
    let mut input_ids = Vec::new();
    for (path, bytes) in &inputs {
        input_ids.push((path.clone(), api.upload(bytes)?));
    }
    let task = a
        .task_id
        .unwrap_or_else(|| TaskId::local(&module_id, &a.args, &stdin).with_launch(&launch, &[]));
    let run: sharegrid_node::RemoteRun =
        api.call(&sharegrid_node::ApiRequest::Run(Box::new(sharegrid_node::RemoteTask {
            provider,
            task,
            args: a.args.clone(),
            program: sharegrid_core::Program {
                module: module_id,
                stdin: stdin_id,
                inputs: input_ids,
                limits: limits(&a),
                mode: mode(&a),
                launch,
                mounts: Vec::new(),
            },
            price: a.price,
        })))?;
    let bytes = api
        .blob(&run.result)
        .context("the node reported a result it does not hold")?;
    let result = sharegrid_core::TaskResult::decode(&bytes)?;
    let r = &run.receipt;
    let mut saved: Vec<Option<PathBuf>> = vec![None; result.files.len()];
    if let Some(dir) = &a.out {
        saved = save_outputs(dir, &result.files)?.into_iter().map(Some).collect();
    }
    if a.json {
        let out = serde_json::json!({
            "task": r.task.to_string(),
            "provider": r.provider.to_string(),
            "module": module_id.to_string(),
            "mode": mode(&a),
            "outcome": &r.outcome,
            "message": r.outcome.to_string(),
            "fuel": r.fuel.0,
            "result_hash": r.result.to_string(),
            "price": r.price.0,
            "charge": r.charge,
            "stdout": String::from_utf8_lossy(&result.stdout),
            "stderr": String::from_utf8_lossy(&result.stderr),
            "outputs": result.files.iter().zip(&saved).map(|(f, s)| JsonFile {
                path: f.path.clone(),
                bytes: f.data.len(),
                saved_to: s.clone(),
            }).collect::<Vec<_>>(),
        });
        println!("{out}");
    } else {
        std::io::stdout().write_all(&result.stdout)?;
        std::io::stdout().flush()?;
        let mut e = std::io::stderr().lock();
        e.write_all(&result.stderr)?;
        writeln!(e, "provider {}", r.provider)?;
        writeln!(e, "outcome  {}", r.outcome)?;
        writeln!(e, "fuel     {} ({})", r.fuel.0, r.fuel)?;
        writeln!(e, "result   {} (verified)", r.result)?;
        writeln!(e, "charge   {} at {}/Gfuel", r.charge, r.price.0)?;
        for (f, s) in result.files.iter().zip(&saved) {
            let at = s.as_ref().map_or(f.path.clone(), |p| p.display().to_string());
            writeln!(e, "output   {at} ({})", bytesize::ByteSize(f.data.len() as u64))?;
        }
    }
    Ok(exit_code(&r.outcome))
}

fn exit_code(o: &Outcome) -> ExitCode {
    match o {
        Outcome::Completed { exit_code } => ExitCode::from((*exit_code & 0xff) as u8),
        _ => ExitCode::from(EXIT_NOT_COMPLETED),
    }
}

fn print_json(r: &RunReport, saved: &[Option<PathBuf>], metering: Metering) -> anyhow::Result<()> {
    let out = JsonOutput {
        task: r.task.to_string(),
        module: r.module.to_string(),
        mode: r.mode,
        outcome: &r.result.outcome,
        message: r.result.outcome.to_string(),
        fuel: r.fuel.0,
        result_hash: r.result_hash.to_string(),
        limits: &r.limits,
        stdout: String::from_utf8_lossy(&r.result.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&r.result.stderr).into_owned(),
        outputs: r
            .result
            .files
            .iter()
            .zip(saved)
            .map(|(f, s)| JsonFile {
                path: f.path.clone(),
                bytes: f.data.len(),
                saved_to: s.clone(),
            })
            .collect(),
        module_source: r.module_source,
        metering,
        prepare_ms: r.prepare_time.as_secs_f64() * 1e3,
        run_ms: r.run_time.as_secs_f64() * 1e3,
    };
    let mut stdout = std::io::stdout().lock();
    serde_json::to_writer(&mut stdout, &out)?;
    writeln!(stdout)?;
    Ok(())
}

/// The guest's stdout goes to stdout and its stderr to stderr, unchanged; the
/// summary goes to stderr, so `sharegrid run x.wasm > out.txt` captures just
/// what the guest printed.
fn print_human(r: &RunReport, saved: &[Option<PathBuf>], out_dir: Option<&Path>) -> anyhow::Result<()> {
    std::io::stdout().write_all(&r.result.stdout)?;
    std::io::stdout().flush()?;
    let mut e = std::io::stderr().lock();
    e.write_all(&r.result.stderr)?;
    let outcome = &r.result.outcome;
    let extra = match outcome {
        Outcome::OutOfFuel => format!(" ({})", r.limits.fuel),
        Outcome::MemoryLimit => format!(" ({})", bytesize::ByteSize(r.limits.memory_bytes)),
        Outcome::OutputLimit => format!(" ({})", bytesize::ByteSize(r.limits.output_bytes)),
        Outcome::Timeout => format!(" ({:?})", r.limits.timeout()),
        _ => String::new(),
    };
    writeln!(e, "outcome  {outcome}{extra}")?;
    writeln!(e, "fuel     {} ({} of {} limit)", r.fuel.0, r.fuel, r.limits.fuel)?;
    writeln!(e, "result   {}", r.result_hash)?;
    let how = match r.module_source {
        ModuleSource::Compiled => "compiled",
        ModuleSource::MemoryCache | ModuleSource::DiskCache => "loaded from cache",
        ModuleSource::Rejected => "rejected",
    };
    writeln!(
        e,
        "module   {} ({how} in {:.1} ms, {} mode)",
        r.module,
        r.prepare_time.as_secs_f64() * 1e3,
        r.mode
    )?;
    writeln!(e, "time     {:.1} ms", r.run_time.as_secs_f64() * 1e3)?;
    let files = &r.result.files;
    match (files.is_empty(), out_dir) {
        (true, _) => writeln!(e, "outputs  none in /out")?,
        (false, Some(dir)) => {
            writeln!(e, "outputs  {} file(s) saved in {}:", files.len(), dir.display())?;
            for (f, s) in files.iter().zip(saved) {
                let at = s.as_ref().map(|p| p.display().to_string()).unwrap_or_default();
                writeln!(e, "         {at} ({})", bytesize::ByteSize(f.data.len() as u64))?;
            }
        }
        (false, None) => {
            writeln!(
                e,
                "outputs  {} file(s) in /out, not saved (pass --out DIR):",
                files.len()
            )?;
            for f in files {
                writeln!(e, "         {} ({})", f.path, bytesize::ByteSize(f.data.len() as u64))?;
            }
        }
    }
    if !outcome.is_deterministic() {
        writeln!(
            e,
            "note     a timeout is not reproducible: its result hash is not evidence"
        )?;
    }
    Ok(())
}
