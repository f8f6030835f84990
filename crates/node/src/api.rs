//! The node's requests, as the CLI (and the HTTP API's handlers) name
//! them, and [`ApiClient`]: the CLI's client of the running node's HTTP API
//! ([`crate::http`]), its address from `<home>/api.addr` and its token from
//! `<home>/api.token`. There is one surface: each [`ApiRequest`] is an
//! operation of the API's OpenAPI document, and [`handle`] is the code the
//! handlers share where a request moves tokens or runs a task.
//!
//! Large data crosses as uploads (`POST /api/blobs`) and downloads (`GET
//! /api/blobs/{id}`); requests name blobs by id.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use sharegrid_core::{Amount, Assignment, ContentId, NodeId, PricePerGfuel, Program, Receipt, TaskId, Terms};

use crate::blobs::BlobStore;
use crate::clock::now_ms;
use crate::daemon::{Assigned, NodeHandle};
use crate::home::NodeHome;
use crate::job::{JobRequest, JobRow, LiveJob, Requestor, TaskRow};

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
    /// Submit a job file whose files are uploaded → `{"id": …}`.
    Submit(Box<JobRequest>),
    /// Every job.
    Jobs,
    /// One job (id or unique prefix): row, live state, tasks.
    Job {
        /// Id or prefix.
        id: String,
    },
    /// Cancel a running job (id or unique prefix) → `{"id": …}`.
    Cancel {
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
#[derive(Clone, Debug, Serialize, Deserialize, utoipa::ToSchema)]
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
#[derive(Clone, Debug, Serialize, Deserialize, utoipa::ToSchema)]
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

/// A client of a running node's HTTP API.
#[derive(Debug)]
pub struct ApiClient {
    base: String,
    bearer: String,
    agent: ureq::Agent,
}

/// How often a wait asks the node again.
const POLL: Duration = Duration::from_millis(100);

impl ApiClient {
    /// Connects to the node of `home`: its address from `api.addr` (written
    /// while it runs), its token from `api.token`.
    pub fn connect(home: &NodeHome) -> Result<Self, ApiError> {
        let not_running = || ApiError::NotRunning(home.root().to_path_buf());
        let url = std::fs::read_to_string(home.api_addr_path()).map_err(|_| not_running())?;
        let base = url.trim().trim_end_matches('/').to_owned();
        let addr = base.strip_prefix("http://").ok_or_else(not_running)?;
        std::net::TcpStream::connect(addr).map_err(|_| not_running())?;
        let token = home.api_token().map_err(|e| ApiError::Protocol(e.to_string()))?;
        let agent = ureq::Agent::config_builder().http_status_as_error(false).build().into();
        Ok(ApiClient {
            base,
            bearer: format!("Bearer {token}"),
            agent,
        })
    }

    /// Sends `req` to its endpoint and decodes the answer as `T`.
    pub fn call<T: DeserializeOwned>(&mut self, req: &ApiRequest) -> Result<T, ApiError> {
        match req {
            ApiRequest::Status => self.get("/api/status"),
            ApiRequest::Offers => self.get("/api/offers"),
            ApiRequest::Run(t) => self.post("/api/run", &to_json(t.as_ref())?),
            ApiRequest::Submit(r) => self.post("/api/jobs", &to_json(r.as_ref())?),
            ApiRequest::Jobs => self.get("/api/jobs"),
            ApiRequest::Job { id } => self.get(&format!("/api/jobs/{}", encode(id))),
            ApiRequest::Cancel { id } => {
                self.post(&format!("/api/jobs/{}/cancel", encode(id)), &serde_json::Value::Null)
            }
            ApiRequest::WaitOffers { n, timeout_ms } => {
                let offers: Vec<sharegrid_core::Offer> = self.until(
                    *timeout_ms,
                    |c| {
                        let o: Vec<sharegrid_core::Offer> = c.get("/api/offers")?;
                        Ok((o.len() >= *n).then_some(o))
                    },
                    |c| {
                        let o: Vec<sharegrid_core::Offer> = c.get("/api/offers")?;
                        Ok(format!(
                            "{} live offer(s) after {}, not {n}",
                            o.len(),
                            humantime_ms(*timeout_ms)
                        ))
                    },
                )?;
                serde_json::from_value(serde_json::to_value(offers).map_err(|e| ApiError::Protocol(e.to_string()))?)
                    .map_err(|e| ApiError::Protocol(e.to_string()))
            }
            ApiRequest::WaitHeight { height, timeout_ms } => {
                let at: u64 = self.until(
                    *timeout_ms,
                    |c| {
                        let l: serde_json::Value = c.get("/api/ledger")?;
                        let h = l["height"].as_u64().unwrap_or(0);
                        Ok((h >= *height).then_some(h))
                    },
                    |c| {
                        let l: serde_json::Value = c.get("/api/ledger")?;
                        Ok(format!(
                            "the ledger is at block {}, not {height}, after {}",
                            l["height"],
                            humantime_ms(*timeout_ms)
                        ))
                    },
                )?;
                serde_json::from_value(at.into()).map_err(|e| ApiError::Protocol(e.to_string()))
            }
            ApiRequest::Transfer { to, amount, wait } => self.post(
                "/api/wallet/transfer",
                &serde_json::json!({ "to": to, "amount": amount, "wait": wait }),
            ),
            ApiRequest::Faucet => self.post("/api/wallet/faucet", &serde_json::Value::Null),
            ApiRequest::Stake { action } => self.post("/api/wallet/stake", &to_json(action)?),
            ApiRequest::Stop => self.post("/api/stop", &serde_json::Value::Null),
        }
    }

    /// Uploads `bytes` to the node's blob store → their id.
    pub fn upload(&mut self, bytes: &[u8]) -> Result<ContentId, ApiError> {
        let res = self
            .agent
            .post(&format!("{}/api/blobs", self.base))
            .header("Authorization", &self.bearer)
            .header("Content-Type", "application/octet-stream")
            .send(bytes)
            .map_err(transport)?;
        let v: crate::http::views::Uploaded = answer(res)?;
        Ok(v.id)
    }

    /// A blob of the node's store.
    pub fn blob(&mut self, id: &ContentId) -> Result<Vec<u8>, ApiError> {
        let mut res = self
            .agent
            .get(&format!("{}/api/blobs/{id}", self.base))
            .header("Authorization", &self.bearer)
            .call()
            .map_err(transport)?;
        if !res.status().is_success() {
            return answer::<serde_json::Value>(res).map(|_| Vec::new());
        }
        res.body_mut()
            .with_config()
            .limit(u64::MAX)
            .read_to_vec()
            .map_err(transport)
    }

    fn get<T: DeserializeOwned>(&mut self, path: &str) -> Result<T, ApiError> {
        let res = self
            .agent
            .get(&format!("{}{path}", self.base))
            .header("Authorization", &self.bearer)
            .call()
            .map_err(transport)?;
        answer(res)
    }

    fn post<T: DeserializeOwned>(&mut self, path: &str, body: &serde_json::Value) -> Result<T, ApiError> {
        let req = self
            .agent
            .post(&format!("{}{path}", self.base))
            .header("Authorization", &self.bearer);
        let res = if body.is_null() {
            req.send_empty()
        } else {
            req.header("Content-Type", "application/json")
                .send(body.to_string().as_bytes())
        }
        .map_err(transport)?;
        answer(res)
    }

    /// Asks `probe` until it answers `Some`, for at most `timeout_ms`; then
    /// fails with what `late` says.
    fn until<T>(
        &mut self,
        timeout_ms: u64,
        mut probe: impl FnMut(&mut Self) -> Result<Option<T>, ApiError>,
        late: impl FnOnce(&mut Self) -> Result<String, ApiError>,
    ) -> Result<T, ApiError> {
        let deadline = Instant::now() + Duration::from_millis(timeout_ms);
        loop {
            if let Some(t) = probe(self)? {
                return Ok(t);
            }
            if Instant::now() >= deadline {
                return Err(ApiError::Node(late(self)?));
            }
            std::thread::sleep(POLL);
        }
    }
}

/// JSON of a request's body.
fn to_json<T: Serialize>(t: &T) -> Result<serde_json::Value, ApiError> {
    serde_json::to_value(t).map_err(|e| ApiError::Protocol(e.to_string()))
}

/// A path segment, percent-encoded.
fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
            b => format!("%{b:02X}"),
        })
        .collect()
}

fn transport(e: ureq::Error) -> ApiError {
    match e {
        ureq::Error::Io(e) => ApiError::Io(e),
        e => ApiError::Protocol(e.to_string()),
    }
}

/// The answer's JSON as `T`, or the node's error.
fn answer<T: DeserializeOwned>(mut res: ureq::http::Response<ureq::Body>) -> Result<T, ApiError> {
    let ok = res.status().is_success();
    let text = res.body_mut().read_to_string().map_err(transport)?;
    let v: serde_json::Value = serde_json::from_str(&text).map_err(|e| ApiError::Protocol(format!("{e}: {text}")))?;
    if !ok {
        let why = v["error"].as_str().map_or_else(|| v.to_string(), str::to_owned);
        return Err(ApiError::Node(why));
    }
    serde_json::from_value(v).map_err(|e| ApiError::Protocol(e.to_string()))
}

pub(crate) async fn handle(
    node: &NodeHandle,
    blobs: &BlobStore,
    requestor: &Requestor,
    req: ApiRequest,
) -> Result<serde_json::Value, String> {
    let v = match req {
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
        ApiRequest::Run(t) => serde_json::to_value(run(node, blobs, *t).await?),
        // Each of these has its own handler in [`crate::http`].
        other => return Err(format!("{other:?} is not served here")),
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
