//! Crafted signatures against the one verification rule (ZIP-215, docs/adr/0007): torsion
//! components on `R` and on the key, non-canonical encodings of `R` and `s`, small-order
//! keys, valid signatures and garbage, mixed into random batches. Every transaction's
//! batch verdict must equal its single verdict, the single verdict must be the one ZIP-215
//! prescribes, and an independent ZIP-215 implementation (ed25519-consensus) must agree.

use curve25519_dalek::constants::EIGHT_TORSION;
use curve25519_dalek::edwards::{CompressedEdwardsY, EdwardsPoint};
use curve25519_dalek::scalar::Scalar;
use proptest::prelude::*;
use sha2::{Digest, Sha512};

use super::tests::batch_verdicts_match_single_ones;
use super::*;
use crate::testkit::key;

/// ℓ, the prime order of the base point, little-endian.
const ELL: [u8; 32] = [
    0xed, 0xd3, 0xf5, 0x5c, 0x1a, 0x63, 0x12, 0x58, 0xd6, 0x9c, 0xf7, 0xa2, 0xde, 0xf9, 0xde, 0x14,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x10,
];

/// How a generated signature is made.
#[derive(Debug, Clone, Copy)]
enum Craft {
    /// An ordinary signature by ed25519-dalek.
    Valid,
    /// `R + T` for the `i`-th eight-torsion point `T`, `s` computed for that `R`.
    TorsionOnR(usize),
    /// A mixed-order key `A + T` (the signer field), signed with `A`'s secret.
    TorsionOnKey(usize),
    /// Both of the above.
    TorsionOnBoth(usize, usize),
    /// `R` given by a non-canonical encoding; signable when the point is small-order.
    NonCanonicalR(usize),
    /// A valid signature with `s + ℓ` in place of `s`.
    NonCanonicalS,
    /// The signer field is a small-order point (any encoding), with `R` = identity and
    /// `s` = 0, which ZIP-215 alone would accept.
    SmallOrderKey(usize),
    /// A valid signature over another message.
    WrongMessage,
    /// 64 pseudo-random bytes.
    Garbage,
    /// The signer field is not a curve point.
    NotAPointKey,
}

/// The verdict ZIP-215, plus our refusal of small-order keys, prescribes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Expected {
    Valid,
    BadSignature,
    InvalidSigner,
}

fn scalar(tag: &[u8], seed: u64) -> Scalar {
    let mut hasher = Sha512::new();
    hasher.update(tag);
    hasher.update(seed.to_le_bytes());
    Scalar::from_bytes_mod_order_wide(&hasher.finalize().into())
}

fn k_of(r_bytes: &[u8; 32], a_bytes: &[u8; 32], message: &[u8]) -> Scalar {
    let mut hasher = Sha512::new();
    hasher.update(r_bytes);
    hasher.update(a_bytes);
    hasher.update(message);
    Scalar::from_bytes_mod_order_wide(&hasher.finalize().into())
}

fn signature(r_bytes: [u8; 32], s: [u8; 32]) -> Signature {
    let mut bytes = [0u8; 64];
    bytes[..32].copy_from_slice(&r_bytes);
    bytes[32..].copy_from_slice(&s);
    Signature(bytes)
}

/// Every non-canonical point encoding (y + p for the 19 small y, and x = 0 with the sign
/// bit set), as ZIP-215's test vectors enumerate them.
fn non_canonical_encodings() -> Vec<[u8; 32]> {
    let mut encodings = Vec::new();
    let mut y1_negative_zero = [0u8; 32];
    y1_negative_zero[0] = 1;
    y1_negative_zero[31] = 0x80;
    encodings.push(y1_negative_zero);
    let mut y_minus_1_negative_zero = [0xff; 32];
    y_minus_1_negative_zero[0] = 0xec;
    encodings.push(y_minus_1_negative_zero);
    for y in 0u8..19 {
        // p + y = 2^255 − 19 + y, little-endian.
        let mut bytes = [0xff; 32];
        bytes[0] = 0xed + y;
        bytes[31] = 0x7f;
        for sign in [0u8, 0x80] {
            let mut encoding = bytes;
            encoding[31] |= sign;
            if CompressedEdwardsY(encoding).decompress().is_some() {
                encodings.push(encoding);
            }
        }
    }
    for encoding in &encodings {
        let point = CompressedEdwardsY(*encoding).decompress().expect("a point");
        assert_ne!(point.compress().to_bytes(), *encoding, "non-canonical");
    }
    encodings
}

/// Encodings of small-order points: the eight canonical ones and the non-canonical ones.
fn small_order_encodings() -> Vec<[u8; 32]> {
    EIGHT_TORSION
        .iter()
        .map(|point| point.compress().to_bytes())
        .chain(non_canonical_encodings().into_iter().filter(|e| {
            CompressedEdwardsY(*e)
                .decompress()
                .is_some_and(|p| p.is_small_order())
        }))
        .collect()
}

fn bob() -> AccountId {
    AccountId(key(99).verifying_key().to_bytes())
}

fn unsigned(signer: [u8; 32], nonce: u64) -> Transaction {
    Transaction {
        chain_id: "test".into(),
        signer: AccountId(signer),
        nonce,
        valid_until_height: 100,
        body: Body::Transfer {
            to: bob(),
            amount: Amount(10 + nonce),
            end_to_end_id: format!("E2E-{nonce}"),
            reference: String::new(),
            terms: Default::default(),
        },
    }
}

/// Builds the crafted transaction for `seed` (the signer's secret and the nonce derive from
/// it; a small range of seeds repeats signers within a batch).
fn crafted(craft: Craft, seed: u64, nonce: u64) -> (SignedTransaction, Expected) {
    let a = scalar(b"secret", seed);
    let a_point = EdwardsPoint::mul_base(&a);
    let r = scalar(b"nonce", seed ^ nonce.rotate_left(32));
    // Signs `tx` with secret `a` under key bytes `a_bytes`, nonce point `r_point` (+ its
    // discrete log `r`), whatever torsion either carries.
    let sign_raw = |a_bytes: [u8; 32], r_bytes: [u8; 32], r: Scalar| {
        let tx = unsigned(a_bytes, nonce);
        let k = k_of(&r_bytes, &a_bytes, tx.hash().as_bytes());
        let s = r + k * a;
        SignedTransaction {
            tx,
            signature: signature(r_bytes, s.to_bytes()),
        }
    };
    let torsion = |i: usize| EIGHT_TORSION[i % 8];
    let a_bytes = a_point.compress().to_bytes();
    let r_point = EdwardsPoint::mul_base(&r);
    match craft {
        Craft::Valid => {
            let signing = key(seed);
            let tx = unsigned(signing.verifying_key().to_bytes(), nonce);
            (tx.sign(&signing), Expected::Valid)
        }
        Craft::TorsionOnR(i) => (
            sign_raw(a_bytes, (r_point + torsion(i)).compress().to_bytes(), r),
            Expected::Valid,
        ),
        Craft::TorsionOnKey(j) => (
            sign_raw(
                (a_point + torsion(j)).compress().to_bytes(),
                r_point.compress().to_bytes(),
                r,
            ),
            Expected::Valid,
        ),
        Craft::TorsionOnBoth(i, j) => (
            sign_raw(
                (a_point + torsion(j)).compress().to_bytes(),
                (r_point + torsion(i)).compress().to_bytes(),
                r,
            ),
            Expected::Valid,
        ),
        Craft::NonCanonicalR(i) => {
            let encodings = non_canonical_encodings();
            let encoding = encodings[i % encodings.len()];
            let point = CompressedEdwardsY(encoding).decompress().expect("a point");
            // With nonce 0 the equation needs [8]R = 0: true exactly for small-order R.
            let expected = if point.is_small_order() {
                Expected::Valid
            } else {
                Expected::BadSignature
            };
            (sign_raw(a_bytes, encoding, Scalar::ZERO), expected)
        }
        Craft::NonCanonicalS => {
            let signing = key(seed);
            let mut signed = unsigned(signing.verifying_key().to_bytes(), nonce).sign(&signing);
            let mut carry = 0u16;
            for (byte, ell) in signed.signature.0[32..].iter_mut().zip(ELL) {
                let sum = u16::from(*byte) + u16::from(ell) + carry;
                *byte = (sum & 0xff) as u8;
                carry = sum >> 8;
            }
            assert_eq!(carry, 0, "s + ℓ fits 256 bits");
            (signed, Expected::BadSignature)
        }
        Craft::SmallOrderKey(i) => {
            let encodings = small_order_encodings();
            let weak = encodings[i % encodings.len()];
            let tx = unsigned(weak, nonce);
            let identity = EdwardsPoint::default().compress().to_bytes();
            let signed = SignedTransaction {
                tx,
                signature: signature(identity, [0u8; 32]),
            };
            (signed, Expected::InvalidSigner)
        }
        Craft::WrongMessage => {
            let signing = key(seed);
            let tx = unsigned(signing.verifying_key().to_bytes(), nonce);
            let other = unsigned(signing.verifying_key().to_bytes(), nonce + 1);
            let signature = Signature(signing.sign(other.hash().as_bytes()).to_bytes());
            (SignedTransaction { tx, signature }, Expected::BadSignature)
        }
        Craft::Garbage => {
            let mut hasher = Sha512::new();
            hasher.update(b"garbage");
            hasher.update(seed.to_le_bytes());
            hasher.update(nonce.to_le_bytes());
            let bytes: [u8; 64] = hasher.finalize().into();
            let tx = unsigned(a_bytes, nonce);
            (
                SignedTransaction {
                    tx,
                    signature: Signature(bytes),
                },
                Expected::BadSignature,
            )
        }
        Craft::NotAPointKey => {
            let not_a_point = (0u8..=255)
                .map(|b| [b; 32])
                .find(|k| CompressedEdwardsY(*k).decompress().is_none())
                .expect("some byte pattern is not a curve point");
            let mut signed = sign_raw(a_bytes, r_point.compress().to_bytes(), r);
            signed.tx.signer = AccountId(not_a_point);
            (signed, Expected::InvalidSigner)
        }
    }
}

fn verdict(result: &Result<Hash, TxError>) -> Expected {
    match result {
        Ok(_) => Expected::Valid,
        Err(TxError::BadSignature) => Expected::BadSignature,
        Err(TxError::InvalidSigner(_)) => Expected::InvalidSigner,
        Err(other) => panic!("unexpected rejection {other:?}"),
    }
}

/// What ed25519-consensus says about the signature alone (no small-order-key refusal).
fn oracle(signed: &SignedTransaction) -> bool {
    let Ok(key) = ed25519_consensus::VerificationKey::try_from(signed.tx.signer.0) else {
        return false;
    };
    key.verify(
        &ed25519_consensus::Signature::from(signed.signature.0),
        signed.hash().as_bytes(),
    )
    .is_ok()
}

fn craft_strategy() -> impl Strategy<Value = Craft> {
    prop_oneof![
        3 => Just(Craft::Valid),
        3 => (0usize..8).prop_map(Craft::TorsionOnR),
        2 => (0usize..8).prop_map(Craft::TorsionOnKey),
        2 => (0usize..8, 0usize..8).prop_map(|(i, j)| Craft::TorsionOnBoth(i, j)),
        2 => (0usize..32).prop_map(Craft::NonCanonicalR),
        1 => Just(Craft::NonCanonicalS),
        1 => (0usize..32).prop_map(Craft::SmallOrderKey),
        1 => Just(Craft::WrongMessage),
        1 => Just(Craft::Garbage),
        1 => Just(Craft::NotAPointKey),
    ]
}

/// Checks one batch: single verdicts as prescribed and as the oracle says, batch verdicts
/// equal to single ones.
fn check_batch(items: Vec<(Craft, u64)>) {
    let mut txs = Vec::new();
    let mut expected = Vec::new();
    for (i, (craft, seed)) in items.iter().enumerate() {
        let (signed, expect) = crafted(*craft, *seed, i as u64);
        if expect != Expected::InvalidSigner {
            assert_eq!(
                oracle(&signed),
                expect == Expected::Valid,
                "ed25519-consensus disagrees on {craft:?}"
            );
        }
        txs.push(signed);
        expected.push(expect);
    }
    let verdicts: Vec<Expected> = batch_verdicts_match_single_ones(txs)
        .iter()
        .map(verdict)
        .collect();
    assert_eq!(verdicts, expected, "{items:?}");
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn batch_verdicts_equal_single_verdicts_on_crafted_signatures(
        items in proptest::collection::vec((craft_strategy(), 0u64..6), 1..=16)
    ) {
        check_batch(items);
    }
}

#[test]
fn every_torsion_point_on_r_or_key_is_accepted_alone_and_in_any_batch() {
    // The measured bug: a torsion component on R was refused alone (verify_strict) and
    // accepted in some batches (dalek's batch equation). Under ZIP-215 it is valid always.
    for i in 0..8 {
        check_batch(vec![(Craft::TorsionOnR(i), 1)]);
        check_batch(vec![(Craft::TorsionOnKey(i), 1)]);
        check_batch(vec![
            (Craft::Valid, 2),
            (Craft::TorsionOnR(i), 3),
            (Craft::Valid, 4),
        ]);
        check_batch(vec![
            (Craft::TorsionOnBoth(i, 7 - i), 3),
            (Craft::Garbage, 2),
            (Craft::TorsionOnR(i), 3),
        ]);
    }
}

#[test]
fn every_small_order_and_non_canonical_encoding_gets_one_verdict() {
    let small = small_order_encodings();
    let non_canonical = non_canonical_encodings();
    // 8 canonical torsion points, and both kinds of non-canonical encodings.
    assert_eq!(EIGHT_TORSION.len(), 8);
    assert!(small.len() > 8, "{}", small.len());
    assert!(non_canonical.len() > small.len() - 8);
    for i in 0..small.len() {
        check_batch(vec![(Craft::SmallOrderKey(i), 1)]);
        check_batch(vec![(Craft::Valid, 1), (Craft::SmallOrderKey(i), 2)]);
    }
    for i in 0..non_canonical.len() {
        check_batch(vec![(Craft::NonCanonicalR(i), 1)]);
        check_batch(vec![
            (Craft::NonCanonicalR(i), 1),
            (Craft::Valid, 2),
            (Craft::NonCanonicalS, 3),
        ]);
    }
    // Some non-canonical R encodings are signable (small order), some are not.
    let signable = non_canonical
        .iter()
        .filter(|e| {
            CompressedEdwardsY(**e)
                .decompress()
                .is_some_and(|p| p.is_small_order())
        })
        .count();
    assert!(signable > 0 && signable < non_canonical.len());
}

#[test]
fn zip215_accepts_whatever_verify_strict_accepted() {
    // A cofactorless solution is a cofactored one: no signature admitted under ADR 0002's
    // rule becomes invalid.
    for seed in 0..32 {
        let signing = key(seed);
        let signed = unsigned(signing.verifying_key().to_bytes(), seed).sign(&signing);
        let strict = signing
            .verifying_key()
            .verify_strict(
                signed.hash().as_bytes(),
                &ed25519_dalek::Signature::from_bytes(&signed.signature.0),
            )
            .is_ok();
        assert!(strict);
        assert!(signed.check_stateless("test").is_ok());
    }
}
