//! `sharegrid init` and `sharegrid config show`: the node home.

use std::path::Path;
use std::process::ExitCode;

use clap::Subcommand;
use sharegrid_node::NodeHome;

#[derive(Subcommand, Debug)]
pub(crate) enum ConfigCommand {
    /// Print the effective configuration (file plus environment overrides).
    Show,
}

pub(crate) fn init(home: &Path, json: bool) -> anyhow::Result<ExitCode> {
    let h = NodeHome::new(home);
    let r = h.init()?;
    if json {
        let v = serde_json::json!({
            "home": h.root(),
            "node_id": r.id.to_string(),
            "new_identity": r.new_identity,
            "new_config": r.new_config,
        });
        println!("{v}");
    } else {
        println!("home      {}", h.root().display());
        let kept = |new: bool| if new { "created" } else { "kept (already there)" };
        println!("config    {} — {}", h.config_path().display(), kept(r.new_config));
        println!("identity  {} — {}", h.identity_path().display(), kept(r.new_identity));
        println!(
            "genesis   {} — the ledger's network (replace it before the first start to join another)",
            h.genesis_path().display()
        );
        println!("node id   {}", r.id);
    }
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
