//! Task and job identifiers. A task id seeds the task's deterministic clock
//! and random stream, so two replicas of one task see the same "randomness".
//! A job id is its requestor's name for a job; the ids of the job's tasks and
//! of its escrow on the ledger are derived from it here, in one place.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::hash::{ContentId, HashParseError};
use crate::keys::NodeId;

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

    /// The first hex digits, for logs and tables.
    pub fn short(&self) -> String {
        self.0.short()
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

    /// This id, distinguished by a launch and mounted files other than the
    /// default (a plain command with nothing mounted keeps its id, so every
    /// such task's random stream is what it was).
    pub fn with_launch(self, launch: &crate::Launch, mounts: &[(String, ContentId)]) -> Self {
        if launch.is_default() && mounts.is_empty() {
            return self;
        }
        let mut h = blake3::Hasher::new_derive_key("sharegrid launched task id v1");
        h.update(self.as_bytes());
        let field = |h: &mut blake3::Hasher, b: &[u8]| {
            h.update(&(b.len() as u64).to_le_bytes());
            h.update(b);
        };
        field(&mut h, launch.entry.as_deref().unwrap_or("").as_bytes());
        h.update(&[u8::from(launch.entry.is_some())]);
        h.update(&(launch.env.len() as u64).to_le_bytes());
        for (k, v) in &launch.env {
            field(&mut h, k.as_bytes());
            field(&mut h, v.as_bytes());
        }
        h.update(&(launch.imports.len() as u64).to_le_bytes());
        for i in &launch.imports {
            field(&mut h, i.as_bytes());
        }
        h.update(&(mounts.len() as u64).to_le_bytes());
        for (p, id) in mounts {
            field(&mut h, p.as_bytes());
            h.update(id.as_bytes());
        }
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

/// Identifies one job of one requestor: 8 bytes, written as 16 hex digits.
///
/// The job's task ids and its escrow id are derived from the hex form (as
/// the first versions stored it), so ids in existing job stores and on the
/// ledger stay valid.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct JobId([u8; 8]);

/// Why a string is not a job id.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not a job id: expected 16 hex digits, got {got:?}")]
pub struct JobIdParseError {
    got: String,
}

impl JobId {
    /// Wraps raw id bytes.
    pub const fn from_bytes(bytes: [u8; 8]) -> Self {
        Self(bytes)
    }

    /// A new job's id: from the requestor, the submission time and a nonce
    /// the caller draws at random (this crate draws no randomness).
    pub fn new(requestor: &NodeId, now_ms: u64, nonce: u64) -> Self {
        let mut h = blake3::Hasher::new_derive_key("sharegrid job id v1");
        h.update(requestor.as_bytes());
        h.update(&now_ms.to_le_bytes());
        h.update(&nonce.to_le_bytes());
        let mut id = [0u8; 8];
        id.copy_from_slice(&h.finalize().as_bytes()[..8]);
        Self(id)
    }

    /// The id of the job's task number `index`: distinct per job and index,
    /// so two jobs (or two equal argument lists) never share a random
    /// stream by accident.
    pub fn task(&self, index: usize) -> TaskId {
        let mut h = blake3::Hasher::new_derive_key("sharegrid job task id v1");
        h.update(self.to_string().as_bytes());
        h.update(&(index as u64).to_le_bytes());
        TaskId::from_bytes(*h.finalize().as_bytes())
    }

    /// The id of the job's escrow on the ledger, for `requestor`.
    pub fn escrow(&self, requestor: &NodeId) -> ContentId {
        let mut h = blake3::Hasher::new_derive_key("sharegrid job escrow v1");
        h.update(requestor.as_bytes());
        h.update(self.to_string().as_bytes());
        ContentId::from_bytes(*h.finalize().as_bytes())
    }

    /// A seed for the job's random draws (spot checks).
    pub fn seed(&self) -> u64 {
        let h = blake3::hash(self.to_string().as_bytes());
        let mut b = [0u8; 8];
        b.copy_from_slice(&h.as_bytes()[..8]);
        u64::from_le_bytes(b)
    }
}

impl fmt::Display for JobId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex::encode(self.0))
    }
}

impl fmt::Debug for JobId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "JobId({self})")
    }
}

impl FromStr for JobId {
    type Err = JobIdParseError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let mut out = [0u8; 8];
        match hex::decode_to_slice(s, &mut out) {
            Ok(()) if s.len() == 16 => Ok(Self(out)),
            _ => Err(JobIdParseError {
                got: s.chars().take(80).collect(),
            }),
        }
    }
}

impl Serialize for JobId {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_string())
    }
}

impl<'de> Deserialize<'de> for JobId {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
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

    #[test]
    fn a_launch_or_a_mount_makes_another_task_and_the_default_keeps_the_id() {
        let a = TaskId::local(&ContentId::of(b"module"), &[], b"");
        assert_eq!(a.with_launch(&crate::Launch::default(), &[]), a);
        let run = crate::Launch {
            entry: Some("run".into()),
            ..Default::default()
        };
        let env = |v: &str| crate::Launch {
            env: vec![("A".into(), v.into())],
            ..Default::default()
        };
        let zip = [("/usr/lib/z.zip".to_string(), ContentId::of(b"zip"))];
        let ids = [
            a.with_launch(&run, &[]),
            a.with_launch(&env("1"), &[]),
            a.with_launch(&env("2"), &[]),
            a.with_launch(&crate::Launch::default(), &zip),
            a.with_launch(&run, &zip),
        ];
        for (i, x) in ids.iter().enumerate() {
            assert_ne!(*x, a);
            for y in &ids[i + 1..] {
                assert_ne!(x, y);
            }
        }
    }

    #[test]
    fn job_ids_round_trip_and_derive_what_earlier_versions_derived() {
        let id: JobId = "00112233445566ff".parse().unwrap();
        assert_eq!(id.to_string(), "00112233445566ff");
        assert_eq!(serde_json::to_string(&id).unwrap(), "\"00112233445566ff\"");
        assert!("0011".parse::<JobId>().is_err());
        assert!("zz112233445566ff".parse::<JobId>().is_err());
        // Earlier versions hashed the hex string: the same ids come out.
        let mut h = blake3::Hasher::new_derive_key("sharegrid job task id v1");
        h.update(b"00112233445566ff");
        h.update(&3u64.to_le_bytes());
        assert_eq!(id.task(3), TaskId::from_bytes(*h.finalize().as_bytes()));
        assert_ne!(id.task(3), id.task(4));
        let requestor = crate::NodeKey::from_seed([1; 32]).id();
        assert_ne!(id.escrow(&requestor), ContentId::of(b""));
    }
}
