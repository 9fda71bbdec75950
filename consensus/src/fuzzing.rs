//! The entry function of the `consensus_message` fuzz target
//! (`fuzz/fuzz_targets/consensus_message.rs`).
//!
//! Compiled only for `cargo fuzz` (which sets `--cfg fuzzing`) and for this crate's tests,
//! which replay the committed corpus (`fuzz/corpus/consensus_message/`) and every regression
//! input (`fuzz/regressions/consensus_message/`) through the same function.

use std::sync::OnceLock;

use ed25519_dalek::SigningKey;

use crate::message::{CommitCertificate, SignedMessage, StrictVerifier};
use crate::types::{PublicKey, ValidatorSet};

/// Validators in the fixed set the target verifies against.
pub const VALIDATORS: usize = 4;

/// The signing key of validator `index` of the fixed set (public: anyone can sign as it).
pub fn validator_key(index: usize) -> SigningKey {
    SigningKey::from_bytes(&[u8::try_from(index).map_or(0, |i| i.wrapping_add(1)); 32])
}

/// The fixed set of [`VALIDATORS`] validators, `validator_key(0..4)`, computed once.
pub fn validator_set() -> &'static ValidatorSet {
    static SET: OnceLock<ValidatorSet> = OnceLock::new();
    SET.get_or_init(|| {
        ValidatorSet::new(
            (0..VALIDATORS)
                .map(|i| PublicKey::from(&validator_key(i).verifying_key()))
                .collect(),
        )
        .expect("four distinct keys make a validator set")
    })
}

/// Decodes `data` as a consensus message and as a commit certificate and checks that:
///
/// * whatever decodes re-encodes to exactly `data`, and that encoding decodes to the same
///   value (one valid encoding per message);
/// * verifying a decoded message against the fixed 4-validator set never panics, and a
///   message that verifies names its signer's index;
/// * verifying a decoded certificate (for the height and digest it names) never panics.
pub fn consensus_message(data: &[u8]) {
    let validators = validator_set();
    if let Ok(certificate) = CommitCertificate::decode(data) {
        let encoded = certificate.encode();
        assert_eq!(
            encoded, data,
            "certificate decoded, but not from its encoding"
        );
        assert_eq!(
            CommitCertificate::decode(&encoded).as_ref(),
            Ok(&certificate)
        );
        let _ = certificate.verify(
            validators,
            certificate.vote.height,
            &certificate.vote.digest,
        );
    }
    let Ok(message) = SignedMessage::decode(data) else {
        return;
    };
    let encoded = message.encode();
    assert_eq!(encoded, data, "message decoded, but not from its encoding");
    assert_eq!(SignedMessage::decode(&encoded).as_ref(), Ok(&message));
    if let Ok(index) = message.verify(validators, &mut StrictVerifier) {
        assert_eq!(validators.key(index), Some(&message.signer));
    }
}

/// Seed inputs: every message kind, valid and with each kind of flaw, commit certificates,
/// and encodings at the edges of the format.
#[cfg(test)]
pub(crate) fn seeds() -> Vec<Vec<u8>> {
    use ed25519_dalek::Signer;

    use crate::message::{Message, MessageKind, PreparedCertificate, Proposal, RoundChange, Vote};
    use crate::types::{Digest, Signature};

    let set = validator_set();
    let domain = set.domain();
    let key = validator_key;
    let signatures = |vote: &Vote, kind: MessageKind, signers: &[usize]| {
        signers
            .iter()
            .map(|&i| {
                (
                    PublicKey::from(&key(i).verifying_key()),
                    Signature::from(key(i).sign(&vote.signing_hash(domain, kind))),
                )
            })
            .collect::<Vec<_>>()
    };
    let payload = b"block at height 5".to_vec();
    let vote = |round| Vote {
        height: 5,
        round,
        digest: Digest::of(&payload),
    };
    let proposal = |round, payload: Vec<u8>, justification| {
        Message::Proposal(Proposal {
            height: 5,
            round,
            payload,
            justification,
        })
    };
    let prepared = PreparedCertificate {
        vote: vote(0),
        signatures: signatures(&vote(0), MessageKind::Prepare, &[0, 1, 2]),
    };
    let round_change = |round, prepared: Option<PreparedCertificate>| RoundChange {
        height: 5,
        round,
        prepared,
    };

    let mut messages = vec![
        // Round 0: the proposal from its proposer, every validator's PREPARE and COMMIT.
        proposal(0, payload.clone(), vec![]).sign(&key(set.proposer(5, 0)), domain),
        proposal(0, Vec::new(), vec![]).sign(&key(set.proposer(5, 0)), domain),
        // From another validator than the proposer.
        proposal(0, payload.clone(), vec![]).sign(&key(set.proposer(5, 1)), domain),
        // A round-0 proposal with a justification.
        proposal(
            0,
            payload.clone(),
            vec![round_change(0, None).sign(&key(0), domain)],
        )
        .sign(&key(set.proposer(5, 0)), domain),
    ];
    for i in 0..VALIDATORS {
        messages.push(Message::Prepare(vote(0)).sign(&key(i), domain));
        messages.push(Message::Commit(vote(0)).sign(&key(i), domain));
        messages.push(
            Message::RoundChange {
                round_change: round_change(1, None),
                prepared_payload: None,
            }
            .sign(&key(i), domain),
        );
    }
    // A round change carrying the lock, with and without its payload, and with another one.
    for prepared_payload in [Some(payload.clone()), None, Some(b"other".to_vec())] {
        messages.push(
            Message::RoundChange {
                round_change: round_change(1, Some(prepared.clone())),
                prepared_payload,
            }
            .sign(&key(3), domain),
        );
    }
    // Round 1: justified by a quorum of round changes, one of which carries the lock, so
    // the proposal re-proposes the locked payload; and a fresh one when nobody locked.
    let justification = |locked: bool| {
        (0..3)
            .map(|i| {
                round_change(1, (locked && i == 1).then(|| prepared.clone())).sign(&key(i), domain)
            })
            .collect::<Vec<_>>()
    };
    messages.push(
        proposal(1, payload.clone(), justification(true)).sign(&key(set.proposer(5, 1)), domain),
    );
    messages.push(
        proposal(1, b"fresh block".to_vec(), justification(false))
            .sign(&key(set.proposer(5, 1)), domain),
    );
    // Re-proposing something else than the lock; an unsorted justification; too few.
    messages.push(
        proposal(1, b"fresh block".to_vec(), justification(true))
            .sign(&key(set.proposer(5, 1)), domain),
    );
    let mut unsorted = justification(false);
    unsorted.reverse();
    messages.push(proposal(1, payload.clone(), unsorted).sign(&key(set.proposer(5, 1)), domain));
    let mut short = justification(false);
    short.pop();
    messages.push(proposal(1, payload.clone(), short).sign(&key(set.proposer(5, 1)), domain));
    // An outsider's vote, and a vote whose signature is for another kind.
    messages.push(Message::Prepare(vote(0)).sign(&validator_key(9), domain));
    let mut relabelled = Message::Prepare(vote(0)).sign(&key(1), domain);
    relabelled.message = Message::Commit(vote(0));
    messages.push(relabelled);

    let mut seeds: Vec<Vec<u8>> = messages.iter().map(SignedMessage::encode).collect();
    // Commit certificates: a quorum, all four, too few, a repeated signer, an outsider.
    for signers in [
        &[0, 1, 2][..],
        &[0, 1, 2, 3],
        &[1, 2],
        &[0, 0, 1],
        &[0, 1, 9],
    ] {
        seeds.push(
            CommitCertificate {
                vote: vote(0),
                signatures: signatures(&vote(0), MessageKind::Commit, signers),
            }
            .encode(),
        );
    }
    // Edges of the format.
    let valid = messages[0].encode();
    seeds.push(Vec::new());
    seeds.push(valid[..valid.len() / 2].to_vec());
    let mut trailing = valid.clone();
    trailing.push(0);
    seeds.push(trailing);
    let mut hostile_length = vec![0u8, 5, 0, 0xfd];
    hostile_length.extend_from_slice(&u64::MAX.to_le_bytes());
    seeds.push(hostile_length);
    seeds
}

#[cfg(test)]
mod tests {
    use std::panic::{catch_unwind, AssertUnwindSafe};
    use std::path::{Path, PathBuf};

    use super::*;

    /// `fuzz/<kind>/<target>/` of the repository.
    fn fuzz_dir(kind: &str, target: &str) -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../fuzz")
            .join(kind)
            .join(target)
    }

    /// Feeds every file of `fuzz/corpus/<target>/` and `fuzz/regressions/<target>/` to
    /// `entry`, naming the file that fails; returns how many were replayed.
    fn replay(target: &str, entry: fn(&[u8])) -> usize {
        let mut replayed = 0;
        for kind in ["corpus", "regressions"] {
            let Ok(listing) = std::fs::read_dir(fuzz_dir(kind, target)) else {
                continue;
            };
            let mut paths: Vec<PathBuf> = listing.map(|e| e.expect("entry").path()).collect();
            paths.sort();
            for path in paths {
                let bytes = std::fs::read(&path).expect("read corpus file");
                if catch_unwind(AssertUnwindSafe(|| entry(&bytes))).is_err() {
                    panic!("{} fails the {target} target", path.display());
                }
                replayed += 1;
            }
        }
        replayed
    }

    #[test]
    fn consensus_message_corpus_replays() {
        let replayed = replay("consensus_message", consensus_message);
        assert!(
            replayed > 0,
            "fuzz/corpus/consensus_message is missing or empty"
        );
    }

    #[test]
    fn seeds_pass_the_target_and_the_valid_ones_verify() {
        let seeds = seeds();
        let mut verified = 0;
        for seed in &seeds {
            consensus_message(seed);
            if let Ok(message) = SignedMessage::decode(seed) {
                verified +=
                    usize::from(message.verify(validator_set(), &mut StrictVerifier).is_ok());
            }
        }
        // Two proposals at round 0, 4 × 3 votes and round changes, the locked round change,
        // two justified round-1 proposals.
        assert_eq!(verified, 2 + 12 + 1 + 2);
    }

    /// Writes [`seeds`] into `fuzz/corpus/consensus_message/` (named by content):
    /// `cargo test --workspace -- --ignored write_fuzz_seeds`.
    #[test]
    #[ignore = "writes the seed corpus into fuzz/corpus; run by hand"]
    fn write_fuzz_seeds() {
        use sha2::{Digest as _, Sha256};
        let dir = fuzz_dir("corpus", "consensus_message");
        std::fs::create_dir_all(&dir).expect("corpus directory");
        for seed in seeds() {
            let digest = Sha256::digest(&seed);
            let name: String = digest[..8].iter().map(|b| format!("{b:02x}")).collect();
            std::fs::write(dir.join(format!("seed-{name}")), seed).expect("write seed");
        }
    }
}
