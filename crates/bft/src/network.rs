//! A validator in a real process: commonware's tokio runtime and its
//! authenticated p2p (`lookup`: every validator's address is known) on a
//! port of its own, beside the node's libp2p swarm.
//!
//! Why not the node's libp2p swarm: the validator set is small and fixed by
//! the genesis, and commonware's p2p admits exactly that set (peers prove
//! their keys in the handshake; anyone else is never connected), limits
//! each channel per peer, and is what the engine and its deterministic
//! simulator are built and tested against. Carrying votes over our swarm
//! would mean re-implementing its channel semantics (recipients, priority,
//! blocking a peer) over gossipsub and request-response, beside untrusted
//! providers' traffic. The cost is one more port for each validator.

use std::net::SocketAddr;
use std::num::NonZeroUsize;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use commonware_cryptography::ChaCha20Poly1305;
use commonware_p2p::authenticated::lookup;
use commonware_p2p::{Address, AddressableManager as _};
use commonware_runtime::{Runner as _, Supervisor as _, tokio};
use commonware_stream::cups::{self, Cups};
use commonware_stream::sake::{self, Sake};
use commonware_utils::ordered::Map;
use sharegrid_core::NodeId;
use sharegrid_ledger::consensus::{PublicKey, public_key};

use crate::app::MAX_ANSWER_BYTES;
use crate::{
    CHANNEL_BLOCKS, CHANNEL_CERTIFICATES, CHANNEL_RESOLVER, CHANNEL_VOTES, Channels, EngineConfig, Host, quota,
};

/// Where a validator listens and finds the others.
#[derive(Clone, Debug)]
pub struct NetworkConfig {
    /// The address this validator's consensus listens on.
    pub listen: SocketAddr,
    /// Every validator's consensus address (this one's included or not).
    pub peers: Vec<(NodeId, SocketAddr)>,
    /// Where the engine keeps its journal.
    pub storage: PathBuf,
    /// Worker threads of the runtime.
    pub threads: usize,
}

/// Runs a validator until `stop` resolves (or is dropped), on this thread.
/// `started` hears once the network listens (or why it could not start).
pub fn run<H: Host>(
    cfg: EngineConfig,
    net: NetworkConfig,
    host: Arc<H>,
    stop: futures::channel::oneshot::Receiver<()>,
    started: std::sync::mpsc::SyncSender<Result<(), String>>,
) {
    let runtime = tokio::Config::new()
        .with_storage_directory(net.storage.clone())
        .with_worker_threads(net.threads.max(1))
        .with_catch_panics(true);
    tokio::Runner::new(runtime).start(|context| async move {
        let mut peers = Vec::new();
        for (id, addr) in &net.peers {
            match public_key(id) {
                Some(pk) => peers.push((pk, Address::from(*addr))),
                None => {
                    let _ = started.send(Err(format!("validator {} is not an ed25519 key", id.short())));
                    return;
                }
            }
        }
        let me = crate::private_key(&cfg.key);
        let namespace = {
            let mut ns = sharegrid_ledger::consensus::namespace(&cfg.chain);
            ns.extend_from_slice(b"/p2p");
            ns
        };
        let handshake = Cups::<_, ChaCha20Poly1305>::new(
            Sake {
                signer: me,
                synchrony_bound: Duration::from_secs(5),
                max_handshake_age: Duration::from_secs(10),
                version: sake::Version::V1,
            },
            cups::Version::V1,
        );
        let n = NonZeroUsize::new(peers.len() + 1).unwrap_or(NonZeroUsize::MIN);
        let max_message = u32::try_from(MAX_ANSWER_BYTES + (1 << 20)).unwrap_or(u32::MAX);
        let p2p = lookup::Config::local(
            handshake,
            &namespace,
            net.listen,
            n,
            max_message,
            NonZeroUsize::new(4096).unwrap_or(NonZeroUsize::MIN),
        );
        let (mut network, mut oracle) = lookup::Network::new(context.child("network"), p2p);
        let Ok(map) = Map::<PublicKey, Address>::try_from(peers) else {
            let _ = started.send(Err("the validators' consensus addresses name a validator twice".into()));
            return;
        };
        let _ = oracle.track(0, map);
        let channels = Channels {
            votes: network.register(CHANNEL_VOTES, quota(CHANNEL_VOTES)),
            certificates: network.register(CHANNEL_CERTIFICATES, quota(CHANNEL_CERTIFICATES)),
            resolver: network.register(CHANNEL_RESOLVER, quota(CHANNEL_RESOLVER)),
            blocks: network.register(CHANNEL_BLOCKS, quota(CHANNEL_BLOCKS)),
        };
        network.start();
        match crate::start(context.child("validator"), cfg, host, oracle, channels) {
            Ok(_) => {
                let _ = started.send(Ok(()));
                let _ = stop.await;
            }
            Err(e) => {
                let _ = started.send(Err(e));
            }
        }
    });
}
