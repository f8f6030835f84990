//! Real nodes on 127.0.0.1 coming and going: a provider that stops
//! answering mid-task is seen gone within the configured departure
//! timeout, and a provider shut down finishes its running work and refuses
//! new work.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use sharegrid_core::Fuel;
use sharegrid_node::{AssignError, Assigned, NodeEvent};

mod common;
use common::*;

/// A provider frozen mid-task (its whole runtime blocked: the process is
/// alive, its sockets open, nothing answers) is seen gone by its peers
/// within the departure timeout, and the task waiting on it fails.
#[test]
fn a_provider_that_stops_answering_mid_task_is_seen_gone_within_the_departure_timeout() {
    let (up_tx, up_rx) = std::sync::mpsc::sync_channel(1);
    let (freeze_tx, freeze_rx) = std::sync::mpsc::sync_channel::<()>(1);
    let (thaw_tx, thaw_rx) = std::sync::mpsc::sync_channel::<()>(1);
    let provider_thread = std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let p = node(6, Some(providing(0))).await;
            up_tx.send((p.addr().await, p.handle.clone())).unwrap();
            tokio::task::spawn_blocking(move || freeze_rx.recv())
                .await
                .unwrap()
                .unwrap();
            // Block the runtime's only thread: the swarm is no longer
            // polled, until the other side has seen it gone.
            let _ = thaw_rx.recv();
            drop(p);
        });
        rt.shutdown_background();
    });
    let (p_addr, p_handle) = up_rx.recv().unwrap();

    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let r = node(7, None).await;
        let mut events = r.handle.subscribe();
        r.handle.dial(p_addr).await.unwrap();
        r.handle.wait_for_offers(1).await;
        let mut long = assignment(&r, p_handle.id(), &spin_module(), &[], 0);
        long.limits.fuel = Fuel(40_000_000_000);
        let h = r.handle.clone();
        let mut p_events = p_handle.subscribe();
        let pending = tokio::spawn(async move { h.assign(&long).await });
        event(&mut p_events, "the task running", |e| {
            matches!(e, NodeEvent::Admitted { .. }).then_some(())
        })
        .await;

        let frozen_at = Instant::now();
        freeze_tx.send(()).unwrap();
        let err = pending.await.unwrap().unwrap_err();
        let seen_after = frozen_at.elapsed();
        assert!(
            matches!(&err, AssignError::PeerGone(why) if why.contains("ping")),
            "{err} after {seen_after:?}"
        );
        // Gone within the departure timeout of the last answered ping, plus
        // the liveness check's period and scheduling slack on a loaded machine.
        assert!(seen_after < DEPARTURE + Duration::from_millis(1500), "{seen_after:?}");
        let gone = event(&mut events, "the provider gone", |e| match e {
            NodeEvent::PeerGone { peer, why } if *peer == p_handle.peer_id() => Some(why.clone()),
            _ => None,
        })
        .await;
        assert!(gone.contains("no answer to ping"), "{gone}");
        thaw_tx.send(()).unwrap();
        assert!(
            r.handle.offers().await.is_empty(),
            "a departed provider's offer is dropped"
        );
    });
    provider_thread.join().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_finishes_running_work_and_refuses_new_work() {
    let p = node(11, Some(providing(0))).await;
    let r = node(12, None).await;
    r.handle.dial(p.addr().await).await.unwrap();
    let mut long = assignment(&r, p.key.id(), &spin_module(), &[], 0);
    long.limits.fuel = Fuel(4_000_000_000);
    let h = r.handle.clone();
    let mut p_events = p.handle.subscribe();
    let running = tokio::spawn(async move { h.assign(&long).await });
    event(&mut p_events, "the task running", |e| {
        matches!(e, NodeEvent::Admitted { .. }).then_some(())
    })
    .await;
    let ph = p.handle.clone();
    let stopping = tokio::spawn(async move { ph.shutdown().await });
    event(&mut p_events, "shutdown begun", |e| {
        matches!(e, NodeEvent::Stopping).then_some(())
    })
    .await;
    let late = assignment(&r, p.key.id(), &guest("pi"), &["1", "10"], 0);
    assert!(refused(r.handle.assign(&late).await).contains("shutting down"));
    // The running task still completes and its receipt arrives.
    match running.await.unwrap().unwrap() {
        Assigned::Receipt { receipt, .. } => assert_eq!(receipt.outcome, sharegrid_core::Outcome::OutOfFuel),
        Assigned::Refused(why) => panic!("{why}"),
    }
    stopping.await.unwrap();
    assert!(p.handle.status().await.is_none(), "the node has stopped");
}
