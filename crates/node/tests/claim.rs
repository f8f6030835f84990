//! A vanished requestor cannot stiff anyone: real nodes on 127.0.0.1 — a
//! validator, a provider following the ledger, a requestor that opens an
//! escrow, has work done and disappears before settling. Once the claim
//! height passes, the provider claims its pay from the escrow with the
//! requestor's signed assignment and its own receipt.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use sharegrid_core::Receipt;
use sharegrid_core::{Amount, Arch, Determinism, Fuel, GigafuelPerSec, Limits, NodeKey};
use sharegrid_ledger::{Allocation, Genesis, Op, Params, Tx};
use sharegrid_net::NetConfig;
use sharegrid_node::{
    AgentOptions, BlobStore, FixedProbe, JobStore, JobSubmission, Ledger, LedgerClient, LedgerOptions, LedgerSettings,
    MachineInfo, NodeEvent, NodeHandle, NodeOptions, Provider, ProviderPolicy, Requestor, claimer, escrow_id, start,
};
use sharegrid_sandbox::{Sandbox, SandboxConfig};

fn net() -> NetConfig {
    NetConfig {
        listen: vec!["/ip4/127.0.0.1/tcp/0".parse().unwrap()],
        departure_timeout: Duration::from_secs(2),
        ..NetConfig::default()
    }
}

fn ledger_opts(l: &Arc<Ledger>) -> Option<LedgerOptions> {
    Some(LedgerOptions {
        ledger: l.clone(),
        block_interval: Duration::from_millis(20),
        idle_block: Duration::from_millis(100),
    })
}

async fn connect(a: &NodeHandle, b: &NodeHandle) {
    let addr = b.listen_addrs().await[0].clone().with_p2p(b.peer_id()).unwrap();
    a.dial(addr).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_provider_claims_its_pay_when_the_requestor_vanishes() {
    let dir = tempfile::tempdir().unwrap();
    let (vkey, pkey, rkey) = (
        Arc::new(NodeKey::from_seed([1; 32])),
        Arc::new(NodeKey::from_seed([2; 32])),
        Arc::new(NodeKey::from_seed([3; 32])),
    );
    let genesis = Genesis {
        validators: vec![vkey.id()],
        params: Params {
            treasury: vkey.id(),
            network_fee_bps: 100,
            min_fee: Amount(1),
        },
        balances: vec![Allocation {
            account: rkey.id(),
            amount: Amount(1_000_000_000),
        }],
    };
    let ledger = |name: &str, key: &Arc<NodeKey>| {
        std::fs::create_dir_all(dir.path().join(name)).unwrap();
        Ledger::open(&dir.path().join(name).join("ledger.db"), genesis.clone(), key.clone()).unwrap()
    };
    let (vl, pl, rl) = (ledger("v", &vkey), ledger("p", &pkey), ledger("r", &rkey));
    let store = |name: &str| BlobStore::open(dir.path().join(name).join("blobs"), 1 << 30).unwrap();

    let validator = start(NodeOptions {
        key: vkey.clone(),
        net: net(),
        blobs: store("v"),
        outputs: store("v-out"),
        agent: None,
        ledger: ledger_opts(&vl),
    })
    .await
    .unwrap();

    // The provider: one slot, so the job's tasks run one after another.
    let sandbox = Arc::new(Sandbox::new(SandboxConfig::default()).unwrap());
    let pblobs = store("p");
    let earnings = JobStore::open(&dir.path().join("p/node.db")).unwrap();
    let policy = ProviderPolicy {
        enabled: true,
        slots: 1,
        offer_interval_secs: 1,
        price_floor: Amount(1_000),
        ..ProviderPolicy::default()
    };
    let provider = start(NodeOptions {
        key: pkey.clone(),
        net: net(),
        blobs: pblobs.clone(),
        outputs: store("p-out"),
        agent: Some(AgentOptions {
            provider: Provider::new(pkey.clone(), policy, sandbox, pblobs),
            machine: MachineInfo {
                arch: Arch::host(),
                cores: 1,
                memory_bytes: 8 << 30,
            },
            speed: GigafuelPerSec(1.0),
            probe: Arc::new(FixedProbe::default()),
            max_fetch_bytes: 1 << 30,
            earnings: Some(earnings.clone()),
        }),
        ledger: ledger_opts(&pl),
    })
    .await
    .unwrap();
    let claims = tokio::spawn(claimer(
        earnings.clone(),
        LedgerClient::new(pl.clone(), provider.clone()),
        Duration::from_millis(100),
    ));

    let rblobs = store("r");
    let requestor = start(NodeOptions {
        key: rkey.clone(),
        net: net(),
        blobs: rblobs.clone(),
        outputs: store("r-out"),
        agent: None,
        ledger: ledger_opts(&rl),
    })
    .await
    .unwrap();
    connect(&provider, &validator).await;
    connect(&requestor, &validator).await;
    connect(&requestor, &provider).await;
    let deadline = Instant::now() + Duration::from_secs(20);
    while requestor.offers().await.is_empty() {
        assert!(Instant::now() < deadline, "the offer did not arrive");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    let engine = Requestor::new(
        requestor.clone(),
        rblobs.clone(),
        JobStore::open(&dir.path().join("r/node.db")).unwrap(),
    )
    .with_ledger(
        LedgerClient::new(rl.clone(), requestor.clone()),
        LedgerSettings {
            claim_after_blocks: 5,
            close_after_blocks: 10_000,
            settle_batch: 1_000,
            ..LedgerSettings::default()
        },
    );
    let module = std::fs::read(format!(
        "{}/../../guests/wasm/mandelbrot.wasm",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap();
    let sub = JobSubmission {
        name: "vanishing".into(),
        module: rblobs.put(&module).unwrap(),
        stdin: rblobs.put(b"").unwrap(),
        inputs: vec![],
        limits: Limits {
            fuel: Fuel(5_000_000_000),
            ..Limits::default()
        },
        mode: Determinism::Native,
        replication: 1,
        quorum: 1,
        price_ceiling: Amount(2_000),
        budget: Amount(1_000_000),
        deadline_secs: None,
        arch: None,
        min_memory: 0,
        min_speed: 0.0,
        credibility: None,
        tasks: (0..4u32)
            .map(|c| [c, 0, 4, 1, 320, 240, 256].iter().map(u32::to_string).collect())
            .collect(),
    };
    // An unfundable job is refused before anything runs.
    let mut greedy = sub.clone();
    greedy.budget = Amount(10_000_000_000);
    greedy.price_ceiling = Amount(u128::MAX);
    let err = engine.submit(greedy).await.unwrap_err().to_string();
    assert!(err.contains("cannot fund the job") && err.contains("balance"), "{err}");

    let mut ran = provider.subscribe();
    let job = engine.submit(sub).await.unwrap();
    let escrow = escrow_id(&rkey.id(), &job);
    assert!(
        rl.escrow(&escrow).is_some(),
        "the escrow is in a block before work starts"
    );
    // The requestor vanishes as soon as the first task has run.
    loop {
        if let Ok(NodeEvent::Ran { .. }) = ran.recv().await {
            break;
        }
    }
    requestor.shutdown().await;
    drop(engine);

    // The provider claims once the claim height passes (the validator keeps
    // heights moving while escrows are open).
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let balance = vl.account(&pkey.id()).balance;
        if balance.0 > 0 && earnings.earnings().unwrap().is_empty() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the provider was never paid (balance {balance}, validator height {}, provider height {}, proofs kept {}, escrow seen by provider {})",
            vl.head().height,
            pl.head().height,
            earnings.earnings().unwrap().len(),
            pl.escrow(&escrow).is_some()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let e = vl.escrow(&escrow).expect("the escrow stays open for the rest");
    let claimed: Vec<_> = e.paid.iter().filter(|(_, p)| *p == pkey.id()).collect();
    assert!(!claimed.is_empty());
    // Paid exactly what its receipts charge, once per task, less the fee
    // of each claim transaction; supply conserved.
    let mut charged = 0u128;
    let mut claim_txs = 0u128;
    for f in vl.history(&pkey.id(), 100).unwrap() {
        let tx: Tx = sharegrid_core::decode_capped(&f.signed.body, 1 << 20).unwrap();
        if let Op::Claim { paid, .. } = tx.op {
            let r: Receipt = paid.receipt.open(1 << 20).unwrap();
            charged += r.charge.0;
            claim_txs += 1;
        }
    }
    assert_eq!(claim_txs as usize, claimed.len(), "one claim per task run");
    assert_eq!(vl.account(&pkey.id()).balance.0, charged - claim_txs);
    assert_eq!(vl.with_state(|s| s.supply()), 1_000_000_000);
    claims.abort();
    provider.shutdown().await;
    validator.shutdown().await;
}
