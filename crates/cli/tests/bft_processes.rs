//! Four validator processes on loopback order the ledger by BFT consensus
//! (homes made by `sharegrid devnet --prepare-only`). One is SIGKILLed while
//! transfers stream into it and restarted: every transfer it acknowledged
//! ends finalized, every home ends on the same block, `ledger verify` is ok
//! on each, and the supply is exact.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command};

use sharegrid_core::{Amount, ContentId, NodeKey};
use sharegrid_node::{ApiClient, ApiRequest, LedgerStore, NodeHome, Transferred};

fn sharegrid(home: Option<&Path>) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_sharegrid"));
    c.env_remove("SHAREGRID_HOME");
    if let Some(h) = home {
        c.arg("--home").arg(h);
    }
    c
}

mod common;

fn start(home: &Path) -> Child {
    let mut node = sharegrid(Some(home));
    node.arg("node");
    common::serve(node)
}

/// Streams transfers into `home`'s node until it dies or `n` are
/// acknowledged, asking `kill` to fire after `kill_after` of them.
fn stream(
    home: &NodeHome,
    acked: &mut Vec<ContentId>,
    n: usize,
    kill_after: Option<(usize, &std::sync::mpsc::SyncSender<()>)>,
) {
    let to = NodeKey::from_seed([9; 32]).id();
    let Ok(mut api) = ApiClient::connect(home) else {
        return;
    };
    for i in 0..n {
        let req = ApiRequest::Transfer {
            to,
            amount: Amount(1),
            wait: false,
        };
        match api.call::<Transferred>(&req) {
            Ok(t) => acked.push(t.tx),
            Err(_) => return, // killed: not acknowledged
        }
        if let Some((k, go)) = kill_after
            && i + 1 == k
        {
            let _ = go.try_send(());
        }
    }
}

#[test]
fn a_validator_killed_mid_stream_restarts_and_every_acknowledged_transfer_is_finalized() {
    let dir = tempfile::tempdir().unwrap();
    let base = 20_000 + (std::process::id() % 2_000) * 20;
    let out = sharegrid(None)
        .args([
            "devnet",
            "--validators",
            "4",
            "--providers",
            "0",
            "--prepare-only",
            "--base-port",
        ])
        .arg(base.to_string())
        .arg("--dir")
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let homes: Vec<PathBuf> = (0..4).map(|i| dir.path().join(format!("validator-{i}"))).collect();
    let mut nodes: Vec<Child> = homes.iter().map(|h| start(h)).collect();

    let victim = 3;
    let home = NodeHome::new(&homes[victim]);
    let mut acked = Vec::new();
    // Transfers stream into the victim; it is killed after 40 of them, from
    // another thread, while the stream goes on.
    let (go, fire) = std::sync::mpsc::sync_channel::<()>(1);
    let pid = nodes[victim].id();
    let killer = std::thread::spawn(move || {
        let _ = fire.recv();
        let _ = Command::new("kill").args(["-KILL", &pid.to_string()]).status();
    });
    stream(&home, &mut acked, 100_000, Some((40, &go)));
    let _ = go.try_send(());
    killer.join().unwrap();
    let _ = nodes[victim].wait();
    assert!(acked.len() >= 40, "only {} acknowledged", acked.len());

    // Restarted, it goes on from what it acknowledged.
    nodes[victim] = start(&homes[victim]);
    stream(&home, &mut acked, 20, None);
    // One more, waited for until final: from the same account with the next
    // nonce, so everything before it is final by then.
    let mut api = ApiClient::connect(&home).unwrap();
    let last: Transferred = api
        .call(&ApiRequest::Transfer {
            to: NodeKey::from_seed([9; 32]).id(),
            amount: Amount(1),
            wait: true,
        })
        .unwrap();
    let height = last.height.expect("finalized at a height");
    acked.push(last.tx);
    // Every validator reaches that height (it waits on its own head).
    for h in &homes {
        let out = sharegrid(Some(h))
            .args(["ledger", "wait"])
            .arg(height.to_string())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}: {}",
            h.display(),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    for n in &mut nodes {
        let _ = n.kill();
        let _ = n.wait();
    }

    let genesis = home.genesis().unwrap();
    let supply = sharegrid_ledger::State::genesis(&genesis).unwrap().supply();
    let mut at_height = Vec::new();
    for h in &homes {
        let out = sharegrid(Some(h)).args(["ledger", "verify"]).output().unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success() && stdout.starts_with("ok: "),
            "{}: {stdout}",
            h.display()
        );
        let store = LedgerStore::open(&NodeHome::new(h).ledger_path(), &genesis).unwrap();
        let missing = acked.iter().filter(|id| store.tx_height(id).unwrap().is_none()).count();
        assert_eq!(
            missing,
            0,
            "{}: {missing} of {} acknowledged transfers not final",
            h.display(),
            acked.len()
        );
        let chain = store.chain(&genesis).unwrap();
        assert_eq!(chain.state().supply(), supply, "supply changed");
        at_height.push(store.block(height).unwrap().unwrap().hash());
    }
    assert!(
        at_height.windows(2).all(|w| w[0] == w[1]),
        "validators finalized different blocks"
    );
}
