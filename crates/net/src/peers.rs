//! What each error from a peer means, decided in one place: ignore it, back
//! off from the peer, or ban it. Everything the network layer rejects is
//! recorded here with its kind, so an operator sees per-peer counts and a
//! hostile peer is cut off after a bounded amount of garbage.

use std::collections::HashMap;

use libp2p::PeerId;

/// A kind of bad input from a peer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Misbehaviour {
    /// A message over its size cap.
    Oversized,
    /// Bytes that do not decode as the expected message.
    Malformed,
    /// A signature that does not verify, or a message relayed under someone
    /// else's name.
    BadSignature,
    /// Blob bytes that do not match their hash.
    BadBlob,
    /// An assignment for a module that fails validation.
    InvalidModule,
    /// A ledger block that fails its checks (link, state root, a rejected
    /// transaction), signed by a validator or not.
    BadBlock,
    /// A request over the per-peer rate of its protocol.
    Flooding,
    /// A peer that proved it had blocks, then did not send them in time.
    Stalled,
}

impl Misbehaviour {
    /// A short name, for logs and status output.
    pub fn as_str(self) -> &'static str {
        match self {
            Misbehaviour::Oversized => "oversized",
            Misbehaviour::Malformed => "malformed",
            Misbehaviour::BadSignature => "bad_signature",
            Misbehaviour::BadBlob => "bad_blob",
            Misbehaviour::InvalidModule => "invalid_module",
            Misbehaviour::BadBlock => "bad_block",
            Misbehaviour::Flooding => "flooding",
            Misbehaviour::Stalled => "stalled",
        }
    }

    /// The kind of a refused wire message.
    pub fn of_wire(e: &sharegrid_core::WireError) -> Misbehaviour {
        use sharegrid_core::WireError;
        match e {
            WireError::TooLarge { .. } => Misbehaviour::Oversized,
            WireError::BadSignature { .. } | WireError::WrongSigner { .. } => Misbehaviour::BadSignature,
            WireError::Malformed(_) | WireError::Version { .. } | WireError::Encode(_) => Misbehaviour::Malformed,
        }
    }

    /// How much this counts against the peer. Forgery and corrupted data are
    /// deliberate; an invalid module may be a requestor's honest mistake.
    pub fn weight(self) -> u32 {
        match self {
            Misbehaviour::BadSignature | Misbehaviour::BadBlob | Misbehaviour::BadBlock => 10,
            Misbehaviour::Oversized | Misbehaviour::Malformed => 5,
            Misbehaviour::Stalled => 3,
            Misbehaviour::InvalidModule | Misbehaviour::Flooding => 1,
        }
    }
}

/// A request protocol, for [`RateLimits`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Protocol {
    /// `/sharegrid/task/1`.
    Task,
    /// `/sharegrid/blob/1` (one request per chunk of up to 1 MiB).
    Blob,
    /// `/sharegrid/ledger/1`.
    Ledger,
}

impl Protocol {
    /// (burst, requests per second) one peer may send. Well above what an
    /// honest peer sends (a requestor's trivial tasks at full speed, a
    /// 1 GiB input fetched in one go, a follower catching up), so only a
    /// flood is refused.
    pub const fn rate(self) -> (u32, u32) {
        match self {
            Protocol::Task => (2048, 1000),
            Protocol::Blob => (1100, 500),
            Protocol::Ledger => (256, 100),
        }
    }
}

/// Per-peer token buckets for each request protocol: what a peer may ask
/// of this node per second. Bounded in peers tracked.
#[derive(Debug)]
pub struct RateLimits {
    buckets: HashMap<(PeerId, Protocol), (f64, u64)>,
    max_peers: usize,
}

impl Default for RateLimits {
    fn default() -> Self {
        RateLimits::new(4096)
    }
}

impl RateLimits {
    /// Limits tracking at most `max_peers` (peer, protocol) buckets.
    pub fn new(max_peers: usize) -> Self {
        RateLimits {
            buckets: HashMap::new(),
            max_peers,
        }
    }

    /// Whether `peer` may make one more `protocol` request at `now_ms`
    /// (taking a token if so).
    pub fn allow(&mut self, peer: PeerId, protocol: Protocol, now_ms: u64) -> bool {
        let (burst, per_sec) = protocol.rate();
        if !self.buckets.contains_key(&(peer, protocol)) && self.buckets.len() >= self.max_peers {
            // Full: forget the fullest bucket (a peer quiet the longest).
            let fullest = self
                .buckets
                .iter()
                .max_by(|a, b| a.1.0.total_cmp(&b.1.0))
                .map(|(k, _)| *k);
            if let Some(k) = fullest {
                self.buckets.remove(&k);
            }
        }
        let (tokens, at) = self
            .buckets
            .entry((peer, protocol))
            .or_insert((f64::from(burst), now_ms));
        let refill = now_ms.saturating_sub(*at) as f64 / 1000.0 * f64::from(per_sec);
        *tokens = (*tokens + refill).min(f64::from(burst));
        *at = now_ms;
        if *tokens >= 1.0 {
            *tokens -= 1.0;
            true
        } else {
            false
        }
    }

    /// Forgets a peer (it disconnected).
    pub fn forget(&mut self, peer: &PeerId) {
        self.buckets.retain(|(p, _), _| p != peer);
    }
}

/// What to do with the peer after recording.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PeerAction {
    /// Keep serving it.
    Ignore,
    /// Serve it less: refuse its new work for a while.
    Backoff,
    /// Disconnect and refuse it.
    Ban,
}

/// Misbehaviour counts per peer, bounded in the number of peers tracked.
#[derive(Debug)]
pub struct PeerScores {
    scores: HashMap<PeerId, (u32, HashMap<Misbehaviour, u32>)>,
    backoff_at: u32,
    ban_at: u32,
    max_peers: usize,
}

impl PeerScores {
    /// Scores that back off at `backoff_at` and ban at `ban_at`, tracking at
    /// most `max_peers` peers.
    pub fn new(backoff_at: u32, ban_at: u32, max_peers: usize) -> Self {
        PeerScores {
            scores: HashMap::new(),
            backoff_at,
            ban_at,
            max_peers,
        }
    }

    /// Records `what` from `peer` and says what to do.
    pub fn record(&mut self, peer: PeerId, what: Misbehaviour) -> PeerAction {
        if !self.scores.contains_key(&peer) && self.scores.len() >= self.max_peers {
            // Forget the least-offending peer to stay bounded.
            if let Some(k) = self.scores.iter().min_by_key(|(_, (s, _))| *s).map(|(k, _)| *k) {
                self.scores.remove(&k);
            }
        }
        let (score, kinds) = self.scores.entry(peer).or_default();
        *score = score.saturating_add(what.weight());
        *kinds.entry(what).or_default() += 1;
        self.action(&peer)
    }

    /// What to do with `peer` now.
    pub fn action(&self, peer: &PeerId) -> PeerAction {
        match self.scores.get(peer).map(|(s, _)| *s).unwrap_or(0) {
            s if s >= self.ban_at => PeerAction::Ban,
            s if s >= self.backoff_at => PeerAction::Backoff,
            _ => PeerAction::Ignore,
        }
    }

    /// Every count: (peer, kind, times), worst peers first.
    pub fn report(&self) -> Vec<(PeerId, Misbehaviour, u32)> {
        let mut peers: Vec<_> = self.scores.iter().collect();
        peers.sort_by_key(|(_, (s, _))| std::cmp::Reverse(*s));
        let mut out = Vec::new();
        for (p, (_, kinds)) in peers {
            let mut k: Vec<_> = kinds.iter().collect();
            k.sort_by_key(|(m, _)| m.as_str());
            out.extend(k.into_iter().map(|(m, n)| (*p, *m, *n)));
        }
        out
    }

    /// How many times `peer` did `what`.
    pub fn count(&self, peer: &PeerId, what: Misbehaviour) -> u32 {
        self.scores
            .get(peer)
            .and_then(|(_, k)| k.get(&what))
            .copied()
            .unwrap_or(0)
    }
}

impl Default for PeerScores {
    fn default() -> Self {
        PeerScores::new(20, 100, 10_000)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn garbage_escalates_from_ignore_to_ban() {
        let mut s = PeerScores::default();
        let p = PeerId::random();
        assert_eq!(s.record(p, Misbehaviour::InvalidModule), PeerAction::Ignore);
        assert_eq!(s.record(p, Misbehaviour::BadSignature), PeerAction::Ignore);
        assert_eq!(s.record(p, Misbehaviour::BadSignature), PeerAction::Backoff);
        for _ in 0..8 {
            s.record(p, Misbehaviour::BadBlob);
        }
        assert_eq!(s.action(&p), PeerAction::Ban);
        assert_eq!(s.count(&p, Misbehaviour::BadBlob), 8);
        assert_eq!(s.action(&PeerId::random()), PeerAction::Ignore);
    }

    #[test]
    fn tracking_is_bounded() {
        let mut s = PeerScores::new(20, 100, 3);
        for _ in 0..10 {
            s.record(PeerId::random(), Misbehaviour::Malformed);
        }
        assert!(s.scores.len() <= 3);
    }

    #[test]
    fn a_flood_is_refused_and_an_honest_rate_is_not() {
        let mut r = RateLimits::default();
        let (flooder, honest) = (PeerId::random(), PeerId::random());
        let (burst, per_sec) = Protocol::Ledger.rate();
        let allowed = (0..10_000)
            .filter(|_| r.allow(flooder, Protocol::Ledger, 1_000))
            .count();
        assert_eq!(allowed, burst as usize, "the burst, then nothing in the same instant");
        assert!(r.allow(honest, Protocol::Ledger, 1_000), "another peer is unaffected");
        assert!(r.allow(flooder, Protocol::Task, 1_000), "nor another protocol");
        // A second later, the rate's worth again.
        let later = (0..10_000)
            .filter(|_| r.allow(flooder, Protocol::Ledger, 2_000))
            .count();
        assert_eq!(later, per_sec as usize);
        r.forget(&flooder);
        assert!(r.allow(flooder, Protocol::Ledger, 2_000));
    }
}
