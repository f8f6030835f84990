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
            Misbehaviour::InvalidModule => 1,
        }
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
}
