//! sharegrid-core: the vocabulary every other crate speaks.
//!
//! Ids, content hashes, fuel, task limits, determinism modes, task outcomes and
//! the canonical result encoding whose BLAKE3 hash replicas compare. This crate
//! is pure: no I/O, no async, no clock, no randomness. Anything here may end up
//! on the wire or in a signature, so changing an encoding is a protocol change.

mod hash;
mod ids;
mod limits;
mod outcome;
mod result;
mod units;

pub use hash::{ContentId, HashParseError, ResultHash};
pub use ids::TaskId;
pub use limits::{Determinism, Limits};
pub use outcome::{Outcome, TrapKind};
pub use result::{OutFile, OutPathError, RESULT_ENCODING_MAGIC, TaskResult, validate_out_path};
pub use units::{Fuel, GigafuelPerSec};
