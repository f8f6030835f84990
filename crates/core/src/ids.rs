//! Task identifiers. A task id seeds the task's deterministic clock and
//! random stream, so two replicas of one task see the same "randomness".

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::hash::{ContentId, HashParseError};

/// Identifies one task (one module run with one set of inputs).
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct TaskId(ContentId);

impl TaskId {
    /// Wraps raw id bytes.
    pub const fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(ContentId::from_bytes(bytes))
    }

    /// The raw id bytes.
    pub const fn as_bytes(&self) -> &[u8; 32] {
        self.0.as_bytes()
    }

    /// The id of a task run locally (`sharegrid run`): derived from the
    /// module, the arguments and stdin, so the same command line gives the
    /// same id, and therefore the same random stream, every time.
    pub fn local(module: &ContentId, args: &[String], stdin: &[u8]) -> Self {
        let mut h = blake3::Hasher::new_derive_key("sharegrid local task id v1");
        h.update(module.as_bytes());
        h.update(&(args.len() as u64).to_le_bytes());
        for a in args {
            h.update(&(a.len() as u64).to_le_bytes());
            h.update(a.as_bytes());
        }
        h.update(&(stdin.len() as u64).to_le_bytes());
        h.update(stdin);
        Self::from_bytes(*h.finalize().as_bytes())
    }
}

impl fmt::Display for TaskId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

impl fmt::Debug for TaskId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TaskId({})", self.0.short())
    }
}

impl FromStr for TaskId {
    type Err = HashParseError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        s.parse().map(Self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn local_ids_depend_on_every_part() {
        let m = ContentId::of(b"module");
        let a = TaskId::local(&m, &["x".into()], b"");
        assert_eq!(a, TaskId::local(&m, &["x".into()], b""));
        assert_ne!(a, TaskId::local(&m, &["y".into()], b""));
        assert_ne!(a, TaskId::local(&m, &["x".into()], b"in"));
        // Length prefixes keep argument boundaries apart.
        assert_ne!(
            TaskId::local(&m, &["ab".into(), "c".into()], b""),
            TaskId::local(&m, &["a".into(), "bc".into()], b"")
        );
    }
}
