//! The vote keeper: the verified PREPAREs, COMMITs and ROUND-CHANGEs of one height,
//! at most one per validator per round and kind, with equivocation detection.
//!
//! It only stores and counts; the round logic in [`crate::engine`] decides what a count
//! means. Every collection is keyed by validator index, so no vote is ever counted twice.

use std::collections::BTreeMap;

use crate::message::{Message, MessageKind, SignedMessage, SignedRoundChange, Vote};
use crate::types::{Digest, PublicKey, Round, Signature, ValidatorSet};

/// Outcome of adding a vote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Added {
    /// A new vote.
    New,
    /// The same vote again (ignored).
    Duplicate,
    /// A different vote of the same kind from the same validator for the same round
    /// (ignored; the earlier one is returned as evidence).
    Conflict(Box<SignedMessage>),
    /// Older than what this validator already sent (a round change for a lower round).
    Stale,
}

#[derive(Debug, Default, Clone)]
struct RoundVotes {
    prepares: BTreeMap<usize, (Digest, Signature)>,
    commits: BTreeMap<usize, (Digest, Signature)>,
}

/// A validator's latest round change at this height, with the payload it carried.
#[derive(Debug, Clone)]
pub(crate) struct StoredRoundChange {
    pub signed: SignedRoundChange,
    pub payload: Option<Vec<u8>>,
}

/// Votes of one height.
#[derive(Debug, Default, Clone)]
pub(crate) struct VoteKeeper {
    rounds: BTreeMap<Round, RoundVotes>,
    /// Latest round change per validator: a validator's rounds only grow, so its latest
    /// round change supersedes the earlier ones, and this map stays bounded by `n`.
    round_changes: BTreeMap<usize, StoredRoundChange>,
}

impl VoteKeeper {
    /// Adds a verified PREPARE or COMMIT.
    #[allow(clippy::expect_used)] // signers are indices the engine looked up in this set
    pub fn add_vote(
        &mut self,
        kind: MessageKind,
        vote: Vote,
        signer: usize,
        signature: Signature,
        validators: &ValidatorSet,
    ) -> Added {
        let round = self.rounds.entry(vote.round).or_default();
        let map = match kind {
            MessageKind::Prepare => &mut round.prepares,
            MessageKind::Commit => &mut round.commits,
            MessageKind::Proposal | MessageKind::RoundChange => {
                unreachable!("only prepares and commits are votes")
            }
        };
        match map.get(&signer) {
            None => {
                map.insert(signer, (vote.digest, signature));
                Added::New
            }
            Some((digest, _)) if *digest == vote.digest => Added::Duplicate,
            Some((digest, previous)) => {
                let earlier = Vote {
                    digest: *digest,
                    ..vote
                };
                let message = match kind {
                    MessageKind::Prepare => Message::Prepare(earlier),
                    _ => Message::Commit(earlier),
                };
                Added::Conflict(Box::new(SignedMessage {
                    message,
                    signer: *validators
                        .key(signer)
                        .expect("vote keeper only holds validator indices"),
                    signature: *previous,
                }))
            }
        }
    }

    /// Adds a verified ROUND-CHANGE.
    pub fn add_round_change(
        &mut self,
        signer: usize,
        signed: SignedRoundChange,
        payload: Option<Vec<u8>>,
    ) -> Added {
        match self.round_changes.get(&signer) {
            Some(stored) if stored.signed.round_change.round > signed.round_change.round => {
                Added::Stale
            }
            Some(stored) if stored.signed.round_change.round == signed.round_change.round => {
                if stored.signed.round_change == signed.round_change {
                    Added::Duplicate
                } else {
                    Added::Conflict(Box::new(SignedMessage {
                        message: Message::RoundChange {
                            round_change: stored.signed.round_change.clone(),
                            prepared_payload: None,
                        },
                        signer: stored.signed.signer,
                        signature: stored.signed.signature,
                    }))
                }
            }
            _ => {
                self.round_changes
                    .insert(signer, StoredRoundChange { signed, payload });
                Added::New
            }
        }
    }

    /// Number of distinct validators that sent `kind` for `(round, digest)`.
    pub fn count(&self, kind: MessageKind, round: Round, digest: &Digest) -> usize {
        self.signatures(kind, round, digest).count()
    }

    /// Their signatures, sorted by validator index.
    pub fn signatures<'a>(
        &'a self,
        kind: MessageKind,
        round: Round,
        digest: &'a Digest,
    ) -> impl Iterator<Item = (usize, Signature)> + 'a {
        self.rounds
            .get(&round)
            .into_iter()
            .flat_map(move |votes| match kind {
                MessageKind::Commit => votes.commits.iter(),
                _ => votes.prepares.iter(),
            })
            .filter(move |(_, (d, _))| d == digest)
            .map(|(index, (_, signature))| (*index, *signature))
    }

    /// Signatures as a certificate expects them: `(key, signature)` sorted by index.
    #[allow(clippy::expect_used)] // signers are indices the engine looked up in this set
    pub fn certificate_signatures(
        &self,
        kind: MessageKind,
        round: Round,
        digest: &Digest,
        validators: &ValidatorSet,
    ) -> Vec<(PublicKey, Signature)> {
        self.signatures(kind, round, digest)
            .map(|(index, signature)| {
                (
                    *validators
                        .key(index)
                        .expect("vote keeper only holds validator indices"),
                    signature,
                )
            })
            .collect()
    }

    /// `(round, digest)` pairs that have a quorum of COMMITs, lowest round first.
    pub fn committed(&self, quorum: usize) -> Option<(Round, Digest)> {
        for (round, votes) in &self.rounds {
            let mut tally: BTreeMap<Digest, usize> = BTreeMap::new();
            for (digest, _) in votes.commits.values() {
                let count = tally.entry(*digest).or_default();
                *count = count.saturating_add(1);
            }
            if let Some((digest, _)) = tally.into_iter().find(|(_, count)| *count >= quorum) {
                return Some((*round, digest));
            }
        }
        None
    }

    /// Round changes whose round is exactly `round`, sorted by validator index.
    pub fn round_changes_for(&self, round: Round) -> impl Iterator<Item = &StoredRoundChange> {
        self.round_changes
            .values()
            .filter(move |stored| stored.signed.round_change.round == round)
    }

    /// Latest round of every validator whose latest round change is above `round`.
    pub fn rounds_above(&self, round: Round) -> Vec<Round> {
        self.round_changes
            .values()
            .map(|stored| stored.signed.round_change.round)
            .filter(|r| *r > round)
            .collect()
    }

    /// Payload carried by some stored round change for `digest`.
    pub fn payload_for(&self, digest: &Digest) -> Option<&Vec<u8>> {
        self.round_changes.values().find_map(|stored| {
            let cert = stored.signed.round_change.prepared.as_ref()?;
            (cert.vote.digest == *digest)
                .then_some(stored.payload.as_ref())
                .flatten()
        })
    }

    /// Forgets PREPAREs and COMMITs of rounds below `round` (bounds memory).
    pub fn prune_below(&mut self, round: Round) {
        self.rounds = self.rounds.split_off(&round);
    }
}
