//! The node home (`~/.sharegrid` or `--home`): `config.toml`, `identity.key`
//! (mode 0600), `cache/` (compiled modules), `blobs/` (modules and inputs),
//! `outputs/` (results kept for requestors), `benchmark.json` (the cached
//! node benchmark), `genesis.toml` (the ledger's network), `ledger.db`
//! (the chain), `node.db` (jobs), `api.token` (mode 0600, the HTTP API's
//! bearer token) and, while a node runs, `api.sock` and `api.addr`.
//!
//! Never does: overwrite or regenerate an existing identity key (the node's
//! identity, and later its funds, would be lost), or read a key or token
//! that other users could read.

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
    /// The key (or token) file is not one.
    #[error("{}: not a key (expected 64 hex digits)", .0.display())]
    BadSecret(PathBuf),
    /// The key (or token) file is readable by others.
    #[error("{}: readable by group or others (mode {mode:o}); run `chmod 600` on it", path.display())]
    Exposed {
        /// The file.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
    },
    /// The operating system gave no randomness for a new key.
    #[error("no randomness for a new key: {0}")]
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
    /// The home already keeps another network's ledger.
    #[error(
        "{}: this home already keeps the ledger of network {has}; join network {wants} from a new home (--home)",
        ledger.display()
    )]
    OtherNetwork {
        /// Its ledger.
        ledger: PathBuf,
        /// The network it keeps (short hash).
        has: String,
        /// The network asked for (short hash).
        wants: String,
    },
    /// `config.toml` is not TOML that can be edited.
    #[error("{}: cannot set {key}: {message}", path.display())]
    ConfigEdit {
        /// The file.
        path: PathBuf,
        /// The key.
        key: String,
        /// Why.
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
    /// Whether a network of its own was made (a new `genesis.toml`, the
    /// faucet on); false: an existing genesis kept.
    pub new_network: bool,
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

    /// `inputs/`: the modules and inputs this node's provider fetched to
    /// run, a cache bounded by `[provider] max_input_store_bytes`.
    pub fn inputs_dir(&self) -> PathBuf {
        self.root.join("inputs")
    }

    /// `api.token`, the HTTP API's bearer token ([`NodeHome::api_token`]).
    pub fn api_token_path(&self) -> PathBuf {
        self.root.join("api.token")
    }

    /// `api.addr`, the running node's HTTP API address
    /// (`http://127.0.0.1:7410`).
    pub fn api_addr_path(&self) -> PathBuf {
        self.root.join("api.addr")
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
        let (id, new_identity, new_config) = self.prepare()?;
        let genesis = self.genesis_path();
        let new_network = !genesis.exists();
        if new_network {
            write_atomic(&genesis, solo_genesis(id).to_toml().as_bytes())?;
            // A test network of its own: newcomers who join it may ask for
            // tokens. A config the owner already had is left as it is.
            if new_config {
                self.edit_config("ledger.faucet", |doc| {
                    doc["ledger"]["faucet"] = toml_edit::value(SOLO_FAUCET as i64);
                })?;
            }
        }
        Ok(InitReport {
            id,
            new_identity,
            new_config,
            new_network,
        })
    }

    /// Makes this home a member of the network `genesis` describes, joined
    /// through the peer at `bootstrap` (an address with `/p2p/<peer id>`):
    /// the home (created as by [`NodeHome::init`] if need be) gets that
    /// `genesis.toml`, the peer in `[network] bootstrap`, and no faucet (it
    /// holds no supply). Refused, changing nothing, when the home already
    /// keeps another network's ledger.
    pub fn join(&self, genesis: &Genesis, bootstrap: &str) -> Result<InitReport, HomeError> {
        let path = self.genesis_path();
        let ledger = self.ledger_path();
        if path.exists() && ledger.exists() {
            let has = self.genesis()?.hash();
            if has != genesis.hash() {
                return Err(HomeError::OtherNetwork {
                    ledger,
                    has: has.short(),
                    wants: genesis.hash().short(),
                });
            }
        }
        let (id, new_identity, new_config) = self.prepare()?;
        write_atomic(&path, genesis.to_toml().as_bytes())?;
        self.edit_config("network.bootstrap", |doc| {
            let mut list = doc["network"]["bootstrap"].as_array().cloned().unwrap_or_default();
            if !list.iter().any(|v| v.as_str() == Some(bootstrap)) {
                list.push(bootstrap);
            }
            doc["network"]["bootstrap"] = toml_edit::value(list);
            doc["ledger"]["faucet"] = toml_edit::value(0);
        })?;
        Ok(InitReport {
            id,
            new_identity,
            new_config,
            new_network: false,
        })
    }

    /// The directory (0700), `config.toml` and the identity key, each kept
    /// if it exists: (id, new identity, new config).
    fn prepare(&self) -> Result<(NodeId, bool, bool), HomeError> {
        fs::create_dir_all(&self.root).map_err(io(&self.root))?;
        fs::set_permissions(&self.root, fs::Permissions::from_mode(0o700)).map_err(io(&self.root))?;
        let config = self.config_path();
        let new_config = !config.exists();
        if new_config {
            fs::write(&config, default_file()).map_err(io(&config))?;
        }
        let new_identity = write_secret(&self.identity_path())?;
        Ok((self.identity()?.id(), new_identity, new_config))
    }

    /// Edits `config.toml` in place, keeping its comments and layout; the
    /// result must still load.
    pub fn edit_config(&self, key: &str, edit: impl FnOnce(&mut toml_edit::DocumentMut)) -> Result<(), HomeError> {
        let path = self.config_path();
        let failed = |message: String| HomeError::ConfigEdit {
            path: path.clone(),
            key: key.into(),
            message,
        };
        let text = fs::read_to_string(&path).map_err(io(&path))?;
        let mut doc: toml_edit::DocumentMut = text.parse().map_err(|e: toml_edit::TomlError| failed(e.to_string()))?;
        edit(&mut doc);
        let out = doc.to_string();
        toml::from_str::<NodeConfig>(&out).map_err(|e| failed(e.to_string()))?;
        write_atomic(&path, out.as_bytes())
    }

    /// The node's key.
    pub fn identity(&self) -> Result<NodeKey, HomeError> {
        let path = self.identity_path();
        match read_secret(&path) {
            Err(HomeError::Io { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => {
                Err(HomeError::NoIdentity(path))
            }
            seed => Ok(NodeKey::from_seed(seed?)),
        }
    }

    /// The HTTP API's bearer token (`api.token`, hex), made on first use
    /// and kept as the identity key is: readable by its owner only, and
    /// refused if others can read it.
    pub fn api_token(&self) -> Result<String, HomeError> {
        let path = self.api_token_path();
        write_secret(&path)?;
        Ok(hex::encode(read_secret(&path)?))
    }

    /// The configuration, with environment overrides applied.
    pub fn config(&self, env: impl IntoIterator<Item = (String, String)>) -> Result<NodeConfig, HomeError> {
        Ok(NodeConfig::load(&self.config_path(), env)?)
    }
}

/// Tokens the faucet of a network `init` made gives each newcomer.
pub const SOLO_FAUCET: u64 = 1_000_000_000;

/// Writes a new secret to `path`, 32 random bytes in hex, readable by its
/// owner only, unless a file is there (never replaced, even one that
/// appeared meanwhile): whether it was written.
fn write_secret(path: &Path) -> Result<bool, HomeError> {
    if path.exists() {
        return Ok(false);
    }
    let mut seed = [0u8; 32];
    getrandom::fill(&mut seed).map_err(|e| HomeError::Random(e.to_string()))?;
    let mut f = match fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
    {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => return Ok(false),
        Err(e) => return Err(io(path)(e)),
    };
    f.write_all(format!("{}\n", hex::encode(seed)).as_bytes())
        .map_err(io(path))?;
    f.sync_all().map_err(io(path))?;
    Ok(true)
}

/// The secret at `path` (64 hex digits), refused if group or others can
/// read it.
fn read_secret(path: &Path) -> Result<[u8; 32], HomeError> {
    let meta = fs::metadata(path).map_err(io(path))?;
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(HomeError::Exposed {
            path: path.to_path_buf(),
            mode,
        });
    }
    let text = fs::read_to_string(path).map_err(io(path))?;
    let mut seed = [0u8; 32];
    hex::decode_to_slice(text.trim(), &mut seed).map_err(|_| HomeError::BadSecret(path.to_path_buf()))?;
    Ok(seed)
}

/// Writes `bytes` to `path` through a temporary file and a rename, so a
/// crash leaves the old file or the new one, never half of one.
fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), HomeError> {
    let tmp = path.with_extension("tmp");
    let mut f = fs::File::create(&tmp).map_err(io(&tmp))?;
    f.write_all(bytes).map_err(io(&tmp))?;
    f.sync_all().map_err(io(&tmp))?;
    fs::rename(&tmp, path).map_err(io(path))
}

/// Tokens a new node's own network starts with, all its own.
pub const SOLO_SUPPLY: u128 = 1_000_000_000_000_000;

/// The genesis `init` writes: a network of one, where this node validates,
/// takes the fees and holds the supply.
pub fn solo_genesis(id: NodeId) -> Genesis {
    Genesis {
        validators: vec![id],
        params: Params::new(id, 100, Amount(1)),
        balances: vec![Allocation {
            account: id,
            amount: Amount(SOLO_SUPPLY),
        }],
        stakes: Vec::new(),
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
        assert!(!again.new_identity && !again.new_config && !again.new_network);
        assert_eq!(again.id, first.id, "init never replaces an identity");
        // A network of its own, whose faucet is on; the rest is the defaults.
        assert!(first.new_network);
        let mut expected = NodeConfig::default();
        expected.ledger.faucet = SOLO_FAUCET;
        assert_eq!(home.config([]).unwrap(), expected);
        let text = fs::read_to_string(home.config_path()).unwrap();
        assert!(text.contains("# Test networks: tokens given"), "comments kept:\n{text}");
    }

    #[test]
    fn join_takes_the_networks_genesis_and_bootstrap_and_never_a_second_ledger() {
        let dir = tempfile::tempdir().unwrap();
        let theirs = solo_genesis(NodeKey::from_seed([5; 32]).id());
        let peer = "/ip4/127.0.0.1/tcp/4001/p2p/12D3KooWDJCL6E64aPDDfzB7vnH7g6hH6asbxf7Tv7uyMWnpmbuf";
        let home = NodeHome::new(dir.path().join("b"));
        let r = home.join(&theirs, peer).unwrap();
        assert!(r.new_identity && r.new_config && !r.new_network);
        assert_eq!(home.genesis().unwrap(), theirs);
        let config = home.config([]).unwrap();
        assert_eq!(config.network.bootstrap, vec![peer.to_string()]);
        assert_eq!(config.ledger.faucet, 0, "a joined node holds no supply to give");
        // Joining again through the same peer changes nothing; a start keeps the genesis.
        home.join(&theirs, peer).unwrap();
        assert_eq!(home.config([]).unwrap().network.bootstrap.len(), 1);
        assert!(!home.init().unwrap().new_network);
        assert_eq!(home.genesis().unwrap(), theirs);

        // A home that keeps another network's ledger is refused, unchanged.
        let other = NodeHome::new(dir.path().join("a"));
        other.init().unwrap();
        fs::write(other.ledger_path(), b"").unwrap();
        let before = fs::read(other.config_path()).unwrap();
        let err = other.join(&theirs, peer).unwrap_err();
        assert!(matches!(err, HomeError::OtherNetwork { .. }), "{err}");
        assert_eq!(fs::read(other.config_path()).unwrap(), before);
        assert_ne!(other.genesis().unwrap(), theirs);
    }

    #[test]
    fn exposed_or_corrupt_keys_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let home = NodeHome::new(dir.path());
        home.init().unwrap();
        let key = home.identity_path();
        fs::set_permissions(&key, fs::Permissions::from_mode(0o644)).unwrap();
        let err = home.identity().unwrap_err();
        assert!(matches!(err, HomeError::Exposed { mode: 0o644, .. }), "{err}");
        fs::set_permissions(&key, fs::Permissions::from_mode(0o600)).unwrap();
        fs::write(&key, "not hex").unwrap();
        assert!(matches!(home.identity(), Err(HomeError::BadSecret(_))));
    }

    #[test]
    fn the_api_token_is_made_once_private_and_refused_when_exposed() {
        let dir = tempfile::tempdir().unwrap();
        let home = NodeHome::new(dir.path());
        home.init().unwrap();
        let token = home.api_token().unwrap();
        assert_eq!(token.len(), 64);
        assert_eq!(home.api_token().unwrap(), token, "kept, not made again");
        let path = home.api_token_path();
        assert_eq!(fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
        fs::set_permissions(&path, fs::Permissions::from_mode(0o640)).unwrap();
        assert!(matches!(home.api_token(), Err(HomeError::Exposed { mode: 0o640, .. })));
    }
}
