//! sharegrid-core: the vocabulary every other crate speaks.
//!
//! Ids, content hashes, fuel, task limits, determinism modes, task outcomes,
//! the canonical result encoding whose BLAKE3 hash replicas compare, token
//! amounts, node keys and signatures, the signed wire messages (offer,
//! assignment, receipt), and the one copy of the rules that tie them
//! together (an assignment's making, a receipt's check against it). This
//! crate is pure: no I/O, no async, no clock, no randomness (keys come from
//! seeds the caller draws). Anything here may end up on the wire or in a
//! signature, so changing an encoding is a protocol change.

mod amount;
pub mod bytes_serde;
mod hash;
mod ids;
pub mod job;
mod keys;
mod launch;
mod limits;
mod outcome;
mod result;
mod schema;
mod units;
mod wire;
mod work;

pub use hash::{ContentId, HashParseError, ResultHash};
pub use ids::{JobId, JobIdParseError, TaskId};
pub use launch::{DECLARABLE_IMPORTS, Launch, MAX_ENV_BYTES, MAX_ENV_VARS, mount_dir, validate_mount_path};
pub use limits::{Determinism, Limits};
pub use outcome::{Outcome, TrapKind};
pub use result::{DecodeError, OutFile, OutPathError, RESULT_ENCODING_MAGIC, TaskResult, validate_out_path};
pub use units::{Fuel, GigafuelPerSec};

pub use amount::{Amount, PricePerGfuel};
pub use keys::{Domain, NodeId, NodeKey, Signature, SignatureError, verify_batch};
pub use wire::{
    Arch, Assignment, Offer, Receipt, Signed, SignedMessage, WIRE_VERSION, WireError, decode_capped, encode,
};
pub use work::{ASSIGNMENT_TTL_MS, ChargeOverflow, Program, ReceiptMismatch, Terms, check_receipt};
