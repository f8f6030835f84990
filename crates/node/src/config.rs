//! The node's configuration: `config.toml` in the node home, every key
//! optional with a documented default, overridable by environment variables
//! `SHAREGRID_<SECTION>__<KEY>` (e.g. `SHAREGRID_SANDBOX__MAX_INPUT_BYTES`).
//! Unknown keys are errors, so a typo never silently does nothing.

use std::path::{Path, PathBuf};

use std::time::Duration;

use serde::{Deserialize, Serialize};
use sharegrid_net::{Multiaddr, NetConfig};
use sharegrid_sandbox::SandboxConfig;

use crate::provider::ProviderPolicy;

/// `[network]` in `config.toml`: how the node joins the network.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct NetworkSettings {
    /// Addresses to listen on (multiaddrs).
    pub listen: Vec<String>,
    /// When a listen port is taken, try the next ones, up to this many
    /// (0: refuse to start instead).
    pub port_fallback: u16,
    /// Peers to join through, each `/ip4/…/tcp/…/p2p/<peer id>`.
    pub bootstrap: Vec<String>,
    /// Find peers on the local network by mDNS.
    pub mdns: bool,
    /// A peer that stops answering is considered gone after this many seconds.
    pub departure_timeout_secs: u64,
    /// An idle connection is closed after this many seconds.
    pub idle_timeout_secs: u64,
    /// Inbound connections at once, at most (each peer at most two).
    pub max_inbound_connections: u32,
}

impl Default for NetworkSettings {
    fn default() -> Self {
        NetworkSettings {
            listen: vec!["/ip4/0.0.0.0/tcp/4001".into()],
            port_fallback: 16,
            bootstrap: Vec::new(),
            mdns: true,
            departure_timeout_secs: 20,
            idle_timeout_secs: 120,
            max_inbound_connections: 512,
        }
    }
}

impl NetworkSettings {
    /// The network configuration, or which setting is wrong.
    pub fn net_config(&self) -> Result<NetConfig, NetworkSettingsError> {
        let parse = |key: &str, list: &[String]| -> Result<Vec<Multiaddr>, NetworkSettingsError> {
            list.iter()
                .map(|a| {
                    a.parse::<Multiaddr>().map_err(|e| NetworkSettingsError {
                        key: key.into(),
                        message: format!("{a:?} is not a multiaddr ({e})"),
                    })
                })
                .collect()
        };
        if self.departure_timeout_secs < 2 {
            return Err(NetworkSettingsError {
                key: "departure_timeout_secs".into(),
                message: "must be at least 2".into(),
            });
        }
        Ok(NetConfig {
            listen: parse("listen", &self.listen)?,
            bootstrap: parse("bootstrap", &self.bootstrap)?,
            mdns: self.mdns,
            port_fallback: self.port_fallback,
            idle_timeout: Duration::from_secs(self.idle_timeout_secs),
            departure_timeout: Duration::from_secs(self.departure_timeout_secs),
            max_inbound: self.max_inbound_connections,
            ..NetConfig::default()
        })
    }
}

/// A `[network]` setting that cannot be used.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("[network] {key}: {message}")]
pub struct NetworkSettingsError {
    /// The key.
    pub key: String,
    /// What is wrong with it.
    pub message: String,
}

/// `[ledger]` in `config.toml`: how this node keeps the ledger.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LedgerSettings {
    /// Validator: time between blocks, in milliseconds: a block when
    /// transactions wait, and an empty one while anything waits on a height
    /// (escrows, held claims, disputes, unbonding), so heights advance at
    /// one per interval whatever the traffic.
    pub block_interval_ms: u64,
    /// Provider and requestor: how often, in seconds, the payment task looks
    /// for pay to claim or collect, claims to dispute and escrows to close.
    pub idle_block_secs: u64,
    /// Requestor: blocks after a job's escrow opens before its providers
    /// may claim their pay themselves (the requestor settles before).
    pub claim_after_blocks: u64,
    /// Requestor: blocks after that before anyone may close the escrow,
    /// refunding what is left.
    pub close_after_blocks: u64,
    /// Requestor: accepted tasks paid per settlement transaction.
    pub settle_batch: usize,
    /// Follower: seconds a peer may take to answer a sync request before
    /// another peer is asked.
    pub sync_timeout_secs: u64,
    /// Test networks: tokens this node gives, from its own account, to an
    /// account that asks (`sharegrid faucet`) and holds less; 0: none.
    /// `sharegrid init` turns it on for the network a home makes itself.
    pub faucet: u64,
    /// Validator of a network with several validators: the address its
    /// consensus (commonware Simplex over commonware's authenticated p2p)
    /// listens on, a port of its own beside the node's libp2p port.
    pub consensus_listen: Option<std::net::SocketAddr>,
    /// Validator: every validator's consensus address, as
    /// `"<node id>@<ip>:<port>"`.
    pub consensus_peers: Vec<String>,
    /// Validator: milliseconds to wait for a leader's proposal before
    /// voting to skip it.
    pub leader_timeout_ms: u64,
}

impl Default for LedgerSettings {
    fn default() -> Self {
        LedgerSettings {
            block_interval_ms: 1000,
            idle_block_secs: 10,
            claim_after_blocks: 86_400,
            close_after_blocks: 86_400,
            settle_batch: 500,
            sync_timeout_secs: 15,
            faucet: 0,
            consensus_listen: None,
            consensus_peers: Vec::new(),
            leader_timeout_ms: 1000,
        }
    }
}

/// Settings of the sandbox that runs tasks on this node.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SandboxSettings {
    /// Bound on the compiled-module disk cache, in bytes.
    pub cache_max_bytes: u64,
    /// Compiled modules kept in memory.
    pub memory_cache_modules: usize,
    /// Largest total of input files plus stdin a task may bring, in bytes.
    pub max_input_bytes: u64,
    /// Most input files a task may bring.
    pub max_input_files: usize,
    /// Largest total size of a task's arguments, in bytes.
    pub max_args_bytes: usize,
    /// Largest module compiled, in bytes.
    pub max_module_bytes: usize,
}

impl Default for SandboxSettings {
    fn default() -> Self {
        let d = SandboxConfig::default();
        SandboxSettings {
            cache_max_bytes: d.cache_max_bytes,
            memory_cache_modules: d.memory_cache_modules,
            max_input_bytes: d.max_input_bytes,
            max_input_files: d.max_input_files,
            max_args_bytes: d.max_args_bytes,
            max_module_bytes: d.max_module_bytes,
        }
    }
}

impl SandboxSettings {
    /// The sandbox configuration, with its module cache in `cache_dir`.
    pub fn sandbox_config(&self, cache_dir: Option<PathBuf>) -> SandboxConfig {
        SandboxConfig {
            cache_dir,
            cache_max_bytes: self.cache_max_bytes,
            memory_cache_modules: self.memory_cache_modules,
            max_input_bytes: self.max_input_bytes,
            max_input_files: self.max_input_files,
            max_args_bytes: self.max_args_bytes,
            max_module_bytes: self.max_module_bytes,
            ..SandboxConfig::default()
        }
    }
}

/// `[api]` in `config.toml`: the HTTP API and metrics ([`crate::http`]).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ApiSettings {
    /// Address to serve on. Loopback by default; any other address needs
    /// `remote = true`.
    pub listen: std::net::SocketAddr,
    /// When the port is taken (another node on this machine), try the next
    /// ones, up to this many, then any free port (0: refuse to start
    /// instead).
    pub port_fallback: u16,
    /// Allow an address other than loopback (every request still needs the
    /// token in the home's `api.token`).
    pub remote: bool,
}

impl Default for ApiSettings {
    fn default() -> Self {
        ApiSettings {
            listen: std::net::SocketAddr::from(([127, 0, 0, 1], 7410)),
            port_fallback: 16,
            remote: false,
        }
    }
}

/// Everything in `config.toml`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct NodeConfig {
    /// `[sandbox]`.
    pub sandbox: SandboxSettings,
    /// `[provider]`.
    pub provider: ProviderPolicy,
    /// `[network]`.
    pub network: NetworkSettings,
    /// `[ledger]`.
    pub ledger: LedgerSettings,
    /// `[api]`.
    pub api: ApiSettings,
}

/// Why the configuration could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("{}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        source: std::io::Error,
    },
    /// The file (or an override) is not valid configuration.
    #[error("{}: {message}", path.display())]
    Invalid {
        /// The file.
        path: PathBuf,
        /// The parser's explanation, naming the line and key.
        message: String,
    },
    /// An environment override is malformed.
    #[error("environment variable {var}: {message}")]
    BadOverride {
        /// The variable.
        var: String,
        /// What is wrong with it.
        message: String,
    },
}

/// The file written by `sharegrid init`: every default, with its meaning.
pub(crate) fn default_file() -> String {
    let d = SandboxSettings::default();
    format!(
        "# sharegrid node configuration.\n\
         # Every key is optional; the values shown are the defaults. Any key can be\n\
         # overridden by an environment variable SHAREGRID_<SECTION>__<KEY>,\n\
         # e.g. SHAREGRID_SANDBOX__MAX_INPUT_BYTES=2147483648.\n\
         \n\
         [sandbox]\n\
         # Bound on the disk cache of compiled modules (cache/), in bytes.\n\
         cache_max_bytes = {}\n\
         # Compiled modules kept in memory.\n\
         memory_cache_modules = {}\n\
         # Largest total of input files plus stdin a task may bring, in bytes.\n\
         max_input_bytes = {}\n\
         # Most input files a task may bring.\n\
         max_input_files = {}\n\
         # Largest total size of a task's arguments, in bytes.\n\
         max_args_bytes = {}\n\
         # Largest module compiled, in bytes.\n\
         max_module_bytes = {}\n\
         \n\
         [provider]\n\
         # Provide compute to the network (the provider agent arrives with the network).\n\
         enabled = false\n\
         # Tasks at once; 0 = as many as the CPU share allows (one per core given).\n\
         slots = 0\n\
         # Most memory one task may hold, in bytes: its memory limit plus its\n\
         # output limit (outputs stay in memory until the task ends).\n\
         memory_per_task = {}\n\
         # Most fuel one task may be given (about 15 minutes of a fast core).\n\
         max_fuel_per_task = 10000000000000\n\
         # Longest timeout one task may ask for, in seconds.\n\
         max_timeout_secs = 3600\n\
         # Bytes the store of fetched inputs (inputs/) may hold; past it the\n\
         # least recently used go, never those of a running task.\n\
         max_input_store_bytes = 10737418240\n\
         # Lowest price accepted, in token units per gigafuel (a decimal string).\n\
         price_floor = \"0\"\n\
         # Work for others only against an escrow on the ledger that holds what\n\
         # the run may cost (checked before fetching anything, and at every\n\
         # block while it runs). This node's own tasks are exempt.\n\
         require_escrow = true\n\
         # Share of this machine's cores given to tasks, in percent.\n\
         cpu_share_percent = 100\n\
         # Local-time windows in which new work is accepted, e.g. [\"22:00-07:00\"]; empty = always.\n\
         active_hours = []\n\
         # Accept new work only while the machine is otherwise idle...\n\
         idle_only = false\n\
         # ...that is, while other programs use at most this much CPU, in percent.\n\
         idle_threshold_percent = 25\n\
         # Determinism modes accepted.\n\
         modes = [\"native\", \"portable\"]\n\
         # Seconds between re-publications of this provider's offer (it is also\n\
         # re-published when free slots change); an offer lives three intervals.\n\
         offer_interval_secs = 30\n\
         # Seconds a task's outputs stay available for the requestor to fetch.\n\
         output_retention_secs = 3600\n\
         # On shutdown, seconds to let running tasks finish before refusing them.\n\
         shutdown_grace_secs = 60\n\
         \n\
         [network]\n\
         # Addresses to listen on.\n\
         listen = [\"/ip4/0.0.0.0/tcp/4001\"]\n\
         # If a listen port is taken (another node on this machine), take the\n\
         # next free one, trying up to this many; 0 refuses to start instead.\n\
         port_fallback = 16\n\
         # Peers to join through, e.g. [\"/ip4/192.0.2.7/tcp/4001/p2p/12D3KooW...\"].\n\
         bootstrap = []\n\
         # Find peers on the local network by mDNS.\n\
         mdns = true\n\
         # A peer that stops answering is considered gone after this many seconds.\n\
         departure_timeout_secs = 20\n\
         # An idle connection is closed after this many seconds.\n\
         idle_timeout_secs = 120\n\
         # Inbound connections at once, at most (each peer at most two).\n\
         max_inbound_connections = 512\n\
         \n\
         [ledger]\n\
         # The network is the one genesis.toml (beside this file) describes.\n\
         # Validator: milliseconds between blocks: a block when transactions\n\
         # wait, an empty one while escrows, claims, disputes or unbonding\n\
         # stake wait on a height (heights advance at one per interval).\n\
         block_interval_ms = 1000\n\
         # How often, in seconds, the payment task looks for pay to claim or\n\
         # collect, claims to dispute and escrows to close.\n\
         idle_block_secs = 10\n\
         # Requestor: blocks after a job's escrow opens before its providers may\n\
         # claim their pay themselves; the requestor settles before then.\n\
         claim_after_blocks = 86400\n\
         # Requestor: blocks after that before anyone may close the escrow.\n\
         close_after_blocks = 86400\n\
         # Requestor: accepted tasks paid per settlement transaction.\n\
         settle_batch = 500\n\
         # Follower: seconds a peer may take to answer a sync request before\n\
         # another peer is asked.\n\
         sync_timeout_secs = 15\n\
         # Test networks: tokens given from this node's account to an account\n\
         # that asks (`sharegrid faucet`) and holds less; 0 gives none.\n\
         faucet = 0\n\
         \n\
         [api]\n\
         # The HTTP API and Prometheus metrics (/metrics). Every request needs\n\
         # the token in api.token (beside this file); the address in use is in\n\
         # api.addr while the node runs.\n\
         listen = \"127.0.0.1:7410\"\n\
         # If the port is taken (another node on this machine), try the next\n\
         # ones, this many, then any free one; 0: refuse to start instead.\n\
         port_fallback = 16\n\
         # Serve on an address other than loopback.\n\
         remote = false\n",
        d.cache_max_bytes,
        d.memory_cache_modules,
        d.max_input_bytes,
        d.max_input_files,
        d.max_args_bytes,
        d.max_module_bytes,
        ProviderPolicy::default().memory_per_task
    )
}

impl NodeConfig {
    /// Loads `path` (defaults if it does not exist), then applies overrides
    /// from `env` (pairs of variable name and value; pass `std::env::vars()`).
    pub fn load(path: &Path, env: impl IntoIterator<Item = (String, String)>) -> Result<Self, ConfigError> {
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
            Err(source) => {
                return Err(ConfigError::Read {
                    path: path.into(),
                    source,
                });
            }
        };
        let invalid = |message: String| ConfigError::Invalid {
            path: path.into(),
            message,
        };
        let mut table: toml::Table = toml::from_str(&text).map_err(|e| invalid(e.to_string()))?;
        for (var, value) in env {
            let Some(rest) = var.strip_prefix("SHAREGRID_") else {
                continue;
            };
            let Some((section, key)) = rest.split_once("__") else {
                continue;
            };
            let (section, key) = (section.to_ascii_lowercase(), key.to_ascii_lowercase());
            // A value is TOML if it parses as one (numbers, booleans,
            // arrays), else a plain string.
            let parsed = toml::from_str::<toml::Table>(&format!("v = {value}"))
                .ok()
                .and_then(|mut t| t.remove("v"))
                .unwrap_or(toml::Value::String(value));
            let entry = table
                .entry(section.clone())
                .or_insert_with(|| toml::Value::Table(Default::default()));
            let toml::Value::Table(t) = entry else {
                return Err(ConfigError::BadOverride {
                    var,
                    message: format!("[{section}] is not a section"),
                });
            };
            t.insert(key, parsed);
        }
        NodeConfig::deserialize(toml::Value::Table(table)).map_err(|e| invalid(e.to_string()))
    }

    /// The configuration as TOML, for `sharegrid config show`.
    pub fn to_toml(&self) -> String {
        toml::to_string(self).unwrap_or_else(|e| format!("# cannot render the configuration: {e}\n"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_file_round_trips_and_overrides_apply() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.toml");
        std::fs::write(&path, default_file()).unwrap();
        assert_eq!(NodeConfig::load(&path, []).unwrap(), NodeConfig::default());
        let env = [("SHAREGRID_SANDBOX__MAX_INPUT_FILES".to_string(), "7".to_string())];
        assert_eq!(NodeConfig::load(&path, env).unwrap().sandbox.max_input_files, 7);
        // Missing file: defaults.
        assert_eq!(
            NodeConfig::load(&dir.path().join("none.toml"), []).unwrap(),
            NodeConfig::default()
        );
    }

    #[test]
    fn mistakes_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.toml");
        std::fs::write(&path, "[sandbox]\nmax_input_byts = 5\n").unwrap();
        let err = NodeConfig::load(&path, []).unwrap_err().to_string();
        assert!(err.contains("config.toml") && err.contains("max_input_byts"), "{err}");
        std::fs::write(&path, "[sandbox]\nmax_input_bytes = \"lots\"\n").unwrap();
        let err = NodeConfig::load(&path, []).unwrap_err().to_string();
        assert!(err.contains("max_input_bytes"), "{err}");
        std::fs::write(&path, "[sandbox\n").unwrap();
        assert!(NodeConfig::load(&path, []).is_err());
        let env = [("SHAREGRID_SANDBOX__MAX_INPUT_FILES".to_string(), "-1".to_string())];
        std::fs::write(&path, "").unwrap();
        assert!(NodeConfig::load(&path, env).is_err());
    }
}
