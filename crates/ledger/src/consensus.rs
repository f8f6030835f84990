//! The ledger's side of BFT ordering: who votes, and what their signatures
//! prove.
//!
//! Validators order blocks with commonware's Simplex (the `sharegrid-bft`
//! crate drives it). This module holds what the ledger itself must check,
//! purely: the participant set (the genesis's validators, whose node ids are
//! their ed25519 vote keys), the namespace votes sign under (bound to the
//! genesis hash), finalization certificates (what a follower accepts a block
//! on), and equivocation evidence (two conflicting signed votes from one
//! validator), which [`crate::Op::Equivocation`] turns into a slash.

use commonware_codec::DecodeExt;
use commonware_cryptography::ed25519;
use commonware_utils::ordered::Set;
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng as _;
use sharegrid_core::{ContentId, NodeId};

/// The voting scheme: ed25519 signatures, each attributable to its
/// validator (certificates are the quorum's signatures).
pub type Scheme = commonware_consensus::simplex::scheme::ed25519::Scheme;
/// A payload digest: a block's hash (BLAKE3 of its header).
pub type Digest = commonware_cryptography::blake3::Digest;
/// A validator's key in the engine: the same ed25519 key as its node id.
pub type PublicKey = ed25519::PublicKey;
/// What the engine reports.
pub type Activity = commonware_consensus::simplex::types::Activity<Scheme, Digest>;
/// A finalization certificate.
pub type Finalization = commonware_consensus::simplex::types::Finalization<Scheme, Digest>;

/// The namespace every vote of network `chain` signs under.
pub fn namespace(chain: &ContentId) -> Vec<u8> {
    let mut ns = b"sharegrid/consensus/1/".to_vec();
    ns.extend_from_slice(chain.as_bytes());
    ns
}

/// A block hash as the engine's digest.
pub fn digest(hash: &ContentId) -> Digest {
    commonware_cryptography::blake3::Digest(*hash.as_bytes())
}

/// The engine's digest as a block hash.
pub fn block_hash(digest: &Digest) -> ContentId {
    ContentId::from_bytes(digest.0)
}

/// A node id as the engine's public key, `None` if the bytes are not a
/// valid ed25519 point.
pub fn public_key(id: &NodeId) -> Option<PublicKey> {
    use commonware_codec::DecodeExt as _;
    PublicKey::decode(commonware_codec::Copying(&id.as_bytes()[..])).ok()
}

/// The engine's public key as a node id.
pub fn node_id(key: &PublicKey) -> NodeId {
    let bytes: &[u8] = key.as_ref();
    let mut out = [0u8; 32];
    out.copy_from_slice(&bytes[..32]);
    NodeId::from_bytes(out)
}

/// The participant set: the validators' keys, ordered. `Err` names a
/// validator whose id is not a valid key, or a duplicate.
pub fn participants(validators: &[NodeId]) -> Result<Set<PublicKey>, String> {
    let mut keys = Vec::with_capacity(validators.len());
    for v in validators {
        keys.push(public_key(v).ok_or_else(|| format!("validator {} is not a valid ed25519 key", v.short()))?);
    }
    Set::from_iter_dedup(keys.iter().cloned())
        .len()
        .eq(&keys.len())
        .then(|| Set::from_iter_dedup(keys))
        .ok_or_else(|| "the validator set names a validator twice".to_string())
}

/// A verifier of network `chain`'s certificates and votes.
pub fn verifier(chain: &ContentId, validators: &[NodeId]) -> Result<Scheme, String> {
    Ok(Scheme::verifier(&namespace(chain), participants(validators)?))
}

/// Most validators a certificate may carry signatures of (the decode bound).
pub const MAX_VALIDATORS: usize = 1024;

/// Decodes a stored or received finalization certificate.
pub fn decode_finalization(bytes: &[u8]) -> Result<Finalization, String> {
    use commonware_codec::Decode as _;
    Finalization::decode_cfg(commonware_codec::Copying(bytes), &MAX_VALIDATORS)
        .map_err(|e| format!("finalization certificate does not decode: {e}"))
}

/// Checks that `bytes` is a finalization certificate of network `chain`'s
/// validators for the block `hash`.
pub fn check_finalization(
    chain: &ContentId,
    validators: &[NodeId],
    hash: &ContentId,
    bytes: &[u8],
) -> Result<u64, String> {
    let f = decode_finalization(bytes)?;
    if f.proposal.payload != digest(hash) {
        return Err(format!(
            "finalization certificate is for another block than {}",
            hash.short()
        ));
    }
    let scheme = verifier(chain, validators)?;
    let mut rng = rng_for(bytes);
    if !f.verify(&mut rng, &scheme, &commonware_parallel::Sequential) {
        return Err("finalization certificate does not verify against the validator set".into());
    }
    use commonware_consensus::Viewable as _;
    Ok(f.view().get())
}

/// A deterministic generator for batch verification, seeded by the hash of
/// what is verified (Fiat–Shamir: the verifier's coefficients depend on
/// every byte, so no signer can choose signatures that cancel out). The
/// ledger uses no other randomness.
pub fn rng_for(bytes: &[u8]) -> ChaCha20Rng {
    ChaCha20Rng::from_seed(*blake3::hash(bytes).as_bytes())
}

/// Most bytes of equivocation evidence (two votes and a tag).
pub const MAX_EQUIVOCATION_BYTES: usize = 1024;

/// A validator caught signing two conflicting votes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Equivocation {
    /// Who signed both.
    pub offender: NodeId,
    /// The view they conflict in.
    pub view: u64,
}

const CONFLICTING_NOTARIZE: u8 = 0;
const CONFLICTING_FINALIZE: u8 = 1;
const NULLIFY_FINALIZE: u8 = 2;

/// The evidence bytes of an engine report that proves a validator
/// equivocated (two notarizes or two finalizes for different blocks in one
/// view, or a nullify and a finalize in one view); `None` for any other
/// report.
pub fn encode_evidence(activity: &Activity) -> Option<Vec<u8>> {
    use commonware_codec::Encode as _;
    let (tag, body) = match activity {
        Activity::ConflictingNotarize(c) => (CONFLICTING_NOTARIZE, c.encode()),
        Activity::ConflictingFinalize(c) => (CONFLICTING_FINALIZE, c.encode()),
        Activity::NullifyFinalize(c) => (NULLIFY_FINALIZE, c.encode()),
        _ => return None,
    };
    let mut out = vec![tag];
    out.extend_from_slice(&body);
    Some(out)
}

/// Decoded equivocation evidence, one of the engine's three kinds.
enum Conflict {
    Notarize(commonware_consensus::simplex::types::ConflictingNotarize<Scheme, Digest>),
    Finalize(commonware_consensus::simplex::types::ConflictingFinalize<Scheme, Digest>),
    NullifyFinalize(commonware_consensus::simplex::types::NullifyFinalize<Scheme, Digest>),
}

impl Conflict {
    /// The evidence bytes [`encode_evidence`] makes (a kind tag, then the
    /// engine's encoding), decoded; signatures not checked.
    fn decode(bytes: &[u8]) -> Result<Conflict, String> {
        if bytes.len() > MAX_EQUIVOCATION_BYTES {
            return Err(format!(
                "evidence of {} bytes is over {MAX_EQUIVOCATION_BYTES}",
                bytes.len()
            ));
        }
        let (tag, body) = bytes.split_first().ok_or("empty evidence")?;
        let body = commonware_codec::Copying(body);
        let bad = |e: commonware_codec::Error| format!("evidence does not decode: {e}");
        Ok(match *tag {
            CONFLICTING_NOTARIZE => Conflict::Notarize(DecodeExt::decode(body).map_err(bad)?),
            CONFLICTING_FINALIZE => Conflict::Finalize(DecodeExt::decode(body).map_err(bad)?),
            NULLIFY_FINALIZE => Conflict::NullifyFinalize(DecodeExt::decode(body).map_err(bad)?),
            other => return Err(format!("unknown evidence kind {other}")),
        })
    }

    /// The signer's place in the participant set, and the view.
    fn signer_and_view(&self) -> (usize, u64) {
        use commonware_consensus::{Viewable as _, simplex::types::Attributable as _};
        let (signer, view) = match self {
            Conflict::Notarize(c) => (c.signer(), c.view()),
            Conflict::Finalize(c) => (c.signer(), c.view()),
            Conflict::NullifyFinalize(c) => (c.signer(), c.view()),
        };
        (usize::try_from(signer.get()).unwrap_or(usize::MAX), view.get())
    }

    /// Whether both votes' signatures verify against `scheme`.
    fn verify(&self, rng: &mut ChaCha20Rng, scheme: &Scheme) -> bool {
        let strategy = commonware_parallel::Sequential;
        match self {
            Conflict::Notarize(c) => c.verify(rng, scheme, &strategy),
            Conflict::Finalize(c) => c.verify(rng, scheme, &strategy),
            Conflict::NullifyFinalize(c) => c.verify(rng, scheme, &strategy),
        }
    }
}

/// Checks equivocation evidence against network `chain`'s validators: both
/// votes decode, are signed by the same validator in the same view, and
/// conflict. Returns who and when.
pub fn check_evidence(chain: &ContentId, validators: &[NodeId], bytes: &[u8]) -> Result<Equivocation, String> {
    use commonware_cryptography::certificate::Scheme as _;
    let conflict = Conflict::decode(bytes)?;
    let scheme = verifier(chain, validators)?;
    if !conflict.verify(&mut rng_for(bytes), &scheme) {
        return Err("evidence signatures do not verify against the validator set".into());
    }
    let (signer, view) = conflict.signer_and_view();
    let key = scheme.participants().get(signer).ok_or("evidence names no validator")?;
    Ok(Equivocation {
        offender: node_id(key),
        view,
    })
}

/// Who evidence accuses among `validators`, read without checking
/// signatures (for history and display; [`check_evidence`] is what the
/// ledger applies).
pub fn offender(validators: &[NodeId], bytes: &[u8]) -> Option<NodeId> {
    let (signer, _) = Conflict::decode(bytes).ok()?.signer_and_view();
    participants(validators).ok()?.get(signer).map(node_id)
}

impl crate::State {
    /// Slashes a validator proven to have signed conflicting votes: its
    /// stake loses `slash_bps`, the reporter (unless it is the offender)
    /// gets `reporter_bps` of that, the treasury the rest. A validator
    /// without stake is recorded all the same.
    pub(crate) fn plan_equivocation(
        &self,
        reporter: NodeId,
        evidence: &[u8],
    ) -> Result<crate::state::Planned, crate::Rejection> {
        use crate::Rejection;
        use crate::state::{Effect, Move, Planned, share};
        use sharegrid_core::Amount;
        let validators: Vec<NodeId> = self.validators.iter().copied().collect();
        let e = check_evidence(&self.chain, &validators, evidence).map_err(Rejection::Evidence)?;
        let key = (e.offender, e.view);
        if self.equivocations.contains(&key) {
            return Err(Rejection::Evidence(format!(
                "{} was punished for view {} already",
                e.offender.short(),
                e.view
            )));
        }
        let cut = share(self.slashable(&e.offender), self.params.slash_bps)?;
        let to_reporter = if reporter == e.offender {
            0
        } else {
            share(cut, self.params.reporter_bps)?
        };
        let mut moves = vec![Move::Record(key)];
        if cut > 0 {
            moves.push(Move::Slash(e.offender, Amount(cut)));
            moves.push(Move::Credit(reporter, Amount(to_reporter)));
            moves.push(Move::Credit(self.params.treasury, Amount(cut - to_reporter)));
        }
        Ok(Planned {
            spend: Amount(0),
            incoming: Amount(to_reporter),
            effect: Effect::Moves(moves),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Allocation, Genesis, Op, Params, Rejection, State, TX_VERSION, Tx};
    use sharegrid_core::{Amount, NodeKey, Signed};

    fn genesis() -> (Genesis, NodeKey) {
        let v = NodeKey::from_seed([1; 32]);
        let g = Genesis {
            validators: vec![v.id(), NodeKey::from_seed([2; 32]).id()],
            params: Params::new(NodeKey::from_seed([3; 32]).id(), 0, Amount(1)),
            balances: vec![Allocation {
                account: v.id(),
                amount: Amount(10),
            }],
            stakes: vec![Allocation {
                account: v.id(),
                amount: Amount(100),
            }],
        };
        (g, v)
    }

    #[test]
    fn malformed_evidence_is_refused_and_changes_nothing() {
        let (g, v) = genesis();
        let mut state = State::genesis(&g).unwrap();
        assert_eq!(state.supply(), 110, "genesis stake counts in the supply");
        let before = state.root();
        for evidence in [vec![], vec![0; 10], vec![9; 40], vec![0; MAX_EQUIVOCATION_BYTES + 1]] {
            let tx = Signed::sign(
                &v,
                &Tx {
                    version: TX_VERSION,
                    chain: state.chain,
                    signer: v.id(),
                    nonce: 0,
                    fee: Amount(1),
                    expires_at_height: 10,
                    op: Op::Equivocation { evidence },
                },
            )
            .unwrap();
            let why = state.apply(&tx, 1).unwrap_err();
            assert!(matches!(why, Rejection::Evidence(_)), "{why}");
            assert_eq!(state.root(), before);
        }
    }

    #[test]
    fn a_genesis_whose_validators_are_not_keys_or_repeat_is_refused() {
        let (mut g, _) = genesis();
        g.validators.push(g.validators[0]);
        assert!(State::genesis(&g).unwrap_err().contains("twice"));
        let (mut g, _) = genesis();
        g.stakes.push(g.stakes[0].clone());
        assert!(State::genesis(&g).unwrap_err().contains("stakes"));
    }
}
