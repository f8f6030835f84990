//! When a validator makes a block, as a state machine with no I/O: at most
//! one every `block_interval`, when transactions wait or — while anything
//! on the ledger waits on a height (an open escrow, a held claim, a
//! dispute, unbonding stake) — empty. Heights then advance at one per
//! `block_interval` whatever the traffic, so sending transactions cannot
//! hurry a claim height, a challenge window or an unbonding period along.
//! One block in the making at a time. The daemon asks it on every tick and
//! carries out [`Produce`] off the event loop.

/// Make a block now (off the loop), then say [`Producer::produced`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Produce {
    /// Whether an empty block is wanted (something waits on a height).
    pub empty_ok: bool,
}

/// The producer's timing. See the module docs.
#[derive(Debug)]
pub struct Producer {
    block_interval_ms: u64,
    last_block_ms: u64,
    producing: bool,
}

impl Producer {
    /// A producer whose last block was at `now_ms`.
    pub fn new(block_interval_ms: u64, now_ms: u64) -> Self {
        Producer {
            block_interval_ms,
            last_block_ms: now_ms,
            producing: false,
        }
    }

    /// Whether to make a block now, with `pending` transactions waiting and
    /// something on the ledger waiting on a height or not.
    pub fn tick(&mut self, now_ms: u64, pending: usize, waiting: bool) -> Option<Produce> {
        let since = now_ms.saturating_sub(self.last_block_ms);
        if self.producing || since < self.block_interval_ms {
            return None;
        }
        if pending == 0 && !waiting {
            return None;
        }
        self.producing = true;
        Some(Produce { empty_ok: waiting })
    }

    /// The block asked for was made (`made`: a block came of it) or failed.
    pub fn produced(&mut self, now_ms: u64, made: bool) {
        self.producing = false;
        if made {
            self.last_block_ms = now_ms;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_when_transactions_wait_and_empty_ones_only_while_something_waits() {
        let mut p = Producer::new(100, 0);
        assert_eq!(p.tick(50, 3, false), None, "interval not passed");
        assert_eq!(p.tick(100, 0, false), None, "nothing to put in a block");
        assert_eq!(p.tick(100, 3, false), Some(Produce { empty_ok: false }));
        assert_eq!(p.tick(150, 3, false), None, "one block at a time");
        p.produced(200, true);
        assert_eq!(p.tick(250, 0, true), None, "not before the interval");
        assert_eq!(p.tick(300, 0, true), Some(Produce { empty_ok: true }));
        p.produced(350, false);
        assert_eq!(p.tick(1_300, 0, false), None, "nothing waits: no empty blocks");
    }

    /// Heights made over `ms` of 1 ms ticks, with a transaction always
    /// pending or none, while an escrow is open.
    fn heights(ms: u64, flood: bool) -> u64 {
        let mut p = Producer::new(100, 0);
        let mut made = 0;
        for now in 0..ms {
            if p.tick(now, usize::from(flood), true).is_some() {
                p.produced(now, true);
                made += 1;
            }
        }
        made
    }

    #[test]
    fn a_flood_of_transactions_does_not_hurry_heights_along() {
        // A claim height, a challenge window or an unbonding period is a
        // number of blocks: it must take the same time however busy the
        // chain is.
        assert_eq!(heights(10_000, true), heights(10_000, false));
        assert_eq!(heights(10_000, false), 99);
    }
}
