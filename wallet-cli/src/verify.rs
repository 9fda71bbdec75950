//! Checking an account proof without trusting the node that served it.
//!
//! The chain of trust: the genesis file's validators → the commit certificate (a quorum of
//! their COMMIT signatures over a block hash) → the block's header and its transactions'
//! digest (whose hash is the one the certificate names; the header carries the state root
//! after the previous block) → the state root → the Merkle proof → the account. Each link
//! is checked here, as a pure function.

use interpool_consensus::ValidatorSetError;
use interpool_consensus::{CertificateError, CommitCertificate, Digest, ValidatorSet};
use interpool_contracts::codec::DecodeError;
use interpool_contracts::primitives::{from_hex_vec, HexError};
use interpool_contracts::smt::ProofError;
use interpool_contracts::views::AccountProofView;
use interpool_contracts::{Account, AccountId, Block, Hash};
use thiserror::Error;

/// Longest block head accepted in a proof (a header is a few hundred bytes; its chain id is
/// the only part of variable length).
const MAX_HEAD_BYTES: usize = 64 << 10;

/// What a verified proof establishes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    /// The account's state after block `height` (`None`: it does not exist).
    pub account: Option<Account>,
    /// The height after which that state holds.
    pub height: u64,
    /// The certifying block (`height + 1`).
    pub block_height: u64,
    /// Its hash.
    pub block_hash: Hash,
    /// The certified state root.
    pub state_root: Hash,
    /// Validators whose COMMIT signatures certify the block.
    pub signers: usize,
    /// Validators in the set.
    pub validators: usize,
    /// The certifying block's time (milliseconds since the Unix epoch): the state is at
    /// least this old.
    pub block_time_ms: u64,
}

/// The link of the chain of trust that broke.
#[derive(Debug, Error)]
pub enum VerifyError {
    /// The genesis file's validators are not a usable set.
    #[error("the genesis validators are not a valid validator set: {0}")]
    ValidatorSet(#[from] ValidatorSetError),
    /// The node proved something about another account.
    #[error("the node sent a proof for account {got}, not {expected}")]
    WrongAccount {
        /// Asked for.
        expected: AccountId,
        /// Proved.
        got: AccountId,
    },
    /// The certifying block's header is not hex.
    #[error("the certifying block's header is not valid hex: {0}")]
    BlockHex(HexError),
    /// The certifying block's header does not decode.
    #[error("the certifying block's header does not decode: {0}")]
    BlockDecode(DecodeError),
    /// The block is for another chain.
    #[error("the certifying block is for chain {got:?}, the genesis file is for {expected:?}")]
    WrongChain {
        /// The genesis chain id.
        expected: String,
        /// The block's.
        got: String,
    },
    /// The block is not the one after the proof's height.
    #[error("the certifying block has height {got}, expected {expected} (the proof's height + 1)")]
    WrongHeight {
        /// `height + 1`.
        expected: u64,
        /// The block's.
        got: u64,
    },
    /// The certificate does not certify the block.
    #[error("the commit certificate does not certify block {height}: {source}")]
    Certificate {
        /// The block height.
        height: u64,
        /// Why.
        source: CertificateError,
    },
    /// The proof is against another root than the certified one.
    #[error("block {height} certifies state root {certified}, but the proof is against {claimed}")]
    RootMismatch {
        /// The block height.
        height: u64,
        /// `previous_state_root` of the block.
        certified: Hash,
        /// The proof's root.
        claimed: Hash,
    },
    /// The Merkle proof does not lead to the certified root.
    #[error("the Merkle proof does not verify against the certified state root: {0}")]
    Proof(ProofError),
}

/// Checks `view` as a proof about account `id` on the chain `chain_id` whose validators are
/// `validators`.
pub fn verify_account_proof(
    view: &AccountProofView<CommitCertificate>,
    id: &AccountId,
    chain_id: &str,
    validators: &ValidatorSet,
) -> Result<Verified, VerifyError> {
    if view.proof.id != *id {
        return Err(VerifyError::WrongAccount {
            expected: *id,
            got: view.proof.id,
        });
    }
    let head =
        from_hex_vec(&view.certifying_header, MAX_HEAD_BYTES).map_err(VerifyError::BlockHex)?;
    let header = &Block::decode_head(&head).map_err(VerifyError::BlockDecode)?;
    if header.chain_id != chain_id {
        return Err(VerifyError::WrongChain {
            expected: chain_id.into(),
            got: header.chain_id.chars().take(64).collect(),
        });
    }
    let expected_height = view.height.checked_add(1).ok_or(VerifyError::WrongHeight {
        expected: u64::MAX,
        got: header.height,
    })?;
    if header.height != expected_height {
        return Err(VerifyError::WrongHeight {
            expected: expected_height,
            got: header.height,
        });
    }
    // The block's hash, the digest its certificate names, from its head and the digest of
    // its transactions (which are not shown).
    let block_hash = Block::hash_of_parts(&head, &view.certifying_transactions_digest);
    view.certificate
        .verify(validators, header.height, &Digest(block_hash.0))
        .map_err(|source| VerifyError::Certificate {
            height: header.height,
            source,
        })?;
    let certified = header.previous_state_root;
    if view.proof.state_root != certified {
        return Err(VerifyError::RootMismatch {
            height: header.height,
            certified,
            claimed: view.proof.state_root,
        });
    }
    view.proof.verify(&certified).map_err(VerifyError::Proof)?;
    Ok(Verified {
        account: view.proof.account.clone(),
        height: view.height,
        block_height: header.height,
        block_hash,
        state_root: certified,
        signers: view.certificate.signatures.len(),
        validators: validators.len(),
        block_time_ms: header.timestamp_ms,
    })
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use ed25519_dalek::SigningKey;
    use interpool_consensus::{Message, Vote};
    use interpool_contracts::primitives::{sha256, to_hex};
    use interpool_contracts::testkit::{self, account, customer_seed, key};
    use interpool_contracts::GenesisNode;
    use interpool_contracts::{Amount, BlockHeader, Ledger};
    use interpool_genesis::spec::validator_set;

    const CHAIN: &str = "test";

    fn validator_key(i: u64) -> SigningKey {
        key(500 + i)
    }

    pub(crate) fn genesis_validators() -> Vec<GenesisNode> {
        (0..4)
            .map(|i| GenesisNode {
                name: format!("v-{i}"),
                key: account(500 + i),
            })
            .collect()
    }

    pub(crate) fn genesis_with(validators: Vec<GenesisNode>) -> interpool_contracts::Genesis {
        let mut genesis = testkit::genesis(2, 2, 10_000, 1_000_000, 50_000);
        genesis.validators = validators;
        genesis
    }

    /// A proof about `id` after block 6, certified by block 7 with COMMITs from `signers`.
    pub(crate) fn proof_view(
        id: AccountId,
        signers: &[u64],
    ) -> AccountProofView<CommitCertificate> {
        let genesis = genesis_with(genesis_validators());
        let ledger = Ledger::from_genesis(&genesis).expect("genesis");
        let block = Block {
            header: BlockHeader {
                chain_id: CHAIN.into(),
                height: 7,
                parent_hash: Hash([6; 32]),
                previous_state_root: ledger.state_root(),
                timestamp_ms: 1_000,
                proposer: account(500),
            },
            transactions: Vec::new(),
        };
        let bytes = block.encode();
        let (head, transactions) = Block::split(&bytes).expect("framed");
        let vote = Vote {
            height: 7,
            round: 0,
            digest: Digest::of(&bytes),
        };
        let signatures = signers
            .iter()
            .map(|i| {
                let signed = Message::Commit(vote).sign(&validator_key(*i), set().domain());
                (signed.signer, signed.signature)
            })
            .collect();
        AccountProofView {
            proof: ledger.account_proof(&id),
            height: 6,
            certifying_header: to_hex(head),
            certifying_transactions_digest: sha256(&[transactions]),
            certificate: CommitCertificate { vote, signatures },
        }
    }

    fn set() -> ValidatorSet {
        validator_set(&genesis_with(genesis_validators())).expect("set")
    }

    pub(crate) fn customer() -> AccountId {
        account(customer_seed(0, 1))
    }

    #[test]
    fn a_certified_proof_verifies() {
        let view = proof_view(customer(), &[0, 1, 3]);
        let verified = verify_account_proof(&view, &customer(), CHAIN, &set()).expect("valid");
        assert_eq!(verified.block_height, 7);
        assert_eq!(verified.height, 6);
        assert_eq!((verified.signers, verified.validators), (3, 4));
        assert_eq!(verified.account.expect("exists").balance, Amount(10_000));
        // The JSON the node serves reads back into the same proof.
        let json = serde_json::to_string(&view).expect("json");
        let back: AccountProofView<CommitCertificate> = serde_json::from_str(&json).expect("parse");
        verify_account_proof(&back, &customer(), CHAIN, &set()).expect("still valid");
    }

    #[test]
    fn absence_is_proved_too() {
        let nobody = account(77);
        let view = proof_view(nobody, &[0, 1, 2]);
        let verified = verify_account_proof(&view, &nobody, CHAIN, &set()).expect("valid");
        assert_eq!(verified.account, None);
    }

    #[test]
    fn each_broken_link_is_named() {
        let id = customer();
        let check = |view: &AccountProofView<CommitCertificate>| {
            verify_account_proof(view, &id, CHAIN, &set()).expect_err("must fail")
        };

        // Too few signatures.
        let error = check(&proof_view(id, &[0, 1]));
        assert!(
            matches!(
                error,
                VerifyError::Certificate {
                    source: CertificateError::NotEnoughSignatures { got: 2, quorum: 3 },
                    ..
                }
            ),
            "{error}"
        );

        // Signers that are not the genesis validators.
        let other = validator_set(&genesis_with(
            (10..14)
                .map(|i| GenesisNode {
                    name: format!("x-{i}"),
                    key: account(900 + i),
                })
                .collect(),
        ))
        .expect("set");
        let error = verify_account_proof(&proof_view(id, &[0, 1, 2]), &id, CHAIN, &other)
            .expect_err("foreign");
        assert!(
            matches!(
                error,
                VerifyError::Certificate {
                    source: CertificateError::ForeignSigner(_),
                    ..
                }
            ),
            "{error}"
        );

        // A proof about someone else.
        let view = proof_view(account(customer_seed(1, 0)), &[0, 1, 2]);
        assert!(matches!(check(&view), VerifyError::WrongAccount { .. }));

        // A block of another height than height + 1.
        let mut view = proof_view(id, &[0, 1, 2]);
        view.height = 5;
        assert!(matches!(
            check(&view),
            VerifyError::WrongHeight {
                expected: 6,
                got: 7
            }
        ));

        // A tampered header, or another transactions' digest: the certificate no longer
        // names the block.
        let mut view = proof_view(id, &[0, 1, 2]);
        let mut header =
            Block::decode_head(&from_hex_vec(&view.certifying_header, 1 << 20).expect("hex"))
                .expect("header");
        header.timestamp_ms += 1;
        let block = Block {
            header,
            transactions: Vec::new(),
        }
        .encode();
        view.certifying_header = to_hex(Block::split(&block).expect("framed").0);
        let mut other_digest = proof_view(id, &[0, 1, 2]);
        other_digest.certifying_transactions_digest = Hash([7; 32]);
        for view in [view, other_digest] {
            assert!(matches!(
                check(&view),
                VerifyError::Certificate {
                    source: CertificateError::WrongDigest { .. },
                    ..
                }
            ));
        }

        // A proof against another root than the certified one.
        let mut view = proof_view(id, &[0, 1, 2]);
        view.proof.state_root = Hash([9; 32]);
        assert!(matches!(check(&view), VerifyError::RootMismatch { .. }));

        // A lie about the balance.
        let mut view = proof_view(id, &[0, 1, 2]);
        if let Some(account) = view.proof.account.as_mut() {
            account.balance = Amount(1_000_000_000);
        }
        assert!(matches!(check(&view), VerifyError::Proof(_)));

        // Not hex, not a block, another chain.
        let mut view = proof_view(id, &[0, 1, 2]);
        view.certifying_header = "zz".into();
        assert!(matches!(check(&view), VerifyError::BlockHex(_)));
        view.certifying_header = "00".into();
        assert!(matches!(check(&view), VerifyError::BlockDecode(_)));
        // A whole block where its head belongs: not a head.
        let mut view = proof_view(id, &[0, 1, 2]);
        let header =
            Block::decode_head(&from_hex_vec(&view.certifying_header, 1 << 20).expect("hex"))
                .expect("header");
        view.certifying_header = to_hex(
            &Block {
                header,
                transactions: Vec::new(),
            }
            .encode(),
        );
        assert!(matches!(check(&view), VerifyError::BlockDecode(_)));
        let view = proof_view(id, &[0, 1, 2]);
        let error = verify_account_proof(&view, &id, "other-chain", &set()).expect_err("chain");
        assert!(matches!(error, VerifyError::WrongChain { .. }));
    }

    #[test]
    fn a_genesis_without_validators_is_refused() {
        assert!(validator_set(&genesis_with(Vec::new())).is_err());
        let mut one = genesis_validators();
        one.truncate(1);
        assert_eq!(
            validator_set(&genesis_with(one))
                .expect("a set of one")
                .len(),
            1
        );
    }
}
