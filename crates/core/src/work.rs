//! The rules that tie a piece of work to its pay, in one copy: how an
//! [`Assignment`] is made from a task and its terms, how a provider's
//! [`Receipt`] for a run is made, and the check that a receipt answers its
//! assignment. The requestor checks every receipt it receives with
//! [`check_receipt`], and the ledger checks every proof of work it pays
//! with the same function, so the two can never disagree about what is
//! payable.

use serde::{Deserialize, Serialize};

use crate::amount::{Amount, PricePerGfuel};
use crate::hash::{ContentId, ResultHash};
use crate::ids::TaskId;
use crate::keys::NodeId;
use crate::launch::Launch;
use crate::limits::{Determinism, Limits};
use crate::outcome::Outcome;
use crate::units::Fuel;
use crate::wire::{Assignment, Receipt, WIRE_VERSION};

/// How long a provider may wait before starting an assignment: after this
/// many milliseconds from its making, it must not start it.
pub const ASSIGNMENT_TTL_MS: u64 = 600_000;

/// What a task runs, apart from its arguments: the module, stdin, input
/// files, limits and determinism mode (blobs by content id).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Program {
    /// Module blob.
    pub module: ContentId,
    /// Stdin blob.
    pub stdin: ContentId,
    /// Input blobs by path under `/in`, sorted by path.
    pub inputs: Vec<(String, ContentId)>,
    /// Each run's limits.
    pub limits: Limits,
    /// Determinism mode.
    pub mode: Determinism,
    /// The entry, environment and declared host imports.
    #[serde(default, skip_serializing_if = "Launch::is_default")]
    pub launch: Launch,
    /// Read-only files at absolute guest paths (a runtime's library), by
    /// path, sorted.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub mounts: Vec<(String, ContentId)>,
}

impl Program {
    /// Every blob a run of it reads: module, stdin, inputs, mounted files,
    /// each once.
    pub fn blobs(&self) -> Vec<ContentId> {
        blobs_of(self.module, self.stdin, &self.inputs, &self.mounts)
    }

    /// The program running `module` with `stdin`, no input files, the
    /// default limits, in `native` mode.
    pub fn new(module: ContentId, stdin: ContentId) -> Program {
        Program {
            module,
            stdin,
            inputs: Vec::new(),
            limits: Limits::default(),
            mode: Determinism::Native,
            launch: Launch::default(),
            mounts: Vec::new(),
        }
    }
}

/// Module, stdin and inputs, each once, sorted.
fn blobs_of(
    module: ContentId,
    stdin: ContentId,
    inputs: &[(String, ContentId)],
    mounts: &[(String, ContentId)],
) -> Vec<ContentId> {
    let mut needed = vec![module, stdin];
    needed.extend(inputs.iter().chain(mounts).map(|(_, id)| *id));
    needed.sort();
    needed.dedup();
    needed
}

/// Who asks whom, at what price, paid from which escrow.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Terms {
    /// The network (its genesis hash) whose ledger pays.
    pub chain: ContentId,
    /// The requestor (signs the assignment, pays).
    pub requestor: NodeId,
    /// The provider asked.
    pub provider: NodeId,
    /// The price agreed (the provider's asking price).
    pub price: PricePerGfuel,
    /// The job's escrow on the ledger, if paid through one.
    pub escrow: Option<ContentId>,
}

impl Assignment {
    /// Every blob a run of it reads: module, stdin, inputs, mounted files,
    /// each once.
    pub fn blobs(&self) -> Vec<ContentId> {
        blobs_of(self.module, self.stdin, &self.inputs, &self.mounts)
    }

    /// The assignment of task `task` (with `args`) running `program`, on
    /// `terms`, made at `now_ms`: void [`ASSIGNMENT_TTL_MS`] later.
    pub fn new(task: TaskId, args: Vec<String>, program: &Program, terms: Terms, now_ms: u64) -> Assignment {
        Assignment {
            version: WIRE_VERSION,
            chain: terms.chain,
            task,
            requestor: terms.requestor,
            provider: terms.provider,
            module: program.module,
            args,
            stdin: program.stdin,
            inputs: program.inputs.clone(),
            limits: program.limits,
            mode: program.mode,
            launch: program.launch.clone(),
            mounts: program.mounts.clone(),
            price: terms.price,
            expires_at_ms: now_ms.saturating_add(ASSIGNMENT_TTL_MS),
            escrow: terms.escrow,
        }
    }
}

/// A run's charge overflows at the agreed price.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("the charge for {fuel} at {price}/Gfuel overflows")]
pub struct ChargeOverflow {
    /// The fuel used.
    pub fuel: Fuel,
    /// The agreed price.
    pub price: Amount,
}

impl Receipt {
    /// The receipt for a run of `assignment` (signed with id
    /// `assignment_id`) that ended in `outcome` with result `result`,
    /// using `fuel`: the assignment's price, charged for that fuel.
    pub fn for_run(
        assignment: &Assignment,
        assignment_id: ContentId,
        outcome: Outcome,
        result: ResultHash,
        fuel: Fuel,
    ) -> Result<Receipt, ChargeOverflow> {
        let price = assignment.price;
        Ok(Receipt {
            version: WIRE_VERSION,
            task: assignment.task,
            provider: assignment.provider,
            assignment: assignment_id,
            outcome,
            result,
            fuel,
            price,
            charge: price.cost(fuel).ok_or(ChargeOverflow { fuel, price: price.0 })?,
        })
    }
}

/// Why a receipt does not answer an assignment.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ReceiptMismatch {
    /// Signed by (naming) another provider than the one assigned.
    #[error("the receipt is not from the provider assigned")]
    WrongProvider,
    /// For another task or another assignment.
    #[error("the receipt answers another assignment")]
    OtherAssignment,
    /// A price other than the one agreed.
    #[error("receipt charges {charged} at price {price}/Gfuel; the assignment agreed {agreed}/Gfuel")]
    Price {
        /// The receipt's price.
        price: Amount,
        /// The assignment's price.
        agreed: Amount,
        /// The receipt's charge.
        charged: Amount,
    },
    /// More fuel than the task's limit.
    #[error("the receipt's fuel exceeds the task's limit")]
    FuelOverLimit,
    /// A charge other than fuel × price.
    #[error("the charge is not fuel × price")]
    Charge,
}

/// Checks that `receipt` answers `assignment`, whose signed body has id
/// `assignment_id`: same provider, task and assignment, the agreed price
/// exactly, fuel within the limit, and a charge of fuel × price. Signatures
/// are the caller's to check (on opening the envelopes).
pub fn check_receipt(
    assignment: &Assignment,
    assignment_id: &ContentId,
    receipt: &Receipt,
) -> Result<(), ReceiptMismatch> {
    if receipt.provider != assignment.provider {
        return Err(ReceiptMismatch::WrongProvider);
    }
    if receipt.task != assignment.task || receipt.assignment != *assignment_id {
        return Err(ReceiptMismatch::OtherAssignment);
    }
    if receipt.price != assignment.price {
        return Err(ReceiptMismatch::Price {
            price: receipt.price.0,
            agreed: assignment.price.0,
            charged: receipt.charge,
        });
    }
    if receipt.fuel > assignment.limits.fuel {
        return Err(ReceiptMismatch::FuelOverLimit);
    }
    if receipt.price.cost(receipt.fuel) != Some(receipt.charge) {
        return Err(ReceiptMismatch::Charge);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::NodeKey;

    fn assignment() -> Assignment {
        let program = Program::new(ContentId::of(b"m"), ContentId::of(b""));
        let terms = Terms {
            chain: ContentId::of(b"network"),
            requestor: NodeKey::from_seed([1; 32]).id(),
            provider: NodeKey::from_seed([2; 32]).id(),
            price: PricePerGfuel(Amount(1_000)),
            escrow: None,
        };
        Assignment::new(TaskId::from_bytes([3; 32]), vec!["a".into()], &program, terms, 5)
    }

    #[test]
    fn a_receipt_for_a_run_passes_the_check_and_every_change_fails_it() {
        let a = assignment();
        assert_eq!(a.expires_at_ms, 5 + ASSIGNMENT_TTL_MS);
        let id = ContentId::of(b"assignment body");
        let ok = Receipt::for_run(
            &a,
            id,
            Outcome::Completed { exit_code: 0 },
            ResultHash::from_bytes([9; 32]),
            Fuel(2_000_000_000),
        )
        .unwrap();
        assert_eq!(ok.charge, Amount(2_000));
        assert_eq!(check_receipt(&a, &id, &ok), Ok(()));

        let mut r = ok.clone();
        r.provider = NodeKey::from_seed([7; 32]).id();
        assert_eq!(check_receipt(&a, &id, &r), Err(ReceiptMismatch::WrongProvider));
        assert_eq!(
            check_receipt(&a, &ContentId::of(b"other"), &ok),
            Err(ReceiptMismatch::OtherAssignment)
        );
        let mut r = ok.clone();
        r.task = TaskId::from_bytes([4; 32]);
        assert_eq!(check_receipt(&a, &id, &r), Err(ReceiptMismatch::OtherAssignment));
        // A lower price is refused as surely as a higher one.
        for price in [999, 1_001] {
            let mut r = ok.clone();
            r.price = PricePerGfuel(Amount(price));
            r.charge = r.price.cost(r.fuel).unwrap();
            assert!(matches!(check_receipt(&a, &id, &r), Err(ReceiptMismatch::Price { .. })));
        }
        let mut r = ok.clone();
        r.fuel = Fuel(a.limits.fuel.0 + 1);
        r.charge = r.price.cost(r.fuel).unwrap();
        assert_eq!(check_receipt(&a, &id, &r), Err(ReceiptMismatch::FuelOverLimit));
        let mut r = ok;
        r.charge = Amount(1);
        assert_eq!(check_receipt(&a, &id, &r), Err(ReceiptMismatch::Charge));
    }

    #[test]
    fn an_overflowing_charge_is_an_error_not_a_wrap() {
        let mut a = assignment();
        a.price = PricePerGfuel(Amount(u128::MAX));
        let r = Receipt::for_run(
            &a,
            ContentId::of(b"x"),
            Outcome::OutOfFuel,
            ResultHash::from_bytes([0; 32]),
            Fuel(u64::MAX),
        );
        assert!(r.is_err());
    }
}
