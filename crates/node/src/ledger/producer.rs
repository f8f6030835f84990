//! When a validator makes a block, as a state machine with no I/O: when
//! transactions wait and `block_interval` has passed since the last block,
//! or — while escrows are open, so that claim and close heights arrive —
//! an empty block when the chain has been idle for `idle_block`. One block
//! in the making at a time. The daemon asks it on every tick and carries
//! out [`Produce`] off the event loop.

/// Make a block now (off the loop), then say [`Producer::produced`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Produce {
    /// Whether an empty block is wanted (nothing pending, escrows open).
    pub empty_ok: bool,
}

/// The producer's timing. See the module docs.
#[derive(Debug)]
pub struct Producer {
    block_interval_ms: u64,
    idle_block_ms: u64,
    last_block_ms: u64,
    producing: bool,
}

impl Producer {
    /// A producer whose last block was at `now_ms`.
    pub fn new(block_interval_ms: u64, idle_block_ms: u64, now_ms: u64) -> Self {
        Producer {
            block_interval_ms,
            idle_block_ms,
            last_block_ms: now_ms,
            producing: false,
        }
    }

    /// Whether to make a block now, with `pending` transactions waiting and
    /// escrows open or not.
    pub fn tick(&mut self, now_ms: u64, pending: usize, open_escrows: bool) -> Option<Produce> {
        let since = now_ms.saturating_sub(self.last_block_ms);
        if self.producing || since < self.block_interval_ms {
            return None;
        }
        let empty_ok = open_escrows && since >= self.idle_block_ms;
        if pending == 0 && !empty_ok {
            return None;
        }
        self.producing = true;
        Some(Produce { empty_ok })
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
    fn blocks_when_transactions_wait_and_empty_ones_only_for_open_escrows() {
        let mut p = Producer::new(100, 1_000, 0);
        assert_eq!(p.tick(50, 3, false), None, "interval not passed");
        assert_eq!(p.tick(100, 0, false), None, "nothing to put in a block");
        assert_eq!(p.tick(100, 3, false), Some(Produce { empty_ok: false }));
        assert_eq!(p.tick(150, 3, false), None, "one block at a time");
        p.produced(200, true);
        assert_eq!(p.tick(900, 0, true), None, "idle, but not for long");
        assert_eq!(p.tick(1_200, 0, true), Some(Produce { empty_ok: true }));
        p.produced(1_250, false);
        assert_eq!(p.tick(1_300, 0, false), None, "no escrows: no empty blocks");
    }
}
