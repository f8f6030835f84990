//! Signed transactions applied per second on one core: N transfers among
//! 1,000 accounts, each verified (ed25519, one by one) and applied.
//! `cargo run --release -p sharegrid-ledger --example apply_bench -- [N]` (bench/ledger.sh)

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Instant;

use sharegrid_core::{Amount, NodeKey, Signed};
use sharegrid_ledger::{Allocation, Genesis, Op, Params, State, TX_VERSION, Tx};

fn main() {
    let n: usize = std::env::args().nth(1).map_or(100_000, |s| s.parse().expect("N"));
    let keys: Vec<NodeKey> = (0..1000u32)
        .map(|i| {
            let mut seed = [0u8; 32];
            seed[..4].copy_from_slice(&i.to_le_bytes());
            NodeKey::from_seed(seed)
        })
        .collect();
    let mut state = State::genesis(&Genesis {
        validators: vec![keys[0].id()],
        params: Params {
            treasury: keys[0].id(),
            network_fee_bps: 100,
            min_fee: Amount(1),
        },
        balances: keys
            .iter()
            .map(|k| Allocation {
                account: k.id(),
                amount: Amount(1 << 60),
            })
            .collect(),
    })
    .unwrap();
    let mut nonces = vec![0u64; keys.len()];
    let txs: Vec<Signed> = (0..n)
        .map(|i| {
            let from = i % keys.len();
            let to = (i * 7 + 3) % keys.len();
            let t = Tx {
                version: TX_VERSION,
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
        "{n} signed transfers applied in {secs:.2} s on one core = {:.0} tx/s; state root of 1,000 accounts in {root_ms:.2} ms ({})",
        n as f64 / secs,
        root.short()
    );
}
