//! Writes a node home with a chain to verify: `make_chain DIR BLOCKS TXS`
//! makes DIR/genesis.toml and DIR/ledger.db holding BLOCKS blocks of TXS
//! signed transfers each among 1,000 accounts, through the validator's own
//! path (acknowledge into the pool, produce, store). For bench/ledger.sh,
//! which then times `sharegrid ledger verify` on it.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use sharegrid_core::{Amount, NodeKey, Signed};
use sharegrid_ledger::{Allocation, Genesis, Op, Params, TX_VERSION, Tx};
use sharegrid_node::Ledger;

fn main() {
    let mut args = std::env::args().skip(1);
    let dir = std::path::PathBuf::from(args.next().expect("DIR"));
    let blocks: u64 = args.next().map_or(1_000, |s| s.parse().expect("BLOCKS"));
    let per_block: usize = args.next().map_or(100, |s| s.parse().expect("TXS"));
    std::fs::create_dir_all(&dir).unwrap();
    let keys: Vec<NodeKey> = (0..1000u32)
        .map(|i| {
            let mut seed = [0u8; 32];
            seed[..4].copy_from_slice(&i.to_le_bytes());
            seed[31] = 1;
            NodeKey::from_seed(seed)
        })
        .collect();
    let validator = Arc::new(NodeKey::from_seed([7; 32]));
    let genesis = Genesis {
        validators: vec![validator.id()],
        params: Params::new(validator.id(), 100, Amount(1)),
        balances: keys
            .iter()
            .map(|k| Allocation {
                account: k.id(),
                amount: Amount(1 << 60),
            })
            .collect(),
        stakes: Vec::new(),
    };
    std::fs::write(dir.join("genesis.toml"), genesis.to_toml()).unwrap();
    let genesis_hash = genesis.hash();
    let ledger = Ledger::open(&dir.join("ledger.db"), genesis, validator).unwrap();
    let mut nonces = vec![0u64; keys.len()];
    let mut i = 0usize;
    for b in 0..blocks {
        for _ in 0..per_block {
            let from = i % keys.len();
            let t = Tx {
                version: TX_VERSION,
                chain: genesis_hash,
                signer: keys[from].id(),
                nonce: nonces[from],
                fee: Amount(1),
                expires_at_height: u64::MAX,
                op: Op::Transfer {
                    to: keys[(i * 7 + 3) % keys.len()].id(),
                    amount: Amount(1 + i as u128 % 100),
                },
            };
            nonces[from] += 1;
            i += 1;
            ledger.accept(Signed::sign(&keys[from], &t).unwrap()).unwrap();
        }
        ledger.produce(1_000 * b, false).unwrap().expect("a block");
    }
    println!("{} blocks of {per_block} transfers in {}", blocks, dir.display());
}
