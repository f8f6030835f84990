//! What the ledger's tests share: keys, a genesis, transactions signed for
//! it, and proofs of work.

#![allow(dead_code, clippy::unwrap_used)]

use sharegrid_core::{
    Amount, Assignment, ContentId, Fuel, NodeKey, Outcome, PricePerGfuel, Program, Receipt, ResultHash, Signed, TaskId,
    Terms, WIRE_VERSION,
};
use sharegrid_ledger::{Allocation, Genesis, Op, Paid, Params, State, TX_VERSION, Tx};

pub(crate) fn key(i: u8) -> NodeKey {
    NodeKey::from_seed([i + 1; 32])
}
pub(crate) const TREASURY: u8 = 9;
pub(crate) const VALIDATOR: u8 = 10;

pub(crate) fn genesis(balances: &[u128]) -> State {
    State::genesis(&genesis_of(balances)).unwrap()
}

pub(crate) fn genesis_of(balances: &[u128]) -> Genesis {
    let g = Genesis {
        validators: vec![key(VALIDATOR).id()],
        params: Params::new(key(TREASURY).id(), 250, Amount(1)),
        balances: balances
            .iter()
            .enumerate()
            .map(|(i, b)| Allocation {
                account: key(i as u8).id(),
                amount: Amount(*b),
            })
            // The validator pays its verdicts' fees.
            .chain([Allocation {
                account: key(VALIDATOR).id(),
                amount: Amount(1_000),
            }])
            .collect(),
        stakes: Vec::new(),
    };
    CHAIN.with(|c| *c.borrow_mut() = g.hash());
    g
}

/// The network transactions are signed for: the last genesis this thread
/// made (each test makes one, then signs for it).
pub(crate) fn chain_id() -> ContentId {
    CHAIN.with(|c| *c.borrow())
}

thread_local! {
    static CHAIN: std::cell::RefCell<ContentId> = std::cell::RefCell::new(ContentId::of(b"unset"));
}

pub(crate) fn tx(signer: &NodeKey, nonce: u64, op: Op) -> Signed {
    Signed::sign(
        signer,
        &Tx {
            version: TX_VERSION,
            chain: chain_id(),
            signer: signer.id(),
            nonce,
            fee: Amount(1),
            expires_at_height: 1_000,
            op,
        },
    )
    .unwrap()
}

pub(crate) fn task(i: u8) -> TaskId {
    TaskId::from_bytes([i; 32])
}

/// A proof that `provider` did task `t` for `requestor`; a non-zero
/// `price_bump` makes the receipt charge another price than the agreed one.
pub(crate) fn proof(
    escrow: ContentId,
    requestor: &NodeKey,
    provider: &NodeKey,
    t: TaskId,
    fuel: u64,
    price_bump: i128,
) -> Paid {
    said(
        escrow,
        requestor,
        provider,
        t,
        fuel,
        price_bump,
        Said::Result(TRUE_RESULT),
    )
}

/// What a receipt says of a run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Said {
    /// Completed with the result hash `[n; 32]`.
    Result(u8),
    /// Timed out (not deterministic).
    Timeout,
}

/// The result hash `[n; 32]`: the "true" one in tests is [`TRUE_RESULT`].
pub(crate) fn result(n: u8) -> ResultHash {
    ResultHash::from_bytes([n; 32])
}

/// The result every honest provider reports.
pub(crate) const TRUE_RESULT: u8 = 7;

/// [`proof`] with the receipt saying `says`.
pub(crate) fn said(
    escrow: ContentId,
    requestor: &NodeKey,
    provider: &NodeKey,
    t: TaskId,
    fuel: u64,
    price_bump: i128,
    says: Said,
) -> Paid {
    // A reactor with an environment and a mounted file: what a validator
    // re-runs must be the whole task (`to_judge`).
    let program = Program {
        launch: sharegrid_core::Launch {
            entry: Some("run".into()),
            env: vec![("TZ".into(), "UTC".into())],
            imports: vec![],
        },
        mounts: vec![("/usr/lib/z.zip".into(), ContentId::of(b"z"))],
        ..Program::new(ContentId::of(b"m"), ContentId::of(b""))
    };
    let terms = Terms {
        chain: chain_id(),
        requestor: requestor.id(),
        provider: provider.id(),
        price: PricePerGfuel(Amount(10)),
        escrow: Some(escrow),
    };
    let a = Assignment::new(t, vec![], &program, terms, 0);
    let sa = Signed::sign(requestor, &a).unwrap();
    let price = PricePerGfuel(Amount((10 + price_bump) as u128));
    let r = Receipt {
        version: WIRE_VERSION,
        task: t,
        provider: provider.id(),
        assignment: sa.id(),
        outcome: match says {
            Said::Result(_) => Outcome::Completed { exit_code: 0 },
            Said::Timeout => Outcome::Timeout,
        },
        result: match says {
            Said::Result(n) => result(n),
            Said::Timeout => result(0),
        },
        fuel: Fuel(fuel),
        price,
        charge: price.cost(Fuel(fuel)).unwrap(),
    };
    Paid {
        assignment: sa,
        receipt: Signed::sign(provider, &r).unwrap(),
    }
}
