//! Deterministic keys and a small genesis for tests, benchmarks and demos.
//!
//! Keys here are derived from public seeds: anyone can recompute them. Never use them for a
//! chain that holds real money.

use ed25519_dalek::SigningKey;

use crate::genesis::{Genesis, GenesisAccount, GenesisBank};
use crate::primitives::{sha256, AccountId, Amount, BankId};

/// The signing key derived from `seed` (SHA-256 of a tag and the seed).
pub fn key(seed: u64) -> SigningKey {
    SigningKey::from_bytes(&sha256(&[b"interpool/testkit/key", &seed.to_le_bytes()]).0)
}

/// The account id (public key) of [`key`]`(seed)`.
pub fn account(seed: u64) -> AccountId {
    AccountId(key(seed).verifying_key().to_bytes())
}

/// Seed of the settlement authority's key in [`genesis`].
pub const AUTHORITY_SEED: u64 = 1;
/// Seed of the regulator's key in [`genesis`].
pub const REGULATOR_SEED: u64 = 2;

/// Seed of bank `b`'s operator key in [`genesis`].
pub fn operator_seed(b: usize) -> u64 {
    100 + b as u64
}

/// Seed of customer `i` of bank `b` in [`genesis`].
pub fn customer_seed(b: usize, i: usize) -> u64 {
    1_000_000 * (b as u64 + 1) + i as u64
}

/// Id of bank `b` in [`genesis`]: `BANK_A`, `BANK_B`, … (then `BANK_26`, …).
pub fn bank_id(b: usize) -> BankId {
    let suffix = if b < 26 {
        char::from(b'A' + b as u8).to_string()
    } else {
        b.to_string()
    };
    BankId::new(format!("BANK_{suffix}")).expect("generated bank ids are valid")
}

/// A genesis with `banks` banks, each with `customers` customers holding `balance` minor
/// units, pools of `pool` and caps of `cap`; currency `EUR` with 2 decimals, chain `test`.
pub fn genesis(banks: usize, customers: usize, balance: u64, pool: u64, cap: u64) -> Genesis {
    Genesis {
        chain_id: "test".into(),
        currency: "EUR".into(),
        decimals: 2,
        banks: (0..banks)
            .map(|b| GenesisBank {
                id: bank_id(b),
                operator: account(operator_seed(b)),
                initial_pool: Amount(pool),
                net_debit_cap: Amount(cap),
            })
            .collect(),
        authority: account(AUTHORITY_SEED),
        regulators: vec![account(REGULATOR_SEED)],
        cycle_blocks: 100,
        queue_expiry_blocks: 20,
        max_queue_per_bank: 10_000,
        duplicate_window_blocks: 2_000,
        max_nonce_lookahead: 256,
        max_validity_blocks: 1_000,
        max_queued_per_payer: 10_000,
        business_day: None,
        gridlock_pass: crate::genesis::GridlockPass::EveryBlock,
        reject_warning_ms: crate::genesis::defaults::REJECT_WARNING_MS,
        accounts: (0..banks)
            .flat_map(|b| {
                (0..customers).map(move |i| GenesisAccount {
                    owner: account(customer_seed(b, i)),
                    bank: bank_id(b),
                    balance: Amount(balance),
                })
            })
            .collect(),
        validators: Vec::new(),
        observers: Vec::new(),
    }
}
