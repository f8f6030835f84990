//! Two real swarms on 127.0.0.1: a provider's signed offer reaches the
//! requestor by gossip and passes its offer book; a signed assignment goes
//! out over the task protocol and a signed receipt comes back; a forged
//! assignment is refused with the reason. mDNS stays off.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use futures::StreamExt;
use sharegrid_core::{
    Amount, Arch, Assignment, ContentId, Determinism, Fuel, GigafuelPerSec, Limits, NodeKey, Offer, Outcome,
    PricePerGfuel, Receipt, ResultHash, Signed, TaskId, WIRE_VERSION, encode,
};
use sharegrid_net::{
    BehaviourEvent, NetConfig, OFFERS_TOPIC, OfferBook, SwarmEvent, TaskRequest, TaskResponse, build_swarm, gossipsub,
    peer_id, request_response,
};

fn offer(key: &NodeKey) -> Offer {
    Offer {
        version: WIRE_VERSION,
        provider: key.id(),
        arch: Arch::host(),
        cores: 2,
        memory_bytes: 1 << 30,
        free_slots: 2,
        speed: GigafuelPerSec(10.0),
        price: PricePerGfuel(Amount(7)),
        stake: Amount(0),
        modes: vec![Determinism::Native],
        software: "sharegrid test".into(),
        seq: 1,
        expires_at_ms: u64::MAX,
    }
}

fn assignment(requestor: &NodeKey, provider: &NodeKey) -> Assignment {
    Assignment {
        version: WIRE_VERSION,
        chain: ContentId::of(b"network"),
        task: TaskId::from_bytes([9; 32]),
        requestor: requestor.id(),
        provider: provider.id(),
        module: ContentId::of(b"module"),
        args: vec!["1".into()],
        stdin: ContentId::of(b""),
        inputs: vec![],
        limits: Limits::default(),
        mode: Determinism::Native,
        launch: Default::default(),
        mounts: Vec::new(),
        price: PricePerGfuel(Amount(7)),
        expires_at_ms: u64::MAX,
        escrow: None,
    }
}

/// The provider's side of the test: open the assignment, answer with a
/// receipt (the real agent runs the sandbox here) or the refusal reason.
fn answer(provider: &NodeKey, request: &TaskRequest) -> TaskResponse {
    match request.assignment.open::<Assignment>(64 * 1024) {
        Err(e) => TaskResponse::Refused { reason: e.to_string() },
        Ok(a) => {
            let fuel = Fuel(2_000_000_000);
            let receipt = Receipt {
                version: WIRE_VERSION,
                task: a.task,
                provider: provider.id(),
                assignment: request.assignment.id(),
                outcome: Outcome::Completed { exit_code: 0 },
                result: ResultHash::from_bytes([3; 32]),
                fuel,
                price: a.price,
                charge: a.price.cost(fuel).unwrap(),
            };
            TaskResponse::Receipt(Signed::sign(provider, &receipt).unwrap())
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn offers_gossip_and_tasks_round_trip_on_loopback() {
    let provider_key = NodeKey::from_seed([1; 32]);
    let requestor_key = NodeKey::from_seed([2; 32]);
    let cfg = NetConfig {
        listen: vec!["/ip4/127.0.0.1/tcp/0".parse().unwrap()],
        ..NetConfig::default()
    };
    let mut provider = build_swarm(&provider_key, &cfg).unwrap();
    let mut requestor = build_swarm(&requestor_key, &cfg).unwrap();
    let provider_peer = peer_id(&provider_key.id()).unwrap();
    assert_eq!(*provider.local_peer_id(), provider_peer);

    let addr = loop {
        if let SwarmEvent::NewListenAddr { address, .. } = provider.select_next_some().await {
            break address;
        }
    };
    requestor.dial(addr).unwrap();

    let mut book = OfferBook::new(100);
    let mut published = false;
    let mut sent_good = false;
    let mut receipt: Option<Receipt> = None;
    let mut refusal: Option<String> = None;
    let run = async {
        loop {
            tokio::select! {
                ev = provider.select_next_some() => match ev {
                    SwarmEvent::Behaviour(BehaviourEvent::Gossipsub(gossipsub::Event::Subscribed { .. })) if !published => {
                        let bytes = encode(&Signed::sign(&provider_key, &offer(&provider_key)).unwrap()).unwrap();
                        provider
                            .behaviour_mut()
                            .gossipsub
                            .publish(gossipsub::IdentTopic::new(OFFERS_TOPIC), bytes)
                            .unwrap();
                        published = true;
                    }
                    SwarmEvent::Behaviour(BehaviourEvent::Task(request_response::Event::Message {
                        message: request_response::Message::Request { request: sharegrid_net::Incoming::Request(request), channel, .. }, ..
                    })) => {
                        let response = answer(&provider_key, &request);
                        provider.behaviour_mut().task.send_response(channel, response).unwrap();
                    }
                    _ => {}
                },
                ev = requestor.select_next_some() => match ev {
                    SwarmEvent::Behaviour(BehaviourEvent::Gossipsub(gossipsub::Event::Message { message, .. })) => {
                        let offer = book.accept(&message.data, message.source, 0).unwrap();
                        assert_eq!(offer.provider, provider_key.id());
                        // A good assignment, and one whose signature is forged.
                        let good = Signed::sign(&requestor_key, &assignment(&requestor_key, &provider_key)).unwrap();
                        let mut forged = good.clone();
                        forged.signature = Signed::sign(&provider_key, &offer).unwrap().signature;
                        let task = &mut requestor.behaviour_mut().task;
                        task.send_request(&provider_peer, TaskRequest { assignment: good }.into());
                        task.send_request(&provider_peer, TaskRequest { assignment: forged }.into());
                        sent_good = true;
                    }
                    SwarmEvent::Behaviour(BehaviourEvent::Task(request_response::Event::Message {
                        message: request_response::Message::Response { response, .. }, ..
                    })) => {
                        match response {
                            TaskResponse::Receipt(signed) => receipt = Some(signed.open(64 * 1024).unwrap()),
                            TaskResponse::Refused { reason } => refusal = Some(reason),
                        }
                        if receipt.is_some() && refusal.is_some() {
                            return;
                        }
                    }
                    _ => {}
                },
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(60), run)
        .await
        .expect("loopback exchange timed out");
    assert!(sent_good);
    let r = receipt.unwrap();
    assert_eq!(r.provider, provider_key.id());
    assert_eq!(
        r.assignment,
        Signed::sign(&requestor_key, &assignment(&requestor_key, &provider_key))
            .unwrap()
            .id()
    );
    assert_eq!(r.charge, Amount(14));
    assert_eq!(refusal.unwrap(), "bad signature on assignment");
    assert_eq!(book.live(0).len(), 1);
}

/// A 2.5 MiB blob crosses in chunks over the blob protocol and is verified;
/// an unknown blob is answered NotFound.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blobs_cross_in_verified_chunks() {
    use sharegrid_net::{BlobFetch, BlobResponse, FetchError, FetchStep, serve};
    let holder_key = NodeKey::from_seed([5; 32]);
    let fetcher_key = NodeKey::from_seed([6; 32]);
    let cfg = NetConfig {
        listen: vec!["/ip4/127.0.0.1/tcp/0".parse().unwrap()],
        ..NetConfig::default()
    };
    let mut holder = build_swarm(&holder_key, &cfg).unwrap();
    let mut fetcher = build_swarm(&fetcher_key, &cfg).unwrap();
    let holder_peer = peer_id(&holder_key.id()).unwrap();
    let blob: Vec<u8> = (0..(5 << 19)).map(|i: u32| (i % 253) as u8).collect();
    let id = ContentId::of(&blob);
    let addr = loop {
        if let SwarmEvent::NewListenAddr { address, .. } = holder.select_next_some().await {
            break address;
        }
    };
    fetcher.dial(addr).unwrap();
    let mut fetch = BlobFetch::new(id, 16 << 20);
    let mut unknown = BlobFetch::new(ContentId::of(b"nobody has this"), 16 << 20);
    let mut unknown_req = None;
    let mut chunks = 0;
    let (mut got, mut missing) = (None, None);
    let run = async {
        loop {
            tokio::select! {
                ev = holder.select_next_some() => {
                    if let SwarmEvent::Behaviour(BehaviourEvent::Blob(request_response::Event::Message {
                        message: request_response::Message::Request { request: sharegrid_net::Incoming::Request(request), channel, .. }, ..
                    })) = ev {
                        let held = (request.id == id).then_some(blob.as_slice());
                        holder.behaviour_mut().blob.send_response(channel, serve(held, &request)).unwrap();
                    }
                }
                ev = fetcher.select_next_some() => {
                    if let SwarmEvent::ConnectionEstablished { peer_id, .. } = &ev
                        && *peer_id == holder_peer
                        && unknown_req.is_none()
                    {
                        fetcher.behaviour_mut().blob.send_request(&holder_peer, fetch.first().into());
                        unknown_req = Some(fetcher.behaviour_mut().blob.send_request(&holder_peer, unknown.first().into()));
                    }
                    if let SwarmEvent::Behaviour(BehaviourEvent::Blob(request_response::Event::OutboundFailure { error, .. })) = &ev {
                        panic!("blob request failed: {error}");
                    }
                    if let SwarmEvent::Behaviour(BehaviourEvent::Blob(request_response::Event::Message {
                        message: request_response::Message::Response { request_id, response }, ..
                    })) = ev {
                        if Some(request_id) == unknown_req {
                            missing = Some(unknown.on_response(response));
                        } else {
                            chunks += 1;
                            assert!(matches!(response, BlobResponse::Chunk { .. }));
                            match fetch.on_response(response).unwrap() {
                                FetchStep::Next(req) => {
                                    fetcher.behaviour_mut().blob.send_request(&holder_peer, req.into());
                                }
                                FetchStep::Done(bytes) => got = Some(bytes),
                                other => panic!("in memory, not {other:?}"),
                            }
                        }
                        if got.is_some() && missing.is_some() {
                            return;
                        }
                    }
                }
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(60), run)
        .await
        .expect("blob exchange timed out");
    assert_eq!(got.unwrap(), blob);
    assert_eq!(chunks, 3, "2.5 MiB in 1 MiB chunks");
    assert!(matches!(missing.unwrap(), Err(FetchError::NotFound(_))));
}

/// The port a swarm listens on, once it does.
async fn listening_port(swarm: &mut libp2p::Swarm<sharegrid_net::Behaviour>) -> u16 {
    loop {
        if let SwarmEvent::NewListenAddr { address, .. } = swarm.select_next_some().await {
            for p in address.iter() {
                if let libp2p::multiaddr::Protocol::Tcp(port) = p {
                    return port;
                }
            }
        }
    }
}

/// libp2p listens with SO_REUSEPORT, so a second node configured with the
/// same port would share it with the first: it takes the next free one
/// instead, or with no fallback refuses to start, naming the port.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_node_never_shares_a_listen_port() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let cfg = |fallback: u16| NetConfig {
        listen: vec![format!("/ip4/127.0.0.1/tcp/{port}").parse().unwrap()],
        port_fallback: fallback,
        ..NetConfig::default()
    };
    let mut first = build_swarm(&NodeKey::from_seed([1; 32]), &cfg(16)).unwrap();
    assert_eq!(listening_port(&mut first).await, port);
    let mut second = build_swarm(&NodeKey::from_seed([2; 32]), &cfg(16)).unwrap();
    let took = listening_port(&mut second).await;
    assert_ne!(took, port);
    assert!(took > port && took <= port + 16, "{took}");
    let refused = build_swarm(&NodeKey::from_seed([3; 32]), &cfg(0))
        .err()
        .expect("refused");
    assert_eq!(
        refused.to_string(),
        format!(
            "cannot listen on /ip4/127.0.0.1/tcp/{port}: TCP port {port} is in use (another node on this machine?); \
             choose another in [network] listen"
        )
    );
}

/// One client opening connection after connection (each with a fresh
/// identity) gets at most the node's inbound bound; the rest are refused
/// as they arrive.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inbound_connections_are_bounded() {
    let server_cfg = NetConfig {
        listen: vec!["/ip4/127.0.0.1/tcp/0".parse().unwrap()],
        max_inbound: 3,
        ..NetConfig::default()
    };
    let mut server = build_swarm(&NodeKey::from_seed([1; 32]), &server_cfg).unwrap();
    let port = listening_port(&mut server).await;
    let addr: libp2p::Multiaddr = format!("/ip4/127.0.0.1/tcp/{port}").parse().unwrap();
    let clients = 8u8;
    for i in 0..clients {
        let addr = addr.clone();
        tokio::spawn(async move {
            let mut c = build_swarm(&NodeKey::from_seed([i + 10; 32]), &NetConfig::default()).unwrap();
            c.dial(addr).unwrap();
            loop {
                c.select_next_some().await;
            }
        });
    }
    let (mut established, mut denied) = (0, 0);
    while established + denied < clients {
        match server.select_next_some().await {
            SwarmEvent::ConnectionEstablished { .. } => established += 1,
            SwarmEvent::IncomingConnectionError {
                error: libp2p::swarm::ListenError::Denied { cause },
                ..
            } => {
                assert!(cause.downcast::<libp2p::connection_limits::Exceeded>().is_ok());
                denied += 1;
            }
            _ => {}
        }
    }
    assert_eq!((established, denied), (3, 5));
    assert_eq!(server.connected_peers().count(), 3);
}
