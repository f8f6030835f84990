//! The HTTP API on a test network's requestor, and a plain HTTP/1.1 client
//! for tests that must set every header themselves (`Host`, `Origin`).

use std::io::{Read, Write};
use std::net::SocketAddr;

use super::TestRequestor;
use crate::NodeHome;
use crate::http::{Served, bind, serve};

impl TestRequestor {
    /// Serves the HTTP API and dashboard for this requestor at `addr` (a
    /// taken port falls back to the next free ones), its token in the
    /// requestor's home: → where it listens, and the token.
    pub async fn serve_http(&self, addr: SocketAddr) -> Result<(SocketAddr, String), Box<dyn std::error::Error>> {
        let listener = bind(addr, 16).await?;
        let at = listener.local_addr()?;
        let token = NodeHome::new(&self.node.home).api_token()?;
        let served = Served {
            node: self.node.handle.clone(),
            blobs: self.node.blobs.clone(),
            requestor: self.engine.clone(),
            home: self.node.home.clone(),
            max_upload: 1 << 30,
        };
        let t = token.clone();
        self.node.handle.lifecycle().spawn(async move {
            if let Err(e) = serve(listener, &t, served).await {
                tracing::error!("the HTTP API stopped: {e}");
            }
        });
        Ok((at, token))
    }
}

/// One HTTP/1.1 request to `addr` (`host:port`) with `headers` (a `Host` of
/// `addr` unless given) and `body`, on a blocking socket: the status code
/// and the body (chunked bodies are not decoded).
pub fn http_request(
    addr: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> std::io::Result<(u16, Vec<u8>)> {
    let mut s = std::net::TcpStream::connect(addr)?;
    let mut req = format!(
        "{method} {path} HTTP/1.1\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    if !headers.iter().any(|(k, _)| k.eq_ignore_ascii_case("host")) {
        req.push_str(&format!("Host: {addr}\r\n"));
    }
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes())?;
    s.write_all(body)?;
    let mut out = Vec::new();
    s.read_to_end(&mut out)?;
    let bad = || std::io::Error::new(std::io::ErrorKind::InvalidData, "not an HTTP/1.1 answer");
    let code = std::str::from_utf8(out.get(9..12).ok_or_else(bad)?)
        .ok()
        .and_then(|c| c.parse().ok())
        .ok_or_else(bad)?;
    let start = out.windows(4).position(|w| w == b"\r\n\r\n").ok_or_else(bad)? + 4;
    Ok((code, out.split_off(start)))
}
