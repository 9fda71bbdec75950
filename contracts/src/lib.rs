//! # interpool-contracts
//!
//! Interpool's settlement ledger as a pure state machine: transactions and their canonical
//! encoding, hashing and signing ([`tx`], [`codec`]); customer accounts at member banks,
//! bank fund pools, net debit caps with payment queues, multilateral netting and settlement
//! ([`ledger`]); receipts and settlement reports ([`outcome`]); the state commitment
//! ([`smt`]); the signature rule ([`zip215`]).
//!
//! No I/O, no clock, no randomness: inputs are values (transactions, the block height),
//! outputs are values (receipts, reports, the state root). The node drives it; tests replay
//! it. See DESIGN.md, "The payment model", for the rules implemented here.

#![forbid(unsafe_code)]
#![warn(missing_docs)]
// No panics from outside input (STYLE.md §3): a remaining `expect` or `assert!` guards an
// internal invariant and carries an `#[allow]` saying why input cannot reach it.
#![deny(
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::arithmetic_side_effects,
    clippy::panic
)]
#![cfg_attr(
    test,
    allow(
        clippy::expect_used,
        clippy::indexing_slicing,
        clippy::arithmetic_side_effects,
        clippy::panic
    )
)]

pub mod admission;
pub mod batch;
pub mod block;
pub mod calendar;
pub mod codec;
pub mod error;
// The fuzz target's entry function: for `cargo fuzz` (`--cfg fuzzing`) and the corpus replay
// test only. It asserts the properties it checks, on purpose.
#[cfg(any(test, fuzzing))]
#[allow(clippy::expect_used, clippy::indexing_slicing, clippy::panic)]
pub mod fuzzing;
pub mod genesis;
#[cfg(feature = "iso20022")]
pub mod iso20022;
pub mod keys;
pub mod ledger;
pub mod liquidity;
pub mod outcome;
pub mod primitives;
pub mod request;
pub mod smt;
pub mod statement;
// Test scaffolding (deterministic keys, a small genesis) computed from small constants:
// nothing a chain's input reaches.
#[allow(clippy::expect_used, clippy::arithmetic_side_effects)]
pub mod testkit;
pub mod tx;
pub mod views;
pub mod zip215;

pub use admission::{AdmissionCode, AdmissionError};
pub use block::{Block, BlockHeader, ChainTip};
pub use error::{ErrorView, TxError};
pub use genesis::{Genesis, GenesisAccount, GenesisBank, GenesisError, GenesisNode};
pub use ledger::{Account, AccountProof, Bank, Ledger, Params};
pub use outcome::{BlockOutcome, Outcome, QueueEvent, Receipt, SettlementReport};
pub use primitives::{AccountId, Amount, BankId, Hash};
pub use tx::{Body, Priority, SignedTransaction, Transaction, TransferTerms, VerifiedTransaction};
