//! `sharegrid node` (the daemon), and the commands that ask a running node
//! through its control socket: `sharegrid offers`, `sharegrid status`.

use std::io::Write;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::ExitCode;

use clap::Args;
use sharegrid_core::Offer;
use sharegrid_node::{ApiClient, ApiRequest, NodeHome, NodeStatus, launch};

#[derive(Args, Debug)]
pub(crate) struct NodeArgs {
    /// Run in the background: return once the node answers, its output in
    /// HOME/node.log; `sharegrid stop` stops it.
    #[arg(long)]
    detach: bool,
}

#[derive(Args, Debug)]
pub(crate) struct ListArgs {
    /// Print JSON.
    #[arg(long)]
    pub(crate) json: bool,
}

pub(crate) fn node(home: &Path, a: NodeArgs) -> anyhow::Result<ExitCode> {
    if a.detach {
        return detach(home);
    }
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    rt.block_on(async {
        let home = NodeHome::new(home);
        let node = launch(&home, std::env::vars().collect()).await?;
        let pid = PidFile::write(&home)?;
        let h = &node.handle;
        let mut out = std::io::stdout().lock();
        writeln!(out, "node      {}", h.id())?;
        writeln!(out, "home      {}", home.root().display())?;
        let listening = h.listen_addrs().await;
        for a in &listening {
            writeln!(out, "listening {}/p2p/{}", a, h.peer_id())?;
        }
        writeln!(
            out,
            "api       http://{} (token in {})",
            node.api,
            home.api_token_path().display()
        )?;
        let tcp_port = |a: &str| -> Option<u16> {
            let mut parts = a.split('/');
            parts.by_ref().find(|p| *p == "tcp")?;
            parts.next()?.parse().ok()
        };
        for configured in &home.config(std::env::vars())?.network.listen {
            if let Some(port) = tcp_port(configured).filter(|p| *p != 0)
                && !listening.iter().any(|a| tcp_port(&a.to_string()) == Some(port))
            {
                writeln!(
                    out,
                    "note      TCP port {port} is in use (another node on this machine?), so this node took \
                     the next free one; [network] listen sets it"
                )?;
            }
        }
        let m = node.machine;
        match node.speed {
            Some(speed) => {
                let how = if node.benchmarked { "measured now" } else { "cached" };
                let st = h.status().await.and_then(|s| s.provider);
                let slots = st.map_or(0, |s| s.slots);
                writeln!(
                    out,
                    "provider  on: {slots} slot(s) of {} cores, {}, {:?}, {speed} ({how})",
                    m.cores,
                    bytesize::ByteSize(m.memory_bytes),
                    m.arch
                )?;
            }
            None => writeln!(out, "provider  off (set [provider] enabled = true to contribute)")?,
        }
        let head = node.ledger.head();
        let role = if node.ledger.is_validator() {
            "validator"
        } else {
            "follower"
        };
        writeln!(
            out,
            "ledger    {role}, block {} of network {} (genesis.toml)",
            head.height,
            head.genesis.short()
        )?;
        writeln!(
            out,
            "dashboard `sharegrid dashboard` prints its address, with the token"
        )?;
        writeln!(
            out,
            "Ctrl-C stops the node (running tasks get the shutdown grace period)."
        )?;
        out.flush()?;
        drop(out);
        let life = node.handle.lifecycle().clone();
        tokio::select! {
            r = wait_for_signal() => r?,
            // `sharegrid stop`.
            () = life.stopping() => {}
        }
        eprintln!("stopping: no new work accepted; waiting for running tasks...");
        node.shutdown().await;
        pid.remove();
        eprintln!("stopped");
        Ok(ExitCode::SUCCESS)
    })
}

/// `HOME/node.pid` while a node runs (for `sharegrid stop`).
struct PidFile(std::path::PathBuf);

impl PidFile {
    fn write(home: &NodeHome) -> anyhow::Result<PidFile> {
        let path = home.root().join("node.pid");
        std::fs::write(&path, format!("{}\n", std::process::id()))?;
        Ok(PidFile(path))
    }

    fn remove(self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// `sharegrid node --detach`: this program again as `node`, in its own
/// process group, writing to HOME/node.log; returns once it has printed
/// its start-up report (shown here), or fails with its log if it exits.
fn detach(home: &Path) -> anyhow::Result<ExitCode> {
    let h = NodeHome::new(home);
    h.init()?;
    if ApiClient::connect(&h).is_ok_and(|mut c| c.call::<NodeStatus>(&ApiRequest::Status).is_ok()) {
        anyhow::bail!(
            "a node is already running on {} (`sharegrid stop` stops it)",
            h.root().display()
        );
    }
    let log_path = h.root().join("node.log");
    let log = std::fs::File::create(&log_path)?;
    let mut child = std::process::Command::new(std::env::current_exe()?)
        .arg("--home")
        .arg(h.root())
        .arg("node")
        .stdin(std::process::Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        .process_group(0)
        .spawn()?;
    // Its report ends with the line about stopping it.
    let ready = "Ctrl-C stops the node";
    let started = std::time::Instant::now();
    loop {
        let text = std::fs::read_to_string(&log_path).unwrap_or_default();
        if let Some(status) = child.try_wait()? {
            anyhow::bail!(
                "the node exited ({status}) while starting; its log, {}:\n{text}",
                log_path.display()
            );
        }
        if text.contains(ready) {
            // Its report, without the log lines (they start with a time).
            let report = text
                .lines()
                .filter(|l| !l.contains(ready) && !l.starts_with(|c: char| c.is_ascii_digit()));
            for line in report {
                println!("{line}");
            }
            println!(
                "running   in the background: pid {}, log {}; `sharegrid{} stop` stops it",
                child.id(),
                log_path.display(),
                home_flag(home)
            );
            return Ok(ExitCode::SUCCESS);
        }
        if started.elapsed() > std::time::Duration::from_secs(300) {
            anyhow::bail!(
                "the node has not finished starting after 5 minutes; see {}",
                log_path.display()
            );
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

/// ` --home DIR` when `home` is not the default one.
fn home_flag(home: &Path) -> String {
    match std::env::var_os("HOME") {
        Some(h) if Path::new(&h).join(".sharegrid") == home => String::new(),
        _ => format!(" --home {}", home.display()),
    }
}

/// `sharegrid stop`: asks the running node to stop and waits until it has.
pub(crate) fn stop(home: &Path) -> anyhow::Result<ExitCode> {
    let h = NodeHome::new(home);
    let pid = std::fs::read_to_string(h.root().join("node.pid"))
        .ok()
        .and_then(|t| t.trim().parse::<u32>().ok());
    let _: String = client(home)?.call(&ApiRequest::Stop)?;
    eprintln!("stopping: running tasks get the shutdown grace period");
    // Gone once its process is (Linux: /proc), or else once the control
    // socket no longer answers.
    let alive = || match pid {
        Some(p) if Path::new("/proc/self").exists() => Path::new(&format!("/proc/{p}")).exists(),
        _ => ApiClient::connect(&h).is_ok(),
    };
    while alive() {
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    println!("stopped");
    Ok(ExitCode::SUCCESS)
}

async fn wait_for_signal() -> anyhow::Result<()> {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::select! {
        r = tokio::signal::ctrl_c() => r?,
        _ = term.recv() => {}
    }
    Ok(())
}

fn client(home: &Path) -> anyhow::Result<ApiClient> {
    Ok(ApiClient::connect(&NodeHome::new(home))?)
}

#[derive(Args, Debug)]
pub(crate) struct OffersArgs {
    /// Print JSON.
    #[arg(long)]
    pub(crate) json: bool,
    /// Wait until at least this many live offers are known.
    #[arg(long, value_name = "N")]
    pub(crate) wait: Option<usize>,
    /// With --wait: give up after this long (e.g. 30s, 2m).
    #[arg(long, default_value = "60s", value_parser = crate::units::parse_duration)]
    pub(crate) timeout: std::time::Duration,
}

pub(crate) fn offers(home: &Path, a: OffersArgs) -> anyhow::Result<ExitCode> {
    let request = match a.wait {
        Some(n) => ApiRequest::WaitOffers {
            n,
            timeout_ms: a.timeout.as_millis() as u64,
        },
        None => ApiRequest::Offers,
    };
    let offers: Vec<Offer> = client(home)?.call(&request)?;
    if a.json {
        println!("{}", serde_json::to_string(&offers)?);
        return Ok(ExitCode::SUCCESS);
    }
    if offers.is_empty() {
        println!("no live offers (is the node connected? see `sharegrid status`)");
        return Ok(ExitCode::SUCCESS);
    }
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64);
    println!(
        "{:<18} {:<8} {:>5} {:>10} {:>4} {:>13} {:>12} {:<16} {:>8}",
        "PROVIDER", "ARCH", "CORES", "MEMORY", "FREE", "SPEED", "PRICE/GFUEL", "MODES", "EXPIRES"
    );
    for o in &offers {
        let modes: Vec<String> = o.modes.iter().map(|m| m.to_string()).collect();
        let id = o.provider.to_string();
        println!(
            "{:<18} {:<8} {:>5} {:>10} {:>4} {:>13} {:>12} {:<16} {:>7}s",
            format!("{}…", &id[..id.len().min(16)]),
            format!("{:?}", o.arch).to_lowercase(),
            o.cores,
            bytesize::ByteSize(o.memory_bytes).to_string(),
            o.free_slots,
            format!("{:.2} Gf/s", o.speed.0),
            o.price.0.to_string(),
            modes.join(","),
            o.expires_at_ms.saturating_sub(now) / 1000
        );
    }
    Ok(ExitCode::SUCCESS)
}

pub(crate) fn status(home: &Path, a: ListArgs) -> anyhow::Result<ExitCode> {
    let s: NodeStatus = client(home)?.call(&ApiRequest::Status)?;
    if a.json {
        println!("{}", serde_json::to_string(&s)?);
        return Ok(ExitCode::SUCCESS);
    }
    println!("node      {}", s.id);
    println!("peer id   {}", s.peer_id);
    for l in &s.listen {
        println!("listening {l}");
    }
    println!("peers     {} connected, {} live offers", s.peers, s.offers);
    let d = &s.discovery;
    println!(
        "discovery mDNS {}, {} bootstrap peer(s){}",
        if d.mdns { "on" } else { "off" },
        d.bootstrap.len(),
        if d.bootstrap.is_empty() {
            String::new()
        } else {
            format!(": {}", d.bootstrap.join(", "))
        }
    );
    if let Some(h) = &d.hint {
        println!("hint      {h}");
    }
    match &s.provider {
        Some(p) => println!(
            "provider  {}/{} slots busy, {} tasks run, {} outputs kept, {:.2} Gfuel/s{}",
            p.busy,
            p.slots,
            p.tasks_run,
            p.outputs_retained,
            p.speed_gfuel_per_sec,
            if p.accepting { "" } else { ", shutting down" }
        ),
        None => println!("provider  off"),
    }
    if let Some(l) = &s.ledger {
        let role = if l.validator { "validator" } else { "follower" };
        println!(
            "ledger    {role} at block {} ({}), {} transaction(s) waiting",
            l.height,
            l.head.short(),
            l.pending
        );
    }
    for m in &s.misbehaviour {
        println!("rejected  {} × {} from {}", m.count, m.kind, m.peer);
    }
    Ok(ExitCode::SUCCESS)
}
