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
