//! A real consortium's genesis from a spec in which each bank sent only public keys: no
//! private key ever leaves a bank. And the full check of any genesis.

use anyhow::{bail, Context, Result};
use interpool_consensus::{ChainDomain, PublicKey, ValidatorSet, ValidatorSetError};
use interpool_contracts::genesis::defaults;
use interpool_contracts::{
    AccountId, Amount, BankId, Genesis, GenesisAccount, GenesisBank, GenesisNode, Ledger,
};
use serde::Deserialize;

/// A bank in the spec.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SpecBank {
    /// Bank id.
    pub id: BankId,
    /// The operator's public key.
    pub operator: AccountId,
    /// Opening pool, decimal.
    pub pool: String,
    /// Net debit cap, decimal.
    pub net_debit_cap: String,
}

/// An opening account in the spec.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SpecAccount {
    /// The owner's public key.
    pub owner: AccountId,
    /// The holding bank.
    pub bank: BankId,
    /// Opening balance, decimal.
    pub balance: String,
}

/// `consortium.toml`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConsortiumSpec {
    /// Chain id.
    pub chain_id: String,
    /// Currency code.
    pub currency: String,
    /// Minor-unit digits.
    pub decimals: u8,
    /// Cycle length in blocks.
    pub cycle_blocks: u64,
    /// Blocks a queued transfer may wait.
    pub queue_expiry_blocks: u64,
    /// Queue capacity per bank.
    #[serde(default = "defaults::max_queue_per_bank")]
    pub max_queue_per_bank: u32,
    /// Blocks an end-to-end id is remembered. Unset: the shortest the genesis allows, and
    /// at least the default (twice the validity horizon, and the queue's expiry plus it).
    #[serde(default)]
    pub duplicate_window_blocks: Option<u64>,
    /// How far past a signer's next nonce a pending transaction may be.
    #[serde(default = "defaults::max_nonce_lookahead")]
    pub max_nonce_lookahead: u64,
    /// How many blocks ahead a transaction may be valid until.
    #[serde(default = "defaults::max_validity_blocks")]
    pub max_validity_blocks: u64,
    /// Most queued transfers of one payer.
    #[serde(default = "defaults::max_queued_per_payer")]
    pub max_queued_per_payer: u32,
    /// The settlement authority's public key.
    pub authority: AccountId,
    /// Regulators' public keys.
    #[serde(default)]
    pub regulators: Vec<AccountId>,
    /// Banks.
    pub banks: Vec<SpecBank>,
    /// Validators in rotation order.
    pub validators: Vec<GenesisNode>,
    /// Observers.
    #[serde(default)]
    pub observers: Vec<GenesisNode>,
    /// The business-day calendar, if the consortium runs one.
    #[serde(default)]
    pub business_day: Option<interpool_contracts::calendar::BusinessDay>,
    /// When the liquidity-saving pass runs.
    #[serde(default)]
    pub gridlock_pass: interpool_contracts::genesis::GridlockPass,
    /// How long before its reject time a queued transfer is warned about, milliseconds.
    #[serde(default = "defaults::reject_warning_ms")]
    pub reject_warning_ms: u64,
    /// Opening accounts.
    #[serde(default)]
    pub accounts: Vec<SpecAccount>,
}

/// Builds and fully checks the genesis a spec describes.
pub fn build_genesis(spec: &ConsortiumSpec) -> Result<Genesis> {
    let amount = |text: &str, what: &str| {
        Amount::parse(text, spec.decimals).with_context(|| format!("{what}: {text:?}"))
    };
    let banks = spec
        .banks
        .iter()
        .map(|b| {
            Ok(GenesisBank {
                id: b.id.clone(),
                operator: b.operator,
                initial_pool: amount(&b.pool, &format!("bank {} pool", b.id))?,
                net_debit_cap: amount(&b.net_debit_cap, &format!("bank {} net_debit_cap", b.id))?,
            })
        })
        .collect::<Result<Vec<_>>>()?;
    let accounts = spec
        .accounts
        .iter()
        .map(|a| {
            Ok(GenesisAccount {
                owner: a.owner,
                bank: a.bank.clone(),
                balance: amount(&a.balance, &format!("account {} balance", a.owner))?,
            })
        })
        .collect::<Result<Vec<_>>>()?;
    let genesis = Genesis {
        chain_id: spec.chain_id.clone(),
        currency: spec.currency.clone(),
        decimals: spec.decimals,
        banks,
        authority: spec.authority,
        regulators: spec.regulators.clone(),
        cycle_blocks: spec.cycle_blocks,
        queue_expiry_blocks: spec.queue_expiry_blocks,
        max_queue_per_bank: spec.max_queue_per_bank,
        max_nonce_lookahead: spec.max_nonce_lookahead,
        max_validity_blocks: spec.max_validity_blocks,
        max_queued_per_payer: spec.max_queued_per_payer,
        duplicate_window_blocks: spec.duplicate_window_blocks.unwrap_or_else(|| {
            defaults::DUPLICATE_WINDOW_BLOCKS
                .max(spec.max_validity_blocks.saturating_mul(2))
                .max(
                    spec.queue_expiry_blocks
                        .saturating_add(spec.max_validity_blocks),
                )
        }),
        accounts,
        validators: spec.validators.clone(),
        observers: spec.observers.clone(),
        business_day: spec.business_day,
        gridlock_pass: spec.gridlock_pass,
        reject_warning_ms: spec.reject_warning_ms,
    };
    check_genesis(&genesis)?;
    Ok(genesis)
}

/// Checks a genesis fully: the ledger's rules, and that its validators form a valid
/// consensus validator set. Returns the ledger built from it.
pub fn check_genesis(genesis: &Genesis) -> Result<Ledger> {
    let ledger = Ledger::from_genesis(genesis)?;
    if genesis.validators.is_empty() {
        bail!("genesis has no validators");
    }
    validator_set(genesis).context("invalid validator set")?;
    Ok(ledger)
}

/// The consensus validator set of a genesis, in rotation order and bound to its chain (its
/// chain id and genesis hash sign every consensus message): the one place a genesis
/// becomes a validator set (node, audit, wallet).
pub fn validator_set(genesis: &Genesis) -> Result<ValidatorSet, ValidatorSetError> {
    let domain = ChainDomain::new(&genesis.chain_id, &genesis.hash().0);
    Ok(ValidatorSet::new(
        genesis
            .validators
            .iter()
            .map(|v| PublicKey(v.key.0))
            .collect(),
    )?
    .bound_to(domain))
}

#[cfg(test)]
mod tests {
    use super::*;
    use interpool_contracts::testkit::account;

    fn spec_text(validators: usize) -> String {
        let mut text = format!(
            r#"
chain_id = "prod"
currency = "EUR"
decimals = 2
cycle_blocks = 100
queue_expiry_blocks = 50
authority = "{}"
regulators = ["{}"]

[[banks]]
id = "BANK_A"
operator = "{}"
pool = "1000000.00"
net_debit_cap = "50000.00"

[[accounts]]
owner = "{}"
bank = "BANK_A"
balance = "12.50"
"#,
            account(1),
            account(2),
            account(3),
            account(4)
        );
        for i in 0..validators {
            text.push_str(&format!(
                "\n[[validators]]\nname = \"v-{i}\"\nkey = \"{}\"\n",
                account(100 + i as u64)
            ));
        }
        text
    }

    #[test]
    fn builds_from_public_keys_only() {
        let spec: ConsortiumSpec = toml::from_str(&spec_text(4)).expect("spec");
        let genesis = build_genesis(&spec).expect("valid");
        assert_eq!(genesis.accounts[0].balance, Amount(1_250));
        assert_eq!(genesis.validators.len(), 4);
    }

    #[test]
    fn refuses_bad_specs_with_reasons() {
        // No validator at all is refused (one to three are allowed, tolerating no fault).
        let error = toml::from_str::<ConsortiumSpec>(&spec_text(0))
            .map_err(|e| e.to_string())
            .and_then(|spec| build_genesis(&spec).map_err(|e| format!("{e:#}")))
            .expect_err("no validator");
        assert!(error.contains("validator"), "{error}");
        let spec: ConsortiumSpec = toml::from_str(&spec_text(1)).expect("spec");
        assert_eq!(
            build_genesis(&spec)
                .expect("one validator")
                .validators
                .len(),
            1
        );
        let spec: ConsortiumSpec =
            toml::from_str(&spec_text(4).replace("12.50", "12.505")).expect("spec");
        let error = format!("{:#}", build_genesis(&spec).expect_err("decimals"));
        assert!(
            error.contains("balance") && error.contains("decimal"),
            "{error}"
        );
        assert!(toml::from_str::<ConsortiumSpec>(&format!("{}\nextra = 1", spec_text(4))).is_err());
    }
}
