//! `sharegrid submit`, `jobs`, `job`, `results`: jobs through the running
//! node, which schedules, verifies and persists them (crates/node/src/requestor.rs).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::Args;
use sharegrid_core::job::JobFile;
use sharegrid_core::{NodeId, Offer, TaskResult};
use sharegrid_node::runtime::Runtime;
use sharegrid_node::{
    ApiClient, ApiRequest, BlobStore, JobRequest, JobRow, JobSubmission, JobView, LiveJob, NodeHome, State,
};

#[derive(Args, Debug)]
pub(crate) struct SubmitArgs {
    /// The job file (TOML; see docs/job-file.md).
    job: PathBuf,
    /// Return once the job is accepted by the node, without waiting.
    #[arg(long)]
    detach: bool,
    /// Print JSON (the job id, then the final state).
    #[arg(long)]
    json: bool,
}

#[derive(Args, Debug)]
pub(crate) struct JobArgs {
    /// Job id (a unique prefix, or `last` for the newest job).
    id: String,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

#[derive(Args, Debug)]
pub(crate) struct CancelArgs {
    /// Job id (a unique prefix).
    id: String,
}

#[derive(Args, Debug)]
pub(crate) struct ResultsArgs {
    /// Job id (a unique prefix, or `last` for the newest job).
    id: String,
    /// Directory to write each accepted task's outputs into, as DIR/<task index>/.
    dir: PathBuf,
}

fn client(home: &Path) -> anyhow::Result<ApiClient> {
    Ok(ApiClient::connect(&NodeHome::new(home))?)
}

/// A job file read for the node: its text, and the bytes of each file it
/// names, read under the checks below. The node parses the text again and
/// checks the files as it does for any client ([`JobRequest`]); these
/// checks come first so that a mistake is named with the job file's path
/// before anything is sent.
pub(crate) struct Prepared {
    text: String,
    files: Vec<(String, Vec<u8>)>,
}

impl Prepared {
    /// Uploads the files to the node → the request to submit.
    fn upload(self, api: &mut ApiClient) -> anyhow::Result<JobRequest> {
        let mut files = std::collections::BTreeMap::new();
        for (name, bytes) in self.files {
            files.insert(name, api.upload(&bytes)?);
        }
        Ok(JobRequest { job: self.text, files })
    }
}

/// Reads a job file and everything it names.
pub(crate) fn prepare(home: &Path, path: &Path) -> anyhow::Result<Prepared> {
    let text = std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    let job = JobFile::parse(&path.display().to_string(), &text)?;
    let base = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let h = NodeHome::new(home);
    // What a job file names is shipped to strangers: never a file of the
    // node's home (its key, its config), and inputs and stdin only from
    // beside or below the job file.
    let base_dir = std::fs::canonicalize(base).with_context(|| format!("cannot read {}", base.display()))?;
    let home_dir = std::fs::canonicalize(h.root()).ok();
    let read = |rel: &str, what: &str, confined: bool| -> anyhow::Result<Vec<u8>> {
        let p = base.join(rel);
        let at = std::fs::canonicalize(&p)
            .with_context(|| format!("{}: job.{what}: cannot read {}", path.display(), p.display()))?;
        if home_dir.as_ref().is_some_and(|h| at.starts_with(h)) {
            anyhow::bail!(
                "{}: job.{what}: {rel:?} is inside the node's home ({}); a job never ships its files",
                path.display(),
                h.root().display()
            );
        }
        if confined && !at.starts_with(&base_dir) {
            anyhow::bail!(
                "{}: job.{what}: {rel:?} is outside the job file's directory; inputs and stdin must be beside or below it",
                path.display()
            );
        }
        std::fs::read(&at).with_context(|| format!("{}: job.{what}: cannot read {}", path.display(), p.display()))
    };
    let mut files = Vec::new();
    if let Some(m) = &job.module {
        let bytes = sharegrid_node::module_bytes(m, read(m, "module", false)?)
            .map_err(|e| anyhow::anyhow!("{}: job.module: {e}", path.display()))?;
        files.push((m.clone(), bytes));
    }
    if let Some(f) = &job.stdin {
        files.push((f.clone(), read(f, "stdin", true)?));
    }
    for file in job.inputs.values() {
        files.push((file.clone(), read(file, "inputs", true)?));
    }
    if let (Some(runtime), Some(script)) = (&job.runtime, &job.script) {
        Runtime::load(h.root(), runtime).with_context(|| format!("{}: job.runtime", path.display()))?;
        files.push((script.clone(), read(script, "script", true)?));
    }
    Ok(Prepared { text, files })
}

/// The estimate printed before a job starts (worked out by the node's
/// [`JobSubmission::estimate`]; this only words it).
fn estimate(sub: &JobSubmission, offers: &[Offer], me: Option<&NodeId>) -> String {
    let e = sub.estimate(offers, me);
    if e.qualifying == 0 {
        return format!(
            "{} tasks × r={}: no qualifying provider seen yet; the job waits for providers until its deadline",
            e.tasks, e.replication
        );
    }
    let own = if e.own {
        if e.qualifying == 1 {
            " (this node's own provider)"
        } else {
            " (this node's own provider among them)"
        }
    } else {
        ""
    };
    let short = if (e.qualifying as u32) < e.replication {
        format!(
            "; r={} needs {} distinct providers, so each task waits for {} more to join",
            e.replication,
            e.replication,
            e.replication - e.qualifying as u32
        )
    } else {
        String::new()
    };
    format!(
        "{} tasks × r={} on {} qualifying providers{own} ({:.1} Gfuel/s in all); at most {} tokens and {} if every task used its whole fuel limit{short}",
        e.tasks,
        e.replication,
        e.qualifying,
        e.speed,
        e.worst_cost,
        humantime::format_duration(Duration::from_secs(e.worst_secs))
    )
}

pub(crate) fn submit(home: &Path, a: SubmitArgs) -> anyhow::Result<ExitCode> {
    let prepared = prepare(home, &a.job)?;
    let mut api = client(home)?;
    let req = prepared.upload(&mut api)?;
    if !a.json {
        // The submission the node will make of it, from the same store.
        let h = NodeHome::new(home);
        let blobs = BlobStore::open(h.blobs_dir(), u64::MAX)?;
        if let Ok(sub) = req.submission(&blobs, h.root()) {
            let offers: Vec<Offer> = api.call(&ApiRequest::Offers)?;
            let me = h.identity().ok().map(|k| k.id());
            eprintln!("estimate  {}", estimate(&sub, &offers, me.as_ref()));
        }
    }
    let submitted: serde_json::Value = api.call(&ApiRequest::Submit(Box::new(req)))?;
    let id = submitted["id"]
        .as_str()
        .context("the node answered no job id")?
        .to_owned();
    if a.detach {
        if a.json {
            println!("{}", serde_json::json!({ "id": id }));
        } else {
            println!("{id}");
        }
        return Ok(ExitCode::SUCCESS);
    }
    if !a.json {
        eprintln!("job       {id} (Ctrl-C leaves it running in the node: `sharegrid job {id}`)");
    }
    let view = follow(
        &mut api,
        &id,
        !a.json && std::io::IsTerminal::is_terminal(&std::io::stderr()),
    )?;
    if a.json {
        println!("{}", serde_json::to_string(&view)?);
    } else {
        print_summary(&view);
    }
    Ok(if view.job.state == State::Done && view.job.failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// `[####------] 12/48 done, 4 running, 0 failed, 3 providers`: one line
/// of a job's progress (for `submit` and the demo).
pub(crate) fn progress_line(job: &JobRow, live: Option<&LiveJob>) -> String {
    let (done, failed, total) = (job.accepted, job.failed, job.total);
    let width = 30;
    let filled = ((done + failed) * width).checked_div(total).unwrap_or(width);
    let (running, providers) = live.map_or((0, 0), |l| (l.progress.running, l.progress.providers_in_use));
    format!(
        "[{}{}] {done}/{total} done, {running} running, {failed} failed, {providers} providers",
        "#".repeat(filled),
        "-".repeat(width - filled)
    )
}

/// `12 tasks for 40s: no provider qualifies: … (taken as offers arrive;
/// the job fails at its deadline, in 29m 20s)`.
pub(crate) fn waiting_line(w: &sharegrid_sched::Waiting, deadline_ms: Option<u64>, now: u64) -> String {
    let waited = now.saturating_sub(w.since_ms) / 1000;
    let until = match deadline_ms {
        Some(d) => format!(
            "the job fails at its deadline, in {}",
            humantime::format_duration(Duration::from_secs(d.saturating_sub(now) / 1000))
        ),
        None => "the job has no deadline".into(),
    };
    format!(
        "{} tasks for {}: {} (taken as offers arrive; {until})",
        w.tasks,
        humantime::format_duration(Duration::from_secs(waited)),
        w.why
    )
}

/// Polls the job until it ends, drawing a progress line on stderr.
pub(crate) fn follow(api: &mut ApiClient, id: &str, draw: bool) -> anyhow::Result<JobView> {
    loop {
        let v: JobView = api.call(&ApiRequest::Job { id: id.to_string() })?;
        if draw {
            let running = v.live.as_ref().map_or(0, |l| l.progress.running);
            let mut line = format!("\r{}", progress_line(&v.job, v.live.as_ref()));
            if let Some(w) = v.live.as_ref().and_then(|l| l.waiting.as_ref()) {
                let secs = sharegrid_node::now_ms().saturating_sub(w.since_ms) / 1000;
                line.push_str(&format!(" — waiting {secs} s: {}", w.why));
            } else if let Some(w) = v.live.as_ref().and_then(|l| l.why_no_match.as_ref())
                && running == 0
            {
                line.push_str(&format!(" — waiting: {w}"));
            }
            let mut e = std::io::stderr().lock();
            write!(e, "{line:<120}")?;
            e.flush()?;
        }
        // Done once the job has ended and, when the ledger pays for it,
        // its settlement has landed or been refused.
        let paid = v.payment.as_ref().is_none_or(|p| p.settled || p.error.is_some());
        if v.job.state != State::Running && paid {
            if draw {
                eprintln!();
            }
            return Ok(v);
        }
        std::thread::sleep(Duration::from_millis(300));
    }
}

fn print_summary(v: &JobView) {
    let j = &v.job;
    let state = j.state.as_str();
    println!("job       {} ({})", j.id, j.name);
    println!(
        "state     {state}{}",
        j.reason.as_ref().map(|r| format!(": {r}")).unwrap_or_default()
    );
    println!(
        "tasks     {} accepted, {} failed, {} in all",
        j.accepted, j.failed, j.total
    );
    let fuel: u64 = v.tasks.iter().filter_map(|t| t.fuel).map(|f| f.0).sum();
    println!("fuel      {} (accepted results)", sharegrid_core::Fuel(fuel));
    if let (Some(end), start) = (j.finished_ms, j.created_ms) {
        println!("time      {:.1} s", end.saturating_sub(start) as f64 / 1e3);
    }
    if let Some(p) = &v.payment {
        let how = match (&p.error, p.settled) {
            (Some(e), _) => format!("not settled: {e} (tried again when the node restarts)"),
            (None, true) => "settled: agreeing receipts paid, the rest refunded".into(),
            (None, false) if j.state == State::Running => "open: agreeing receipts are paid as the job runs".into(),
            (None, false) => "settling".into(),
        };
        println!("payment   escrow {} of {}, {how}", p.escrow.short(), p.amount);
    }
    for t in v.tasks.iter().filter(|t| t.state == State::Failed) {
        println!(
            "failed    task {} {:?}: {}",
            t.index,
            t.args,
            t.reason.as_deref().unwrap_or("?")
        );
    }
}

pub(crate) fn jobs(home: &Path, json: bool) -> anyhow::Result<ExitCode> {
    let rows: Vec<JobRow> = client(home)?.call(&ApiRequest::Jobs)?;
    if json {
        println!("{}", serde_json::to_string(&rows)?);
        return Ok(ExitCode::SUCCESS);
    }
    if rows.is_empty() {
        println!("no jobs yet (sharegrid submit JOB.toml)");
    }
    println!(
        "{:<17} {:<20} {:<8} {:>8} {:>8} {:>8}",
        "ID", "NAME", "STATE", "TASKS", "DONE", "FAILED"
    );
    for j in rows {
        println!(
            "{:<17} {:<20} {:<8} {:>8} {:>8} {:>8}",
            j.id,
            j.name,
            j.state.as_str(),
            j.total,
            j.accepted,
            j.failed
        );
    }
    Ok(ExitCode::SUCCESS)
}

pub(crate) fn job(home: &Path, a: JobArgs) -> anyhow::Result<ExitCode> {
    let v: JobView = client(home)?.call(&ApiRequest::Job { id: a.id })?;
    if a.json {
        println!("{}", serde_json::to_string(&v)?);
        return Ok(ExitCode::SUCCESS);
    }
    print_summary(&v);
    if let Some(l) = &v.live {
        println!(
            "now       {} running on {} providers",
            l.progress.running, l.progress.providers_in_use
        );
        if let Some(w) = &l.waiting {
            println!("waiting   {}", waiting_line(w, l.deadline_ms, sharegrid_node::now_ms()));
        } else if let Some(w) = &l.why_no_match {
            println!("matching  {w}");
        }
    }
    for t in &v.tasks {
        let state = match t.state {
            State::Done => format!("accepted {}", t.result.map(|r| r.short()).unwrap_or_default()),
            State::Failed => format!("failed: {}", t.reason.as_deref().unwrap_or("?")),
            State::Running => "pending".into(),
        };
        println!("  {:>5} {:<30} {state}", t.index, t.args.join(" "));
    }
    Ok(ExitCode::SUCCESS)
}

pub(crate) fn cancel(home: &Path, a: CancelArgs) -> anyhow::Result<ExitCode> {
    let v: serde_json::Value = client(home)?.call(&ApiRequest::Cancel { id: a.id })?;
    println!(
        "cancelled {}: accepted results are kept and paid, the rest of the escrow refunded",
        v["id"].as_str().unwrap_or_default()
    );
    Ok(ExitCode::SUCCESS)
}

pub(crate) fn results(home: &Path, a: ResultsArgs) -> anyhow::Result<ExitCode> {
    let mut api = client(home)?;
    let v: JobView = api.call(&ApiRequest::Job { id: a.id })?;
    let mut n = 0;
    for t in &v.tasks {
        let Some(id) = t.result else { continue };
        let bytes = api
            .blob(&id)
            .with_context(|| format!("result {id} of task {}", t.index))?;
        let r = TaskResult::decode(&bytes)?;
        let dir = a.dir.join(t.index.to_string());
        sharegrid_sandbox::save_outputs(&dir, &r.files)?;
        std::fs::write(dir.join("stdout"), &r.stdout)?;
        n += 1;
    }
    println!(
        "{n} of {} tasks' outputs written under {}",
        v.tasks.len(),
        a.dir.display()
    );
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::waiting_line;

    #[test]
    fn a_waiting_job_says_for_what_since_when_and_until_when() {
        let w = sharegrid_sched::Waiting {
            since_ms: 1_000,
            tasks: 12,
            why: "no provider qualifies: no providers seen on the network".into(),
        };
        assert_eq!(
            waiting_line(&w, Some(1_801_000), 41_000),
            "12 tasks for 40s: no provider qualifies: no providers seen on the network \
             (taken as offers arrive; the job fails at its deadline, in 29m 20s)"
        );
        assert!(waiting_line(&w, None, 7_201_000).starts_with("12 tasks for 2h: "));
    }
}
