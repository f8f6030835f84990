//! What to do with a gossiped offer: keep it, or drop it with a reason (and
//! count the sender's misbehaviour where the reason is theirs).

use std::collections::HashMap;

use sharegrid_core::{NodeId, Offer, Signed, WireError, decode_capped};

use libp2p::PeerId;

use crate::behaviour::peer_id;
use crate::protocol::MAX_OFFER_BYTES;

/// The furthest ahead an offer's expiry is believed: a later one is kept
/// only this long (an offer far in the future would outlive its provider
/// and push real ones out of a full book).
pub const MAX_OFFER_LIFETIME_MS: u64 = 10 * 60 * 1000;

/// The fastest speed an offer may claim, Gfuel/s: far above any machine
/// (one core runs about 1–5), so only an absurd claim is refused.
pub const MAX_OFFER_SPEED: f64 = 100_000.0;
/// The most cores an offer may claim.
pub const MAX_OFFER_CORES: u32 = 1 << 16;
/// The most memory an offer may claim (64 TiB).
pub const MAX_OFFER_MEMORY: u64 = 1 << 46;

/// Why an offer was dropped.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum OfferRejection {
    /// Not a well-formed, correctly signed offer.
    #[error("invalid offer: {0}")]
    Invalid(#[from] WireError),
    /// Relayed under a different origin than its signer.
    #[error("offer signed by {signer} arrived from origin {origin}")]
    WrongOrigin {
        /// Who signed it.
        signer: String,
        /// Who gossip says published it.
        origin: String,
    },
    /// Already expired.
    #[error("offer expired at {expires_at_ms} ms (now {now_ms} ms)")]
    Expired {
        /// Its expiry.
        expires_at_ms: u64,
        /// Now.
        now_ms: u64,
    },
    /// A claim no machine can make: a speed that is not a positive finite
    /// number, no cores, or more free slots than cores.
    #[error("implausible offer: {0}")]
    Implausible(String),
    /// Older than (or the same as) one already held from this provider.
    #[error("stale offer: sequence {got} is not newer than {have}")]
    Stale {
        /// Its sequence number.
        got: u64,
        /// The newest held.
        have: u64,
    },
}

impl OfferRejection {
    /// Whether the peer that sent it misbehaved (as opposed to the offer
    /// merely being late or superseded).
    pub fn is_misbehaviour(&self) -> bool {
        matches!(
            self,
            OfferRejection::Invalid(_) | OfferRejection::WrongOrigin { .. } | OfferRejection::Implausible(_)
        )
    }
}

/// The live offers a node knows, newest per provider, bounded in count.
#[derive(Debug)]
pub struct OfferBook {
    offers: HashMap<NodeId, Offer>,
    max: usize,
}

impl OfferBook {
    /// A book holding at most `max` providers' offers.
    pub fn new(max: usize) -> Self {
        OfferBook {
            offers: HashMap::new(),
            max,
        }
    }

    /// Considers gossip `bytes` that arrived with origin `origin` (the
    /// publisher gossipsub authenticated; `None` if unknown). Keeps the offer
    /// and returns it, or says why not. Changes nothing on rejection.
    pub fn accept(&mut self, bytes: &[u8], origin: Option<PeerId>, now_ms: u64) -> Result<Offer, OfferRejection> {
        let signed: Signed = decode_capped(bytes, MAX_OFFER_BYTES)?;
        let offer: Offer = signed.open(MAX_OFFER_BYTES)?;
        if let Some(origin) = origin
            && peer_id(&offer.provider) != Some(origin)
        {
            return Err(OfferRejection::WrongOrigin {
                signer: offer.provider.to_string(),
                origin: origin.to_string(),
            });
        }
        if offer.expires_at_ms <= now_ms {
            return Err(OfferRejection::Expired {
                expires_at_ms: offer.expires_at_ms,
                now_ms,
            });
        }
        let speed = offer.speed.0;
        if !(speed.is_finite() && speed > 0.0 && speed <= MAX_OFFER_SPEED) {
            return Err(OfferRejection::Implausible(format!("speed {speed} Gfuel/s")));
        }
        if offer.cores > MAX_OFFER_CORES || offer.memory_bytes > MAX_OFFER_MEMORY {
            return Err(OfferRejection::Implausible(format!(
                "{} cores and {} bytes of memory",
                offer.cores, offer.memory_bytes
            )));
        }
        if offer.cores == 0 || offer.free_slots > offer.cores {
            return Err(OfferRejection::Implausible(format!(
                "{} free slots of {} cores",
                offer.free_slots, offer.cores
            )));
        }
        let mut offer = offer;
        offer.expires_at_ms = offer.expires_at_ms.min(now_ms.saturating_add(MAX_OFFER_LIFETIME_MS));
        if let Some(have) = self.offers.get(&offer.provider)
            && have.seq >= offer.seq
        {
            return Err(OfferRejection::Stale {
                got: offer.seq,
                have: have.seq,
            });
        }
        if !self.offers.contains_key(&offer.provider) && self.offers.len() >= self.max {
            self.expire(now_ms);
            if self.offers.len() >= self.max {
                // Full of live offers: make room by dropping the one expiring soonest.
                if let Some(k) = self.offers.iter().min_by_key(|(_, o)| o.expires_at_ms).map(|(k, _)| *k) {
                    self.offers.remove(&k);
                }
            }
        }
        self.offers.insert(offer.provider, offer.clone());
        Ok(offer)
    }

    /// Drops expired offers.
    pub fn expire(&mut self, now_ms: u64) {
        self.offers.retain(|_, o| o.expires_at_ms > now_ms);
    }

    /// Forgets a provider (it left).
    pub fn remove(&mut self, provider: &NodeId) {
        self.offers.remove(provider);
    }

    /// Forgets the provider behind libp2p peer `peer` (its connection
    /// closed), if its offer is held; returns its id. The peer id carries
    /// the node's key, so no second map of peers is kept beside the book.
    pub fn remove_peer(&mut self, peer: &PeerId) -> Option<NodeId> {
        let node = crate::behaviour::node_id(peer)?;
        self.offers.remove(&node).map(|_| node)
    }

    /// Live offers, by provider id.
    pub fn live(&self, now_ms: u64) -> Vec<&Offer> {
        let mut v: Vec<&Offer> = self.offers.values().filter(|o| o.expires_at_ms > now_ms).collect();
        v.sort_by_key(|o| o.provider);
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sharegrid_core::{Amount, Arch, Determinism, GigafuelPerSec, NodeKey, PricePerGfuel, WIRE_VERSION, encode};

    fn offer(key: &NodeKey, seq: u64, expires_at_ms: u64) -> Vec<u8> {
        let o = Offer {
            version: WIRE_VERSION,
            provider: key.id(),
            arch: Arch::X86_64,
            cores: 2,
            memory_bytes: 1 << 30,
            free_slots: 2,
            speed: GigafuelPerSec(10.0),
            price: PricePerGfuel(Amount(5)),
            stake: Amount(0),
            modes: vec![Determinism::Native],
            software: "test".into(),
            seq,
            expires_at_ms,
        };
        encode(&Signed::sign(key, &o).unwrap()).unwrap()
    }

    #[test]
    fn offers_are_kept_newest_first_and_bad_ones_change_nothing() {
        let a = NodeKey::from_seed([1; 32]);
        let b = NodeKey::from_seed([2; 32]);
        let mut book = OfferBook::new(10);
        book.accept(&offer(&a, 1, 100), peer_id(&a.id()), 10).unwrap();
        assert!(matches!(
            book.accept(&offer(&a, 1, 100), peer_id(&a.id()), 10),
            Err(OfferRejection::Stale { .. })
        ));
        book.accept(&offer(&a, 2, 200), None, 10).unwrap();
        assert_eq!(book.live(10)[0].seq, 2);
        let e = book.accept(&offer(&b, 1, 100), peer_id(&a.id()), 10).unwrap_err();
        assert!(matches!(e, OfferRejection::WrongOrigin { .. }) && e.is_misbehaviour());
        let e = book.accept(&offer(&b, 1, 5), peer_id(&b.id()), 10).unwrap_err();
        assert!(matches!(e, OfferRejection::Expired { .. }) && !e.is_misbehaviour());
        let e = book.accept(&[0xa1, 0xff], peer_id(&b.id()), 10).unwrap_err();
        assert!(matches!(e, OfferRejection::Invalid(WireError::Malformed(_))) && e.is_misbehaviour());
        let e = book
            .accept(&vec![0u8; MAX_OFFER_BYTES + 1], peer_id(&b.id()), 10)
            .unwrap_err();
        assert!(matches!(e, OfferRejection::Invalid(WireError::TooLarge { .. })));
        let mut tampered = offer(&b, 1, 100);
        let n = tampered.len();
        tampered[n / 2] ^= 0x01;
        assert!(book.accept(&tampered, peer_id(&b.id()), 10).is_err());
        assert_eq!(book.live(10).len(), 1, "no rejected offer was kept");
        book.expire(300);
        assert!(book.live(300).is_empty());
    }

    #[test]
    fn far_future_or_implausible_offers_cannot_crowd_out_real_ones() {
        let mut book = OfferBook::new(2);
        let now = 1_000_000;
        let real = NodeKey::from_seed([1; 32]);
        book.accept(&offer(&real, 1, now + 90_000), None, now).unwrap();
        // An offer "valid for a century" is kept at most the cap, so it
        // expires before a real one re-published meanwhile.
        let squatter = NodeKey::from_seed([2; 32]);
        let kept = book.accept(&offer(&squatter, 1, u64::MAX), None, now).unwrap();
        assert_eq!(kept.expires_at_ms, now + MAX_OFFER_LIFETIME_MS);
        assert!(book.live(now + MAX_OFFER_LIFETIME_MS).is_empty());
        // Speeds that are not positive finite numbers, and more free slots
        // than cores, are the sender's misbehaviour and never kept.
        let liar = NodeKey::from_seed([3; 32]);
        let absurd = [
            (f64::NAN, 2, 2, 1 << 30),
            (f64::INFINITY, 2, 2, 1 << 30),
            (-1.0, 2, 2, 1 << 30),
            (0.0, 2, 2, 1 << 30),
            (1e9, 2, 2, 1 << 30),
            (10.0, 3, 2, 1 << 30),
            (10.0, 2, u32::MAX, 1 << 30),
            (10.0, 2, 2, u64::MAX),
        ];
        for (speed, free, cores, memory_bytes) in absurd {
            let o = Offer {
                version: WIRE_VERSION,
                provider: liar.id(),
                arch: Arch::X86_64,
                cores,
                memory_bytes,
                free_slots: free,
                speed: GigafuelPerSec(speed),
                price: PricePerGfuel(Amount(5)),
                stake: Amount(0),
                modes: vec![Determinism::Native],
                software: "test".into(),
                seq: 1,
                expires_at_ms: now + 1000,
            };
            let bytes = encode(&Signed::sign(&liar, &o).unwrap()).unwrap();
            let e = book.accept(&bytes, None, now).unwrap_err();
            assert!(
                matches!(e, OfferRejection::Implausible(_)) && e.is_misbehaviour(),
                "{e}"
            );
        }
        assert_eq!(book.live(now).len(), 2);
        // A provider whose connection closed is forgotten by its peer id,
        // which carries its node id.
        assert_eq!(
            crate::behaviour::node_id(&peer_id(&real.id()).unwrap()),
            Some(real.id())
        );
        assert_eq!(book.remove_peer(&peer_id(&real.id()).unwrap()), Some(real.id()));
        assert_eq!(book.remove_peer(&peer_id(&real.id()).unwrap()), None);
        assert_eq!(book.live(now).len(), 1);
    }

    #[test]
    fn the_book_is_bounded() {
        let mut book = OfferBook::new(2);
        for i in 0..5u8 {
            let k = NodeKey::from_seed([i + 10; 32]);
            book.accept(&offer(&k, 1, 100 + u64::from(i)), None, 0).unwrap();
        }
        assert_eq!(book.live(0).len(), 2);
    }
}
