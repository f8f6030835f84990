//! A provider works for strangers only against an escrow that can pay, on
//! real nodes on 127.0.0.1 with a real ledger: no escrow, an escrow that
//! does not exist, and one holding less than the run may cost are refused
//! before anything is fetched; a run whose escrow is closed while it runs
//! is cancelled and its slot freed; honest work goes on meanwhile. Every
//! wait is on an event.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use sharegrid_core::{Amount, Assignment, ContentId, Fuel, JobId, Limits, PricePerGfuel, Program, TaskId, Terms};
use sharegrid_ledger::Op;
use sharegrid_node::testnet::{LedgerSpec, ProviderSpec, TestNode, Testnet, wait_for};
use sharegrid_node::{Assigned, LedgerClient, NodeEvent, now_ms};

fn guest(name: &str) -> Vec<u8> {
    std::fs::read(format!("{}/../../guests/wasm/{name}.wasm", env!("CARGO_MANIFEST_DIR"))).unwrap()
}

/// An assignment by `r` to `provider` of task `index` of `job`, running
/// `module`, paid from `escrow`.
fn assignment(
    r: &TestNode,
    provider: &TestNode,
    job: &JobId,
    index: usize,
    (module, args, limits): (&[u8], &[&str], Limits),
    escrow: Option<ContentId>,
) -> Assignment {
    let mut program = Program::new(r.blobs.put(module).unwrap(), r.blobs.put(b"").unwrap());
    program.limits = limits;
    let terms = Terms {
        chain: r.handle.chain(),
        requestor: r.key.id(),
        provider: provider.key.id(),
        price: PricePerGfuel(Amount(1)),
        escrow,
    };
    let args = args.iter().map(|s| s.to_string()).collect();
    Assignment::new(job.task(index), args, &program, terms, now_ms())
}

fn refusal(a: Assigned) -> String {
    match a {
        Assigned::Refused(why) => why,
        Assigned::Receipt { receipt, .. } => panic!("expected a refusal, got a receipt for {}", receipt.task),
    }
}

/// A provider of one slot and a requestor on the requestor's ledger, and
/// the requestor's ledger client.
async fn one_provider_on_a_ledger(dir: &std::path::Path) -> (Testnet, LedgerClient) {
    let net = Testnet::builder(dir)
        .provider(ProviderSpec::new("p", 1.0, 1))
        .ledger(LedgerSpec::default())
        .start()
        .await
        .unwrap();
    let r = &net.requestor.node;
    let client = LedgerClient::new(r.ledger.clone().unwrap(), r.handle.clone());
    (net, client)
}

/// Opens an escrow of `budget` for the first `tasks` tasks of `job`.
async fn open(client: &LedgerClient, r: &TestNode, job: &JobId, tasks: usize, budget: u128) -> ContentId {
    let escrow = job.escrow(&r.key.id());
    let height = r.ledger.as_ref().unwrap().head().height;
    let op = Op::OpenEscrow {
        quorum: 2,
        min_stake: Amount(0),
        escrow,
        budget: Amount(budget),
        tasks: (0..tasks).map(|i| job.task(i)).collect::<Vec<TaskId>>(),
        claim_height: height + 1_000,
        close_height: height + 2_000,
    };
    client.send_and_wait(op, Duration::from_secs(30)).await.unwrap();
    escrow
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn strangers_are_served_only_against_an_escrow_that_can_pay() {
    let dir = tempfile::tempdir().unwrap();
    let (net, client) = one_provider_on_a_ledger(dir.path()).await;
    let (p, r) = (&net.providers[0], &net.requestor.node);
    let pi = guest("pi");
    let small = Limits {
        fuel: Fuel(2_000_000_000),
        ..Limits::default()
    };
    let work = (&pi[..], &["5", "1000"][..], small);

    // No escrow: refused at once, nothing fetched.
    let job = JobId::new(&r.key.id(), now_ms(), 1);
    let none = assignment(r, p, &job, 0, work, None);
    let why = refusal(r.handle.assign(&none).await.unwrap());
    assert!(
        why.contains("works only against a funded escrow") && why.contains("names no escrow"),
        "{why}"
    );

    // Escrows that are not on the ledger: refused after a few blocks, and
    // meanwhile they hold no slot — funded work runs at once.
    let made_up: Vec<_> = (0..4)
        .map(|i| {
            let a = assignment(r, p, &job, i, work, Some(ContentId::of(&[i as u8])));
            let h = r.handle.clone();
            tokio::spawn(async move { h.assign(&a).await })
        })
        .collect();
    let meanwhile = JobId::new(&r.key.id(), now_ms(), 9);
    let escrow = open(&client, r, &meanwhile, 1, 1_000).await;
    let a = assignment(r, p, &meanwhile, 0, work, Some(escrow));
    assert!(matches!(r.handle.assign(&a).await.unwrap(), Assigned::Receipt { .. }));
    for m in made_up {
        let why = refusal(m.await.unwrap().unwrap());
        assert!(
            why.contains("is not open on the ledger") && why.contains("waited"),
            "{why}"
        );
    }

    // An escrow holding less than the run may cost (2 Gfuel at 1; the 1% fee rounds to 0).
    let poor = JobId::new(&r.key.id(), now_ms(), 2);
    let escrow = open(&client, r, &poor, 1, 1).await;
    let a = assignment(r, p, &poor, 0, work, Some(escrow));
    let why = refusal(r.handle.assign(&a).await.unwrap());
    assert!(why.contains("less than the 2 this run may cost"), "{why}");
    // A task the escrow does not pay for.
    let a = assignment(r, p, &poor, 1, work, Some(escrow));
    let why = refusal(r.handle.assign(&a).await.unwrap());
    assert!(why.contains("is not one of escrow"), "{why}");
    assert_eq!(
        p.handle.status().await.unwrap().provider.unwrap().tasks_run,
        1,
        "only the funded one"
    );

    // Funded: it runs.
    let rich = JobId::new(&r.key.id(), now_ms(), 3);
    let escrow = open(&client, r, &rich, 1, 1_000).await;
    let a = assignment(r, p, &rich, 0, work, Some(escrow));
    assert!(matches!(r.handle.assign(&a).await.unwrap(), Assigned::Receipt { .. }));
    net.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_run_whose_escrow_closes_is_cancelled_and_its_slot_freed() {
    let dir = tempfile::tempdir().unwrap();
    let (net, client) = one_provider_on_a_ledger(dir.path()).await;
    let (p, r) = (&net.providers[0], &net.requestor.node);
    let spin =
        wat::parse_str(r#"(module (memory (export "memory") 1) (func (export "_start") (loop (br 0))))"#).unwrap();
    // A thousand gigafuel and a minute: it would hold the one slot that long.
    let long = Limits {
        fuel: Fuel(1_000_000_000_000),
        timeout_ms: 60_000,
        ..Limits::default()
    };
    let job = JobId::new(&r.key.id(), now_ms(), 1);
    let escrow = open(&client, r, &job, 1, 10_000).await;
    let mut seen = p.handle.subscribe();
    let a = assignment(r, p, &job, 0, (&spin[..], &[][..], long), Some(escrow));
    let handle = r.handle.clone();
    let running = tokio::spawn(async move { handle.assign(&a).await });
    wait_for(&mut seen, "the run's escrow checked", |e| {
        matches!(e, NodeEvent::Funded { .. }).then_some(())
    })
    .await
    .unwrap();
    assert_eq!(p.handle.status().await.unwrap().provider.unwrap().busy, 1);

    // The requestor closes the escrow (a last settlement paying nothing).
    let close = Op::Settle {
        escrow,
        paid: vec![],
        last: true,
    };
    client.send_and_wait(close, Duration::from_secs(30)).await.unwrap();
    let why = refusal(running.await.unwrap().unwrap());
    assert!(
        why.contains("run cancelled") && why.contains("not open on the ledger"),
        "{why}"
    );

    // The slot is free: honest, funded work runs on it.
    let pi = guest("pi");
    let honest = JobId::new(&r.key.id(), now_ms(), 2);
    let escrow = open(&client, r, &honest, 1, 1_000).await;
    let small = Limits {
        fuel: Fuel(2_000_000_000),
        ..Limits::default()
    };
    let a = assignment(r, p, &honest, 0, (&pi[..], &["5", "1000"][..], small), Some(escrow));
    assert!(matches!(r.handle.assign(&a).await.unwrap(), Assigned::Receipt { .. }));
    net.shutdown().await;
}
