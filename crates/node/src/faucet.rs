//! A test network's faucet: a node that holds tokens (the validator of a
//! network `sharegrid init` made) gives a fixed amount to an account that
//! asks and holds less, so a new requestor can pay for jobs without anyone
//! editing files. Off unless `[ledger] faucet` is set; `init` sets it for
//! the network a home makes itself, never for one it joins.
//!
//! [`FaucetRules`] decides (pure); the faucet task carries out a grant as
//! one of this node's own transactions, through the [`LedgerClient`] that
//! keeps its nonces in order. Peers ask over the ledger protocol
//! (`LedgerRequest::Faucet`); the daemon hands each request to the task.

use std::collections::{HashSet, VecDeque};

use sharegrid_core::{Amount, ContentId, NodeId};
use sharegrid_ledger::Op;
use tokio::sync::{mpsc, oneshot};

use crate::clock::now_ms;
use crate::daemon::NodeHandle;
use crate::ledger::LedgerClient;

/// Grants in any minute at most: a faucet cannot be drained in a burst.
pub const GRANTS_PER_MINUTE: usize = 20;
/// Requests waiting for the faucet task at most.
const QUEUE: usize = 64;

/// A peer's request, handed by the daemon to the faucet task.
#[derive(Debug)]
pub struct FaucetOrder {
    /// Who gets the tokens.
    pub account: NodeId,
    /// The transaction's id once the ledger has it, or why not.
    pub reply: oneshot::Sender<Result<ContentId, String>>,
}

/// Who may have tokens, and how many (no I/O, no clock).
#[derive(Debug)]
pub struct FaucetRules {
    me: NodeId,
    amount: Amount,
    given: HashSet<NodeId>,
    recent: VecDeque<u64>,
}

impl FaucetRules {
    /// The rules of a faucet run by `me` that gives `amount`.
    pub fn new(me: NodeId, amount: Amount) -> Self {
        FaucetRules {
            me,
            amount,
            given: HashSet::new(),
            recent: VecDeque::new(),
        }
    }

    /// Whether `account`, holding `balance`, gets tokens at `now_ms`: the
    /// amount to give, or why not. A grant is counted when decided.
    pub fn decide(&mut self, account: NodeId, balance: Amount, now_ms: u64) -> Result<Amount, String> {
        if account == self.me {
            return Err("the faucet does not give to its own account".into());
        }
        if self.given.contains(&account) {
            return Err(format!("{} has had its test tokens from this faucet", account.short()));
        }
        if balance.0 >= self.amount.0 {
            return Err(format!(
                "{} already holds {balance}; the faucet tops up accounts holding less than {}",
                account.short(),
                self.amount
            ));
        }
        while self.recent.front().is_some_and(|&t| t + 60_000 <= now_ms) {
            self.recent.pop_front();
        }
        if self.recent.len() >= GRANTS_PER_MINUTE {
            return Err(format!(
                "the faucet gave {GRANTS_PER_MINUTE} grants in the last minute; try again shortly"
            ));
        }
        self.recent.push_back(now_ms);
        self.given.insert(account);
        Ok(self.amount)
    }

    /// Forgets a grant whose transaction did not go through.
    pub fn undo(&mut self, account: &NodeId) {
        self.given.remove(account);
        self.recent.pop_back();
    }
}

/// Starts the faucet task of the node behind `node`, giving `amount` from
/// its account through `client`, and tells the daemon to hand it requests.
pub async fn start_faucet(node: &NodeHandle, client: LedgerClient, amount: Amount) {
    let (tx, mut rx) = mpsc::channel::<FaucetOrder>(QUEUE);
    let mut rules = FaucetRules::new(node.id(), amount);
    let life = node.lifecycle().clone();
    node.lifecycle().spawn(async move {
        loop {
            let order = tokio::select! {
                o = rx.recv() => match o { Some(o) => o, None => return },
                () = life.stopping() => return,
            };
            let balance = client.ledger().with_state(|s| s.balance(&order.account));
            let result = match rules.decide(order.account, balance, now_ms()) {
                Err(why) => Err(why),
                Ok(amount) => match client
                    .send(Op::Transfer {
                        to: order.account,
                        amount,
                    })
                    .await
                {
                    Ok(id) => {
                        tracing::info!(account = %order.account, %amount, tx = %id, "faucet: test tokens given");
                        Ok(id)
                    }
                    Err(e) => {
                        rules.undo(&order.account);
                        Err(format!("the faucet's transfer failed: {e}"))
                    }
                },
            };
            let _ = order.reply.send(result);
        }
    });
    node.serve_faucet(tx).await;
}

#[cfg(test)]
mod tests {
    use sharegrid_core::NodeKey;

    use super::*;

    #[test]
    fn the_faucet_gives_once_to_accounts_holding_less_within_a_rate() {
        let me = NodeKey::from_seed([1; 32]).id();
        let mut rules = FaucetRules::new(me, Amount(1000));
        let who = |i: u8| NodeKey::from_seed([i + 10; 32]).id();
        assert_eq!(rules.decide(who(0), Amount(0), 0), Ok(Amount(1000)));
        assert!(
            rules
                .decide(who(0), Amount(0), 1)
                .unwrap_err()
                .contains("has had its test tokens")
        );
        assert!(
            rules
                .decide(who(1), Amount(1000), 1)
                .unwrap_err()
                .contains("already holds 1000")
        );
        assert!(rules.decide(me, Amount(0), 1).unwrap_err().contains("its own account"));
        for i in 1..GRANTS_PER_MINUTE as u8 {
            assert_eq!(rules.decide(who(i), Amount(999), 2), Ok(Amount(1000)));
        }
        let busy = rules.decide(who(100), Amount(0), 59_999).unwrap_err();
        assert!(busy.contains("in the last minute"), "{busy}");
        // A minute after the first grants, room again.
        assert_eq!(rules.decide(who(100), Amount(0), 60_002), Ok(Amount(1000)));
        // A grant that failed to land may be asked for again.
        rules.undo(&who(100));
        assert_eq!(rules.decide(who(100), Amount(0), 60_003), Ok(Amount(1000)));
    }
}
