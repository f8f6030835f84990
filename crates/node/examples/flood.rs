//! An honest requestor's task round trip, quiet and while another peer
//! floods the same provider with task, blob and ledger requests (each kind
//! 32 at a time: signed assignments long expired, chunks of blobs no one
//! has, ledger heads): first flat out, then — from a second peer — paced
//! at 95 % of every per-peer rate, the most a peer can keep up without
//! being cut off. Prints the medians, their ratio to the quiet one, and
//! what became of each flood. All the nodes share this process and its
//! cores.
//!
//! `cargo run --release -p sharegrid-node --example flood -- [N]` (bench/flood.sh).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use sharegrid_core::{Amount, Assignment, ContentId, NodeKey, PricePerGfuel, TaskId, Terms};
use sharegrid_net::{LedgerRequest, Protocol};
use sharegrid_node::testnet;
use sharegrid_node::{Assigned, FetchFailure, NodeHandle};

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

/// `n` sequential trivial tasks from `r` to the provider; their round trips.
async fn series(r: &NodeHandle, make: &(dyn Fn(u64) -> Assignment + Sync), from: u64, n: usize) -> Vec<Duration> {
    let mut v = Vec::with_capacity(n);
    for i in 0..n as u64 {
        let t = Instant::now();
        match r.assign(&make(from + i)).await.unwrap() {
            Assigned::Receipt { .. } => v.push(t.elapsed()),
            Assigned::Refused(why) => panic!("honest task {} refused: {why}", from + i),
        }
    }
    v
}

/// Requests of each kind in flight at once.
const LANES: u64 = 32;

#[derive(Default)]
struct Tally {
    sent: AtomicU64,
    answered: AtomicU64,
    failed: AtomicU64,
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let n: usize = std::env::args().nth(1).map_or(500, |s| s.parse().expect("N"));
    let dir = tempfile::tempdir().unwrap();
    let pair = testnet::bench_pair(dir.path()).await.unwrap();
    let (provider, r, program) = (&pair.provider, &pair.requestor, pair.program.clone());
    let (pk, rk) = (provider.key.clone(), r.key.clone());
    let (fk, gk) = (
        Arc::new(NodeKey::from_seed([3; 32])),
        Arc::new(NodeKey::from_seed([4; 32])),
    );
    let f = testnet::start_plain(&dir.path().join("f"), "f", fk.clone(), testnet::loopback(), None)
        .await
        .unwrap();
    testnet::connect(&f.handle, provider).await.unwrap();
    let chain = r.handle.chain();
    let honest = {
        let program = program.clone();
        move |i: u64| {
            let terms = Terms {
                chain,
                requestor: rk.id(),
                provider: pk.id(),
                price: PricePerGfuel(Amount(1)),
                escrow: None,
            };
            let task = TaskId::from_bytes(*blake3::hash(&i.to_le_bytes()).as_bytes());
            Assignment::new(task, vec![], &program, terms, sharegrid_node::now_ms())
        }
    };
    // Warm-up: connection, module fetch, compilation.
    series(&r.handle, &honest, 0, 20).await;
    let quiet = series(&r.handle, &honest, 1_000, n).await;

    let q = median(quiet);
    println!("{n} sequential trivial tasks from an honest requestor, one provider, 127.0.0.1");
    println!("quiet                      median {:>8.3} ms", q.as_secs_f64() * 1e3);
    // Flat out (the flooder is soon banned), then a second flooder that
    // keeps just under every rate (never banned): the most a peer can
    // make a provider do for ever.
    let g = testnet::start_plain(&dir.path().join("g"), "g", gk.clone(), testnet::loopback(), None)
        .await
        .unwrap();
    testnet::connect(&g.handle, provider).await.unwrap();
    for (name, flooder, key, paced, from) in [
        ("flat out", &f.handle, &fk, false, 1_000_000),
        ("just under the rates", &g.handle, &gk, true, 2_000_000),
    ] {
        let stop = Arc::new(AtomicBool::new(false));
        let tally: Arc<[Tally; 3]> = Arc::new(Default::default());
        let target = provider.handle.peer_id();
        let started = Instant::now();
        let mut floods = Vec::new();
        for kind in 0..3usize {
            let (_, per_sec) = [Protocol::Task, Protocol::Blob, Protocol::Ledger][kind].rate();
            for lane in 0..LANES {
                let (h, stop, tally, program) = (flooder.clone(), stop.clone(), tally.clone(), program.clone());
                let (fid, provider_id) = (key.id(), provider.key.id());
                // Paced: each lane a 32nd of 95 % of the rate.
                let gap = Duration::from_secs_f64(f64::from(LANES as u32) / (0.95 * f64::from(per_sec)));
                floods.push(tokio::spawn(async move {
                    let mut i = lane << 40;
                    let mut next = tokio::time::Instant::now();
                    while !stop.load(Ordering::Relaxed) {
                        if paced {
                            next += gap;
                            tokio::time::sleep_until(next).await;
                        }
                        i += 1;
                        tally[kind].sent.fetch_add(1, Ordering::Relaxed);
                        let ok = match kind {
                            0 => {
                                // Signed, but long expired: refused after the
                                // signature and policy checks, holding no slot.
                                let terms = Terms {
                                    chain,
                                    requestor: fid,
                                    provider: provider_id,
                                    price: PricePerGfuel(Amount(1)),
                                    escrow: None,
                                };
                                let task = TaskId::from_bytes(*blake3::hash(&i.to_le_bytes()).as_bytes());
                                let a = Assignment::new(task, vec![], &program, terms, 0);
                                h.assign(&a).await.is_ok()
                            }
                            // A chunk of a blob no one has: NotFound is an answer.
                            1 => matches!(
                                h.fetch_blob(target, ContentId::of(&i.to_le_bytes()), 1 << 20).await,
                                Ok(_) | Err(FetchFailure::Bad(_))
                            ),
                            _ => h.ledger_request(target, LedgerRequest::Head).await.is_ok(),
                        };
                        let which = if ok { &tally[kind].answered } else { &tally[kind].failed };
                        which.fetch_add(1, Ordering::Relaxed);
                        if !ok {
                            // Cut off: try again a little later, as a flooder would.
                            tokio::time::sleep(Duration::from_millis(5)).await;
                        }
                    }
                }));
            }
        }
        let flooded = series(&r.handle, &honest, from, n).await;
        let secs = started.elapsed().as_secs_f64();
        stop.store(true, Ordering::Relaxed);
        for t in floods {
            let _ = t.await;
        }
        let fl = median(flooded);
        println!(
            "flood {name:<20} median {:>8.3} ms   ratio {:.2}",
            fl.as_secs_f64() * 1e3,
            fl.as_secs_f64() / q.as_secs_f64()
        );
        for (kind, proto) in ["task", "blob", "ledger"].iter().enumerate() {
            let t = &tally[kind];
            println!(
                "  {proto:<6} {:>7} sent in {secs:.1} s: {:>7} answered (refusals included), {:>7} failed or cut off",
                t.sent.load(Ordering::Relaxed),
                t.answered.load(Ordering::Relaxed),
                t.failed.load(Ordering::Relaxed)
            );
        }
    }
    let st = provider.handle.status().await.unwrap();
    for m in st.misbehaviour {
        println!("provider counted {} × {} from {}", m.count, m.kind, m.peer);
    }
    g.handle.shutdown().await;
    r.handle.shutdown().await;
    f.handle.shutdown().await;
    provider.handle.shutdown().await;
}
