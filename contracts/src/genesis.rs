//! The genesis state of the ledger: who the banks, the authority and the regulators are,
//! the chain's parameters, and the opening balances.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::calendar::BusinessDay;
use crate::codec;
use crate::primitives::{sha256, AccountId, Amount, BankId, Hash};

/// A member bank at genesis.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GenesisBank {
    /// The bank's id.
    pub id: BankId,
    /// Public key of the bank's operator (signs OpenAccount, Deposit, Withdraw).
    pub operator: AccountId,
    /// Opening pool balance (settlement money issued at genesis), minor units.
    pub initial_pool: Amount,
    /// Net debit cap, minor units.
    pub net_debit_cap: Amount,
}

/// A customer account at genesis.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GenesisAccount {
    /// The owner's public key (the account id).
    pub owner: AccountId,
    /// The bank that holds the account.
    pub bank: BankId,
    /// Opening balance, minor units (counts as a deposit at that bank).
    pub balance: Amount,
}

/// A node of the consortium at genesis: a validator (votes) or an observer (follows and
/// verifies). Its key is its network identity and, for validators, its consensus key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GenesisNode {
    /// Short name for logs and metrics (`validator-0`, `regulator-observer`): 1–32
    /// characters of `a-z0-9-_`.
    pub name: String,
    /// The node's ed25519 public key.
    pub key: AccountId,
}

/// The defaults of a genesis's optional parameters: one definition for the genesis file,
/// the consortium spec and the localnet generator.
pub mod defaults {
    /// Queue capacity per bank.
    pub const MAX_QUEUE_PER_BANK: u32 = 10_000;
    /// Blocks an `end_to_end_id` is remembered: twice [`MAX_VALIDITY_BLOCKS`], the least
    /// the genesis allows.
    pub const DUPLICATE_WINDOW_BLOCKS: u64 = 2 * MAX_VALIDITY_BLOCKS;
    /// How far past a signer's next nonce a pending transaction's nonce may be.
    pub const MAX_NONCE_LOOKAHEAD: u64 = 256;
    /// How many blocks ahead a transaction's `valid_until_height` may lie.
    pub const MAX_VALIDITY_BLOCKS: u64 = 86_400;
    /// Most transfers of one payer waiting in its bank's queue.
    pub const MAX_QUEUED_PER_PAYER: u32 = 100;

    /// How long before its reject time a queued transfer is warned about: five minutes.
    pub const REJECT_WARNING_MS: u64 = 300_000;

    /// [`REJECT_WARNING_MS`], for serde.
    pub fn reject_warning_ms() -> u64 {
        REJECT_WARNING_MS
    }

    /// [`MAX_QUEUE_PER_BANK`], for serde.
    pub fn max_queue_per_bank() -> u32 {
        MAX_QUEUE_PER_BANK
    }

    /// [`DUPLICATE_WINDOW_BLOCKS`], for serde.
    pub fn duplicate_window_blocks() -> u64 {
        DUPLICATE_WINDOW_BLOCKS
    }

    /// [`MAX_NONCE_LOOKAHEAD`], for serde.
    pub fn max_nonce_lookahead() -> u64 {
        MAX_NONCE_LOOKAHEAD
    }

    /// [`MAX_VALIDITY_BLOCKS`], for serde.
    pub fn max_validity_blocks() -> u64 {
        MAX_VALIDITY_BLOCKS
    }

    /// [`MAX_QUEUED_PER_PAYER`], for serde.
    pub fn max_queued_per_payer() -> u32 {
        MAX_QUEUED_PER_PAYER
    }
}

/// The ledger's genesis (JSON in `genesis.json`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Genesis {
    /// The chain id every transaction must carry.
    pub chain_id: String,
    /// ISO 4217-style currency code, e.g. `EUR`.
    pub currency: String,
    /// Minor-unit digits, e.g. 2 for cents.
    pub decimals: u8,
    /// Member banks, in any order (the ledger sorts by id).
    pub banks: Vec<GenesisBank>,
    /// The settlement authority (central bank) key.
    pub authority: AccountId,
    /// Regulator keys.
    pub regulators: Vec<AccountId>,
    /// A cycle closes at every height that is a multiple of this.
    pub cycle_blocks: u64,
    /// A queued transfer still queued this many blocks after it was queued is refunded.
    pub queue_expiry_blocks: u64,
    /// Most transfers one bank may have queued; more are rejected (`queue_full`).
    #[serde(default = "defaults::max_queue_per_bank")]
    pub max_queue_per_bank: u32,
    /// For how many blocks an `end_to_end_id` is remembered after its transfer. At least
    /// twice `max_validity_blocks`, so that a retry of a payment (same `end_to_end_id`,
    /// signed while the first was still valid) can never pay twice: the first, included at
    /// height `h`, is valid until `h + V` at most, and a retry signed then until `h + 2V`.
    /// And at least `queue_expiry_blocks + max_validity_blocks`: a transfer queued at `h`
    /// may wait until `h + E`, and a retry signed while it waits is valid until `h + E + V`.
    #[serde(default = "defaults::duplicate_window_blocks")]
    pub duplicate_window_blocks: u64,
    /// A pending transaction's nonce may be at most this far past its signer's next nonce
    /// (`nonce_too_far_ahead`): nothing can sit in a mempool that could never be selected.
    #[serde(default = "defaults::max_nonce_lookahead")]
    pub max_nonce_lookahead: u64,
    /// A transaction's `valid_until_height` may be at most this many blocks past the height
    /// it is checked at (`validity_too_long`).
    #[serde(default = "defaults::max_validity_blocks")]
    pub max_validity_blocks: u64,
    /// Most transfers of one payer waiting in its bank's payment queue
    /// (`payer_queue_full`): one customer cannot fill a bank's queue.
    #[serde(default = "defaults::max_queued_per_payer")]
    pub max_queued_per_payer: u32,
    /// Opening customer accounts.
    pub accounts: Vec<GenesisAccount>,
    /// Validators in proposer-rotation order (the consensus validator set). Empty for a
    /// ledger run offline.
    #[serde(default)]
    pub validators: Vec<GenesisNode>,
    /// Observer nodes allowed to connect and follow the chain (regulators, auditors).
    #[serde(default)]
    pub observers: Vec<GenesisNode>,
    /// The business-day calendar (customer cut-off, end of day); none: the chain runs
    /// without business days.
    #[serde(default)]
    pub business_day: Option<BusinessDay>,
    /// When the liquidity-saving pass runs (default: after every block).
    #[serde(default)]
    pub gridlock_pass: GridlockPass,
    /// How long before a queued transfer's reject time the chain warns about it (in each
    /// block's `warned`, and on the event stream), milliseconds of block time.
    #[serde(default = "defaults::reject_warning_ms")]
    pub reject_warning_ms: u64,
}

/// When the liquidity-saving pass ([`crate::liquidity`]) runs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GridlockPass {
    /// After every block that leaves payments queued, and on the authority's request.
    #[default]
    EveryBlock,
    /// Only in a block holding the authority's `ResolveGridlock`.
    OnRequest,
}

/// Why a genesis is invalid.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum GenesisError {
    /// Empty chain id, or longer than 64 bytes.
    #[error("chain_id must be 1 to 64 characters")]
    ChainId,
    /// Currency code is not 3 uppercase letters.
    #[error("currency must be 3 uppercase letters, got {0:?}")]
    Currency(String),
    /// More than 18 decimals.
    #[error("decimals must be at most 18, got {0}")]
    Decimals(u8),
    /// No banks.
    #[error("genesis needs at least one bank")]
    NoBanks,
    /// A bank id appears twice.
    #[error("bank {0} is listed twice")]
    DuplicateBank(BankId),
    /// A key is used twice (by two roles, two banks or two accounts).
    #[error("key {0} is used more than once (each role and account needs its own key)")]
    DuplicateKey(AccountId),
    /// A key is not a valid ed25519 public key.
    #[error("key {0} is not a valid ed25519 public key")]
    InvalidKey(AccountId),
    /// An account's bank is not in `banks`.
    #[error("account {account} is at unknown bank {bank}")]
    UnknownBank {
        /// The account.
        account: AccountId,
        /// The bank it names.
        bank: BankId,
    },
    /// A node name is empty, too long, has other characters than `a-z0-9-_`, or repeats.
    #[error("node name {0:?} must be 1 to 32 characters of a-z, 0-9, - and _, and unique")]
    NodeName(String),
    /// A parameter that must be positive is zero.
    #[error("{0} must be at least 1")]
    ZeroParameter(&'static str),
    /// The business-day calendar is unusable.
    #[error("business_day: {0}")]
    BusinessDay(String),
    /// `duplicate_window_blocks` is shorter than twice `max_validity_blocks`.
    #[error("duplicate_window_blocks ({window}) must be at least twice max_validity_blocks ({validity}): a retry of a payment signed while the first was still valid may be included up to twice max_validity_blocks after it, and would pay twice")]
    DuplicateWindowTooShort {
        /// `duplicate_window_blocks`.
        window: u64,
        /// `max_validity_blocks`.
        validity: u64,
    },
    /// `duplicate_window_blocks` is shorter than a queued transfer's life plus the validity
    /// horizon.
    #[error("duplicate_window_blocks ({window}) must be at least queue_expiry_blocks ({expiry}) plus max_validity_blocks ({validity}): a transfer may wait queued that long, and a retry signed while it waits could be included up to max_validity_blocks later and pay twice")]
    DuplicateWindowShorterThanQueue {
        /// `duplicate_window_blocks`.
        window: u64,
        /// `queue_expiry_blocks`.
        expiry: u64,
        /// `max_validity_blocks`.
        validity: u64,
    },
}

impl Genesis {
    /// Checks everything the ledger relies on.
    pub fn validate(&self) -> Result<(), GenesisError> {
        if self.chain_id.is_empty() || self.chain_id.len() > 64 {
            return Err(GenesisError::ChainId);
        }
        if self.currency.len() != 3 || !self.currency.bytes().all(|b| b.is_ascii_uppercase()) {
            return Err(GenesisError::Currency(self.currency.clone()));
        }
        if self.decimals > 18 {
            return Err(GenesisError::Decimals(self.decimals));
        }
        if self.banks.is_empty() {
            return Err(GenesisError::NoBanks);
        }
        for (value, name) in [
            (self.cycle_blocks, "cycle_blocks"),
            (self.queue_expiry_blocks, "queue_expiry_blocks"),
            (u64::from(self.max_queue_per_bank), "max_queue_per_bank"),
            (self.duplicate_window_blocks, "duplicate_window_blocks"),
            (self.max_nonce_lookahead, "max_nonce_lookahead"),
            (self.max_validity_blocks, "max_validity_blocks"),
            (u64::from(self.max_queued_per_payer), "max_queued_per_payer"),
        ] {
            if value == 0 {
                return Err(GenesisError::ZeroParameter(name));
            }
        }
        if self.duplicate_window_blocks < self.max_validity_blocks.saturating_mul(2) {
            return Err(GenesisError::DuplicateWindowTooShort {
                window: self.duplicate_window_blocks,
                validity: self.max_validity_blocks,
            });
        }
        // A transfer queued at `h` may still be waiting at `h + E`; a retry signed then is
        // valid until `h + E + V`. Its end-to-end id must still be remembered.
        if self.duplicate_window_blocks
            < self
                .queue_expiry_blocks
                .saturating_add(self.max_validity_blocks)
        {
            return Err(GenesisError::DuplicateWindowShorterThanQueue {
                window: self.duplicate_window_blocks,
                expiry: self.queue_expiry_blocks,
                validity: self.max_validity_blocks,
            });
        }
        if let Some(calendar) = &self.business_day {
            calendar.validate().map_err(GenesisError::BusinessDay)?;
        }
        let mut bank_ids = BTreeSet::new();
        for bank in &self.banks {
            if !bank_ids.insert(bank.id.clone()) {
                return Err(GenesisError::DuplicateBank(bank.id.clone()));
            }
        }
        let mut names = BTreeSet::new();
        for node in self.validators.iter().chain(&self.observers) {
            let valid = !node.name.is_empty()
                && node.name.len() <= 32
                && node.name.bytes().all(|b| {
                    b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_'
                });
            if !valid || !names.insert(node.name.as_str()) {
                return Err(GenesisError::NodeName(node.name.clone()));
            }
        }
        let mut keys = BTreeSet::new();
        let all_keys = std::iter::once(&self.authority)
            .chain(&self.regulators)
            .chain(self.banks.iter().map(|b| &b.operator))
            .chain(self.accounts.iter().map(|a| &a.owner))
            .chain(
                self.validators
                    .iter()
                    .chain(&self.observers)
                    .map(|n| &n.key),
            );
        for key in all_keys {
            // The rule signer keys are checked with: a curve point, not of small order.
            if crate::zip215::PublicKey::decode(key.as_bytes()).is_err() {
                return Err(GenesisError::InvalidKey(*key));
            }
            if !keys.insert(*key) {
                return Err(GenesisError::DuplicateKey(*key));
            }
        }
        for account in &self.accounts {
            if !bank_ids.contains(&account.bank) {
                return Err(GenesisError::UnknownBank {
                    account: account.owner,
                    bank: account.bank.clone(),
                });
            }
        }
        Ok(())
    }

    /// The genesis hash: SHA-256 over a domain tag and the canonical encoding. Nodes compare
    /// it before talking to each other.
    pub fn hash(&self) -> Hash {
        sha256(&[b"interpool/genesis/v1", &codec::encode(self)])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testkit::{self, account};

    fn valid() -> Genesis {
        testkit::genesis(2, 2, 100, 1_000, 500)
    }

    #[test]
    fn valid_genesis_round_trips_through_json_with_defaults() {
        let genesis = valid();
        assert_eq!(genesis.validate(), Ok(()));
        let mut json: serde_json::Value = serde_json::to_value(&genesis).expect("json");
        let object = json.as_object_mut().expect("object");
        object.remove("max_queue_per_bank");
        object.remove("duplicate_window_blocks");
        let back: Genesis = serde_json::from_value(json).expect("defaults fill in");
        assert_eq!(back.max_queue_per_bank, 10_000);
        assert_eq!(back.duplicate_window_blocks, 172_800);
    }

    #[test]
    fn unknown_fields_are_refused() {
        let mut json = serde_json::to_value(valid()).expect("json");
        json["surprise"] = serde_json::json!(1);
        assert!(serde_json::from_value::<Genesis>(json).is_err());
    }

    #[test]
    fn each_invalid_genesis_is_named() {
        let check = |edit: &dyn Fn(&mut Genesis)| {
            let mut genesis = valid();
            edit(&mut genesis);
            genesis.validate()
        };
        assert_eq!(check(&|g| g.chain_id.clear()), Err(GenesisError::ChainId));
        assert_eq!(
            check(&|g| g.currency = "eur".into()),
            Err(GenesisError::Currency("eur".into()))
        );
        assert_eq!(check(&|g| g.decimals = 19), Err(GenesisError::Decimals(19)));
        let node = |name: &str, seed: u64| GenesisNode {
            name: name.into(),
            key: account(seed),
        };
        assert_eq!(
            check(&|g| g.validators = vec![node("v-0", 900), node("v-0", 901)]),
            Err(GenesisError::NodeName("v-0".into()))
        );
        assert_eq!(
            check(&|g| g.observers = vec![node("Obs", 900)]),
            Err(GenesisError::NodeName("Obs".into()))
        );
        assert_eq!(
            check(&|g| g.validators = vec![node("v-0", testkit::AUTHORITY_SEED)]),
            Err(GenesisError::DuplicateKey(account(testkit::AUTHORITY_SEED)))
        );
        assert_eq!(
            check(&|g| g.validators = (0..4).map(|i| node(&format!("v-{i}"), 900 + i)).collect()),
            Ok(())
        );
        assert_eq!(check(&|g| g.banks.clear()), Err(GenesisError::NoBanks));
        assert_eq!(
            check(&|g| g.cycle_blocks = 0),
            Err(GenesisError::ZeroParameter("cycle_blocks"))
        );
        assert_eq!(
            check(&|g| {
                g.duplicate_window_blocks = 10;
                g.max_validity_blocks = 11;
            }),
            Err(GenesisError::DuplicateWindowTooShort {
                window: 10,
                validity: 11
            })
        );
        // Equal is not enough: the first transfer valid until 1 + 10 and a retry signed then
        // valid until 1 + 20 must not be told apart by the window.
        assert_eq!(
            check(&|g| {
                g.duplicate_window_blocks = 10;
                g.max_validity_blocks = 10;
            }),
            Err(GenesisError::DuplicateWindowTooShort {
                window: 10,
                validity: 10
            })
        );
        assert_eq!(
            check(&|g| {
                g.duplicate_window_blocks = 20;
                g.max_validity_blocks = 10;
                g.queue_expiry_blocks = 10;
            }),
            Ok(())
        );
        // A queue that keeps a transfer longer than the window, less the horizon, is refused.
        assert_eq!(
            check(&|g| {
                g.duplicate_window_blocks = 20;
                g.max_validity_blocks = 10;
                g.queue_expiry_blocks = 11;
            }),
            Err(GenesisError::DuplicateWindowShorterThanQueue {
                window: 20,
                expiry: 11,
                validity: 10
            })
        );
        // A window of "never" suits any horizon.
        assert_eq!(
            check(&|g| {
                g.duplicate_window_blocks = u64::MAX;
                g.max_validity_blocks = u64::MAX;
            }),
            Ok(())
        );
        assert_eq!(
            check(&|g| g.banks[1].id = g.banks[0].id.clone()),
            Err(GenesisError::DuplicateBank(g_bank(0)))
        );
        assert_eq!(
            check(&|g| g.regulators.push(g.authority)),
            Err(GenesisError::DuplicateKey(account(testkit::AUTHORITY_SEED)))
        );
        let mut identity = [0u8; 32];
        identity[0] = 1;
        assert_eq!(
            check(&|g| g.accounts[0].owner = AccountId(identity)),
            Err(GenesisError::InvalidKey(AccountId(identity)))
        );
        assert!(matches!(
            check(&|g| g.accounts[0].bank = BankId::new("NOWHERE").expect("id")),
            Err(GenesisError::UnknownBank { .. })
        ));
        assert_eq!(
            Ledger::from_genesis(&{
                let mut g = valid();
                g.decimals = 30;
                g
            })
            .err(),
            Some(GenesisError::Decimals(30))
        );
    }

    fn g_bank(b: usize) -> BankId {
        testkit::bank_id(b)
    }

    #[test]
    fn hash_depends_on_content() {
        let a = valid();
        let mut b = valid();
        b.cycle_blocks += 1;
        assert_eq!(a.hash(), valid().hash());
        assert_ne!(a.hash(), b.hash());
    }

    use crate::ledger::Ledger;
}
