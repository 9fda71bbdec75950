//! Transactions: what they contain, how they are hashed, signed, encoded and checked without
//! looking at the ledger state.
//!
//! * The hash of a transaction is [`Transaction::hash`]: SHA-256 over [`TX_HASH_DOMAIN`] and
//!   the canonical encoding of the unsigned transaction. It is the transaction's id.
//! * The signature is ed25519 over that hash ([`Transaction::sign`]), verified under the
//!   ZIP-215 rule ([`crate::zip215`]) by [`SignedTransaction::check_stateless`] and, with
//!   the same verdict for every transaction, by [`check_stateless_batch`]. The domain tag
//!   keeps a transaction signature from ever being valid as any other message (consensus
//!   votes use their own tags).
//! * The hash covers the unsigned transaction only, never the signature: two different
//!   valid signatures of one transaction (the signer can always make another) are one
//!   transaction with one id, one nonce and one `end_to_end_id`, so a re-signed or
//!   re-encoded copy can never count as a second payment.
//! * A [`VerifiedTransaction`] can only be built by the stateless check (or by the batch
//!   check), so the ledger never executes a transaction whose signature nobody checked, and
//!   a node verifies each signature once.

use std::collections::BTreeMap;
use std::fmt;

use ed25519_dalek::{Signer, SigningKey};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::codec::{self, DecodeError};
use crate::error::TxError;
use crate::primitives::{
    deserialize_byte_array, from_hex_array, serialize_byte_array, sha256, to_hex, AccountId,
    Amount, BankId, Hash,
};
use crate::zip215::{self, PublicKey};

/// Domain-separation tag hashed in front of every transaction.
pub const TX_HASH_DOMAIN: &[u8] = b"interpool/tx/v1";
/// Largest canonical encoding of a signed transaction, in bytes.
pub const MAX_TX_BYTES: u64 = 2048;
/// Smallest canonical encoding of a signed transaction, in bytes: an empty chain id (its
/// length, 1), the signer (32), the nonce and the validity height (a varint each, 1 at
/// least), the body's tag (1) with no fields (`SettleCycle`), and the signature (64).
/// Shorter bytes are never a transaction; the node's OpenAPI document says so.
pub const MIN_TX_BYTES: u64 = 100;
/// Longest `end_to_end_id` (ISO 20022 `Max35Text`).
pub const MAX_END_TO_END_ID_CHARS: usize = 35;
/// Longest transfer reference (ISO 20022 unstructured remittance information).
pub const MAX_REFERENCE_CHARS: usize = 140;

/// What a transaction does.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Body {
    /// Customer payment from the signer's account to `to`.
    Transfer {
        /// Recipient account.
        to: AccountId,
        /// Amount in minor units.
        amount: Amount,
        /// The payer's idempotency key: a second transfer from the same signer with the same
        /// id is rejected as a duplicate, so an uncertain client can safely sign again.
        end_to_end_id: String,
        /// Free text for the recipient.
        reference: String,
        /// Priority and timing ([`TransferTerms::default`]: normal, no times).
        #[serde(default)]
        terms: TransferTerms,
    },
    /// Bank operator opens an account for `owner` at the operator's bank.
    OpenAccount {
        /// The account holder's public key (becomes the account id).
        owner: AccountId,
    },
    /// Bank operator credits a customer account at its bank (cash in).
    Deposit {
        /// The account.
        account: AccountId,
        /// Amount in minor units.
        amount: Amount,
    },
    /// Bank operator debits a customer account at its bank (cash out).
    Withdraw {
        /// The account.
        account: AccountId,
        /// Amount in minor units.
        amount: Amount,
    },
    /// Settlement authority issues central-bank money into a bank's pool.
    Issue {
        /// The bank.
        bank: BankId,
        /// Amount in minor units.
        amount: Amount,
    },
    /// Settlement authority redeems money from a bank's pool.
    Redeem {
        /// The bank.
        bank: BankId,
        /// Amount in minor units.
        amount: Amount,
    },
    /// Settlement authority sets a bank's net debit cap.
    SetNetDebitCap {
        /// The bank.
        bank: BankId,
        /// New cap in minor units.
        cap: Amount,
    },
    /// Settlement authority closes the current cycle at the end of this block.
    SettleCycle,
    /// Regulator freezes an account: it can no longer send or be withdrawn from.
    Freeze {
        /// The account.
        account: AccountId,
    },
    /// Regulator lifts a freeze.
    Unfreeze {
        /// The account.
        account: AccountId,
    },
    /// Takes a queued transfer out of its bank's queue and refunds its payer: signed by the
    /// payer or by the operator of the payer's bank.
    CancelTransfer {
        /// The queued transfer's transaction hash.
        tx_hash: Hash,
    },
    /// Bank operator changes the priority of a transfer queued at its bank.
    Reprioritise {
        /// The queued transfer's transaction hash.
        tx_hash: Hash,
        /// Its new priority (`normal` or `high`).
        priority: Priority,
    },
    /// Settlement authority runs the liquidity-saving pass at the end of this block
    /// ([`crate::liquidity`]), whether or not the chain runs it after every block.
    ResolveGridlock,
}

/// How urgently a queued transfer is released (T2's priorities). A bank's queue releases
/// urgent, then high, then normal; a normal transfer is never released while a higher one of
/// the same bank waits.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum Priority {
    /// Customer payments (the default). Within the class, a later transfer that fits may
    /// pass an earlier one that does not; rejected at the business day's customer cut-off.
    #[default]
    Normal,
    /// Time-critical customer payments: first in first out, kept past the cut-off. One that
    /// would wait and is larger than its bank's whole debit limit is refused
    /// (`high_over_debit_limit`): nothing of its bank's could pass it.
    High,
    /// Reserved for the settlement authority's and the operators' own liquidity transfers;
    /// a customer transfer may not carry it (`priority_not_allowed`). First in first out.
    Urgent,
}

impl Priority {
    /// Every priority, in release order (urgent first).
    pub const RELEASE_ORDER: [Priority; 3] = [Priority::Urgent, Priority::High, Priority::Normal];

    /// True for the classes released strictly first in first out.
    pub fn strict_order(self) -> bool {
        self != Priority::Normal
    }
}

impl fmt::Display for Priority {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Priority::Normal => "normal",
            Priority::High => "high",
            Priority::Urgent => "urgent",
        })
    }
}

impl std::str::FromStr for Priority {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text {
            "normal" => Ok(Priority::Normal),
            "high" => Ok(Priority::High),
            "urgent" => Ok(Priority::Urgent),
            other => Err(format!(
                "unknown priority {other:?} (normal, high or urgent)"
            )),
        }
    }
}

/// A transfer's priority and timing (T2's timed payments), on the certified block time in
/// milliseconds since the Unix epoch, never a node's clock.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TransferTerms {
    /// Release priority.
    #[serde(default)]
    pub priority: Priority,
    /// Not settled in a block timed before this (it waits in the queue until then).
    #[serde(default)]
    pub not_before_ms: Option<u64>,
    /// Rejected (`reject_time`) in the first block timed at or after this if still
    /// unsettled; a transfer submitted at or after it is refused.
    #[serde(default)]
    pub reject_after_ms: Option<u64>,
}

/// The kind of a [`Body`], without its fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum BodyKind {
    /// [`Body::Transfer`]
    Transfer,
    /// [`Body::OpenAccount`]
    OpenAccount,
    /// [`Body::Deposit`]
    Deposit,
    /// [`Body::Withdraw`]
    Withdraw,
    /// [`Body::Issue`]
    Issue,
    /// [`Body::Redeem`]
    Redeem,
    /// [`Body::SetNetDebitCap`]
    SetNetDebitCap,
    /// [`Body::SettleCycle`]
    SettleCycle,
    /// [`Body::Freeze`]
    Freeze,
    /// [`Body::Unfreeze`]
    Unfreeze,
    /// [`Body::CancelTransfer`]
    CancelTransfer,
    /// [`Body::Reprioritise`]
    Reprioritise,
    /// [`Body::ResolveGridlock`]
    ResolveGridlock,
}

impl fmt::Display for BodyKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = match self {
            BodyKind::Transfer => "transfer",
            BodyKind::OpenAccount => "open_account",
            BodyKind::Deposit => "deposit",
            BodyKind::Withdraw => "withdraw",
            BodyKind::Issue => "issue",
            BodyKind::Redeem => "redeem",
            BodyKind::SetNetDebitCap => "set_net_debit_cap",
            BodyKind::SettleCycle => "settle_cycle",
            BodyKind::Freeze => "freeze",
            BodyKind::Unfreeze => "unfreeze",
            BodyKind::CancelTransfer => "cancel_transfer",
            BodyKind::Reprioritise => "reprioritise",
            BodyKind::ResolveGridlock => "resolve_gridlock",
        };
        f.write_str(name)
    }
}

impl Body {
    /// The customer account this body acts on besides its signer's (the payee of a
    /// transfer, the account a bank or a regulator acts on), if any.
    pub fn counterparty(&self) -> Option<AccountId> {
        match self {
            Body::Transfer { to, .. } => Some(*to),
            Body::OpenAccount { owner } => Some(*owner),
            Body::Deposit { account, .. }
            | Body::Withdraw { account, .. }
            | Body::Freeze { account }
            | Body::Unfreeze { account } => Some(*account),
            Body::Issue { .. }
            | Body::Redeem { .. }
            | Body::SetNetDebitCap { .. }
            | Body::SettleCycle
            | Body::CancelTransfer { .. }
            | Body::Reprioritise { .. }
            | Body::ResolveGridlock => None,
        }
    }

    /// This body's kind.
    pub fn kind(&self) -> BodyKind {
        match self {
            Body::Transfer { .. } => BodyKind::Transfer,
            Body::OpenAccount { .. } => BodyKind::OpenAccount,
            Body::Deposit { .. } => BodyKind::Deposit,
            Body::Withdraw { .. } => BodyKind::Withdraw,
            Body::Issue { .. } => BodyKind::Issue,
            Body::Redeem { .. } => BodyKind::Redeem,
            Body::SetNetDebitCap { .. } => BodyKind::SetNetDebitCap,
            Body::SettleCycle => BodyKind::SettleCycle,
            Body::Freeze { .. } => BodyKind::Freeze,
            Body::Unfreeze { .. } => BodyKind::Unfreeze,
            Body::CancelTransfer { .. } => BodyKind::CancelTransfer,
            Body::Reprioritise { .. } => BodyKind::Reprioritise,
            Body::ResolveGridlock => BodyKind::ResolveGridlock,
        }
    }
}

/// An unsigned transaction.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Transaction {
    /// The chain this transaction is for (replay protection across chains).
    pub chain_id: String,
    /// The signer's public key.
    pub signer: AccountId,
    /// The signer's next nonce; each included transaction consumes one.
    pub nonce: u64,
    /// Last block height at which the transaction may be included.
    pub valid_until_height: u64,
    /// What it does.
    pub body: Body,
}

impl Transaction {
    /// The keys whose history shows this transaction: the signer and the body's
    /// counterparty (sorted, without repeats).
    pub fn parties(&self) -> Vec<AccountId> {
        let mut parties = vec![self.signer];
        if let Some(other) = self.body.counterparty() {
            if other != self.signer {
                parties.push(other);
            }
        }
        parties.sort();
        parties
    }

    /// The transaction's id: SHA-256 over [`TX_HASH_DOMAIN`] and the canonical encoding.
    /// This is the only definition of a transaction hash.
    pub fn hash(&self) -> Hash {
        hash_of_encoding(&codec::encode(self))
    }

    /// Signs the transaction. `key` must be the signer's key (the signature would not verify
    /// otherwise).
    pub fn sign(self, key: &SigningKey) -> SignedTransaction {
        let signature = Signature(key.sign(self.hash().as_bytes()).to_bytes());
        SignedTransaction {
            tx: self,
            signature,
        }
    }
}

/// An ed25519 signature (64 bytes; hex in JSON).
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Signature(pub [u8; 64]);

impl fmt::Debug for Signature {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Signature({}…)", &to_hex(&self.0)[..12])
    }
}

impl Serialize for Signature {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        if serializer.is_human_readable() {
            serializer.serialize_str(&to_hex(&self.0))
        } else {
            // serde implements arrays only up to 32 elements: two halves.
            // A pair of 32-byte tuples, as it always was (bincode: the 64 bytes).
            let (a, b) = self.0.split_at(32);
            let a: &[u8; 32] = a.try_into().map_err(serde::ser::Error::custom)?;
            let b: &[u8; 32] = b.try_into().map_err(serde::ser::Error::custom)?;
            (Half(a), Half(b)).serialize(serializer)
        }
    }
}

/// Half of a signature in the binary form: 32 bytes ([`serialize_byte_array`]).
struct Half<T>(T);

impl Serialize for Half<&[u8; 32]> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serialize_byte_array(self.0, serializer)
    }
}

impl<'de> Deserialize<'de> for Half<[u8; 32]> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserialize_byte_array(deserializer).map(Half)
    }
}

impl<'de> Deserialize<'de> for Signature {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        if deserializer.is_human_readable() {
            let text = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
            from_hex_array::<64>(&text)
                .map(Signature)
                .map_err(serde::de::Error::custom)
        } else {
            let (Half(a), Half(b)) = <(Half<[u8; 32]>, Half<[u8; 32]>)>::deserialize(deserializer)?;
            let mut out = [0u8; 64];
            out[..32].copy_from_slice(&a);
            out[32..].copy_from_slice(&b);
            Ok(Signature(out))
        }
    }
}

/// A transaction with its signature, as submitted, gossiped and included in blocks.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignedTransaction {
    /// The transaction.
    pub tx: Transaction,
    /// ed25519 signature over [`Transaction::hash`].
    pub signature: Signature,
}

impl SignedTransaction {
    /// The transaction's id ([`Transaction::hash`]).
    pub fn hash(&self) -> Hash {
        self.tx.hash()
    }

    /// Canonical encoding.
    pub fn encode(&self) -> Vec<u8> {
        codec::encode(self)
    }

    /// Decodes a canonical encoding, refusing anything longer than [`MAX_TX_BYTES`] before
    /// decoding. Decoding does not verify anything; call [`Self::check_stateless`].
    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        codec::decode(bytes, MAX_TX_BYTES)
    }

    /// Every check that needs no ledger state, signature included: size, chain id, the
    /// signer key, the signature, and the body's own fields. On success returns the
    /// transaction as a [`VerifiedTransaction`], remembering its hash.
    pub fn check_stateless(self, chain_id: &str) -> Result<VerifiedTransaction, TxError> {
        let hash = self.check_fields(chain_id)?;
        let key = signer_key(&self.tx.signer)?;
        if !zip215::verify(&key, hash.as_bytes(), &self.signature.0) {
            return Err(TxError::BadSignature);
        }
        Ok(VerifiedTransaction::new(self, hash))
    }

    /// The stateless checks except the signature; returns the hash.
    fn check_fields(&self, chain_id: &str) -> Result<Hash, TxError> {
        // The transaction is encoded once, for its hash and its size (the signed
        // transaction's encoding is the transaction's, then the signature's 64 bytes).
        let encoded = codec::encode(&self.tx);
        let bytes = (encoded.len() as u64).saturating_add(SIGNATURE_BYTES);
        if bytes > MAX_TX_BYTES {
            return Err(TxError::Oversized {
                bytes,
                limit: MAX_TX_BYTES,
            });
        }
        if self.tx.chain_id != chain_id {
            return Err(TxError::WrongChain {
                expected: chain_id.to_string(),
                got: self.tx.chain_id.chars().take(64).collect(),
            });
        }
        check_body_fields(&self.tx)?;
        Ok(hash_of_encoding(&encoded))
    }
}

/// The length of a signature's encoding: 64 bytes, no length prefix.
const SIGNATURE_BYTES: u64 = 64;

/// [`Transaction::hash`] of a transaction's canonical encoding.
fn hash_of_encoding(encoded: &[u8]) -> Hash {
    sha256(&[TX_HASH_DOMAIN, encoded])
}

/// The signer's key, or `invalid_signer`: not a curve point, or a small-order point (which
/// could "sign" anything; ZIP-215 itself would accept it, we refuse it by name). A function
/// of the key bytes alone, so single and batch checks agree on it.
/// A signer's key, decoded (ZIP-215 point decoding; small-order keys refused).
pub fn signer_key(signer: &AccountId) -> Result<PublicKey, TxError> {
    PublicKey::decode(signer.as_bytes()).map_err(|_| TxError::InvalidSigner(*signer))
}

fn check_body_fields(tx: &Transaction) -> Result<(), TxError> {
    match &tx.body {
        Body::Transfer {
            to,
            amount,
            end_to_end_id,
            reference,
            terms,
        } => {
            if *amount == Amount::ZERO {
                return Err(TxError::ZeroAmount);
            }
            let id_ok = !end_to_end_id.is_empty()
                && end_to_end_id.len() <= MAX_END_TO_END_ID_CHARS
                && end_to_end_id.bytes().all(|b| (0x20..=0x7e).contains(&b));
            if !id_ok {
                return Err(TxError::InvalidEndToEndId);
            }
            if reference.chars().count() > MAX_REFERENCE_CHARS
                || reference.chars().any(char::is_control)
            {
                return Err(TxError::InvalidReference);
            }
            if *to == tx.signer {
                return Err(TxError::SelfTransfer);
            }
            if let (Some(from), Some(until)) = (terms.not_before_ms, terms.reject_after_ms) {
                if from >= until {
                    return Err(TxError::InvalidTerms);
                }
            }
        }
        Body::Deposit { amount, .. }
        | Body::Withdraw { amount, .. }
        | Body::Issue { amount, .. }
        | Body::Redeem { amount, .. } => {
            if *amount == Amount::ZERO {
                return Err(TxError::ZeroAmount);
            }
        }
        Body::OpenAccount { owner } => {
            if PublicKey::decode(owner.as_bytes()).is_err() {
                return Err(TxError::InvalidAccountKey(*owner));
            }
        }
        Body::SetNetDebitCap { .. }
        | Body::SettleCycle
        | Body::Freeze { .. }
        | Body::Unfreeze { .. }
        | Body::CancelTransfer { .. }
        | Body::Reprioritise { .. }
        | Body::ResolveGridlock => {}
    }
    Ok(())
}

/// Checks many transactions at once, verifying signatures in one ed25519 batch.
///
/// Each transaction's result is exactly what [`SignedTransaction::check_stateless`] gives
/// it, whatever else is in the batch: both apply the ZIP-215 rule, whose batch equation
/// holds for any set of valid signatures, and a failing batch is resolved by checking each
/// signature alone ([`zip215::verify_batch`]). Worth it from a handful of transactions up;
/// the node calls it on its verification workers.
pub fn check_stateless_batch(
    txs: Vec<SignedTransaction>,
    chain_id: &str,
) -> Vec<Result<VerifiedTransaction, TxError>> {
    // Decompressing a key costs about as much as a third of a verification: a signer with
    // many transactions in the batch (a bank's bulk payments) has it done once.
    let mut keys: BTreeMap<AccountId, Result<PublicKey, TxError>> = BTreeMap::new();
    check_stateless_batch_by(txs, chain_id, |signer| {
        keys.entry(*signer)
            .or_insert_with(|| signer_key(signer))
            .clone()
    })
}

/// [`check_stateless_batch`] with the signer keys decoded by `key_of` (for example
/// [`signer_key`] with a memory of keys decoded before: a network's signers sign again and
/// again, and decoding a key, a field square root, is about a third of a verification).
/// `key_of` must answer as [`signer_key`] does; the verdicts are then the same.
pub fn check_stateless_batch_by(
    txs: Vec<SignedTransaction>,
    chain_id: &str,
    mut key_of: impl FnMut(&AccountId) -> Result<PublicKey, TxError>,
) -> Vec<Result<VerifiedTransaction, TxError>> {
    let mut checked: Vec<Result<(VerifiedTransaction, PublicKey), TxError>> =
        Vec::with_capacity(txs.len());
    for signed in txs {
        checked.push(signed.check_fields(chain_id).and_then(|hash| {
            let key = key_of(&signed.tx.signer)?;
            Ok((VerifiedTransaction::new(signed, hash), key))
        }));
    }
    let items: Vec<(&PublicKey, &[u8], &[u8; 64])> = checked
        .iter()
        .flatten()
        .map(|(verified, key)| {
            (
                key,
                verified.hash.as_bytes().as_slice(),
                &verified.signed.signature.0,
            )
        })
        .collect();
    let mut verdicts = zip215::verify_batch(&items).into_iter();
    checked
        .into_iter()
        .map(|result| {
            let (verified, _) = result?;
            // One verdict per transaction that reached the signature check, in order.
            if verdicts.next() == Some(true) {
                Ok(verified)
            } else {
                Err(TxError::BadSignature)
            }
        })
        .collect()
}

/// A transaction that passed [`SignedTransaction::check_stateless`] (signature included),
/// with its hash remembered. Only this type can be executed by the ledger.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedTransaction {
    signed: SignedTransaction,
    hash: Hash,
    /// A transfer's [`end_to_end_key`]: the ledger looks it up when the transfer is
    /// admitted, checked in a proposal and executed, and it is computed once, here.
    end_to_end_key: Option<Hash>,
}

impl VerifiedTransaction {
    fn new(signed: SignedTransaction, hash: Hash) -> VerifiedTransaction {
        let end_to_end_key = match &signed.tx.body {
            Body::Transfer { end_to_end_id, .. } => {
                Some(end_to_end_key(&signed.tx.signer, end_to_end_id))
            }
            _ => None,
        };
        VerifiedTransaction {
            signed,
            hash,
            end_to_end_key,
        }
    }

    /// The signed transaction.
    pub fn signed(&self) -> &SignedTransaction {
        &self.signed
    }

    /// The transaction.
    pub fn tx(&self) -> &Transaction {
        &self.signed.tx
    }

    /// The transaction's hash, computed once at verification.
    pub fn hash(&self) -> Hash {
        self.hash
    }

    /// A transfer's [`end_to_end_key`], computed once at verification; `None` for any
    /// other body.
    pub fn end_to_end_key(&self) -> Option<&Hash> {
        self.end_to_end_key.as_ref()
    }

    /// Unwraps the signed transaction.
    pub fn into_signed(self) -> SignedTransaction {
        self.signed
    }

    /// Re-admits a transaction that this process verified before and read back from its own
    /// store (e.g. a committed block at restart). Runs every stateless check except the
    /// signature. Never use it for bytes from the network or a user.
    pub fn from_trusted_store(
        signed: SignedTransaction,
        chain_id: &str,
    ) -> Result<VerifiedTransaction, TxError> {
        let hash = signed.check_fields(chain_id)?;
        Ok(VerifiedTransaction::new(signed, hash))
    }
}

/// Where the ledger remembers a signer's `end_to_end_id` (a digest of the pair; the id's
/// length goes first, so no two pairs share an input).
pub fn end_to_end_key(signer: &AccountId, id: &str) -> Hash {
    sha256(&[
        b"interpool/end-to-end/v1",
        signer.as_bytes(),
        &(id.len() as u64).to_be_bytes(),
        id.as_bytes(),
    ])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testkit::key;

    fn transfer(signer: &SigningKey, to: AccountId, amount: u64) -> Transaction {
        Transaction {
            chain_id: "test".into(),
            signer: AccountId(signer.verifying_key().to_bytes()),
            nonce: 0,
            valid_until_height: 100,
            body: Body::Transfer {
                to,
                amount: Amount(amount),
                end_to_end_id: "E2E-1".into(),
                reference: "invoice 7".into(),
                terms: Default::default(),
            },
        }
    }

    #[test]
    fn the_smallest_transaction_is_min_tx_bytes_and_one_byte_less_decodes_to_nothing() {
        let smallest = Transaction {
            chain_id: String::new(),
            signer: AccountId([7; 32]),
            nonce: 0,
            valid_until_height: 0,
            body: Body::SettleCycle,
        }
        .sign(&key(1))
        .encode();
        assert_eq!(smallest.len() as u64, MIN_TX_BYTES);
        assert!(SignedTransaction::decode(&smallest).is_ok());
        assert!(SignedTransaction::decode(&smallest[..smallest.len() - 1]).is_err());
        // Every other body has fields, so no encoding is shorter.
        let settle_tag = codec::encode(&Body::SettleCycle);
        assert_eq!(settle_tag.len(), 1);
    }

    #[test]
    fn signed_transaction_round_trips_and_verifies() {
        let alice = key(1);
        let bob = AccountId(key(2).verifying_key().to_bytes());
        let signed = transfer(&alice, bob, 500).sign(&alice);
        let bytes = signed.encode();
        let decoded = SignedTransaction::decode(&bytes).expect("decode");
        assert_eq!(decoded, signed);
        let verified = decoded.check_stateless("test").expect("valid");
        assert_eq!(verified.hash(), signed.hash());
    }

    #[test]
    fn every_stateless_rejection() {
        let alice = key(1);
        let bob = AccountId(key(2).verifying_key().to_bytes());
        let check = |tx: Transaction| tx.sign(&alice).check_stateless("test").map(|_| ());

        let mut wrong_chain = transfer(&alice, bob, 5);
        wrong_chain.chain_id = "other".into();
        assert!(matches!(
            check(wrong_chain),
            Err(TxError::WrongChain { .. })
        ));

        assert_eq!(check(transfer(&alice, bob, 0)), Err(TxError::ZeroAmount));

        for bad_id in ["", "x".repeat(36).as_str(), "tab\there", "é"] {
            let mut tx = transfer(&alice, bob, 5);
            if let Body::Transfer { end_to_end_id, .. } = &mut tx.body {
                *end_to_end_id = bad_id.to_string();
            }
            assert_eq!(check(tx), Err(TxError::InvalidEndToEndId), "{bad_id:?}");
        }
        for bad_ref in ["r".repeat(141), "line\nbreak".to_string()] {
            let mut tx = transfer(&alice, bob, 5);
            if let Body::Transfer { reference, .. } = &mut tx.body {
                *reference = bad_ref;
            }
            assert_eq!(check(tx), Err(TxError::InvalidReference));
        }
        let me = AccountId(alice.verifying_key().to_bytes());
        assert_eq!(check(transfer(&alice, me, 5)), Err(TxError::SelfTransfer));

        for body in [
            Body::Deposit {
                account: bob,
                amount: Amount(0),
            },
            Body::Withdraw {
                account: bob,
                amount: Amount(0),
            },
            Body::Issue {
                bank: BankId::new("B").expect("id"),
                amount: Amount(0),
            },
            Body::Redeem {
                bank: BankId::new("B").expect("id"),
                amount: Amount(0),
            },
        ] {
            let mut tx = transfer(&alice, bob, 5);
            tx.body = body;
            assert_eq!(check(tx), Err(TxError::ZeroAmount));
        }

        let mut identity = [0u8; 32];
        identity[0] = 1;
        let mut open = transfer(&alice, bob, 5);
        open.body = Body::OpenAccount {
            owner: AccountId(identity),
        };
        assert_eq!(
            check(open),
            Err(TxError::InvalidAccountKey(AccountId(identity)))
        );

        let mut oversized = transfer(&alice, bob, 5);
        if let Body::Transfer { reference, .. } = &mut oversized.body {
            // 140 characters of 4 bytes each stay valid; the size limit is what stops a
            // bigger chain id.
            *reference = "€".repeat(140);
        }
        oversized.chain_id = "c".repeat(2000);
        assert!(matches!(
            oversized.sign(&alice).check_stateless("test"),
            Err(TxError::Oversized { .. })
        ));
    }

    /// The size limit counts the signed transaction's whole encoding (the check measures
    /// it as the transaction's encoding plus the signature's): one byte over is refused,
    /// exactly at the limit passes.
    /// A signature is its 64 bytes in the canonical encoding (two 32-byte halves, no
    /// length), both ways.
    #[test]
    fn a_signature_encodes_as_its_64_bytes() {
        let bytes: [u8; 64] = std::array::from_fn(|i| (i as u8).wrapping_mul(101));
        let signature = Signature(bytes);
        assert_eq!(codec::encode(&signature), bytes.to_vec());
        assert_eq!(codec::decode::<Signature>(&bytes, 64), Ok(signature));
        assert!(codec::decode::<Signature>(&bytes[..63], 64).is_err());
        assert!(codec::decode::<Signature>(&bytes[..32], 64).is_err());
    }

    #[test]
    fn the_size_limit_is_the_signed_encoding_to_the_byte() {
        let alice = key(1);
        let bob = AccountId(key(2).verifying_key().to_bytes());
        let with_chain = |length: usize| {
            let mut tx = transfer(&alice, bob, 5);
            tx.chain_id = "c".repeat(length);
            tx.sign(&alice)
        };
        let base = with_chain(300);
        let base_len = base.encode().len() as u64;
        assert_eq!(
            base_len,
            codec::encode(&base.tx).len() as u64 + SIGNATURE_BYTES
        );
        // Grow the chain id until the signed encoding is exactly the limit (the varint
        // length prefix stays 3 bytes over this range).
        let at_limit = with_chain(300 + (MAX_TX_BYTES - base_len) as usize);
        assert_eq!(at_limit.encode().len() as u64, MAX_TX_BYTES);
        let chain_id = at_limit.tx.chain_id.clone();
        assert!(!matches!(
            at_limit.check_stateless(&chain_id),
            Err(TxError::Oversized { .. })
        ));
        let over = with_chain(chain_id.len() + 1);
        assert_eq!(over.encode().len() as u64, MAX_TX_BYTES + 1);
        assert_eq!(
            over.check_stateless(&"c".repeat(chain_id.len() + 1)),
            Err(TxError::Oversized {
                bytes: MAX_TX_BYTES + 1,
                limit: MAX_TX_BYTES
            })
        );
    }

    #[test]
    fn tampering_or_wrong_key_breaks_the_signature() {
        let alice = key(1);
        let mallory = key(3);
        let bob = AccountId(key(2).verifying_key().to_bytes());
        let mut signed = transfer(&alice, bob, 5).sign(&alice);
        signed.tx.nonce = 1;
        assert_eq!(
            signed.check_stateless("test").map(|_| ()),
            Err(TxError::BadSignature)
        );

        let forged = transfer(&alice, bob, 5).sign(&mallory);
        assert_eq!(
            forged.check_stateless("test").map(|_| ()),
            Err(TxError::BadSignature)
        );

        // An identity point is a weak key and is refused by name.
        let mut identity = [0u8; 32];
        identity[0] = 1;
        let mut weak = transfer(&alice, bob, 5);
        weak.signer = AccountId(identity);
        let weak = weak.sign(&alice);
        assert_eq!(
            weak.check_stateless("test").map(|_| ()),
            Err(TxError::InvalidSigner(AccountId(identity)))
        );
    }

    /// The batch check's verdicts (hash or error), asserted equal to single checks'.
    pub(super) fn batch_verdicts_match_single_ones(
        txs: Vec<SignedTransaction>,
    ) -> Vec<Result<Hash, TxError>> {
        let singles: Vec<_> = txs
            .iter()
            .cloned()
            .map(|t| t.check_stateless("test").map(|v| v.hash()))
            .collect();
        let batch: Vec<_> = check_stateless_batch(txs.clone(), "test")
            .into_iter()
            .map(|r| r.map(|v| v.hash()))
            .collect();
        assert_eq!(singles, batch);
        // With keys remembered across batches (as the node's admission does): twice, the
        // second time with every valid key known.
        let mut known: BTreeMap<AccountId, PublicKey> = BTreeMap::new();
        for _ in 0..2 {
            let remembered: Vec<_> = check_stateless_batch_by(txs.clone(), "test", |signer| {
                if let Some(key) = known.get(signer) {
                    return Ok(*key);
                }
                let key = signer_key(signer)?;
                known.insert(*signer, key);
                Ok(key)
            })
            .into_iter()
            .map(|r| r.map(|v| v.hash()))
            .collect();
            assert_eq!(singles, remembered);
        }
        batch
    }

    #[test]
    fn batch_check_matches_single_checks() {
        let bob = AccountId(key(99).verifying_key().to_bytes());
        let mut txs = Vec::new();
        for i in 0..20u8 {
            let signer = key(u64::from(i) + 1);
            let mut tx = transfer(&signer, bob, 10).sign(&signer);
            if i % 7 == 3 {
                tx.tx.nonce += 1; // breaks the signature
            }
            if i == 11 {
                tx.tx.chain_id = "nope".into();
            }
            txs.push(tx);
        }
        let batch = batch_verdicts_match_single_ones(txs);
        assert_eq!(batch.iter().filter(|r| r.is_err()).count(), 4);
    }

    #[test]
    fn a_batch_with_repeated_signers_matches_single_checks() {
        let bob = AccountId(key(99).verifying_key().to_bytes());
        let not_a_point = (0u8..=255)
            .map(|b| AccountId([b; 32]))
            .find(|k| PublicKey::decode(&k.0) == Err(zip215::KeyError::NotAPoint))
            .expect("some byte pattern is not a curve point");
        let mut txs = Vec::new();
        for i in 0..30u64 {
            // Three signers, each ten times; some signatures broken, some signers not keys.
            let signer = key(i % 3 + 1);
            let mut tx = transfer(&signer, bob, 10 + i).sign(&signer);
            if i % 9 == 2 {
                tx.tx.nonce += 1; // breaks the signature
            }
            if i % 10 == 7 {
                tx.tx.signer = not_a_point;
            }
            txs.push(tx);
        }
        let batch = batch_verdicts_match_single_ones(txs);
        assert_eq!(
            batch
                .iter()
                .filter(|r| matches!(r, Err(TxError::InvalidSigner(k)) if *k == not_a_point))
                .count(),
            3
        );
        assert!(batch
            .iter()
            .any(|r| matches!(r, Err(TxError::BadSignature))));
        assert!(batch.iter().filter(|r| r.is_ok()).count() >= 20);
    }

    #[test]
    fn signature_json_is_hex() {
        let sig = Signature([7u8; 64]);
        let json = serde_json::to_string(&sig).expect("json");
        assert_eq!(json.len(), 130);
        assert_eq!(
            serde_json::from_str::<Signature>(&json).expect("parse"),
            sig
        );
        let bin = codec::encode(&sig);
        assert_eq!(bin.len(), 64);
    }
}

#[cfg(test)]
#[path = "tx_signature_tests.rs"]
mod signature_tests;
