//! What the process tests share: starting a `sharegrid node` process.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

/// Spawns `node` (a `sharegrid … node` command) and returns once it serves
/// its control socket (it prints its `api` line); its further output is
/// drained.
pub(crate) fn serve(mut node: Command) -> Child {
    let mut child = node.stdout(Stdio::piped()).stderr(Stdio::null()).spawn().unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    loop {
        let line = lines.next().expect("node exited before serving").unwrap();
        if line.starts_with("api") {
            break;
        }
    }
    std::thread::spawn(move || for _ in lines {});
    child
}

/// One HTTP/1.1 request to `addr` (`host:port`): the status code and body.
pub(crate) fn request(addr: &str, method: &str, path: &str, headers: &[(&str, &str)], body: &[u8]) -> (u16, String) {
    let (code, body) = sharegrid_node::testnet::http_request(addr, method, path, headers, body).unwrap();
    (code, String::from_utf8_lossy(&body).into_owned())
}

/// The live events of the node API at `addr` (`host:port`), server-sent,
/// read on a thread from now on: each event's data as JSON.
pub(crate) fn events(addr: &str, bearer: &str) -> std::sync::mpsc::Receiver<serde_json::Value> {
    use std::io::Write;
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    let req = format!("GET /api/events HTTP/1.1\r\nHost: {addr}\r\nAuthorization: {bearer}\r\n\r\n");
    s.write_all(req.as_bytes()).unwrap();
    // The node subscribes before it answers: once the headers are here,
    // nothing that happens next is missed.
    let mut reader = BufReader::new(s);
    let mut status = String::new();
    reader.read_line(&mut status).unwrap();
    assert!(status.starts_with("HTTP/1.1 200"), "{status}");
    let mut header = String::new();
    while reader.read_line(&mut header).unwrap() > 0 && header.trim_end() != "" {
        header.clear();
    }
    let (tx, rx) = std::sync::mpsc::sync_channel(1024);
    std::thread::spawn(move || {
        // Each event is one chunk of the chunked body: its `data:` line whole.
        for line in reader.lines().map_while(Result::ok) {
            if let Some(data) = line.trim_end().strip_prefix("data: ") {
                let v = serde_json::from_str(data).unwrap_or(serde_json::Value::Null);
                if tx.send(v).is_err() {
                    return;
                }
            }
        }
    });
    rx
}
