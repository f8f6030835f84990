//! What the HTTP API's handlers do where it is more than a read: move
//! tokens (transfer, stake, the faucet), run one task on a chosen
//! provider, and gather a job's view. Each returns its answer or why not,
//! for the handler to put into a status.

use std::time::Duration;

use sharegrid_core::{Amount, Assignment, ContentId, NodeId, PricePerGfuel, Terms};
use sharegrid_ledger::Op;

use crate::api::{JobView, PaymentView, RemoteRun, RemoteTask, StakeAction, Transferred};
use crate::blobs::BlobStore;
use crate::clock::now_ms;
use crate::daemon::{Assigned, NodeHandle};
use crate::job::Requestor;
use crate::ledger::LedgerClient;

/// How long a wallet operation waits for its block.
const IN_A_BLOCK: Duration = Duration::from_secs(60);

fn ledger(requestor: &Requestor) -> Result<&LedgerClient, String> {
    Ok(requestor.payments().ok_or("this node keeps no ledger")?.client())
}

/// Sends `amount` from this node's account to `to`, waiting for its block
/// when `wait`.
pub(crate) async fn transfer(
    requestor: &Requestor,
    to: NodeId,
    amount: Amount,
    wait: bool,
) -> Result<Transferred, String> {
    let client = ledger(requestor)?;
    let tx = client
        .send(Op::Transfer { to, amount })
        .await
        .map_err(|e| e.to_string())?;
    let height = if wait {
        Some(client.wait(tx, IN_A_BLOCK).await.map_err(|e| e.to_string())?)
    } else {
        None
    };
    Ok(Transferred { tx, height })
}

/// Bonds, unbonds or withdraws this node's stake, waited for in a block.
pub(crate) async fn stake(requestor: &Requestor, action: StakeAction) -> Result<Transferred, String> {
    let op = match action {
        StakeAction::Bond(amount) => Op::Bond { amount },
        StakeAction::Unbond(amount) => Op::Unbond { amount },
        StakeAction::Withdraw => Op::Withdraw,
    };
    let (tx, height) = ledger(requestor)?
        .send_and_wait(op, IN_A_BLOCK)
        .await
        .map_err(|e| e.to_string())?;
    Ok(Transferred {
        tx,
        height: Some(height),
    })
}

/// Test tokens for this node's account from its network validator's
/// faucet, waited for in a block.
pub(crate) async fn faucet(node: &NodeHandle, requestor: &Requestor) -> Result<Transferred, String> {
    let client = ledger(requestor)?;
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
    let height = client.wait(tx, IN_A_BLOCK).await.map_err(|e| e.to_string())?;
    Ok(Transferred {
        tx,
        height: Some(height),
    })
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

/// Runs one task on the chosen provider, outside any escrow, and fetches
/// its result into `blobs`.
pub(crate) async fn run(node: &NodeHandle, blobs: &BlobStore, t: RemoteTask) -> Result<RemoteRun, String> {
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
