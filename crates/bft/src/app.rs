//! The application Simplex drives: proposals, verification, block relay and
//! finalization, over the ledger's [`Chain`].
//!
//! Every request the engine makes (propose on this parent, verify this
//! block, commit this finalization) is kept until it can be answered and
//! re-tried whenever something arrives (a block from a peer, a commit, a
//! tick): a request never waits on the network inside the engine's call,
//! and a request the engine abandons (its receiver dropped) is forgotten.
//! What the answers depend on is deterministic (the parent's state and the
//! block), except the proposer's clock: a block stamped too far ahead of
//! this validator's clock waits until the clock catches up, it is not
//! refused.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};

use commonware_actor::Feedback;
use commonware_consensus::simplex::{Plan, types::Context};
use commonware_consensus::{Automaton, CertifiableAutomaton, Relay, Reporter, Viewable as _};
use commonware_p2p::{Recipients, Sender};
use commonware_utils::channel::oneshot;
use serde::{Deserialize, Serialize};
use sharegrid_core::{ContentId, NodeId, NodeKey, Signed};
use sharegrid_ledger::consensus::{
    Activity, Digest, PublicKey, block_hash, digest, encode_evidence, node_id, offender,
};
use sharegrid_ledger::{Block, Chain, Header, MAX_BLOCK_BYTES, MAX_BLOCK_TXS, txs_root};

use crate::host::{Committed, Host};

type Ctx = Context<Digest, PublicKey>;

/// Most blocks kept that are neither finalized nor verified (from peers).
const MAX_RECEIVED: usize = 4096;
/// Most bytes of blocks in one answer to a peer's `Want`.
pub(crate) const MAX_ANSWER_BYTES: usize = MAX_BLOCK_BYTES + (1 << 20);
/// Most transactions in one relay message (more go in several).
const MAX_RELAY_TXS: usize = 2_048;
/// How long a proposal the engine asks about may take to arrive from its
/// leader before peers are asked for it.
const FIRST_ASK_MS: u64 = 50;
/// Most received blocks checked in a row to reach a proposal's parent.
const MAX_REACH: usize = 64;
/// How long before asking again for a block no peer has sent.
const ASK_AGAIN_MS: u64 = 250;
/// How far ahead of this validator's clock a block's time may be before it
/// waits (a clock that far apart is a misconfigured machine, or a lie).
const MAX_CLOCK_SKEW_MS: u64 = 2_000;

/// A message on the blocks channel.
#[derive(Debug, Serialize, Deserialize)]
enum Gossip {
    /// Blocks: a proposal, or an answer (a block and its ancestors,
    /// newest first).
    Blocks(Vec<Block>),
    /// Send me the block with this hash, and its ancestors above this
    /// height (the asker's finalized head).
    Want(ContentId, u64),
    /// Transactions the sender acknowledged, for any leader to propose.
    Txs(Vec<Signed>),
}

/// A block this validator verified or built, with the chain after it.
#[derive(Debug)]
struct Built {
    block: Block,
    header: Header,
    chain: Chain,
}

/// When blocks are made.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Pace {
    /// At least this long between a block and its parent (heights track
    /// time: a flood of transactions cannot hurry them).
    pub(crate) min_block_ms: u64,
    /// With nothing to propose, a leader waits this long after the parent
    /// before proposing an empty block.
    pub(crate) idle_block_ms: u64,
}

struct Inner {
    finalized: Chain,
    built: HashMap<ContentId, Built>,
    received: HashMap<ContentId, Block>,
    verifies: Vec<(Ctx, ContentId, oneshot::Sender<bool>)>,
    proposals: Vec<(Ctx, oneshot::Sender<Digest>)>,
    /// Finalizations to commit, by view: the block's hash and the
    /// encoded certificate.
    finals: BTreeMap<u64, (ContentId, Vec<u8>)>,
    /// Blocks asked for, and when.
    wanted: HashMap<ContentId, u64>,
    outbox: Vec<(Recipients<PublicKey>, Gossip)>,
    /// A commit failed: this validator stops deciding.
    failed: Option<String>,
}

/// The application: cheap to clone (the engine holds several copies).
pub struct App<H: Host, S: Sender<PublicKey = PublicKey>> {
    host: Arc<H>,
    key: Arc<NodeKey>,
    /// The genesis's validators (whom evidence names).
    validators: Arc<Vec<NodeId>>,
    pace: Pace,
    clock: Arc<dyn Fn() -> u64 + Send + Sync>,
    inner: Arc<Mutex<Inner>>,
    sender: Arc<Mutex<S>>,
}

impl<H: Host, S: Sender<PublicKey = PublicKey>> Clone for App<H, S> {
    fn clone(&self) -> Self {
        App {
            host: self.host.clone(),
            key: self.key.clone(),
            validators: self.validators.clone(),
            pace: self.pace,
            clock: self.clock.clone(),
            inner: self.inner.clone(),
            sender: self.sender.clone(),
        }
    }
}

impl<H: Host, S: Sender<PublicKey = PublicKey>> std::fmt::Debug for App<H, S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "App({})", self.key.id().short())
    }
}

impl<H: Host, S: Sender<PublicKey = PublicKey>> App<H, S> {
    pub(crate) fn new(
        host: Arc<H>,
        key: Arc<NodeKey>,
        validators: Vec<NodeId>,
        pace: Pace,
        clock: Arc<dyn Fn() -> u64 + Send + Sync>,
        sender: S,
    ) -> Self {
        let finalized = host.finalized();
        App {
            host,
            key,
            validators: Arc::new(validators),
            pace,
            clock,
            inner: Arc::new(Mutex::new(Inner::new(finalized))),
            sender: Arc::new(Mutex::new(sender)),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Why this validator stopped, if it did (a commit failed).
    pub fn failed(&self) -> Option<String> {
        self.lock().failed.clone()
    }

    /// Handles a message from peer `from` on the blocks channel.
    pub(crate) fn on_message(&self, from: PublicKey, bytes: &[u8]) {
        let Ok(gossip) = cbor4ii::serde::from_slice::<Gossip>(bytes) else {
            tracing::debug!(peer = %node_id(&from).short(), "undecodable message on the blocks channel");
            return;
        };
        {
            let mut inner = self.lock();
            match gossip {
                Gossip::Blocks(blocks) => {
                    for block in blocks {
                        inner.receive(block);
                    }
                }
                Gossip::Want(hash, have) => {
                    let answer = self.answer(&inner, hash, have);
                    if !answer.is_empty() {
                        inner.outbox.push((Recipients::One(from), Gossip::Blocks(answer)));
                    }
                }
                Gossip::Txs(txs) => {
                    drop(inner);
                    // Checked outside the lock the engine's calls take.
                    if txs.len() <= MAX_RELAY_TXS {
                        self.host.relayed(txs);
                    }
                    return;
                }
            }
        }
        self.tick();
    }

    /// A block and as many of its ancestors above height `have` (what the
    /// asker has finalized) as fit, newest first. For a block not finalized
    /// here (a proposal a peer's votes outran), only the ancestors not
    /// finalized either: sending a peer in step megabytes of blocks it has
    /// on every late proposal would hold back both.
    fn answer(&self, inner: &Inner, hash: ContentId, have: u64) -> Vec<Block> {
        let mut out = Vec::new();
        let mut bytes = 0;
        let mut cur = hash;
        while out.len() < 64 {
            let block = match inner.built.get(&cur) {
                Some(b) => b.block.clone(),
                None => match inner.received.get(&cur) {
                    Some(b) => b.clone(),
                    None if !out.is_empty() && cur == inner.finalized.head() => break,
                    None => match self.host.block(&cur) {
                        Some(b) => b,
                        None => break,
                    },
                },
            };
            bytes += block.txs.iter().map(|t| t.body.len() + 100).sum::<usize>() + 300;
            if !out.is_empty() && bytes > MAX_ANSWER_BYTES / 2 {
                break;
            }
            let Ok(header) = block.peek_header() else { break };
            if !out.is_empty() && header.height <= have {
                break;
            }
            out.push(block);
            if header.height <= 1 {
                break;
            }
            cur = header.prev;
        }
        out
    }

    /// Re-tries every waiting request and sends what is to be sent.
    pub(crate) fn tick(&self) {
        // Held from taking the relay to sending it, so relays leave in the
        // order they were acknowledged (a peer pools an account's
        // transactions only in nonce order).
        let mut sender = self.sender.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        // Relayed transactions go first: a proposal that follows finds them
        // verified in its verifiers' pools.
        let mut outbox: Vec<_> = relay_messages(self.host.relay());
        {
            let mut inner = self.lock();
            if inner.failed.is_none() {
                self.progress(&mut inner);
            }
            outbox.append(&mut inner.outbox);
        }
        for (to, gossip) in outbox {
            let Ok(bytes) = cbor4ii::serde::to_vec(Vec::new(), &gossip) else {
                continue;
            };
            sender.send(to, bytes, false);
        }
    }

    fn progress(&self, inner: &mut Inner) {
        let now = (self.clock)();
        self.commit_finalized(inner, now);
        if inner.failed.is_some() {
            return;
        }
        let verifies = std::mem::take(&mut inner.verifies);
        for (ctx, hash, tx) in verifies {
            if tx.is_closed() {
                continue;
            }
            match inner.verify(&ctx, hash, now, &|txs| self.host.verified(txs)) {
                Some(ok) => {
                    let _ = tx.send(ok);
                }
                None => inner.verifies.push((ctx, hash, tx)),
            }
        }
        let proposals = std::mem::take(&mut inner.proposals);
        for (ctx, tx) in proposals {
            if tx.is_closed() {
                continue;
            }
            match self.propose_on(inner, &ctx, now) {
                Some(d) => {
                    let _ = tx.send(d);
                }
                None => inner.proposals.push((ctx, tx)),
            }
        }
        inner.ask(now);
    }

    /// A block on the context's parent, once the parent is known and the
    /// pace allows; `None` to wait.
    fn propose_on(&self, inner: &mut Inner, ctx: &Ctx, now: u64) -> Option<Digest> {
        let parent_hash = block_hash(&ctx.parent.1);
        if let Err(missing) = inner.reach(parent_hash, &|txs| self.host.verified(txs)) {
            inner.want(missing);
            return None;
        }
        let parent = inner.chain_at(&parent_hash)?;
        let earliest = parent.time_ms().saturating_add(self.pace.min_block_ms);
        if now < earliest {
            return None;
        }
        let candidates = self.host.candidates(MAX_BLOCK_TXS);
        if candidates.is_empty()
            && !self.host.waiting()
            && now < parent.time_ms().saturating_add(self.pace.idle_block_ms)
        {
            return None;
        }
        // The host verified each candidate's signature when it admitted it.
        let p = match parent.propose_verified(&self.key, candidates, now.max(earliest)) {
            Ok(p) => p,
            Err(e) => {
                tracing::error!(%e, "cannot sign a block");
                return None;
            }
        };
        let hash = p.block.hash();
        let chain = Chain::restore(p.state, p.header.height, hash, p.header.time_ms);
        inner.built.insert(
            hash,
            Built {
                block: p.block,
                header: p.header,
                chain,
            },
        );
        Some(digest(&hash))
    }

    /// Commits every finalization whose blocks are all here, lowest view
    /// first.
    fn commit_finalized(&self, inner: &mut Inner, now: u64) {
        while let Some((&view, (hash, cert))) = inner.finals.first_key_value() {
            let (hash, cert) = (*hash, cert.clone());
            if hash == inner.finalized.head() {
                inner.finals.remove(&view);
                continue;
            }
            if self.host.block(&hash).is_some() {
                // Committed by another path (the node's follower): take up
                // the host's head.
                let head = self.host.finalized();
                if head.height() > inner.finalized.height() {
                    inner.finalized = head;
                    inner.prune();
                }
                inner.finals.remove(&view);
                continue;
            }
            // Walk back from the finalized block to the head.
            let mut path = Vec::new();
            let mut cur = hash;
            let complete = loop {
                if cur == inner.finalized.head() {
                    break true;
                }
                let Some(block) = inner
                    .built
                    .get(&cur)
                    .map(|b| &b.block)
                    .or_else(|| inner.received.get(&cur))
                else {
                    inner.want(cur);
                    break false;
                };
                let Ok(header) = block.peek_header() else {
                    inner.received.remove(&cur);
                    inner.want(cur);
                    break false;
                };
                if header.height <= inner.finalized.height() {
                    inner.failed = Some(format!(
                        "finalized block {} does not descend from the finalized head {} (a fork: more than a third of validators lied)",
                        hash.short(),
                        inner.finalized.head().short()
                    ));
                    tracing::error!(failed = ?inner.failed, "consensus stopped");
                    return;
                }
                path.push(cur);
                cur = header.prev;
            };
            if !complete {
                inner.ask(now);
                return;
            }
            for (i, h) in path.iter().rev().enumerate() {
                let certificate = (i + 1 == path.len()).then_some(cert.as_slice());
                let built = match inner.built.remove(h) {
                    Some(b) if b.header.prev == inner.finalized.head() => b,
                    _ => {
                        let Some(block) = inner.received.get(h).cloned() else {
                            return;
                        };
                        match inner.finalized.check(&block) {
                            Ok((header, state)) => Built {
                                chain: Chain::restore(state, header.height, *h, header.time_ms),
                                block,
                                header,
                            },
                            Err(_) if !genuine(&block) => {
                                // Not the finalized block, a bad copy of it:
                                // another copy, not a halt.
                                inner.received.remove(h);
                                inner.want(*h);
                                inner.ask(now);
                                return;
                            }
                            Err(e) => {
                                inner.failed = Some(format!("finalized block {} fails its checks: {e}", h.short()));
                                tracing::error!(failed = ?inner.failed, "consensus stopped");
                                return;
                            }
                        }
                    }
                };
                let committed = Committed {
                    block: &built.block,
                    header: &built.header,
                    state: built.chain.state(),
                    certificate,
                };
                if let Err(e) = self.host.commit(committed) {
                    inner.failed = Some(format!("cannot store finalized block {}: {e}", h.short()));
                    tracing::error!(failed = ?inner.failed, "consensus stopped");
                    return;
                }
                inner.finalized = built.chain;
            }
            inner.finals.remove(&view);
            inner.prune();
        }
    }
}

/// Whether `block` is as its producer made it: the header's signature
/// verifies and the transactions are those the header commits to. A block's
/// hash covers only its header, so a copy tampered with on the way, or by a
/// peer, has the genuine block's hash; it says nothing of the proposal and
/// is dropped and asked for again, never voted against or taken for a
/// finalized block that fails its checks. Asked only of a block that failed
/// them (a genuine block's checks include these two).
fn genuine(block: &Block) -> bool {
    block.open_header().is_ok_and(|h| txs_root(&block.txs) == h.txs)
}

/// `txs` as relay messages to every peer, each within the size limits.
fn relay_messages(txs: Vec<Signed>) -> Vec<(Recipients<PublicKey>, Gossip)> {
    let mut out = Vec::new();
    let mut chunk = Vec::new();
    let mut bytes = 0;
    for tx in txs {
        let len = tx.body.len() + 100;
        if !chunk.is_empty() && (chunk.len() == MAX_RELAY_TXS || bytes + len > MAX_ANSWER_BYTES / 2) {
            out.push((Recipients::All, Gossip::Txs(std::mem::take(&mut chunk))));
            bytes = 0;
        }
        bytes += len;
        chunk.push(tx);
    }
    if !chunk.is_empty() {
        out.push((Recipients::All, Gossip::Txs(chunk)));
    }
    out
}

impl Inner {
    fn new(finalized: Chain) -> Inner {
        Inner {
            finalized,
            built: HashMap::new(),
            received: HashMap::new(),
            verifies: Vec::new(),
            proposals: Vec::new(),
            finals: BTreeMap::new(),
            wanted: HashMap::new(),
            outbox: Vec::new(),
            failed: None,
        }
    }

    /// The chain after block `hash`, if it is the finalized head or a block
    /// verified or built here.
    fn chain_at(&self, hash: &ContentId) -> Option<&Chain> {
        if *hash == self.finalized.head() {
            return Some(&self.finalized);
        }
        self.built.get(hash).map(|b| &b.chain)
    }

    /// Makes the chain after block `hash` known ([`Inner::chain_at`]): a
    /// block received but never verified here — the parent of a proposal,
    /// notarized while this validator was behind, so the engine never asked
    /// it to — is checked now on its own parent, oldest first, and kept as
    /// verified. Without this, a validator that missed one block could not
    /// verify any proposal built on it until it was finalized, which may
    /// need this validator's vote. `Err` names a block to ask peers for.
    fn reach(&mut self, hash: ContentId, verified: &dyn Fn(&[Signed]) -> Vec<bool>) -> Result<(), ContentId> {
        let mut path = Vec::new();
        let mut cur = hash;
        while self.chain_at(&cur).is_none() {
            let Some(header) = self.received.get(&cur).and_then(|b| b.peek_header().ok()) else {
                return Err(cur);
            };
            if header.height <= self.finalized.height() || path.len() >= MAX_REACH {
                return Err(cur);
            }
            path.push(cur);
            cur = header.prev;
        }
        for h in path.into_iter().rev() {
            let (Some(parent), Some(block)) = (self.chain_at(&cur), self.received.get(&h)) else {
                return Err(h);
            };
            match parent.check_with(block, &verified(&block.txs)) {
                Ok((header, state)) => {
                    let chain = Chain::restore(state, header.height, h, header.time_ms);
                    let Some(block) = self.received.remove(&h) else {
                        return Err(h);
                    };
                    self.built.insert(h, Built { block, header, chain });
                }
                Err(e) => {
                    // A bad copy (or, past f faults, a bad block): another.
                    tracing::debug!(block = %h.short(), %e, "received block fails its checks");
                    self.received.remove(&h);
                    return Err(h);
                }
            }
            cur = h;
        }
        Ok(())
    }

    /// The verdict on block `hash` for `ctx`, or `None` to wait for the
    /// block, its parent, or the clock.
    fn verify(
        &mut self,
        ctx: &Ctx,
        hash: ContentId,
        now: u64,
        verified: &dyn Fn(&[Signed]) -> Vec<bool>,
    ) -> Option<bool> {
        let parent_hash = block_hash(&ctx.parent.1);
        let leader = node_id(&ctx.leader);
        if let Some(b) = self.built.get(&hash) {
            return Some(b.header.prev == parent_hash && b.header.producer == leader);
        }
        let Some(block) = self.received.get(&hash) else {
            self.want_soon(hash, now);
            return None;
        };
        // The header is the leader's: its bytes are what `hash` names (a
        // copy's signature and transactions are checked below).
        let Ok(header) = block.peek_header() else {
            return Some(false);
        };
        if header.prev != parent_hash || header.producer != leader {
            return Some(false);
        }
        if header.time_ms > now.saturating_add(MAX_CLOCK_SKEW_MS) {
            return None;
        }
        if let Err(missing) = self.reach(parent_hash, verified) {
            self.want(missing);
            return None;
        }
        let (Some(parent), Some(block)) = (self.chain_at(&parent_hash), self.received.get(&hash)) else {
            return None;
        };
        match parent.check_with(block, &verified(&block.txs)) {
            Ok((header, state)) => {
                let chain = Chain::restore(state, header.height, hash, header.time_ms);
                let block = self.received.remove(&hash)?;
                self.built.insert(hash, Built { block, header, chain });
                Some(true)
            }
            Err(_) if !genuine(block) => {
                self.received.remove(&hash);
                self.want(hash);
                None
            }
            Err(e) => {
                tracing::warn!(block = %hash.short(), %e, "proposal refused");
                Some(false)
            }
        }
    }

    fn receive(&mut self, block: Block) {
        let hash = block.hash();
        if self.built.contains_key(&hash) || self.received.contains_key(&hash) {
            return;
        }
        let Ok(header) = block.peek_header() else { return };
        if header.height <= self.finalized.height() || self.received.len() >= MAX_RECEIVED {
            return;
        }
        self.wanted.remove(&hash);
        self.received.insert(hash, block);
    }

    fn want(&mut self, hash: ContentId) {
        self.wanted.entry(hash).or_insert(0);
    }

    /// [`Inner::want`] for a proposal the engine asks about: its leader's
    /// broadcast is most likely on its way (votes are small and outrun
    /// it), so peers are asked only if it has not come [`FIRST_ASK_MS`]
    /// from now.
    fn want_soon(&mut self, hash: ContentId, now: u64) {
        let at = now.saturating_sub(ASK_AGAIN_MS).saturating_add(FIRST_ASK_MS).max(1);
        self.wanted.entry(hash).or_insert(at);
    }

    /// Asks all peers for every wanted block not asked for lately.
    fn ask(&mut self, now: u64) {
        let due: Vec<ContentId> = self
            .wanted
            .iter()
            .filter(|(_, at)| now.saturating_sub(**at) >= ASK_AGAIN_MS || **at == 0)
            .map(|(h, _)| *h)
            .collect();
        for h in due {
            self.wanted.insert(h, now.max(1));
            self.outbox
                .push((Recipients::All, Gossip::Want(h, self.finalized.height())));
        }
    }

    /// Forgets what finalization made irrelevant.
    fn prune(&mut self) {
        let height = self.finalized.height();
        self.built.retain(|_, b| b.header.height > height);
        self.received
            .retain(|_, b| b.peek_header().map(|h| h.height > height).unwrap_or(false));
        let known: Vec<ContentId> = self.received.keys().chain(self.built.keys()).copied().collect();
        for h in known {
            self.wanted.remove(&h);
        }
        if self.wanted.len() > MAX_RECEIVED {
            self.wanted.clear();
        }
    }
}

impl<H: Host, S: Sender<PublicKey = PublicKey>> Automaton for App<H, S> {
    type Context = Ctx;
    type Digest = Digest;

    async fn propose(&mut self, context: Ctx) -> oneshot::Receiver<Digest> {
        let (tx, rx) = oneshot::channel();
        self.lock().proposals.push((context, tx));
        self.tick();
        rx
    }

    async fn verify(&mut self, context: Ctx, payload: Digest) -> oneshot::Receiver<bool> {
        let (tx, rx) = oneshot::channel();
        self.lock().verifies.push((context, block_hash(&payload), tx));
        self.tick();
        rx
    }
}

impl<H: Host, S: Sender<PublicKey = PublicKey>> CertifiableAutomaton for App<H, S> {}

impl<H: Host, S: Sender<PublicKey = PublicKey>> Relay for App<H, S> {
    type Digest = Digest;
    type PublicKey = PublicKey;
    type Plan = Plan<PublicKey>;

    fn broadcast(&mut self, payload: Digest, plan: Plan<PublicKey>) -> Feedback {
        let hash = block_hash(&payload);
        {
            let mut inner = self.lock();
            let Some(block) = inner.built.get(&hash).map(|b| b.block.clone()) else {
                return Feedback::Ok;
            };
            let to = match plan {
                Plan::Prepare { .. } | Plan::Propose { .. } => Recipients::All,
                Plan::Forward { recipients, .. } => recipients,
            };
            inner.outbox.push((to, Gossip::Blocks(vec![block])));
        }
        self.tick();
        Feedback::Ok
    }
}

impl<H: Host, S: Sender<PublicKey = PublicKey>> Reporter for App<H, S> {
    type Activity = Activity;

    fn report(&mut self, activity: Activity) -> Feedback {
        match &activity {
            Activity::Finalization(f) => {
                use commonware_codec::Encode as _;
                let hash = block_hash(&f.proposal.payload);
                self.lock().finals.insert(f.view().get(), (hash, f.encode().to_vec()));
                self.tick();
            }
            // Equivocation: the only other reports that have evidence bytes.
            _ => {
                let Some(evidence) = encode_evidence(&activity) else {
                    return Feedback::Ok;
                };
                if let Some(offender) = offender(&self.validators, &evidence) {
                    tracing::warn!(validator = %offender.short(), "a validator signed conflicting votes");
                    self.host.equivocation(offender, evidence);
                }
            }
        }
        Feedback::Ok
    }
}

#[cfg(test)]
mod tests;
