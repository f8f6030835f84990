//! Signed transactions applied per second on one core: N transfers among
//! 1,000 accounts, (1) each verified (strict ed25519, one by one) and
//! applied to the state, and (2) the same transfers as blocks of 1,000,
//! each checked by a follower the way `ledger verify` does (signatures in
//! one batch, every transaction, the state root), side by side in one run.
//! `cargo run --release -p sharegrid-ledger --example apply_bench -- [N]` (bench/ledger.sh)

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Instant;

use sharegrid_core::{Amount, NodeKey, Signed};
use sharegrid_ledger::{Allocation, Chain, Genesis, Op, Params, State, TX_VERSION, Tx};

fn main() {
    let n: usize = std::env::args().nth(1).map_or(100_000, |s| s.parse().expect("N"));
    let keys: Vec<NodeKey> = (0..1000u32)
        .map(|i| {
            let mut seed = [0u8; 32];
            seed[..4].copy_from_slice(&i.to_le_bytes());
            NodeKey::from_seed(seed)
        })
        .collect();
    let genesis = Genesis {
        validators: vec![keys[0].id()],
        params: Params::new(keys[0].id(), 100, Amount(1)),
        balances: keys
            .iter()
            .map(|k| Allocation {
                account: k.id(),
                amount: Amount(1 << 60),
            })
            .collect(),
        stakes: Vec::new(),
    };
    let mut state = State::genesis(&genesis).unwrap();
    let mut nonces = vec![0u64; keys.len()];
    let txs: Vec<Signed> = (0..n)
        .map(|i| {
            let from = i % keys.len();
            let to = (i * 7 + 3) % keys.len();
            let t = Tx {
                version: TX_VERSION,
                chain: genesis.hash(),
                signer: keys[from].id(),
                nonce: nonces[from],
                fee: Amount(1),
                expires_at_height: u64::MAX,
                op: Op::Transfer {
                    to: keys[to].id(),
                    amount: Amount(1 + i as u128 % 100),
                },
            };
            nonces[from] += 1;
            Signed::sign(&keys[from], &t).unwrap()
        })
        .collect();
    let supply = state.supply();
    let t = Instant::now();
    for tx in &txs {
        state.apply(tx, 1).unwrap();
    }
    let secs = t.elapsed().as_secs_f64();
    assert_eq!(state.supply(), supply);
    let t = Instant::now();
    let root = state.root();
    let root_ms = t.elapsed().as_secs_f64() * 1e3;
    println!(
        "one by one: {n} signed transfers applied in {secs:.2} s on one core = {:.0} tx/s; state root of 1,000 accounts in {root_ms:.2} ms ({})",
        n as f64 / secs,
        root.short()
    );

    // The same transfers in blocks of 1,000, produced, then checked by a follower.
    let mut producer = Chain::new(&genesis).unwrap();
    let mut blocks = Vec::new();
    for (i, chunk) in txs.chunks(1000).enumerate() {
        let p = producer.propose(&keys[0], chunk.to_vec(), i as u64).unwrap();
        assert!(p.rejected.is_empty());
        blocks.push(p.block.clone());
        producer.commit(p);
    }
    let mut follower = Chain::new(&genesis).unwrap();
    let t = Instant::now();
    for b in &blocks {
        follower.apply(b).unwrap();
    }
    let secs = t.elapsed().as_secs_f64();
    assert_eq!(follower.state().root(), root);
    println!(
        "in blocks:  {} blocks of 1,000 checked in {secs:.2} s on one core = {:.0} tx/s ({:.0} blocks/s; signatures batch-verified per block)",
        blocks.len(),
        n as f64 / secs,
        blocks.len() as f64 / secs
    );
}
