//! The API's handlers, each with the OpenAPI description it is listed
//! under (`#[utoipa::path]`): the document is made from these, so it
//! cannot drift from what the server does.
//!
//! Every failure is JSON ([`ErrorBody`]) with a status that says whose
//! fault it is: 400 for a request that cannot be right, 404 for something
//! that is not there, 402 when a job cannot be paid for, 503 while the node
//! stops or keeps no ledger. Path, query and body rejections are JSON too
//! (the extractors below), never axum's plain-text ones.

use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Path, Query, Request, State};
use axum::http::request::Parts;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use sharegrid_core::{ContentId, NodeId, Offer, TaskResult};
use utoipa::IntoParams;

use super::Http;
use super::ops::{self, job_view};
use super::views::{
    AccountView, BlockView, ErrorBody, JobRef, LedgerView, ProviderView, Submitted, TaskOutputs, TransferBody, TxView,
    Uploaded,
};
use crate::api::{JobView, RemoteRun, RemoteTask, StakeAction, Transferred};
use crate::job::{CancelError, JobRequest, JobRow, SubmitError};
use crate::ledger::Ledger;
use crate::{NodeStatus, PeerView, TaskRow};

/// A failed request: its status and why.
#[derive(Debug)]
pub(super) struct Fail(pub StatusCode, pub String);

impl Fail {
    fn bad(why: impl Into<String>) -> Fail {
        Fail(StatusCode::BAD_REQUEST, why.into())
    }
    fn missing(why: impl Into<String>) -> Fail {
        Fail(StatusCode::NOT_FOUND, why.into())
    }
    fn internal(why: impl std::fmt::Display) -> Fail {
        Fail(StatusCode::INTERNAL_SERVER_ERROR, why.to_string())
    }
    fn unavailable(why: impl Into<String>) -> Fail {
        Fail(StatusCode::SERVICE_UNAVAILABLE, why.into())
    }
}

impl IntoResponse for Fail {
    fn into_response(self) -> Response {
        (self.0, Json(ErrorBody { error: self.1 })).into_response()
    }
}

type Answer<T> = Result<Json<T>, Fail>;

/// A JSON body, refused as JSON when it does not decode.
pub(super) struct Body<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for Body<T> {
    type Rejection = Fail;
    async fn from_request(req: Request, state: &S) -> Result<Self, Fail> {
        let bytes = Bytes::from_request(req, state)
            .await
            .map_err(|e| Fail(e.status(), e.body_text()))?;
        let mut de = serde_json::Deserializer::from_slice(&bytes);
        let body = serde_path_to_error::deserialize(&mut de).map_err(|e| {
            let at = e.path().to_string();
            let at = if at == "." { String::new() } else { format!(" at {at}") };
            Fail::bad(format!("the body is not this request's JSON{at}: {}", e.inner()))
        })?;
        de.end()
            .map_err(|e| Fail::bad(format!("the body is not this request's JSON: {e}")))?;
        Ok(Body(body))
    }
}

/// Path parameters, refused as JSON when they do not parse.
pub(super) struct Params<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned + Send> FromRequestParts<S> for Params<T> {
    type Rejection = Fail;
    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Fail> {
        Path::<T>::from_request_parts(parts, state)
            .await
            .map(|Path(t)| Params(t))
            .map_err(|e| Fail(e.status(), e.body_text()))
    }
}

/// Query parameters, refused as JSON when they do not parse.
pub(super) struct Queried<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned + Send> FromRequestParts<S> for Queried<T> {
    type Rejection = Fail;
    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Fail> {
        Query::<T>::from_request_parts(parts, state)
            .await
            .map(|Query(t)| Queried(t))
            .map_err(|e| Fail(e.status(), e.body_text()))
    }
}

fn parse<T: std::str::FromStr>(what: &str, s: &str) -> Result<T, Fail>
where
    T::Err: std::fmt::Display,
{
    s.parse().map_err(|e| Fail::bad(format!("{what}: {e}")))
}

#[utoipa::path(get, path = "/api/status", tag = "node",
    responses((status = 200, description = "The node now", body = NodeStatus),
        (status = 503, description = "The node is stopping", body = ErrorBody)))]
pub(super) async fn status(State(s): State<Http>) -> Answer<NodeStatus> {
    s.node
        .status()
        .await
        .map(Json)
        .ok_or(Fail::unavailable("the node is stopping"))
}

#[utoipa::path(get, path = "/api/offers", tag = "node",
    responses((status = 200, description = "Providers' live offers", body = Vec<Offer>)))]
pub(super) async fn offers(State(s): State<Http>) -> Json<Vec<Offer>> {
    Json(s.node.offers().await)
}

#[utoipa::path(get, path = "/api/peers", tag = "node",
    responses((status = 200, description = "The connected peers", body = Vec<PeerView>),
        (status = 503, description = "The node is stopping", body = ErrorBody)))]
pub(super) async fn peers(State(s): State<Http>) -> Answer<Vec<PeerView>> {
    let status = s.node.status().await.ok_or(Fail::unavailable("the node is stopping"))?;
    Ok(Json(status.connected))
}

#[utoipa::path(get, path = "/api/providers", tag = "node",
    responses((status = 200, description = "Providers with live offers, fastest first: stake on the ledger and this \
        node's record of their work", body = Vec<ProviderView>),
        (status = 500, description = "The job store failed", body = ErrorBody)))]
pub(super) async fn providers(State(s): State<Http>) -> Answer<Vec<ProviderView>> {
    let mut offers = s.node.offers().await;
    offers.sort_by(|a, b| b.speed.0.total_cmp(&a.speed.0));
    let records = s.requestor.store().reputation().map_err(Fail::internal)?;
    let ledger = s.requestor.payments().map(|p| p.ledger().clone());
    let out = offers
        .into_iter()
        .map(|offer| {
            let r = records.get(&offer.provider);
            ProviderView {
                bonded: ledger
                    .as_ref()
                    .map(|l| l.with_state(|st| st.stakes.get(&offer.provider).map(|k| k.bonded).unwrap_or_default())),
                agreed: r.agreed,
                disagreed: r.disagreed,
                failed: r.failed,
                offer,
            }
        })
        .collect();
    Ok(Json(out))
}

#[utoipa::path(get, path = "/api/jobs", tag = "jobs",
    responses((status = 200, description = "Every job this node submitted, newest first", body = Vec<JobRow>)))]
pub(super) async fn jobs(State(s): State<Http>) -> Answer<Vec<JobRow>> {
    s.requestor.store().jobs().map(Json).map_err(Fail::internal)
}

#[utoipa::path(post, path = "/api/jobs", tag = "jobs", request_body = JobRequest,
    responses((status = 201, description = "Submitted", body = Submitted),
        (status = 400, description = "The job file or a file it names is refused", body = ErrorBody),
        (status = 402, description = "The job cannot be paid for", body = ErrorBody)))]
pub(super) async fn submit(State(s): State<Http>, Body(req): Body<JobRequest>) -> Result<Response, Fail> {
    let (blobs, home) = (s.blobs.clone(), s.home.clone());
    let sub = tokio::task::spawn_blocking(move || req.submission(&blobs, &home))
        .await
        .map_err(Fail::internal)?
        .map_err(Fail::bad)?;
    match s.requestor.submit(sub).await {
        Ok(id) => Ok((StatusCode::CREATED, Json(Submitted { id })).into_response()),
        Err(e @ (SubmitError::MissingBlob(_) | SubmitError::Empty | SubmitError::Terms(_))) => {
            Err(Fail::bad(e.to_string()))
        }
        Err(e @ SubmitError::Unfunded(_)) => Err(Fail(StatusCode::PAYMENT_REQUIRED, e.to_string())),
        Err(e @ SubmitError::Store(_)) => Err(Fail::internal(e)),
    }
}

#[utoipa::path(get, path = "/api/jobs/{id}", tag = "jobs",
    params(("id" = JobRef, Path, description = "The job's id, or a unique prefix of it")),
    responses((status = 200, description = "The job, its live state, tasks and payment", body = JobView),
        (status = 404, description = "No such job", body = ErrorBody)))]
pub(super) async fn job(State(s): State<Http>, Params(id): Params<String>) -> Answer<JobView> {
    job_view(&s.requestor, &id).map(Json).map_err(Fail::missing)
}

#[utoipa::path(post, path = "/api/jobs/{id}/cancel", tag = "jobs",
    params(("id" = JobRef, Path, description = "The job's id, or a unique prefix of it")),
    responses((status = 200, description = "Cancelled: nothing more is assigned; accepted results are kept and paid, \
        the rest of the escrow refunded; the job ends failed (an `ended` event)", body = Submitted),
        (status = 404, description = "No such job", body = ErrorBody),
        (status = 409, description = "The job has ended already", body = ErrorBody)))]
pub(super) async fn cancel(State(s): State<Http>, Params(id): Params<String>) -> Answer<Submitted> {
    match s.requestor.cancel(&id).await {
        Ok(id) => Ok(Json(Submitted { id })),
        Err(e @ CancelError::NoJob(_)) => Err(Fail::missing(e.to_string())),
        Err(e @ CancelError::Ended(..)) => Err(Fail(StatusCode::CONFLICT, e.to_string())),
        Err(e @ CancelError::Store(_)) => Err(Fail::internal(e)),
    }
}

/// The accepted result of task `index` of job `id`, decoded.
fn task_result(s: &Http, id: &str, index: &str) -> Result<(TaskRow, TaskResult), Fail> {
    let index: usize = parse("index", index)?;
    let store = s.requestor.store();
    let job = store
        .job(id)
        .map_err(Fail::internal)?
        .ok_or_else(|| Fail::missing(format!("no job {id:?} (or the prefix is ambiguous)")))?;
    let task = store
        .tasks(&job.id)
        .map_err(Fail::internal)?
        .into_iter()
        .find(|t| t.index == index)
        .ok_or_else(|| Fail::missing(format!("job {} has no task {index}", job.id)))?;
    let result = task
        .result
        .ok_or_else(|| Fail::missing(format!("task {index} has no accepted result (it is {:?})", task.state)))?;
    let bytes = s.blobs.get(&result).map_err(Fail::internal)?.ok_or_else(|| {
        Fail::missing(format!(
            "the result {result} of task {index} is gone from the blob store"
        ))
    })?;
    let r = TaskResult::decode(&bytes).map_err(Fail::internal)?;
    Ok((task, r))
}

#[utoipa::path(get, path = "/api/jobs/{id}/tasks/{index}", tag = "jobs",
    params(("id" = JobRef, Path, description = "The job's id or a unique prefix"),
        ("index" = u64, Path, description = "The task's index in the job")),
    responses((status = 200, description = "How the task ended and what it wrote", body = TaskOutputs),
        (status = 400, description = "The index is not a number", body = ErrorBody),
        (status = 404, description = "No such job or task, or no accepted result yet", body = ErrorBody)))]
pub(super) async fn task(State(s): State<Http>, Params((id, index)): Params<(String, String)>) -> Answer<TaskOutputs> {
    let (t, r) = task_result(&s, &id, &index)?;
    Ok(Json(TaskOutputs::of(t.index, t.id, &r)))
}

#[utoipa::path(get, path = "/api/jobs/{id}/tasks/{index}/stdout", tag = "jobs",
    params(("id" = JobRef, Path, description = "The job's id or a unique prefix"),
        ("index" = u64, Path, description = "The task's index in the job")),
    responses((status = 200, description = "What the task wrote to stdout", content_type = "application/octet-stream", body = Vec<u8>),
        (status = 400, description = "The index is not a number", body = ErrorBody),
        (status = 404, description = "No such job or task, or no accepted result yet", body = ErrorBody)))]
pub(super) async fn stdout(
    State(s): State<Http>,
    Params((id, index)): Params<(String, String)>,
) -> Result<Response, Fail> {
    let (_, r) = task_result(&s, &id, &index)?;
    Ok(bytes("stdout", r.stdout))
}

#[utoipa::path(get, path = "/api/jobs/{id}/tasks/{index}/stderr", tag = "jobs",
    params(("id" = JobRef, Path, description = "The job's id or a unique prefix"),
        ("index" = u64, Path, description = "The task's index in the job")),
    responses((status = 200, description = "What the task wrote to stderr", content_type = "application/octet-stream", body = Vec<u8>),
        (status = 400, description = "The index is not a number", body = ErrorBody),
        (status = 404, description = "No such job or task, or no accepted result yet", body = ErrorBody)))]
pub(super) async fn stderr(
    State(s): State<Http>,
    Params((id, index)): Params<(String, String)>,
) -> Result<Response, Fail> {
    let (_, r) = task_result(&s, &id, &index)?;
    Ok(bytes("stderr", r.stderr))
}

#[utoipa::path(get, path = "/api/jobs/{id}/tasks/{index}/files/{path}", tag = "jobs",
    params(("id" = JobRef, Path, description = "The job's id or a unique prefix"),
        ("index" = u64, Path, description = "The task's index in the job"),
        ("path" = String, Path, description = "The file's path under /out, its slashes encoded (%2F)")),
    responses((status = 200, description = "The file's bytes, typed by its extension", content_type = "application/octet-stream", body = Vec<u8>),
        (status = 400, description = "The index is not a number", body = ErrorBody),
        (status = 404, description = "No such job, task or file, or no accepted result yet", body = ErrorBody)))]
pub(super) async fn file(
    State(s): State<Http>,
    Params((id, index, path)): Params<(String, String, String)>,
) -> Result<Response, Fail> {
    let (t, r) = task_result(&s, &id, &index)?;
    let f = r
        .files
        .into_iter()
        .find(|f| f.path == path)
        .ok_or_else(|| Fail::missing(format!("task {} left no file {path:?} in /out", t.index)))?;
    Ok(bytes(&f.path, f.data))
}

/// Bytes to download as `name`: never shown in place, since a task's
/// output is a stranger's bytes.
fn bytes(name: &str, data: Vec<u8>) -> Response {
    let file = name.rsplit('/').next().unwrap_or_default();
    let file: String = file
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'))
        .collect();
    let disposition = if file.is_empty() {
        "attachment".to_owned()
    } else {
        format!("attachment; filename=\"{file}\"")
    };
    (
        [
            (header::CONTENT_TYPE, "application/octet-stream".to_owned()),
            (header::CONTENT_DISPOSITION, disposition),
            (header::CONTENT_SECURITY_POLICY, "sandbox".to_owned()),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff".to_owned()),
        ],
        data,
    )
        .into_response()
}

#[utoipa::path(post, path = "/api/blobs", tag = "jobs",
    request_body(content = Option<Vec<u8>>, content_type = "application/octet-stream", description = "A module, stdin or input file (empty is an empty file)"),
    responses((status = 201, description = "Stored under its hash", body = Uploaded),
        (status = 413, description = "Over the node's input size limit", body = ErrorBody)))]
pub(super) async fn upload(State(s): State<Http>, body: Bytes) -> Result<Response, Fail> {
    let blobs = s.blobs.clone();
    let n = body.len() as u64;
    let id = tokio::task::spawn_blocking(move || blobs.put(&body))
        .await
        .map_err(Fail::internal)?
        .map_err(|e| match e {
            crate::blobs::BlobError::TooLarge { .. } => Fail(StatusCode::PAYLOAD_TOO_LARGE, e.to_string()),
            e => Fail::internal(e),
        })?;
    Ok((StatusCode::CREATED, Json(Uploaded { id, bytes: n })).into_response())
}

#[utoipa::path(get, path = "/api/blobs/{id}", tag = "jobs",
    params(("id" = ContentId, Path, description = "The blob's id")),
    responses((status = 200, description = "The blob", content_type = "application/octet-stream", body = Vec<u8>),
        (status = 400, description = "Not a blob id", body = ErrorBody),
        (status = 404, description = "Not in this node's blob store", body = ErrorBody)))]
pub(super) async fn blob(State(s): State<Http>, Params(id): Params<String>) -> Result<Response, Fail> {
    let id: ContentId = parse("id", &id)?;
    let data = s
        .blobs
        .get(&id)
        .map_err(Fail::internal)?
        .ok_or_else(|| Fail::missing(format!("blob {id} is not in this node's blob store")))?;
    Ok(bytes("", data))
}

fn ledger(s: &Http) -> Result<Arc<Ledger>, Fail> {
    s.requestor
        .payments()
        .map(|p| p.ledger().clone())
        .ok_or(Fail::unavailable("this node keeps no ledger"))
}

#[utoipa::path(get, path = "/api/ledger", tag = "ledger",
    responses((status = 200, description = "Where this node's copy of the ledger stands", body = LedgerView),
        (status = 503, description = "This node keeps no ledger", body = ErrorBody)))]
pub(super) async fn ledger_head(State(s): State<Http>) -> Answer<LedgerView> {
    let l = ledger(&s)?;
    let head = l.head();
    Ok(Json(LedgerView {
        genesis: head.genesis,
        height: head.height,
        hash: head.hash,
        time_ms: head.time_ms,
        validator: l.is_validator(),
        validators: l.genesis().validators.clone(),
    }))
}

/// Which blocks.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(super) struct BlockRange {
    /// Blocks below this height (default: up to the newest).
    #[param(minimum = 1, maximum = 9_223_372_036_854_775_807_i64)]
    before: Option<u64>,
    /// How many, newest first (default 20).
    #[param(minimum = 1, maximum = 100)]
    limit: Option<usize>,
}

/// `v` if it is within `min..=max`, else a refusal naming `what`.
fn within<T: PartialOrd + std::fmt::Display + Copy>(
    what: &str,
    v: Option<T>,
    min: T,
    max: T,
) -> Result<Option<T>, Fail> {
    match v {
        Some(v) if v < min || v > max => Err(Fail::bad(format!("{what}: {v} is not within {min}..={max}"))),
        v => Ok(v),
    }
}

#[utoipa::path(get, path = "/api/ledger/blocks", tag = "ledger", params(BlockRange),
    responses((status = 200, description = "Blocks, newest first", body = Vec<BlockView>),
        (status = 400, description = "A parameter is not a number, or out of range", body = ErrorBody),
        (status = 503, description = "This node keeps no ledger", body = ErrorBody)))]
pub(super) async fn blocks(State(s): State<Http>, Queried(r): Queried<BlockRange>) -> Answer<Vec<BlockView>> {
    let limit = within("limit", r.limit, 1, 100)?.unwrap_or(20);
    let before = within("before", r.before, 1, i64::MAX as u64)?.unwrap_or(u64::MAX);
    let l = ledger(&s)?;
    let before = before.min(l.head().height.saturating_add(1));
    let from = before.saturating_sub(limit as u64).max(1);
    if before <= from {
        return Ok(Json(Vec::new()));
    }
    let found = tokio::task::spawn_blocking(move || l.blocks(from, (before - from) as usize, 16 << 20))
        .await
        .map_err(Fail::internal)?
        .map_err(Fail::internal)?;
    // Stored blocks were checked when they were written: their headers are
    // read, not verified again.
    let mut out: Vec<BlockView> = found
        .iter()
        .filter_map(|b| Some((b, b.peek_header().ok()?)))
        .filter(|(_, h)| h.height < before)
        .map(|(b, h)| BlockView {
            height: h.height,
            hash: b.hash(),
            producer: h.producer,
            time_ms: h.time_ms,
            txs: b.txs.iter().map(|t| TxView::in_block(t, h.height, h.time_ms)).collect(),
        })
        .collect();
    out.reverse();
    Ok(Json(out))
}

#[utoipa::path(get, path = "/api/ledger/txs/{id}", tag = "ledger",
    params(("id" = ContentId, Path, description = "The transaction's id")),
    responses((status = 200, description = "The transaction, in its block", body = TxView),
        (status = 400, description = "Not a transaction id", body = ErrorBody),
        (status = 404, description = "In no block of this node's copy", body = ErrorBody),
        (status = 503, description = "This node keeps no ledger", body = ErrorBody)))]
pub(super) async fn tx(State(s): State<Http>, Params(id): Params<String>) -> Answer<TxView> {
    let id: ContentId = parse("id", &id)?;
    let found = ledger(&s)?.tx(&id).map_err(Fail::internal)?;
    found
        .map(|f| Json(TxView::of(&f)))
        .ok_or_else(|| Fail::missing(format!("transaction {id} is in no block of this node's copy")))
}

/// How much history.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(super) struct HistoryLen {
    /// Transactions of history, newest first (default 20).
    #[param(minimum = 0, maximum = 200)]
    history: Option<usize>,
}

fn account_view(l: &Ledger, id: NodeId, history: Option<usize>) -> Result<AccountView, Fail> {
    let history = within("history", history, 0, 200)?;
    let height = l.head().height;
    let (account, stake) = l.with_state(|st| {
        (
            st.accounts.get(&id).copied().unwrap_or_default(),
            st.stakes.get(&id).copied().unwrap_or_default(),
        )
    });
    let history = l
        .history(&id, history.unwrap_or(20))
        .map_err(Fail::internal)?
        .iter()
        .map(TxView::of)
        .collect();
    let mut balances = l.balances(&id, 500).map_err(Fail::internal)?;
    balances.reverse();
    Ok(AccountView {
        id,
        balance: account.balance,
        bonded: stake.bonded,
        unbonding: stake.unbonding,
        nonce: account.nonce,
        height,
        history,
        balances,
    })
}

#[utoipa::path(get, path = "/api/ledger/accounts/{id}", tag = "ledger",
    params(("id" = NodeId, Path, description = "The account: a node id"), HistoryLen),
    responses((status = 200, description = "The account", body = AccountView),
        (status = 400, description = "Not a node id, or a parameter out of range", body = ErrorBody),
        (status = 503, description = "This node keeps no ledger", body = ErrorBody)))]
pub(super) async fn account(
    State(s): State<Http>,
    Params(id): Params<String>,
    Queried(h): Queried<HistoryLen>,
) -> Answer<AccountView> {
    let id: NodeId = parse("id", &id)?;
    account_view(&*ledger(&s)?, id, h.history).map(Json)
}

#[utoipa::path(get, path = "/api/wallet", tag = "wallet", params(HistoryLen),
    responses((status = 200, description = "This node's account", body = AccountView),
        (status = 400, description = "A parameter is out of range", body = ErrorBody),
        (status = 503, description = "This node keeps no ledger", body = ErrorBody)))]
pub(super) async fn wallet(State(s): State<Http>, Queried(h): Queried<HistoryLen>) -> Answer<AccountView> {
    account_view(&*ledger(&s)?, s.node.id(), h.history).map(Json)
}

#[utoipa::path(post, path = "/api/wallet/transfer", tag = "wallet", request_body = TransferBody,
    responses((status = 200, description = "Sent (and in a block, when waited for)", body = Transferred),
        (status = 400, description = "Refused", body = ErrorBody)))]
pub(super) async fn transfer(State(s): State<Http>, Body(t): Body<TransferBody>) -> Answer<Transferred> {
    ops::transfer(&s.requestor, t.to, t.amount, t.wait)
        .await
        .map(Json)
        .map_err(Fail::bad)
}

#[utoipa::path(post, path = "/api/wallet/stake", tag = "wallet", request_body = StakeAction,
    responses((status = 200, description = "In a block", body = Transferred),
        (status = 400, description = "Refused", body = ErrorBody)))]
pub(super) async fn stake(State(s): State<Http>, Body(action): Body<StakeAction>) -> Answer<Transferred> {
    ops::stake(&s.requestor, action).await.map(Json).map_err(Fail::bad)
}

#[utoipa::path(post, path = "/api/wallet/faucet", tag = "wallet",
    responses((status = 200, description = "Test tokens, in a block", body = Transferred),
        (status = 400, description = "Refused (a validator, or no faucet)", body = ErrorBody)))]
pub(super) async fn faucet(State(s): State<Http>) -> Answer<Transferred> {
    ops::faucet(&s.node, &s.requestor).await.map(Json).map_err(Fail::bad)
}

#[utoipa::path(post, path = "/api/run", tag = "jobs", request_body = RemoteTask,
    responses((status = 200, description = "The provider's receipt; the result is in the blob store under `result`", body = RemoteRun),
        (status = 400, description = "Refused: no live offer from the provider, the provider refused, or the result did not come", body = ErrorBody)))]
pub(super) async fn run(State(s): State<Http>, Body(t): Body<RemoteTask>) -> Answer<RemoteRun> {
    ops::run(&s.node, &s.blobs, t).await.map(Json).map_err(Fail::bad)
}

#[utoipa::path(post, path = "/api/stop", tag = "node",
    responses((status = 202, description = "Stopping: running tasks get the shutdown grace period", body = String)))]
pub(super) async fn stop(State(s): State<Http>) -> Response {
    tracing::info!("stop asked through the HTTP API");
    s.node.lifecycle().stop();
    (StatusCode::ACCEPTED, Json("stopping")).into_response()
}
