//! The ledger's rules against hostile transactions and blocks. The first
//! byte picks what the rest is:
//! - 0: a list of transactions (CBOR), each re-signed as the party it
//!   names (`sharegrid_fuzz::sign_tx`) and applied in turn to a state:
//!   rejected ones must change nothing, and tokens are never made or lost;
//! - 1: a block (CBOR) applied to a chain at its genesis;
//! - 2: a genesis file (TOML), as `init --join` takes one from a peer.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sharegrid_core::decode_capped;
use sharegrid_ledger::{Block, Chain, Genesis, MAX_BLOCK_BYTES, State, Tx};

fuzz_target!(init: sharegrid_fuzz::seeds::write_if_asked("ledger"), |data: &[u8]| {
    let Some((&kind, rest)) = data.split_first() else { return };
    match kind % 3 {
        0 => {
            let Ok(txs) = decode_capped::<Vec<Tx>>(rest, 1 << 20) else { return };
            let genesis = sharegrid_fuzz::genesis();
            let Ok(mut state) = State::genesis(&genesis) else { return };
            let supply = state.supply();
            for (height, tx) in (1..).zip(txs.into_iter().take(32)) {
                let signed = sharegrid_fuzz::sign_tx(tx);
                let before = state.clone();
                if state.apply(&signed, height).is_err() {
                    assert_eq!(state, before, "a rejected transaction changed the state");
                }
                assert_eq!(state.supply(), supply, "tokens were made or lost");
            }
        }
        1 => {
            let Ok(block) = decode_capped::<Block>(rest, MAX_BLOCK_BYTES) else { return };
            let Ok(mut chain) = Chain::new(&sharegrid_fuzz::genesis()) else { return };
            let root = chain.state().root();
            if chain.apply(&block).is_err() {
                assert_eq!(chain.state().root(), root, "a rejected block changed the state");
                assert_eq!(chain.height(), 0);
            }
        }
        _ => {
            if let Ok(text) = std::str::from_utf8(rest) {
                let _ = Genesis::from_toml(text);
            }
        }
    }
});
