//! Trustless payment between real nodes on 127.0.0.1, with a real ledger
//! and a validator that re-runs tasks: a requestor vanishes and a provider
//! that lied claims — its claim is held, the task re-run by the validator
//! (which audits every lone claim; a dispute by the honest provider, if it
//! comes first, is judged by the same verdict), the liar slashed and the
//! honest provider paid; a made-up receipt for an assignment never run is never
//! paid; colluding fresh identities get no work from a job that requires
//! stake; a transaction signed for one network is refused by another.
//! Every wait is on an event.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::Arc;
use std::time::Duration;

use sharegrid_core::{
    Amount, Assignment, Fuel, JobId, NodeId, NodeKey, Outcome, PricePerGfuel, Program, Receipt, ResultHash, Signed,
    Terms, WIRE_VERSION,
};
use sharegrid_ledger::{Allocation, Genesis, Op, Paid, Params};
use sharegrid_node::testnet::{self, ProviderSpec, TestNode, wait_for};
use sharegrid_node::{JobSubmission, LedgerClient, LedgerSettings, NodeEvent, now_ms};
use sharegrid_sandbox::{Sandbox, SandboxConfig};

const STAKE: u128 = 20_000;
const FUNDS: u128 = 100_000;

/// One Mandelbrot tile, `r` replicas agreeing `q`, needing `min_stake`.
fn tile(blobs: &sharegrid_node::BlobStore, r: u32, q: u32, min_stake: u128) -> JobSubmission {
    let tile = vec![[0, 0, 4, 1, 320, 240, 256].iter().map(u32::to_string).collect()];
    JobSubmission {
        name: "tile".into(),
        replication: r,
        quorum: q,
        min_stake: Amount(min_stake),
        launch: Default::default(),
        mounts: Vec::new(),
        ..common::tile_job(blobs, tile)
    }
}

fn settings() -> LedgerSettings {
    LedgerSettings {
        block_interval_ms: 20,
        idle_block_secs: 1,
        claim_after_blocks: 5,
        close_after_blocks: 100_000,
        settle_batch: 100,
        ..LedgerSettings::default()
    }
}

fn key(seed: u8) -> Arc<NodeKey> {
    Arc::new(NodeKey::from_seed([seed; 32]))
}

/// A network of a validator (seed 1, judging), a requestor (seed 2) and
/// providers: each has `FUNDS`, and the providers bond `STAKE` unless
/// listed in `unstaked`.
struct Net {
    _dir: tempfile::TempDir,
    genesis: Genesis,
    validator: TestNode,
    requestor: testnet::TestRequestor,
    providers: Vec<TestNode>,
}

async fn network(specs: Vec<ProviderSpec>, unstaked: &[&str]) -> Net {
    let dir = tempfile::tempdir().unwrap();
    let (vkey, rkey) = (key(1), key(2));
    let pkeys: Vec<_> = (0..specs.len()).map(|i| key(10 + i as u8)).collect();
    let genesis = Genesis {
        validators: vec![vkey.id()],
        params: Params::new(vkey.id(), 100, Amount(1)),
        balances: std::iter::once(&vkey)
            .chain(std::iter::once(&rkey))
            .chain(pkeys.iter())
            .map(|k| Allocation {
                account: k.id(),
                amount: Amount(FUNDS * 100),
            })
            .collect(),
        stakes: Vec::new(),
    };
    let s = settings();
    let sandbox = Arc::new(Sandbox::new(SandboxConfig::default()).unwrap());
    let home = |n: &str| dir.path().join(n);
    let net = testnet::loopback();
    let vl = testnet::open_ledger(&home("v"), &genesis, &vkey).unwrap();
    let validator = testnet::start_plain(&home("v"), "v", vkey, net.clone(), Some((vl, &s)))
        .await
        .unwrap();
    testnet::judge(&validator, sandbox.clone()).unwrap();
    let mut providers = Vec::new();
    for (spec, k) in specs.into_iter().zip(&pkeys) {
        let spec = spec.price_floor(1_000);
        let l = testnet::open_ledger(&home(&spec.name), &genesis, k).unwrap();
        let p = testnet::start_provider(
            &home(&spec.name),
            k.clone(),
            &spec,
            sandbox.clone(),
            net.clone(),
            Some((l, &s)),
        )
        .await
        .unwrap();
        testnet::connect(&p.handle, &validator).await.unwrap();
        if !unstaked.contains(&spec.name.as_str()) {
            let client = LedgerClient::new(p.ledger.clone().unwrap(), p.handle.clone());
            let bond = Op::Bond { amount: Amount(STAKE) };
            client.send_and_wait(bond, Duration::from_secs(30)).await.unwrap();
        }
        providers.push(p);
    }
    let rl = testnet::open_ledger(&home("r"), &genesis, &rkey).unwrap();
    let rnode = testnet::start_plain(&home("r"), "r", rkey, net, Some((rl, &s)))
        .await
        .unwrap();
    let requestor = testnet::requestor(rnode, Some(&s)).unwrap();
    testnet::connect(&requestor.node.handle, &validator).await.unwrap();
    for p in &providers {
        testnet::connect(&requestor.node.handle, p).await.unwrap();
    }
    requestor.node.handle.wait_for_offers(providers.len()).await;
    Net {
        _dir: dir,
        genesis,
        validator,
        requestor,
        providers,
    }
}

impl Net {
    fn state<R>(&self, f: impl FnOnce(&sharegrid_ledger::State) -> R) -> R {
        self.validator.ledger.as_ref().unwrap().with_state(f)
    }

    /// Waits, block by block on the validator, until `done` holds.
    async fn until(&self, what: &str, done: impl Fn(&sharegrid_ledger::State) -> bool) {
        let mut blocks = self.validator.handle.subscribe();
        while !self.state(&done) {
            wait_for(&mut blocks, what, |e| {
                matches!(e, NodeEvent::Block { .. }).then_some(())
            })
            .await
            .unwrap();
        }
    }

    fn supply(&self) -> u128 {
        self.genesis.balances.iter().map(|a| a.amount.0).sum()
    }
}

fn slashable(s: &sharegrid_ledger::State, who: &NodeId) -> u128 {
    s.slashable(who)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_liar_whose_requestor_vanished_is_caught_by_re_execution_slashed_and_the_honest_provider_paid() {
    let net = network(
        vec![
            ProviderSpec::new("honest", 1.0, 1),
            ProviderSpec::new("liar", 1.0, 1).faulty(),
        ],
        &[],
    )
    .await;
    let (honest, liar) = (&net.providers[0], &net.providers[1]);
    let (h, l) = (honest.key.id(), liar.key.id());
    let mut ran_h = honest.handle.subscribe();
    let mut ran_l = liar.handle.subscribe();
    let r = &net.requestor;
    let job = r.engine.submit(tile(&r.node.blobs, 2, 2, 0)).await.unwrap();
    let escrow = job.escrow(&r.node.key.id());
    for ran in [&mut ran_h, &mut ran_l] {
        wait_for(ran, "a run", |e| matches!(e, NodeEvent::Ran { .. }).then_some(()))
            .await
            .unwrap();
    }
    // Both receipts are in; they disagree. The requestor vanishes before
    // anything is settled.
    r.node.handle.kill().await;
    let (h_before, l_before) = net.state(|s| (s.balance(&h).0, s.balance(&l).0));

    // Both claim alone: held. The validator re-runs the task and judges
    // both claims (and any dispute either provider raised meanwhile), in
    // one verdict or in two if one claim came in after the first.
    let task = job.task(0);
    net.until("the liar slashed, the honest provider paid, every claim judged", |s| {
        slashable(s, &l) < STAKE
            && s.escrows.get(&escrow).is_some_and(|e| e.paid.contains(&(task, h)))
            && s.claims.is_empty()
            && s.disputes.is_empty()
    })
    .await;
    let (h_after, l_after, h_stake, l_stake, supply, paid) = net.state(|s| {
        (
            s.balance(&h).0,
            s.balance(&l).0,
            slashable(s, &h),
            slashable(s, &l),
            s.supply(),
            s.escrows[&escrow].paid.clone(),
        )
    });
    // Once: its wrong receipt, claimed and then maybe sent again as evidence
    // against the honest claim, is judged once.
    assert_eq!(l_stake, STAKE / 2, "half the liar's stake is slashed, once");
    assert_eq!(h_stake, STAKE, "the honest provider's stake is untouched");
    assert!(paid.contains(&(job.task(0), h)));
    // The liar paid its transactions' fees (its claim, and maybe a dispute
    // of the honest claim, which its node raised too) and was paid nothing.
    assert!(l_after + 2 >= l_before && l_after < l_before, "{l_after} vs {l_before}");
    // The honest provider was paid its charge (and, if its dispute landed
    // before the audit's verdict, its bond back and a reporter's share).
    let vl = net.validator.ledger.as_ref().unwrap();
    let ops = |who: &NodeId| -> Vec<Op> {
        vl.history(who, 100)
            .unwrap()
            .into_iter()
            .map(|f| sharegrid_core::decode_capped::<sharegrid_ledger::Tx>(&f.signed.body, 1 << 20).unwrap())
            .filter(|t| t.signer == *who)
            .map(|t| t.op)
            .collect()
    };
    let charge = ops(&h)
        .into_iter()
        .find_map(|op| match op {
            Op::Claim { paid, .. } => Some(paid.receipt.open::<Receipt>(1 << 20).unwrap().charge.0),
            _ => None,
        })
        .expect("the honest provider claimed");
    assert!(charge > 0);
    // Its fees (a claim, maybe a dispute) aside, it gained its charge.
    assert!(h_after + 2 >= h_before + charge, "{h_after} vs {h_before} + {charge}");
    assert_eq!(supply, net.supply(), "money is conserved to the unit");
    // The ledger shows the verdict the validator signed.
    let verdicts = ops(&net.validator.key.id())
        .into_iter()
        .filter(|op| matches!(op, Op::Verdict { .. }))
        .count();
    assert!(verdicts >= 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_made_up_receipt_for_an_assignment_never_run_is_never_paid() {
    let net = network(vec![ProviderSpec::new("p", 1.0, 1)], &[]).await;
    let r = &net.requestor;
    let p = &net.providers[0];
    // The requestor opens an escrow for a job; the provider refuses (or
    // never runs) its assignment, then makes up a receipt and claims.
    let rkey = NodeKey::from_seed([2; 32]);
    let job = JobId::new(&rkey.id(), now_ms(), 7);
    let escrow = job.escrow(&rkey.id());
    let rclient = LedgerClient::new(r.node.ledger.clone().unwrap(), r.node.handle.clone());
    let height = r.node.ledger.as_ref().unwrap().head().height;
    let open = Op::OpenEscrow {
        escrow,
        budget: Amount(100_000),
        tasks: vec![job.task(0)],
        claim_height: height + 3,
        close_height: height + 100_000,
        quorum: 2,
        min_stake: Amount(0),
    };
    rclient.send_and_wait(open, Duration::from_secs(30)).await.unwrap();
    let mut program = Program::new(
        r.node.blobs.put(&common::guest("mandelbrot")).unwrap(),
        r.node.blobs.put(b"").unwrap(),
    );
    program.limits.fuel = Fuel(5_000_000_000);
    let terms = Terms {
        chain: r.node.handle.chain(),
        requestor: rkey.id(),
        provider: p.key.id(),
        price: PricePerGfuel(Amount(1_000)),
        escrow: Some(escrow),
    };
    let args = [0, 0, 4, 1, 320, 240, 256].iter().map(u32::to_string).collect();
    let a = Assignment::new(job.task(0), args, &program, terms, now_ms());
    let signed = Signed::sign(&rkey, &a).unwrap();
    let made_up = Receipt {
        version: WIRE_VERSION,
        task: a.task,
        provider: p.key.id(),
        assignment: signed.id(),
        outcome: Outcome::Completed { exit_code: 0 },
        result: ResultHash::from_bytes([0xab; 32]),
        fuel: program.limits.fuel,
        price: a.price,
        charge: a.price.cost(program.limits.fuel).unwrap(),
    };
    let pkey = NodeKey::from_seed([10; 32]);
    let claim = Op::Claim {
        escrow,
        paid: Paid {
            assignment: signed,
            receipt: Signed::sign(&pkey, &made_up).unwrap(),
        },
        agreeing: vec![],
    };
    let pclient = LedgerClient::new(p.ledger.clone().unwrap(), p.handle.clone());
    let pl = p.ledger.as_ref().unwrap();
    let mut blocks = p.handle.subscribe();
    while pl.head().height < height + 3 {
        wait_for(&mut blocks, "the claim height", |e| {
            matches!(e, NodeEvent::Block { .. }).then_some(())
        })
        .await
        .unwrap();
    }
    let before = net.state(|s| s.balance(&p.key.id()).0);
    pclient.send_and_wait(claim, Duration::from_secs(30)).await.unwrap();
    // Held, never paid: the validator re-runs the task (its program from
    // the requestor) and the made-up result is a fault.
    net.until("the made-up claim judged", |s| {
        s.claims.is_empty() && slashable(s, &p.key.id()) < STAKE
    })
    .await;
    let (after, left) = net.state(|s| (s.balance(&p.key.id()).0, s.escrows[&escrow].left.0));
    assert_eq!(
        after,
        before - 1,
        "only the claim's fee left its balance; nothing came in"
    );
    assert_eq!(left, 100_000, "the held charge went back to the escrow");
    assert_eq!(net.state(|s| s.supply()), net.supply());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn colluding_fresh_identities_get_no_work_from_a_job_that_requires_stake() {
    // Two colluders that return the same wrong result, with no stake; two
    // honest providers with stake.
    let net = network(
        vec![
            ProviderSpec::new("c1", 1.0, 1).faulty(),
            ProviderSpec::new("c2", 1.0, 1).faulty(),
            ProviderSpec::new("h1", 1.0, 1),
            ProviderSpec::new("h2", 1.0, 1),
        ],
        &["c1", "c2"],
    )
    .await;
    let r = &net.requestor;
    let mut colluders_ran = [net.providers[0].handle.subscribe(), net.providers[1].handle.subscribe()];
    let sub = tile(&r.node.blobs, 2, 2, 1_000);
    let job = r.engine.submit(sub.clone()).await.unwrap();
    let done = r.engine.wait(&job).await.unwrap().unwrap();
    assert_eq!(done.state, sharegrid_node::State::Done, "{done:?}");
    // The accepted result is the true one: the honest run's, as the
    // sandbox computes it here.
    let module = common::guest("mandelbrot");
    let mut task = sharegrid_sandbox::Task::new(module);
    task.id = job.task(0);
    task.args = sub.tasks[0].clone();
    task.limits = sub.limits;
    let truth = Sandbox::new(SandboxConfig::default()).unwrap().run(&task).unwrap();
    let accepted = r.store.tasks(&job).unwrap()[0].result.unwrap();
    assert_eq!(accepted.as_bytes(), truth.result_hash.as_bytes());
    for ran in &mut colluders_ran {
        assert!(
            !std::iter::from_fn(|| ran.try_recv().ok()).any(|e| matches!(e, NodeEvent::Ran { .. })),
            "an unstaked provider ran a task of a job that requires stake"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_transaction_signed_for_one_network_is_refused_by_another() {
    let dir = tempfile::tempdir().unwrap();
    let (a_key, b_key, rich) = (key(1), key(2), key(3));
    let a_genesis = testnet::genesis(&a_key, &rich, 1_000, 100);
    let b_genesis = testnet::genesis(&b_key, &rich, 1_000, 100);
    let la = testnet::open_ledger(&dir.path().join("a"), &a_genesis, &rich).unwrap();
    let lb = testnet::open_ledger(&dir.path().join("b"), &b_genesis, &b_key).unwrap();
    // The same account, the same nonce 0, on two networks: signed for A.
    let tx = la.sign(Op::Transfer {
        to: b_key.id(),
        amount: Amount(10),
    });
    let err = lb.accept(tx.clone()).unwrap_err().to_string();
    assert!(err.contains("signed for network"), "{err}");
    assert_eq!(lb.account(&rich.id()).nonce, 0, "nothing changed on B");
    // And a block of B's never holds it: B's validator proposes without it.
    let block = lb.produce(now_ms(), true).unwrap();
    assert!(block.is_none_or(|b| b.txs.is_empty()));
}
