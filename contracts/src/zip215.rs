//! The one ed25519 verification rule for transaction signatures: ZIP-215
//! (docs/adr/0007-deterministic-signature-verification.md).
//!
//! A signature `(R, s)` by key `A` on message `M` is valid iff
//!
//! * `A` and `R` decode to curve points; non-canonical encodings (a `y` coordinate ≥ p, or
//!   `x = 0` with the sign bit set) are accepted, as ZIP-215 requires;
//! * `s` is canonical (`s < ℓ`);
//! * the cofactored equation `[8][s]B = [8]R + [8][k]A` holds, with
//!   `k = SHA-512(R_bytes ‖ A_bytes ‖ M) mod ℓ` over the bytes as given.
//!
//! On top of ZIP-215 we refuse small-order signer keys ([`PublicKey::decode`]): they can
//! "sign" any message, and refusing them depends on the key bytes alone, so it cannot make a
//! verdict depend on a batch.
//!
//! Because the equation is cofactored, a batch of valid signatures always satisfies the
//! batch equation, whatever torsion components their `R`s and keys carry; and a batch with
//! an invalid signature fails it except with probability about 2⁻¹²⁵ over the batch's
//! coefficients. [`verify_batch`] derives those coefficients from a hash of the whole batch
//! (Fiat–Shamir), so its result is a pure function of its input, and falls back to
//! [`verify`] on each signature when the batch equation fails. Every signature therefore
//! gets the same verdict in any batch as alone: a valid one always, an invalid one unless
//! the batch's coefficients hit a 2⁻¹²⁸ event that nobody can steer (ed25519-dalek's
//! `verify_strict` and `verify_batch`, used before, disagreed on crafted signatures).
//!
//! Anything that `verify_strict` accepted, this rule accepts too (a cofactorless solution
//! is a cofactored one), so no signature ever included in a block becomes invalid.

use std::collections::BTreeMap;

use curve25519_dalek::constants::ED25519_BASEPOINT_POINT;
use curve25519_dalek::edwards::{CompressedEdwardsY, EdwardsPoint};
use curve25519_dalek::scalar::Scalar;
use curve25519_dalek::traits::{IsIdentity, VartimeMultiscalarMul};
use sha2::{Digest, Sha512};

/// Domain tag of the batch transcript that seeds the batch coefficients.
const BATCH_TRANSCRIPT_DOMAIN: &[u8] = b"interpool/zip215-batch/v1";

/// Why 32 bytes are not a usable signer key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyError {
    /// Not the encoding of a curve point.
    NotAPoint,
    /// A point of small order (one of the eight torsion points, in any encoding): it would
    /// verify signatures nobody made.
    SmallOrder,
}

/// A decoded signer key: the bytes as given (they enter the hash `k`) and the point.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PublicKey {
    bytes: [u8; 32],
    point: EdwardsPoint,
}

impl PublicKey {
    /// Decodes a signer key with ZIP-215's point decoding, refusing small-order points.
    /// Mixed-order keys (a prime-order point plus a torsion component) are accepted: the
    /// cofactored equation ignores the torsion part, and only the holder of the prime-order
    /// part's secret can sign for them.
    pub fn decode(bytes: &[u8; 32]) -> Result<PublicKey, KeyError> {
        let point = CompressedEdwardsY(*bytes)
            .decompress()
            .ok_or(KeyError::NotAPoint)?;
        if point.is_small_order() {
            return Err(KeyError::SmallOrder);
        }
        Ok(PublicKey {
            bytes: *bytes,
            point,
        })
    }

    /// The key's bytes as given.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.bytes
    }
}

/// A signature's parts, decoded against its key and message: what both the single and the
/// batch equation use, so that decoding is one rule.
struct Parsed<'k> {
    key: &'k PublicKey,
    r_bytes: [u8; 32],
    r: EdwardsPoint,
    s: Scalar,
    k: Scalar,
}

fn parse<'k>(key: &'k PublicKey, message: &[u8], signature: &[u8; 64]) -> Option<Parsed<'k>> {
    let (r_half, s_half) = signature.split_at(32);
    let r_bytes: [u8; 32] = r_half.try_into().ok()?;
    let s_bytes: [u8; 32] = s_half.try_into().ok()?;
    let s = Option::<Scalar>::from(Scalar::from_canonical_bytes(s_bytes))?;
    let r = CompressedEdwardsY(r_bytes).decompress()?;
    let mut hasher = Sha512::new();
    hasher.update(r_bytes);
    hasher.update(key.bytes);
    hasher.update(message);
    let k = Scalar::from_bytes_mod_order_wide(&hasher.finalize().into());
    Some(Parsed {
        key,
        r_bytes,
        r,
        s,
        k,
    })
}

/// `[8]([s]B − [k]A − R) = 0`.
#[allow(clippy::arithmetic_side_effects)] // group arithmetic: modular, cannot overflow
fn single_equation(parsed: &Parsed<'_>) -> bool {
    let minus_a = -parsed.key.point;
    let r_prime = EdwardsPoint::vartime_double_scalar_mul_basepoint(&parsed.k, &minus_a, &parsed.s);
    (parsed.r - r_prime).mul_by_cofactor().is_identity()
}

/// Verifies one signature under the ZIP-215 rule.
pub fn verify(key: &PublicKey, message: &[u8], signature: &[u8; 64]) -> bool {
    parse(key, message, signature).is_some_and(|parsed| single_equation(&parsed))
}

/// Verifies many signatures; returns one verdict per item, in order, each equal to what
/// [`verify`] says about that item alone.
///
/// Signatures that do not decode are invalid without entering the batch. The others are
/// checked with one randomized cofactored equation,
/// `[8]([−Σ zᵢsᵢ]B + Σ [zᵢ]Rᵢ + Σ_A [Σ_{i: Aᵢ=A} zᵢkᵢ]A) = 0`, whose 128-bit coefficients
/// `zᵢ` come from SHA-512 of the whole batch; each distinct key enters once (decompressed
/// once, coefficients coalesced). If it fails, each signature is checked alone.
pub fn verify_batch(items: &[(&PublicKey, &[u8], &[u8; 64])]) -> Vec<bool> {
    let parsed: Vec<Option<Parsed<'_>>> = items
        .iter()
        .map(|(key, message, signature)| parse(key, message, signature))
        .collect();
    let candidates: Vec<&Parsed<'_>> = parsed.iter().flatten().collect();
    let all_hold = match candidates.as_slice() {
        [] => true,
        [one] => single_equation(one),
        many => batch_equation(many),
    };
    parsed
        .iter()
        .map(|item| match item {
            None => false,
            Some(_) if all_hold => true,
            Some(parsed) => single_equation(parsed),
        })
        .collect()
}

/// The randomized batch equation over decodable signatures.
#[allow(clippy::arithmetic_side_effects)] // scalar and group arithmetic: modular
fn batch_equation(batch: &[&Parsed<'_>]) -> bool {
    let coefficients = batch_coefficients(batch);
    let mut b_coefficient = Scalar::ZERO;
    let mut key_coefficients: BTreeMap<[u8; 32], (EdwardsPoint, Scalar)> = BTreeMap::new();
    let mut scalars = Vec::with_capacity(batch.len().saturating_mul(2).saturating_add(1));
    let mut points = Vec::with_capacity(scalars.capacity());
    for (parsed, z) in batch.iter().zip(coefficients) {
        b_coefficient -= z * parsed.s;
        let entry = key_coefficients
            .entry(parsed.key.bytes)
            .or_insert((parsed.key.point, Scalar::ZERO));
        entry.1 += z * parsed.k;
        scalars.push(z);
        points.push(parsed.r);
    }
    for (point, coefficient) in key_coefficients.into_values() {
        scalars.push(coefficient);
        points.push(point);
    }
    scalars.push(b_coefficient);
    points.push(ED25519_BASEPOINT_POINT);
    EdwardsPoint::vartime_multiscalar_mul(&scalars, &points)
        .mul_by_cofactor()
        .is_identity()
}

/// One 128-bit coefficient per signature, from SHA-512 in counter mode over a seed that
/// hashes every key, `R`, `s` and `k` (which binds the message) of the batch, in order.
/// Nobody can choose a batch's signatures after seeing its coefficients: changing any
/// input changes all of them.
fn batch_coefficients(batch: &[&Parsed<'_>]) -> Vec<Scalar> {
    let mut transcript = Sha512::new();
    transcript.update(BATCH_TRANSCRIPT_DOMAIN);
    transcript.update((batch.len() as u64).to_le_bytes());
    for parsed in batch {
        transcript.update(parsed.key.bytes);
        transcript.update(parsed.r_bytes);
        transcript.update(parsed.s.as_bytes());
        transcript.update(parsed.k.as_bytes());
    }
    let seed = transcript.finalize();
    let mut coefficients = Vec::with_capacity(batch.len());
    let mut block: u64 = 0;
    while coefficients.len() < batch.len() {
        let mut hasher = Sha512::new();
        hasher.update(seed);
        hasher.update(block.to_le_bytes());
        let output = hasher.finalize();
        for chunk in output.chunks_exact(16) {
            if coefficients.len() < batch.len() {
                let mut bytes = [0u8; 16];
                bytes.copy_from_slice(chunk);
                coefficients.push(Scalar::from(u128::from_le_bytes(bytes)));
            }
        }
        block = block.wrapping_add(1);
    }
    coefficients
}

/// The curve arithmetic this process's signature checks run on: `"AVX-512 IFMA"`,
/// `"AVX2"` or `"portable"`. curve25519-dalek picks it once, at run time, from what the CPU
/// offers and what the build compiled in (the IFMA code only with
/// `--cfg curve25519_dalek_backend="avx512"`, which `.cargo/config.toml` sets on x86-64);
/// this answers by the same rule. Every backend gives the same verdicts: it only says how
/// fast they come, for a node's start-up log and the load generator's report (issue 12: a
/// batch equation 2.7 times as fast with IFMA as with AVX2 on the benchmark machine).
pub fn arithmetic() -> &'static str {
    #[cfg(target_arch = "x86_64")]
    {
        if cfg!(curve25519_dalek_backend = "avx512")
            && std::arch::is_x86_feature_detected!("avx512ifma")
            && std::arch::is_x86_feature_detected!("avx512vl")
        {
            return "AVX-512 IFMA";
        }
        if std::arch::is_x86_feature_detected!("avx2") {
            return "AVX2";
        }
    }
    "portable"
}

#[cfg(test)]
mod tests {
    use curve25519_dalek::constants::EIGHT_TORSION;
    use ed25519_dalek::Signer;

    use super::*;
    use crate::testkit::key;

    fn signed(seed: u64, message: &[u8]) -> (PublicKey, [u8; 64]) {
        let signing = key(seed);
        let public = PublicKey::decode(&signing.verifying_key().to_bytes()).expect("key");
        (public, signing.sign(message).to_bytes())
    }

    #[test]
    fn a_batch_of_valid_signatures_with_torsion_satisfies_the_batch_equation_itself() {
        // Not only the verdicts (the fallback would give those): the fast path must hold
        // for honest batches, or batching buys nothing.
        let a = Scalar::from(7u64);
        let a_point = EdwardsPoint::mul_base(&a);
        let mut owned = Vec::new();
        for (i, torsion) in EIGHT_TORSION.iter().enumerate() {
            let key_bytes = (a_point + EIGHT_TORSION[7 - i]).compress().to_bytes();
            let key = PublicKey::decode(&key_bytes).expect("mixed-order key");
            let r = Scalar::from(1000u64 + i as u64);
            let r_bytes = (EdwardsPoint::mul_base(&r) + torsion).compress().to_bytes();
            let message = vec![i as u8; 10];
            let mut hasher = Sha512::new();
            hasher.update(r_bytes);
            hasher.update(key_bytes);
            hasher.update(&message);
            let k = Scalar::from_bytes_mod_order_wide(&hasher.finalize().into());
            let mut signature = [0u8; 64];
            signature[..32].copy_from_slice(&r_bytes);
            signature[32..].copy_from_slice((r + k * a).as_bytes());
            owned.push((key, message, signature));
        }
        owned.push({
            let (key, signature) = signed(1, b"plain");
            (key, b"plain".to_vec(), signature)
        });
        let parsed: Vec<Parsed<'_>> = owned
            .iter()
            .map(|(key, message, signature)| parse(key, message, signature).expect("decodes"))
            .collect();
        let refs: Vec<&Parsed<'_>> = parsed.iter().collect();
        assert!(batch_equation(&refs));
        assert!(refs.iter().all(|p| single_equation(p)));
    }

    #[test]
    fn errors_that_cancel_out_are_caught_by_the_random_coefficients() {
        // s₁ + δ and s₂ − δ: with all coefficients equal to one the errors would cancel.
        let (key1, mut sig1) = signed(1, b"one");
        let (key2, mut sig2) = signed(2, b"two");
        let delta = Scalar::from(12345u64);
        let canonical = |sig: &[u8; 64]| {
            let bytes: [u8; 32] = sig[32..].try_into().expect("32 bytes");
            Option::<Scalar>::from(Scalar::from_canonical_bytes(bytes)).expect("canonical s")
        };
        let (s1, s2) = (canonical(&sig1), canonical(&sig2));
        sig1[32..].copy_from_slice((s1 + delta).as_bytes());
        sig2[32..].copy_from_slice((s2 - delta).as_bytes());
        let items: Vec<(&PublicKey, &[u8], &[u8; 64])> = vec![
            (&key1, b"one".as_slice(), &sig1),
            (&key2, b"two".as_slice(), &sig2),
        ];
        assert_eq!(verify_batch(&items), vec![false, false]);
        let parsed: Vec<Parsed<'_>> = items
            .iter()
            .map(|(k, m, s)| parse(k, m, s).expect("decodes"))
            .collect();
        let refs: Vec<&Parsed<'_>> = parsed.iter().collect();
        assert!(!batch_equation(&refs));
    }

    #[test]
    fn coefficients_are_a_function_of_the_whole_batch() {
        let owned: Vec<(PublicKey, [u8; 64])> = (0..5).map(|i| signed(i, b"m")).collect();
        let parsed: Vec<Parsed<'_>> = owned
            .iter()
            .map(|(k, s)| parse(k, b"m", s).expect("decodes"))
            .collect();
        let refs: Vec<&Parsed<'_>> = parsed.iter().collect();
        let first = batch_coefficients(&refs);
        assert_eq!(first, batch_coefficients(&refs));
        assert_eq!(first.len(), 5);
        let mut distinct = first.clone();
        distinct.sort_by_key(|z| *z.as_bytes());
        distinct.dedup();
        assert_eq!(distinct.len(), 5);
        let fewer = batch_coefficients(&refs[..4]);
        assert_ne!(
            fewer[..],
            first[..4],
            "a different batch, different coefficients"
        );
    }

    /// The build asks curve25519-dalek for its IFMA code on x86-64 (`.cargo/config.toml`:
    /// without it every validator's batch equation runs at the AVX2 speed), and
    /// `arithmetic` names the code this CPU then runs.
    #[test]
    fn x86_64_builds_carry_the_ifma_arithmetic_and_name_what_the_cpu_runs() {
        #[cfg(target_arch = "x86_64")]
        {
            let built_with_ifma = cfg!(curve25519_dalek_backend = "avx512");
            assert!(
                built_with_ifma,
                "built without --cfg curve25519_dalek_backend=\"avx512\" (.cargo/config.toml)"
            );
            let answer = arithmetic();
            assert!(
                ["AVX-512 IFMA", "AVX2", "portable"].contains(&answer),
                "{answer}"
            );
            if std::arch::is_x86_feature_detected!("avx512ifma")
                && std::arch::is_x86_feature_detected!("avx512vl")
            {
                assert_eq!(answer, "AVX-512 IFMA", "this CPU has IFMA");
            }
        }
        #[cfg(not(target_arch = "x86_64"))]
        assert_eq!(arithmetic(), "portable");
    }

    #[test]
    fn keys_are_refused_by_kind() {
        let mut identity = [0u8; 32];
        identity[0] = 1;
        assert_eq!(PublicKey::decode(&identity), Err(KeyError::SmallOrder));
        for torsion in EIGHT_TORSION {
            assert_eq!(
                PublicKey::decode(&torsion.compress().to_bytes()),
                Err(KeyError::SmallOrder)
            );
        }
        let not_a_point = (0u8..=255)
            .map(|b| [b; 32])
            .find(|k| CompressedEdwardsY(*k).decompress().is_none())
            .expect("some pattern is not a point");
        assert_eq!(PublicKey::decode(&not_a_point), Err(KeyError::NotAPoint));
        let (key, _) = signed(3, b"");
        assert_eq!(
            PublicKey::decode(key.as_bytes()).map(|k| *k.as_bytes()),
            Ok(*key.as_bytes())
        );
    }
}
