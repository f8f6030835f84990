//! The simulation's world outside the nodes: a seeded random source, a
//! clock, and a queue of timed events — messages in flight (each delayed,
//! some lost), request timeouts, runs finishing, crashes and restarts.
//! Events at the same time keep the order they were scheduled in, so a seed
//! replays exactly.

use std::cmp::Ordering;
use std::collections::BinaryHeap;

use sharegrid_core::{ContentId, Signed};
use sharegrid_ledger::Block;
use sharegrid_net::TaskResponse;

use crate::provider::{RunId, RunOutput};

/// Nodes are named by their index: 0 the validator, 1 the requestor, then
/// the providers.
pub(crate) type Ix = usize;
pub(crate) const VALIDATOR: Ix = 0;
pub(crate) const REQUESTOR: Ix = 1;

/// splitmix64: a fixed algorithm, so a seed replays whatever crate versions
/// are around.
#[derive(Debug, Clone)]
pub(crate) struct Rng(u64);

impl Rng {
    pub(crate) fn new(seed: u64) -> Self {
        Rng(seed ^ 0x9e37_79b9_7f4a_7c15)
    }

    pub(crate) fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in `lo..=hi`.
    pub(crate) fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.next() % (hi - lo + 1)
    }

    /// Uniform in [0, 1].
    pub(crate) fn unit(&mut self) -> f64 {
        self.next() as f64 / u64::MAX as f64
    }

    /// True with probability `p`.
    pub(crate) fn chance(&mut self, p: f64) -> bool {
        self.unit() < p
    }
}

/// A message between nodes.
#[derive(Debug, Clone)]
pub(crate) enum Msg {
    /// A provider's signed offer (gossip).
    Offer(Signed),
    /// A signed assignment (request `req`).
    Assign { req: u64, signed: Signed },
    /// The provider's answer to request `req`.
    Answer { req: u64, response: TaskResponse },
    /// Asks for an output blob (request `req`).
    Fetch { req: u64, id: ContentId },
    /// The answer: whether the blob was there (its bytes are not simulated).
    Fetched { req: u64, found: bool },
    /// A transaction for the validator's pool (request `req`).
    Submit { req: u64, tx: Signed },
    /// The validator's answer: accepted, or refused with why.
    Submitted { req: u64, refused: Option<String> },
    /// A gossiped block header.
    Announce(Vec<u8>),
    /// Asks for the head (request `req`).
    Head { req: u64 },
    /// The head.
    HeadIs {
        req: u64,
        genesis: ContentId,
        height: u64,
        header: Option<sharegrid_core::Signed>,
    },
    /// Asks for blocks from a height (request `req`).
    Blocks { req: u64, from: u64 },
    /// Blocks.
    BlocksAre { req: u64, blocks: Vec<Block> },
}

/// Something that happens at a time.
#[derive(Debug)]
pub(crate) enum Ev {
    /// A message arrives.
    Deliver { to: Ix, from: Ix, msg: Msg },
    /// A request of `node` may have timed out.
    Timeout { node: Ix, req: u64 },
    /// A provider's run ends (if the provider has not crashed since).
    RunDone {
        node: Ix,
        life: u32,
        run: RunId,
        output: RunOutput,
    },
    /// A node's periodic work.
    Tick { node: Ix },
    /// A provider crashes.
    Crash { node: Ix, down_ms: u64 },
    /// A crashed provider comes back.
    Restart { node: Ix },
    /// `observer` notices `peer` gone (the departure timeout).
    Gone { observer: Ix, peer: Ix, life: u32 },
}

struct At {
    at: u64,
    seq: u64,
    ev: Ev,
}

impl PartialEq for At {
    fn eq(&self, o: &Self) -> bool {
        (self.at, self.seq) == (o.at, o.seq)
    }
}
impl Eq for At {}
impl PartialOrd for At {
    fn partial_cmp(&self, o: &Self) -> Option<Ordering> {
        Some(self.cmp(o))
    }
}
impl Ord for At {
    fn cmp(&self, o: &Self) -> Ordering {
        // Earliest first out of a max-heap.
        (o.at, o.seq).cmp(&(self.at, self.seq))
    }
}

/// The clock and the queue of what is to happen.
#[derive(Default)]
pub(crate) struct Queue {
    heap: BinaryHeap<At>,
    seq: u64,
    pub(crate) now: u64,
}

impl Queue {
    pub(crate) fn at(&mut self, at: u64, ev: Ev) {
        self.seq += 1;
        self.heap.push(At {
            at: at.max(self.now),
            seq: self.seq,
            ev,
        });
    }

    pub(crate) fn after(&mut self, delay: u64, ev: Ev) {
        self.at(self.now + delay, ev);
    }

    /// The next event, moving the clock to it.
    pub(crate) fn pop(&mut self) -> Option<Ev> {
        let next = self.heap.pop()?;
        self.now = next.at;
        Some(next.ev)
    }
}
