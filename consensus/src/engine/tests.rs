//! Targeted tests, one rule at a time, driving a single engine by hand.

// Tests feed inputs whose `Ready` they do not always look at.
#![allow(unused_must_use)]

use ed25519_dalek::SigningKey;

use super::*;
use crate::message::{
    CertificateError, Message, MessageError, MessageKind, Proposal, RoundChange, SignedRoundChange,
    Vote,
};
use crate::types::ChainDomain;

const N: usize = 4;

fn key(i: usize) -> SigningKey {
    SigningKey::from_bytes(&[i as u8 + 1; 32])
}

fn set() -> ValidatorSet {
    ValidatorSet::new(
        (0..N)
            .map(|i| PublicKey::from(&key(i).verifying_key()))
            .collect(),
    )
    .expect("valid set")
}

fn engine(me: usize, persisted: Option<PersistedState>, height: Height) -> Engine {
    Engine::new(Config::default(), set(), key(me), persisted, height).expect("engine")
}

fn started(me: usize) -> (Engine, Ready) {
    let mut e = engine(me, None, 1);
    let actions = e.handle(Input::Start { now_ms: 0 });
    (e, actions)
}

fn vote(round: Round, payload: &[u8]) -> Vote {
    Vote {
        height: 1,
        round,
        digest: Digest::of(payload),
    }
}

fn prepare(from: usize, round: Round, payload: &[u8]) -> Input {
    Input::Message(Message::Prepare(vote(round, payload)).sign(&key(from), &ChainDomain::UNBOUND))
}

fn commit(from: usize, round: Round, payload: &[u8]) -> Input {
    Input::Message(Message::Commit(vote(round, payload)).sign(&key(from), &ChainDomain::UNBOUND))
}

fn proposal(
    from: usize,
    round: Round,
    payload: &[u8],
    justification: Vec<SignedRoundChange>,
) -> Input {
    Input::Message(
        Message::Proposal(Proposal {
            height: 1,
            round,
            payload: payload.to_vec(),
            justification,
        })
        .sign(&key(from), &ChainDomain::UNBOUND),
    )
}

fn prepared_certificate(round: Round, payload: &[u8], signers: &[usize]) -> PreparedCertificate {
    let v = vote(round, payload);
    PreparedCertificate {
        vote: v,
        signatures: signers
            .iter()
            .map(|&i| {
                let signed = Message::Prepare(v).sign(&key(i), &ChainDomain::UNBOUND);
                (signed.signer, signed.signature)
            })
            .collect(),
    }
}

fn round_change(from: usize, round: Round, prepared: Option<(Round, &[u8])>) -> SignedRoundChange {
    RoundChange {
        height: 1,
        round,
        prepared: prepared.map(|(r, p)| prepared_certificate(r, p, &[0, 1, 3])),
    }
    .sign(&key(from), &ChainDomain::UNBOUND)
}

fn round_change_message(from: usize, round: Round, prepared: Option<(Round, &[u8])>) -> Input {
    let signed = round_change(from, round, prepared);
    Input::Message(SignedMessage {
        message: Message::RoundChange {
            round_change: signed.round_change,
            prepared_payload: prepared.map(|(_, p)| p.to_vec()),
        },
        signer: signed.signer,
        signature: signed.signature,
    })
}

fn broadcasts(actions: &[Action]) -> Vec<&Message> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::Broadcast(m) => Some(&m.message),
            _ => None,
        })
        .collect()
}

fn committed(actions: &[Action]) -> Option<(Height, Vec<u8>, CommitCertificate)> {
    actions.iter().find_map(|a| match a {
        Action::Committed {
            height,
            payload,
            certificate,
        } => Some((*height, payload.clone(), certificate.clone())),
        _ => None,
    })
}

fn validate(e: &mut Engine, round: Round, payload: &[u8]) -> Ready {
    e.handle(Input::ValidationResult {
        height: 1,
        round,
        digest: Digest::of(payload),
        valid: true,
    })
}

/// Drives validator 0 to prepared on `payload` in round 0 (proposer of (1, 0) is 1).
fn prepared_engine(payload: &[u8]) -> Engine {
    let (mut e, _) = started(0);
    e.handle(proposal(1, 0, payload, vec![]));
    validate(&mut e, 0, payload);
    e.handle(prepare(1, 0, payload));
    let actions = e.handle(prepare(2, 0, payload));
    assert!(matches!(broadcasts(&actions)[..], [Message::Commit(_)]));
    e
}

#[test]
fn normal_case_prepares_commits_and_certifies() {
    let (mut e, actions) = started(0);
    assert!(matches!(
        actions[..],
        [
            Action::SetTimer {
                height: 1,
                round: 0,
                kind: TimerKind::Round,
                ..
            },
            Action::SetTimer {
                kind: TimerKind::Retransmit,
                ..
            }
        ]
    ));
    let payload = b"block one";
    let actions = e.handle(proposal(1, 0, payload, vec![]));
    assert!(matches!(
        actions[..],
        [Action::ValidatePayload {
            height: 1,
            round: 0,
            ..
        }]
    ));
    // PBFT §4.2: a valid proposal is answered with PREPARE, after persisting the vote.
    let actions = validate(&mut e, 0, payload);
    assert!(
        actions.persist.as_ref().is_some_and(|s| s
            .signed
            .iter()
            .any(|m| m.message.kind() == MessageKind::Prepare)),
        "the PREPARE is in the state persisted before the actions run"
    );
    assert!(
        matches!(broadcasts(&actions)[..], [Message::Prepare(v)] if v.digest == Digest::of(payload))
    );
    e.handle(prepare(1, 0, payload));
    let actions = e.handle(prepare(2, 0, payload));
    // Prepared: the lock is persisted before the COMMIT leaves (the `Ready` hands the state
    // to persist apart from, and before, the actions).
    let persisted = actions.persist.as_ref().expect("lock persisted");
    assert!(
        persisted.lock.is_some(),
        "the lock must be durable before the COMMIT goes out"
    );
    assert!(
        persisted
            .signed
            .iter()
            .any(|m| m.message.kind() == MessageKind::Commit),
        "the COMMIT itself is in the persisted state"
    );
    assert!(actions
        .iter()
        .any(|a| matches!(a, Action::Broadcast(m) if m.message.kind() == MessageKind::Commit)));
    assert_eq!(e.lock().map(|c| c.vote), Some(vote(0, payload)));
    e.handle(commit(1, 0, payload));
    let actions = e.handle(commit(3, 0, payload));
    let (height, committed_payload, certificate) = committed(&actions).expect("decided");
    assert_eq!((height, committed_payload.as_slice()), (1, &payload[..]));
    certificate
        .verify(&set(), 1, &Digest::of(payload))
        .expect("certificate verifies");
    assert_eq!(e.height(), 2);
    assert!(actions.iter().any(|a| matches!(
        a,
        Action::SetTimer {
            height: 2,
            round: 0,
            ..
        }
    )));
}

#[test]
fn proposer_requests_a_payload_and_proposes_it() {
    let (mut e, actions) = started(1);
    assert!(actions.contains(&Action::RequestProposal {
        height: 1,
        round: 0
    }));
    let actions = e.handle(Input::ProposalReady {
        height: 1,
        round: 0,
        payload: b"p".to_vec(),
    });
    let sent = broadcasts(&actions);
    assert!(matches!(sent[0], Message::Proposal(p) if p.payload == b"p"));
    // Its own payload needs no validation round-trip: it prepares at once.
    assert!(matches!(sent[1], Message::Prepare(_)));
}

#[test]
fn round_change_carries_the_lock() {
    let mut e = prepared_engine(b"locked");
    let actions = e.handle(Input::Timeout {
        height: 1,
        round: 0,
        kind: TimerKind::Round,
        now_ms: 1_000,
    });
    let [Message::RoundChange {
        round_change,
        prepared_payload,
    }] = broadcasts(&actions)[..]
    else {
        panic!("expected one round change, got {actions:?}")
    };
    assert_eq!(round_change.round, 1);
    let lock = round_change.prepared.as_ref().expect("lock carried");
    assert_eq!(lock.vote, vote(0, b"locked"));
    lock.verify(&set()).expect("prepared certificate verifies");
    assert_eq!(prepared_payload.as_deref(), Some(&b"locked"[..]));
    assert_eq!(e.metrics().round_changes, 1);
    assert!(actions.iter().any(|a| matches!(
        a,
        Action::SetTimer {
            round: 1,
            after_ms: 2_000,
            ..
        }
    )));
}

#[test]
fn new_proposer_reproposes_the_highest_prepared_payload() {
    // Validator 2 proposes (1, 1). Round changes: validator 0 prepared "old" in round 0,
    // validator 1 nothing; validator 2 itself times out into round 1.
    let (mut e, _) = started(2);
    e.handle(Input::Timeout {
        height: 1,
        round: 0,
        kind: TimerKind::Round,
        now_ms: 1_000,
    });
    e.handle(round_change_message(1, 1, None));
    let actions = e.handle(round_change_message(0, 1, Some((0, b"old"))));
    assert!(
        !actions
            .iter()
            .any(|a| matches!(a, Action::RequestProposal { .. })),
        "a prepared payload is re-proposed, not replaced"
    );
    let Some(Message::Proposal(p)) = broadcasts(&actions).first().copied() else {
        panic!("expected a proposal, got {actions:?}")
    };
    assert_eq!((p.round, p.payload.as_slice()), (1, &b"old"[..]));
    assert_eq!(p.justification.len(), 3);
}

#[test]
fn new_proposer_without_prepared_payload_asks_the_application() {
    let (mut e, _) = started(2);
    e.handle(Input::Timeout {
        height: 1,
        round: 0,
        kind: TimerKind::Round,
        now_ms: 1_000,
    });
    e.handle(round_change_message(1, 1, None));
    let actions = e.handle(round_change_message(3, 1, None));
    assert!(actions.contains(&Action::RequestProposal {
        height: 1,
        round: 1
    }));
    let actions = e.handle(Input::ProposalReady {
        height: 1,
        round: 1,
        payload: b"fresh".to_vec(),
    });
    assert!(matches!(broadcasts(&actions)[0], Message::Proposal(p) if p.justification.len() == 3));
}

#[test]
fn unjustified_proposals_are_rejected() {
    let quorum_without_cert = vec![
        round_change(0, 1, None),
        round_change(1, 1, None),
        round_change(3, 1, None),
    ];
    let with_cert = vec![
        round_change(0, 1, Some((0, b"prepared"))),
        round_change(1, 1, None),
        round_change(3, 1, None),
    ];
    let cases: Vec<(&str, Input)> = vec![
        ("no justification", proposal(2, 1, b"x", vec![])),
        (
            "less than a quorum",
            proposal(2, 1, b"x", quorum_without_cert[..2].to_vec()),
        ),
        (
            "payload differs from the prepared one",
            proposal(2, 1, b"other", with_cert.clone()),
        ),
        (
            "duplicate signer",
            proposal(
                2,
                1,
                b"x",
                vec![
                    quorum_without_cert[0].clone(),
                    quorum_without_cert[0].clone(),
                    quorum_without_cert[1].clone(),
                ],
            ),
        ),
        (
            "round change for another round",
            proposal(
                2,
                1,
                b"x",
                vec![
                    round_change(0, 2, None),
                    round_change(1, 2, None),
                    round_change(3, 2, None),
                ],
            ),
        ),
        (
            "justification on round 0",
            proposal(1, 0, b"x", quorum_without_cert.clone()),
        ),
        (
            "wrong proposer",
            proposal(3, 1, b"x", quorum_without_cert.clone()),
        ),
    ];
    for (name, input) in cases {
        let (mut e, _) = started(0);
        let actions = e.handle(input);
        assert!(actions.is_empty(), "{name}: {actions:?}");
        assert_eq!(e.metrics().invalid_messages, 1, "{name}");
        assert_eq!(e.round(), 0, "{name}");
    }
    // The same proposal with a correct justification is accepted (and moves the round).
    let (mut e, _) = started(0);
    let actions = e.handle(proposal(2, 1, b"prepared", with_cert));
    assert!(actions
        .iter()
        .any(|a| matches!(a, Action::ValidatePayload { round: 1, .. })));
    assert_eq!(e.round(), 1);
    assert_eq!(e.metrics().round_jumps, 1);
}

#[test]
fn f_plus_one_round_changes_make_a_lagging_validator_jump() {
    let (mut e, _) = started(0);
    // One validator far ahead is not enough (it may be byzantine).
    let actions = e.handle(round_change_message(1, 7, None));
    assert!(actions.is_empty());
    assert_eq!(e.round(), 0);
    // f + 1 = 2: jump to the highest round two of them reached (5), not to 7.
    let actions = e.handle(round_change_message(2, 5, None));
    assert_eq!(e.round(), 5);
    assert!(
        matches!(broadcasts(&actions)[..], [Message::RoundChange { round_change, .. }] if round_change.round == 5)
    );
    assert_eq!(e.metrics().round_jumps, 1);
    // A round change for a lower round is answered with ours, once.
    let actions = e.handle(round_change_message(3, 2, None));
    assert!(matches!(actions[..], [Action::SendTo { validator: 3, .. }]));
    assert!(e.handle(round_change_message(3, 3, None)).is_empty());
}

#[test]
fn equivocation_duplicates_and_stale_messages_are_ignored_and_counted() {
    let (mut e, _) = started(0);
    e.handle(prepare(1, 0, b"a"));
    e.handle(prepare(1, 0, b"a"));
    assert_eq!(e.metrics().duplicates, 1);
    e.handle(prepare(1, 0, b"b"));
    assert_eq!(e.metrics().equivocations, 1);
    let evidence = &e.evidence()[0];
    assert_ne!(evidence.first.message, evidence.second.message);
    assert_eq!(evidence.first.signer, evidence.second.signer);
    // Equivocating proposer.
    e.handle(proposal(1, 0, b"a", vec![]));
    e.handle(proposal(1, 0, b"b", vec![]));
    assert_eq!(e.metrics().equivocations, 2);
    // The conflicting prepare did not count: "b" has no prepares.
    e.handle(prepare(2, 0, b"b"));
    assert_eq!(e.votes.count(MessageKind::Prepare, 0, &Digest::of(b"b")), 1);
    // Bad signature, unknown signer, old height.
    let mut forged = Message::Prepare(vote(0, b"a")).sign(&key(3), &ChainDomain::UNBOUND);
    forged.signature.0[0] ^= 1;
    e.handle(Input::Message(forged));
    assert_eq!(e.metrics().invalid_signatures, 1);
    e.handle(Input::Message(
        Message::Prepare(vote(0, b"a")).sign(&key(9), &ChainDomain::UNBOUND),
    ));
    assert_eq!(e.metrics().unknown_signers, 1);
    let mut later = engine(0, None, 5);
    later.handle(Input::Start { now_ms: 0 });
    later.handle(prepare(1, 0, b"a"));
    assert_eq!(later.metrics().old_height, 1);
}

#[test]
fn restart_never_signs_a_different_digest_at_the_same_height_and_round() {
    let (mut e, _) = started(0);
    e.handle(proposal(1, 0, b"first", vec![]));
    let actions = validate(&mut e, 0, b"first");
    let persisted = actions
        .persist
        .clone()
        .expect("prepare persisted before it is sent");
    // Crash; restart from the persisted state only. The byzantine proposer now offers
    // another payload for the same round.
    let mut restarted = engine(0, Some(persisted), 1);
    let mut sent = broadcasts(&restarted.handle(Input::Start { now_ms: 5 }))
        .into_iter()
        .cloned()
        .collect::<Vec<_>>();
    sent.extend(
        broadcasts(&restarted.handle(proposal(1, 0, b"second", vec![])))
            .into_iter()
            .cloned(),
    );
    sent.extend(
        broadcasts(&validate(&mut restarted, 0, b"second"))
            .into_iter()
            .cloned(),
    );
    let prepares: Vec<_> = sent
        .iter()
        .filter_map(|m| match m {
            Message::Prepare(v) => Some(v.digest),
            _ => None,
        })
        .collect();
    assert!(!prepares.is_empty(), "the earlier prepare is re-sent");
    assert!(
        prepares.iter().all(|d| *d == Digest::of(b"first")),
        "{prepares:?}"
    );
}

#[test]
fn restarted_proposer_resends_its_proposal_instead_of_a_new_one() {
    let (mut e, _) = started(1);
    let actions = e.handle(Input::ProposalReady {
        height: 1,
        round: 0,
        payload: b"mine".to_vec(),
    });
    let persisted = actions.persist.clone().expect("persisted");
    let mut restarted = engine(1, Some(persisted), 1);
    let actions = restarted.handle(Input::Start { now_ms: 0 });
    assert!(!actions
        .iter()
        .any(|a| matches!(a, Action::RequestProposal { .. })));
    let actions2 = restarted.handle(Input::ProposalReady {
        height: 1,
        round: 0,
        payload: b"different".to_vec(),
    });
    for message in broadcasts(&actions)
        .into_iter()
        .chain(broadcasts(&actions2))
    {
        if let Message::Proposal(p) = message {
            assert_eq!(p.payload, b"mine");
        }
    }
}

#[test]
fn restarted_validator_keeps_its_lock() {
    let e = prepared_engine(b"locked");
    let persisted = e.persisted_state().clone();
    let mut restarted = engine(0, Some(persisted), 1);
    restarted.handle(Input::Start { now_ms: 0 });
    assert_eq!(restarted.lock().map(|c| c.vote), Some(vote(0, b"locked")));
    let actions = restarted.handle(Input::Timeout {
        height: 1,
        round: 0,
        kind: TimerKind::Round,
        now_ms: 1_000,
    });
    assert!(
        matches!(broadcasts(&actions)[..], [Message::RoundChange { round_change, .. }] if round_change.prepared.is_some())
    );
}

#[test]
fn corrupt_persisted_state_is_refused() {
    let e = prepared_engine(b"locked");
    let mut persisted = e.persisted_state().clone();
    persisted.lock_payload = Some(b"something else".to_vec());
    assert!(matches!(
        Engine::new(Config::default(), set(), key(0), Some(persisted), 1),
        Err(EngineError::InvalidPersistedState(_))
    ));
    let other = e.persisted_state().clone();
    assert!(matches!(
        Engine::new(Config::default(), set(), key(1), Some(other), 1),
        Err(EngineError::InvalidPersistedState(_))
    ));
    assert!(matches!(
        Engine::new(Config::default(), set(), key(7), None, 1),
        Err(EngineError::NotAValidator(_))
    ));
}

#[test]
fn validators_ahead_trigger_sync_and_sync_verifies_certificates() {
    let (mut e, _) = started(0);
    // f + 1 = 2 validators seen at height 3.
    let ahead = |from: usize| {
        Input::Message(
            Message::Prepare(Vote {
                height: 3,
                round: 0,
                digest: Digest::of(b"x"),
            })
            .sign(&key(from), &ChainDomain::UNBOUND),
        )
    };
    assert!(!e
        .handle(ahead(1))
        .iter()
        .any(|a| matches!(a, Action::SyncNeeded { .. })));
    assert!(e
        .handle(ahead(2))
        .contains(&Action::SyncNeeded { height: 1 }));
    // A certificate for height 1 from a quorum of commits.
    let payload = b"synced";
    let v = vote(0, payload);
    let certificate = CommitCertificate {
        vote: v,
        signatures: [1, 2, 3]
            .iter()
            .map(|&i| {
                let s = Message::Commit(v).sign(&key(i), &ChainDomain::UNBOUND);
                (s.signer, s.signature)
            })
            .collect(),
    };
    let mut forged = certificate.clone();
    forged.signatures[0].1 .0[3] ^= 1;
    let actions = e.handle(Input::CommittedViaSync {
        height: 1,
        payload: payload.to_vec(),
        certificate: forged,
    });
    assert!(committed(&actions).is_none());
    assert_eq!(e.metrics().invalid_certificates, 1);
    let actions = e.handle(Input::CommittedViaSync {
        height: 1,
        payload: payload.to_vec(),
        certificate,
    });
    assert_eq!(committed(&actions).map(|c| c.0), Some(1));
    assert_eq!(e.height(), 2);
    assert_eq!(e.metrics().heights_synced, 1);
}

#[test]
fn buffered_future_height_messages_are_applied_on_arrival() {
    let (mut e, _) = started(0);
    // Height 2's proposal and prepares arrive before height 1 is decided.
    let h2 = |m: Message, from: usize| Input::Message(m.sign(&key(from), &ChainDomain::UNBOUND));
    let v2 = Vote {
        height: 2,
        round: 0,
        digest: Digest::of(b"two"),
    };
    e.handle(h2(
        Message::Proposal(Proposal {
            height: 2,
            round: 0,
            payload: b"two".to_vec(),
            justification: vec![],
        }),
        2,
    ));
    e.handle(h2(Message::Prepare(v2), 2));
    assert_eq!(e.metrics().future_buffered, 2);
    for i in 1..4 {
        e.handle(commit(i, 0, b"one"));
    }
    // Height 1 is decided (its payload arrives through sync... here via the proposal).
    let actions = e.handle(proposal(1, 0, b"one", vec![]));
    assert_eq!(committed(&actions).map(|c| c.0), Some(1));
    assert_eq!(e.height(), 2);
    assert!(actions
        .iter()
        .any(|a| matches!(a, Action::ValidatePayload { height: 2, .. })));
}

#[test]
fn a_quorum_of_commits_without_the_payload_asks_for_sync() {
    let (mut e, _) = started(0);
    let mut last = Ready::default();
    for i in 1..4 {
        last = e.handle(commit(i, 0, b"unseen"));
    }
    assert!(last.contains(&Action::SyncNeeded { height: 1 }));
    assert_eq!(e.height(), 1);
}

#[test]
fn certificates_with_duplicate_foreign_or_too_few_signers_are_rejected() {
    let payload = b"final";
    let digest = Digest::of(payload);
    let v = vote(2, payload);
    let sig = |i: usize| {
        let s = Message::Commit(v).sign(&key(i), &ChainDomain::UNBOUND);
        (s.signer, s.signature)
    };
    let good = CommitCertificate {
        vote: v,
        signatures: vec![sig(0), sig(1), sig(3)],
    };
    good.verify(&set(), 1, &digest).expect("valid");
    let with = |signatures| CommitCertificate {
        vote: v,
        signatures,
    };
    assert!(matches!(
        with(vec![sig(0), sig(0), sig(1)]).verify(&set(), 1, &digest),
        Err(CertificateError::DuplicateSigner(_))
    ));
    assert!(matches!(
        with(vec![sig(0), sig(1), sig(9)]).verify(&set(), 1, &digest),
        Err(CertificateError::ForeignSigner(_))
    ));
    assert!(matches!(
        with(vec![sig(0), sig(1)]).verify(&set(), 1, &digest),
        Err(CertificateError::NotEnoughSignatures { got: 2, quorum: 3 })
    ));
    // A PREPARE signature is not a COMMIT signature (domain separation).
    let prepare = Message::Prepare(v).sign(&key(3), &ChainDomain::UNBOUND);
    assert!(matches!(
        with(vec![sig(0), sig(1), (prepare.signer, prepare.signature)]).verify(&set(), 1, &digest),
        Err(CertificateError::BadSignature(_))
    ));
    assert!(matches!(
        good.verify(&set(), 2, &digest),
        Err(CertificateError::WrongHeight { .. })
    ));
    assert!(matches!(
        good.verify(&set(), 1, &Digest::of(b"other")),
        Err(CertificateError::WrongDigest { .. })
    ));
    // Observers read certificates as JSON.
    let json = serde_json::to_string(&good).expect("json");
    let back: CommitCertificate = serde_json::from_str(&json).expect("parse");
    back.verify(&set(), 1, &digest).expect("still valid");
}

#[test]
fn timeouts_grow_with_the_round_and_stale_timers_are_ignored() {
    let config = Config::default();
    assert_eq!(config.round_timeout_ms(0), 1_000);
    assert_eq!(config.round_timeout_ms(3), 8_000);
    assert_eq!(config.round_timeout_ms(100), 64_000);
    let (mut e, _) = started(0);
    assert!(e
        .handle(Input::Timeout {
            height: 1,
            round: 3,
            kind: TimerKind::Round,
            now_ms: 0
        })
        .is_empty());
    assert_eq!(e.round(), 0);
}

#[test]
fn message_errors_are_typed() {
    let signed = Message::Prepare(vote(0, b"a")).sign(&key(0), &ChainDomain::UNBOUND);
    assert_eq!(signed.verify(&set(), &mut StrictVerifier), Ok(0));
    let stranger = Message::Prepare(vote(0, b"a")).sign(&key(8), &ChainDomain::UNBOUND);
    assert!(matches!(
        stranger.verify(&set(), &mut StrictVerifier),
        Err(MessageError::UnknownSigner(_))
    ));
}

#[test]
fn an_undecided_round_re_sends_what_it_signed() {
    let (mut e, _) = started(0);
    e.handle(proposal(1, 0, b"p", vec![]));
    validate(&mut e, 0, b"p");
    let tick = |e: &mut Engine, round| {
        e.handle(Input::Timeout {
            height: 1,
            round,
            kind: TimerKind::Retransmit,
            now_ms: 500,
        })
    };
    let actions = tick(&mut e, 0);
    assert!(matches!(broadcasts(&actions)[..], [Message::Prepare(_)]));
    assert!(actions.iter().any(|a| matches!(
        a,
        Action::SetTimer {
            kind: TimerKind::Retransmit,
            ..
        }
    )));
    assert_eq!(e.metrics().retransmissions, 1);
    // A retransmission timer of another round is stale.
    assert!(tick(&mut e, 4).is_empty());
}

#[test]
fn a_persisted_state_beyond_the_store_is_kept_while_lower_heights_are_decided() {
    // Saved at height 3, round 2, with a lock: the host's store only has height 0 (its block
    // writes were lost, or it was restored from an older backup).
    let payload = b"locked at three";
    let v = Vote {
        height: 3,
        round: 2,
        digest: Digest::of(payload),
    };
    let lock = PreparedCertificate {
        vote: v,
        signatures: [0, 1, 2]
            .iter()
            .map(|&i| {
                let signed = Message::Prepare(v).sign(&key(i), &ChainDomain::UNBOUND);
                (signed.signer, signed.signature)
            })
            .collect(),
    };
    let saved = PersistedState {
        height: 3,
        round: 2,
        lock: Some(lock.clone()),
        lock_payload: Some(payload.to_vec()),
        signed: vec![Message::Commit(v).sign(&key(0), &ChainDomain::UNBOUND)],
    };
    let mut e = engine(0, Some(saved.clone()), 1);
    e.handle(Input::Start { now_ms: 0 });
    // Height 1 gets to prepared among the others (proposer of (1, 0) is validator 1).
    let mut ours = Vec::new();
    let mut persisted = Vec::new();
    for input in [
        proposal(1, 0, b"block one", vec![]),
        Input::ValidationResult {
            height: 1,
            round: 0,
            digest: Digest::of(b"block one"),
            valid: true,
        },
        prepare(1, 0, b"block one"),
        prepare(2, 0, b"block one"),
        prepare(3, 0, b"block one"),
        commit(1, 0, b"block one"),
        commit(2, 0, b"block one"),
        commit(3, 0, b"block one"),
    ] {
        let ready = e.handle(input);
        ours.extend(broadcasts(&ready).into_iter().cloned());
        persisted.extend(ready.persist);
    }
    // Nothing signed below the guard, and the guard and lock of height 3 untouched.
    assert!(ours.is_empty(), "signed below the guard: {ours:?}");
    assert_eq!(e.persisted_state(), &saved);
    assert!(persisted.iter().all(|state| *state == saved));
    // Height 1 was still decided by the others' quorum.
    assert_eq!(e.height(), 2);
}

#[test]
fn retransmissions_back_off_within_a_stuck_round_and_reset_in_the_next() {
    let (mut e, _) = started(0);
    e.handle(proposal(1, 0, b"p", vec![]));
    validate(&mut e, 0, b"p");
    let retransmit_delay = |ready: &Ready| {
        ready.iter().find_map(|a| match a {
            Action::SetTimer {
                kind: TimerKind::Retransmit,
                after_ms,
                ..
            } => Some(*after_ms),
            _ => None,
        })
    };
    let mut delays = Vec::new();
    for _ in 0..6 {
        let ready = e.handle(Input::Timeout {
            height: 1,
            round: 0,
            kind: TimerKind::Retransmit,
            now_ms: 0,
        });
        assert!(
            !broadcasts(&ready).is_empty(),
            "each firing re-sends what was signed"
        );
        delays.extend(retransmit_delay(&ready));
    }
    let base = Config::default().retransmit_interval_ms;
    assert_eq!(
        delays,
        vec![
            2 * base,
            4 * base,
            8 * base,
            16 * base,
            16 * base,
            16 * base
        ]
    );
    // The next round starts from the base interval again.
    let ready = e.handle(Input::Timeout {
        height: 1,
        round: 0,
        kind: TimerKind::Round,
        now_ms: 0,
    });
    let next = e.handle(Input::Timeout {
        height: 1,
        round: 1,
        kind: TimerKind::Retransmit,
        now_ms: 0,
    });
    assert_eq!(e.round(), 1);
    let first = retransmit_delay(&ready).or(retransmit_delay(&next));
    assert!(
        first.is_some_and(|d| d <= 2 * base),
        "the backoff restarts in a new round: {first:?}"
    );
}

/// The payload validations an engine asked for, as `(round, payload)`.
fn validations(actions: &[Action]) -> Vec<(Round, Vec<u8>)> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::ValidatePayload { round, payload, .. } => Some((*round, payload.clone())),
            _ => None,
        })
        .collect()
}

/// A proposal's rejection holds for its round only: the application's verdict may depend on
/// the moment (a block time just ahead of this validator's clock, which a byzantine proposer
/// can aim at one validator while the others lock on the payload). When a quorum's round
/// changes force the same payload again in the next round, it is judged again, and prepared
/// if valid now. Before, the cached rejection refused it in every round: one proposer could
/// stop the height (its withheld vote and this validator's made the quorum unreachable).
#[test]
fn a_payload_rejected_in_one_round_is_judged_again_when_re_proposed() {
    let x: &[u8] = b"x";
    let justification = || {
        vec![
            round_change(1, 1, Some((0, x))),
            round_change(2, 1, Some((0, x))),
            round_change(3, 1, None),
        ]
    };
    let timeout = |e: &mut Engine| {
        e.handle(Input::Timeout {
            height: 1,
            round: 0,
            kind: TimerKind::Round,
            now_ms: 1_000,
        })
    };
    let reject = |e: &mut Engine, round: Round| {
        e.handle(Input::ValidationResult {
            height: 1,
            round,
            digest: Digest::of(x),
            valid: false,
        })
    };
    let prepares = |actions: &Ready| {
        broadcasts(actions)
            .iter()
            .any(|m| matches!(m, Message::Prepare(v) if v.round == 1))
    };

    // Rejected in round 0, then re-proposed in round 1: validated again, and prepared.
    let (mut e, _) = started(0);
    let actions = e.handle(proposal(1, 0, x, vec![]));
    assert_eq!(validations(&actions), vec![(0, x.to_vec())]);
    reject(&mut e, 0);
    timeout(&mut e);
    let actions = e.handle(proposal(2, 1, x, justification()));
    assert_eq!(validations(&actions), vec![(1, x.to_vec())], "{actions:?}");
    let actions = validate(&mut e, 1, x);
    assert!(prepares(&actions), "valid now: prepared ({actions:?})");

    // The round-0 verdict arrives only after the re-proposal: it is not the round-1 verdict.
    let (mut e, _) = started(0);
    e.handle(proposal(1, 0, x, vec![]));
    timeout(&mut e);
    let actions = e.handle(proposal(2, 1, x, justification()));
    assert!(
        validations(&actions).is_empty(),
        "still being judged: {actions:?}"
    );
    let actions = reject(&mut e, 0);
    assert_eq!(validations(&actions), vec![(1, x.to_vec())], "{actions:?}");
    let actions = validate(&mut e, 1, x);
    assert!(prepares(&actions), "{actions:?}");

    // A rejection in the current round stands.
    let (mut e, _) = started(0);
    e.handle(proposal(1, 0, x, vec![]));
    reject(&mut e, 0);
    let actions = e.handle(prepare(2, 0, x));
    assert!(
        !prepares(&actions) && broadcasts(&actions).is_empty(),
        "{actions:?}"
    );
}

/// Equivocation evidence is bounded in bytes: a byzantine proposer's conflicting proposals
/// of a round each carry a large payload, and the 64 pairs kept held about 1 GiB at the
/// largest payloads. The equivocations are all counted; the newest evidence is kept.
#[test]
fn equivocation_evidence_holds_a_bounded_number_of_bytes() {
    let (mut e, _) = started(0);
    let payload = |i: u8| vec![i; 2 << 20];
    e.handle(proposal(1, 0, &payload(0), vec![]));
    for i in 1..=24u8 {
        e.handle(proposal(1, 0, &payload(i), vec![]));
    }
    assert_eq!(e.metrics().equivocations, 24);
    let held: usize = e.evidence().iter().map(round::evidence_bytes).sum();
    assert!(
        held <= round::MAX_EVIDENCE_BYTES,
        "{held} bytes of evidence"
    );
    let newest = e.evidence().last().expect("the newest is kept");
    assert!(
        matches!(&newest.second.message, Message::Proposal(p) if p.payload == payload(24)),
        "the newest conflict is kept"
    );
}
