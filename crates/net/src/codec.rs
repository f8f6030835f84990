//! The request-response codec: CBOR with a size cap per message, decoded by
//! `sharegrid_core::decode_capped`, so a refused message says *why* — over
//! its cap or malformed — instead of libp2p's stock codec, which truncates
//! at the cap and reports an oversized message as a decoding error.
//!
//! A request that fails to decode is not an I/O error here: libp2p drops
//! inbound read errors silently (they never reach the behaviour), so the
//! node could neither count the sender's misbehaviour nor tell it what was
//! wrong. Inbound requests arrive as [`Incoming`] instead, and a refused one
//! is answered like any other.

use std::io;
use std::marker::PhantomData;

use futures::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use libp2p::StreamProtocol;
use serde::Serialize;
use serde::de::DeserializeOwned;
use sharegrid_core::{WireError, decode_capped, encode};

/// CBOR request-response codec with caps on requests and responses.
#[derive(Debug)]
pub struct CappedCbor<Req, Resp> {
    request_max: usize,
    response_max: usize,
    _types: PhantomData<fn() -> (Req, Resp)>,
}

impl<Req, Resp> Clone for CappedCbor<Req, Resp> {
    fn clone(&self) -> Self {
        CappedCbor {
            request_max: self.request_max,
            response_max: self.response_max,
            _types: PhantomData,
        }
    }
}

impl<Req, Resp> CappedCbor<Req, Resp> {
    /// A codec refusing requests over `request_max` and responses over `response_max` bytes.
    pub fn new(request_max: u64, response_max: u64) -> Self {
        CappedCbor {
            request_max: usize::try_from(request_max).unwrap_or(usize::MAX),
            response_max: usize::try_from(response_max).unwrap_or(usize::MAX),
            _types: PhantomData,
        }
    }
}

/// An inbound request: decoded, or refused with the reason.
#[derive(Clone, Debug, PartialEq)]
pub enum Incoming<T> {
    /// A well-formed request.
    Request(T),
    /// Bytes that are not one (over the cap, or malformed).
    Refused(WireError),
}

impl<T> From<T> for Incoming<T> {
    fn from(t: T) -> Self {
        Incoming::Request(t)
    }
}

/// The wire error inside an I/O error from this codec, if it is one: what
/// was wrong with a peer's message (as opposed to the connection failing).
pub fn wire_error(e: &io::Error) -> Option<&WireError> {
    e.get_ref()?.downcast_ref::<WireError>()
}

async fn read<T: AsyncRead + Unpin + Send, M: DeserializeOwned>(io: &mut T, max: usize) -> io::Result<M> {
    let mut buf = Vec::new();
    // One byte more than the cap tells an oversized message from one at the cap.
    io.take(max as u64 + 1).read_to_end(&mut buf).await?;
    decode_capped(&buf, max).map_err(|e| match e {
        // The real length is unknown beyond cap + 1.
        WireError::TooLarge { max, .. } => io::Error::other(WireError::TooLarge { len: max + 1, max }),
        other => io::Error::other(other),
    })
}

async fn write<T: AsyncWrite + Unpin + Send, M: Serialize>(io: &mut T, msg: M) -> io::Result<()> {
    let bytes = encode(&msg).map_err(io::Error::other)?;
    io.write_all(&bytes).await?;
    io.close().await
}

impl<Req, Resp> libp2p::request_response::Codec for CappedCbor<Req, Resp>
where
    Req: Serialize + DeserializeOwned + Send,
    Resp: Serialize + DeserializeOwned + Send,
{
    type Protocol = StreamProtocol;
    type Request = Incoming<Req>;
    type Response = Resp;

    async fn read_request<T: AsyncRead + Unpin + Send>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
    ) -> io::Result<Incoming<Req>> {
        match read(io, self.request_max).await {
            Ok(r) => Ok(Incoming::Request(r)),
            Err(e) => match wire_error(&e).cloned() {
                Some(w) => Ok(Incoming::Refused(w)),
                None => Err(e),
            },
        }
    }

    async fn read_response<T: AsyncRead + Unpin + Send>(&mut self, _: &StreamProtocol, io: &mut T) -> io::Result<Resp> {
        read(io, self.response_max).await
    }

    async fn write_request<T: AsyncWrite + Unpin + Send>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
        req: Incoming<Req>,
    ) -> io::Result<()> {
        match req {
            Incoming::Request(r) => write(io, r).await,
            Incoming::Refused(e) => Err(io::Error::other(e)),
        }
    }

    async fn write_response<T: AsyncWrite + Unpin + Send>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
        res: Resp,
    ) -> io::Result<()> {
        write(io, res).await
    }
}
