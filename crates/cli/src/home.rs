//! Where the node home is: `--home`, else `$SHAREGRID_HOME`, else
//! `~/.sharegrid` (see `shared/DESIGN.md` §10); and the sandbox built from
//! its configuration.

use std::path::{Path, PathBuf};

use sharegrid_node::NodeHome;
use sharegrid_sandbox::{Metering, Sandbox};

/// The home directory to use.
pub(crate) fn resolve(flag: Option<&Path>) -> PathBuf {
    if let Some(p) = flag {
        return p.to_path_buf();
    }
    if let Some(p) = std::env::var_os("SHAREGRID_HOME") {
        return PathBuf::from(p);
    }
    let base = std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("."));
    base.join(".sharegrid")
}

/// A sandbox configured from the home's `config.toml` (defaults when there
/// is none), with its compiled-module cache under `home/cache` or none,
/// counting fuel with `metering`, enforcing wall-clock timeouts or not.
pub(crate) fn sandbox(home: &Path, use_cache: bool, metering: Metering, timeouts: bool) -> anyhow::Result<Sandbox> {
    let home = NodeHome::new(home);
    let settings = home.config(std::env::vars())?.sandbox;
    let mut config = settings.sandbox_config(use_cache.then(|| home.cache_dir()));
    config.metering = metering;
    config.wall_clock_timeout = timeouts;
    Ok(Sandbox::new(config)?)
}
