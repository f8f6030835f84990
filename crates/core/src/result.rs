//! A task's result and its canonical encoding (`docs/result-encoding.md`).
//!
//! The encoding is the protocol: two honest providers that ran the same task
//! produce byte-identical encodings, hence equal [`ResultHash`]es. Any change
//! here must bump [`RESULT_ENCODING_MAGIC`].

use serde::{Deserialize, Serialize};

use crate::hash::ResultHash;
use crate::outcome::{Outcome, TrapKind};

/// The first bytes of every encoded result; names the encoding version.
pub const RESULT_ENCODING_MAGIC: &[u8; 20] = b"sharegrid-result-v1\0";

/// A file the task left in `/out`.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub struct OutFile {
    /// Path relative to `/out`, `/`-separated, e.g. `tiles/3.ppm`.
    pub path: String,
    /// The file's bytes.
    #[serde(skip)]
    pub data: Vec<u8>,
}

/// Why a path may not name a file in `/out`.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("invalid output path {path:?}: {why}")]
pub struct OutPathError {
    path: String,
    why: &'static str,
}

/// Checks that `path` is a clean relative path: non-empty `/`-separated
/// components, none of them `.` or `..`, no NUL, no backslash. Every output path
/// from the network goes through this before it touches a disk, so a result can
/// never write outside the directory it is saved into.
pub fn validate_out_path(path: &str) -> Result<(), OutPathError> {
    let fail = |why| {
        Err(OutPathError {
            path: path.chars().take(200).collect(),
            why,
        })
    };
    if path.is_empty() {
        return fail("empty");
    }
    if path.len() > 4096 {
        return fail("longer than 4096 bytes");
    }
    if path.contains('\0') || path.contains('\\') {
        return fail("contains NUL or backslash");
    }
    for c in path.split('/') {
        match c {
            "" => return fail("empty component (leading, trailing or double slash)"),
            "." | ".." => return fail("contains . or .."),
            _ => {}
        }
    }
    Ok(())
}

/// Everything a run produced. The result hash covers all of it.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct TaskResult {
    /// How the run ended.
    pub outcome: Outcome,
    /// Bytes written to stdout.
    pub stdout: Vec<u8>,
    /// Bytes written to stderr.
    pub stderr: Vec<u8>,
    /// Files left in `/out`, sorted by path (byte order), regular files only.
    pub files: Vec<OutFile>,
}

impl TaskResult {
    /// A result with no output, e.g. for a module that never started.
    pub fn empty(outcome: Outcome) -> Self {
        TaskResult {
            outcome,
            stdout: Vec::new(),
            stderr: Vec::new(),
            files: Vec::new(),
        }
    }

    /// Total bytes of output: stdout + stderr + files.
    pub fn output_bytes(&self) -> u64 {
        let files: usize = self.files.iter().map(|f| f.data.len()).sum();
        (self.stdout.len() + self.stderr.len() + files) as u64
    }

    /// The canonical encoding, fed to `sink` piece by piece so hashing a large
    /// result needs no copy of it.
    fn encode_into(&self, sink: &mut impl FnMut(&[u8])) {
        sink(RESULT_ENCODING_MAGIC);
        sink(&[self.outcome.code()]);
        match &self.outcome {
            Outcome::Completed { exit_code } => sink(&exit_code.to_le_bytes()),
            Outcome::Trap { trap } => sink(&[trap.code()]),
            _ => {}
        }
        let mut bytes = |b: &[u8]| {
            sink(&(b.len() as u64).to_le_bytes());
            sink(b);
        };
        bytes(&self.stdout);
        bytes(&self.stderr);
        let mut files: Vec<&OutFile> = self.files.iter().collect();
        files.sort_by(|a, b| a.path.as_bytes().cmp(b.path.as_bytes()));
        sink(&(files.len() as u64).to_le_bytes());
        for f in files {
            sink(&(f.path.len() as u64).to_le_bytes());
            sink(f.path.as_bytes());
            sink(&(f.data.len() as u64).to_le_bytes());
            sink(&f.data);
        }
    }

    /// The canonical encoding as one buffer.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(64 + self.output_bytes() as usize);
        self.encode_into(&mut |b| out.extend_from_slice(b));
        out
    }

    /// Decodes a canonical encoding, as fetched from a provider. The
    /// encoding does not carry an invalid module's explanation (it is not
    /// part of the result), so that outcome decodes with an empty reason.
    /// Refuses trailing bytes, unknown codes, invalid or unsorted paths, so
    /// that `decode(b)?.encode() == b` always holds.
    pub fn decode(bytes: &[u8]) -> Result<TaskResult, DecodeError> {
        let mut r = Reader(bytes);
        if r.take(RESULT_ENCODING_MAGIC.len())? != RESULT_ENCODING_MAGIC {
            return Err(DecodeError("not a sharegrid-result-v1 encoding"));
        }
        let outcome = match r.take(1)?[0] {
            0 => Outcome::Completed {
                exit_code: i32::from_le_bytes(r.array()?),
            },
            1 => Outcome::OutOfFuel,
            2 => Outcome::MemoryLimit,
            3 => Outcome::OutputLimit,
            4 => Outcome::Timeout,
            5 => Outcome::Trap {
                trap: TrapKind::from_code(r.take(1)?[0]).ok_or(DecodeError("unknown trap code"))?,
            },
            6 => Outcome::InvalidModule { reason: String::new() },
            _ => return Err(DecodeError("unknown outcome code")),
        };
        let stdout = r.bytes()?.to_vec();
        let stderr = r.bytes()?.to_vec();
        let n = u64::from_le_bytes(r.array()?);
        let mut files: Vec<OutFile> = Vec::new();
        for _ in 0..n {
            let path = std::str::from_utf8(r.bytes()?).map_err(|_| DecodeError("file path is not UTF-8"))?;
            validate_out_path(path).map_err(|_| DecodeError("invalid file path"))?;
            if files.last().is_some_and(|f| f.path.as_bytes() >= path.as_bytes()) {
                return Err(DecodeError("file paths not in strictly increasing order"));
            }
            let data = r.bytes()?.to_vec();
            files.push(OutFile {
                path: path.to_string(),
                data,
            });
        }
        if !r.0.is_empty() {
            return Err(DecodeError("trailing bytes after the result"));
        }
        Ok(TaskResult {
            outcome,
            stdout,
            stderr,
            files,
        })
    }

    /// BLAKE3 of the canonical encoding.
    pub fn hash(&self) -> ResultHash {
        let mut h = blake3::Hasher::new();
        self.encode_into(&mut |b| {
            h.update(b);
        });
        ResultHash::from_bytes(*h.finalize().as_bytes())
    }
}

/// Why bytes are not a canonical result encoding.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("malformed result encoding: {0}")]
pub struct DecodeError(&'static str);

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
        if self.0.len() < n {
            return Err(DecodeError("truncated"));
        }
        let (a, b) = self.0.split_at(n);
        self.0 = b;
        Ok(a)
    }
    fn array<const N: usize>(&mut self) -> Result<[u8; N], DecodeError> {
        let mut a = [0; N];
        a.copy_from_slice(self.take(N)?);
        Ok(a)
    }
    fn bytes(&mut self) -> Result<&'a [u8], DecodeError> {
        let n = u64::from_le_bytes(self.array()?);
        self.take(usize::try_from(n).map_err(|_| DecodeError("length overflows"))?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::outcome::TrapKind;
    use proptest::prelude::*;

    fn file(path: &str, data: &[u8]) -> OutFile {
        OutFile {
            path: path.into(),
            data: data.to_vec(),
        }
    }

    #[test]
    fn encoding_matches_the_documented_layout() {
        let r = TaskResult {
            outcome: Outcome::Completed { exit_code: 7 },
            stdout: b"hi".to_vec(),
            stderr: vec![],
            files: vec![file("a", b"xyz")],
        };
        let mut want = Vec::new();
        want.extend_from_slice(b"sharegrid-result-v1\0");
        want.push(0);
        want.extend_from_slice(&7i32.to_le_bytes());
        want.extend_from_slice(&2u64.to_le_bytes());
        want.extend_from_slice(b"hi");
        want.extend_from_slice(&0u64.to_le_bytes());
        want.extend_from_slice(&1u64.to_le_bytes());
        want.extend_from_slice(&1u64.to_le_bytes());
        want.extend_from_slice(b"a");
        want.extend_from_slice(&3u64.to_le_bytes());
        want.extend_from_slice(b"xyz");
        assert_eq!(r.encode(), want);
        assert_eq!(r.hash().as_bytes(), blake3::hash(&want).as_bytes());
        // The test vector published in docs/result-encoding.md.
        assert_eq!(
            r.hash().to_hex(),
            "0d715e2c8b73b9cb08707b1af0957e991a6e356b3df7eb8cf3b144820694ac40"
        );
    }

    #[test]
    fn file_order_does_not_change_the_hash_but_content_does() {
        let mut a = TaskResult::empty(Outcome::Completed { exit_code: 0 });
        a.files = vec![file("b", b"1"), file("a", b"2")];
        let mut b = a.clone();
        b.files.reverse();
        assert_eq!(a.hash(), b.hash());
        b.files[0].data = b"3".to_vec();
        assert_ne!(a.hash(), b.hash());
    }

    #[test]
    fn out_paths_are_validated() {
        for ok in ["a", "a/b.txt", "tiles/0003.ppm", "..a"] {
            validate_out_path(ok).unwrap();
        }
        for bad in ["", "/a", "a/", "a//b", "../x", "a/./b", "a/../../etc", "a\\b", "a\0"] {
            assert!(validate_out_path(bad).is_err(), "{bad:?}");
        }
    }

    fn arb_outcome() -> impl Strategy<Value = Outcome> {
        prop_oneof![
            any::<i32>().prop_map(|exit_code| Outcome::Completed { exit_code }),
            Just(Outcome::OutOfFuel),
            Just(Outcome::MemoryLimit),
            Just(Outcome::OutputLimit),
            Just(Outcome::Trap {
                trap: TrapKind::Unreachable
            }),
            Just(Outcome::Trap {
                trap: TrapKind::StackOverflow
            }),
        ]
    }

    proptest! {
        // Distinct results never share an encoding: the encoding is
        // injective, so equal hashes mean equal results (up to BLAKE3).
        #[test]
        fn encoding_is_injective(
            o1 in arb_outcome(), o2 in arb_outcome(),
            s1 in proptest::collection::vec(any::<u8>(), 0..8),
            s2 in proptest::collection::vec(any::<u8>(), 0..8),
            e1 in proptest::collection::vec(any::<u8>(), 0..8),
            e2 in proptest::collection::vec(any::<u8>(), 0..8),
            f1 in proptest::collection::btree_map("[a-c]{1,2}", proptest::collection::vec(any::<u8>(), 0..4), 0..3),
            f2 in proptest::collection::btree_map("[a-c]{1,2}", proptest::collection::vec(any::<u8>(), 0..4), 0..3),
        ) {
            let mk = |o: Outcome, s: Vec<u8>, e: Vec<u8>, f: std::collections::BTreeMap<String, Vec<u8>>| TaskResult {
                outcome: o, stdout: s, stderr: e,
                files: f.into_iter().map(|(path, data)| OutFile { path, data }).collect(),
            };
            let a = mk(o1, s1, e1, f1);
            let b = mk(o2, s2, e2, f2);
            prop_assert_eq!(a == b, a.encode() == b.encode());
            // And decoding inverts it.
            prop_assert_eq!(TaskResult::decode(&a.encode()).unwrap(), a);
        }

        // Arbitrary bytes never panic the decoder, and whatever it accepts
        // re-encodes to exactly those bytes.
        #[test]
        fn decoding_is_strict(tail in proptest::collection::vec(any::<u8>(), 0..64), cut in 0usize..80) {
            let mut bytes = TaskResult::empty(Outcome::OutOfFuel).encode();
            bytes.extend_from_slice(&tail);
            bytes.truncate(cut.max(RESULT_ENCODING_MAGIC.len()));
            if let Ok(r) = TaskResult::decode(&bytes) {
                prop_assert_eq!(r.encode(), bytes);
            }
        }
    }

    #[test]
    fn decode_refuses_what_is_not_canonical() {
        let good = TaskResult {
            outcome: Outcome::Trap {
                trap: TrapKind::IntegerOverflow,
            },
            stdout: b"out".to_vec(),
            stderr: vec![],
            files: vec![file("a", b"1"), file("b/c", b"2")],
        };
        let bytes = good.encode();
        assert_eq!(TaskResult::decode(&bytes).unwrap(), good);
        let mut extra = bytes.clone();
        extra.push(0);
        assert!(TaskResult::decode(&extra).is_err());
        assert!(TaskResult::decode(&bytes[..bytes.len() - 1]).is_err());
        assert!(TaskResult::decode(b"sharegrid-result-v2\0").is_err());
        let unsorted = TaskResult {
            files: vec![file("b", b""), file("a", b"")],
            ..good.clone()
        };
        // encode() sorts, so build the unsorted bytes by swapping names.
        let mut swapped = unsorted.encode();
        let at = swapped.len() - 2 * (8 + 1 + 8);
        swapped[at + 8] = b'b';
        swapped[at + 8 + 1 + 8 + 8] = b'a';
        assert!(TaskResult::decode(&swapped).is_err());
    }
}
