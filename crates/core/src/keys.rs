//! Node identity: ed25519 keys, node ids and signatures.
//!
//! Every signature is over a domain-separated message (`sharegrid/<kind>/1`,
//! a zero byte, then the payload), so a signature made for one kind of
//! message can never be replayed as another. Keys are made from a 32-byte
//! seed the caller supplies: this crate has no randomness; the node draws the
//! seed from the operating system.

use std::fmt;
use std::str::FromStr;

use ed25519_dalek::{Signer, SigningKey, VerifyingKey};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::hash::HashParseError;

/// What a signature is for. Part of every signed message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Domain {
    /// A provider's offer.
    Offer,
    /// A requestor's task assignment.
    Assignment,
    /// A provider's receipt for a task.
    Receipt,
    /// A ledger transaction.
    Transaction,
    /// A ledger block's header.
    Block,
}

impl Domain {
    fn label(self) -> &'static [u8] {
        match self {
            Domain::Offer => b"sharegrid/offer/1",
            Domain::Assignment => b"sharegrid/assignment/1",
            Domain::Receipt => b"sharegrid/receipt/1",
            Domain::Transaction => b"sharegrid/tx/1",
            Domain::Block => b"sharegrid/block/1",
        }
    }

    fn message(self, payload: &[u8]) -> Vec<u8> {
        let label = self.label();
        let mut m = Vec::with_capacity(label.len() + 1 + payload.len());
        m.extend_from_slice(label);
        m.push(0);
        m.extend_from_slice(payload);
        m
    }
}

/// A node's secret key. Its `Debug` shows only the public id.
pub struct NodeKey(SigningKey);

impl NodeKey {
    /// The key with this 32-byte seed (the ed25519 secret key).
    pub fn from_seed(seed: [u8; 32]) -> Self {
        NodeKey(SigningKey::from_bytes(&seed))
    }

    /// The seed, for storing the key (`identity.key`, mode 0600).
    pub fn seed(&self) -> [u8; 32] {
        self.0.to_bytes()
    }

    /// The public id.
    pub fn id(&self) -> NodeId {
        NodeId(self.0.verifying_key().to_bytes())
    }

    /// Signs `payload` for `domain`.
    pub fn sign(&self, domain: Domain, payload: &[u8]) -> Signature {
        Signature(self.0.sign(&domain.message(payload)).to_bytes())
    }
}

impl fmt::Debug for NodeKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "NodeKey({})", self.id().short())
    }
}

/// Why a signature does not verify.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("bad signature: {0}")]
pub struct SignatureError(&'static str);

/// A node's public identity: its ed25519 public key.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct NodeId([u8; 32]);

impl NodeId {
    /// Wraps public key bytes (not checked until used to verify).
    pub const fn from_bytes(bytes: [u8; 32]) -> Self {
        NodeId(bytes)
    }

    /// The public key bytes.
    pub const fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// The first 12 hex digits, for tables and logs.
    pub fn short(&self) -> String {
        hex::encode(&self.0[..6])
    }

    /// Checks that `signature` is this node's over `payload` for `domain`
    /// (strict verification: no malleable or small-order encodings).
    pub fn verify(&self, domain: Domain, payload: &[u8], signature: &Signature) -> Result<(), SignatureError> {
        let key = verifying_key(self)?;
        let sig = ed25519_dalek::Signature::from_bytes(&signature.0);
        key.verify_strict(&domain.message(payload), &sig)
            .map_err(|_| SignatureError("does not match the signer and message"))
    }
}

/// How many decompressed public keys [`verifying_key`] keeps.
const KEY_CACHE: usize = 65_536;

/// `id` as a curve point. Decompressing a public key takes a field square
/// root, a large part of checking one signature, and a ledger sees the same
/// accounts sign again and again, so valid keys are kept (up to
/// [`KEY_CACHE`], then the cache starts over).
fn verifying_key(id: &NodeId) -> Result<VerifyingKey, SignatureError> {
    static CACHE: std::sync::LazyLock<std::sync::Mutex<std::collections::HashMap<[u8; 32], VerifyingKey>>> =
        std::sync::LazyLock::new(Default::default);
    let cache = || CACHE.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    if let Some(key) = cache().get(&id.0) {
        return Ok(*key);
    }
    let key = VerifyingKey::from_bytes(&id.0).map_err(|_| SignatureError("not a valid ed25519 public key"))?;
    let mut keys = cache();
    if keys.len() >= KEY_CACHE {
        keys.clear();
    }
    keys.insert(id.0, key);
    Ok(key)
}

/// Verifies many signatures at once (ed25519-dalek's deterministic batch
/// verification: about twice as fast per signature as one by one). `Ok`
/// means every signature is valid; on `Err` the caller checks them one by
/// one ([`NodeId::verify`]) to find which. Weak (small-order) keys are
/// refused as strict verification refuses them. Unlike strict verification
/// the batch equation is cofactored, so a signature with a small-order
/// component that strict verification refuses could pass here; no honest
/// signer makes one, and every node checking a block uses this same path,
/// so they agree.
pub fn verify_batch(items: &[(NodeId, Domain, &[u8], Signature)]) -> Result<(), SignatureError> {
    if items.is_empty() {
        return Ok(());
    }
    let mut keys = Vec::with_capacity(items.len());
    let mut messages = Vec::with_capacity(items.len());
    let mut sigs = Vec::with_capacity(items.len());
    for (id, domain, payload, sig) in items {
        let key = verifying_key(id)?;
        if key.is_weak() {
            return Err(SignatureError("a weak (small-order) public key"));
        }
        keys.push(key);
        messages.push(domain.message(payload));
        sigs.push(ed25519_dalek::Signature::from_bytes(&sig.0));
    }
    let refs: Vec<&[u8]> = messages.iter().map(Vec::as_slice).collect();
    ed25519_dalek::verify_batch(&refs, &sigs, &keys)
        .map_err(|_| SignatureError("a signature in the batch does not match"))
}

impl fmt::Display for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex::encode(self.0))
    }
}

impl fmt::Debug for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "NodeId({})", self.short())
    }
}

impl FromStr for NodeId {
    type Err = HashParseError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        // Same shape as a hash: 64 hex digits.
        let h: crate::ContentId = s.parse()?;
        Ok(NodeId(*h.as_bytes()))
    }
}

impl Serialize for NodeId {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_string())
    }
}

impl<'de> Deserialize<'de> for NodeId {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d)?.parse().map_err(serde::de::Error::custom)
    }
}

/// An ed25519 signature.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Signature([u8; 64]);

impl Signature {
    /// Wraps raw signature bytes.
    pub const fn from_bytes(bytes: [u8; 64]) -> Self {
        Signature(bytes)
    }

    /// The raw bytes.
    pub const fn as_bytes(&self) -> &[u8; 64] {
        &self.0
    }
}

impl fmt::Debug for Signature {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Signature({}..)", hex::encode(&self.0[..6]))
    }
}

impl Serialize for Signature {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bytes(&self.0)
    }
}

impl<'de> Deserialize<'de> for Signature {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = Signature;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("64 signature bytes")
            }
            fn visit_bytes<E: serde::de::Error>(self, v: &[u8]) -> Result<Signature, E> {
                let b: [u8; 64] = v.try_into().map_err(|_| E::invalid_length(v.len(), &self))?;
                Ok(Signature(b))
            }
        }
        d.deserialize_bytes(V)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_bind_signer_domain_and_payload() {
        let key = NodeKey::from_seed([7; 32]);
        let other = NodeKey::from_seed([8; 32]);
        let sig = key.sign(Domain::Offer, b"payload");
        key.id().verify(Domain::Offer, b"payload", &sig).unwrap();
        assert!(key.id().verify(Domain::Offer, b"payloaD", &sig).is_err());
        assert!(
            key.id().verify(Domain::Receipt, b"payload", &sig).is_err(),
            "domain separation"
        );
        assert!(other.id().verify(Domain::Offer, b"payload", &sig).is_err());
        assert_eq!(NodeKey::from_seed(key.seed()).id(), key.id());
        assert!(
            !format!("{key:?}").contains(&hex::encode(key.seed())),
            "Debug must not leak the secret"
        );
        let id: NodeId = key.id().to_string().parse().unwrap();
        assert_eq!(id, key.id());
    }

    #[test]
    fn batches_verify_exactly_when_every_signature_does() {
        let keys: Vec<NodeKey> = (0..8u8).map(|i| NodeKey::from_seed([i + 1; 32])).collect();
        let payloads: Vec<Vec<u8>> = (0..8u8).map(|i| vec![i; 10]).collect();
        let mut items: Vec<(NodeId, Domain, &[u8], Signature)> = keys
            .iter()
            .zip(&payloads)
            .map(|(k, p)| {
                (
                    k.id(),
                    Domain::Transaction,
                    p.as_slice(),
                    k.sign(Domain::Transaction, p),
                )
            })
            .collect();
        verify_batch(&items).unwrap();
        verify_batch(&[]).unwrap();
        // One wrong signer, one wrong domain: the batch fails.
        let mut bad = items.clone();
        bad[3].0 = keys[4].id();
        assert!(verify_batch(&bad).is_err());
        items[5].1 = Domain::Receipt;
        assert!(verify_batch(&items).is_err());
    }
}
