//! A provider and a requestor on 127.0.0.1: the assignment crosses by the
//! task protocol, the module and inputs cross as verified blobs, the
//! provider runs the sandbox and returns a signed receipt whose result hash
//! and fuel equal a local run of the same task. An assignment below the
//! provider's price floor is refused with that reason.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use sharegrid_core::{
    Amount, Assignment, ContentId, Determinism, Limits, NodeKey, PricePerGfuel, Receipt, Signed, TaskId, WIRE_VERSION,
};
use sharegrid_net::{
    BehaviourEvent, BlobFetch, FetchStep, NetConfig, SwarmEvent, TaskRequest, TaskResponse, build_swarm, peer_id,
    request_response, serve,
};
use sharegrid_node::{BlobStore, MachineState, Prepared, Provider, ProviderPolicy};
use sharegrid_sandbox::{Sandbox, SandboxConfig, Task};

fn guest(name: &str) -> Vec<u8> {
    std::fs::read(format!("{}/../../guests/wasm/{name}.wasm", env!("CARGO_MANIFEST_DIR"))).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_task_crosses_with_its_blobs_and_the_receipt_matches_a_local_run() {
    let dir = tempfile::tempdir().unwrap();
    let provider_key = Arc::new(NodeKey::from_seed([11; 32]));
    let requestor_key = NodeKey::from_seed([12; 32]);
    let sandbox = Arc::new(Sandbox::new(SandboxConfig::default()).unwrap());

    // The requestor holds the module and inputs as blobs.
    let theirs = BlobStore::open(dir.path().join("requestor"), 1 << 30).unwrap();
    let module = guest("wordcount");
    let text = b"alpha beta gamma\ndelta\n".repeat(100_000); // 2.3 MB: several chunks
    let module_id = theirs.put(&module).unwrap();
    let stdin_id = theirs.put(b"").unwrap();
    let text_id = theirs.put(&text).unwrap();
    let assignment = |price: u128| Assignment {
        version: WIRE_VERSION,
        task: TaskId::from_bytes([13; 32]),
        requestor: requestor_key.id(),
        provider: provider_key.id(),
        module: module_id,
        args: vec![],
        stdin: stdin_id,
        inputs: vec![("words.txt".into(), text_id)],
        limits: Limits::default(),
        mode: Determinism::Native,
        price: PricePerGfuel(Amount(price)),
        expires_at_ms: u64::MAX,
        escrow: None,
    };
    let good = Signed::sign(&requestor_key, &assignment(50)).unwrap();
    let cheap = Signed::sign(&requestor_key, &assignment(1)).unwrap();

    let policy = ProviderPolicy {
        enabled: true,
        price_floor: Amount(10),
        ..ProviderPolicy::default()
    };
    let ours = BlobStore::open(dir.path().join("provider"), 1 << 30).unwrap();
    let provider = Provider::new(provider_key.clone(), policy, sandbox.clone(), ours.clone());
    let machine = MachineState {
        me: provider_key.id(),
        busy_slots: 0,
        cores: 2,
        host_load_percent: 0,
        minute_of_day: 600,
        now_ms: 0,
    };

    let cfg = NetConfig {
        listen: vec!["/ip4/127.0.0.1/tcp/0".parse().unwrap()],
        ..NetConfig::default()
    };
    let mut p_swarm = build_swarm(&provider_key, &cfg).unwrap();
    let mut r_swarm = build_swarm(&requestor_key, &cfg).unwrap();
    let provider_peer = peer_id(&provider_key.id()).unwrap();
    let addr = loop {
        if let SwarmEvent::NewListenAddr { address, .. } = p_swarm.select_next_some().await {
            break address;
        }
    };
    r_swarm.dial(addr).unwrap();

    // Provider state: the task waiting for blobs, and blob fetches in flight.
    let mut waiting: Option<(Prepared, request_response::ResponseChannel<TaskResponse>)> = None;
    let mut fetches: HashMap<request_response::OutboundRequestId, BlobFetch> = HashMap::new();
    let (done_tx, mut done_rx) = tokio::sync::mpsc::channel(1);
    let (mut receipt, mut refusal): (Option<Receipt>, Option<String>) = (None, None);
    let mut sent = false;

    let run = async {
        loop {
            tokio::select! {
                ev = p_swarm.select_next_some() => match ev {
                    SwarmEvent::Behaviour(BehaviourEvent::Task(request_response::Event::Message {
                        peer, message: request_response::Message::Request { request: sharegrid_net::Incoming::Request(request), channel, .. }, ..
                    })) => match provider.prepare(&request.assignment, &machine) {
                        Err(refusal) => {
                            let reason = refusal.to_string();
                            p_swarm.behaviour_mut().task.send_response(channel, TaskResponse::Refused { reason }).unwrap();
                        }
                        Ok(prepared) => {
                            assert_eq!(prepared.missing.len(), 3, "module, stdin and input are fetched");
                            for id in &prepared.missing {
                                let f = BlobFetch::new(*id, 1 << 30);
                                let req = p_swarm.behaviour_mut().blob.send_request(&peer, f.first().into());
                                fetches.insert(req, f);
                            }
                            waiting = Some((prepared, channel));
                        }
                    },
                    SwarmEvent::Behaviour(BehaviourEvent::Blob(request_response::Event::Message {
                        peer, message: request_response::Message::Response { request_id, response }, ..
                    })) => {
                        let mut f = fetches.remove(&request_id).unwrap();
                        match f.on_response(response).unwrap() {
                            FetchStep::Next(req) => {
                                let id = p_swarm.behaviour_mut().blob.send_request(&peer, req.into());
                                fetches.insert(id, f);
                            }
                            FetchStep::Done(bytes) => {
                                ours.put(&bytes).unwrap();
                            }
                        }
                        if fetches.is_empty() && let Some((prepared, channel)) = waiting.take() {
                            let (provider, tx) = (provider.clone(), done_tx.clone());
                            tokio::task::spawn_blocking(move || {
                                let signed = provider.execute(&prepared).unwrap();
                                tx.blocking_send((signed, channel)).unwrap();
                            });
                        }
                    }
                    _ => {}
                },
                Some((signed, channel)) = done_rx.recv() => {
                    p_swarm.behaviour_mut().task.send_response(channel, TaskResponse::Receipt(signed.receipt)).unwrap();
                }
                ev = r_swarm.select_next_some() => match ev {
                    SwarmEvent::ConnectionEstablished { peer_id, .. } if peer_id == provider_peer && !sent => {
                        r_swarm.behaviour_mut().task.send_request(&provider_peer, TaskRequest { assignment: good.clone() }.into());
                        r_swarm.behaviour_mut().task.send_request(&provider_peer, TaskRequest { assignment: cheap.clone() }.into());
                        sent = true;
                    }
                    SwarmEvent::Behaviour(BehaviourEvent::Blob(request_response::Event::Message {
                        message: request_response::Message::Request { request: sharegrid_net::Incoming::Request(request), channel, .. }, ..
                    })) => {
                        let held = theirs.get(&request.id).unwrap();
                        r_swarm.behaviour_mut().blob.send_response(channel, serve(held.as_deref(), &request)).unwrap();
                    }
                    SwarmEvent::Behaviour(BehaviourEvent::Task(request_response::Event::Message {
                        message: request_response::Message::Response { response, .. }, ..
                    })) => {
                        match response {
                            TaskResponse::Receipt(s) => receipt = Some(s.open(64 * 1024).unwrap()),
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
    tokio::time::timeout(Duration::from_secs(120), run)
        .await
        .expect("exchange timed out");

    // The same task run locally.
    let mut inputs = BTreeMap::new();
    inputs.insert("words.txt".to_string(), Arc::<[u8]>::from(text.as_slice()));
    let mut local = Task::local(module.clone(), vec![], Vec::new(), inputs);
    local.id = TaskId::from_bytes([13; 32]);
    let local = sandbox.run(&local).unwrap();

    let r = receipt.unwrap();
    assert_eq!(r.provider, provider_key.id());
    assert_eq!(r.assignment, good.id());
    assert_eq!(r.result, local.result_hash);
    assert_eq!(r.fuel, local.fuel);
    assert_eq!(r.charge, PricePerGfuel(Amount(50)).cost(local.fuel).unwrap());
    assert!(r.outcome.is_success());
    assert_eq!(
        refusal.unwrap(),
        "price 1/Gfuel is below this provider's floor of 10/Gfuel"
    );
    assert_eq!(
        ours.get(&ContentId::of(&text)).unwrap().unwrap(),
        text,
        "the input arrived intact"
    );
}
