//! What the fuzz targets share: fixed keys, a genesis, and re-signing of
//! fuzzed ledger transactions, so that mutations reach the ledger's rules
//! past the signature check instead of dying at it. Also the seed corpus
//! (`seeds` binary): well-formed inputs for every target to mutate from.

use std::sync::OnceLock;

use sharegrid_core::{
    Amount, Assignment, ContentId, Determinism, Fuel, JobId, Limits, NodeId, NodeKey, Outcome, PricePerGfuel, Program,
    Receipt, ResultHash, Signed, TaskId, Terms, decode_capped,
};
use sharegrid_ledger::{Allocation, Genesis, MAX_TX_BYTES, Op, Paid, Params, TX_VERSION, Tx};

/// Three parties: 0 is the validator and a requestor, 1 a provider, 2 the
/// treasury and another provider.
pub fn keys() -> &'static [NodeKey; 3] {
    static KEYS: OnceLock<[NodeKey; 3]> = OnceLock::new();
    KEYS.get_or_init(|| [1u8, 2, 3].map(|b| NodeKey::from_seed([b; 32])))
}

/// The key a fuzzed id stands for: chosen by its first byte.
pub fn key_for(id: &NodeId) -> &'static NodeKey {
    &keys()[usize::from(id.as_bytes()[0]) % 3]
}

/// The network every ledger input runs on.
pub fn genesis() -> Genesis {
    let k = keys();
    Genesis {
        validators: vec![k[0].id()],
        params: Params::new(k[2].id(), 100, Amount(1)),
        balances: k
            .iter()
            .map(|k| Allocation {
                account: k.id(),
                amount: Amount(1_000_000_000_000),
            })
            .collect(),
        stakes: Vec::new(),
    }
}

/// The network's chain id: the genesis hash.
pub fn chain() -> ContentId {
    static CHAIN: std::sync::OnceLock<ContentId> = std::sync::OnceLock::new();
    *CHAIN.get_or_init(|| genesis().hash())
}

/// Signs a fuzzed transaction as the key its signer stands for, after
/// re-signing each assignment and receipt it carries as theirs.
pub fn sign_tx(mut tx: Tx) -> Signed {
    let key = key_for(&tx.signer);
    tx.signer = key.id();
    // Signed for this network, so that the fuzzer reaches past the chain id.
    tx.chain = chain();
    match &mut tx.op {
        Op::Settle { paid, .. } => paid.iter_mut().for_each(resign),
        Op::Claim { paid, agreeing, .. } => {
            resign(paid);
            agreeing.iter_mut().for_each(resign);
        }
        Op::Dispute { evidence, .. } => evidence.iter_mut().for_each(resign),
        _ => {}
    }
    Signed::sign(key, &tx).unwrap_or_else(|e| panic!("a decoded transaction encodes again: {e}"))
}

fn resign(p: &mut Paid) {
    if let Ok(mut a) = decode_capped::<Assignment>(&p.assignment.body, MAX_TX_BYTES) {
        let key = key_for(&a.requestor);
        a.requestor = key.id();
        a.chain = chain();
        if let Ok(s) = Signed::sign(key, &a) {
            p.assignment = s;
        }
    }
    if let Ok(mut r) = decode_capped::<Receipt>(&p.receipt.body, MAX_TX_BYTES) {
        let key = key_for(&r.provider);
        r.provider = key.id();
        r.assignment = p.assignment.id();
        if let Ok(s) = Signed::sign(key, &r) {
            p.receipt = s;
        }
    }
}

/// A signed assignment of task `index` of `job` to provider `p`, and that
/// provider's receipt for 2 Gfuel of work.
pub fn paid_pair(job: &JobId, escrow: ContentId, index: usize, p: usize) -> Paid {
    let k = keys();
    let program = Program {
        module: ContentId::of(b"module"),
        stdin: ContentId::of(b""),
        inputs: vec![("data.bin".into(), ContentId::of(b"data"))],
        limits: Limits::default(),
        mode: Determinism::Portable,
        launch: Default::default(),
        mounts: Vec::new(),
    };
    let terms = Terms {
        chain: chain(),
        requestor: k[0].id(),
        provider: k[p].id(),
        price: PricePerGfuel(Amount(5)),
        escrow: Some(escrow),
    };
    let a = Assignment::new(job.task(index), vec!["x".into()], &program, terms, 1_000);
    let signed_a = Signed::sign(&k[0], &a).unwrap_or_else(|e| panic!("{e}"));
    let r = Receipt::for_run(
        &a,
        signed_a.id(),
        Outcome::Completed { exit_code: 0 },
        ResultHash::from_bytes([9; 32]),
        Fuel(2_000_000_000),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let signed_r = Signed::sign(&k[p], &r).unwrap_or_else(|e| panic!("{e}"));
    Paid {
        assignment: signed_a,
        receipt: signed_r,
    }
}

/// A transaction by key `who` with nonce `nonce`.
pub fn tx(who: usize, nonce: u64, op: Op) -> Tx {
    Tx {
        version: TX_VERSION,
        chain: genesis().hash(),
        signer: keys()[who].id(),
        nonce,
        fee: Amount(1),
        expires_at_height: 1_000,
        op,
    }
}

/// A job's life on the ledger: a transfer, an escrow for three tasks, a
/// settlement batch, a provider's claim, and closing after expiry.
pub fn ledger_story() -> Vec<Tx> {
    let k = keys();
    let job = JobId::new(&k[0].id(), 1, 1);
    let escrow = job.escrow(&k[0].id());
    vec![
        tx(
            0,
            0,
            Op::Transfer {
                to: k[1].id(),
                amount: Amount(10),
            },
        ),
        tx(
            0,
            1,
            Op::OpenEscrow {
                quorum: 2,
                min_stake: Amount(0),
                escrow,
                budget: Amount(1_000),
                tasks: (0..3).map(|i| job.task(i)).collect::<Vec<TaskId>>(),
                claim_height: 3,
                close_height: 6,
            },
        ),
        tx(
            0,
            2,
            Op::Settle {
                escrow,
                paid: vec![paid_pair(&job, escrow, 0, 1), paid_pair(&job, escrow, 0, 2)],
                last: false,
            },
        ),
        tx(
            1,
            0,
            Op::Claim {
                escrow,
                paid: paid_pair(&job, escrow, 1, 1),
                agreeing: vec![],
            },
        ),
        tx(1, 1, Op::Bond { amount: Amount(100) }),
        tx(
            2,
            0,
            Op::Dispute {
                escrow,
                task: job.task(1),
                evidence: vec![paid_pair(&job, escrow, 1, 2)],
            },
        ),
        tx(
            0,
            3,
            Op::Verdict {
                escrow,
                task: job.task(1),
                result: sharegrid_core::ResultHash::from_bytes([1; 32]),
                fuel: sharegrid_core::Fuel(2_000_000_000),
            },
        ),
        tx(1, 2, Op::Unbond { amount: Amount(50) }),
        tx(2, 1, Op::CloseExpired { escrow }),
    ]
}

pub mod seeds;
