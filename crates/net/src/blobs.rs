//! Fetching a blob in chunks, as a state machine without I/O: it says which
//! chunk to ask for next, takes the answers, and hands back the bytes only
//! once their BLAKE3 hash is the id they were asked for.
//!
//! Two ways to take the bytes: [`BlobFetch::new`] gathers them in memory
//! (a result a requestor reads), [`BlobFetch::to_disk`] hands each chunk
//! out to be written where it belongs ([`FetchStep::Write`]) and keeps only
//! a running hash, so a large input never sits in memory. Either way the
//! size the peer states is checked against the bound on its first answer,
//! before a byte is kept.

use sharegrid_core::ContentId;

use crate::protocol::{BlobRequest, BlobResponse, MAX_CHUNK_BYTES};

/// Why a fetch failed. Each but `NotFound` is the serving peer's fault.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum FetchError {
    /// The peer does not have it.
    #[error("peer does not have blob {0}")]
    NotFound(ContentId),
    /// Larger than this fetch allows.
    #[error("blob is {total} bytes, over the {max}-byte limit")]
    TooLarge {
        /// Size claimed.
        total: u64,
        /// The limit.
        max: u64,
    },
    /// A chunk that does not fit what was asked (wrong size, or the total
    /// changed between chunks).
    #[error("bad chunk: {0}")]
    BadChunk(&'static str),
    /// All bytes arrived but they are not the blob asked for.
    #[error("bytes received do not hash to {0}")]
    HashMismatch(ContentId),
}

impl FetchError {
    /// Whether the serving peer misbehaved (count it against them).
    pub fn is_misbehaviour(&self) -> bool {
        !matches!(self, FetchError::NotFound(_))
    }
}

/// One blob being fetched.
#[derive(Debug)]
pub struct BlobFetch {
    id: ContentId,
    max: u64,
    total: Option<u64>,
    /// Bytes received so far.
    have: u64,
    /// The bytes, when gathered in memory.
    data: Option<Vec<u8>>,
    hasher: blake3::Hasher,
}

/// What to do after a chunk.
#[derive(Debug, PartialEq, Eq)]
pub enum FetchStep {
    /// Ask for this next.
    Next(BlobRequest),
    /// Done: the verified bytes.
    Done(Vec<u8>),
    /// (Fetching to disk.) Write `data` at `offset`; then ask for `next`,
    /// or, with none, the blob is complete and its hash checked.
    Write {
        /// Where the bytes go.
        offset: u64,
        /// The bytes.
        data: Vec<u8>,
        /// The blob's size, as checked against the bound.
        total: u64,
        /// The next request; `None` when this was the last chunk.
        next: Option<BlobRequest>,
    },
}

impl BlobFetch {
    /// Starts fetching `id` into memory, accepting at most `max` bytes.
    pub fn new(id: ContentId, max: u64) -> Self {
        BlobFetch {
            id,
            max,
            total: None,
            have: 0,
            data: Some(Vec::new()),
            hasher: blake3::Hasher::new(),
        }
    }

    /// Starts fetching `id` chunk by chunk to disk (see [`FetchStep::Write`]),
    /// accepting at most `max` bytes.
    pub fn to_disk(id: ContentId, max: u64) -> Self {
        BlobFetch {
            data: None,
            ..BlobFetch::new(id, max)
        }
    }

    /// The blob being fetched.
    pub fn id(&self) -> ContentId {
        self.id
    }

    /// The first request.
    pub fn first(&self) -> BlobRequest {
        BlobRequest {
            id: self.id,
            offset: 0,
            len: MAX_CHUNK_BYTES,
        }
    }

    /// Takes the answer to the last request.
    pub fn on_response(&mut self, r: BlobResponse) -> Result<FetchStep, FetchError> {
        let (chunk, total) = match r {
            BlobResponse::NotFound => return Err(FetchError::NotFound(self.id)),
            BlobResponse::Chunk { data, total } => (data, total),
        };
        if total > self.max {
            return Err(FetchError::TooLarge { total, max: self.max });
        }
        if *self.total.get_or_insert(total) != total {
            return Err(FetchError::BadChunk("total size changed"));
        }
        let offset = self.have;
        let expected = (total - offset).min(u64::from(MAX_CHUNK_BYTES));
        if chunk.len() as u64 != expected {
            return Err(FetchError::BadChunk("chunk length is not what was asked"));
        }
        self.hasher.update(&chunk);
        self.have += expected;
        let next = (self.have < total).then_some(BlobRequest {
            id: self.id,
            offset: self.have,
            len: MAX_CHUNK_BYTES,
        });
        if next.is_none() && ContentId::from_bytes(*self.hasher.finalize().as_bytes()) != self.id {
            return Err(FetchError::HashMismatch(self.id));
        }
        match (&mut self.data, next) {
            (None, next) => Ok(FetchStep::Write {
                offset,
                data: chunk,
                total,
                next,
            }),
            (Some(data), Some(next)) => {
                data.extend_from_slice(&chunk);
                Ok(FetchStep::Next(next))
            }
            (Some(data), None) => {
                data.extend_from_slice(&chunk);
                Ok(FetchStep::Done(std::mem::take(data)))
            }
        }
    }
}

/// Serves `req` from a blob's bytes (`None`: not held).
pub fn serve(blob: Option<&[u8]>, req: &BlobRequest) -> BlobResponse {
    let Some(bytes) = blob else {
        return BlobResponse::NotFound;
    };
    let start = usize::try_from(req.offset).unwrap_or(usize::MAX).min(bytes.len());
    let len = req.len.min(MAX_CHUNK_BYTES) as usize;
    let end = start.saturating_add(len).min(bytes.len());
    BlobResponse::Chunk {
        data: bytes[start..end].to_vec(),
        total: bytes.len() as u64,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fetch_all(bytes: &[u8], served: &[u8], max: u64) -> Result<Vec<u8>, FetchError> {
        let mut f = BlobFetch::new(ContentId::of(bytes), max);
        let mut req = f.first();
        loop {
            match f.on_response(serve(Some(served), &req))? {
                FetchStep::Next(r) => req = r,
                FetchStep::Done(d) => return Ok(d),
                other => panic!("in memory, not {other:?}"),
            }
        }
    }

    #[test]
    fn blobs_arrive_in_chunks_and_are_verified() {
        let big: Vec<u8> = (0..(2 * MAX_CHUNK_BYTES as usize + 123))
            .map(|i| (i * 7 % 251) as u8)
            .collect();
        assert_eq!(fetch_all(&big, &big, 10 << 20).unwrap(), big);
        assert_eq!(fetch_all(b"", b"", 10).unwrap(), b"");
        let mut lie = big.clone();
        lie[5] ^= 1;
        assert!(matches!(
            fetch_all(&big, &lie, 10 << 20),
            Err(FetchError::HashMismatch(_))
        ));
        assert!(matches!(fetch_all(&big, &big, 1000), Err(FetchError::TooLarge { .. })));
        let mut f = BlobFetch::new(ContentId::of(b"x"), 10);
        assert_eq!(
            f.on_response(BlobResponse::NotFound),
            Err(FetchError::NotFound(ContentId::of(b"x")))
        );
        let mut f = BlobFetch::new(ContentId::of(b"abc"), 10);
        let short = BlobResponse::Chunk {
            data: b"a".to_vec(),
            total: 3,
        };
        assert!(matches!(f.on_response(short), Err(FetchError::BadChunk(_))));
    }

    /// To disk: the chunks come out in order with their offsets, the size
    /// is checked on the first answer, the hash on the last.
    #[test]
    fn a_fetch_to_disk_hands_out_chunks_and_checks_the_whole() {
        let big: Vec<u8> = (0..(2 * MAX_CHUNK_BYTES as usize + 5))
            .map(|i| (i % 253) as u8)
            .collect();
        let fetch = |served: &[u8], max: u64| -> Result<Vec<u8>, FetchError> {
            let mut f = BlobFetch::to_disk(ContentId::of(&big), max);
            let mut file = vec![0u8; 0];
            let mut req = f.first();
            loop {
                match f.on_response(serve(Some(served), &req))? {
                    FetchStep::Write {
                        offset,
                        data,
                        total,
                        next,
                    } => {
                        assert_eq!(total, served.len() as u64);
                        assert_eq!(offset, file.len() as u64);
                        file.extend(data);
                        match next {
                            Some(r) => req = r,
                            None => return Ok(file),
                        }
                    }
                    other => panic!("{other:?}"),
                }
            }
        };
        assert_eq!(fetch(&big, 10 << 20).unwrap(), big);
        let mut lie = big.clone();
        lie[MAX_CHUNK_BYTES as usize + 1] ^= 1;
        assert!(matches!(fetch(&lie, 10 << 20), Err(FetchError::HashMismatch(_))));
        assert!(matches!(fetch(&big, 1 << 20), Err(FetchError::TooLarge { .. })));
    }
}
