//! Several real nodes on 127.0.0.1 in one process, each a full daemon
//! (swarm, event loop, provider agent, real sandbox, blob stores on disk):
//! offers spread, tasks cross with their blobs and come back as verified
//! receipts equal to local runs, policy refusals name their reason, and
//! bad input is rejected, counted, and changes nothing.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use futures::StreamExt;
use sharegrid_core::{
    Amount, Arch, Assignment, ContentId, Determinism, Fuel, GigafuelPerSec, NodeKey, Offer, PricePerGfuel, Program,
    Signed, TaskId, Terms, WIRE_VERSION, encode,
};
use sharegrid_net::{
    BehaviourEvent, Multiaddr, OFFERS_TOPIC, SwarmEvent, TaskRequest, build_swarm, gossipsub, request_response,
};
use sharegrid_node::testnet::{self};
use sharegrid_node::{Assigned, HoursWindow, NodeEvent, ProviderPolicy};
use sharegrid_sandbox::Task;

mod common;
use common::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn offers_spread_and_a_task_comes_back_as_a_receipt_equal_to_a_local_run() {
    let p1 = node(1, Some(providing(5))).await;
    let p2 = node(2, Some(providing(7))).await;
    let r = node(3, None).await;
    r.handle.dial(p1.addr().await).await.unwrap();
    r.handle.dial(p2.addr().await).await.unwrap();

    let offers: Vec<Offer> = r.handle.wait_for_offers(2).await;
    assert_eq!(offers.len(), 2);
    let by_p2 = offers.iter().find(|o| o.provider == p2.key.id()).unwrap();
    assert_eq!(by_p2.price, PricePerGfuel(Amount(7)));
    assert_eq!((by_p2.cores, by_p2.free_slots, by_p2.arch), (2, 2, Arch::host()));

    // wordcount over an input of several blob chunks.
    let mut a = assignment(&r, p1.key.id(), &guest("wordcount"), &[], 5);
    let text = b"alpha beta gamma\ndelta\n".repeat(100_000);
    a.inputs = vec![("words.txt".into(), r.blobs.put(&text).unwrap())];
    let (receipt, signed) = match r.handle.assign(&a).await.unwrap() {
        Assigned::Receipt { receipt, signed, .. } => (receipt, signed),
        Assigned::Refused(why) => panic!("refused: {why}"),
    };
    // The signature verifies independently of the node's own check.
    assert_eq!(signed.open::<sharegrid_core::Receipt>(4096).unwrap(), *receipt);

    let local = sandbox()
        .run(&Task {
            id: a.task,
            module: guest("wordcount").into(),
            args: vec![],
            stdin: Arc::from(&b""[..]),
            inputs: BTreeMap::from([("words.txt".to_string(), Arc::from(text.as_slice()))]),
            limits: a.limits,
            mode: a.mode,
            launch: Default::default(),
            mounts: Default::default(),
        })
        .unwrap();
    assert_eq!(receipt.result, local.result_hash);
    assert_eq!(receipt.fuel, local.fuel);
    assert_eq!(receipt.charge, PricePerGfuel(Amount(5)).cost(local.fuel).unwrap());

    // A stranger gets nothing: not the requestor's inputs or module, not
    // the output kept for the requestor (as for a blob no one has).
    let s = node(4, None).await;
    s.handle.dial(r.addr().await).await.unwrap();
    s.handle.dial(p1.addr().await).await.unwrap();
    let output = ContentId::from_bytes(*receipt.result.as_bytes());
    for (from, id) in [(&r, a.module), (&r, a.inputs[0].1), (&p1, output)] {
        let got = s.handle.fetch_blob(from.handle.peer_id(), id, 1 << 30).await;
        assert!(
            matches!(
                got,
                Err(sharegrid_node::FetchFailure::Bad(sharegrid_net::FetchError::NotFound(
                    _
                )))
            ),
            "{got:?}"
        );
    }

    // The outputs are kept for the requestor and arrive verified.
    let mut p1_events = p1.handle.subscribe();
    let result = r.handle.fetch_result(&receipt, 1 << 30).await.unwrap();
    assert_eq!(result, local.result);
    assert!(
        String::from_utf8_lossy(&result.stdout).contains("400000"),
        "{:?}",
        result.stdout
    );
    // Once fetched, the provider lets them go.
    event(&mut p1_events, "the output released", |e| {
        matches!(e, NodeEvent::OutputDropped(id) if *id == output).then_some(())
    })
    .await;
    assert_eq!(p1.handle.status().await.unwrap().provider.unwrap().outputs_retained, 0);

    // A second task, to the other provider, needs no new input fetch and works too.
    let b = assignment(&r, p2.key.id(), &guest("pi"), &["7", "1000"], 9);
    assert!(matches!(r.handle.assign(&b).await.unwrap(), Assigned::Receipt { .. }));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_provider_refuses_with_a_specific_reason() {
    let policy = ProviderPolicy {
        slots: 1,
        memory_per_task: 512 << 20,
        active_hours: vec!["09:00-17:00".parse::<HoursWindow>().unwrap()],
        idle_only: true,
        idle_threshold_percent: 30,
        ..providing(10)
    };
    let p = node(4, Some(policy)).await;
    let r = node(5, None).await;
    r.handle.dial(p.addr().await).await.unwrap();
    let pi = guest("pi");

    let cheap = assignment(&r, p.key.id(), &pi, &["1", "10"], 9);
    let why = refused(r.handle.assign(&cheap).await);
    assert!(why.contains("below this provider's floor of 10"), "{why}");

    let mut big = assignment(&r, p.key.id(), &pi, &["1", "10"], 10);
    big.limits.memory_bytes = 1 << 30;
    let why = refused(r.handle.assign(&big).await);
    // Memory plus output (64 MiB by default): what the task would hold.
    assert!(
        why.contains("asks for 1140850688 bytes of memory and output; this provider allows 536870912"),
        "{why}"
    );
    // Fuel and wall time are the owner's to bound too: no slot is pinned
    // for a day by a task whose requestor is long gone.
    let mut long = assignment(&r, p.key.id(), &pi, &["1", "10"], 10);
    long.limits.timeout_ms = 86_400_000;
    let why = refused(r.handle.assign(&long).await);
    assert!(
        why.contains("timeout of 86400 s is over this provider's 3600 s"),
        "{why}"
    );

    p.probe.load.store(80, Ordering::Relaxed);
    let ok = assignment(&r, p.key.id(), &pi, &["1", "10"], 10);
    assert!(refused(r.handle.assign(&ok).await).contains("not idle: host load 80% is above 30%"));
    p.probe.load.store(0, Ordering::Relaxed);

    p.probe.minute.store(20 * 60, Ordering::Relaxed);
    assert!(refused(r.handle.assign(&ok).await).contains("outside active hours (09:00-17:00)"));
    p.probe.minute.store(12 * 60, Ordering::Relaxed);

    // One slot: a long task holds it, a second is refused as busy.
    let mut long = assignment(&r, p.key.id(), &spin_module(), &[], 10);
    long.limits.fuel = Fuel(3_000_000_000);
    let h = r.handle.clone();
    let mut p_events = p.handle.subscribe();
    let first = tokio::spawn(async move { h.assign(&long).await });
    event(&mut p_events, "the slot taken", |e| {
        matches!(e, NodeEvent::Admitted { .. }).then_some(())
    })
    .await;
    assert!(refused(r.handle.assign(&ok).await).contains("busy: all 1 slots are in use"));
    match first.await.unwrap().unwrap() {
        Assigned::Receipt { receipt, .. } => assert_eq!(receipt.outcome, sharegrid_core::Outcome::OutOfFuel),
        Assigned::Refused(why) => panic!("{why}"),
    }
    // And with the slot free again the same assignment runs.
    assert!(matches!(r.handle.assign(&ok).await.unwrap(), Assigned::Receipt { .. }));
}

/// An attacker speaking the real protocols with a raw swarm.
struct Attacker {
    swarm: sharegrid_net::Swarm<sharegrid_net::Behaviour>,
    key: NodeKey,
    /// Blob bytes it serves, by the id asked for (may be lies).
    serves: std::collections::HashMap<ContentId, Vec<u8>>,
}

impl Attacker {
    async fn new(seed: u8, target: Multiaddr) -> Attacker {
        let key = NodeKey::from_seed([seed; 32]);
        let mut swarm = build_swarm(&key, &net()).unwrap();
        swarm.dial(target).unwrap();
        loop {
            if let SwarmEvent::ConnectionEstablished { .. } = swarm.select_next_some().await {
                break;
            }
        }
        Attacker {
            swarm,
            key,
            serves: Default::default(),
        }
    }

    /// Sends `request` to `to` and drives the swarm (serving blob requests)
    /// until the answer: `Ok(response)` or `Err(failure)`.
    async fn ask(
        &mut self,
        to: sharegrid_net::PeerId,
        request: TaskRequest,
    ) -> Result<sharegrid_net::TaskResponse, String> {
        use request_response::{Event, Message};
        let id = self.swarm.behaviour_mut().task.send_request(&to, request.into());
        loop {
            match self.swarm.select_next_some().await {
                SwarmEvent::Behaviour(BehaviourEvent::Task(Event::Message {
                    message: Message::Response { request_id, response },
                    ..
                })) if request_id == id => return Ok(response),
                SwarmEvent::Behaviour(BehaviourEvent::Task(Event::OutboundFailure { request_id, error, .. }))
                    if request_id == id =>
                {
                    return Err(error.to_string());
                }
                SwarmEvent::Behaviour(BehaviourEvent::Blob(Event::Message {
                    message:
                        Message::Request {
                            request: sharegrid_net::Incoming::Request(request),
                            channel,
                            ..
                        },
                    ..
                })) => {
                    let data = self.serves.get(&request.id).map(|d| d.as_slice());
                    let _ = self
                        .swarm
                        .behaviour_mut()
                        .blob
                        .send_response(channel, sharegrid_net::serve(data, &request));
                }
                _ => {}
            }
        }
    }

    fn signed(&self, a: &Assignment) -> Signed {
        Signed::sign(&self.key, a).unwrap()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_is_rejected_counted_and_the_node_keeps_serving() {
    let p = node(8, Some(providing(0))).await;
    let p_peer = p.handle.peer_id();
    let mut events = p.handle.subscribe();
    let mut evil = Attacker::new(9, p.addr().await).await;
    let evil_peer = *evil.swarm.local_peer_id();
    let program = Program::new(ContentId::of(b"m"), ContentId::of(b""));
    let terms = Terms {
        chain: p.handle.chain(),
        requestor: evil.key.id(),
        provider: p.key.id(),
        price: PricePerGfuel(Amount(0)),
        escrow: None,
    };
    let template = Assignment::new(
        TaskId::from_bytes([1; 32]),
        vec![],
        &program,
        terms,
        sharegrid_node::now_ms(),
    );
    let refusal = |r: Result<sharegrid_net::TaskResponse, String>| match r {
        Ok(sharegrid_net::TaskResponse::Refused { reason }) => reason,
        other => panic!("expected a refusal, got {other:?}"),
    };

    // 1. A module that fails validation, served correctly.
    let junk = b"\0asm\x01\0\0\0\x99garbage".to_vec();
    let a = Assignment {
        module: ContentId::of(&junk),
        ..template.clone()
    };
    evil.serves.insert(ContentId::of(&junk), junk);
    evil.serves.insert(ContentId::of(b""), vec![]);
    let why = refusal(
        evil.ask(
            p_peer,
            TaskRequest {
                assignment: evil.signed(&a),
            },
        )
        .await,
    );
    assert!(why.contains("invalid module"), "{why}");

    // 2. A blob whose bytes do not match its hash.
    let module = guest("pi");
    let b = Assignment {
        module: ContentId::of(&module),
        task: TaskId::from_bytes([2; 32]),
        ..template.clone()
    };
    evil.serves.insert(ContentId::of(&module), b"not the module".to_vec());
    let why = refusal(
        evil.ask(
            p_peer,
            TaskRequest {
                assignment: evil.signed(&b),
            },
        )
        .await,
    );
    assert!(why.contains("do not hash to"), "{why}");
    assert!(!p.blobs.has(&ContentId::of(&module)), "the lie was not stored");

    // 3. An assignment with a forged signature (and one relayed from someone else).
    let mut forged = evil.signed(&b);
    forged.signature = Signed::sign(&evil.key, &template).unwrap().signature;
    let why = refusal(evil.ask(p_peer, TaskRequest { assignment: forged }).await);
    assert!(why.contains("bad signature on assignment"), "{why}");

    // 4. Malformed CBOR inside the envelope, correctly signed, so it is the
    // decoding that refuses it.
    let mut malformed = evil.signed(&b);
    malformed.body = vec![0xff, 0x00, 0x13];
    malformed.signature = evil.key.sign(sharegrid_core::Domain::Assignment, &malformed.body);
    let why = refusal(evil.ask(p_peer, TaskRequest { assignment: malformed }).await);
    assert!(why.contains("malformed"), "{why}");

    // 5. An oversized message: refused before decoding.
    let mut huge = evil.signed(&b);
    huge.body = vec![0; 300 * 1024];
    let why = refusal(evil.ask(p_peer, TaskRequest { assignment: huge }).await);
    assert!(why.contains("exceeds the 262144-byte cap"), "{why}");

    // The kinds of bad input reported so far, as events.
    let mut seen = std::collections::HashSet::new();
    while let Ok(ev) = events.try_recv() {
        if let NodeEvent::Misbehaved { peer, what, why, .. } = ev {
            assert_eq!(peer, evil_peer);
            assert!(!why.is_empty());
            seen.insert(what.as_str());
        }
    }

    // 6. Gossip: garbage and an offer signed by someone else.
    let topic = gossipsub::IdentTopic::new(OFFERS_TOPIC);
    let other = NodeKey::from_seed([99; 32]);
    let foreign = Offer {
        version: WIRE_VERSION,
        provider: other.id(),
        arch: Arch::host(),
        cores: 64,
        memory_bytes: 1 << 40,
        free_slots: 64,
        speed: GigafuelPerSec(1000.0),
        price: PricePerGfuel(Amount(0)),
        stake: Amount(0),
        modes: vec![Determinism::Native],
        software: "evil".into(),
        seq: 1,
        expires_at_ms: u64::MAX,
    };
    let foreign = encode(&Signed::sign(&other, &foreign).unwrap()).unwrap();
    let gossip = async {
        let mut pending = vec![vec![0xa1, 0xff, 0x00], foreign];
        while let Some(msg) = pending.first().cloned() {
            if evil.swarm.behaviour_mut().gossipsub.publish(topic.clone(), msg).is_ok() {
                pending.remove(0);
                continue;
            }
            // No one listens yet: run the swarm until the provider subscribes.
            loop {
                if let SwarmEvent::Behaviour(BehaviourEvent::Gossipsub(gossipsub::Event::Subscribed { .. })) =
                    evil.swarm.select_next_some().await
                {
                    break;
                }
            }
        }
        // Drive the attacker's swarm until the provider has judged both.
        let mut judged = 0;
        while judged < 2 {
            tokio::select! {
                _ = evil.swarm.select_next_some() => {}
                ev = events.recv() => if let NodeEvent::Misbehaved { peer, what, why, .. } = ev.unwrap() {
                    assert_eq!(peer, evil_peer);
                    if why.contains("offer") {
                        judged += 1;
                    }
                    seen.insert(what.as_str());
                },
            }
        }
    };
    tokio::time::timeout(testnet::WAIT_GUARD, gossip)
        .await
        .expect("the gossip got through and was judged");

    // Every kind was counted against the attacker, with a logged reason.
    while let Ok(ev) = events.try_recv() {
        if let NodeEvent::Misbehaved { peer, what, why, .. } = ev {
            assert_eq!(peer, evil_peer);
            assert!(!why.is_empty());
            seen.insert(what.as_str());
        }
    }
    let status = p.handle.status().await.unwrap();
    let counted: std::collections::HashSet<&str> = status
        .misbehaviour
        .iter()
        .filter(|m| m.peer == evil_peer.to_string())
        .map(|m| m.kind.as_str())
        .collect();
    for kind in ["invalid_module", "bad_blob", "bad_signature", "malformed", "oversized"] {
        assert!(counted.contains(kind), "{kind} not counted: {:?}", status.misbehaviour);
        assert!(seen.contains(kind), "{kind} not reported as an event");
    }
    assert_eq!(
        status.provider.as_ref().unwrap().busy,
        0,
        "no bad assignment holds a slot"
    );
    assert_eq!(status.provider.unwrap().tasks_run, 0);

    // The node keeps serving honest peers.
    let r = node(10, None).await;
    r.handle.dial(p.addr().await).await.unwrap();
    let ok = assignment(&r, p.key.id(), &module, &["3", "100"], 0);
    assert!(matches!(r.handle.assign(&ok).await.unwrap(), Assigned::Receipt { .. }));
    assert!(
        r.handle.offers().await.iter().all(|o| o.provider != other.id()),
        "the forged offer was not kept (nor forwarded)"
    );
}
