//! The node home (`~/.sharegrid` or `--home`): `config.toml`, `identity.key`
//! (mode 0600), `cache/` (compiled modules), `blobs/` (modules and inputs),
//! `outputs/` (results kept for requestors), `benchmark.json` (the cached
//! node benchmark), `genesis.toml` (the ledger's network), `ledger.db`
//! (the chain), `node.db` (jobs) and, while a node runs, `api.sock`.
//!
//! Never does: overwrite or regenerate an existing identity key (the node's
//! identity, and later its funds, would be lost), or read a key that other
//! users could read.

use std::fs;
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use sharegrid_core::{Amount, NodeId, NodeKey};
use sharegrid_ledger::{Allocation, Genesis, Params};

use crate::config::{ConfigError, NodeConfig, default_file};

/// Why the home or its identity could not be used.
#[derive(Debug, thiserror::Error)]
pub enum HomeError {
    /// A file or directory could not be read or written.
    #[error("{}: {source}", path.display())]
    Io {
        /// The path involved.
        path: PathBuf,
        /// What went wrong.
        source: std::io::Error,
    },
    /// No identity yet.
    #[error("{}: no identity key; run `sharegrid init` first", .0.display())]
    NoIdentity(PathBuf),
    /// The key file is not a key.
    #[error("{}: not an identity key (expected 64 hex digits)", .0.display())]
    BadIdentity(PathBuf),
    /// The key file is readable by others.
    #[error("{}: identity key is readable by group or others (mode {mode:o}); run `chmod 600` on it", path.display())]
    ExposedIdentity {
        /// The key file.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
    },
    /// The operating system gave no randomness for a new key.
    #[error("no randomness for a new identity key: {0}")]
    Random(String),
    /// The configuration is invalid.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The genesis file is invalid.
    #[error("{}: {message}", path.display())]
    BadGenesis {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
}

/// What `init` did.
#[derive(Debug)]
pub struct InitReport {
    /// The node's id.
    pub id: NodeId,
    /// Whether a new identity was generated (false: an existing one kept).
    pub new_identity: bool,
    /// Whether `config.toml` was written (false: an existing one kept).
    pub new_config: bool,
}

/// A node home directory.
#[derive(Debug, Clone)]
pub struct NodeHome {
    root: PathBuf,
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> HomeError + '_ {
    move |source| HomeError::Io {
        path: path.to_path_buf(),
        source,
    }
}

impl NodeHome {
    /// The home at `root` (nothing is created until [`NodeHome::init`]).
    pub fn new(root: impl Into<PathBuf>) -> Self {
        NodeHome { root: root.into() }
    }

    /// The directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// `config.toml`.
    pub fn config_path(&self) -> PathBuf {
        self.root.join("config.toml")
    }

    /// `identity.key`.
    pub fn identity_path(&self) -> PathBuf {
        self.root.join("identity.key")
    }

    /// `cache/`, compiled modules.
    pub fn cache_dir(&self) -> PathBuf {
        self.root.join("cache")
    }

    /// `blobs/`, content-addressed modules, inputs and outputs.
    pub fn blobs_dir(&self) -> PathBuf {
        self.root.join("blobs")
    }

    /// `outputs/`, results of tasks this provider ran, kept for their requestors.
    pub fn outputs_dir(&self) -> PathBuf {
        self.root.join("outputs")
    }

    /// `api.sock`, the running node's control socket.
    pub fn api_socket(&self) -> PathBuf {
        self.root.join("api.sock")
    }

    /// `benchmark.json`, the cached node benchmark.
    pub fn benchmark_path(&self) -> PathBuf {
        self.root.join("benchmark.json")
    }

    /// `genesis.toml`: the ledger's network.
    pub fn genesis_path(&self) -> PathBuf {
        self.root.join("genesis.toml")
    }

    /// `ledger.db`.
    pub fn ledger_path(&self) -> PathBuf {
        self.root.join("ledger.db")
    }

    /// The ledger's genesis.
    pub fn genesis(&self) -> Result<Genesis, HomeError> {
        let path = self.genesis_path();
        let text = fs::read_to_string(&path).map_err(io(&path))?;
        Genesis::from_toml(&text).map_err(|message| HomeError::BadGenesis { path, message })
    }

    /// Creates the home (mode 0700), a documented `config.toml`, a new
    /// identity key and a genesis (a network of its own: this node its
    /// validator and treasury, holding the initial supply; replace it with
    /// another network's `genesis.toml` to join that one), keeping whatever
    /// already exists.
    pub fn init(&self) -> Result<InitReport, HomeError> {
        fs::create_dir_all(&self.root).map_err(io(&self.root))?;
        fs::set_permissions(&self.root, fs::Permissions::from_mode(0o700)).map_err(io(&self.root))?;
        let config = self.config_path();
        let new_config = !config.exists();
        if new_config {
            fs::write(&config, default_file()).map_err(io(&config))?;
        }
        let key_path = self.identity_path();
        let new_identity = !key_path.exists();
        if new_identity {
            let mut seed = [0u8; 32];
            getrandom::fill(&mut seed).map_err(|e| HomeError::Random(e.to_string()))?;
            // create_new: never replace a key that appeared meanwhile.
            let mut f = fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&key_path)
                .map_err(io(&key_path))?;
            f.write_all(format!("{}\n", hex::encode(seed)).as_bytes())
                .map_err(io(&key_path))?;
            f.sync_all().map_err(io(&key_path))?;
        }
        let id = self.identity()?.id();
        let genesis = self.genesis_path();
        if !genesis.exists() {
            fs::write(&genesis, solo_genesis(id).to_toml()).map_err(io(&genesis))?;
        }
        Ok(InitReport {
            id,
            new_identity,
            new_config,
        })
    }

    /// The node's key.
    pub fn identity(&self) -> Result<NodeKey, HomeError> {
        let path = self.identity_path();
        let meta = match fs::metadata(&path) {
            Ok(m) => m,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(HomeError::NoIdentity(path)),
            Err(source) => return Err(HomeError::Io { path, source }),
        };
        let mode = meta.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            return Err(HomeError::ExposedIdentity { path, mode });
        }
        let text = fs::read_to_string(&path).map_err(io(&path))?;
        let mut seed = [0u8; 32];
        hex::decode_to_slice(text.trim(), &mut seed).map_err(|_| HomeError::BadIdentity(path.clone()))?;
        Ok(NodeKey::from_seed(seed))
    }

    /// The configuration, with environment overrides applied.
    pub fn config(&self, env: impl IntoIterator<Item = (String, String)>) -> Result<NodeConfig, HomeError> {
        Ok(NodeConfig::load(&self.config_path(), env)?)
    }
}

/// Tokens a new node's own network starts with, all its own.
pub const SOLO_SUPPLY: u128 = 1_000_000_000_000_000;

/// The genesis `init` writes: a network of one, where this node validates,
/// takes the fees and holds the supply.
pub fn solo_genesis(id: NodeId) -> Genesis {
    Genesis {
        validators: vec![id],
        params: Params {
            treasury: id,
            network_fee_bps: 100,
            min_fee: Amount(1),
        },
        balances: vec![Allocation {
            account: id,
            amount: Amount(SOLO_SUPPLY),
        }],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn init_creates_a_private_home_and_keeps_the_identity() {
        let dir = tempfile::tempdir().unwrap();
        let home = NodeHome::new(dir.path().join("home"));
        assert!(matches!(home.identity(), Err(HomeError::NoIdentity(_))));
        let first = home.init().unwrap();
        assert!(first.new_identity && first.new_config);
        let mode = |p: &Path| fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&home.identity_path()), 0o600);
        assert_eq!(mode(home.root()), 0o700);
        let again = home.init().unwrap();
        assert!(!again.new_identity && !again.new_config);
        assert_eq!(again.id, first.id, "init never replaces an identity");
        assert_eq!(home.config([]).unwrap(), NodeConfig::default());
    }

    #[test]
    fn exposed_or_corrupt_keys_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let home = NodeHome::new(dir.path());
        home.init().unwrap();
        let key = home.identity_path();
        fs::set_permissions(&key, fs::Permissions::from_mode(0o644)).unwrap();
        let err = home.identity().unwrap_err();
        assert!(matches!(err, HomeError::ExposedIdentity { mode: 0o644, .. }), "{err}");
        fs::set_permissions(&key, fs::Permissions::from_mode(0o600)).unwrap();
        fs::write(&key, "not hex").unwrap();
        assert!(matches!(home.identity(), Err(HomeError::BadIdentity(_))));
    }
}
