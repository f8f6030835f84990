//! Fetching a blob in chunks, as a state machine without I/O: it says which
//! chunk to ask for next, takes the answers, and hands back the bytes only
//! once their BLAKE3 hash is the id they were asked for.

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
    data: Vec<u8>,
}

/// What to do after a chunk.
#[derive(Debug, PartialEq, Eq)]
pub enum FetchStep {
    /// Ask for this next.
    Next(BlobRequest),
    /// Done: the verified bytes.
    Done(Vec<u8>),
}

impl BlobFetch {
    /// Starts fetching `id`, accepting at most `max` bytes.
    pub fn new(id: ContentId, max: u64) -> Self {
        BlobFetch {
            id,
            max,
            total: None,
            data: Vec::new(),
        }
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
        let have = self.data.len() as u64;
        let expected = (total - have).min(u64::from(MAX_CHUNK_BYTES));
        if chunk.len() as u64 != expected {
            return Err(FetchError::BadChunk("chunk length is not what was asked"));
        }
        self.data.extend_from_slice(&chunk);
        if (self.data.len() as u64) < total {
            return Ok(FetchStep::Next(BlobRequest {
                id: self.id,
                offset: self.data.len() as u64,
                len: MAX_CHUNK_BYTES,
            }));
        }
        let data = std::mem::take(&mut self.data);
        if ContentId::of(&data) != self.id {
            return Err(FetchError::HashMismatch(self.id));
        }
        Ok(FetchStep::Done(data))
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
}
