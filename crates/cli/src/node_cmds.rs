//! `sharegrid init` and `sharegrid config show`: the node home.

use std::path::Path;
use std::process::ExitCode;

use std::time::Duration;

use clap::Subcommand;
use sharegrid_ledger::Genesis;
use sharegrid_node::{InitReport, NodeHome, check_genesis, fetch_genesis, parse_join_address};

#[derive(Subcommand, Debug)]
pub(crate) enum ConfigCommand {
    /// Print the effective configuration (file plus environment overrides).
    Show,
}

pub(crate) fn init(home: &Path, json: bool) -> anyhow::Result<ExitCode> {
    let h = NodeHome::new(home);
    let r = h.init()?;
    report(&h, &r, None, json);
    Ok(ExitCode::SUCCESS)
}

/// `init --join ADDRESS`: the network of the node at ADDRESS.
pub(crate) fn join(home: &Path, addr: &str, genesis_hash: Option<&str>, json: bool) -> anyhow::Result<ExitCode> {
    let h = NodeHome::new(home);
    let addr = parse_join_address(addr)?;
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let (genesis, bootstrap) = rt.block_on(fetch_genesis(&addr, Duration::from_secs(15)))?;
    check_genesis(&genesis, &addr, genesis_hash)?;
    let r = h.join(&genesis, &bootstrap.to_string())?;
    report(
        &h,
        &r,
        Some((&genesis, &bootstrap.to_string(), genesis_hash.is_some())),
        json,
    );
    Ok(ExitCode::SUCCESS)
}

fn report(h: &NodeHome, r: &InitReport, joined: Option<(&Genesis, &str, bool)>, json: bool) {
    if json {
        let mut v = serde_json::json!({
            "home": h.root(),
            "node_id": r.id.to_string(),
            "new_identity": r.new_identity,
            "new_config": r.new_config,
            "new_network": r.new_network,
        });
        if let Some((g, bootstrap, _)) = joined {
            v["genesis"] = serde_json::json!(g.hash().to_string());
            v["bootstrap"] = serde_json::json!(bootstrap);
        }
        println!("{v}");
        return;
    }
    println!("home      {}", h.root().display());
    let kept = |new: bool| if new { "created" } else { "kept (already there)" };
    println!("config    {} — {}", h.config_path().display(), kept(r.new_config));
    println!("identity  {} — {}", h.identity_path().display(), kept(r.new_identity));
    match joined {
        Some((g, bootstrap, checked)) => {
            println!("genesis   {} — network {}", h.genesis_path().display(), g.hash());
            if checked {
                println!("          matches the hash you gave");
            } else {
                println!("          compare this hash with the one the network's operator publishes");
            }
            println!("bootstrap {bootstrap} (in [network] bootstrap)");
            println!("next      sharegrid --home {} node", h.root().display());
        }
        None if r.new_network => println!(
            "genesis   {} — a test network of this node's own: it validates and holds the supply, \
             and its faucet gives tokens to nodes that join (`sharegrid init --join` on them)",
            h.genesis_path().display()
        ),
        None => println!("genesis   {} — kept (already there)", h.genesis_path().display()),
    }
    println!("node id   {}", r.id);
}

/// `sharegrid id`: the home's node id.
pub(crate) fn id(home: &Path) -> anyhow::Result<ExitCode> {
    println!("{}", NodeHome::new(home).identity()?.id());
    Ok(ExitCode::SUCCESS)
}

pub(crate) fn config(home: &Path, cmd: ConfigCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        ConfigCommand::Show => {
            let h = NodeHome::new(home);
            print!("{}", h.config(std::env::vars())?.to_toml());
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `sharegrid dashboard`: the running node's dashboard address with its
/// token in the fragment (which the browser keeps to itself: the page
/// moves it into the tab's session storage).
pub(crate) fn dashboard(home: &Path) -> anyhow::Result<ExitCode> {
    let h = NodeHome::new(home);
    let not_running = || {
        anyhow::anyhow!(
            "no node is running with home {} (start one with `sharegrid node`)",
            home.display()
        )
    };
    let url = std::fs::read_to_string(h.api_addr_path()).map_err(|_| not_running())?;
    let url = url.trim();
    let addr = url.strip_prefix("http://").ok_or_else(not_running)?;
    std::net::TcpStream::connect(addr).map_err(|_| not_running())?;
    println!("{url}/#token={}", h.api_token()?);
    Ok(ExitCode::SUCCESS)
}
