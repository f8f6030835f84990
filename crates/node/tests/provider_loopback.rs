//! A provider and a requestor on 127.0.0.1, each a raw swarm with a shell
//! written here around the provider's [`Agent`] state machine (the same
//! machine the daemon drives): the assignment crosses by the task
//! protocol, the module and inputs cross as verified blobs, the provider
//! runs the sandbox and returns a signed receipt whose result hash and fuel
//! equal a local run of the same task. An assignment below the provider's
//! price floor is refused with that reason.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use sharegrid_core::{
    Amount, Assignment, ContentId, Determinism, Limits, NodeKey, PricePerGfuel, Receipt, Signed, TaskId, WIRE_VERSION,
};
use sharegrid_core::{Arch, GigafuelPerSec};
use sharegrid_net::{
    BehaviourEvent, BlobFetch, FetchStep, NetConfig, SwarmEvent, TaskRequest, TaskResponse, build_swarm, peer_id,
    request_response, serve,
};
use sharegrid_node::{
    Agent, AgentAction, AgentInput, AgentSettings, BlobStore, HostSample, MachineInfo, Provider, ProviderPolicy, Reply,
    RunId,
};
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
        chain: ContentId::of(b"network"),
        task: TaskId::from_bytes([13; 32]),
        requestor: requestor_key.id(),
        provider: provider_key.id(),
        module: module_id,
        args: vec![],
        stdin: stdin_id,
        inputs: vec![("words.txt".into(), text_id)],
        limits: Limits::default(),
        mode: Determinism::Native,
        launch: Default::default(),
        mounts: Vec::new(),
        price: PricePerGfuel(Amount(price)),
        expires_at_ms: u64::MAX,
        escrow: None,
    };
    let good = Signed::sign(&requestor_key, &assignment(50)).unwrap();
    let cheap = Signed::sign(&requestor_key, &assignment(1)).unwrap();

    let policy = ProviderPolicy {
        enabled: true,
        price_floor: Amount(10),
        // No ledger here: the assignment is paid outside one.
        require_escrow: false,
        ..ProviderPolicy::default()
    };
    let ours = BlobStore::open(dir.path().join("provider"), 1 << 30).unwrap();
    let outputs = BlobStore::open(dir.path().join("outputs"), 1 << 30).unwrap();
    let provider = Provider::new(sandbox.clone(), ours.clone(), outputs);
    let mut agent = Agent::new(
        provider_key.clone(),
        AgentSettings {
            policy,
            machine: MachineInfo {
                arch: Arch::host(),
                cores: 2,
                memory_bytes: 8 << 30,
            },
            speed: GigafuelPerSec(1.0),
            software: "test".into(),
        },
    );

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

    // The provider's shell: reply channels of admitted runs, blob fetches in flight.
    let mut channels: HashMap<RunId, request_response::ResponseChannel<TaskResponse>> = HashMap::new();
    let mut fetches: HashMap<request_response::OutboundRequestId, (RunId, BlobFetch)> = HashMap::new();
    let (done_tx, mut done_rx) = tokio::sync::mpsc::channel(1);
    let (mut receipt, mut refusal): (Option<Receipt>, Option<String>) = (None, None);
    let mut sent = false;
    let (mut admitted, mut fetched) = (0, 0);

    let run = async {
        loop {
            // Inputs for the agent this turn, and the channel of an assignment just received.
            let mut inputs = VecDeque::new();
            let mut incoming = None;
            tokio::select! {
                ev = p_swarm.select_next_some() => match ev {
                    SwarmEvent::Behaviour(BehaviourEvent::Task(request_response::Event::Message {
                        peer, message: request_response::Message::Request { request: sharegrid_net::Incoming::Request(request), channel, .. }, ..
                    })) => {
                        incoming = Some(channel);
                        inputs.push_back(AgentInput::Assignment { peer, signed: request.assignment, backed_off: false });
                    }
                    SwarmEvent::Behaviour(BehaviourEvent::Blob(request_response::Event::Message {
                        peer, message: request_response::Message::Response { request_id, response }, ..
                    })) => {
                        let (run, mut f) = fetches.remove(&request_id).unwrap();
                        match f.on_response(response).unwrap() {
                            FetchStep::Next(req) => {
                                let id = p_swarm.behaviour_mut().blob.send_request(&peer, req.into());
                                fetches.insert(id, (run, f));
                            }
                            FetchStep::Done(bytes) => {
                                ours.put(&bytes).unwrap();
                                fetched += 1;
                                inputs.push_back(AgentInput::BlobReady { run });
                            }
                            other => panic!("in memory, not {other:?}"),
                        }
                    }
                    _ => {}
                },
                Some((run, result)) = done_rx.recv() => inputs.push_back(AgentInput::Ran { run, result }),
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
            while let Some(input) = inputs.pop_front() {
                for action in agent.handle(input, HostSample::default(), 0) {
                    match action {
                        AgentAction::Refuse { reply, reason, .. } => {
                            let channel = match reply {
                                Reply::Incoming => incoming.take().unwrap(),
                                Reply::Run(run) => channels.remove(&run).unwrap(),
                            };
                            p_swarm
                                .behaviour_mut()
                                .task
                                .send_response(channel, TaskResponse::Refused { reason })
                                .unwrap();
                        }
                        AgentAction::Admitted { run, .. } => {
                            admitted += 1;
                            channels.insert(run, incoming.take().unwrap());
                        }
                        AgentAction::Fetch { run, peer, blob } => {
                            let f = BlobFetch::new(blob, 1 << 30);
                            let req = p_swarm.behaviour_mut().blob.send_request(&peer, f.first().into());
                            fetches.insert(req, (run, f));
                        }
                        AgentAction::CheckEscrow { .. } | AgentAction::Cancel { .. } => {
                            panic!("no escrow is required here")
                        }
                        AgentAction::Execute { run, prepared } => {
                            let (provider, tx) = (provider.clone(), done_tx.clone());
                            tokio::task::spawn_blocking(move || {
                                let result = provider.execute(&prepared, &sharegrid_sandbox::Cancel::default());
                                tx.blocking_send((run, result)).unwrap();
                            });
                        }
                        AgentAction::Deliver { run, receipt, .. } => {
                            let channel = channels.remove(&run).unwrap();
                            p_swarm
                                .behaviour_mut()
                                .task
                                .send_response(channel, TaskResponse::Receipt(receipt))
                                .unwrap();
                        }
                        AgentAction::KeepProof { .. } => unreachable!("no escrow here"),
                        AgentAction::Misbehaved { why, .. } => panic!("{why}"),
                        AgentAction::DropOutput(_) | AgentAction::Publish { .. } => {}
                    }
                }
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

    assert_eq!(
        (admitted, fetched),
        (1, 3),
        "module, stdin and input are fetched for the one admitted"
    );
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
