//! Finality benchmark: the ledger ordered by one validator (the node's
//! producer) beside four validators ordering it by Simplex on loopback
//! (each a real `Ledger` in SQLite with its own consensus thread and
//! commonware p2p port), in one run, under the same offered load of signed
//! transfers from 64 clients, each on its own connection waiting for its
//! acknowledgement (the pool's group commit shares fsyncs among them). The
//! four validators start and finalize a first block before load is offered.
//! Prints transfers acknowledged and finalized per second and the latency
//! from submission to finality (median, p99). `RUST_LOG` turns on logs.
//!
//! `cargo run --release -p sharegrid-node --example bft -- [RATE] [SECS]
//! [BLOCK_MS]` (bench/bft.sh); BLOCK_MS is the validators' least time
//! between blocks (default 50: at 20, about 47 blocks a second each cost
//! four SQLite commits and consensus journal syncs, and acknowledgements
//! fell behind on two cores).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use sharegrid_core::{Amount, ContentId, NodeKey, Signed};
use sharegrid_ledger::{Allocation, Genesis, Op, Params, TX_VERSION, Tx};
use sharegrid_node::testnet::ValidatorSet;
use sharegrid_node::{Ledger, LedgerSettings};

const CLIENTS: usize = 64;

fn client(i: usize) -> NodeKey {
    NodeKey::from_seed([u8::try_from(i).unwrap().wrapping_add(1); 32])
}

fn genesis(validators: Vec<sharegrid_core::NodeId>) -> Genesis {
    Genesis {
        params: Params::new(validators[0], 0, Amount(1)),
        validators,
        balances: (0..CLIENTS)
            .map(|i| Allocation {
                account: client(i).id(),
                amount: Amount(1 << 60),
            })
            .collect(),
        stakes: Vec::new(),
    }
}

fn transfer(chain: ContentId, from: usize, nonce: u64) -> Signed {
    Signed::sign(
        &client(from),
        &Tx {
            version: TX_VERSION,
            chain,
            signer: client(from).id(),
            nonce,
            fee: Amount(1),
            expires_at_height: u64::MAX / 2,
            op: Op::Transfer {
                to: client((from + 1) % CLIENTS).id(),
                amount: Amount(1),
            },
        },
    )
    .unwrap()
}

struct Figures {
    /// Acknowledged per second (the submitters' pace).
    acked_per_sec: f64,
    finalized: usize,
    per_sec: f64,
    median_ms: f64,
    p99_ms: f64,
    blocks: u64,
}

/// Offers `rate` transfers a second for `secs` to `ledgers` (client `c`
/// to ledger `c % n`), watching `ledgers[0]`'s head: each transfer's time
/// from acknowledgement to its block, and the finalized rate.
fn measure(ledgers: &[Arc<Ledger>], rate: u64, secs: u64, produce: bool) -> Figures {
    let chain = ledgers[0].genesis().hash();
    // Signed before the clock starts: signing is the clients' cost.
    let total = (rate * secs) as usize;
    let mut nonces = [0u64; CLIENTS];
    let txs: Vec<(usize, Signed)> = (0..total)
        .map(|k| {
            let c = k % CLIENTS;
            nonces[c] += 1;
            (c, transfer(chain, c, nonces[c] - 1))
        })
        .collect();
    let sent: Arc<Mutex<HashMap<ContentId, Instant>>> = Arc::new(Mutex::new(HashMap::new()));
    let watch = ledgers[0].clone();
    let start_height = watch.head().height;
    let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let producer = produce.then(|| {
        let (l, done) = (watch.clone(), done.clone());
        std::thread::spawn(move || {
            while !done.load(std::sync::atomic::Ordering::Relaxed) {
                let _ = l.produce(0, false);
                std::thread::sleep(Duration::from_millis(5));
            }
        })
    });
    let watcher = {
        let (l, sent) = (watch.clone(), sent.clone());
        std::thread::spawn(move || {
            let mut heads = l.subscribe();
            let mut seen = start_height;
            let mut latencies = Vec::new();
            let mut last = Instant::now();
            while latencies.len() < total {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_time()
                    .build()
                    .unwrap();
                let moved = rt.block_on(async { tokio::time::timeout(Duration::from_secs(30), heads.changed()).await });
                if !matches!(moved, Ok(Ok(()))) {
                    break;
                }
                let now = Instant::now();
                let head = *heads.borrow();
                for b in l.blocks(seen + 1, (head - seen) as usize, usize::MAX).unwrap() {
                    let s = sent.lock().unwrap();
                    for t in &b.txs {
                        if let Some(at) = s.get(&t.id()) {
                            latencies.push(now.duration_since(*at).as_secs_f64() * 1e3);
                            last = now;
                        }
                    }
                }
                seen = head;
            }
            (latencies, last, seen)
        })
    };
    // Clients as a validator meets them: each on its own connection,
    // waiting for its acknowledgement (the pool's group commit shares an
    // fsync among those that wait together); each client's nonces in order.
    let mut shares: Vec<Vec<(usize, Signed)>> = (0..CLIENTS).map(|_| Vec::new()).collect();
    for (k, (c, tx)) in txs.into_iter().enumerate() {
        shares[c].push((k, tx));
    }
    eprintln!("offering load to {} validator(s)", ledgers.len());
    let start = Instant::now();
    let submitters: Vec<_> = shares
        .into_iter()
        .enumerate()
        .map(|(c, share)| {
            let (ledger, sent) = (ledgers[c % ledgers.len()].clone(), sent.clone());
            std::thread::spawn(move || {
                for (k, tx) in share {
                    let due = start + Duration::from_secs_f64(k as f64 / rate as f64);
                    if let Some(wait) = due.checked_duration_since(Instant::now()) {
                        std::thread::sleep(wait);
                    }
                    sent.lock().unwrap().insert(tx.id(), Instant::now());
                    ledger.accept(tx).unwrap();
                }
            })
        })
        .collect();
    for s in submitters {
        s.join().unwrap();
    }
    let acked_per_sec = total as f64 / start.elapsed().as_secs_f64();
    let (mut latencies, last, seen) = watcher.join().unwrap();
    done.store(true, std::sync::atomic::Ordering::Relaxed);
    if let Some(p) = producer {
        p.join().unwrap();
    }
    latencies.sort_by(f64::total_cmp);
    let pick = |q: f64| {
        latencies
            .get(((latencies.len() as f64 - 1.0) * q) as usize)
            .copied()
            .unwrap_or(f64::NAN)
    };
    Figures {
        acked_per_sec,
        finalized: latencies.len(),
        per_sec: latencies.len() as f64 / last.duration_since(start).as_secs_f64(),
        median_ms: pick(0.5),
        p99_ms: pick(0.99),
        blocks: seen - start_height,
    }
}

fn main() {
    // Quiet unless RUST_LOG asks (e.g. RUST_LOG=commonware_consensus=debug).
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_writer(std::io::stderr)
        .init();
    let args: Vec<u64> = std::env::args().skip(1).map(|a| a.parse().expect("numbers")).collect();
    let rate = args.first().copied().unwrap_or(5_000);
    let secs = args.get(1).copied().unwrap_or(10);
    let block_ms = args.get(2).copied().unwrap_or(50);
    let dir = tempfile::tempdir().unwrap();

    // One validator: the node's producer, a block whenever transactions wait.
    let solo_key = Arc::new(NodeKey::from_seed([200; 32]));
    let solo = Ledger::open(&dir.path().join("solo.db"), genesis(vec![solo_key.id()]), solo_key).unwrap();
    let one = measure(&[solo], rate, secs, true);

    // Four validators, each its own SQLite ledger and consensus on loopback.
    let set = ValidatorSet::new(Arc::new(NodeKey::from_seed([201; 32])), 4).unwrap();
    let g = genesis(set.ids());
    let base = LedgerSettings {
        block_interval_ms: block_ms,
        leader_timeout_ms: 1_000,
        ..LedgerSettings::default()
    };
    let (ledgers, running) = set.start_ledgers(dir.path(), &g, &base).unwrap();
    // Steady state, not start-up: the validators have found each other
    // and finalized a first (empty) block before load is offered.
    let mut heads = ledgers[0].subscribe();
    tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap()
        .block_on(async {
            tokio::time::timeout(Duration::from_secs(60), heads.wait_for(|h| *h >= 1))
                .await
                .expect("the validators finalize a first block within 60 s")
                .unwrap();
        });
    let four = measure(&ledgers, rate, secs, false);
    drop(running);

    println!("offered {rate} transfers/s for {secs} s, each acknowledged by a validator (SQLite, fsync)");
    println!(
        "| ordering | acknowledged per second | finalized | per second | median finality | p99 finality | blocks |"
    );
    println!("|---|---|---|---|---|---|---|");
    for (name, f) in [("1 validator (producer)", &one), ("4 validators (Simplex)", &four)] {
        println!(
            "| {name} | {:.0} | {} | {:.0} | {:.0} ms | {:.0} ms | {} |",
            f.acked_per_sec, f.finalized, f.per_sec, f.median_ms, f.p99_ms, f.blocks
        );
    }
    println!(
        "ratio 4/1: throughput {:.2}, median finality {:.2}",
        four.per_sec / one.per_sec,
        four.median_ms / one.median_ms
    );
}
