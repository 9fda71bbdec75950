//! The one replay: re-executes stored blocks on a ledger, block by block, and checks each
//! result against what was stored. Every path that turns stored or received blocks into
//! state goes through here or through [`execute`]:
//!
//! * a node's start ([`Trust::OwnStore`]): the blocks are its own, written by its own commits
//!   after their certificates and signatures were checked, so it skips those checks, but
//!   still checks every hash link and compares every re-executed outcome with the stored one
//!   (a paired check: what was written must be what is read back and recomputed);
//! * `interpool-node audit` ([`Trust::Verify`]): trusts nothing on disk but the genesis:
//!   every certificate against the validator set, every signature, the invariants after
//!   every block;
//! * `interpool-node execute` and the commit path ([`crate::app::Core::commit`], which
//!   validators and observers — after sync verified the certificate — both use) call
//!   [`execute`], the one function that applies a block's transactions and checks the
//!   ledger invariants.
//!
//! For every height, in order, a replay checks:
//!
//! 1. (verify) the commit certificate proves the stored block bytes final at that height,
//!    against the genesis validator set ([`CommitCertificate::verify`], as observers do);
//! 2. the header extends the chain so far ([`Block::check_extends`]): chain id, height, the
//!    hash link, the previous state root (the re-executed state after the previous block), a
//!    timestamp that does not go back;
//! 3. (verify) every transaction passes its stateless checks, signatures verified in one
//!    batch ([`check_stateless_batch_by`], each signer key decoded once per run); (own
//!    store) they are taken as verified ([`VerifiedTransaction::from_trusted_store`]);
//! 4. re-execution with the ledger ([`Ledger::apply_block`], the only executor) gives the
//!    stored outcome: state root, receipts, queue releases and expiries, settlement report;
//! 5. the ledger invariants hold after the block ([`Invariants`]).

use std::fmt;

use interpool_consensus::{
    CertificateError, CommitCertificate, Digest, ValidatorSet, MAX_PAYLOAD_BYTES,
};
use interpool_contracts::block::{Block, BlockError, BlockHeader, ChainTip};
use interpool_contracts::codec::DecodeError;
use interpool_contracts::ledger::InvariantViolation;
use interpool_contracts::outcome::{BlockOutcome, Outcome, QueueEvent, Receipt, SettlementReport};
use interpool_contracts::tx::check_stateless_batch_by;
use interpool_contracts::{Genesis, Hash, Ledger, TxError, VerifiedTransaction};
use thiserror::Error;

use crate::app::admission::SignerKeys;
use crate::storage::{ChainStore, StorageError};

/// How much of the ledger's invariants to check after a block.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Invariants {
    /// All of them, over the whole state ([`Ledger::check_invariants`]): test and debug
    /// builds, audits and offline execution.
    Full,
    /// Those whose cost follows what the block touched: a release node's every commit.
    Touched,
}

impl Invariants {
    /// What a node checks on every commit: everything in debug and test builds, the
    /// per-block checks in release builds.
    pub const fn for_commits() -> Invariants {
        if cfg!(debug_assertions) {
            Invariants::Full
        } else {
            Invariants::Touched
        }
    }
}

/// Applies a block's verified transactions at `height`, timed `time_ms` (its header's
/// certified time), and checks the ledger invariants afterwards: the one place where a block
/// becomes state (commit, replay, `execute`).
pub fn execute(
    ledger: &mut Ledger,
    height: u64,
    time_ms: u64,
    txs: &[VerifiedTransaction],
    invariants: Invariants,
) -> Result<BlockOutcome, InvariantViolation> {
    let outcome = ledger.apply_block(height, time_ms, txs);
    match invariants {
        Invariants::Full => ledger.check_invariants()?,
        Invariants::Touched => ledger.check_block_invariants()?,
    }
    Ok(outcome)
}

/// How far a replay trusts the store it reads.
#[derive(Debug, Clone, Copy)]
pub enum Trust<'a> {
    /// The node's own store, written by its own commits (start-up).
    OwnStore,
    /// Anything else (audit): certificates against these validators, every signature, the
    /// full invariants.
    Verify {
        /// The validator set the certificates must be signed by.
        validators: &'a ValidatorSet,
        /// Signer keys decoded before: each key is still decoded by the ZIP-215 rule
        /// ([`SignerKeys::key`] answers as [`interpool_contracts::tx::signer_key`] does),
        /// once per run rather than once per transaction.
        keys: &'a SignerKeys,
    },
}

/// A stored block whose stateless checks are done ([`Replay::prepare`]).
#[derive(Debug)]
pub struct Prepared {
    hash: Hash,
    header: BlockHeader,
    /// The verified transactions, or the first that failed its stateless checks.
    txs: Result<Vec<VerifiedTransaction>, DiscrepancyKind>,
    invariants: Invariants,
}

impl Prepared {
    /// The block's hash.
    pub fn hash(&self) -> Hash {
        self.hash
    }

    /// For a block that is checked but not executed (an audit's blocks below the checkpoint
    /// it starts from: there is no state to execute them on): its hash, its header, and the
    /// transactions' verdict (the first that failed its stateless checks).
    pub fn into_checked(self) -> (Hash, BlockHeader, Result<(), DiscrepancyKind>) {
        (self.hash, self.header, self.txs.map(|_| ()))
    }
}

/// A ledger being replayed from genesis, and the tip it has reached.
pub struct Replay {
    ledger: Ledger,
    tip: ChainTip,
}

impl Replay {
    /// Starts at the genesis (its ledger and the tip before block 1).
    pub fn from_genesis(genesis: &Genesis) -> Result<Replay, interpool_contracts::GenesisError> {
        let ledger = Ledger::from_genesis(genesis)?;
        let tip = ChainTip::genesis(genesis, ledger.state_root());
        Ok(Replay { ledger, tip })
    }

    /// Starts after `tip` with `ledger`, the state after it (a checkpoint's, ADR 0011; the
    /// caller checked that the ledger's state root is the tip's).
    pub fn from_parts(ledger: Ledger, tip: ChainTip) -> Replay {
        Replay { ledger, tip }
    }

    /// The tip reached.
    pub fn tip(&self) -> &ChainTip {
        &self.tip
    }

    /// The ledger after the tip.
    pub fn ledger(&self) -> &Ledger {
        &self.ledger
    }

    /// The ledger and the tip, to go on from there.
    pub fn into_parts(self) -> (Ledger, ChainTip) {
        (self.ledger, self.tip)
    }

    /// Replays stored block `height` (the next one) and returns its outcome.
    pub fn block(
        &mut self,
        store: &dyn ChainStore,
        height: u64,
        trust: Trust<'_>,
    ) -> Result<BlockOutcome, DiscrepancyKind> {
        let prepared = Replay::prepare(store, height, &self.tip.chain_id, trust)?;
        self.apply(store, height, prepared)
    }

    /// The checks of stored block `height` that need no replayed state (1 and 3 above:
    /// the certificate, decoding, the transactions' stateless checks), so that they can run
    /// ahead of the replay on another core ([`crate::audit`] does). [`Self::apply`] does
    /// the rest, in the same order as [`Self::block`].
    pub fn prepare(
        store: &dyn ChainStore,
        height: u64,
        chain_id: &str,
        trust: Trust<'_>,
    ) -> Result<Prepared, DiscrepancyKind> {
        let bytes = store
            .block(height)
            .map_err(DiscrepancyKind::Storage)?
            .ok_or(DiscrepancyKind::Missing(Record::Block))?;
        let certificate = store
            .certificate(height)
            .map_err(DiscrepancyKind::Storage)?
            .ok_or(DiscrepancyKind::Missing(Record::Certificate))?;

        // 1. Finality: the certificate names exactly these bytes at this height.
        let certificate =
            CommitCertificate::decode(&certificate).map_err(DiscrepancyKind::CertificateDecode)?;
        if let Trust::Verify { validators, .. } = trust {
            certificate
                .verify(validators, height, &Digest::of(&bytes))
                .map_err(DiscrepancyKind::Certificate)?;
        }
        let block = Block::decode(&bytes, MAX_PAYLOAD_BYTES as u64)
            .map_err(DiscrepancyKind::BlockDecode)?;
        let header = block.header;

        // 3. The transactions' stateless checks (signatures in one batch), unless the
        // store is the node's own. A failure is reported after the header's (step 2).
        let (txs, invariants) = match trust {
            Trust::OwnStore => (
                block
                    .transactions
                    .into_iter()
                    .map(|tx| VerifiedTransaction::from_trusted_store(tx, chain_id))
                    .enumerate()
                    .map(|(index, result)| {
                        result.map_err(|error| DiscrepancyKind::Transaction { index, error })
                    })
                    .collect::<Result<Vec<_>, _>>(),
                Invariants::for_commits(),
            ),
            Trust::Verify { keys, .. } => (
                check_stateless_batch_by(block.transactions, chain_id, |signer| keys.key(signer))
                    .into_iter()
                    .enumerate()
                    .map(|(index, result)| {
                        result.map_err(|error| DiscrepancyKind::Transaction { index, error })
                    })
                    .collect::<Result<Vec<_>, _>>(),
                Invariants::Full,
            ),
        };
        Ok(Prepared {
            hash: Block::hash_of(&bytes),
            header,
            txs,
            invariants,
        })
    }

    /// Replays a block [`Self::prepare`]d for `height` (the next one): the header extends
    /// the replayed chain (2), then the transactions' verdicts, re-execution and the stored
    /// outcome (4), the invariants (5).
    pub fn apply(
        &mut self,
        store: &dyn ChainStore,
        height: u64,
        prepared: Prepared,
    ) -> Result<BlockOutcome, DiscrepancyKind> {
        let Prepared {
            hash,
            header,
            txs,
            invariants,
        } = prepared;
        // 2. The header extends what was replayed so far.
        header
            .check_extends(&self.tip)
            .map_err(|error| header_discrepancy(self.tip.height, error))?;
        let txs = txs?;

        // 4 and 5. Re-execution gives what was stored, and the invariants hold.
        let outcome = execute(
            &mut self.ledger,
            height,
            header.timestamp_ms,
            &txs,
            invariants,
        )
        .map_err(DiscrepancyKind::Invariant)?;
        let stored = store
            .outcome(height)
            .map_err(DiscrepancyKind::Storage)?
            .ok_or(DiscrepancyKind::Missing(Record::Outcome))?;
        compare_outcomes(stored, &outcome)?;

        self.tip = ChainTip {
            chain_id: self.tip.chain_id.clone(),
            height,
            hash,
            state_root: outcome.state_root,
            timestamp_ms: header.timestamp_ms,
        };
        Ok(outcome)
    }
}

/// What a header that does not extend the block at `previous_height` ([`Block::check_extends`])
/// is, as a discrepancy.
pub fn header_discrepancy(previous_height: u64, error: BlockError) -> DiscrepancyKind {
    match error {
        BlockError::WrongChain { expected, got } => DiscrepancyKind::WrongChain { expected, got },
        BlockError::WrongHeight { got, .. } => DiscrepancyKind::WrongHeight { got },
        BlockError::WrongParent { expected, got } => DiscrepancyKind::HashLink {
            parent_hash: got,
            previous_height,
            previous_hash: expected,
        },
        BlockError::WrongStateRoot { expected, got } => DiscrepancyKind::PreviousStateRoot {
            header: got,
            previous_height,
            recomputed: expected,
        },
        BlockError::TimeTravel { parent, got } => DiscrepancyKind::TimeTravel { parent, got },
        // `check_extends` only checks the header; these come from decoding and limits.
        BlockError::Decode(error) => DiscrepancyKind::BlockDecode(error),
        BlockError::TooLarge(message) => {
            DiscrepancyKind::BlockDecode(DecodeError::Malformed(message))
        }
    }
}

/// Which stored record is missing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Record {
    /// The block.
    Block,
    /// Its commit certificate.
    Certificate,
    /// Its execution outcome.
    Outcome,
}

impl fmt::Display for Record {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Record::Block => "block",
            Record::Certificate => "certificate",
            Record::Outcome => "outcome",
        })
    }
}

/// What differs between the stored chain and its re-verification.
#[derive(Debug, Error)]
pub enum DiscrepancyKind {
    /// The state checkpoint a pruned chain is verified from is not the state it claims.
    #[error("checkpoint: {0}")]
    Checkpoint(String),
    /// A record of a committed height is missing.
    #[error("{0} missing")]
    Missing(Record),
    /// A record beyond the stored height exists (written outside a commit).
    #[error("{0} stored beyond the committed height")]
    BeyondTip(Record),
    /// A record could not be read back (RocksDB error, or an outcome that does not decode).
    #[error("unreadable record: {0}")]
    Storage(StorageError),
    /// The certificate bytes do not decode.
    #[error("certificate does not decode: {0}")]
    CertificateDecode(interpool_consensus::DecodeError),
    /// The certificate does not prove these block bytes final at this height.
    #[error("certificate does not verify: {0}")]
    Certificate(CertificateError),
    /// The block bytes do not decode.
    #[error("block does not decode: {0}")]
    BlockDecode(DecodeError),
    /// The header names another chain.
    #[error("header is for chain {got:?}, the genesis is for {expected:?}")]
    WrongChain {
        /// The genesis chain id.
        expected: String,
        /// The header's.
        got: String,
    },
    /// The header names another height.
    #[error("header height is {got}")]
    WrongHeight {
        /// The header's height.
        got: u64,
    },
    /// `parent_hash` is not the hash of the previous block.
    #[error("hash link broken: parent_hash {parent_hash}, {} is {previous_hash}", block_name(*previous_height))]
    HashLink {
        /// The header's parent hash.
        parent_hash: Hash,
        /// The previous height (0: the genesis).
        previous_height: u64,
        /// The hash of the stored block at `previous_height` (or the genesis hash).
        previous_hash: Hash,
    },
    /// The header's `previous_state_root` is not the re-executed state after the previous
    /// block.
    #[error("previous state root differs: header says {header}, re-executed state after {} is {recomputed}", block_name(*previous_height))]
    PreviousStateRoot {
        /// The header's previous state root.
        header: Hash,
        /// The previous height (0: the genesis).
        previous_height: u64,
        /// The re-executed state root after `previous_height`.
        recomputed: Hash,
    },
    /// The header's timestamp is before its parent's.
    #[error("timestamp {got} is before the previous block's {parent}")]
    TimeTravel {
        /// The parent's timestamp.
        parent: u64,
        /// This block's.
        got: u64,
    },
    /// A transaction fails its stateless checks (a bad signature, a field out of range).
    #[error("transaction {index} fails its stateless checks: {error} ({})", error.code())]
    Transaction {
        /// Position in the block.
        index: usize,
        /// Why.
        error: TxError,
    },
    /// The stored state root after the block is not the re-executed one.
    #[error("state root differs: stored {stored}, re-executed {recomputed}")]
    StateRoot {
        /// The stored outcome's state root.
        stored: Hash,
        /// Re-execution's.
        recomputed: Hash,
    },
    /// The stored outcome has another number of receipts.
    #[error("stored outcome has {stored} receipts, re-execution gives {recomputed}")]
    ReceiptCount {
        /// Stored receipts.
        stored: usize,
        /// Re-executed receipts.
        recomputed: usize,
    },
    /// A stored receipt differs.
    #[error(
        "receipt {index} differs: stored {}, re-executed {}",
        describe_receipt(stored),
        describe_receipt(recomputed)
    )]
    Receipt {
        /// Position in the block.
        index: usize,
        /// The stored receipt.
        stored: Box<Receipt>,
        /// Re-execution's.
        recomputed: Box<Receipt>,
    },
    /// The stored queue releases or expiries differ.
    #[error(
        "{which} queued transfers differ: stored {}, re-executed {}",
        describe_events(stored),
        describe_events(recomputed)
    )]
    QueueEvents {
        /// `released` or `expired`.
        which: &'static str,
        /// The stored events.
        stored: Vec<QueueEvent>,
        /// Re-execution's.
        recomputed: Vec<QueueEvent>,
    },
    /// The stored settlement report differs.
    #[error("settlement report differs: stored {}, re-executed {}", describe_settlement(stored.as_deref()), describe_settlement(recomputed.as_deref()))]
    Settlement {
        /// The stored report.
        stored: Option<Box<SettlementReport>>,
        /// Re-execution's.
        recomputed: Option<Box<SettlementReport>>,
    },
    /// Some other field of the stored outcome differs.
    #[error("stored outcome differs from re-execution")]
    Outcome,
    /// A ledger invariant does not hold after re-executing the block.
    #[error("{0}")]
    Invariant(InvariantViolation),
}

fn block_name(height: u64) -> String {
    if height == 0 {
        "the genesis".into()
    } else {
        format!("block {height}")
    }
}

fn describe_receipt(receipt: &Receipt) -> String {
    let outcome = match &receipt.outcome {
        Outcome::Committed => "committed".to_string(),
        Outcome::Queued { expires_at_height } => format!("queued until {expires_at_height}"),
        Outcome::Rejected { error } => format!("rejected {}", error.code()),
    };
    format!(
        "tx {} at {}/{} {outcome}",
        receipt.tx_hash, receipt.height, receipt.index
    )
}

fn describe_events(events: &[QueueEvent]) -> String {
    let hashes: Vec<String> = events.iter().map(|e| e.tx_hash.to_hex()).collect();
    format!("{} [{}]", events.len(), hashes.join(", "))
}

fn describe_settlement(report: Option<&SettlementReport>) -> String {
    match report {
        None => "none".into(),
        Some(r) => format!(
            "cycle {} (heights {}..={}, gross {}, net {} minor units, {} banks)",
            r.cycle,
            r.start_height,
            r.height,
            r.gross_total.0,
            r.net_total.0,
            r.banks.len()
        ),
    }
}

/// The first difference between a stored outcome and re-execution's, most telling first.
fn compare_outcomes(
    stored: BlockOutcome,
    recomputed: &BlockOutcome,
) -> Result<(), DiscrepancyKind> {
    if stored == *recomputed {
        return Ok(());
    }
    if stored.state_root != recomputed.state_root {
        return Err(DiscrepancyKind::StateRoot {
            stored: stored.state_root,
            recomputed: recomputed.state_root,
        });
    }
    if stored.receipts.len() != recomputed.receipts.len() {
        return Err(DiscrepancyKind::ReceiptCount {
            stored: stored.receipts.len(),
            recomputed: recomputed.receipts.len(),
        });
    }
    if let Some((index, (stored, recomputed))) = stored
        .receipts
        .into_iter()
        .zip(&recomputed.receipts)
        .enumerate()
        .find(|(_, (stored, recomputed))| stored != *recomputed)
    {
        return Err(DiscrepancyKind::Receipt {
            index,
            stored: Box::new(stored),
            recomputed: Box::new(recomputed.clone()),
        });
    }
    for (which, stored, recomputed) in [
        ("released", stored.released, &recomputed.released),
        ("expired", stored.expired, &recomputed.expired),
    ] {
        if stored != *recomputed {
            return Err(DiscrepancyKind::QueueEvents {
                which,
                stored,
                recomputed: recomputed.clone(),
            });
        }
    }
    if stored.settlement != recomputed.settlement {
        return Err(DiscrepancyKind::Settlement {
            stored: stored.settlement.map(Box::new),
            recomputed: recomputed.settlement.clone().map(Box::new),
        });
    }
    Err(DiscrepancyKind::Outcome)
}

/// A commit writes a height's records and the new height in one batch: records beyond the
/// stored height were written some other way.
pub fn check_nothing_beyond(store: &dyn ChainStore, height: u64) -> Result<(), DiscrepancyKind> {
    if store
        .block(height)
        .map_err(DiscrepancyKind::Storage)?
        .is_some()
    {
        return Err(DiscrepancyKind::BeyondTip(Record::Block));
    }
    if store
        .certificate(height)
        .map_err(DiscrepancyKind::Storage)?
        .is_some()
    {
        return Err(DiscrepancyKind::BeyondTip(Record::Certificate));
    }
    // An undecodable record there is as much a discrepancy as a decodable one.
    match store.outcome(height) {
        Ok(None) => Ok(()),
        Ok(Some(_)) | Err(StorageError::Corrupt { .. }) => {
            Err(DiscrepancyKind::BeyondTip(Record::Outcome))
        }
        Err(error) => Err(DiscrepancyKind::Storage(error)),
    }
}
