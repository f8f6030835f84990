//! Deterministic simulations of validators ordering the ledger with Simplex:
//! commonware's deterministic runtime and simulated network, the real
//! engine, the real ledger `Chain` and `State`, hosts that keep their
//! "disk" in memory. Each test is seeded and replays exactly (a failing
//! seed reruns with `SHAREGRID_BFT_SEED`).
//!
//! Safety, checked after every scenario: no two validators ever finalize
//! different blocks at one height, and the same height has the same state
//! root everywhere (supply exact). Liveness: every transfer a validator
//! acknowledged is finalized once the network heals.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::Duration;

use commonware_consensus::simplex::mocks::conflicter;
use commonware_cryptography::Blake3;
use commonware_p2p::simulated::{self, Link, Network, Oracle};
use commonware_runtime::{Clock as _, Handle, Runner as _, Supervisor as _, deterministic};
use commonware_utils::Probability;
use sharegrid_bft::{Channels, EngineConfig, Host as _, MemoryHost, PublicKey, start};
use sharegrid_core::{Amount, ContentId, NodeKey, Signed};
use sharegrid_ledger::consensus::check_evidence;
use sharegrid_ledger::{Allocation, Genesis, Op, Params, TX_VERSION, Tx};

const CLIENTS: u8 = 4;
const STAKE: u128 = 1_000_000;

fn validator_key(i: usize) -> Arc<NodeKey> {
    Arc::new(NodeKey::from_seed([u8::try_from(i).unwrap() + 1; 32]))
}

fn client_key(i: u8) -> NodeKey {
    NodeKey::from_seed([200 + i; 32])
}

fn genesis(n: usize) -> Genesis {
    Genesis {
        validators: (0..n).map(|i| validator_key(i).id()).collect(),
        params: Params::new(NodeKey::from_seed([250; 32]).id(), 250, Amount(1)),
        balances: (0..CLIENTS)
            .map(|i| Allocation {
                account: client_key(i).id(),
                amount: Amount(1_000_000_000),
            })
            // Validators pay the fees of the evidence they report.
            .chain((0..n).map(|i| Allocation {
                account: validator_key(i).id(),
                amount: Amount(1_000),
            }))
            .collect(),
        stakes: (0..n)
            .map(|i| Allocation {
                account: validator_key(i).id(),
                amount: Amount(STAKE),
            })
            .collect(),
    }
}

/// `op` as `key`'s transaction number `nonce` on network `chain`.
fn signed(chain: ContentId, key: &NodeKey, nonce: u64, op: Op) -> Signed {
    let tx = Tx {
        version: TX_VERSION,
        chain,
        signer: key.id(),
        nonce,
        fee: Amount(1),
        expires_at_height: 1_000_000,
        op,
    };
    Signed::sign(key, &tx).unwrap()
}

fn transfer(chain: ContentId, from: u8, nonce: u64, amount: u128) -> Signed {
    let to = client_key((from + 1) % CLIENTS).id();
    signed(
        chain,
        &client_key(from),
        nonce,
        Op::Transfer {
            to,
            amount: Amount(amount),
        },
    )
}

fn seeds() -> Vec<u64> {
    match std::env::var("SHAREGRID_BFT_SEED") {
        Ok(s) => vec![s.parse().expect("SHAREGRID_BFT_SEED is a number")],
        Err(_) => vec![1, 2],
    }
}

fn link(latency_ms: u64, jitter_ms: u64, success: Probability) -> Link {
    Link {
        latency: Duration::from_millis(latency_ms),
        jitter: Duration::from_millis(jitter_ms),
        success_rate: success,
    }
}

/// A simulated network of validators.
struct Sim {
    context: deterministic::Context,
    oracle: Oracle<PublicKey, deterministic::Context>,
    genesis: Genesis,
    keys: Vec<Arc<NodeKey>>,
    pks: Vec<PublicKey>,
    hosts: Vec<MemoryHost>,
    handles: Vec<Vec<Handle<()>>>,
    /// Transfers acknowledged (added to a validator's pool).
    acknowledged: Vec<ContentId>,
    next_nonce: [u64; CLIENTS as usize],
    restarts: usize,
}

impl Sim {
    async fn new(context: deterministic::Context, n: usize, byzantine: Option<usize>) -> Sim {
        let genesis = genesis(n);
        let keys: Vec<_> = (0..n).map(validator_key).collect();
        let pks: Vec<PublicKey> = keys
            .iter()
            .map(|k| sharegrid_bft::public_key(&k.id()).unwrap())
            .collect();
        let (network, oracle) = Network::new_with_peers(
            context.child("network"),
            simulated::Config {
                max_size: 16 << 20,
                max_peers_per_set: std::num::NonZeroUsize::new(n + 1).unwrap(),
                disconnect_on_block: true,
                tracked_peer_sets: std::num::NonZeroUsize::new(1).unwrap(),
            },
            pks.clone(),
        )
        .await;
        network.start();
        let hosts: Vec<_> = (0..n).map(|_| MemoryHost::new(&genesis).unwrap()).collect();
        let mut sim = Sim {
            context,
            oracle,
            genesis,
            keys,
            pks,
            hosts,
            handles: Vec::new(),
            acknowledged: Vec::new(),
            next_nonce: [0; CLIENTS as usize],
            restarts: 0,
        };
        sim.link_all(link(20, 5, Probability::from_f64(1.0).unwrap()), |_, _| true)
            .await;
        for i in 0..n {
            let handles = if byzantine == Some(i) {
                sim.start_conflicter(i).await
            } else {
                sim.start_validator(i).await
            };
            sim.handles.push(handles);
        }
        sim
    }

    fn chain(&self) -> ContentId {
        self.genesis.hash()
    }

    async fn channels(
        &self,
        i: usize,
    ) -> Channels<simulated::Sender<PublicKey, deterministic::Context>, simulated::Receiver<PublicKey>> {
        let control = self.oracle.control(self.pks[i].clone());
        // The quotas validators run with.
        let register = |c| control.register(c, sharegrid_bft::quota(c));
        Channels {
            votes: register(sharegrid_bft::CHANNEL_VOTES).await.unwrap(),
            certificates: register(sharegrid_bft::CHANNEL_CERTIFICATES).await.unwrap(),
            resolver: register(sharegrid_bft::CHANNEL_RESOLVER).await.unwrap(),
            blocks: register(sharegrid_bft::CHANNEL_BLOCKS).await.unwrap(),
        }
    }

    async fn start_validator(&mut self, i: usize) -> Vec<Handle<()>> {
        let channels = self.channels(i).await;
        let mut cfg = EngineConfig::new(self.chain(), self.genesis.validators.clone(), self.keys[i].clone());
        cfg.leader_timeout = Duration::from_millis(500);
        cfg.min_block_ms = 20;
        cfg.idle_block_ms = 200;
        let context = self
            .context
            .child("validator")
            .with_attribute("index", i)
            .with_attribute("restart", self.restarts);
        let blocker = self.oracle.control(self.pks[i].clone());
        let (_app, handles) = start(context, cfg, Arc::new(self.hosts[i].clone()), blocker, channels).unwrap();
        handles
    }

    /// A Byzantine validator: for every vote it sees, it signs a
    /// conflicting one for a made-up block and the real one too.
    async fn start_conflicter(&mut self, i: usize) -> Vec<Handle<()>> {
        let channels = self.channels(i).await;
        let scheme = sharegrid_bft::signer(&self.chain(), &self.genesis.validators, &self.keys[i])
            .unwrap()
            .unwrap();
        let c =
            conflicter::Conflicter::<_, _, Blake3>::new(self.context.child("byzantine"), conflicter::Config { scheme });
        vec![c.start(channels.votes)]
    }

    async fn link_all(&mut self, l: Link, allowed: impl Fn(usize, usize) -> bool) {
        for a in 0..self.pks.len() {
            for b in 0..self.pks.len() {
                if a == b {
                    continue;
                }
                let _ = self.oracle.remove_link(self.pks[a].clone(), self.pks[b].clone()).await;
                if allowed(a, b) {
                    self.oracle
                        .add_link(self.pks[a].clone(), self.pks[b].clone(), l.clone())
                        .await
                        .unwrap();
                }
            }
        }
    }

    /// Submits `count` transfers from all clients, spread over the
    /// validators in `to`.
    fn submit(&mut self, count: usize, to: &[usize]) {
        let clients: Vec<u8> = (0..CLIENTS).collect();
        self.submit_as(&clients, count, to);
    }

    /// Submits `count` transfers from `clients`, client `c` to validator
    /// `to[c % to.len()]`.
    fn submit_as(&mut self, clients: &[u8], count: usize, to: &[usize]) {
        for k in 0..count {
            let from = clients[k % clients.len()];
            let nonce = self.next_nonce[usize::from(from)];
            let tx = transfer(self.chain(), from, nonce, 1 + k as u128);
            // A client sends to one validator, which acknowledges only what
            // applies after what it already holds (a nonce after one it has
            // not seen is refused); the others learn of it from its blocks.
            if let Ok(id) = self.hosts[to[usize::from(from) % to.len()]].submit(tx) {
                self.next_nonce[usize::from(from)] += 1;
                self.acknowledged.push(id);
            }
        }
    }

    fn height(&self, i: usize) -> u64 {
        self.hosts[i].finalized().height()
    }

    /// Waits (in simulated time) until `done` holds, or panics after
    /// `limit`.
    async fn until(&self, what: &str, limit: Duration, done: impl Fn(&Sim) -> bool) {
        let start = self.context.current();
        while !done(self) {
            let waited = self.context.current().duration_since(start).unwrap_or_default();
            assert!(
                waited < limit,
                "{what}: not done after {limit:?} of simulated time (heights {:?})",
                self.heights()
            );
            self.context.sleep(Duration::from_millis(50)).await;
        }
    }

    fn heights(&self) -> Vec<u64> {
        (0..self.hosts.len()).map(|i| self.height(i)).collect()
    }

    fn all_included(&self, who: &[usize]) -> bool {
        who.iter()
            .all(|&i| self.acknowledged.iter().all(|id| self.hosts[i].includes(id)))
    }

    /// Safety: one block per height across `who`, the same state root at
    /// the same height, the supply exact.
    fn check_safety(&self, who: &[usize]) {
        let supply = sharegrid_ledger::State::genesis(&self.genesis).unwrap().supply();
        let chains: Vec<Vec<ContentId>> = who.iter().map(|&i| self.hosts[i].committed()).collect();
        for (x, a) in chains.iter().enumerate() {
            for b in &chains[x + 1..] {
                let common = a.len().min(b.len());
                assert_eq!(
                    a[..common],
                    b[..common],
                    "two validators finalized different blocks at one height"
                );
            }
        }
        let mut roots = std::collections::BTreeMap::new();
        for &i in who {
            let c = self.hosts[i].finalized();
            assert_eq!(c.state().supply(), supply, "supply changed");
            if let Some(other) = roots.insert(c.height(), c.state().root()) {
                assert_eq!(other, c.state().root(), "state roots differ at height {}", c.height());
            }
        }
    }

    /// The trace a replay must reproduce: every validator's finalized hashes.
    fn trace(&self) -> Vec<Vec<ContentId>> {
        self.hosts.iter().map(MemoryHost::committed).collect()
    }
}

fn run<T, Fut: std::future::Future<Output = T>>(seed: u64, f: impl FnOnce(deterministic::Context) -> Fut) -> T {
    let cfg = deterministic::Config::new()
        .with_seed(seed)
        .with_timeout(Some(Duration::from_secs(3_600)));
    deterministic::Runner::new(cfg).start(f)
}

/// Loss and delay: every link drops a fifth of messages and delays them
/// 50 ± 40 ms; every acknowledged transfer is finalized, identically
/// everywhere.
async fn lossy(context: deterministic::Context, n: usize) -> Vec<Vec<ContentId>> {
    let mut sim = Sim::new(context, n, None).await;
    sim.link_all(link(50, 40, Probability::from_f64(0.8).unwrap()), |_, _| true)
        .await;
    let all: Vec<usize> = (0..n).collect();
    for _ in 0..5 {
        sim.submit(40, &all);
        sim.context.sleep(Duration::from_millis(300)).await;
    }
    sim.until(
        "every transfer finalized over lossy links",
        Duration::from_secs(120),
        |s| s.all_included(&all),
    )
    .await;
    sim.check_safety(&all);
    sim.trace()
}

#[test]
fn four_and_seven_validators_finalize_every_transfer_over_lossy_slow_links() {
    for n in [4, 7] {
        for seed in seeds() {
            let trace = run(seed, move |ctx| lossy(ctx, n));
            assert!(trace.iter().all(|t| !t.is_empty()));
            // Replayable: the same seed gives the same blocks everywhere.
            let again = run(seed, move |ctx| lossy(ctx, n));
            assert_eq!(trace, again, "seed {seed} with {n} validators did not replay");
        }
    }
}

/// A partition into two halves, neither a quorum: nothing is finalized
/// while it lasts (and nothing conflicting ever is); after it heals, every
/// transfer is.
async fn partition(context: deterministic::Context, n: usize) {
    let mut sim = Sim::new(context, n, None).await;
    let all: Vec<usize> = (0..n).collect();
    sim.submit(20, &all);
    sim.until(
        "transfers finalized before the partition",
        Duration::from_secs(60),
        |s| s.all_included(&all),
    )
    .await;
    let half = n / 2;
    let fine = link(20, 5, Probability::from_f64(1.0).unwrap());
    sim.link_all(fine.clone(), |a, b| (a < half) == (b < half)).await;
    // Let what was in flight land, then nothing may move.
    sim.context.sleep(Duration::from_secs(2)).await;
    let frozen = sim.heights();
    sim.submit(20, &all);
    sim.context.sleep(Duration::from_secs(20)).await;
    assert_eq!(
        sim.heights(),
        frozen,
        "a minority finalized blocks during the partition"
    );
    sim.check_safety(&all);
    sim.link_all(fine, |_, _| true).await;
    sim.until(
        "every transfer finalized after the heal",
        Duration::from_secs(120),
        |s| s.all_included(&all),
    )
    .await;
    assert!(sim.heights().iter().zip(&frozen).all(|(now, then)| now > then));
    sim.check_safety(&all);
}

#[test]
fn a_partition_stops_finality_without_forking_and_the_heal_resumes_it() {
    for n in [4, 7] {
        for seed in seeds() {
            run(seed, move |ctx| partition(ctx, n));
        }
    }
}

/// A validator crashes (every task of it stopped, its journal and store
/// kept), the rest go on, it restarts into its finalized state and catches
/// up, and the transfers it acknowledged before crashing are finalized.
async fn crash_and_restart(context: deterministic::Context, n: usize) {
    let mut sim = Sim::new(context, n, None).await;
    let all: Vec<usize> = (0..n).collect();
    let victim = n - 1;
    // Clients 0 and 1 send to the victim, 2 and 3 to the others.
    let others: Vec<usize> = (0..n - 1).collect();
    sim.submit_as(&[0, 1], 10, &[victim]);
    sim.submit_as(&[2, 3], 10, &others);
    sim.context.sleep(Duration::from_millis(700)).await;
    for h in sim.handles[victim].drain(..) {
        h.abort();
        let _ = h.await;
    }
    let at_crash = sim.height(victim);
    // Acknowledged by the victim just before it died: still in its pool.
    let before = sim.acknowledged.len();
    sim.submit_as(&[0, 1], 8, &[victim]);
    assert_eq!(sim.acknowledged.len(), before + 8, "the victim refused transfers");
    sim.submit_as(&[2, 3], 40, &others);
    sim.until("the others finalize without the victim", Duration::from_secs(60), |s| {
        others.iter().all(|&i| s.height(i) > at_crash + 10)
    })
    .await;
    assert_eq!(sim.height(victim), at_crash, "a crashed validator committed");
    sim.restarts += 1;
    let handles = sim.start_validator(victim).await;
    sim.handles[victim] = handles;
    sim.until(
        "the restarted validator catches up and everything is finalized",
        Duration::from_secs(120),
        |s| s.all_included(&all),
    )
    .await;
    sim.check_safety(&all);
}

#[test]
fn a_crashed_validator_restarts_into_its_finalized_state_and_catches_up() {
    for n in [4, 7] {
        for seed in seeds() {
            run(seed, move |ctx| crash_and_restart(ctx, n));
        }
    }
}

/// One Byzantine validator signs two conflicting votes for everything it
/// sees: the honest ones still finalize, and report evidence that the
/// ledger's own check accepts as naming the liar; the report, sent as a
/// transaction, is finalized and slashes the liar's stake (once).
async fn equivocator(context: deterministic::Context, n: usize) {
    let liar = 0;
    let mut sim = Sim::new(context, n, Some(liar)).await;
    let honest: Vec<usize> = (1..n).collect();
    sim.submit(40, &honest);
    sim.until(
        "the honest validators finalize every transfer",
        Duration::from_secs(120),
        |s| s.all_included(&honest),
    )
    .await;
    sim.until("equivocation reported", Duration::from_secs(60), |s| {
        honest.iter().any(|&i| !s.hosts[i].evidence().is_empty())
    })
    .await;
    sim.check_safety(&honest);
    for &i in &honest {
        for (offender, bytes) in sim.hosts[i].evidence() {
            assert_eq!(offender, sim.keys[liar].id(), "an honest validator was accused");
            let e = check_evidence(&sim.chain(), &sim.genesis.validators, &bytes).unwrap();
            assert_eq!(e.offender, sim.keys[liar].id());
            // The evidence is bound to this network.
            assert!(check_evidence(&ContentId::of(b"another network"), &sim.genesis.validators, &bytes).is_err());
        }
    }
    // The first honest validator to see it reports it on the ledger.
    let (reporter, evidence) = honest
        .iter()
        .find_map(|&i| sim.hosts[i].evidence().first().map(|(_, e)| (i, e.clone())))
        .unwrap();
    let report = |nonce| {
        let op = Op::Equivocation {
            evidence: evidence.clone(),
        };
        signed(sim.chain(), &sim.keys[reporter], nonce, op)
    };
    let first = report(0);
    let id = sim.hosts[reporter].submit(first).unwrap();
    // The same offence twice is refused (it is in the pool's state).
    let again = sim.hosts[reporter].submit(report(1)).unwrap_err();
    assert!(matches!(again, sharegrid_ledger::Rejection::Evidence(_)), "{again}");
    sim.until("the report is finalized", Duration::from_secs(60), |s| {
        honest.iter().all(|&i| s.hosts[i].includes(&id))
    })
    .await;
    for &i in &honest {
        let state = sim.hosts[i].finalized().state().clone();
        assert_eq!(
            state.slashable(&sim.keys[liar].id()),
            STAKE / 2,
            "the liar keeps half its stake"
        );
        for &j in &honest {
            assert_eq!(
                state.slashable(&sim.keys[j].id()),
                STAKE,
                "an honest validator was slashed"
            );
        }
    }
    sim.check_safety(&honest);
}

#[test]
fn an_equivocating_validator_is_reported_with_evidence_and_finality_goes_on() {
    for n in [4, 7] {
        for seed in seeds() {
            run(seed, move |ctx| equivocator(ctx, n));
        }
    }
}
