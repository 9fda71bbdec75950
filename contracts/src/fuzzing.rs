//! The entry function of the `transaction` fuzz target (`fuzz/fuzz_targets/transaction.rs`).
//!
//! Compiled only for `cargo fuzz` (which sets `--cfg fuzzing`) and for this crate's tests,
//! which replay the committed corpus (`fuzz/corpus/transaction/`) and every regression
//! input (`fuzz/regressions/transaction/`) through the same function, so a fuzz run and
//! `cargo test` check exactly the same properties.

use std::sync::OnceLock;

use crate::error::TxError;
use crate::primitives::{Amount, Hash};
use crate::testkit::{account, customer_seed, key};
use crate::tx::{check_stateless_batch, Body, SignedTransaction, Transaction};

/// The chain the target checks transactions against ([`crate::testkit::genesis`]'s).
pub const CHAIN_ID: &str = "test";

/// Two valid transfers from [`crate::testkit`] customers, the company the fuzzed
/// transaction keeps in its batch: a batch of one is checked by the single equation, so it
/// takes valid neighbours for the batch equation to run at all.
fn companions() -> &'static [SignedTransaction; 2] {
    static COMPANIONS: OnceLock<[SignedTransaction; 2]> = OnceLock::new();
    COMPANIONS.get_or_init(|| {
        [(0, 1), (1, 0)].map(|(from, to)| {
            let from = customer_seed(from, 0);
            Transaction {
                chain_id: CHAIN_ID.into(),
                signer: account(from),
                nonce: 0,
                valid_until_height: 100,
                body: Body::Transfer {
                    to: account(customer_seed(to, 0)),
                    amount: Amount(1),
                    end_to_end_id: "FUZZ-COMPANION".into(),
                    reference: String::new(),
                    terms: Default::default(),
                },
            }
            .sign(&key(from))
        })
    })
}

/// Decodes `data` as a signed transaction and, if it decodes, checks that:
///
/// * it re-encodes to exactly `data` (one valid encoding per transaction);
/// * the stateless check never panics and only ever answers with a stateless error (the API
///   maps those to 400, the others to 422);
/// * the batch check gives it the verdict the single check gives it, in a batch with two
///   valid transactions that keep theirs (DESIGN.md, "Validity is deterministic").
pub fn transaction(data: &[u8]) {
    let Ok(signed) = SignedTransaction::decode(data) else {
        return;
    };
    assert_eq!(signed.encode(), data, "decoded, but not from its encoding");
    let single: Result<Hash, TxError> = signed
        .clone()
        .check_stateless(CHAIN_ID)
        .map(|verified| verified.hash());
    if let Err(error) = &single {
        assert!(error.is_stateless(), "stateless check answered {error:?}");
    }
    let [first, second] = companions().clone();
    let expected = vec![Ok(first.hash()), single, Ok(second.hash())];
    let batch: Vec<Result<Hash, TxError>> =
        check_stateless_batch(vec![first, signed, second], CHAIN_ID)
            .into_iter()
            .map(|result| result.map(|verified| verified.hash()))
            .collect();
    assert_eq!(batch, expected, "batch and single verdicts differ");
}

/// The signers the seeds use: genesis customers and officials, plus keys no genesis knows.
#[cfg(test)]
fn seed_signers() -> Vec<u64> {
    use crate::testkit::{operator_seed, AUTHORITY_SEED, REGULATOR_SEED};
    vec![
        customer_seed(0, 0),
        customer_seed(1, 1),
        operator_seed(0),
        AUTHORITY_SEED,
        REGULATOR_SEED,
        7_777,
    ]
}

/// Seed inputs: a valid transaction of every body kind, each stateless rejection, and
/// encodings at the edges of the format (empty, truncated, a hostile length prefix).
#[cfg(test)]
pub(crate) fn seeds() -> Vec<Vec<u8>> {
    use crate::primitives::{AccountId, BankId};
    use crate::tx::MAX_TX_BYTES;

    let bank = BankId::new("BANK_B").expect("bank id");
    let payee = account(customer_seed(1, 0));
    let bodies = vec![
        Body::Transfer {
            to: payee,
            amount: Amount(5_000),
            end_to_end_id: "INV-2024-0001".into(),
            reference: "invoice 7 €".into(),
            terms: Default::default(),
        },
        Body::OpenAccount {
            owner: account(424_242),
        },
        Body::Deposit {
            account: payee,
            amount: Amount(1),
        },
        Body::Withdraw {
            account: payee,
            amount: Amount(u64::MAX),
        },
        Body::Issue {
            bank: bank.clone(),
            amount: Amount(1_000_000),
        },
        Body::Redeem {
            bank: bank.clone(),
            amount: Amount(7),
        },
        Body::SetNetDebitCap {
            bank,
            cap: Amount(0),
        },
        Body::SettleCycle,
        Body::Freeze { account: payee },
        Body::Unfreeze { account: payee },
        Body::Transfer {
            to: payee,
            amount: Amount(9),
            end_to_end_id: "TIMED-1".into(),
            reference: String::new(),
            terms: crate::tx::TransferTerms {
                priority: crate::tx::Priority::High,
                not_before_ms: Some(1_000),
                reject_after_ms: Some(u64::MAX),
            },
        },
        Body::CancelTransfer {
            tx_hash: crate::primitives::Hash([7; 32]),
        },
        Body::Reprioritise {
            tx_hash: crate::primitives::Hash([8; 32]),
            priority: crate::tx::Priority::High,
        },
        Body::ResolveGridlock,
    ];
    let base = |signer: u64, nonce: u64, body: Body| Transaction {
        chain_id: CHAIN_ID.into(),
        signer: account(signer),
        nonce,
        valid_until_height: 1_000,
        body,
    };
    let mut seeds = Vec::new();
    for (i, body) in bodies.iter().enumerate() {
        let signers = seed_signers();
        let signer = signers[i % signers.len()];
        seeds.push(
            base(signer, i as u64, body.clone())
                .sign(&key(signer))
                .encode(),
        );
    }
    let alice = customer_seed(0, 0);
    let transfer = |amount: u64, end_to_end_id: &str, reference: &str| {
        base(
            alice,
            3,
            Body::Transfer {
                to: payee,
                amount: Amount(amount),
                end_to_end_id: end_to_end_id.into(),
                reference: reference.into(),
                terms: Default::default(),
            },
        )
    };
    // Each stateless rejection, signed properly so that only the one field is wrong.
    let mut rejected = vec![
        transfer(0, "E2E", ""),
        transfer(5, "", ""),
        transfer(5, &"x".repeat(36), ""),
        transfer(5, "tab\there", ""),
        transfer(5, "E2E", "line\nbreak"),
        transfer(5, "E2E", &"r".repeat(141)),
        transfer(5, "E2E", &"€".repeat(140)),
    ];
    let mut wrong_chain = transfer(5, "E2E", "");
    wrong_chain.chain_id = "other".into();
    rejected.push(wrong_chain);
    let mut self_transfer = transfer(5, "E2E", "");
    if let Body::Transfer { to, .. } = &mut self_transfer.body {
        *to = account(alice);
    }
    rejected.push(self_transfer);
    let mut identity = [0u8; 32];
    identity[0] = 1;
    rejected.push(base(
        alice,
        0,
        Body::OpenAccount {
            owner: AccountId(identity),
        },
    ));
    let mut oversized = transfer(5, "E2E", "");
    oversized.chain_id = "c".repeat(1_900);
    for tx in rejected {
        seeds.push(tx.sign(&key(alice)).encode());
    }
    // Oversized encodings are refused before decoding; one just under the limit decodes.
    let big = oversized.sign(&key(alice)).encode();
    assert!(big.len() as u64 <= MAX_TX_BYTES, "{} bytes", big.len());
    seeds.push(big);
    // A small-order signer (the identity point), a key that is not a point, and a signature
    // whose R is a small-order point.
    let mut weak = transfer(5, "E2E", "").sign(&key(alice));
    weak.tx.signer = AccountId(identity);
    seeds.push(weak.encode());
    let mut not_a_point = transfer(5, "E2E", "").sign(&key(alice));
    not_a_point.tx.signer = AccountId([0xff; 32]);
    seeds.push(not_a_point.encode());
    let mut small_r = transfer(5, "E2E", "").sign(&key(alice));
    small_r.signature.0[..32].copy_from_slice(&identity);
    seeds.push(small_r.encode());
    let mut tampered = transfer(5, "E2E", "").sign(&key(alice));
    tampered.tx.nonce += 1;
    seeds.push(tampered.encode());
    // Edges of the format.
    let valid = transfer(5, "E2E", "ref").sign(&key(alice)).encode();
    seeds.push(Vec::new());
    seeds.push(valid[..valid.len() / 2].to_vec());
    let mut trailing = valid.clone();
    trailing.push(0);
    seeds.push(trailing);
    let mut hostile_length = valid[..8].to_vec();
    hostile_length.push(0xfd);
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
    fn transaction_corpus_replays() {
        let replayed = replay("transaction", transaction);
        assert!(replayed > 0, "fuzz/corpus/transaction is missing or empty");
    }

    #[test]
    fn seeds_pass_the_target() {
        for seed in seeds() {
            transaction(&seed);
        }
    }

    /// Writes [`seeds`] into `fuzz/corpus/transaction/` (named by content, as libFuzzer
    /// names its own): `cargo test --workspace -- --ignored write_fuzz_seeds`.
    #[test]
    #[ignore = "writes the seed corpus into fuzz/corpus; run by hand"]
    fn write_fuzz_seeds() {
        let dir = fuzz_dir("corpus", "transaction");
        std::fs::create_dir_all(&dir).expect("corpus directory");
        for seed in seeds() {
            let name = format!(
                "seed-{}",
                &crate::primitives::sha256(&[&seed]).to_hex()[..16]
            );
            std::fs::write(dir.join(name), seed).expect("write seed");
        }
    }
}
