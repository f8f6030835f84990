//! Sending this node's transactions and waiting for them to land, whether
//! the node is the validator or follows one over the network. Errors are
//! typed so a caller can tell "try again later" ([`LedgerError::is_retryable`])
//! from "the ledger said no".

use std::sync::Arc;
use std::time::Duration;

use sharegrid_core::{ContentId, Signed};
use sharegrid_ledger::Op;
use sharegrid_net::{LedgerRequest, LedgerResponse, peer_id};

use super::{AcceptError, Ledger, LedgerStoreError};
use crate::daemon::{NodeHandle, RequestFailure};

/// Why a transaction of this node did not land.
#[derive(Debug, thiserror::Error)]
pub enum LedgerError {
    /// The validator refused it: the ledger's reason. Sending the same
    /// again will not help.
    #[error("the ledger refused the transaction: {0}")]
    Rejected(String),
    /// The genesis names no validator (or one whose id is not a key).
    #[error("the genesis names no usable validator")]
    NoValidator,
    /// The validator could not be reached or did not answer.
    #[error("cannot reach the validator: {0}")]
    Unreachable(#[from] RequestFailure),
    /// The validator answered something other than an answer to a submission.
    #[error("the validator answered {0}")]
    Unexpected(String),
    /// Acknowledged, but not in a block here in time.
    #[error("transaction {tx} not in a block after {secs} s")]
    NotInBlock {
        /// The transaction's id (short).
        tx: String,
        /// How long was waited.
        secs: u64,
    },
    /// The local ledger store failed.
    #[error(transparent)]
    Store(#[from] LedgerStoreError),
    /// The node or its ledger stopped.
    #[error("the node has stopped")]
    Stopped,
}

impl LedgerError {
    /// Whether the same operation may succeed later: the validator out of
    /// reach, a block slow to come, a store hiccup. A refusal is final.
    pub fn is_retryable(&self) -> bool {
        match self {
            LedgerError::Unreachable(_) | LedgerError::NotInBlock { .. } | LedgerError::Store(_) => true,
            // A provider's claim paid some of the batch first: the next
            // attempt is planned from a ledger that knows it.
            LedgerError::Rejected(reason) if sharegrid_ledger::is_already_paid(reason) => true,
            LedgerError::Rejected(_) | LedgerError::NoValidator | LedgerError::Unexpected(_) | LedgerError::Stopped => {
                false
            }
        }
    }
}

impl From<AcceptError> for LedgerError {
    fn from(e: AcceptError) -> Self {
        match e {
            AcceptError::Store(s) => LedgerError::Store(s),
            other => LedgerError::Rejected(other.to_string()),
        }
    }
}

/// Sends transactions to the ledger's validator: the local ledger when
/// this node is it, else over the network.
#[derive(Clone, Debug)]
pub struct LedgerClient {
    ledger: Arc<Ledger>,
    node: NodeHandle,
}

impl LedgerClient {
    /// A client for `ledger` on the node behind `node`.
    pub fn new(ledger: Arc<Ledger>, node: NodeHandle) -> Self {
        LedgerClient { ledger, node }
    }

    /// The ledger.
    pub fn ledger(&self) -> &Arc<Ledger> {
        &self.ledger
    }

    /// Submits a signed transaction; `Ok(id)` once the validator has it on disk.
    pub async fn submit(&self, tx: Signed) -> Result<ContentId, LedgerError> {
        if self.ledger.is_validator() {
            let ledger = self.ledger.clone();
            return Ok(tokio::task::spawn_blocking(move || ledger.accept(tx))
                .await
                .map_err(|_| LedgerError::Stopped)??);
        }
        let validator = self.ledger.validator().ok_or(LedgerError::NoValidator)?;
        let peer = peer_id(&validator).ok_or(LedgerError::NoValidator)?;
        match self.node.ledger_request(peer, LedgerRequest::Submit(tx)).await? {
            LedgerResponse::Accepted { id } => Ok(id),
            LedgerResponse::Refused { reason } => Err(LedgerError::Rejected(reason)),
            other => Err(LedgerError::Unexpected(format!("{other:?}"))),
        }
    }

    /// Signs `op` as this node's next transaction and submits it.
    pub async fn send(&self, op: Op) -> Result<ContentId, LedgerError> {
        let _turn = self.ledger.sending.lock().await;
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
    pub async fn wait(&self, id: ContentId, timeout: Duration) -> Result<u64, LedgerError> {
        let mut heads = self.ledger.subscribe();
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let ledger = self.ledger.clone();
            let found = tokio::task::spawn_blocking(move || ledger.tx_height(&id))
                .await
                .map_err(|_| LedgerError::Stopped)??;
            if let Some(h) = found {
                return Ok(h);
            }
            match tokio::time::timeout_at(deadline, heads.changed()).await {
                Ok(Ok(())) => {}
                Ok(Err(_)) => return Err(LedgerError::Stopped),
                Err(_) => {
                    return Err(LedgerError::NotInBlock {
                        tx: id.short(),
                        secs: timeout.as_secs(),
                    });
                }
            }
        }
    }

    /// [`LedgerClient::send`], then [`LedgerClient::wait`].
    pub async fn send_and_wait(&self, op: Op, timeout: Duration) -> Result<(ContentId, u64), LedgerError> {
        let id = self.send(op).await?;
        let height = self.wait(id, timeout).await?;
        Ok((id, height))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusals_are_final_and_outages_are_retried() {
        assert!(!LedgerError::Rejected("insufficient funds".into()).is_retryable());
        assert!(!LedgerError::NoValidator.is_retryable());
        assert!(LedgerError::Unreachable(RequestFailure::Timeout).is_retryable());
        assert!(
            LedgerError::NotInBlock {
                tx: "ab".into(),
                secs: 60
            }
            .is_retryable()
        );
        let acc: LedgerError = AcceptError::NotValidator.into();
        assert!(!acc.is_retryable());
    }
}
