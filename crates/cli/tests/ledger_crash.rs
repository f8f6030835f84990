//! Crash safety of the validator: a `sharegrid node` process is killed with
//! SIGKILL again and again while transfers stream in through its control
//! socket, and restarted each time. Afterwards `sharegrid ledger verify`
//! passes and every transfer the node acknowledged is in a block.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::process::{Child, Command};

use sharegrid_core::{Amount, ContentId, NodeKey};
use sharegrid_node::{ApiClient, ApiRequest, LedgerStore, NodeHome, Transferred};

mod common;

fn start(home: &Path) -> Child {
    let mut node = Command::new(env!("CARGO_BIN_EXE_sharegrid"));
    node.env_remove("SHAREGRID_HOME")
        .env("SHAREGRID_NETWORK__LISTEN", r#"["/ip4/127.0.0.1/tcp/0"]"#)
        .env("SHAREGRID_NETWORK__MDNS", "false")
        .env("SHAREGRID_LEDGER__BLOCK_INTERVAL_MS", "20")
        .arg("--home")
        .arg(home)
        .arg("node");
    common::serve(node)
}

#[test]
fn killed_validator_restarts_with_every_acknowledged_transaction() {
    let dir = tempfile::tempdir().unwrap();
    let home = NodeHome::new(dir.path());
    home.init().unwrap();
    let to = NodeKey::from_seed([9; 32]).id();
    let mut acked: Vec<ContentId> = Vec::new();
    let mut kills = 0;
    let mut seed = 0x9e37_79b9_u64;
    while kills < 6 {
        let mut node = start(dir.path());
        // Stream transfers; after a varying number of them is acknowledged,
        // SIGKILL from another thread while the stream goes on, so the kill
        // lands mid-stream (an event, not a time, decides when).
        seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        let kill_after = 5 + (seed >> 33) % 60;
        let (now, go) = std::sync::mpsc::sync_channel::<()>(1);
        let killer = std::thread::spawn({
            let pid = node.id();
            move || {
                let _ = go.recv();
                let _ = Command::new("kill").args(["-KILL", &pid.to_string()]).status();
            }
        });
        let mut sent = 0u64;
        if let Ok(mut api) = ApiClient::connect(&home) {
            loop {
                let req = ApiRequest::Transfer {
                    to,
                    amount: Amount(1 + acked.len() as u128),
                    wait: false,
                };
                match api.call::<Transferred>(&req) {
                    Ok(t) => acked.push(t.tx),
                    Err(_) => break, // killed: not acknowledged
                }
                sent += 1;
                if sent == kill_after {
                    let _ = now.try_send(());
                }
            }
        }
        // Should the node have died before (it must not), kill it anyway.
        let _ = now.try_send(());
        killer.join().unwrap();
        let _ = node.wait();
        kills += 1;
    }
    assert!(acked.len() > 20, "too few transfers acknowledged ({})", acked.len());

    // Restart once more. One more transfer, waited for in a block: it comes
    // from the same account with the next nonce, so every transfer before
    // it is in a block by then (the node waits on its head, not the test).
    let mut node = start(dir.path());
    let genesis = home.genesis().unwrap();
    let mut api = ApiClient::connect(&home).unwrap();
    let last: Transferred = api
        .call(&ApiRequest::Transfer {
            to,
            amount: Amount(1),
            wait: true,
        })
        .unwrap();
    assert!(last.height.is_some());
    let store = LedgerStore::open(&home.ledger_path(), &genesis).unwrap();
    let missing = acked.iter().filter(|id| store.tx_height(id).unwrap().is_none()).count();
    assert_eq!(
        missing,
        0,
        "{missing} of {} acknowledged transfers never reached a block",
        acked.len()
    );
    let _ = node.kill();
    let _ = node.wait();

    let out = Command::new(env!("CARGO_BIN_EXE_sharegrid"))
        .arg("--home")
        .arg(dir.path())
        .args(["ledger", "verify"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success() && stdout.starts_with("ok: "), "{stdout}");
    // Every acknowledged transfer moved its amount once: the receiver holds
    // at least their sum (unacknowledged ones may have landed too).
    let store = LedgerStore::open(&home.ledger_path(), &genesis).unwrap();
    let chain = store.chain(&genesis).unwrap();
    let want: u128 = (1..=acked.len() as u128).sum::<u128>() + 1;
    assert!(chain.state().balance(&to).0 >= want);
    assert_eq!(chain.state().supply(), sharegrid_node::SOLO_SUPPLY);
}
