//! Starting one validator: the Simplex engine, the application, and the
//! task that carries the blocks channel, on any commonware runtime.

use std::num::{NonZeroU16, NonZeroUsize};
use std::sync::Arc;
use std::time::{Duration, UNIX_EPOCH};

use commonware_consensus::simplex::config::{Config, Floor, ForwardPolicy, SkipBudget, SkipPolicy};
use commonware_consensus::simplex::{Engine, elector::RoundRobin};
use commonware_consensus::types::{Epoch, ViewDelta};
use commonware_consensus::{Epochable as _, Viewable as _};
use commonware_cryptography::Sha256;
use commonware_p2p::{Blocker, Receiver, Sender};
use commonware_parallel::Sequential;
use commonware_runtime::buffer::paged::CacheRef;
use commonware_runtime::{Clock, Handle, Metrics, Spawner, Storage, Supervisor};
use commonware_utils::NonZeroDuration;
use rand_core::CryptoRng;
use sharegrid_core::{ContentId, NodeId, NodeKey};
use sharegrid_ledger::consensus::{PublicKey, decode_finalization, digest};

use crate::app::{App, Pace};
use crate::host::Host;

/// One validator's settings.
#[derive(Clone, Debug)]
pub struct EngineConfig {
    /// The network (genesis hash): votes sign a namespace bound to it.
    pub chain: ContentId,
    /// The genesis's validators.
    pub validators: Vec<NodeId>,
    /// This validator's key (one of `validators`).
    pub key: Arc<NodeKey>,
    /// Where the engine keeps its journal in the runtime's storage.
    pub partition: String,
    /// How long to wait for a leader's proposal before voting to skip it.
    pub leader_timeout: Duration,
    /// At least this long between a block and its parent.
    pub min_block_ms: u64,
    /// An empty block is proposed this long after its parent when nothing
    /// waits (heights advance while nothing happens).
    pub idle_block_ms: u64,
}

impl EngineConfig {
    /// Defaults for a network of `validators`, with this validator's `key`.
    pub fn new(chain: ContentId, validators: Vec<NodeId>, key: Arc<NodeKey>) -> EngineConfig {
        EngineConfig {
            partition: format!("sharegrid-{}", key.id().short()),
            chain,
            validators,
            key,
            leader_timeout: Duration::from_secs(1),
            min_block_ms: 50,
            idle_block_ms: 1_000,
        }
    }
}

/// A started validator: its application (to inspect) and the handles of
/// its tasks, the engine's first (aborting them all is a crash).
pub type Started<H, S> = (App<H, S>, Vec<Handle<()>>);

/// The four channels a validator talks on: the engine's votes,
/// certificates and resolver, and blocks.
#[derive(Debug)]
pub struct Channels<S, R> {
    /// Votes.
    pub votes: (S, R),
    /// Certificates.
    pub certificates: (S, R),
    /// The engine's fetching of missing certificates.
    pub resolver: (S, R),
    /// Blocks, and asks for them.
    pub blocks: (S, R),
}

/// Starts a validator on `context`: restores from the host's finalized head
/// (and the engine's journal in `cfg.partition`), then proposes, votes and
/// commits until the runtime stops. Returns the application (to inspect)
/// and the handles of its tasks (the engine's first): aborting them all is
/// a crash.
pub fn start<E, H, B, S, R>(
    context: E,
    cfg: EngineConfig,
    host: Arc<H>,
    blocker: B,
    channels: Channels<S, R>,
) -> Result<Started<H, S>, String>
where
    E: Clock + CryptoRng + Spawner + Storage + Metrics + Supervisor,
    H: Host,
    B: Blocker<PublicKey = PublicKey>,
    S: Sender<PublicKey = PublicKey>,
    R: Receiver<PublicKey = PublicKey>,
{
    let scheme = crate::signer(&cfg.chain, &cfg.validators, &cfg.key)?
        .ok_or_else(|| format!("{} is not one of the network's validators", cfg.key.id().short()))?;
    let epoch = Epoch::zero();
    let floor = match host.last_certificate() {
        Some(bytes) => {
            let f = decode_finalization(&bytes)?;
            if f.epoch() != epoch || f.view().get() == 0 {
                return Err("the stored finalization certificate is of another epoch".into());
            }
            Floor::Finalized(f)
        }
        None => Floor::Genesis(digest(&cfg.chain)),
    };
    let clock_ctx = context.child("clock");
    let clock: Arc<dyn Fn() -> u64 + Send + Sync> = Arc::new(move || {
        clock_ctx
            .current()
            .duration_since(UNIX_EPOCH)
            .unwrap_or(Duration::ZERO)
            .as_millis()
            .try_into()
            .unwrap_or(u64::MAX)
    });
    let pace = Pace {
        min_block_ms: cfg.min_block_ms,
        idle_block_ms: cfg.idle_block_ms,
    };
    let (block_sender, mut block_receiver) = channels.blocks;
    let app = App::new(host, cfg.key.clone(), cfg.validators.clone(), pace, clock, block_sender);
    let leader_timeout = cfg.leader_timeout.max(Duration::from_millis(10));
    let nz = |n: usize| NonZeroUsize::new(n).unwrap_or(NonZeroUsize::MIN);
    let config = Config {
        scheme,
        elector: RoundRobin::<Sha256>::default(),
        blocker,
        automaton: app.clone(),
        relay: app.clone(),
        reporter: app.clone(),
        track_historical_votes: false,
        strategy: Sequential,
        partition: cfg.partition.clone(),
        mailbox_size: nz(1024),
        epoch,
        floor,
        replay_buffer: nz(1 << 20),
        write_buffer: nz(1 << 20),
        page_cache: CacheRef::new(NonZeroU16::new(16_384).unwrap_or(NonZeroU16::MIN), nz(1_000)),
        leader_timeout,
        certification_timeout: leader_timeout * 2,
        timeout_retry: leader_timeout * 5,
        view_retention: ViewDelta::new(10),
        skip: SkipPolicy::Enabled {
            timeout: leader_timeout * 10,
            budget: SkipBudget::Participants,
        },
        fetch_timeout: NonZeroDuration::new(leader_timeout)
            .unwrap_or(NonZeroDuration::new_panic(Duration::from_secs(1))),
        fetch_retry_delay: Duration::from_millis(100),
        forward: ForwardPolicy::Disabled,
    };
    let engine = Engine::new(context.child("engine"), config);

    let receiving = app.clone();
    let blocks = context.child("blocks").spawn(move |_| async move {
        while let Ok((from, bytes)) = block_receiver.recv().await {
            receiving.on_message(from, bytes.as_ref());
        }
    });
    let ticking = app.clone();
    let tick = context.child("tick").spawn(move |ctx| async move {
        loop {
            ctx.sleep(Duration::from_millis(10)).await;
            ticking.tick();
        }
    });
    let handle = engine.start(channels.votes, channels.certificates, channels.resolver);
    Ok((app, vec![handle, blocks, tick]))
}
