//! The job file (`docs/job-file.md`): a TOML description of many tasks — one
//! module, arguments with `{name}` placeholders filled from a parameter
//! sweep, inputs, limits, replication and quorum, money and time bounds,
//! provider constraints. [`JobFile::parse`] checks everything and says
//! where a mistake is (file, line, field); [`JobFile::expand`] turns the
//! sweep into one argument list per task.
//!
//! Parsing only: reading the module and input files named here is the
//! caller's job (paths are relative to the job file).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::amount::{Amount, PricePerGfuel};
use crate::limits::{Determinism, Limits};
use crate::units::{Fuel, GigafuelPerSec};
use crate::wire::Arch;

/// The deadline of a job file that sets none: a day from submission.
/// Until then a job waits for the providers it lacks.
pub const DEFAULT_DEADLINE_SECS: u64 = 24 * 3600;

/// Most tasks one job may expand to.
pub const MAX_TASKS: usize = 1_000_000;

/// A parsed, checked job file.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct JobFile {
    /// A name for listings.
    pub name: String,
    /// The module: a path relative to the job file…
    pub module: Option<String>,
    /// …or the hash of a module already in the blob store.
    pub module_hash: Option<String>,
    /// Arguments, with `{param}` placeholders.
    pub args: Vec<String>,
    /// A file whose bytes are every task's stdin.
    pub stdin: Option<String>,
    /// Input files: path under `/in` → file relative to the job file.
    pub inputs: BTreeMap<String, String>,
    /// Each task's limits.
    pub limits: Limits,
    /// Determinism mode.
    pub mode: Determinism,
    /// Replicas per task (`r`).
    pub replication: u32,
    /// Agreeing results needed (`q`).
    pub quorum: u32,
    /// Highest price per gigafuel.
    pub price_ceiling: PricePerGfuel,
    /// Total the job may spend.
    pub budget: Amount,
    /// Seconds from submission by which the job must be done.
    pub deadline_secs: Option<u64>,
    /// Fail early when no provider qualifies, or a task lacks enough
    /// distinct ones, for this many seconds (None: wait until the deadline).
    pub wait_for_providers_secs: Option<u64>,
    /// Only this architecture.
    pub arch: Option<Arch>,
    /// Memory a provider must give a task (default: the memory limit plus
    /// the output limit, which a task holds while it runs).
    pub min_memory: u64,
    /// Lowest provider benchmark speed.
    pub min_speed: GigafuelPerSec,
    /// Accept results alone from providers with this credibility (None: never).
    pub credibility: Option<f64>,
    /// The least stake a provider must have bonded on the ledger.
    pub min_stake: Amount,
    /// The sweep: parameter → values, in file order of names (sorted).
    pub sweep: BTreeMap<String, Vec<String>>,
    /// A reactor module's entry export (None: the command's `_start`).
    #[serde(default)]
    pub entry: Option<String>,
    /// Environment variables every task sees.
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// A runtime the network knows (`python`) that runs `script` instead
    /// of a module of the job's own.
    #[serde(default)]
    pub runtime: Option<String>,
    /// The runtime's program: a file relative to the job file, given to
    /// every task as `/in/<its name>`.
    #[serde(default)]
    pub script: Option<String>,
}

/// The runtimes a job file may name.
pub const RUNTIMES: &[&str] = &["python"];

/// A job's terms, checked by the same rules wherever the job comes from:
/// a job file, or a program talking to a node's API.
#[derive(Clone, Debug)]
pub struct JobTerms<'a> {
    /// Each task's limits.
    pub limits: &'a Limits,
    /// Replicas per task.
    pub replication: u32,
    /// Agreeing results needed.
    pub quorum: u32,
    /// Seconds from submission to the deadline.
    pub deadline_secs: Option<u64>,
    /// Seconds to wait for providers before failing early.
    pub wait_for_providers_secs: Option<u64>,
    /// Credibility threshold for accepting a result alone.
    pub credibility: Option<f64>,
    /// The input files' paths under `/in`.
    pub inputs: Vec<&'a str>,
    /// Lowest provider speed, Gfuel/s.
    pub min_speed: f64,
}

/// A term that breaks a rule: the job file's field, and what is wrong.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("job.{field}: {message}")]
pub struct TermError {
    /// The field (as in the job file).
    pub field: &'static str,
    /// What is wrong with it.
    pub message: String,
}

impl JobTerms<'_> {
    /// Every rule of a job's terms, or the first one broken.
    pub fn check(&self) -> Result<(), TermError> {
        let bad = |field, message: String| Err(TermError { field, message });
        let l = self.limits;
        if l.fuel.0 == 0 || l.memory_bytes == 0 {
            return bad("fuel", "fuel and memory limits must be above zero".into());
        }
        if l.stack_bytes == 0 || l.stack_bytes > Limits::MAX_STACK_BYTES {
            return bad(
                "stack",
                format!("must be between 1 byte and {} bytes", Limits::MAX_STACK_BYTES),
            );
        }
        let (r, q) = (self.replication, self.quorum);
        if r == 0 || r > 16 {
            return bad("replication", format!("{r} is not between 1 and 16"));
        }
        if q == 0 || q > r {
            return bad("quorum", format!("{q} must be between 1 and the replication ({r})"));
        }
        if let (Some(w), Some(d)) = (self.wait_for_providers_secs, self.deadline_secs)
            && w >= d
        {
            return bad(
                "wait_for_providers",
                format!("{w} s is not before the deadline ({d} s); leave it unset to wait until the deadline"),
            );
        }
        if let Some(c) = self.credibility
            && !(0.0..1.0).contains(&c)
        {
            return bad("credibility", format!("{c} must be in [0, 1)"));
        }
        for path in &self.inputs {
            if let Err(e) = crate::result::validate_out_path(path) {
                return bad("inputs", format!("{path:?}: {e}"));
            }
        }
        if !(self.min_speed.is_finite() && self.min_speed >= 0.0) {
            return bad(
                "min_speed",
                format!("{} is not a speed (Gfuel/s, 0 or more)", self.min_speed),
            );
        }
        Ok(())
    }
}

/// A mistake in a job file: where, and what.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{file}{}: {message}", line.map(|l| format!(":{l}")).unwrap_or_default())]
pub struct JobFileError {
    /// The file.
    pub file: String,
    /// The line, when known.
    pub line: Option<usize>,
    /// What is wrong, naming the field.
    pub message: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Raw {
    job: RawJob,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawJob {
    name: Option<String>,
    module: Option<String>,
    module_hash: Option<String>,
    #[serde(default)]
    args: Vec<String>,
    stdin: Option<String>,
    #[serde(default)]
    inputs: BTreeMap<String, String>,
    #[serde(default)]
    limits: RawLimits,
    mode: Option<Determinism>,
    replication: Option<u32>,
    quorum: Option<u32>,
    price_ceiling: Option<toml::Value>,
    budget: Option<toml::Value>,
    deadline: Option<String>,
    wait_for_providers: Option<String>,
    #[serde(default)]
    constraints: RawConstraints,
    credibility: Option<f64>,
    #[serde(default)]
    sweep: BTreeMap<String, toml::Spanned<RawSweep>>,
    entry: Option<String>,
    #[serde(default)]
    env: BTreeMap<String, String>,
    runtime: Option<String>,
    script: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawLimits {
    fuel: Option<toml::Value>,
    memory: Option<toml::Value>,
    output: Option<toml::Value>,
    stack: Option<toml::Value>,
    timeout: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawConstraints {
    arch: Option<Arch>,
    min_memory: Option<toml::Value>,
    min_speed: Option<f64>,
    min_stake: Option<u64>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum RawSweep {
    List(Vec<toml::Value>),
    Range { range: [i64; 2], step: Option<i64> },
}

/// Parses `12345`, `"500M"`, `"20G"` (decimal suffixes k, M, G, T).
pub fn parse_fuel(v: &str) -> Option<Fuel> {
    let t = v.trim();
    let (num, mult) = match t.char_indices().last()? {
        (i, 'k' | 'K') => (&t[..i], 1_000u64),
        (i, 'M') => (&t[..i], 1_000_000),
        (i, 'G') => (&t[..i], 1_000_000_000),
        (i, 'T') => (&t[..i], 1_000_000_000_000),
        _ => (t, 1),
    };
    num.trim()
        .replace('_', "")
        .parse::<u64>()
        .ok()?
        .checked_mul(mult)
        .map(Fuel)
}

/// Parses `4096`, `"64KiB"`, `"256MiB"`, `"1GiB"`, `"1GB"`.
pub fn parse_size(v: &str) -> Option<u64> {
    let t = v.trim();
    let split = t.find(|c: char| !c.is_ascii_digit() && c != '_').unwrap_or(t.len());
    let n: u64 = t[..split].replace('_', "").parse().ok()?;
    let mult: u64 = match t[split..].trim() {
        "" | "B" => 1,
        "KiB" => 1 << 10,
        "MiB" => 1 << 20,
        "GiB" => 1 << 30,
        "TiB" => 1 << 40,
        "kB" | "KB" => 1_000,
        "MB" => 1_000_000,
        "GB" => 1_000_000_000,
        _ => return None,
    };
    n.checked_mul(mult)
}

/// Parses `"500ms"`, `"30s"`, `"10m"`, `"2h"`, `"1d"` into milliseconds.
pub fn parse_duration_ms(v: &str) -> Option<u64> {
    let t = v.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let n: u64 = t[..split].parse().ok()?;
    let mult = match t[split..].trim() {
        "ms" => 1,
        "s" => 1_000,
        "m" | "min" => 60_000,
        "h" => 3_600_000,
        "d" => 86_400_000,
        _ => return None,
    };
    n.checked_mul(mult).filter(|&ms| ms > 0)
}

fn value_str(v: &toml::Value) -> String {
    match v {
        toml::Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

impl JobFile {
    /// Parses and checks `text`, read from `file` (used in errors).
    pub fn parse(file: &str, text: &str) -> Result<JobFile, JobFileError> {
        // The line of the byte at `offset`: counted in bytes, since a
        // parser's offset may fall inside a multi-byte character.
        let line_of = |offset: usize| {
            let before = &text.as_bytes()[..offset.min(text.len())];
            Some(before.iter().filter(|b| **b == b'\n').count() + 1)
        };
        let err = |line: Option<usize>, message: String| JobFileError {
            file: file.to_string(),
            line,
            message,
        };
        let raw: Raw = toml::from_str(text).map_err(|e| {
            let line = e.span().and_then(|s| line_of(s.start));
            err(line, e.message().trim().to_string())
        })?;
        // Semantic errors name the field; the line is the field's when found.
        let field_line = |key: &str| {
            text.lines()
                .position(|l| {
                    let l = l.trim_start();
                    l.starts_with(key) && l[key.len()..].trim_start().starts_with('=')
                })
                .map(|i| i + 1)
        };
        let bad = |key: &str, msg: String| err(field_line(key), format!("job.{key}: {msg}"));
        let j = raw.job;

        match (&j.runtime, &j.script) {
            (Some(r), _) if !RUNTIMES.contains(&r.as_str()) => {
                return Err(bad(
                    "runtime",
                    format!("{r:?} is not a runtime the network knows ({})", RUNTIMES.join(", ")),
                ));
            }
            (Some(_), None) => return Err(bad("runtime", "a runtime needs `script`, the program it runs".into())),
            (None, Some(_)) => {
                return Err(bad(
                    "script",
                    "a script needs `runtime` (for example runtime = \"python\")".into(),
                ));
            }
            (Some(_), Some(_)) if j.module.is_some() || j.module_hash.is_some() || j.entry.is_some() => {
                return Err(bad(
                    "runtime",
                    "the runtime brings the module and its entry: drop `module`, `module_hash` and `entry`".into(),
                ));
            }
            (Some(_), Some(script)) if script.rsplit('/').next().is_none_or(|n| n.is_empty() || n == "..") => {
                return Err(bad("script", format!("{script:?} does not name a file")));
            }
            _ => {}
        }
        let launch = crate::Launch {
            entry: j.entry.clone(),
            env: j.env.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
            imports: Vec::new(),
        };
        launch.check().map_err(|m| {
            let key = if m.contains("entry") { "entry" } else { "env" };
            bad(key, m)
        })?;
        let (module, module_hash) = match (j.module, j.module_hash) {
            _ if j.runtime.is_some() => (None, None),
            (Some(m), None) => (Some(m), None),
            (None, Some(h)) => {
                if h.len() != 64 || !h.bytes().all(|b| b.is_ascii_hexdigit()) {
                    return Err(bad("module_hash", format!("{h:?} is not 64 hex digits")));
                }
                (None, Some(h))
            }
            (Some(_), Some(_)) => return Err(bad("module", "give `module` or `module_hash`, not both".into())),
            (None, None) => return Err(err(None, "job.module: missing (a .wasm path or module_hash)".into())),
        };

        let d = Limits::default();
        let size = |key: &str, v: &Option<toml::Value>, dflt: u64| -> Result<u64, JobFileError> {
            match v {
                None => Ok(dflt),
                Some(v) => parse_size(&value_str(v))
                    .ok_or_else(|| bad(key, format!("{v} is not a size (examples: 4096, \"64MiB\", \"1GiB\")"))),
            }
        };
        let fuel = match &j.limits.fuel {
            None => d.fuel,
            Some(v) => parse_fuel(&value_str(v)).ok_or_else(|| {
                bad(
                    "fuel",
                    format!("{v} is not an amount of fuel (examples: \"500M\", \"20G\")"),
                )
            })?,
        };
        let limits = Limits {
            fuel,
            memory_bytes: size("memory", &j.limits.memory, d.memory_bytes)?,
            output_bytes: size("output", &j.limits.output, d.output_bytes)?,
            stack_bytes: size("stack", &j.limits.stack, d.stack_bytes)?,
            timeout_ms: match &j.limits.timeout {
                None => d.timeout_ms,
                Some(t) => parse_duration_ms(t).ok_or_else(|| {
                    bad(
                        "timeout",
                        format!("{t:?} is not a duration (examples: \"30s\", \"10m\")"),
                    )
                })?,
            },
        };
        let replication = j.replication.unwrap_or(2);
        let quorum = j.quorum.unwrap_or(replication);
        let amount = |key: &str, v: &Option<toml::Value>| -> Result<Option<Amount>, JobFileError> {
            v.as_ref()
                .map(|v| {
                    value_str(v)
                        .parse::<Amount>()
                        .map_err(|e| bad(key, format!("{v} is not an amount of tokens: {e}")))
                })
                .transpose()
        };
        let price_ceiling = PricePerGfuel(amount("price_ceiling", &j.price_ceiling)?.unwrap_or(Amount(u128::MAX)));
        let budget = amount("budget", &j.budget)?.unwrap_or(Amount(u128::MAX));
        let secs = |key: &str, v: &Option<String>| {
            v.as_ref()
                .map(|t| {
                    parse_duration_ms(t)
                        .map(|ms| ms.div_ceil(1000))
                        .ok_or_else(|| bad(key, format!("{t:?} is not a duration (examples: \"10m\", \"2h\")")))
                })
                .transpose()
        };
        let deadline_secs = secs("deadline", &j.deadline)?.unwrap_or(DEFAULT_DEADLINE_SECS);
        let wait_for_providers_secs = secs("wait_for_providers", &j.wait_for_providers)?;
        JobTerms {
            limits: &limits,
            replication,
            quorum,
            deadline_secs: Some(deadline_secs),
            wait_for_providers_secs,
            credibility: j.credibility,
            inputs: j.inputs.keys().map(String::as_str).collect(),
            min_speed: j.constraints.min_speed.unwrap_or(0.0),
        }
        .check()
        .map_err(|e| bad(e.field, e.message))?;
        // What a task holds on its provider: its memory and its outputs.
        let held = limits.memory_bytes.saturating_add(limits.output_bytes);
        let min_memory = size("min_memory", &j.constraints.min_memory, held)?;

        // Counted before any value is made: a file cannot make the parser
        // build millions of strings it then refuses.
        let too_many = |total: u128| {
            err(
                None,
                format!("job.sweep: expands to {total} tasks, over the limit of {MAX_TASKS}"),
            )
        };
        let mut sweep = BTreeMap::new();
        let mut total: u128 = 1;
        for (name, spanned) in j.sweep {
            let line = line_of(spanned.span().start);
            let values: Vec<String> = match spanned.into_inner() {
                RawSweep::List(v) if v.is_empty() => {
                    return Err(err(line, format!("job.sweep.{name}: an empty list sweeps nothing")));
                }
                RawSweep::List(v) => {
                    total = total.saturating_mul(v.len() as u128);
                    if total > MAX_TASKS as u128 {
                        return Err(too_many(total));
                    }
                    v.iter().map(value_str).collect()
                }
                RawSweep::Range { range: [a, b], step } => {
                    let step = step.unwrap_or(1);
                    if step <= 0 || b <= a {
                        return Err(err(
                            line,
                            format!("job.sweep.{name}: range [{a}, {b}] with step {step} is empty"),
                        ));
                    }
                    // In i128: any i64 range and step, without wrapping.
                    let (a, b, step) = (i128::from(a), i128::from(b), i128::from(step));
                    let n = (b - a + step - 1) / step;
                    if n > MAX_TASKS as i128 {
                        return Err(err(line, format!("job.sweep.{name}: {n} values is too many")));
                    }
                    total = total.saturating_mul(n as u128);
                    if total > MAX_TASKS as u128 {
                        return Err(too_many(total));
                    }
                    (0..n).map(|i| (a + i * step).to_string()).collect()
                }
            };
            sweep.insert(name, values);
        }
        // Every placeholder must name a swept parameter, and every parameter be used.
        let used = placeholders(&j.args).map_err(|m| bad("args", m))?;
        for p in &used {
            if !sweep.contains_key(p) {
                return Err(bad("args", format!("{{{p}}} is not a parameter of job.sweep")));
            }
        }
        for p in sweep.keys() {
            if !used.contains(p) {
                return Err(err(
                    None,
                    format!("job.sweep.{p}: not used in job.args (write {{{p}}} where it goes)"),
                ));
            }
        }
        Ok(JobFile {
            name: j
                .name
                .unwrap_or_else(|| file.rsplit('/').next().unwrap_or(file).to_string()),
            module,
            module_hash,
            args: j.args,
            stdin: j.stdin,
            inputs: j.inputs,
            limits,
            mode: j.mode.unwrap_or(Determinism::Native),
            replication,
            quorum,
            price_ceiling,
            budget,
            deadline_secs: Some(deadline_secs),
            wait_for_providers_secs,
            arch: j.constraints.arch,
            min_memory,
            min_speed: GigafuelPerSec(j.constraints.min_speed.unwrap_or(0.0)),
            credibility: j.credibility,
            min_stake: Amount(u128::from(j.constraints.min_stake.unwrap_or(0))),
            sweep,
            entry: j.entry,
            env: j.env,
            runtime: j.runtime,
            script: j.script,
        })
    }

    /// The argument list of every task: the sweep's cartesian product, in
    /// order (the last parameter, by name, varies fastest).
    pub fn expand(&self) -> Vec<Vec<String>> {
        let names: Vec<&String> = self.sweep.keys().collect();
        let mut points: Vec<BTreeMap<&str, &str>> = vec![BTreeMap::new()];
        for name in &names {
            let mut next = Vec::with_capacity(points.len() * self.sweep[*name].len());
            for p in &points {
                for v in &self.sweep[*name] {
                    let mut q = p.clone();
                    q.insert(name.as_str(), v.as_str());
                    next.push(q);
                }
            }
            points = next;
        }
        points
            .iter()
            .map(|p| self.args.iter().map(|a| substitute(a, p)).collect())
            .collect()
    }
}

fn placeholders(args: &[String]) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    for a in args {
        let mut rest = a.as_str();
        while let Some(i) = rest.find('{') {
            let Some(j) = rest[i..].find('}') else {
                return Err(format!("{a:?} has an unclosed '{{'"));
            };
            let name = &rest[i + 1..i + j];
            if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                return Err(format!("{a:?}: {{{name}}} is not a parameter name"));
            }
            out.push(name.to_string());
            rest = &rest[i + j + 1..];
        }
    }
    Ok(out)
}

fn substitute(arg: &str, point: &BTreeMap<&str, &str>) -> String {
    let mut s = arg.to_string();
    for (k, v) in point {
        s = s.replace(&format!("{{{k}}}"), v);
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
[job]
name = "tiles"
module = "mandelbrot.wasm"
args = ["{col}", "{row}", "8", "4"]
replication = 2
price_ceiling = 10
budget = "1000000"
deadline = "10m"

[job.limits]
fuel = "20G"
memory = "64MiB"
timeout = "60s"

[job.sweep]
col = { range = [0, 8] }
row = [0, 1, 2, 3]

[job.constraints]
arch = "x86_64"
min_stake = 5000
"#;

    #[test]
    fn a_job_file_parses_and_expands() {
        let j = JobFile::parse("tiles.toml", GOOD).unwrap();
        assert_eq!((j.replication, j.quorum), (2, 2));
        assert_eq!(j.limits.fuel, Fuel(20_000_000_000));
        assert_eq!(j.limits.memory_bytes, 64 << 20);
        assert_eq!(j.deadline_secs, Some(600));
        assert_eq!(j.price_ceiling, PricePerGfuel(Amount(10)));
        assert_eq!(j.min_stake, Amount(5_000));
        let tasks = j.expand();
        assert_eq!(tasks.len(), 32);
        assert_eq!(tasks[0], ["0", "0", "8", "4"]);
        assert_eq!(tasks[1], ["0", "1", "8", "4"]);
        assert_eq!(tasks[31], ["7", "3", "8", "4"]);
    }

    #[test]
    fn a_job_waits_for_providers_until_its_deadline_unless_it_asks_to_fail_early() {
        let j = JobFile::parse("j.toml", GOOD).unwrap();
        assert_eq!(j.wait_for_providers_secs, None);
        let none = JobFile::parse("j.toml", &GOOD.replace("deadline = \"10m\"\n", "")).unwrap();
        assert_eq!(none.deadline_secs, Some(DEFAULT_DEADLINE_SECS));
        let early = GOOD.replace("deadline = \"10m\"", "deadline = \"10m\"\nwait_for_providers = \"2m\"");
        assert_eq!(
            JobFile::parse("j.toml", &early).unwrap().wait_for_providers_secs,
            Some(120)
        );
        let late = GOOD.replace("deadline = \"10m\"", "deadline = \"10m\"\nwait_for_providers = \"1h\"");
        let e = JobFile::parse("j.toml", &late).unwrap_err().to_string();
        assert!(
            e.contains("job.wait_for_providers: 3600 s is not before the deadline (600 s)"),
            "{e}"
        );
    }

    /// Found by the `job_file` fuzz target: an error's offset inside a
    /// multi-byte character panicked while finding its line.
    #[test]
    fn an_error_inside_a_multibyte_character_names_its_line() {
        let e = JobFile::parse("j.toml", "''\u{7c0}\u{12}\0\u{f}").unwrap_err();
        assert_eq!(e.line, Some(1), "{e}");
        let e = JobFile::parse("j.toml", "[job]\nmodule = \"\u{e9}\u{e9}\n").unwrap_err();
        assert_eq!(e.line, Some(2), "{e}");
    }

    #[test]
    fn sweep_arithmetic_never_wraps() {
        let e = |text: &str| JobFile::parse("j.toml", text).unwrap_err().to_string();
        let wide = "[job]\nmodule = \"m.wasm\"\nargs = [\"{x}\"]\n\
                    [job.sweep]\nx = { range = [-9223372036854775808, 9223372036854775807] }\n";
        assert!(
            e(wide).contains("job.sweep.x: 18446744073709551615 values is too many"),
            "{}",
            e(wide)
        );
        let step = wide.replace(
            "9223372036854775807] }",
            "9223372036854775807], step = 9223372036854775807 }",
        );
        let j = JobFile::parse("j.toml", &step).unwrap();
        assert_eq!(j.sweep["x"], ["-9223372036854775808", "-1", "9223372036854775806"]);
        // Many parameters whose product overflows any integer: too many tasks.
        let mut many = String::from("[job]\nmodule = \"m.wasm\"\nargs = [");
        let names: Vec<String> = (0..12).map(|i| format!("p{i}")).collect();
        many += &names
            .iter()
            .map(|n| format!("\"{{{n}}}\""))
            .collect::<Vec<_>>()
            .join(", ");
        many += "]\n[job.sweep]\n";
        for n in &names {
            many += &format!("{n} = {{ range = [0, 1000000] }}\n");
        }
        assert!(e(&many).contains("over the limit of 1000000"), "{}", e(&many));
    }

    #[test]
    fn mistakes_name_the_file_line_and_field() {
        let e = |text: &str| JobFile::parse("j.toml", text).unwrap_err().to_string();
        let q = e(&GOOD.replace("replication = 2", "replication = 2\nquorum = 3"));
        assert_eq!(q, "j.toml:7: job.quorum: 3 must be between 1 and the replication (2)");
        let f = e(&GOOD.replace("\"20G\"", "\"lots\""));
        assert!(
            f.starts_with("j.toml:12: job.fuel: \"lots\" is not an amount of fuel"),
            "{f}"
        );
        let t = e(&GOOD.replace("replication = 2", "replicaton = 2"));
        assert!(t.starts_with("j.toml:6:") && t.contains("replicaton"), "{t}");
        let p = e(&GOOD.replace("\"{row}\"", "\"{rows}\""));
        assert!(p.contains("job.args: {rows} is not a parameter of job.sweep"), "{p}");
        let r = e(&GOOD.replace("[0, 8]", "[8, 0]"));
        assert!(r.starts_with("j.toml:17: job.sweep.col: range [8, 0]"), "{r}");
        let m = e("[job]\nargs = []\n");
        assert_eq!(m, "j.toml: job.module: missing (a .wasm path or module_hash)");
        assert!(e("[job\n").starts_with("j.toml:1:"));
    }

    #[test]
    fn the_example_job_files_parse() {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../../examples");
        for (name, tasks) in [("mandelbrot.toml", 48), ("pi.toml", 10)] {
            let path = format!("{dir}/{name}");
            let text = std::fs::read_to_string(&path).unwrap();
            let j = JobFile::parse(&path, &text).unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(j.expand().len(), tasks, "{name}");
        }
    }

    #[test]
    fn units_parse() {
        assert_eq!(parse_fuel("500M"), Some(Fuel(500_000_000)));
        assert_eq!(parse_size("1GiB"), Some(1 << 30));
        assert_eq!(parse_size("12 parsecs"), None);
        assert_eq!(parse_duration_ms("2h"), Some(7_200_000));
        assert_eq!(parse_duration_ms("0s"), None);
    }
}
