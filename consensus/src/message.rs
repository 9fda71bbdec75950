//! Consensus messages, their signatures, their wire encoding, and the two certificates
//! (prepared and commit).
//!
//! # What is signed
//!
//! Every signature is ed25519 (`verify_strict`) over the SHA-256 of a domain tag followed
//! by fixed-width little-endian fields, so a signature of one kind can never be replayed as
//! another kind, and a signature never depends on how serde lays out a struct:
//!
//! | kind | tag | fields |
//! |---|---|---|
//! | proposal | `interpool/consensus/v1/proposal` | height `u64`, round `u32`, the payload's digest (`Digest::of`) |
//! | prepare | `interpool/consensus/v1/prepare` | height, round, digest |
//! | commit | `interpool/consensus/v1/commit` | height, round, digest |
//! | round change | `interpool/consensus/v1/round-change` | height, round, `0` or `1` ‖ prepared round ‖ prepared digest |
//!
//! Attachments that verify on their own are not covered by the sender's signature: the
//! round-change justification of a proposal (each round change is signed by its sender),
//! the prepared certificate of a round change (its digest and round are signed, its PREPAREs
//! are signed by their senders) and the payload a round change carries (checked against
//! the signed digest).
//!
//! # Wire encoding
//!
//! bincode 1.3 with `DefaultOptions` (little-endian, varint integers, length-prefixed
//! sequences), `reject_trailing_bytes`, a byte limit checked before decoding, and a
//! re-encoding check so every message has exactly one valid encoding.

use bincode::Options;
use ed25519_dalek::{Signer, SigningKey};
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};
use thiserror::Error;

use crate::types::{
    ChainDomain, Digest, Height, PublicKey, Round, Signature, ValidatorSet, MAX_VALIDATORS,
};

/// Largest payload a proposal may carry (8 MiB).
pub const MAX_PAYLOAD_BYTES: usize = 8 << 20;

/// Largest encoded [`SignedMessage`]: a maximal payload plus room for a full round-change
/// justification of [`MAX_VALIDATORS`] round changes, each with a prepared certificate.
pub const MAX_MESSAGE_BYTES: usize = message_bound(MAX_VALIDATORS);

/// Largest encoded [`SignedMessage`] among `validators` validators: a maximal payload and a
/// round-change justification of `validators` round changes, each with a prepared
/// certificate of `validators` signatures (a transport must carry at least this much).
#[allow(clippy::arithmetic_side_effects)] // validator sets hold at most MAX_VALIDATORS
pub const fn message_bound(validators: usize) -> usize {
    MAX_PAYLOAD_BYTES + 2 * validators * validators * 100 + 4096
}

/// Largest encoded [`CommitCertificate`]: a vote and a signature from each of
/// [`MAX_VALIDATORS`] validators (a key and a signature, 96 bytes, plus framing).
pub const MAX_CERTIFICATE_BYTES: usize = 128 + MAX_VALIDATORS * 100;

const TAG_PROPOSAL: &[u8] = b"interpool/consensus/v1/proposal";
const TAG_PREPARE: &[u8] = b"interpool/consensus/v1/prepare";
const TAG_COMMIT: &[u8] = b"interpool/consensus/v1/commit";
const TAG_ROUND_CHANGE: &[u8] = b"interpool/consensus/v1/round-change";

/// A PREPARE or COMMIT: "I vote for `digest` at `(height, round)`".
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Vote {
    /// Height voted on.
    #[cfg_attr(feature = "openapi", schema(value_type = u64))]
    pub height: Height,
    /// Round voted in.
    #[cfg_attr(feature = "openapi", schema(value_type = u32))]
    pub round: Round,
    /// Digest of the payload voted for.
    pub digest: Digest,
}

/// A PROPOSAL: the proposer of `(height, round)` puts `payload` up for a vote.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Proposal {
    /// Height proposed for.
    pub height: Height,
    /// Round proposed in.
    pub round: Round,
    /// The opaque payload (a block, for the node).
    #[serde(with = "crate::types::byte_string")]
    pub payload: Vec<u8>,
    /// For `round > 0`: a quorum of ROUND-CHANGEs for `(height, round)` that justify this
    /// proposal (QBFT round-change justification). Empty for round 0.
    pub justification: Vec<SignedRoundChange>,
}

/// `2f + 1` PREPARE signatures for one `(height, round, digest)`: proof that a quorum
/// accepted the proposal, carried in ROUND-CHANGEs so that a new proposer re-proposes it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PreparedCertificate {
    /// What was prepared.
    pub vote: Vote,
    /// PREPARE signatures, sorted by validator index.
    pub signatures: Vec<(PublicKey, Signature)>,
}

/// `2f + 1` COMMIT signatures for one `(height, round, digest)`: proof of finality that
/// anyone holding the validator set can check with [`CommitCertificate::verify`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CommitCertificate {
    /// What was committed.
    pub vote: Vote,
    /// COMMIT signatures, sorted by validator index.
    #[cfg_attr(
        feature = "openapi",
        schema(schema_with = crate::types::openapi::signatures)
    )]
    pub signatures: Vec<(PublicKey, Signature)>,
}

/// The signed part of a ROUND-CHANGE.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoundChange {
    /// Height of the round change.
    pub height: Height,
    /// The round the sender moves to.
    pub round: Round,
    /// The sender's highest prepared certificate at this height (its lock), if any.
    pub prepared: Option<PreparedCertificate>,
}

/// A ROUND-CHANGE with its signature, as carried in a proposal's justification.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignedRoundChange {
    /// The round change.
    pub round_change: RoundChange,
    /// Its sender.
    pub signer: PublicKey,
    /// The sender's signature over [`RoundChange::signing_hash`].
    pub signature: Signature,
}

/// The body of a consensus message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Message {
    /// PBFT pre-prepare.
    Proposal(Proposal),
    /// PBFT prepare.
    Prepare(Vote),
    /// PBFT commit.
    Commit(Vote),
    /// QBFT round change. The payload of the prepared certificate travels with it so that
    /// the next proposer can re-propose it.
    RoundChange {
        /// The signed round change.
        round_change: RoundChange,
        /// The payload whose digest the prepared certificate names (required iff
        /// `round_change.prepared` is set).
        #[serde(with = "crate::types::byte_string::option")]
        prepared_payload: Option<Vec<u8>>,
    },
}

/// The four message kinds, for counters and the signing guard.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum MessageKind {
    /// [`Message::Proposal`].
    Proposal,
    /// [`Message::Prepare`].
    Prepare,
    /// [`Message::Commit`].
    Commit,
    /// [`Message::RoundChange`].
    RoundChange,
}

/// A message with its sender and signature: the unit the network carries.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignedMessage {
    /// The message.
    pub message: Message,
    /// The sender's validator key.
    pub signer: PublicKey,
    /// The sender's signature over [`Message::signing_hash`].
    pub signature: Signature,
}

/// Why bytes are not a valid [`SignedMessage`].
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum DecodeError {
    /// Longer than the limit; refused before decoding.
    #[error("message is {got} bytes, the limit is {limit}")]
    TooLarge {
        /// Input length.
        got: usize,
        /// The limit.
        limit: usize,
    },
    /// Not a valid canonical encoding.
    #[error("malformed message: {0}")]
    Malformed(String),
}

/// Why a message does not count.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum MessageError {
    /// The signer is not a validator of this chain.
    #[error("signer {0} is not a validator")]
    UnknownSigner(PublicKey),
    /// The signature does not verify.
    #[error("bad signature from {0}")]
    BadSignature(PublicKey),
    /// A proposal from someone other than the proposer of its round.
    #[error("proposal for height {height} round {round} is not from its proposer")]
    WrongProposer {
        /// Height.
        height: Height,
        /// Round.
        round: Round,
    },
    /// A payload over [`MAX_PAYLOAD_BYTES`].
    #[error("payload is {0} bytes, over the limit")]
    PayloadTooLarge(usize),
    /// A round-0 proposal with a justification, or a later one without a valid one.
    #[error("proposal justification is invalid: {0}")]
    BadJustification(String),
    /// A round change whose prepared certificate or payload is invalid.
    #[error("round change is invalid: {0}")]
    BadRoundChange(String),
    /// A prepared or commit certificate that does not verify.
    #[error(transparent)]
    Certificate(#[from] CertificateError),
}

/// Why a certificate does not prove what it claims.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum CertificateError {
    /// The certificate is for another height.
    #[error("certificate is for height {got}, expected {expected}")]
    WrongHeight {
        /// Height in the certificate.
        got: Height,
        /// Height asked about.
        expected: Height,
    },
    /// The certificate is for another payload.
    #[error("certificate is for digest {got}, expected {expected}")]
    WrongDigest {
        /// Digest in the certificate.
        got: Digest,
        /// Digest asked about.
        expected: Digest,
    },
    /// A signer outside the validator set.
    #[error("signer {0} is not a validator")]
    ForeignSigner(PublicKey),
    /// The same validator signed twice (signatures must be sorted by validator index,
    /// strictly increasing).
    #[error("signer {0} appears twice or out of order")]
    DuplicateSigner(PublicKey),
    /// A signature that does not verify.
    #[error("bad signature from {0}")]
    BadSignature(PublicKey),
    /// Fewer than a quorum of signatures.
    #[error("{got} signatures, a quorum is {quorum}")]
    NotEnoughSignatures {
        /// Distinct valid signatures.
        got: usize,
        /// The quorum.
        quorum: usize,
    },
}

/// Checks ed25519 signatures. The engine calls it for every signature it counts.
///
/// The default, [`StrictVerifier`], calls `verify_strict`. A host may wrap it in a cache of
/// positive results keyed by the exact `(key, hash, signature)` bytes (the simulator shares
/// one between its honest nodes to save CPU); a cache must never remember a failure as a
/// success.
pub trait SignatureVerifier: Send {
    /// True iff `signature` by `key` over `hash` verifies strictly.
    fn verify(
        &mut self,
        validators: &ValidatorSet,
        signer: usize,
        hash: &[u8; 32],
        signature: &Signature,
    ) -> bool;
}

/// Plain `verify_strict`, no cache.
#[derive(Debug, Clone, Copy, Default)]
pub struct StrictVerifier;

impl SignatureVerifier for StrictVerifier {
    fn verify(
        &mut self,
        validators: &ValidatorSet,
        signer: usize,
        hash: &[u8; 32],
        signature: &Signature,
    ) -> bool {
        let signature = ed25519_dalek::Signature::from_bytes(&signature.0);
        validators
            .verifying_key(signer)
            .verify_strict(hash, &signature)
            .is_ok()
    }
}

fn tagged_hash(
    tag: &[u8],
    domain: &ChainDomain,
    height: Height,
    round: Round,
    rest: &[&[u8]],
) -> [u8; 32] {
    let mut hasher = Sha256::new();
    hasher.update(tag);
    hasher.update(domain.0);
    hasher.update(height.to_le_bytes());
    hasher.update(round.to_le_bytes());
    for part in rest {
        hasher.update(part);
    }
    hasher.finalize().into()
}

impl Vote {
    /// Hash signed for this vote as a message of `kind` (PREPARE or COMMIT; PROPOSAL signs
    /// the same fields with its own tag, the digest being the payload's) on chain `domain`.
    pub fn signing_hash(&self, domain: &ChainDomain, kind: MessageKind) -> [u8; 32] {
        let tag = match kind {
            MessageKind::Prepare => TAG_PREPARE,
            MessageKind::Commit => TAG_COMMIT,
            MessageKind::Proposal => TAG_PROPOSAL,
            MessageKind::RoundChange => TAG_ROUND_CHANGE,
        };
        tagged_hash(tag, domain, self.height, self.round, &[&self.digest.0])
    }
}

impl RoundChange {
    /// Hash signed by a ROUND-CHANGE on chain `domain`.
    pub fn signing_hash(&self, domain: &ChainDomain) -> [u8; 32] {
        match &self.prepared {
            None => tagged_hash(TAG_ROUND_CHANGE, domain, self.height, self.round, &[&[0]]),
            Some(cert) => tagged_hash(
                TAG_ROUND_CHANGE,
                domain,
                self.height,
                self.round,
                &[&[1], &cert.vote.round.to_le_bytes(), &cert.vote.digest.0],
            ),
        }
    }

    /// Signs this round change for chain `domain`.
    pub fn sign(self, key: &SigningKey, domain: &ChainDomain) -> SignedRoundChange {
        let signature = key.sign(&self.signing_hash(domain)).into();
        SignedRoundChange {
            round_change: self,
            signer: PublicKey::from(&key.verifying_key()),
            signature,
        }
    }
}

impl Message {
    /// Height the message is about.
    pub fn height(&self) -> Height {
        match self {
            Message::Proposal(p) => p.height,
            Message::Prepare(v) | Message::Commit(v) => v.height,
            Message::RoundChange { round_change, .. } => round_change.height,
        }
    }

    /// Round the message is about.
    pub fn round(&self) -> Round {
        match self {
            Message::Proposal(p) => p.round,
            Message::Prepare(v) | Message::Commit(v) => v.round,
            Message::RoundChange { round_change, .. } => round_change.round,
        }
    }

    /// The message's kind.
    pub fn kind(&self) -> MessageKind {
        match self {
            Message::Proposal(_) => MessageKind::Proposal,
            Message::Prepare(_) => MessageKind::Prepare,
            Message::Commit(_) => MessageKind::Commit,
            Message::RoundChange { .. } => MessageKind::RoundChange,
        }
    }

    /// The hash the sender signs on chain `domain` (see the module documentation).
    pub fn signing_hash(&self, domain: &ChainDomain) -> [u8; 32] {
        match self {
            Message::Proposal(p) => Vote {
                height: p.height,
                round: p.round,
                digest: Digest::of(&p.payload),
            }
            .signing_hash(domain, MessageKind::Proposal),
            Message::Prepare(v) => v.signing_hash(domain, MessageKind::Prepare),
            Message::Commit(v) => v.signing_hash(domain, MessageKind::Commit),
            Message::RoundChange { round_change, .. } => round_change.signing_hash(domain),
        }
    }

    /// Signs the message with `key` for chain `domain`.
    pub fn sign(self, key: &SigningKey, domain: &ChainDomain) -> SignedMessage {
        let signature = key.sign(&self.signing_hash(domain)).into();
        SignedMessage {
            message: self,
            signer: PublicKey::from(&key.verifying_key()),
            signature,
        }
    }
}

fn wire_options(limit: usize) -> impl Options {
    bincode::DefaultOptions::new()
        .with_limit(limit as u64)
        .reject_trailing_bytes()
}

impl SignedMessage {
    /// The canonical wire encoding.
    #[allow(clippy::expect_used)] // serializing our own bounded values to memory cannot fail
    pub fn encode(&self) -> Vec<u8> {
        wire_options(usize::MAX)
            .serialize(self)
            .expect("in-memory serialization of a consensus message cannot fail")
    }

    /// Decodes a message of at most [`MAX_MESSAGE_BYTES`]. The length is checked before
    /// decoding and bincode counts every byte against the same limit, so a hostile length
    /// prefix cannot make it allocate more than the input could hold.
    pub fn decode(bytes: &[u8]) -> Result<SignedMessage, DecodeError> {
        SignedMessage::decode_with_limit(bytes, MAX_MESSAGE_BYTES)
    }

    /// [`SignedMessage::decode`] with a smaller limit (e.g. a node's `max_block_bytes`).
    pub fn decode_with_limit(bytes: &[u8], limit: usize) -> Result<SignedMessage, DecodeError> {
        if bytes.len() > limit {
            return Err(DecodeError::TooLarge {
                got: bytes.len(),
                limit,
            });
        }
        let message: SignedMessage = wire_options(limit)
            .deserialize(bytes)
            .map_err(|e| DecodeError::Malformed(e.to_string()))?;
        // Varints admit non-minimal forms; only the canonical encoding is accepted.
        if message.encode() != bytes {
            return Err(DecodeError::Malformed("non-canonical encoding".into()));
        }
        Ok(message)
    }

    /// Checks everything about the message that does not depend on the receiver's state:
    /// the signer is a validator, the signature verifies, a proposal comes from the
    /// proposer of its round and (for round > 0) carries a valid QBFT justification, a round
    /// change's prepared certificate verifies and its payload matches it.
    ///
    /// Returns the signer's validator index.
    pub fn verify(
        &self,
        validators: &ValidatorSet,
        verifier: &mut dyn SignatureVerifier,
    ) -> Result<usize, MessageError> {
        let signer = validators
            .index_of(&self.signer)
            .ok_or(MessageError::UnknownSigner(self.signer))?;
        match &self.message {
            Message::Proposal(p) => {
                if p.payload.len() > MAX_PAYLOAD_BYTES {
                    return Err(MessageError::PayloadTooLarge(p.payload.len()));
                }
                if validators.proposer(p.height, p.round) != signer {
                    return Err(MessageError::WrongProposer {
                        height: p.height,
                        round: p.round,
                    });
                }
            }
            Message::Prepare(_) | Message::Commit(_) => {}
            Message::RoundChange {
                round_change,
                prepared_payload,
            } => match (&round_change.prepared, prepared_payload) {
                (None, None) => {}
                (Some(cert), Some(payload)) => {
                    if Digest::of(payload) != cert.vote.digest {
                        return Err(MessageError::BadRoundChange(
                            "payload does not match the prepared digest".into(),
                        ));
                    }
                }
                (Some(_), None) => {
                    return Err(MessageError::BadRoundChange(
                        "prepared certificate without its payload".into(),
                    ))
                }
                (None, Some(_)) => {
                    return Err(MessageError::BadRoundChange(
                        "payload without a prepared certificate".into(),
                    ))
                }
            },
        }
        if !verifier.verify(
            validators,
            signer,
            &self.message.signing_hash(validators.domain()),
            &self.signature,
        ) {
            return Err(MessageError::BadSignature(self.signer));
        }
        // A proposal's justification and a round change's prepared certificate are checked
        // last: they are the expensive part, and a message whose own signature is bad must
        // not cost a quorum of verifications.
        match &self.message {
            Message::Proposal(p) => verify_justification(p, validators, verifier)?,
            Message::RoundChange { round_change, .. } => {
                verify_round_change_content(round_change, validators, verifier)?;
            }
            Message::Prepare(_) | Message::Commit(_) => {}
        }
        Ok(signer)
    }
}

/// Checks a round change's prepared certificate (not its signature).
fn verify_round_change_content(
    round_change: &RoundChange,
    validators: &ValidatorSet,
    verifier: &mut dyn SignatureVerifier,
) -> Result<(), MessageError> {
    if let Some(cert) = &round_change.prepared {
        if cert.vote.height != round_change.height || cert.vote.round >= round_change.round {
            return Err(MessageError::BadRoundChange(format!(
                "prepared certificate for height {} round {} in a round change to height {} round {}",
                cert.vote.height, cert.vote.round, round_change.height, round_change.round
            )));
        }
        verify_signature_set(
            &cert.vote,
            MessageKind::Prepare,
            &cert.signatures,
            validators,
            verifier,
        )?;
    }
    Ok(())
}

/// The highest prepared certificate among round changes, by `(round, digest)`.
pub(crate) fn highest_prepared<'a>(
    round_changes: impl IntoIterator<Item = &'a RoundChange>,
) -> Option<&'a PreparedCertificate> {
    round_changes
        .into_iter()
        .filter_map(|rc| rc.prepared.as_ref())
        .max_by_key(|cert| (cert.vote.round, cert.vote.digest))
}

/// QBFT round-change justification of a proposal:
/// * round 0: no justification;
/// * round r > 0: a quorum of valid ROUND-CHANGEs for `(height, r)` from distinct
///   validators; if any carries a prepared certificate, the proposed payload must be the
///   one of the certificate with the highest prepared round.
fn verify_justification(
    proposal: &Proposal,
    validators: &ValidatorSet,
    verifier: &mut dyn SignatureVerifier,
) -> Result<(), MessageError> {
    if proposal.round == 0 {
        if proposal.justification.is_empty() {
            return Ok(());
        }
        return Err(MessageError::BadJustification(
            "a round-0 proposal carries no justification".into(),
        ));
    }
    if proposal.justification.len() > validators.len() {
        return Err(MessageError::BadJustification(
            "more round changes than validators".into(),
        ));
    }
    let mut previous: Option<usize> = None;
    for signed in &proposal.justification {
        let rc = &signed.round_change;
        if rc.height != proposal.height || rc.round != proposal.round {
            return Err(MessageError::BadJustification(format!(
                "round change for height {} round {} justifies height {} round {}",
                rc.height, rc.round, proposal.height, proposal.round
            )));
        }
        let index = validators.index_of(&signed.signer).ok_or_else(|| {
            MessageError::BadJustification(format!("{} is not a validator", signed.signer))
        })?;
        // Sorted by validator index, strictly increasing: distinct signers, one encoding.
        if previous.is_some_and(|p| p >= index) {
            return Err(MessageError::BadJustification(
                "round changes not sorted by distinct validator".into(),
            ));
        }
        previous = Some(index);
        verify_round_change_content(rc, validators, verifier)?;
        if !verifier.verify(
            validators,
            index,
            &rc.signing_hash(validators.domain()),
            &signed.signature,
        ) {
            return Err(MessageError::BadJustification(format!(
                "bad round-change signature from {}",
                signed.signer
            )));
        }
    }
    if proposal.justification.len() < validators.quorum() {
        return Err(MessageError::BadJustification(format!(
            "{} round changes, a quorum is {}",
            proposal.justification.len(),
            validators.quorum()
        )));
    }
    if let Some(cert) = highest_prepared(proposal.justification.iter().map(|s| &s.round_change)) {
        if Digest::of(&proposal.payload) != cert.vote.digest {
            return Err(MessageError::BadJustification(format!(
                "payload differs from the highest prepared payload {} (round {})",
                cert.vote.digest, cert.vote.round
            )));
        }
    }
    Ok(())
}

/// Checks that `signatures` are at least a quorum of distinct validators' valid signatures
/// of `kind` over `vote`, sorted by validator index.
fn verify_signature_set(
    vote: &Vote,
    kind: MessageKind,
    signatures: &[(PublicKey, Signature)],
    validators: &ValidatorSet,
    verifier: &mut dyn SignatureVerifier,
) -> Result<(), CertificateError> {
    // Cheap structural checks first: no signature is verified for a certificate that
    // could not count anyway.
    let mut previous: Option<usize> = None;
    let mut indices = Vec::with_capacity(signatures.len().min(validators.len()));
    for (key, _) in signatures {
        let index = validators
            .index_of(key)
            .ok_or(CertificateError::ForeignSigner(*key))?;
        if previous.is_some_and(|p| p >= index) {
            return Err(CertificateError::DuplicateSigner(*key));
        }
        previous = Some(index);
        indices.push(index);
    }
    if signatures.len() < validators.quorum() {
        return Err(CertificateError::NotEnoughSignatures {
            got: signatures.len(),
            quorum: validators.quorum(),
        });
    }
    let hash = vote.signing_hash(validators.domain(), kind);
    for ((key, signature), index) in signatures.iter().zip(indices) {
        if !verifier.verify(validators, index, &hash, signature) {
            return Err(CertificateError::BadSignature(*key));
        }
    }
    Ok(())
}

impl PreparedCertificate {
    /// Checks the certificate: a quorum of distinct validators' valid PREPAREs.
    pub fn verify(&self, validators: &ValidatorSet) -> Result<(), CertificateError> {
        verify_signature_set(
            &self.vote,
            MessageKind::Prepare,
            &self.signatures,
            validators,
            &mut StrictVerifier,
        )
    }
}

impl CommitCertificate {
    /// The canonical encoding (what a node stores beside its block and sync sends).
    #[allow(clippy::expect_used)] // serializing our own bounded values to memory cannot fail
    pub fn encode(&self) -> Vec<u8> {
        wire_options(usize::MAX)
            .serialize(self)
            .expect("in-memory serialization of a certificate cannot fail")
    }

    /// Decodes a certificate of at most [`MAX_CERTIFICATE_BYTES`] (checked before
    /// decoding), refusing any but the canonical encoding. Decoding proves nothing: call
    /// [`CommitCertificate::verify`].
    pub fn decode(bytes: &[u8]) -> Result<CommitCertificate, DecodeError> {
        let limit = MAX_CERTIFICATE_BYTES;
        if bytes.len() > limit {
            return Err(DecodeError::TooLarge {
                got: bytes.len(),
                limit,
            });
        }
        let certificate: CommitCertificate = wire_options(limit)
            .deserialize(bytes)
            .map_err(|e| DecodeError::Malformed(e.to_string()))?;
        if certificate.encode() != bytes {
            return Err(DecodeError::Malformed("non-canonical encoding".into()));
        }
        Ok(certificate)
    }

    /// Proves that `digest` is final at `height`: the certificate names them, and carries
    /// COMMIT signatures from a quorum of distinct validators of `validators`, each valid,
    /// sorted by validator index. Needs nothing but the validator set (observers call it).
    pub fn verify(
        &self,
        validators: &ValidatorSet,
        height: Height,
        digest: &Digest,
    ) -> Result<(), CertificateError> {
        self.verify_with(validators, height, digest, &mut StrictVerifier)
    }

    /// [`CommitCertificate::verify`] with a chosen signature verifier.
    pub fn verify_with(
        &self,
        validators: &ValidatorSet,
        height: Height,
        digest: &Digest,
        verifier: &mut dyn SignatureVerifier,
    ) -> Result<(), CertificateError> {
        if self.vote.height != height {
            return Err(CertificateError::WrongHeight {
                got: self.vote.height,
                expected: height,
            });
        }
        if self.vote.digest != *digest {
            return Err(CertificateError::WrongDigest {
                got: self.vote.digest,
                expected: *digest,
            });
        }
        verify_signature_set(
            &self.vote,
            MessageKind::Commit,
            &self.signatures,
            validators,
            verifier,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn key(i: u8) -> SigningKey {
        SigningKey::from_bytes(&[i + 1; 32])
    }

    fn sample() -> SignedMessage {
        Message::Proposal(Proposal {
            height: 7,
            round: 0,
            payload: b"payload".to_vec(),
            justification: vec![],
        })
        .sign(&key(0), &ChainDomain::UNBOUND)
    }

    /// The payloads travel as byte strings (`types::byte_string`), which bincode lays out
    /// exactly as serde's sequence of bytes: every message, certificate and persisted state
    /// written before reads back, and encodes to the same bytes.
    #[test]
    fn payloads_as_byte_strings_keep_the_wire_bytes() {
        #[derive(Serialize, Deserialize, PartialEq, Debug)]
        struct SequenceProposal {
            height: Height,
            round: Round,
            payload: Vec<u8>,
            justification: Vec<SignedRoundChange>,
        }
        #[derive(Serialize, Deserialize, PartialEq, Debug)]
        struct SequenceLock {
            lock_payload: Option<Vec<u8>>,
        }
        #[derive(Serialize, Deserialize, PartialEq, Debug)]
        struct ByteStringLock {
            #[serde(with = "crate::types::byte_string::option")]
            lock_payload: Option<Vec<u8>>,
        }
        let options = || wire_options(usize::MAX);
        // Lengths on both sides of bincode's one-byte varint (250).
        for length in [0usize, 1, 250, 251, 70_000] {
            let payload: Vec<u8> = (0..length).map(|i| (i % 251) as u8).collect();
            let proposal = Proposal {
                height: 9,
                round: 2,
                payload: payload.clone(),
                justification: vec![],
            };
            let sequence = SequenceProposal {
                height: 9,
                round: 2,
                payload: payload.clone(),
                justification: vec![],
            };
            let bytes = options().serialize(&proposal).expect("encodes");
            assert_eq!(bytes, options().serialize(&sequence).expect("encodes"));
            assert_eq!(
                options().deserialize::<Proposal>(&bytes).expect("decodes"),
                proposal
            );
            for lock_payload in [None, Some(payload)] {
                let bytes = options()
                    .serialize(&ByteStringLock {
                        lock_payload: lock_payload.clone(),
                    })
                    .expect("encodes");
                let sequence = SequenceLock { lock_payload };
                assert_eq!(bytes, options().serialize(&sequence).expect("encodes"));
                assert_eq!(
                    options()
                        .deserialize::<ByteStringLock>(&bytes)
                        .expect("decodes")
                        .lock_payload,
                    sequence.lock_payload
                );
            }
        }
        // JSON still reads the array of numbers that `Vec<u8>` wrote.
        let json = serde_json::to_string(&SequenceProposal {
            height: 1,
            round: 0,
            payload: vec![1, 2, 255],
            justification: vec![],
        })
        .expect("json");
        let read: Proposal = serde_json::from_str(&json).expect("reads");
        assert_eq!(read.payload, vec![1, 2, 255]);
        assert_eq!(serde_json::to_string(&read).expect("json"), json);
    }

    /// A hostile length prefix on a payload allocates nothing: bincode checks it against the
    /// limit before reading.
    #[test]
    fn a_payload_longer_than_its_message_is_refused() {
        let mut bytes = sample().encode();
        // height 7, round 0, then the payload's length (7): claim 2^40 bytes instead.
        let at = bytes
            .windows(8)
            .position(|w| w == b"\x07payload")
            .expect("the payload's length and bytes");
        let mut forged = bytes[..at].to_vec();
        forged.push(253);
        forged.extend_from_slice(&(1u64 << 40).to_le_bytes());
        forged.extend_from_slice(&bytes.split_off(at + 1));
        assert!(matches!(
            SignedMessage::decode(&forged),
            Err(DecodeError::Malformed(_))
        ));
    }

    #[test]
    fn encoding_round_trips_and_is_canonical() {
        let message = sample();
        let bytes = message.encode();
        assert_eq!(SignedMessage::decode(&bytes), Ok(message));
        let mut trailing = bytes.clone();
        trailing.push(0);
        assert!(matches!(
            SignedMessage::decode(&trailing),
            Err(DecodeError::Malformed(_))
        ));
        assert!(matches!(
            SignedMessage::decode_with_limit(&bytes, bytes.len() - 1),
            Err(DecodeError::TooLarge { .. })
        ));
        assert!(SignedMessage::decode(&bytes[..bytes.len() - 1]).is_err());
    }

    /// Counts the signatures it is asked to verify.
    struct Counting(usize);

    impl SignatureVerifier for Counting {
        fn verify(
            &mut self,
            validators: &ValidatorSet,
            signer: usize,
            hash: &[u8; 32],
            signature: &Signature,
        ) -> bool {
            self.0 += 1;
            StrictVerifier.verify(validators, signer, hash, signature)
        }
    }

    #[test]
    fn a_forged_round_change_costs_one_verification_not_a_quorum() {
        let set = ValidatorSet::new(
            (0..4)
                .map(|i| PublicKey::from(&key(i).verifying_key()))
                .collect(),
        )
        .expect("set");
        let payload = b"locked block".to_vec();
        let vote = Vote {
            height: 2,
            round: 0,
            digest: Digest::of(&payload),
        };
        let prepared = PreparedCertificate {
            vote,
            signatures: (0..3)
                .map(|i| {
                    let signed = Message::Prepare(vote).sign(&key(i), &ChainDomain::UNBOUND);
                    (signed.signer, signed.signature)
                })
                .collect(),
        };
        let honest = Message::RoundChange {
            round_change: RoundChange {
                height: 2,
                round: 1,
                prepared: Some(prepared),
            },
            prepared_payload: Some(payload),
        }
        .sign(&key(1), &ChainDomain::UNBOUND);
        let mut counting = Counting(0);
        assert_eq!(honest.verify(&set, &mut counting), Ok(1));
        assert_eq!(
            counting.0, 4,
            "its own signature and the certificate's three"
        );
        // The same round change with a broken outer signature: refused after one check.
        let mut forged = honest.clone();
        forged.signature.0[0] ^= 1;
        let mut counting = Counting(0);
        assert!(matches!(
            forged.verify(&set, &mut counting),
            Err(MessageError::BadSignature(_))
        ));
        assert_eq!(counting.0, 1);
    }

    #[test]
    fn a_signature_for_one_chain_does_not_verify_on_another() {
        let keys: Vec<PublicKey> = (0..4)
            .map(|i| PublicKey::from(&key(i).verifying_key()))
            .collect();
        let chain_a = ChainDomain::new("interpool-prod", &[1; 32]);
        let chain_b = ChainDomain::new("interpool-test", &[1; 32]);
        let chain_c = ChainDomain::new("interpool-prod", &[2; 32]);
        assert_ne!(chain_a, chain_b);
        assert_ne!(chain_a, chain_c);
        let on_a = ValidatorSet::new(keys.clone())
            .expect("set")
            .bound_to(chain_a);
        let on_b = ValidatorSet::new(keys.clone())
            .expect("set")
            .bound_to(chain_b);
        let on_c = ValidatorSet::new(keys).expect("set").bound_to(chain_c);
        let vote = Vote {
            height: 5,
            round: 0,
            digest: Digest::of(b"block"),
        };
        let prepare = Message::Prepare(vote).sign(&key(1), &chain_a);
        assert!(prepare.verify(&on_a, &mut StrictVerifier).is_ok());
        for other in [&on_b, &on_c] {
            assert!(matches!(
                prepare.verify(other, &mut StrictVerifier),
                Err(MessageError::BadSignature(_))
            ));
        }
        // Certificates too: a quorum's COMMITs on chain A prove nothing on B or C.
        let signatures = (0..3)
            .map(|i| {
                let signed = Message::Commit(vote).sign(&key(i), &chain_a);
                (signed.signer, signed.signature)
            })
            .collect();
        let certificate = CommitCertificate { vote, signatures };
        assert!(certificate.verify(&on_a, 5, &vote.digest).is_ok());
        assert!(certificate.verify(&on_b, 5, &vote.digest).is_err());
        assert!(certificate.verify(&on_c, 5, &vote.digest).is_err());
    }

    #[test]
    fn certificates_round_trip_within_their_bound() {
        let vote = Vote {
            height: 3,
            round: 1,
            digest: Digest::of(b"block"),
        };
        // The largest possible certificate: one signature from each of MAX_VALIDATORS.
        let signatures = (0..MAX_VALIDATORS)
            .map(|i| {
                let signed =
                    Message::Commit(vote).sign(&key((i % 250) as u8), &ChainDomain::UNBOUND);
                (signed.signer, signed.signature)
            })
            .collect();
        let certificate = CommitCertificate { vote, signatures };
        let bytes = certificate.encode();
        assert!(
            bytes.len() <= MAX_CERTIFICATE_BYTES,
            "{} bytes",
            bytes.len()
        );
        assert_eq!(CommitCertificate::decode(&bytes), Ok(certificate));
        let mut trailing = bytes.clone();
        trailing.push(0);
        assert!(CommitCertificate::decode(&trailing).is_err());
        assert!(CommitCertificate::decode(&bytes[..bytes.len() - 1]).is_err());
        assert!(matches!(
            CommitCertificate::decode(&vec![0; MAX_CERTIFICATE_BYTES + 1]),
            Err(DecodeError::TooLarge { .. })
        ));
    }

    #[test]
    fn a_hostile_length_prefix_does_not_allocate() {
        // Proposal variant (0), height, round, then a payload length of 2^60.
        let mut bytes = vec![0u8, 7, 0, 0xff];
        bytes.extend_from_slice(&(1u64 << 60).to_le_bytes());
        assert!(SignedMessage::decode(&bytes).is_err());
    }

    #[test]
    fn signatures_are_domain_separated() {
        let vote = Vote {
            height: 1,
            round: 2,
            digest: Digest::of(b"x"),
        };
        let hashes = [
            vote.signing_hash(&ChainDomain::UNBOUND, MessageKind::Prepare),
            vote.signing_hash(&ChainDomain::UNBOUND, MessageKind::Commit),
            vote.signing_hash(&ChainDomain::UNBOUND, MessageKind::Proposal),
        ];
        assert_ne!(hashes[0], hashes[1]);
        assert_ne!(hashes[1], hashes[2]);
        // A PREPARE's signature relabelled as a COMMIT does not verify.
        let prepare = Message::Prepare(vote).sign(&key(0), &ChainDomain::UNBOUND);
        let relabelled = SignedMessage {
            message: Message::Commit(vote),
            ..prepare
        };
        let keys = (0..4)
            .map(|i| PublicKey::from(&key(i).verifying_key()))
            .collect();
        let set = ValidatorSet::new(keys).expect("set");
        assert!(matches!(
            relabelled.verify(&set, &mut StrictVerifier),
            Err(MessageError::BadSignature(_))
        ));
    }

    proptest! {
        #[test]
        fn decoding_arbitrary_bytes_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            let _ = SignedMessage::decode(&bytes);
        }

        #[test]
        fn flipping_any_byte_never_yields_a_valid_different_message(position in 0usize..200, bit in 0u8..8) {
            let keys = (0..4).map(|i| PublicKey::from(&key(i).verifying_key())).collect();
            let set = ValidatorSet::new(keys).expect("set");
            let original = sample();
            let mut bytes = original.encode();
            let position = position % bytes.len();
            bytes[position] ^= 1 << bit;
            if let Ok(decoded) = SignedMessage::decode(&bytes) {
                prop_assert!(decoded.verify(&set, &mut StrictVerifier).is_err() || decoded == original);
            }
        }
    }
}
