//! The ledger between real nodes on 127.0.0.1. A vanished requestor cannot
//! stiff anyone: a validator, a provider following the ledger, a requestor
//! that opens an escrow, has work done and disappears before settling; once
//! the claim height passes, the provider claims its pay from the escrow with
//! the requestor's signed assignment and its own receipt, held for the
//! challenge window and collected after it. A follower
//! refuses a block that does not check, whoever signed it. A settlement
//! that landed before a crash is not paid again. Every wait is on an event.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::Arc;

use sharegrid_core::{Amount, NodeKey, Receipt};
use sharegrid_ledger::{Op, Tx};
use sharegrid_node::testnet::{self, LedgerSpec, ProviderSpec, TestNode, Testnet, wait_for};
use sharegrid_node::{JobStore, JobSubmission, LedgerSettings, NodeEvent, PaymentEvent};
use sharegrid_sandbox::{Sandbox, SandboxConfig};

/// A job of `n` small Mandelbrot tiles, r = 1, within a budget.
fn tiles(blobs: &sharegrid_node::BlobStore, n: u32) -> JobSubmission {
    let tasks = (0..n)
        .map(|c| [c, 0, n, 1, 320, 240, 256].iter().map(u32::to_string).collect())
        .collect();
    common::tile_job(blobs, tasks)
}

fn sandbox() -> Arc<Sandbox> {
    Arc::new(Sandbox::new(SandboxConfig::default()).unwrap())
}

/// A plain node following the ledger of `genesis` (its key `key`).
async fn follower(
    dir: &std::path::Path,
    genesis: &sharegrid_ledger::Genesis,
    key: Arc<NodeKey>,
) -> (Arc<sharegrid_node::Ledger>, TestNode) {
    let ledger = testnet::open_ledger(dir, genesis, &key).unwrap();
    let settings = LedgerSpec::default().settings;
    let node = testnet::start_plain(
        dir,
        "follower",
        key,
        testnet::loopback(),
        Some((ledger.clone(), &settings)),
    )
    .await
    .unwrap();
    (ledger, node)
}

/// Waits until `node`'s ledger is at `height` or above.
async fn at_height(node: &TestNode, height: u64) {
    let mut events = node.handle.subscribe();
    let ledger = node.ledger.as_ref().unwrap();
    if ledger.head().height >= height {
        return;
    }
    wait_for(&mut events, "the height", |e| match e {
        NodeEvent::Block { height: h } if *h >= height => Some(()),
        _ => None,
    })
    .await
    .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_provider_claims_its_pay_when_the_requestor_vanishes() {
    let _ = tracing_subscriber::fmt()
        .with_test_writer()
        .with_env_filter(tracing_subscriber::EnvFilter::new("sharegrid_node=debug"))
        .try_init();
    let dir = tempfile::tempdir().unwrap();
    let (vkey, pkey, rkey) = (
        Arc::new(NodeKey::from_seed([1; 32])),
        Arc::new(NodeKey::from_seed([2; 32])),
        Arc::new(NodeKey::from_seed([3; 32])),
    );
    let genesis = testnet::genesis(&vkey, &rkey, 1_000_000_000, 100);
    let settings = LedgerSettings {
        block_interval_ms: 20,
        idle_block_secs: 1,
        claim_after_blocks: 2,
        close_after_blocks: 10_000,
        settle_batch: 1_000,
        ..LedgerSettings::default()
    };
    let home = |n: &str| dir.path().join(n);
    let net = testnet::loopback();
    let vl = testnet::open_ledger(&home("v"), &genesis, &vkey).unwrap();
    let validator = testnet::start_plain(
        &home("v"),
        "validator",
        vkey.clone(),
        net.clone(),
        Some((vl.clone(), &settings)),
    )
    .await
    .unwrap();

    // The provider: one slot, so the job's tasks run one after another; it
    // follows the ledger and runs its own payment task, which claims.
    let pl = testnet::open_ledger(&home("p"), &genesis, &pkey).unwrap();
    let spec = ProviderSpec::new("p", 1.0, 1).price_floor(1_000);
    let provider = testnet::start_provider(
        &home("p"),
        pkey.clone(),
        &spec,
        sandbox(),
        net.clone(),
        Some((pl.clone(), &settings)),
    )
    .await
    .unwrap();
    let proofs = sharegrid_node::ProofStore::of(&JobStore::open(&home("p").join("node.db")).unwrap());
    let mut claims = provider.payments.as_ref().unwrap().subscribe();

    let rl = testnet::open_ledger(&home("r"), &genesis, &rkey).unwrap();
    let rnode = testnet::start_plain(
        &home("r"),
        "requestor",
        rkey.clone(),
        net,
        Some((rl.clone(), &settings)),
    )
    .await
    .unwrap();
    let r = testnet::requestor(rnode, Some(&settings)).unwrap();
    testnet::connect(&provider.handle, &validator).await.unwrap();
    testnet::connect(&r.node.handle, &validator).await.unwrap();
    testnet::connect(&r.node.handle, &provider).await.unwrap();
    r.node.handle.wait_for_offers(1).await;

    let sub = tiles(&r.node.blobs, 4);
    // An unfundable job is refused before anything runs.
    let mut greedy = sub.clone();
    greedy.budget = Amount(10_000_000_000);
    greedy.price_ceiling = Amount(u128::MAX);
    let err = r.engine.submit(greedy).await.unwrap_err().to_string();
    assert!(err.contains("cannot fund the job") && err.contains("balance"), "{err}");

    let mut ran = provider.handle.subscribe();
    let job = r.engine.submit(sub).await.unwrap();
    let escrow = job.escrow(&rkey.id());
    assert!(
        rl.escrow(&escrow).is_some(),
        "the escrow is in a block before work starts"
    );
    // The requestor vanishes as soon as the first task has run.
    wait_for(&mut ran, "a task run", |e| {
        matches!(e, NodeEvent::Ran { .. }).then_some(())
    })
    .await
    .unwrap();
    r.node.handle.shutdown().await;

    // The provider claims once the claim height passes (the validator keeps
    // heights moving while escrows are open). Alone, each claim is held for
    // the challenge window; no one disputes it (this validator judges
    // nothing), so the provider collects it after, then forgets its proof.
    wait_for(&mut claims, "a claim", |e| {
        matches!(e, PaymentEvent::Claimed { .. }).then_some(())
    })
    .await
    .unwrap();
    while !proofs.all().unwrap().is_empty() {
        wait_for(&mut claims, "a claim collected", |e| {
            matches!(e, PaymentEvent::Collected { .. }).then_some(())
        })
        .await
        .unwrap();
    }
    at_height(&validator, pl.head().height).await;
    let e = vl.escrow(&escrow).expect("the escrow stays open for the rest");
    let claimed: Vec<_> = e.paid.iter().filter(|(_, p)| *p == pkey.id()).collect();
    assert!(!claimed.is_empty());
    // Paid exactly what its receipts charge, once per task, less the fee
    // of each claim and collect transaction; supply conserved.
    let mut charged = 0u128;
    let (mut claim_txs, mut collect_txs) = (0u128, 0u128);
    for f in vl.history(&pkey.id(), 100).unwrap() {
        let tx: Tx = sharegrid_core::decode_capped(&f.signed.body, 1 << 20).unwrap();
        match tx.op {
            Op::Claim { paid, .. } => {
                let r: Receipt = paid.receipt.open(1 << 20).unwrap();
                charged += r.charge.0;
                claim_txs += 1;
            }
            Op::Collect { .. } => collect_txs += 1,
            _ => {}
        }
    }
    assert_eq!(claim_txs as usize, claimed.len(), "one claim per task run");
    assert_eq!(collect_txs, claim_txs, "each held claim collected once");
    assert!(vl.with_state(|s| s.claims.is_empty()));
    assert_eq!(vl.account(&pkey.id()).balance.0, charged - claim_txs - collect_txs);
    assert_eq!(vl.with_state(|s| s.supply()), 1_000_000_000);
    provider.handle.shutdown().await;
    validator.handle.shutdown().await;
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
    let genesis = testnet::genesis(&vkey, &rich, 1_000, 100);
    let (fl, follower) = follower(dir.path(), &genesis, fkey).await;
    let target = follower.addr().await.unwrap();

    // The good block 1 (a transfer), and a copy whose header claims another
    // state root, both signed with the validator's key.
    let chain = Chain::new(&genesis).unwrap();
    let t = Tx {
        version: sharegrid_ledger::TX_VERSION,
        chain: genesis.hash(),
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
        certificate: Vec::new(),
    };

    let mut rogue = build_swarm(&vkey, &testnet::loopback()).unwrap();
    rogue.dial(target).unwrap();
    let mut events = follower.handle.subscribe();
    let topic = gossipsub::IdentTopic::new(BLOCKS_TOPIC);
    let mut serving = bad.clone();
    let mut refused = false;
    let announce = |rogue: &mut sharegrid_net::Swarm<sharegrid_net::Behaviour>, b: &Block| {
        let _ = rogue
            .behaviour_mut()
            .gossipsub
            .publish(topic.clone(), encode(&b.header).unwrap());
    };
    let run = async {
        loop {
            tokio::select! {
                ev = rogue.select_next_some() => match ev {
                    // The follower listens for blocks: announce the one served.
                    SwarmEvent::Behaviour(BehaviourEvent::Gossipsub(gossipsub::Event::Subscribed { topic: t, .. }))
                        if t == topic.hash() => announce(&mut rogue, &serving),
                    SwarmEvent::Behaviour(BehaviourEvent::Ledger(request_response::Event::Message {
                        message: request_response::Message::Request { request, channel, .. },
                        ..
                    })) => {
                        let response = match request {
                            Incoming::Request(LedgerRequest::Blocks { from: 1 }) => {
                                LedgerResponse::Blocks(vec![serving.clone()])
                            }
                            Incoming::Request(LedgerRequest::Head) => LedgerResponse::Head {
                                genesis: genesis.hash(),
                                height: 1,
                                header: Some(serving.header.clone()),
                            },
                            _ => LedgerResponse::Blocks(vec![]),
                        };
                        let _ = rogue.behaviour_mut().ledger.send_response(channel, response);
                    }
                    _ => {}
                },
                ev = events.recv() => match ev.unwrap() {
                    NodeEvent::Misbehaved { what, why, .. } if what.as_str() == "bad_block" => {
                        assert!(why.contains("wrong state root"), "{why}");
                        assert_eq!(fl.head().height, 0, "a refused block changes nothing");
                        refused = true;
                        // Now serve the right block; announce it again.
                        serving = good.clone();
                        announce(&mut rogue, &serving);
                    }
                    NodeEvent::Block { height: 1 } => return,
                    _ => {}
                },
            }
        }
    };
    tokio::time::timeout(testnet::WAIT_GUARD, run)
        .await
        .expect("the follower took the good block");
    assert!(refused, "the bad block was never refused");
    assert_eq!(fl.head().hash, good.hash());
    assert_eq!(fl.account(&vkey.id()).balance, Amount(10 + 1));
    follower.handle.shutdown().await;
}

/// A peer answering a follower's head request with a height no validator
/// signed (a bare number, as before heads were signed) is counted, and the
/// follower asks it for no blocks.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_head_height_no_validator_signed_steers_no_sync() {
    use futures::StreamExt;
    use sharegrid_net::{
        BehaviourEvent, Incoming, LedgerRequest, LedgerResponse, SwarmEvent, build_swarm, request_response,
    };

    let dir = tempfile::tempdir().unwrap();
    let vkey = NodeKey::from_seed([51; 32]);
    let fkey = Arc::new(NodeKey::from_seed([52; 32]));
    let genesis = testnet::genesis(&vkey, &vkey, 1_000, 100);
    let (fl, follower) = follower(dir.path(), &genesis, fkey).await;
    let mallory = NodeKey::from_seed([53; 32]);
    let mut rogue = build_swarm(&mallory, &testnet::loopback()).unwrap();
    rogue.dial(follower.addr().await.unwrap()).unwrap();
    let mut events = follower.handle.subscribe();
    let mut asked_for_blocks = false;
    let run = async {
        loop {
            tokio::select! {
                ev = rogue.select_next_some() => if let SwarmEvent::Behaviour(BehaviourEvent::Ledger(request_response::Event::Message {
                    message: request_response::Message::Request { request, channel, .. },
                    ..
                })) = ev {
                    let response = match request {
                        Incoming::Request(LedgerRequest::Head) => LedgerResponse::Head {
                            genesis: genesis.hash(),
                            height: 1_000_000,
                            header: None,
                        },
                        _ => {
                            asked_for_blocks = true;
                            LedgerResponse::Blocks(vec![])
                        }
                    };
                    let _ = rogue.behaviour_mut().ledger.send_response(channel, response);
                },
                ev = events.recv() => if let NodeEvent::Misbehaved { what, why, .. } = ev.unwrap() {
                    assert_eq!(what.as_str(), "bad_block");
                    return why;
                },
            }
        }
    };
    let why = tokio::time::timeout(testnet::WAIT_GUARD, run)
        .await
        .expect("the head was refused");
    assert!(why.contains("without a signed header"), "{why}");
    assert!(!asked_for_blocks);
    assert_eq!(fl.head().height, 0);
    follower.handle.shutdown().await;
}

/// A node that dies after its job's last settlement landed but before it
/// recorded that: on restart it sees the escrow closed on the ledger and
/// records the job settled, paying nothing twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_settlement_that_landed_before_a_crash_is_not_paid_again() {
    let dir = tempfile::tempdir().unwrap();
    let spec = LedgerSpec {
        funds: 1_000_000_000,
        ..LedgerSpec::default()
    };
    let net = Testnet::builder(dir.path())
        .provider(ProviderSpec::new("p", 1.0, 1).price_floor(1_000))
        .ledger(spec)
        .start()
        .await
        .unwrap();
    let r = &net.requestor;
    let (rl, pkey) = (r.node.ledger.clone().unwrap(), net.providers[0].key.clone());
    let payments = r.payments.as_ref().unwrap();
    let mut paid = payments.subscribe();
    let job = r.engine.submit(tiles(&r.node.blobs, 2)).await.unwrap();
    wait_for(&mut paid, "the settlement", |e| match e {
        PaymentEvent::Settled { job: j } if *j == job => Some(()),
        _ => None,
    })
    .await
    .unwrap();
    assert!(r.store.escrow(&job).unwrap().unwrap().settled);
    let earned = rl.account(&pkey.id()).balance;
    assert!(earned.0 > 0);
    let nonce = rl.account(&r.node.key.id()).nonce;

    // As if the node died before recording the settlement.
    let c = rusqlite::Connection::open(r.node.home.join("node.db")).unwrap();
    c.execute_batch("UPDATE receipts SET paid = 0; UPDATE jobs SET settled = 0;")
        .unwrap();
    assert_eq!(r.store.unsettled().unwrap(), vec![job]);
    r.engine.resume_all().unwrap();
    wait_for(&mut paid, "the settlement after restart", |e| match e {
        PaymentEvent::Settled { job: j } if *j == job => Some(()),
        _ => None,
    })
    .await
    .unwrap();
    assert!(r.store.escrow(&job).unwrap().unwrap().settled);
    assert_eq!(
        rl.account(&r.node.key.id()).nonce,
        nonce,
        "no transaction was sent again"
    );
    assert_eq!(rl.account(&pkey.id()).balance, earned);
    net.shutdown().await;
}

/// One peer asking a node's ledger as fast as it can gets the burst its
/// rate allows, then refusals that count against it until it is banned;
/// another peer's request is answered meanwhile.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_flooding_ledger_requests_is_refused_then_banned_while_others_are_served() {
    use sharegrid_net::{LedgerRequest, LedgerResponse, Protocol};

    let dir = tempfile::tempdir().unwrap();
    let net = Testnet::builder(dir.path())
        .ledger(LedgerSpec::default())
        .start()
        .await
        .unwrap();
    let node = &net.requestor.node;
    let target = node.addr().await.unwrap();
    let peer = node.handle.peer_id();
    let plain = |seed: u8, name: &'static str| {
        let home = dir.path().join(name);
        async move {
            testnet::start_plain(
                &home,
                name,
                Arc::new(NodeKey::from_seed([seed; 32])),
                testnet::loopback(),
                None,
            )
            .await
            .unwrap()
        }
    };
    let flooder = plain(61, "flooder").await;
    let honest = plain(62, "honest").await;
    flooder.handle.dial(target.clone()).await.unwrap();
    honest.handle.dial(target).await.unwrap();

    let (burst, _) = Protocol::Ledger.rate();
    // In waves of 50 at once (as many streams as one connection carries).
    let mut answers = Vec::new();
    for _ in 0..(burst + 200) / 50 {
        let asks = (0..50).map(|_| flooder.handle.ledger_request(peer, LedgerRequest::Head));
        answers.extend(futures::future::join_all(asks).await);
    }
    let answered = answers
        .iter()
        .filter(|a| matches!(a, Ok(LedgerResponse::Head { .. })))
        .count();
    let limited = answers
        .iter()
        .filter(|a| matches!(a, Ok(LedgerResponse::Refused { reason }) if reason.starts_with("rate limited")))
        .count();
    let errors: Vec<String> = answers
        .iter()
        .filter_map(|a| a.as_ref().err().map(|e| e.to_string()))
        .take(3)
        .collect();
    assert!(
        answered >= burst as usize && answered < 450,
        "{answered} {limited} {errors:?}"
    );
    assert!(limited > 0, "some were refused");
    // The honest peer is served, and the flooder is on the node's table.
    let head = honest.handle.ledger_request(peer, LedgerRequest::Head).await.unwrap();
    assert!(matches!(head, LedgerResponse::Head { .. }), "{head:?}");
    let status = node.handle.status().await.unwrap();
    assert!(
        status
            .misbehaviour
            .iter()
            .any(|m| m.kind == "flooding" && m.peer == flooder.handle.peer_id().to_string()),
        "{:?}",
        status.misbehaviour
    );
    // Going on past 100 refusals, it is banned: cut off, not answered.
    let mut after = Vec::new();
    for _ in 0..6 {
        let more = (0..50).map(|_| flooder.handle.ledger_request(peer, LedgerRequest::Head));
        after.extend(futures::future::join_all(more).await);
    }
    assert!(after.iter().any(Result::is_err), "the flooder was disconnected");
    flooder.handle.shutdown().await;
    honest.handle.shutdown().await;
    net.shutdown().await;
}
