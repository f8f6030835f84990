//! Where the node home is: `--home`, else `$SHAREGRID_HOME`, else
//! `~/.sharegrid` (see `shared/DESIGN.md` §10).

use std::path::{Path, PathBuf};

use sharegrid_sandbox::{Metering, Sandbox, SandboxConfig};

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

/// A sandbox with its compiled-module cache under `home/cache`, or none,
/// counting fuel with `metering`, enforcing wall-clock timeouts or not.
pub(crate) fn sandbox(home: &Path, use_cache: bool, metering: Metering, timeouts: bool) -> anyhow::Result<Sandbox> {
    let config = SandboxConfig {
        cache_dir: use_cache.then(|| home.join("cache")),
        metering,
        wall_clock_timeout: timeouts,
        ..SandboxConfig::default()
    };
    Ok(Sandbox::new(config)?)
}
