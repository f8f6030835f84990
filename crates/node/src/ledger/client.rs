//! Sending this node's transactions and waiting for them to land, whether
//! the node is the validator or follows one over the network.

use std::sync::Arc;
use std::time::Duration;

use sharegrid_core::{ContentId, Signed};
use sharegrid_ledger::Op;
use sharegrid_net::{LedgerRequest, LedgerResponse, peer_id};

use super::Ledger;
use crate::daemon::NodeHandle;

/// Sends transactions to the ledger's validator: the local ledger when
/// this node is it, else over the network.
#[derive(Clone, Debug)]
pub struct LedgerClient {
    ledger: Arc<Ledger>,
    node: NodeHandle,
    /// One own transaction at a time, so nonces go out in order.
    sending: Arc<tokio::sync::Mutex<()>>,
}

impl LedgerClient {
    /// A client for `ledger` on the node behind `node`.
    pub fn new(ledger: Arc<Ledger>, node: NodeHandle) -> Self {
        LedgerClient {
            ledger,
            node,
            sending: Arc::new(tokio::sync::Mutex::new(())),
        }
    }

    /// The ledger.
    pub fn ledger(&self) -> &Arc<Ledger> {
        &self.ledger
    }

    /// Submits a signed transaction; `Ok(id)` once the validator has it on disk.
    pub async fn submit(&self, tx: Signed) -> Result<ContentId, String> {
        if self.ledger.is_validator() {
            let ledger = self.ledger.clone();
            return tokio::task::spawn_blocking(move || ledger.accept(tx))
                .await
                .map_err(|e| format!("ledger task failed: {e}"))?;
        }
        let validator = self.ledger.validator().ok_or("the genesis names no validator")?;
        let peer = peer_id(&validator).ok_or("the validator's id is not a valid key")?;
        match self.node.ledger_request(peer, LedgerRequest::Submit(tx)).await? {
            LedgerResponse::Accepted { id } => Ok(id),
            LedgerResponse::Refused { reason } => Err(reason),
            other => Err(format!("the validator answered {other:?}")),
        }
    }

    /// Signs `op` as this node's next transaction and submits it.
    pub async fn send(&self, op: Op) -> Result<ContentId, String> {
        let _turn = self.sending.lock().await;
        let tx = self.ledger.sign(op);
        match self.submit(tx.clone()).await {
            Ok(id) => Ok(id),
            Err(e) => {
                self.ledger.release_nonce(&tx);
                Err(e)
            }
        }
    }

    /// Waits until transaction `id` is in a block here; returns its height.
    pub async fn wait(&self, id: ContentId, timeout: Duration) -> Result<u64, String> {
        let mut heads = self.ledger.subscribe();
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let ledger = self.ledger.clone();
            let found = tokio::task::spawn_blocking(move || ledger.tx_height(&id))
                .await
                .map_err(|e| format!("ledger task failed: {e}"))?
                .map_err(|e| e.to_string())?;
            if let Some(h) = found {
                return Ok(h);
            }
            match tokio::time::timeout_at(deadline, heads.changed()).await {
                Ok(Ok(())) => {}
                Ok(Err(_)) => return Err("the ledger closed".into()),
                Err(_) => {
                    return Err(format!(
                        "transaction {} not in a block after {} s",
                        id.short(),
                        timeout.as_secs()
                    ));
                }
            }
        }
    }

    /// [`LedgerClient::send`], then [`LedgerClient::wait`].
    pub async fn send_and_wait(&self, op: Op, timeout: Duration) -> Result<(ContentId, u64), String> {
        let id = self.send(op).await?;
        let height = self.wait(id, timeout).await?;
        Ok((id, height))
    }
}
