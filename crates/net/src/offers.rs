//! What to do with a gossiped offer: keep it, or drop it with a reason (and
//! count the sender's misbehaviour where the reason is theirs).

use std::collections::HashMap;

use sharegrid_core::{NodeId, Offer, Signed, WireError, decode_capped};

use libp2p::PeerId;

use crate::behaviour::peer_id;
use crate::protocol::MAX_OFFER_BYTES;

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
        matches!(self, OfferRejection::Invalid(_) | OfferRejection::WrongOrigin { .. })
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
    fn the_book_is_bounded() {
        let mut book = OfferBook::new(2);
        for i in 0..5u8 {
            let k = NodeKey::from_seed([i + 10; 32]);
            book.accept(&offer(&k, 1, 100 + u64::from(i)), None, 0).unwrap();
        }
        assert_eq!(book.live(0).len(), 2);
    }
}
