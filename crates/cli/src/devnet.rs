//! `sharegrid devnet`: a local network of separate node processes on
//! 127.0.0.1 — N validators ordering the ledger by BFT consensus and M
//! providers following it — for people who want to watch a real one. Each
//! node has its own home under the devnet directory (talk to it with
//! `sharegrid --home DIR/NAME …`); Ctrl-C stops them all.

use std::path::PathBuf;
use std::process::{Child, Command, ExitCode, Stdio};
use std::time::Duration;

use anyhow::Context;
use clap::Args;
use sharegrid_core::{Amount, NodeId};
use sharegrid_ledger::{Allocation, Genesis, Params};
use sharegrid_node::{ApiClient, ApiRequest, NodeHome};

#[derive(Args, Debug)]
pub(crate) struct DevnetArgs {
    /// Validators (the ledger tolerates f faulty ones when there are at least 3f + 1).
    #[arg(long, default_value_t = 4)]
    validators: usize,
    /// Provider nodes.
    #[arg(long, default_value_t = 2)]
    providers: usize,
    /// Where the nodes' homes go (made if missing; an existing devnet there is started again).
    #[arg(long, default_value = "devnet")]
    dir: PathBuf,
    /// First port: each node takes two (libp2p, consensus) from here.
    #[arg(long, default_value_t = 17_000)]
    base_port: u16,
    /// Write the homes and stop: start each node yourself with `sharegrid --home DIR/NAME node`.
    #[arg(long)]
    prepare_only: bool,
}

/// Tokens each node holds at genesis.
const FUNDS: u128 = 1_000_000_000;
/// Stake each validator bonds at genesis (what equivocating forfeits).
const VALIDATOR_STAKE: u128 = 1_000_000;

struct Member {
    name: String,
    home: NodeHome,
    id: NodeId,
    p2p: u16,
    consensus: u16,
    validator: bool,
}

pub(crate) fn main(a: DevnetArgs) -> anyhow::Result<ExitCode> {
    anyhow::ensure!(a.validators >= 1, "--validators: at least one");
    anyhow::ensure!(a.validators <= 64, "--validators: at most 64 on one machine");
    anyhow::ensure!(a.providers <= 64, "--providers: at most 64 on one machine");
    let count = a.validators + a.providers;
    let last = usize::from(a.base_port) + 2 * count;
    anyhow::ensure!(
        last <= usize::from(u16::MAX),
        "--base-port: {count} nodes need ports up to {last}"
    );
    std::fs::create_dir_all(&a.dir).with_context(|| format!("{}", a.dir.display()))?;
    let mut members = Vec::new();
    for i in 0..count {
        let validator = i < a.validators;
        let name = if validator {
            format!("validator-{i}")
        } else {
            format!("provider-{}", i - a.validators)
        };
        let home = NodeHome::new(a.dir.join(&name));
        let id = home.init()?.id;
        let p2p = a.base_port + 2 * i as u16;
        members.push(Member {
            name,
            home,
            id,
            p2p,
            consensus: p2p + 1,
            validator,
        });
    }
    let validators: Vec<NodeId> = members.iter().filter(|m| m.validator).map(|m| m.id).collect();
    let genesis = Genesis {
        validators: validators.clone(),
        params: Params::new(validators[0], 100, Amount(1)),
        balances: members
            .iter()
            .map(|m| Allocation {
                account: m.id,
                amount: Amount(FUNDS),
            })
            .collect(),
        stakes: if validators.len() > 1 {
            validators
                .iter()
                .map(|v| Allocation {
                    account: *v,
                    amount: Amount(VALIDATOR_STAKE),
                })
                .collect()
        } else {
            Vec::new()
        },
    };
    let address = |m: &Member| -> anyhow::Result<String> {
        let peer = sharegrid_net::peer_id(&m.id).context("a node id that is no libp2p key")?;
        Ok(format!("/ip4/127.0.0.1/tcp/{}/p2p/{peer}", m.p2p))
    };
    let peers: Vec<String> = members
        .iter()
        .filter(|m| m.validator)
        .map(|m| format!("{}@127.0.0.1:{}", m.id, m.consensus))
        .collect();
    for (i, m) in members.iter().enumerate() {
        // Everyone bootstraps from the first validator; it from the next node.
        let via = if i == 0 { members.get(1) } else { members.first() };
        match via {
            Some(v) => m.home.join(&genesis, &address(v)?)?,
            None => m.home.join(&genesis, &address(m)?)?,
        };
        let (listen, consensus, validator) = (m.p2p, m.consensus, m.validator);
        let peers = peers.clone();
        m.home.edit_config("devnet", |doc| {
            doc["network"]["listen"] =
                toml_edit::value(toml_edit::Array::from_iter([format!("/ip4/127.0.0.1/tcp/{listen}")]));
            doc["network"]["mdns"] = toml_edit::value(false);
            doc["provider"]["enabled"] = toml_edit::value(!validator);
            doc["ledger"]["block_interval_ms"] = toml_edit::value(100);
            if validator {
                doc["ledger"]["consensus_listen"] = toml_edit::value(format!("127.0.0.1:{consensus}"));
                doc["ledger"]["consensus_peers"] = toml_edit::value(toml_edit::Array::from_iter(peers));
            }
        })?;
    }
    if a.prepare_only {
        for m in &members {
            println!("{:<12} {}  {}", m.name, m.id, m.home.root().display());
        }
        return Ok(ExitCode::SUCCESS);
    }
    let exe = std::env::current_exe()?;
    let mut children = Vec::new();
    for m in &members {
        let log = std::fs::File::create(m.home.root().join("node.log"))?;
        let child = Command::new(&exe)
            .arg("--home")
            .arg(m.home.root())
            .arg("node")
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .with_context(|| format!("starting {}", m.name))?;
        children.push(child);
    }
    println!(
        "devnet: {} validators (BFT, tolerating {} faulty) and {} providers on 127.0.0.1, genesis {}",
        a.validators,
        (a.validators - 1) / 3,
        a.providers,
        genesis.hash().short()
    );
    for m in &members {
        println!(
            "  {:<12} {}  p2p {}{}  sharegrid --home {} status",
            m.name,
            m.id.short(),
            m.p2p,
            if m.validator {
                format!("  consensus {}", m.consensus)
            } else {
                String::new()
            },
            m.home.root().display()
        );
    }
    println!("logs in each home's node.log; Ctrl-C stops every node");
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let exited = rt.block_on(async {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
        loop {
            tokio::select! {
                r = tokio::signal::ctrl_c() => { r?; return anyhow::Ok(None) }
                _ = term.recv() => return Ok(None),
                () = tokio::time::sleep(Duration::from_millis(500)) => {
                    for (m, c) in members.iter().zip(children.iter_mut()) {
                        if let Some(status) = c.try_wait()? {
                            return Ok(Some(format!("{} exited ({status}); see {}", m.name, m.home.root().join("node.log").display())));
                        }
                    }
                }
            }
        }
    })?;
    stop_all(&members, &mut children);
    match exited {
        Some(why) => {
            eprintln!("devnet: {why}");
            Ok(ExitCode::FAILURE)
        }
        None => Ok(ExitCode::SUCCESS),
    }
}

/// Asks every node to stop (it finishes what it acknowledged), then waits;
/// one that does not stop within a minute is killed.
fn stop_all(members: &[Member], children: &mut [Child]) {
    for m in members {
        if let Ok(mut c) = ApiClient::connect(&m.home) {
            let _: Result<String, _> = c.call(&ApiRequest::Stop);
        }
    }
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    for c in children.iter_mut() {
        while matches!(c.try_wait(), Ok(None)) && std::time::Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = c.kill();
        let _ = c.wait();
    }
}
