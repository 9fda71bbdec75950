//! The invariant checker: sees every message an honest validator sends and every height
//! it commits, and reports the first broken invariant.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use crate::message::{
    CertificateError, CommitCertificate, MessageKind, SignatureVerifier, SignedMessage,
};
use crate::types::{ChainDomain, Digest, Height, Round, ValidatorSet};

/// A broken invariant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Violation {
    /// Two honest validators committed different payloads at one height.
    Agreement {
        /// The height.
        height: Height,
        /// First validator and its digest.
        first: (usize, Digest),
        /// Second validator and its digest.
        second: (usize, Digest),
    },
    /// A committed payload that was never proposed or is invalid.
    Validity {
        /// The validator.
        validator: usize,
        /// The height.
        height: Height,
        /// Why.
        reason: String,
    },
    /// A committed height whose certificate does not verify.
    Certificate {
        /// The validator.
        validator: usize,
        /// The height.
        height: Height,
        /// The verification error.
        error: CertificateError,
    },
    /// A validator committed heights out of order.
    Sequence {
        /// The validator.
        validator: usize,
        /// Expected height.
        expected: Height,
        /// Committed height.
        got: Height,
    },
    /// An honest validator signed two different messages of one kind for one height and
    /// round.
    DoubleSign {
        /// The validator.
        validator: usize,
        /// Height.
        height: Height,
        /// Round.
        round: Round,
        /// Kind.
        kind: MessageKind,
    },
    /// Not every honest validator committed enough heights after the faults healed.
    Liveness {
        /// Description of where each validator got stuck.
        detail: String,
    },
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Violation::Agreement { height, first, second } => write!(
                f,
                "AGREEMENT: at height {height} validator {} committed {} but validator {} committed {}",
                first.0, first.1, second.0, second.1
            ),
            Violation::Validity { validator, height, reason } => {
                write!(f, "VALIDITY: validator {validator} at height {height}: {reason}")
            }
            Violation::Certificate { validator, height, error } => write!(
                f,
                "CERTIFICATE: validator {validator} at height {height}: {error}"
            ),
            Violation::Sequence { validator, expected, got } => write!(
                f,
                "SEQUENCE: validator {validator} committed height {got}, expected {expected}"
            ),
            Violation::DoubleSign { validator, height, round, kind } => write!(
                f,
                "DOUBLE SIGN: validator {validator} signed two different {kind:?} at height {height} round {round}"
            ),
            Violation::Liveness { detail } => write!(f, "LIVENESS: {detail}"),
        }
    }
}

/// The checker's memory.
#[derive(Debug, Default)]
pub(crate) struct Checker {
    decided: BTreeMap<Height, (usize, Digest)>,
    proposed: BTreeSet<Digest>,
    signed: BTreeMap<(usize, Height, Round, MessageKind), [u8; 32]>,
}

/// The simulated application's validity rule.
pub(crate) fn payload_is_valid(payload: &[u8]) -> bool {
    !payload.starts_with(b"INVALID")
}

impl Checker {
    /// Records any message put on the network (proposals feed the validity check).
    pub fn on_send(&mut self, message: &SignedMessage) {
        if let crate::message::Message::Proposal(proposal) = &message.message {
            self.proposed.insert(Digest::of(&proposal.payload));
        }
    }

    /// Checks a message an honest validator signed and sent.
    pub fn on_honest_send(
        &mut self,
        validator: usize,
        message: &SignedMessage,
    ) -> Result<(), Violation> {
        let m = &message.message;
        let key = (validator, m.height(), m.round(), m.kind());
        let hash = m.signing_hash(&ChainDomain::UNBOUND);
        match self.signed.get(&key) {
            Some(previous) if *previous != hash => Err(Violation::DoubleSign {
                validator,
                height: key.1,
                round: key.2,
                kind: key.3,
            }),
            Some(_) => Ok(()),
            None => {
                self.signed.insert(key, hash);
                Ok(())
            }
        }
    }

    /// Checks a height an honest validator committed (`expected` is its next height).
    #[allow(clippy::too_many_arguments)]
    pub fn on_commit(
        &mut self,
        validator: usize,
        expected: Height,
        height: Height,
        payload: &[u8],
        certificate: &CommitCertificate,
        validators: &ValidatorSet,
        verifier: &mut dyn SignatureVerifier,
    ) -> Result<(), Violation> {
        if height != expected {
            return Err(Violation::Sequence {
                validator,
                expected,
                got: height,
            });
        }
        let digest = Digest::of(payload);
        if let Some((first, decided)) = self.decided.get(&height) {
            if *decided != digest {
                return Err(Violation::Agreement {
                    height,
                    first: (*first, *decided),
                    second: (validator, digest),
                });
            }
        } else {
            self.decided.insert(height, (validator, digest));
        }
        if !self.proposed.contains(&digest) {
            return Err(Violation::Validity {
                validator,
                height,
                reason: format!("payload {digest} was never proposed"),
            });
        }
        if !payload_is_valid(payload) {
            return Err(Violation::Validity {
                validator,
                height,
                reason: format!("payload {digest} is invalid"),
            });
        }
        certificate
            .verify_with(validators, height, &digest, verifier)
            .map_err(|error| Violation::Certificate {
                validator,
                height,
                error,
            })
    }
}
