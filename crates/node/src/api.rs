//! The node's requests, as the CLI (and the HTTP API's handlers) name
//! them, and [`ApiClient`]: the CLI's client of the running node's HTTP API
//! ([`crate::http`]), its address from `<home>/api.addr` and its token from
//! `<home>/api.token`. There is one surface: each [`ApiRequest`] is an
//! operation of the API's OpenAPI document.
//!
//! Large data crosses as uploads (`POST /api/blobs`) and downloads (`GET
//! /api/blobs/{id}`); requests name blobs by id.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use sharegrid_core::{Amount, ContentId, NodeId, Program, Receipt, TaskId};

use crate::home::NodeHome;
use crate::job::{JobRequest, JobRow, LiveJob, TaskRow};

/// A request to the node: what the CLI asks, each an operation of the
/// HTTP API ([`ApiClient::call`] maps it to its endpoint).
#[derive(Clone, Debug)]
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
            ApiRequest::WaitOffers { n, timeout_ms } => self.until(*timeout_ms, |c| {
                let offers: Vec<serde_json::Value> = c.get("/api/offers")?;
                Ok(if offers.len() >= *n {
                    Ok(offers.into())
                } else {
                    Err(format!("{} live offer(s), not {n}", offers.len()))
                })
            }),
            ApiRequest::WaitHeight { height, timeout_ms } => self.until(*timeout_ms, |c| {
                let at = c.get::<serde_json::Value>("/api/ledger")?["height"]
                    .as_u64()
                    .unwrap_or(0);
                Ok(if at >= *height {
                    Ok(at.into())
                } else {
                    Err(format!("the ledger is at block {at}, not {height}"))
                })
            }),
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
            return Err(refusal(res));
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

    /// Asks `probe` until it answers `Ok`, for at most `timeout_ms` → its
    /// answer as `T`; then fails with what it said last.
    fn until<T: DeserializeOwned>(
        &mut self,
        timeout_ms: u64,
        mut probe: impl FnMut(&mut Self) -> Result<Result<serde_json::Value, String>, ApiError>,
    ) -> Result<T, ApiError> {
        let deadline = Instant::now() + Duration::from_millis(timeout_ms);
        loop {
            match probe(self)? {
                Ok(v) => return serde_json::from_value(v).map_err(|e| ApiError::Protocol(e.to_string())),
                Err(why) if Instant::now() >= deadline => {
                    return Err(ApiError::Node(format!("{why} after {}", humantime_ms(timeout_ms))));
                }
                Err(_) => std::thread::sleep(POLL),
            }
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
    if !res.status().is_success() {
        return Err(refusal(res));
    }
    let text = res.body_mut().read_to_string().map_err(transport)?;
    serde_json::from_str(&text).map_err(|e| ApiError::Protocol(format!("{e}: {text}")))
}

/// Why the node refused: its `{"error": …}`, else what it said.
fn refusal(mut res: ureq::http::Response<ureq::Body>) -> ApiError {
    let text = match res.body_mut().read_to_string() {
        Ok(t) => t,
        Err(e) => return transport(e),
    };
    let why = serde_json::from_str::<serde_json::Value>(&text)
        .ok()
        .and_then(|v| v["error"].as_str().map(str::to_owned))
        .unwrap_or(text);
    ApiError::Node(why)
}

fn humantime_ms(ms: u64) -> String {
    format!("{:.1} s", ms as f64 / 1000.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_stake_action_has_the_json_the_api_takes() {
        for (action, json) in [
            (StakeAction::Bond(Amount(100_000)), r#"{"bond":"100000"}"#),
            (StakeAction::Unbond(Amount(1)), r#"{"unbond":"1"}"#),
            (StakeAction::Withdraw, r#""withdraw""#),
        ] {
            assert_eq!(serde_json::to_string(&action).unwrap_or_default(), json);
            let back: Option<StakeAction> = serde_json::from_str(json).ok();
            assert_eq!(back, Some(action));
        }
    }
}
