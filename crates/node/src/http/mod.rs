//! The node's HTTP API: JSON over HTTP on a TCP port, loopback by default,
//! described by an OpenAPI document made from the handlers themselves
//! ([`document`], served at `/api/openapi.json` and checked in as
//! `docs/openapi.json`), live events by server-sent events
//! (`/api/events`), Prometheus metrics at `/metrics`, and the web
//! dashboard at `/` ([`dashboard`]).
//!
//! Every `/api` request (but the document) and `/metrics` needs the node's
//! bearer token (`Authorization: Bearer <token>`), kept in
//! `<home>/api.token` (mode 0600, made on first start:
//! [`crate::NodeHome::api_token`]): on a machine with several users, a
//! loopback port is open to all of them. Two more checks stop a web page
//! in the user's browser from driving the node:
//! - a request that carries an `Origin` is refused unless the origin is
//!   this server's own (a cross-origin request);
//! - on a loopback listener, a `Host` other than a loopback name is refused
//!   (DNS rebinding: a hostile name that resolves to 127.0.0.1).
//!
//! The dashboard's files need no token (they hold no data); the page asks
//! for it, or takes it from the address's fragment (`#token=…`, which the
//! browser never sends), and keeps it in the tab's session storage.
//!
//! No endpoint ever returns key material.

pub(crate) mod dashboard;
mod events;
mod ops;
mod routes;
pub mod views;

pub use events::ApiEvent;

use std::net::SocketAddr;
use std::path::PathBuf;

use axum::Router;
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use tokio::net::TcpListener;
use utoipa::OpenApi as _;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityRequirement, SecurityScheme};
use utoipa::openapi::{OpenApi, RefOr, Response as DocResponse};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

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
    /// The node home (runtimes named by submitted jobs).
    home: PathBuf,
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
pub async fn serve(listener: TcpListener, token: &str, parts: Served) -> std::io::Result<()> {
    let addr = listener.local_addr()?;
    let life = parts.node.lifecycle().clone();
    let max_upload = parts.max_upload;
    let state = Http {
        node: parts.node,
        blobs: parts.blobs,
        requestor: parts.requestor,
        token: blake3::hash(token.as_bytes()),
        addr,
        home: parts.home,
    };
    let app = router(state, max_upload);
    axum::serve(listener, app)
        .with_graceful_shutdown(async move { life.stopping().await })
        .await
}

/// What the server serves from.
#[derive(Debug)]
pub struct Served {
    /// The node.
    pub node: NodeHandle,
    /// The requestor's blob store (uploads, results).
    pub blobs: BlobStore,
    /// The requestor.
    pub requestor: Requestor,
    /// The node home.
    pub home: PathBuf,
    /// The largest upload (the node's input size limit).
    pub max_upload: u64,
}

/// The document's frame: what is not made from the handlers.
#[derive(utoipa::OpenApi)]
#[openapi(
    info(
        title = "sharegrid node API",
        description = "See and drive a sharegrid node: its status, offers, jobs (submit, follow, download \
results), the ledger and its wallet. Every operation needs the bearer token in the node home's `api.token`; \
cross-origin requests are refused. Amounts are decimal strings (128-bit); ids are hex."
    ),
    components(schemas(views::JobRef)),
    tags(
        (name = "node", description = "The node and the network it sees"),
        (name = "jobs", description = "Jobs, their tasks and results, and the blobs they are made of"),
        (name = "ledger", description = "The ledger: blocks, transactions, accounts"),
        (name = "wallet", description = "This node's account: transfers, stake, test tokens"),
    )
)]
struct Frame;

/// The API's routes, each with its place in the document.
fn api() -> OpenApiRouter<Http> {
    OpenApiRouter::with_openapi(Frame::openapi())
        .routes(routes!(routes::status))
        .routes(routes!(routes::offers))
        .routes(routes!(routes::peers))
        .routes(routes!(routes::providers))
        .routes(routes!(routes::jobs, routes::submit))
        .routes(routes!(routes::job))
        .routes(routes!(routes::cancel))
        .routes(routes!(routes::task))
        .routes(routes!(routes::stdout))
        .routes(routes!(routes::stderr))
        .routes(routes!(routes::file))
        .routes(routes!(routes::run))
        .routes(routes!(routes::stop))
        .routes(routes!(routes::upload))
        .routes(routes!(routes::blob))
        .routes(routes!(routes::ledger_head))
        .routes(routes!(routes::blocks))
        .routes(routes!(routes::tx))
        .routes(routes!(routes::account))
        .routes(routes!(routes::wallet))
        .routes(routes!(routes::transfer))
        .routes(routes!(routes::stake))
        .routes(routes!(routes::faucet))
        .routes(routes!(events::events))
        .routes(routes!(metrics))
}

/// Paths served without the token: the dashboard's files and the document.
const PUBLIC: &[&str] = &["/api/openapi.json"];

/// The API's OpenAPI document, as `/api/openapi.json` serves it.
pub fn document() -> OpenApi {
    complete(api().split_for_parts().1)
}

/// The document the routes make, with what is not made from them: the
/// version, the token scheme, the refusals every operation can answer,
/// and the document's own path.
fn complete(mut doc: OpenApi) -> OpenApi {
    doc.info.version = env!("CARGO_PKG_VERSION").to_owned();
    doc.info.license = None;
    doc.info.contact = None;
    let components = doc.components.get_or_insert_with(Default::default);
    components.add_security_scheme(
        "token",
        SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
    );
    doc.security = Some(vec![SecurityRequirement::new("token", Vec::<String>::new())]);
    let refused = |why: &str| -> RefOr<DocResponse> {
        let body = utoipa::openapi::ContentBuilder::new()
            .schema(Some(RefOr::Ref(utoipa::openapi::Ref::from_schema_name("ErrorBody"))))
            .build();
        RefOr::T(
            utoipa::openapi::ResponseBuilder::new()
                .description(why)
                .content("application/json", body)
                .build(),
        )
    };
    for item in doc.paths.paths.values_mut() {
        for op in [&mut item.get, &mut item.post].into_iter().flatten() {
            op.responses
                .responses
                .entry("401".into())
                .or_insert_with(|| refused("No bearer token, or the wrong one"));
            op.responses
                .responses
                .entry("403".into())
                .or_insert_with(|| refused("A cross-origin request, or a Host that is not this machine's loopback"));
        }
    }
    doc.paths.add_path_operation(
        "/api/openapi.json",
        vec![utoipa::openapi::HttpMethod::Get],
        utoipa::openapi::path::OperationBuilder::new()
            .operation_id(Some("openapi"))
            .tag("node")
            .summary(Some("This document"))
            .security(SecurityRequirement::default())
            .response(
                "200",
                utoipa::openapi::ResponseBuilder::new()
                    .description("The OpenAPI document")
                    .content("application/json", utoipa::openapi::ContentBuilder::new().build())
                    .build(),
            )
            .response(
                "403",
                refused("A cross-origin request, or a Host that is not this machine's loopback"),
            ),
    );
    doc
}

fn router(state: Http, max_upload: u64) -> Router {
    let (api, doc) = api().split_for_parts();
    let doc = complete(doc);
    api.route("/api/openapi.json", get(move || async move { axum::Json(doc) }))
        .merge(dashboard::routes())
        .fallback(|| async { error(StatusCode::NOT_FOUND, "no such endpoint") })
        .layer(DefaultBodyLimit::max(usize::try_from(max_upload).unwrap_or(usize::MAX)))
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
    let path = req.uri().path();
    let public = PUBLIC.contains(&path) || dashboard::is_asset(path);
    if let Err((code, why)) = check(&s, req.headers(), public) {
        return error(code, why);
    }
    next.run(req).await
}

fn check(s: &Http, headers: &HeaderMap, public: bool) -> Result<(), (StatusCode, &'static str)> {
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
    if public {
        return Ok(());
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

/// The node's metrics in Prometheus' text format.
#[utoipa::path(get, path = "/metrics", tag = "node",
    responses((status = 200, description = "Prometheus metrics (OpenMetrics text)", content_type = "application/openmetrics-text", body = String)))]
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

    /// `docs/openapi.json` is what [`document`] makes: a change to a handler
    /// or a type that moves the API fails here until the file is written
    /// again (`SHAREGRID_WRITE_OPENAPI=1 cargo test -p sharegrid-node
    /// checked_in`), so the diff shows in review.
    #[test]
    fn the_checked_in_document_is_the_one_the_code_makes() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/openapi.json");
        let made = serde_json::to_string_pretty(&document()).unwrap_or_default() + "\n";
        if std::env::var_os("SHAREGRID_WRITE_OPENAPI").is_some() {
            std::fs::write(&path, &made).unwrap_or_else(|e| panic!("{e}"));
        }
        let kept = std::fs::read_to_string(&path).unwrap_or_default();
        assert!(
            kept == made,
            "docs/openapi.json differs from the API the code serves: run \
             SHAREGRID_WRITE_OPENAPI=1 cargo test -p sharegrid-node checked_in"
        );
        let v: serde_json::Value = serde_json::from_str(&made).unwrap_or_default();
        // Every reference names a schema of the document.
        let refs: Vec<&str> = made
            .split("\"$ref\": \"#/components/schemas/")
            .skip(1)
            .filter_map(|r| r.split('"').next())
            .collect();
        assert!(!refs.is_empty());
        for r in refs {
            assert!(
                v["components"]["schemas"][r].is_object(),
                "{r} is referenced but not in the document"
            );
        }
        // Every operation is under the token but the document itself.
        for (path, item) in v["paths"].as_object().into_iter().flatten() {
            for (method, op) in item.as_object().into_iter().flatten() {
                let public = op["security"] == serde_json::json!([{}]);
                assert_eq!(public, path == "/api/openapi.json", "{method} {path}");
                assert!(op["responses"]["403"].is_object(), "{method} {path} documents no 403");
            }
        }
    }

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
