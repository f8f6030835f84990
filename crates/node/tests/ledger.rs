//! The ledger between real nodes on 127.0.0.1. A vanished requestor cannot
//! stiff anyone: a validator, a provider following the ledger, a requestor
//! that opens an escrow, has work done and disappears before settling; once
//! the claim height passes, the provider claims its pay from the escrow with
//! the requestor's signed assignment and its own receipt. And a follower
//! refuses a block that does not check, whoever signed it.

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

/// A network whose validator also takes the fees (1%), and where only
/// `funded` holds tokens.
fn genesis(validator: &NodeKey, funded: &NodeKey, amount: u128) -> Genesis {
    Genesis {
        validators: vec![validator.id()],
        params: Params {
            treasury: validator.id(),
            network_fee_bps: 100,
            min_fee: Amount(1),
        },
        balances: vec![Allocation {
            account: funded.id(),
            amount: Amount(amount),
        }],
    }
}

/// A provider of one slot at 1,000 per Gfuel, keeping its proofs of work in
/// `earnings` and following `ledger`, if given.
async fn provider(
    home: &std::path::Path,
    key: &Arc<NodeKey>,
    ledger: Option<&Arc<Ledger>>,
    earnings: Option<JobStore>,
) -> NodeHandle {
    let blobs = BlobStore::open(home.join("blobs"), 1 << 30).unwrap();
    let policy = ProviderPolicy {
        enabled: true,
        slots: 1,
        offer_interval_secs: 1,
        price_floor: Amount(1_000),
        ..ProviderPolicy::default()
    };
    let sandbox = Arc::new(Sandbox::new(SandboxConfig::default()).unwrap());
    start(NodeOptions {
        key: key.clone(),
        net: net(),
        blobs: blobs.clone(),
        outputs: BlobStore::open(home.join("outputs"), 1 << 30).unwrap(),
        agent: Some(AgentOptions {
            provider: Provider::new(key.clone(), policy, sandbox, blobs),
            machine: MachineInfo {
                arch: Arch::host(),
                cores: 1,
                memory_bytes: 8 << 30,
            },
            speed: GigafuelPerSec(1.0),
            probe: Arc::new(FixedProbe::default()),
            max_fetch_bytes: 1 << 30,
            earnings,
        }),
        ledger: ledger.and_then(ledger_opts),
    })
    .await
    .unwrap()
}

/// A job of `n` small Mandelbrot tiles, r = 1, within a budget.
fn tiles(blobs: &BlobStore, n: u32) -> JobSubmission {
    let module = std::fs::read(format!(
        "{}/../../guests/wasm/mandelbrot.wasm",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap();
    JobSubmission {
        name: "tiles".into(),
        module: blobs.put(&module).unwrap(),
        stdin: blobs.put(b"").unwrap(),
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
        tasks: (0..n)
            .map(|c| [c, 0, n, 1, 320, 240, 256].iter().map(u32::to_string).collect())
            .collect(),
    }
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
    let genesis = genesis(&vkey, &rkey, 1_000_000_000);
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
    let earnings = JobStore::open(&dir.path().join("p/node.db")).unwrap();
    let provider = provider(&dir.path().join("p"), &pkey, Some(&pl), Some(earnings.clone())).await;
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
    let sub = tiles(&rblobs, 4);
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

/// A peer holding a validator's key serves a block whose state root is
/// wrong: the follower refuses it, counts the peer, and stays where it was;
/// the right block is then taken.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_follower_refuses_blocks_that_do_not_check() {
    use futures::StreamExt;
    use sharegrid_core::encode;
    use sharegrid_ledger::{Block, Chain, Header};
    use sharegrid_net::{
        BLOCKS_TOPIC, BehaviourEvent, Incoming, LedgerRequest, LedgerResponse, SwarmEvent, build_swarm, gossipsub,
        request_response,
    };

    let dir = tempfile::tempdir().unwrap();
    let vkey = NodeKey::from_seed([41; 32]);
    let fkey = Arc::new(NodeKey::from_seed([42; 32]));
    let rich = NodeKey::from_seed([43; 32]);
    let genesis = genesis(&vkey, &rich, 1_000);
    let fl = Ledger::open(&dir.path().join("f.db"), genesis.clone(), fkey.clone()).unwrap();
    let follower = start(NodeOptions {
        key: fkey,
        net: net(),
        blobs: BlobStore::open(dir.path().join("fb"), 1 << 20).unwrap(),
        outputs: BlobStore::open(dir.path().join("fo"), 1 << 20).unwrap(),
        agent: None,
        ledger: ledger_opts(&fl),
    })
    .await
    .unwrap();
    let target = follower.listen_addrs().await[0]
        .clone()
        .with_p2p(follower.peer_id())
        .unwrap();

    // The good block 1 (a transfer), and a copy whose header claims another
    // state root, both signed with the validator's key.
    let chain = Chain::new(&genesis).unwrap();
    let t = Tx {
        version: sharegrid_ledger::TX_VERSION,
        signer: rich.id(),
        nonce: 0,
        fee: Amount(1),
        expires_at_height: 100,
        op: Op::Transfer {
            to: vkey.id(),
            amount: Amount(10),
        },
    };
    let p = chain
        .propose(&vkey, vec![sharegrid_core::Signed::sign(&rich, &t).unwrap()], 1)
        .unwrap();
    let good = p.block.clone();
    let mut h: Header = good.open_header().unwrap();
    h.state_root = sharegrid_core::ContentId::of(b"a lie");
    let bad = Block {
        header: sharegrid_core::Signed::sign(&vkey, &h).unwrap(),
        txs: good.txs.clone(),
    };

    let mut rogue = build_swarm(&vkey, &net()).unwrap();
    rogue.dial(target.clone()).unwrap();
    let mut events = follower.subscribe();
    let topic = gossipsub::IdentTopic::new(BLOCKS_TOPIC);
    let mut serving = bad.clone();
    let mut announced = false;
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut refused = false;
    while fl.head().height == 0 {
        assert!(Instant::now() < deadline, "the follower never took the good block");
        if !announced {
            announced = rogue
                .behaviour_mut()
                .gossipsub
                .publish(topic.clone(), encode(&serving.header).unwrap())
                .is_ok();
        }
        let ev = tokio::time::timeout(Duration::from_millis(100), rogue.select_next_some()).await;
        if let Ok(SwarmEvent::Behaviour(BehaviourEvent::Ledger(request_response::Event::Message {
            message: request_response::Message::Request { request, channel, .. },
            ..
        }))) = ev
        {
            let response = match request {
                Incoming::Request(LedgerRequest::Blocks { from: 1 }) => LedgerResponse::Blocks(vec![serving.clone()]),
                Incoming::Request(LedgerRequest::Head) => LedgerResponse::Head {
                    genesis: genesis.hash(),
                    height: 1,
                },
                _ => LedgerResponse::Blocks(vec![]),
            };
            let _ = rogue.behaviour_mut().ledger.send_response(channel, response);
        }
        while let Ok(ev) = events.try_recv() {
            if let NodeEvent::Misbehaved { what, why, .. } = ev
                && what.as_str() == "bad_block"
            {
                assert!(why.contains("wrong state root"), "{why}");
                assert_eq!(fl.head().height, 0, "a refused block changes nothing");
                refused = true;
                // Now serve the right block; announce it again.
                serving = good.clone();
                announced = false;
            }
        }
    }
    assert!(refused, "the bad block was never refused");
    assert_eq!(fl.head().hash, good.hash());
    assert_eq!(fl.account(&vkey.id()).balance, Amount(10 + 1));
    follower.shutdown().await;
}

/// A node that dies after its job's last settlement landed but before it
/// recorded that: on restart it sees the escrow closed on the ledger and
/// records the job settled, paying nothing twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_settlement_that_landed_before_a_crash_is_not_paid_again() {
    let dir = tempfile::tempdir().unwrap();
    let (rkey, pkey) = (
        Arc::new(NodeKey::from_seed([51; 32])),
        Arc::new(NodeKey::from_seed([52; 32])),
    );
    std::fs::create_dir_all(dir.path().join("r")).unwrap();
    let rl = Ledger::open(
        &dir.path().join("r/ledger.db"),
        genesis(&rkey, &rkey, 1_000_000_000),
        rkey.clone(),
    )
    .unwrap();
    let rblobs = BlobStore::open(dir.path().join("r/blobs"), 1 << 30).unwrap();
    let requestor = start(NodeOptions {
        key: rkey.clone(),
        net: net(),
        blobs: rblobs.clone(),
        outputs: BlobStore::open(dir.path().join("r/outputs"), 1 << 30).unwrap(),
        agent: None,
        ledger: ledger_opts(&rl),
    })
    .await
    .unwrap();
    let provider = provider(&dir.path().join("p"), &pkey, None, None).await;
    connect(&requestor, &provider).await;
    let deadline = Instant::now() + Duration::from_secs(20);
    while requestor.offers().await.is_empty() {
        assert!(Instant::now() < deadline, "the offer did not arrive");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let db = dir.path().join("r/node.db");
    let store = JobStore::open(&db).unwrap();
    let engine = Requestor::new(requestor.clone(), rblobs.clone(), store.clone()).with_ledger(
        LedgerClient::new(rl.clone(), requestor.clone()),
        LedgerSettings::default(),
    );
    let job = engine.submit(tiles(&rblobs, 2)).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while store.job(&job).unwrap().unwrap().state == sharegrid_node::State::Running {
        assert!(Instant::now() < deadline, "the job did not finish");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (_, _, settled) = store.escrow(&job).unwrap().unwrap();
    assert!(settled);
    let paid = rl.account(&pkey.id()).balance;
    assert!(paid.0 > 0);
    let nonce = rl.account(&rkey.id()).nonce;

    // As if the node died before recording the settlement.
    let c = rusqlite::Connection::open(&db).unwrap();
    c.execute_batch("UPDATE receipts SET paid = 0; UPDATE jobs SET settled = 0;")
        .unwrap();
    assert_eq!(store.unsettled().unwrap(), vec![job.clone()]);
    engine.resume_all().unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while !store.escrow(&job).unwrap().unwrap().2 {
        assert!(Instant::now() < deadline, "the job was never recorded settled");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(rl.account(&rkey.id()).nonce, nonce, "no transaction was sent again");
    assert_eq!(rl.account(&pkey.id()).balance, paid);
    provider.shutdown().await;
    requestor.shutdown().await;
}
