//! Four validators ordering the ledger by Simplex on loopback (real
//! SQLite ledgers, real consensus ports): a transfer one validator
//! acknowledged is relayed to the others, so it is finalized even when
//! that validator stops before its turn to lead.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::Duration;

use sharegrid_core::{Amount, NodeKey, Signed};
use sharegrid_ledger::{Allocation, Genesis, Op, Params, TX_VERSION, Tx};
use sharegrid_node::testnet::ValidatorSet;
use sharegrid_node::{Consensus, LedgerSettings};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_transfer_whose_validator_stops_before_leading_is_finalized_by_the_others() {
    let dir = tempfile::tempdir().unwrap();
    let client = NodeKey::from_seed([77; 32]);
    let set = ValidatorSet::new(Arc::new(NodeKey::from_seed([201; 32])), 4).unwrap();
    let genesis = Genesis {
        params: Params::new(set.keys[0].id(), 0, Amount(1)),
        validators: set.ids(),
        balances: vec![Allocation {
            account: client.id(),
            amount: Amount(1_000),
        }],
        stakes: Vec::new(),
    };
    let base = LedgerSettings {
        block_interval_ms: 20,
        leader_timeout_ms: 1_000,
        ..LedgerSettings::default()
    };
    let (ledgers, running) = set.start_ledgers(dir.path(), &genesis, &base).unwrap();
    let mut running: Vec<Option<Consensus>> = running.into_iter().map(Some).collect();
    let mut heads = ledgers[0].subscribe();
    tokio::time::timeout(Duration::from_secs(60), heads.wait_for(|h| *h >= 1))
        .await
        .expect("the validators finalize a first block")
        .unwrap();

    let transfer = |nonce| {
        Signed::sign(
            &client,
            &Tx {
                version: TX_VERSION,
                chain: genesis.hash(),
                signer: client.id(),
                nonce,
                fee: Amount(1),
                expires_at_height: 100_000,
                op: Op::Transfer {
                    to: set.keys[1].id(),
                    amount: Amount(5),
                },
            },
        )
        .unwrap()
    };
    let producer = |height| {
        let block = ledgers[0].blocks(height, 1, usize::MAX).unwrap().pop().unwrap();
        block.open_header().unwrap().producer
    };
    // A transfer acknowledged by validator 3 that the others hold: pooled
    // from its relay, or in a block another validator proposed. One that
    // validator 3 itself put in a block shows nothing: try the next.
    let mut shown = None;
    for nonce in 0..5 {
        let id = ledgers[3].accept(transfer(nonce)).unwrap();
        let held = async {
            loop {
                if ledgers[..3]
                    .iter()
                    .all(|l| l.pending() >= 1 || l.tx_height(&id).unwrap().is_some())
                {
                    return;
                }
                let _ = tokio::time::timeout(Duration::from_millis(20), heads.changed()).await;
            }
        };
        tokio::time::timeout(Duration::from_secs(30), held)
            .await
            .expect("the other validators hold what validator 3 acknowledged");
        match ledgers[0].tx_height(&id).unwrap() {
            Some(h) if producer(h) == set.keys[3].id() => continue,
            _ => {
                shown = Some((nonce, id));
                break;
            }
        }
    }
    let (nonce, id) = shown.expect("a transfer acknowledged by validator 3 reached the others before its block");
    // Validator 3 stops: it never leads again.
    running[3] = None;
    let finalized = async {
        loop {
            if ledgers[0].tx_height(&id).unwrap().is_some() {
                return;
            }
            heads.changed().await.unwrap();
        }
    };
    tokio::time::timeout(Duration::from_secs(60), finalized)
        .await
        .expect("the three validators left finalize the transfer");
    assert_eq!(
        ledgers[0].account(&set.keys[1].id()).balance,
        Amount(5 * (u128::from(nonce) + 1))
    );
    drop(running);
}
