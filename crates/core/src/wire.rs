//! Messages whose content money or results depend on, and their signed
//! envelopes: a provider's [`Offer`], a requestor's [`Assignment`] and a
//! provider's [`Receipt`].
//!
//! Bodies are CBOR (the encoding libp2p's request-response `cbor` codec uses)
//! of the structs below, with fields in declaration order and no maps, so a
//! value has exactly one encoding and the signature covers those bytes. A
//! [`Signed`] envelope keeps the body bytes as signed; verification checks
//! the size cap *before* decoding anything, then the signature, then that the
//! signer is the party the message names. Nothing here does I/O or reads a
//! clock: expiry checks take `now` from the caller.

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::amount::{Amount, PricePerGfuel};
use crate::hash::{ContentId, ResultHash};
use crate::ids::TaskId;
use crate::keys::{Domain, NodeId, NodeKey, Signature};
use crate::launch::Launch;
use crate::limits::{Determinism, Limits};
use crate::outcome::Outcome;
use crate::units::{Fuel, GigafuelPerSec};

/// Version of the messages in this module.
pub const WIRE_VERSION: u16 = 2;

/// The architecture class replicas in `native` mode must share.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Arch {
    /// x86-64.
    X86_64,
    /// 64-bit ARM.
    Aarch64,
    /// 64-bit RISC-V.
    Riscv64,
    /// Anything else (still usable in `portable` mode).
    Other,
}

impl Arch {
    /// The architecture this binary was built for.
    pub fn host() -> Arch {
        match std::env::consts::ARCH {
            "x86_64" => Arch::X86_64,
            "aarch64" => Arch::Aarch64,
            "riscv64" => Arch::Riscv64,
            _ => Arch::Other,
        }
    }
}

/// What a provider offers, gossiped on the `offers` topic.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Offer {
    /// Message version ([`WIRE_VERSION`]).
    pub version: u16,
    /// The provider (also the signer).
    pub provider: NodeId,
    /// Architecture class.
    pub arch: Arch,
    /// Cores given to tasks.
    pub cores: u32,
    /// Memory given to tasks, in bytes.
    pub memory_bytes: u64,
    /// Task slots free now.
    pub free_slots: u32,
    /// Measured speed on the standard kernel.
    pub speed: GigafuelPerSec,
    /// Price asked.
    pub price: PricePerGfuel,
    /// Stake bonded on the ledger, as the provider states it: whoever reads
    /// the offer checks it against the ledger.
    pub stake: Amount,
    /// Determinism modes accepted.
    pub modes: Vec<Determinism>,
    /// Software version, e.g. `sharegrid 0.1.0`.
    pub software: String,
    /// Increases with every new offer from this provider; a lower one is stale.
    pub seq: u64,
    /// Milliseconds since the Unix epoch after which the offer is void.
    pub expires_at_ms: u64,
}

/// A task sent to one provider, signed by the requestor.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Assignment {
    /// Message version.
    pub version: u16,
    /// The network whose ledger pays for it: its genesis hash, so that an
    /// assignment (and the receipt that names it) is worth nothing on any
    /// other network.
    pub chain: ContentId,
    /// The task.
    pub task: TaskId,
    /// Who asks (the signer) and pays.
    pub requestor: NodeId,
    /// Who is asked.
    pub provider: NodeId,
    /// The module, fetched as a blob.
    pub module: ContentId,
    /// Arguments.
    pub args: Vec<String>,
    /// Stdin, fetched as a blob.
    pub stdin: ContentId,
    /// Input files under `/in`: (path, blob), sorted by path.
    pub inputs: Vec<(String, ContentId)>,
    /// Limits.
    pub limits: Limits,
    /// Determinism mode.
    pub mode: Determinism,
    /// The entry, environment and declared host imports (absent on the
    /// wire when default, so a plain command's assignment encodes as it
    /// always did).
    #[serde(default, skip_serializing_if = "Launch::is_default")]
    pub launch: Launch,
    /// Read-only files at absolute guest paths: (path, blob), sorted.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub mounts: Vec<(String, ContentId)>,
    /// Price agreed for this task.
    pub price: PricePerGfuel,
    /// Milliseconds since the Unix epoch after which the provider must not start it.
    pub expires_at_ms: u64,
    /// The job's escrow on the ledger that pays for it (none: paid outside
    /// the ledger, e.g. `run --on`). A provider claims from this escrow if
    /// the requestor does not settle.
    pub escrow: Option<ContentId>,
}

/// What a provider returns for an assignment it ran, signed by the provider.
/// It binds the task, the exact assignment, the result, the fuel and the
/// charge, so it can later serve as evidence for payment or for slashing.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Receipt {
    /// Message version.
    pub version: u16,
    /// The task.
    pub task: TaskId,
    /// The provider (the signer).
    pub provider: NodeId,
    /// BLAKE3 of the signed assignment's body: which request this answers.
    pub assignment: ContentId,
    /// How the run ended.
    pub outcome: Outcome,
    /// Hash of the result in its canonical encoding.
    pub result: ResultHash,
    /// Fuel used.
    pub fuel: Fuel,
    /// Price applied (the assignment's).
    pub price: PricePerGfuel,
    /// `price.cost(fuel)`.
    pub charge: Amount,
}

/// Why a message was refused. Each names what was wrong; none changes state.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum WireError {
    /// Larger than the cap for its kind; not decoded at all.
    #[error("message of {len} bytes exceeds the {max}-byte cap")]
    TooLarge {
        /// Its size.
        len: usize,
        /// The cap.
        max: usize,
    },
    /// Not valid CBOR for the expected message.
    #[error("malformed message: {0}")]
    Malformed(String),
    /// The signature does not verify.
    #[error("bad signature on {kind}")]
    BadSignature {
        /// Message kind.
        kind: &'static str,
    },
    /// Signed by someone other than the party the message names.
    #[error("{kind} names {named} but is signed by {signer}")]
    WrongSigner {
        /// Message kind.
        kind: &'static str,
        /// Who the message says it is from.
        named: String,
        /// Who signed it.
        signer: String,
    },
    /// A version this node does not speak.
    #[error("{kind} version {got} is not supported (this node speaks {WIRE_VERSION})")]
    Version {
        /// Message kind.
        kind: &'static str,
        /// The version received.
        got: u16,
    },
    /// Could not be encoded (a bug, never the peer's doing).
    #[error("cannot encode: {0}")]
    Encode(String),
}

/// A message that travels signed.
pub trait SignedMessage: Serialize + DeserializeOwned {
    /// Its signature domain.
    const DOMAIN: Domain;
    /// Its name in errors.
    const KIND: &'static str;
    /// Who must have signed it.
    fn signer(&self) -> NodeId;
    /// Its version field.
    fn version(&self) -> u16;
}

impl SignedMessage for Offer {
    const DOMAIN: Domain = Domain::Offer;
    const KIND: &'static str = "offer";
    fn signer(&self) -> NodeId {
        self.provider
    }
    fn version(&self) -> u16 {
        self.version
    }
}

impl SignedMessage for Assignment {
    const DOMAIN: Domain = Domain::Assignment;
    const KIND: &'static str = "assignment";
    fn signer(&self) -> NodeId {
        self.requestor
    }
    fn version(&self) -> u16 {
        self.version
    }
}

impl SignedMessage for Receipt {
    const DOMAIN: Domain = Domain::Receipt;
    const KIND: &'static str = "receipt";
    fn signer(&self) -> NodeId {
        self.provider
    }
    fn version(&self) -> u16 {
        self.version
    }
}

/// CBOR of `value`.
pub fn encode<T: Serialize>(value: &T) -> Result<Vec<u8>, WireError> {
    cbor4ii::serde::to_vec(Vec::new(), value).map_err(|e| WireError::Encode(e.to_string()))
}

/// Decodes `bytes` as a `T`, refusing anything over `max` bytes before
/// looking at it.
pub fn decode_capped<T: DeserializeOwned>(bytes: &[u8], max: usize) -> Result<T, WireError> {
    if bytes.len() > max {
        return Err(WireError::TooLarge { len: bytes.len(), max });
    }
    cbor4ii::serde::from_slice(bytes).map_err(|e| WireError::Malformed(e.to_string()))
}

/// A signed message: the body bytes exactly as signed, the signer and the
/// signature.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Signed {
    /// CBOR of the message.
    #[serde(with = "crate::bytes_serde")]
    pub body: Vec<u8>,
    /// Who signed.
    pub signer: NodeId,
    /// Signature over the body, in the message's domain.
    pub signature: Signature,
}

impl Signed {
    /// Encodes and signs `message` with `key`. The key must be the party the
    /// message names.
    pub fn sign<T: SignedMessage>(key: &NodeKey, message: &T) -> Result<Signed, WireError> {
        let body = encode(message)?;
        let signature = key.sign(T::DOMAIN, &body);
        Ok(Signed {
            body,
            signer: key.id(),
            signature,
        })
    }

    /// Hash of the body: how a receipt refers to its assignment.
    pub fn id(&self) -> ContentId {
        ContentId::of(&self.body)
    }

    /// Checks size, signature, version and signer, then returns the message.
    pub fn open<T: SignedMessage>(&self, max: usize) -> Result<T, WireError> {
        if self.body.len() > max {
            return Err(WireError::TooLarge {
                len: self.body.len(),
                max,
            });
        }
        self.signer
            .verify(T::DOMAIN, &self.body, &self.signature)
            .map_err(|_| WireError::BadSignature { kind: T::KIND })?;
        self.open_verified(max)
    }

    /// [`Signed::open`] without the signature check, for a caller that has
    /// verified this signature already (in a batch, [`crate::verify_batch`]).
    pub fn open_verified<T: SignedMessage>(&self, max: usize) -> Result<T, WireError> {
        let message: T = decode_capped(&self.body, max)?;
        if message.version() != WIRE_VERSION {
            return Err(WireError::Version {
                kind: T::KIND,
                got: message.version(),
            });
        }
        if message.signer() != self.signer {
            return Err(WireError::WrongSigner {
                kind: T::KIND,
                named: message.signer().to_string(),
                signer: self.signer.to_string(),
            });
        }
        Ok(message)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn offer(provider: NodeId) -> Offer {
        Offer {
            version: WIRE_VERSION,
            provider,
            arch: Arch::X86_64,
            cores: 4,
            memory_bytes: 8 << 30,
            free_slots: 2,
            speed: GigafuelPerSec(12.5),
            price: PricePerGfuel(Amount(1000)),
            stake: Amount(0),
            modes: vec![Determinism::Native, Determinism::Portable],
            software: "sharegrid 0.1.0".into(),
            seq: 1,
            expires_at_ms: 1_000_000,
        }
    }

    #[test]
    fn signed_messages_round_trip_through_cbor() {
        let key = NodeKey::from_seed([1; 32]);
        let signed = Signed::sign(&key, &offer(key.id())).unwrap();
        let wire = encode(&signed).unwrap();
        let back: Signed = decode_capped(&wire, 4096).unwrap();
        assert_eq!(back.open::<Offer>(4096).unwrap(), offer(key.id()));
        // Encoding is deterministic: the same message, the same bytes.
        assert_eq!(Signed::sign(&key, &offer(key.id())).unwrap().body, signed.body);
    }

    #[test]
    fn tampering_oversize_garbage_and_impersonation_are_refused() {
        let key = NodeKey::from_seed([1; 32]);
        let mallory = NodeKey::from_seed([2; 32]);
        let mut signed = Signed::sign(&key, &offer(key.id())).unwrap();
        // Oversized: refused before decoding or verifying.
        assert!(matches!(signed.open::<Offer>(10), Err(WireError::TooLarge { .. })));
        assert!(matches!(
            decode_capped::<Signed>(&[0u8; 100], 50),
            Err(WireError::TooLarge { len: 100, max: 50 })
        ));
        // Garbage.
        assert!(matches!(
            decode_capped::<Signed>(&[0xff, 0x00, 0x13], 50),
            Err(WireError::Malformed(_))
        ));
        // A flipped bit in the body.
        let last = signed.body.len() - 1;
        signed.body[last] ^= 1;
        assert_eq!(
            signed.open::<Offer>(4096),
            Err(WireError::BadSignature { kind: "offer" })
        );
        // Mallory signs an offer that names someone else.
        let forged = Signed::sign(&mallory, &offer(key.id())).unwrap();
        assert!(matches!(forged.open::<Offer>(4096), Err(WireError::WrongSigner { .. })));
        // A valid offer signature is not a valid receipt signature.
        let good = Signed::sign(&key, &offer(key.id())).unwrap();
        assert!(matches!(
            good.open::<Receipt>(4096),
            Err(WireError::BadSignature { .. })
        ));
        // An unknown version.
        let mut future = offer(key.id());
        future.version = 99;
        let signed = Signed::sign(&key, &future).unwrap();
        assert_eq!(
            signed.open::<Offer>(4096),
            Err(WireError::Version { kind: "offer", got: 99 })
        );
    }

    #[test]
    fn receipts_bind_the_assignment() {
        let requestor = NodeKey::from_seed([3; 32]);
        let provider = NodeKey::from_seed([4; 32]);
        let assignment = Assignment {
            version: WIRE_VERSION,
            chain: ContentId::of(b"network"),
            task: TaskId::from_bytes([5; 32]),
            requestor: requestor.id(),
            provider: provider.id(),
            module: ContentId::of(b"module"),
            args: vec!["1".into()],
            stdin: ContentId::of(b""),
            inputs: vec![("a.txt".into(), ContentId::of(b"a"))],
            limits: Limits::default(),
            mode: Determinism::Native,
            launch: Default::default(),
            mounts: Vec::new(),
            price: PricePerGfuel(Amount(500)),
            expires_at_ms: 10,
            escrow: None,
        };
        let signed_assignment = Signed::sign(&requestor, &assignment).unwrap();
        let opened: Assignment = signed_assignment.open(1 << 20).unwrap();
        let fuel = Fuel(3_000_000_000);
        let receipt = Receipt {
            version: WIRE_VERSION,
            task: opened.task,
            provider: provider.id(),
            assignment: signed_assignment.id(),
            outcome: Outcome::Completed { exit_code: 0 },
            result: ResultHash::from_bytes([6; 32]),
            fuel,
            price: opened.price,
            charge: opened.price.cost(fuel).unwrap(),
        };
        let signed_receipt = Signed::sign(&provider, &receipt).unwrap();
        let r: Receipt = signed_receipt.open(4096).unwrap();
        assert_eq!(r.assignment, ContentId::of(&signed_assignment.body));
        assert_eq!(r.charge, Amount(1500));
    }
}
