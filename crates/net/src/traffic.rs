//! Bytes in and out of a node's libp2p connections, counted on the TCP
//! stream under Noise and Yamux (what crosses the wire, handshakes and
//! framing included), for the node's metrics.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};

use futures::{AsyncRead, AsyncWrite};

/// The counts, shared by every connection of one swarm. Cheap to clone.
#[derive(Clone, Debug, Default)]
pub struct Traffic {
    bytes_in: Arc<AtomicU64>,
    bytes_out: Arc<AtomicU64>,
}

impl Traffic {
    /// Bytes read from peers so far.
    pub fn bytes_in(&self) -> u64 {
        self.bytes_in.load(Ordering::Relaxed)
    }

    /// Bytes written to peers so far.
    pub fn bytes_out(&self) -> u64 {
        self.bytes_out.load(Ordering::Relaxed)
    }
}

/// A stream whose reads and writes are counted into a [`Traffic`].
#[derive(Debug)]
pub(crate) struct Counted<S> {
    inner: S,
    traffic: Traffic,
}

impl<S> Counted<S> {
    pub(crate) fn new(inner: S, traffic: Traffic) -> Self {
        Counted { inner, traffic }
    }
}

fn count(r: &Poll<io::Result<usize>>, to: &AtomicU64) {
    if let Poll::Ready(Ok(n)) = r {
        to.fetch_add(*n as u64, Ordering::Relaxed);
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Counted<S> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut [u8]) -> Poll<io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_read(cx, buf);
        count(&r, &self.traffic.bytes_in);
        r
    }

    fn poll_read_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &mut [io::IoSliceMut<'_>],
    ) -> Poll<io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_read_vectored(cx, bufs);
        count(&r, &self.traffic.bytes_in);
        r
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Counted<S> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write(cx, buf);
        count(&r, &self.traffic.bytes_out);
        r
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        count(&r, &self.traffic.bytes_out);
        r
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_close(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_close(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::io::{AsyncReadExt, AsyncWriteExt, Cursor};

    #[test]
    fn reads_and_writes_are_counted_by_what_crossed() {
        futures::executor::block_on(async {
            let t = Traffic::default();
            let mut s = Counted::new(Cursor::new(b"hello world".to_vec()), t.clone());
            let mut buf = [0u8; 5];
            s.read_exact(&mut buf).await.unwrap_or_else(|e| panic!("{e}"));
            assert_eq!((t.bytes_in(), t.bytes_out()), (5, 0));
            s.write_all(b"abc").await.unwrap_or_else(|e| panic!("{e}"));
            assert_eq!((t.bytes_in(), t.bytes_out()), (5, 3));
            let mut rest = Vec::new();
            s.read_to_end(&mut rest).await.unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(t.bytes_in(), 5 + rest.len() as u64);
        });
    }
}
