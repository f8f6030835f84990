//! The agent's unit tests: no sockets, no sleeps, time passed in.

use super::*;
use sharegrid_core::{Amount, Arch, Determinism, Limits, Program, ResultHash, TaskId, Terms, check_receipt};

fn agent(slots: u32) -> (Agent, Arc<NodeKey>) {
    let key = Arc::new(NodeKey::from_seed([1; 32]));
    let settings = AgentSettings {
        policy: ProviderPolicy {
            enabled: true,
            slots,
            price_floor: Amount(10),
            offer_interval_secs: 1,
            output_retention_secs: 60,
            require_escrow: false,
            ..ProviderPolicy::default()
        },
        machine: MachineInfo {
            arch: Arch::X86_64,
            cores: 8,
            memory_bytes: 8 << 30,
        },
        speed: GigafuelPerSec(2.0),
        software: "test".into(),
    };
    (Agent::new(key.clone(), settings), key)
}

fn requestor() -> NodeKey {
    NodeKey::from_seed([2; 32])
}

fn signed(provider: NodeId, price: u128, escrow: Option<ContentId>, task: u8) -> Signed {
    let program = Program {
        module: ContentId::of(b"module"),
        stdin: ContentId::of(b""),
        inputs: vec![("a".into(), ContentId::of(b"a")), ("b".into(), ContentId::of(b"a"))],
        limits: Limits::default(),
        mode: Determinism::Native,
        launch: Default::default(),
        mounts: Vec::new(),
    };
    let terms = Terms {
        chain: ContentId::of(b"network"),
        requestor: requestor().id(),
        provider,
        price: PricePerGfuel(Amount(price)),
        escrow,
    };
    let a = Assignment::new(TaskId::from_bytes([task; 32]), vec![], &program, terms, 0);
    Signed::sign(&requestor(), &a).unwrap()
}

fn peer() -> PeerId {
    peer_id(&requestor().id()).unwrap()
}

fn output() -> RunOutput {
    RunOutput {
        outcome: Outcome::Completed { exit_code: 0 },
        result: ResultHash::from_bytes([5; 32]),
        fuel: Fuel(3_000_000_000),
    }
}

fn assign(a: &mut Agent, s: Signed) -> Vec<AgentAction> {
    a.handle(
        AgentInput::Assignment {
            peer: peer(),
            signed: s,
            backed_off: false,
        },
        HostSample::default(),
        10,
    )
}

fn run_of(actions: &[AgentAction]) -> RunId {
    actions
        .iter()
        .find_map(|a| match a {
            AgentAction::Admitted { run, .. } => Some(*run),
            _ => None,
        })
        .expect("admitted")
}

#[test]
fn an_assignment_is_fetched_run_and_answered_with_a_receipt_that_checks() {
    let (mut a, key) = agent(2);
    let s = signed(key.id(), 100, None, 1);
    let actions = assign(&mut a, s.clone());
    let run = run_of(&actions);
    // Module, stdin and one input (two paths share a blob): three fetches.
    let fetches = actions
        .iter()
        .filter(|x| matches!(x, AgentAction::Fetch { .. }))
        .count();
    assert_eq!(fetches, 3);
    assert_eq!(a.busy(), 1);
    for _ in 0..2 {
        let acts = a.handle(AgentInput::BlobReady { run }, HostSample::default(), 11);
        assert!(!acts.iter().any(|x| matches!(x, AgentAction::Execute { .. })));
    }
    let acts = a.handle(AgentInput::BlobReady { run }, HostSample::default(), 12);
    assert!(acts.iter().any(|x| matches!(x, AgentAction::Execute { .. })));
    let acts = a.handle(
        AgentInput::Ran {
            run,
            result: Ok(output()),
        },
        HostSample::default(),
        13,
    );
    let receipt = acts
        .iter()
        .find_map(|x| match x {
            AgentAction::Deliver { receipt, .. } => Some(receipt.clone()),
            _ => None,
        })
        .expect("delivered");
    let r: Receipt = receipt.open(1 << 16).unwrap();
    let assignment: Assignment = s.open(1 << 16).unwrap();
    assert_eq!(check_receipt(&assignment, &s.id(), &r), Ok(()));
    assert_eq!(r.charge, Amount(300));
    assert_eq!((a.busy(), a.tasks_run(), a.outputs_retained()), (0, 1, 1));
    // Only its requestor may fetch the output; once it has, it goes.
    let out = ContentId::from_bytes([5; 32]);
    assert!(a.keeps_output_for(&out, &peer()));
    let acts = a.handle(
        AgentInput::OutputFetched {
            peer: peer(),
            output: out,
        },
        HostSample::default(),
        14,
    );
    assert!(
        acts.iter()
            .any(|x| matches!(x, AgentAction::DropOutput(id) if *id == out))
    );
}

#[test]
fn escrowed_work_keeps_its_proof_before_the_receipt_leaves() {
    let (mut a, key) = agent(1);
    let escrow = ContentId::of(b"escrow");
    let run = run_of(&assign(&mut a, signed(key.id(), 100, Some(escrow), 1)));
    for _ in 0..3 {
        a.handle(AgentInput::BlobReady { run }, HostSample::default(), 11);
    }
    let acts = a.handle(
        AgentInput::Ran {
            run,
            result: Ok(output()),
        },
        HostSample::default(),
        12,
    );
    assert!(
        acts.iter()
            .any(|x| matches!(x, AgentAction::KeepProof { proof, .. } if proof.escrow == escrow))
    );
    assert!(!acts.iter().any(|x| matches!(x, AgentAction::Deliver { .. })));
    assert_eq!(a.busy(), 1, "the slot is held until the receipt leaves");
    let acts = a.handle(AgentInput::ProofKept { run }, HostSample::default(), 13);
    assert!(acts.iter().any(|x| matches!(x, AgentAction::Deliver { .. })));
    assert_eq!(a.busy(), 0);
}

#[test]
fn refusals_name_their_reason_and_change_nothing() {
    let (mut a, key) = agent(1);
    let other = NodeKey::from_seed([9; 32]).id();
    let reason = |acts: &[AgentAction]| {
        acts.iter()
            .find_map(|x| match x {
                AgentAction::Refuse { reason, .. } => Some(reason.clone()),
                _ => None,
            })
            .unwrap_or_default()
    };
    assert!(reason(&assign(&mut a, signed(key.id(), 1, None, 1))).contains("below this provider's floor"));
    assert!(reason(&assign(&mut a, signed(other, 100, None, 1))).contains("another provider"));
    // A forged signature is refused and counted as misbehaviour.
    let mut forged = signed(key.id(), 100, None, 1);
    forged.body.push(0);
    let acts = assign(&mut a, forged);
    assert!(reason(&acts).contains("invalid assignment"));
    assert!(acts.iter().any(|x| matches!(x, AgentAction::Misbehaved { .. })));
    // From another peer than its signer.
    let acts = a.handle(
        AgentInput::Assignment {
            peer: peer_id(&other).unwrap(),
            signed: signed(key.id(), 100, None, 1),
            backed_off: false,
        },
        HostSample::default(),
        10,
    );
    assert!(reason(&acts).contains("signed by another node"));
    assert_eq!(a.busy(), 0);
    // One slot: the second is busy.
    run_of(&assign(&mut a, signed(key.id(), 100, None, 1)));
    assert!(reason(&assign(&mut a, signed(key.id(), 100, None, 2))).contains("busy"));
    // Shutting down: nothing new, and what runs is refused at the end.
    a.handle(AgentInput::BeginShutdown, HostSample::default(), 20);
    assert!(reason(&assign(&mut a, signed(key.id(), 100, None, 3))).contains("shutting down"));
    let acts = a.handle(AgentInput::Stop, HostSample::default(), 21);
    assert!(reason(&acts).contains("shut down before the task finished"));
    assert_eq!(a.busy(), 0);
}

#[test]
fn offers_follow_free_slots_and_the_interval() {
    let (mut a, key) = agent(2);
    let published = |acts: &[AgentAction]| -> Option<Offer> {
        acts.iter().find_map(|x| match x {
            AgentAction::Publish { offer, signed } => {
                let opened: Offer = signed.open(1 << 16).unwrap();
                assert_eq!(opened, **offer, "the offer is what was signed");
                Some(opened)
            }
            _ => None,
        })
    };
    let first = published(&a.handle(AgentInput::Tick, HostSample::default(), 1_000)).expect("first offer");
    assert_eq!((first.free_slots, first.cores), (2, 2));
    assert!(published(&a.handle(AgentInput::Tick, HostSample::default(), 1_500)).is_none());
    // A slot taken: re-published at once.
    let acts = assign(&mut a, signed(key.id(), 100, None, 1));
    let _ = run_of(&acts);
    let second = published(&a.handle(AgentInput::Tick, HostSample::default(), 1_600)).expect("changed");
    assert_eq!(second.free_slots, 1);
    assert!(second.seq > first.seq);
    // The interval passed: again.
    assert!(published(&a.handle(AgentInput::Tick, HostSample::default(), 2_700)).is_some());
    // No peer to publish to: tried again on the next tick.
    a.handle(AgentInput::PublishFailed, HostSample::default(), 2_701);
    assert!(published(&a.handle(AgentInput::Tick, HostSample::default(), 2_800)).is_some());
    // A newcomer listens for offers: it hears this one at the next tick.
    assert!(published(&a.handle(AgentInput::Tick, HostSample::default(), 2_900)).is_none());
    a.handle(AgentInput::PeerListening, HostSample::default(), 2_950);
    assert!(published(&a.handle(AgentInput::Tick, HostSample::default(), 3_000)).is_some());
}

#[test]
fn outputs_expire_after_their_retention_time() {
    let (mut a, key) = agent(1);
    let run = run_of(&assign(&mut a, signed(key.id(), 100, None, 1)));
    for _ in 0..3 {
        a.handle(AgentInput::BlobReady { run }, HostSample::default(), 11);
    }
    a.handle(
        AgentInput::Ran {
            run,
            result: Ok(output()),
        },
        HostSample::default(),
        1_000,
    );
    assert!(
        a.handle(AgentInput::Tick, HostSample::default(), 60_999)
            .iter()
            .all(|x| !matches!(x, AgentAction::DropOutput(_)))
    );
    let acts = a.handle(AgentInput::Tick, HostSample::default(), 61_000);
    assert!(acts.iter().any(|x| matches!(x, AgentAction::DropOutput(_))));
    assert_eq!(a.outputs_retained(), 0);
}

fn requiring_escrow() -> (Agent, Arc<NodeKey>) {
    let (a, key) = agent(2);
    let mut settings = a.settings.clone();
    settings.policy.require_escrow = true;
    (Agent::new(key.clone(), settings), key)
}

fn fetches(actions: &[AgentAction]) -> usize {
    actions
        .iter()
        .filter(|x| matches!(x, AgentAction::Fetch { .. }))
        .count()
}

fn refusal(actions: &[AgentAction]) -> Option<&str> {
    actions.iter().find_map(|x| match x {
        AgentAction::Refuse { reason, .. } => Some(reason.as_str()),
        _ => None,
    })
}

#[test]
fn a_stranger_without_an_escrow_is_refused_before_anything_is_fetched() {
    let (mut a, key) = requiring_escrow();
    let actions = assign(&mut a, signed(key.id(), 100, None, 1));
    let why = refusal(&actions).expect("refused");
    assert!(why.contains("works only against a funded escrow"), "{why}");
    assert_eq!(fetches(&actions), 0);
    assert_eq!(a.busy(), 0);
}

#[test]
fn nothing_is_fetched_until_the_ledger_shows_the_escrow_can_pay() {
    let (mut a, key) = requiring_escrow();
    let escrow = ContentId::of(b"escrow");
    let actions = assign(&mut a, signed(key.id(), 100, Some(escrow), 1));
    let run = run_of(&actions);
    assert!(actions.iter().any(|x| matches!(x, AgentAction::CheckEscrow { .. })));
    assert_eq!(fetches(&actions), 0, "fetching waits for the ledger");
    assert!(a.escrowed_runs().is_empty(), "not funded yet");
    let ok = a.handle(
        AgentInput::EscrowChecked { run, result: Ok(()) },
        HostSample::default(),
        11,
    );
    assert_eq!(fetches(&ok), 3);
    assert_eq!(a.escrowed_runs().len(), 1);

    // A second assignment whose escrow cannot pay is refused with the reason.
    let actions = assign(&mut a, signed(key.id(), 100, Some(escrow), 2));
    let second = run_of(&actions);
    let no = a.handle(
        AgentInput::EscrowChecked {
            run: second,
            result: Err("escrow holds 5, less than the 10 this run may cost".into()),
        },
        HostSample::default(),
        12,
    );
    let why = refusal(&no).expect("refused");
    assert!(why.contains("holds 5, less than the 10"), "{why}");
    assert_eq!(fetches(&no), 0);
    assert_eq!(a.busy(), 1, "the refused run's slot is free again");
}

#[test]
fn a_run_whose_escrow_can_no_longer_pay_is_cancelled_and_answered() {
    let (mut a, key) = requiring_escrow();
    let actions = assign(&mut a, signed(key.id(), 100, Some(ContentId::of(b"e")), 1));
    let run = run_of(&actions);
    a.handle(
        AgentInput::EscrowChecked { run, result: Ok(()) },
        HostSample::default(),
        11,
    );
    let acts = a.handle(
        AgentInput::Unpayable {
            run,
            why: "escrow closed".into(),
        },
        HostSample::default(),
        12,
    );
    assert!(
        acts.iter()
            .any(|x| matches!(x, AgentAction::Cancel { run: r } if *r == run))
    );
    let why = refusal(&acts).expect("answered");
    assert!(why.contains("cancelled") && why.contains("escrow closed"), "{why}");
    assert_eq!(a.busy(), 0);
    // The sandbox's late answer changes nothing.
    let late = a.handle(
        AgentInput::Ran {
            run,
            result: Ok(output()),
        },
        HostSample::default(),
        13,
    );
    assert!(late.is_empty(), "{late:?}");
}

#[test]
fn this_nodes_own_tasks_need_no_escrow() {
    let (a, key) = requiring_escrow();
    let mut settings = a.settings.clone();
    settings.policy.require_escrow = true;
    // The requestor is the provider itself.
    let me = Arc::new(requestor());
    let mut own = Agent::new(me.clone(), settings);
    let actions = own.handle(
        AgentInput::Assignment {
            peer: peer(),
            signed: signed(me.id(), 100, None, 1),
            backed_off: false,
        },
        HostSample::default(),
        10,
    );
    assert!(refusal(&actions).is_none(), "{actions:?}");
    assert_eq!(fetches(&actions), 3);
    drop(key);
}

#[test]
fn assignments_waiting_for_their_escrow_hold_no_slot() {
    let (mut a, key) = requiring_escrow();
    let escrow = Some(ContentId::of(b"e"));
    // Three assignments for a provider of two slots: none is busy yet.
    let runs: Vec<RunId> = (1..=3)
        .map(|t| {
            let acts = assign(&mut a, signed(key.id(), 100, escrow, t));
            assert!(refusal(&acts).is_none(), "{acts:?}");
            run_of(&acts)
        })
        .collect();
    assert_eq!((a.busy(), a.awaiting_escrow()), (0, 3));
    assert_eq!(
        a.offer(HostSample::default(), 10).free_slots,
        2,
        "the offer still shows both"
    );
    // Funded in turn: two take the slots, the third is refused as busy.
    for run in &runs[..2] {
        let acts = a.handle(
            AgentInput::EscrowChecked {
                run: *run,
                result: Ok(()),
            },
            HostSample::default(),
            11,
        );
        assert_eq!(fetches(&acts), 3);
    }
    let acts = a.handle(
        AgentInput::EscrowChecked {
            run: runs[2],
            result: Ok(()),
        },
        HostSample::default(),
        12,
    );
    let why = refusal(&acts).expect("refused");
    assert!(why.contains("busy"), "{why}");
    assert_eq!((a.busy(), a.awaiting_escrow()), (2, 0));
}
