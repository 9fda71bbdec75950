//! `interpool-node audit`: re-verifies a stopped node's stored chain from genesis, as a
//! regulator would, trusting nothing on disk but the genesis it is given.
//!
//! For every height from 1 to the stored height, in order, it checks:
//!
//! 1. the commit certificate proves the stored block bytes final at that height, against the
//!    genesis validator set ([`CommitCertificate::verify`], as observers do in sync);
//! 2. the header extends the chain so far ([`Block::check_extends`], as the node does before
//!    voting): chain id, height, the hash link (`parent_hash` is the hash of block `h − 1`,
//!    the genesis hash for block 1), the previous state root (the re-executed state after
//!    block `h − 1`), a timestamp that does not go back;
//! 3. every transaction passes its stateless checks, signatures verified in one batch
//!    ([`check_stateless_batch`], exactly as the node does when it commits a block it did not
//!    validate itself) — not [`VerifiedTransaction::from_trusted_store`], which the node's
//!    replay on open uses because it trusts its own disk;
//! 4. re-execution with the ledger ([`Ledger::apply_block`], the only executor) gives the
//!    stored outcome: state root, receipts, queue releases and expiries, settlement report;
//! 5. the ledger invariants hold after the block ([`Ledger::check_invariants`]).
//!
//! It stops at the first discrepancy and names its height and what differs. After the last
//! height it also checks that nothing is stored beyond it.
//!
//! [`VerifiedTransaction::from_trusted_store`]: interpool_contracts::VerifiedTransaction::from_trusted_store

use std::fmt;
use std::path::{Path, PathBuf};

use interpool_consensus::{CertificateError, CommitCertificate, Digest, ValidatorSet};
use interpool_contracts::block::{Block, BlockError, ChainTip, MAX_BLOCK_BYTES};
use interpool_contracts::codec::{self, DecodeError};
use interpool_contracts::ledger::InvariantViolation;
use interpool_contracts::outcome::{BlockOutcome, Outcome, QueueEvent, Receipt, SettlementReport};
use interpool_contracts::tx::check_stateless_batch;
use interpool_contracts::{Amount, Genesis, Hash, Ledger, TxError};
use interpool_genesis::spec::{check_genesis, validator_set};
use serde::Serialize;
use thiserror::Error;

use crate::driver::MAX_CERTIFICATE_BYTES;
use crate::storage::{StorageError, Store};

/// What an audit that found nothing wrong verified.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AuditReport {
    /// The chain id.
    pub chain_id: String,
    /// The genesis hash (what block 1 links to).
    pub genesis_hash: Hash,
    /// Blocks verified (each with its certificate, hash link and re-execution).
    pub blocks: u64,
    /// The last stored height (equal to `blocks`: heights start at 1).
    pub final_height: u64,
    /// The state root after the last block (the genesis state root for an empty chain).
    pub state_root: Hash,
    /// Transactions in all blocks (= receipts).
    pub transactions: u64,
    /// Receipts with outcome `committed`.
    pub committed: u64,
    /// Receipts with outcome `queued`.
    pub queued: u64,
    /// Receipts with outcome `rejected`.
    pub rejected: u64,
    /// Queued transfers released (executed) later.
    pub released: u64,
    /// Queued transfers expired (refunded).
    pub expired: u64,
    /// Settlement cycles closed.
    pub cycles_settled: u64,
    /// Sum of the closed cycles' gross totals, in minor units.
    pub gross_settled_minor_units: u128,
    /// Sum of the closed cycles' net totals (money moved between pools), in minor units.
    pub net_settled_minor_units: u128,
    /// The currency code.
    pub currency: String,
    /// Minor-unit digits.
    pub decimals: u8,
}

impl AuditReport {
    /// A total in minor units as a decimal amount with the currency's digits.
    pub fn format_total(&self, minor_units: u128) -> String {
        match u64::try_from(minor_units) {
            Ok(units) => Amount(units).format(self.decimals),
            Err(_) => format!("{minor_units} minor units"),
        }
    }
}

/// Why an audit could not start: the command line, the genesis or the data directory is
/// unusable (nothing was verified, nothing is claimed about the chain).
#[derive(Debug, Error)]
pub enum SetupError {
    /// The genesis is not a valid genesis with a valid validator set.
    #[error("the genesis is invalid: {0}")]
    Genesis(String),
    /// No node database in the data directory.
    #[error("no node database in {} (expected {} or a RocksDB directory)", .0.display(), .0.join("db").display())]
    NoDatabase(PathBuf),
    /// The database exists but cannot be opened.
    #[error("cannot open the database in {} (the node must be stopped: audit opens it exclusively): {source}", path.display())]
    Open {
        /// The database directory.
        path: PathBuf,
        /// What RocksDB said.
        source: StorageError,
    },
    /// Reading the stored height failed.
    #[error("cannot read the stored height: {0}")]
    Height(StorageError),
}

/// The first thing found wrong, at a height.
#[derive(Debug, Error)]
#[error("block {height}: {kind}")]
pub struct Discrepancy {
    /// The height of the block where the stored chain stops verifying.
    pub height: u64,
    /// What differs.
    pub kind: DiscrepancyKind,
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
    CertificateDecode(DecodeError),
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

/// Why an audit did not pass.
#[derive(Debug, Error)]
pub enum AuditError {
    /// It could not start.
    #[error(transparent)]
    Setup(#[from] SetupError),
    /// The stored chain does not verify.
    #[error(transparent)]
    Discrepancy(#[from] Discrepancy),
}

impl AuditError {
    /// The command's exit code: 1 for a discrepancy, 2 for a setup error.
    pub fn exit_code(&self) -> u8 {
        match self {
            AuditError::Setup(_) => 2,
            AuditError::Discrepancy(_) => 1,
        }
    }
}

/// The RocksDB directory of a node's data directory: `DIR/db` as `interpool-node run`
/// lays it out, or `DIR` itself if that is a RocksDB directory.
pub fn database_path(data_dir: &Path) -> Result<PathBuf, SetupError> {
    let nested = data_dir.join("db");
    if nested.join("CURRENT").is_file() {
        Ok(nested)
    } else if data_dir.join("CURRENT").is_file() {
        Ok(data_dir.to_path_buf())
    } else {
        Err(SetupError::NoDatabase(data_dir.to_path_buf()))
    }
}

/// Opens a node's database for an audit, read-only ([`Store::open_secondary`]): the node
/// may be stopped or running (the audit then covers the chain as it stood when opened),
/// and nothing is written to its data directory. The directory must already hold a
/// database: none is ever created.
pub fn open_store(data_dir: &Path) -> Result<Store, SetupError> {
    let path = database_path(data_dir)?;
    Store::open_secondary(&path).map_err(|source| SetupError::Open { path, source })
}

/// Audits the chain stored in `store` against `genesis`. `progress` is called with
/// `(verified heights, stored height)` before the first block and after each one.
pub fn audit(
    store: &Store,
    genesis: &Genesis,
    progress: &mut dyn FnMut(u64, u64),
) -> Result<AuditReport, AuditError> {
    let ledger = check_genesis(genesis).map_err(|e| SetupError::Genesis(format!("{e:#}")))?;
    let validators = validator_set(genesis).map_err(|e| SetupError::Genesis(format!("{e:#}")))?;
    let stored = store.height().map_err(SetupError::Height)?;
    let mut auditor = Auditor::new(genesis, ledger, validators);
    progress(0, stored);
    for height in 1..=stored {
        auditor
            .verify_block(store, height)
            .map_err(|kind| Discrepancy { height, kind })?;
        progress(height, stored);
    }
    let beyond = stored.saturating_add(1);
    check_nothing_beyond(store, beyond).map_err(|kind| Discrepancy {
        height: beyond,
        kind,
    })?;
    Ok(auditor.report)
}

/// The re-verification state: the ledger, the tip it has verified, and the running totals.
struct Auditor {
    ledger: Ledger,
    validators: ValidatorSet,
    tip: ChainTip,
    report: AuditReport,
}

impl Auditor {
    fn new(genesis: &Genesis, ledger: Ledger, validators: ValidatorSet) -> Auditor {
        // The tip before block 1, as `Chain::open` builds it.
        let tip = ChainTip::genesis(genesis, ledger.state_root());
        let genesis_hash = tip.hash;
        let report = AuditReport {
            chain_id: genesis.chain_id.clone(),
            genesis_hash,
            blocks: 0,
            final_height: 0,
            state_root: tip.state_root,
            transactions: 0,
            committed: 0,
            queued: 0,
            rejected: 0,
            released: 0,
            expired: 0,
            cycles_settled: 0,
            gross_settled_minor_units: 0,
            net_settled_minor_units: 0,
            currency: genesis.currency.clone(),
            decimals: genesis.decimals,
        };
        Auditor {
            ledger,
            validators,
            tip,
            report,
        }
    }

    fn verify_block(&mut self, store: &Store, height: u64) -> Result<(), DiscrepancyKind> {
        let bytes = store
            .block(height)
            .map_err(DiscrepancyKind::Storage)?
            .ok_or(DiscrepancyKind::Missing(Record::Block))?;
        let certificate = store
            .certificate(height)
            .map_err(DiscrepancyKind::Storage)?
            .ok_or(DiscrepancyKind::Missing(Record::Certificate))?;

        // 1. Finality: the certificate names exactly these bytes at this height.
        let certificate: CommitCertificate = codec::decode(&certificate, MAX_CERTIFICATE_BYTES)
            .map_err(DiscrepancyKind::CertificateDecode)?;
        certificate
            .verify(&self.validators, height, &Digest::of(&bytes))
            .map_err(DiscrepancyKind::Certificate)?;

        // 2. The header extends what was verified so far.
        let block = Block::decode(&bytes, MAX_BLOCK_BYTES).map_err(DiscrepancyKind::BlockDecode)?;
        block
            .check_extends(&self.tip)
            .map_err(|error| self.header_discrepancy(error))?;
        let header = block.header;

        // 3. Stateless checks with batch signature verification, as a commit does.
        let txs = check_stateless_batch(block.transactions, &self.tip.chain_id)
            .into_iter()
            .enumerate()
            .map(|(index, result)| {
                result.map_err(|error| DiscrepancyKind::Transaction { index, error })
            })
            .collect::<Result<Vec<_>, _>>()?;

        // 4. Re-execution gives what was stored.
        let outcome = self.ledger.apply_block(height, &txs);
        let stored = store
            .outcome(height)
            .map_err(DiscrepancyKind::Storage)?
            .ok_or(DiscrepancyKind::Missing(Record::Outcome))?;
        compare_outcomes(stored, &outcome)?;

        // 5. The invariants hold.
        self.ledger
            .check_invariants()
            .map_err(DiscrepancyKind::Invariant)?;

        self.tip = ChainTip {
            chain_id: self.tip.chain_id.clone(),
            height,
            hash: Block::hash_of(&bytes),
            state_root: outcome.state_root,
            timestamp_ms: header.timestamp_ms,
        };
        self.count(&outcome);
        Ok(())
    }

    fn header_discrepancy(&self, error: BlockError) -> DiscrepancyKind {
        let previous_height = self.tip.height;
        match error {
            BlockError::WrongChain { expected, got } => {
                DiscrepancyKind::WrongChain { expected, got }
            }
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

    fn count(&mut self, outcome: &BlockOutcome) {
        let report = &mut self.report;
        report.blocks += 1;
        report.final_height = outcome.height;
        report.state_root = outcome.state_root;
        for receipt in &outcome.receipts {
            report.transactions += 1;
            match receipt.outcome {
                Outcome::Committed => report.committed += 1,
                Outcome::Queued { .. } => report.queued += 1,
                Outcome::Rejected { .. } => report.rejected += 1,
            }
        }
        report.released += outcome.released.len() as u64;
        report.expired += outcome.expired.len() as u64;
        if let Some(settlement) = &outcome.settlement {
            report.cycles_settled += 1;
            report.gross_settled_minor_units = report
                .gross_settled_minor_units
                .saturating_add(u128::from(settlement.gross_total.0));
            report.net_settled_minor_units = report
                .net_settled_minor_units
                .saturating_add(u128::from(settlement.net_total.0));
        }
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
fn check_nothing_beyond(store: &Store, height: u64) -> Result<(), DiscrepancyKind> {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chain::{BlockLimits, Chain};
    use crate::mempool::{Mempool, MempoolLimits};
    use crate::storage::RecordKind;
    use ed25519_dalek::Signer;
    use interpool_consensus::{MessageKind, PublicKey, Signature, Vote};
    use interpool_contracts::testkit::{self, account, customer_seed, key, AUTHORITY_SEED};
    use interpool_contracts::{Body, GenesisNode, Transaction, VerifiedTransaction};

    const VALIDATOR_SEEDS: [u64; 4] = [500, 501, 502, 503];
    const OUTSIDER_SEED: u64 = 999;
    /// Blocks in the test chain.
    const BLOCKS: u64 = 6;
    /// The block the tampering tests alter (it holds transfers both ways).
    const TARGET: u64 = 3;

    fn genesis() -> Genesis {
        // Small pools and caps so that some transfers queue; short cycles so that several
        // settle.
        let mut genesis = testkit::genesis(2, 2, 100_000, 1_000, 1_000);
        genesis.cycle_blocks = 2;
        genesis.queue_expiry_blocks = 2;
        genesis.validators = VALIDATOR_SEEDS
            .iter()
            .enumerate()
            .map(|(i, seed)| GenesisNode {
                name: format!("validator-{i}"),
                key: account(*seed),
            })
            .collect();
        genesis
    }

    fn transfer(from: u64, to: u64, nonce: u64, amount: u64) -> VerifiedTransaction {
        Transaction {
            chain_id: "test".into(),
            signer: account(from),
            nonce,
            valid_until_height: 1_000,
            body: Body::Transfer {
                to: account(to),
                amount: Amount(amount),
                end_to_end_id: format!("A{from}-{nonce}"),
                reference: String::new(),
            },
        }
        .sign(&key(from))
        .check_stateless("test")
        .expect("valid")
    }

    /// COMMIT signatures of validators `signers` (indices into the genesis order) on
    /// `payload` at `height`: what the engine collects.
    fn certificate(height: u64, payload: &[u8], signers: &[usize]) -> CommitCertificate {
        let vote = Vote {
            height,
            round: 0,
            digest: Digest::of(payload),
        };
        let hash = vote.signing_hash(MessageKind::Commit);
        CommitCertificate {
            vote,
            signatures: signers
                .iter()
                .map(|&i| {
                    let key = key(VALIDATOR_SEEDS[i]);
                    (
                        PublicKey::from(&key.verifying_key()),
                        Signature::from(key.sign(&hash)),
                    )
                })
                .collect(),
        }
    }

    /// A quorum (3 of 4), as the engine gathers it.
    const QUORUM: [usize; 3] = [0, 1, 2];

    /// Builds, certifies and commits `BLOCKS` blocks with the node's own chain code: cross-
    /// bank transfers both ways (some queue, some are released or expire), one rejected
    /// transfer and one `SettleCycle` from the authority.
    fn build_chain() -> tempfile::TempDir {
        let dir = tempfile::tempdir().expect("tempdir");
        let genesis = genesis();
        let limits = BlockLimits {
            max_transactions: 100,
            max_bytes: 1 << 20,
        };
        let mut chain =
            Chain::open(&genesis, Store::open(dir.path()).expect("store"), limits).expect("open");
        let (a, b) = (customer_seed(0, 0), customer_seed(1, 0));
        let mut nonces = [0u64; 2];
        for height in 1..=BLOCKS {
            let mut pool = Mempool::new(MempoolLimits {
                max_transactions: 100,
                max_per_signer: 100,
            });
            let add = |pool: &mut Mempool, tx: VerifiedTransaction| {
                pool.insert(tx, chain.ledger(), height).expect("admit");
            };
            // A → B: 600 fits the cap of 1,000 once, then queues.
            add(&mut pool, transfer(a, b, nonces[0], 600));
            nonces[0] += 1;
            if height % 2 == 1 {
                add(&mut pool, transfer(b, a, nonces[1], 250));
                nonces[1] += 1;
            }
            if height == 4 {
                let settle = Transaction {
                    chain_id: "test".into(),
                    signer: account(AUTHORITY_SEED),
                    nonce: 0,
                    valid_until_height: 1_000,
                    body: Body::SettleCycle,
                }
                .sign(&key(AUTHORITY_SEED))
                .check_stateless("test")
                .expect("valid");
                add(&mut pool, settle);
            }
            let block = chain.build_block(&pool, account(VALIDATOR_SEEDS[0]), 1_000 * height);
            chain.validate_block(&block, &pool).expect("valid block");
            let cert = codec::encode(&certificate(height, &block, &QUORUM));
            let (_, txs) = chain.commit(&block, cert, &pool).expect("commit");
            assert!(!txs.is_empty(), "block {height} has transactions");
        }
        dir
    }

    fn run(dir: &Path) -> Result<AuditReport, AuditError> {
        let store = open_store(dir).expect("open");
        audit(&store, &genesis(), &mut |_, _| {})
    }

    fn discrepancy(dir: &Path) -> Discrepancy {
        match run(dir) {
            Err(AuditError::Discrepancy(d)) => d,
            other => panic!("expected a discrepancy, got {other:?}"),
        }
    }

    fn with_store(dir: &Path, edit: impl FnOnce(&Store)) {
        let store = Store::open(dir).expect("open");
        edit(&store);
    }

    fn stored_block(store: &Store, height: u64) -> Block {
        let bytes = store.block(height).expect("read").expect("stored");
        Block::decode(&bytes, MAX_BLOCK_BYTES).expect("decode")
    }

    fn stored_certificate(store: &Store, height: u64) -> CommitCertificate {
        let bytes = store.certificate(height).expect("read").expect("stored");
        codec::decode(&bytes, MAX_CERTIFICATE_BYTES).expect("decode")
    }

    /// Replaces block `height` by `block`, and, when `recertify`, its certificate by a
    /// valid quorum for the new bytes (a colluding quorum, or a forger with the keys).
    fn replace_block(store: &Store, height: u64, block: &Block, recertify: bool) {
        let bytes = block.encode();
        store
            .overwrite_record(RecordKind::Block, height, &bytes)
            .expect("overwrite");
        if recertify {
            let cert = codec::encode(&certificate(height, &bytes, &QUORUM));
            store
                .overwrite_record(RecordKind::Certificate, height, &cert)
                .expect("overwrite");
        }
    }

    fn change_first_amount(block: &mut Block) {
        let Body::Transfer { amount, .. } = &mut block.transactions[0].tx.body else {
            panic!("the first transaction is a transfer");
        };
        amount.0 += 1;
    }

    #[test]
    fn an_untouched_chain_passes_with_a_summary() {
        let dir = build_chain();
        let mut calls = Vec::new();
        let store = open_store(dir.path()).expect("open");
        let report = audit(&store, &genesis(), &mut |done, total| {
            calls.push((done, total))
        })
        .expect("the chain verifies");
        assert_eq!(calls.first(), Some(&(0, BLOCKS)));
        assert_eq!(calls.last(), Some(&(BLOCKS, BLOCKS)));
        assert_eq!((report.blocks, report.final_height), (BLOCKS, BLOCKS));
        // 6 A → B, 3 B → A, 1 SettleCycle.
        assert_eq!(report.transactions, 10);
        assert_eq!(
            report.committed + report.queued + report.rejected,
            report.transactions
        );
        assert!(report.queued > 0, "{report:?}");
        assert!(report.cycles_settled >= 3, "{report:?}");
        assert!(report.gross_settled_minor_units >= report.net_settled_minor_units);
        assert!(report.net_settled_minor_units > 0, "{report:?}");
        // The same state root as the node's own replay on open.
        drop(store);
        let chain = Chain::open(
            &genesis(),
            Store::open(dir.path()).expect("store"),
            BlockLimits {
                max_transactions: 100,
                max_bytes: 1 << 20,
            },
        )
        .expect("reopen");
        assert_eq!(report.state_root, chain.ledger().state_root());
        assert_eq!(report.state_root, chain.tip().state_root);
    }

    #[test]
    fn setup_errors_are_not_discrepancies() {
        let empty = tempfile::tempdir().expect("tempdir");
        assert!(matches!(
            open_store(empty.path()),
            Err(SetupError::NoDatabase(_))
        ));
        assert!(
            !empty.path().join("db").exists(),
            "audit never creates a database"
        );
        let dir = build_chain();
        let mut no_validators = genesis();
        no_validators.validators.clear();
        let store = open_store(dir.path()).expect("open");
        let error = audit(&store, &no_validators, &mut |_, _| {}).expect_err("invalid");
        assert!(matches!(error, AuditError::Setup(SetupError::Genesis(_))));
        assert_eq!(error.exit_code(), 2);
        // The audit reads without RocksDB's lock: a second audit while the first holds the
        // store (as a running node would) opens too, and sees the same chain.
        let again = open_store(dir.path()).expect("a second reader");
        assert_eq!(
            again.height().expect("height"),
            store.height().expect("height")
        );
    }

    #[test]
    fn an_altered_transfer_amount_breaks_the_certificate() {
        let dir = build_chain();
        with_store(dir.path(), |store| {
            let mut block = stored_block(store, TARGET);
            change_first_amount(&mut block);
            replace_block(store, TARGET, &block, false);
        });
        let found = discrepancy(dir.path());
        assert_eq!(found.height, TARGET);
        assert!(
            matches!(
                found.kind,
                DiscrepancyKind::Certificate(CertificateError::WrongDigest { .. })
            ),
            "{found}"
        );
        let message = found.to_string();
        assert!(
            message.starts_with("block 3: certificate does not verify"),
            "{message}"
        );
    }

    #[test]
    fn an_altered_transfer_with_a_forged_certificate_fails_its_signature() {
        let dir = build_chain();
        with_store(dir.path(), |store| {
            let mut block = stored_block(store, TARGET);
            change_first_amount(&mut block);
            replace_block(store, TARGET, &block, true);
        });
        let found = discrepancy(dir.path());
        assert_eq!(found.height, TARGET);
        assert!(
            matches!(
                found.kind,
                DiscrepancyKind::Transaction {
                    index: 0,
                    error: TxError::BadSignature
                }
            ),
            "{found}"
        );
    }

    #[test]
    fn a_certificate_short_of_a_quorum_is_caught() {
        let dir = build_chain();
        with_store(dir.path(), |store| {
            let mut cert = stored_certificate(store, TARGET);
            cert.signatures.pop();
            store
                .overwrite_record(RecordKind::Certificate, TARGET, &codec::encode(&cert))
                .expect("overwrite");
        });
        let found = discrepancy(dir.path());
        assert_eq!(found.height, TARGET);
        assert!(
            matches!(
                found.kind,
                DiscrepancyKind::Certificate(CertificateError::NotEnoughSignatures {
                    got: 2,
                    quorum: 3
                })
            ),
            "{found}"
        );
    }

    #[test]
    fn a_certificate_signature_from_a_wrong_key_is_caught() {
        // A signer outside the validator set.
        let dir = build_chain();
        let outsider = key(OUTSIDER_SEED);
        with_store(dir.path(), |store| {
            let mut cert = stored_certificate(store, TARGET);
            let hash = cert.vote.signing_hash(MessageKind::Commit);
            cert.signatures[2] = (
                PublicKey::from(&outsider.verifying_key()),
                Signature::from(outsider.sign(&hash)),
            );
            store
                .overwrite_record(RecordKind::Certificate, TARGET, &codec::encode(&cert))
                .expect("overwrite");
        });
        let found = discrepancy(dir.path());
        assert_eq!(found.height, TARGET);
        assert!(
            matches!(
                found.kind,
                DiscrepancyKind::Certificate(CertificateError::ForeignSigner(_))
            ),
            "{found}"
        );

        // A validator's name on a signature made with another key.
        let dir = build_chain();
        let named = PublicKey::from(&key(VALIDATOR_SEEDS[1]).verifying_key());
        with_store(dir.path(), |store| {
            let mut cert = stored_certificate(store, TARGET);
            let hash = cert.vote.signing_hash(MessageKind::Commit);
            cert.signatures[1].1 = Signature::from(outsider.sign(&hash));
            store
                .overwrite_record(RecordKind::Certificate, TARGET, &codec::encode(&cert))
                .expect("overwrite");
        });
        let found = discrepancy(dir.path());
        assert_eq!(found.height, TARGET);
        assert!(
            matches!(
                found.kind,
                DiscrepancyKind::Certificate(CertificateError::BadSignature(signer))
                    if signer == named
            ),
            "{found}"
        );
    }

    #[test]
    fn a_certificate_for_another_genesis_is_caught_at_block_1() {
        let dir = build_chain();
        let mut other = genesis();
        other.validators[3].key = account(OUTSIDER_SEED);
        other.validators.swap(0, 3);
        let store = open_store(dir.path()).expect("open");
        let Err(AuditError::Discrepancy(found)) = audit(&store, &other, &mut |_, _| {}) else {
            panic!("another validator set must not verify");
        };
        assert_eq!(found.height, 1);
        assert!(
            matches!(found.kind, DiscrepancyKind::Certificate(_)),
            "{found}"
        );
    }

    #[test]
    fn an_altered_outcome_is_caught() {
        // A receipt turned into a rejection (every signature in the chain is valid).
        let dir = build_chain();
        with_store(dir.path(), |store| {
            let mut outcome = store.outcome(TARGET).expect("read").expect("stored");
            outcome.receipts[0].outcome = Outcome::Rejected {
                error: TxError::BadSignature,
            };
            store
                .overwrite_record(RecordKind::Outcome, TARGET, &codec::encode(&outcome))
                .expect("overwrite");
        });
        let found = discrepancy(dir.path());
        assert_eq!(found.height, TARGET);
        assert!(
            matches!(found.kind, DiscrepancyKind::Receipt { index: 0, .. }),
            "{found}"
        );

        // A state root.
        let dir = build_chain();
        with_store(dir.path(), |store| {
            let mut outcome = store.outcome(TARGET).expect("read").expect("stored");
            outcome.state_root = Hash([7; 32]);
            store
                .overwrite_record(RecordKind::Outcome, TARGET, &codec::encode(&outcome))
                .expect("overwrite");
        });
        let found = discrepancy(dir.path());
        assert_eq!(found.height, TARGET);
        assert!(
            matches!(found.kind, DiscrepancyKind::StateRoot { stored, .. } if stored == Hash([7; 32])),
            "{found}"
        );
        assert!(found
            .to_string()
            .contains("state root differs: stored 0707"));

        // A settlement report (block 4 closes a cycle).
        let dir = build_chain();
        with_store(dir.path(), |store| {
            let mut outcome = store.outcome(4).expect("read").expect("stored");
            let report = outcome.settlement.as_mut().expect("cycle closes at 4");
            report.gross_total.0 += 1;
            store
                .overwrite_record(RecordKind::Outcome, 4, &codec::encode(&outcome))
                .expect("overwrite");
        });
        let found = discrepancy(dir.path());
        assert_eq!(found.height, 4);
        assert!(
            matches!(found.kind, DiscrepancyKind::Settlement { .. }),
            "{found}"
        );

        // Garbage.
        let dir = build_chain();
        with_store(dir.path(), |store| {
            store
                .overwrite_record(RecordKind::Outcome, TARGET, b"garbage")
                .expect("overwrite");
        });
        let found = discrepancy(dir.path());
        assert_eq!(found.height, TARGET);
        assert!(matches!(found.kind, DiscrepancyKind::Storage(_)), "{found}");
    }

    #[test]
    fn a_broken_parent_link_is_caught_even_with_a_valid_certificate() {
        let dir = build_chain();
        let mut expected_previous = Hash::ZERO;
        with_store(dir.path(), |store| {
            expected_previous =
                Block::hash_of(&store.block(TARGET - 1).expect("read").expect("stored"));
            let mut block = stored_block(store, TARGET);
            block.header.parent_hash = Hash([9; 32]);
            replace_block(store, TARGET, &block, true);
        });
        let found = discrepancy(dir.path());
        assert_eq!(found.height, TARGET);
        assert!(
            matches!(
                found.kind,
                DiscrepancyKind::HashLink {
                    parent_hash,
                    previous_height: 2,
                    previous_hash,
                } if parent_hash == Hash([9; 32]) && previous_hash == expected_previous
            ),
            "{found}"
        );
        assert_eq!(
            found.to_string(),
            format!(
                "block 3: hash link broken: parent_hash {}, block 2 is {expected_previous}",
                Hash([9; 32])
            )
        );
    }

    #[test]
    fn a_wrong_previous_state_root_in_a_header_is_caught() {
        let dir = build_chain();
        with_store(dir.path(), |store| {
            let mut block = stored_block(store, TARGET);
            block.header.previous_state_root = Hash([5; 32]);
            replace_block(store, TARGET, &block, true);
        });
        let found = discrepancy(dir.path());
        assert_eq!(found.height, TARGET);
        assert!(
            matches!(
                found.kind,
                DiscrepancyKind::PreviousStateRoot {
                    previous_height: 2,
                    ..
                }
            ),
            "{found}"
        );
    }

    #[test]
    fn a_block_moved_to_another_height_is_caught_and_none_can_be_added() {
        let dir = build_chain();
        with_store(dir.path(), |store| {
            // Block 2's bytes where block 3's should be: its certificate is for block 3.
            let other = store.block(2).expect("read").expect("stored");
            store
                .overwrite_record(RecordKind::Block, TARGET, &other)
                .expect("overwrite");
            assert!(matches!(
                store.overwrite_record(RecordKind::Block, BLOCKS + 1, &other),
                Err(StorageError::OutOfOrder { .. })
            ));
        });
        let found = discrepancy(dir.path());
        assert_eq!(found.height, TARGET);
        assert!(
            matches!(found.kind, DiscrepancyKind::Certificate(_)),
            "{found}"
        );
    }
}
