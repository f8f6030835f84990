//! `sharegrid node` (the daemon), and the commands that ask a running node
//! through its control socket: `sharegrid offers`, `sharegrid status`.

use std::io::Write;
use std::path::Path;
use std::process::ExitCode;

use clap::Args;
use sharegrid_core::Offer;
use sharegrid_node::{ApiClient, ApiRequest, NodeHome, NodeStatus, launch};

#[derive(Args, Debug)]
pub(crate) struct NodeArgs {}

#[derive(Args, Debug)]
pub(crate) struct ListArgs {
    /// Print JSON.
    #[arg(long)]
    pub(crate) json: bool,
}

pub(crate) fn node(home: &Path, _a: NodeArgs) -> anyhow::Result<ExitCode> {
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    rt.block_on(async {
        let home = NodeHome::new(home);
        let node = launch(&home, std::env::vars().collect()).await?;
        let h = &node.handle;
        let mut out = std::io::stdout().lock();
        writeln!(out, "node      {}", h.id())?;
        writeln!(out, "home      {}", home.root().display())?;
        for a in h.listen_addrs().await {
            writeln!(out, "listening {}/p2p/{}", a, h.peer_id())?;
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
        writeln!(out, "api       {}", home.api_socket().display())?;
        writeln!(
            out,
            "Ctrl-C stops the node (running tasks get the shutdown grace period)."
        )?;
        out.flush()?;
        drop(out);
        wait_for_signal().await?;
        eprintln!("stopping: no new work accepted; waiting for running tasks...");
        node.shutdown().await;
        eprintln!("stopped");
        Ok(ExitCode::SUCCESS)
    })
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
    Ok(ApiClient::connect(&NodeHome::new(home).api_socket())?)
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
