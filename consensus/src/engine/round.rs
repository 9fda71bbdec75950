//! The round state machine: what each verified message does at the current height, and
//! the PBFT/QBFT rules that fire on the resulting state (see the rule map in the parent
//! module). Also the signing guard, through which every signature passes.

use crate::message::{
    highest_prepared, CommitCertificate, Message, MessageError, MessageKind, PreparedCertificate,
    Proposal, RoundChange, SignedMessage, SignedRoundChange, Vote,
};
use crate::types::{Digest, Round};
use crate::votes::Added;

use super::{AcceptedProposal, Action, Engine, Evidence, PersistedState, TimerKind, Validity};

impl Engine {
    // ----- verified messages at the current height ----------------------------------

    pub(super) fn apply(&mut self, signer: usize, message: SignedMessage) {
        match &message.message {
            Message::Proposal(_) => self.on_proposal(message),
            Message::Prepare(vote) => {
                let vote = *vote;
                self.on_vote(MessageKind::Prepare, vote, signer, message)
            }
            Message::Commit(vote) => {
                let vote = *vote;
                self.on_vote(MessageKind::Commit, vote, signer, message)
            }
            Message::RoundChange { .. } => self.on_round_change(signer, message),
        }
    }

    pub(super) fn on_proposal(&mut self, message: SignedMessage) {
        let Message::Proposal(proposal) = &message.message else {
            return;
        };
        let round = proposal.round;
        let digest = Digest::of(&proposal.payload);
        if let Some(existing) = self.proposals.get(&round) {
            if existing.digest == digest {
                self.metrics.duplicates = self.metrics.duplicates.saturating_add(1);
            } else {
                let first = existing.message.clone();
                self.record_equivocation(first, message);
            }
            return;
        }
        if round.saturating_add(self.config.round_window) < self.round {
            self.metrics.old_round = self.metrics.old_round.saturating_add(1);
            return;
        }
        if round > self.round {
            // The proposal's justification (checked in `verify`) proves a quorum moved to
            // this round: follow it (QBFT, future-round proposal).
            self.metrics.round_jumps = self.metrics.round_jumps.saturating_add(1);
            self.enter_round(round, false);
        }
        self.accept_proposal(round, digest, message);
    }

    /// Forgets the verdict on `digest` and, if it is this round's proposal, asks for it
    /// again.
    pub(super) fn revalidate(&mut self, digest: Digest) {
        self.validity.remove(&digest);
        if let Some(current) = self.proposals.get(&self.round) {
            if current.digest == digest {
                let message = current.message.clone();
                self.accept_proposal(self.round, digest, message);
            }
        }
    }

    pub(super) fn accept_proposal(&mut self, round: Round, digest: Digest, message: SignedMessage) {
        if round == self.round && !self.validity.contains_key(&digest) {
            if let Message::Proposal(proposal) = &message.message {
                self.validity.insert(digest, Validity::Pending);
                self.actions.push(Action::ValidatePayload {
                    height: self.height,
                    round,
                    payload: proposal.payload.clone(),
                });
            }
        }
        self.proposals
            .insert(round, AcceptedProposal { digest, message });
    }

    pub(super) fn on_vote(
        &mut self,
        kind: MessageKind,
        vote: Vote,
        signer: usize,
        message: SignedMessage,
    ) {
        if vote.round.saturating_add(self.config.round_window) < self.round {
            self.metrics.old_round = self.metrics.old_round.saturating_add(1);
            return;
        }
        if vote.round > self.round.saturating_add(self.config.round_window) {
            self.metrics.future_dropped = self.metrics.future_dropped.saturating_add(1);
            return;
        }
        match self
            .votes
            .add_vote(kind, vote, signer, message.signature, &self.validators)
        {
            Added::New => {}
            Added::Duplicate | Added::Stale => {
                self.metrics.duplicates = self.metrics.duplicates.saturating_add(1)
            }
            Added::Conflict(first) => self.record_equivocation(*first, message),
        }
    }

    pub(super) fn on_round_change(&mut self, signer: usize, message: SignedMessage) {
        let Message::RoundChange {
            round_change,
            prepared_payload,
        } = &message.message
        else {
            return;
        };
        if round_change.round < self.round {
            self.metrics.old_round = self.metrics.old_round.saturating_add(1);
            // The sender is behind: answer with our own round change, once per round, so
            // that with f others it can apply the f+1 rule even if broadcasts were lost.
            self.help(signer);
            return;
        }
        let signed = SignedRoundChange {
            round_change: round_change.clone(),
            signer: message.signer,
            signature: message.signature,
        };
        match self
            .votes
            .add_round_change(signer, signed, prepared_payload.clone())
        {
            Added::New => {}
            Added::Duplicate | Added::Stale => {
                self.metrics.duplicates = self.metrics.duplicates.saturating_add(1)
            }
            Added::Conflict(first) => self.record_equivocation(*first, message),
        }
    }

    pub(super) fn help(&mut self, validator: usize) {
        if self.helped.contains(&validator) {
            return;
        }
        let own = self.signed_at_current(MessageKind::RoundChange).cloned();
        if let Some(message) = own {
            self.helped.push(validator);
            self.actions.push(Action::SendTo { validator, message });
        }
    }

    // ----- the round state machine --------------------------------------------------

    /// Applies every rule whose condition holds, until none does.
    pub(super) fn step(&mut self) {
        loop {
            if self.decided {
                return;
            }
            // PBFT committed-local: a quorum of COMMITs for one (round, digest), any round.
            if let Some((round, digest)) = self.votes.committed(self.validators.quorum()) {
                self.decide(round, digest);
                return;
            }
            // QBFT f+1 rule.
            if let Some(target) = self.round_to_jump_to() {
                self.metrics.round_jumps = self.metrics.round_jumps.saturating_add(1);
                self.enter_round(target, true);
                continue;
            }
            self.maybe_propose();
            if self.maybe_prepare() || self.maybe_commit() {
                continue;
            }
            return;
        }
    }

    pub(super) fn enter_round(&mut self, round: Round, send_round_change: bool) {
        assert!(round >= self.round, "rounds never go backwards");
        if round > 0 && (round > self.round || send_round_change) {
            self.metrics.round_changes = self.metrics.round_changes.saturating_add(1);
        }
        self.round = round;
        self.retransmits = 0;
        self.proposal_requested = false;
        self.helped.clear();
        let floor = round.saturating_sub(self.config.round_window);
        self.votes.prune_below(floor);
        self.proposals = self.proposals.split_off(&floor);
        // A rejection holds for the round it was judged in: the application's verdict may
        // depend on the moment (a block time just ahead of this node's clock, which a
        // byzantine proposer can aim at one validator). Kept, it would refuse for good the
        // payload a quorum locked on and must re-propose, and one proposer could stop the
        // height (ADR 0009: a byzantine proposer costs a round, no more).
        self.validity
            .retain(|_, verdict| *verdict != Validity::Invalid);
        self.actions.push(Action::SetTimer {
            height: self.height,
            round,
            kind: TimerKind::Round,
            after_ms: self.config.round_timeout_ms(round),
        });
        self.set_retransmit_timer();
        if send_round_change {
            // QBFT: the round change carries our lock (highest prepared certificate).
            let lock = self.lock().cloned();
            let lock_payload = lock.as_ref().and(self.persisted.lock_payload.clone());
            let message = Message::RoundChange {
                round_change: RoundChange {
                    height: self.height,
                    round,
                    prepared: lock,
                },
                prepared_payload: lock_payload,
            };
            self.sign_and_broadcast(message);
        }
    }

    /// QBFT f+1 rule: the highest round that at least `f + 1` validators' latest round
    /// changes reached, if above ours.
    pub(super) fn round_to_jump_to(&self) -> Option<Round> {
        let mut rounds = self.votes.rounds_above(self.round);
        let needed = self.validators.weak_quorum();
        if rounds.len() < needed {
            return None;
        }
        rounds.sort_unstable_by(|a, b| b.cmp(a));
        // `needed` = f + 1 ≥ 1 and there are at least that many rounds.
        rounds.get(needed.checked_sub(1)?).copied()
    }

    pub(super) fn maybe_propose(&mut self) {
        let round = self.round;
        if self.validators.proposer(self.height, round) != self.me
            || self.proposals.contains_key(&round)
            || self.signed_at_current(MessageKind::Proposal).is_some()
        {
            return;
        }
        if round == 0 {
            self.request_proposal();
            return;
        }
        // QBFT: propose in round r > 0 only with a quorum of round changes for r.
        let justification = self.round_change_justification(round);
        if justification.len() < self.validators.quorum() {
            return;
        }
        let prepared = highest_prepared(justification.iter().map(|s| &s.round_change))
            .map(|cert| cert.vote.digest);
        match prepared {
            // Re-propose the highest prepared payload.
            Some(digest) => match self.payload_of(&digest) {
                Some(payload) => self.propose(payload, justification),
                None => unreachable!("verified round changes carry their prepared payload"),
            },
            None => self.request_proposal(),
        }
    }

    pub(super) fn request_proposal(&mut self) {
        if !self.proposal_requested {
            self.proposal_requested = true;
            self.actions.push(Action::RequestProposal {
                height: self.height,
                round: self.round,
            });
        }
    }

    pub(super) fn round_change_justification(&self, round: Round) -> Vec<SignedRoundChange> {
        self.votes
            .round_changes_for(round)
            .map(|stored| stored.signed.clone())
            .collect()
    }

    pub(super) fn propose(&mut self, payload: Vec<u8>, justification: Vec<SignedRoundChange>) {
        let message = Message::Proposal(Proposal {
            height: self.height,
            round: self.round,
            payload,
            justification,
        });
        self.sign_and_broadcast(message);
    }

    /// PBFT prepare: the accepted proposal of this round is valid and we have not
    /// prepared yet.
    pub(super) fn maybe_prepare(&mut self) -> bool {
        let Some(digest) = self.current_valid_proposal() else {
            return false;
        };
        if self.signed_at_current(MessageKind::Prepare).is_some() {
            return false;
        }
        self.sign_and_broadcast(Message::Prepare(Vote {
            height: self.height,
            round: self.round,
            digest,
        }))
    }

    /// PBFT prepared → commit: lock first (persisted before the COMMIT goes out).
    pub(super) fn maybe_commit(&mut self) -> bool {
        // A guard for a later height (a state saved beyond the host's store, which is still
        // syncing up to it): nothing may be signed here, and that height's lock must not be
        // replaced by one of this lower height.
        if self.persisted.height > self.height {
            return false;
        }
        let Some(digest) = self.current_valid_proposal() else {
            return false;
        };
        let quorum = self.validators.quorum();
        if self.signed_at_current(MessageKind::Commit).is_some()
            || self.votes.count(MessageKind::Prepare, self.round, &digest) < quorum
        {
            return false;
        }
        let vote = Vote {
            height: self.height,
            round: self.round,
            digest,
        };
        let mut signatures = self.votes.certificate_signatures(
            MessageKind::Prepare,
            self.round,
            &digest,
            &self.validators,
        );
        signatures.truncate(quorum);
        let payload = self.payload_of(&digest);
        self.guard_at_current_height();
        if let Some(lock) = &self.persisted.lock {
            assert!(
                lock.vote.round <= vote.round,
                "a lock never moves to a lower round"
            );
        }
        self.persisted.lock = Some(PreparedCertificate { vote, signatures });
        self.persisted.lock_payload = payload;
        self.dirty = true;
        self.sign_and_broadcast(Message::Commit(vote))
    }

    pub(super) fn current_valid_proposal(&self) -> Option<Digest> {
        let proposal = self.proposals.get(&self.round)?;
        (self.validity.get(&proposal.digest) == Some(&Validity::Valid)).then_some(proposal.digest)
    }

    pub(super) fn decide(&mut self, round: Round, digest: Digest) {
        let Some(payload) = self.payload_of(&digest) else {
            // A quorum committed a proposal we never received: fetch the block.
            if !self.sync_requested {
                self.request_sync();
            }
            return;
        };
        let mut signatures = self.votes.certificate_signatures(
            MessageKind::Commit,
            round,
            &digest,
            &self.validators,
        );
        signatures.truncate(self.validators.quorum());
        assert!(
            signatures.len() >= self.validators.quorum(),
            "a decision needs a quorum of distinct COMMITs"
        );
        let certificate = CommitCertificate {
            vote: Vote {
                height: self.height,
                round,
                digest,
            },
            signatures,
        };
        self.metrics.heights_committed = self.metrics.heights_committed.saturating_add(1);
        self.actions.push(Action::Committed {
            height: self.height,
            payload,
            certificate,
        });
        self.decided = true;
    }

    // ----- helpers -------------------------------------------------------------------

    pub(super) fn payload_of(&self, digest: &Digest) -> Option<Vec<u8>> {
        for accepted in self.proposals.values() {
            if accepted.digest == *digest {
                if let Message::Proposal(proposal) = &accepted.message.message {
                    return Some(proposal.payload.clone());
                }
            }
        }
        if let Some(payload) = self.votes.payload_for(digest) {
            return Some(payload.clone());
        }
        match (self.lock(), &self.persisted.lock_payload) {
            (Some(lock), Some(payload)) if lock.vote.digest == *digest => Some(payload.clone()),
            _ => None,
        }
    }

    /// The message of `kind` we signed at the current `(height, round)`, if any.
    pub(super) fn signed_at_current(&self, kind: MessageKind) -> Option<&SignedMessage> {
        if self.persisted.height != self.height || self.persisted.round != self.round {
            return None;
        }
        self.persisted
            .signed
            .iter()
            .find(|message| message.message.kind() == kind)
    }

    pub(super) fn guard_at_current_height(&mut self) {
        if self.persisted.height < self.height {
            self.persisted = PersistedState::fresh(self.height);
        }
    }

    /// The signing guard (Aptos safety rules, CometBFT privval): never sign below the
    /// highest `(height, round)` signed at, and at that point only re-send what was
    /// signed. Returns the message to send, or `None` if signing is refused.
    pub(super) fn sign(&mut self, message: Message) -> Option<SignedMessage> {
        let key = (message.height(), message.round());
        let guard = (self.persisted.height, self.persisted.round);
        if key < guard {
            self.metrics.refused_signatures = self.metrics.refused_signatures.saturating_add(1);
            return None;
        }
        if key == guard {
            let existing = self
                .persisted
                .signed
                .iter()
                .find(|signed| signed.message.kind() == message.kind());
            if let Some(existing) = existing {
                let domain = self.validators.domain();
                if existing.message.signing_hash(domain) != message.signing_hash(domain) {
                    self.metrics.refused_signatures =
                        self.metrics.refused_signatures.saturating_add(1);
                }
                return Some(existing.clone());
            }
        } else {
            if key.0 > self.persisted.height {
                self.persisted = PersistedState::fresh(key.0);
            }
            self.persisted.round = key.1;
            self.persisted.signed.clear();
        }
        let signed = message.sign(&self.signing_key, self.validators.domain());
        self.persisted.signed.push(signed.clone());
        self.dirty = true;
        Some(signed)
    }

    pub(super) fn sign_and_broadcast(&mut self, message: Message) -> bool {
        let Some(signed) = self.sign(message) else {
            return false;
        };
        self.apply_own(&signed);
        self.actions.push(Action::Broadcast(signed));
        true
    }

    /// The state to hand over with this call's actions, if it changed ([`Ready::persist`]).
    pub(super) fn take_persist(&mut self) -> Option<PersistedState> {
        std::mem::take(&mut self.dirty).then(|| self.persisted.clone())
    }

    /// Counts a message we signed, as any other validator's.
    pub(super) fn apply_own(&mut self, signed: &SignedMessage) {
        match &signed.message {
            Message::Proposal(proposal) => {
                if !self.proposals.contains_key(&proposal.round) {
                    let digest = Digest::of(&proposal.payload);
                    self.accept_proposal(proposal.round, digest, signed.clone());
                }
            }
            Message::Prepare(vote) => {
                self.votes.add_vote(
                    MessageKind::Prepare,
                    *vote,
                    self.me,
                    signed.signature,
                    &self.validators,
                );
            }
            Message::Commit(vote) => {
                self.votes.add_vote(
                    MessageKind::Commit,
                    *vote,
                    self.me,
                    signed.signature,
                    &self.validators,
                );
            }
            Message::RoundChange {
                round_change,
                prepared_payload,
            } => {
                let own = SignedRoundChange {
                    round_change: round_change.clone(),
                    signer: signed.signer,
                    signature: signed.signature,
                };
                self.votes
                    .add_round_change(self.me, own, prepared_payload.clone());
            }
        }
    }

    pub(super) fn record_equivocation(&mut self, first: SignedMessage, second: SignedMessage) {
        self.metrics.equivocations = self.metrics.equivocations.saturating_add(1);
        if self.config.max_evidence == 0 {
            return;
        }
        // Bounded in bytes as well as in number: a byzantine proposer's conflicting
        // proposals each carry a payload of up to `MAX_PAYLOAD_BYTES`, and 64 pairs of them
        // held about 1 GiB. A pair larger than the whole budget is counted, not kept.
        let evidence = Evidence { first, second };
        let size = evidence_bytes(&evidence);
        if size > MAX_EVIDENCE_BYTES {
            return;
        }
        while self.evidence.len() >= self.config.max_evidence
            || self
                .evidence
                .iter()
                .map(evidence_bytes)
                .fold(size, usize::saturating_add)
                > MAX_EVIDENCE_BYTES
        {
            self.evidence.remove(0);
        }
        self.evidence.push(evidence);
    }

    pub(super) fn count_invalid(&mut self, error: &MessageError) {
        match error {
            MessageError::UnknownSigner(_) => {
                self.metrics.unknown_signers = self.metrics.unknown_signers.saturating_add(1)
            }
            MessageError::BadSignature(_) => {
                self.metrics.invalid_signatures = self.metrics.invalid_signatures.saturating_add(1)
            }
            _ => self.metrics.invalid_messages = self.metrics.invalid_messages.saturating_add(1),
        }
    }
}

/// The most memory equivocation evidence may hold, counted by [`evidence_bytes`].
pub(super) const MAX_EVIDENCE_BYTES: usize = 16 << 20;

/// About what a piece of evidence holds in memory: its payloads, and a fixed allowance for
/// the rest of each message (votes, signatures, a justification's round changes).
pub(super) fn evidence_bytes(evidence: &Evidence) -> usize {
    let message_bytes = |m: &SignedMessage| {
        512usize.saturating_add(match &m.message {
            Message::Proposal(p) => p
                .payload
                .len()
                .saturating_add(p.justification.len().saturating_mul(512)),
            Message::RoundChange {
                prepared_payload, ..
            } => prepared_payload.as_ref().map_or(0, Vec::len),
            Message::Prepare(_) | Message::Commit(_) => 0,
        })
    };
    message_bytes(&evidence.first).saturating_add(message_bytes(&evidence.second))
}
