//! The local control API of a running node: a Unix socket in the node home
//! (`api.sock`, mode 0600, in a 0700 directory — the file system decides
//! who may control the node, so there is no token to leak), one JSON
//! request per line, one JSON answer per line: `{"ok": …}` or
//! `{"error": "…"}`. The CLI's `offers`, `status` and `run --on` use it.
//!
//! Large data never crosses the socket: the CLI puts a task's module and
//! inputs into the home's blob store and sends their ids; the node leaves
//! the fetched result there under its hash.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use sharegrid_core::{Amount, Assignment, ContentId, NodeId, PricePerGfuel, Program, Receipt, TaskId, Terms};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt};
use tokio::net::UnixListener;

use crate::blobs::BlobStore;
use crate::clock::now_ms;
use crate::daemon::{Assigned, NodeHandle};
use crate::job::{JobRow, JobSubmission, LiveJob, Requestor, TaskRow};

/// Longest request line read, in bytes.
const MAX_REQUEST_BYTES: u64 = 1 << 20;

/// A request to the node.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum ApiRequest {
    /// The node's [`crate::NodeStatus`].
    Status,
    /// Live offers.
    Offers,
    /// Run one task on a chosen provider.
    Run(Box<RemoteTask>),
    /// Submit a job (its blobs already in the home's store) → its id.
    Submit(Box<JobSubmission>),
    /// Every job.
    Jobs,
    /// One job (id or unique prefix): row, live state, tasks.
    Job {
        /// Id or prefix.
        id: String,
    },
    /// Waits until at least `n` live offers are known → the offers; fails
    /// after `timeout_ms`.
    WaitOffers {
        /// How many.
        n: usize,
        /// How long at most, in milliseconds.
        timeout_ms: u64,
    },
    /// Waits until this node's ledger reaches `height` → its height; fails
    /// after `timeout_ms`.
    WaitHeight {
        /// The height.
        height: u64,
        /// How long at most, in milliseconds.
        timeout_ms: u64,
    },
    /// Send tokens from this node's account → [`Transferred`].
    Transfer {
        /// To whom.
        to: NodeId,
        /// How much.
        amount: Amount,
        /// Wait for the transaction to be in a block.
        wait: bool,
    },
    /// Test tokens for this node's account from its network validator's
    /// faucet, waited for in a block → [`Transferred`].
    Faucet,
    /// Bond, unbond or withdraw this node's stake, waited for in a block
    /// → [`Transferred`].
    Stake {
        /// What to do.
        action: StakeAction,
    },
    /// Stop the node as Ctrl-C does (running tasks get the grace period);
    /// answered before it stops.
    Stop,
}

/// What [`ApiRequest::Stake`] does: `{"bond":"100"}`, `{"unbond":"100"}`,
/// `"withdraw"`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum StakeAction {
    /// Bond this much of the balance as stake.
    Bond(Amount),
    /// Start unbonding this much (slashable until the unbonding period ends).
    Unbond(Amount),
    /// Take back what finished unbonding.
    Withdraw,
}

/// The answer to [`ApiRequest::Transfer`].
#[derive(Clone, Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Transferred {
    /// The transaction's id.
    pub tx: ContentId,
    /// The block it is in, when waited for.
    pub height: Option<u64>,
}

/// The answer to [`ApiRequest::Job`].
#[derive(Clone, Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct JobView {
    /// The job.
    pub job: JobRow,
    /// Live counts, while it runs.
    pub live: Option<LiveJob>,
    /// Its tasks.
    pub tasks: Vec<TaskRow>,
    /// How it is paid, when through the ledger.
    pub payment: Option<PaymentView>,
}

/// A job's payment, in [`JobView`].
#[derive(Clone, Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct PaymentView {
    /// The escrow on the ledger.
    pub escrow: ContentId,
    /// What it locked.
    pub amount: Amount,
    /// Whether the agreeing receipts are paid and the escrow closed.
    pub settled: bool,
    /// Why the settlement was last refused, if it was.
    pub error: Option<String>,
}

/// One task for one provider; blobs are already in the home's blob store.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct RemoteTask {
    /// The provider.
    pub provider: NodeId,
    /// The task id.
    pub task: TaskId,
    /// Arguments.
    pub args: Vec<String>,
    /// Module, stdin, inputs, limits, mode.
    #[serde(flatten)]
    pub program: Program,
    /// Price per gigafuel; default: the provider's offered price.
    pub price: Option<Amount>,
}

/// The answer to [`ApiRequest::Run`].
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct RemoteRun {
    /// The provider's receipt (signature checked).
    pub receipt: Receipt,
    /// The result's encoding, verified, in the home's blob store under this id.
    pub result: ContentId,
}

/// Why an API call failed.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// No node is listening.
    #[error("no node is running with home {0} (start one with `sharegrid node`)")]
    NotRunning(PathBuf),
    /// The connection failed.
    #[error("talking to the node: {0}")]
    Io(#[from] std::io::Error),
    /// The node answered with an error.
    #[error("{0}")]
    Node(String),
    /// The answer was not understood.
    #[error("unexpected answer from the node: {0}")]
    Protocol(String),
}

/// A connection to a running node's API.
#[derive(Debug)]
pub struct ApiClient {
    stream: BufReader<UnixStream>,
}

impl ApiClient {
    /// Connects to the node whose socket is `path`.
    pub fn connect(path: &Path) -> Result<Self, ApiError> {
        let stream = UnixStream::connect(path)
            .map_err(|_| ApiError::NotRunning(path.parent().map(Path::to_path_buf).unwrap_or_default()))?;
        Ok(ApiClient {
            stream: BufReader::new(stream),
        })
    }

    /// Sends `req` and decodes the answer as `T`.
    pub fn call<T: DeserializeOwned>(&mut self, req: &ApiRequest) -> Result<T, ApiError> {
        let mut line = serde_json::to_vec(req).map_err(|e| ApiError::Protocol(e.to_string()))?;
        line.push(b'\n');
        self.stream.get_mut().write_all(&line)?;
        let mut answer = String::new();
        if self.stream.read_line(&mut answer)? == 0 {
            return Err(ApiError::Protocol("the node closed the connection".into()));
        }
        let mut v: serde_json::Value = serde_json::from_str(&answer).map_err(|e| ApiError::Protocol(e.to_string()))?;
        if let Some(e) = v.get("error").and_then(|e| e.as_str()) {
            return Err(ApiError::Node(e.to_string()));
        }
        serde_json::from_value(v["ok"].take()).map_err(|e| ApiError::Protocol(e.to_string()))
    }
}

/// Binds the API socket at `path`, refusing if a live node already holds
/// it (a stale socket from a killed node is replaced).
pub(crate) fn bind(path: &Path) -> std::io::Result<UnixListener> {
    if path.exists() {
        if UnixStream::connect(path).is_ok() {
            return Err(std::io::Error::new(
                std::io::ErrorKind::AddrInUse,
                format!("a node is already running with this home ({})", path.display()),
            ));
        }
        std::fs::remove_file(path)?;
    }
    let listener = UnixListener::bind(path)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
    Ok(listener)
}

/// Serves the API on `listener` until the node stops.
pub(crate) async fn serve(listener: UnixListener, node: NodeHandle, blobs: BlobStore, requestor: Requestor) {
    let life = node.lifecycle().clone();
    loop {
        let accepted = tokio::select! {
            a = listener.accept() => a,
            () = life.stopping() => return,
        };
        let Ok((stream, _)) = accepted else {
            continue;
        };
        let (node, blobs, requestor) = (node.clone(), blobs.clone(), requestor.clone());
        let conn_life = life.clone();
        life.spawn(async move {
            let (read, mut write) = stream.into_split();
            let mut reader = tokio::io::BufReader::new(read.take(MAX_REQUEST_BYTES));
            loop {
                // Each line may be up to the cap (plus what is already buffered).
                reader.get_mut().set_limit(MAX_REQUEST_BYTES);
                let mut line = Vec::new();
                let read = tokio::select! {
                    r = reader.read_until(b'\n', &mut line) => r,
                    () = conn_life.stopping() => return,
                };
                match read {
                    Ok(0) | Err(_) => return,
                    Ok(_) if line.last() != Some(&b'\n') => {
                        let _ = write.write_all(b"{\"error\":\"request line too long\"}\n").await;
                        return;
                    }
                    Ok(_) => {}
                }
                let mut stop = false;
                let answer = match serde_json::from_slice::<ApiRequest>(&line) {
                    Ok(ApiRequest::Stop) => {
                        stop = true;
                        serde_json::json!({ "ok": "stopping" })
                    }
                    Ok(req) => match handle(&node, &blobs, &requestor, req).await {
                        Ok(v) => serde_json::json!({ "ok": v }),
                        Err(e) => serde_json::json!({ "error": e }),
                    },
                    Err(e) => serde_json::json!({ "error": format!("bad request: {e}") }),
                };
                let mut out = answer.to_string();
                out.push('\n');
                let written = write.write_all(out.as_bytes()).await;
                if stop {
                    tracing::info!("stop asked through the control socket");
                    conn_life.stop();
                    return;
                }
                if written.is_err() {
                    return;
                }
            }
        });
    }
}

pub(crate) async fn handle(
    node: &NodeHandle,
    blobs: &BlobStore,
    requestor: &Requestor,
    req: ApiRequest,
) -> Result<serde_json::Value, String> {
    let store = requestor.store();
    let v = match req {
        ApiRequest::Submit(sub) => serde_json::to_value(requestor.submit(*sub).await.map_err(|e| e.to_string())?),
        ApiRequest::Transfer { to, amount, wait } => {
            let client = requestor.payments().ok_or("this node keeps no ledger")?.client();
            let op = sharegrid_ledger::Op::Transfer { to, amount };
            let tx = client.send(op).await.map_err(|e| e.to_string())?;
            let height = if wait {
                Some(
                    client
                        .wait(tx, std::time::Duration::from_secs(60))
                        .await
                        .map_err(|e| e.to_string())?,
                )
            } else {
                None
            };
            serde_json::to_value(Transferred { tx, height })
        }
        ApiRequest::Stake { action } => {
            let client = requestor.payments().ok_or("this node keeps no ledger")?.client();
            let op = match action {
                StakeAction::Bond(amount) => sharegrid_ledger::Op::Bond { amount },
                StakeAction::Unbond(amount) => sharegrid_ledger::Op::Unbond { amount },
                StakeAction::Withdraw => sharegrid_ledger::Op::Withdraw,
            };
            let (tx, height) = client
                .send_and_wait(op, std::time::Duration::from_secs(60))
                .await
                .map_err(|e| e.to_string())?;
            serde_json::to_value(Transferred {
                tx,
                height: Some(height),
            })
        }
        ApiRequest::Faucet => {
            let client = requestor.payments().ok_or("this node keeps no ledger")?.client();
            let ledger = client.ledger();
            if ledger.is_validator() {
                return Err("this node is its network's validator and holds its tokens; \
                            the faucet is for nodes that joined it"
                    .into());
            }
            let validator = ledger.validator().ok_or("the network has no validator")?;
            let peer = sharegrid_net::peer_id(&validator).ok_or("the validator's id is not a valid key")?;
            let request = sharegrid_net::LedgerRequest::Faucet { account: node.id() };
            let tx = match node.ledger_request(peer, request).await {
                Ok(sharegrid_net::LedgerResponse::Accepted { id }) => id,
                Ok(sharegrid_net::LedgerResponse::Refused { reason }) => {
                    return Err(format!("the validator's faucet refused: {reason}"));
                }
                Ok(other) => return Err(format!("the validator answered {other:?}")),
                Err(e) => return Err(format!("cannot reach the validator {}: {e}", validator.short())),
            };
            let height = client
                .wait(tx, std::time::Duration::from_secs(60))
                .await
                .map_err(|e| e.to_string())?;
            serde_json::to_value(Transferred {
                tx,
                height: Some(height),
            })
        }
        // Answered by the connection, which then stops the node.
        ApiRequest::Stop => serde_json::to_value("stopping"),
        ApiRequest::Jobs => serde_json::to_value(store.jobs().map_err(|e| e.to_string())?),
        ApiRequest::Job { id } => serde_json::to_value(job_view(requestor, &id)?),
        ApiRequest::Status => serde_json::to_value(node.status().await.ok_or("node stopped")?),
        ApiRequest::Offers => serde_json::to_value(node.offers().await),
        ApiRequest::WaitOffers { n, timeout_ms } => {
            let limit = std::time::Duration::from_millis(timeout_ms);
            let offers = match tokio::time::timeout(limit, node.wait_for_offers(n)).await {
                Ok(o) => o,
                Err(_) => node.offers().await,
            };
            if offers.len() < n {
                return Err(format!(
                    "{} live offer(s) after {}, not {n}",
                    offers.len(),
                    humantime_ms(timeout_ms)
                ));
            }
            serde_json::to_value(offers)
        }
        ApiRequest::WaitHeight { height, timeout_ms } => {
            let ledger = requestor
                .payments()
                .ok_or("this node keeps no ledger")?
                .client()
                .ledger();
            let mut heads = ledger.subscribe();
            let limit = std::time::Duration::from_millis(timeout_ms);
            let reached = tokio::time::timeout(limit, heads.wait_for(|h| *h >= height)).await;
            match reached {
                Ok(Ok(h)) => serde_json::to_value(*h),
                Ok(Err(_)) => return Err("the ledger stopped".into()),
                Err(_) => {
                    return Err(format!(
                        "the ledger is at block {}, not {height}, after {}",
                        ledger.head().height,
                        humantime_ms(timeout_ms)
                    ));
                }
            }
        }
        ApiRequest::Run(t) => serde_json::to_value(run(node, blobs, *t).await?),
    };
    v.map_err(|e| format!("cannot encode the answer: {e}"))
}

/// One job (id or unique prefix): its row, live state, tasks and payment.
pub(crate) fn job_view(requestor: &Requestor, id: &str) -> Result<JobView, String> {
    let store = requestor.store();
    let job = store
        .job(id)
        .map_err(|e| e.to_string())?
        .ok_or_else(|| format!("no job {id:?} (or the prefix is ambiguous): see `sharegrid jobs`"))?;
    let tasks = store.tasks(&job.id).map_err(|e| e.to_string())?;
    let payment = match store.escrow(&job.id).map_err(|e| e.to_string())? {
        Some(e) => Some(PaymentView {
            escrow: e.escrow,
            amount: e.amount,
            settled: e.settled,
            error: store.settle_error(&job.id).map_err(|e| e.to_string())?,
        }),
        None => None,
    };
    Ok(JobView {
        live: requestor.live(&job.id),
        job,
        tasks,
        payment,
    })
}

async fn run(node: &NodeHandle, blobs: &BlobStore, t: RemoteTask) -> Result<RemoteRun, String> {
    let price = match t.price {
        Some(p) => PricePerGfuel(p),
        None => node
            .offers()
            .await
            .iter()
            .find(|o| o.provider == t.provider)
            .map(|o| o.price)
            .ok_or_else(|| {
                format!(
                    "no live offer from {}: cannot tell its price (pass --price)",
                    t.provider
                )
            })?,
    };
    let terms = Terms {
        chain: node.chain(),
        requestor: node.id(),
        provider: t.provider,
        price,
        escrow: None,
    };
    let a = Assignment::new(t.task, t.args, &t.program, terms, now_ms());
    let receipt = match node.assign(&a).await.map_err(|e| e.to_string())? {
        Assigned::Refused(reason) if crate::provider::Refusal::is_unfunded(&reason) => {
            return Err(format!(
                "provider refused: {reason}\n`run --on` pays through no escrow: run on your own node, or submit a job (which opens one)"
            ));
        }
        Assigned::Refused(reason) => return Err(format!("provider refused: {reason}")),
        Assigned::Receipt { receipt, .. } => *receipt,
    };
    let id = ContentId::from_bytes(*receipt.result.as_bytes());
    node.fetch_into(&receipt.provider, id, sharegrid_net::MAX_RESULT_BYTES, blobs)
        .await
        .map_err(|e| format!("fetching the result: {e}"))?;
    Ok(RemoteRun { receipt, result: id })
}

fn humantime_ms(ms: u64) -> String {
    format!("{:.1} s", ms as f64 / 1000.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_stake_action_crosses_the_socket_as_json() {
        for action in [
            StakeAction::Bond(Amount(100_000)),
            StakeAction::Unbond(Amount(1)),
            StakeAction::Withdraw,
        ] {
            let line = serde_json::to_string(&ApiRequest::Stake { action }).unwrap_or_default();
            let back: ApiRequest = serde_json::from_str(&line).unwrap_or(ApiRequest::Stop);
            assert!(matches!(back, ApiRequest::Stake { action: a } if a == action), "{line}");
        }
        let withdraw = serde_json::to_string(&ApiRequest::Stake {
            action: StakeAction::Withdraw,
        })
        .unwrap_or_default();
        assert_eq!(withdraw, r#"{"op":"stake","action":"withdraw"}"#);
    }
}
