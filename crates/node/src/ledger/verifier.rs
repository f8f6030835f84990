//! Transaction signatures of concurrent submissions, checked together.
//!
//! One strict ed25519 verification costs about twice a signature's share
//! of a batch verification (perf of `bench/bft.sh`: accept's strict checks
//! took 10 % of the four validators' CPU, the batch checks of the same
//! transactions in three other validators' blocks 14 %). A validator
//! meets many clients at once, so each caller queues its transaction and
//! waits for a turn; the first to get one checks everything queued (its
//! own among it) in one batch and leaves the verdicts for the others, as
//! the pool's group commit shares an fsync.
//!
//! The batch check is the one every validator applies to a block's
//! transactions ([`sharegrid_ledger::signatures_verify`]), so a transaction
//! acknowledged here passes there. A batch that fails is checked one by one,
//! strictly, so a bad signature costs only its sender.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard, PoisonError};

use sharegrid_core::{Domain, Signed};
use sharegrid_ledger::signatures_verify;

/// Most transactions in one batch (a larger queue is checked in turns).
const MAX_BATCH: usize = 1_024;

#[derive(Default)]
struct Queue {
    next: u64,
    waiting: Vec<(u64, Signed)>,
    verdicts: HashMap<u64, bool>,
}

/// Checks transaction signatures in batches (see the module docs).
#[derive(Default)]
pub(crate) struct Verifier {
    queue: Mutex<Queue>,
    /// Held while a batch is checked: callers take turns here.
    turn: Mutex<()>,
}

impl Verifier {
    fn queue(&self) -> MutexGuard<'_, Queue> {
        self.queue.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Whether `tx`'s signature (transaction domain) is its signer's.
    pub(crate) fn verify(&self, tx: &Signed) -> bool {
        let ticket = {
            let mut q = self.queue();
            let ticket = q.next;
            q.next += 1;
            q.waiting.push((ticket, tx.clone()));
            ticket
        };
        loop {
            let _turn = self.turn.lock().unwrap_or_else(PoisonError::into_inner);
            let batch = {
                let mut q = self.queue();
                if let Some(ok) = q.verdicts.remove(&ticket) {
                    return ok;
                }
                let take = q.waiting.len().min(MAX_BATCH);
                q.waiting.drain(..take).collect::<Vec<_>>()
            };
            let verdicts = verdicts(batch.iter().map(|(_, t)| t));
            let mut q = self.queue();
            let mut mine = None;
            for ((t, _), ok) in batch.iter().zip(verdicts) {
                if *t == ticket {
                    mine = Some(ok);
                } else {
                    q.verdicts.insert(*t, ok);
                }
            }
            if let Some(ok) = mine {
                return ok;
            }
            // Ours was beyond this batch: another turn.
        }
    }
}

/// Each transaction's verdict: all at once when the batch verifies, else
/// one by one.
pub(super) fn verdicts<'a>(txs: impl Iterator<Item = &'a Signed> + Clone) -> Vec<bool> {
    if signatures_verify(txs.clone()) {
        return vec![true; txs.count()];
    }
    txs.map(|t| t.signer.verify(Domain::Transaction, &t.body, &t.signature).is_ok())
        .collect()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::sync::Arc;

    use sharegrid_core::NodeKey;

    use super::*;

    fn signed(k: &NodeKey, i: u8) -> Signed {
        let body = vec![i; 40];
        Signed {
            signature: k.sign(Domain::Transaction, &body),
            body,
            signer: k.id(),
        }
    }

    #[test]
    fn concurrent_callers_get_their_own_verdicts_and_a_bad_signature_fails_only_its_sender() {
        let v = Arc::new(Verifier::default());
        let threads: Vec<_> = (0..8u8)
            .map(|t| {
                let v = v.clone();
                std::thread::spawn(move || {
                    let k = NodeKey::from_seed([t + 1; 32]);
                    let other = NodeKey::from_seed([t + 101; 32]);
                    (0..50u8)
                        .map(|i| {
                            let mut tx = signed(&k, i);
                            let forged = (i + t) % 7 == 0;
                            if forged {
                                tx.signature = signed(&other, i).signature;
                            }
                            (forged, v.verify(&tx))
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        let mut forged = 0;
        for t in threads {
            for (was_forged, ok) in t.join().unwrap() {
                assert_eq!(ok, !was_forged);
                forged += usize::from(was_forged);
            }
        }
        assert!(forged > 0);
        let q = v.queue();
        assert!(
            q.waiting.is_empty() && q.verdicts.is_empty(),
            "every verdict was collected"
        );
    }

    #[test]
    fn a_signature_in_another_domain_is_refused() {
        let k = NodeKey::from_seed([1; 32]);
        let mut tx = signed(&k, 0);
        tx.signature = k.sign(Domain::Offer, &tx.body);
        assert!(!Verifier::default().verify(&tx));
        assert!(Verifier::default().verify(&signed(&k, 0)));
    }
}
