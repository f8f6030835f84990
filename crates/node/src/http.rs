//! The node's HTTP API (first part of issue "See and drive a node from a
//! browser and from code"): JSON over HTTP on a TCP port, loopback by
//! default, and Prometheus metrics at `/metrics`.
//!
//! Every request needs the node's bearer token (`Authorization: Bearer
//! <token>`), kept in `<home>/api.token` (mode 0600, made on first start:
//! [`crate::NodeHome::api_token`]):
//! on a machine with several users, a loopback port is open to all of them,
//! where the Unix socket was not. Two more checks stop a web page in the
//! user's browser from driving the node:
//! - a request that carries an `Origin` is refused unless the origin is
//!   this server's own (a cross-origin request);
//! - on a loopback listener, a `Host` other than a loopback name is refused
//!   (DNS rebinding: a hostile name that resolves to 127.0.0.1).
//!
//! No endpoint ever returns key material. The answers are the control
//! socket's ([`crate::api`]): the same requests, handled by the same code.

use std::net::SocketAddr;

use axum::Router;
use axum::extract::{Path as UrlPath, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use tokio::net::TcpListener;

use crate::api::{ApiRequest, handle};
use crate::blobs::BlobStore;
use crate::daemon::NodeHandle;
use crate::job::Requestor;

/// What the handlers share.
#[derive(Clone)]
struct Http {
    node: NodeHandle,
    blobs: BlobStore,
    requestor: Requestor,
    /// BLAKE3 of the token: compared in constant time (`blake3::Hash`'s
    /// equality is).
    token: blake3::Hash,
    /// Where the server listens (for the same-origin and Host checks).
    addr: SocketAddr,
}

/// Binds the API's listener on `addr`. When its port is taken (another
/// node on this machine), the next ports up to `fallback` of them, then
/// any free port (`api.addr` says which), unless `fallback` is 0.
pub async fn bind(addr: SocketAddr, fallback: u16) -> std::io::Result<TcpListener> {
    let mut err = None;
    for i in 0..=fallback {
        let mut a = addr;
        a.set_port(addr.port().saturating_add(i));
        match TcpListener::bind(a).await {
            Ok(l) => return Ok(l),
            Err(e) if e.kind() == std::io::ErrorKind::AddrInUse && addr.port() != 0 => err = Some(e),
            Err(e) => return Err(e),
        }
    }
    match err {
        Some(e) if fallback == 0 => Err(e),
        _ => {
            let mut any = addr;
            any.set_port(0);
            TcpListener::bind(any).await
        }
    }
}

/// Serves the API on `listener` until the node stops.
pub(crate) async fn serve(
    listener: TcpListener,
    token: &str,
    node: NodeHandle,
    blobs: BlobStore,
    requestor: Requestor,
) -> std::io::Result<()> {
    let addr = listener.local_addr()?;
    let life = node.lifecycle().clone();
    let state = Http {
        node,
        blobs,
        requestor,
        token: blake3::hash(token.as_bytes()),
        addr,
    };
    let app = router(state);
    axum::serve(listener, app)
        .with_graceful_shutdown(async move { life.stopping().await })
        .await
}

fn router(state: Http) -> Router {
    Router::new()
        .route("/metrics", get(metrics))
        .route("/api/status", get(status))
        .route("/api/offers", get(offers))
        .route("/api/jobs", get(jobs))
        .route("/api/jobs/{id}", get(job))
        .fallback(|| async { error(StatusCode::NOT_FOUND, "no such endpoint") })
        .layer(axum::middleware::from_fn_with_state(state.clone(), guard))
        .with_state(state)
}

/// A JSON error: `{"error": "…"}`.
fn error(code: StatusCode, why: &str) -> Response {
    (code, axum::Json(serde_json::json!({ "error": why }))).into_response()
}

/// The checks every request passes before its handler: the Host (on
/// loopback), the Origin, then the token.
async fn guard(State(s): State<Http>, req: Request, next: Next) -> Response {
    if let Err((code, why)) = check(&s, req.headers()) {
        return error(code, why);
    }
    next.run(req).await
}

fn check(s: &Http, headers: &HeaderMap) -> Result<(), (StatusCode, &'static str)> {
    let host = headers.get(header::HOST).and_then(|h| h.to_str().ok()).unwrap_or("");
    if s.addr.ip().is_loopback() && !is_loopback_host(host, s.addr.port()) {
        return Err((StatusCode::FORBIDDEN, "the Host is not this machine's loopback address"));
    }
    if let Some(origin) = headers.get(header::ORIGIN) {
        let own = format!("http://{host}");
        if origin.to_str().ok() != Some(own.as_str()) {
            return Err((StatusCode::FORBIDDEN, "cross-origin requests are refused"));
        }
    }
    let given = headers
        .get(header::AUTHORIZATION)
        .and_then(|h| h.to_str().ok())
        .and_then(|h| h.strip_prefix("Bearer "))
        .ok_or((
            StatusCode::UNAUTHORIZED,
            "a bearer token is needed (the node home's api.token)",
        ))?;
    if blake3::hash(given.trim().as_bytes()) != s.token {
        return Err((StatusCode::UNAUTHORIZED, "wrong token"));
    }
    Ok(())
}

/// Whether `host` (a Host header) names this machine's loopback at `port`.
fn is_loopback_host(host: &str, port: u16) -> bool {
    let Some((name, p)) = host.rsplit_once(':') else {
        return false;
    };
    p.parse::<u16>().ok() == Some(port) && matches!(name, "127.0.0.1" | "localhost" | "[::1]")
}

/// The control socket's answer to `req`, as HTTP: 200 with the JSON, or an
/// error.
async fn answer(s: &Http, req: ApiRequest, missing: StatusCode) -> Response {
    match handle(&s.node, &s.blobs, &s.requestor, req).await {
        Ok(v) => axum::Json(v).into_response(),
        Err(why) => error(missing, &why),
    }
}

async fn status(State(s): State<Http>) -> Response {
    answer(&s, ApiRequest::Status, StatusCode::SERVICE_UNAVAILABLE).await
}

async fn offers(State(s): State<Http>) -> Response {
    answer(&s, ApiRequest::Offers, StatusCode::SERVICE_UNAVAILABLE).await
}

async fn jobs(State(s): State<Http>) -> Response {
    answer(&s, ApiRequest::Jobs, StatusCode::INTERNAL_SERVER_ERROR).await
}

async fn job(State(s): State<Http>, UrlPath(id): UrlPath<String>) -> Response {
    answer(&s, ApiRequest::Job { id }, StatusCode::NOT_FOUND).await
}

/// The node's metrics in Prometheus' text format.
async fn metrics(State(s): State<Http>) -> Response {
    let body = s.node.metrics().encode();
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        body,
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_loopback_names_at_our_port_are_our_host() {
        assert!(is_loopback_host("127.0.0.1:7410", 7410));
        assert!(is_loopback_host("localhost:7410", 7410));
        assert!(is_loopback_host("[::1]:7410", 7410));
        assert!(!is_loopback_host("127.0.0.1:7411", 7410));
        assert!(!is_loopback_host("evil.example:7410", 7410));
        assert!(!is_loopback_host("127.0.0.1", 7410));
        assert!(!is_loopback_host("", 7410));
    }

    #[tokio::test]
    async fn a_taken_port_falls_back_to_the_next_then_to_any() {
        let first = bind(SocketAddr::from(([127, 0, 0, 1], 0)), 0)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let taken = first.local_addr().unwrap_or_else(|e| panic!("{e}"));
        let next = bind(taken, 0).await;
        assert!(next.is_err(), "no fallback: the taken port is an error");
        for fallback in [1, 3] {
            let l = bind(taken, fallback).await.unwrap_or_else(|e| panic!("{e}"));
            let got = l.local_addr().unwrap_or_else(|e| panic!("{e}"));
            assert_ne!(got.port(), taken.port());
            assert!(got.ip().is_loopback());
        }
    }
}
