//! `interpool-node audit`: re-verifies a node's stored chain (stopped or running) from
//! genesis, as a regulator would, trusting nothing on disk but the genesis it is given.
//!
//! It is the node's one replay ([`crate::app::replay`]) in its untrusted mode
//! ([`Trust::Verify`]): for every height from 1 to the stored height, in order, the commit
//! certificate against the genesis validator set, the hash link and the header, every
//! signature (in one batch, as a commit of a block the node did not validate does), the
//! re-execution against the stored outcome, and the ledger invariants after the block.
//!
//! It stops at the first discrepancy and names its height and what differs. After the last
//! height it also checks that nothing is stored beyond it.
//!
//! A chain whose first blocks are gone (pruned, or never had: a node that joined by state
//! sync) is re-executed from a checkpoint (ADR 0011), but only from one whose state root a
//! stored block certifies. A block's header carries the state root *before* it
//! (`previous_state_root`, the root after the block below) and its certificate signs the
//! block's bytes: the state after block `C` is certified by block `C + 1`'s header alone.
//! So the audit starts from the lowest stored checkpoint whose next block is stored: it
//! rebuilds the checkpoint's state from its entries (root, invariants), and the replay of
//! block `C + 1` checks that its certified header names that root and `C`'s block hash.
//! The blocks kept below that checkpoint cannot be executed (no state before them): each
//! one's certificate, signatures and hash link up to the checkpoint's block are verified.
//! Every other checkpoint at a re-executed height (a node starts from it) must be the
//! replayed state there. When no stored block certifies the state the node holds (it
//! stopped on a checkpoint with fewer blocks kept than a checkpoint interval, or has just
//! joined by state sync), the audit verifies every stored block and says that the state is
//! unverified ([`SetupError::Uncertified`]), never that it passed.

use std::path::{Path, PathBuf};

use interpool_contracts::outcome::{BlockOutcome, Outcome};
use interpool_contracts::{Amount, ChainTip, Genesis, Hash};
use interpool_genesis::spec::{check_genesis, validator_set};
use serde::Serialize;
use thiserror::Error;

use crate::app::admission::SignerKeys;
use crate::app::replay::{check_nothing_beyond, header_discrepancy, Replay, Trust};
pub use crate::app::replay::{DiscrepancyKind, Record};
use crate::storage::{ChainStore, CheckpointInfo, StorageError, Store};

/// What an audit that found nothing wrong verified.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AuditReport {
    /// The chain id.
    pub chain_id: String,
    /// The genesis hash (what block 1 links to).
    pub genesis_hash: Hash,
    /// Blocks verified (each with its certificate, hash link and re-execution).
    pub blocks: u64,
    /// The last stored height (equal to `blocks` unless verified from a checkpoint).
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
    /// Queued transfers refunded otherwise: cancelled, past their reject time, at the
    /// customer cut-off.
    #[serde(default)]
    pub dropped: u64,
    /// Settlement cycles closed.
    pub cycles_settled: u64,
    /// The checkpoint a pruned chain was verified from (0: the genesis; the counts cover
    /// the blocks after it). Its state root is certified by the next block's header.
    #[serde(default)]
    pub from_checkpoint: u64,
    /// Blocks kept below that checkpoint: each one's certificate, signatures and hash link
    /// up to the checkpoint's block verified; not re-executed (there is no state before
    /// them), so their stored outcomes are not.
    #[serde(default)]
    pub blocks_below_checkpoint: u64,
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

/// Why an audit could not start or could not reach a verdict: the command line, the genesis
/// or the data directory is unusable (nothing is claimed about the chain's state).
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
    /// Reading the descriptions of the stored checkpoints failed.
    #[error("cannot read the stored checkpoints: {0}")]
    Checkpoint(StorageError),
    /// The state the node holds (and starts from) is a checkpoint's that no stored block
    /// certifies: only block `height + 1`'s header names the state root after block
    /// `height`, and that block is not stored. An honest node has this layout when it
    /// stopped on a checkpoint keeping fewer blocks than a checkpoint interval, or has just
    /// joined by state sync; so has one whose checkpoint was forged. Every stored block
    /// verified (certificate, signatures, hash links) and the checkpoint is consistent in
    /// itself, but nothing ties its state to the chain: neither passed nor a discrepancy.
    #[error(
        "the state after block {height} (the checkpoint the node starts from) cannot be \
         verified: block {}'s header certifies it and is not stored; the {blocks} stored \
         blocks verify (certificates, signatures, hash links). Audit again once the node has \
         committed block {}",
        .height.saturating_add(1),
        .height.saturating_add(1)
    )]
    Uncertified {
        /// The checkpoint's height.
        height: u64,
        /// Stored blocks verified (without re-execution).
        blocks: u64,
    },
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

/// How many blocks each of the audit's reader threads may have checked ahead of the replay.
const PREPARED_AHEAD: usize = 2;

/// At most this many reader threads, whatever the core count (each holds up to
/// [`PREPARED_AHEAD`] decoded blocks).
const MAX_READERS: usize = 8;

/// Signer keys an audit remembers decoded (about 200 bytes each): a network's customers sign
/// again and again.
const REMEMBERED_KEYS: usize = 200_000;

/// Audits the chain stored in `store` against `genesis`. `progress` is called with
/// `(verified heights, stored height)` before the first block and after each one.
pub fn audit(
    store: &dyn ChainStore,
    genesis: &Genesis,
    progress: &mut dyn FnMut(u64, u64),
) -> Result<AuditReport, AuditError> {
    let readers = std::thread::available_parallelism()
        .map_or(1, std::num::NonZeroUsize::get)
        .min(MAX_READERS);
    audit_with(store, genesis, readers, progress)
}

/// [`audit`] with `readers` threads checking certificates and signatures ahead (at least
/// one); the verdict does not depend on how many.
fn audit_with(
    store: &dyn ChainStore,
    genesis: &Genesis,
    readers: usize,
    progress: &mut dyn FnMut(u64, u64),
) -> Result<AuditReport, AuditError> {
    let readers = readers.max(1);
    check_genesis(genesis).map_err(|e| SetupError::Genesis(format!("{e:#}")))?;
    let validators = validator_set(genesis).map_err(|e| SetupError::Genesis(e.to_string()))?;
    let keys = SignerKeys::new(REMEMBERED_KEYS);
    let trust = Trust::Verify {
        validators: &validators,
        keys: &keys,
    };
    let mut replay =
        Replay::from_genesis(genesis).map_err(|e| SetupError::Genesis(e.to_string()))?;
    let stored = store.height().map_err(SetupError::Height)?;
    let mut counts = Counts::new(genesis, &replay);
    let chain_id = genesis.chain_id.clone();
    let earliest = store.earliest_height().map_err(SetupError::Height)?;
    let plan = Plan::of(store, stored, earliest)?;
    let start = plan.start;
    progress(start - 1, stored);
    // Every core: reader threads check certificates and signatures of the blocks ahead
    // (what needs no replayed state; reader `i` of `n` takes every `n`th height) while this
    // one checks links and re-executes, in height order; a failure on either side is
    // reported at its height, as a sequential replay would. Each reader stops after its
    // first failure: this thread meets that height before any later one.
    let chain_id = chain_id.as_str();
    std::thread::scope(|scope| {
        let mut lanes = Vec::with_capacity(readers);
        for lane in 0..readers {
            let (ahead, prepared) = std::sync::mpsc::sync_channel(PREPARED_AHEAD);
            let started = std::thread::Builder::new()
                .name(format!("audit-reader-{lane}"))
                .spawn_scoped(scope, move || {
                    for height in (start.saturating_add(lane as u64)..=stored).step_by(readers) {
                        let block = Replay::prepare(store, height, chain_id, trust);
                        let failed = block.is_err();
                        // The replay stopped (a discrepancy): nothing more to prepare.
                        if ahead.send(block).is_err() || failed {
                            break;
                        }
                    }
                });
            // No thread could be started: this one prepares that lane's heights itself.
            lanes.push(started.ok().map(|_| prepared));
        }
        // The last block checked without state (below the checkpoint the replay starts
        // from): what the next one must link to.
        let mut linked: Option<ChainTip> = None;
        for (index, height) in (start..=stored).enumerate() {
            let at = |kind| Discrepancy { height, kind };
            let block = match lanes.get(index % readers).and_then(Option::as_ref) {
                // A closed channel means the reader died; the scope re-raises its panic.
                Some(prepared) => prepared
                    .recv()
                    .map_err(|_| DiscrepancyKind::Missing(Record::Block))
                    .and_then(|block| block),
                None => Replay::prepare(store, height, chain_id, trust),
            };
            if height < plan.executed_from {
                let (hash, header, txs) = block.map_err(at)?.into_checked();
                // The first kept block links to a pruned one: nothing to compare with. No
                // state either way: the header's previous state root is taken as it is.
                let previous = linked.take().unwrap_or_else(|| ChainTip {
                    chain_id: chain_id.to_string(),
                    height: height.saturating_sub(1),
                    hash: header.parent_hash,
                    state_root: header.previous_state_root,
                    timestamp_ms: 0,
                });
                let previous = ChainTip {
                    state_root: header.previous_state_root,
                    ..previous
                };
                header
                    .check_extends(&previous)
                    .map_err(|error| at(header_discrepancy(previous.height, error)))?;
                txs.map_err(at)?;
                // The checkpoint's own block is the one it names (the next block's
                // certified header links to that hash).
                if let Some(info) = plan.top().filter(|info| info.height == height) {
                    if (info.block_hash, info.timestamp_ms) != (hash, header.timestamp_ms) {
                        return Err(at(DiscrepancyKind::Checkpoint(format!(
                            "it names block {} at time {}, the stored block is {hash} at time {}",
                            info.block_hash, info.timestamp_ms, header.timestamp_ms
                        )))
                        .into());
                    }
                }
                counts.report.blocks_below_checkpoint += 1;
                linked = Some(ChainTip {
                    height,
                    hash,
                    timestamp_ms: header.timestamp_ms,
                    ..previous
                });
            } else {
                if let Some(info) = plan
                    .anchor
                    .as_ref()
                    .filter(|_| height == plan.executed_from)
                {
                    // Its state root is checked against the certified header of this block
                    // by the replay's link check (`check_extends`), below.
                    replay = crate::app::checkpoint::load(genesis, store, info).map_err(|e| {
                        Discrepancy {
                            height: info.height,
                            kind: DiscrepancyKind::Checkpoint(e.to_string()),
                        }
                    })?;
                    counts.report.from_checkpoint = info.height;
                    counts.report.final_height = info.height;
                    counts.report.state_root = info.state_root;
                }
                let outcome = block
                    .and_then(|block| replay.apply(store, height, block))
                    .map_err(at)?;
                counts.count(&outcome);
                for info in plan.later.iter().filter(|info| info.height == height) {
                    check_checkpoint(genesis, store, info, replay.tip()).map_err(at)?;
                }
            }
            progress(height, stored);
        }
        Ok::<(), AuditError>(())
    })?;
    let beyond = stored.saturating_add(1);
    check_nothing_beyond(store, beyond).map_err(|kind| Discrepancy {
        height: beyond,
        kind,
    })?;
    if let Some(info) = &plan.uncertified {
        // What can be checked of it: its entries, root and invariants agree.
        crate::app::checkpoint::load(genesis, store, info).map_err(|e| Discrepancy {
            height: info.height,
            kind: DiscrepancyKind::Checkpoint(e.to_string()),
        })?;
        return Err(SetupError::Uncertified {
            height: info.height,
            blocks: counts.report.blocks_below_checkpoint,
        }
        .into());
    }
    Ok(counts.report)
}

/// Where the verification of a stored chain starts, and what it checks on the way.
struct Plan {
    /// The first stored height read: 1, or the earliest kept.
    start: u64,
    /// The checkpoint the re-execution starts from (`None`: the genesis): the lowest stored
    /// one whose next block is stored, since only that block's header certifies the state
    /// root after it.
    anchor: Option<CheckpointInfo>,
    /// Heights from `start` below this one are checked without state (certificate,
    /// signatures, hash links); from this one up they are re-executed.
    executed_from: u64,
    /// The checkpoints at re-executed heights: each must be the replayed state there.
    later: Vec<CheckpointInfo>,
    /// The state the node holds (and starts from) when no stored block certifies it.
    uncertified: Option<CheckpointInfo>,
}

impl Plan {
    /// The plan for a store of `stored` heights whose blocks from `earliest` are kept.
    fn of(store: &dyn ChainStore, stored: u64, earliest: u64) -> Result<Plan, AuditError> {
        let latest = store.checkpoint().map_err(SetupError::Checkpoint)?;
        let previous = store
            .previous_checkpoint()
            .map_err(SetupError::Checkpoint)?;
        // A state sync that pruned every block and stopped before making its checkpoint
        // the chain's start: the node's next start does (`Core::open_from`).
        let adopted_next = latest
            .clone()
            .filter(|info| info.height > stored && earliest > stored);
        // The checkpoints of stored heights (a node keeps the last two).
        let checkpoints: Vec<CheckpointInfo> = [latest.clone(), previous]
            .into_iter()
            .flatten()
            .filter(|info| (1..=stored).contains(&info.height))
            .collect();
        if earliest <= 1 {
            return Ok(Plan {
                start: 1,
                anchor: None,
                executed_from: 1,
                later: checkpoints,
                uncertified: adopted_next,
            });
        }
        let anchor = checkpoints
            .iter()
            .filter(|info| info.height < stored && info.height.saturating_add(1) >= earliest)
            .min_by_key(|info| info.height)
            .cloned();
        if let Some(anchor) = anchor {
            return Ok(Plan {
                start: earliest,
                executed_from: anchor.height.saturating_add(1),
                later: checkpoints
                    .into_iter()
                    .filter(|info| info.height > anchor.height)
                    .collect(),
                anchor: Some(anchor),
                uncertified: None,
            });
        }
        // No stored block certifies a state: the node's is the checkpoint at its tip, or
        // the one it adopts at its next start.
        let uncertified = latest
            .filter(|info| info.height == stored)
            .or(adopted_next)
            .ok_or_else(|| Discrepancy {
                height: earliest,
                kind: DiscrepancyKind::Checkpoint(format!(
                    "blocks below {earliest} are pruned and no checkpoint covers them"
                )),
            })?;
        Ok(Plan {
            start: earliest,
            anchor: None,
            executed_from: stored.saturating_add(1),
            later: Vec::new(),
            uncertified: Some(uncertified),
        })
    }

    /// The checkpoint the blocks checked without state lead up to.
    fn top(&self) -> Option<&CheckpointInfo> {
        self.anchor.as_ref().or(self.uncertified.as_ref())
    }
}

/// A checkpoint at a re-executed height must be the replayed chain there (`tip`): the
/// block and state root it names, and entries that rebuild that state (a node starts
/// from it, and state sync serves it).
fn check_checkpoint(
    genesis: &Genesis,
    store: &dyn ChainStore,
    info: &CheckpointInfo,
    tip: &ChainTip,
) -> Result<(), DiscrepancyKind> {
    if (info.block_hash, info.state_root, info.timestamp_ms)
        != (tip.hash, tip.state_root, tip.timestamp_ms)
    {
        return Err(DiscrepancyKind::Checkpoint(format!(
            "it names block {} with state root {} at time {}, the re-executed chain has \
             block {} with state root {} at time {}",
            info.block_hash,
            info.state_root,
            info.timestamp_ms,
            tip.hash,
            tip.state_root,
            tip.timestamp_ms
        )));
    }
    crate::app::checkpoint::load(genesis, store, info)
        .map(drop)
        .map_err(|e| DiscrepancyKind::Checkpoint(e.to_string()))
}

/// The running totals of an audit.
struct Counts {
    report: AuditReport,
}

impl Counts {
    fn new(genesis: &Genesis, replay: &Replay) -> Counts {
        let tip = replay.tip();
        Counts {
            report: AuditReport {
                chain_id: genesis.chain_id.clone(),
                genesis_hash: tip.hash,
                blocks: 0,
                final_height: 0,
                state_root: tip.state_root,
                transactions: 0,
                committed: 0,
                queued: 0,
                rejected: 0,
                released: 0,
                expired: 0,
                dropped: 0,
                cycles_settled: 0,
                from_checkpoint: 0,
                blocks_below_checkpoint: 0,
                gross_settled_minor_units: 0,
                net_settled_minor_units: 0,
                currency: genesis.currency.clone(),
                decimals: genesis.decimals,
            },
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
        report.dropped += outcome.dropped.len() as u64;
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::RecordKind;
    use crate::testkit::{self as node_kit, QUORUM, VALIDATOR_SEEDS};
    use ed25519_dalek::Signer;
    use interpool_consensus::{
        CertificateError, CommitCertificate, MessageKind, PublicKey, Signature,
    };
    use interpool_contracts::block::Block;
    use interpool_contracts::codec;
    use interpool_contracts::ledger::StateEntry;
    use interpool_contracts::testkit::{self, account, customer_seed, key, AUTHORITY_SEED};
    use interpool_contracts::{Body, Transaction, TxError, VerifiedTransaction};

    const OUTSIDER_SEED: u64 = 999;
    /// Blocks in the test chain.
    const BLOCKS: u64 = 6;
    /// The block the tampering tests alter (it holds transfers both ways).
    const TARGET: u64 = 3;

    fn genesis() -> Genesis {
        // Small pools and caps so that some transfers queue; short cycles so that several
        // settle.
        let mut genesis = node_kit::with_validators(testkit::genesis(2, 2, 100_000, 1_000, 1_000));
        genesis.cycle_blocks = 2;
        genesis.queue_expiry_blocks = 2;
        genesis
    }

    fn transfer(from: u64, to: u64, nonce: u64, amount: u64) -> VerifiedTransaction {
        node_kit::transfer_to(from, to, nonce, amount)
    }

    /// COMMIT signatures of validators `signers` on `payload` at `height`.
    fn certificate(height: u64, payload: &[u8], signers: &[usize]) -> CommitCertificate {
        node_kit::certificate_by(&node_kit::domain(&genesis()), height, payload, signers)
    }

    /// Builds, certifies and commits `BLOCKS` blocks with the node's own core: cross-bank
    /// transfers both ways (some queue, some are released or expire), one rejected
    /// transfer and one `SettleCycle` from the authority.
    fn build_chain() -> tempfile::TempDir {
        build_chain_with(600)
    }

    /// [`build_chain`] with transfers A → B of `amount`: another valid chain of the same
    /// genesis (another state) for any amount but 600.
    fn build_chain_with(amount: u64) -> tempfile::TempDir {
        let dir = tempfile::tempdir().expect("tempdir");
        let genesis = genesis();
        let mut core = node_kit::core(&genesis, dir.path(), node_kit::limits());
        let (a, b) = (customer_seed(0, 0), customer_seed(1, 0));
        let mut nonces = [0u64; 2];
        for height in 1..=BLOCKS {
            let mut txs = Vec::new();
            // A → B: 600 fits the cap of 1,000 once, then queues.
            txs.push(transfer(a, b, nonces[0], amount));
            nonces[0] += 1;
            if height % 2 == 1 {
                txs.push(transfer(b, a, nonces[1], 250));
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
                txs.push(settle);
            }
            let count = txs.len();
            let block = node_kit::commit_block(&mut core, txs, 1_000 * height);
            let block = Block::decode(&block, u64::MAX).expect("decode");
            assert_eq!(
                block.transactions.len(),
                count,
                "block {height} has its transactions"
            );
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

    /// The discrepancy an audit of `dir` finds, which must be in block `height`.
    fn discrepancy_at(dir: &Path, height: u64) -> Discrepancy {
        let found = discrepancy(dir);
        assert_eq!(found.height, height, "{found}");
        found
    }

    /// Takes one signature off the stored certificate of `height`.
    fn drop_a_commit_signature(store: &Store, height: u64) {
        alter_certificate(store, height, |cert| {
            cert.signatures.pop();
        });
    }

    /// The outsider's COMMIT signature on the vote of `cert`: well made, by a key outside
    /// the validator set.
    fn outsider_signature(cert: &CommitCertificate) -> Signature {
        let hash = cert
            .vote
            .signing_hash(&node_kit::domain(&genesis()), MessageKind::Commit);
        Signature::from(key(OUTSIDER_SEED).sign(&hash))
    }

    /// The audit of `dir` finds the certificate of `height` short of a quorum (2 of 3).
    fn assert_short_of_a_quorum_at(dir: &Path, height: u64) {
        let found = discrepancy_at(dir, height);
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

    /// The discrepancy an audit of `store` with `readers` reader threads finds.
    fn discrepancy_with(
        store: &Store,
        readers: usize,
        progress: &mut dyn FnMut(u64, u64),
    ) -> Discrepancy {
        match audit_with(store, &genesis(), readers, progress) {
            Err(AuditError::Discrepancy(found)) => found,
            other => panic!("{readers} readers: expected a discrepancy, got {other:?}"),
        }
    }

    /// Whether the discrepancy is a bad signature on a block's first transaction.
    fn first_signature_is_bad(kind: &DiscrepancyKind) -> bool {
        matches!(
            kind,
            DiscrepancyKind::Transaction {
                index: 0,
                error: TxError::BadSignature
            }
        )
    }

    /// The audit of `dir` finds a bad signature on the first transaction of block
    /// `height`.
    fn assert_first_signature_bad_at(dir: &Path, height: u64) {
        let found = discrepancy_at(dir, height);
        assert!(first_signature_is_bad(&found.kind), "{found}");
    }

    /// The audit of `dir` finds that a stored checkpoint, checked at block `height`, is not
    /// the state it claims.
    fn assert_bad_checkpoint_at(dir: &Path, height: u64) {
        let found = discrepancy_at(dir, height);
        assert!(
            matches!(found.kind, DiscrepancyKind::Checkpoint(_)),
            "{found}"
        );
    }

    fn with_store(dir: &Path, edit: impl FnOnce(&Store)) {
        let store = Store::open(dir).expect("open");
        edit(&store);
    }

    fn stored_block(store: &Store, height: u64) -> Block {
        let bytes = store.block(height).expect("read").expect("stored");
        Block::decode(&bytes, u64::MAX).expect("decode")
    }

    fn stored_certificate(store: &Store, height: u64) -> CommitCertificate {
        let bytes = store.certificate(height).expect("read").expect("stored");
        CommitCertificate::decode(&bytes).expect("decode")
    }

    /// Replaces the raw bytes of the `kind` record of block `height`, past every check, as
    /// a tamperer with write access to the data directory would.
    fn overwrite(store: &Store, kind: RecordKind, height: u64, bytes: &[u8]) {
        store
            .overwrite_record(kind, height, bytes)
            .expect("overwrite");
    }

    fn stored_outcome(store: &Store, height: u64) -> BlockOutcome {
        store.outcome(height).expect("read").expect("stored")
    }

    /// Rewrites block `height` with `change` applied; its certificate, for the old bytes,
    /// stays.
    fn alter_block(store: &Store, height: u64, change: impl FnOnce(&mut Block)) {
        let mut block = stored_block(store, height);
        change(&mut block);
        overwrite(store, RecordKind::Block, height, &block.encode());
    }

    /// [`alter_block`], then a certificate by a valid quorum for the new bytes (a colluding
    /// quorum, or a forger with the keys): only the checks below the certificate are left.
    fn alter_block_recertified(store: &Store, height: u64, change: impl FnOnce(&mut Block)) {
        alter_block(store, height, change);
        let bytes = store.block(height).expect("read").expect("stored");
        let cert = certificate(height, &bytes, &QUORUM).encode();
        overwrite(store, RecordKind::Certificate, height, &cert);
    }

    /// Rewrites the certificate of block `height` with `change` applied.
    fn alter_certificate(store: &Store, height: u64, change: impl FnOnce(&mut CommitCertificate)) {
        let mut cert = stored_certificate(store, height);
        change(&mut cert);
        overwrite(store, RecordKind::Certificate, height, &cert.encode());
    }

    /// Rewrites the outcome of block `height` with `change` applied.
    fn alter_outcome(store: &Store, height: u64, change: impl FnOnce(&mut BlockOutcome)) {
        let mut outcome = stored_outcome(store, height);
        change(&mut outcome);
        overwrite(store, RecordKind::Outcome, height, &codec::encode(&outcome));
    }

    /// The state after block `height` of the chain in `store` (replayed), as a checkpoint
    /// holds it.
    fn state_at(store: &Store, height: u64) -> (ChainTip, Vec<StateEntry>) {
        let mut replay = Replay::from_genesis(&genesis()).expect("genesis");
        for at in 1..=height {
            replay
                .block(store, at, Trust::OwnStore)
                .expect("the node's own chain replays");
        }
        (
            replay.tip().clone(),
            replay.ledger().state_entries().collect(),
        )
    }

    /// Writes the checkpoint of the state after block `height`, as the node's checkpoint
    /// writer does (before pruning below it).
    fn checkpoint_at(store: &Store, height: u64) -> CheckpointInfo {
        let (tip, entries) = state_at(store, height);
        store
            .write_checkpoint(&tip, &mut entries.into_iter())
            .expect("written")
    }

    /// The chain with a checkpoint at 4 and block 1 pruned: verified from 4, blocks 2 to 4
    /// kept below it.
    fn pruned_chain() -> tempfile::TempDir {
        let dir = build_chain();
        with_store(dir.path(), |store| {
            checkpoint_at(store, 4);
            assert_eq!(store.prune_below(2).expect("prune"), 1);
        });
        dir
    }

    /// The state-is-unverified verdict of an audit of `dir`: (checkpoint height, blocks
    /// verified).
    fn uncertified(dir: &Path) -> (u64, u64) {
        match run(dir) {
            Err(AuditError::Setup(SetupError::Uncertified { height, blocks })) => (height, blocks),
            other => panic!("expected an unverified state, got {other:?}"),
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
        let core = node_kit::core(&genesis(), dir.path(), node_kit::limits());
        assert_eq!(report.state_root, core.ledger().state_root());
        assert_eq!(report.state_root, core.tip().state_root);
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
            alter_block(store, TARGET, change_first_amount)
        });
        let found = discrepancy_at(dir.path(), TARGET);
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
            alter_block_recertified(store, TARGET, change_first_amount)
        });
        assert_first_signature_bad_at(dir.path(), TARGET);
    }

    #[test]
    fn a_certificate_short_of_a_quorum_is_caught() {
        let dir = build_chain();
        with_store(dir.path(), |store| drop_a_commit_signature(store, TARGET));
        assert_short_of_a_quorum_at(dir.path(), TARGET);
    }

    #[test]
    fn a_certificate_signature_from_a_wrong_key_is_caught() {
        // A signer outside the validator set.
        let dir = build_chain();
        let outsider = PublicKey::from(&key(OUTSIDER_SEED).verifying_key());
        with_store(dir.path(), |store| {
            alter_certificate(store, TARGET, |cert| {
                let signature = outsider_signature(cert);
                cert.signatures[2] = (outsider, signature);
            });
        });
        let found = discrepancy_at(dir.path(), TARGET);
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
            alter_certificate(store, TARGET, |cert| {
                let signature = outsider_signature(cert);
                cert.signatures[1].1 = signature;
            });
        });
        let found = discrepancy_at(dir.path(), TARGET);
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
    fn certificates_of_the_same_validators_on_another_chain_do_not_verify() {
        // Same validator keys, another genesis (a test network, a chain restarted): its
        // COMMITs are signed for another chain and prove nothing here.
        let dir = build_chain();
        let mut other = genesis();
        other.cycle_blocks += 1;
        let store = open_store(dir.path()).expect("open");
        let Err(AuditError::Discrepancy(found)) = audit(&store, &other, &mut |_, _| {}) else {
            panic!("another chain's certificates must not verify");
        };
        assert_eq!(found.height, 1);
        assert!(
            matches!(
                found.kind,
                DiscrepancyKind::Certificate(CertificateError::BadSignature(_))
            ),
            "{found}"
        );
    }

    /// Discrepancies in several blocks, of kinds found by the readers (a broken certificate,
    /// a bad signature) and by the replay (an altered outcome): whatever the number of
    /// reader threads, and so whichever thread meets which block first, the audit names
    /// the lowest height, as a sequential replay would.
    #[test]
    fn the_first_discrepancy_is_reported_whatever_the_number_of_readers() {
        let dir = build_chain();
        let mut original = Vec::new();
        with_store(dir.path(), |store| {
            // Block 2: its outcome (found by the replay thread).
            original = codec::encode(&stored_outcome(store, 2));
            alter_outcome(store, 2, |outcome| outcome.state_root = Hash([7; 32]));
            // Block 3: an amount, recertified (a bad signature, found by a reader).
            alter_block_recertified(store, 3, change_first_amount);
            // Block 5: an amount, not recertified (the certificate, found by a reader).
            alter_block(store, 5, change_first_amount);
        });
        let store = open_store(dir.path()).expect("open");
        for readers in 1..=4 {
            let mut reached = 0;
            let found = discrepancy_with(&store, readers, &mut |done, _| reached = done);
            assert_eq!(found.height, 2, "{readers} readers: {found}");
            assert!(
                matches!(found.kind, DiscrepancyKind::StateRoot { .. }),
                "{readers} readers: {found}"
            );
            assert_eq!(
                reached, 1,
                "{readers} readers: block 1 verified, then 2 failed"
            );
        }
        drop(store);
        // Block 2 mended: the bad signature in block 3 comes first, before block 5's
        // certificate.
        with_store(dir.path(), |store| {
            overwrite(store, RecordKind::Outcome, 2, &original);
        });
        let store = open_store(dir.path()).expect("open");
        for readers in 1..=4 {
            let found = discrepancy_with(&store, readers, &mut |_, _| {});
            assert_eq!(found.height, 3, "{readers} readers: {found}");
            assert!(
                first_signature_is_bad(&found.kind),
                "{readers} readers: {found}"
            );
        }
    }

    #[test]
    fn an_altered_outcome_is_caught() {
        // A receipt turned into a rejection (every signature in the chain is valid).
        let dir = build_chain();
        with_store(dir.path(), |store| {
            alter_outcome(store, TARGET, |outcome| {
                outcome.receipts[0].outcome = Outcome::Rejected {
                    error: TxError::BadSignature,
                };
            });
        });
        let found = discrepancy_at(dir.path(), TARGET);
        assert!(
            matches!(found.kind, DiscrepancyKind::Receipt { index: 0, .. }),
            "{found}"
        );

        // A state root.
        let dir = build_chain();
        with_store(dir.path(), |store| {
            alter_outcome(store, TARGET, |outcome| outcome.state_root = Hash([7; 32]));
        });
        let found = discrepancy_at(dir.path(), TARGET);
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
            alter_outcome(store, 4, |outcome| {
                let report = outcome.settlement.as_mut().expect("cycle closes at 4");
                report.gross_total.0 += 1;
            });
        });
        let found = discrepancy_at(dir.path(), 4);
        assert!(
            matches!(found.kind, DiscrepancyKind::Settlement { .. }),
            "{found}"
        );

        // Garbage.
        let dir = build_chain();
        with_store(dir.path(), |store| {
            overwrite(store, RecordKind::Outcome, TARGET, b"garbage");
        });
        let found = discrepancy_at(dir.path(), TARGET);
        assert!(matches!(found.kind, DiscrepancyKind::Storage(_)), "{found}");
    }

    #[test]
    fn a_broken_parent_link_is_caught_even_with_a_valid_certificate() {
        let dir = build_chain();
        let mut expected_previous = Hash::ZERO;
        with_store(dir.path(), |store| {
            expected_previous =
                Block::hash_of(&store.block(TARGET - 1).expect("read").expect("stored"));
            alter_block_recertified(store, TARGET, |block| {
                block.header.parent_hash = Hash([9; 32]);
            });
        });
        let found = discrepancy_at(dir.path(), TARGET);
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
            alter_block_recertified(store, TARGET, |block| {
                block.header.previous_state_root = Hash([5; 32]);
            });
        });
        let found = discrepancy_at(dir.path(), TARGET);
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
            overwrite(store, RecordKind::Block, TARGET, &other);
            assert!(matches!(
                store.overwrite_record(RecordKind::Block, BLOCKS + 1, &other),
                Err(StorageError::OutOfOrder { .. })
            ));
        });
        let found = discrepancy_at(dir.path(), TARGET);
        assert!(
            matches!(found.kind, DiscrepancyKind::Certificate(_)),
            "{found}"
        );
    }

    #[test]
    fn a_pruned_chain_is_verified_from_a_certified_checkpoint_with_its_kept_blocks_linked() {
        let dir = build_chain();
        let full = run(dir.path()).expect("the whole chain verifies");
        with_store(dir.path(), |store| {
            checkpoint_at(store, 4);
            assert_eq!(store.prune_below(2).expect("prune"), 1);
        });
        let report = run(dir.path()).expect("the pruned chain verifies");
        // Block 5's certified header names the state root after 4; blocks 2 to 4 are
        // checked without state; 5 and 6 re-executed.
        assert_eq!(
            (
                report.from_checkpoint,
                report.blocks_below_checkpoint,
                report.blocks,
                report.final_height
            ),
            (4, 3, 2, BLOCKS)
        );
        assert_eq!(report.state_root, full.state_root);
        // A checkpoint at the tip with a certified one below it (block 5 kept): the audit
        // starts from the lower one and checks the tip's against the replay.
        let dir = build_chain();
        with_store(dir.path(), |store| {
            checkpoint_at(store, 4);
            checkpoint_at(store, BLOCKS);
            store.prune_below(4).expect("prune");
        });
        let report = run(dir.path()).expect("the pruned chain verifies");
        assert_eq!(
            (
                report.from_checkpoint,
                report.blocks_below_checkpoint,
                report.blocks
            ),
            (4, 1, 2)
        );
        assert_eq!(report.state_root, full.state_root);
        // Unpruned, with both checkpoints: from the genesis, both checked.
        let dir = build_chain();
        with_store(dir.path(), |store| {
            checkpoint_at(store, 4);
            checkpoint_at(store, BLOCKS);
        });
        let report = run(dir.path()).expect("the chain verifies");
        assert_eq!((report.from_checkpoint, report.blocks), (0, BLOCKS));
    }

    /// Blocks kept below the checkpoint the audit starts from are served to readers: their
    /// certificates, signatures and hash links up to the checkpoint's block are verified.
    /// Before, nothing below the checkpoint was read.
    #[test]
    fn kept_blocks_below_the_checkpoint_are_verified() {
        // A certificate short of a quorum.
        let dir = pruned_chain();
        with_store(dir.path(), |store| drop_a_commit_signature(store, TARGET));
        assert_short_of_a_quorum_at(dir.path(), TARGET);

        // An altered amount, recertified: its signature.
        let dir = pruned_chain();
        with_store(dir.path(), |store| {
            alter_block_recertified(store, TARGET, change_first_amount)
        });
        assert_first_signature_bad_at(dir.path(), TARGET);

        // A broken parent link, recertified.
        let dir = pruned_chain();
        with_store(dir.path(), |store| {
            alter_block_recertified(store, TARGET, |block| {
                block.header.parent_hash = Hash([9; 32]);
            });
        });
        let found = discrepancy_at(dir.path(), TARGET);
        assert!(
            matches!(
                found.kind,
                DiscrepancyKind::HashLink {
                    parent_hash,
                    previous_height: 2,
                    ..
                } if parent_hash == Hash([9; 32])
            ),
            "{found}"
        );

        // The checkpoint's own block replaced by another, recertified: the kept blocks no
        // longer lead to the block the checkpoint (and block 5) names.
        let dir = pruned_chain();
        with_store(dir.path(), |store| {
            alter_block_recertified(store, 4, |block| block.header.timestamp_ms += 1);
        });
        assert_bad_checkpoint_at(dir.path(), 4);
    }

    /// The state root after block `C` is certified only by block `C + 1`'s header. A
    /// checkpoint at the tip whose state no stored block certifies was trusted: a state
    /// forged into the data directory (consistent in itself) passed, with its root in the
    /// report.
    #[test]
    fn a_checkpoint_at_the_tip_is_never_reported_verified_unless_certified() {
        // Stopped on its checkpoint with blocks below 5 pruned: honest, and unverifiable.
        let dir = build_chain();
        with_store(dir.path(), |store| {
            checkpoint_at(store, BLOCKS);
            store.prune_below(5).expect("prune");
        });
        assert_eq!(uncertified(dir.path()), (BLOCKS, 2));
        let store = open_store(dir.path()).expect("open");
        let error = audit(&store, &genesis(), &mut |_, _| {}).expect_err("not verified");
        assert_eq!(error.exit_code(), 2, "neither passed nor a discrepancy");
        drop(store);

        // Another valid chain's state under block 6's hash and time.
        let other = build_chain_with(500);
        let (forged, entries) = state_at(&Store::open(other.path()).expect("open"), BLOCKS);
        let forge = |store: &Store| {
            let honest = state_at(store, BLOCKS).0;
            assert_ne!(forged.state_root, honest.state_root);
            let tip = ChainTip {
                state_root: forged.state_root,
                ..honest
            };
            store
                .write_checkpoint(&tip, &mut entries.clone().into_iter())
                .expect("written");
        };
        let dir = build_chain();
        with_store(dir.path(), |store| {
            forge(store);
            store.prune_below(5).expect("prune");
        });
        assert_eq!(uncertified(dir.path()), (BLOCKS, 2));

        // A root its entries do not hash to.
        let dir = build_chain();
        with_store(dir.path(), |store| {
            let (tip, honest) = state_at(store, BLOCKS);
            let tip = ChainTip {
                state_root: Hash([7; 32]),
                ..tip
            };
            store
                .write_checkpoint(&tip, &mut honest.into_iter())
                .expect("written");
            store.prune_below(5).expect("prune");
        });
        assert_bad_checkpoint_at(dir.path(), BLOCKS);

        // The forged state above a certified checkpoint (block 5 kept): the replay from
        // that one shows it.
        let dir = build_chain();
        with_store(dir.path(), |store| {
            checkpoint_at(store, 4);
            forge(store);
            store.prune_below(4).expect("prune");
        });
        assert_bad_checkpoint_at(dir.path(), BLOCKS);

        // And on an unpruned chain (a node would start from it).
        let dir = build_chain();
        with_store(dir.path(), forge);
        assert_bad_checkpoint_at(dir.path(), BLOCKS);
    }

    /// State sync stores the checkpoint `C` it joined at, never block `C`, and keeps blocks
    /// from `C + 1` (`adopt_checkpoint`). Before, every such chain was a discrepancy (its
    /// checkpoint is below the earliest kept block).
    #[test]
    fn the_layouts_of_a_node_that_joined_by_state_sync_verify() {
        let dir = build_chain();
        let full = run(dir.path()).expect("the whole chain verifies");
        // The states a peer serves, read before any block is pruned.
        let (after_5, after_6) = {
            let store = Store::open(dir.path()).expect("open");
            (state_at(&store, 5), state_at(&store, BLOCKS))
        };
        let write = |store: &Store, (tip, entries): &(ChainTip, Vec<StateEntry>)| {
            store
                .write_checkpoint(tip, &mut entries.clone().into_iter())
                .expect("written");
        };
        // Joined at 3, followed 4 to 6.
        with_store(dir.path(), |store| {
            checkpoint_at(store, 3);
            store.prune_below(4).expect("prune");
            assert_eq!(store.earliest_height().expect("earliest"), 4);
        });
        let report = run(dir.path()).expect("a chain joined by state sync verifies");
        assert_eq!(
            (
                report.from_checkpoint,
                report.blocks_below_checkpoint,
                report.blocks,
                report.final_height
            ),
            (3, 0, 3, BLOCKS)
        );
        assert_eq!(report.state_root, full.state_root);
        // Then a checkpoint at 5 and pruning below it.
        with_store(dir.path(), |store| {
            write(store, &after_5);
            store.prune_below(5).expect("prune");
        });
        let report = run(dir.path()).expect("pruned after state sync, it verifies");
        assert_eq!(
            (
                report.from_checkpoint,
                report.blocks_below_checkpoint,
                report.blocks
            ),
            (5, 1, 1)
        );
        assert_eq!(report.state_root, full.state_root);

        // Just joined at 6, no block after it yet: nothing stored certifies the state.
        let joined = tempfile::tempdir().expect("tempdir");
        with_store(joined.path(), |store| write(store, &after_6));
        // Stopped before adopting it (the next start does).
        assert_eq!(uncertified(joined.path()), (BLOCKS, 0));
        with_store(joined.path(), |store| {
            store.adopt_checkpoint(BLOCKS).expect("adopted");
        });
        assert_eq!(uncertified(joined.path()), (BLOCKS, 0));
    }
}
