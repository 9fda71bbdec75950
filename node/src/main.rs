//! `interpool-node`: the Interpool node.
//!
//! * `run --config FILE` runs a validator or an observer (see `interpool_node::service`).
//! * `execute` checks a sequence of blocks against a genesis offline, exactly as a node
//!   does when it commits them (stateless checks with batch signature verification, then
//!   the ledger), and prints every receipt, queue release and expiry, settlement report and
//!   state root. Banks use it to dry-run a batch of signed transactions.
//!
//! * `audit` re-verifies a node's stored chain (stopped or running) from genesis: every commit
//!   certificate against the genesis validator set, every hash link, the re-execution of
//!   every block against the stored outcome, the ledger invariants (see
//!   `interpool_node::audit`). Exit code 0: it all verifies; 1: a discrepancy, named on
//!   stderr with its height; 2: bad usage, genesis or data directory.
//!
//! ```text
//! interpool-node run --config validator-0/config.toml
//! interpool-node execute --genesis genesis.json block1.txt block2.txt ...
//! interpool-node audit --data-dir validator-0/data --genesis genesis.json [--json]
//! ```
//!
//! A block file has one transaction a line: its canonical encoding in hex, or the JSON line
//! `interpool-wallet sign` prints. Blank lines and lines starting with `#` are skipped.

use std::fs;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use anyhow::{anyhow, bail, Context, Result};
use clap::{Parser, Subcommand};

/// mimalloc rather than glibc's malloc: a node allocates and frees in many threads at once
/// (every transaction decoded, every block's copy-on-write ledger nodes), and glibc's arenas
/// spent 17 % of a validator's CPU at 4,000 transfers/s (issue 12's profile).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use interpool_contracts::outcome::{BlockOutcome, Outcome};
use interpool_contracts::primitives::from_hex_vec;
use interpool_contracts::tx::{check_stateless_batch, MAX_TX_BYTES};
use interpool_contracts::{Amount, Ledger, SignedTransaction, VerifiedTransaction};
use interpool_genesis::config::{LogFormat, NodeConfig};
use interpool_genesis::files::read_genesis;
use interpool_node::app::replay::{self, Invariants};
use interpool_node::audit::{self, AuditError, AuditReport};
use interpool_node::service::{self, Overrides};

/// Most transactions one block file may hold.
const MAX_BLOCK_TRANSACTIONS: usize = 100_000;

#[derive(Parser)]
#[command(name = "interpool-node", version, about = "The Interpool node")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run a node from its config file (validator or observer).
    Run {
        /// The node's config file (TOML).
        #[arg(long)]
        config: PathBuf,
        /// Overrides `data_dir`.
        #[arg(long)]
        data_dir: Option<PathBuf>,
        /// Overrides `p2p.listen`.
        #[arg(long)]
        p2p_listen: Option<String>,
        /// Overrides `rpc.listen`.
        #[arg(long)]
        rpc_listen: Option<String>,
        /// Overrides `log_level` (a tracing filter such as `info` or `interpool_node=debug`).
        #[arg(long)]
        log_level: Option<String>,
        /// Rebuild the ledger by re-executing every stored block from the genesis, not from
        /// the last checkpoint (a checkpoint one suspects; a measurement).
        #[arg(long)]
        replay_from_genesis: bool,
    },
    /// Execute blocks of signed transactions on top of a genesis, offline.
    Execute {
        /// The genesis file.
        #[arg(long)]
        genesis: PathBuf,
        /// Print one JSON block outcome a line instead of a readable log.
        #[arg(long)]
        json: bool,
        /// The first block's time, milliseconds since the Unix epoch (timed payments and the
        /// business day run on it).
        #[arg(long, default_value_t = 0)]
        start_ms: u64,
        /// Milliseconds between one block's time and the next's.
        #[arg(long, default_value_t = 1_000)]
        interval_ms: u64,
        /// Block files, applied at heights 1, 2, ... in order.
        blocks: Vec<PathBuf>,
    },
    /// Re-verify a node's stored chain from genesis, read-only (the node may be running):
    /// certificates, hash links, re-execution, invariants. Exit 0: verified; 1: a discrepancy; 2: usage or setup.
    Audit {
        /// The node's data directory (`data_dir` in its config; the database is `DIR/db`).
        /// The node must be stopped.
        #[arg(long)]
        data_dir: PathBuf,
        /// The genesis file the chain must descend from.
        #[arg(long)]
        genesis: PathBuf,
        /// Print the summary (or the discrepancy) as one JSON object on stdout.
        #[arg(long)]
        json: bool,
    },
    /// Back up a node's database while it runs (or not) into a new folder: `OUT/db` and
    /// `OUT/backup.json`. Prints the backup's description as JSON.
    Backup {
        /// The node's data directory (`data_dir` in its config; the database is `DIR/db`).
        #[arg(long)]
        data_dir: PathBuf,
        /// The folder to write (must not exist).
        #[arg(long)]
        out: PathBuf,
    },
    /// Make a node's data directory from a backup (`interpool-node backup`). The node then
    /// starts on it as on its own, and catches up with its peers.
    Restore {
        /// The backup folder.
        #[arg(long)]
        from: PathBuf,
        /// The data directory to make (must hold no database).
        #[arg(long)]
        data_dir: PathBuf,
        /// Refuse a backup that does not belong to this genesis's chain.
        #[arg(long)]
        genesis: Option<PathBuf>,
    },
    /// Look across nodes' consensus journals (`[consensus] journal = true`) for a validator
    /// that signed two different messages of one kind for one height and round. Prints one
    /// JSON document. Exit 0: none; 1: equivocation found; 2: usage or unreadable input.
    Equivocations {
        /// The genesis file (its validators and chain).
        #[arg(long)]
        genesis: PathBuf,
        /// Journal files (`DATA_DIR/consensus-journal`); at least one.
        #[arg(required = true)]
        journals: Vec<PathBuf>,
    },
}

/// Transparent huge pages off for this process, as `MIMALLOC_ALLOW_THP=0` would do: mimalloc
/// asks the kernel for them on its arenas, and a 2 MiB page is resident whole however little
/// of it is in use. With 4 validators under full load each node's peak RSS was 20-120 MB
/// higher with them (validators 464-549 MiB, against 405-477 MiB without, in alternated
/// runs; issue 12 asks for at most 500 MB), and no CPU was saved. Pages touched before this
/// call stay as they are.
fn keep_memory_in_small_pages() {
    #[cfg(target_os = "linux")]
    if let Err(error) = nix::sys::prctl::set_thp_disable(true) {
        eprintln!(
            "warning: cannot turn transparent huge pages off ({error}); memory use may be higher"
        );
    }
}

/// What a running node tells its two allocators, through the environment variables they read
/// once when the process loads. An operator's own value of either wins.
/// * `MIMALLOC_PURGE_DELAY`: how long mimalloc (Rust's allocations) keeps a freed page
///   before it gives it back to the kernel, in ms. mimalloc v3 waits 1,000 ms (v2 waited
///   10); under full load a validator frees some hundreds of MB a second, so a second's
///   worth of freed pages stayed resident.
/// * `MALLOC_ARENA_MAX`: glibc malloc's arenas. RocksDB's C++ (memtables, block cache,
///   compaction buffers) allocates with glibc, which gives threads that allocate at once
///   their own 64 MiB arena each (up to 8 per core) and keeps what they free.
///
/// Measured with 4 validators at full load for 60 s (`scripts/bench.sh --validators 4
/// --rate max`, runs alternated): validators' peak RSS 384-481 MiB with the allocators'
/// defaults (up to 508 MiB in earlier runs, over issue 12's 500 MB), 328-386 MiB with
/// these, at the same throughput (+1, +1, -2 % in three pairs). In validator-0, mimalloc's
/// memory fell from 226-273 to 159-186 MiB and glibc's from 140-191 to 115-149 MiB.
/// Tried and not taken: an immediate purge (0 ms) gave about the same peak (312-353 MiB)
/// for 4-6 % less throughput; mimalloc v2 with RocksDB's allocations on mimalloc too gave
/// 271-308 MiB but committed about 10 % fewer transfers (0-24 % in five pairs).
const ALLOCATOR_ENVIRONMENT: [(&str, &str); 2] =
    [("MIMALLOC_PURGE_DELAY", "100"), ("MALLOC_ARENA_MAX", "2")];

/// Runs this process again in place (the same pid, the same arguments) with the variables of
/// [`ALLOCATOR_ENVIRONMENT`] its environment lacks, so the node's memory bound does not
/// depend on how it was launched (systemd, a script, by hand). The allocators read them only
/// at load, and setting either in-process takes unsafe code (the workspace forbids it).
/// Returns only if there was nothing to add or the `exec` failed (then with a warning: the
/// node runs, with the allocators' defaults).
fn run_with_allocator_environment() {
    let missing: Vec<(&str, &str)> = ALLOCATOR_ENVIRONMENT
        .into_iter()
        .filter(|(name, _)| std::env::var_os(name).is_none())
        .collect();
    if missing.is_empty() {
        return;
    }
    let exe = match std::env::current_exe() {
        Ok(exe) => exe,
        Err(error) => {
            eprintln!(
                "warning: cannot find this program to set its allocators' environment \
                 ({error}); memory use may be higher"
            );
            return;
        }
    };
    let mut args = std::env::args_os();
    let mut command = std::process::Command::new(exe);
    if let Some(arg0) = args.next() {
        command.arg0(arg0);
    }
    let error = command.args(args).envs(missing).exec();
    eprintln!(
        "warning: cannot run again with the allocators' environment ({error}); memory use \
         may be higher"
    );
}

fn main() -> ExitCode {
    keep_memory_in_small_pages();
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(error) => {
            let _ = error.print();
            return if error.use_stderr() {
                ExitCode::from(2)
            } else {
                ExitCode::SUCCESS
            };
        }
    };
    if matches!(cli.command, Command::Run { .. }) {
        run_with_allocator_environment();
    }
    let result = match cli.command {
        Command::Run {
            config,
            data_dir,
            p2p_listen,
            rpc_listen,
            log_level,
            replay_from_genesis,
        } => {
            let config = match NodeConfig::load(&config) {
                Ok(config) => config,
                Err(error) => {
                    eprintln!("error: {error}");
                    return ExitCode::from(2);
                }
            };
            init_logging(
                log_level.as_deref().unwrap_or(&config.log_level),
                config.log_format,
            );
            let overrides = Overrides {
                data_dir,
                p2p_listen,
                rpc_listen,
                replay_from_genesis,
            };
            match tokio::runtime::Runtime::new() {
                Ok(runtime) => runtime.block_on(service::run(config, overrides)),
                Err(error) => Err(anyhow!("cannot start the async runtime: {error}")),
            }
        }
        Command::Execute {
            genesis,
            json,
            start_ms,
            interval_ms,
            blocks,
        } => execute(&genesis, &blocks, json, (start_ms, interval_ms)),
        Command::Audit {
            data_dir,
            genesis,
            json,
        } => return audit_command(&data_dir, &genesis, json),
        Command::Backup { data_dir, out } => interpool_node::backup::backup(&data_dir, &out)
            .map_err(anyhow::Error::from)
            .and_then(|info| {
                println!("{}", serde_json::to_string(&info)?);
                eprintln!(
                    "backup of height {} (checkpoint {}) in {}: {} records, {} bytes, {} ms",
                    info.height,
                    info.checkpoint_height,
                    out.display(),
                    info.records,
                    info.bytes,
                    info.millis
                );
                Ok(())
            }),
        Command::Restore {
            from,
            data_dir,
            genesis,
        } => (|| {
            let genesis = match genesis {
                Some(path) => {
                    let genesis = interpool_genesis::files::read_genesis(&path)?;
                    Some(genesis.hash())
                }
                None => None,
            };
            let info = interpool_node::backup::restore(&from, &data_dir, genesis)?;
            eprintln!(
                "restored height {} into {}; start the node on it to catch up",
                info.height,
                data_dir.display()
            );
            Ok(())
        })(),
        Command::Equivocations { genesis, journals } => {
            return equivocations_command(&genesis, &journals)
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::from(1)
        }
    }
}

fn init_logging(filter: &str, format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .or_else(|_| tracing_subscriber::EnvFilter::try_new(filter))
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

/// Reads a block file into verified transactions. Any malformed line or failed stateless
/// check makes the whole block invalid, as a proposal with such a transaction would be.
fn read_block(path: &Path, chain_id: &str) -> Result<Vec<VerifiedTransaction>> {
    let text =
        fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    let mut txs = Vec::new();
    let mut lines = Vec::new();
    for (number, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        if txs.len() == MAX_BLOCK_TRANSACTIONS {
            bail!(
                "{}: more than {MAX_BLOCK_TRANSACTIONS} transactions",
                path.display()
            );
        }
        let at = || format!("{}:{}", path.display(), number + 1);
        let hex = if line.starts_with('{') {
            let value: serde_json::Value =
                serde_json::from_str(line).with_context(|| format!("{}: not JSON", at()))?;
            value
                .get("tx")
                .and_then(|tx| tx.as_str())
                .ok_or_else(|| anyhow!("{}: JSON line has no \"tx\" string", at()))?
                .to_string()
        } else {
            line.to_string()
        };
        let bytes = from_hex_vec(&hex, MAX_TX_BYTES as usize)
            .with_context(|| format!("{}: bad hex", at()))?;
        let tx = SignedTransaction::decode(&bytes)
            .with_context(|| format!("{}: not a transaction", at()))?;
        txs.push(tx);
        lines.push(at());
    }
    check_stateless_batch(txs, chain_id)
        .into_iter()
        .zip(lines)
        .map(|(result, at)| result.map_err(|e| anyhow!("{at}: {e} ({})", e.code())))
        .collect()
}

fn execute(
    genesis_path: &Path,
    blocks: &[PathBuf],
    json: bool,
    (start_ms, interval_ms): (u64, u64),
) -> Result<()> {
    let genesis = read_genesis(genesis_path)?;
    let mut ledger = Ledger::from_genesis(&genesis)
        .with_context(|| format!("{} is invalid", genesis_path.display()))?;
    if !json {
        println!(
            "genesis {}  state root {}",
            genesis.hash(),
            ledger.state_root()
        );
    }
    for path in blocks {
        let txs = read_block(path, &genesis.chain_id)?;
        let height = ledger.height() + 1;
        let time_ms = start_ms.saturating_add(interval_ms.saturating_mul(height - 1));
        // The node's one block executor, with every invariant checked.
        let outcome = replay::execute(&mut ledger, height, time_ms, &txs, Invariants::Full)
            .map_err(|v| anyhow!("after block {height}: {v}"))?;
        if json {
            println!("{}", serde_json::to_string(&outcome)?);
        } else {
            print_outcome(&outcome, genesis.decimals);
        }
    }
    Ok(())
}

/// `interpool-node audit`: runs [`audit::audit`] with a progress bar on stderr (hidden
/// when stderr is not a terminal, and with `--json`) and prints the result.
fn audit_command(data_dir: &Path, genesis_path: &Path, json: bool) -> ExitCode {
    let genesis = match read_genesis(genesis_path) {
        Ok(genesis) => genesis,
        Err(error) => {
            eprintln!("error: {error:#}");
            return ExitCode::from(2);
        }
    };
    let started = Instant::now();
    let result = audit::open_store(data_dir)
        .map_err(AuditError::from)
        .and_then(|store| {
            let bar = if json {
                ProgressBar::hidden()
            } else {
                ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr())
            };
            if let Ok(style) = ProgressStyle::with_template(
                "auditing {bar:40} {pos}/{len} blocks ({per_sec}, {eta} left)",
            ) {
                bar.set_style(style);
            }
            let result = audit::audit(&store, &genesis, &mut |done, total| {
                bar.set_length(total);
                bar.set_position(done);
            });
            bar.finish_and_clear();
            result
        });
    let seconds = started.elapsed().as_secs_f64();
    match result {
        Ok(report) => {
            if json {
                match serde_json::to_string(&report) {
                    Ok(line) => println!("{line}"),
                    Err(error) => {
                        eprintln!("error: cannot encode the report: {error}");
                        return ExitCode::from(1);
                    }
                }
            } else {
                print_audit_report(&report, seconds);
            }
            ExitCode::SUCCESS
        }
        Err(error) => {
            match &error {
                AuditError::Discrepancy(found) => {
                    eprintln!("audit failed: {found}");
                    if json {
                        println!(
                            "{}",
                            serde_json::json!({
                                "verified": false,
                                "height": found.height,
                                "discrepancy": found.kind.to_string(),
                            })
                        );
                    }
                }
                AuditError::Setup(setup) => {
                    eprintln!("error: {setup}");
                    if json {
                        println!(
                            "{}",
                            serde_json::json!({ "verified": false, "error": setup.to_string() })
                        );
                    }
                }
            }
            ExitCode::from(error.exit_code())
        }
    }
}

/// `interpool-node equivocations`: see [`interpool_node::net::journal`].
fn equivocations_command(genesis_path: &Path, journals: &[PathBuf]) -> ExitCode {
    let setup = || -> Result<(interpool_consensus::ValidatorSet, Vec<Vec<Vec<u8>>>)> {
        let genesis = read_genesis(genesis_path)?;
        let validators = interpool_genesis::spec::validator_set(&genesis)
            .context("the genesis's validators are not a valid set")?;
        let read = journals
            .iter()
            .map(|path| {
                interpool_node::net::journal::read(path)
                    .with_context(|| format!("cannot read {}", path.display()))
            })
            .collect::<Result<_>>()?;
        Ok((validators, read))
    };
    let (validators, read) = match setup() {
        Ok(setup) => setup,
        Err(error) => {
            eprintln!("error: {error:#}");
            return ExitCode::from(2);
        }
    };
    let findings = interpool_node::net::journal::equivocations(&read, &validators);
    match serde_json::to_string(&findings) {
        Ok(line) => println!("{line}"),
        Err(error) => {
            eprintln!("error: {error}");
            return ExitCode::from(2);
        }
    }
    if findings.equivocations.is_empty() {
        ExitCode::SUCCESS
    } else {
        eprintln!(
            "{} equivocation(s): a validator signed two different messages of one kind for one height and round",
            findings.equivocations.len()
        );
        ExitCode::from(1)
    }
}

fn print_audit_report(report: &AuditReport, seconds: f64) {
    let amount = |units: u128| format!("{} {}", report.format_total(units), report.currency);
    println!(
        "audit passed: chain {}, genesis {}",
        report.chain_id, report.genesis_hash
    );
    println!(
        "blocks: {} (each certificate, hash link and re-execution verified), final height {}",
        report.blocks, report.final_height
    );
    println!(
        "transactions: {} ({} committed, {} queued, {} rejected; {} released from queues, {} expired, {} cancelled or rejected from queues)",
        report.transactions,
        report.committed,
        report.queued,
        report.rejected,
        report.released,
        report.expired,
        report.dropped
    );
    println!(
        "settlement: {} cycles settled, gross {}, net {}",
        report.cycles_settled,
        amount(report.gross_settled_minor_units),
        amount(report.net_settled_minor_units)
    );
    if report.from_checkpoint > 0 {
        println!(
            "pruned chain: re-executed from the checkpoint at height {} (its state root \
             certified by block {}); {} kept blocks below it verified without re-execution \
             (certificates, signatures, hash links)",
            report.from_checkpoint,
            report.from_checkpoint.saturating_add(1),
            report.blocks_below_checkpoint
        );
    }
    println!("state root: {}", report.state_root);
    println!("verified in {seconds:.2} s");
}

fn print_outcome(outcome: &BlockOutcome, decimals: u8) {
    println!(
        "block {}: {} transactions, state root {}",
        outcome.height,
        outcome.receipts.len(),
        outcome.state_root
    );
    for receipt in &outcome.receipts {
        let status = match &receipt.outcome {
            Outcome::Committed => "committed".to_string(),
            Outcome::Queued { expires_at_height } => {
                format!("queued until height {expires_at_height}")
            }
            Outcome::Rejected { error } => format!("rejected {}: {error}", error.code()),
        };
        println!("  {}  {status}", receipt.tx_hash);
    }
    let dropped = outcome
        .dropped
        .iter()
        .map(|d| (d.reason.fate(), &d.transfer));
    let events = (outcome.released.iter().map(|e| ("released", e)))
        .chain(outcome.expired.iter().map(|e| ("expired", e)))
        .chain(dropped);
    for (what, event) in events {
        println!(
            "  {what} {} {} {} -> {}",
            event.tx_hash,
            event.amount.format(decimals),
            event.from_bank,
            event.to_bank
        );
    }
    if let Some(run) = &outcome.gridlock {
        println!(
            "  liquidity-saving pass: {} of {} queued settled together, {}",
            run.settled,
            run.offered,
            Amount(run.value).format(decimals)
        );
    }
    if let Some(report) = &outcome.day_report {
        println!("  business day {} ({}) closed", report.day, report.date);
    }
    if let Some(report) = &outcome.settlement {
        println!(
            "  cycle {} settled: gross {}, net {}",
            report.cycle,
            report.gross_total.format(decimals),
            report.net_total.format(decimals)
        );
        for p in &report.banks {
            println!(
                "    {:<12} net {:>16}  pool {} -> {}",
                p.bank.as_str(),
                Amount::format_signed(p.net, decimals),
                p.pool_before.format(decimals),
                p.pool_after.format(decimals)
            );
        }
    }
}
